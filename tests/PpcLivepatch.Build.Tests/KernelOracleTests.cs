using System.Text.RegularExpressions;
using Microsoft.Build.Logging.StructuredLogger;
using PpcLivepatch.Analysis;
using PpcLivepatch.Diagnostics;
using PpcLivepatch.Elf;

namespace PpcLivepatch.Build.Tests;

/// <summary>
/// The real kernel's module loader as the judge: modules built with the SDK in kbuild mode are booted under
/// qemu-system-ppc64 (pseries) by eng/kernel-oracle/run.sh, one boot per kernel, and what the kernel did — insmod
/// status, its messages, livepatch state, /proc/cmdline — is compared with what our verifier predicted.
/// Needs eng/kernel-oracle/setup.sh --klp (run by ./build.sh test).
/// </summary>
[TestClass]
public sealed partial class KernelOracleTests
{
    private static Dictionary<string, string> s_env = [];

    [ClassInitialize]
    public static void ReadOracleSetup(TestContext _)
    {
        string dir = Environment.GetEnvironmentVariable("PPCLP_KERNEL_CACHE")
            ?? Path.Combine(Environment.GetEnvironmentVariable("HOME") ?? "/root", ".cache",
                "ppclivepatch-kernel-oracle");
        string env = Path.Combine(dir, "env.sh");
        if (!File.Exists(env)) Assert.Fail($"the kernel oracle is not set up ({env} is missing): run " +
            "eng/kernel-oracle/setup.sh --klp");
        s_env = File.ReadAllLines(env).Select(l =>
            l.Split('=', 2)).Where(p => p.Length == 2).ToDictionary(p => p[0], p => p[1]);
        if (string.IsNullOrEmpty(s_env.GetValueOrDefault("KO_KLP_BUILD")))
            Assert.Fail("the livepatch kernel is not built: run eng/kernel-oracle/setup.sh --klp");
    }

    private sealed record Boot(string Log)
    {
        public int InsmodStatus(string module) =>
            int.Parse(Regex.Match(Log, $@"ORACLE: insmod {Regex.Escape(module)} rc=(\d+)").Groups[1].Value);
        public string Cmdline(string module) => Regex.Match(Log, $@"ORACLE: cmdline {Regex.Escape(module)} (.*)")
            .Groups[1].Value;
        public IEnumerable<string> Dmesg => Regex.Matches(Log, @"ORACLE: dmesg (.*)").Select(m => m.Groups[1].Value);
    }

    private static Boot BootWith(string vmlinux, params string[] modules) => BootWith(null, vmlinux, modules);

    /// <param name="environment">run.sh's options: PPCLP_ORACLE_PROBE, PPCLP_ORACLE_UNLOAD.</param>
    private static Boot BootWith(IReadOnlyDictionary<string, string>? environment, string vmlinux,
        params string[] modules)
    {
        var run = Tool.RunWith(environment, Repo.Root, "bash",
            [Path.Combine(Repo.Root, "eng", "kernel-oracle", "run.sh"), vmlinux, .. modules]);
        Assert.AreEqual(0, run.ExitCode, run.Output);
        StringAssert.Contains(run.Output, "ORACLE: done", "the guest did not finish");
        return new Boot(run.Output);
    }

    /// <summary>Builds a kbuild-mode project from tests/kernel-modules/NAME or the sample, with extra
    /// properties.</summary>
    private static string BuildModule(string sourceDir, string projectXml, string moduleName,
        params string[] properties)
    {
        string dir = PackedSdk.Consumer(projectXml);
        foreach (string f in Directory.GetFiles(sourceDir, "*.c")) File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        var build = PackedSdk.Build(dir, "build.binlog", [$"-p:LivepatchModuleName={moduleName}", .. properties]);
        Assert.AreEqual(0, build.ExitCode, build.Output);
        string ko = Path.Combine(dir, "bin", "Debug", moduleName + ".ko");
        Assert.IsTrue(File.Exists(ko), build.Output);
        return ko;
    }

    /// <summary>What our verifier predicts the kernel will print for a refused module: "got XXXXXXXX".</summary>
    private static string PredictedRefusal(string ko)
    {
        var report = ObjectVerifier.Verify(ko, LoaderOptions.Default);
        Assert.IsFalse(report.Accepted, "our verifier should predict a refusal");
        var refused = report.Sites.First(s => s.Verdict == Verdict.Reject);
        return $"Expected nop after call, got {refused.Site.NextWordValue:x8}";
    }

