using System.Buffers.Binary;
using PpcLivepatch.Dwarf;
using PpcLivepatch.Elf;
using PpcLivepatch.Ppc64;
using static PpcLivepatch.Elf.ElfConstants;

namespace PpcLivepatch.Patching;

/// <summary>
/// The DWARF side of insert-nop: what debug information stores as data rather than as relocations, for code that
/// moved. <c>.debug_line</c> address advances are re-encoded; <c>DW_AT_high_pc</c> lengths in <c>.debug_info</c>,
/// <c>.debug_aranges</c> lengths and DWARF 5 range/location list offsets and lengths are mapped (ULEB fields may grow,
/// and then everything that points into a list section follows). Addresses that carry relocations (low_pc,
/// DW_LNE_set_address, DWARF 4 <c>.debug_ranges</c>/<c>.debug_loc</c> pairs) follow through their addends, which
/// <see cref="InsertNopEditor"/> maps.
/// </summary>
internal sealed class DwarfLayoutEditor
{
    /// <summary>Debug sections whose references to moved code this editor (with the relocation addends) keeps right.</summary>
    public static readonly HashSet<string> Understood =
        [".debug_info", ".debug_line", ".debug_aranges", ".debug_rnglists", ".debug_loclists", ".debug_ranges", ".debug_loc", ".debug_frame",
         ".debug_addr"];

    private readonly ElfImage _image;
    private readonly Dictionary<int, CodeLayout> _editors;      // sections whose code moved
    private readonly List<IslandLine> _islands;
    private readonly Dictionary<int, CodeLayout> _grown;        // sections whose function grew over islands
    // The rewrite as edits to replay on a container: the check that decides whether a section can take inserted nops
    // computes it, and the patch applies the same edits instead of decoding the DWARF a second time.
    private readonly List<Action<ElfContainer>> _edits = [];

    private DwarfLayoutEditor(ElfImage image, IReadOnlyList<CodeLayout> layouts)
    {
        _image = image;
        _editors = layouts.Where(l => l.MovesCode).ToDictionary(l => l.Section);
        _grown = layouts.Where(l => l.Islands.Count > 0).ToDictionary(l => l.Section);
        _islands = layouts.SelectMany(l => l.Islands.Select(i => new IslandLine(l.Section, i.Call, i.Island))).ToList();
    }

    /// <summary>The DWARF edits for one set of changed sections.</summary>
    internal sealed record Plan(IReadOnlyList<Action<ElfContainer>> Edits);

    /// <summary>An island at <paramref name="Island"/> of a code section, standing for the call at <paramref name="Call"/>.</summary>
    private readonly record struct IslandLine(int Section, ulong Call, ulong Island);

