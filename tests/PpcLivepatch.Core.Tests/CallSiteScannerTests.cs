using PpcLivepatch.Analysis;
using PpcLivepatch.Dwarf;
using PpcLivepatch.Elf;
using PpcLivepatch.Ppc64;

namespace PpcLivepatch.Tests;

[TestClass]
public sealed class CallSiteScannerTests
{
    public static IEnumerable<object[]> Fixtures => Repo.FixtureRows;

    private static IReadOnlyList<CallSite> Scan(string fixture)
    {
        Assert.IsTrue(ElfImage.TryLoad(Repo.Fixture(fixture), out var image, out var error), error?.Message);
        return CallSiteScanner.Scan(image!, new FunctionMap(image!), LineTable.Read(image!));
    }

    [TestMethod]
    [DynamicData(nameof(Fixtures))]
    public void ClassificationMatchesObjdumpAndReadelf(string fixture)
    {
        var view = BinutilsView.Of(fixture);
        var expected = view.Relocs
            .Where(r => r.Type is "R_PPC64_REL24" or "R_PPC64_REL24_NOTOC" && view.IsAlloc(r.TargetSection))
            .OrderBy(r => r.TargetSection, StringComparer.Ordinal).ThenBy(r => r.Offset).ToList();
        var sites = Scan(fixture).OrderBy(s => s.Section.Name, StringComparer.Ordinal).ThenBy(s => s.Offset).ToList();

        Assert.AreEqual(expected.Count, sites.Count, $"{fixture}: number of call relocations");
        Assert.IsTrue(sites.Count > 0, $"{fixture} should have call sites");
        for (int i = 0; i < sites.Count; i++)
        {
            var (reloc, site) = (expected[i], sites[i]);
            string at = $"{fixture} {reloc.TargetSection}+0x{reloc.Offset:x}";
            Assert.AreEqual(reloc.TargetSection, site.Section.Name, at);
            Assert.AreEqual(reloc.Offset, site.Offset, at);
            Assert.AreEqual(reloc.Type, RelocationCatalog.NameOf(site.RelocationType), at);

            var insn = view.Code[(reloc.TargetSection, reloc.Offset)];
            Assert.AreEqual(insn.Mnemonic is "bl" or "b" or "bla" or "ba" ? insn.Mnemonic : "other",
                Instruction.Mnemonic(site.Instruction), at);

            string next = view.Code.TryGetValue((reloc.TargetSection, reloc.Offset + 4), out var n)
                ? n.Mnemonic == "nop" ? "nop" : n.Mnemonic == "ld"
                    && n.Operands is "r2,24(r1)" or "r2,40(r1)" ? "toc-restore" : "other"
                : "end-of-section";
            Assert.AreEqual(next, site.Next switch
            {
                NextWord.Nop => "nop",
                NextWord.TocRestore => "toc-restore",
                NextWord.EndOfSection => "end-of-section",
                _ => "other",
            }, at);

            var sym = view.Symbols[reloc.SymbolIndex];
            string kind = sym.Ndx switch
            {
                "UND" => "undefined",
                "OS [0xff20]" => "livepatch",
                _ => sym.Bind.ToLowerInvariant(),
            };
            Assert.AreEqual(kind, site.CalleeKind.ToString().ToLowerInvariant(), at);
        }
    }

    [TestMethod]
    public void NamesContainingFunctionAndSectionSymbolCallees()
    {
        var sites = Scan("calls.kpatch.le.o");
        var sq = sites.Single(s => s.Function?.Name == "caller" && s.Callee == "sq");
        Assert.AreEqual(".text.caller", sq.Section.Name);
        Assert.AreEqual(CalleeKind.Local, sq.CalleeKind);
        Assert.AreEqual(BranchKind.Bl, sq.Instruction);
        // The TOC-less static callee is referenced through its section symbol; the scanner names the function.
        Assert.AreEqual(".text.sq", sq.CalleeSymbol.Name);
        Assert.AreEqual(8UL, sites.Single(s => s.Function?.Name == "caller" && s.Callee == "_mcount").Function!.Start);
    }

    [TestMethod]
    public void ElfV1FunctionsAreFoundThroughOpdDescriptors()
    {
        var sites = Scan("calls.kpatch.be.o");
        var call = sites.Single(s => s.Function?.Name == "caller" && s.Callee == "ext_func");
        Assert.AreEqual(CalleeKind.Undefined, call.CalleeKind);
        Assert.AreEqual(NextWord.Nop, call.Next);
        // Local calls in ELFv1 go to .opd+addend: the callee is named through the descriptor.
        CollectionAssert.IsSubsetOf(new[] { "helper_a", "sq" }, sites.Where(s =>
            s.Function?.Name == "caller").Select(s => s.Callee).ToList());
    }

    [TestMethod]
    public void ExemptsFtraceAndRegisterSaveRoutines()
    {
        var sites = Scan("savegpr.Os.le.o");
        Assert.IsTrue(sites.Any(s =>
            s.Callee.StartsWith("_savegpr0_") && s.Exemption is not null && s.Next != NextWord.Nop));
        Assert.IsTrue(sites.Any(s =>
            s.Callee.StartsWith("_restgpr0_") && s.Instruction == BranchKind.B && s.Exemption is not null));
        Assert.IsTrue(sites.Where(s => s.Callee == "_mcount").All(s => s.Exemption is not null));
        foreach (string name in new[] { "_mcount", "mcount", "ftrace_caller", "ftrace_regs_caller", "._mcount",
            "_savefpr_14", "_restfpr_20", "_savegpr1_30" })
            Assert.IsNotNull(CallSiteScanner.ExemptionFor(name), name);
        Assert.IsNull(CallSiteScanner.ExemptionFor("printk"));
        Assert.IsNull(CallSiteScanner.ExemptionFor("mcount_helper"));
    }
}
