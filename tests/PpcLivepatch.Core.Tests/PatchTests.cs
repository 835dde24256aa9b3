using System.Buffers.Binary;
using System.Security.Cryptography;
using PpcLivepatch.Analysis;
using PpcLivepatch.Cli;
using PpcLivepatch.Diagnostics;
using PpcLivepatch.Elf;
using PpcLivepatch.Patching;
using PpcLivepatch.Ppc64;

namespace PpcLivepatch.Tests;

[TestClass]
public sealed class PatchTests
{
    public static IEnumerable<object[]> Fixtures => Repo.FixtureRows;

    private static PatchResult Patch(string fixture, SiteSelection sites = SiteSelection.Needed,
        LoaderOptions? loader = null, FixStrategy strategy = FixStrategy.Island)
    {
        Assert.IsTrue(ElfImage.TryLoad(Repo.Fixture(fixture), out var image, out var error), error?.Message);
        return ObjectPatcher.Patch(image!, new PatchOptions(strategy, sites, loader));
    }

    private static ElfImage Parse(byte[] bytes)
    {
        Assert.IsTrue(ElfImage.TryParse("patched.o", bytes, out var image, out var error), error?.Message);
        return image!;
    }

    private static string WriteTemp(byte[] bytes, string name = "patched.o")
    {
        string path = Path.Combine(Repo.NewTempDir(), name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    [TestMethod]
    [DataRow("livepatch.klp.le.o", ".klp.sym.vmlinux.cmdline_helper,0", 0x30UL)]
    [DataRow("livepatch.und.le.o", "kernel_helper", 0x50UL)]
    [DataRow("livepatch.und.be.o", "kernel_helper", 0x40UL)]
    [DataRow("oracle_caller.und.le.o", "helper", 0x6cUL)]
    [DataRow("oracle_caller.und.be.o", "helper", 0x5cUL)]
    public void RefusedCallGoesThroughAnIslandInsideTheFunction(string fixture, string callee, ulong site)
    {
        Assert.IsTrue(ElfImage.TryLoad(Repo.Fixture(fixture), out var original, out _));
        var result = Patch(fixture);

        var fix = result.Fixes.Single();
        Assert.AreEqual((site, callee, FixStrategy.Island), (fix.Offset, fix.Callee, fix.Strategy));
        var image = Parse(result.Output!);
        var text = image.Sections.Single(s => s.Name == fix.Section);
        var before = original!.Sections.Single(s => s.Name == fix.Section);
        Assert.AreEqual(before.Size + 12, text.Size);
        Assert.AreEqual(before.Size, fix.IslandOffset);

        // site: b island; island: bl callee (relocated); nop; b site+4
        uint siteWord = image.ReadWord(text, site);
        Assert.AreEqual(BranchKind.B, Instruction.Classify(siteWord));
        Assert.AreEqual((long)fix.IslandOffset - (long)site, Instruction.BranchDisplacement(siteWord));
        Assert.AreEqual(BranchKind.Bl, Instruction.Classify(image.ReadWord(text, fix.IslandOffset)));
        Assert.AreEqual(Instruction.Nop, image.ReadWord(text, fix.IslandOffset + 4));
        uint back = image.ReadWord(text, fix.IslandOffset + 8);
        Assert.AreEqual((long)site + 4 - (long)(fix.IslandOffset + 8), Instruction.BranchDisplacement(back));
        var rela = image.RelocationSections.Single(r =>
            r.Target.Index == text.Index && r.Entries.Any(e =>
                e.Type == R.PPC64_REL24 && image.Symbols[(int)e.SymbolIndex].Name == callee));
        var moved = rela.Entries.Single(e =>
            e.Type == R.PPC64_REL24 && image.Symbols[(int)e.SymbolIndex].Name == callee);
        Assert.AreEqual(fix.IslandOffset, moved.Offset);
        Assert.AreEqual(rela.Entries.Count, original.RelocationSections.Single(r =>
            r.Section.Name == rela.Section.Name).Entries.Count);

        // The function's range covers the island, and the island has a readable name that kallsyms skips.
        var function = new FunctionMap(image).Containing(text.Index, fix.IslandOffset + 8);
        Assert.IsNotNull(function);
        Assert.AreEqual(fix.Function, function.Name);
        var island = image.Symbols.Single(s => s.Name.StartsWith($".L{fix.Function}.island."));
        Assert.AreEqual(fix.IslandOffset, island.Value);
        Assert.AreEqual(12UL, island.Size);

        Assert.IsFalse(result.Report.Diagnostics.Any(d => d.Code == DiagnosticCatalog.MissingNopAfterCall));
        AssertBinutilsAccept(result.Output!, fixture);
    }

    [TestMethod]
    [DynamicData(nameof(Fixtures))]
    public void PatchIsDeterministicIdempotentAndVerifiedAgain(string fixture)
    {
        foreach (var sites in new[] { SiteSelection.Needed, SiteSelection.AllLocal })
        {
            var first = Patch(fixture, sites);
            var second = Patch(fixture, sites);
            CollectionAssert.AreEqual(first.Output, second.Output, $"{fixture} {sites}: two runs differ");

            var again = ObjectPatcher.Patch(Parse(first.Output!), new PatchOptions(FixStrategy.Island, sites));
            // auto too: deterministic and idempotent on every fixture.
            var auto = Patch(fixture, sites, strategy: FixStrategy.Auto);
            CollectionAssert.AreEqual(auto.Output, Patch(fixture, sites, strategy: FixStrategy.Auto).Output,
                $"{fixture} {sites}: auto differs between runs");
            if (auto.Output is not null)
            {
                var autoAgain = ObjectPatcher.Patch(Parse(auto.Output), new PatchOptions(FixStrategy.Auto, sites));
                Assert.AreEqual(0, autoAgain.Fixes.Count, $"{fixture} {sites}: auto(auto(x)) fixed more");
                Assert.AreEqual(auto.Report.Accepted,
                    ObjectVerifier.Verify(WriteTemp(auto.Output), LoaderOptions.Default).Accepted);
                if (auto.Changed) AssertBinutilsAccept(auto.Output, fixture);
            }
            Assert.AreEqual(0, again.Fixes.Count, $"{fixture} {sites}: patching the output fixed more");
            CollectionAssert.AreEqual(first.Output, again.Output, $"{fixture} {sites}: patch(patch(x)) != patch(x)");

            // verify, reading the written file from disk, agrees with what patch reported.
            var verified = ObjectVerifier.Verify(WriteTemp(first.Output!), LoaderOptions.Default);
            Assert.AreEqual(first.Report.Accepted, verified.Accepted, $"{fixture} {sites}");
            if (first.Changed) AssertBinutilsAccept(first.Output!, fixture);
        }
    }

    [TestMethod]
    public void OutputOfCompilerObjectsWithNothingToFixIsTheInput()
    {
        byte[] input = File.ReadAllBytes(Repo.Fixture("calls.kpatch.le.o"));
        var result = Patch("calls.kpatch.le.o");
        Assert.IsFalse(result.Changed);
        CollectionAssert.AreEqual(input, result.Output);
    }

    [TestMethod]
    [DataRow("calls.kpatch.le.o")]
    [DataRow("calls.kpatch.be.o")]
    [DataRow("switch.kpatch.le.o")]
    [DataRow("switch.kpatch.be.o")]
    public void AllLocalGivesEveryLocalCallAFreeNop(string fixture)
    {
        var result = Patch(fixture, SiteSelection.AllLocal);
        Assert.IsTrue(result.Fixes.Count >= 3, $"{fixture}: {result.Fixes.Count} fixes");
        Assert.IsTrue(result.Report.Accepted);

        // objdump's view: every bl that carries a call relocation (other than _mcount) is followed by a nop.
        string path = WriteTemp(result.Output!);
        var view = BinutilsView.Of(path);
        foreach (var reloc in view.Relocs.Where(r => r.Type == "R_PPC64_REL24" && view.IsAlloc(r.TargetSection)))
        {
            var insn = view.Code[(reloc.TargetSection, reloc.Offset)];
            if (insn.Mnemonic != "bl" || view.Symbols[reloc.SymbolIndex].Name == "_mcount") continue;
            Assert.AreEqual("nop", view.Code[(reloc.TargetSection, reloc.Offset + 4)].Mnemonic,
                $"{reloc.TargetSection}+0x{reloc.Offset:x}");
        }
    }

    [TestMethod]
    public void StaticKeyNopAfterACallIsNotTakenOver()
    {
        var result = Patch("static_key.kpatch.le.o", SiteSelection.AllLocal);
        var fix = result.Fixes.Single();
        Assert.AreEqual(("caller_m2", "helper_m", 0xcUL), (fix.Function, fix.Callee, fix.Offset));
        var image = Parse(result.Output!);
        var text = image.Sections.Single(s => s.Name == ".text.caller_m2");
        // The __jump_table nop at bl+4 is still there and still the return point.
        Assert.AreEqual(Instruction.Nop, image.ReadWord(text, 0x10));
        Assert.AreEqual(0x10L - (long)(fix.IslandOffset + 8),
            Instruction.BranchDisplacement(image.ReadWord(text, fix.IslandOffset + 8)));
        // Without that reference the nop would have been free: the reloc-free calls in calls.kpatch have none.
        Assert.AreEqual(0, Patch("savegpr.Os.le.o", SiteSelection.AllLocal).Fixes.Count);
    }

    [TestMethod]
    public void SharedTextSectionLeavesNoRoomAndSaysSo()
    {
        var result = Patch("calls.kmod.le.o", SiteSelection.AllLocal);
        var warnings = result.Report.Diagnostics.Where(d => d.Code == DiagnosticCatalog.NoRoomForIsland).ToList();
        Assert.IsTrue(warnings.Count >= 3);
        Assert.IsTrue(warnings.All(d =>
            d.Severity == Severity.Warning), "all-local sites the kernel accepts are warnings");
        StringAssert.Contains(warnings[0].Fix, "-ffunction-sections");
        Assert.IsTrue(result.Report.Accepted);
    }

    [TestMethod]
    public void HandWrittenCallWithNothingAfterItIsUnfixable()
    {
        var result = Patch("asm_calls.kpatch.le.o");
        Assert.AreEqual(2, result.Fixes.Count);
        var d = result.Report.Diagnostics.Single(d => d.Severity == Severity.Error);
        Assert.AreEqual(DiagnosticCatalog.CallAtEndOfSection, d.Code);
        StringAssert.Contains(d.Message, "cannot be fixed with an island");
        Assert.AreEqual(1, result.Report.Diagnostics.Count(x => x.Code == DiagnosticCatalog.SiblingCallToExternal));
        Assert.IsFalse(result.Report.Accepted);
    }

    [TestMethod]
    public void AbsoluteBranchAndDataSectionSitesAreUnfixable()
    {
        // Hand-made from a real object: turn the first refused bl into a conditional bcl (still a relative
        // branch-and-link, so the loader demands the nop), then clear SHF_EXECINSTR of its section.
        byte[] bytes = File.ReadAllBytes(Repo.Fixture("asm_calls.kpatch.le.o"));
        byte[] original = (byte[])bytes.Clone();
        var image = Parse(bytes);
        var text = image.Sections.Single(s => s.Name == ".text.asm_nonop");
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan((int)text.Offset + 0xc), 0x429f_0005); // bcl 20,31,.+4
        var conditional = ObjectPatcher.Patch(Parse(bytes), new PatchOptions(FixStrategy.Island));
        var d = conditional.Report.Diagnostics.Single(d => d.Code == DiagnosticCatalog.CallNotRelocatable);
        Assert.AreEqual(0xcUL, d.Offset);
        StringAssert.Contains(d.Message, "bcl");
        Assert.AreEqual(1, conditional.Fixes.Count, "the other refused call is still fixed");

        bytes = original;
        ulong flagsAt = BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(40)) + (ulong)(64 * text.Index) + 8;
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan((int)flagsAt), ElfConstants.ShfAlloc);
        var data = ObjectPatcher.Patch(Parse(bytes), new PatchOptions(FixStrategy.Island));
        Assert.AreEqual(0, data.Fixes.Count(f => f.Section == ".text.asm_nonop"));
        StringAssert.Contains(data.Report.Diagnostics.First(d =>
            d.Code == DiagnosticCatalog.CallOutsideCode).Message, "is not an executable section");
    }

    [TestMethod]
    public void SiblingCallStaysReportedWithItsRemedy()
    {
        var result = Patch("livepatch.klp.le.o");
        var d = result.Report.Diagnostics.Single(d => d.Code == DiagnosticCatalog.SiblingCallFromLocallyCalledFunction);
        Assert.AreEqual(37, d.Source!.Line);
        StringAssert.Contains(d.Fix, "no-optimize-sibling-calls");
        Assert.IsFalse(result.Report.Accepted);
    }

    [TestMethod]
    public void TheSummaryCountsEverySiteTheLoaderStillRefuses()
    {
        // Power10 code on a TOC kernel: 7 PLP2004 diagnostics (one per section and type) cover 11 refused calls.
        Assert.IsTrue(ElfImage.TryLoad(Repo.Fixture("calls.p10.le.o"), out var image, out _));
        var result = ObjectPatcher.Patch(image!,
            new PatchOptions(FixStrategy.Auto, SiteSelection.Needed, LoaderOptions.Default));
        Assert.AreEqual(11, result.Report.Counts.Rejected);
        StringAssert.EndsWith(result.Report.Diagnostics.Single(d => d.Code == DiagnosticCatalog.PatchSummary).Message,
            "0 REL24 call sites fixed (none), 0 bytes added, 11 unfixable");

        // The strategy used is named, and the site count is singular or plural as it should be.
        string input = Path.Combine(Repo.NewTempDir(), "calls.o");
        var stdout = new StringWriter();
        CliApp.Run(["patch", "--strategy", "island", "-o", input + ".out", Repo.Fixture("livepatch.und.le.o")], stdout,
            new StringWriter());
        StringAssert.Contains(stdout.ToString(), "1 REL24 call site fixed (island)");
        StringAssert.Contains(stdout.ToString(), "(13 call sites: ");
    }

    [TestMethod]
    public void CliPatchRewritesInPlaceAtomicallyOrWritesOut()
    {
        string dir = Repo.NewTempDir();
        string input = Path.Combine(dir, "lp.o");
        File.Copy(Repo.Fixture("livepatch.und.be.o"), input);
        byte[] original = File.ReadAllBytes(input);

        // -o: the input stays byte-identical.
        string output = Path.Combine(dir, "fixed.o");
        var stdout = new StringWriter();
        Assert.AreEqual(CliApp.ExitAccepted,
            CliApp.Run(["patch", "--strategy", "island", "-o", output, input], stdout, new StringWriter()),
                stdout.ToString());
        CollectionAssert.AreEqual(original, File.ReadAllBytes(input));
        StringAssert.Contains(stdout.ToString(),
            "info PLP4002: 1 REL24 call site fixed (island), 12 bytes added, 0 unfixable");
        StringAssert.Contains(stdout.ToString(), "livepatch_cmdline_show: 1 site fixed (+0x40 kernel_helper)");

        // In place: same bytes as -o, no temporary files left.
        Assert.AreEqual(CliApp.ExitAccepted,
            CliApp.Run(["patch", "--strategy", "island", input], new StringWriter(), new StringWriter()));
        CollectionAssert.AreEqual(File.ReadAllBytes(output), File.ReadAllBytes(input));
        CollectionAssert.AreEquivalent(new[] { input, output }, Directory.GetFiles(dir));
        Assert.AreEqual(CliApp.ExitAccepted, CliApp.Run(["verify", input], new StringWriter(), new StringWriter()));
    }

    [TestMethod]
    public void CliPatchJsonListsTheFixes()
    {
        string output = Path.Combine(Repo.NewTempDir(), "fixed.o");
        var stdout = new StringWriter();
        int exit = CliApp.Run(["patch", "--strategy", "island", "--format", "json", "-o", output,
            Repo.Fixture("livepatch.klp.le.o")], stdout, new StringWriter());
        Assert.AreEqual(CliApp.ExitRejected, exit, "the sibling call stays an error");
        using var doc = System.Text.Json.JsonDocument.Parse(stdout.ToString());
        var file = doc.RootElement.GetProperty("files")[0];
        Assert.AreEqual(output, file.GetProperty("path").GetString());
        var fix = file.GetProperty("fixes")[0];
        Assert.AreEqual(".text.livepatch_cmdline_show", fix.GetProperty("section").GetString());
        Assert.AreEqual(0x30, fix.GetProperty("offset").GetInt32());
        Assert.AreEqual("livepatch_cmdline_show", fix.GetProperty("function").GetString());
        Assert.AreEqual(".klp.sym.vmlinux.cmdline_helper,0", fix.GetProperty("callee").GetString());
        Assert.AreEqual("island", fix.GetProperty("strategy").GetString());
        Assert.AreEqual(0x78, fix.GetProperty("islandOffset").GetInt32());
    }

    [TestMethod]
    public void CliPatchNeverTouchesBadInputOrHalfWritesOutput()
    {
        string dir = Repo.NewTempDir();
        string bad = Path.Combine(dir, "bad.o");
        File.WriteAllBytes(bad, File.ReadAllBytes(Repo.Fixture("livepatch.und.le.o"))[..100]);
        byte[] hash = SHA256.HashData(File.ReadAllBytes(bad));
        var stdout = new StringWriter();
        Assert.AreEqual(CliApp.ExitUsage, CliApp.Run(["patch", bad], stdout, new StringWriter()));
        StringAssert.Contains(stdout.ToString(), "error PLP1006");
        CollectionAssert.AreEqual(hash, SHA256.HashData(File.ReadAllBytes(bad)));

        string unwritable = Path.Combine(dir, "no-such-dir", "out.o");
        stdout = new StringWriter();
        Assert.AreEqual(CliApp.ExitUsage,
            CliApp.Run(["patch", "-o", unwritable, Repo.Fixture("livepatch.und.le.o")], stdout, new StringWriter()));
        StringAssert.Contains(stdout.ToString(), $"{unwritable} : error PLP1010: cannot write");
        CollectionAssert.AreEquivalent(new[] { bad }, Directory.GetFiles(dir));
    }

    [TestMethod]
    [DataRow(new[] { "patch", "a.o", "b.o" }, "patch takes one FILE")]
    [DataRow(new[] { "patch", "--strategy", "trampoline", "a.o" },
        "unknown strategy 'trampoline': use island, insert-nop or auto")]
    [DataRow(new[] { "patch", "--sites", "some", "a.o" }, "unknown site selection 'some'")]
    [DataRow(new[] { "patch", "-o" }, "-o needs a file name")]
    [DataRow(new[] { "verify", "-o", "x", "a.o" }, "unknown option '-o'")]
    public void PatchUsageErrors(string[] args, string message)
    {
        var stderr = new StringWriter();
        Assert.AreEqual(CliApp.ExitUsage, CliApp.Run(args, new StringWriter(), stderr));
        StringAssert.Contains(stderr.ToString(), $"error PLP0001: {message}");
    }

    /// <summary>readelf reads it silently, objdump disassembles it, ld -r links it.</summary>
    internal static void AssertBinutilsAccept(byte[] image, string fixture)
    {
        string dir = Repo.NewTempDir();
        string obj = Path.Combine(dir, "p.o");
        File.WriteAllBytes(obj, image);
        var readelf = Tool.Run(Repo.Binutils(fixture, "readelf"), "-aW", obj);
        Assert.AreEqual(0, readelf.ExitCode, readelf.Stderr);
        Assert.AreEqual("", readelf.Stderr.Trim(), "readelf warned about the patched object");
        Tool.Check(Repo.Binutils(fixture, "objdump"), "-dr", obj);
        Tool.Check(Repo.Binutils(fixture, "ld"), "-r", "-o", Path.Combine(dir, "linked.o"), obj);
    }
}
