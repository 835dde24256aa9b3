using System.Text.Json;
using PpcLivepatch.Cli;

namespace PpcLivepatch.Tests;

[TestClass]
public sealed class CliTests
{
    private static (int Exit, string Out, string Err) Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int exit = CliApp.Run(args, stdout, stderr);
        return (exit, stdout.ToString(), stderr.ToString());
    }

    [TestMethod]
    public void ExitCodesSayWhetherTheKernelWouldLoad()
    {
        Assert.AreEqual(CliApp.ExitAccepted, Run("verify", Repo.Fixture("calls.kpatch.le.o")).Exit);
        Assert.AreEqual(CliApp.ExitRejected, Run("verify", Repo.Fixture("livepatch.klp.le.o")).Exit);
        Assert.AreEqual(CliApp.ExitRejected,
            Run("verify", Repo.Fixture("calls.kpatch.le.o"), Repo.Fixture("livepatch.und.le.o")).Exit);
        Assert.AreEqual(CliApp.ExitAccepted, Run("verify", "--pcrel", Repo.Fixture("calls.p10.le.o")).Exit);
    }

    [TestMethod]
    [DataRow(new string[0], "")]
    [DataRow(new[] { "frobnicate" }, "unknown command 'frobnicate'")]
    [DataRow(new[] { "verify" }, "verify needs at least one FILE")]
    [DataRow(new[] { "verify", "--format", "xml", "x.o" }, "unknown format 'xml'")]
    [DataRow(new[] { "verify", "--format" }, "--format needs a value")]
    [DataRow(new[] { "verify", "--bogus", "x.o" }, "unknown option '--bogus'")]
    [DataRow(new[] { "kernel-patch", "--kernel-dir", "/k" }, "kernel-patch needs at least one FIX.patch")]
    [DataRow(new[] { "kernel-patch", "fix.patch" }, "kernel-patch needs --kernel-dir DIR")]
    [DataRow(new[] { "kernel-patch", "--kernal-dir", "/k", "fix.patch" },
        "unknown option '--kernal-dir'; did you mean '--kernel-dir'?")]
    [DataRow(new[] { "kernel-patch", "--kernel-dir", "/k", "--name", "a.b-c!", "fix.patch" },
        "the module name 'a_b_c!' must be")]
    public void BadUsageIsCodedAndExitsTwo(string[] args, string message)
    {
        var (exit, _, err) = Run(args);
        Assert.AreEqual(CliApp.ExitUsage, exit);
        if (message.Length > 0) StringAssert.Contains(err, $"error PLP0001: {message}");
        else StringAssert.Contains(err, "usage: ppc-livepatch verify");
    }

    /// <summary>Every command's --help (or -h) prints the usage and exits 0: it was PLP0001 "unknown option".</summary>
    [TestMethod]
    [DataRow("verify --help")]
    [DataRow("patch -h")]
    [DataRow("diff --help")]
    [DataRow("cc --help")]
    [DataRow("kernel-patch --help")]
    [DataRow("verify x.o --help")]
    public void EveryCommandsHelpPrintsTheUsage(string command)
    {
        var (exit, output, err) = Run(command.Split(' '));
        Assert.AreEqual(CliApp.ExitAccepted, exit, err);
        StringAssert.Contains(output, "usage: ppc-livepatch verify");
        StringAssert.Contains(output, "ppc-livepatch cc");
        StringAssert.Contains(output, "ppc-livepatch kernel-patch FIX.patch... --kernel-dir DIR");
        Assert.AreEqual("", err);
        // After "--" it is the compiler's option, not ours.
        Assert.AreNotEqual(CliApp.ExitAccepted, Run("cc", "--", "/nonexistent/cc", "--help").Exit);
    }

    /// <summary>A kernel-patch that cannot start says why with its code and writes nothing: no kernel tree (PLP0015,
    /// usage), a patch that is not one (PLP0020 at its line), and no earlier module survives.</summary>
    [TestMethod]
    public void KernelPatchRefusesWhatItCannotBuildFromAndLeavesNoModule()
    {
        string dir = Repo.NewTempDir(), ko = Path.Combine(dir, "lp.ko");
        File.WriteAllText(Path.Combine(dir, "fix.patch"), "not a patch\n");
        File.WriteAllText(ko, "an earlier module");
        var (exit, output, _) = Run("kernel-patch", Path.Combine(dir, "fix.patch"), "--kernel-dir",
            Path.Combine(dir, "nowhere"), "-o", ko);
        Assert.AreEqual(CliApp.ExitUsage, exit, output);
        StringAssert.Contains(output, "error PLP0015: --kernel-dir '");
        StringAssert.Contains(output, "(no such directory)");
        Assert.IsFalse(File.Exists(ko), "a module of other patches is not left to look like this one");

        var (refused, text, _) = Run("kernel-patch", Path.Combine(dir, "fix.patch"), "--kernel-dir",
            KernelOracle.KlpBuildTree(), "--work-dir", Path.Combine(dir, "work"), "-o", ko);
        Assert.AreEqual(CliApp.ExitRejected, refused, text);
        StringAssert.Contains(text, "fix.patch(1,1): error PLP0020: ");
        StringAssert.Contains(text, "kernel-patch: no module written");
        Assert.IsFalse(File.Exists(ko));

        // A work directory that cannot be made (a file stands where it would be) is coded, not an exception.
        File.WriteAllText(Path.Combine(dir, "blocked"), "");
        File.WriteAllText(Path.Combine(dir, "fix.patch"), "--- a/fs/proc/cmdline.c\n+++ b/fs/proc/cmdline.c\n" +
            "@@ -9,1 +9,1 @@\n-\tseq_putc(m, '\\n');\n+\tseq_puts(m, \"\\n\");\n");
        var (blocked, said, _) = Run("kernel-patch", Path.Combine(dir, "fix.patch"), "--kernel-dir",
            KernelOracle.KlpBuildTree(), "--work-dir", Path.Combine(dir, "blocked", "work"), "-o", ko);
        Assert.AreEqual(CliApp.ExitUsage, blocked, said);
        StringAssert.Contains(said, "PLP10");
        Assert.IsFalse(File.Exists(ko));
    }

    [TestMethod]
    public void TextIsMsBuildCanonicalAtTheCLine()
    {
        var (_, output, _) = Run("verify", Repo.Fixture("livepatch.klp.le.o"));
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        StringAssert.StartsWith(lines[0],
            "livepatch.c(29,10): error PLP2001: call to livepatch symbol .klp.sym.vmlinux.cmdline_helper,0 at " +
                ".text.livepatch_cmdline_show+0x30 (livepatch_cmdline_show+0x28)");
        StringAssert.Contains(lines[0], "Fix: ");
        Assert.IsTrue(lines.Any(l => l.StartsWith("livepatch.c(37,9): error PLP3002: sibling call (b)")), output);
        StringAssert.EndsWith(lines[^1],
            "livepatch.klp.le.o: rejected (13 call sites: 6 accepted, 1 rejected, 6 exempt)");

        // Without line info the object is the origin: "file : error CODE: …".
        var (_, nodebug, _) = Run("verify", Repo.Fixture("asm_calls.kmod.le.o"));
        StringAssert.StartsWith(nodebug, Repo.Fixture("asm_calls.kmod.le.o") + " : error PLP");
    }

    [TestMethod]
    public void JsonFollowsTheDocumentedSchema()
    {
        var (exit, output, _) = Run("verify", "--format", "json", Repo.Fixture("livepatch.klp.le.o"),
            Repo.Fixture("calls.kpatch.be.o"));
        Assert.AreEqual(CliApp.ExitRejected, exit);
        using var doc = JsonDocument.Parse(output);
        var files = doc.RootElement.GetProperty("files");
        Assert.AreEqual(2, files.GetArrayLength());

        var klp = files[0];
        Assert.AreEqual("elfv2", klp.GetProperty("abi").GetString());
        Assert.IsFalse(klp.GetProperty("accepted").GetBoolean());
        var site = klp.GetProperty("sites").EnumerateArray().Single(s =>
            s.GetProperty("callee").GetString() == ".klp.sym.vmlinux.cmdline_helper,0");
        Assert.AreEqual(".text.livepatch_cmdline_show", site.GetProperty("section").GetString());
        Assert.AreEqual(0x30, site.GetProperty("offset").GetInt32());
        Assert.AreEqual("livepatch_cmdline_show", site.GetProperty("function").GetString());
        Assert.AreEqual(0x28, site.GetProperty("functionOffset").GetInt32());
        Assert.AreEqual("livepatch", site.GetProperty("calleeKind").GetString());
        Assert.AreEqual("bl", site.GetProperty("instruction").GetString());
        Assert.AreEqual("other", site.GetProperty("next").GetString());
        Assert.AreEqual("reject", site.GetProperty("verdict").GetString());
        Assert.AreEqual(29, site.GetProperty("source").GetProperty("line").GetInt32());
        Assert.AreEqual(10, site.GetProperty("source").GetProperty("column").GetInt32());
        StringAssert.Contains(site.GetProperty("reason").GetString(), "not a nop");

        var mcount = klp.GetProperty("sites").EnumerateArray().First(s =>
            s.GetProperty("callee").GetString() == "_mcount");
        Assert.AreEqual("exempt", mcount.GetProperty("verdict").GetString());

        var diagnostic = klp.GetProperty("diagnostics").EnumerateArray().First(d =>
            d.GetProperty("code").GetString() == "PLP2001");
        foreach (string field in new[] { "code", "severity", "message", "section", "offset", "function", "callee",
            "source" })
            Assert.IsTrue(diagnostic.TryGetProperty(field, out _), field);
        Assert.AreEqual("error", diagnostic.GetProperty("severity").GetString());

        var be = files[1];
        Assert.AreEqual("elfv1", be.GetProperty("abi").GetString());
        Assert.IsTrue(be.GetProperty("accepted").GetBoolean());
        Assert.AreEqual(0, be.GetProperty("diagnostics").GetArrayLength());
        Assert.IsTrue(be.GetProperty("sites").EnumerateArray().All(s =>
            s.GetProperty("verdict").GetString() != "reject"));
    }

    [TestMethod]
    public void UnreadableInputIsReportedInJsonToo()
    {
        string path = Path.Combine(Repo.NewTempDir(), "empty.o");
        File.WriteAllBytes(path, []);
        var (exit, output, _) = Run("verify", "--format", "json", path);
        Assert.AreEqual(CliApp.ExitUsage, exit);
        using var doc = JsonDocument.Parse(output);
        var file = doc.RootElement.GetProperty("files")[0];
        Assert.AreEqual(JsonValueKind.Null, file.GetProperty("abi").ValueKind);
        Assert.AreEqual("PLP1001", file.GetProperty("diagnostics")[0].GetProperty("code").GetString());
    }

    [TestMethod]
    public void SarifIsVersion210WithRulesAndRegions()
    {
        var (_, output, _) = Run("verify", "--format", "sarif", Repo.Fixture("livepatch.klp.le.o"));
        using var doc = JsonDocument.Parse(output);
        Assert.AreEqual("2.1.0", doc.RootElement.GetProperty("version").GetString());
        var run = doc.RootElement.GetProperty("runs")[0];
        Assert.AreEqual("ppc-livepatch", run.GetProperty("tool").GetProperty("driver").GetProperty("name").GetString());
        var rules = run.GetProperty("tool").GetProperty("driver").GetProperty("rules").EnumerateArray().Select(r =>
            r.GetProperty("id").GetString()).ToList();
        CollectionAssert.AreEqual(new[] { "PLP2001", "PLP3002" }, rules);
        var result = run.GetProperty("results").EnumerateArray().First(r =>
            r.GetProperty("ruleId").GetString() == "PLP2001");
        Assert.AreEqual("error", result.GetProperty("level").GetString());
        Assert.AreEqual(rules.IndexOf("PLP2001"), result.GetProperty("ruleIndex").GetInt32());
        var physical = result.GetProperty("locations")[0].GetProperty("physicalLocation");
        // The fixture's DWARF names the file relative to no directory: a reference against SRCROOT, not this process's.
        Assert.AreEqual("livepatch.c", physical.GetProperty("artifactLocation").GetProperty("uri").GetString());
        Assert.AreEqual("SRCROOT", physical.GetProperty("artifactLocation").GetProperty("uriBaseId").GetString());
        Assert.AreEqual(new Uri(Repo.Fixture("livepatch.klp.le.o")).AbsoluteUri,
            result.GetProperty("analysisTarget").GetProperty("uri").GetString());
        Assert.AreEqual(29, physical.GetProperty("region").GetProperty("startLine").GetInt32());
        Assert.AreEqual("livepatch_cmdline_show+0x30",
            result.GetProperty("locations")[0].GetProperty("logicalLocations")[0].GetProperty("fullyQualifiedName")
                .GetString());
    }

    /// <summary>Every kind of SARIF the CLI writes passes the SARIF SDK's validator with no error and no
    /// warning.</summary>
    [TestMethod]
    public void SarifPassesTheSarifValidator()
    {
        string dir = Repo.NewTempDir();
        var files = new List<string>();
        void Write(string name, params string[] args)
        {
            string path = Path.Combine(dir, name);
            File.WriteAllText(path, Run(args).Out);
            files.Add(path);
        }
        Write("verify-all.sarif", ["verify", "--format", "sarif", .. Repo.AllFixtures]);
        Write("verify-pcrel.sarif", "verify", "--format", "sarif", "--pcrel", Repo.Fixture("savegpr.Os.le.o"),
            Repo.Fixture("calls.kpatch.le.o"));
        Write("patch.sarif", "patch", "--format", "sarif", "-o", Path.Combine(dir, "p.o"),
            Repo.Fixture("calls.kpatch.le.o"));
        Write("patch-insert-nop.sarif", "patch", "--format", "sarif", "--strategy", "insert-nop", "--sites",
            "all-local", "-o",
            Path.Combine(dir, "q.o"), Repo.Fixture("switch_mask.clang-large.le.o"));
        File.WriteAllText(Path.Combine(dir, "junk.o"), "junk");
        Write("unreadable.sarif", "verify", "--format", "sarif", Path.Combine(dir, "junk.o"),
            Path.Combine(dir, "absent.o"));
        Shared.SarifValidator.AssertValid([.. files]);
    }

    [TestMethod]
    public void VersionIsThePackageVersion()
    {
        string version = System.Text.RegularExpressions.Regex.Match(File.ReadAllText(Path.Combine(Repo.Root,
            "global.json")),
            "\"PpcLivepatch\\.Build\\.Sdk\"\\s*:\\s*\"([^\"]+)\"").Groups[1].Value;
        var (exit, output, _) = Run("--version");
        Assert.AreEqual(0, exit);
        Assert.AreEqual($"ppc-livepatch {version}", output.Trim());
    }

    [TestMethod]
    public void OptionsTakeTheirValueAfterAnEqualsSignToo()
    {
        string dir = Repo.NewTempDir();
        var spaced = Run("patch", "--strategy", "island", "--format", "json", "--module-name", "m", "-o",
            Path.Combine(dir, "a.o"),
            Repo.Fixture("livepatch.und.le.o"));
        var joined = Run("patch", "--strategy=island", "--format=json", "--module-name=m", "-o",
            Path.Combine(dir, "a.o"),
            Repo.Fixture("livepatch.und.le.o"));
        Assert.AreEqual(0, joined.Exit, joined.Err);
        Assert.AreEqual(spaced.Out, joined.Out);
        var flag = Run("verify", "--pcrel=true", Repo.Fixture("livepatch.und.le.o"));
        Assert.AreEqual(CliApp.ExitUsage, flag.Exit);
        StringAssert.Contains(flag.Err, "error PLP0001: --pcrel takes no value");
    }

    [TestMethod]
    [DataRow("verfy", "unknown command 'verfy'; did you mean 'verify'?")]
    [DataRow("patch --stratgy island", "unknown option '--stratgy'; did you mean '--strategy'?")]
    [DataRow("patch --stratgy=island", "unknown option '--stratgy'; did you mean '--strategy'?")]
    [DataRow("verify --kernel-accept-ld-toc",
        "unknown option '--kernel-accept-ld-toc'; did you mean '--kernel-accepts-ld-toc'?")]
    [DataRow("verify --strategy island", "unknown option '--strategy'")]   // a patch option: no guess for verify
    [DataRow("verify --zzz", "unknown option '--zzz'")]
    public void AMistypedNameGetsASuggestion(string command, string message)
    {
        var (exit, _, err) = Run([.. command.Split(' '), Repo.Fixture("livepatch.und.le.o")]);
        Assert.AreEqual(CliApp.ExitUsage, exit);
        StringAssert.Contains(err, $"error PLP0001: {message}");
        if (!message.Contains("did you mean")) Assert.IsFalse(err.Contains("did you mean"), err);
    }

    [TestMethod]
    public void OutputIsDeterministic()
    {
        foreach (string format in new[] { "text", "json", "sarif" })
        {
            var first = Run("verify", "--format", format, Repo.Fixture("asm_calls.kpatch.be.o"),
                Repo.Fixture("livepatch.klp.le.o"));
            var second = Run("verify", "--format", format, Repo.Fixture("asm_calls.kpatch.be.o"),
                Repo.Fixture("livepatch.klp.le.o"));
            Assert.AreEqual(first.Out, second.Out, format);
        }
    }

    [TestMethod]
    public void TheBuiltToolRunsAsAProcess()
    {
        string dll = Path.Combine(AppContext.BaseDirectory, "ppc-livepatch.dll");
        var rejected = Tool.Run("dotnet", dll, "verify", Repo.Fixture("livepatch.und.le.o"));
        Assert.AreEqual(1, rejected.ExitCode, rejected.Stdout + rejected.Stderr);
        StringAssert.Contains(rejected.Stdout, "livepatch.c(31,7): error PLP2001:");
        var bad = Tool.Run("dotnet", dll, "verify", "/nonexistent/x.o");
        Assert.AreEqual(2, bad.ExitCode);
        Assert.AreEqual("", bad.Stderr, "no stack trace or other noise on stderr");
        Assert.AreEqual(0, Tool.Run("dotnet", dll, "verify", Repo.Fixture("switch.kpatch.be.o")).ExitCode);
    }
}
