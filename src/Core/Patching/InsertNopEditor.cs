using PpcLivepatch.Analysis;
using PpcLivepatch.Elf;
using PpcLivepatch.Ppc64;
using static PpcLivepatch.Elf.ElfConstants;

namespace PpcLivepatch.Patching;

/// <summary>
/// The insert-nop strategy's section layout editor: a nop goes in at P = bl+4 for each call, and every code address
/// A of the section moves to A + 4·#{P ≤ A} — the inserted nop belongs to the call, so a branch to bl+4 lands after
/// it, as when the compiler emits <c>bl f; nop</c> itself. Everything that names an address in the section follows:
/// relocation-free branches (re-encoded, B-form reach re-checked), GCC's inline jump tables (entries and their
/// <c>.toc</c> base), the section's relocation offsets, the addends of every relocation that points into it, symbol
/// values and sizes. A section is edited only when all of that is understood; otherwise <see cref="Ineligible"/>
/// says why and the caller falls back to islands.
/// </summary>
internal sealed class InsertNopEditor
{
    private readonly ObjectAnalysis _analysis;
    private readonly ElfImage _image;
    private readonly ElfSection _section;
    private readonly FunctionMap _functions;
    private readonly CodeReferences _references;
    private readonly JumpTableAnalysis _tables;

    public InsertNopEditor(ObjectAnalysis analysis, ElfSection section, IEnumerable<ulong> calls)
    {
        _analysis = analysis;
        _image = analysis.Image;
        _functions = analysis.Functions;
        _references = analysis.References;
        _tables = analysis.Tables;
        _section = section;
        Layout = CodeLayout.InsertedNops(section.Index, calls.Select(c => c + 4));
    }

    /// <summary>The address map this edit makes: a nop at bl+4 of each call.</summary>
    public CodeLayout Layout { get; }

    public int SectionIndex => _section.Index;

    /// <summary>The DWARF rewrite that <see cref="Ineligible"/> computed for this section alone.</summary>
    internal DwarfLayoutEditor.Plan? DwarfPlan { get; private set; }

    public ulong Map(ulong address) => Layout.Map(address);

    /// <summary>Why this section cannot be edited, or null when it can.</summary>
    /// <summary>
    /// The functions of a section whose code depends on distances inside them that no relocation records (an unproven
    /// jump table, a program-counter read, a bl into the middle of code): inserted nops may move them only as a
    /// whole.
    /// </summary>
    public static IReadOnlyList<FunctionRange> FunctionsThatMoveWhole(ObjectAnalysis analysis, ElfSection section)
    {
        int index = section.Index;
        var offsets = analysis.Tables.UnprovenIn(index).Select(d => d.Offset)
            .Concat(analysis.References.RelocationFreeBranches.Where(b =>
                b.Section.Index == index && b.Kind is BranchKind.Bl or BranchKind.Bcl && !b.IsCall).Select(b =>
                    b.Offset));
        return offsets.Select(o => analysis.Functions.Containing(index, o)).OfType<FunctionRange>().Distinct()
            .ToList();
    }

