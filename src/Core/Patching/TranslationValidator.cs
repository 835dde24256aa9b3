using PpcLivepatch.Analysis;
using PpcLivepatch.Elf;
using PpcLivepatch.Ppc64;
using static PpcLivepatch.Elf.ElfConstants;

namespace PpcLivepatch.Patching;

/// <summary>
/// What the assembler route knows of an object the assembler laid out again from the compiler's text: the functions
/// that hold inline assembly (hand-written code), and whether inline assembly anywhere computes differences with
/// symbols.
/// </summary>
public sealed record AssembledLayout(IReadOnlySet<string> HandWrittenFunctions, bool HandWrittenSymbolArithmetic)
{
    public bool IsHandWritten(FunctionRange f) =>
        HandWrittenFunctions.Contains(f.Name) || HandWrittenFunctions.Contains(f.Name.TrimStart('.'));
}

/// <summary>A place where the rewritten object could not be shown to mean what the original meant.</summary>
public sealed record ValidationFailure(int Section, string SectionName, ulong Offset, string Why);

/// <summary>
/// What a patch did to the code, as the validator checks it: per section either inserted nops (the sorted points
/// bl+4; an address A moves to A + 4·#{P ≤ A}) or islands (the call, its island, the call's own target when it
/// has no relocation).
/// </summary>
/// <remarks>The assembler route's re-assembly also lays alignment padding out anew: <see cref="DeletedPadding"/> are
/// words of the original it no longer needs (an address moves back 4 for each one before it), and
/// <see cref="InsertedPadding"/> those of <see cref="InsertedNops"/> that are padding, not call nops — an address
/// there may name either side of them (a function's end before the next one's alignment, or an aligned
/// label).</remarks>
public sealed record RewriteMap(
    IReadOnlyDictionary<int, IReadOnlyList<ulong>> InsertedNops,
    IReadOnlyDictionary<int, IReadOnlyList<(ulong Call, ulong Island)>> Islands,
    IReadOnlyDictionary<int, IReadOnlyList<ulong>>? DeletedPadding = null,
    IReadOnlyDictionary<int, IReadOnlyList<ulong>>? InsertedPadding = null)
{
    /// <summary>The map of the strategies' layouts: only their points and islands, not how they map
    /// addresses.</summary>
    public static RewriteMap Of(IEnumerable<CodeLayout> layouts)
    {
        var all = layouts.ToList();
        return new(all.Where(l => l.MovesCode).ToDictionary(l => l.Section, l => l.Points),
                   all.Where(l => l.Islands.Count > 0).ToDictionary(l => l.Section, l => l.Islands));
    }
}

