using PpcLivepatch.Analysis;
using PpcLivepatch.Diagnostics;
using PpcLivepatch.Patching;
using PpcLivepatch.Reports;

namespace PpcLivepatch.Steps;

/// <summary>
/// The SDK's Patch step: fixes every fixable R_PPC64_REL24 site of each object and writes it to its output. Only what
/// this step did and could not do is reported; the loader's verdict on the final module is the Verify step's.
/// </summary>
public static class PatchStep
{
    public static StepResult Run(IReadOnlyList<StepObject> objects, StepOptions options)
    {
        var events = new List<StepEvent>();
        var results = new List<PatchResult>();
        foreach (var o in objects)
        {
            var image = StepFiles.Load(o.Input, events);
            if (image is null) continue;
            PatchResult result = options.Strategy is { } strategy
                ? ObjectPatcher.Patch(image, new PatchOptions(strategy, options.Sites, options.Loader))
                : new PatchResult(ObjectVerifier.Verify(image, options.Loader), [], image.Bytes.ToArray(), 0);
            foreach (var d in result.Report.Diagnostics.Where(IsPatchFinding))
                events.Add(StepEvent.Of(!options.AllowSiblingCalls
                    && d.Kind == DiagnosticKind.Hazard ? d.Promoted() : d));
            if (result.Changed) StepFiles.NoteDroppedSignature(image, o.Output, events);
            results.Add(result with { Report = result.Report with { Path = o.Output } });
            if (result.Output is not null) StepFiles.Write(o.Output, result.Output, events);
        }
        StepFiles.WriteReport(options.JsonReport,
            ReportWriters.RenderPatch(results, ReportFormat.Json, options.HelpLinkBase), events);
        StepFiles.WriteReport(options.SarifReport,
            ReportWriters.RenderPatch(results, ReportFormat.Sarif, options.HelpLinkBase), events);

        var fixes = results.SelectMany(r => r.Fixes).ToList();
        string how = ObjectPatcher.StrategySummary(fixes);
        string unfixed = ObjectPatcher.UnfixedSummary(results.Select(r => r.Report));
        events.Add(StepEvent.Say($"{fixes.Count} REL24 site{(fixes.Count == 1 ? "" : "s")} fixed ({how}), {unfixed}",
            prominent: true));
        return StepFiles.Finish(events, objects, fixes.Count);
    }

    /// <summary>What patching did and could not do; the loader's verdict on the result is the Verify step's.</summary>
    private static bool IsPatchFinding(Diagnostic d) =>
        d.Kind is DiagnosticKind.Fixed or DiagnosticKind.Unfixed or DiagnosticKind.Refused or DiagnosticKind.Note
            or DiagnosticKind.Hazard;
}
