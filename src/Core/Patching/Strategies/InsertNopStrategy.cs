using PpcLivepatch.Diagnostics;
using PpcLivepatch.Elf;
using PpcLivepatch.Ppc64;

namespace PpcLivepatch.Patching;

/// <summary> insert-nop: a nop right after each call, where the compiler would have put it, and everything after it
/// moves (<see cref="InsertNopEditor"/>). A section whose layout is not fully understood is refused with the reason
/// (PLP2011). </summary>
internal sealed class InsertNopStrategy : IFixStrategy
{
    public FixStrategy Kind => FixStrategy.InsertNop;
    public string Name => "insert-nop";
    public bool RetriesRefusedSections => false;
    public bool MovesCode => true;

    public SectionPlan Plan(PatchContext context, ElfSection section, IReadOnlyList<CallToFix> calls)
    {
        var (plan, why) = Attempt(context, section, calls);
        if (plan is not null) return plan;
        var image = context.Analysis.Image;
        return new SectionPlan(null, calls.Select(c => c.Unfixed(DiagnosticCatalog.InsertNopNotPossible,
            $"call to {c.Callee} at {section.Name}+0x{c.Offset:x} cannot get an inserted nop: {why}", image.Path,
            "Use --strategy auto (islands where insert-nop is not possible) or --strategy island.")).ToList());
    }

    /// <summary>The rewrite, or why the section cannot take inserted nops (null when there was simply nothing to
    /// insert).</summary>
    internal static (SectionPlan? Plan, string? Why) Attempt(PatchContext context, ElfSection section,
        IReadOnlyList<CallToFix> calls)
    {
        var image = context.Analysis.Image;
        // Only plain relative bl sites with a following instruction take an inserted nop; the others have no fix at
        // all,
        // and the island planner says why.
        var simple = calls.Where(c =>
            c.Offset + 4 < section.Size
                && Instruction.Classify(image.ReadWord(section, c.Offset)) == BranchKind.Bl).ToList();
        var editor = new InsertNopEditor(context.Analysis, section, simple.Select(c => c.Offset));
        string? why = !section.IsExecutable ? "it is not code"
            : context.RefusedByValidator.TryGetValue(section.Index, out var refused) ? refused
            : editor.Ineligible();
        if (why is not null || simple.Count == 0) return (null, why);
        var unfixable = calls.Except(simple).Select(c => IslandPlanner.Refuse(image, context.Analysis.Functions, c)
            ?? throw new InvalidOperationException($"the call at {section.Name}+0x{c.Offset:x} has neither a nop nor " +
                "an island")).ToList();
        return (new SectionPlan(new InsertNopRewrite(editor, simple), unfixable), null);
    }
}

/// <summary>Inserted nops in one section: the editor's bytes, relocations and symbols, one fix per call.</summary>
internal sealed class InsertNopRewrite(InsertNopEditor editor, IReadOnlyList<CallToFix> calls) : SectionRewrite
{
    public override ElfSection Section => calls[0].Section;
    public override CodeLayout Layout => editor.Layout;
    public override int BytesAdded => 4 * calls.Count;
    public override DwarfLayoutEditor.Plan? CheckedDwarfPlan => editor.DwarfPlan;

    public override IReadOnlyList<AppliedFix> Fixes { get; } = calls.Select(c =>
        new AppliedFix(c.Section.Name, c.Offset, c.Function?.Name ?? c.Section.Name, c.Callee, FixStrategy.InsertNop, 0,
            c.Source)
            { NewOffset = editor.Map(c.Offset), Done = "a nop inserted after it (the call is now at " +
                $"+0x{editor.Map(c.Offset):x})" }).ToList();

    public override IReadOnlyList<NewSymbol> Apply(ElfContainer container)
    {
        editor.Apply(container);
        return [];
    }
}
