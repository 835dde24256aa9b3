using System.Buffers.Binary;
using PpcLivepatch.Diagnostics;

namespace PpcLivepatch.Elf;

/// <summary>
/// Reads an object file for <see cref="ElfImage"/>: only regular files (a FIFO would block, a device never ends), and
/// of a large file only what its ELF headers say the object occupies — a 1.5 GB sparse file whose object is a few
/// kilobytes costs a few kilobytes. Every way of reading goes through here, so verify and patch say the same thing.
/// </summary>
internal static class ObjectFileReader
{
    /// <summary>Files up to this size are read whole (one read, the trailing bytes a signature needs
    /// included).</summary>
    internal const long WholeFileLimit = 64L << 20;

    private const int HeaderSize = 64, SectionHeaderSize = 64, MaxSections = 1 << 20;

    /// <summary>Reads <paramref name="path"/> into <paramref name="buffer"/> (grown when too small); the object is its
    /// first <paramref name="length"/> bytes.</summary>
    public static bool TryRead(string path, ref byte[]? buffer, out int length, out Diagnostic? error)
    {
        length = 0;
        error = null;
        var kind = FileKinds.Of(path);
        if (kind is FileKind.Fifo or FileKind.CharacterDevice or FileKind.BlockDevice or FileKind.Socket)
        {
            error = Unreadable(path, $"it is {FileKinds.Describe(kind)}, not a regular file");
            return false;
        }
        try
        {
            using var handle = File.OpenHandle(path);
            long size = RandomAccess.GetLength(handle);
            long wanted = size <= WholeFileLimit ? size
                : ExtentFromHeaders(path, handle, size, out error);
            if (error is not null) return false;
            if (wanted > Array.MaxLength)
            {
                error = Unreadable(path,
                    $"the object is {wanted} bytes; objects of more than {Array.MaxLength} bytes are not supported");
                return false;
            }
            length = (int)wanted;
            // Uninitialised: the read fills it, and only what was read is used (zeroing 238 MiB of modules cost more
            // than reading them).
            if (buffer is null || buffer.Length < length) buffer = GC.AllocateUninitializedArray<byte>(length);
            length = ReadAt(handle, buffer.AsSpan(0, length), 0);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException
                                       or ArgumentException)
        {
            error = Unreadable(path, e.Message);
            return false;
        }
    }

    /// <summary>
    /// The bytes a large file's object occupies: the ELF header, the section header table, every section with file
    /// data. Anything that is not a plausible ELF64 header yields the header alone, for the parser to name.
    /// </summary>
    private static long ExtentFromHeaders(string path, Microsoft.Win32.SafeHandles.SafeFileHandle handle, long size,
        out Diagnostic? error)
    {
        error = null;
        Span<byte> h = stackalloc byte[HeaderSize];
        ReadAt(handle, h, 0);
        if (!h.StartsWith("\u007fELF"u8) || h[4] != 2 || h[5] is not (1 or 2)) return HeaderSize;
        bool le = h[5] == 1;
        ulong shoff = Field(h, 40, le);
        ushort shentsize = Half(h, 58, le);
        ulong shnum = Half(h, 60, le);
        if (shentsize != SectionHeaderSize || shoff == 0) return HeaderSize;
        var first = new byte[SectionHeaderSize];
        if (shoff > (ulong)size - SectionHeaderSize)
            return PastTheEnd(path, "the section header table", size, out error);
        ReadAt(handle, first, (long)shoff);
        if (shnum == 0) shnum = Field(first, 32, le);   // extended numbering: the count is sh_size of section 0
        // More sections than SHN_LORESERVE-style indices can name (and than any object has): not read into memory.
        if (shnum > MaxSections)
        {
            error = Diagnostic.Create(DiagnosticCatalog.MalformedSectionTable, path,
                $"the section header table claims {shnum} sections; more than {MaxSections} is not a real object");
            return 0;
        }
        if (shnum > ((ulong)size - shoff) / SectionHeaderSize)
            return PastTheEnd(path, "the section header table", size, out error);
        ulong extent = shoff + shnum * SectionHeaderSize;
        var table = new byte[(int)(shnum * SectionHeaderSize)];
        ReadAt(handle, table, (long)shoff);
        for (int i = 1; i < (int)shnum; i++)
        {
            var sh = table.AsSpan(i * SectionHeaderSize, SectionHeaderSize);
            uint type = le ? BinaryPrimitives.ReadUInt32LittleEndian(sh[4..])
                : BinaryPrimitives.ReadUInt32BigEndian(sh[4..]);
            if (type is ElfConstants.ShtNobits or ElfConstants.ShtNull) continue;
            ulong offset = Field(sh, 24, le), length = Field(sh, 32, le);
            if (offset > (ulong)size || length > (ulong)size - offset)
                return PastTheEnd(path, $"section {i}", size, out error);
            extent = Math.Max(extent, offset + length);
        }
        return (long)extent;
    }

    private static ushort Half(ReadOnlySpan<byte> b, int at, bool le) =>
        le ? BinaryPrimitives.ReadUInt16LittleEndian(b[at..]) : BinaryPrimitives.ReadUInt16BigEndian(b[at..]);

    private static ulong Field(ReadOnlySpan<byte> b, int at, bool le) =>
        le ? BinaryPrimitives.ReadUInt64LittleEndian(b[at..]) : BinaryPrimitives.ReadUInt64BigEndian(b[at..]);

    private static long PastTheEnd(string path, string what, long size, out Diagnostic? error)
    {
        error = Diagnostic.Create(DiagnosticCatalog.MalformedSectionTable, path,
            $"{what} extends past the end of the file ({size} bytes)");
        return 0;
    }

    private static int ReadAt(Microsoft.Win32.SafeHandles.SafeFileHandle handle, Span<byte> into, long offset)
    {
        int read = 0;
        while (read < into.Length)
        {
            int n = RandomAccess.Read(handle, into[read..], offset + read);
            if (n == 0) break;   // truncated while we read it
            read += n;
        }
        return read;
    }

    private static Diagnostic Unreadable(string path, string why) =>
        Diagnostic.Create(DiagnosticCatalog.UnreadableFile, path, $"cannot read '{path}': {why}");
}
