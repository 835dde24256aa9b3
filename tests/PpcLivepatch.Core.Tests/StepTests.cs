using PpcLivepatch.Analysis;
using PpcLivepatch.Cli;
using PpcLivepatch.Diagnostics;
using PpcLivepatch.Elf;
using PpcLivepatch.Patching;
using PpcLivepatch.Steps;

namespace PpcLivepatch.Tests;

/// <summary>The SDK's build steps and the line protocol that carries them between the tasks and
/// <c>ppc-livepatch</c>.</summary>
[TestClass]
public sealed class StepTests
{
    // A site left as it is, with a kind that is not its code's default: both travel.
    private static readonly Diagnostic Full = new Diagnostic("PLP2003",
        "call to \"x\" at .text+0x4 — needs a nop\nsecond line", "/o/a b.o",
        ".text.f", 4, "f", 4, "kernel_helper", new SourceLocation("/src/lp ü.c", 31, 7),
            "Rebuild with -fno-optimize-sibling-calls.")
        { Kind = DiagnosticKind.Unfixed }.LeftAsIs();

    [TestMethod]
    public void ProtocolCarriesEveryFieldOfEveryEventInOrder()
    {
        var result = new StepResult([
            StepEvent.Of(Full),
            StepEvent.Say("1 REL24 site fixed (insert-nop), 0 unfixable", prominent: true),
            StepEvent.Of(new Diagnostic("PLP4002", "summary", "a.o")),
            StepEvent.Say("a.o: the kernel would load it", prominent: false),
        ], SitesFixed: 3);

        string text = StepProtocol.Write(result);
        Assert.IsTrue(StepProtocol.TryRead(text, out var read, out string? error), error);
        CollectionAssert.AreEqual(result.Events.ToList(), read!.Events.ToList());
        Assert.AreEqual(3, read.SitesFixed);
        Assert.AreEqual(5, text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length,
            "one line per event and a closing line");
        Assert.IsTrue(StepProtocol.IsClosingLine(text.Split('\n', StringSplitOptions.RemoveEmptyEntries)[^1]));
    }

    [TestMethod]
    public void AResponseWithoutItsClosingLineOrWithAnErrorIsNotAResult()
    {
        string text = StepProtocol.Write(new StepResult([StepEvent.Of(Full)], 0));
        string cut = text[..text.IndexOf('\n')];
        Assert.IsFalse(StepProtocol.TryRead(cut, out _, out string? error));
        StringAssert.Contains(error, "did not finish");

        Assert.IsFalse(StepProtocol.TryRead(StepProtocol.WriteError("unknown strategy 'x'"), out _, out error));
        Assert.AreEqual("unknown strategy 'x'", error);

        Assert.IsFalse(StepProtocol.TryRead("{\"diagnostic\":{\"code\":\"PLP1\"}}\n{\"sitesFixed\":0}\n", out _,
            out error));
        StringAssert.Contains(error, "unreadable line");
    }

    [TestMethod]
    public void RequestsKeepOptionsAndPathsExactly()
    {
        var options = new StepOptions(StepKind.Patch, new LoaderOptions(true, false, "a \"b\"\tc", false),
            FixStrategy.InsertNop, SiteSelection.AllLocal,
            AllowSiblingCalls: true, JsonReport: "r.json",
                Symbols: [new("f", "vmlinux", null, 2), new("g", "ext4", "g.cold", 0)]);
        StepObject[] objects = [new("/tmp/ü ö/in.o", ""), new("-x.o", "out\n.o")];
        string line = StepProtocol.WriteRequest(new StepRequest("/work dir", options, objects));
        Assert.AreEqual(1, line.Count(c => c == '\n'), "a request is one line");
        var read = StepProtocol.ReadRequest(line.TrimEnd('\n'));
        Assert.AreEqual("/work dir", read.Directory);
        Assert.AreEqual(options.CacheKey, read.Options.CacheKey);
        Assert.AreEqual(options.Loader, read.Options.Loader);
        CollectionAssert.AreEqual(options.KlpSymbols.ToList(), read.Options.KlpSymbols.ToList());
        CollectionAssert.AreEqual(objects, read.Objects.ToList());
        Assert.AreEqual(options with { Symbols = null }, read.Options with { Symbols = null });
        Assert.AreNotEqual(options.CacheKey, (options with { Sites = SiteSelection.Needed }).CacheKey,
            "the cache key sees every option");
        Assert.ThrowsExactly<FormatException>(() => StepProtocol.ReadRequest("{\"args\":[]}"));
    }

