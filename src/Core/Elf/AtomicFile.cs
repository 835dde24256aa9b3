namespace PpcLivepatch.Elf;

/// <summary>
/// Writes a file so that readers see either the old bytes or all of the new ones: write a temporary file in the
/// same directory, then rename it over the destination (rename is atomic on POSIX file systems).
/// </summary>
public static class AtomicFile
{
    /// <param name="durable">Flush the bytes to disk before the rename, so that a crash cannot leave an empty file
    /// where the old one was: for rewriting a user's file in place. Build outputs, which the next build regenerates,
    /// skip it, as compilers and linkers do.</param>
    public static void WriteAllBytes(string path, ReadOnlySpan<byte> bytes, bool durable = true)
    {
        string full = Path.GetFullPath(path);
        string dir = Path.GetDirectoryName(full) ?? ".";
        string temp = Path.Combine(dir, $".{Path.GetFileName(full)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var fs = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                fs.Write(bytes);
                fs.Flush(flushToDisk: durable);
            }
            File.Move(temp, full, overwrite: true);
        }
        catch
        {
            TryDelete(temp);
            throw;
        }
    }

    private static void TryDelete(string path)
    {
        try { File.Delete(path); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
