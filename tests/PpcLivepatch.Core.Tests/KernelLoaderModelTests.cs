using PpcLivepatch.Analysis;
using PpcLivepatch.Diagnostics;
using PpcLivepatch.Elf;
using PpcLivepatch.Reports;

namespace PpcLivepatch.Tests;

[TestClass]
public sealed class KernelLoaderModelTests
{
    private static ObjectReport Verify(string fixture, LoaderOptions? options = null) =>
        ObjectVerifier.Verify(Repo.Fixture(fixture), options ?? LoaderOptions.Default);

    private static string[] Codes(ObjectReport r) => r.Diagnostics.Select(d => d.Code).ToArray();

    [TestMethod]
    [DataRow("calls.kmod.le.o")]
    [DataRow("calls.kpatch.le.o")]
    [DataRow("calls.kpatch.be.o")]
    [DataRow("switch.kpatch.le.o")]
    [DataRow("switch.kmod.be.o")]
    [DataRow("livepatch.kpatch.le.o")]
    [DataRow("livepatch.kpatch.be.o")]
    [DataRow("savegpr.Os.le.o")]
    [DataRow("savegpr.Os.be.o")]
    public void CompilerOutputLoads(string fixture)
    {
        // Straight from GCC every external call has its nop: the kernel loads these objects.
        var report = Verify(fixture);
        Assert.IsTrue(report.Accepted, string.Join("\n", report.Diagnostics.Select(ReportWriters.CanonicalLine)));
        Assert.IsFalse(report.Sites.Any(s => s.Verdict == Verdict.Reject));
    }

    [TestMethod]
    public void LocalCallTurnedLivepatchIsRefusedWithTheKernelsMessage()
    {
        var report = Verify("livepatch.klp.le.o");
        Assert.IsFalse(report.Accepted);
        var d = report.Diagnostics.Single(d => d.Code == DiagnosticCatalog.MissingNopAfterCall);
        Assert.AreEqual(".text.livepatch_cmdline_show", d.Section);
        Assert.AreEqual(0x30UL, d.Offset);
        Assert.AreEqual("livepatch_cmdline_show", d.Function);
        Assert.AreEqual(".klp.sym.vmlinux.cmdline_helper,0", d.Callee);
        StringAssert.Contains(d.Message,
            "module_64: livepatch: Expected nop after call, got 7fc4f378 at livepatch_cmdline_show+0x2c/0x70 " +
                "[livepatch]");
        Assert.AreEqual("livepatch.c", Path.GetFileName(d.Source!.File));
        Assert.AreEqual(29, d.Source.Line);
    }

    [TestMethod]
    public void UndefinedCalleeWithoutNopIsRefusedOnBothAbis()
    {
        foreach (string fixture in new[] { "livepatch.und.le.o", "livepatch.und.be.o" })
        {
            var report = Verify(fixture);
            var d = report.Diagnostics.Single();
            Assert.AreEqual(DiagnosticCatalog.MissingNopAfterCall, d.Code, fixture);
            Assert.AreEqual("kernel_helper", d.Callee, fixture);
            Assert.AreEqual("livepatch_cmdline_show", d.Function, fixture);
        }
    }

