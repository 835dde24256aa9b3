using PpcLivepatch.Diagnostics;
using PpcLivepatch.Elf;
using PpcLivepatch.Patching;

namespace PpcLivepatch.AssemblerRoute;

/// <summary>How the route runs: the site rules, and the directory whose sources take the route (kbuild runs every
/// compile of the kernel's own tree through the same CC).</summary>
public sealed record AssemblerRouteOptions(NopRules Rules, string? OnlyUnder = null);

/// <summary>What a compile through the route did: its exit code, its findings, the nops that went in, and the calls
/// left to the object step.</summary>
public sealed record AssemblerRouteResult(int ExitCode, IReadOnlyList<Diagnostic> Diagnostics, int NopsInserted,
    int CallsLeft, bool TookRoute);

/// <summary>
/// The assembler route (Rel24Strategy=asm): a C compile becomes compile-to-assembly, a nop after each call the site
/// rules choose (<see cref="CallNopPlanner"/>), and the assembler — which lays out branches, jump tables, DWARF and
/// CFI itself. The unedited assembly is assembled too, and the edited object is written only when
/// <see cref="AssemblerRouteValidator"/> shows that it differs from the compiler's by exactly those nops. A section
/// whose edit cannot be shown to keep its meaning keeps the compiler's code, and its calls are left to the object
/// step (<c>patch</c>, with its own proofs), with a note that says why; nothing is ever written unproven.
/// </summary>
public static class AssemblerRouteCompiler
{
    private const int MaxRetries = 3;

