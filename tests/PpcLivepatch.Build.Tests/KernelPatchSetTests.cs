using System.Text.RegularExpressions;
using PpcLivepatch.Analysis;
using PpcLivepatch.Elf;

namespace PpcLivepatch.Build.Tests;

/// <summary>
/// The KernelPatch set (tests/kernel-patches, written against the oracle kernel's source): each loadable patch is
/// built by the packed SDK from nothing but its <c>.patch</c>, and all of them go into one boot of the oracle kernel,
/// which loads each module, enables it, lets a probe read the effect from inside the guest, disables and unloads it
/// and reads again. Each refusal fails its build with its code at the patch's line.
/// </summary>
public sealed partial class KernelOracleTests
{
    private sealed record PatchBuild(string Patch, string Module, Tool.Result Result, string Ko, string Dir);

    private sealed record PatchSetRun(IReadOnlyDictionary<string, PatchBuild> Builds, Boot Boot)
    {
        public PatchBuild Built(string patch)
        {
            var b = Builds[patch];
            Assert.AreEqual(0, b.Result.ExitCode, b.Result.Output);
            Assert.IsTrue(File.Exists(b.Ko), b.Result.Output);
            return b;
        }

        /// <summary>The probe's lines while the module was loaded and enabled, and after it was unloaded.</summary>
        public (List<string> Loaded, List<string> Unloaded) Probe(string module) => (
            Regex.Matches(Boot.Log, $@"ORACLE: probe {module} (.*)").Select(m => m.Groups[1].Value.TrimEnd()).ToList(),
            Regex.Matches(Boot.Log, $@"ORACLE: unloaded {module} (.*)").Select(m => m.Groups[1].Value.TrimEnd())
                .ToList());

        public void LoadedEnabledDisabledUnloaded(string module)
        {
            Assert.AreEqual(0, Boot.InsmodStatus(module), Boot.Log);
            StringAssert.Contains(Boot.Log, $"ORACLE: livepatch {module} enabled=1 transition=0");
            StringAssert.Contains(Boot.Log, $"ORACLE: disable {module} enabled=0 transition=0");
            StringAssert.Contains(Boot.Log, $"ORACLE: rmmod {module} rc=0");
        }
    }

    /// <summary>What each loadable patch's module is called.</summary>
    private static readonly (string Patch, string Module)[] LoadablePatches =
    [
        ("version-static-local", "lp_version_static"),
        ("tests/fixtures/diff/patches/version-new-function", "lp_version_function"),
        ("uptime-new-global", "lp_uptime_global"),
        ("samples/KernelPatch", "livepatch_stat"),
        ("cmdline-shadow-callbacks", "lp_cmdline_shadow"),
        ("binfmt-misc-status", "lp_binfmt_misc"),
        ("uname-syscall", "lp_uname"),
        ("fdinfo-header", "lp_fdinfo_header"),
        ("meminfo-kpatch-form", "lp_meminfo_kpatch"),
        ("version-tracepoint", "lp_version_tracepoint"),
        ("version-series", "lp_version_series"),
    ];

    /// <summary>Where PrepareKernelPatches works: the copies, both objects and the diff of each unit.</summary>
    private static string KernelPatchWork(string projectDir) =>
        Path.Combine(projectDir, "obj", "Debug", "livepatch", "kernelpatch");

    private static ElfImage Load(string path)
    {
        Assert.IsTrue(ElfImage.TryLoad(path, out var image, out var error), error?.Message);
        return image!;
    }

    private static readonly Lazy<PatchSetRun> s_patchSet = new(RunPatchSet);

    /// <summary>A patch of tests/kernel-patches by name, or any of the repository's by its path.</summary>
    private static string KernelPatchText(string name) => File.ReadAllText(name.Contains('/')
        ? Path.Combine(Repo.Root, name + ".patch")
        : Path.Combine(Repo.Root, "tests", "kernel-patches", name + ".patch"));

    private static Tool.Result BuildKernelPatch(string patch, string module, out string dir) =>
        BuildKernelPatch(patch, KernelPatchText(patch), module, out dir);

