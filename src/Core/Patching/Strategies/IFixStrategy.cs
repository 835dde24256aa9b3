using PpcLivepatch.Analysis;
using PpcLivepatch.Diagnostics;
using PpcLivepatch.Elf;

namespace PpcLivepatch.Patching;

/// <summary>
/// A way to fix the calls of one code section. A strategy plans a <see cref="SectionRewrite"/> for the calls it can
/// fix and a coded refusal for each it cannot; the pipeline (<see cref="ObjectPatcher"/>) applies the rewrites,
/// rewrites DWARF and CFI from their <see cref="CodeLayout"/>s, and has the translation validator check the result.
/// A new strategy is a class here and a line in <see cref="FixStrategies"/>.
/// </summary>
internal interface IFixStrategy
{
    FixStrategy Kind { get; }

    /// <summary>The name options and reports use ("insert-nop").</summary>
    string Name { get; }

    /// <summary>Whether a section whose rewrite the validator refused may be planned again (with islands).</summary>
    bool RetriesRefusedSections { get; }

    /// <summary>Whether its rewrites move existing code (what reports list first).</summary>
    bool MovesCode { get; }

    SectionPlan Plan(PatchContext context, ElfSection section, IReadOnlyList<CallToFix> calls);
}

/// <summary>A strategy's answer for one section: its rewrite (if it fixes anything), its refusals, and calls it leaves
/// for a second round over its output (auto: the calls of a function that had to move as a whole).</summary>
internal sealed record SectionPlan(SectionRewrite? Rewrite, IReadOnlyList<Diagnostic> Refused)
{
    public IReadOnlyList<CallToFix> Deferred { get; init; } = [];
}

/// <summary>What a strategy plans with: the analysis of the input, and sections the validator refused before.</summary>
internal sealed record PatchContext(ObjectAnalysis Analysis, IReadOnlyDictionary<int, string> RefusedByValidator);

/// <summary>A local symbol a rewrite adds (islands name theirs); added after every other edit, since it renumbers
/// symbols.</summary>
internal sealed record NewSymbol(string Name, int Section, ulong Value, ulong Size);

/// <summary>One section's rewrite, ready to apply to the output container.</summary>
internal abstract class SectionRewrite
{
    public abstract ElfSection Section { get; }

    /// <summary>The address map the rewrite makes, for the DWARF and CFI rewriters and the validator.</summary>
    public abstract CodeLayout Layout { get; }

    public abstract IReadOnlyList<AppliedFix> Fixes { get; }

    public abstract int BytesAdded { get; }

    /// <summary>The DWARF plan the eligibility check computed for this rewrite alone, if any.</summary>
    public virtual DwarfLayoutEditor.Plan? CheckedDwarfPlan => null;

    /// <summary>Writes the section's new code, moves its relocations and symbols; returns the symbols to add.</summary>
    public abstract IReadOnlyList<NewSymbol> Apply(ElfContainer container);
}

/// <summary>The strategies, by option name.</summary>
public static class FixStrategies
{
    private static readonly IFixStrategy[] All = [new IslandStrategy(), new InsertNopStrategy(), new AutoStrategy()];

    internal static IFixStrategy Get(FixStrategy kind) => All.First(s => s.Kind == kind);

    /// <summary>Where a strategy goes in summaries ("insert-nop 3, island 1"): strategies that move code
    /// first.</summary>
    public static int ReportOrder(FixStrategy kind) => Get(kind).MovesCode ? 0 : 1;

    public static string NameOf(FixStrategy kind) => Get(kind).Name;

    public static bool TryParse(string? name, out FixStrategy kind)
    {
        var found = All.FirstOrDefault(s => s.Name == name);
        kind = found?.Kind ?? default;
        return found is not null;
    }

    /// <summary>"island, insert-nop or auto" (with <paramref name="more"/> last) for messages that list the
    /// choices.</summary>
    public static string Choices(params string[] more)
    {
        var names = All.Select(s => s.Name).Concat(more).ToList();
        return string.Join(", ", names[..^1]) + " or " + names[^1];
    }
}
