using System.Buffers.Binary;
using PpcLivepatch.Analysis;
using PpcLivepatch.Diagnostics;
using PpcLivepatch.Elf;
using PpcLivepatch.Patching;
using PpcLivepatch.Ppc64;

namespace PpcLivepatch.Tests;

/// <summary>
/// Issue 11's regressions: jump tables with no compare of their own (GCC inline tables after a mask, clang's
/// .rodata tables of REL32 words relative to the table, clang's large-model tables based on <c>bl .+4</c>), and the
/// translation validator that stands behind every rewrite, shown to refuse each kind of wrong edit.
/// </summary>
[TestClass]
public sealed class JumpTableTests
{
    private static ElfImage Load(string fixture)
    {
        Assert.IsTrue(ElfImage.TryLoad(Repo.Fixture(fixture), out var image, out var error), error?.Message);
        return image!;
    }

    private static JumpTableAnalysis Tables(ElfImage image)
    {
        var functions = new FunctionMap(image);
        return new JumpTableAnalysis(image, functions, new CodeReferences(image, functions));
    }

    private static IEnumerable<JumpTable> In(ElfImage image, JumpTableAnalysis tables, string function) =>
        tables.Tables.Where(t => image.Sections[t.CodeSection].Name == ".text." + function).OrderBy(t => t.Dispatch);

    [TestMethod]
    [DataRow("switch_mask.gcc.le.o")]
    [DataRow("switch_mask.gcc.kpatch.le.o")]
    public void GccMaskedTablesTakeTheMasksLengthNotAnEarlierSwitchsBound(string fixture)
    {
        var image = Load(fixture);
        var tables = Tables(image);
        Assert.AreEqual(0, tables.Unproven.Count, string.Join("\n", tables.Unproven));
        // switch (y) with cases 0..7, then switch (x & 13): 8 and 14 entries; switch (y) 0..20, then x & 7: 21 and 8.
        Assert.AreEqual("8 14", string.Join(" ", In(image, tables, "short_bound_then_mask").Select(t => t.Count)));
        Assert.AreEqual("21 8", string.Join(" ", In(image, tables, "long_bound_then_mask").Select(t => t.Count)));
        Assert.IsTrue(tables.Tables.All(t => t.Form == JumpTableForm.InlineDifferences && t.Base == t.Dispatch + 4));
    }

    [TestMethod]
    public void ClangMediumTablesAreRelocatedDifferencesTiedToTheirDispatch()
    {
        var image = Load("switch_mask.clang-medium.le.o");
        var tables = Tables(image);
        Assert.AreEqual(0, tables.Unproven.Count, string.Join("\n", tables.Unproven));
        Assert.IsTrue(tables.Tables.Count >= 3);
        foreach (var t in tables.Tables)
        {
            Assert.AreEqual(JumpTableForm.RelocatedDifferences, t.Form);
            StringAssert.StartsWith(image.Sections[t.TableSection].Name, ".rodata");
            // Each word's addend is the case plus the word's distance from the table's base.
            Assert.AreEqual(4UL * 3, tables.EntryAnchor(t.CodeSection, t.TableSection, t.Base + 12));
        }
        Assert.IsTrue(In(image, tables, "short_bound_then_mask").Any(t => t.Count == 14), "the x & 13 table");
    }

    [TestMethod]
    public void ClangLargeModelCodeReadsThePcAndIsNeverMoved()
    {
        var image = Load("switch_mask.clang-large.le.o");
        var functions = new FunctionMap(image);
        var references = new CodeReferences(image, functions);
        var pcReads = references.RelocationFreeBranches.Where(b =>
            b.Kind == BranchKind.Bl && b.Target == b.Offset + 4).ToList();
        Assert.IsTrue(pcReads.Count > 0, "clang -mcmodel=large bases its tables on bl .+4; mflr");
        Assert.IsTrue(pcReads.All(b => !b.IsCall), "bl .+4 is not a call");

        var result = ObjectPatcher.Patch(image, new PatchOptions(FixStrategy.InsertNop, SiteSelection.AllLocal));
        Assert.AreEqual(0, result.Fixes.Count);
        Assert.IsTrue(result.Output is null
            || result.Output.AsSpan().SequenceEqual(image.Bytes.Span), "no byte may move");
        var refusals = result.Report.Diagnostics.Where(d => d.Code == DiagnosticCatalog.InsertNopNotPossible).ToList();
        Assert.IsTrue(refusals.Count > 0);
        Assert.IsTrue(refusals.All(d =>
            d.Message.Contains("program counter") || d.Message.Contains("jump table")), refusals[0].Message);
        Assert.IsFalse(result.Fixes.Any(f =>
            pcReads.Any(b => image.Sections[b.Section.Index].Name == f.Section && b.Offset == f.Offset)),
            "a bl .+4 must never be 'fixed'");
        var auto = ObjectPatcher.Patch(image, new PatchOptions(FixStrategy.Auto, SiteSelection.AllLocal));
        Assert.IsTrue(auto.Fixes.Count > 0 && auto.Fixes.All(f =>
            f.Strategy == FixStrategy.Island && f.Why is not null));
    }