    /// <summary>
    /// The consumer project of one entry of <see cref="LoadablePatches"/>, its patches' text from <paramref
    /// name="text"/>: the KernelPatch sample, the version series (two items, the second written on top of the first),
    /// or one KernelPatch item.
    /// </summary>
    private static string PatchSetConsumer(string patch, Func<string, string> text)
    {
        if (patch == "samples/KernelPatch") return PackedSdk.SampleConsumer("KernelPatch");
        if (patch == "version-series")
            return PackedSdk.Consumer("""
                <Project Sdk="PpcLivepatch.Build.Sdk/VERSION">
                  <ItemGroup>
                    <KernelPatch Include="version-series-1.patch" />
                    <KernelPatch Include="version-series-2.patch" />
                  </ItemGroup>
                </Project>
                """, ("version-series-1.patch", text("version-series-1")),
                ("version-series-2.patch", text("version-series-2")));
        string name = Path.GetFileName(patch);
        return PackedSdk.Consumer($$"""
            <Project Sdk="PpcLivepatch.Build.Sdk/VERSION">
              <ItemGroup><KernelPatch Include="{{name}}.patch" /></ItemGroup>
            </Project>
            """, (name + ".patch", text(patch)));
    }

    private static Tool.Result BuildKernelPatch(string patch, string text, string module, out string dir)
    {
        dir = PatchSetConsumer(patch, _ => text);
        return PackedSdk.Build(dir, "build.binlog", $"-p:KernelDir={s_env["KO_KLP_BUILD"]}",
            $"-p:LivepatchModuleName={module}");
    }

    /// <summary>What the patch set's boot reads after each module is loaded, and again after it is unloaded.</summary>
    private const string PatchSetProbe = """
        sed 's/^/version: /' /proc/version; sed 's/^/version: /' /proc/version
        sed 's/^/cmdline: /' /proc/cmdline; sed 's/^/cmdline: /' /proc/cmdline
        tail -n 1 /proc/self/stat | sed 's/^/stat: /'
        sed 's/^/uptime: /' /proc/uptime
        echo "uname: $(uname -s)"
        grep -q binfmt_misc /proc/mounts || { mkdir -p /bm; mount -t binfmt_misc none /bm 2>/dev/null; }
        echo "binfmt: $(cat /bm/status 2>/dev/null)"
        sed 's/^/fdinfo: /' /proc/self/fdinfo/0
        head -n 1 /proc/meminfo | sed 's/^/meminfo: /'
        t=/sys/kernel/tracing; [ -f $t/trace ] || mount -t tracefs none $t
        e=$t/events/sched/sched_kthread_stop_ret/enable
        echo > $t/trace; cat /proc/version > /dev/null; echo "tracepoint off: $(grep -c 'ret=4242' $t/trace)"
        echo 1 > $e; echo > $t/trace; cat /proc/version > /dev/null; cat /proc/version > /dev/null
        echo "tracepoint on: $(grep -c 'ret=4242' $t/trace)"; echo 0 > $e
        """;

    private static PatchSetRun RunPatchSet()
    {
        var builds = new Dictionary<string, PatchBuild>(StringComparer.Ordinal);
        foreach (var (patch, module) in LoadablePatches)
        {
            string dir = PatchSetConsumer(patch, KernelPatchText);
            var result = PackedSdk.Build(dir, "build.binlog", $"-p:KernelDir={s_env["KO_KLP_BUILD"]}",
                $"-p:LivepatchModuleName={module}");
            builds[patch] = new PatchBuild(patch, module, result, Path.Combine(dir, "bin", "Debug", module + ".ko"),
                dir);
        }
        string kernel = s_env["KO_KLP_BUILD"];
        // The module the binfmt_misc patch changes is loaded first, as on a system that uses it.
        var modules = new List<string> { Path.Combine(kernel, "fs", "binfmt_misc.ko") };
        modules.AddRange(builds.Values.Where(b => b.Result.ExitCode == 0 && File.Exists(b.Ko)).Select(b => b.Ko));
        string probe = Path.Combine(Repo.NewTempDir(), "probe.sh");
        File.WriteAllText(probe, PatchSetProbe);
        var boot = BootWith(new Dictionary<string, string> { ["PPCLP_ORACLE_PROBE"] = probe,
            ["PPCLP_ORACLE_UNLOAD"] = "1" }, Path.Combine(kernel, "vmlinux"), [.. modules]);
        return new PatchSetRun(builds, boot);
    }