    [TestMethod]
    public void AFailedStepLeavesNoOutputsAtAll()
    {
        string dir = Repo.NewTempDir();
        string good = Path.Combine(dir, "good.o"), bad = Path.Combine(dir, "bad.o");
        File.WriteAllText(Path.Combine(dir, "notelf.o"), "not an object");
        var result = PatchStep.Run([new(Repo.Fixture("livepatch.und.le.o"), good),
            new(Path.Combine(dir, "notelf.o"), bad)],
            new StepOptions(StepKind.Patch, LoaderOptions.Default));

        Assert.IsFalse(result.Succeeded);
        Assert.AreEqual(DiagnosticCatalog.NotElf, result.Events.Single(e =>
            e.Diagnostic?.Severity == Severity.Error).Diagnostic!.Code);
        Assert.AreEqual(1, result.SitesFixed, "the first object was fixed before the second failed");
        Assert.IsFalse(File.Exists(good), "a failed step must not leave the other object's output either");
        Assert.IsFalse(File.Exists(bad));
    }

    /// <summary>A fixture with what scripts/sign-file appends: PKCS#7 bytes, struct module_signature, the
    /// marker.</summary>
    private static string Signed(string fixture, string dir)
    {
        string path = Path.Combine(dir, "signed-" + fixture);
        byte[] pkcs7 = Enumerable.Range(0, 40).Select(i => (byte)(0x30 + i)).ToArray();
        byte[] info = [0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 40];   // algo, hash, id_type = PKEY_ID_PKCS7, …, sig_len (BE)
        File.WriteAllBytes(path,
            [.. File.ReadAllBytes(Repo.Fixture(fixture)), .. pkcs7, .. info,
                .. "~Module signature appended~\n"u8.ToArray()]);
        return path;
    }

    [TestMethod]
    public void ChangingASignedModuleSaysItsSignatureIsDropped()
    {
        string dir = Repo.NewTempDir();
        var options = new StepOptions(StepKind.Patch, LoaderOptions.Default);
        string signed = Signed("livepatch.und.le.o", dir), output = Path.Combine(dir, "patched.o");
        var patched = PatchStep.Run([new(signed, output)], options);
        Assert.IsTrue(patched.Succeeded);
        Assert.AreEqual(1, patched.SitesFixed);
        var warning = patched.Events.Single(e => e.Diagnostic?.Code == DiagnosticCatalog.SignatureDropped).Diagnostic!;
        Assert.AreEqual(Severity.Warning, warning.Severity);
        StringAssert.Contains(warning.Fix, "LivepatchSign=true");
        Assert.IsFalse(ModuleSignature.IsAppended(File.ReadAllBytes(output)));
        string plain = Path.Combine(dir, "plain.o");
        PatchStep.Run([new(Repo.Fixture("livepatch.und.le.o"), plain)], options);
        CollectionAssert.AreEqual(File.ReadAllBytes(plain), File.ReadAllBytes(output),
            "the stale signature must not be carried into the patched module");

        // Nothing to fix: the module is passed on as it was, signature and all, and nothing is said about it.
        string untouched = Signed("calls.kpatch.le.o", dir);
        var same = PatchStep.Run([new(untouched, output)], options);
        Assert.IsFalse(same.Events.Any(e => e.Diagnostic?.Code == DiagnosticCatalog.SignatureDropped));
        CollectionAssert.AreEqual(File.ReadAllBytes(untouched), File.ReadAllBytes(output));
    }

    [TestMethod]
    public void TheCommandLineSaysSoToo()
    {
        string dir = Repo.NewTempDir(), output = Path.Combine(dir, "out.o");
        var (exit, text, _) = Cli(TextReader.Null, "patch", "-o", output, Signed("livepatch.und.le.o", dir));
        Assert.AreEqual(CliApp.ExitAccepted, exit, text);
        StringAssert.Contains(text, "warning PLP0018: ");
        Assert.IsFalse(ModuleSignature.IsAppended(File.ReadAllBytes(output)));
    }

