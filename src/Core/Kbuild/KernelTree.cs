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

    /// <summary>
    /// Why <paramref name="compiler"/> cannot build for the tree in <paramref name="directory"/>, or null when it can
    /// (or the tree does not say what built it: kernels before 5.8, a tree not configured). The tree's compiler is
    /// kbuild's record of it (<c>CONFIG_CC_VERSION_TEXT</c>). Another compiler family or another GCC major version
    /// is never right: kbuild passes the tree's flags, which the other compiler refuses one by one. With
    /// <paramref name="sameRelease"/> (kernel source patches) the version must be the same to the last number: the
    /// unpatched units are compiled again and taken for the running kernel's code, which another release of the
    /// same compiler does not reproduce (kpatch-build refuses it too).
    /// </summary>
    public static string? CompilerMismatch(string directory, string compiler, bool sameRelease)
    {
        string config = Path.Combine(directory, "include", "config", "auto.conf");
        string text;
        try
        {
            if (!File.Exists(config)) return null;
            text = File.ReadAllText(config);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;   // says nothing about the compiler; the build that reads the tree reports it
        }
        var recorded = CompilerRecord().Match(text);
        if (!recorded.Success) return null;
        string treeText = recorded.Groups[1].Value.Trim().Trim('"');
        string? ourText = Toolchain.VersionText(compiler);
        if (ourText is null) return null;   // not runnable: the compile says so (PLP0013)
        var (treeClang, treeVersion) = CompilerVersion(treeText);
        var (ourClang, ourVersion) = CompilerVersion(ourText);
        if (treeVersion is null || ourVersion is null) return null;
        bool differs = treeClang != ourClang || treeVersion.Major != ourVersion.Major
            || (sameRelease && treeVersion != ourVersion);
        if (!differs) return null;
        string why = sameRelease
            ? "the unpatched units would not compile to the running kernel's code, so the diff could not be trusted"
            : "kbuild passes the kernel's compiler flags, which this compiler does not take";
        return $"the kernel in '{directory}' was built by '{treeText}', and '{compiler}' is '{ourText}': {why}; " +
            "build where the kernel was built (with its compiler on PATH), or set CrossCompilePrefix to that compiler";
    }

    private static (bool Clang, Version? Version) CompilerVersion(string text) =>
        (text.Contains("clang", StringComparison.Ordinal),
            Release().Match(text) is { Success: true } m ? new Version(m.Value) : null);

    [GeneratedRegex(@"^\d+\.\d+")]
    private static partial Regex Version();

    [GeneratedRegex(@"^CONFIG_CC_VERSION_TEXT=(.*)$", RegexOptions.Multiline)]
    private static partial Regex CompilerRecord();

    /// <summary>The compiler's release: the last x.y.z of its version line.</summary>
    [GeneratedRegex(@"\d+\.\d+\.\d+(?!.*\d+\.\d+\.\d+)")]
    private static partial Regex Release();
}