    [TestMethod]
    [DataRow("asm_calls.kpatch.le.o", "e8410018")]
    [DataRow("asm_calls.kpatch.be.o", "e8410028")]
    public void HandWrittenCallSitesGetTheirOwnVerdicts(string fixture, string ldToc)
    {
        var report = Verify(fixture);
        var byOffset = report.Sites.Where(s => s.Site.Function?.Name == "asm_nonop" && s.Site.Callee == "ext_func")
            .ToDictionary(s => s.Site.FunctionOffset);
        Assert.AreEqual(Verdict.Reject, byOffset[0xc].Verdict);
        Assert.AreEqual(DiagnosticCatalog.MissingNopAfterCall, byOffset[0xc].Code);
        Assert.AreEqual(Verdict.Reject, byOffset[0x14].Verdict);
        Assert.AreEqual(DiagnosticCatalog.TocRestoreNotAccepted, byOffset[0x14].Code);
        StringAssert.Contains(byOffset[0x14].KernelMessage, $"Expected nop after call, got {ldToc}");
        Assert.AreEqual(Verdict.Accept, byOffset[0x1c].Verdict);
        CollectionAssert.AreEquivalent(
            new[] { DiagnosticCatalog.MissingNopAfterCall, DiagnosticCatalog.TocRestoreNotAccepted,
                DiagnosticCatalog.CallAtEndOfSection, DiagnosticCatalog.SiblingCallToExternal },
            Codes(report));

        // A 6.3+ kernel accepts the already-written TOC restore, nothing else changes.
        var newer = Verify(fixture, new LoaderOptions(KernelAcceptsLdToc: true));
        CollectionAssert.AreEquivalent(
            new[] { DiagnosticCatalog.MissingNopAfterCall, DiagnosticCatalog.CallAtEndOfSection,
                DiagnosticCatalog.SiblingCallToExternal },
            Codes(newer));
    }

    [TestMethod]
    public void SiblingCallFromLocallyCalledFunctionIsAnError()
    {
        var report = Verify("livepatch.klp.le.o");
        var d = report.Diagnostics.Single(d => d.Code == DiagnosticCatalog.SiblingCallFromLocallyCalledFunction);
        Assert.AreEqual(Severity.Error, d.Severity);
        Assert.AreEqual("livepatch_sibling", d.Function);
        StringAssert.Contains(d.Fix, "no-optimize-sibling-calls");
        // The kernel itself accepts the b: its site verdict is accept.
        Assert.AreEqual(Verdict.Accept, report.Sites.Single(s =>
            s.Site.Offset == d.Offset && s.Site.Section.Name == d.Section).Verdict);
    }

    [TestMethod]
    public void Power10PcrelNeedsAPcrelKernel()
    {
        var report = Verify("calls.p10.le.o");
        Assert.IsFalse(report.Accepted);
        Assert.IsTrue(report.Diagnostics.All(d => d.Code == DiagnosticCatalog.UnsupportedRelocation));
        StringAssert.Contains(report.Diagnostics.First().Message, "Unknown ADD relocation: 116");

        var pcrel = Verify("calls.p10.le.o", new LoaderOptions(Pcrel: true));
        Assert.IsTrue(pcrel.Accepted, string.Join("\n", pcrel.Diagnostics.Select(d => d.Message)));
    }

    [TestMethod]
    public void MalformedLivepatchSectionsAndSymbolsAreRefused()
    {
        var report = Verify("livepatch.klpbad.le.o");
        var rela = report.Diagnostics.Single(d => d.Code == DiagnosticCatalog.MalformedKlpRelaSection);
        StringAssert.Contains(rela.Message, "SHF_RELA_LIVEPATCH");
        var sym = report.Diagnostics.Single(d => d.Code == DiagnosticCatalog.MalformedKlpSymbol);
        Assert.AreEqual("kernel_helper", sym.Callee);
        Assert.IsFalse(Verify("livepatch.klp.le.o").Diagnostics.Any(d =>
            d.Code is DiagnosticCatalog.MalformedKlpRelaSection or DiagnosticCatalog.MalformedKlpSymbol));
    }

    [TestMethod]
    public void TocBasedCodeIsRefusedByAPcrelKernel()
    {
        // savegpr -Os has no TOC16 relocation (PLP2004 would catch those); only its global entry names .TOC.
        var report = Verify("savegpr.Os.le.o", new LoaderOptions(Pcrel: true));
        var d = report.Diagnostics.Single(d => d.Code == DiagnosticCatalog.TocBasedOnPcrelKernel);
        Assert.IsFalse(report.Accepted);
        StringAssert.Contains(d.Message, "Unknown symbol .TOC. (err -2)");
        var relocation = Tool.Check(Repo.Binutils("savegpr.Os.le.o", "readelf"), "-rW", Repo.Fixture("savegpr.Os.le.o"))
            .Split('\n').First(l => l.Contains(".TOC."));
        Assert.AreEqual($"{d.Offset:x16}", relocation.Split(' ', StringSplitOptions.RemoveEmptyEntries)[0],
            "located at the first relocation readelf shows naming .TOC.");

        Assert.IsFalse(Verify("savegpr.Os.le.o").Diagnostics.Any(d =>
            d.Code == DiagnosticCatalog.TocBasedOnPcrelKernel));
        Assert.IsFalse(Verify("calls.p10.le.o", new LoaderOptions(Pcrel: true)).Diagnostics
            .Any(d => d.Code == DiagnosticCatalog.TocBasedOnPcrelKernel), "pcrel code names no .TOC.");
    }

