using PpcLivepatch.Diagnostics;
using PpcLivepatch.Diff;
using PpcLivepatch.Elf;
using PpcLivepatch.Reports;

namespace PpcLivepatch.Cli;

/// <summary><c>ppc-livepatch diff ORIG.o PATCHED.o -o OUT.o</c>: the livepatch object of a source patch.</summary>
internal static class DiffCommand
{
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        string? output = null, symbolsPath = null, objectName = null, registration = null, vmlinuxPath = null;
        bool bind = true;
        var format = ReportFormat.Text;
        var files = new List<string>();
        string[] valued = ["-o", "--symbols", "--object", "--format", "--unbound", "--registration", "--vmlinux"];
        for (int i = 0; i < args.Length; i++)
        {
            var (a, inline) = CliApp.SplitInline(args[i]);
            string? Value() => inline ?? (i + 1 < args.Length ? args[++i] : null);
            switch (a)
            {
                case "-o": output = Value(); if (output is null) return Fail(stderr, "-o needs a file name"); break;
                case "--symbols":
                    symbolsPath = Value();
                    if (symbolsPath is null) return Fail(stderr, "--symbols needs a file name");
                    break;
                case "--object":
                    objectName = Value();
                    if (objectName is null || objectName.Length is 0 or > 55 || objectName.Contains('.'))
                        return Fail(stderr, "--object needs vmlinux or a module name (1-55 characters, no '.')");
                    break;
                case "--vmlinux":
                    vmlinuxPath = Value();
                    if (vmlinuxPath is null) return Fail(stderr, "--vmlinux needs a file name");
                    break;
                case "--registration":
                    registration = Value();
                    if (registration is null) return Fail(stderr, "--registration needs a file name");
                    break;
                case "--unbound" when inline is null:
                    bind = false;
                    break;
                case "--format":
                    string? f = Value();
                    if (!Enum.TryParse(f, ignoreCase: true, out format) || !Enum.IsDefined(format)
                        || f!.All(char.IsDigit))
                        return Fail(stderr, $"unknown format '{f}': use text, json or sarif");
                    break;
                default:
                    if (a.StartsWith('-') && a.Length > 1)
                        return Fail(stderr, $"unknown option '{a}'{CliApp.Suggestion(a, valued)}");
                    files.Add(a);
                    break;
            }
        }
        if (files.Count != 2) return Fail(stderr, "diff needs two files: ORIG.o PATCHED.o");
        if (output is null) return Fail(stderr, "diff needs -o OUT.o");
        if (vmlinuxPath is not null && (objectName is null or "vmlinux" || symbolsPath is null))
            return Fail(stderr, "--vmlinux is for a module's file: with --object MODULE and --symbols MODULE.ko");

        var loaded = new List<ElfImage>();
        foreach (var file in files)
        {
            if (!ElfImage.TryLoad(file, out var image, out var error))
            {
                stdout.Write(ReportWriters.Render([new Analysis.ObjectReport(file, null, [], [error!])], format));
                return CliApp.ExitUsage;
            }
            loaded.Add(image!);
        }
        KernelSymbols? symbols = null, vmlinux = null;
        foreach (var (path, name, isModule) in new[] { (symbolsPath, objectName ?? "vmlinux", true),
                     (vmlinuxPath, "vmlinux", false) })
        {
            if (path is null) continue;
            var loadedSymbols = KernelSymbols.Load(path, name, out var error);
            if (loadedSymbols is null)
            {
                stdout.Write(ReportWriters.Render([new Analysis.ObjectReport(path, null, [], [error!])], format));
                return CliApp.ExitUsage;
            }
            if (isModule) symbols = loadedSymbols;
            else vmlinux = loadedSymbols;
        }
        // vmlinux itself as the symbol source also says where the kernel will attach each replacement (PLP5011).
        var ftrace = (objectName ?? "vmlinux") == "vmlinux" && symbolsPath is not null
            ? VmlinuxFtraceSites.Load(symbolsPath, out _) : null;
        var result = ObjectDiff.Run(loaded[0], loaded[1], new DiffOptions(objectName ?? "vmlinux", symbols, bind,
            vmlinux, ftrace));
        var report = result.Report;
        if (result.Output is not null)
        {
            try
            {
                AtomicFile.WriteAllBytes(output, result.Output, modeOf: files[1]);
                if (registration is not null)
                    AtomicFile.WriteAllBytes(registration, System.Text.Encoding.UTF8.GetBytes(
                        KlpRegistration.Generate(report.Replacements, report.Callbacks)));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException
                or ArgumentException)
            {
                report = report with { Diagnostics = [.. report.Diagnostics, Diagnostic.Create(
                    DiagnosticCatalog.UnwritableOutput, output, $"cannot write '{output}': {e.Message}")] };
                stdout.Write(DiffReportWriter.Render(report, loaded[1].Abi, format));
                return CliApp.ExitUsage;
            }
        }
        stdout.Write(DiffReportWriter.Render(report, loaded[1].Abi, format));
        return result.Output is not null ? CliApp.ExitAccepted : CliApp.ExitRejected;
    }

    private static int Fail(TextWriter stderr, string message) => CliApp.UsageError(stderr, message);
}
