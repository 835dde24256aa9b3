using PpcLivepatch.Analysis;
using PpcLivepatch.Diagnostics;
using PpcLivepatch.Elf;
using PpcLivepatch.Ppc64;
using static PpcLivepatch.Elf.ElfConstants;

namespace PpcLivepatch.Patching;

/// <summary>
/// Fixes the call sites of one object that the kernel loader would refuse (and, with
/// <see cref="SiteSelection.AllLocal"/>, every local call without a free nop), then verifies the result with the
/// same loader model, read back through the independent <see cref="ElfImage"/> parser.
/// </summary>
public static class ObjectPatcher
{
    public static PatchResult Patch(ElfImage image, PatchOptions options) => Patch(image, options, firstRound: true);

    private static PatchResult Patch(ElfImage image, PatchOptions options, bool firstRound)
    {
        var loader = options.LoaderOptions;
        var analysis = new ObjectAnalysis(image);
        var before = ObjectVerifier.Verify(analysis, loader, allSites: true);
        var calls = SelectCalls(analysis, before, options.Sites).ToList();
        if (calls.Count == 0) return Finish(image, image.Bytes.ToArray(), [], [], [], loader, bytesAdded: 0);
        var strategy = FixStrategies.Get(options.Strategy);
        var refusedByValidator = new Dictionary<int, string>();
        while (true)
        {
            var context = new PatchContext(analysis, refusedByValidator);
            var rewrites = new List<SectionRewrite>();
            var unfixable = new List<Diagnostic>();
            int deferred = 0;
            foreach (var group in calls.GroupBy(c => c.Section.Index).OrderBy(g => g.Key))
            {
                var plan = strategy.Plan(context, group.First().Section, group.OrderBy(c => c.Offset).ToList());
                if (plan.Rewrite is not null) rewrites.Add(plan.Rewrite);
                unfixable.AddRange(plan.Refused);
                deferred += plan.Deferred.Count;
            }
            if (rewrites.Count == 0)
                return Finish(image, image.Bytes.ToArray(), [], unfixable, [], loader, bytesAdded: 0);
            // Reports list inserted nops first, then islands, each in section order.
            rewrites = rewrites.OrderBy(r => r.Layout.MovesCode ? 0 : 1).ThenBy(r => r.Section.Index).ToList();

            byte[] output;
            List<string> notes;
            try
            {
                (output, notes) = Apply(analysis, rewrites);
            }
            catch (Exception e) when (e is ElfRewriteException or InvalidOperationException or NotSupportedException
                or Dwarf.DwarfFormatException)
            {
                var d = Diagnostic.Create(DiagnosticCatalog.CannotRewrite, image.Path,
                    $"the object cannot be rewritten, so no call site was fixed: {e.Message}");
                return new PatchResult(before with { Diagnostics = [d, .. before.Diagnostics] }, [], null, 0);
            }
            // The ELF library reads some sections by their type (an SHT_NOTE .toc is parsed as notes and loses its
            // words): what it writes must still be the object we meant, or nothing is written.
            if (!ElfImage.TryParse(image.Path, output, out var patched, out var error))
            {
                var d = Diagnostic.Create(DiagnosticCatalog.CannotRewrite, image.Path,
                    "the object cannot be rewritten, so no call site was fixed: the rewritten object would be " +
                        $"malformed ({error!.Message})");
                return new PatchResult(before with { Diagnostics = [d, .. before.Diagnostics] }, [], null, 0);
            }

            // Nothing is written that the validator cannot show means what the input meant. A strategy that can fall
            // back (auto) gets islands for a section whose inserted nops it refuses; anything else is refused whole.
            var failures = TranslationValidator.Validate(analysis, patched!,
                RewriteMap.Of(rewrites.Select(r => r.Layout)));
            var fixes = rewrites.SelectMany(r => r.Fixes).ToList();
            if (failures.Count == 0 && deferred > 0 && firstRound)
                return SecondRound(patched!, output, fixes, unfixable, notes, rewrites, options);
            if (failures.Count == 0)
                return Finish(patched!, output, fixes, unfixable, notes, loader, rewrites.Sum(r => r.BytesAdded));
            var moved = rewrites.Where(r => r.Layout.MovesCode).Select(r => r.Section.Index).ToHashSet();
            if (strategy.RetriesRefusedSections && failures.All(f => moved.Contains(f.Section)))
            {
                foreach (var f in failures) refusedByValidator.TryAdd(f.Section,
                    $"the translation validator refused the inserted nops: {f.Why}");
                continue;
            }
            var refusals = failures.GroupBy(f =>
                f.Section).SelectMany(g => g.Take(3)).Select(f => new Diagnostic(DiagnosticCatalog.RewriteNotProven,
                $"the rewrite of {f.SectionName} could not be proven to keep the program's meaning, so nothing was " +
                    $"written: {f.Why}",
                image.Path, f.SectionName, f.Offset, Fix: "Use --strategy auto or --strategy island, and report the " +
                    "object: this is a bug in the rewriter."));
            return new PatchResult(before with { Diagnostics = [.. refusals, .. before.Diagnostics] }, [], null, 0);
        }
    }

