using PpcLivepatch.Analysis;
using PpcLivepatch.Patching;
using PpcLivepatch.Steps;

namespace PpcLivepatch.Cli;

/// <summary>A command line that cannot be run: reported as PLP0001, exit status 2.</summary>
internal sealed class UsageException(string message) : Exception(message);

/// <summary>The options <c>verify</c>, <c>patch</c> and <c>step</c> share, spelled and checked in one place.</summary>
internal sealed class SharedOptions
{
    private bool _acceptsLdToc, _pcrel;
    private bool? _hasLivepatch;
    private string? _moduleName;
    private FtraceSiteKind _ftrace;

    /// <summary>Takes <paramref name="arg"/> when it describes the target kernel, reading a value with <paramref
    /// name="value"/>.</summary>
    public bool TryTakeLoaderOption(string arg, Func<string?> value)
    {
        switch (arg)
        {
            case "--kernel-accepts-ld-toc": _acceptsLdToc = true; return true;
            case "--pcrel": _pcrel = true; return true;
            case "--kernel-without-livepatch": _hasLivepatch = false; return true;
            case "--ftrace":
                string? model = value() ?? throw new UsageException("--ftrace needs a value");
                if (!FtraceSites.TryParse(model, out _ftrace) || _ftrace == FtraceSiteKind.Unknown)
                    throw new UsageException($"unknown ftrace model '{model}': use {FtraceSites.Choices}");
                return true;
            case "--module-name":
                _moduleName = value() ?? throw new UsageException("--module-name needs a value");
                return true;
            default: return false;
        }
    }

    public LoaderOptions Loader =>
        new(_acceptsLdToc, _pcrel, string.IsNullOrEmpty(_moduleName) ? null : _moduleName, _hasLivepatch, _ftrace);

    /// <param name="allowNone">The SDK's <c>none</c> (report only), which the tasks send through <c>step</c>.</param>
    public static FixStrategy? Strategy(string? name, bool allowNone) =>
        StepOptionParsing.Strategy(name, out var strategy) && (strategy is not null || allowNone) ? strategy
            : throw new UsageException($"unknown strategy '{name}': use " +
                $"{(allowNone ? FixStrategies.Choices(StepOptionParsing.ReportOnly) : FixStrategies.Choices())}");

    public static SiteSelection Sites(string? name) =>
        StepOptionParsing.Sites(name) ?? throw new UsageException($"unknown site selection '{name}': use needed or " +
            "all-local");
}