    /// <summary>
    /// The preparation follows the set of patches, not only their file times: swapping the KernelPatch item for
    /// another file written before the last build rebuilt the module from the new patch (it kept the old module and
    /// said "Build succeeded" before), an unchanged project prepares nothing, and pointing KernelSource elsewhere
    /// prepares again.
    /// </summary>
    [TestMethod]
    public void SwappingTheKernelPatchItemRebuildsTheModule()
    {
        const string a = "uptime-new-global", b = "version-static-local";
        string Project(string patch) => $$"""
            <Project Sdk="PpcLivepatch.Build.Sdk/VERSION">
              <ItemGroup><KernelPatch Include="{{patch}}.patch" /></ItemGroup>
            </Project>
            """.Replace("VERSION", PackedSdk.Version);
        string dir = PackedSdk.Consumer(Project(a), (a + ".patch", KernelPatchText(a)), (b + ".patch",
            KernelPatchText(b)));
        string kernel = s_env["KO_KLP_BUILD"];
        string[] common = [$"-p:KernelDir={kernel}", "-p:LivepatchModuleName=swap"];
        string ko = Path.Combine(dir, "bin", "Debug", "swap.ko"),
            registration = Path.Combine(dir, "obj", "Debug", "livepatch", "kernelpatch", "livepatch_registration.c");

        var first = PackedSdk.Build(dir, "first.binlog", common);
        Assert.AreEqual(0, first.ExitCode, first.Output);
        byte[] before = File.ReadAllBytes(ko);
        StringAssert.Contains(File.ReadAllText(registration), "uptime_proc_show");

        File.WriteAllText(Path.Combine(dir, "Livepatch.csproj"), Project(b));
        var swapped = PackedSdk.Build(dir, "swapped.binlog", common);
        Assert.AreEqual(0, swapped.ExitCode, swapped.Output);
        StringAssert.Contains(swapped.Output, "fs/proc/version.c, 1 of 1: compiling the");
        StringAssert.Contains(File.ReadAllText(registration), "version_proc_show");
        Assert.IsFalse(File.ReadAllText(registration).Contains("uptime_proc_show"));
        CollectionAssert.AreNotEqual(before, File.ReadAllBytes(ko), "the module is the new patch's");

        var unchanged = PackedSdk.Build(dir, "unchanged.binlog", common);
        Assert.AreEqual(0, unchanged.ExitCode, unchanged.Output);
        Assert.IsFalse(unchanged.Output.Contains("fs/proc/version.c, 1 of 1"), unchanged.Output);

        string source = Path.Combine(kernel, "source");
        source = Directory.Exists(source) ? Directory.ResolveLinkTarget(source, true)?.FullName ?? source : kernel;
        var elsewhere = PackedSdk.Build(dir, "source.binlog", [.. common, $"-p:KernelSource={source}"]);
        Assert.AreEqual(0, elsewhere.ExitCode, elsewhere.Output);
        StringAssert.Contains(elsewhere.Output, "fs/proc/version.c, 1 of 1: the original is up to date");

        // dotnet clean removes what the preparation made, not only the manifest (35 files were left before).
        var clean = Tool.Run(dir, "dotnet", ["clean", "-nologo", .. common]);
        Assert.AreEqual(0, clean.ExitCode, clean.Output);
        string work = Path.Combine(dir, "obj", "Debug", "livepatch", "kernelpatch");
        var left = Directory.Exists(work) ? Directory.GetFiles(work, "*", SearchOption.AllDirectories) : [];
        Assert.AreEqual(0, left.Length, string.Join("\n", left));
        Assert.IsFalse(File.Exists(ko));
    }

    [TestMethod]
    public void KernelPatchWithAStaticLocalKeepsItsValueAcrossCalls()
    {
        var run = s_patchSet.Value;
        var build = run.Built("version-static-local");
        StringAssert.Contains(build.Result.Output, "fs/proc/version.c: version_proc_show changed");
        run.LoadedEnabledDisabledUnloaded("lp_version_static");
        var (loaded, unloaded) = run.Probe("lp_version_static");
        CollectionAssert.Contains(loaded, "version: livepatched read 1", run.Boot.Log);
        CollectionAssert.Contains(loaded, "version: livepatched read 2", run.Boot.Log);
        Assert.IsFalse(unloaded.Any(l => l.Contains("livepatched")), run.Boot.Log);
    }

