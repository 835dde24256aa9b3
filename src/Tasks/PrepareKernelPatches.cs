using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;
using PpcLivepatch.Diagnostics;
using PpcLivepatch.KernelPatching;

namespace PpcLivepatch.Build.Tasks;

/// <summary>
/// From <c>KernelPatch</c> items to what the kbuild step links: the <see cref="KernelPatchPipeline"/> (the one
/// <c>ppc-livepatch kernel-patch</c> runs) with MSBuild's log. Writes the manifest of what it made, which
/// <see cref="ReadKernelPatchManifest"/> turns back into items when MSBuild skips this step as up to date.
/// </summary>
public sealed class PrepareKernelPatches : PpcLivepatchTask, IKernelPatchLog
{
    [Required] public ITaskItem[] Patches { get; set; } = [];
    [Required] public string KernelDirectory { get; set; } = "";
    public string KernelSource { get; set; } = "";
    [Required] public string WorkDirectory { get; set; } = "";
    /// <summary>The SDK's headers for patch authors (kpatch-macros.h): on the include path of the patched
    /// copies.</summary>
    public string IncludeDirectory { get; set; } = "";
    [Required] public string Manifest { get; set; } = "";

    protected internal override string FailureFile => KernelDirectory;

    protected internal override string FailureWhat => "preparing the kernel patches";

    protected override bool ExecuteCore()
    {
        var patches = new List<KernelPatchFile>();
        foreach (var item in Patches)
        {
            string strip = item.GetMetadata("Strip");
            if (!int.TryParse(string.IsNullOrEmpty(strip) ? "1" : strip, System.Globalization.NumberStyles.None,
                    System.Globalization.CultureInfo.InvariantCulture, out int n))
            {
                var (file, line) = ProjectItemLocation.Of(item, "KernelPatch",
                    BuildEngine?.ProjectFileOfTaskNode ?? "");
                DiagnosticLogging.Log(Log, DiagnosticCatalog.UsageError, HelpLinkBase, file, line, 0,
                    $"KernelPatch '{item.ItemSpec}' has Strip '{strip}': the number of leading path components to " +
                        "strip, as patch -pN (0, or 1 for git's a/ and b/)");
                continue;
            }
            patches.Add(new KernelPatchFile(item.GetMetadata("FullPath"), n));
        }
        if (Log.HasLoggedErrors) return false;
        var job = new KernelPatchJob(patches, KernelDirectory, WorkDirectory)
        {
            KernelSource = string.IsNullOrEmpty(KernelSource) ? null : KernelSource,
            IncludeDirectory = string.IsNullOrEmpty(IncludeDirectory) ? null : IncludeDirectory,
        };
        return new KernelPatchPipeline(job, this).Run(Manifest) is not null && !Log.HasLoggedErrors;
    }

    void IKernelPatchLog.Report(Diagnostic diagnostic) => DiagnosticLogging.Log(Log, diagnostic, HelpLinkBase);

    void IKernelPatchLog.Progress(string text, bool prominent) =>
        Log.LogMessage(prominent ? MessageImportance.High : MessageImportance.Normal, "{0}", text);

    void IKernelPatchLog.Compiler(string line, CompilerMessage? placed)
    {
        if (placed is null || !GccOutput.Log(Log, BuildEngine, placed, HelpLinkBase))
            Log.LogMessage(MessageImportance.Normal, "{0}", line);
    }
}

/// <summary>The items <see cref="PrepareKernelPatches"/> made, read back from its manifest — on every build, so a
/// build that skips the preparation as up to date links the same objects and binds the same symbols.</summary>
public sealed class ReadKernelPatchManifest : PpcLivepatchTask
{
    [Required] public string Manifest { get; set; } = "";

    [Output] public ITaskItem[] Objects { get; private set; } = [];
    [Output] public ITaskItem[] KlpSymbols { get; private set; } = [];
    [Output] public string Registration { get; private set; } = "";

    protected internal override string FailureFile => Manifest;

    protected internal override string FailureWhat => $"reading '{Manifest}'";

    protected override bool ExecuteCore()
    {
        if (KernelPatchManifest.Read(File.ReadAllBytes(Manifest), out string? error) is not { } manifest)
        {
            DiagnosticLogging.Log(Log, Diagnostic.Create(DiagnosticCatalog.UnreadableFile, Manifest,
                $"'{Manifest}' is not a manifest PrepareKernelPatches wrote ({error}): delete it and build again"),
                HelpLinkBase);
            return false;
        }
        Registration = manifest.Registration;
        Objects = [.. manifest.Objects.Select(o => new TaskItem(o))];
        KlpSymbols = [.. manifest.KlpSymbols.Select(b =>
        {
            var symbol = new TaskItem(b.Name);
            symbol.SetMetadata("Object", b.Object);
            symbol.SetMetadata("Position", b.Position.ToString(System.Globalization.CultureInfo.InvariantCulture));
            return (ITaskItem)symbol;
        })];
        return true;
    }
}