    public static IEnumerable<object[]> RunRows =>
        from f in new[] { "switch_mask.gcc.le.o", "switch_mask.clang-medium.le.o", "switch_mask.clang-large.le.o" }
        from s in new[] { FixStrategy.Auto, FixStrategy.InsertNop, FixStrategy.Island }
        select new object[] { f, s };

    [TestMethod]
    [DynamicData(nameof(RunRows))]
    public void PatchedRegressionObjectsComputeWhatTheOriginalsDo(string fixture, FixStrategy strategy)
    {
        string dir = Repo.NewTempDir();
        string harness = Path.Combine(dir, "main.o");
        Tool.Check("powerpc64le-linux-gnu-gcc", "-O2", "-c",
            Path.Combine(Repo.Root, "tests", "fixtures", "src", "switch_mask_main.c"), "-o", harness);
        string expected = LinkAndRun(harness, Repo.Fixture(fixture), Path.Combine(dir, "orig"));

        var image = Load(fixture);
        var result = ObjectPatcher.Patch(image, new PatchOptions(strategy, SiteSelection.AllLocal));
        bool insertNopPossible = !fixture.Contains("clang-large");
        if (strategy == FixStrategy.InsertNop && !insertNopPossible)
        {
            Assert.AreEqual(0, result.Fixes.Count, "refused: the all-local sites stay as they are");
            return;
        }
        Assert.IsNotNull(result.Output, string.Join("\n", result.Report.Diagnostics.Select(d => d.Message)));
        Assert.IsTrue(result.Fixes.Count >= 6, "every local call to helper() is fixed");
        if (strategy != FixStrategy.Island)
            Assert.AreEqual(insertNopPossible, result.Fixes.All(f =>
                f.Strategy == FixStrategy.InsertNop), "insert-nop where the tables are proven");
        string patched = Path.Combine(dir, "patched.o");
        File.WriteAllBytes(patched, result.Output!);
        Assert.AreEqual(expected, LinkAndRun(harness, patched, Path.Combine(dir, "patched")));
    }

    private static string LinkAndRun(string harness, string obj, string exe)
    {
        Tool.Check("powerpc64le-linux-gnu-gcc", "-static", harness, obj, "-o", exe);
        var r = Tool.Run("timeout", "20", "qemu-ppc64le", exe);
        Assert.AreEqual(0, r.ExitCode, r.Stderr);
        StringAssert.StartsWith(r.Stdout, "checksum = ");
        return r.Stdout;
    }

    // --- the validator refuses wrong edits ---------------------------------------------------------------------

    private sealed record Patched(ObjectAnalysis Analysis, byte[] Output, RewriteMap Map, Func<string, ulong,
        ulong> MapAddress)
    {
        public ElfImage Before => Analysis.Image;
        public JumpTableAnalysis Tables => Analysis.Tables;
    }

    private static Patched InsertNops(string fixture)
    {
        var before = Load(fixture);
        var result = ObjectPatcher.Patch(before, new PatchOptions(FixStrategy.InsertNop, SiteSelection.AllLocal));
        Assert.IsNotNull(result.Output);
        var points = result.Fixes.GroupBy(f => before.Sections.Single(s => s.Name == f.Section).Index)
            .ToDictionary(g => g.Key, g => (IReadOnlyList<ulong>)g.Select(f => f.Offset + 4).Order().ToList());
        var map = new RewriteMap(points, new Dictionary<int, IReadOnlyList<(ulong, ulong)>>());
        ulong MapAddress(string section, ulong a) =>
            a + 4UL * (ulong)points[before.Sections.Single(s => s.Name == section).Index].Count(p => p <= a);
        var analysis = new ObjectAnalysis(before);
        Assert.IsTrue(ElfImage.TryParse("out.o", result.Output!, out var after, out _));
        Assert.AreEqual(0, TranslationValidator.Validate(analysis, after!, map).Count, "the real rewrite validates");
        return new Patched(analysis, result.Output!, map, MapAddress);
    }

    private static List<ValidationFailure> ValidateMutant(Patched p, Action<byte[], ElfImage> mutate)
    {
        byte[] bytes = (byte[])p.Output.Clone();
        Assert.IsTrue(ElfImage.TryParse("out.o", bytes, out var after, out _));
        mutate(bytes, after!);
        Assert.IsTrue(ElfImage.TryParse("mutant.o", bytes, out var mutant, out _));
        return TranslationValidator.Validate(p.Analysis, mutant!, p.Map);
    }

