namespace PpcLivepatch.Elf;

/// <summary>The one writer of fixed-size fields in an object's byte order (ELFv2 little-endian, ELFv1
/// big-endian).</summary>
public static class ByteOrder
{
    /// <summary>Writes the low <paramref name="size"/> bytes of <paramref name="value"/> at the start of <paramref
    /// name="destination"/>.</summary>
    public static void Write(Span<byte> destination, int size, ulong value, bool littleEndian)
    {
        for (int i = 0; i < size; i++) destination[littleEndian ? i : size - 1 - i] = (byte)(value >> (8 * i));
    }
}
