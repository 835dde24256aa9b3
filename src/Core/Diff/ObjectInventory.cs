using PpcLivepatch.Elf;
using static PpcLivepatch.Elf.ElfConstants;

namespace PpcLivepatch.Diff;

/// <summary>A function or data object: a defined FUNC or OBJECT symbol and the bytes and relocations of its
/// range.</summary>
public sealed record ObjectEntity(ElfSymbol Symbol, ElfSection Section, ulong Start, ulong Size,
    IReadOnlyList<ElfRela> Relocations)
{
    public string Name => Symbol.Name;
    public bool IsFunction => Symbol.Type == SttFunc;
    public ulong End => Start + Size;
}

/// <summary>
/// What one object defines, by name: functions and data objects with their ranges and the relocations inside them,
/// and an index from any section offset back to the entity that holds it (what a section-symbol reference means).
/// </summary>
public sealed class ObjectInventory
{
    public ElfImage Image { get; }
    public IReadOnlyDictionary<string, ObjectEntity> ByName { get; }
    public IReadOnlyList<ObjectEntity> Entities { get; }
    private readonly Dictionary<int, ObjectEntity[]> _bySection;
    /// <summary>Each section's relocations in offset order (what <see cref="RelocationsIn"/> searches).</summary>
    private readonly Dictionary<int, ElfRela[]> _relocations = [];

    public ObjectInventory(ElfImage image)
    {
        Image = image;
        var bySection = new Dictionary<int, List<ElfRela>>();
        foreach (var rs in image.RelocationSections)
        {
            if (!bySection.TryGetValue(rs.Target.Index, out var list)) bySection[rs.Target.Index] = list = [];
            list.AddRange(rs.Entries);
        }
        foreach (var (section, list) in bySection)
        {
            list.Sort((a, b) => a.Offset.CompareTo(b.Offset));
            _relocations[section] = [.. list];
        }

        var entities = new List<ObjectEntity>();
        var byName = new Dictionary<string, ObjectEntity>(StringComparer.Ordinal);
        foreach (var sym in image.Symbols)
        {
            if (sym.Type is not (SttFunc or SttObject) || !sym.IsInSection || sym.Name.Length == 0) continue;
            if (image.SectionOrNull(sym.SectionIndex) is not { } section) continue;
            // A range past its section's end is malformed input: such a symbol is not an entity to compare or copy.
            if (sym.Value > image.ContentSize(section) || sym.Size > image.ContentSize(section) - sym.Value) continue;
            // An ELFv1 function symbol lives in .opd; its code is what the descriptor names, which this does not
            // follow: such objects are refused by the diff before the inventory matters.
            var entity = new ObjectEntity(sym, section, sym.Value, sym.Size, RelocationsIn(section, sym.Value,
                sym.Value + sym.Size));
            entities.Add(entity);
            // A global and a local of one name cannot both exist in one object; aliases keep the first.
            byName.TryAdd(sym.Name, entity);
        }
        Entities = entities;
        ByName = byName;
        // By address, the larger of two at one address first, otherwise in symbol table order.
        _bySection = entities.GroupBy(e => e.Section.Index).ToDictionary(g => g.Key,
            g => g.StableSorted((a, b) => a.Start != b.Start ? a.Start.CompareTo(b.Start) : b.Size.CompareTo(a.Size)));
    }

    /// <summary>The relocations applying to bytes [from, to) of a section, in offset order (a view, not a
    /// copy: asked once per entity and once per TOC reference, a copy each time was a fifth of a small diff's
    /// memory).</summary>
    public IReadOnlyList<ElfRela> RelocationsIn(ElfSection section, ulong from, ulong to)
    {
        if (!_relocations.TryGetValue(section.Index, out var all)) return [];
        int first = FirstAtOrAfter(all, from), end = first;
        while (end < all.Length && all[end].Offset < to) end++;
        return new ArraySegment<ElfRela>(all, first, end - first);
    }

    public IReadOnlyList<ElfRela> RelocationsOf(ElfSection section) =>
        _relocations.TryGetValue(section.Index, out var all) ? all : [];

    private static int FirstAtOrAfter(ElfRela[] sorted, ulong offset)
    {
        int lo = 0, hi = sorted.Length;
        while (lo < hi)
        {
            int mid = (lo + hi) >>> 1;
            if (sorted[mid].Offset < offset) lo = mid + 1; else hi = mid;
        }
        return lo;
    }

    /// <summary>The entity whose range holds <paramref name="offset"/> of a section (a zero-size symbol only at its
    /// own address).</summary>
    public ObjectEntity? At(int sectionIndex, ulong offset)
    {
        if (!_bySection.TryGetValue(sectionIndex, out var list)) return null;
        ObjectEntity? best = null;
        foreach (var e in list)
        {
            if (e.Start > offset) break;
            if (offset < e.End || (e.Size == 0 && offset == e.Start)) best = e;
        }
        return best;
    }

    /// <summary>Whether two entities hold the same bytes (zero-filled ones: all zeros), compared in place.</summary>
    public static bool SameBytes(ObjectInventory a, ObjectEntity x, ObjectInventory b, ObjectEntity y)
    {
        if (x.Size != y.Size) return false;
        bool xZero = x.Section.Type == ShtNobits, yZero = y.Section.Type == ShtNobits;
        if (xZero && yZero) return true;
        if (xZero) return !b.Span(y).ContainsAnyExcept((byte)0);
        if (yZero) return !a.Span(x).ContainsAnyExcept((byte)0);
        return a.Span(x).SequenceEqual(b.Span(y));
    }

    /// <summary>The bytes of an entity that has some in the file (not a zero-filled one).</summary>
    public ReadOnlySpan<byte> Span(ObjectEntity e) => Image.Data(e.Section).Slice((int)e.Start, (int)e.Size);

    public byte[] Bytes(ObjectEntity e) => e.Section.Type == ShtNobits ? new byte[e.Size] : Span(e).ToArray();
}