/// <summary>
/// The translation validator: reads the original and the rewritten object side by side and checks, from the address
/// map alone, that every original instruction is at its mapped place and means the same — relative branches land on
/// the mapped target, every relocation moved with its instruction and still names the mapped address, every jump
/// table word still selects the mapped case, every island is <c>bl; nop; b back</c> — and that nothing else in the
/// object changed. It shares no code with the editors beyond instruction decoding and the table proof, so a
/// mistake in how an edit is applied is caught here rather than in a crashed kernel.
/// </summary>
public static class TranslationValidator
{
    /// <param name="assembled">Set only by the assembler route, for an object the assembler laid out again from the
    /// compiler's text: in the compiler's own functions every code address is a symbol or a label difference that the
    /// assembler computes again. There an indirect jump or a program-counter read inside a moved function is the
    /// compiler's, whose targets the assembler keeps (this validator cannot list them); and where no hand-written
    /// function is split and no inline assembly computes with symbols, a data word that changed is such a label
    /// difference. Everything else is checked as for the object rewriters.</param>
    public static List<ValidationFailure> Validate(ObjectAnalysis original, ElfImage after, RewriteMap map,
        AssembledLayout? assembled = null)
    {
        var before = original.Image;
        var tables = original.Tables;
        var failures = new List<ValidationFailure>();
        void Fail(int s, ulong at, string why) =>
            failures.Add(new(s, s < before.Sections.Count ? before.Sections[s].Name : "?", at, why));

        if (before.Sections.Count != after.Sections.Count) { Fail(0, 0, "the section count changed"); return failures; }
        var deleted = map.DeletedPadding ?? new Dictionary<int, IReadOnlyList<ulong>>();
        var moves = map.InsertedNops.Keys.Union(deleted.Keys).ToDictionary(k => k, k => new AddressMap(
            map.InsertedNops.TryGetValue(k, out var p) ? p : [], deleted.TryGetValue(k, out var d) ? d : [],
            map.InsertedPadding?.TryGetValue(k, out var ip) == true ? ip : []));
        var functions = original.Functions;
        bool labelDataMayChange = assembled is { HandWrittenSymbolArithmetic: false } && functions.All.All(f =>
            !assembled.IsHandWritten(f) || !moves.TryGetValue(f.SectionIndex, out var fm)
            || !fm.Splits(f.Start, f.End));
        foreach (var s in before.Sections)
        {
            var t = after.Sections[s.Index];
            if (t.Name != s.Name || t.Type != s.Type || t.Flags != s.Flags) { Fail(s.Index, 0, "the section's name, " +
                "type or flags changed"); continue; }
            if (moves.TryGetValue(s.Index, out var m))
                CheckMovedCode(before, after, s, m, functions, tables, Fail, assembled);
            else if (map.Islands.TryGetValue(s.Index, out var islands)) CheckIslands(before, after, s, islands, Fail);
            else if (s.Type == ShtLlvmAddrsig)
            {
                // Symbol indices: they may be renumbered, but must name the same symbols.
                if (!AddrsigNames(before, s).SequenceEqual(AddrsigNames(after, t))) Fail(s.Index, 0,
                    "the address-significant symbols changed");
            }
            else if (!IsRewrittenMetadata(s) && s.HasFileData && !(labelDataMayChange && !s.IsExecutable)
                && !before.Data(s).SequenceEqual(after.Data(t)))
                Fail(s.Index, FirstDifference(before.Data(s), after.Data(t)),
                    "a section no strategy rewrote has changed");
        }
        CheckRelocations(before, after, map, moves, tables, Fail, labelDataMayChange);
        CheckSymbols(before, after, map, moves, Fail);
        return failures;
    }

    private const uint ShtLlvmAddrsig = 0x6FFF_4C03;

    private static List<string> AddrsigNames(ElfImage image, ElfSection s)
    {
        var names = new List<string>();
        var data = image.Data(s);
        for (int at = 0; at < data.Length; )
        {
            ulong index = Leb128.Read(data, ref at);
            names.Add(index < (ulong)image.Symbols.Count ? image.Symbols[(int)index].Name : $"#{index}");
        }
        return names;
    }

    /// <summary>Sections whose bytes other editors legitimately rewrite (tables of symbols and relocations, unwind,
    /// DWARF).</summary>
    private static bool IsRewrittenMetadata(ElfSection s) =>
        s.Type is ShtRela or ShtSymtab or ShtStrtab || s.Name is ".eh_frame"
            || s.Name.StartsWith(".debug_", StringComparison.Ordinal);

    private static ulong FirstDifference(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b)
    {
        int n = Math.Min(a.Length, b.Length), i = 0;
        while (i < n && a[i] == b[i]) i++;
        return (ulong)i;
    }

    /// <summary>The insert-nop address map, written out again here: A → A + 4·#{P ≤ A} − 4·#{D &lt; A} (D: deleted
    /// padding words); inside a word, the distance to the next word is kept.</summary>
    private sealed class AddressMap(IReadOnlyList<ulong> points, IReadOnlyList<ulong> deleted,
        IReadOnlyList<ulong> padding)
    {
        private readonly ILookup<ulong, ulong> _padding = padding.ToLookup(p => p);

        /// <summary>Where an address lands when it names the end of what comes before padding inserted there.</summary>
        public ulong MapBeforePadding(ulong a) => Map(a) - 4UL * (ulong)_padding[a].Count();

        public bool Names(ulong a, ulong now) => now == Map(a) || now == MapBeforePadding(a);

        public IReadOnlyList<ulong> Points { get; } = points;

        public IReadOnlyList<ulong> Deleted { get; } = deleted;

        private readonly HashSet<ulong> _deleted = [.. deleted];

        public bool IsDeleted(ulong a) => _deleted.Contains(a);

        public ulong Map(ulong a)
        {
            ulong up = (a + 3) & ~3UL;
            return up + 4UL * (ulong)Count(Points, up, inclusive: true)
                - 4UL * (ulong)Count(Deleted, up, inclusive: false) - (up - a);
        }

        private static int Count(IReadOnlyList<ulong> sorted, ulong a, bool inclusive)
        {
            int lo = 0, hi = sorted.Count;
            while (lo < hi)
            {
                int mid = (lo + hi) >>> 1;
                if (sorted[mid] < a || inclusive && sorted[mid] == a) lo = mid + 1; else hi = mid;
            }
            return lo;
        }

        /// <summary>True when some point lies strictly inside (start, end): the range does not move as one.</summary>
        public bool Splits(ulong start, ulong end) =>
            Points.Any(p => p > start && p < end) || Deleted.Any(d => d >= start && d + 4 < end);
    }

