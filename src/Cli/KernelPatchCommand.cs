using PpcLivepatch.Diagnostics;
using PpcLivepatch.Kbuild;
using PpcLivepatch.KernelPatching;
using PpcLivepatch.Klp;
using PpcLivepatch.Reports;
using PpcLivepatch.Steps;

namespace PpcLivepatch.Cli;

/// <summary>
/// <c>ppc-livepatch kernel-patch FIX.patch… --kernel-dir DIR [-o OUT.ko]</c>: the whole job from kernel source
/// patches to a verified livepatch module, for people who do not use MSBuild — what <c>kpatch-build</c> is for them.
/// It runs what the SDK runs for <c>KernelPatch</c> items, in the same order and with the same settings: the
/// <see cref="KernelPatchPipeline"/>, kbuild's link (this tool as kbuild's <c>CC</c>, the assembler route), then the
/// Convert, Patch and Verify steps. Its work directory has the SDK's layout (<c>kernelpatch/</c>, <c>kbuild/</c>,
/// <c>convert/</c>, <c>patch/</c>), so the same inputs give the same module.
/// </summary>
internal static class KernelPatchCommand
{
    private const string DefaultCrossCompile = "powerpc64le-linux-gnu-";

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        string? kernelDir = null, kernelSource = null, output = null, name = null, work = null;
        string cross = DefaultCrossCompile;
        int strip = 1;
        var patches = new List<string>();
        string[] valued = ["--kernel-dir", "--kernel-source", "-o", "--name", "--work-dir", "--cross-compile",
            "--strip"];
        for (int i = 0; i < args.Length; i++)
        {
            var (a, inline) = CliApp.SplitInline(args[i]);
            string? Value() => inline ?? (i + 1 < args.Length ? args[++i] : null);
            switch (a)
            {
                case "--kernel-dir": kernelDir = Value(); break;
                case "--kernel-source": kernelSource = Value(); break;
                case "-o": output = Value() ?? ""; break;
                case "--name": name = Value() ?? ""; break;
                case "--work-dir": work = Value() ?? ""; break;
                case "--cross-compile": cross = Value() ?? ""; break;
                case "--strip":
                    if (!int.TryParse(Value(), System.Globalization.NumberStyles.None,
                            System.Globalization.CultureInfo.InvariantCulture, out strip))
                        return CliApp.UsageError(stderr, "--strip needs a number of leading path components (as " +
                            "patch -pN)");
                    break;
                case "--":
                    patches.AddRange(args[(i + 1)..]);
                    i = args.Length;
                    break;
                default:
                    if (a.StartsWith('-') && a.Length > 1)
                        return CliApp.UsageError(stderr, $"unknown option '{a}'{CliApp.Suggestion(a, valued)}");
                    patches.Add(a);
                    break;
            }
        }
        if (patches.Count == 0) return CliApp.UsageError(stderr, "kernel-patch needs at least one FIX.patch");
        if (string.IsNullOrEmpty(kernelDir))
            return CliApp.UsageError(stderr, "kernel-patch needs --kernel-dir DIR: the build tree of the kernel the " +
                "patches are for (its .config, kbuild's .o.cmd records, vmlinux or System.map)");
        name ??= output is { Length: > 0 } ? Path.GetFileName(output).Split('.')[0]
            : "livepatch_" + Path.GetFileNameWithoutExtension(patches[0]);
        name = name.ToLowerInvariant().Replace('-', '_').Replace('.', '_');
        if (name.Length is 0 or > 55 || !name.All(c => char.IsAsciiLetterOrDigit(c) || c == '_'))
            return CliApp.UsageError(stderr, $"the module name '{name}' must be 1-55 letters, digits or '_' (--name)");
        output = Path.GetFullPath(string.IsNullOrEmpty(output) ? name + ".ko" : output);
        work = Path.GetFullPath(string.IsNullOrEmpty(work) ? Path.Combine(".ppc-livepatch", name) : work);

