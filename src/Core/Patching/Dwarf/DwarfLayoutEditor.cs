using PpcLivepatch.Dwarf;
using PpcLivepatch.Elf;
using static PpcLivepatch.Elf.ElfConstants;

namespace PpcLivepatch.Patching;

/// <summary>
/// The DWARF side of a rewrite, from the strategies' <see cref="CodeLayout"/>s: what debug information stores as data
/// rather than as relocations, for code that moved. <c>.debug_line</c> address advances are re-encoded (…Line.cs);
/// <c>.debug_aranges</c> lengths (…Aranges.cs), <c>DW_AT_high_pc</c> lengths (…Info.cs), DWARF 5 range/location list
/// offsets, lengths and offset tables (…Lists.cs) and DWARF 4 list pairs (…Dwarf4Lists.cs) are mapped; ULEB fields
/// may grow, and then everything that points into a list section follows (<see cref="Rewrite"/>). Addresses that
/// carry relocations (low_pc, DW_LNE_set_address, <c>.debug_addr</c> entries) follow through their addends, which
/// <see cref="InsertNopEditor"/> maps. Islands get a line sequence each and grow the ranges that ended with their
/// function.
/// </summary>
internal sealed partial class DwarfLayoutEditor
{
    /// <summary>Debug sections whose references to moved code this editor (with the relocation addends) keeps
    /// right.</summary>
    public static readonly HashSet<string> Understood =
        [".debug_info", ".debug_line", ".debug_aranges", ".debug_rnglists", ".debug_loclists", ".debug_ranges",
            ".debug_loc", ".debug_frame",
         ".debug_addr"];

    private readonly ElfImage _image;
    private readonly Dictionary<int, CodeLayout> _moved;      // sections whose code moved
    private readonly List<IslandLine> _islands;
    private readonly Dictionary<int, CodeLayout> _grown;        // sections whose function grew over islands
    // The rewrite as edits to replay on a container: the check that decides whether a section can take inserted nops
    // computes it, and the patch applies the same edits instead of decoding the DWARF a second time.
    private readonly List<Action<ElfContainer>> _edits = [];

    private DwarfLayoutEditor(ElfImage image, IReadOnlyList<CodeLayout> layouts)
    {
        _image = image;
        _moved = layouts.Where(l => l.MovesCode).ToDictionary(l => l.Section);
        _grown = layouts.Where(l => l.Islands.Count > 0).ToDictionary(l => l.Section);
        _islands = layouts.SelectMany(l => l.Islands.Select(i => new IslandLine(l.Section, i.Call, i.Island))).ToList();
    }

    /// <summary>The DWARF edits for one set of changed sections.</summary>
    internal sealed record Plan(IReadOnlyList<Action<ElfContainer>> Edits);

    /// <summary>An island at <paramref name="Island"/> of a code section, standing for the call at <paramref
    /// name="Call"/>.</summary>
    private readonly record struct IslandLine(int Section, ulong Call, ulong Island);

    /// <summary>
    /// Installs the DWARF side of a patch: the layout changes of the sections that took nops, and for islands a line
    /// row each (the call's row) and the function's and CU's address ranges grown over them, so addr2line and debuggers
    /// name the call's line inside an island. <paramref name="checkedPlan"/> is the plan the eligibility check computed
    /// for exactly these layouts, if any. Returns why islands could not be described, or null — that is debug
    /// information only, never a reason to refuse the patch.
    /// </summary>
    public static string? Apply(ElfImage image, ElfContainer container, IReadOnlyList<CodeLayout> layouts,
        Plan? checkedPlan)
    {
        if (layouts.Count == 0) return null;
        Plan plan;
        if (checkedPlan is not null) plan = checkedPlan;
        else if (!layouts.Any(l => l.MovesCode))
        {
            // Islands only: nothing moved, so only line rows and ranges are touched.
            try { plan = Compute(image, layouts); }
            catch (Exception e) when (e is DwarfFormatException or OverflowException or ArgumentOutOfRangeException
                or IndexOutOfRangeException)
            {
                return "the islands have no line rows or address ranges: the debug information cannot be rewritten: " +
                    $"{e.Message}";
            }
        }
        else plan = Compute(image, layouts);
        foreach (var edit in plan.Edits) edit(container);
        return null;
    }

