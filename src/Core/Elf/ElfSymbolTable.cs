using System.Buffers.Binary;
using System.Text;
using static PpcLivepatch.Elf.ElfConstants;

namespace PpcLivepatch.Elf;

/// <summary>
/// The symbol table of any ELF64 file — vmlinux and other executables too, which <see cref="ElfImage"/> (relocatable
/// objects only) does not take: each symbol's name, value, st_info and section index, in table order, every offset
/// checked against the file.
/// </summary>
public static class ElfSymbolTable
{
    public static List<(string Name, ulong Value, byte Info, ushort Section)>? Read(ReadOnlyMemory<byte> memory,
        out string? problem)
    {
        var file = memory.Span;
        problem = null;
        if (file.Length < Elf64HeaderSize || file[4] != ClassElf64 || file[5] is not (DataLsb or DataMsb))
        {
            problem = "not a 64-bit ELF file";
            return null;
        }
        bool le = file[5] == DataLsb;
        ulong U64(ReadOnlySpan<byte> b, int at) => le ? BinaryPrimitives.ReadUInt64LittleEndian(b[at..])
            : BinaryPrimitives.ReadUInt64BigEndian(b[at..]);
        uint U32(ReadOnlySpan<byte> b, int at) => le ? BinaryPrimitives.ReadUInt32LittleEndian(b[at..])
            : BinaryPrimitives.ReadUInt32BigEndian(b[at..]);
        ushort U16(ReadOnlySpan<byte> b, int at) => le ? BinaryPrimitives.ReadUInt16LittleEndian(b[at..])
            : BinaryPrimitives.ReadUInt16BigEndian(b[at..]);
        ulong shoff = U64(file, 40);
        int shentsize = U16(file, 58), shnum = U16(file, 60);
        if (shentsize != Elf64SectionHeaderSize || shoff > (ulong)file.Length
            || (ulong)shnum * Elf64SectionHeaderSize > (ulong)file.Length - shoff)
        {
            problem = "the section header table lies outside the file";
            return null;
        }
        ReadOnlySpan<byte> Header(int i) =>
            memory.Span.Slice((int)shoff + i * Elf64SectionHeaderSize, Elf64SectionHeaderSize);
        bool Contents(ReadOnlySpan<byte> h, out int offset, out int size)
        {
            ulong o = U64(h, 24), s = U64(h, 32), length = (ulong)memory.Length;
            offset = (int)Math.Min(o, int.MaxValue);
            size = (int)Math.Min(s, int.MaxValue);
            return o <= length && s <= length - o;
        }
        for (int i = 0; i < shnum; i++)
        {
            var h = Header(i);
            if (U32(h, 4) != ShtSymtab) continue;
            uint link = U32(h, 40);
            if (link >= shnum || !Contents(h, out int symOffset, out int symSize)
                || !Contents(Header((int)link), out int strOffset, out int strSize))
            {
                problem = "the symbol table or its string table lies outside the file";
                return null;
            }
            var symbols = file.Slice(symOffset, symSize);
            var strings = file.Slice(strOffset, strSize);
            var result = new List<(string, ulong, byte, ushort)>(symSize / Elf64SymbolSize);
            for (int at = 0; at + Elf64SymbolSize <= symbols.Length; at += Elf64SymbolSize)
            {
                uint name = U32(symbols, at);
                if (name >= (uint)strings.Length)
                {
                    problem = $"symbol {at / Elf64SymbolSize} names string 0x{name:x}, past the string table";
                    return null;
                }
                var rest = strings[(int)name..];
                int end = rest.IndexOf((byte)0);
                result.Add((Encoding.UTF8.GetString(end < 0 ? rest : rest[..end]), U64(symbols, at + 8),
                    symbols[at + 4], U16(symbols, at + 6)));
            }
            return result;
        }
        problem = "it has no symbol table (a stripped file)";
        return null;
    }
}
