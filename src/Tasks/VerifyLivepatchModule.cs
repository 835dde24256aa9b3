using PpcLivepatch.Steps;

namespace PpcLivepatch.Build.Tasks;

/// <summary>
/// Runs the kernel loader model on the final module(s) and copies each accepted one to its <c>OutputFile</c>
/// (<see cref="VerifyStep"/>). With <see cref="Mode"/> <c>warn</c> the rejections become warnings and the output is
/// still written — for experiments that want to watch the kernel refuse a module.
/// </summary>
public sealed class VerifyLivepatchModule : LivepatchObjectTask
{
    /// <summary><c>error</c> (default) or <c>warn</c>.</summary>
    public string Mode { get; set; } = "error";

    public bool AllowSiblingCalls { get; set; }

    public string? JsonReport { get; set; }

    public string? SarifReport { get; set; }

    private bool WarnOnly => string.Equals(Mode, "warn", StringComparison.OrdinalIgnoreCase);

    protected override StepResult RunInProcess(IReadOnlyList<StepObject> objects) =>
        VerifyStep.Run(objects, new VerifyStepOptions(LoaderOptions, WarnOnly, AllowSiblingCalls, JsonReport, SarifReport));

    protected override IEnumerable<string> ToolArguments()
    {
        yield return "verify";
        if (WarnOnly) yield return "--warn-only";
        if (AllowSiblingCalls) yield return "--allow-sibling-calls";
        foreach (string a in ReportArguments(JsonReport, SarifReport)) yield return a;
        foreach (string a in LoaderArguments()) yield return a;
    }
}