    [TestMethod]
    public void KernelPatchWithANewFunctionCallsIt()
    {
        var run = s_patchSet.Value;
        var build = run.Built("tests/fixtures/diff/patches/version-new-function");
        StringAssert.Contains(build.Result.Output, "fs/proc/version.c: version_proc_show changed, version_suffix new");
        run.LoadedEnabledDisabledUnloaded("lp_version_function");
        var (loaded, unloaded) = run.Probe("lp_version_function");
        CollectionAssert.Contains(loaded, "version: livepatched", run.Boot.Log);
        Assert.IsFalse(unloaded.Any(l => l.Contains("livepatched")), run.Boot.Log);
    }

    [TestMethod]
    public void KernelPatchWithANewGlobalCountsInTheModulesData()
    {
        var run = s_patchSet.Value;
        var build = run.Built("uptime-new-global");
        StringAssert.Contains(build.Result.Output, "uptime_proc_show changed");
        // The new global is the module's own: defined in it, not bound to the kernel.
        var ko = Load(build.Ko);
        Assert.IsTrue(ko.Symbols.Any(s => s.Name == "uptime_livepatch_reads" && s.IsInSection));
        run.LoadedEnabledDisabledUnloaded("lp_uptime_global");
        var (loaded, unloaded) = run.Probe("lp_uptime_global");
        Assert.IsTrue(loaded.Any(l => Regex.IsMatch(l, @"^uptime: \d+\.\d\d \d+\.\d\d reads=1$")), run.Boot.Log);
        Assert.IsTrue(unloaded.Any(l => Regex.IsMatch(l, @"^uptime: \d+\.\d\d \d+\.\d\d$")), run.Boot.Log);
    }

    [TestMethod]
    public void KernelPatchCallingAnUnchangedStaticGetsItsNopAndLoads()
    {
        // samples/KernelPatch, the seed's case: gcc calls the static do_task_stat with a bare `bl` (a local call); in
        // the livepatch it is a .klp.sym reference the loader routes through a stub, so the call needs its nop, which
        // the Patch step gives it.
        var run = s_patchSet.Value;
        var build = run.Built("samples/KernelPatch");
        StringAssert.Contains(build.Result.Output, "fs/proc/array.c: proc_tgid_stat changed");
        string diffObject = Directory.GetFiles(KernelPatchWork(build.Dir), "array_livepatch.o",
            SearchOption.AllDirectories).Single();
        var unpatched = ObjectVerifier.Verify(diffObject, LoaderOptions.Default);
        Assert.IsTrue(unpatched.Sites.Any(s => s.Verdict == Verdict.Reject && s.Site.Callee == "do_task_stat"),
            "the compiler's own call to the static do_task_stat has no nop: the loader would refuse it");
        var ko = ObjectVerifier.Verify(build.Ko, LoaderOptions.Default);
        Assert.IsTrue(ko.Accepted);
        Assert.IsTrue(ko.Sites.Any(s => s.Site.Callee.StartsWith(".klp.sym.vmlinux.do_task_stat,",
            StringComparison.Ordinal) && s.Verdict == Verdict.Accept), "the call is bound to the kernel's do_task_stat");
        run.LoadedEnabledDisabledUnloaded("livepatch_stat");
        var (loaded, unloaded) = run.Probe("livepatch_stat");
        CollectionAssert.Contains(loaded, "stat: livepatched", run.Boot.Log);
        Assert.IsTrue(unloaded.Any(l => Regex.IsMatch(l, @"^stat: \d+ \(tail\) ")), run.Boot.Log);
    }

    [TestMethod]
    public void KernelPatchWithAShadowVariableAndKpatchCallbacksRunsThemInOrder()
    {
        var run = s_patchSet.Value;
        var build = run.Built("cmdline-shadow-callbacks");
        StringAssert.Contains(build.Result.Output,
            "pre_patch callback, post_patch callback, pre_unpatch callback, post_unpatch callback registered");
        run.LoadedEnabledDisabledUnloaded("lp_cmdline_shadow");
        var (loaded, unloaded) = run.Probe("lp_cmdline_shadow");
        // The count lives in a shadow variable attached to saved_command_line: run.sh's own read was the first.
        StringAssert.EndsWith(run.Boot.Cmdline("lp_cmdline_shadow").TrimEnd(), " [shadow reads=1]");
        Assert.IsTrue(loaded.Any(l => l.EndsWith(" [shadow reads=2]", StringComparison.Ordinal)), run.Boot.Log);
        Assert.IsTrue(loaded.Any(l => l.EndsWith(" [shadow reads=3]", StringComparison.Ordinal)), run.Boot.Log);
        Assert.IsFalse(unloaded.Any(l => l.Contains("[shadow")), run.Boot.Log);
        var said = run.Boot.Dmesg.Where(l => l.Contains("cmdline livepatch: ")).Select(l =>
            l[(l.IndexOf("cmdline livepatch: ", StringComparison.Ordinal) + 19)..].Trim()).ToList();
        CollectionAssert.AreEqual(new[] { "pre-patch", "post-patch", "pre-unpatch", "post-unpatch" }, said,
            run.Boot.Log);
    }

