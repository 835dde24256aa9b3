using Microsoft.Build.Framework;
using PpcLivepatch.Diagnostics;
using PpcLivepatch.Analysis;

namespace PpcLivepatch.Build.Tasks;

/// <summary>
/// Runs first: checks the properties that become step options (a misspelled value is a coded error at the project
/// file, before the compiler runs), and writes <see cref="KeyFile"/> — the patch and verify steps' options as the
/// tool will receive them, plus <see cref="Extra"/> — only when it changes, so that the steps rerun exactly when
/// their options do.
/// </summary>
public sealed class CheckLivepatchProperties : PpcLivepatchTask
{
    public string? Rel24Strategy { get; set; }
    public string? Rel24Sites { get; set; }
    public string? LivepatchVerifyMode { get; set; }
    public string? KernelAcceptsLdToc { get; set; }
    public string? LivepatchPcrel { get; set; }
    public string? KernelHasLivepatch { get; set; }
    public string? KernelFtrace { get; set; }
    public string? LivepatchAllowSiblingCalls { get; set; }
    public string? LivepatchModuleName { get; set; }
    public string? LivepatchAbi { get; set; }
    /// <summary>Kbuild mode's kernel tree: checked here, before anything runs in it, at the line that sets
    /// it.</summary>
    public string? KernelDir { get; set; }
    /// <summary>The compiler kbuild will run for KernelDir is <c>$(CrossCompilePrefix)gcc</c>: checked against the
    /// one that built the tree (PLP0027).</summary>
    public string? CrossCompilePrefix { get; set; }
    /// <summary>The project's KernelPatch items: with any, the compiler must be the very release that built the
    /// kernel.</summary>
    public ITaskItem[] KernelPatches { get; set; } = [];

    /// <summary>Other settings the outputs depend on (signing), kept in the key as they are.</summary>
    public string? Extra { get; set; }

    [Required]
    public string KeyFile { get; set; } = "";

    /// <summary>The project file the properties belong to (the task node itself is in Sdk.targets).</summary>
    public string? ProjectFile { get; set; }

    protected override bool ExecuteCore()
    {
        bool acceptsLdToc = Flag(nameof(KernelAcceptsLdToc), KernelAcceptsLdToc);
        bool pcrel = Flag(nameof(LivepatchPcrel), LivepatchPcrel);
        bool allowSiblingCalls = Flag(nameof(LivepatchAllowSiblingCalls), LivepatchAllowSiblingCalls);
        bool? hasLivepatch = string.IsNullOrEmpty(KernelHasLivepatch) ? null : Flag(nameof(KernelHasLivepatch),
            KernelHasLivepatch);
        if (!StepProperties.TryStrategy(Rel24Strategy, out var strategy, out string? error))
            Usage(nameof(Rel24Strategy), error!);
        if (!StepProperties.TrySites(Rel24Sites, out var sites, out error)) Usage(nameof(Rel24Sites), error!);
        if (!StepProperties.TryWarnOnly(LivepatchVerifyMode, out bool warnOnly, out error))
            Usage(nameof(LivepatchVerifyMode), error!);
        // The ABI chooses the default flags; any other value would compile ELFv1 code and fail much later.
        if (LivepatchAbi is not null && LivepatchAbi is not ("elfv1" or "elfv2"))
            Usage(nameof(LivepatchAbi),
                $"LivepatchAbi is '{LivepatchAbi}'; use elfv2 (ppc64le) or elfv1 (big-endian ppc64)");
        if (!string.IsNullOrEmpty(KernelDir)
            && (!Directory.Exists(KernelDir) || !File.Exists(Path.Combine(KernelDir, "Makefile"))))
            Located(DiagnosticCatalog.KernelTreeMissing, nameof(KernelDir),
                $"KernelDir '{KernelDir}' is not a kernel build tree " +
                    (Directory.Exists(KernelDir) ? "(it has no Makefile)" : "(no such directory)") +
                    ": point it at the kernel's build output or its headers package (e.g. " +
                    "/lib/modules/<version>/build)");
        else if (!string.IsNullOrEmpty(KernelDir) && Kbuild.KernelTree.CompilerMismatch(KernelDir,
                     (CrossCompilePrefix ?? "") + "gcc", sameRelease: KernelPatches.Length > 0) is { } mismatch)
            Located(DiagnosticCatalog.KernelCompilerMismatch, nameof(KernelDir), mismatch);
        if (!FtraceSites.TryParse(KernelFtrace, out var ftrace))
            Usage(nameof(KernelFtrace), $"KernelFtrace is '{KernelFtrace}'; use {FtraceSites.Choices} (or leave it " +
                "empty: KernelDir's configuration says)");
        if (Log.HasLoggedErrors) return false;

        var loader = StepProperties.Loader(acceptsLdToc, pcrel, LivepatchModuleName, hasLivepatch, ftrace);
        string key = string.Join("\n",
            StepProperties.Patch(strategy, sites, loader, allowSiblingCalls).CacheKey,
            StepProperties.Verify(warnOnly, loader, allowSiblingCalls).CacheKey,
            Extra ?? "") + "\n";
        try
        {
            // Unchanged options leave the file (and its timestamp) alone; a change replaces it whole (temporary +
            // rename).
            if (!File.Exists(KeyFile) || File.ReadAllText(KeyFile) != key)
            {
                Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(KeyFile))!);
                Elf.AtomicFile.WriteAllBytes(KeyFile, System.Text.Encoding.UTF8.GetBytes(key));
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            DiagnosticLogging.LogIoError(Log, DiagnosticCatalog.UnwritableOutput, KeyFile, e, HelpLinkBase);
            return false;
        }
        return true;
    }

    /// <summary>An MSBuild boolean: true/false in any case, or empty for false.</summary>
    private bool Flag(string property, string? value)
    {
        if (string.IsNullOrEmpty(value)) return false;
        if (bool.TryParse(value, out bool flag)) return flag;
        Usage(property, $"{property} is '{value}'; use true or false");
        return false;
    }

    /// <summary>A coded error at the project file, on the line that sets the property when it is set there (a value
    /// from the command line has no line).</summary>
    private void Usage(string property, string message) =>
        Located(DiagnosticCatalog.UsageError, property, message);

    private void Located(string code, string property, string message)
    {
        string file = string.IsNullOrEmpty(ProjectFile) ? BuildEngine?.ProjectFileOfTaskNode ?? "" : ProjectFile;
        DiagnosticLogging.Log(Log, code, HelpLinkBase, file, ProjectItemLocation.PropertyLine(file, property), 0,
            message);
    }
}
