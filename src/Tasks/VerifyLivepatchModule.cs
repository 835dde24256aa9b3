using PpcLivepatch.Diagnostics;
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

    protected override StepOptions? Options()
    {
        if (StepProperties.TryWarnOnly(Mode, out bool warnOnly, out string? error))
            return StepProperties.Verify(warnOnly, LoaderOptions, AllowSiblingCalls, JsonReport, SarifReport);
        LogTaskError(DiagnosticCatalog.UsageError, error!);
        return null;
    }
}
