using PpcLivepatch.Elf;
using PpcLivepatch.Ppc64;
using static PpcLivepatch.Elf.ElfConstants;

namespace PpcLivepatch.Analysis;

/// <summary>How a jump table stores its case addresses.</summary>
public enum JumpTableForm
{
    /// <summary>GCC: <c>.long case - table</c> words in the code section right after the dispatch; no
    /// relocations.</summary>
    InlineDifferences,
    /// <summary>clang (medium model): the table in a data section, each word an <c>R_PPC64_REL32</c> to the
    /// case.</summary>
    RelocatedDifferences,
}

/// <summary>
/// A jump table tied to its dispatch (<c>lwax; add; mtctr; bctr</c>), with the number of entries proven from the
/// index's bound, and the code address each entry selects.
/// </summary>
public sealed record JumpTable(int CodeSection, ulong Dispatch, int TableSection, ulong Base, int Count,
    JumpTableForm Form, IReadOnlyList<ulong> Targets)
{
    public ulong End => Base + 4UL * (ulong)Count;
}

/// <summary>An indirect jump whose table (if any) could not be proven, and why.</summary>
public sealed record UnprovenDispatch(int Section, ulong Offset, string Why);

/// <summary>
/// Finds every indirect jump (<c>bctr</c>) in the object's code and proves, from the instructions alone, which table
/// it reads and how long that table is. A proof follows the dispatch's registers back through straight-line code
/// (any instruction control can reach from elsewhere ends it, unless every way in establishes the same fact), takes
/// the table's length from the index's bound (<c>cmplwi; bgt</c> on every path, or a mask), and checks the table
/// against the code around it. Anything else is unproven: a section holding it must not have its code moved.
/// </summary>
public sealed class JumpTableAnalysis
{
    private readonly ElfImage _image;
    private readonly FunctionMap _functions;
    private readonly CodeReferences _references;
    private readonly Lazy<ObjectContext> _context;
    // Per code section, computed when first asked: a patch only asks about the sections it edits.
    private readonly Dictionary<int, SectionTables> _sections = [];

    private sealed record SectionTables(List<JumpTable> Tables, List<UnprovenDispatch> Unproven,
        Dictionary<(int Section, ulong Offset), JumpTable> ByEntry);

    public JumpTableAnalysis(ElfImage image, FunctionMap functions, CodeReferences references)
    {
        _image = image;
        _functions = functions;
        _references = references;
        _context = new(() => new ObjectContext(image));
    }

    private SectionTables For(int codeSection)
    {
        if (_sections.TryGetValue(codeSection, out var known)) return known;
        var section = _image.Sections[codeSection];
        var result = section.IsExecutable && section.HasFileData ? Prove(section) : ([], []);
        var byEntry = new Dictionary<(int, ulong), JumpTable>();
        foreach (var t in result.Tables.Where(t => t.Form == JumpTableForm.RelocatedDifferences))
            for (int k = 0; k < t.Count; k++) byEntry[(t.TableSection, t.Base + 4UL * (ulong)k)] = t;
        return _sections[codeSection] = new SectionTables(result.Tables, result.Unproven, byEntry);
    }

    private (List<JumpTable> Tables, List<UnprovenDispatch> Unproven) Prove(ElfSection section)
    {
        var prover = new SectionProver(_image, section, _functions, _references, _context.Value);
        // The first round leaves out the check that a table ends where code starts: two tables can each end at
        // a case of the other (GCC shares case blocks between switches). The proven tables' cases are ways into
        // the code too, and every proof must hold with all of them known: iterate until the proven set is stable.
        var first = prover.ProveAll([], checkExtent: false);
        for (int round = 0; first.Tables.Count > 0; round++)
        {
            var next = prover.ProveAll(first.Tables.SelectMany(t => t.Targets).ToHashSet(), checkExtent: true);
            bool stable = next.Tables.SequenceEqual(first.Tables, TableComparer.Instance);
            first = next;
            if (stable) break;
            if (round == 4)
                return ([], [.. next.Unproven,
                    .. next.Tables.Select(t => new UnprovenDispatch(section.Index, t.Dispatch, "the tables' proofs " +
                        "do not settle"))]);
        }
        return first;
    }