    public string? Ineligible()
    {
        int index = _section.Index;
        if (_image.Sections.Any(s => s.Name.StartsWith(".gcc_except_table", StringComparison.Ordinal)))
            return "the object has exception tables (.gcc_except_table), which hold code offsets without relocations";
        foreach (var rs in _image.RelocationSections)
        {
            foreach (var rela in rs.Entries)
            {
                var sym = _image.Symbols[(int)rela.SymbolIndex];
                if (!sym.IsInSection || sym.SectionIndex != (uint)index) continue;
                if (AnchorOf(rs.Target, rela) is null)
                    return rs.Target.Index == index
                        ? $"the relocation at +0x{rela.Offset:x} is relative to its own place inside the code, which " +
                            "moves"
                        : $"{rs.Target.Name} entry at +0x{rela.Offset:x} has a layout the editor does not know";
                if (rs.Target.Index == index) continue;
                if (rs.Target.Name.StartsWith(".debug_", StringComparison.Ordinal)
                    && !DwarfLayoutEditor.Understood.Contains(rs.Target.Name))
                    return $"{rs.Target.Name} describes it, and that section is not rewritten";
            }
        }
        // Code whose meaning depends on distances inside its function that no relocation records (an unproven table,
        // addresses computed from the program counter) survives a move only when the whole function moves as one.
        foreach (var d in _tables.UnprovenIn(index).Where(d => SplitsFunctionAt(d.Offset)))
            return $"the jump table of the indirect jump (bctr) at +0x{d.Offset:x} cannot be proven: {d.Why}";
        foreach (var b in _references.RelocationFreeBranches.Where(b =>
            b.Section.Index == index && b.Kind is BranchKind.Bl or BranchKind.Bcl && !b.IsCall
                                                                            && SplitsFunctionAt(b.Offset)))
            return b.Target == b.Offset + 4
                ? $"it reads the program counter (bl .+4 at +0x{b.Offset:x}) to compute code addresses, which " +
                    "insert-nop cannot follow"
                : $"the bl at +0x{b.Offset:x} links into the middle of code (+0x{b.Target:x})";
        if (UncoveredCode() is { } stray)
            return $"it has code outside any function symbol (+0x{stray:x}), whose branches the editor cannot see";
        // Power10 prefixed instructions (pla, pld …) carry pc-relative offsets without relocations: not remapped.
        var words = _image.Data(_section);
        foreach (var f in _functions.InSection(index))
            for (ulong at = f.Start; at + 4 <= f.End && at + 4 <= (ulong)words.Length; at += 4)
                if (_image.ReadU32(words, (int)at) >> 26 == 1)
                    return $"it has a prefixed (Power10) instruction at +0x{at:x}, whose pc-relative offset is not " +
                        "remapped";
        if (_analysis.FramesProblem is { } frames) return $"its unwind information cannot be rewritten: {frames}";
        try
        {
            foreach (var cfi in _analysis.Frames)
                foreach (var fde in cfi.Fdes.Where(f => f.CodeSection == index))
                    cfi.RemapAdvances(fde, Map);
        }
        catch (Exception e) when (e is Dwarf.DwarfFormatException or OverflowException or ArgumentOutOfRangeException
            or IndexOutOfRangeException)
        {
            return $"its unwind information cannot be rewritten: {e.Message}";
        }
        if (DwarfLayoutEditor.Check(_image, Layout, out var plan) is { } dwarf) return dwarf;
        DwarfPlan = plan;
        foreach (var b in _references.RelocationFreeBranches.Where(b => b.Section.Index == index))
        {
            long displacement = (long)Map(b.Target) - (long)Map(b.Offset);
            int bits = Instruction.PrimaryOpcode(b.Word) == 16 ? 16 : 26;
            if (displacement < -(1L << (bits - 1)) || displacement > (1L << (bits - 1)) - 4)
                return $"the branch at +0x{b.Offset:x} would no longer reach +0x{b.Target:x}";
        }
        return null;
    }

    /// <summary>How far a relocation's addend reaches past the code it names here (<see
    /// cref="RelocationMeaning.Anchor"/>).</summary>
    internal ulong? AnchorOf(ElfSection relocated, ElfRela rela) =>
        RelocationMeaning.Anchor(relocated, rela, _section.Index, _tables);

    /// <summary>True when a nop goes in strictly inside the function holding <paramref name="offset"/> (or no function
    /// holds it).</summary>
    internal bool SplitsFunctionAt(ulong offset)
    {
        var f = _functions.Containing(_section.Index, offset);
        if (f is null || offset >= f.End) return Layout.MovesCode;
        return Layout.SplitsRange(f.Start, f.End);
    }