    [TestMethod]
    public void DebianKernelRefusesTheUnpatchedCallAndLoadsThePatchedOne()
    {
        string project = """<Project Sdk="PpcLivepatch.Build.Sdk/VERSION" />""";
        string source = Path.Combine(Repo.Root, "tests", "kernel-modules", "nonop");
        string headers = s_env["KO_DEBIAN_HEADERS"];
        string unpatched =
            BuildModule(source, project, "nonop_unpatched", $"-p:KernelDir={headers}", "-p:Rel24Strategy=none",
                "-p:LivepatchVerifyMode=warn");
        // The default: the assembler route leaves the hand-written asm's call alone (no KlpSymbol names it), so the
        // object step's auto gives it an inserted nop.
        string patched = BuildModule(source, project, "nonop_patched", $"-p:KernelDir={headers}");
        string island =
            BuildModule(source, project, "nonop_island", $"-p:KernelDir={headers}", "-p:Rel24Strategy=island");
        string prediction = PredictedRefusal(unpatched);
        Assert.IsTrue(ObjectVerifier.Verify(patched, LoaderOptions.Default).Accepted);
        Assert.IsTrue(ObjectVerifier.Verify(island, LoaderOptions.Default).Accepted);

        var boot = BootWith(s_env["KO_DEBIAN_VMLINUX"], unpatched, patched, island);

        Assert.AreNotEqual(0, boot.InsmodStatus("nonop_unpatched"), "the kernel loaded a call without a nop");
        Assert.IsTrue(boot.Dmesg.Any(l => l.Contains($"module_64: nonop_unpatched: {prediction} at")),
            $"expected '{prediction}':\n{boot.Log}");
        Assert.AreEqual(0, boot.InsmodStatus("nonop_patched"), boot.Log);
        Assert.AreEqual(0, boot.InsmodStatus("nonop_island"), boot.Log);
        // jiffies_to_msecs(HZ) is 1000 only if the call through the stub really ran and returned with r2 restored:
        // once per loaded module, whichever way its call was fixed.
        Assert.AreEqual(2, boot.Dmesg.Count(l => Regex.IsMatch(l, @"nonop: jiffies_to_msecs\(\d+\) = 1000$")),
            boot.Log);
    }

