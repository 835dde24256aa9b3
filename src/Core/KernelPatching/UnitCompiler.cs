using System.ComponentModel;
using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using PpcLivepatch.Diagnostics;
using PpcLivepatch.Elf;
using PpcLivepatch.Kbuild;

namespace PpcLivepatch.KernelPatching;

/// <summary>
/// Compiles one copy of a unit with kbuild's own command (as an argument vector, in the build tree) and, on a
/// kernel whose ftrace records come from recordmcount (-mprofile-kernel), runs it over the object as kbuild does;
/// with -fpatchable-function-entry the compiler writes the records itself. The compile is skipped when its object
/// was built from the same text by the same command: the original is compiled once, until the kernel tree or the
/// command changes.
/// </summary>
internal sealed partial class UnitCompiler(string buildTree, string sourceTree, string? includeDirectory,
    IKernelPatchLog log)
{
    /// <param name="locate">Maps a file and line gcc names (a copy's) to where the user edits, with a note.</param>
    /// <returns>False after the compile failed (its messages logged, a coded error at least).</returns>
    public bool Compile(KbuildUnit unit, string text, string copy, string output,
        Func<string, int, (string, int, string)?> locate, string progress, bool patched,
        IReadOnlyList<string>? firstIncludes = null, string headersKey = "")
    {
        // -g: the line tables place the diff's findings on the .patch's lines.
        var arguments = new List<string>(unit.LivepatchCompileArguments(copy, output, sourceTree, buildTree,
            debugInfo: true, firstIncludes: firstIncludes)!);
        if (patched && !string.IsNullOrEmpty(includeDirectory))
            arguments.Add("-I" + Path.GetFullPath(includeDirectory));
        string recordmcount = Path.Combine(buildTree, "scripts", "recordmcount");
        bool runRecordmcount = UsesRecordmcount();
        string stamp = output + ".key";
        string key = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(string.Join('\0', arguments) + "\n" +
            text + "\n" + headersKey)));
        if (File.Exists(output) && File.Exists(stamp) && File.ReadAllText(stamp) == key)
        {
            log.Progress($"{progress.Replace(": compiling", ":")} is up to date", prominent: false);
            return true;
        }
        log.Progress(progress, prominent: true);
        _failed = false;
        Directory.CreateDirectory(Path.GetDirectoryName(copy)!);
        File.Delete(stamp);
        File.WriteAllText(copy, text);
        var (exit, lines) = Run(arguments[0], arguments.Skip(1));
        if (exit == 0 && runRecordmcount) (exit, lines) = Concat(lines, Run(recordmcount, [output]));
        foreach (string line in AtMacroUse(lines))
        {
            if (line.Length == 0) continue;
            var placed = CompilerMessage.Parse(line)?.PlacedAt(copy, locationMap: (file, ln) =>
                locate(file, ln) is var (f, l, n) ? (f, l, n) : null);
            log.Compiler(line, placed);
            if (placed?.ToDiagnostic() is { Severity: Severity.Error }) _failed = true;
        }
        if (exit == 0)
        {
            AtomicFile.WriteAllBytes(stamp, Encoding.UTF8.GetBytes(key));
            return true;
        }
        File.Delete(output);
        if (!_failed)
            log.Report(exit == NotFound
                ? Diagnostic.Create(DiagnosticCatalog.CompilerNotFound, copy, $"'{arguments[0]}', which kbuild's " +
                    $"record of {unit.Object} names, cannot be run: {string.Join(' ', lines)}")
                : Diagnostic.Create(DiagnosticCatalog.CompilerError, copy,
                    $"compiling {unit.Object} for the livepatch failed (exit {exit})"));
        _failed = true;
        return false;
    }

    private bool _failed;

    private bool? _usesRecordmcount;

    /// <summary>Whether kbuild runs recordmcount after each compile (<c>CONFIG_FTRACE_MCOUNT_USE_RECORDMCOUNT</c>); a
    /// tree without its configuration is taken to, as every kernel before the patchable-entry lines did.</summary>
    private bool UsesRecordmcount()
    {
        if (_usesRecordmcount is { } known) return known;
        string config = Path.Combine(buildTree, "include", "config", "auto.conf");
        _usesRecordmcount = !File.Exists(config)
            || File.ReadLines(config).Contains("CONFIG_FTRACE_MCOUNT_USE_RECORDMCOUNT=y");
        return _usesRecordmcount.Value;
    }

    private const int NotFound = 127;

    private static (int, string[]) Concat(string[] first, (int Exit, string[] Lines) second) =>
        (second.Exit, [.. first, .. second.Lines]);

    /// <summary>Runs a program in the build tree: its exit status and its messages (stderr, then stdout).</summary>
    private (int Exit, string[] Lines) Run(string program, IEnumerable<string> arguments)
    {
        var psi = new ProcessStartInfo(program) { WorkingDirectory = buildTree, RedirectStandardOutput = true,
            RedirectStandardError = true, UseShellExecute = false };
        foreach (string a in arguments) psi.ArgumentList.Add(a);
        try
        {
            using var process = Process.Start(psi)!;
            var stdout = process.StandardOutput.ReadToEndAsync();
            string stderr = process.StandardError.ReadToEnd();
            process.WaitForExit();
            return (process.ExitCode, (stderr + stdout.Result).Split('\n'));
        }
        catch (Win32Exception e)
        {
            return (NotFound, [e.Message]);
        }
    }

    /// <summary>An error inside one of the SDK's macros (kpatch-macros.h refusing KPATCH_FORCE_UNSAFE, say) is the
    /// patch author's, at the line that used the macro: gcc names that line in the "in expansion of macro" notes
    /// after the error, and the error is moved there.</summary>
    private IEnumerable<string> AtMacroUse(string[] lines)
    {
        string headers = string.IsNullOrEmpty(includeDirectory) ? "\0" : Path.GetFullPath(includeDirectory);
        for (int i = 0; i < lines.Length; i++)
        {
            var error = GccLocation().Match(lines[i]);
            if (!error.Success || !error.Groups["file"].Value.StartsWith(headers, StringComparison.Ordinal)
                || error.Groups["kind"].Value == "note")
            {
                yield return lines[i];
                continue;
            }
            string? use = null;
            for (int j = i + 1; j < lines.Length; j++)
            {
                var next = GccLocation().Match(lines[j]);
                if (!next.Success) continue;
                if (next.Groups["kind"].Value != "note") break;
                if (lines[j].Contains("in expansion of macro", StringComparison.Ordinal)
                    && !next.Groups["file"].Value.StartsWith(headers, StringComparison.Ordinal))
                    use = next.Groups["location"].Value;
            }
            yield return use is null ? lines[i] : use + lines[i][error.Groups["location"].Length..];
        }
    }

    [GeneratedRegex(@"^(?<location>(?<file>[^:]+):\d+:\d+): (?<kind>fatal error|error|warning|note):")]
    private static partial Regex GccLocation();
}