    [TestMethod]
    public void KernelPatchOfAModulesFunctionIsThatModulesKlpObject()
    {
        var run = s_patchSet.Value;
        var build = run.Built("binfmt-misc-status");
        StringAssert.Contains(build.Result.Output, "fs/binfmt_misc.c (module binfmt_misc): bm_status_read changed");
        string registration = Path.Combine(KernelPatchWork(build.Dir), "livepatch_registration.c");
        StringAssert.Contains(File.ReadAllText(registration), ".name = \"binfmt_misc\"");
        Assert.IsTrue(Load(build.Ko).Sections.Any(s => s.Name.StartsWith(".klp.rela.binfmt_misc.",
            StringComparison.Ordinal)), "the module's references are bound when the module loads");
        run.LoadedEnabledDisabledUnloaded("lp_binfmt_misc");
        var (loaded, unloaded) = run.Probe("lp_binfmt_misc");
        CollectionAssert.Contains(loaded, "binfmt: enabled [livepatched]", run.Boot.Log);
        CollectionAssert.Contains(unloaded, "binfmt: enabled", run.Boot.Log);
    }

    [TestMethod]
    public void KernelPatchOfASystemCallThroughKpatchSyscallDefine()
    {
        var run = s_patchSet.Value;
        var build = run.Built("uname-syscall");
        // The kernel's body, __do_sys_newuname, is inline and so notrace: the body goes in under a new name, and the
        // traced wrapper that calls it is what the livepatch replaces.
        StringAssert.Contains(build.Result.Output, "kernel/sys.c: sys_newuname changed, __plp_do_sys_newuname new");
        run.LoadedEnabledDisabledUnloaded("lp_uname");
        var (loaded, unloaded) = run.Probe("lp_uname");
        CollectionAssert.Contains(loaded, "uname: Linux-livepatched", run.Boot.Log);
        CollectionAssert.Contains(unloaded, "uname: Linux", run.Boot.Log);
    }

    [TestMethod]
    public void KernelPatchOfAHeaderRebuildsEveryUnitThatReadsIt()
    {
        // fs/proc/fd.h is read by fd.c and base.c (their kbuild records say so): both are compiled twice, each with the
        // patched header found before the original; base.c does not change, fd.c's seq_show does.
        var run = s_patchSet.Value;
        var build = run.Built("fdinfo-header");
        StringAssert.Contains(build.Result.Output, "fs/proc/base.c, 1 of 2: compiling the patched copy");
        StringAssert.Contains(build.Result.Output, "fs/proc/fd.c, 2 of 2: compiling the patched copy");
        StringAssert.Contains(build.Result.Output, "fs/proc/base.c: no function changed");
        StringAssert.Contains(build.Result.Output, "fs/proc/fd.c: seq_show changed");
        run.LoadedEnabledDisabledUnloaded("lp_fdinfo_header");
        var (loaded, unloaded) = run.Probe("lp_fdinfo_header");
        CollectionAssert.Contains(loaded, "fdinfo: livepatched:\t1", run.Boot.Log);
        Assert.IsTrue(loaded.Any(l => l.StartsWith("fdinfo: pos:", StringComparison.Ordinal)), run.Boot.Log);
        Assert.IsFalse(unloaded.Any(l => l.Contains("livepatched")), run.Boot.Log);
    }