    /// <summary>bcctr without link: <c>bctr</c> and its conditional forms — a jump whose target is computed.</summary>
    public static bool IsIndirectJump(uint w) => w >> 26 == 19 && ((w >> 1) & 0x3ff) == 528 && (w & 1) == 0;

    /// <summary>Every proven table of the object (all code sections).</summary>
    public IReadOnlyList<JumpTable> Tables => AllSections().SelectMany(s => s.Tables).ToList();

    /// <summary>Every indirect jump of the object whose table could not be proven.</summary>
    public IReadOnlyList<UnprovenDispatch> Unproven => AllSections().SelectMany(s => s.Unproven).ToList();

    private IEnumerable<SectionTables> AllSections() =>
        _image.Sections.Where(s => s.IsExecutable && s.HasFileData).Select(s => For(s.Index));

    public IReadOnlyList<JumpTable> InCodeSection(int section) => For(section).Tables;

    public IReadOnlyList<UnprovenDispatch> UnprovenIn(int section) => For(section).Unproven;

    /// <summary>
    /// For a word of a proven data-section table of <paramref name="codeSection"/>'s code: how far its relocation's
    /// addend reaches past the case it names (the word's distance from the table's base, since the code adds the base
    /// back). Null for anything else.
    /// </summary>
    public ulong? EntryAnchor(int codeSection, int tableSection, ulong offset) =>
        For(codeSection).ByEntry.TryGetValue((tableSection, offset), out var t) ? offset - t.Base : null;

    private sealed class TableComparer : IEqualityComparer<JumpTable>
    {
        public static readonly TableComparer Instance = new();
        public bool Equals(JumpTable? a, JumpTable? b) => a is not null && b is not null && a.Dispatch == b.Dispatch
            && a.Base == b.Base && a.Count == b.Count && a.TableSection == b.TableSection
            && a.Targets.SequenceEqual(b.Targets);
        public int GetHashCode(JumpTable t) => HashCode.Combine(t.Dispatch, t.Base, t.Count);
    }

    /// <summary>Object-wide lookups: relocations by the word they patch, and what each <c>.toc</c> entry
    /// holds.</summary>
    private sealed class ObjectContext
    {
        public readonly Dictionary<(int Section, ulong Word), (ElfRela Rela, ElfSymbol Symbol)> RelocationAt = [];
        public readonly ILookup<int, (ElfRelocationSection Rs, ElfRela Rela, ElfSymbol Symbol)> IntoSection;

        public ObjectContext(ElfImage image)
        {
            var into = new List<(int, (ElfRelocationSection, ElfRela, ElfSymbol))>();
            foreach (var rs in image.RelocationSections)
            foreach (var rela in rs.Entries)
            {
                var sym = image.Symbols[(int)rela.SymbolIndex];
                RelocationAt.TryAdd((rs.Target.Index, rela.Offset & ~3UL), (rela, sym));
                if (sym.IsInSection) into.Add(((int)sym.SectionIndex, (rs, rela, sym)));
            }
            IntoSection = into.ToLookup(x => x.Item1, x => x.Item2);
        }
    }

    private sealed class SectionProver
    {
        private const int MaxEntries = 1 << 14;
        private const int MaxJoinDepth = 6;
        private readonly ElfImage _image;
        private readonly ElfSection _section;
        private readonly ReadOnlyMemory<byte> _bytes;
        private readonly FunctionMap _functions;
        private readonly ObjectContext _context;
        private readonly Dictionary<ulong, List<LocalBranch>> _branchesTo = [];
        private readonly HashSet<ulong> _otherEntries = [];