    /// <summary>The assembler's alignment padding: a nop, or the group-ending <c>ori r2,r2,0</c>.</summary>
    internal static bool IsPadding(uint word) => word is Instruction.Nop or 0x6042_0000;

    private static void CheckMovedCode(ElfImage before, ElfImage after, ElfSection s, AddressMap m,
        FunctionMap functions, JumpTableAnalysis tables, Action<int, ulong, string> fail, AssembledLayout? assembled)
    {
        var old = before.Data(s);
        var now = after.Data(after.Sections[s.Index]);
        if ((ulong)now.Length + 4UL * (ulong)m.Deleted.Count != (ulong)old.Length + 4UL * (ulong)m.Points.Count)
        {
            fail(s.Index, 0, $"the section is {now.Length} bytes, not {old.Length} + 4 × {m.Points.Count} inserted " +
                $"nops - 4 × {m.Deleted.Count} padding words");
            return;
        }
        foreach (ulong p in m.Points)
            if (p > (ulong)old.Length || !IsPadding(after.ReadU32(now, (int)(m.Map(p) - 4))))
                fail(s.Index, p, "no nop where one was inserted");
        foreach (ulong d in m.Deleted)
            if (d + 4 > (ulong)old.Length || !IsPadding(before.ReadU32(old, (int)d)))
                fail(s.Index, d, $"the word at +0x{d:x} was dropped, and it is not alignment padding");

        var relocated = before.RelocationSections.Where(r =>
            r.Target.Index == s.Index).SelectMany(r => r.Entries).Select(e => e.Offset & ~3UL).ToHashSet();
        var inline = tables.InCodeSection(s.Index).Where(t => t.Form == JumpTableForm.InlineDifferences).ToList();
        var tableWord = new Dictionary<ulong, JumpTable>();
        foreach (var t in inline) for (ulong at = t.Base; at < t.End; at += 4) tableWord[at] = t;
        var dispatches = tables.InCodeSection(s.Index).Select(t => t.Dispatch).ToHashSet();

        for (ulong a = 0; a + 4 <= (ulong)old.Length; a += 4)
        {
            if (m.IsDeleted(a)) continue;
            uint w0 = before.ReadU32(old, (int)a), w1 = after.ReadU32(now, (int)m.Map(a));
            var f = functions.Containing(s.Index, a);
            bool inCode = f is not null && a >= f.Start && a < f.End;
            bool compilers = inCode && assembled is not null && !assembled.IsHandWritten(f!);
            if (tableWord.TryGetValue(a, out var table))
            {
                long target = (long)table.Base + (int)w0;
                long expected = (long)m.Map((ulong)target) - (long)m.Map(table.Base);
                if ((int)w1 != expected) fail(s.Index, a,
                    $"the jump table word at +0x{a:x} selects +0x{(long)m.Map(table.Base) + (int)w1:x}, not the " +
                        $"case's new place +0x{m.Map((ulong)target):x}");
                continue;
            }
            if (inCode && !compilers && JumpTableAnalysis.IsIndirectJump(w0) && !dispatches.Contains(a)
                && m.Splits(f!.Start, f.End))
                fail(s.Index, a, $"the indirect jump at +0x{a:x} has no proven table, and a nop went in inside its " +
                    "function");
            if (inCode && Instruction.IsRelativeBranch(w0) && !relocated.Contains(a))
            {
                ulong target = (ulong)((long)a + Instruction.BranchDisplacement(w0));
                if (!compilers && Instruction.IsRelativeLinkBranch(w0) && target == a + 4 && m.Splits(f!.Start, f.End))
                    fail(s.Index, a, $"the code reads the program counter at +0x{a:x} (bl .+4), and a nop went in " +
                        "inside its function");
                if (!Instruction.IsRelativeBranch(w1) || (w1 & ~DisplacementMask(w1)) != (w0 & ~DisplacementMask(w0))
                    || (long)m.Map(a) + Instruction.BranchDisplacement(w1) != (long)m.Map(target))
                    fail(s.Index, a, $"the branch at +0x{a:x} (to +0x{target:x}) no longer lands on its target's new " +
                        $"place +0x{m.Map(target):x}");
                continue;
            }
            if (w0 != w1 && !(compilers && IsTableWordOfTheAssemblers(before, old, f!, a, w0, w1, m)))
                fail(s.Index, a, $"the word at +0x{a:x} changed (0x{w0:x8} → 0x{w1:x8})");
        }
    }