    /// <summary>
    /// auto's second round, over the first round's (validated) output: the calls of functions that had to move as a
    /// whole, now all that is left, get their islands. One patch thus does what patching twice would, and a patch of
    /// its output finds nothing to do. Fixes are reported at their offsets in the input.
    /// </summary>
    private static PatchResult SecondRound(ElfImage first, byte[] firstBytes, List<AppliedFix> firstFixes,
        List<Diagnostic> firstUnfixable, List<string> firstNotes, List<SectionRewrite> firstRewrites,
        PatchOptions options)
    {
        var next = Patch(first, options, firstRound: false);
        var moved = firstRewrites.Where(r => r.Layout.MovesCode).ToDictionary(r => r.Section.Name, r => r);
        ulong InInput(string section, ulong offset) =>
            moved.TryGetValue(section, out var r) ? Unmap(r.Layout, r.Section.Size, offset) : offset;
        Diagnostic InInputTerms(Diagnostic d)
        {
            ulong input = InInput(d.Section!, d.Offset!.Value);
            return d with
            {
                Offset = input,
                Message = d.Message.Replace($"{d.Section}+0x{d.Offset:x}", $"{d.Section}+0x{input:x}"),
            };
        }
        var leftUnfixed = next.Report.Diagnostics.Where(d =>
            d.Kind is DiagnosticKind.Unfixed or DiagnosticKind.Refused && d.Offset is not null && d.Section is not null)
            .Select(InInputTerms);
        if (next.Output is null || !ElfImage.TryParse(first.Path, next.Output, out var final, out _))
            return Finish(first, firstBytes, firstFixes, [.. firstUnfixable, .. leftUnfixed], firstNotes,
                options.LoaderOptions, firstRewrites.Sum(r => r.BytesAdded));
        var fixes = firstFixes.Concat(next.Fixes.Select(f => f with { Offset = InInput(f.Section, f.Offset) }))
            .ToList();
        var notes = firstNotes.Concat(next.Report.Diagnostics.Where(d =>
            d.Code == DiagnosticCatalog.UnwindNotExtended).Select(d => d.Message)).ToList();
        return Finish(final!, next.Output, fixes, [.. firstUnfixable, .. leftUnfixed], notes, options.LoaderOptions,
            firstRewrites.Sum(r => r.BytesAdded) + next.BytesAdded);
    }

    /// <summary>The input offset an inserted-nop layout moved to <paramref name="offset"/>.</summary>
    private static ulong Unmap(CodeLayout layout, ulong size, ulong offset)
    {
        ulong lo = 0, hi = size / 4;
        while (lo < hi)
        {
            ulong mid = (lo + hi) / 2;
            if (layout.Map(mid * 4) < offset) lo = mid + 1; else hi = mid;
        }
        return layout.Map(lo * 4) == offset ? lo * 4 : offset;
    }

    private static IEnumerable<CallToFix> SelectCalls(ObjectAnalysis analysis, ObjectReport before,
        SiteSelection selection)
    {
        var image = analysis.Image;
        // A call inside one of our own islands is already fixed, whatever refers to its nop.
        var islands = image.Symbols.Where(IslandPlanner.IsIslandSymbol).Select(s =>
            ((int)s.SectionIndex, s.Value)).ToHashSet();
        bool InIsland(ElfSection section, ulong offset) => islands.Contains((section.Index, offset));
        foreach (var v in before.Sites)
        {
            var s = v.Site;
            if (InIsland(s.Section, s.Offset)) continue;
            bool needed = v.Code is DiagnosticCatalog.MissingNopAfterCall or DiagnosticCatalog.TocRestoreNotAccepted
                or DiagnosticCatalog.CallAtEndOfSection;
            bool local = selection == SiteSelection.AllLocal && !s.IsExternal && s.Instruction == BranchKind.Bl
                && !s.IsPcrel
                         && !HasFreeNop(analysis, s.Section, s.Offset);
            if (needed || local)
                yield return new CallToFix(s.Section, s.Offset, s.Function, s.Callee, s.Source, s, null, needed);
        }
        if (selection != SiteSelection.AllLocal) yield break;
        var functions = analysis.Functions;
        foreach (var b in analysis.References.RelocationFreeBranches.Where(b => b.IsCall))
        {
            if (InIsland(b.Section, b.Offset) || HasFreeNop(analysis, b.Section, b.Offset)) continue;
            var callee = functions.Containing(b.Section.Index, b.Target);
            string name = callee is null ? $"{b.Section.Name}+0x{b.Target:x}" : b.Target == callee.Start ? callee.Name
                : $"{callee.Name}+0x{b.Target - callee.Start:x}";
            yield return new CallToFix(b.Section, b.Offset, b.Function, name,
                analysis.Lines.Lookup(b.Section.Index, b.Offset), null, b.Target, Needed: false);
        }
    }

