using PpcLivepatch.AssemblerRoute;
using PpcLivepatch.Diagnostics;

namespace PpcLivepatch.Cli;

/// <summary>
/// <c>ppc-livepatch cc [--nop-after NAME]… [--all-local] [--only-under DIR] -- COMPILER ARGS…</c>: the assembler
/// route as a compiler command (the SDK's compile step, and kbuild's <c>CC</c>). A command that is not a compile of
/// one C source (or of one outside <c>--only-under</c>) runs unchanged. The settings may also come from the
/// environment, as kbuild passes them: <c>PPCLP_NOP_CALLEES</c> (space-separated names), <c>PPCLP_NOP_ALL_LOCAL=1</c>,
/// <c>PPCLP_ASM_DIR</c>. Findings are printed as the compiler prints its own
/// (<c>file:line:col: error: PLPnnnn: …</c>) so build logs and the SDK place them at the C line.
/// </summary>
internal static class CcCommand
{
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var callees = new List<string>((Environment.GetEnvironmentVariable("PPCLP_NOP_CALLEES") ?? "")
            .Split(' ', StringSplitOptions.RemoveEmptyEntries));
        bool allLocal = Environment.GetEnvironmentVariable("PPCLP_NOP_ALL_LOCAL") == "1";
        string? under = Environment.GetEnvironmentVariable("PPCLP_ASM_DIR") is { Length: > 0 } d ? d : null;
        int i = 0;
        for (; i < args.Length && args[i] != "--"; i++)
        {
            var (a, inline) = CliApp.SplitInline(args[i]);
            string? Value() => inline ?? (i + 1 < args.Length ? args[++i] : null);
            switch (a)
            {
                case "--nop-after":
                    if (Value() is not { Length: > 0 } name) return Fail(stderr, "--nop-after needs a function name");
                    callees.AddRange(name.Split(',', StringSplitOptions.RemoveEmptyEntries));
                    break;
                case "--all-local" when inline is null: allLocal = true; break;
                case "--only-under":
                    under = Value();
                    if (string.IsNullOrEmpty(under)) return Fail(stderr, "--only-under needs a directory");
                    break;
                default:
                    return Fail(stderr, $"unknown option '{a}'" +
                        CliApp.Suggestion(a, ["--nop-after", "--all-local", "--only-under", "--"]) +
                        "; the compiler command comes after --");
            }
        }
        if (i >= args.Length - 1) return Fail(stderr, "cc needs a compiler command after --");
        var result = AssemblerRouteCompiler.Run(args[(i + 1)..],
            new AssemblerRouteOptions(NopRules.For(callees, allLocal), under), stdout, stderr);
        foreach (var diagnostic in result.Diagnostics) stderr.WriteLine(CompilerStyle(diagnostic));
        return result.ExitCode;
    }

    /// <summary><c>file:line:col: error: PLPnnnn: message</c>, the form gcc's own messages take.</summary>
    internal static string CompilerStyle(Diagnostic d)
    {
        string kind = d.Severity switch { Severity.Error => "error", Severity.Warning => "warning", _ => "note" };
        string where = d.Source is { } s
            ? s.Line > 0 ? s.Column > 0 ? $"{s.File}:{s.Line}:{s.Column}" : $"{s.File}:{s.Line}" : s.File
            : d.ObjectPath;
        string fix = d.Fix is null ? "" : $" {d.Fix}";
        return $"{where}: {kind}: {d.Code}: {d.Sentence}{fix}";
    }

    private static int Fail(TextWriter stderr, string message) => CliApp.UsageError(stderr, message);
}