    [TestMethod]
    public void ASignatureIsMeasuredFromItsTrailer()
    {
        byte[] body = [1, 2, 3, 4, 5, 6, 7, 8];
        byte[] Trailer(byte signer, byte keyId, byte sigLen) =>
            [.. body, 0, 0, 2, signer, keyId, 0, 0, 0, 0, 0, 0, sigLen, .. "~Module signature appended~\n"u8.ToArray()];
        Assert.AreEqual(28 + 12 + 8, ModuleSignature.AppendedLength(Trailer(0, 0, 8)));
        Assert.AreEqual(28 + 12 + 6, ModuleSignature.AppendedLength(Trailer(2, 1, 3)));
        Assert.AreEqual(0, ModuleSignature.AppendedLength(Trailer(0, 0, 9)), "longer than the file: not a signature");
        Assert.AreEqual(0, ModuleSignature.AppendedLength(body));
    }

    [TestMethod]
    public void VerifyStepPromotesSiblingCallsUnlessAllowedAndWarnOnlyKeepsTheModule()
    {
        string dir = Repo.NewTempDir();
        string input = Repo.Fixture("asm_calls.kpatch.le.o"), output = Path.Combine(dir, "final.o");
        StepResult Verify(bool warnOnly, bool allow) =>
            VerifyStep.Run([new(input, output)],
                new StepOptions(StepKind.Verify, LoaderOptions.Default, AllowSiblingCalls: allow, WarnOnly: warnOnly));

        var strict = Verify(warnOnly: false, allow: false);
        Assert.AreEqual(Severity.Error, strict.Events.First(e =>
            e.Diagnostic?.Code == DiagnosticCatalog.SiblingCallToExternal).Diagnostic!.Severity);
        Assert.IsFalse(File.Exists(output));

        var allowed = Verify(warnOnly: false, allow: true);
        Assert.AreEqual(Severity.Warning, allowed.Events.First(e =>
            e.Diagnostic?.Code == DiagnosticCatalog.SiblingCallToExternal).Diagnostic!.Severity);

        var warn = Verify(warnOnly: true, allow: false);
        Assert.IsTrue(warn.Succeeded);
        Assert.IsTrue(warn.Events.All(e => e.Diagnostic?.Severity != Severity.Error));
        CollectionAssert.AreEqual(File.ReadAllBytes(input), File.ReadAllBytes(output),
            "warn mode still writes the module, unchanged");
    }

    private static (int Exit, string Out, string Err) Cli(TextReader stdin, params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int exit = CliApp.Run(args, stdin, stdout, stderr);
        return (exit, stdout.ToString(), stderr.ToString());
    }

    [TestMethod]
    [DataRow(new[] { "step" }, "step needs patch, verify or convert")]
    [DataRow(new[] { "step", "patch", "in.o" }, "step needs INPUT OUTPUT pairs")]
    [DataRow(new[] { "step", "patch", "--strategy", "fast", "in.o", "out.o" }, "unknown strategy 'fast'")]
    [DataRow(new[] { "step", "verify", "--strategy", "auto", "in.o", "out.o" }, "unknown option '--strategy'")]
    [DataRow(new[] { "step", "convert", "--klp", "f", "vmlinux", "", "-1", "in.o", "out.o" }, "--klp position '-1'")]
    [DataRow(new[] { "step", "convert", "--klp", "f", "vmlinux" }, "--klp needs SYMBOL OBJECT NAME POSITION")]
    public void StepUsageErrorsAreCoded(string[] args, string message)
    {
        var (exit, output, err) = Cli(TextReader.Null, args);
        Assert.AreEqual(CliApp.ExitUsage, exit);
        Assert.AreEqual("", output);
        StringAssert.Contains(err, $"error PLP0001: {message}");
    }

