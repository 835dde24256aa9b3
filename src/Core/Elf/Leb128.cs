namespace PpcLivepatch.Elf;

/// <summary>
/// Unsigned LEB128, the variable-length integers of DWARF and of clang's <c>.llvm_addrsig</c>. (DWARF's reader has
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

    /// <summary>Reads one value at <paramref name="at"/> and moves past it; a value cut off by the end reads as far as it goes.</summary>
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
