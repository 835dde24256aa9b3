using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;
using PpcLivepatch.Analysis;
using PpcLivepatch.Diagnostics;
using PpcLivepatch.Elf;

namespace PpcLivepatch.Build.Tasks;

/// <summary>
/// Common shape of the object tasks: each item of <see cref="Objects"/> is read (and validated) from its path and,
/// for transforming tasks, written to its <c>OutputFile</c> metadata atomically. A failed item leaves no output, so
/// the next incremental build does not mistake it for up to date.
/// </summary>
public abstract class LivepatchObjectTask : Microsoft.Build.Utilities.Task
{
    public sealed override bool Execute()
    {
        try
        {
            return ExecuteCore();
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // Expected failures are coded diagnostics already; this is a bug, reported as one coded line, not MSB4018.
            Log.LogError(DiagnosticLogging.Subcategory, DiagnosticCatalog.InternalError, DiagnosticCatalog.InternalError,
                (HelpLinkBase ?? DiagnosticCatalog.HelpLinkBase) + DiagnosticCatalog.InternalError + ".md", BuildEngine?.ProjectFileOfTaskNode ?? "", 0, 0, 0, 0,
                "internal error in {0} ({1}: {2}); please report it with the object file", GetType().Name, e.GetType().Name, e.Message);
            foreach (var item in Objects) DeleteIfExists(OutputOf(item));
            return false;
        }
    }

    protected abstract bool ExecuteCore();

    [Required]
    public ITaskItem[] Objects { get; set; } = [];

    public bool KernelAcceptsLdToc { get; set; }

    public bool Pcrel { get; set; }

    public string? ModuleName { get; set; }

    /// <summary>Prefix of the help links in the error list (the SDK points it at the docs shipped in the package).</summary>
    public string? HelpLinkBase { get; set; }

    protected LoaderOptions LoaderOptions => new(KernelAcceptsLdToc, Pcrel, string.IsNullOrEmpty(ModuleName) ? null : ModuleName);

    protected ElfImage? Load(string path)
    {
        if (ElfImage.TryLoad(path, out var image, out var error)) return image;
        DiagnosticLogging.Log(Log, error!, HelpLinkBase);
        return null;
    }

    protected static string OutputOf(ITaskItem item)
    {
        string output = item.GetMetadata("OutputFile");
        return string.IsNullOrEmpty(output) ? item.ItemSpec : output;
    }

    protected bool Write(string path, byte[] bytes)
    {
        try
        {
            string? dir = Path.GetDirectoryName(Path.GetFullPath(path));
            if (dir is not null) Directory.CreateDirectory(dir);
            AtomicFile.WriteAllBytes(path, bytes);
            return true;
        }
        catch (Exception e) when (DiagnosticLogging.IsIoFailure(e) || e is ArgumentException)
        {
            DiagnosticLogging.LogIoError(Log, DiagnosticCatalog.UnwritableOutput, path, e, HelpLinkBase);
            return false;
        }
    }

    protected static void DeleteIfExists(string path)
    {
        try { if (File.Exists(path)) File.Delete(path); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    /// <summary>Writes a report next to the outputs; a report that cannot be written is a warning, not a failure.</summary>
    protected void WriteReport(string? path, string contents)
    {
        if (string.IsNullOrEmpty(path)) return;
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
            AtomicFile.WriteAllBytes(path, System.Text.Encoding.UTF8.GetBytes(contents));
        }
        catch (Exception e) when (DiagnosticLogging.IsIoFailure(e) || e is ArgumentException)
        {
            Log.LogWarning(DiagnosticLogging.Subcategory, DiagnosticCatalog.UnwritableOutput, DiagnosticCatalog.UnwritableOutput, null, path, 0, 0, 0, 0,
                "cannot write report '{0}': {1}", path, e.Message);
        }
    }
}
