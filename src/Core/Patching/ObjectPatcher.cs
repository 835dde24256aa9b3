using PpcLivepatch.Analysis;
using PpcLivepatch.Diagnostics;
using PpcLivepatch.Dwarf;
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
    public static PatchResult Patch(ElfImage image, PatchOptions options)
    {
        var loader = options.LoaderOptions;
        var before = ObjectVerifier.Verify(image, loader);
        var functions = new FunctionMap(image);
        var references = new CodeReferences(image, functions);
        var lines = LineTable.ReadOrEmpty(image, out _);

        var tables = new JumpTableAnalysis(image, functions, references);   // proves a section's tables when first asked
        var calls = SelectCalls(image, before, references, tables, lines, options.Sites).ToList();
        if (calls.Count == 0) return Finish(image, image.Bytes.ToArray(), [], [], [], loader, bytesAdded: 0);
        var demoted = new Dictionary<int, string>();
        while (true)
        {
            var (nopEdits, islandCalls, refused) = ChooseStrategy(image, functions, references, tables, calls, options.Strategy, demoted);
            var (plans, unfixable) = IslandPlanner.Plan(image, functions, islandCalls);
            unfixable.AddRange(refused);
            if (plans.Count == 0 && nopEdits.Count == 0)
                return Finish(image, image.Bytes.ToArray(), [], unfixable, [], loader, bytesAdded: 0);

            byte[] output;
            List<AppliedFix> fixes;
            int added;
            List<string> unwindNotes;
            try
            {
                (output, fixes, added) = Apply(image, plans, nopEdits, out unwindNotes);
            }
            catch (Exception e) when (e is ElfRewriteException or InvalidOperationException or NotSupportedException or Dwarf.DwarfFormatException)
            {
                var d = Diagnostic.Create(DiagnosticCatalog.CannotRewrite, image.Path, $"the object cannot be rewritten, so no call site was fixed: {e.Message}");
                return new PatchResult(before with { Diagnostics = [d, .. before.Diagnostics] }, [], null, 0);
            }
            if (!ElfImage.TryParse(image.Path, output, out var patched, out var error))
                throw new InvalidOperationException($"patched object does not parse: {error!.Message}");

            // Nothing is written that the validator cannot show means what the input meant. Under auto, a section
            // whose inserted nops it refuses gets islands instead; anything else is refused whole.
            var rewrite = new RewriteMap(
                nopEdits.ToDictionary(n => n.Editor.SectionIndex, n => n.Editor.Points),
                plans.ToDictionary(p => p.Section.Index, p => (IReadOnlyList<(ulong, ulong)>)p.Islands.Select(i => (i.Call.Offset, i.Island)).ToList()));
            var failures = TranslationValidator.Validate(image, patched!, rewrite, tables);
            if (failures.Count == 0)
                return Finish(patched!, output, fixes, unfixable, unwindNotes, loader, added);
            var nopSections = nopEdits.Select(n => n.Editor.SectionIndex).ToHashSet();
            if (options.Strategy == FixStrategy.Auto && failures.All(f => nopSections.Contains(f.Section)))
            {
                foreach (var f in failures) demoted.TryAdd(f.Section, $"the translation validator refused the inserted nops: {f.Why}");
                continue;
            }
            var refusals = failures.GroupBy(f => f.Section).SelectMany(g => g.Take(3)).Select(f => new Diagnostic(DiagnosticCatalog.RewriteNotProven, Severity.Error,
                $"the rewrite of {f.SectionName} could not be proven to keep the program's meaning, so nothing was written: {f.Why}",
                image.Path, f.SectionName, f.Offset, Fix: "Use --strategy auto or --strategy island, and report the object: this is a bug in the rewriter."));
            return new PatchResult(before with { Diagnostics = [.. refusals, .. before.Diagnostics] }, [], null, 0);
        }
    }

    private static IEnumerable<CallToFix> SelectCalls(ElfImage image, ObjectReport before, CodeReferences references, JumpTableAnalysis tables, LineTable lines,
        SiteSelection selection)
    {
        // A call inside one of our own islands is already fixed, whatever refers to its nop.
        var islands = image.Symbols.Where(IslandPlanner.IsIslandSymbol).Select(s => ((int)s.SectionIndex, s.Value)).ToHashSet();
        bool InIsland(ElfSection section, ulong offset) => islands.Contains((section.Index, offset));
        foreach (var v in before.Sites)
        {
            var s = v.Site;
            if (InIsland(s.Section, s.Offset)) continue;
            bool needed = v.Code is DiagnosticCatalog.MissingNopAfterCall or DiagnosticCatalog.TocRestoreNotAccepted or DiagnosticCatalog.CallAtEndOfSection;
            bool local = selection == SiteSelection.AllLocal && !s.IsExternal && s.Instruction == BranchKind.Bl && !s.IsPcrel
                         && !HasFreeNop(image, references, tables, s.Section, s.Offset);
            if (needed || local)
                yield return new CallToFix(s.Section, s.Offset, s.Function, s.Callee, s.Source, s, null, needed);
        }
        if (selection != SiteSelection.AllLocal) yield break;
        var functions = new FunctionMap(image);
        foreach (var b in references.RelocationFreeBranches.Where(b => b.IsCall))
        {
            if (InIsland(b.Section, b.Offset) || HasFreeNop(image, references, tables, b.Section, b.Offset)) continue;
            var callee = functions.Containing(b.Section.Index, b.Target);
            string name = callee is null ? $"{b.Section.Name}+0x{b.Target:x}" : b.Target == callee.Start ? callee.Name : $"{callee.Name}+0x{b.Target - callee.Start:x}";
            yield return new CallToFix(b.Section, b.Offset, b.Function, name, lines.Lookup(b.Section.Index, b.Offset), null, b.Target, Needed: false);
        }
    }

    /// <summary>A nop at bl+4 that nothing else names (no relocation, no branch): the loader may take it over.</summary>
    private static bool HasFreeNop(ElfImage image, CodeReferences references, JumpTableAnalysis tables, ElfSection section, ulong offset) =>
        offset + 8 <= section.Size && image.ReadWord(section, offset + 4) == Instruction.Nop
        && !references.IsReferenced(section.Index, offset + 4, tables);

    /// <summary>
    /// Per section: insert-nop when asked for (or, with auto, when the section's layout is fully understood and the
    /// validator did not refuse it before: <paramref name="demoted"/>), islands for the rest, each carrying why. An explicit insert-nop that cannot be done is a coded diagnostic, not a silent island.
    /// </summary>
    private static (List<(InsertNopEditor Editor, List<CallToFix> Calls)> Nops, List<CallToFix> Islands, List<Diagnostics.Diagnostic> Refused)
        ChooseStrategy(ElfImage image, FunctionMap functions, CodeReferences references, JumpTableAnalysis tables, List<CallToFix> calls, FixStrategy strategy,
            IReadOnlyDictionary<int, string> demoted)
    {
        var nops = new List<(InsertNopEditor, List<CallToFix>)>();
        var islands = new List<CallToFix>();
        var refused = new List<Diagnostics.Diagnostic>();
        foreach (var group in calls.GroupBy(c => c.Section.Index).OrderBy(g => g.Key))
        {
            var list = group.OrderBy(c => c.Offset).ToList();
            if (strategy == FixStrategy.Island) { islands.AddRange(list); continue; }
            var section = list[0].Section;
            // Only plain relative bl sites with a following instruction take an inserted nop; others go to the planner,
            // which reports them.
            var simple = list.Where(c => c.Offset + 4 < section.Size && Instruction.Classify(image.ReadWord(section, c.Offset)) == BranchKind.Bl).ToList();
            var editor = new InsertNopEditor(image, functions, references, tables, section, simple.Select(c => c.Offset));
            string? why = !section.IsExecutable ? "it is not code" : demoted.TryGetValue(section.Index, out var refusedBefore) ? refusedBefore : editor.Ineligible();
            if (why is null && simple.Count > 0)
            {
                nops.Add((editor, simple));
                islands.AddRange(list.Except(simple));
                continue;
            }
            if (strategy == FixStrategy.Auto)
            {
                islands.AddRange(why is null ? list : list.Select(c => c with { NoNopWhy = why }));
                continue;
            }
            foreach (var c in list)
                refused.Add(new Diagnostics.Diagnostic(Diagnostics.DiagnosticCatalog.InsertNopNotPossible, c.Needed ? Diagnostics.Severity.Error : Diagnostics.Severity.Warning,
                    $"call to {c.Callee} at {section.Name}+0x{c.Offset:x} cannot get an inserted nop: {why}", image.Path, section.Name, c.Offset,
                    c.Function?.Name, c.Function is null ? null : c.Offset - c.Function.Start, c.Callee, c.Source,
                    "Use --strategy auto (islands where insert-nop is not possible) or --strategy island."));
        }
        return (nops, islands, refused);
    }

    private static (byte[] Output, List<AppliedFix> Fixes, int Added) Apply(ElfImage image, List<IslandPlanner.SectionPlan> plans,
        List<(InsertNopEditor Editor, List<CallToFix> Calls)> nopEdits, out List<string> notes)
    {
        var container = ElfContainer.Load(image);
        var fixes = new List<AppliedFix>();
        int nopBytes = 0;
        foreach (var (editor, calls) in nopEdits)
        {
            editor.Apply(container);
            foreach (var c in calls)
                fixes.Add(new AppliedFix(c.Section.Name, c.Offset, c.Function?.Name ?? c.Section.Name, c.Callee, FixStrategy.InsertNop, 0, c.Source)
                    { NewOffset = editor.Map(c.Offset) });
            nopBytes += 4 * calls.Count;
        }
        var changes = new List<FdeExtender.CodeChange>();
        var symbols = new List<(string Name, int Section, ulong Value)>();
        int added = 0;
        foreach (var plan in plans)
        {
            var section = plan.Section;
            ulong start = IslandPlanner.AlignUp(section.Size, 4);
            var code = new byte[start + (ulong)(plan.Islands.Count * IslandPlanner.IslandSize)];
            image.Data(section).CopyTo(code);
            int n = 0;
            foreach (var (call, island) in plan.Islands)
            {
                var (siteWord, islandWords) = IslandPlanner.Encode(call.Offset, island, image.ReadWord(section, call.Offset), call.DirectTarget);
                WriteWord(code, call.Offset, siteWord, image.IsLittleEndian);
                for (int i = 0; i < islandWords.Length; i++)
                    WriteWord(code, island + (ulong)(4 * i), islandWords[i], image.IsLittleEndian);
                if (call.Relocated is { } site)
                    container.SetRelocationOffset(site.RelocationSection.Index, site.RelocationIndex, island);
                symbols.Add((IslandPlanner.SymbolName(plan.Function.Name, call.Callee, n++), section.Index, island));
                fixes.Add(new AppliedFix(section.Name, call.Offset, plan.Function.Name, call.Callee, FixStrategy.Island, island, call.Source)
                    { Why = call.NoNopWhy });
            }
            container.SetSectionData(section.Index, code);
            changes.Add(new FdeExtender.CodeChange(section.Index, plan.Function.End, (ulong)code.Length,
                plan.Islands.Select(i => new FdeExtender.Island(i.Call.Offset, i.Island)).ToList()));
            // The function now ends where the last island ends (ELFv1: the .opd symbol's size is the code size).
            container.SetSymbolSize(plan.Function.Symbol.Index, (ulong)code.Length - plan.Function.Start);
            added += code.Length - (int)section.Size;
        }
        added += nopBytes;
        notes = FdeExtender.Rewrite(image, container, changes, nopEdits.Select(n => n.Editor).ToList());
        var islandLines = plans.SelectMany(p => p.Islands.Select(i => new DwarfLayoutEditor.IslandLine(p.Section.Index, i.Call.Offset, i.Island))).ToList();
        var grown = plans.Select(p => new DwarfLayoutEditor.Growth(p.Section.Index, p.Function.End,
            IslandPlanner.AlignUp(p.Section.Size, 4) + (ulong)p.Islands.Count * IslandPlanner.IslandSize)).ToList();
        if (DwarfLayoutEditor.Apply(image, container, nopEdits.Select(n => n.Editor).ToList(), islandLines, grown) is { } debugNote) notes.Add(debugNote);
        // Symbols last: inserting a local renumbers every later symbol index.
        foreach (var (name, sectionIndex, value) in symbols)
            container.AddLocalSymbol(name, sectionIndex, value, IslandPlanner.IslandSize, SttNotype);
        return (container.Save(), fixes, added);
    }

    private static void WriteWord(byte[] code, ulong offset, uint word, bool littleEndian)
    {
        var span = code.AsSpan((int)offset, 4);
        if (littleEndian) System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(span, word);
        else System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(span, word);
    }

    /// <summary>"island", "insert-nop", "insert-nop 3, island 1", or "none".</summary>
    public static string StrategySummary(IReadOnlyCollection<AppliedFix> fixes)
    {
        int nops = fixes.Count(f => f.Strategy == FixStrategy.InsertNop), islands = fixes.Count - nops;
        return fixes.Count == 0 ? "none" : nops == 0 ? "island" : islands == 0 ? "insert-nop" : $"insert-nop {nops}, island {islands}";
    }

    /// <summary>
    /// The tail of a summary line: sites the loader refuses that stay unfixed (errors), and sites that only
    /// <c>--sites all-local</c> asked for and that stay as they are (warnings), by code — every site not fixed counts.
    /// </summary>
    public static string UnfixedSummary(IEnumerable<Diagnostic> diagnostics)
    {
        var sites = diagnostics.Where(d => d.Code.StartsWith("PLP2", StringComparison.Ordinal) && d.Offset is not null).ToList();
        int unfixable = sites.Count(d => d.Severity == Severity.Error);
        var left = sites.Where(d => d.Severity == Severity.Warning).GroupBy(d => d.Code).OrderBy(g => g.Key, StringComparer.Ordinal)
            .Select(g => $"{g.Count()} {g.Key}: {DiagnosticCatalog.Get(g.Key).Title.ToLowerInvariant()}").ToList();
        string text = $"{unfixable} unfixable";
        return left.Count == 0 ? text : $"{text}, {sites.Count - unfixable} left as they are ({string.Join("; ", left)})";
    }

    private static PatchResult Finish(ElfImage output, byte[] bytes, List<AppliedFix> fixes, List<Diagnostic> unfixable, List<string> unwindNotes, LoaderOptions loader, int bytesAdded)
    {
        var after = ObjectVerifier.Verify(output, loader);
        // A site we could not fix is reported once, by the code that says why, not again as PLP2001.
        var explained = unfixable.Select(d => (d.Section, d.Offset)).ToHashSet();
        var diagnostics = new List<Diagnostic>(unfixable);
        diagnostics.AddRange(after.Diagnostics.Where(d => !explained.Contains((d.Section, d.Offset))));
        foreach (var f in fixes)
            diagnostics.Add(new Diagnostic(DiagnosticCatalog.SiteFixed, Severity.Info,
                f.Strategy == FixStrategy.InsertNop
                    ? $"fixed call to {f.Callee} at {f.Section}+0x{f.Offset:x}: a nop inserted after it (the call is now at +0x{f.NewOffset:x})"
                    : $"fixed call to {f.Callee} at {f.Section}+0x{f.Offset:x}: redirected through an island at {f.Section}+0x{f.IslandOffset:x} (bl; nop; b back)",
                output.Path, f.Section, f.Offset, f.Function, null, f.Callee, f.Source));
        foreach (string note in unwindNotes)
            diagnostics.Add(new Diagnostic(DiagnosticCatalog.UnwindNotExtended, Severity.Info, note, output.Path));
        diagnostics.Sort(ObjectVerifier.CompareDiagnostics);
        diagnostics.Add(new Diagnostic(DiagnosticCatalog.PatchSummary, Severity.Info,
            $"{fixes.Count} REL24 call site{(fixes.Count == 1 ? "" : "s")} fixed ({StrategySummary(fixes)}), {bytesAdded} bytes added, {UnfixedSummary(diagnostics)}",
            output.Path));
        return new PatchResult(after with { Diagnostics = diagnostics }, fixes, bytes, bytesAdded);
    }
}