    /// <summary>
    /// The kernel's own livepatch selftest modules (lib/livepatch of the oracle's source tree), built by the SDK with
    /// every local call fixed (Rel24Sites=all-local) under each strategy, all loaded in one boot: each livepatch
    /// enables and takes over /proc/cmdline as tools/testing/selftests/livepatch/test-livepatch.sh expects, and the
    /// shadow-variable module's own checks (dozens of calls to its static helpers) all give their expected results.
    /// Rel24Strategy=asm builds them through the assembler route, where the object rewriters find nothing to do.
    /// </summary>
    [TestMethod]
    public void KernelSelftestModulesWithEveryLocalCallFixedBehaveUnderEachStrategy()
    {
        string kernel = s_env["KO_KLP_BUILD"];
        string selftests = Path.Combine(Path.GetDirectoryName(kernel)!, "src", "linux-source-6.1", "lib", "livepatch");
        Assert.IsTrue(Directory.Exists(selftests), $"{selftests} is missing: run eng/kernel-oracle/setup.sh --klp");
        string project = """<Project Sdk="PpcLivepatch.Build.Sdk/VERSION" />""";
        var modules = new List<string>();
        var sitesFixed = new Dictionary<string, int>();
        foreach (string strategy in new[] { "asm", "auto", "insert-nop", "island" })
        {
            string tag = strategy.Replace("-", "");
            foreach (var (source, name) in new[] { ("test_klp_livepatch.c", $"tklp_lp_{tag}"),
                ("test_klp_shadow_vars.c", $"tklp_sv_{tag}") })
            {
                string dir = Repo.NewTempDir();
                File.Copy(Path.Combine(selftests, source), Path.Combine(dir, source));
                string ko =
                    BuildModule(dir, project, name, $"-p:KernelDir={kernel}", $"-p:Rel24Strategy={strategy}",
                        "-p:Rel24Sites=all-local");
                Assert.IsTrue(ObjectVerifier.Verify(ko, LoaderOptions.Default).Accepted, name);
                string report =
                    Path.Combine(Path.GetDirectoryName(Path.GetDirectoryName(Path.GetDirectoryName(ko)!)!)!, "obj",
                        "Debug", "livepatch", name + ".patch.json");
                sitesFixed[name] = Regex.Matches(File.ReadAllText(report),
                    "\"strategy\": \"(insert-nop|island)\"").Count;
                modules.Add(ko);
            }
        }
        Console.WriteLine("sites fixed: " + string.Join(", ", sitesFixed.Select(kv => $"{kv.Key} {kv.Value}")));
        Assert.IsTrue(sitesFixed.Where(kv =>
            kv.Key.StartsWith("tklp_sv_") && !kv.Key.EndsWith("_asm")).All(kv =>
                kv.Value >= 10), string.Join(", ", sitesFixed));
        // The assembler route leaves the object rewriters nothing: every local call already has its nop.
        Assert.AreEqual(0, sitesFixed["tklp_sv_asm"] + sitesFixed["tklp_lp_asm"]);
        foreach (string ko in modules.Where(m => m.Contains("_asm")))
        {
            Assert.IsTrue(PpcLivepatch.Elf.ElfImage.TryLoad(ko, out var image, out _));
            var again = PpcLivepatch.Patching.ObjectPatcher.Patch(image!,
                new PpcLivepatch.Patching.PatchOptions(PpcLivepatch.Patching.FixStrategy.Island,
                    PpcLivepatch.Patching.SiteSelection.AllLocal));
            Assert.AreEqual(0, again.Fixes.Count, $"{ko}: a local call without its nop");
        }

        var boot = BootWith(Path.Combine(kernel, "vmlinux"), [.. modules]);

        foreach (string tag in new[] { "asm", "auto", "insertnop", "island" })
        {
            Assert.AreEqual(0, boot.InsmodStatus($"tklp_lp_{tag}"), boot.Log);
            StringAssert.Contains(boot.Log, $"ORACLE: livepatch tklp_lp_{tag} enabled=1 transition=0");
            // The newest livepatch owns cmdline_proc_show: its module name proves it is the one that ran.
            Assert.AreEqual($"tklp_lp_{tag}: this has been live patched", boot.Cmdline($"tklp_lp_{tag}").Trim());
            Assert.AreEqual(0, boot.InsmodStatus($"tklp_sv_{tag}"), boot.Log);
        }
        var shadow = boot.Dmesg.Where(l =>
            l.Contains("tklp_sv_") || l.Contains("got expected") || l.Contains("got unexpected")).ToList();
        Assert.AreEqual(0, boot.Dmesg.Count(l => l.Contains("unexpected")), boot.Log);
        Assert.IsTrue(boot.Dmesg.Count(l => l.Contains("got expected")) >= 4 * 8, string.Join("\n", shadow));
    }

    [TestMethod]
    public void SampleLivepatchEnablesAndCallsTheOriginalStaticHelper()
    {
        string sample = Path.Combine(Repo.Root, "samples", "KernelLivepatch");
        string project = File.ReadAllText(Path.Combine(sample, "KernelLivepatch.csproj"));
        string kernel = s_env["KO_KLP_BUILD"];
        // Converted but not fixed, and kept despite Verify: the module the kernel must refuse.
        string unfixed =
            BuildModule(sample, project, "lp_unfixed", $"-p:KernelDir={kernel}", "-p:Rel24Strategy=none",
                "-p:LivepatchVerifyMode=warn");
        string island = BuildModule(sample, project, "lp_island", $"-p:KernelDir={kernel}", "-p:Rel24Strategy=island");
        // asm: the compiler's nop
        string fixedModule = BuildModule(sample, project, "lp_fixed", $"-p:KernelDir={kernel}");
        string prediction = PredictedRefusal(unfixed);
        var verified = ObjectVerifier.Verify(fixedModule, LoaderOptions.Default);
        Assert.IsTrue(verified.Accepted);
        Assert.IsTrue(verified.Sites.Any(s =>
            s.Site.Callee == ".klp.sym.vmlinux.version_proc_show,0" && s.Verdict == Verdict.Accept));

        var boot = BootWith(Path.Combine(kernel, "vmlinux"), unfixed, island, fixedModule);

        Assert.AreEqual(8, boot.InsmodStatus("lp_unfixed"), "ENOEXEC from apply_relocate_add");
        Assert.IsTrue(boot.Dmesg.Any(l => l.Contains($"module_64: lp_unfixed: {prediction} at")),
            $"expected '{prediction}':\n{boot.Log}");
        foreach (string module in new[] { "lp_island", "lp_fixed" })
        {
            Assert.AreEqual(0, boot.InsmodStatus(module), boot.Log);
            StringAssert.Contains(boot.Log, $"ORACLE: livepatch {module} enabled=1 transition=0");
            string cmdline = boot.Cmdline(module);
            // "(builder@host)" is printed only by the original version_proc_show in vmlinux, not by the dropped copy:
            // the livepatch relocation, the stub and the TOC restore after the (island's or in-place) call all ran.
            StringAssert.Matches(cmdline, new Regex(@"^Linux version \S+ \(\S+@\S+\) \("), cmdline);
            StringAssert.Contains(cmdline, "console=hvc0 quiet [livepatched by PpcLivepatch.Build]");
        }
    }