    /// <summary>
    /// <c>ppc-livepatch kernel-patch</c>, as <c>dotnet tool install</c> installs it, runs the SDK's pipeline: given the
    /// same patch, kernel, module name and work directory it writes the very bytes the SDK wrote — the modules the
    /// oracle kernel loaded and whose effect the guest showed. A refusal is the SDK's, at the .patch line, and
    /// leaves no module.
    /// </summary>
    [TestMethod]
    public void TheKernelPatchCommandBuildsTheSdksModulesByteForByte()
    {
        var run = s_patchSet.Value;
        string home = Repo.NewTempDir(), tools = Path.Combine(home, "tools");
        PackedSdk.UseIn(home);
        var install = Tool.Run(home, "dotnet", "tool", "install", "--tool-path", tools, "PpcLivepatch.Cli", "--version",
            PackedSdk.Version);
        Assert.AreEqual(0, install.ExitCode, install.Output);
        string tool = Path.Combine(tools, "ppc-livepatch"), kernel = s_env["KO_KLP_BUILD"];
        foreach (var (patch, module) in LoadablePatches)
        {
            var sdk = run.Built(patch);
            string[] patchFiles = patch switch
            {
                "samples/KernelPatch" => ["stat-livepatched.patch"],
                "version-series" => ["version-series-1.patch", "version-series-2.patch"],
                _ => [Path.GetFileName(patch) + ".patch"],
            };
            var cli = Tool.Run(sdk.Dir, tool, ["kernel-patch", .. patchFiles, "--kernel-dir", kernel, "--name", module,
                "--work-dir", Path.Combine("obj", "Debug", "livepatch"), "-o", Path.Combine("cli", module + ".ko")]);
            Assert.AreEqual(0, cli.ExitCode, cli.Output);
            StringAssert.Contains(cli.Output, "compiling the patched copy", $"{patch}: the pipeline ran");
            CollectionAssert.AreEqual(File.ReadAllBytes(sdk.Ko), File.ReadAllBytes(Path.Combine(sdk.Dir, "cli",
                module + ".ko")), $"{patch}: the CLI's {module}.ko is the SDK's\n{cli.Output}");
        }

        string dir = Repo.NewTempDir(), text = KernelPatchText("banner-data");
        File.WriteAllText(Path.Combine(dir, "fix.patch"), text);
        int plusLine = Array.FindIndex(text.Split('\n'), l => l.StartsWith('+') && !l.StartsWith("+++")) + 1;
        var refused = Tool.Run(dir, tool, "kernel-patch", "fix.patch", "--kernel-dir", kernel);
        Assert.AreEqual(1, refused.ExitCode, refused.Output);
        StringAssert.Contains(refused.Output, $"fix.patch({plusLine}): error PLP5003: data object linux_proc_banner");
        Assert.IsFalse(File.Exists(Path.Combine(dir, "livepatch_fix.ko")), refused.Output);
    }

    /// <summary>
    /// The dotnet new template in kbuild mode, against the oracle's kernel tree: its C file keeps the
    /// <c>#ifdef __KERNEL__</c> parts (the template engine dropped them as its own conditionals: PLP0016 "missing
    /// MODULE_LICENSE()"), and the project builds a livepatch module.
    /// </summary>
    [TestMethod]
    public void TheTemplatesKbuildProjectBuildsAModule()
    {
        var (dir, home) = PackedSdk.WithTemplate();
        var created = Tool.RunWith(home, dir, "dotnet", "new", "ppc-livepatch", "-o", Path.Combine(dir, "Kb"),
            "--kernelDir", s_env["KO_KLP_BUILD"]);
        Assert.AreEqual(0, created.ExitCode, created.Output);
        string source = File.ReadAllText(Path.Combine(dir, "Kb", "livepatch.c"));
        StringAssert.Contains(source, "#ifdef __KERNEL__\n#include <linux/kernel.h>");
        StringAssert.Contains(source, "MODULE_LICENSE(\"GPL\");");
        var build = PackedSdk.Build(Path.Combine(dir, "Kb"));
        Assert.AreEqual(0, build.ExitCode, build.Output);
        string ko = Path.Combine(dir, "Kb", "bin", "Debug", "kb.ko");
        Assert.IsTrue(File.Exists(ko), build.Output);
        StringAssert.Contains(Tool.Run(dir, "powerpc64le-linux-gnu-readelf", "-p", ".modinfo", ko).Output,
            "livepatch=Y");
    }

