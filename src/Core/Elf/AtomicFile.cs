namespace PpcLivepatch.Elf;

/// <summary>
/// Writes a file so that readers see either the old bytes or all of the new ones: write a temporary file in the
/// same directory, then rename it over the destination (rename is atomic on POSIX file systems). A symbolic link is
/// followed (the file it names is replaced, the link stays); a character device or FIFO (<c>-o /dev/stdout</c>) is
/// written through, since renaming over it would replace the device node.
/// </summary>
public static class AtomicFile
{
    /// <param name="durable">Flush the bytes to disk before the rename, so that a crash cannot leave an empty file
    /// where the old one was: for rewriting a user's file in place, the one copy of its bytes. Outputs made from
    /// other files, which the next build or run makes again, skip it, as compilers and linkers do (on this
    /// project's machines the flush was ten milliseconds, a third of a whole <c>diff</c>).</param>
    /// <param name="modeOf">A new file gets this file's permissions (objcopy's rule: the output of a rewrite is
    /// as executable or private as its input); an existing destination keeps its own.</param>
    /// <exception cref="IOException">Also for a destination that is a directory, a block device or a
    /// socket.</exception>
    public static void WriteAllBytes(string path, ReadOnlySpan<byte> bytes, bool durable = false, string? modeOf = null)
    {
        string full = FollowLinks(Path.GetFullPath(path));
        var kind = FileKinds.Of(full);
        if (kind is FileKind.CharacterDevice or FileKind.Fifo)
        {
            using var device = new FileStream(full, FileMode.Open, FileAccess.Write, FileShare.ReadWrite, 1,
                FileOptions.None);
            device.Write(bytes);
            return;
        }
        if (kind is FileKind.Directory or FileKind.BlockDevice or FileKind.Socket)
            throw new IOException($"it is {FileKinds.Describe(kind)}, not a regular file");

        UnixFileMode? mode = null;
        if (!OperatingSystem.IsWindows())
        {
            string? from = kind == FileKind.Regular ? full : modeOf;
            if (from is not null && File.Exists(from)) mode = File.GetUnixFileMode(from);
        }
        string dir = Path.GetDirectoryName(full) ?? ".";
        string temp = Path.Combine(dir, $".{Path.GetFileName(full)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var fs = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                fs.Write(bytes);
                fs.Flush(flushToDisk: durable);
            }
            if (mode is { } m && !OperatingSystem.IsWindows()) File.SetUnixFileMode(temp, m);
            File.Move(temp, full, overwrite: true);
        }
        catch
        {
            TryDelete(temp);
            throw;
        }
    }

    /// <summary>Whether writing <paramref name="path"/> replaces <paramref name="other"/>: the same file once
    /// symbolic links are followed, as the write follows them. When that cannot be told, yes (a flush too many costs
    /// time, one too few can cost a user's only copy).</summary>
    public static bool Replaces(string path, string other)
    {
        try { return FollowLinks(Path.GetFullPath(path)) == FollowLinks(Path.GetFullPath(other)); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return true; }
    }

    /// <summary>The file a chain of symbolic links ends at (which need not exist yet).</summary>
    private static string FollowLinks(string path)
    {
        for (int hops = 0; hops < 40; hops++)
        {
            var info = new FileInfo(path);
            if (info.LinkTarget is not { } target) return path;
            path = Path.GetFullPath(target, Path.GetDirectoryName(path) ?? "/");
        }
        throw new IOException("too many levels of symbolic links");
    }

    private static void TryDelete(string path)
    {
        try { File.Delete(path); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
