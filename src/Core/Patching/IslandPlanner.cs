using PpcLivepatch.Analysis;
using PpcLivepatch.Diagnostics;
using PpcLivepatch.Elf;
using PpcLivepatch.Ppc64;

namespace PpcLivepatch.Patching;

/// <summary>A call to move into an island: either a call relocation's site or an assembler-resolved local bl.</summary>
/// <param name="Needed">The loader would refuse the site as it is; otherwise only --sites all-local selected
/// it.</param>
internal sealed record CallToFix(ElfSection Section, ulong Offset, FunctionRange? Function, string Callee,
    SourceLocation? Source,
    CallSite? Relocated, ulong? DirectTarget, bool Needed)
{
    /// <summary>Why auto could not insert a nop here, when it gave the call to the island planner instead.</summary>
    public string? NoNopWhy { get; init; }

    /// <summary>Why this call stays unfixed, at the call: an error when the loader refuses it, else left as it
    /// is.</summary>
    public Diagnostic Unfixed(string code, string message, string objectPath, string fix)
    {
        var d = new Diagnostic(code, message, objectPath, Section.Name, Offset, Function?.Name,
            Function is null ? null : Offset - Function.Start,
            Callee, Source, fix) { Kind = DiagnosticKind.Unfixed };
        return Needed ? d : d.LeftAsIs();
    }
}

/// <summary>
/// The island strategy's planner (README, "The island strategy"). <c>bl sym</c> at P becomes <c>b island</c>; the
/// island, appended to
/// the caller's section, is
/// <code>
///   island+0: bl   sym      ; the call relocation moves here
///   island+4: nop           ; the loader's TOC restore slot
///   island+8: b    P+4      ; back to the instruction after the original call
/// </code>
/// No frame is pushed, so stack-passed arguments are untouched, and no existing byte moves. The island must lie
/// inside the caller's function range: livepatch decides whether a sleeping task is inside a function from the
/// function's address range, so an island outside it would let a transition complete while a task can still
/// return into the island. Under -ffunction-sections each function is alone in its section and the island is
/// appended to it; a function followed by another in its section has no room (PLP2009).
/// </summary>
internal static class IslandPlanner
{
    public const int IslandSize = 12;

    public sealed record SectionPlan(ElfSection Section, FunctionRange Function,
        List<(CallToFix Call, ulong Island)> Islands);

    public static (List<SectionPlan> Plans, List<Diagnostic> Unfixable) Plan(ElfImage image, FunctionMap functions,
        IReadOnlyList<CallToFix> calls)
    {
        var unfixable = new List<Diagnostic>();
        var plans = new List<SectionPlan>();
        foreach (var group in calls.GroupBy(c => c.Section.Index).OrderBy(g => g.Key))
        {
            var section = group.First().Section;
            ulong next = AlignUp(section.Size, 4);
            SectionPlan? plan = null;
            foreach (var call in group.OrderBy(c => c.Offset))
            {
                if (Refuse(image, functions, call) is { } diagnostic)
                {
                    unfixable.Add(diagnostic);
                    continue;
                }
                plan ??= new SectionPlan(section, call.Function!, []);
                plan.Islands.Add((call, next));
                next += IslandSize;
            }
            if (plan is not null) plans.Add(plan);
        }
        return (plans, unfixable);
    }

