using System.Text.RegularExpressions;
using PpcLivepatch.Analysis;
using PpcLivepatch.Elf;

namespace PpcLivepatch.Build.Tests;

/// <summary>
/// The newer kernel lines (eng/kernel-oracle/setup-line.sh): Linux 6.12 (two patchable nops at each entry) and 7.2
/// (one nop, ftrace out of line), built by Debian 13's GCC 14. The KernelPatch set is built by the packed SDK with
/// <c>dotnet build</c> inside that Debian 13 environment (where the trees' host tools and compiler run), and every
/// module goes into one boot of the line's kernel, which loads, enables, probes, disables and unloads each.
/// </summary>
public sealed partial class KernelOracleTests
{
    /// <summary>A line's setup (KO_LINE_BUILD, KO_LINE_VERSION, KO_LINE_FTRACE).</summary>
    private static Dictionary<string, string> LineEnv(string line)
    {
        string env = Path.Combine(s_env["KO_DIR"], "klp-" + line, "env.sh");
        if (!File.Exists(env)) Assert.Fail($"the {line} kernel line is not set up ({env} is missing): run " +
            $"eng/kernel-oracle/setup-line.sh {line}");
        return File.ReadAllLines(env).Select(l => l.Split('=', 2)).Where(p => p.Length == 2)
            .ToDictionary(p => p[0], p => p[1]);
    }

    /// <summary><c>dotnet build</c> of a consumer project in the Debian 13 environment that built the line.</summary>
    private static Tool.Result BuildInLine(string dir, params string[] extra) =>
        Tool.Run(dir, Path.Combine(Repo.Root, "eng", "kernel-oracle", "in-trixie.sh"),
            ["dotnet", "build", "-tl:off", "-nologo", "--disable-build-servers", "-v:n", "-bl:build.binlog", .. extra]);

    /// <summary>A patch of the set as the line needs it: its own form where the 6.1 one does not apply there
    /// (tests/kernel-patches/linux-LINE, written by make-patches.py --line).</summary>
    private static string LinePatchText(string line, string name)
    {
        string own = Path.Combine(Repo.Root, "tests", "kernel-patches", "linux-" + line,
            Path.GetFileName(name) + ".patch");
        return File.Exists(own) ? File.ReadAllText(own) : KernelPatchText(name);
    }

    /// <summary>What each patch's probe shows while it is loaded, and no longer shows once it is unloaded.</summary>
    private static readonly (string Module, string Loaded, string Gone)[] PatchEffects =
    [
        ("lp_version_static", "^version: livepatched read 2$", "livepatched"),
        ("lp_version_function", "^version: livepatched$", "livepatched"),
        ("lp_uptime_global", @"^uptime: \d+\.\d\d \d+\.\d\d reads=1$", "reads="),
        ("livepatch_stat", "^stat: livepatched$", "livepatched"),
        ("lp_cmdline_shadow", @" \[shadow reads=2\]$", "[shadow"),
        ("lp_binfmt_misc", @"^binfmt: enabled \[livepatched\]$", "livepatched"),
        ("lp_uname", "^uname: Linux-livepatched$", "livepatched"),
        ("lp_fdinfo_header", "^fdinfo: livepatched:\t1$", "livepatched"),
        ("lp_meminfo_kpatch", @"^meminfo: MemTotal\[lp\]: +\d+ kB$", "[lp]"),
        ("lp_version_tracepoint", "^tracepoint on: 2$", "tracepoint on: 2"),
        ("lp_version_series", "^version: series: one, two$", "series"),
    ];

    /// <summary>Builds a kbuild-mode project of C files in the line's environment; the module it made.</summary>
    private static string BuildModuleInLine(string kernel, IEnumerable<string> sources, string projectXml,
        string moduleName, params string[] properties)
    {
        string dir = PackedSdk.Consumer(projectXml);
        foreach (string f in sources) File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        var build = BuildInLine(dir, [$"-p:KernelDir={kernel}", $"-p:LivepatchModuleName={moduleName}",
            .. properties]);
        Assert.AreEqual(0, build.ExitCode, build.Output);
        string ko = Path.Combine(dir, "bin", "Debug", moduleName + ".ko");
        Assert.IsTrue(File.Exists(ko), build.Output);
        return ko;
    }