    /// <summary>
    /// Installs the DWARF side of a patch: the layout changes of the sections that took nops, and for islands a line
    /// row each (the call's row) and the function's and CU's address ranges grown over them, so addr2line and debuggers
    /// name the call's line inside an island. <paramref name="checkedPlan"/> is the plan the eligibility check computed
    /// for exactly these layouts, if any. Returns why islands could not be described, or null — that is debug
    /// information only, never a reason to refuse the patch.
    /// </summary>
    public static string? Apply(ElfImage image, ElfContainer container, IReadOnlyList<CodeLayout> layouts, Plan? checkedPlan)
    {
        if (layouts.Count == 0) return null;
        Plan plan;
        if (checkedPlan is not null) plan = checkedPlan;
        else if (!layouts.Any(l => l.MovesCode))
        {
            // Islands only: nothing moved, so only line rows and ranges are touched.
            try { plan = Compute(image, layouts); }
            catch (Exception e) when (e is DwarfFormatException or OverflowException or ArgumentOutOfRangeException or IndexOutOfRangeException)
            {
                return $"the islands have no line rows or address ranges: the debug information cannot be rewritten: {e.Message}";
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
        catch (Exception e) when (e is DwarfFormatException or OverflowException or ArgumentOutOfRangeException or IndexOutOfRangeException or KeyNotFoundException)
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
        if (_editors.Count == 0) return;    // islands move nothing, and where a variable lives inside one is not known
        Lists(".debug_loclists", locations: true);
        Dwarf4Lists(".debug_loc", locations: true);
    }

    /// <summary>
    /// DWARF 4 <c>.debug_ranges</c>/<c>.debug_loc</c>: (begin, end) pairs. With relocations they follow the addends;
    /// without (the assembler resolved <c>.LVL1-.Ltext0</c>) they are offsets from the current base: the CU's low_pc,
    /// or the last base-address-selection entry.
    /// </summary>
    private void Dwarf4Lists(string name, bool locations)
    {
        var section = Section(name);
        if (section is null) return;
        var relocs = Relocations(section);
        byte[] data = _image.Data(section).ToArray();
        bool le = _image.IsLittleEndian, changed = false;
        foreach (ulong list in locations ? _locLists : _rangeLists)
            changed |= Dwarf4List(section, relocs, data, (int)list, locations);
        if (changed) SetSectionData(section.Index, data);
    }

    private bool Dwarf4List(ElfSection section, Dictionary<ulong, Target> relocs, byte[] data, int pos, bool locations)
    {
        string name = section.Name;
        bool le = _image.IsLittleEndian, changed = false;
        Target? baseAddress = _cuBase;
        while (pos + 16 <= data.Length)
        {
            var r = new DwarfReader(data, le, pos);
            ulong begin = r.U64(), end = r.U64();
            bool relocated = relocs.ContainsKey((ulong)pos) || relocs.ContainsKey((ulong)pos + 8);
            if (begin == 0 && end == 0 && !relocated) return changed;                                   // end of list
            if (begin == ulong.MaxValue)
            {
                baseAddress = relocs.TryGetValue((ulong)pos + 8, out var b) ? b : null;
                pos += 16;
                continue;
            }
            if (relocated && !locations) GrowRelocatedEnd(section, (ulong)pos + 8);
            if (!relocated && baseAddress is { } bas && Changes(bas.Section))
            {
                ulong newBegin = Moved(bas.Section, bas.Value, bas.Value + begin);
                ulong newEnd = locations ? Moved(bas.Section, bas.Value, bas.Value + end) : Ranged(bas.Section, bas.Value, bas.Value + end);
                if (newBegin != begin) { ByteOrder.Write(data.AsSpan(pos), 8, newBegin, le); changed = true; }
                if (newEnd != end) { ByteOrder.Write(data.AsSpan(pos + 8), 8, newEnd, le); changed = true; }
            }
            else if (!relocated && baseAddress is null && _editors.Count > 0)
                throw new DwarfFormatException($"{name} has an entry without a known base address");
            pos += 16;
            if (locations) pos += 2 + r.U16();
        }
        throw new DwarfFormatException($"a {name} list runs past the end of the section");
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
        var section = Section(".debug_addr") ?? throw new DwarfFormatException("an address index is used without .debug_addr");
        ulong at = checked(b + index * (ulong)addressSize);
        if (at + (ulong)addressSize > section.Size) throw new DwarfFormatException($"address index {index} is past the end of .debug_addr");
        _addrRelocations ??= Relocations(section);
        return _addrRelocations.TryGetValue(at, out var t) ? t : null;
    }
    // DWARF 4 lists are found from the DIEs that use them: .debug_loc also holds GNU location-view lists, which
    // have another layout.
    private readonly SortedSet<ulong> _locLists = [], _rangeLists = [];
    private readonly SortedSet<ulong> _viewLists = [], _v5LocLists = [];

    private Dictionary<ulong, Target> Relocations(ElfSection section)
    {
        var sections = _image.RelocationSections.Where(r => r.Target.Index == section.Index).ToList();
        var map = new Dictionary<ulong, Target>(sections.Sum(r => r.Entries.Count));
        foreach (var rs in sections)
        foreach (var rela in rs.Entries)
        {
            var sym = _image.Symbols[(int)rela.SymbolIndex];
            if (sym.IsInSection) map[rela.Offset] = new Target((int)sym.SectionIndex, unchecked(sym.Value + (ulong)rela.Addend));
        }
        return map;
    }

    /// <summary>Old → new distance for code at <paramref name="from"/> .. <paramref name="to"/> of a section (identity if it did not move).</summary>
    private ulong Moved(int section, ulong from, ulong to) =>
        _editors.TryGetValue(section, out var e) ? e.Map(to) - e.Map(from) : to - from;

    /// <summary>As <see cref="Moved"/>, for an address range: one that ends where a function ended takes in its islands.</summary>
    private ulong Ranged(int section, ulong from, ulong to) =>
        Moved(section, from, to) + (_grown.TryGetValue(section, out var g) && to == g.OldEnd ? g.NewEnd - g.OldEnd : 0);

    /// <summary>True when code of the section moved or grew.</summary>
    private bool Changes(int section) => _editors.ContainsKey(section) || _grown.ContainsKey(section);

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

    /// <summary>Relocations in debug sections naming a grown function's old end, with the addend that names its new end.</summary>
    private Dictionary<(int Section, ulong Offset), (int Table, int Entry, long Addend)> GrownEnds()
    {
        var ends = new Dictionary<(int, ulong), (int, int, long)>();
        foreach (var rs in _image.RelocationSections.Where(r => r.Target.Name.StartsWith(".debug_", StringComparison.Ordinal)))
            for (int i = 0; i < rs.Entries.Count; i++)
            {
                var rela = rs.Entries[i];
                var sym = _image.Symbols[(int)rela.SymbolIndex];
                if (sym.IsInSection && _grown.TryGetValue((int)sym.SectionIndex, out var g) && unchecked(sym.Value + (ulong)rela.Addend) == g.OldEnd)
                    ends[(rs.Target.Index, rela.Offset)] = (rs.Section.Index, i, rela.Addend + (long)(g.NewEnd - g.OldEnd));
            }
        return ends;
    }

    private ElfSection? Section(string name) => _image.Sections.FirstOrDefault(s => s.Name == name && s.HasFileData);

    // ---- .debug_line ------------------------------------------------------------------------------------------------

    private void Line()
    {
        var section = Section(".debug_line");
        if (section is null) return;
        var relocs = Relocations(section);
        var data = _image.Data(section);
        var output = new List<byte>(data.Length + 64);
        var anchors = new List<(ulong Old, ulong New)>();
        bool le = _image.IsLittleEndian;
        int pos = 0;
        while (pos < data.Length)
        {
            var r = new DwarfReader(data, le, pos);
            uint length = r.U32();
            if (length >= 0xffff_fff0) throw new DwarfFormatException("64-bit DWARF line tables are not rewritten");
            int end = checked(r.Position + (int)length);
            int version = r.U16();
            if (version >= 5) r.Skip(2);
            uint headerLength = r.U32();
            int programStart = r.Position + (int)headerLength;
            byte minInst = r.U8();
            if (version >= 4) r.U8();
            r.U8();
            sbyte lineBase = r.S8();
            byte lineRange = r.U8();
            byte opcodeBase = r.U8();
            if (minInst == 0 || lineRange == 0 || opcodeBase == 0)
                throw new DwarfFormatException($".debug_line has minimum_instruction_length {minInst}, line_range {lineRange}, opcode_base {opcodeBase}");
            var standardLengths = new byte[opcodeBase - 1];
            for (int i = 0; i < standardLengths.Length; i++) standardLengths[i] = r.U8();

            int unitStart = output.Count;
            anchors.Add(((ulong)pos, (ulong)output.Count));
            for (int i = pos; i < programStart; i++) output.Add(data[i]);
            r.Position = programStart;
            int section0 = -1;
            ulong address = 0;
            var row = new LineRegisters();
            var rows = new List<(int Section, ulong Address, LineRegisters State, bool End)>();
            while (r.Position < end)
            {
                int start = r.Position;
                anchors.Add(((ulong)start, (ulong)output.Count));
                byte op = r.U8();
                if (op >= opcodeBase)
                {
                    int adjusted = op - opcodeBase;
                    ulong advance = (ulong)(adjusted / lineRange) * minInst;
                    int lineAdvance = lineBase + adjusted % lineRange;
                    ulong moved = Moved(section0, address, address + advance) / minInst;
                    address += advance;
                    row = row with { Line = row.Line + lineAdvance };
                    rows.Add((section0, address, row, false));
                    ulong special = (ulong)(lineAdvance - lineBase) + (ulong)lineRange * moved + opcodeBase;
                    if (special <= 255) output.Add((byte)special);
                    else
                    {
                        output.Add(2); Leb128.Append(output, moved);                       // DW_LNS_advance_pc
                        output.Add((byte)(lineAdvance - lineBase + opcodeBase));            // the row, no address advance
                    }
                    continue;
                }
                switch (op)
                {
                    case 0:
                    {
                        ulong len = r.Uleb();
                        int next = r.Position + (int)len;
                        ulong operand = (ulong)r.Position + 1;
                        byte sub = r.U8();
                        if (sub == 1)                                                          // end_sequence
                        {
                            rows.Add((section0, address, row, true));
                            section0 = -1; address = 0; row = new LineRegisters();
                        }
                        else if (sub == 2)                                                     // set_address
                        {
                            if (relocs.TryGetValue(operand, out var t)) { section0 = t.Section; address = t.Value; }
                            else { section0 = -1; address = r.Fixed((int)len - 1); }
                        }
                        r.Position = next;
                        break;
                    }
                    case 2:
                    {
                        ulong advance = r.Uleb() * minInst;
                        output.Add(2);
                        Leb128.Append(output, Moved(section0, address, address + advance) / minInst);
                        address += advance;
                        continue;
                    }
                    case 8:
                    {
                        ulong advance = (ulong)((255 - opcodeBase) / lineRange) * minInst;
                        ulong moved = Moved(section0, address, address + advance);
                        address += advance;
                        if (moved == advance) output.Add(8);
                        else { output.Add(2); Leb128.Append(output, moved / minInst); }
                        continue;
                    }
                    case 9:
                    {
                        ulong advance = r.U16();
                        ulong moved = Moved(section0, address, address + advance);
                        if (moved > 0xffff) throw new DwarfFormatException("DW_LNS_fixed_advance_pc no longer fits");
                        address += advance;
                        output.Add(9);
                        output.Add((byte)(le ? moved : moved >> 8));
                        output.Add((byte)(le ? moved >> 8 : moved));
                        continue;
                    }
                    case 1: rows.Add((section0, address, row, false)); break;                  // copy
                    case 3: row = row with { Line = row.Line + r.Sleb() }; break;
                    case 4: row = row with { File = r.Uleb() }; break;
                    case 5: row = row with { Column = r.Uleb() }; break;
                    case 6: case 7: case 10: case 11: break;
                    default:
                        for (int i = 0; i < standardLengths[op - 1]; i++) r.Uleb();
                        break;
                }
                for (int i = start; i < r.Position; i++) output.Add(data[i]);
            }
            AppendIslandRows(output, rows, minInst);
            PatchUnitLength(output, unitStart, le);
            pos = end;
        }
        anchors.Add(((ulong)data.Length, (ulong)output.Count));
        Rewrite(section, [.. output], anchors);
        foreach (var (at, island) in _islandAddresses) AddIslandAddressRelocation(section, at, island);
    }

    /// <summary>The line-program registers a row carries besides its address.</summary>
    private readonly record struct LineRegisters(ulong File, long Line, ulong Column)
    {
        public LineRegisters() : this(1, 1, 0) { }
    }

    private readonly List<(int At, IslandLine Island)> _islandAddresses = [];

    /// <summary>
    /// One sequence per island of this unit's code: the row of its call (file, line, column), covering the island's
    /// 12 bytes. Its DW_LNE_set_address gets a relocation to the island, added once the section's layout is final.
    /// </summary>
    private void AppendIslandRows(List<byte> output, List<(int Section, ulong Address, LineRegisters State, bool End)> rows, byte minInst)
    {
        foreach (var island in _islands)
        {
            // The call's row: the last row at or before the call whose sequence goes on past it.
            int found = -1;
            for (int i = 0; i + 1 < rows.Count; i++)
                if (!rows[i].End && rows[i].Section == island.Section && rows[i].Address <= island.Call
                    && rows[i + 1].Section == island.Section && rows[i + 1].Address > island.Call)
                    found = i;
            if (found < 0) continue;
            var state = rows[found].State;
            output.AddRange([0, 9, 2]);                                                   // DW_LNE_set_address
            _islandAddresses.Add((output.Count, island));
            output.AddRange(new byte[8]);
            if (state.File != 1) { output.Add(4); Leb128.Append(output, state.File); }
            if (state.Line != 1) { output.Add(3); Leb128.AppendSigned(output, state.Line - 1); }
            if (state.Column != 0) { output.Add(5); Leb128.Append(output, state.Column); }
            output.Add(1);                                                                // DW_LNS_copy
            output.Add(2); Leb128.Append(output, (ulong)IslandPlanner.IslandSize / minInst);   // DW_LNS_advance_pc
            output.AddRange([0, 1, 1]);                                                   // DW_LNE_end_sequence
        }
    }

    private void AddIslandAddressRelocation(ElfSection lineSection, int at, IslandLine island)
    {
        var table = _image.RelocationSections.FirstOrDefault(rs => rs.Target.Index == lineSection.Index);
        var symbol = _image.Symbols.FirstOrDefault(y => y.Type == SttSection && y.SectionIndex == (uint)island.Section);
        if (table is null || symbol is null)
            throw new DwarfFormatException($"there is no relocation table for .debug_line or no section symbol for the island's section");
        int relaSection = table.Section.Index, sym = symbol.Index;
        _edits.Add(c => c.AddRelocation(relaSection, (ulong)at, R.PPC64_ADDR64, sym, (long)island.Island));
    }


    // ---- .debug_aranges: lengths as data ------------------------------------------------------------------------

    private void Aranges()
    {
        var section = Section(".debug_aranges");
        if (section is null) return;
        var relocs = Relocations(section);
        byte[] data = _image.Data(section).ToArray();
        bool le = _image.IsLittleEndian, changed = false;
        int pos = 0;
        while (pos + 12 <= data.Length)
        {
            var r = new DwarfReader(data, le, pos);
            uint length = r.U32();
            int end = checked(r.Position + (int)length);
            r.U16(); r.U32();
            int addressSize = r.U8();
            r.U8();
            if (addressSize is not (4 or 8)) throw new DwarfFormatException($".debug_aranges has address size {addressSize}");
            int tuples = (r.Position + 2 * addressSize - 1) / (2 * addressSize) * (2 * addressSize);
            for (int at = tuples; at + 2 * addressSize <= end; at += 2 * addressSize)
            {
                if (!relocs.TryGetValue((ulong)at, out var t) || !Changes(t.Section)) continue;
                var field = new DwarfReader(data, le, at + addressSize);
                ulong len = field.Fixed(addressSize);
                ulong moved = Ranged(t.Section, t.Value, t.Value + len);
                if (moved != len) { ByteOrder.Write(data.AsSpan(at + addressSize), addressSize, moved, le); changed = true; }
            }
            pos = end;
        }
        if (changed) SetSectionData(section.Index, data);
    }

    // ---- .debug_info: DW_AT_high_pc as a length ----------------------------------------------------------------

    private void Info()
    {
        var info = Section(".debug_info");
        var abbrevSection = Section(".debug_abbrev");
        if (info is null || abbrevSection is null) return;
        var relocs = Relocations(info);
        var abbrevData = _image.Data(abbrevSection);
        byte[] data = _image.Data(info).ToArray();
        bool le = _image.IsLittleEndian, changed = false;
        int pos = 0;
        while (pos + 11 <= data.Length)
        {
            var r = new DwarfReader(data, le, pos);
            uint length = r.U32();
            if (length >= 0xffff_fff0) throw new DwarfFormatException("64-bit DWARF is not rewritten");
            int end = checked(r.Position + (int)length);
            int version = r.U16();
            int addressSize;
            ulong abbrevOffset;
            if (version >= 5)
            {
                byte unitType = r.U8();
                addressSize = r.U8();
                int field = r.Position;
                abbrevOffset = r.U32();
                if (relocs.TryGetValue((ulong)field, out var t)) abbrevOffset = t.Value;
                if (unitType is 4 or 5) r.Skip(8);        // skeleton/split: dwo id
                else if (unitType is 2 or 6) r.Skip(12);  // type units: signature + offset
            }
            else
            {
                int field = r.Position;
                abbrevOffset = r.U32();
                if (relocs.TryGetValue((ulong)field, out var t)) abbrevOffset = t.Value;
                addressSize = r.U8();
            }
            var abbrevs = ReadAbbrevs(abbrevData, (int)abbrevOffset, le);
            // DWARF 5 units (clang) name addresses by index into .debug_addr from the CU's DW_AT_addr_base, which
            // the CU's DIE may give after its own DW_AT_low_pc.
            ulong? addrBase = null;
            bool first = true;
            while (r.Position < end)
            {
                ulong code = r.Uleb();
                if (code == 0) continue;
                if (!abbrevs.TryGetValue(code, out var decl)) throw new DwarfFormatException($"abbreviation {code} is not defined");
                Target? low = null;
                ulong? lowIndex = null;
                ulong? loclistsBase = null, rnglistsBase = null;
                (int At, int Size)? high = null;
                foreach (var (name, form, _) in decl)
                {
                    int at = r.Position;
                    SkipForm(ref r, form, addressSize, version);
                    if (version < 5 && form is 0x17 or 0x06 && name is 0x02 or 0x40 or 0x4b or 0x55)    // location, frame_base, data_location… / ranges
                    {
                        ulong offset = relocs.TryGetValue((ulong)at, out var rt) ? rt.Value : new DwarfReader(data, le, at).U32();
                        (name == 0x55 ? _rangeLists : _locLists).Add(offset);
                    }
                    // GCC's location views (DWARF 5): DW_AT_GNU_locviews names a list of ULEB view pairs that sits in
                    // .debug_loclists right before the DIE's location list, with no entry kinds of its own.
                    if (version >= 5 && form == 0x17 && name is 0x02 or 0x2137)
                    {
                        ulong offset = relocs.TryGetValue((ulong)at, out var rt) ? rt.Value : new DwarfReader(data, le, at).U32();
                        (name == 0x2137 ? _viewLists : _v5LocLists).Add(offset);
                    }
                    if (form == 0x17 && name is 0x73 or 0x8c or 0x74)      // DW_AT_addr_base, loclists_base, rnglists_base
                    {
                        ulong offset = relocs.TryGetValue((ulong)at, out var rt) ? rt.Value : new DwarfReader(data, le, at).U32();
                        if (name == 0x73) addrBase = offset;
                        else if (name == 0x8c) loclistsBase = offset;
                        else rnglistsBase = offset;
                    }
                    if (name == 0x11 && form == 0x01 && relocs.TryGetValue((ulong)at, out var t)) low = t;      // DW_AT_low_pc
                    else if (name == 0x11 && form is 0x1b or 0x29 or 0x2a or 0x2b or 0x2c)                      // … as addrx
                        lowIndex = form == 0x1b ? new DwarfReader(data, le, at).Uleb() : new DwarfReader(data, le, at).Fixed(r.Position - at);
                    else if (name == 0x12 && form is 0x0b or 0x05 or 0x06 or 0x07) high = (at, r.Position - at); // DW_AT_high_pc, constant
                    else if (name == 0x12 && form == 0x01) GrowRelocatedEnd(info, (ulong)at);                  // … as an address
                    else if (name == 0x12 && form is 0x0f) throw new DwarfFormatException("ULEB DW_AT_high_pc is not rewritten");
                }
                if (lowIndex is { } index) low = Address(addrBase, index, addressSize);
                // The first DIE of the unit is the CU: its low_pc is the base of lists without a base_address entry.
                if (first)
                {
                    var unit = new UnitBases(low, addrBase, addressSize);
                    _cuBase ??= low;
                    if (loclistsBase is { } lb) _unitsByListBase[(".debug_loclists", lb)] = unit;
                    if (rnglistsBase is { } rb) _unitsByListBase[(".debug_rnglists", rb)] = unit;
                    if (addrBase is not null) _addrUnits.Add(unit);
                    first = false;
                }
                if (low is { } lo && high is { } hi && Changes(lo.Section))
                {
                    ulong len = new DwarfReader(data, le, hi.At).Fixed(hi.Size);
                    ulong moved = Ranged(lo.Section, lo.Value, lo.Value + len);
                    if (hi.Size < 8 && moved >> (8 * hi.Size) != 0) throw new DwarfFormatException("a DW_AT_high_pc length no longer fits its form");
                    if (moved != len) { ByteOrder.Write(data.AsSpan(hi.At), hi.Size, moved, le); changed = true; }
                }
            }
            pos = end;
        }
        if (changed) SetSectionData(info.Index, data);
    }

    private static Dictionary<ulong, List<(ulong Name, ulong Form, long Implicit)>> ReadAbbrevs(ReadOnlySpan<byte> data, int offset, bool le)
    {
        var result = new Dictionary<ulong, List<(ulong, ulong, long)>>();
        var r = new DwarfReader(data, le, offset);
        while (true)
        {
            ulong code = r.Uleb();
            if (code == 0) break;
            r.Uleb();   // tag
            r.U8();     // children
            var attrs = new List<(ulong, ulong, long)>();
            while (true)
            {
                ulong name = r.Uleb(), form = r.Uleb();
                if (name == 0 && form == 0) break;
                attrs.Add((name, form, form == 0x21 ? r.Sleb() : 0));
            }
            result[code] = attrs;
        }
        return result;
    }

    private static void SkipForm(ref DwarfReader r, ulong form, int addressSize, int version)
    {
        switch (form)
        {
            case 0x01: r.Skip((ulong)addressSize); break;
            case 0x03: r.Skip(r.U16()); break;
            case 0x04: r.Skip(r.U32()); break;
            case 0x05 or 0x12 or 0x26 or 0x2a: r.Skip(2); break;
            case 0x06 or 0x0e or 0x13 or 0x17 or 0x1c or 0x1d or 0x1f or 0x28 or 0x2c or 0x1f20 or 0x1f21: r.Skip(4); break;
            case 0x07 or 0x14 or 0x20 or 0x24: r.Skip(8); break;
            case 0x08: r.CString(); break;
            case 0x09 or 0x18: r.Skip(r.Uleb()); break;
            case 0x0a: r.Skip(r.U8()); break;
            case 0x0b or 0x0c or 0x11 or 0x25 or 0x29: r.Skip(1); break;
            case 0x0d: r.Sleb(); break;
            case 0x0f or 0x15 or 0x1a or 0x1b or 0x22 or 0x23 or 0x1f01 or 0x1f02: r.Uleb(); break;
            case 0x10: r.Skip(version <= 2 ? (ulong)addressSize : 4); break;
            case 0x16: SkipForm(ref r, r.Uleb(), addressSize, version); break;
            case 0x19 or 0x21: break;
            case 0x1e: r.Skip(16); break;
            case 0x27 or 0x2b: r.Skip(3); break;
            default: throw new DwarfFormatException($"DWARF form 0x{form:x} is not known");
        }
    }

    // ---- DWARF 5 range and location lists ---------------------------------------------------------------------

    private void Lists(string name, bool locations)
    {
        var section = Section(name);
        if (section is null) return;
        var relocs = Relocations(section);
        var data = _image.Data(section);
        bool le = _image.IsLittleEndian;
        var output = new List<byte>(data.Length + 16);
        var anchors = new List<(ulong Old, ulong New)>();
        int pos = 0;
        while (pos + 12 <= data.Length)
        {
            var r = new DwarfReader(data, le, pos);
            uint length = r.U32();
            if (length >= 0xffff_fff0) throw new DwarfFormatException($"64-bit DWARF {name} is not rewritten");
            int end = checked(r.Position + (int)length);
            r.U16();
            int addressSize = r.U8();
            r.U8();
            uint offsetCount = r.U32();
            // DWARF 5 offset tables (clang: DW_FORM_loclistx/rnglistx) hold each list's start relative to the table,
            // which follows the header; the lists' new starts are written in once the unit is rewritten.
            int table = r.Position;
            r.Skip(4UL * offsetCount);
            var unit = _unitsByListBase.TryGetValue((name, (ulong)table), out var u) ? u
                : _addrUnits.Count == 1 ? _addrUnits[0] : new UnitBases(_cuBase, null, addressSize);
            int unitStart = output.Count, firstEntry = r.Position;
            anchors.Add(((ulong)pos, (ulong)output.Count));
            int unitAnchors = anchors.Count;
            Copy(output, data, pos, r.Position);
            Target? baseAddress = unit.Base;
            ulong Span(int code, ulong from, ulong to) => locations ? Moved(code, from, to) : Ranged(code, from, to);
            while (r.Position < end)
            {
                int start = r.Position;
                anchors.Add(((ulong)start, (ulong)output.Count));
                if (locations && _viewLists.Contains((ulong)start))
                {
                    // View numbers count rows at one address; moving code keeps them. Copied as they are, up to the
                    // location list they belong to, and they must decode as whole ULEB pairs up to there.
                    ulong next = _v5LocLists.GetViewBetween((ulong)start + 1, (ulong)end).FirstOrDefault();
                    if (next == 0) throw new DwarfFormatException($"{name} has a location view list at 0x{start:x} without its location list");
                    while ((ulong)r.Position < next) { r.Uleb(); r.Uleb(); }
                    if ((ulong)r.Position != next) throw new DwarfFormatException($"{name}'s view list at 0x{start:x} runs into its location list");
                    Copy(output, data, start, r.Position);
                    continue;
                }
                byte kind = r.U8();
                output.Add(kind);
                int afterKind = r.Position;
                switch (locations ? kind : RangeKindAsLocation(kind))
                {
                    case 0: baseAddress = unit.Base; break;                                          // end_of_list
                    case 1:                                                                          // base_addressx
                        baseAddress = Address(unit.AddrBase, r.Uleb(), addressSize);
                        Copy(output, data, afterKind, r.Position);
                        break;
                    case 2: r.Uleb(); r.Uleb(); Copy(output, data, afterKind, r.Position); CopyExpression(ref r, data, output, anchors, locations); break;   // startx_endx
                    case 3:                                                                          // startx_length
                    {
                        var s0 = Address(unit.AddrBase, r.Uleb(), addressSize);
                        Copy(output, data, afterKind, r.Position);
                        ulong len = r.Uleb();
                        Leb128.Append(output, s0 is { } st ? Span(st.Section, st.Value, st.Value + len) : len);
                        CopyExpression(ref r, data, output, anchors, locations);
                        break;
                    }
                    case 4:                                                                          // offset_pair
                    {
                        ulong from = r.Uleb(), to = r.Uleb();
                        if (baseAddress is { } b && Changes(b.Section))
                        {
                            Leb128.Append(output, Moved(b.Section, b.Value, b.Value + from));
                            Leb128.Append(output, Span(b.Section, b.Value, b.Value + to));
                        }
                        else Copy(output, data, afterKind, r.Position);
                        CopyExpression(ref r, data, output, anchors, locations);
                        break;
                    }
                    case 5: { int e = r.Position; r.Skip(r.Uleb()); Copy(output, data, e, r.Position); break; }   // default_location
                    case 6:                                                                          // base_address
                        baseAddress = relocs.TryGetValue((ulong)r.Position, out var t) ? t : null;
                        r.Skip((ulong)addressSize);
                        Copy(output, data, afterKind, r.Position);
                        break;
                    case 7: if (!locations) GrowRelocatedEnd(section, (ulong)(r.Position + addressSize)); r.Skip(2UL * (ulong)addressSize); Copy(output, data, afterKind, r.Position); CopyExpression(ref r, data, output, anchors, locations); break;   // start_end
                    case 8:                                                                          // start_length
                    {
                        bool known = relocs.TryGetValue((ulong)r.Position, out var s0);
                        r.Skip((ulong)addressSize);
                        Copy(output, data, afterKind, r.Position);
                        ulong len = r.Uleb();
                        Leb128.Append(output, known ? Span(s0.Section, s0.Value, s0.Value + len) : len);
                        CopyExpression(ref r, data, output, anchors, locations);
                        break;
                    }
                    case 9: r.Uleb(); r.Uleb(); Copy(output, data, afterKind, r.Position); break;                          // GNU view pair
                    default: throw new DwarfFormatException($"{name} entry kind {kind} is not known");
                }
            }
            if (offsetCount > 0) RewriteOffsetTable(name, output, data, anchors, unitAnchors, table, unitStart + (table - pos), offsetCount, le);
            PatchUnitLength(output, unitStart, le);
            pos = end;
        }
        anchors.Add(((ulong)data.Length, (ulong)output.Count));
        Rewrite(section, [.. output], anchors);
    }

    /// <summary>A location entry's expression, copied; its anchor lets a relocation inside it (DW_OP_addr) move.</summary>
    private static void CopyExpression(ref DwarfReader r, ReadOnlySpan<byte> data, List<byte> output, List<(ulong Old, ulong New)> anchors, bool locations)
    {
        if (!locations) return;
        int e = r.Position;
        anchors.Add(((ulong)e, (ulong)output.Count));
        r.Skip(r.Uleb());
        Copy(output, data, e, r.Position);
    }

    /// <summary>Each offset-table entry of a rewritten list unit: the new distance from the table to its list.</summary>
    private static void RewriteOffsetTable(string name, List<byte> output, ReadOnlySpan<byte> data, List<(ulong Old, ulong New)> anchors,
                                           int unitAnchors, int table, int newTable, uint count, bool le)
    {
        var starts = new Dictionary<ulong, ulong>();
        for (int i = unitAnchors; i < anchors.Count; i++) starts.TryAdd(anchors[i].Old, anchors[i].New);
        for (int i = 0; i < count; i++)
        {
            ulong offset = new DwarfReader(data, le, table + 4 * i).U32();
            if (!starts.TryGetValue((ulong)table + offset, out ulong start))
                throw new DwarfFormatException($"{name} offset entry {i} (0x{offset:x}) does not start a list");
            ulong moved = start - (ulong)newTable;
            for (int k = 0; k < 4; k++) output[newTable + 4 * i + k] = (byte)(moved >> (8 * (le ? k : 3 - k)));
        }
    }

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

    /// <summary>Range list kinds in the numbering of location list kinds (which have default_location at 5).</summary>
    private static int RangeKindAsLocation(byte kind) => kind switch
    {
        0 => 0, 1 => 1, 2 => 2, 3 => 3, 4 => 4, 5 => 6, 6 => 7, 7 => 8,
        _ => 99,
    };

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
        var sectionSymbols = _image.Symbols.Where(s => s.Type == SttSection && s.SectionIndex == (uint)section.Index).Select(s => (uint)s.Index).ToHashSet();
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
                if (rela.Addend >= 0 && sectionSymbols.Contains(rela.SymbolIndex) && Map((ulong)rela.Addend) is var addend && addend != (ulong)rela.Addend)
                    _edits.Add(c => c.SetRelocationAddend(table, entry, (long)addend));
            }
        }
    }

}