        public SectionProver(ElfImage image, ElfSection section, FunctionMap functions, CodeReferences references,
            ObjectContext context)
        {
            _image = image;
            _section = section;
            _bytes = image.Data(section).ToArray();
            _functions = functions;
            _context = context;
            foreach (var b in references.RelocationFreeBranches.Where(b => b.Section.Index == section.Index))
                (_branchesTo.TryGetValue(b.Target, out var list) ? list : _branchesTo[b.Target] = []).Add(b);
            foreach (var f in functions.InSection(section.Index))
            {
                _otherEntries.Add(f.Start);
                _otherEntries.Add(f.Start + (ulong)AbiFacts.LocalEntryOffset(image.Abi, f.Symbol.Other));
            }
            foreach (var sym in image.Symbols.Where(s =>
                s.IsInSection && s.SectionIndex == (uint)section.Index && s.Type != SttSection))
                _otherEntries.Add(sym.Value);
            foreach (var (rs, rela, sym) in context.IntoSection[section.Index])
            {
                string from = rs.Target.Name;
                // line and range addresses, not ways in
                if (from.StartsWith(".debug_", StringComparison.Ordinal)) continue;
                // A data word relative to its own place may be a table entry: those are proven below, never assumed.
                if (!rs.Target.IsExecutable && RelocationMeaning.IsPlaceRelative(rela.Type)
                    && !RelocationMeaning.AddsPlaceBack(from))
                    continue;
                ulong anchor = KernelTables.AnchorOf(from, rela) ?? 0;
                _otherEntries.Add(unchecked(sym.Value + (ulong)rela.Addend - anchor));
            }
        }

        private HashSet<ulong> _caseEntries = [];
        private bool _checkExtent;

        /// <summary>Proves every dispatch of the section, with <paramref name="cases"/> as further ways into the
        /// code.</summary>
        public (List<JumpTable> Tables, List<UnprovenDispatch> Unproven) ProveAll(HashSet<ulong> cases,
            bool checkExtent)
        {
            _caseEntries = cases;
            _checkExtent = checkExtent;
            var tables = new List<JumpTable>();
            var unproven = new List<UnprovenDispatch>();
            foreach (var f in _functions.InSection(_section.Index))
            {
                for (ulong at = f.Start; at + 4 <= f.End && at + 4 <= (ulong)_bytes.Length; at += 4)
                {
                    if (!IsIndirectJump(Word(at))) continue;
                    if (tables.Any(t => t.Form == JumpTableForm.InlineDifferences && at >= t.Base && at < t.End))
                        continue;
                    var (table, why) = Prove(f, at);
                    if (table is not null) tables.Add(table);
                    else unproven.Add(new UnprovenDispatch(_section.Index, at, why!));
                }
            }
            // Tables may not overlap each other, and an inline table's words are nobody's code.
            foreach (var t in tables.Where(t => t.Form == JumpTableForm.InlineDifferences))
            {
                if (tables.Any(o => o != t && o.TableSection == t.TableSection && o.Base < t.End && t.Base < o.End))
                    return ([], [.. unproven,
                        .. tables.Select(x => new UnprovenDispatch(_section.Index, x.Dispatch, "two tables overlap"))]);
                if (tables.SelectMany(o => o.Targets).Any(x => x >= t.Base && x < t.End))
                    return ([], [.. unproven,
                        .. tables.Select(x => new UnprovenDispatch(_section.Index, x.Dispatch, "a case lands inside " +
                            "a table"))]);
            }
            return (tables, unproven);
        }

        private uint Word(ulong at) => _image.ReadU32(_bytes.Span, (int)at);

        private bool IsEntry(ulong at) =>
            _branchesTo.ContainsKey(at) || _otherEntries.Contains(at) || _caseEntries.Contains(at);


        /// <summary>A word after which control never falls through: b, blr, bctr (and their "always" B-form
        /// twins).</summary>
        private static bool IsUnconditionalTransfer(uint w)
        {
            uint op = w >> 26, bo = (w >> 21) & 31;
            if (op == 18) return (w & 1) == 0;
            bool always = (bo & 0x14) == 0x14;
            if (op == 16) return always && (w & 1) == 0;
            return op == 19 && ((w >> 1) & 0x3ff) is 16 or 528 && always && (w & 1) == 0;
        }