    [TestMethod]
    public void StepCommandReportsWhatTheInProcessStepDoes()
    {
        string dir = Repo.NewTempDir();
        string input = Repo.Fixture("livepatch.und.le.o");
        var (exit, output, err) = Cli(TextReader.Null, "step", "patch", "--strategy", "island", "--json-report",
            Path.Combine(dir, "cli.json"),
            input, Path.Combine(dir, "cli.o"));
        var inProcess = PatchStep.Run([new(input, Path.Combine(dir, "lib.o"))],
            new StepOptions(StepKind.Patch, LoaderOptions.Default, FixStrategy.Island,
                JsonReport: Path.Combine(dir, "lib.json")));

        Assert.AreEqual(CliApp.ExitAccepted, exit, err);
        Assert.IsTrue(StepProtocol.TryRead(output, out var read, out string? error), error);
        CollectionAssert.AreEqual(inProcess.Events.Select(e =>
            e with { Diagnostic = e.Diagnostic is { } d ? d with { ObjectPath = "" } : null }).ToList(),
            read!.Events.Select(e =>
                e with { Diagnostic = e.Diagnostic is { } d ? d with { ObjectPath = "" } : null }).ToList());
        Assert.AreEqual(inProcess.SitesFixed, read.SitesFixed);
        Assert.AreEqual(1, read.SitesFixed);
        CollectionAssert.AreEqual(File.ReadAllBytes(Path.Combine(dir, "lib.o")),
            File.ReadAllBytes(Path.Combine(dir, "cli.o")));
        Assert.AreEqual(File.ReadAllText(Path.Combine(dir, "lib.json")).Replace("lib.o", "x"),
            File.ReadAllText(Path.Combine(dir, "cli.json")).Replace("cli.o", "x"));
    }

    [TestMethod]
    public void ServeAnswersEachRequestAndSurvivesABadOne()
    {
        string dir = Repo.NewTempDir();
        File.Copy(Repo.Fixture("calls.kpatch.le.o"), Path.Combine(dir, "in.o"));
        var patch = new StepOptions(StepKind.Patch, LoaderOptions.Default, Sites: SiteSelection.AllLocal);
        var requests = new StringReader(
            StepProtocol.WriteRequest(new(dir, patch, [new("in.o", "patched.o")])) +
            "this is not a request\n" +
            StepProtocol.WriteRequest(new(dir, patch, [new("in.o", "x.o")])).Replace("\"strategy\":\"auto\"",
                "\"strategy\":\"sideways\"") +
            StepProtocol.WriteRequest(new(dir, new StepOptions(StepKind.Verify, LoaderOptions.Default),
                [new("patched.o", "-final.o")])));
        string cwd = Environment.CurrentDirectory;
        string output;
        try
        {
            (int exit, output, _) = Cli(requests, "serve");
            Assert.AreEqual(CliApp.ExitAccepted, exit);
        }
        finally
        {
            Environment.CurrentDirectory = cwd;
        }

        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.AreEqual(StepProtocol.ReadyLine, lines[0], "serve says it runs before anything else");
        var responses = new List<string>();
        var current = new System.Text.StringBuilder();
        foreach (string line in lines.Skip(1))
        {
            current.Append(line).Append('\n');
            if (StepProtocol.IsClosingLine(line)) { responses.Add(current.ToString()); current.Clear(); }
        }
        Assert.AreEqual(4, responses.Count, output);
        Assert.AreEqual("", current.ToString(), "nothing after the last closing line");
        Assert.IsTrue(StepProtocol.TryRead(responses[0], out var patched, out _));
        Assert.AreEqual(5, patched!.SitesFixed);
        Assert.IsFalse(StepProtocol.TryRead(responses[1], out _, out string? error));
        StringAssert.Contains(error, "not a step request");
        Assert.IsFalse(StepProtocol.TryRead(responses[2], out _, out error));
        StringAssert.Contains(error, "not a step request: unknown strategy 'sideways'");
        Assert.IsTrue(StepProtocol.TryRead(responses[3], out var verified, out _));
        Assert.IsTrue(verified!.Succeeded);
        Assert.IsTrue(File.Exists(Path.Combine(dir, "-final.o")),
            "relative paths are the request's directory's, and a name is a name");
    }
}
