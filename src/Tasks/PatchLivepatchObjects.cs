using Microsoft.Build.Framework;
using PpcLivepatch.Diagnostics;
using PpcLivepatch.Patching;
using PpcLivepatch.Steps;

namespace PpcLivepatch.Build.Tasks;

/// <summary>
/// Fixes every fixable R_PPC64_REL24 site of each object (<see cref="PatchStep"/>) and writes it to its
/// <c>OutputFile</c>. Sibling calls to external symbols are errors unless <see cref="AllowSiblingCalls"/>.
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

    private PatchStepOptions? _options;

    protected override bool TryPrepare()
    {
        SiteSelection selection;
        if (Sites == "needed") selection = SiteSelection.Needed;
        else if (Sites == "all-local") selection = SiteSelection.AllLocal;
        else return UsageError($"Rel24Sites is '{Sites}'; use needed or all-local");
        FixStrategy? strategy;
        if (Strategy == "none") strategy = null;
        else if (Strategy == "island") strategy = FixStrategy.Island;
        else if (Strategy == "insert-nop") strategy = FixStrategy.InsertNop;
        // asm: the compiler already put the nops in; whatever is left (objects from elsewhere) gets auto.
        else if (Strategy is "auto" or "asm") strategy = FixStrategy.Auto;
        else return UsageError($"Rel24Strategy is '{Strategy}'; use asm, auto, insert-nop, island or none");
        _options = new PatchStepOptions(strategy, selection, LoaderOptions, AllowSiblingCalls, JsonReport, SarifReport);
        return true;
    }

    protected override StepResult RunInProcess(IReadOnlyList<StepObject> objects) => PatchStep.Run(objects, _options!);

    protected override IEnumerable<string> ToolArguments()
    {
        yield return "patch";
        yield return "--strategy";
        yield return Strategy == "asm" ? "auto" : Strategy;
        yield return "--sites";
        yield return Sites;
        if (AllowSiblingCalls) yield return "--allow-sibling-calls";
        foreach (string a in ReportArguments(JsonReport, SarifReport)) yield return a;
        foreach (string a in LoaderArguments()) yield return a;
    }

    protected override void StepFinished(StepResult result) => SitesFixed = result.SitesFixed;

    private bool UsageError(string message)
    {
        LogTaskError(DiagnosticCatalog.UsageError, message);
        return false;
    }
}