        /// <summary>
        /// Walks back from the instruction at <paramref name="from"/> through straight-line code to the one that
        /// writes what <paramref name="writes"/> tracks. Null when a way in from elsewhere, an instruction this does
        /// not decode, or the start of the function comes first.
        /// </summary>
        private ulong? FindWriter(FunctionRange f, ulong from, Func<RegisterEffects, bool> writes, out string why)
        {
            for (ulong at = from; ; at -= 4)
            {
                if (IsEntry(at)) { why = $"code at +0x{at:x} is reached from elsewhere"; return null; }
                if (at <= f.Start) { why = "the function starts first"; return null; }
                uint w = Word(at - 4);
                if (IsUnconditionalTransfer(w))
                {
                    why = $"+0x{at:x} follows a branch that never falls through";
                    return null;
                }
                var e = RegisterEffects.Of(w);
                if (!e.Known)
                {
                    why = $"the instruction at +0x{at - 4:x} (0x{w:x8}) is not one the proof decodes";
                    return null;
                }
                if (writes(e)) { why = ""; return at - 4; }
            }
        }

        private (JumpTable? Table, string? Why) Prove(FunctionRange f, ulong dispatch)
        {
            if (Word(dispatch) != Instruction.Bctr) return (null,
                $"a conditional indirect jump (0x{Word(dispatch):x8})");
            if (IsEntry(dispatch)) return (null, "the bctr is reached from elsewhere");
            if (FindWriter(f, dispatch, e => e.Ctr, out string why) is not { } mtctr) return (null, why);
            uint w = Word(mtctr);
            if (!(w >> 26 == 31 && ((w >> 1) & 0x3ff) == 467 && RegisterEffects.SprOf(w) == 9)) return (null,
                "CTR is not set by mtctr");
            int target = (int)(w >> 21) & 31;
            if (FindWriter(f, mtctr, e => e.WritesGpr(target), out why) is not { } add) return (null, why);
            w = Word(add);
            if (!(w >> 26 == 31 && ((w >> 1) & 0x1ff) == 266)) return (null,
                "the jump's address is not a sum (add) of a table word and its base");
            int a = (int)(w >> 16) & 31, b = (int)(w >> 11) & 31;
            string last = "the jump's address is not a table word (lwax) plus the table's base";
            bool loaded = false;
            foreach (var (entryReg, baseReg) in new[] { (a, b), (b, a) })
            {
                var result = ProveWith(f, dispatch, add, entryReg, baseReg, out why, out bool thisLoaded);
                if (result is not null) return (result, null);
                // Report the attempt that got furthest: the one whose operand really is the loaded table word.
                if (thisLoaded || !loaded) last = why;
                loaded |= thisLoaded;
            }
            return (null, last);
        }

        private JumpTable? ProveWith(FunctionRange f, ulong dispatch, ulong add, int entryReg, int baseReg,
            out string why, out bool loaded)
        {
            loaded = false;
            if (FindWriter(f, add, e => e.WritesGpr(entryReg), out why) is not { } load) return null;
            uint w = Word(load);
            if (!(w >> 26 == 31 && ((w >> 1) & 0x3ff) == 341))
            {
                why = "the table word is not loaded by lwax";
                return null;
            }
            loaded = true;
            if (FindWriter(f, add, e => e.WritesGpr(baseReg), out why) is not { } baseDef) return null;
            int x = (int)(w >> 16) & 31, y = (int)(w >> 11) & 31;
            int indexReg;
            if (x == baseReg && FindWriter(f, load, e => e.WritesGpr(x), out _) == baseDef) indexReg = y;
            else if (y == baseReg && FindWriter(f, load, e => e.WritesGpr(y), out _) == baseDef) indexReg = x;
            else { why = "the table word is not read from the base the jump adds"; return null; }
            if (FindWriter(f, load, e => e.WritesGpr(indexReg), out why) is not { } shift) return null;
            if (ScaledIndex(Word(shift)) is not var (index, maskBound)) { why = "the table index is not scaled by 4 " +
                "(sldi/rldic/slwi)"; return null; }
            _budget = 4096;
            // A scale that also masks (rldic r,i,2,57 keeps i & 31) bounds the index by itself; a compare may bound it
            // tighter.
            ulong? proven = ProveBound(f, shift, index, 0, out why);
            if ((proven ?? maskBound) is not { } found) return null;
            ulong bound = Math.Min(found, maskBound ?? ulong.MaxValue);
            if (bound >= MaxEntries) { why = $"the index bound {bound} is implausible for a table"; return null; }
            if (TableBase(f, baseDef, out why) is not { } tableBase) return null;
            int count = (int)bound + 1;
            return tableBase.Section == _section.Index
                ? InlineTable(f, dispatch, tableBase.Offset, count, out why)
                : RelocatedTable(f, dispatch, tableBase.Section, tableBase.Offset, count, out why);
        }