    [TestMethod]
    public void ASourcePatchDiffedAndLinkedByKbuildLoadsAndReplacesTheFunction()
    {
        // The whole road from a .patch without the SDK: the pair compiled from the oracle kernel's source before and
        // after tests/fixtures/diff/patches/cmdline-string.patch, diffed unbound with the kernel's System.map, linked
        // by kbuild with the generated registration, bound by Convert, fixed by Patch — and run by the kernel.
        string kernel = s_env["KO_KLP_BUILD"];
        string pairs = Path.Combine(Repo.Root, "tests", "fixtures", "diff", "pairs");
        Assert.IsTrue(ElfImage.TryLoad(Path.Combine(pairs, "cmdline-string.orig.o"), out var before, out _));
        Assert.IsTrue(ElfImage.TryLoad(Path.Combine(pairs, "cmdline-string.patched.o"), out var after, out _));
        var symbols = PpcLivepatch.Diff.KernelSymbols.Load(Path.Combine(kernel, "System.map"), "vmlinux", out var e)!;
        Assert.IsNull(e);
        var diff = PpcLivepatch.Diff.ObjectDiff.Run(before!, after!,
            new PpcLivepatch.Diff.DiffOptions("vmlinux", symbols, Bind: false));
        Assert.IsTrue(diff.Report.Succeeded, string.Join("\n", diff.Report.Diagnostics.Select(d => d.Message)));

        string dir = Repo.NewTempDir();
        File.WriteAllBytes(Path.Combine(dir, "cmdline.o"), diff.Output!);
        File.WriteAllText(Path.Combine(dir, "registration.c"),
            PpcLivepatch.Diff.KlpRegistration.Generate(diff.Report.Replacements));
        File.WriteAllText(Path.Combine(dir, "Kbuild"), "obj-m := lpdiff.o\nlpdiff-y := registration.o cmdline.o\n");
        var make = Tool.Run(dir, "make", "-s", "-C", kernel, $"M={dir}", "ARCH=powerpc",
            "CROSS_COMPILE=powerpc64le-linux-gnu-", "KBUILD_MODPOST_WARN=1", "modules");
        Assert.AreEqual(0, make.ExitCode, make.Output);

        string linked = Path.Combine(dir, "lpdiff.ko");
        Assert.IsTrue(ElfImage.TryLoad(linked, out var module, out _));
        var specs = diff.Report.Bindings.Where(b => b.Klp)
            .Select(b => new PpcLivepatch.Klp.KlpSymbolSpec(b.Name, b.Object, b.Name, b.Position)).ToList();
        var converted = PpcLivepatch.Klp.KlpConverter.Convert(module!, specs);
        Assert.IsTrue(converted.Succeeded, string.Join("\n", converted.Diagnostics.Select(d => d.Message)));
        Assert.IsTrue(ElfImage.TryParse(linked, converted.Output, out var bound, out _));
        var patched = PpcLivepatch.Patching.ObjectPatcher.Patch(bound!, new PpcLivepatch.Patching.PatchOptions(
            PpcLivepatch.Patching.FixStrategy.Auto, PpcLivepatch.Patching.SiteSelection.Needed, LoaderOptions.Default));
        Assert.IsTrue(patched.Report.Accepted, string.Join("\n", patched.Report.Diagnostics.Select(d => d.Message)));
        string ko = Path.Combine(Repo.NewTempDir(), "lpdiff.ko");
        File.WriteAllBytes(ko, patched.Output ?? converted.Output);

        var boot = BootWith(Path.Combine(kernel, "vmlinux"), ko);
        Assert.AreEqual(0, boot.InsmodStatus("lpdiff"), boot.Log);
        StringAssert.Contains(boot.Log, "ORACLE: livepatch lpdiff enabled=1 transition=0");
        // The patched cmdline_proc_show: the kernel's saved_command_line (a livepatch symbol) and the new string.
        StringAssert.EndsWith(boot.Cmdline("lpdiff").TrimEnd(), "console=hvc0 quiet [livepatched]");
    }

