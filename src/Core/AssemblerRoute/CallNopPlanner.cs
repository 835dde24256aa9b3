using System.Text;
using System.Text.RegularExpressions;

namespace PpcLivepatch.AssemblerRoute;

/// <summary>Which calls the assembler route gives a nop: those to named functions, or every call.</summary>
public sealed record NopRules(IReadOnlySet<string> Callees, bool AllLocal)
{
    public static NopRules For(IEnumerable<string> callees, bool allLocal) =>
        new(callees.Where(c => c.Length > 0).ToHashSet(StringComparer.Ordinal), allLocal);

    /// <summary>Calls that never take a nop: ftrace's profiling call and the out-of-line register save/restore
    /// routines, which the linker resolves locally and which do not touch r2.</summary>
    public static bool IsRuntimeHelper(string name) =>
        name is "_mcount" or "__fentry__"
        || RuntimeHelperPrefixes.Any(p => name.StartsWith(p, StringComparison.Ordinal));

    private static readonly string[] RuntimeHelperPrefixes =
        ["_savegpr", "_restgpr", "_savefpr", "_restfpr", "_savevr", "_restvr"];

    public bool Wants(string callee) => !IsRuntimeHelper(callee) && (AllLocal || Callees.Contains(callee));
}

/// <summary>A call the route gives a nop: its statement, the callee and the section it is in.</summary>
public sealed record PlannedNop(AsmStatement Call, string Callee);

/// <summary>A call that needs a nop the route cannot give: inside inline assembly it cannot reason about.</summary>
public sealed record RefusedCall(AsmStatement Call, string Callee, string Why);

/// <summary>The calls given a nop, and those refused.</summary>
public sealed record NopPlan(IReadOnlyList<PlannedNop> Nops, IReadOnlyList<RefusedCall> Refused);

/// <summary>
/// The assembler route's site rules. A <c>bl</c> gets a nop only when its target is a <b>function symbol</b> the rules
/// want (<see cref="NopRules"/>) and the next thing it assembles is not already a free nop. A branch to a label —
/// <c>bl 1f</c>, <c>bl .L0$pb</c> (clang's address idiom), <c>bl .+8</c>, a label inline assembly defines — is a
/// program-counter read or a local jump, and a nop after it would move the address it reads, so it never gets one.
/// <c>@notoc</c> calls (PC-relative code) need no TOC restore. Inside inline assembly a call that would need a nop is
/// refused: the route cannot know what the surrounding hand-written code assumes about addresses.
/// </summary>
public static partial class CallNopPlanner
{
    [GeneratedRegex(@"^(?<name>[A-Za-z_$][\w.$]*|\.[A-Za-z_$][\w.$]*|""[^""]+"")(?<suffix>@[A-Za-z]+)?$")]
    private static partial Regex SymbolTarget();

    [GeneratedRegex(@"^\d+[fb]$")]
    private static partial Regex NumericLabel();

    public static NopPlan Plan(AssemblyText asm, NopRules rules, IReadOnlySet<string>? skipSections = null)
    {
        var nops = new List<PlannedNop>();
        var refused = new List<RefusedCall>();
        var statements = asm.Statements;
        for (int i = 0; i < statements.Count; i++)
        {
            var s = statements[i];
            if (s.Kind != StatementKind.Instruction || s.Mnemonic != "bl") continue;
            if (CalleeOf(asm, s.Operands) is not { } callee || !rules.Wants(callee)) continue;
            if (HasFreeNop(statements, i)) continue;
            if (s.InInlineAssembly)
            {
                refused.Add(new(s, callee, $"the call to {callee} is inside an inline asm statement; a nop after it " +
                    "would move every address the hand-written code computes after it"));
                continue;
            }
            // A nop goes on a line of its own after the call's line: a call followed on its line by more statements
            // (which compilers do not write outside inline asm) keeps the compiler's code, for the object step.
            if (skipSections?.Contains(s.Section) == true || !s.EndsLine) continue;
            nops.Add(new(s, callee));
        }
        return new(nops, refused);
    }

    /// <summary>The function a <c>bl</c> operand calls, or null for a label, an expression, or a call that needs
    /// no TOC restore.</summary>
    public static string? CalleeOf(AssemblyText asm, string operand)
    {
        var m = SymbolTarget().Match(operand.Trim());
        if (!m.Success) return null;   // .+8, sym+4, sym(arg@tlsgd), 1f …
        string name = m.Groups["name"].Value.Trim('"'), suffix = m.Groups["suffix"].Value;
        if (suffix is "@notoc") return null;
        if (NumericLabel().IsMatch(name) || name.StartsWith(".L", StringComparison.Ordinal) || name.Contains('$')
            && !asm.Functions.Contains(name)) return null;
        // A name this file defines but does not type as a function is a label (inline assembly's own).
        if (asm.Labels.Contains(name) && !asm.Functions.Contains(name)) return null;
        // ELFv1's dot-symbols name the code of the function without the dot.
        if (name.StartsWith('.') && !asm.Functions.Contains(name)) name = name[1..];
        return name;
    }

    /// <summary>The next statement that assembles anything is a nop, and no label (a join point) comes first.</summary>
    private static bool HasFreeNop(IReadOnlyList<AsmStatement> statements, int call)
    {
        for (int j = call + 1; j < statements.Count; j++)
        {
            var t = statements[j];
            if (t.Kind == StatementKind.Directive && IsLayoutFree(t.Mnemonic)) continue;
            return t.Kind == StatementKind.Instruction && t.Section == statements[call].Section
                && (t.Mnemonic == "nop" || t.Mnemonic == "ori" && t.Operands.Replace(" ", "") is "0,0,0" or "r0,r0,0");
        }
        return false;
    }

    /// <summary>Directives that emit nothing into the code (line and unwind notes).</summary>
    private static bool IsLayoutFree(string directive) =>
        directive is ".loc" or ".file" or ".loc_mark_labels"
        || directive.StartsWith(".cfi_", StringComparison.Ordinal);

    /// <summary>The assembly with a <c>nop</c> after each planned call, on a line of its own (before any label
    /// that follows: the nop belongs to the call, as when the compiler emits <c>bl f; nop</c> itself).</summary>
    public static string Apply(AssemblyText asm, NopPlan plan)
    {
        var after = plan.Nops.Select(n => n.Call.Line).ToHashSet();
        var b = new StringBuilder();
        for (int i = 0; i < asm.Lines.Count; i++)
        {
            b.Append(asm.Lines[i]);
            if (i < asm.Lines.Count - 1 || after.Contains(i)) b.Append('\n');
            if (after.Contains(i)) b.Append("\tnop\n");
        }
        return b.ToString();
    }
}