        /// <summary> The register scaled by 4 into a table offset — sldi rS,rI,2 · slwi rS,rI,2 · rldic rS,rI,2,mb —
        /// and the bound the scale itself puts on the index when it also masks (rldic with mb &gt; 32 keeps only 62-mb
        /// bits). </summary>
        private static (int Index, ulong? MaskBound)? ScaledIndex(uint w)
        {
            int rs = (int)(w >> 21) & 31;
            if (w >> 26 == 30)
            {
                uint xo = (w >> 2) & 7;
                int sh = (int)((w >> 11) & 31) | (int)((w >> 1) & 1) << 5;
                uint field = (w >> 5) & 0x3f;
                int m = (int)(((field & 1) << 5) | (field >> 1));
                if (sh != 2) return null;
                if (xo == 1 && m == 61) return (rs, null);
                if (xo == 2 && m <= 32) return (rs, null);
                if (xo == 2 && m < 62) return (rs, (1UL << (62 - m)) - 1);
                return null;
            }
            if (w >> 26 == 21 && ((w >> 11) & 31) == 2 && ((w >> 6) & 31) == 0 && ((w >> 1) & 31) == 29) return (rs,
                null);
            return null;
        }

        /// <summary>
        /// The largest value <paramref name="reg"/> can hold when the instruction at <paramref name="at"/> starts, from
        /// the code before it: a mask (andi., clrlwi, clrldi), a constant, or an unsigned compare whose branch leaves
        /// it bounded on every path that reaches here. Null when not every path gives one.
        /// </summary>
        private ulong? ProveBound(FunctionRange f, ulong at, int reg, int depth, out string why)
        {
            for (ulong pos = at; ; pos -= 4)
            {
                if (IsEntry(pos)) return JoinBound(f, pos, reg, depth, out why);
                if (pos <= f.Start) { why = "no bound on the table index before the function's start"; return null; }
                if (IsUnconditionalTransfer(Word(pos - 4))) { why = $"no bound on the table index: +0x{pos:x} is " +
                    "reached only by branches"; return null; }
                var step = StepBack(pos - 4, ref reg, out why);
                if (step is not null || why.Length > 0) return step;
            }
        }

        /// <summary> What the instruction at <paramref name="q"/> says about the bound of <paramref name="reg"/> after
        /// it runs: a bound, a failure (<paramref name="why"/> set), or nothing (walk on; a move retargets <paramref
        /// name="reg"/>). </summary>
        private ulong? StepBack(ulong q, ref int reg, out string why)
        {
            why = "";
            if (--_budget < 0) { why = "the proof of the table index's bound takes too long"; return null; }
            uint w = Word(q);
            if (w >> 26 == 16 && (w & 3) == 0 && FallthroughBound(q, w, reg) is { } fall) return fall;
            var e = RegisterEffects.Of(w);
            if (!e.Known) { why = $"the instruction at +0x{q:x} (0x{w:x8}) is not one the proof decodes"; return null; }
            if (!e.WritesGpr(reg)) return null;
            if (DefinitionBound(w, reg) is { } bound) return bound;
            if (MoveSource(w, reg) is { } source) { reg = source; return null; }
            why = $"the table index is computed at +0x{q:x} (0x{w:x8}) in a way the proof cannot bound";
            return null;
        }

        private int _budget;

