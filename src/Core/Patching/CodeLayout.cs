namespace PpcLivepatch.Patching;

/// <summary>
/// How a strategy changed one code section, as an address map: what the DWARF and CFI rewriters and the translation
/// validator follow, whichever strategy made it. Inserted nops at points P (bl+4) move every address A to
/// A + 4·#{P ≤ A}; islands move nothing, and the function that ended at <see cref="OldEnd"/> now ends at
/// <see cref="NewEnd"/>, past its islands.
/// </summary>
public sealed class CodeLayout
{
    private readonly ulong[] _points;

    private CodeLayout(int section, ulong[] points, IReadOnlyList<(ulong Call, ulong Island)> islands, ulong oldEnd,
        ulong newEnd)
    {
        Section = section;
        _points = points;
        Islands = islands;
        OldEnd = oldEnd;
        NewEnd = newEnd;
    }

    /// <summary>Nops inserted at <paramref name="points"/> (bl+4 of each call).</summary>
    public static CodeLayout InsertedNops(int section, IEnumerable<ulong> points) =>
        new(section, points.Distinct().Order().ToArray(), [], 0, 0);

    /// <summary>Islands appended after a function that ended at <paramref name="oldEnd"/>; it now ends at <paramref
    /// name="newEnd"/>.</summary>
    public static CodeLayout WithIslands(int section, IReadOnlyList<(ulong Call, ulong Island)> islands, ulong oldEnd,
        ulong newEnd) =>
        new(section, [], islands, oldEnd, newEnd);

    public int Section { get; }

    /// <summary>The insertion points, sorted; empty for islands.</summary>
    public IReadOnlyList<ulong> Points => _points;

    /// <summary>Each redirected call and its island; empty for inserted nops.</summary>
    public IReadOnlyList<(ulong Call, ulong Island)> Islands { get; }

    public bool MovesCode => _points.Length > 0;

    /// <summary>Where the function with islands ended, and ends now (both 0 when nothing grew).</summary>
    public ulong OldEnd { get; }
    public ulong NewEnd { get; }

    /// <summary>
    /// The new address of an old one. An address inside an instruction is what GCC writes as "label - k" (a range that
    /// ends at a call's return address minus one): it keeps its distance to the next instruction boundary.
    /// </summary>
    public ulong Map(ulong address)
    {
        if ((address & 3) != 0)
        {
            ulong up = (address + 3) & ~3UL;
            return MapAligned(up) - (up - address);
        }
        return MapAligned(address);
    }

    private ulong MapAligned(ulong address)
    {
        int i = Array.BinarySearch(_points, address);
        int moved = i >= 0 ? UpperBound(i, address) : ~i;
        return address + 4UL * (ulong)moved;
    }

    private int UpperBound(int found, ulong address)
    {
        while (found < _points.Length && _points[found] <= address) found++;
        return found;
    }

    /// <summary>True when a nop goes in strictly inside (<paramref name="start"/>, <paramref name="end"/>).</summary>
    public bool SplitsRange(ulong start, ulong end)
    {
        int i = Array.BinarySearch(_points, start + 1);
        if (i < 0) i = ~i;
        return i < _points.Length && _points[i] < end;
    }
}
