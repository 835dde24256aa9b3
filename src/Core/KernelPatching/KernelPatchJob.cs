using PpcLivepatch.Diagnostics;

namespace PpcLivepatch.KernelPatching;

/// <summary>What to build a livepatch from: kernel source patches (unified diffs against the kernel tree) and the
/// build tree of the kernel they are for.</summary>
/// <param name="Patches">The <c>.patch</c> files, in order.</param>
/// <param name="KernelDirectory">The kernel's build tree: its <c>.config</c>, kbuild's <c>.o.cmd</c> records,
/// <c>vmlinux</c> or <c>System.map</c>, its modules.</param>
/// <param name="WorkDirectory">Where the copies, both compiles of each unit and the diff objects go; the original's
/// compile is kept there and reused while its text and command stay the same.</param>
public sealed record KernelPatchJob(IReadOnlyList<KernelPatchFile> Patches, string KernelDirectory,
    string WorkDirectory)
{
    /// <summary>The tree the kernel was built from, when it is not <c>KernelDir/source</c> or KernelDir
    /// itself.</summary>
    public string? KernelSource { get; init; }

    /// <summary>Headers for patch authors (the SDK's kpatch-macros.h): on the include path of the patched
    /// copies.</summary>
    public string? IncludeDirectory { get; init; }
}

/// <summary>A <c>.patch</c> file and how many leading components of its paths to strip (as <c>patch -pN</c>; 1 for
/// git's <c>a/</c>/<c>b/</c> and <c>diff -Nupr src.orig/… src/…</c>).</summary>
public sealed record KernelPatchFile(string Path, int Strip = 1);

/// <summary>Where the pipeline's findings and progress go: MSBuild's log in the SDK, the terminal in the
/// CLI.</summary>
public interface IKernelPatchLog
{
    /// <summary>A coded finding, placed where the user edits (the <c>.patch</c> line, with the C line in the
    /// message).</summary>
    void Report(Diagnostic diagnostic);

    /// <summary>A progress line; prominent ones are shown at the verbosity people build at.</summary>
    void Progress(string text, bool prominent);

    /// <summary>A line of the compiler's output: a message placed at the user's file (a patched copy's line at its
    /// <c>.patch</c> line), or null when the line is not one of gcc's messages.</summary>
    void Compiler(string line, CompilerMessage? placed);
}