    /// <summary>A patch in kpatch's own form (<c>diff -Nupr src.orig/… src/…</c>, which kpatch-build applies with
    /// patch -p1) builds, loads and shows its effect; it was PLP0021 ("src/fs/proc/meminfo.c is not built") and
    /// PLP5001 before.</summary>
    [TestMethod]
    public void KernelPatchInKpatchsFormIsReadAsPatchP1ReadsIt()
    {
        var run = s_patchSet.Value;
        var build = run.Built("meminfo-kpatch-form");
        StringAssert.Contains(build.Result.Output, "fs/proc/meminfo.c: meminfo_proc_show changed");
        run.LoadedEnabledDisabledUnloaded("lp_meminfo_kpatch");
        var (loaded, unloaded) = run.Probe("lp_meminfo_kpatch");
        Assert.IsTrue(loaded.Any(l => Regex.IsMatch(l, @"^meminfo: MemTotal\[lp\]: +\d+ kB$")), run.Boot.Log);
        Assert.IsTrue(unloaded.Any(l => Regex.IsMatch(l, @"^meminfo: MemTotal: +\d+ kB$")), run.Boot.Log);
    }

    /// <summary>
    /// A tracepoint in the changed code: its static key is not exported, so the livepatch binds it through kallsyms
    /// (it was PLP5008 before). The loader writes that relocation before it sets up the module's jump labels, so
    /// enabling the event turns on the branch in the new function: the guest's trace shows the event from the
    /// livepatch while it is loaded, and none while the event is off or after the livepatch is gone.
    /// </summary>
    [TestMethod]
    public void KernelPatchWithATracepointFiresItFromTheLivepatch()
    {
        var run = s_patchSet.Value;
        var build = run.Built("version-tracepoint");
        StringAssert.Contains(build.Result.Output, "fs/proc/version.c: version_proc_show changed");
        string relocations = Tool.Run(build.Dir, "powerpc64le-linux-gnu-readelf", "-rW", build.Ko).Output;
        StringAssert.Contains(relocations, "Relocation section '.klp.rela.vmlinux.__jump_table'");
        StringAssert.Contains(relocations, ".klp.sym.vmlinux.__tracepoint_sched_kthread_stop_ret,0 + 8");
        run.LoadedEnabledDisabledUnloaded("lp_version_tracepoint");
        var (loaded, unloaded) = run.Probe("lp_version_tracepoint");
        CollectionAssert.Contains(loaded, "tracepoint off: 0", run.Boot.Log);
        CollectionAssert.Contains(loaded, "tracepoint on: 2", run.Boot.Log);
        CollectionAssert.Contains(unloaded, "tracepoint on: 0", run.Boot.Log);
    }

    /// <summary>
    /// The loadavg change that loaded, enabled and did nothing (the kernel attached it to the ftrace site of the weak
    /// arch_report_meminfo the linker kept after loadavg_proc_show): refused at its line, no module.
    /// </summary>
    [TestMethod]
    public void KernelPatchTheKernelWouldAttachToDeadCodeIsRefused()
    {
        string text = KernelPatchText("loadavg-format");
        var build = BuildKernelPatch("loadavg-format", text, "lp_loadavg", out string dir);
        Assert.AreNotEqual(0, build.ExitCode, build.Output);
        int plusLine = Array.FindIndex(text.Split('\n'), l => l.StartsWith('+') && !l.StartsWith("+++")) + 1;
        StringAssert.Contains(build.Output, $"loadavg-format.patch({plusLine}): ppc-livepatch error PLP5011: " +
            "loadavg_proc_show's ftrace_location() range in vmlinux");
        StringAssert.Contains(build.Output, "holds 2 ftrace site(s)");
        Assert.IsFalse(File.Exists(Path.Combine(dir, "bin", "Debug", "lp_loadavg.ko")));
    }

    [TestMethod]
    public void KernelPatchChangingTheKernelsDataIsRefusedAtItsLineAndLeavesNoModule()
    {
        // A project that built a module from fix.patch; fix.patch then changes the kernel's data instead.
        var good = BuildKernelPatch("fix", KernelPatchText("version-static-local"), "lp_banner", out string dir);
        Assert.AreEqual(0, good.ExitCode, good.Output);
        string ko = Path.Combine(dir, "bin", "Debug", "lp_banner.ko");
        Assert.IsTrue(File.Exists(ko));

        string text = KernelPatchText("banner-data");
        int plusLine = Array.FindIndex(text.Split('\n'), l => l.StartsWith('+') && !l.StartsWith("+++")) + 1;
        File.WriteAllText(Path.Combine(dir, "fix.patch"), text);
        var build = PackedSdk.Build(dir, "refused.binlog", $"-p:KernelDir={s_env["KO_KLP_BUILD"]}",
            "-p:LivepatchModuleName=lp_banner");
        Assert.AreNotEqual(0, build.ExitCode, build.Output);
        StringAssert.Contains(build.Output, $"fix.patch({plusLine}): ppc-livepatch error PLP5003: " +
            "data object linux_proc_banner (.rodata.linux_proc_banner) changed");
        Assert.IsFalse(File.Exists(ko), "the module of the patch as it was is gone");
        Assert.AreEqual(0, Directory.GetFiles(Path.Combine(dir, "obj"), "lp_banner.ko", SearchOption.AllDirectories)
            .Length, "and so is kbuild's");
    }

