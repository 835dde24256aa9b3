using System.Buffers.Binary;
using Microsoft.Win32.SafeHandles;
using static PpcLivepatch.Elf.ElfConstants;

namespace PpcLivepatch.Elf;

/// <summary>
/// The symbol table of any ELF64 file — vmlinux and other executables too, which <see cref="ElfImage"/> (relocatable
/// objects only) does not take: each symbol's name, value, st_info and section index, in table order, every offset
/// checked against the file. Only the headers, the symbol table and its string table are read (a vmlinux is mostly
/// code and debug information), and names stay bytes in the string table (offset and length).
/// </summary>
public static class ElfSymbolTable
{
    public readonly record struct Entry(int NameStart, int NameLength, ulong Value, byte Info, ushort Section)
    {
        public ulong Size { get; init; }
    }

    /// <summary>A section header as a linked image needs it: where it is loaded and where its bytes are.</summary>
    public readonly record struct Section(uint Type, ulong Flags, ulong Address, ulong Offset, ulong Size);

    /// <summary>The sections, symbols and byte order of an ELF64 file.</summary>
    public sealed record Contents(bool IsLittleEndian, IReadOnlyList<Section> Sections, List<Entry> Entries,
        byte[] Names);

    /// <returns>The entries and the string table their names point into; null with <paramref name="problem"/> when
    /// the file is no ELF64 file with a symbol table.</returns>
    public static (List<Entry> Entries, byte[] Names)? Read(SafeFileHandle file, out string? problem) =>
        ReadAll(file, out problem) is { } c ? (c.Entries, c.Names) : null;

    /// <summary>The symbol table with the section headers and byte order (to read a linked image's data by
    /// address).</summary>
    public static Contents? ReadAll(SafeFileHandle file, out string? problem)
    {
        problem = null;
        long fileLength = RandomAccess.GetLength(file);
        var header = new byte[Elf64HeaderSize];
        if (fileLength < Elf64HeaderSize || RandomAccess.Read(file, header, 0) != header.Length
            || !header.AsSpan().StartsWith("\u007fELF"u8) || header[4] != ClassElf64
                || header[5] is not (DataLsb or DataMsb))
        {
            problem = "not a 64-bit ELF file";
            return null;
        }
        bool le = header[5] == DataLsb;
        ulong U64(ReadOnlySpan<byte> b, int at) => le ? BinaryPrimitives.ReadUInt64LittleEndian(b[at..])
            : BinaryPrimitives.ReadUInt64BigEndian(b[at..]);
        uint U32(ReadOnlySpan<byte> b, int at) => le ? BinaryPrimitives.ReadUInt32LittleEndian(b[at..])
            : BinaryPrimitives.ReadUInt32BigEndian(b[at..]);
        ushort U16(ReadOnlySpan<byte> b, int at) => le ? BinaryPrimitives.ReadUInt16LittleEndian(b[at..])
            : BinaryPrimitives.ReadUInt16BigEndian(b[at..]);
        ulong shoff = U64(header, 40);
        int shentsize = U16(header, 58), shnum = U16(header, 60);
        if (shentsize != Elf64SectionHeaderSize || shoff > (ulong)fileLength
            || (ulong)shnum * Elf64SectionHeaderSize > (ulong)fileLength - shoff)
        {
            problem = "the section header table lies outside the file";
            return null;
        }
        var headers = new byte[shnum * Elf64SectionHeaderSize];
        RandomAccess.Read(file, headers, (long)shoff);
        byte[]? Bytes(int index)
        {
            var h = headers.AsSpan(index * Elf64SectionHeaderSize, Elf64SectionHeaderSize);
            ulong o = U64(h, 24), s = U64(h, 32);
            if (o > (ulong)fileLength || s > (ulong)fileLength - o || s > int.MaxValue) return null;
            var bytes = GC.AllocateUninitializedArray<byte>((int)s);
            return RandomAccess.Read(file, bytes, (long)o) == bytes.Length ? bytes : null;
        }
        for (int i = 0; i < shnum; i++)
        {
            if (U32(headers, i * Elf64SectionHeaderSize + 4) != ShtSymtab) continue;
            uint link = U32(headers, i * Elf64SectionHeaderSize + 40);
            var symbols = Bytes(i);
            var strings = link < shnum ? Bytes((int)link) : null;
            if (symbols is null || strings is null)
            {
                problem = "the symbol table or its string table lies outside the file";
                return null;
            }
            var result = new List<Entry>(symbols.Length / Elf64SymbolSize);
            for (int at = 0; at + Elf64SymbolSize <= symbols.Length; at += Elf64SymbolSize)
            {
                uint name = U32(symbols, at);
                if (name >= (uint)strings.Length)
                {
                    problem = $"symbol {at / Elf64SymbolSize} names string 0x{name:x}, past the string table";
                    return null;
                }
                int end = strings.AsSpan((int)name).IndexOf((byte)0);
                result.Add(new Entry((int)name, end < 0 ? strings.Length - (int)name : end, U64(symbols, at + 8),
                    symbols[at + 4], U16(symbols, at + 6)) { Size = U64(symbols, at + 16) });
            }
            var sections = new Section[shnum];
            for (int k = 0; k < shnum; k++)
            {
                var h = headers.AsSpan(k * Elf64SectionHeaderSize, Elf64SectionHeaderSize);
                sections[k] = new Section(U32(h, 4), U64(h, 8), U64(h, 16), U64(h, 24), U64(h, 32));
            }
            return new Contents(le, sections, result, strings);
        }
        problem = "it has no symbol table (a stripped file)";
        return null;
    }
}
