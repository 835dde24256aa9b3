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

    [TestMethod]
    [DataRow("6.12", "patchable-entry")]
    [DataRow("7.2", "out-of-line")]
    public void TheKernelPatchSetLoadsAndTakesEffectOnANewerKernelLine(string line, string ftrace)
    {
        var env = LineEnv(line);
        Assert.AreEqual(ftrace, env["KO_LINE_FTRACE"]);
        string kernel = env["KO_LINE_BUILD"];
        var builds = new List<(string Module, Tool.Result Result, string Ko)>();
        foreach (var (patch, module) in LoadablePatches)
        {
            string dir;
            if (patch == "samples/KernelPatch")
                dir = PackedSdk.SampleConsumer("KernelPatch");
            else if (patch == "version-series")
                dir = PackedSdk.Consumer("""
                    <Project Sdk="PpcLivepatch.Build.Sdk/VERSION">
                      <ItemGroup>
                        <KernelPatch Include="version-series-1.patch" />
                        <KernelPatch Include="version-series-2.patch" />
                      </ItemGroup>
                    </Project>
                    """, ("version-series-1.patch", LinePatchText(line, "version-series-1")),
                    ("version-series-2.patch", LinePatchText(line, "version-series-2")));
            else
                dir = PackedSdk.Consumer($$"""
                    <Project Sdk="PpcLivepatch.Build.Sdk/VERSION">
                      <ItemGroup><KernelPatch Include="{{Path.GetFileName(patch)}}.patch" /></ItemGroup>
                    </Project>
                    """, (Path.GetFileName(patch) + ".patch", LinePatchText(line, patch)));
            var result = BuildInLine(dir, $"-p:KernelDir={kernel}", $"-p:LivepatchModuleName={module}");
            string ko = Path.Combine(dir, "bin", "Debug", module + ".ko");
            Assert.AreEqual(0, result.ExitCode, $"{patch} on {line}:\n{result.Output}");
            Assert.IsTrue(File.Exists(ko), result.Output);
            // The module's functions are the kernel's ftrace model, as the verifier reads them.
            Assert.IsTrue(ElfImage.TryLoad(ko, out var image, out _));
            Assert.AreEqual(ftrace, FtraceSites.NameOf(FtraceSites.Of(image!)), ko);
            builds.Add((module, result, ko));
        }

        string probe = Path.Combine(Repo.NewTempDir(), "probe.sh");
        File.WriteAllText(probe, PatchSetProbe);
        var modules = new List<string> { Path.Combine(kernel, "fs", "binfmt_misc.ko") };
        modules.AddRange(builds.Select(b => b.Ko));
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
        Assert.IsFalse(boot.Dmesg.Any(l => Regex.IsMatch(l, "ftrace_bug|ftrace faulted|Call Trace|BUG:|WARNING:")),
            boot.Log);
    }
}