    /// <summary>
    /// KernelPatch items are a series: the second is written on top of the first (its context is the first one's
    /// line; alone it would not apply), they apply in item order, and the module shows both in the guest.
    /// </summary>
    [TestMethod]
    public void KernelPatchSeriesAppliesInItemOrder()
    {
        var run = s_patchSet.Value;
        var build = run.Built("version-series");
        StringAssert.Contains(build.Result.Output, "fs/proc/version.c: version_proc_show changed");
        run.LoadedEnabledDisabledUnloaded("lp_version_series");
        var (loaded, unloaded) = run.Probe("lp_version_series");
        CollectionAssert.Contains(loaded, "version: series: one, two", run.Boot.Log);
        Assert.IsFalse(unloaded.Any(l => l.Contains("series")), run.Boot.Log);
    }

    /// <summary>
    /// Two patches of one file, each written against the original, apply in order when their hunks do not overlap
    /// (it was PLP0022 before), and a finding lands on the line of the patch that wrote it: here cmdline-init.patch's
    /// change to __init code.
    /// </summary>
    [TestMethod]
    public void TwoKernelPatchesOfOneFileApplyInOrder()
    {
        string fixtures = Path.Combine(Repo.Root, "tests", "fixtures", "diff", "patches");
        string dir = PackedSdk.Consumer("""
            <Project Sdk="PpcLivepatch.Build.Sdk/VERSION">
              <ItemGroup>
                <KernelPatch Include="cmdline-string.patch" />
                <KernelPatch Include="cmdline-init.patch" />
              </ItemGroup>
            </Project>
            """, ("cmdline-string.patch", File.ReadAllText(Path.Combine(fixtures, "cmdline-string.patch"))),
            ("cmdline-init.patch", File.ReadAllText(Path.Combine(fixtures, "cmdline-init.patch"))));
        var build = PackedSdk.Build(dir, "build.binlog", $"-p:KernelDir={s_env["KO_KLP_BUILD"]}");
        Assert.AreNotEqual(0, build.ExitCode, build.Output);
        int plusLine = Array.FindIndex(File.ReadAllLines(Path.Combine(fixtures, "cmdline-init.patch")),
            l => l.StartsWith('+') && !l.StartsWith("+++")) + 1;
        StringAssert.Contains(build.Output, $"cmdline-init.patch({plusLine}): ppc-livepatch error PLP5002: " +
            "proc_cmdline_init is in .init.text");
        Assert.IsFalse(build.Output.Contains("PLP0022", StringComparison.Ordinal), build.Output);
    }

    [TestMethod]
    public void KpatchForceUnsafeIsACompilerErrorAtThePatchLine()
    {
        // The kernel's livepatch core has no per-function force: the SDK's kpatch-macros.h refuses it, and gcc's
        // message lands on the .patch line that used the macro, with the C line beside it.
        string text = """
            --- a/fs/proc/cmdline.c
            +++ b/fs/proc/cmdline.c
            @@ -11,6 +11,9 @@
             	return 0;
             }
             
            +#include "kpatch-macros.h"
            +KPATCH_FORCE_UNSAFE(cmdline_proc_show);
            +
             static int __init proc_cmdline_init(void)
             {
             	proc_create_single("cmdline", 0, NULL, cmdline_proc_show);

            """.Replace("\r", "");
        var build = BuildKernelPatch("cmdline-force", text, "lp_force", out _);
        Assert.AreNotEqual(0, build.ExitCode, build.Output);
        StringAssert.Contains(build.Output, "cmdline-force.patch(8): ppc-livepatch error PLP0010: static assertion " +
            "failed: \"KPATCH_FORCE_UNSAFE(cmdline_proc_show): the kernel livepatch core has no per-function force");
        StringAssert.Contains(build.Output, "(fs/proc/cmdline.c:15)");
    }
}
