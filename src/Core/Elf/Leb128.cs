namespace PpcLivepatch.Elf;

/// <summary>
/// LEB128, the variable-length integers of DWARF and of clang's <c>.llvm_addrsig</c>. (DWARF's reader has
/// its own bounds-checked decoder; this one serves writers and the sections outside DWARF.)
/// </summary>
public static class Leb128
{
    public static void Append(List<byte> output, ulong value)
    {
        do
        {
            byte b = (byte)(value & 0x7f);
            value >>= 7;
            output.Add(value != 0 ? (byte)(b | 0x80) : b);
        } while (value != 0);
    }

    /// <summary>Signed LEB128 (DW_LNS_advance_line's operand).</summary>
    public static void AppendSigned(List<byte> output, long value)
    {
        while (true)
        {
            byte b = (byte)(value & 0x7f);
            value >>= 7;
            bool last = (value == 0 && (b & 0x40) == 0) || (value == -1 && (b & 0x40) != 0);
            output.Add(last ? b : (byte)(b | 0x80));
            if (last) return;
        }
    }

    /// <summary>Reads one value at <paramref name="at"/> and moves past it; a value cut off by the end reads as far as
    /// it goes.</summary>
    public static ulong Read(ReadOnlySpan<byte> data, ref int at)
    {
        ulong value = 0;
        for (int shift = 0; at < data.Length; shift += 7)
        {
            byte b = data[at++];
            if (shift < 64) value |= (ulong)(b & 0x7f) << shift;
            if ((b & 0x80) == 0) break;
        }
        return value;
    }
}