    /// <summary>
    /// On each newer line: the KernelPatch set (every patch's effect seen from inside the guest while it is loaded,
    /// and gone once it is unloaded), the KlpSymbol sample (the call to the kernel's static version_proc_show
    /// through a .klp.sym relocation, with its nop; without the fix the kernel still refuses it, as predicted) and
    /// the kernel's own livepatch selftest modules, all in one boot, with no ftrace or kernel complaint.
    /// </summary>
    [TestMethod]
    [DataRow("6.12", "patchable-entry")]
    [DataRow("7.2", "out-of-line")]
    public void TheKernelPatchSetLoadsAndTakesEffectOnANewerKernelLine(string line, string ftrace)
    {
        var env = LineEnv(line);
        Assert.AreEqual(ftrace, env["KO_LINE_FTRACE"]);
        string kernel = env["KO_LINE_BUILD"];
        // Two builds at a time: each is mostly one process after another (restore, compiles, make), and the suite
        // has two cores.
        var builds = new System.Collections.Concurrent.ConcurrentBag<(int Order, string Module, string Ko)>();
        Parallel.ForEach(LoadablePatches.Select((p, i) => (p.Patch, p.Module, Order: i)),
            new ParallelOptions { MaxDegreeOfParallelism = 2 }, item =>
        {
            var (patch, module, order) = item;
            string dir = PatchSetConsumer(patch, name => LinePatchText(line, name));
            var result = BuildInLine(dir, $"-p:KernelDir={kernel}", $"-p:LivepatchModuleName={module}");
            string ko = Path.Combine(dir, "bin", "Debug", module + ".ko");
            Assert.AreEqual(0, result.ExitCode, $"{patch} on {line}:\n{result.Output}");
            Assert.IsTrue(File.Exists(ko), result.Output);
            // The module's functions are the kernel's ftrace model, as the verifier reads them.
            Assert.IsTrue(ElfImage.TryLoad(ko, out var image, out _));
            Assert.AreEqual(ftrace, FtraceSites.NameOf(FtraceSites.Of(image!)), ko);
            builds.Add((order, module, ko));
        });

        string sample = Path.Combine(Repo.Root, "samples", "KernelLivepatch");
        string sampleProject = File.ReadAllText(Path.Combine(sample, "KernelLivepatch.csproj"));
        var sampleSources = Directory.GetFiles(sample, "*.c");
        string unfixed = BuildModuleInLine(kernel, sampleSources, sampleProject, "lp_unfixed",
            "-p:Rel24Strategy=none", "-p:LivepatchVerifyMode=warn");
        string sampleKo = BuildModuleInLine(kernel, sampleSources, sampleProject, "lp_sample");
        string prediction = PredictedRefusal(unfixed);
        // Since 6.10 the selftest modules live with the selftests (lib/livepatch before).
        string selftests = Path.Combine(Path.GetDirectoryName(kernel)!, "src", "linux-source-" + line, "tools",
            "testing", "selftests", "livepatch", "test_modules");
        string plain = """<Project Sdk="PpcLivepatch.Build.Sdk/VERSION" />""";
        string selftestPatch = BuildModuleInLine(kernel, [Path.Combine(selftests, "test_klp_livepatch.c")], plain,
            "tklp_lp", "-p:Rel24Sites=all-local");
        string selftestShadow = BuildModuleInLine(kernel, [Path.Combine(selftests, "test_klp_shadow_vars.c")], plain,
            "tklp_sv", "-p:Rel24Sites=all-local");

        string probe = Path.Combine(Repo.NewTempDir(), "probe.sh");
        File.WriteAllText(probe, PatchSetProbe);
        var modules = new List<string> { unfixed, Path.Combine(kernel, "fs", "binfmt_misc.ko") };
        modules.AddRange(builds.OrderBy(b => b.Order).Select(b => b.Ko));
        modules.AddRange([sampleKo, selftestPatch, selftestShadow]);
        var boot = BootWith(new Dictionary<string, string> { ["PPCLP_ORACLE_PROBE"] = probe,
            ["PPCLP_ORACLE_UNLOAD"] = "1" }, Path.Combine(kernel, "vmlinux"), [.. modules]);
        StringAssert.Contains(boot.Log, $"ORACLE: dmesg Linux version {env["KO_LINE_VERSION"]}", boot.Log);
        var run = new PatchSetRun(new Dictionary<string, PatchBuild>(), boot);
        foreach (var (module, loadedPattern, gone) in PatchEffects)
        {
            run.LoadedEnabledDisabledUnloaded(module);
            var (loaded, unloaded) = run.Probe(module);
            Assert.IsTrue(loaded.Any(l => Regex.IsMatch(l, loadedPattern)), $"{module} on {line}: no line " +
                $"matching {loadedPattern}\n{boot.Log}");
            Assert.IsFalse(unloaded.Any(l => l.Contains(gone, StringComparison.Ordinal)),
                $"{module} on {line}: '{gone}' after unloading\n{boot.Log}");
        }
        Assert.AreEqual(8, boot.InsmodStatus("lp_unfixed"), "ENOEXEC from apply_relocate_add");
        Assert.IsTrue(boot.Dmesg.Any(l => l.Contains($"module_64: lp_unfixed: {prediction} at")),
            $"expected '{prediction}':\n{boot.Log}");
        run.LoadedEnabledDisabledUnloaded("lp_sample");
        StringAssert.Matches(boot.Cmdline("lp_sample"), new Regex(
            @"^Linux version \S+ \(\S+@\S+\) \(.* console=hvc0 quiet \[livepatched by PpcLivepatch.Build\]"), boot.Log);
        run.LoadedEnabledDisabledUnloaded("tklp_lp");
        Assert.AreEqual("tklp_lp: this has been live patched", boot.Cmdline("tklp_lp").Trim(), boot.Log);
        Assert.AreEqual(0, boot.InsmodStatus("tklp_sv"), boot.Log);
        Assert.AreEqual(0, boot.Dmesg.Count(l => l.Contains("got unexpected")), boot.Log);
        Assert.IsTrue(boot.Dmesg.Count(l => l.Contains("got expected")) >= 8, boot.Log);
        Assert.IsFalse(boot.Dmesg.Any(l => Regex.IsMatch(l, "ftrace_bug|ftrace faulted|Call Trace|BUG:|WARNING:")),
            boot.Log);
    }