    public static AssemblerRouteResult Run(IReadOnlyList<string> command, AssemblerRouteOptions options,
        TextWriter stdout, TextWriter stderr)
    {
        var compile = CompileCommand.TryParse(command);
        if (compile is null || !IsUnder(compile.Source, options.OnlyUnder))
            return new(ToolProcess.Run(command, stdout, stderr), [], 0, 0, TookRoute: false);

        string output = Path.GetFullPath(compile.Output);
        string dir = Path.GetDirectoryName(output)!;
        string stem = Path.Combine(dir, $".{Path.GetFileName(output)}.ppclp{Environment.ProcessId}");
        string asmFile = stem + ".s", editedAsm = stem + "-nop.s", originalObj = stem + "-cc.o",
            editedObj = stem + "-nop.o";
        bool written = false;
        try
        {
            Directory.CreateDirectory(dir);
            int rc = ToolProcess.Run(compile.ToAssembly(asmFile), stdout, stderr);
            if (rc != 0) return Failed(rc, output, []);
            var asm = AssemblyText.Parse(File.ReadAllText(asmFile));
            var skip = new HashSet<string>(StringComparer.Ordinal);
            var notes = new List<Diagnostic>();
            for (int attempt = 0; ; attempt++)
            {
                var plan = CallNopPlanner.Plan(asm, options.Rules, skip);
                if (plan.Refused.Count > 0)
                    return Failed(1, output, plan.Refused.Select(r => Refusal(compile, output, r)).ToList());
                if (plan.Nops.Count == 0)
                {
                    rc = ToolProcess.Run(compile.ToObject(asmFile, editedObj), stdout, stderr);
                    if (rc != 0) return Failed(rc, output, []);
                    File.Move(editedObj, output, overwrite: true);
                    written = true;
                    return new(0, notes, 0, CallsLeftIn(asm, options.Rules, skip), TookRoute: true);
                }
                File.WriteAllText(editedAsm, CallNopPlanner.Apply(asm, plan));
                rc = ToolProcess.Run(compile.ToObject(asmFile, originalObj), stdout, stderr);
                // The assembler's own messages once: the edited assembly's only when it fails where the other did not.
                var editedMessages = new StringWriter();
                if (rc == 0) rc = ToolProcess.Run(compile.ToObject(editedAsm, editedObj), TextWriter.Null,
                    editedMessages);
                if (rc != 0)
                {
                    stderr.Write(editedMessages.ToString());
                    return Failed(rc, output, []);
                }

                var failures = Validate(originalObj, editedObj, plan, asm);
                if (failures.Count == 0)
                {
                    File.Move(editedObj, output, overwrite: true);
                    written = true;
                    return new(0, notes, plan.Nops.Count, CallsLeftIn(asm, options.Rules, skip), TookRoute: true);
                }
                // A section whose nops cannot be proven keeps the compiler's code, and the result is checked again.
                var fallBack = SectionsToFallBack(failures, plan, skip);
                if (fallBack.Count == 0 || attempt == MaxRetries)
                    return Failed(1, output, failures.GroupBy(f => f.SectionName).Select(g =>
                        NotProven(compile, output, g.First(), plan)).ToList());
                foreach (string section in fallBack)
                {
                    skip.Add(section);
                    var why = failures.FirstOrDefault(f => f.SectionName == section) ?? failures[0];
                    notes.Add(LeftToObjectStep(compile, output, section, why, plan));
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return Failed(1, output, [Diagnostic.Create(DiagnosticCatalog.UnwritableOutput, output,
                $"the assembler route cannot write next to {output}: {e.Message}")]);
        }
        finally
        {
            // Whatever stopped the compile (a bug included), no earlier object stays to look up to date.
            if (!written) TryDelete(output);
            foreach (string f in new[] { asmFile, editedAsm, originalObj, editedObj }) TryDelete(f);
        }
    }

    private static void TryDelete(string path)
    {
        try { File.Delete(path); } catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
    }

    private static bool IsUnder(string source, string? root)
    {
        if (string.IsNullOrEmpty(root)) return true;
        string full = Path.GetFullPath(source), r = Path.TrimEndingDirectorySeparator(Path.GetFullPath(root));
        return full.StartsWith(r + Path.DirectorySeparatorChar, StringComparison.Ordinal);
    }

    private static List<ValidationFailure> Validate(string originalObj, string editedObj, NopPlan plan,
        AssemblyText asm)
    {
        if (!ElfImage.TryLoad(originalObj, out var original, out var error)
            || !ElfImage.TryLoad(editedObj, out var edited, out error))
            return [new(0, "?", 0, $"the assembled object cannot be read back: {error!.Message}")];
        var planned = plan.Nops.GroupBy(n => n.Call.Section).ToDictionary(g => g.Key, g => g.Select(n =>
            n.Callee).ToList());
        return AssemblerRouteValidator.Validate(original!, edited!, planned,
            new AssembledLayout(asm.FunctionsWithInlineAssembly, asm.InlineAssemblyComputesWithSymbols));
    }

    /// <summary>Calls the rules want that kept no nop (sections left to the object step).</summary>
    private static int CallsLeftIn(AssemblyText asm, NopRules rules, IReadOnlySet<string> skipped) =>
        skipped.Count == 0 ? 0 : CallNopPlanner.Plan(asm, rules).Nops.Count(n => skipped.Contains(n.Call.Section));

    /// <summary>No object survives a failed compile: make must not take a stale one for up to date.</summary>
    private static AssemblerRouteResult Failed(int rc, string output, List<Diagnostic> diagnostics)
    {
        TryDelete(output);
        return new(rc, diagnostics, 0, 0, TookRoute: true);
    }

    private static SourceLocation? Where(CompileCommand compile, AsmStatement s) =>
        s.Source is { } l ? new(l.File, l.Line, l.Column) : new(compile.Source, 0, 0);

    private static Diagnostic Refusal(CompileCommand compile, string output, RefusedCall r) =>
        new(DiagnosticCatalog.AsmCallInInlineAssembly, r.Why, output, r.Call.Section, Callee: r.Callee,
            Source: Where(compile, r.Call),
            Fix: $"Give the call its own nop in the asm text (\"bl {r.Call.Operands}; nop\"), or move it out of the " +
                "inline asm into C.");

    private static Diagnostic NotProven(CompileCommand compile, string output, ValidationFailure f, NopPlan plan)
    {
        var call = plan.Nops.FirstOrDefault(n => n.Call.Section == f.SectionName)?.Call;
        return new(DiagnosticCatalog.AsmRouteNotProven,
            $"the assembler route's object could not be shown to differ from the compiler's by the planned nops " +
                $"alone, so nothing was written: {f.SectionName}: {f.Why}",
            output, f.SectionName, f.Offset, Source: call is null ? new(compile.Source, 0, 0) : Where(compile, call),
            Fix: "Build with Rel24Strategy=auto, and report the source: this is a gap in the assembler route.");
    }

    /// <summary>
    /// The code sections to give the compiler's code back: those the validator named, and for a difference found
    /// elsewhere (a table in <c>.rodata.f</c> whose words the assembler computed from labels in <c>.text.f</c>) the
    /// code sections of the same function, or every edited one when none matches. Only an attribution: the object is
    /// validated again either way.
    /// </summary>
    private static List<string> SectionsToFallBack(List<ValidationFailure> failures, NopPlan plan,
        HashSet<string> skip)
    {
        var edited = plan.Nops.Select(n => n.Call.Section).Distinct().Where(s => !skip.Contains(s)).ToList();
        var result = new List<string>();
        foreach (var f in failures)
        {
            if (edited.Contains(f.SectionName)) { result.Add(f.SectionName); continue; }
            string suffix = FunctionSuffix(f.SectionName);
            var same = edited.Where(s => suffix.Length > 0 && FunctionSuffix(s) == suffix).ToList();
            result.AddRange(same.Count > 0 ? same : edited);
        }
        return result.Distinct().ToList();
    }

    /// <summary>".text.f" and ".rodata.f" → "f" (-ffunction-sections, -fdata-sections names).</summary>
    private static string FunctionSuffix(string section)
    {
        int dot = section.IndexOf('.', 1);
        return dot < 0 ? "" : section[(dot + 1)..];
    }

    private static Diagnostic LeftToObjectStep(CompileCommand compile, string output, string section,
        ValidationFailure f, NopPlan plan)
    {
        var calls = plan.Nops.Where(n => n.Call.Section == section).ToList();
        string why = f.SectionName == section ? f.Why : $"{f.SectionName}: {f.Why}";
        return new(DiagnosticCatalog.AsmCallsLeftToObjectStep,
            $"{calls.Count} call(s) in {section} keep the compiler's code, for the object step to fix: nops " +
                $"there could not be proven to keep the code's meaning ({why})",
            output, section, f.SectionName == section ? f.Offset : null, Callee: calls.FirstOrDefault()?.Callee,
            Source: calls.Count > 0 ? Where(compile, calls[0].Call) : new(compile.Source, 0, 0));
    }
}