        /// <summary>Where several ways lead into <paramref name="pos"/>, the bound must hold on each; the largest
        /// counts.</summary>
        private ulong? JoinBound(FunctionRange f, ulong pos, int reg, int depth, out string why)
        {
            if (depth >= MaxJoinDepth) { why = "the table index's bound is too far from its use"; return null; }
            if (_otherEntries.Contains(pos) || _caseEntries.Contains(pos)) { why = $"code at +0x{pos:x} is reached " +
                "from outside this function's branches"; return null; }
            ulong bound = 0;
            bool any = false;
            if (pos > f.Start && !IsUnconditionalTransfer(Word(pos - 4)))
            {
                int r = reg;
                ulong? fall = StepBack(pos - 4, ref r, out why);
                if (fall is null && why.Length > 0) return null;
                fall ??= ProveBound(f, pos - 4, r, depth + 1, out why);
                if (fall is null) return null;
                bound = fall.Value;
                any = true;
            }
            foreach (var b in _branchesTo.GetValueOrDefault(pos) ?? [])
            {
                if (b.Function != f) { why = $"+0x{pos:x} is reached from another function"; return null; }
                if (b.Kind is not (BranchKind.B or BranchKind.Bc))
                {
                    why = $"+0x{pos:x} is the target of a call";
                    return null;
                }
                ulong? taken = b.Kind == BranchKind.Bc ? TakenBound(b.Offset, b.Word, reg) : null;
                if (taken is null && ProveBound(f, b.Offset, reg, depth + 1, out why) is { } walked) taken = walked;
                if (taken is null)
                {
                    why = $"no bound on the way into +0x{pos:x} from the branch at +0x{b.Offset:x}";
                    return null;
                }
                bound = Math.Max(bound, taken.Value);
                any = true;
            }
            why = any ? "" : $"nothing leads into +0x{pos:x}";
            return any ? bound : null;
        }

        /// <summary>andi. r,s,M → M · clrlwi r,s,n → 2^(32-n)-1 · clrldi r,s,n (n ≥ 32) → 2^(64-n)-1 · li r,k →
        /// k.</summary>
        private static ulong? DefinitionBound(uint w, int reg)
        {
            uint op = w >> 26;
            if (op == 28 && ((w >> 16) & 31) == reg) return w & 0xffff;
            if (op == 21 && ((w >> 16) & 31) == reg && ((w >> 11) & 31) == 0 && ((w >> 1) & 31) == 31
                && ((w >> 6) & 31) > 0)
                return (1UL << (32 - (int)((w >> 6) & 31))) - 1;
            if (op == 30 && ((w >> 16) & 31) == reg && ((w >> 2) & 7) == 0)
            {
                int sh = (int)((w >> 11) & 31) | (int)((w >> 1) & 1) << 5;
                uint field = (w >> 5) & 0x3f;
                int mb = (int)(((field & 1) << 5) | (field >> 1));
                if (sh == 0 && mb > 32) return (1UL << (64 - mb)) - 1;
            }
            if (op == 14 && ((w >> 21) & 31) == reg && ((w >> 16) & 31) == 0 && (short)(w & 0xffff) >= 0)
                return w & 0xffff;
            return null;
        }

        /// <summary>mr r,s (or r,s,s), and clrldi r,s,32 (a zero-extension keeps an unsigned 32-bit bound):
        /// s.</summary>
        private static int? MoveSource(uint w, int reg)
        {
            int s = (int)(w >> 21) & 31;
            if (w >> 26 == 31 && ((w >> 1) & 0x3ff) == 444 && ((w >> 11) & 31) == s && ((w >> 16) & 31) == reg)
                return s;
            if (w >> 26 == 30 && ((w >> 16) & 31) == reg && ((w >> 2) & 7) == 0 && ((w >> 11) & 31) == 0
                && ((w >> 1) & 1) == 0
                && ((w >> 5) & 0x3f) == 0x01)   // mb = 32
                return s;
            return null;
        }