    /// <summary>The SDK reads each line's ftrace model from KernelDir with the same rule as the core
    /// (<see cref="FtraceSites.OfKernelConfig"/>): -mprofile-kernel for 6.1, two patchable nops for 6.12, out of line
    /// for 7.2.</summary>
    [TestMethod]
    public void TheSdkReadsEachKernelLinesFtraceModel()
    {
        var trees = new[] { (s_env["KO_KLP_BUILD"], "mprofile-kernel"),
            (LineEnv("6.12")["KO_LINE_BUILD"], "patchable-entry"), (LineEnv("7.2")["KO_LINE_BUILD"], "out-of-line") };
        string dir = PackedSdk.Consumer("""<Project Sdk="PpcLivepatch.Build.Sdk/VERSION" />""");
        foreach (var (tree, model) in trees)
        {
            Assert.AreEqual(model, FtraceSites.NameOf(Kbuild.KernelTree.Loader(tree, null).KernelFtrace), tree);
            var evaluated = Tool.Run(dir, "dotnet", "msbuild", "Livepatch.csproj", "-nologo",
                "-getProperty:KernelFtrace", $"-p:KernelDir={tree}");
            Assert.AreEqual(0, evaluated.ExitCode, evaluated.Output);
            Assert.AreEqual(model, evaluated.Output.Trim(), tree);
        }
    }