    [TestMethod]
    public void AKernelPatchItemBuildsAModuleThatLoadsAndReplacesTheFunction()
    {
        // One dotnet build from a .patch: the project holds nothing but cmdline-string.patch as a KernelPatch item.
        string patch = File.ReadAllText(Path.Combine(Repo.Root, "tests", "fixtures", "diff", "patches",
            "cmdline-string.patch"));
        string dir = PackedSdk.Consumer("""
            <Project Sdk="PpcLivepatch.Build.Sdk/VERSION">
              <ItemGroup><KernelPatch Include="cmdline-string.patch" /></ItemGroup>
            </Project>
            """, ("cmdline-string.patch", patch));
        string kernel = s_env["KO_KLP_BUILD"];
        var build = PackedSdk.Build(dir, "build.binlog", $"-p:KernelDir={kernel}", "-p:LivepatchModuleName=lpkp");
        Assert.AreEqual(0, build.ExitCode, build.Output);
        StringAssert.Contains(build.Output, "fs/proc/cmdline.c: cmdline_proc_show changed");
        string ko = Path.Combine(dir, "bin", "Debug", "lpkp.ko");
        Assert.IsTrue(ObjectVerifier.Verify(ko, LoaderOptions.Default).Accepted);

        var boot = BootWith(Path.Combine(kernel, "vmlinux"), ko);
        Assert.AreEqual(0, boot.InsmodStatus("lpkp"), boot.Log);
        StringAssert.Contains(boot.Log, "ORACLE: livepatch lpkp enabled=1 transition=0");
        StringAssert.EndsWith(boot.Cmdline("lpkp").TrimEnd(), "console=hvc0 quiet [livepatched]");
    }

    [TestMethod]
    public void AKernelPatchThatALivepatchCannotExpressFailsAtItsPatchLine()
    {
        // cmdline-init.patch changes __init code: the build fails with PLP5002 on the .patch line that changed it,
        // naming the C line too, and leaves no module behind.
        string patchText = File.ReadAllText(Path.Combine(Repo.Root, "tests", "fixtures", "diff", "patches",
            "cmdline-init.patch"));
        int plusLine = Array.FindIndex(patchText.Split('\n'), l => l.StartsWith('+') && !l.StartsWith("+++")) + 1;
        string dir = PackedSdk.Consumer("""
            <Project Sdk="PpcLivepatch.Build.Sdk/VERSION">
              <ItemGroup><KernelPatch Include="cmdline-init.patch" /></ItemGroup>
            </Project>
            """, ("cmdline-init.patch", patchText));
        var build = PackedSdk.Build(dir, "build.binlog", $"-p:KernelDir={s_env["KO_KLP_BUILD"]}");
        Assert.AreNotEqual(0, build.ExitCode, build.Output);
        StringAssert.Contains(build.Output, $"cmdline-init.patch({plusLine}): ppc-livepatch error PLP5002: " +
            "proc_cmdline_init is in .init.text");
        StringAssert.Contains(build.Output, "(fs/proc/cmdline.c:15)");
        Assert.AreEqual(0, Directory.Exists(Path.Combine(dir, "bin")) ? Directory.GetFiles(Path.Combine(dir, "bin"),
            "*.ko", SearchOption.AllDirectories).Length : 0);
    }

