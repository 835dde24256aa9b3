using PpcLivepatch.Elf;

namespace PpcLivepatch.Patching;

/// <summary>
/// island: each call becomes a branch to a 12-byte island appended inside its function (<see cref="IslandPlanner"/>);
/// no existing byte moves.
/// </summary>
internal sealed class IslandStrategy : IFixStrategy
{
    public FixStrategy Kind => FixStrategy.Island;
    public string Name => "island";
    public bool RetriesRefusedSections => false;
    public bool MovesCode => false;

    public SectionPlan Plan(PatchContext context, ElfSection section, IReadOnlyList<CallToFix> calls)
    {
        var analysis = context.Analysis;
        var (plans, unfixable) = IslandPlanner.Plan(analysis.Image, analysis.Functions, calls);
        return new SectionPlan(plans.Count == 0 ? null : new IslandRewrite(analysis.Image, plans.Single()), unfixable);
    }
}

/// <summary>The islands of one function: the redirected calls, the islands' words, the function's new size.</summary>
internal sealed class IslandRewrite : SectionRewrite
{
    private readonly ElfImage _image;
    private readonly IslandPlanner.SectionPlan _plan;
    private readonly ulong _start;
    private readonly ulong _end;

    public IslandRewrite(ElfImage image, IslandPlanner.SectionPlan plan)
    {
        _image = image;
        _plan = plan;
        _start = IslandPlanner.AlignUp(plan.Section.Size, 4);
        _end = _start + (ulong)(plan.Islands.Count * IslandPlanner.IslandSize);
        Layout = CodeLayout.WithIslands(plan.Section.Index,
            plan.Islands.Select(i => (i.Call.Offset, i.Island)).ToList(), plan.Function.End, _end);
        Fixes = plan.Islands.Select(i =>
            new AppliedFix(plan.Section.Name, i.Call.Offset, plan.Function.Name, i.Call.Callee, FixStrategy.Island,
            i.Island, i.Call.Source)
        {
            Why = i.Call.NoNopWhy,
            Done = $"redirected through an island at {plan.Section.Name}+0x{i.Island:x} (bl; nop; b back)",
        }).ToList();
    }

    public override ElfSection Section => _plan.Section;
    public override CodeLayout Layout { get; }
    public override IReadOnlyList<AppliedFix> Fixes { get; }
    public override int BytesAdded => (int)(_end - Section.Size);

    public override IReadOnlyList<NewSymbol> Apply(ElfContainer container)
    {
        var section = _plan.Section;
        var code = new byte[_end];
        _image.Data(section).CopyTo(code);
        var symbols = new List<NewSymbol>();
        foreach (var (call, island) in _plan.Islands)
        {
            var (siteWord, islandWords) = IslandPlanner.Encode(call.Offset, island,
                _image.ReadWord(section, call.Offset), call.DirectTarget);
            _image.WriteU32(code, (int)call.Offset, siteWord);
            for (int i = 0; i < islandWords.Length; i++) _image.WriteU32(code, (int)island + 4 * i, islandWords[i]);
            if (call.Relocated is { } site) container.SetRelocationOffset(site.RelocationSection.Index,
                site.RelocationIndex, island);
            symbols.Add(new NewSymbol(IslandPlanner.SymbolName(_plan.Function.Name, call.Callee, symbols.Count),
                section.Index, island, IslandPlanner.IslandSize));
        }
        container.SetSectionData(section.Index, code);
        // The function now ends where the last island ends (ELFv1: the .opd symbol's size is the code size).
        container.SetSymbolSize(_plan.Function.Symbol.Index, _end - _plan.Function.Start);
        return symbols;
    }
}