    /// <summary>
    /// In the compiler's own function laid out again by the assembler, a word of GCC's in-code jump table
    /// (<c>bctr</c>, then <c>.long .Lcase-.Ltable</c> words) that the analysis did not prove: it must read, before
    /// and after, as a case inside the function measured from the table's start — the words after the nearest
    /// <c>bctr</c> before it (alignment padding skipped).
    /// </summary>
    private static bool IsTableWordOfTheAssemblers(ElfImage image, ReadOnlySpan<byte> old, FunctionRange f, ulong a,
        uint w0, uint w1, AddressMap m)
    {
        ulong at = a;
        while (at >= f.Start + 4 && image.ReadU32(old, (int)(at - 4)) != Instruction.Bctr) at -= 4;
        if (at < f.Start + 4) return false;
        ulong table = at;
        while (table < a && IsPadding(image.ReadU32(old, (int)table))) table += 4;
        long target = (long)table + (int)w0;
        return target >= (long)f.Start && target < (long)f.End
            && (long)(int)w1 == (long)m.Map((ulong)target) - (long)m.Map(table);
    }

    private static uint DisplacementMask(uint w) => Instruction.PrimaryOpcode(w) == 18 ? 0x03FF_FFFCu : 0x0000_FFFCu;

    private static void CheckIslands(ElfImage before, ElfImage after, ElfSection s,
        IReadOnlyList<(ulong Call, ulong Island)> islands,
        Action<int, ulong, string> fail)
    {
        var old = before.Data(s);
        var now = after.Data(after.Sections[s.Index]);
        var calls = islands.ToDictionary(i => i.Call, i => i.Island);
        if (now.Length < old.Length) { fail(s.Index, 0, "the section shrank"); return; }
        for (ulong a = 0; a + 4 <= (ulong)old.Length; a += 4)
        {
            uint w0 = before.ReadU32(old, (int)a), w1 = after.ReadU32(now, (int)a);
            if (!calls.TryGetValue(a, out ulong island))
            {
                if (w0 != w1) fail(s.Index, a, $"the word at +0x{a:x} changed (0x{w0:x8} → 0x{w1:x8})");
                continue;
            }
            if (Instruction.Classify(w1) != BranchKind.B
                || (long)a + Instruction.BranchDisplacement(w1) != (long)island)
                { fail(s.Index, a, $"the call at +0x{a:x} does not branch to its island at +0x{island:x}"); continue; }
            if (island + 12 > (ulong)now.Length)
            {
                fail(s.Index, a, "the island lies past the section's end");
                continue;
            }
            uint bl = after.ReadU32(now, (int)island), nop = after.ReadU32(now, (int)island + 4),
                back = after.ReadU32(now, (int)island + 8);
            bool relocated = before.RelocationSections.Any(r =>
                r.Target.Index == s.Index && r.Entries.Any(e => (e.Offset & ~3UL) == a));
            bool callOk = Instruction.Classify(bl) == BranchKind.Bl
                          && (relocated || (long)island + Instruction.BranchDisplacement(bl)
                              == (long)a + Instruction.BranchDisplacement(w0));
            if (!callOk) fail(s.Index, a, $"the island at +0x{island:x} does not make the original call");
            if (nop != Instruction.Nop) fail(s.Index, a, $"the island at +0x{island:x} has no nop after its call");
            if (Instruction.Classify(back) != BranchKind.B
                || (long)island + 8 + Instruction.BranchDisplacement(back) != (long)a + 4)
                fail(s.Index, a, $"the island at +0x{island:x} does not return to +0x{a + 4:x}");
        }
        var islandWords = islands.SelectMany(i => new[] { i.Island, i.Island + 4, i.Island + 8 }).ToHashSet();
        for (ulong a = (ulong)old.Length & ~3UL; a + 4 <= (ulong)now.Length; a += 4)
            if (a >= (ulong)old.Length && !islandWords.Contains(a) && after.ReadU32(now, (int)a) != 0)
                fail(s.Index, a, $"the word at +0x{a:x}, past the original code, belongs to no island");
    }

