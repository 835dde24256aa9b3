using PpcLivepatch.Analysis;
using PpcLivepatch.Patching;
using PpcLivepatch.Steps;

namespace PpcLivepatch.Build.Tasks;

/// <summary>
/// The SDK properties that become step options, checked and converted in one place: the step tasks build their
/// <see cref="StepOptions"/> here, and <see cref="CheckLivepatchProperties"/> builds the same ones at the start of a
/// build to report misspelled values at the project file and to write the incremental build's options key.
/// </summary>
internal static class StepProperties
{
    /// <summary>Rel24Strategy: a strategy, <c>asm</c> (the compiler put the nops in; objects from elsewhere get auto)
    /// or <c>none</c>.</summary>
    public static bool TryStrategy(string? value, out FixStrategy? strategy, out string? error)
    {
        error = null;
        if (StepOptionParsing.Strategy(value == "asm" ? "auto" : value, out strategy)) return true;
        error = $"Rel24Strategy is '{value}'; use asm, {FixStrategies.Choices(StepOptionParsing.ReportOnly)}";
        return false;
    }

    public static bool TrySites(string? value, out SiteSelection sites, out string? error)
    {
        var parsed = StepOptionParsing.Sites(value);
        sites = parsed ?? SiteSelection.Needed;
        error = parsed is null ? $"Rel24Sites is '{value}'; use needed or all-local" : null;
        return parsed is not null;
    }

    /// <summary>LivepatchVerifyMode: <c>error</c> or <c>warn</c> (any case).</summary>
    public static bool TryWarnOnly(string? value, out bool warnOnly, out string? error)
    {
        error = null;
        warnOnly = string.Equals(value, "warn", StringComparison.OrdinalIgnoreCase);
        if (warnOnly || string.Equals(value, "error", StringComparison.OrdinalIgnoreCase)) return true;
        error = $"LivepatchVerifyMode is '{value}'; use error or warn";
        return false;
    }

    public static StepOptions Patch(FixStrategy? strategy, SiteSelection sites, LoaderOptions loader,
        bool allowSiblingCalls, string? jsonReport = null, string? sarifReport = null) =>
        new(StepKind.Patch, loader, strategy, sites, allowSiblingCalls, JsonReport: NullIfEmpty(jsonReport),
            SarifReport: NullIfEmpty(sarifReport));

    public static StepOptions Verify(bool warnOnly, LoaderOptions loader, bool allowSiblingCalls,
        string? jsonReport = null, string? sarifReport = null) =>
        new(StepKind.Verify, loader, AllowSiblingCalls: allowSiblingCalls, WarnOnly: warnOnly,
            JsonReport: NullIfEmpty(jsonReport), SarifReport: NullIfEmpty(sarifReport));

    public static LoaderOptions Loader(bool acceptsLdToc, bool pcrel, string? moduleName, bool? hasLivepatch,
        FtraceSiteKind ftrace) =>
        new(acceptsLdToc, pcrel, string.IsNullOrEmpty(moduleName) ? null : moduleName, hasLivepatch, ftrace);

    private static string? NullIfEmpty(string? value) => string.IsNullOrEmpty(value) ? null : value;
}
