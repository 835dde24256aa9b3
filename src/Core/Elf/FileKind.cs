using System.Runtime.InteropServices;

namespace PpcLivepatch.Elf;

/// <summary>What a path names once symbolic links are followed: objects are read from and written to regular
/// files; a FIFO or a device must be recognised before it is opened (opening a FIFO waits for the other
/// end).</summary>
public enum FileKind { Missing, Regular, Directory, Fifo, CharacterDevice, BlockDevice, Socket, Unknown }

public static partial class FileKinds
{
    /// <summary>The kind of the file <paramref name="path"/> names, following symbolic links;
    /// <see cref="FileKind.Unknown"/> where the C library cannot tell (not Linux), in which case callers go on as
    /// for a regular file.</summary>
    public static FileKind Of(string path)
    {
        if (!OperatingSystem.IsLinux())
            return Directory.Exists(path) ? FileKind.Directory
                : File.Exists(path) ? FileKind.Regular
                : FileKind.Unknown;
        // statx has one layout on every Linux architecture (stat does not): stx_mode is the u16 at offset 28.
        var buffer = new byte[256];
        try
        {
            if (Statx(AtFdCwd, path, 0, StatxType, buffer) != 0)
                return Marshal.GetLastPInvokeError() == 2 /* ENOENT */ ? FileKind.Missing : FileKind.Unknown;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return FileKind.Unknown;
        }
        int mode = BitConverter.ToUInt16(buffer, 28) & 0xF000;
        return mode switch
        {
            0x8000 => FileKind.Regular,
            0x4000 => FileKind.Directory,
            0x1000 => FileKind.Fifo,
            0x2000 => FileKind.CharacterDevice,
            0x6000 => FileKind.BlockDevice,
            0xC000 => FileKind.Socket,
            _ => FileKind.Unknown,
        };
    }

    /// <summary>"a FIFO", "a character device", … for messages.</summary>
    public static string Describe(FileKind kind) => kind switch
    {
        FileKind.Fifo => "a FIFO",
        FileKind.CharacterDevice => "a character device",
        FileKind.BlockDevice => "a block device",
        FileKind.Socket => "a socket",
        FileKind.Directory => "a directory",
        FileKind.Missing => "missing",
        _ => "not a regular file",
    };

    private const int AtFdCwd = -100;
    private const uint StatxType = 1;

    [LibraryImport("libc", EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Statx(int dirfd, string path, int flags, uint mask, [Out] byte[] buffer);
}