    /// <summary>A nop at bl+4 that nothing else names (no relocation, no branch, no jump table): the loader may take it
    /// over.</summary>
    private static bool HasFreeNop(ObjectAnalysis analysis, ElfSection section, ulong offset) =>
        offset + 8 <= section.Size && analysis.Image.ReadWord(section, offset + 4) == Instruction.Nop
        && !analysis.References.IsReferenced(section.Index, offset + 4, analysis.Tables);

    /// <summary>
    /// Applies the rewrites to a copy of the object, then what follows from their address maps: unwind tables, DWARF,
    /// and last the new symbols (inserting a local renumbers every later symbol index). Returns the bytes and the notes
    /// on unwind or debug information that could not be extended.
    /// </summary>
    private static (byte[] Output, List<string> Notes) Apply(ObjectAnalysis analysis, List<SectionRewrite> rewrites)
    {
        var image = analysis.Image;
        var container = ElfContainer.Load(image);
        var symbols = rewrites.SelectMany(r => r.Apply(container)).ToList();
        var layouts = rewrites.Select(r => r.Layout).ToList();
        var notes = FdeExtender.Rewrite(analysis, container, layouts);
        var checkedPlan = rewrites.Count == 1 ? rewrites[0].CheckedDwarfPlan : null;
        if (DwarfLayoutEditor.Apply(image, container, layouts, checkedPlan) is { } debugNote) notes.Add(debugNote);
        foreach (var s in symbols)
            container.AddLocalSymbol(s.Name, s.Section, s.Value, s.Size, SttNotype);
        return (container.Save(), notes);
    }

    /// <summary>"island", "insert-nop", "insert-nop 3, island 1", or "none".</summary>
    public static string StrategySummary(IReadOnlyCollection<AppliedFix> fixes)
    {
        var used = fixes.GroupBy(f => f.Strategy).OrderBy(g => FixStrategies.ReportOrder(g.Key)).ToList();
        return used.Count switch
        {
            0 => "none",
            1 => FixStrategies.NameOf(used[0].Key),
            _ => string.Join(", ", used.Select(g => $"{FixStrategies.NameOf(g.Key)} {g.Count()}")),
        };
    }

    /// <summary>
    /// The tail of a summary line: the call sites the loader still refuses (every one, whatever the reason — an unfixed
    /// call, a Power10 relocation, a refused rewrite), and the sites that only <c>--sites all-local</c> asked for and
    /// that stay as they are, by code.
    /// </summary>
    public static string UnfixedSummary(IEnumerable<ObjectReport> reports)
    {
        var list = reports.ToList();
        int unfixable = list.Sum(r => r.Counts.Rejected);
        var left = list.SelectMany(r => r.Diagnostics).Where(d => d.IsUnfixedSite && d.Severity == Severity.Warning)
            .GroupBy(d => d.Code).OrderBy(g => g.Key, StringComparer.Ordinal)
            .Select(g => (g.Count(), $"{g.Count()} {g.Key}: {DiagnosticCatalog.Get(g.Key).Title.ToLowerInvariant()}"))
                .ToList();
        string text = $"{unfixable} unfixable";
        return left.Count == 0 ? text : $"{text}, {left.Sum(l => l.Item1)} left as they are " +
            $"({string.Join("; ", left.Select(l => l.Item2))})";
    }

    private static PatchResult Finish(ElfImage output, byte[] bytes, List<AppliedFix> fixes, List<Diagnostic> unfixable,
        List<string> unwindNotes, LoaderOptions loader, int bytesAdded)
    {
        var after = ObjectVerifier.Verify(output, loader);
        // A site we could not fix is reported once, by the code that says why, not again as PLP2001.
        var explained = unfixable.Select(d => (d.Section, d.Offset)).ToHashSet();
        var diagnostics = new List<Diagnostic>(unfixable);
        diagnostics.AddRange(after.Diagnostics.Where(d => !explained.Contains((d.Section, d.Offset))));
        foreach (var f in fixes)
            diagnostics.Add(new Diagnostic(DiagnosticCatalog.SiteFixed, $"fixed call to {f.Callee} at " +
                $"{f.Section}+0x{f.Offset:x}: {f.Done}",
                output.Path, f.Section, f.Offset, f.Function, null, f.Callee, f.Source));
        foreach (string note in unwindNotes)
            diagnostics.Add(new Diagnostic(DiagnosticCatalog.UnwindNotExtended, note, output.Path));
        diagnostics.Sort(ObjectVerifier.CompareDiagnostics);
        diagnostics.Add(new Diagnostic(DiagnosticCatalog.PatchSummary,
            $"{fixes.Count} REL24 call site{(fixes.Count == 1 ? "" : "s")} fixed ({StrategySummary(fixes)}), " +
            $"{bytesAdded} bytes added, " +
            UnfixedSummary([after with { Diagnostics = diagnostics }]),
            output.Path));
        return new PatchResult(after with { Diagnostics = diagnostics }, fixes, bytes, bytesAdded);
    }
}