    /// <param name="labelDifferences">The assembler route's trust (see <see cref="Validate"/>): a place-relative
    /// data word naming moved code is a label difference (<c>.long .Lcase-.Ltable</c>) the assembler computed.</param>
    private static void CheckRelocations(ElfImage before, ElfImage after, RewriteMap map,
        Dictionary<int, AddressMap> moves, JumpTableAnalysis tables, Action<int, ulong, string> fail,
        bool labelDifferences)
    {
        var afterByIndex = after.RelocationSections.ToDictionary(r => r.Section.Index);
        foreach (var rs in before.RelocationSections)
        {
            if (!afterByIndex.TryGetValue(rs.Section.Index, out var ra) || ra.Entries.Count < rs.Entries.Count
                || (ra.Entries.Count > rs.Entries.Count && !AreIslandLineAddresses(before, after, rs, ra, map)))
            {
                fail(rs.Target.Index, 0, $"{rs.Section.Name} lost or gained entries");
                continue;
            }
            var islandCalls = map.Islands.TryGetValue(rs.Target.Index, out var isl) ? isl.ToDictionary(i =>
                i.Call, i => i.Island) : [];
            bool metadata = IsRewrittenMetadata(rs.Target);
            for (int i = 0; i < rs.Entries.Count; i++)
            {
                var e0 = rs.Entries[i];
                var e1 = ra.Entries[i];
                var s0 = before.Symbols[(int)e0.SymbolIndex];
                var s1 = after.Symbols[(int)e1.SymbolIndex];
                if (e0.Type != e1.Type || s0.Name != s1.Name || s0.Info != s1.Info
                    || s0.SectionIndex != s1.SectionIndex)
                {
                    fail(rs.Target.Index, e0.Offset,
                        $"the relocation at {rs.Target.Name}+0x{e0.Offset:x} changed its type or symbol");
                    continue;
                }
                ulong expectedOffset = moves.TryGetValue(rs.Target.Index, out var mt) ? mt.Map(e0.Offset)
                    : islandCalls.TryGetValue(e0.Offset & ~3UL,
                        out ulong island) ? island + (e0.Offset & 3) : e0.Offset;
                if (!metadata && e1.Offset != expectedOffset)
                    fail(rs.Target.Index, e0.Offset,
                        $"the relocation at {rs.Target.Name}+0x{e0.Offset:x} did not move with its instruction (now " +
                            $"+0x{e1.Offset:x}, expected +0x{expectedOffset:x})");
                // offsets into DWARF the DWARF editor grew
                if (s0.IsInSection && IsRewrittenMetadata(before.Sections[(int)s0.SectionIndex])) continue;
                if (!s0.IsInSection || !moves.TryGetValue((int)s0.SectionIndex, out var ms))
                {
                    if (e0.Addend != e1.Addend && !EndGrownOverIslands(before, after, map, rs, s0, e0, e1))
                        fail(rs.Target.Index, e0.Offset,
                            $"the relocation at {rs.Target.Name}+0x{e0.Offset:x} changed its addend, but nothing it " +
                                "names moved");
                    continue;
                }
                var proven = RelocationMeaning.Anchor(rs.Target, e0, (int)s0.SectionIndex, tables);
                if (proven is null && labelDifferences && !rs.Target.IsExecutable
                    && RelocationMeaning.IsPlaceRelative(e0.Type) && IsLabelDifference(s0.Value, e0, e1, ms))
                    continue;
                if (proven is not { } anchor)
                {
                    fail(rs.Target.Index, e0.Offset,
                        $"the relocation at {rs.Target.Name}+0x{e0.Offset:x} names moved code in a way whose meaning " +
                            "is not known");
                    continue;
                }
                ulong meant = unchecked(s0.Value + (ulong)e0.Addend - anchor);
                ulong now = unchecked(s1.Value + (ulong)e1.Addend - anchor);
                if (!ms.Names(meant, now))
                    fail(rs.Target.Index, e0.Offset,
                        $"the relocation at {rs.Target.Name}+0x{e0.Offset:x} names +0x{now:x}, not the new place " +
                            $"+0x{ms.Map(meant):x} of +0x{meant:x}");
            }
        }
    }

