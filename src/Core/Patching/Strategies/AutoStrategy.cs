using PpcLivepatch.Elf;

namespace PpcLivepatch.Patching;

/// <summary>
/// auto (the default): insert-nop where the section's layout is fully understood and the validator accepted it,
/// islands elsewhere — each island fix carries why no nop could go in.
/// </summary>
internal sealed class AutoStrategy : IFixStrategy
{
    private readonly IslandStrategy _islands = new();

    public FixStrategy Kind => FixStrategy.Auto;
    public string Name => "auto";
    public bool RetriesRefusedSections => true;
    public bool MovesCode => true;

    public SectionPlan Plan(PatchContext context, ElfSection section, IReadOnlyList<CallToFix> calls)
    {
        var (plan, why) = InsertNopStrategy.Attempt(context, section, calls);
        if (plan is not null) return plan;
        // A function that may only move as a whole need not cost the others their nops: its calls wait for a second
        // round over this round's output (where they are all that is left, and get islands).
        if (!context.RefusedByValidator.ContainsKey(section.Index))
        {
            var whole = InsertNopEditor.FunctionsThatMoveWhole(context.Analysis, section);
            var inside = calls.Where(c => whole.Any(f => c.Offset >= f.Start && c.Offset < f.End)).ToList();
            if (inside.Count > 0 && inside.Count < calls.Count)
            {
                var (partial, _) = InsertNopStrategy.Attempt(context, section, calls.Except(inside).ToList());
                if (partial is not null) return partial with { Deferred = inside };
            }
        }
        return _islands.Plan(context, section,
            why is null ? calls : calls.Select(c => c with { NoNopWhy = why }).ToList());
    }
}