    [TestMethod]
    public void SiblingCallToAKlpSymbolFailsTheKbuildBuildAtTheCLine()
    {
        string dir = PackedSdk.Consumer("""
            <Project Sdk="PpcLivepatch.Build.Sdk/VERSION">
              <ItemGroup><KlpSymbol Include="version_proc_show" /></ItemGroup>
            </Project>
            """);
        File.Copy(Path.Combine(Repo.Root, "tests", "kernel-modules", "sibling", "sibling.c"),
            Path.Combine(dir, "sibling.c"));
        var build = PackedSdk.Build(dir, "build.binlog", $"-p:KernelDir={s_env["KO_KLP_BUILD"]}");
        Assert.AreEqual(1, build.ExitCode, build.Output);
        var error = BinaryLog.ReadBuild(Path.Combine(dir, "build.binlog")).FindChildrenRecursive<Error>().Single(e =>
            e.Code == DiagnosticCatalog.SiblingCallToExternal);
        // The C line of "return version_proc_show(m, v);" in the user's file, not in the kbuild copy.
        Assert.AreEqual((Path.Combine(dir, "sibling.c"), 20), (error.File, error.LineNumber));
        Assert.IsFalse(File.Exists(Path.Combine(dir, "bin", "Debug", "livepatch.ko")));
    }

    /// <summary>readelf -rW's view of one relocation section: (offset, symbol) per entry.</summary>
    private static List<(ulong Offset, string Symbol)> Relocations(string file, string section)
    {
        string text = Tool.Run(Repo.Root, "powerpc64le-linux-gnu-readelf", "-rW", file).Output;
        int at = text.IndexOf($"Relocation section '.rela{section}'", StringComparison.Ordinal);
        if (at < 0) return [];
        var rows = new List<(ulong, string)>();
        foreach (string line in text[at..].Split('\n').Skip(2))
        {
            var m = Regex.Match(line, @"^([0-9a-f]{16})\s+[0-9a-f]{16}\s+\S+\s+[0-9a-f]{16}\s+(\S+)");
            if (!m.Success) break;
            rows.Add((Convert.ToUInt64(m.Groups[1].Value, 16), m.Groups[2].Value));
        }
        return rows;
    }

    [TestMethod]
    public void ADroppedCopysTableRecordsGoWithItAndTheModuleLoads()
    {
        string kernel = s_env["KO_KLP_BUILD"];
        string project = """
            <Project Sdk="PpcLivepatch.Build.Sdk/VERSION">
              <ItemGroup><KlpSymbol Include="version_proc_show" /><KlpSymbol Include="saved_command_line" /></ItemGroup>
            </Project>
            """;
        string ko =
            BuildModule(Path.Combine(Repo.Root, "tests", "kernel-modules", "tables"), project, "lp_tables",
                $"-p:KernelDir={kernel}");
        string built = Path.Combine(Path.GetDirectoryName(ko)!, "..", "..", "obj", "Debug", "livepatch", "kbuild",
            "lp_tables.ko");

        // binutils' view, before (kbuild's module) and after (ours): every record about the copy is gone, every record
        // about the replacement is still there, and each table kept its stride.
        foreach (var (table, size) in new[] { ("__mcount_loc", 8UL), ("__ex_table", 8UL), ("__bug_table", 12UL),
            ("__jump_table", 16UL) })
        {
            var before = Relocations(built, table).Where(r => r.Offset % size == 0).ToList();
            var after = Relocations(ko, table).Where(r => r.Offset % size == 0).ToList();
            int copy = before.Count(r => r.Symbol == ".text.version_proc_show");
            int kept = before.Count(r => r.Symbol == ".text.tables_cmdline_proc_show");
            Assert.IsTrue(copy >= 1 && kept >= 1, $"{table}: the module should have records for both " +
                $"functions:\n{string.Join('\n', before)}");
            Assert.AreEqual(before.Count - copy, after.Count, $"{table}: {string.Join(", ", after)}");
            Assert.AreEqual(kept, after.Count(r => r.Symbol == ".text.tables_cmdline_proc_show"), table);
            Assert.IsFalse(after.Any(r => r.Symbol.Contains("version_proc_show")), table);
            CollectionAssert.AreEqual(Enumerable.Range(0, after.Count).Select(i => (ulong)i * size).ToList(),
                after.Select(r => r.Offset).ToList(), $"{table} records are not packed");
        }
        Assert.IsTrue(ObjectVerifier.Verify(ko, LoaderOptions.Default).Accepted);

        // The kernel reads those tables at load (exception and bug tables, jump labels, ftrace) and enables the patch.
        var boot = BootWith(Path.Combine(kernel, "vmlinux"), ko);
        Assert.AreEqual(0, boot.InsmodStatus("lp_tables"), boot.Log);
        StringAssert.Contains(boot.Log, "ORACLE: livepatch lp_tables enabled=1 transition=0");
        string cmdline = boot.Cmdline("lp_tables");
        StringAssert.Matches(cmdline, new Regex(@"^Linux version \S+ \(\S+@\S+\) \("), cmdline);
        StringAssert.Contains(cmdline, "[livepatched by PpcLivepatch.Build]");
        Assert.IsFalse(boot.Dmesg.Any(l => l.Contains("WARNING:") || l.Contains("Oops")), boot.Log);
    }