    /// <summary>
    /// A place-relative word <c>.long L - B</c> with B a table start k bytes before the word: S + A = L + k before
    /// and Map(L) + k after, for one k between 0 and the word's offset (the word's place does not move).
    /// </summary>
    private static bool IsLabelDifference(ulong symbol, ElfRela e0, ElfRela e1, AddressMap m)
    {
        ulong named = unchecked(symbol + (ulong)e0.Addend), now = unchecked(symbol + (ulong)e1.Addend);
        for (ulong k = 0; k <= e0.Offset && k <= named; k += 4)
            if (m.Names(named - k, now - k)) return true;
        return false;
    }

    /// <summary>A debug range that ended at the end of a section with islands now ends after the islands.</summary>
    private static bool EndGrownOverIslands(ElfImage before, ElfImage after, RewriteMap map, ElfRelocationSection rs,
        ElfSymbol s0, ElfRela e0, ElfRela e1) =>
        IsRewrittenMetadata(rs.Target) && s0.IsInSection && map.Islands.ContainsKey((int)s0.SectionIndex)
        && unchecked(s0.Value + (ulong)e0.Addend) == before.Sections[(int)s0.SectionIndex].Size
        && unchecked(s0.Value + (ulong)e1.Addend) == after.Sections[(int)s0.SectionIndex].Size;

    /// <summary>Entries added after the original ones only in .debug_line: each names one island (its line
    /// rows).</summary>
    private static bool AreIslandLineAddresses(ElfImage before, ElfImage after, ElfRelocationSection rs,
        ElfRelocationSection ra, RewriteMap map) =>
        rs.Target.Name == ".debug_line" && ra.Entries.Skip(rs.Entries.Count).All(e =>
        {
            var sym = after.Symbols[(int)e.SymbolIndex];
            return e.Type == R.PPC64_ADDR64 && sym.Type == SttSection
                && map.Islands.TryGetValue((int)sym.SectionIndex, out var islands)
                   && islands.Any(i => (long)i.Island == e.Addend);
        });

    private static void CheckSymbols(ElfImage before, ElfImage after, RewriteMap map, Dictionary<int, AddressMap> moves,
        Action<int, ulong, string> fail)
    {
        int j = 0, opd = IndexOf(before, ".opd");
        foreach (var s0 in before.Symbols)
        {
            // Skip the island symbols this rewrite added.
            while (j < after.Symbols.Count && after.Symbols[j].Name != s0.Name
                && IslandPlanner.IsIslandSymbol(after.Symbols[j])) j++;
            if (j >= after.Symbols.Count) { fail(0, 0, $"symbol {s0.Name} is missing from the output"); return; }
            var s1 = after.Symbols[j++];
            int section = s0.IsInSection ? (int)s0.SectionIndex : 0;
            if (s1.Name != s0.Name || s1.Info != s0.Info || s1.Other != s0.Other || s1.SectionIndex != s0.SectionIndex)
            {
                fail(section, s0.Value, $"symbol {s0.Name} changed its name, type, binding, visibility or section");
                continue;
            }
            if (s0.IsInSection && moves.TryGetValue(section, out var m))
            {
                if (s1.Value != m.Map(s0.Value)) fail(section, s0.Value,
                    $"symbol {s0.Name} is at +0x{s1.Value:x}, not at its new place +0x{m.Map(s0.Value):x}");
                if (s0.Size > 0 && s0.Type != SttSection && !m.Names(s0.Value + s0.Size, m.Map(s0.Value) + s1.Size))
                    fail(section, s0.Value, $"symbol {s0.Name} no longer spans its code");
                continue;
            }
            if (s1.Value != s0.Value) fail(section, s0.Value, $"symbol {s0.Name} moved, but its section did not");
            // A function whose islands were appended grows over them; nothing else changes size.
            bool grows = s0.IsInSection && map.Islands.ContainsKey(section) || s0.SectionIndex == (uint)opd;
            if (s1.Size != s0.Size && !(grows && s1.Size > s0.Size)) fail(section, s0.Value,
                $"symbol {s0.Name} changed its size");
        }
    }

    private static int IndexOf(ElfImage image, string name) =>
        image.Sections.FirstOrDefault(s => s.Name == name)?.Index ?? -1;
}