    private static void Write(byte[] bytes, ElfSection s, ulong offset, uint word) =>
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan((int)(s.Offset + offset)), word);

    [TestMethod]
    public void TheValidatorRefusesABranchOffByOneWord()
    {
        var p = InsertNops("switch_mask.gcc.le.o");
        var failures = ValidateMutant(p, (bytes, after) =>
        {
            var functions = new FunctionMap(after);
            var branch = new CodeReferences(after, functions).RelocationFreeBranches.First(b =>
                b.Kind == BranchKind.Bc && b.Section.Name == ".text.short_bound_then_mask");
            Write(bytes, branch.Section, branch.Offset,
                Instruction.WithDisplacement(branch.Word, Instruction.BranchDisplacement(branch.Word) + 4));
        });
        Assert.IsTrue(failures.Any(f => f.Why.Contains("no longer lands")), string.Join("\n", failures));
    }

    [TestMethod]
    public void TheValidatorRefusesAStaleJumpTableWord()
    {
        var p = InsertNops("switch_mask.gcc.le.o");
        var table = In(p.Before, p.Tables, "short_bound_then_mask").Last();   // the x & 13 table
        var section = p.Before.Sections[table.CodeSection];
        // The last word: its case lies past an inserted nop, so the rewrite changed it; put the old value back.
        ulong last = table.Base + 4UL * (ulong)(table.Count - 1);
        uint original = p.Before.ReadWord(section, last);
        var failures = ValidateMutant(p, (bytes, after) =>
        {
            var s = after.Sections[section.Index];
            Assert.AreNotEqual(original, after.ReadWord(s, p.MapAddress(section.Name, last)),
                "the fixture must have a table word that moves");
            Write(bytes, s, p.MapAddress(section.Name, last), original);
        });
        Assert.IsTrue(failures.Any(f => f.Why.Contains("jump table word")), string.Join("\n", failures));
    }

    [TestMethod]
    public void TheValidatorRefusesARelocationThatDidNotMove()
    {
        var p = InsertNops("switch_mask.gcc.le.o");
        var failures = ValidateMutant(p, (bytes, after) =>
        {
            var rs = after.RelocationSections.First(r => r.Target.Name == ".text.short_bound_then_mask");
            var before = p.Before.RelocationSections.First(r => r.Section.Index == rs.Section.Index);
            int i = Enumerable.Range(0, rs.Entries.Count).Last(k => rs.Entries[k].Offset != before.Entries[k].Offset);
            BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan((int)(rs.Section.Offset + 24UL * (ulong)i)),
                before.Entries[i].Offset);
        });
        Assert.IsTrue(failures.Any(f =>
            f.Why.Contains("did not move with its instruction")), string.Join("\n", failures));
    }

    [TestMethod]
    public void TheValidatorRefusesARemappedClangTableAddendThatIsWrong()
    {
        var p = InsertNops("switch_mask.clang-medium.le.o");
        var failures = ValidateMutant(p, (bytes, after) =>
        {
            // Remap a table word's addend the way the old editor did: as if it were a plain code address.
            var candidates =
                from t in p.Tables.Tables
                let rs = after.RelocationSections.First(r => r.Target.Index == t.TableSection)
                let original = p.Before.RelocationSections.First(r => r.Section.Index == rs.Section.Index)
                from i in Enumerable.Range(0, rs.Entries.Count)
                where rs.Entries[i].Offset >= t.Base && rs.Entries[i].Offset < t.End
                let plain = (long)p.MapAddress(p.Before.Sections[t.CodeSection].Name, (ulong)original.Entries[i].Addend)
                where plain != rs.Entries[i].Addend
                select (rs, i, plain);
            var (section, index, wrong) = candidates.First();
            BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan((int)(section.Section.Offset + 24UL * (ulong)index + 16)), wrong);
        });
        Assert.IsTrue(failures.Any(f => f.Why.Contains("names +0x")), string.Join("\n", failures));
    }

    [TestMethod]
    public void TheValidatorRefusesAChangedInstruction()
    {
        var p = InsertNops("switch_mask.gcc.le.o");
        var failures = ValidateMutant(p, (bytes, after) =>
        {
            var s = after.Sections.First(x => x.Name == ".text.long_bound_then_mask");
            Write(bytes, s, 0x10, after.ReadWord(s, 0x10) ^ 0x0020_0000);   // another register
        });
        Assert.IsTrue(failures.Any(f => f.Why.Contains("changed")), string.Join("\n", failures));
    }
}
