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
    /// <summary><c>island</c>, <c>insert-nop</c>, <c>auto</c>, or <c>none</c> to only report (for experiments with
    /// LivepatchVerifyMode=warn).</summary>
    public string Strategy { get; set; } = "auto";

    /// <summary><c>needed</c> or <c>all-local</c>.</summary>
    public string Sites { get; set; } = "needed";

    public bool AllowSiblingCalls { get; set; }

    public string? JsonReport { get; set; }

    public string? SarifReport { get; set; }

    [Output]
    public int SitesFixed { get; private set; }

    protected override StepOptions? Options()
    {
        if (!StepProperties.TrySites(Sites, out var sites, out string? error)
            || !StepProperties.TryStrategy(Strategy, out var strategy, out error))
        {
            LogTaskError(DiagnosticCatalog.UsageError, error!);
            return null;
        }
        return StepProperties.Patch(strategy, sites, LoaderOptions, AllowSiblingCalls, JsonReport, SarifReport);
    }

    protected override void StepFinished(StepResult result) => SitesFixed = result.SitesFixed;
}
