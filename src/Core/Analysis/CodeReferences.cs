using PpcLivepatch.Elf;
using PpcLivepatch.Ppc64;

namespace PpcLivepatch.Analysis;

/// <summary>
/// A relative branch the assembler resolved, so it carries no relocation (intra-section jumps and calls).
/// <see cref="IsCall"/>: a <c>bl</c> to a function's entry point; <c>bl .+4</c> (reading the program counter) and a
/// <c>bl</c> into the middle of code are not calls.
/// </summary>
public sealed record LocalBranch(ElfSection Section, ulong Offset, uint Word, BranchKind Kind, ulong Target,
    FunctionRange Function, bool TargetsEntry)
{
    public bool IsCall => Kind == BranchKind.Bl && TargetsEntry;
}

/// <summary>
/// Who refers to which code address: relocations (by their target, e.g. a <c>__jump_table</c> entry naming a
/// static-key nop, and by their own offset) and relocation-free branches inside function ranges. A word that
/// something refers to is not free to be taken over by a fix.
/// </summary>
public sealed class CodeReferences
{
    private readonly HashSet<(int Section, ulong Offset)> _referenced;

    // Addresses relocations name (a table's start, say), apart from the places they relocate.
    private readonly HashSet<(int Section, ulong Offset)> _named = [];

    public CodeReferences(ElfImage image, FunctionMap functions)
    {
        _referenced = new(2 * image.RelocationSections.Sum(rs => rs.Entries.Count));
        var relocatedWords = new Dictionary<int, HashSet<ulong>>();
        foreach (var rs in image.RelocationSections)
        {
            var words = relocatedWords.TryGetValue(rs.Target.Index,
                out var set) ? set : relocatedWords[rs.Target.Index] = new(rs.Entries.Count);
            foreach (var rela in rs.Entries)
            {
                // A relocated field makes its whole instruction word taken (TOC16 fields sit at +2 on big-endian).
                words.Add(rela.Offset & ~3UL);
                _referenced.Add((rs.Target.Index, rela.Offset & ~3UL));
                var sym = image.Symbols[(int)rela.SymbolIndex];
                if (!sym.IsInSection) continue;
                ulong named = unchecked(sym.Value + (ulong)rela.Addend - (KernelTables.AnchorOf(rs.Target.Name,
                    rela) ?? 0));
                // A data word relative to its own place (clang's jump tables) names code only through its reader.
                if (RelocationMeaning.IsPlaceRelative(rela.Type) && !rs.Target.IsExecutable
                    && !RelocationMeaning.AddsPlaceBack(rs.Target.Name))
                {
                    var key = ((int)sym.SectionIndex, named);
                    if (!_placeRelativeData.TryGetValue(key, out var readers)) _placeRelativeData[key] = readers = [];
                    readers.Add((rs.Target.Index, rela.Offset));
                }
                else
                {
                    _referenced.Add(((int)sym.SectionIndex, named));
                    _named.Add(((int)sym.SectionIndex, named));
                }
            }
        }

        var branches = new List<LocalBranch>();
        foreach (var section in image.Sections.Where(s => s.IsExecutable && s.HasFileData))
        {
            var relocated = relocatedWords.GetValueOrDefault(section.Index) ?? [];
            var data = image.Data(section);
            foreach (var f in functions.InSection(section.Index))
            {
                // Only words inside function symbols: data between functions is not code.
                for (ulong off = f.Start; off + 4 <= f.End && off + 4 <= (ulong)data.Length; off += 4)
                {
                    uint word = image.ReadU32(data, (int)off);
                    if (!Instruction.IsRelativeBranch(word) || relocated.Contains(off)) continue;
                    long target = (long)off + Instruction.BranchDisplacement(word);
                    if (target < 0 || (ulong)target > section.Size) continue;
                    branches.Add(new LocalBranch(section, off, word, Instruction.Classify(word), (ulong)target, f,
                        functions.IsEntry(section.Index, (ulong)target)));
                    _referenced.Add((section.Index, (ulong)target));
                }
            }
        }
        RelocationFreeBranches = branches;
    }

    public IReadOnlyList<LocalBranch> RelocationFreeBranches { get; }

    /// <summary>
    /// True when a relocation or a branch names this address, a relocation patches the word there, or a jump table
    /// selects it. A place-relative data word counts at the address its proven table gives it, and where no table
    /// explains it, at the address its addend suggests when it may be a table's first word (something names its
    /// place); a later word's addend is off by its distance from the table's start.
    /// </summary>
    public bool IsReferenced(int section, ulong offset, JumpTableAnalysis tables)
    {
        if (_referenced.Contains((section, offset))) return true;
        if (tables.InCodeSection(section).Any(t => t.Targets.Contains(offset))) return true;
        // A place-relative word L - B with no proven table names L + (its place - B): only the table's first word
        // (B itself, an address something else names) names L exactly. A later word's addend is nobody's address.
        return _placeRelativeData.TryGetValue((section, offset), out var words)
            && words.Any(w => tables.EntryAnchor(section, w.Section, w.Offset) is null
                && _named.Contains((w.Section, w.Offset)));
    }

    // Place-relative data words by the code address their addend suggests: (table section, word offset).
    private readonly Dictionary<(int CodeSection, ulong Named),
        List<(int Section, ulong Offset)>> _placeRelativeData = [];
}
