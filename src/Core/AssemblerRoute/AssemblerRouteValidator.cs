using PpcLivepatch.Analysis;
using PpcLivepatch.Elf;
using PpcLivepatch.Patching;
using PpcLivepatch.Ppc64;

namespace PpcLivepatch.AssemblerRoute;

/// <summary>
/// Translation validation of the assembler route. The unedited assembly is assembled too, and the edited object is
/// checked against it: the only differences in each code section must be nops, each right after a <c>bl</c> to a
/// callee the site rules chose in that section, as many as were planned, and the alignment padding the assembler
/// laid out around them (never right after a call) — and with those points as the address map,
/// the insert-nop <see cref="TranslationValidator"/> must find every branch, jump table, relocation, symbol and debug
/// address moved consistently. The points are found from the two objects' bytes, not taken from the editor, so an
/// edit in the wrong place cannot hide.
/// </summary>
public static class AssemblerRouteValidator
{
    /// <param name="planned">Per section name, the callees that got a nop, in text order.</param>
    /// <param name="assembly">What the text says of hand-written code: in functions with inline assembly only what
    /// the object-level checks prove is accepted (such code may compute addresses the assembler does not know
    /// about).</param>
    public static List<ValidationFailure> Validate(ElfImage original, ElfImage edited,
        IReadOnlyDictionary<string, List<string>> planned, AssembledLayout assembly)
    {
        var failures = new List<ValidationFailure>();
        if (original.Sections.Count != edited.Sections.Count)
        {
            failures.Add(new(0, "?", 0, "the edited assembly has other sections than the compiler's"));
            return failures;
        }
        var analysis = new ObjectAnalysis(original);
        var functions = analysis.Functions;
        var points = new Dictionary<int, IReadOnlyList<ulong>>();
        var deleted = new Dictionary<int, IReadOnlyList<ulong>>();
        var padding = new Dictionary<int, IReadOnlyList<ulong>>();
        var seen = new HashSet<string>();
        foreach (var s in original.Sections.Where(s => s.IsExecutable && s.HasFileData))
        {
            var t = edited.Sections[s.Index];
            if (t.Name != s.Name)
            {
                failures.Add(new(s.Index, s.Name, 0, "the sections are in another order"));
                continue;
            }
            var alignment = Align(original, edited, s, t, out string? why);
            if (alignment is null) { failures.Add(new(s.Index, s.Name, 0, why!)); continue; }
            var found = alignment.CallNops;
            var expected = planned.TryGetValue(s.Name, out var callees) ? callees : [];
            // Sections of one name (COMDAT groups) share the planned list: checked on the first.
            if (!seen.Add(s.Name) && found.Count == 0) continue;
            if (found.Count != expected.Count)
            {
                failures.Add(new(s.Index, s.Name, found.Count > 0 ? found[0] : 0,
                    $"{found.Count} nops were inserted, not the {expected.Count} planned"));
                continue;
            }
            var relocations = original.RelocationSections.Where(r => r.Target.Index == s.Index)
                .SelectMany(r => r.Entries).ToLookup(e => e.Offset & ~3UL);
            for (int k = 0; k < found.Count; k++)
            {
                ulong call = found[k] - 4;
                string? callee = CalleeAt(original, functions, s, call, relocations);
                if (callee != expected[k])
                    failures.Add(new(s.Index, s.Name, call, $"the nop after +0x{call:x} follows a call to " +
                        $"{callee ?? "no function"}, not to {expected[k]}"));
            }
            if (found.Count + alignment.PaddingInserted.Count > 0)
                points[s.Index] = found.Concat(alignment.PaddingInserted).Order().ToList();
            if (alignment.PaddingDeleted.Count > 0) deleted[s.Index] = alignment.PaddingDeleted;
            if (alignment.PaddingInserted.Count > 0) padding[s.Index] = alignment.PaddingInserted;
        }
        if (failures.Count > 0) return failures;
        failures.AddRange(TranslationValidator.Validate(analysis, edited, new RewriteMap(points,
            new Dictionary<int, IReadOnlyList<(ulong, ulong)>>(), deleted, padding), assembly));
        return failures;
    }