    /// <summary>
    /// A project for a GCC 14 kernel built with the host's GCC 12 (outside the environment that built the kernel):
    /// one coded error at the line that sets KernelDir, naming both compilers, before anything compiles — it was
    /// PLP0010 per flag GCC 12 does not know (<c>-fmin-function-alignment=4</c>), which did not say why. Both
    /// KernelPatch items and kbuild-mode C sources, and <c>ppc-livepatch kernel-patch</c>.
    /// </summary>
    [TestMethod]
    public void AKernelBuiltByAnotherGccIsRefusedAtKernelDir()
    {
        string tree = LineEnv("6.12")["KO_LINE_BUILD"];
        string recorded = "'powerpc64le-linux-gnu-gcc (Debian 14.2.0-19) 14.2.0'";
        StringAssert.Contains(File.ReadAllText(Path.Combine(tree, "include", "config", "auto.conf")),
            "CONFIG_CC_VERSION_TEXT=powerpc64le-linux-gnu-gcc (Debian 14.2.0-19) 14.2.0", "the line's compiler");
        string? host = Kbuild.Toolchain.VersionText("powerpc64le-linux-gnu-gcc");
        Assert.IsNotNull(host, "powerpc64le-linux-gnu-gcc is not installed: run eng/install-prerequisites.sh");
        StringAssert.Contains(host, ") 12.", "the host's cross compiler is Debian 12's GCC 12");
        string patch = LinePatchText("6.12", "uptime-new-global");
        var consumers = new[]
        {
            PackedSdk.Consumer($$"""
                <Project Sdk="PpcLivepatch.Build.Sdk/VERSION">
                  <PropertyGroup>
                    <KernelDir>{{tree}}</KernelDir>
                  </PropertyGroup>
                  <ItemGroup><KernelPatch Include="fix.patch" /></ItemGroup>
                </Project>
                """, ("fix.patch", patch)),
            PackedSdk.Consumer($$"""
                <Project Sdk="PpcLivepatch.Build.Sdk/VERSION">
                  <PropertyGroup>
                    <KernelDir>{{tree}}</KernelDir>
                  </PropertyGroup>
                </Project>
                """, ("livepatch.c", File.ReadAllText(Path.Combine(Repo.Root, "samples", "KernelLivepatch",
                "livepatch.c")))),
        };
        foreach (string dir in consumers)
        {
            var build = PackedSdk.Build(dir, "compiler.binlog");
            Assert.AreEqual(1, build.ExitCode, build.Output);
            var error = Microsoft.Build.Logging.StructuredLogger.BinaryLog.ReadBuild(Path.Combine(dir, "compiler.binlog"))
                .FindChildrenRecursive<Microsoft.Build.Logging.StructuredLogger.Error>().Single();
            Assert.AreEqual(("PLP0027", Path.Combine(dir, "Livepatch.csproj"), 3),
                (error.Code, error.File, error.LineNumber));
            StringAssert.Contains(error.Text, $"the kernel in '{tree}' was built by {recorded}, and " +
                $"'powerpc64le-linux-gnu-gcc' is '{host}'");
            Assert.IsFalse(build.Output.Contains("PLP0010", StringComparison.Ordinal), build.Output);
            Assert.IsFalse(Directory.Exists(Path.Combine(dir, "bin")) && Directory.EnumerateFiles(Path.Combine(dir,
                "bin"), "*", SearchOption.AllDirectories).Any(), "no module");
        }

        string tool = PackedSdk.ExtractNativeTool();
        File.SetUnixFileMode(tool, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        string work = Repo.NewTempDir();
        File.WriteAllText(Path.Combine(work, "fix.patch"), patch);
        var cli = Tool.Run(work, tool, "kernel-patch", "fix.patch", "--kernel-dir", tree);
        Assert.AreEqual(2, cli.ExitCode, cli.Output);
        StringAssert.Contains(cli.Output, $"error PLP0027: the kernel in '{tree}' was built by {recorded}");
        Assert.IsFalse(cli.Output.Contains("PLP0010", StringComparison.Ordinal), cli.Output);
    }
}
