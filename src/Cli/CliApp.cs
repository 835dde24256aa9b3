using PpcLivepatch.Analysis;
using PpcLivepatch.Diagnostics;
using PpcLivepatch.Elf;
using PpcLivepatch.Patching;
using PpcLivepatch.Reports;

namespace PpcLivepatch.Cli;

/// <summary>
/// <c>ppc-livepatch</c>: the relocation core for Makefile and kbuild users. Exit codes: 0 the kernel would accept
/// every file, 1 it would refuse one, 2 bad usage, unreadable input or an output that cannot be written.
/// </summary>
public static class CliApp
{
    public const int ExitAccepted = 0, ExitRejected = 1, ExitUsage = 2;

    private const string Usage =
        """
        usage: ppc-livepatch verify [--kernel-accepts-ld-toc] [--pcrel] [--kernel-without-livepatch] [--module-name NAME]
                                    [--ftrace MODEL] [--format text|json|sarif] FILE...
               ppc-livepatch patch  [--strategy auto|insert-nop|island] [--sites needed|all-local] [--kernel-accepts-ld-toc]
                                    [--pcrel] [--kernel-without-livepatch] [--module-name NAME] [--ftrace MODEL]
                                    [--format text|json|sarif] [-o OUT] FILE
               ppc-livepatch diff   ORIG.o PATCHED.o -o OUT.o [--symbols FILE] [--object vmlinux|MODULE]
                                    [--vmlinux FILE] [--unbound] [--registration FILE.c] [--format text|json|sarif]
               ppc-livepatch cc     [--nop-after NAME]... [--all-local] [--only-under DIR] -- COMPILER ARGS...
               ppc-livepatch kernel-patch FIX.patch... --kernel-dir DIR [-o OUT.ko] [--name MODULE]
                                    [--kernel-source DIR] [--work-dir DIR] [--cross-compile PREFIX] [--strip N]

        verify  checks ppc64 relocatable objects (.o, .ko) the way Linux's module loader will: every call through a
                module stub (R_PPC64_REL24 to an undefined or livepatch symbol) must be followed by a nop.
        patch   fixes those calls: a nop inserted after the call (later code moves, and everything that names it
                follows), or an island (bl sym; nop; b back) appended inside the calling function. A translation
                validator checks every rewrite. Verifies the result, and only if the kernel would accept it writes OUT,
                or FILE in place (atomically; a symbolic link is followed, a device or FIFO written through).

          --kernel-accepts-ld-toc  the target kernel is 6.3 or later (accepts an already-written ld r2,24(r1))
          --pcrel                  the target kernel is built with CONFIG_PPC_KERNEL_PCREL
          --kernel-without-livepatch  the target kernel has no CONFIG_LIVEPATCH (a livepatch module is refused)
          --module-name NAME       the module name the kernel prints (default: from the file name)
          --ftrace MODEL           the target kernel's ftrace model: mprofile-kernel (6.1), patchable-entry (6.12 with
                                   GCC 14) or out-of-line (6.13+); a module of another model is refused (PLP2018)
          --format FORMAT          text (default; MSBuild canonical lines), json, or sarif (SARIF 2.1.0)
          --strategy STRATEGY      auto (default): insert-nop where the section's layout is fully understood,
                                   island elsewhere; insert-nop: a nop after the call, later code, line tables,
                                   unwind tables and jump tables follow; island: a 12-byte island inside the
                                   function, nothing moves
          --sites needed           fix what the loader would refuse (default)
          --sites all-local        also give every local bl a free nop, as kpatch's GCC plugin does
          -o OUT                   write the patched object to OUT instead of rewriting FILE

        diff    compares one file compiled twice, before and after a source patch (-ffunction-sections
                -fdata-sections), and writes the livepatch object: the changed and new functions and new data,
                every other reference bound to the running kernel (exported symbols undefined, the rest as
                .klp.sym.OBJECT.NAME,POS livepatch symbols). Run patch and verify on OUT next.
          --symbols FILE           where symbol positions and exports come from: vmlinux, a module, the original
                                   object (default), or a System.map
          --object NAME            the livepatch object the file belongs to: vmlinux (default) or a module's name
          --vmlinux FILE           for a module's file (--object MODULE, --symbols MODULE.ko): vmlinux or its
                                   System.map, which binds what the module does not define
          --unbound                leave the kernel's symbols undefined and list their bindings (JSON kernelSymbols),
                                   for a link step that binds them after linking (ld -r drops .klp.rela sections);
                                   replaced functions become globals __klp_new_NAME
          --registration FILE.c    also write the module's klp_func/klp_object/klp_patch registration as C

        cc      the assembler route, as a compiler command (kbuild's CC): a compile of one C source is run as
                compile-to-assembly, a nop after each call to a function that needs one (never after a branch to
                a label, such as a program-counter read; a call in inline asm that needs one is PLP2016), and the
                assembler. The unedited assembly is assembled too, and the object is written only when a translation
                validator shows the two differ by exactly those nops; a section where that cannot be shown keeps
                the compiler's code (PLP4004) for patch to fix. Any other command runs unchanged.
          --nop-after NAME         a function whose calls get a nop (a KlpSymbol); repeat, or NAME,NAME
          --all-local              every call gets one (Rel24Sites=all-local)
          --only-under DIR         only sources under DIR take the route (kbuild: the module's directory)
                                   Also from the environment: PPCLP_NOP_CALLEES (space-separated),
                                   PPCLP_NOP_ALL_LOCAL=1, PPCLP_ASM_DIR. Exit status: the compiler's, or 1.

        kernel-patch  builds a livepatch module from kernel source patches (unified diffs, as git or diff -u
                write them) against the kernel build tree DIR, as PpcLivepatch.Build.Sdk does for KernelPatch
                items: each translation unit a patch changes is compiled before and after it with kbuild's own
                command, the two objects diffed, the klp registration generated, the module linked by kbuild (this
                tool as its CC), bound, patched and verified as the loader will. Findings are placed at the .patch
                line. Writes OUT.ko (default MODULE.ko; MODULE from -o, else livepatch_ and the first patch's name).
          --kernel-source DIR      the tree the kernel was built from (default DIR/source, else DIR)
          --work-dir DIR           the copies, compiles and kbuild directory (default .ppc-livepatch/MODULE); the
                                   original's compile is kept there and reused
          --cross-compile PREFIX   kbuild's CROSS_COMPILE (default powerpc64le-linux-gnu-)
          --strip N                leading path components to strip from the patches' file names, as patch -pN
                                   (default 1: git's a/ and b/, diff -Nupr's src.orig/ and src/)

        exit status: 0 accepted, 1 rejected (something stays unfixed), 2 bad usage, unreadable input
            or unwritable output

        Options that take a value may also be written --name=value. ppc-livepatch --version prints the version.

        ppc-livepatch step … and ppc-livepatch serve are how PpcLivepatch.Build.Sdk's tasks run their steps in this
        tool; they are not a stable interface.
        """;

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr) => Run(args, null, stdout, stderr);

    /// <param name="stdin">Where <c>serve</c> reads its requests; standard input when null, opened only then (opening
    /// it sets up the terminal and signal handling: a cost every other command would pay at start).</param>
    public static int Run(string[] args, TextReader? stdin, TextWriter stdout, TextWriter stderr)
    {
        if (args.Length == 0 || args[0] is "-h" or "--help" or "help")
        {
            (args.Length == 0 ? stderr : stdout).WriteLine(Usage);
            return args.Length == 0 ? ExitUsage : ExitAccepted;
        }
        if (args[0] is "--version" or "version")
        {
            stdout.WriteLine($"ppc-livepatch {Version}");
            return ExitAccepted;
        }
        // "ppc-livepatch verify --help": the usage, for any command, wherever the option stands before a "--".
        if (args[0] is "verify" or "patch" or "diff" or "cc" or "kernel-patch"
            && args.Skip(1).TakeWhile(a => a != "--").Any(a => a is "--help" or "-h"))
        {
            stdout.WriteLine(Usage);
            return ExitAccepted;
        }
        if (args[0] == "step") return StepCommand.Run(args[1..], stdout, stderr);
        if (args[0] == "serve" && args.Length == 1) return StepCommand.Serve(stdin ?? Console.In, stdout);
        if (args[0] == "diff") return DiffCommand.Run(args[1..], stdout, stderr);
        if (args[0] == "cc") return CcCommand.Run(args[1..], stdout, stderr);
        if (args[0] == "kernel-patch") return KernelPatchCommand.Run(args[1..], stdout, stderr);
        if (args[0] is not ("verify" or "patch"))
            return UsageError(stderr, "unknown command " +
                $"'{args[0]}'{Suggestion(args[0], ["verify", "patch", "diff", "cc", "kernel-patch", "--version",
                    "--help"])}");
        var parsed = Options.Parse(args[0], args[1..], out string? error);
        if (parsed is null) return UsageError(stderr, error!);
        return args[0] == "verify" ? Verify(parsed, stdout) : Patch(parsed, stdout);
    }

    private static int Verify(Options o, TextWriter stdout)
    {
        // Text shows diagnostics and counts only: it does not need every accepted local call described.
        // Console.Out sits on stdout's byte stream: JSON can go there as the UTF-8 it is written in.
        using var raw = ReferenceEquals(stdout, Console.Out) ? Console.OpenStandardOutput() : null;
        var reports = ReportWriters.Stream(ObjectVerifier.VerifyEach(o.Files, o.Loader,
            allSites: o.Format != ReportFormat.Text),
            o.Format, stdout, raw);
        raw?.Flush();
        if (reports.Any(r => r.Unreadable)) return ExitUsage;
        return reports.All(r => r.Accepted) ? ExitAccepted : ExitRejected;
    }

    private static int Patch(Options o, TextWriter stdout)
    {
        string input = o.Files[0];
        string output = o.Output ?? input;
        if (!ElfImage.TryLoad(input, out var image, out var error))
        {
            stdout.Write(ReportWriters.Render([new ObjectReport(input, null, [], [error!])], o.Format));
            return ExitUsage;
        }
        var result = ObjectPatcher.Patch(image!, new PatchOptions(o.Strategy, o.Sites, o.Loader));
        // A rejected object gets no output (as a failed compile gets no .o: make must not see an up-to-date target);
        // in place and nothing to fix: leave the file (and its timestamp) alone.
        if (result.Output is not null && result.Report.Accepted && (result.Changed || o.Output is not null))
        {
            try
            {
                // In place, the rewrite replaces the only copy of the user's object: flushed before the rename.
                AtomicFile.WriteAllBytes(output, result.Output, durable: AtomicFile.Replaces(output, input),
                    modeOf: input);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException
                or ArgumentException)
            {
                var d = Diagnostic.Create(DiagnosticCatalog.UnwritableOutput, output,
                    $"cannot write '{output}': {e.Message}; the input is unchanged");
                stdout.Write(ReportWriters.Render([new ObjectReport(output, null, [], [d])], o.Format));
                return ExitUsage;
            }
        }
        var diagnostics = result.Report.Diagnostics.Select(d => d with { ObjectPath = output }).ToList();
        if (result.Changed && ModuleSignature.Dropped(image!, output) is { } unsigned) diagnostics.Insert(0, unsigned);
        var report = result.Report with { Path = output, Diagnostics = diagnostics };
        var shown = result with { Report = report };
        stdout.Write(ReportWriters.RenderPatch([shown], o.Format));
        return result.Report.Accepted ? ExitAccepted : ExitRejected;
    }

    /// <summary>The informational version (the package version, without the source revision).</summary>
    public static string Version =>
        (typeof(CliApp).Assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyInformationalVersionAttribute),
            false)
            .OfType<System.Reflection.AssemblyInformationalVersionAttribute>().FirstOrDefault()?.InformationalVersion
                ?? "0.0.0")
        .Split('+')[0];

    /// <summary>"; did you mean 'x'?" for the known spelling nearest to a mistyped one (at most a third of it
    /// wrong), else nothing.</summary>
    internal static string Suggestion(string typed, IEnumerable<string> known)
    {
        var best = known.Select(k => (k, d: EditDistance(typed, k))).MinBy(x => x.d);
        return best.k is not null && best.d <= Math.Max(1, best.k.Length / 3) ? $"; did you mean '{best.k}'?" : "";
    }

    private static int EditDistance(string a, string b)
    {
        var row = Enumerable.Range(0, b.Length + 1).ToArray();
        for (int i = 1; i <= a.Length; i++)
        {
            int diagonal = row[0];
            row[0] = i;
            for (int j = 1; j <= b.Length; j++)
            {
                int above = row[j];
                row[j] = Math.Min(Math.Min(row[j] + 1, row[j - 1] + 1), diagonal + (a[i - 1] == b[j - 1] ? 0 : 1));
                diagonal = above;
            }
        }
        return row[b.Length];
    }

    /// <summary><c>--name=value</c> as the name and its inline value; any other argument as it is.</summary>
    internal static (string Name, string? Inline) SplitInline(string argument) =>
        argument.StartsWith("--", StringComparison.Ordinal) && argument.IndexOf('=') is > 2 and var eq
            ? (argument[..eq], argument[(eq + 1)..]) : (argument, null);

    internal static int UsageError(TextWriter stderr, string message)
    {
        stderr.WriteLine($"ppc-livepatch : error {DiagnosticCatalog.UsageError}: {message}");
        stderr.WriteLine("Run 'ppc-livepatch --help' for usage.");
        return ExitUsage;
    }

    private sealed class Options
    {
        public LoaderOptions Loader { get; private set; } = LoaderOptions.Default;
        public ReportFormat Format { get; private set; } = ReportFormat.Text;
        public FixStrategy Strategy { get; private set; } = FixStrategy.Auto;
        public SiteSelection Sites { get; private set; } = SiteSelection.Needed;
        public string? Output { get; private set; }
        public List<string> Files { get; } = [];

        public static Options? Parse(string command, string[] args, out string? error)
        {
            error = null;
            try
            {
                return ParseOrThrow(command, args);
            }
            catch (UsageException e)
            {
                error = e.Message;
                return null;
            }
        }

        private static Options ParseOrThrow(string command, string[] args)
        {
            var o = new Options();
            var shared = new SharedOptions();
            bool patch = command == "patch";
            string[] valued = patch ? ["--format", "--module-name", "--ftrace", "--strategy", "--sites"]
                : ["--format", "--module-name", "--ftrace"];
            string[] flags = ["--kernel-accepts-ld-toc", "--pcrel", "--kernel-without-livepatch"];
            for (int i = 0; i < args.Length; i++)
            {
                // --name=value is --name value; a flag takes no value.
                var (a, inline) = SplitInline(args[i]);
                if (inline is not null)
                {
                    if (flags.Contains(a)) throw new UsageException($"{a} takes no value");
                    if (!valued.Contains(a)) throw new UsageException("unknown option " +
                        $"'{a}'{Suggestion(a, valued.Concat(flags))}");
                }
                string? Value()
                {
                    if (inline is not null) { string v = inline; inline = null; return v; }
                    return i + 1 < args.Length ? args[++i] : null;
                }
                if (shared.TryTakeLoaderOption(a, Value)) continue;
                switch (a)
                {
                    case "--format":
                        string f = Value() ?? throw new UsageException("--format needs a value: text, json or sarif");
                        if (!Enum.TryParse(f, ignoreCase: true, out ReportFormat format) || !Enum.IsDefined(format)
                            || f.All(char.IsDigit))
                            throw new UsageException($"unknown format '{f}': use text, json or sarif");
                        o.Format = format;
                        break;
                    case "--strategy" when patch:
                        o.Strategy = SharedOptions.Strategy(Value(), allowNone: false)!.Value;
                        break;
                    case "--sites" when patch:
                        o.Sites = SharedOptions.Sites(Value());
                        break;
                    case "-o" when patch:
                        o.Output = Value() ?? throw new UsageException("-o needs a file name");
                        break;
                    case "--":
                        o.Files.AddRange(args[(i + 1)..]);
                        i = args.Length;
                        break;
                    default:
                        if (a.StartsWith('-') && a.Length > 1)
                            throw new UsageException("unknown option " +
                                $"'{a}'{Suggestion(a, [.. valued, .. flags, .. (patch ? new[] { "-o" } : [])])}");
                        o.Files.Add(a);
                        break;
                }
            }
            if (o.Files.Count == 0) throw new UsageException($"{command} needs " +
                $"{(patch ? "a FILE" : "at least one FILE")}");
            if (patch && o.Files.Count > 1) throw new UsageException("patch takes one FILE");
            o.Loader = shared.Loader;
            return o;
        }
    }
}
