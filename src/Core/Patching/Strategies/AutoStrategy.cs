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
        return _islands.Plan(context, section,
            why is null ? calls : calls.Select(c => c with { NoNopWhy = why }).ToList());
    }
}