    /// <summary>Why <paramref name="call"/> cannot get an island, or null when it can.</summary>
    internal static Diagnostic? Refuse(ElfImage image, FunctionMap functions, CallToFix call)
    {
        var s = call.Section;
        string where = call.Function is null ? $"{s.Name}+0x{call.Offset:x}"
            : $"{call.Function.Name}+0x{call.Offset - call.Function.Start:x}";
        // A site that only --sites all-local asked for still loads as it is: not fixing it is a warning.
        // A site auto could give neither fix says why both failed.
        string also = call.NoNopWhy is null ? "" : $"; and no nop can be inserted there: {call.NoNopWhy}";
        Diagnostic Make(string code, string why, string fix) => call.Unfixed(code,
            $"call to {call.Callee} at {s.Name}+0x{call.Offset:x} ({where}) cannot be fixed with an island: " +
            $"{why}{also}", image.Path, fix);

        if (!s.IsExecutable)
            return Make(DiagnosticCatalog.CallOutsideCode, $"{s.Name} is not an executable section",
                "Call relocations belong in code sections; check the section flags of the hand-written assembly or " +
                    "the tool that produced this object.");
        uint word = image.ReadWord(s, call.Offset);
        if (Instruction.Classify(word) != BranchKind.Bl)
            return Make(DiagnosticCatalog.CallNotRelocatable, "the instruction is " +
                $"{Instruction.Mnemonic(Instruction.Classify(word))} (0x{word:x8}), not a relative bl",
                "Only relative bl calls can be redirected; rewrite the hand-written assembly to use bl followed by a " +
                    "nop.");
        // After an earlier patch the word after a call that ended its section is one of our islands: still nothing
        // to return to, so the answer stays the same on every run.
        if (call.Offset + 4 >= s.Size || image.Symbols.Any(y =>
            IsIslandSymbol(y) && y.SectionIndex == (uint)s.Index && y.Value == call.Offset + 4))
            return Make(DiagnosticCatalog.CallAtEndOfSection, "the call is the last word of its section, so there is " +
                "no instruction to return to",
                "Add the nop after the bl in the hand-written assembly.");
        if (call.Function is null)
            return Make(DiagnosticCatalog.NoRoomForIsland, "no function symbol covers the call, so there is no " +
                "function range to put an island in",
                "Give the code a function symbol (.type f,@function and .size), or compile with -ffunction-sections.");
        if (call.Function.End < s.Size)
            return Make(DiagnosticCatalog.NoRoomForIsland,
                $"{call.Function.Name}'s symbol ends at +0x{call.Function.End:x}, before the end of {s.Name} " +
                    $"(+0x{s.Size:x}), and the island must lie inside {call.Function.Name}'s range without taking in " +
                        "the bytes between",
                "Compile with -ffunction-sections, so each function is alone in its section and its symbol covers it " +
                    "to the end.");
        var later = functions.InSection(s.Index).FirstOrDefault(f =>
            f.Start >= call.Function.End && f != call.Function);
        if (later is not null)
            return Make(DiagnosticCatalog.NoRoomForIsland,
                $"{call.Function.Name} is followed by {later.Name} in {s.Name}, and the island must lie inside " +
                    $"{call.Function.Name}'s range so livepatch can tell a task is still inside it",
                "Compile with -ffunction-sections (kpatch-style builds do), so each function is alone in its section " +
                    "and islands go after it.");
        // b reaches ±32 MiB: no single-function section comes close, but never encode a branch unchecked.
        if (AlignUp(s.Size, 4) + IslandSize - call.Offset > (1UL << 25) - 4)
            return Make(DiagnosticCatalog.IslandOutOfRange, "the end of the section is out of reach of a relative " +
                "branch (±32 MiB)",
                "Split the function, or compile with -ffunction-sections.");
        return null;
    }

    public static ulong AlignUp(ulong value, ulong alignment) => (value + alignment - 1) & ~(alignment - 1);

    /// <summary>The island's words, and the word that replaces the original call.</summary>
    public static (uint Site, uint[] Island) Encode(ulong site, ulong island, uint originalCall, ulong? directTarget)
    {
        uint call = directTarget is { } t
            ? Instruction.EncodeIForm((long)t - (long)island, link: true)
            : originalCall & ~0x03FF_FFFCu | Instruction.Bl; // relocated: the field is the loader's to fill
        return (
            Instruction.EncodeIForm((long)island - (long)site, link: false),
            [call, Instruction.Nop, Instruction.EncodeIForm((long)(site + 4) - (long)(island + 8), link: false)]);
    }

    /// <summary>An island this tool wrote: its <c>.L…island…</c> symbol, 12 bytes, no type.</summary>
    public static bool IsIslandSymbol(ElfSymbol s) =>
        s.Type == ElfConstants.SttNotype && s.Size == IslandSize && s.IsInSection
        && s.Name.StartsWith(".L", StringComparison.Ordinal) && s.Name.Contains(".island.", StringComparison.Ordinal);

    /// <summary><c>.L</c> names are skipped by module kallsyms, so the caller's kallsyms range still covers the
    /// island.</summary>
    public static string SymbolName(string function, string callee, int n) =>
        $".L{function}.island.{KlpNames.SourceName(callee)}.{n}";
}