    [TestMethod]
    public void PcrelKernelNeverDemandsTheNop()
    {
        var report = Verify("livepatch.klp.le.o", new LoaderOptions(Pcrel: true));
        Assert.IsFalse(report.Diagnostics.Any(d =>
            d.Code is DiagnosticCatalog.MissingNopAfterCall or DiagnosticCatalog.SiblingCallFromLocallyCalledFunction));
    }

    [TestMethod]
    public void ModuleNameComesFromTheFileOrTheOption()
    {
        Assert.AreEqual("livepatch_foo", LoaderOptions.Default.ModuleNameFor("/x/livepatch-foo.ko"));
        var named = Verify("livepatch.klp.le.o", new LoaderOptions(ModuleName: "kpatch_cmdline"));
        StringAssert.Contains(named.Diagnostics.First(d =>
            d.Code == DiagnosticCatalog.MissingNopAfterCall).Message, "module_64: kpatch_cmdline: Expected nop");
    }
}

[TestClass]
public sealed class KlpNamesTests
{
    [TestMethod]
    public void ParsesWhatTheLivepatchCoreParses()
    {
        Assert.IsTrue(KlpNames.TryParseSymbol(".klp.sym.vmlinux.saved_command_line,0", out var obj, out var name,
            out var pos));
        Assert.AreEqual(("vmlinux", "saved_command_line", 0UL), (obj, name, pos));
        Assert.IsTrue(KlpNames.TryParseSymbol(".klp.sym.nfsd.e_show,2", out _, out _, out pos));
        Assert.AreEqual(2UL, pos);
        Assert.IsFalse(KlpNames.TryParseSymbol("kernel_helper", out _, out _, out _));
        Assert.IsFalse(KlpNames.TryParseSymbol(".klp.sym.vmlinux.noposition", out _, out _, out _));
        Assert.IsFalse(KlpNames.TryParseSymbol($".klp.sym.{new string('m', 56)}.f,0", out _, out _, out _));
        Assert.AreEqual("cmdline_helper", KlpNames.SourceName(".klp.sym.vmlinux.cmdline_helper,0"));
        Assert.IsTrue(KlpNames.IsValidRelaSectionName(".klp.rela.vmlinux..text.cmdline_proc_show"));
        Assert.IsFalse(KlpNames.IsValidRelaSectionName(".klp.rela..text.f"));
    }
}

[TestClass]
public sealed class SummaryModeTests
{
    public static IEnumerable<object[]> Fixtures => Repo.FixtureRows;

    [TestMethod]
    [DynamicData(nameof(Fixtures))]
    public void SummaryCountsAndDiagnosticsEqualTheFullReport(string fixture)
    {
        // The text output describes only the sites diagnostics are about; it must not change a verdict or count.
        foreach (var options in new[] { LoaderOptions.Default, new LoaderOptions(Pcrel: true),
            new LoaderOptions(KernelAcceptsLdToc: true) })
        {
            var full = ObjectVerifier.Verify(Repo.Fixture(fixture), options, allSites: true);
            var summary = ObjectVerifier.Verify(Repo.Fixture(fixture), options, allSites: false);
            Assert.AreEqual(full.Counts, summary.Counts, fixture);
            CollectionAssert.AreEqual(full.Diagnostics.Select(d =>
                d.ToString()).ToList(), summary.Diagnostics.Select(d => d.ToString()).ToList(), fixture);
            Assert.IsTrue(summary.Sites.Count <= full.Sites.Count);
        }
    }
}