    [TestMethod]
    public void SigningWithoutTheKernelsKeyIsACodedErrorAndLeavesNoModule()
    {
        // Debian's headers ship sign-file but not Debian's private key.
        string dir = PackedSdk.Consumer("""<Project Sdk="PpcLivepatch.Build.Sdk/VERSION" />""");
        File.Copy(Path.Combine(Repo.Root, "tests", "kernel-modules", "nonop", "nonop.c"), Path.Combine(dir, "nonop.c"));
        var build =
            PackedSdk.Build(dir, "build.binlog", $"-p:KernelDir={s_env["KO_DEBIAN_HEADERS"]}", "-p:LivepatchSign=true");
        Assert.AreEqual(1, build.ExitCode, build.Output);
        var error = BinaryLog.ReadBuild(Path.Combine(dir, "build.binlog")).FindChildrenRecursive<Error>().Single();
        Assert.AreEqual(DiagnosticCatalog.SigningFailed, error.Code);
        StringAssert.Contains(error.Text, "signing_key.pem' does not exist (LivepatchSigningKey)");
        Assert.IsFalse(Directory.Exists(Path.Combine(dir, "bin", "Debug"))
            && Directory.GetFiles(Path.Combine(dir, "bin", "Debug"), "*.ko").Length > 0,
            "no module in bin/ when it could not be signed");
    }

    [TestMethod]
    public void SignedAfterPatchingTheModuleLoadsAndAChangeAfterSigningIsRefused()
    {
        string sample = Path.Combine(Repo.Root, "samples", "KernelLivepatch");
        // built with CONFIG_MODULE_SIG: its certs/signing_key.* are the trusted key
        string kernel = s_env["KO_KLP_BUILD"];
        string signedKo = BuildModule(sample, File.ReadAllText(Path.Combine(sample, "KernelLivepatch.csproj")),
            "lp_signed",
            $"-p:KernelDir={kernel}", "-p:LivepatchSign=true");
        string dir = Path.GetDirectoryName(Path.GetDirectoryName(Path.GetDirectoryName(signedKo)!)!)!;
        byte[] signed = File.ReadAllBytes(signedKo),
            verified = File.ReadAllBytes(Path.Combine(dir, "obj", "Debug", "livepatch", "verify", "lp_signed.ko"));
        int signature = Elf.ModuleSignature.AppendedLength(signed);
        Assert.IsTrue(signature > 0, "bin/ holds a signed module");
        CollectionAssert.AreEqual(verified, signed[..^signature],
            "the signature is appended to exactly the verified module");
        Assert.IsTrue(ObjectVerifier.Verify(signedKo, LoaderOptions.Default).Accepted,
            "a signed module still verifies");

        // Nothing changed: the next build does not sign again (a second signature would not verify).
        var stamp = File.GetLastWriteTimeUtc(signedKo);
        var again =
            PackedSdk.Build(dir, "again.binlog", "-p:LivepatchModuleName=lp_signed", $"-p:KernelDir={kernel}",
                "-p:LivepatchSign=true");
        Assert.AreEqual(0, again.ExitCode, again.Output);
        Assert.AreEqual(stamp, File.GetLastWriteTimeUtc(signedKo));

        // What signing before patching amounts to: the signed bytes changed afterwards (one word of code).
        string tampered = Path.Combine(Repo.NewTempDir(), "lp_tampered.ko");
        Assert.IsTrue(Elf.ElfImage.TryLoad(signedKo, out var image, out _));
        var text = image!.Sections.First(s => s.Name.StartsWith(".text.livepatch_cmdline", StringComparison.Ordinal));
        byte[] changed = (byte[])signed.Clone();
        changed[(int)text.Offset] ^= 0x01;
        File.WriteAllBytes(tampered, changed);

        // The tampered copy first: it has the same module name, so after lp_signed it would be refused for that alone.
        var boot = BootWith(Path.Combine(kernel, "vmlinux"), tampered, signedKo);
        Assert.AreEqual(129, boot.InsmodStatus("lp_tampered"),
            "EKEYREJECTED expected for a module whose signature does not match:\n" + boot.Log);
        Assert.AreEqual(0, boot.InsmodStatus("lp_signed"), boot.Log);
        StringAssert.Contains(boot.Log, "ORACLE: livepatch lp_signed enabled=1 transition=0");
        Assert.IsFalse(boot.Dmesg.Any(l =>
            l.Contains("module verification failed")), "the kernel did not take lp_signed as signed:\n" + boot.Log);
    }

