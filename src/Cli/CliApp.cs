using PpcLivepatch.Analysis;
using PpcLivepatch.Diagnostics;

namespace PpcLivepatch.Cli;

/// <summary>
/// <c>ppc-livepatch</c>: the relocation core for Makefile and kbuild users. Exit codes: 0 the kernel would accept
/// every file, 1 it would reject one, 2 bad usage or unreadable input.
/// </summary>
public static class CliApp
{
    public const int ExitAccepted = 0, ExitRejected = 1, ExitUsage = 2;

    private const string Usage =
        """
        usage: ppc-livepatch verify [--kernel-accepts-ld-toc] [--pcrel] [--module-name NAME]
                                    [--format text|json|sarif] FILE...

        Checks ppc64 relocatable objects (.o, .ko) the way Linux's module loader will: every call through a module
        stub (R_PPC64_REL24 to an undefined or livepatch symbol) must be followed by a nop.

          --kernel-accepts-ld-toc  the target kernel is 6.3 or later (accepts an already-written ld r2,24(r1))
          --pcrel                  the target kernel is built with CONFIG_PPC_KERNEL_PCREL
          --module-name NAME       the module name the kernel prints (default: from the file name)
          --format FORMAT          text (default; MSBuild canonical lines), json, or sarif (SARIF 2.1.0)

        exit status: 0 accepted, 1 rejected, 2 bad usage or unreadable input
        """;

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        if (args.Length == 0 || args[0] is "-h" or "--help" or "help")
        {
            (args.Length == 0 ? stderr : stdout).WriteLine(Usage);
            return args.Length == 0 ? ExitUsage : ExitAccepted;
        }
        return args[0] switch
        {
            "verify" => Verify(args[1..], stdout, stderr),
            _ => UsageError(stderr, $"unknown command '{args[0]}'"),
        };
    }

    private static int Verify(string[] args, TextWriter stdout, TextWriter stderr)
    {
        bool acceptsLdToc = false, pcrel = false;
        string? moduleName = null;
        var format = ReportFormat.Text;
        var files = new List<string>();
        for (int i = 0; i < args.Length; i++)
        {
            string a = args[i];
            switch (a)
            {
                case "--kernel-accepts-ld-toc": acceptsLdToc = true; break;
                case "--pcrel": pcrel = true; break;
                case "--module-name":
                    if (++i >= args.Length) return UsageError(stderr, "--module-name needs a value");
                    moduleName = args[i];
                    break;
                case "--format":
                    if (++i >= args.Length) return UsageError(stderr, "--format needs a value: text, json or sarif");
                    if (!Enum.TryParse(args[i], ignoreCase: true, out format) || !Enum.IsDefined(format))
                        return UsageError(stderr, $"unknown format '{args[i]}': use text, json or sarif");
                    break;
                case "--":
                    files.AddRange(args[(i + 1)..]);
                    i = args.Length;
                    break;
                default:
                    if (a.StartsWith('-') && a.Length > 1) return UsageError(stderr, $"unknown option '{a}'");
                    files.Add(a);
                    break;
            }
        }
        if (files.Count == 0) return UsageError(stderr, "verify needs at least one FILE");

        var options = new LoaderOptions(acceptsLdToc, pcrel, moduleName);
        var reports = files.Select(f => ObjectVerifier.Verify(f, options)).ToList();
        stdout.Write(ReportWriters.Render(reports, format));
        if (reports.Any(r => r.Unreadable)) return ExitUsage;
        return reports.All(r => r.Accepted) ? ExitAccepted : ExitRejected;
    }

    private static int UsageError(TextWriter stderr, string message)
    {
        stderr.WriteLine($"ppc-livepatch : error {DiagnosticCatalog.UsageError}: {message}");
        stderr.WriteLine("Run 'ppc-livepatch --help' for usage.");
        return ExitUsage;
    }
}
