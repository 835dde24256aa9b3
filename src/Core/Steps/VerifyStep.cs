using PpcLivepatch.Analysis;
using PpcLivepatch.Diagnostics;
using PpcLivepatch.Reports;

namespace PpcLivepatch.Steps;

/// <summary>The SDK's Verify step: runs the kernel loader model on each final module and copies an accepted one to its
/// output.</summary>
public static class VerifyStep
{
    public static StepResult Run(IReadOnlyList<StepObject> objects, StepOptions options)
    {
        var events = new List<StepEvent>();
        var reports = new List<ObjectReport>();
        foreach (var o in objects)
        {
            var image = StepFiles.Load(o.Input, events);
            if (image is null) continue;
            var report = ObjectVerifier.Verify(image, options.Loader);
            reports.Add(report);
            bool failed = false;
            foreach (var d in report.Diagnostics)
            {
                var shown = !options.AllowSiblingCalls && d.Kind == DiagnosticKind.Hazard ? d.Promoted() : d;
                if (options.WarnOnly) shown = shown.Demoted();
                failed |= shown.Severity == Severity.Error;
                events.Add(StepEvent.Of(shown));
            }
            int rejected = report.Sites.Count(s => s.Verdict == Verdict.Reject);
            events.Add(StepEvent.Say($"{o.Input}: " +
                $"{(report.Accepted ? "the kernel would load it" : "the kernel would refuse it")} " +
                    $"({report.Sites.Count} call sites, {rejected} rejected)", prominent: false));
            if (!failed && o.Output != o.Input) StepFiles.Write(o.Output, image.Bytes.ToArray(), events);
        }
        StepFiles.WriteReport(options.JsonReport,
            ReportWriters.Render(reports, ReportFormat.Json, options.HelpLinkBase), events);
        StepFiles.WriteReport(options.SarifReport,
            ReportWriters.Render(reports, ReportFormat.Sarif, options.HelpLinkBase), events);
        return StepFiles.Finish(events, objects);
    }
}