        var log = new TerminalLog(stdout);
        var job = new KernelPatchJob(patches.Select(p => new KernelPatchFile(Path.GetFullPath(p), strip)).ToList(),
            kernelDir,
            Path.Combine(work, "kernelpatch") + "/")
        {
            KernelSource = kernelSource, IncludeDirectory = HeadersDirectory(),
        };
        int status;
        try
        {
            status = Build(job, name, cross, output, work, log);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // The work directory (the kbuild directory, the steps' outputs) cannot be written: said, not thrown.
            log.Report(Diagnostic.Create(DiagnosticCatalog.UnwritableOutput, work,
                $"cannot write the work directory '{work}': {e.Message}"));
            status = CliApp.ExitUsage;
        }
        if (status != CliApp.ExitAccepted) Steps.StepFiles.DeleteIfExists(output);
        log.Summary(output, status == CliApp.ExitAccepted);
        return status;
    }

    private static int Build(KernelPatchJob job, string module, string cross, string output, string work,
        TerminalLog log)
    {
        string project = Path.GetFullPath(".");
        if (!KernelTree.IsBuildTree(job.KernelDirectory))
        {
            log.Report(Diagnostic.Create(DiagnosticCatalog.KernelTreeMissing, job.KernelDirectory,
                $"--kernel-dir '{job.KernelDirectory}' is not a kernel build tree " +
                    (Directory.Exists(job.KernelDirectory) ? "(it has no Makefile)" : "(no such directory)") +
                    ": point it at the kernel's build output or its headers package (e.g. " +
                    "/lib/modules/<version>/build)"));
            return CliApp.ExitUsage;
        }
        if (Toolchain.Find(cross + "gcc") is null)
        {
            log.Report(Diagnostic.Create(DiagnosticCatalog.CompilerNotFound, job.KernelDirectory,
                $"the compiler '{cross}gcc' that kbuild runs is not on PATH; " + Toolchain.InstallAdvice(cross)));
            return CliApp.ExitUsage;
        }
        if (KernelTree.CompilerMismatch(job.KernelDirectory, cross + "gcc", sameRelease: true) is { } mismatch)
        {
            log.Report(Diagnostic.Create(DiagnosticCatalog.KernelCompilerMismatch, job.KernelDirectory, mismatch));
            return CliApp.ExitUsage;
        }
        KernelPatchManifest? manifest;
        try
        {
            manifest = new KernelPatchPipeline(job, log).Run(Path.Combine(job.WorkDirectory, "manifest.json"));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            log.Report(Diagnostic.Create(DiagnosticCatalog.UnreadableFile, job.KernelDirectory,
                $"preparing the kernel patches failed: {e.Message}"));
            return CliApp.ExitUsage;
        }
        if (manifest is null || log.Failed) return CliApp.ExitRejected;

        // Link: the module's Kbuild directory, as the SDK lays it out.
        string kbuild = Path.Combine(work, "kbuild") + "/";
        Directory.CreateDirectory(kbuild);
        string registration = Path.Combine(kbuild, Path.GetFileName(manifest.Registration));
        File.Delete(registration);
        File.CreateSymbolicLink(registration, manifest.Registration);
        // An object kbuild has no source for is linked as it is (NAME.o_shipped no longer reaches a module's top
        // directory since 6.13); the copy is newer than the last link, so kbuild links again.
        foreach (string stale in Directory.GetFiles(kbuild, "*.o_shipped")) File.Delete(stale);
        foreach (string o in manifest.Objects)
        {
            string linked = Path.Combine(kbuild, Path.GetFileName(o));
            File.Copy(o, linked, overwrite: true);
            File.SetLastWriteTimeUtc(linked, DateTime.UtcNow);
        }
        var objects = new List<string> { Path.GetFileNameWithoutExtension(registration) + ".o" };
        objects.AddRange(manifest.Objects.Select(o => Path.GetFileNameWithoutExtension(o) + ".o"));
        string kbuildFile = KbuildModule.WriteKbuildFile(kbuild, module, objects,
            [Path.GetDirectoryName(manifest.Registration) + "/"], project);
        string ko = Path.Combine(kbuild, module + ".ko");
        log.Progress($"kbuild: make -C {job.KernelDirectory} M={kbuild.TrimEnd('/')} modules", prominent: true);
        var klpNames = manifest.KlpSymbols.Select(s => s.Name).ToHashSet(StringComparer.Ordinal);
        var args = KbuildModule.MakeArguments(job.KernelDirectory, kbuild, cross, SelfAsCompiler(),
            "-ffunction-sections -fdata-sections -g");
        var environment = new Dictionary<string, string> { ["PPCLP_NOP_CALLEES"] = "",
            ["PPCLP_NOP_ALL_LOCAL"] = "0", ["PPCLP_ASM_DIR"] = kbuild };
        var makeErrors = new List<string>();
        int? exit = KbuildModule.Run(args, environment, line =>
        {
            if (CompilerMessage.Parse(line) is { } m)
            {
                log.Compiler(line, m.PlacedAt(project, path =>
                    path.StartsWith(kbuild, StringComparison.Ordinal) ? Path.Combine(project, path[kbuild.Length..])
                        : path));
                return;
            }
            switch (KbuildModule.Classify(line, out string? symbol))
            {
                case KbuildLine.Progress: log.Progress(line, prominent: true); break;
                case KbuildLine.BuildError: makeErrors.Add(line.Trim()); break;
                case KbuildLine.Undefined when !KbuildModule.IsLivepatchSymbol(symbol!, klpNames):
                    log.Report(Diagnostic.Create(DiagnosticCatalog.SymbolNotExported, kbuildFile,
                        $"'{symbol}' is not exported by the kernel in --kernel-dir, so the module loader will not " +
                            "resolve it"));
                    break;
            }
        });
        if (exit != 0 || log.Failed || !File.Exists(ko))
        {
            Steps.StepFiles.DeleteIfExists(ko);
            if (!log.Failed)
                log.Report(Diagnostic.Create(DiagnosticCatalog.KbuildFailed, kbuildFile, exit is null
                    ? "make cannot be started: install it (apt-get install make)"
                    : $"kbuild (make modules) exited with code {exit}" + (makeErrors.Count > 0
                        ? "; make reported: " + string.Join(" | ", makeErrors.Take(5)) : "")));
            return CliApp.ExitRejected;
        }

        // Convert, Patch, Verify: the SDK's steps with its default settings for a KernelPatch module.
        var loader = KernelTree.Loader(job.KernelDirectory, module);
        string converted = Path.Combine(work, "convert", module + ".ko");
        string patched = Path.Combine(work, "patch", module + ".ko");
        var symbols = manifest.KlpSymbols.Select(b => new KlpSymbolSpec(b.Name, b.Object, null, b.Position)).ToList();
        foreach (var (options, input, into) in new[]
                 {
                     (new StepOptions(StepKind.Convert, loader, Symbols: symbols), ko, converted),
                     (new StepOptions(StepKind.Patch, loader), converted, patched),
                     (new StepOptions(StepKind.Verify, loader), patched, output),
                 })
        {
            Directory.CreateDirectory(Path.GetDirectoryName(into)!);
            var result = StepRunner.Run(options, [new StepObject(input, into)]);
            foreach (var e in result.Events)
            {
                if (e.Diagnostic is { } d) log.Report(d);
                else log.Progress(e.Message!, e.Prominent);
            }
            if (!result.Succeeded) return CliApp.ExitRejected;
        }
        return CliApp.ExitAccepted;
    }

    /// <summary>This tool as kbuild's compiler command (<c>cc --</c>, quoted for make's shell): the native build
    /// itself, or the portable one under its dotnet host.</summary>
    private static string SelfAsCompiler()
    {
        string self = Environment.ProcessPath ?? "ppc-livepatch";
        string assembly = Path.Combine(AppContext.BaseDirectory, "ppc-livepatch.dll");
        return Path.GetFileNameWithoutExtension(self) == "dotnet" && File.Exists(assembly)
            ? $"'{self}' '{assembly}' cc --" : $"'{self}' cc --";
    }

    /// <summary>kpatch-macros.h and its kin: next to the tool (the package's <c>include/</c>) or in the source
    /// tree's SDK.</summary>
    private static string? HeadersDirectory()
    {
        string baseDir = AppContext.BaseDirectory;
        foreach (string candidate in new[] { Path.Combine(baseDir, "include"),
                     Path.Combine(baseDir, "..", "..", "Sdk", "include") })
            if (File.Exists(Path.Combine(candidate, "kpatch-macros.h"))) return Path.GetFullPath(candidate) + "/";
        return null;
    }

    /// <summary>Findings as MSBuild's canonical lines (what IDEs and CI logs parse), progress as it comes.</summary>
    private sealed class TerminalLog(TextWriter stdout) : IKernelPatchLog
    {
        private readonly HashSet<string> _seen = new(StringComparer.Ordinal);

        public bool Failed { get; private set; }

        public void Report(Diagnostic diagnostic)
        {
            if (diagnostic.Severity == Severity.Error) Failed = true;
            if (diagnostic.Kind == DiagnosticKind.Fixed) return;
            stdout.WriteLine(ReportWriters.CanonicalLine(diagnostic));
        }

        public void Progress(string text, bool prominent)
        {
            if (prominent) stdout.WriteLine(text);
        }

        public void Compiler(string line, CompilerMessage? placed)
        {
            if (placed is null || !_seen.Add(placed.ToString())) return;
            if (placed.ToDiagnostic() is { } d) Report(d);
            else stdout.WriteLine($"{placed.File}({placed.Line}): note: {placed.Text}");
        }

        public void Summary(string output, bool built) =>
            stdout.WriteLine(built ? $"kernel-patch -> {output}" : "kernel-patch: no module written");
    }
}