        /// <summary>Falling through a bc: "bgt crN" leaves reg ≤ N, "bge crN" (branch if not LT) leaves reg &lt;
        /// N.</summary>
        private ulong? FallthroughBound(ulong at, uint w, int reg)
        {
            uint bo = (w >> 21) & 31, bi = (w >> 16) & 31;
            if ((bo & 0x14) == 0x14 || (bo & 0x04) == 0) return null;   // always, or it decrements CTR
            bool ifTrue = (bo & 0x08) != 0;
            int field = (int)bi >> 2, bit = (int)bi & 3;
            if (CompareBefore(at, field, reg) is not { } n) return null;
            if (ifTrue && bit == 1) return n;                    // bgt: falls through when not greater
            if (!ifTrue && bit == 0) return n == 0 ? null : n - 1; // bge: falls through when less
            return null;
        }

        /// <summary>Taking a bc: "ble crN" means reg ≤ N, "blt crN" means reg &lt; N.</summary>
        private ulong? TakenBound(ulong at, uint w, int reg)
        {
            uint bo = (w >> 21) & 31, bi = (w >> 16) & 31;
            if ((bo & 0x14) == 0x14 || (bo & 0x04) == 0) return null;
            bool ifTrue = (bo & 0x08) != 0;
            int field = (int)bi >> 2, bit = (int)bi & 3;
            if (CompareBefore(at, field, reg) is not { } n) return null;
            if (!ifTrue && bit == 1) return n;
            if (ifTrue && bit == 0) return n == 0 ? null : n - 1;
            return null;
        }

        /// <summary>The N of the unsigned compare (cmplwi/cmpldi crF,reg,N) that set crF for the branch at <paramref
        /// name="at"/>.</summary>
        private ulong? CompareBefore(ulong at, int field, int reg)
        {
            if (_functions.Containing(_section.Index, at) is not { } f) return null;
            if (FindWriter(f, at, e => e.WritesCrField(field) || e.WritesGpr(reg), out _) is not { } q) return null;
            uint w = Word(q);
            bool cmpli = w >> 26 == 10 && (int)((w >> 23) & 7) == field && ((w >> 16) & 31) == reg;
            return cmpli ? w & 0xffff : null;
        }

        /// <summary>Where the table starts, from the instruction that loads its address into the base
        /// register.</summary>
        private (int Section, ulong Offset)? TableBase(FunctionRange f, ulong def, out string why)
        {
            why = "the table's address is not loaded from the TOC with relocations";
            uint w = Word(def);
            uint op = w >> 26;
            int high = (int)(w >> 16) & 31;
            if (!_context.RelocationAt.TryGetValue((_section.Index, def), out var lo)) return null;
            bool viaToc = op == 58 && (w & 3) == 0 && lo.Rela.Type is R.PPC64_TOC16_LO_DS or R.PPC64_TOC16_DS;
            bool direct = op == 14 && lo.Rela.Type is R.PPC64_TOC16_LO or R.PPC64_TOC16;
            if (!viaToc && !direct) return null;
            if (lo.Rela.Type is R.PPC64_TOC16_LO_DS or R.PPC64_TOC16_LO)
            {
                if (FindWriter(f, def, e => e.WritesGpr(high), out why) is not { } ha) return null;
                uint h = Word(ha);
                if (!(h >> 26 == 15 && ((h >> 16) & 31) == 2
                    && _context.RelocationAt.TryGetValue((_section.Index, ha), out var hi)
                      && hi.Rela.Type == R.PPC64_TOC16_HA && hi.Rela.SymbolIndex == lo.Rela.SymbolIndex
                      && hi.Rela.Addend == lo.Rela.Addend))
                {
                    why = "the table's address is not formed by a matching addis/TOC16_HA";
                    return null;
                }
            }
            else if (high != 2) return null;
            if (!lo.Symbol.IsInSection) return null;
            ulong address = unchecked(lo.Symbol.Value + (ulong)lo.Rela.Addend);
            if (direct) return ((int)lo.Symbol.SectionIndex, address);
            if (!_context.RelocationAt.TryGetValue(((int)lo.Symbol.SectionIndex, address), out var entry)
                || entry.Rela.Offset != address || entry.Rela.Type != R.PPC64_ADDR64 || !entry.Symbol.IsInSection)
            {
                why = "the TOC entry the table's address comes from is not one ADDR64 relocation";
                return null;
            }
            return ((int)entry.Symbol.SectionIndex, unchecked(entry.Symbol.Value + (ulong)entry.Rela.Addend));
        }

