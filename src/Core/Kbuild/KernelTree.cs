using System.Text.RegularExpressions;
using PpcLivepatch.Analysis;

namespace PpcLivepatch.Kbuild;

/// <summary>
/// What a kernel build tree says about the loader a module is for: its release (6.3 and later accept an
/// <c>ld r2,24(r1)</c> already after a call) and its configuration (<c>CONFIG_PPC_KERNEL_PCREL</c>,
/// <c>CONFIG_LIVEPATCH</c>, the ftrace model), read as the SDK reads them from <c>KernelDir</c>.
/// </summary>
public static partial class KernelTree
{
    /// <summary>Whether <paramref name="directory"/> is a kernel build tree (kbuild's top Makefile).</summary>
    public static bool IsBuildTree(string directory) =>
        Directory.Exists(directory) && File.Exists(Path.Combine(directory, "Makefile"));

    public static LoaderOptions Loader(string directory, string? moduleName)
    {
        string release = Path.Combine(directory, "include", "config", "kernel.release");
        bool acceptsLdToc = File.Exists(release) && Version().Match(File.ReadAllText(release).Trim()) is
            { Success: true } m && new Version(m.Value) >= new Version(6, 3);
        string config = Path.Combine(directory, "include", "config", "auto.conf");
        string? text = File.Exists(config) ? File.ReadAllText(config) : null;
        return new LoaderOptions(acceptsLdToc, text?.Contains("CONFIG_PPC_KERNEL_PCREL=y",
                StringComparison.Ordinal) ?? false, moduleName,
            text?.Contains("CONFIG_LIVEPATCH=y", StringComparison.Ordinal),
            text is null ? FtraceSiteKind.Unknown : FtraceSites.OfKernelConfig(text));
    }

    [GeneratedRegex(@"^\d+\.\d+")]
    private static partial Regex Version();
}
