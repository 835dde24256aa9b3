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
    private readonly Dictionary<int, List<ElfRela>> _relocations = [];

    public ObjectInventory(ElfImage image)
    {
        Image = image;
        foreach (var rs in image.RelocationSections)
        {
            if (!_relocations.TryGetValue(rs.Target.Index, out var list)) _relocations[rs.Target.Index] = list = [];
            list.AddRange(rs.Entries);
        }
        foreach (var list in _relocations.Values) list.Sort((a, b) => a.Offset.CompareTo(b.Offset));

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
        _bySection = entities.GroupBy(e => e.Section.Index)
            .ToDictionary(g => g.Key, g => g.OrderBy(e => e.Start).ThenByDescending(e => e.Size).ToArray());
    }

    /// <summary>The relocations applying to bytes [from, to) of a section, in offset order.</summary>
    public IReadOnlyList<ElfRela> RelocationsIn(ElfSection section, ulong from, ulong to) =>
        _relocations.TryGetValue(section.Index, out var all)
            ? all.Where(r => r.Offset >= from && r.Offset < to).ToList()
            : [];

    public IReadOnlyList<ElfRela> RelocationsOf(ElfSection section) =>
        _relocations.TryGetValue(section.Index, out var all) ? all : [];

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

    public byte[] Bytes(ObjectEntity e) =>
        e.Section.Type == ShtNobits ? new byte[e.Size] : Image.Data(e.Section).Slice((int)e.Start, (int)e.Size)
            .ToArray();
}
