using System.Text;

namespace PpcLivepatch.Dwarf;

/// <summary>Thrown for DWARF that cannot be decoded; callers degrade to "no source location".</summary>
public sealed class DwarfFormatException(string message) : Exception(message);

/// <summary>A bounds-checked little/big-endian cursor over one DWARF section.</summary>
internal ref struct DwarfReader
{
    private readonly ReadOnlySpan<byte> _data;
    private readonly bool _le;

    public DwarfReader(ReadOnlySpan<byte> data, bool littleEndian, int position = 0)
    {
        _data = data;
        _le = littleEndian;
        Position = position;
    }

    public int Position { get; set; }
    public int Length => _data.Length;
    public bool AtEnd => Position >= _data.Length;

    public byte U8() { Need(1); return _data[Position++]; }
    public sbyte S8() => (sbyte)U8();
    public ushort U16() => (ushort)Fixed(2);
    public uint U32() => (uint)Fixed(4);
    public ulong U64() => Fixed(8);

    public ulong Fixed(int size)
    {
        Need(size);
        ulong v = 0;
        for (int i = 0; i < size; i++)
        {
            int index = _le ? size - 1 - i : i;
            v = (v << 8) | _data[Position + index];
        }
        Position += size;
        return v;
    }

    public ulong Uleb()
    {
        ulong result = 0;
        for (int shift = 0; ; shift += 7)
        {
            byte b = U8();
            if (shift < 64) result |= (ulong)(b & 0x7f) << shift;
            if ((b & 0x80) == 0) return result;
            if (shift > 70) throw new DwarfFormatException("ULEB128 value is too long");
        }
    }

    public long Sleb()
    {
        long result = 0;
        int shift = 0;
        byte b;
        do
        {
            b = U8();
            if (shift < 64) result |= (long)(b & 0x7f) << shift;
            shift += 7;
            if (shift > 77) throw new DwarfFormatException("SLEB128 value is too long");
        } while ((b & 0x80) != 0);
        if (shift < 64 && (b & 0x40) != 0) result |= -1L << shift;
        return result;
    }

    public string CString()
    {
        var rest = _data[Position..];
        int end = rest.IndexOf((byte)0);
        if (end < 0) throw new DwarfFormatException($"unterminated string at 0x{Position:x}");
        Position += end + 1;
        return Encoding.UTF8.GetString(rest[..end]);
    }

    public void Skip(ulong count)
    {
        if (count > (ulong)(_data.Length - Position)) throw new DwarfFormatException($"skip of {count} bytes at " +
            $"0x{Position:x} runs past the section");
        Position += (int)count;
    }

    private readonly void Need(int size)
    {
        if (Position < 0 || Position > _data.Length - size)
            throw new DwarfFormatException($"read of {size} bytes at 0x{Position:x} runs past the " +
                $"{_data.Length}-byte section");
    }

    public static string CStringAt(ReadOnlySpan<byte> data, ulong offset)
    {
        if (offset >= (ulong)data.Length) throw new DwarfFormatException($"string offset 0x{offset:x} is outside its " +
            $"{data.Length}-byte section");
        var rest = data[(int)offset..];
        int end = rest.IndexOf((byte)0);
        if (end < 0) throw new DwarfFormatException($"unterminated string at 0x{offset:x}");
        return Encoding.UTF8.GetString(rest[..end]);
    }
}