    [TestMethod]
    public void ALivepatchWithoutItsModinfoTagIsPredictedAndRefused()
    {
        string sample = Path.Combine(Repo.Root, "samples", "KernelLivepatch");
        string source = Repo.NewTempDir();
        string text = File.ReadAllText(Path.Combine(sample, "livepatch.c"));
        Assert.IsTrue(text.Contains("MODULE_INFO(livepatch, \"Y\");"));
        File.WriteAllText(Path.Combine(source, "livepatch.c"), text.Replace("MODULE_INFO(livepatch, \"Y\");", ""));
        string kernel = s_env["KO_KLP_BUILD"];
        // Kept despite Verify (warn mode), so that the kernel can be asked.
        string ko = BuildModule(source, File.ReadAllText(Path.Combine(sample, "KernelLivepatch.csproj")), "lp_unmarked",
            $"-p:KernelDir={kernel}", "-p:LivepatchVerifyMode=warn");
        var report = ObjectVerifier.Verify(ko, LoaderOptions.Default);
        Assert.AreEqual(DiagnosticCatalog.NotMarkedLivepatch, report.Diagnostics.Single(d =>
            d.Severity == Severity.Error).Code);

        var boot = BootWith(Path.Combine(kernel, "vmlinux"), ko);
        Assert.AreEqual(22, boot.InsmodStatus("lp_unmarked"), "EINVAL from klp_enable_patch:\n" + boot.Log);
        Assert.IsTrue(boot.Dmesg.Any(l =>
            l.Contains("module lp_unmarked is not marked as a livepatch module")), boot.Log);
    }

    [TestMethod]
    public void ALivepatchForAKernelWithoutLivepatchSupportIsPredictedAndRefused()
    {
        // Debian's kernel has no CONFIG_LIVEPATCH (its headers' auto.conf says so): a module marked as a livepatch is
        // refused before anything else is looked at.
        string source = Repo.NewTempDir();
        File.WriteAllText(Path.Combine(source, "nonop.c"),
            File.ReadAllText(Path.Combine(Repo.Root, "tests", "kernel-modules", "nonop",
                "nonop.c")) + "\nMODULE_INFO(livepatch, \"Y\");\n");
        string ko = BuildModule(source, """<Project Sdk="PpcLivepatch.Build.Sdk/VERSION" />""", "nonop_marked",
            $"-p:KernelDir={s_env["KO_DEBIAN_HEADERS"]}", "-p:LivepatchVerifyMode=warn");
        var build =
            BinaryLog.ReadBuild(Path.Combine(Path.GetDirectoryName(Path.GetDirectoryName(Path.GetDirectoryName(ko)!)!)!,
                "build.binlog"));
        Assert.AreEqual(DiagnosticCatalog.KernelWithoutLivepatch, build.FindChildrenRecursive<Warning>().Single(w =>
            w.Code.StartsWith("PLP2")).Code);
        Assert.IsTrue(ObjectVerifier.Verify(ko, LoaderOptions.Default).Accepted,
            "for a kernel with livepatch support the module is fine");

        var boot = BootWith(s_env["KO_DEBIAN_VMLINUX"], ko);
        Assert.AreEqual(8, boot.InsmodStatus("nonop_marked"), "ENOEXEC from check_modinfo_livepatch:\n" + boot.Log);
        Assert.IsTrue(boot.Dmesg.Any(l =>
            l.Contains("nonop_marked: module is marked as livepatch module, but livepatch support is disabled")),
                boot.Log);
    }
}