    /// <summary>The first word inside the section but outside every function that is not alignment padding.</summary>
    private ulong? UncoveredCode()
    {
        var data = _image.Data(_section);
        ulong at = 0;
        foreach (var f in _functions.InSection(_section.Index).OrderBy(f => f.Start))
        {
            for (; at + 4 <= f.Start && at + 4 <= (ulong)data.Length; at += 4)
                if (_image.ReadU32(data, (int)at) is not (0 or Instruction.Nop or 0x6042_0000)) return at;
            at = Math.Max(at, (f.End + 3) & ~3UL);
        }
        for (; at + 4 <= (ulong)data.Length; at += 4)
            if (_image.ReadU32(data, (int)at) is not (0 or Instruction.Nop or 0x6042_0000)) return at;
        return null;
    }

    /// <summary>Applies the edit to <paramref name="container"/>: new bytes, relocations, symbols.</summary>
    public void Apply(ElfContainer container)
    {
        var data = _image.Data(_section);
        bool le = _image.IsLittleEndian;
        var points = Layout.Points;
        var output = new byte[data.Length + 4 * points.Count];
        int p = 0;
        for (int from = 0, to = 0; from <= data.Length; )
        {
            int next = p < points.Count ? (int)points[p] : data.Length;
            data[from..next].CopyTo(output.AsSpan(to));
            to += next - from;
            from = next;
            if (p >= points.Count) break;
            _image.WriteU32(output, to, Instruction.Nop);
            to += 4;
            p++;
        }

        foreach (var b in _references.RelocationFreeBranches.Where(b => b.Section.Index == _section.Index))
            _image.WriteU32(output, (int)Map(b.Offset),
                Instruction.WithDisplacement(b.Word, (long)Map(b.Target) - (long)Map(b.Offset)));

        // GCC's inline tables: each word is case - base, both of which move. clang's data-section tables are
        // relocations, remapped with the rest below.
        foreach (var table in _tables.InCodeSection(_section.Index).Where(t =>
            t.Form == JumpTableForm.InlineDifferences))
            for (int i = 0; i < table.Count; i++)
                _image.WriteU32(output, (int)(Map(table.Base) + 4UL * (ulong)i),
                    (uint)((long)Map(table.Targets[i]) - (long)Map(table.Base)));
        container.SetSectionData(_section.Index, output);

        foreach (var rs in _image.RelocationSections)
        {
            for (int i = 0; i < rs.Entries.Count; i++)
            {
                var rela = rs.Entries[i];
                if (rs.Target.Index == _section.Index && Map(rela.Offset) != rela.Offset)
                    container.SetRelocationOffset(rs.Section.Index, i, Map(rela.Offset));
                var sym = _image.Symbols[(int)rela.SymbolIndex];
                if (!sym.IsInSection || sym.SectionIndex != (uint)_section.Index) continue;
                ulong anchor = AnchorOf(rs.Target, rela) ?? 0;
                ulong target = unchecked(sym.Value + (ulong)rela.Addend - anchor);
                // Relative to the symbol's new value; a relocation relative to its own place (.TOC.+4) names no code.
                long addend = (long)Map(target) + (long)anchor - (long)Map(sym.Value);
                if (addend != rela.Addend) container.SetRelocationAddend(rs.Section.Index, i, addend);
            }
        }

        foreach (var sym in _image.Symbols.Where(s => s.IsInSection && s.SectionIndex == (uint)_section.Index))
        {
            if (Map(sym.Value) != sym.Value) container.SetSymbolValue(sym.Index, Map(sym.Value));
            if (sym.Size > 0 && sym.Type != SttSection)
            {
                // A call that ends the symbol takes its nop along: Map(end) counts a P equal to the end.
                ulong size = Map(sym.Value + sym.Size) - Map(sym.Value);
                if (size != sym.Size) container.SetSymbolSize(sym.Index, size);
            }
        }
        // ELFv1: function symbols live in .opd and their size is the size of their code here.
        foreach (var f in _functions.InSection(_section.Index).Where(f =>
            f.Symbol.SectionIndex != (uint)_section.Index))
        {
            ulong size = Map(f.End) - Map(f.Start);
            if (size != f.Size) container.SetSymbolSize(f.Symbol.Index, size);
        }
    }

}