    /// <summary>How the edited section's words line up with the compiler's: nops inserted after calls, and the
    /// alignment padding the assembler laid out anew (padding before an aligned label absorbs or needs
    /// words).</summary>
    private sealed record Alignment(List<ulong> CallNops, List<ulong> PaddingInserted, List<ulong> PaddingDeleted);

    /// <summary>
    /// Walks both sections: a nop in the edited one right after a <c>bl</c> where the original has no nop is an
    /// inserted call nop; a padding word (<c>nop</c>, <c>ori r2,r2,0</c>) on one side only is padding the assembler
    /// laid out anew; every other pair of words is taken as the same instruction (the insert-nop validator then
    /// checks that it is). No padding may appear or vanish right after a call: that is the word the loader reads.
    /// </summary>
    private static Alignment? Align(ElfImage original, ElfImage edited, ElfSection s, ElfSection t, out string? why)
    {
        why = null;
        var a = original.Data(s);
        var b = edited.Data(t);
        if (a.Length % 4 != 0 || b.Length % 4 != 0)
        {
            why = "the section is not made of whole instructions";
            return null;
        }
        var result = new Alignment([], [], []);
        int i = 0, j = 0;
        bool AfterCallIn(ReadOnlySpan<byte> data, ElfImage image, int at) =>
            at >= 4 && Instruction.Classify(image.ReadU32(data, at - 4)) == BranchKind.Bl;
        while (i < a.Length || j < b.Length)
        {
            uint? w0 = i < a.Length ? original.ReadU32(a, i) : null, w1 = j < b.Length ? edited.ReadU32(b, j) : null;
            bool afterCall = AfterCallIn(a, original, i);
            if (afterCall && w1 == Instruction.Nop && w0 != Instruction.Nop && AfterCallIn(b, edited, j)
                && (result.CallNops.Count == 0 || result.CallNops[^1] != (ulong)i))
            {
                result.CallNops.Add((ulong)i);
                j += 4;
            }
            else if (w0 is { } x && w1 is { } y && (x == y || !TranslationValidator.IsPadding(x)
                && !TranslationValidator.IsPadding(y)))
            {
                i += 4;
                j += 4;
            }
            else if (w0 is { } pad0 && TranslationValidator.IsPadding(pad0) && !afterCall)
            {
                result.PaddingDeleted.Add((ulong)i);
                i += 4;
            }
            else if (w1 is { } pad1 && TranslationValidator.IsPadding(pad1) && !AfterCallIn(b, edited, j))
            {
                result.PaddingInserted.Add((ulong)i);
                j += 4;
            }
            else
            {
                why = $"the words at +0x{i:x} (compiler's) and +0x{j:x} (edited) differ in a way inserted nops and " +
                    "alignment padding do not explain";
                return null;
            }
        }
        return result;
    }

    /// <summary>The function a <c>bl</c> calls: its relocation's symbol, or the function whose entry its target (or
    /// its section symbol's address) is.</summary>
    private static string? CalleeAt(ElfImage image, FunctionMap functions, ElfSection s, ulong call,
        ILookup<ulong, ElfRela> relocations)
    {
        int section = s.Index;
        ulong target;
        if (relocations[call].FirstOrDefault() is { Type: not 0 } e)
        {
            if (e.Type != R.PPC64_REL24) return null;
            var sym = image.Symbols[(int)e.SymbolIndex];
            if (sym.Type != ElfConstants.SttSection || !sym.IsInSection) return Name(sym.Name);
            (section, target) = ((int)sym.SectionIndex, unchecked(sym.Value + (ulong)e.Addend));
        }
        else target = (ulong)((long)call + Instruction.BranchDisplacement(image.ReadU32(image.Data(s), (int)call)));
        // ELFv1 calls name the function's descriptor in .opd: its code address is the entry.
        var (code, at) = functions.CodeAddress(section, target);
        return code >= 0 && functions.IsEntry(code, at) ? Name(functions.Containing(code, at)!.Name) : null;
    }

    /// <summary>ELFv1 calls name the dot-symbol of the code.</summary>
    private static string Name(string symbol) => symbol.StartsWith('.') && !symbol.StartsWith(".L",
        StringComparison.Ordinal) ? symbol[1..] : symbol;
}