    /// <summary>Computes the rewrite for one section: why it cannot be done, or null and the plan.</summary>
    public static string? Check(ElfImage image, CodeLayout layout, out Plan? plan)
    {
        try
        {
            plan = Compute(image, [layout]);
            return null;
        }
        catch (Exception e) when (e is DwarfFormatException or OverflowException or ArgumentOutOfRangeException
            or IndexOutOfRangeException or KeyNotFoundException)
        {
            plan = null;
            return $"its debug information cannot be rewritten: {e.Message}";
        }
    }

    private static Plan Compute(ElfImage image, IReadOnlyList<CodeLayout> layouts)
    {
        var editor = new DwarfLayoutEditor(image, layouts);
        editor.Run();
        return new Plan(editor._edits);
    }

    private void SetSectionData(int section, byte[] data) => _edits.Add(c => c.SetSectionData(section, data));

    private void Run()
    {
        Line();
        Aranges();
        Info();     // before the lists: it finds the CU base address they may rely on
        Lists(".debug_rnglists", locations: false);
        Dwarf4Lists(".debug_ranges", locations: false);
        if (_moved.Count == 0) return;    // islands move nothing, and where a variable lives inside one is not known
        Lists(".debug_loclists", locations: true);
        Dwarf4Lists(".debug_loc", locations: true);
    }

    private readonly record struct Target(int Section, ulong Value);

    private Target? _cuBase;
    // What a DWARF 5 list unit needs from its CU: the base address and where its .debug_addr indices start.
    private readonly record struct UnitBases(Target? Base, ulong? AddrBase, int AddressSize);
    private readonly Dictionary<(string Section, ulong Base), UnitBases> _unitsByListBase = [];
    private readonly List<UnitBases> _addrUnits = [];
    private Dictionary<ulong, Target>? _addrRelocations;

    /// <summary>
    /// Entry <paramref name="index"/> of the CU's <c>.debug_addr</c> table: the code it names through its relocation
    /// (entries follow their addends like any other), or null for an absolute address.
    /// </summary>
    private Target? Address(ulong? addrBase, ulong index, int addressSize)
    {
        if (addrBase is not { } b) throw new DwarfFormatException("an address index is used without DW_AT_addr_base");
        var section = Section(".debug_addr") ?? throw new DwarfFormatException("an address index is used without " +
            ".debug_addr");
        ulong at = checked(b + index * (ulong)addressSize);
        if (at + (ulong)addressSize > section.Size) throw new DwarfFormatException($"address index {index} is past " +
            "the end of .debug_addr");
        _addrRelocations ??= Relocations(section);
        return _addrRelocations.TryGetValue(at, out var t) ? t : null;
    }
    // DWARF 4 lists are found from the DIEs that use them: .debug_loc also holds GNU location-view lists, which
    // have another layout.
    private readonly SortedSet<ulong> _locLists = [], _rangeLists = [];
    private readonly SortedSet<ulong> _viewLists = [], _v5LocLists = [];

    /// <summary>The relocations of a debug section that name code or data in a section.</summary>
    private Dictionary<ulong, Target> Relocations(ElfSection section) =>
        _image.RelocationTargets(section).Where(kv => kv.Value.Section >= 0).ToDictionary(kv => kv.Key,
            kv => new Target(kv.Value.Section, kv.Value.Value));

    /// <summary>Old → new distance for code at <paramref name="from"/> .. <paramref name="to"/> of a section (identity
    /// if it did not move).</summary>
    private ulong Moved(int section, ulong from, ulong to) =>
        _moved.TryGetValue(section, out var e) ? e.Map(to) - e.Map(from) : to - from;

    /// <summary>As <see cref="Moved"/>, for an address range: one that ends where a function ended takes in its
    /// islands.</summary>
    private ulong Ranged(int section, ulong from, ulong to) =>
        Moved(section, from, to) + (_grown.TryGetValue(section, out var g) && to == g.OldEnd ? g.NewEnd - g.OldEnd : 0);

    /// <summary>True when code of the section moved or grew.</summary>
    private bool Changes(int section) => _moved.ContainsKey(section) || _grown.ContainsKey(section);

