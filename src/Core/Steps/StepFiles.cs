using PpcLivepatch.Diagnostics;
using PpcLivepatch.Elf;

namespace PpcLivepatch.Steps;

/// <summary>
/// File handling shared by the steps. Failures become coded events, never exceptions; an output that a failed
/// step leaves behind is deleted, so the next incremental build does not mistake it for up to date.
/// </summary>
public static class StepFiles
{
    internal static ElfImage? Load(string path, List<StepEvent> events)
    {
        if (ElfImage.TryLoad(path, out var image, out var error)) return image;
        events.Add(StepEvent.Of(error!));
        return null;
    }

    internal static bool Write(string path, byte[] bytes, List<StepEvent> events)
    {
        try
        {
            string? dir = Path.GetDirectoryName(Path.GetFullPath(path));
            if (dir is not null) Directory.CreateDirectory(dir);
            AtomicFile.WriteAllBytes(path, bytes);
            return true;
        }
        catch (Exception e) when (IsIoFailure(e) || e is ArgumentException)
        {
            events.Add(StepEvent.Of(Diagnostic.Create(DiagnosticCatalog.UnwritableOutput, path,
                $"cannot write '{path}': {e.Message}")));
            return false;
        }
    }

    /// <summary>Writes a report next to the outputs; a report that cannot be written is a warning, not a
    /// failure.</summary>
    internal static void WriteReport(string? path, string contents, List<StepEvent> events)
    {
        if (string.IsNullOrEmpty(path)) return;
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
            AtomicFile.WriteAllBytes(path, System.Text.Encoding.UTF8.GetBytes(contents));
        }
        catch (Exception e) when (IsIoFailure(e) || e is ArgumentException)
        {
            events.Add(StepEvent.Of(Diagnostic.Create(DiagnosticCatalog.UnwritableOutput, path, "cannot write " +
                $"report '{path}': {e.Message}").Demoted()));
        }
    }

    internal static void NoteDroppedSignature(ElfImage input, string output, List<StepEvent> events)
    {
        if (ModuleSignature.Dropped(input, output) is { } warning) events.Add(StepEvent.Of(warning));
    }

    public static void DeleteIfExists(string path)
    {
        try { if (File.Exists(path)) File.Delete(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
    }

    /// <summary>A failed step leaves no outputs at all.</summary>
    internal static StepResult Finish(List<StepEvent> events, IReadOnlyList<StepObject> objects, int sitesFixed = 0)
    {
        var result = new StepResult(events, sitesFixed);
        if (!result.Succeeded)
            foreach (var o in objects) DeleteIfExists(o.Output);
        return result;
    }

    /// <summary>The exceptions a file system failure surfaces as (reported as coded diagnostics, never thrown
    /// on).</summary>
    public static bool IsIoFailure(Exception e) =>
        e is IOException or UnauthorizedAccessException or NotSupportedException;
}
