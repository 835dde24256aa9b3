using Microsoft.Build.Framework;
using PpcLivepatch.Diagnostics;
using PpcLivepatch.Patching;

namespace PpcLivepatch.Build.Tasks;

/// <summary>
/// Fixes every fixable R_PPC64_REL24 site of each object (<see cref="ObjectPatcher"/>) and writes it to its
/// <c>OutputFile</c>. Sibling calls to external symbols are errors unless <see cref="AllowSiblingCalls"/>: the
/// kernel loads them, but kpatch refuses them too and a crash is on record.
/// </summary>
public sealed class PatchLivepatchObjects : LivepatchObjectTask
{
    /// <summary><c>island</c>, <c>insert-nop</c>, <c>auto</c>, or <c>none</c> to only report (for experiments with LivepatchVerifyMode=warn).</summary>
    public string Strategy { get; set; } = "auto";

    /// <summary><c>needed</c> or <c>all-local</c>.</summary>
    public string Sites { get; set; } = "needed";

    public bool AllowSiblingCalls { get; set; }

    public string? JsonReport { get; set; }

    public string? SarifReport { get; set; }

    [Output]
    public int SitesFixed { get; private set; }

    protected override bool ExecuteCore()
    {
        SiteSelection selection;
        if (Sites == "needed") selection = SiteSelection.Needed;
        else if (Sites == "all-local") selection = SiteSelection.AllLocal;
        else return UsageError($"Rel24Sites is '{Sites}'; use needed or all-local");
        FixStrategy strategy;
        if (Strategy == "island" || Strategy == "none") strategy = FixStrategy.Island;
        else if (Strategy == "insert-nop") strategy = FixStrategy.InsertNop;
        else if (Strategy == "auto") strategy = FixStrategy.Auto;
        else return UsageError($"Rel24Strategy is '{Strategy}'; use island, insert-nop, auto or none");

        var results = new List<PatchResult>();
        foreach (var item in Objects)
        {
            string output = OutputOf(item);
            var image = Load(item.ItemSpec);
            if (image is null) { DeleteIfExists(output); continue; }
            PatchResult result = Strategy == "none"
                ? new PatchResult(Analysis.ObjectVerifier.Verify(image, LoaderOptions), [], image.Bytes.ToArray(), 0)
                : ObjectPatcher.Patch(image, new PatchOptions(strategy, selection, LoaderOptions));
            // Verify judges the final module; here only what this step did and could not do is reported.
            DiagnosticLogging.Log(Log, result.Report.Diagnostics.Where(IsPatchFinding), HelpLinkBase, d => !AllowSiblingCalls && d.Code == DiagnosticCatalog.SiblingCallToExternal);
            results.Add(result with { Report = result.Report with { Path = output } });
            SitesFixed += result.Fixes.Count;
            if (result.Output is null || !Write(output, result.Output)) DeleteIfExists(output);
        }
        WriteReport(JsonReport, ReportWriters.RenderPatch(results, ReportFormat.Json));
        WriteReport(SarifReport, ReportWriters.RenderPatch(results, ReportFormat.Sarif));
        int unfixable = results.Sum(r => r.Report.Diagnostics.Count(d => d.Severity == Severity.Error && d.Code.StartsWith("PLP2", StringComparison.Ordinal)));
        string how = Strategy == "none" ? "none" : ObjectPatcher.StrategySummary(results.SelectMany(r => r.Fixes).ToList());
        Log.LogMessage(MessageImportance.High, "{0} REL24 site{1} fixed ({2}), {3} unfixable", SitesFixed, SitesFixed == 1 ? "" : "s", how, unfixable);
        if (Log.HasLoggedErrors)
            foreach (var item in Objects) DeleteIfExists(OutputOf(item));
        return !Log.HasLoggedErrors;
    }

    /// <summary>Patch reports fixes, what it could not fix, and hazards; loader rejections are Verify's to report.</summary>
    private bool IsPatchFinding(Diagnostic d) =>
        d.Code is DiagnosticCatalog.CannotRewrite or DiagnosticCatalog.SiteFixed or DiagnosticCatalog.UnwindNotExtended or DiagnosticCatalog.SiblingCallToExternal
            or DiagnosticCatalog.SiblingCallFromLocallyCalledFunction or DiagnosticCatalog.CallNotRelocatable or DiagnosticCatalog.CallOutsideCode
            or DiagnosticCatalog.NoRoomForIsland or DiagnosticCatalog.IslandOutOfRange or DiagnosticCatalog.InsertNopNotPossible
        || (d.Code == DiagnosticCatalog.CallAtEndOfSection && d.Message.Contains("cannot be fixed"));

    private bool UsageError(string message)
    {
        Log.LogError(DiagnosticLogging.Subcategory, DiagnosticCatalog.UsageError, DiagnosticCatalog.UsageError,
            (HelpLinkBase ?? DiagnosticCatalog.HelpLinkBase) + DiagnosticCatalog.UsageError + ".md", BuildEngine?.ProjectFileOfTaskNode ?? "", 0, 0, 0, 0, "{0}", message);
        return false;
    }
}