    /// <summary>
    /// A range end stored as a relocated address (DWARF 4 range pairs, DW_RLE_start_end, DW_AT_high_pc as an address):
    /// one that names a grown function's old end names its new end.
    /// </summary>
    private void GrowRelocatedEnd(ElfSection debugSection, ulong offset)
    {
        if (_grown.Count == 0) return;
        _grownEnds ??= GrownEnds();
        if (!_grownEnds.TryGetValue((debugSection.Index, offset), out var end)) return;
        _edits.Add(c => c.SetRelocationAddend(end.Table, end.Entry, end.Addend));
    }

    private Dictionary<(int Section, ulong Offset), (int Table, int Entry, long Addend)>? _grownEnds;

    /// <summary>Relocations in debug sections naming a grown function's old end, with the addend that names its new
    /// end.</summary>
    private Dictionary<(int Section, ulong Offset), (int Table, int Entry, long Addend)> GrownEnds()
    {
        var ends = new Dictionary<(int, ulong), (int, int, long)>();
        foreach (var rs in _image.RelocationSections.Where(r => r.Target.Name.StartsWith(".debug_",
            StringComparison.Ordinal)))
            for (int i = 0; i < rs.Entries.Count; i++)
            {
                var rela = rs.Entries[i];
                var sym = _image.Symbols[(int)rela.SymbolIndex];
                if (sym.IsInSection && _grown.TryGetValue((int)sym.SectionIndex, out var g)
                    && unchecked(sym.Value + (ulong)rela.Addend) == g.OldEnd)
                    ends[(rs.Target.Index, rela.Offset)] = (rs.Section.Index, i,
                        rela.Addend + (long)(g.NewEnd - g.OldEnd));
            }
        return ends;
    }

    private ElfSection? Section(string name) => _image.Sections.FirstOrDefault(s => s.Name == name && s.HasFileData);

    /// <summary>A rewritten unit's 32-bit unit_length: everything after the field.</summary>
    private static void PatchUnitLength(List<byte> output, int unitStart, bool le)
    {
        uint length = (uint)(output.Count - unitStart - 4);
        for (int i = 0; i < 4; i++) output[unitStart + i] = (byte)(length >> (8 * (le ? i : 3 - i)));
    }

    private static void Copy(List<byte> output, ReadOnlySpan<byte> data, int from, int to)
    {
        for (int i = from; i < to; i++) output.Add(data[i]);
    }

    /// <summary>
    /// Installs a rewritten section. Positions inside it move by the anchors (entry starts, old → new): relocations
    /// in it move, and references to it (relocations against its section symbol, e.g. DW_AT_ranges) follow.
    /// </summary>
    private void Rewrite(ElfSection section, byte[] bytes, List<(ulong Old, ulong New)> anchors)
    {
        if (bytes.AsSpan().SequenceEqual(_image.Data(section))) return;
        ulong Map(ulong old)
        {
            int lo = 0, hi = anchors.Count - 1, best = 0;
            while (lo <= hi)
            {
                int mid = (lo + hi) >>> 1;
                if (anchors[mid].Old <= old) { best = mid; lo = mid + 1; } else hi = mid - 1;
            }
            return anchors[best].New + (old - anchors[best].Old);
        }
        SetSectionData(section.Index, bytes);
        var sectionSymbols = _image.Symbols.Where(s =>
            s.Type == SttSection && s.SectionIndex == (uint)section.Index).Select(s => (uint)s.Index).ToHashSet();
        foreach (var rs in _image.RelocationSections)
        {
            int table = rs.Section.Index;
            bool inSection = rs.Target.Index == section.Index;
            for (int i = 0; i < rs.Entries.Count; i++)
            {
                var rela = rs.Entries[i];
                int entry = i;
                if (inSection && Map(rela.Offset) is var offset && offset != rela.Offset)
                    _edits.Add(c => c.SetRelocationOffset(table, entry, offset));
                if (rela.Addend >= 0 && sectionSymbols.Contains(rela.SymbolIndex)
                    && Map((ulong)rela.Addend) is var addend && addend != (ulong)rela.Addend)
                    _edits.Add(c => c.SetRelocationAddend(table, entry, (long)addend));
            }
        }
    }
}
