using System.Text.Json;
using PpcLivepatch.Analysis;
using PpcLivepatch.Klp;
using PpcLivepatch.Patching;

namespace PpcLivepatch.Steps;

/// <summary>The SDK's build steps.</summary>
public enum StepKind
{
    Convert,
    Patch,
    Verify,
}

/// <summary>
/// Every option of an SDK build step, in one typed place: the tasks build it from MSBuild properties
/// (<see cref="StepOptionParsing"/> checks their spelling once, with coded errors), the native tool receives it as JSON
/// in a <see cref="StepRequest"/>, and <see cref="CacheKey"/> is what the SDK's incremental build compares.
/// </summary>
/// <param name="Strategy">How to fix; null only reports what would need fixing (Rel24Strategy=none).</param>
/// <param name="WarnOnly">Verify: rejections become warnings and the output is still written.</param>
/// <param name="AllowSiblingCalls">Sibling calls to external symbols are errors unless allowed: the kernel loads them,
/// but kpatch refuses them too and a crash is on record.</param>
public sealed record StepOptions(
    StepKind Step,
    LoaderOptions Loader,
    FixStrategy? Strategy = FixStrategy.Auto,
    SiteSelection Sites = SiteSelection.Needed,
    bool AllowSiblingCalls = false,
    bool WarnOnly = false,
    string? JsonReport = null,
    string? SarifReport = null,
    IReadOnlyList<KlpSymbolSpec>? Symbols = null,
    string? HelpLinkBase = null)
{
    public IReadOnlyList<KlpSymbolSpec> KlpSymbols => Symbols ?? [];

    /// <summary>The options as one canonical JSON object: equal options, equal text.</summary>
    public string CacheKey
    {
        get
        {
            var buffer = new MemoryStream();
            using (var w = new Utf8JsonWriter(buffer)) Write(w);
            return System.Text.Encoding.UTF8.GetString(buffer.ToArray());
        }
    }

    public void Write(Utf8JsonWriter w)
    {
        w.WriteStartObject();
        w.WriteString("step", StepOptionParsing.NameOf(Step));
        w.WriteBoolean("kernelAcceptsLdToc", Loader.KernelAcceptsLdToc);
        w.WriteBoolean("pcrel", Loader.Pcrel);
        if (Loader.ModuleName is not null) w.WriteString("moduleName", Loader.ModuleName);
        if (Loader.KernelHasLivepatch is { } livepatch) w.WriteBoolean("kernelHasLivepatch", livepatch);
        if (Loader.KernelFtrace != FtraceSiteKind.Unknown)
            w.WriteString("kernelFtrace", FtraceSites.NameOf(Loader.KernelFtrace));
        w.WriteString("strategy", Strategy is { } s ? FixStrategies.NameOf(s) : StepOptionParsing.ReportOnly);
        w.WriteString("sites", StepOptionParsing.NameOf(Sites));
        w.WriteBoolean("allowSiblingCalls", AllowSiblingCalls);
        w.WriteBoolean("warnOnly", WarnOnly);
        if (JsonReport is not null) w.WriteString("jsonReport", JsonReport);
        if (SarifReport is not null) w.WriteString("sarifReport", SarifReport);
        if (HelpLinkBase is not null) w.WriteString("helpLinkBase", HelpLinkBase);
        w.WriteStartArray("klpSymbols");
        foreach (var k in KlpSymbols)
        {
            w.WriteStartObject();
            w.WriteString("symbol", k.Symbol);
            w.WriteString("object", k.Object);
            if (k.Name is not null) w.WriteString("name", k.Name);
            w.WriteNumber("position", k.Position);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteEndObject();
    }

    /// <exception cref="FormatException">A value is not one this tool knows.</exception>
    public static StepOptions Read(JsonElement e)
    {
        string? Text(string name) => e.TryGetProperty(name, out var v) ? v.GetString() : null;
        bool Flag(string name) => e.TryGetProperty(name, out var v) && v.GetBoolean();
        bool? livepatch = e.TryGetProperty("kernelHasLivepatch", out var lp) ? lp.GetBoolean() : null;
        if (!FtraceSites.TryParse(Text("kernelFtrace"), out var ftrace))
            throw new FormatException($"unknown ftrace model '{Text("kernelFtrace")}'");
        var loader = new LoaderOptions(Flag("kernelAcceptsLdToc"), Flag("pcrel"), Text("moduleName"), livepatch,
            ftrace);
        var symbols = e.TryGetProperty("klpSymbols", out var list)
            ? list.EnumerateArray().Select(k =>
                new KlpSymbolSpec(k.GetProperty("symbol").GetString()!, k.GetProperty("object").GetString()!,
                k.TryGetProperty("name", out var n) ? n.GetString() : null,
                    k.GetProperty("position").GetUInt64())).ToList()
            : [];
        return new StepOptions(
            StepOptionParsing.Step(Text("step")) ?? throw new FormatException($"unknown step '{Text("step")}'"),
            loader,
            StepOptionParsing.Strategy(Text("strategy"), out var strategy) ? strategy
                : throw new FormatException($"unknown strategy '{Text("strategy")}'"),
            StepOptionParsing.Sites(Text("sites")) ?? throw new FormatException("unknown site selection " +
                $"'{Text("sites")}'"),
            Flag("allowSiblingCalls"), Flag("warnOnly"), Text("jsonReport"), Text("sarifReport"), symbols,
                Text("helpLinkBase"));
    }
}

/// <summary>One step to run: the directory relative paths are resolved against, the options, the object
/// pairs.</summary>
public sealed record StepRequest(string Directory, StepOptions Options, IReadOnlyList<StepObject> Objects);

/// <summary>The spellings of the step options, as MSBuild properties and command lines write them; checked here
/// only.</summary>
public static class StepOptionParsing
{
    /// <summary>The SDK's <c>Rel24Strategy=none</c>: report what would need fixing, fix nothing.</summary>
    public const string ReportOnly = "none";

    /// <summary>Reads a strategy name (or <c>none</c>); false for anything else.</summary>
    public static bool Strategy(string? name, out FixStrategy? strategy)
    {
        strategy = null;
        if (name == ReportOnly) return true;
        if (!FixStrategies.TryParse(name, out var kind)) return false;
        strategy = kind;
        return true;
    }

    public static SiteSelection? Sites(string? name) => name switch
    {
        "needed" => SiteSelection.Needed,
        "all-local" => SiteSelection.AllLocal,
        _ => null,
    };

    public static string NameOf(SiteSelection sites) => sites == SiteSelection.AllLocal ? "all-local" : "needed";

    public static StepKind? Step(string? name) => name switch
    {
        "convert" => StepKind.Convert,
        "patch" => StepKind.Patch,
        "verify" => StepKind.Verify,
        _ => null,
    };

    public static string NameOf(StepKind step) => step.ToString().ToLowerInvariant();
}

/// <summary>Runs a step in this process: what the native tool's <c>serve</c> and the tasks' in-process fallback
/// share.</summary>
public static class StepRunner
{
    public static StepResult Run(StepOptions options, IReadOnlyList<StepObject> objects) => options.Step switch
    {
        StepKind.Patch => PatchStep.Run(objects, options),
        StepKind.Verify => VerifyStep.Run(objects, options),
        _ => ConvertStep.Run(objects, options.KlpSymbols),
    };
}