        private JumpTable? InlineTable(FunctionRange f, ulong dispatch, ulong tableBase, int count, out string why)
        {
            ulong end = tableBase + 4UL * (ulong)count;
            if (tableBase < f.Start || end > f.End || (tableBase & 3) != 0) { why = $"the table at +0x{tableBase:x} " +
                $"does not lie inside {f.Name}"; return null; }
            if (tableBase <= dispatch) { why = $"the table at +0x{tableBase:x} is not after its bctr"; return null; }
            for (ulong at = tableBase; at < end; at += 4)
            {
                if (_branchesTo.ContainsKey(at) || _caseEntries.Contains(at) || at != tableBase
                    && _otherEntries.Contains(at))
                {
                    why = $"code at +0x{at:x}, inside the table, is reached from elsewhere";
                    return null;
                }
                if (_context.RelocationAt.ContainsKey((_section.Index, at))) { why = $"the table word at +0x{at:x} " +
                    "has a relocation"; return null; }
            }
            var targets = new List<ulong>(count);
            for (int k = 0; k < count; k++)
            {
                long target = (long)tableBase + (int)Word(tableBase + 4UL * (ulong)k);
                if (!CaseInFunction(f, target, tableBase, end, out why)) return null;
                targets.Add((ulong)target);
            }
            // The table ends where code starts: the next word is reached by something, after at most alignment padding.
            ulong next = end;
            while (next < f.End && Word(next) is Instruction.Nop or 0x6042_0000 && !IsEntry(next)
                && !targets.Contains(next)) next += 4;
            if (_checkExtent && next < f.End && !IsEntry(next) && !targets.Contains(next))
            {
                why = $"the word after the table's {count} entries (+0x{end:x}) is neither code that is jumped to " +
                    "nor padding: the table may be longer";
                return null;
            }
            why = "";
            return new JumpTable(_section.Index, dispatch, _section.Index, tableBase, count,
                JumpTableForm.InlineDifferences, targets);
        }

        private JumpTable? RelocatedTable(FunctionRange f, ulong dispatch, int tableSection, ulong tableBase, int count,
            out string why)
        {
            var section = _image.Sections[tableSection];
            if (section.IsExecutable || tableBase + 4UL * (ulong)count > section.Size) { why = "the table in " +
                $"{section.Name} does not fit it"; return null; }
            var targets = new List<ulong>(count);
            for (int k = 0; k < count; k++)
            {
                ulong at = tableBase + 4UL * (ulong)k;
                if (!_context.RelocationAt.TryGetValue((tableSection, at), out var r) || r.Rela.Offset != at
                    || r.Rela.Type != R.PPC64_REL32
                    || !r.Symbol.IsInSection || r.Symbol.SectionIndex != (uint)_section.Index)
                {
                    why = $"{section.Name}+0x{at:x} is not a REL32 to {_section.Name}";
                    return null;
                }
                long target = (long)r.Symbol.Value + r.Rela.Addend - 4L * k;
                if (!CaseInFunction(f, target, 0, 0, out why)) return null;
                targets.Add((ulong)target);
            }
            why = "";
            return new JumpTable(_section.Index, dispatch, tableSection, tableBase, count,
                JumpTableForm.RelocatedDifferences, targets);
        }

        private static bool CaseInFunction(FunctionRange f, long target, ulong tableBase, ulong tableEnd,
            out string why)
        {
            if (target < (long)f.Start || target >= (long)f.End || (target & 3) != 0
                || ((ulong)target >= tableBase && (ulong)target < tableEnd))
            {
                why = $"a table entry selects +0x{target:x}, which is not code of {f.Name}";
                return false;
            }
            why = "";
            return true;
        }
    }
}
