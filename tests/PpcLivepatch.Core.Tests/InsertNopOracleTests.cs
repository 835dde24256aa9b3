using System.Text.RegularExpressions;
using PpcLivepatch.Analysis;
using PpcLivepatch.Elf;
using PpcLivepatch.Patching;

namespace PpcLivepatch.Tests;

/// <summary>
/// The assembler oracle for insert-nop: compile to assembly, put a nop after every local bl, assemble. insert-nop on
/// the plain object must give the oracle object's code bytes, relocations and symbols exactly. Both are built with
/// -falign-*=1 so the assembler does not re-pad, without -g and unwind tables (what insert-nop handles so far).
/// </summary>
[TestClass]
public sealed partial class InsertNopOracleTests
{
    private const string Flags = "-O2 -mcmodel=large -mprofile-kernel -pg -mno-altivec -mno-vsx -msoft-float " +
    "-fno-common " +
        "-fno-asynchronous-unwind-tables -mtraceback=no -mcpu=power8 -mno-prefixed -mno-pcrel -fno-PIE " +
        "-falign-functions=1 -falign-jumps=1 -falign-loops=1 -falign-labels=1";

    [GeneratedRegex(@"^\s*bl\s+([^\s,]+)\s*$")]
    private static partial Regex BranchAndLink();

    [TestMethod]
    [DataRow("calls.c", "le", "")]
    [DataRow("calls.c", "le", "-ffunction-sections")]
    [DataRow("switch.c", "le", "")]
    [DataRow("switch.c", "le", "-ffunction-sections")]
    [DataRow("livepatch.c", "le", "")]
    [DataRow("livepatch.c", "be", "")]
    [DataRow("calls.c", "be", "-ffunction-sections")]
    [DataRow("calls.c", "le", "-Os")]
    [DataRow("calls.c", "le", "-fasynchronous-unwind-tables")]
    [DataRow("switch.c", "le", "-fasynchronous-unwind-tables -ffunction-sections")]
    [DataRow("livepatch.c", "le", "-fasynchronous-unwind-tables")]
    [DataRow("switch.c", "be", "-fasynchronous-unwind-tables")]
    [DataRow("calls.c", "le", "-g")]
    [DataRow("calls.c", "le", "-gdwarf-3")]
    [DataRow("calls.c", "le", "-g -Wa,--gdwarf-5 -ffunction-sections")]
    [DataRow("static_key.c", "le", "-ffunction-sections")]
    [DataRow("static_key.c", "be", "")]
    [DataRow("ftr_fixup.c", "le", "-ffunction-sections")]
    [DataRow("ftr_fixup.c", "be", "-ffunction-sections")]
    [DataRow("calls.c", "le", "-g -ffunction-sections")]
    [DataRow("switch.c", "le", "-g -ffunction-sections")]
    [DataRow("livepatch.c", "le", "-g -ffunction-sections")]
    [DataRow("calls.c", "le", "-gdwarf-4 -ffunction-sections")]
    [DataRow("switch.c", "le", "-gdwarf-4")]
    [DataRow("calls.c", "be", "-g -ffunction-sections")]
    [DataRow("switch.c", "be", "-g")]
    [DataRow("calls.c", "le", "-g -fasynchronous-unwind-tables")]
    [DataRow("calls.c", "be", "")]
    [DataRow("switch.c", "be", "")]
    [DataRow("switch.c", "be", "-ffunction-sections")]
    [DataRow("views.c", "le", "-g -ffunction-sections")]
    [DataRow("views.c", "le", "-g")]
    [DataRow("views.c", "be", "-g -ffunction-sections")]
    [DataRow("switch_mask.c", "le", "-g -ffunction-sections")]
    [DataRow("switch_mask.c", "be", "-g")]
    [DataRow("views.c", "le", "-g -gz=zlib -ffunction-sections")]
    [DataRow("calls.c", "be", "-g -gz=zlib")]
    [DataRow("loc_addr.c", "le", "-g -ffunction-sections")]
    [DataRow("loc_addr.c", "be", "-g")]
    // A csmith program whose location lists have DW_OP_addr after offset pairs that grow (issue 11).
    [DataRow("csmith:10", "le", "-g -ffunction-sections -fdata-sections")]
    public void InsertNopMatchesTheAssembler(string source, string endian, string extra)
    {
        string dir = Repo.NewTempDir();
        string prefix = endian == "le" ? "powerpc64le-linux-gnu-" : "powerpc64-linux-gnu-";
        string[] flags = [.. Flags.Split(' '), .. extra.Split(' ', StringSplitOptions.RemoveEmptyEntries)];
        if (endian == "be") flags = flags.Where(f => f != "-mprofile-kernel").ToArray();
        if (extra.Contains("-fasynchronous-unwind-tables"))
            flags = flags.Where(f => f != "-fno-asynchronous-unwind-tables").ToArray();
        string s = Path.Combine(dir, "plain.s");
        string input = Path.Combine(Repo.Root, "tests", "fixtures", "src", source);
        if (source.StartsWith("csmith:", StringComparison.Ordinal))
        {
            input = Path.Combine(dir, "csmith.c");
            Tool.Check("csmith", "--seed", source["csmith:".Length..], "--max-funcs", "8", "--no-packed-struct", "-o",
                input);
            flags = [.. flags, "-w", "-I/usr/include/csmith"];
        }
        Tool.Check(prefix + "gcc", [.. flags, "-S", input, "-o", s]);

        AssertInsertNopMatchesOracle(dir, s, prefix, (from, to) => Tool.Check(prefix + "gcc", ["-c", from, "-o", to]));
    }

    /// <summary>
    /// clang-14's DWARF 5 (<c>.debug_addr</c>, offset tables, <c>startx_length</c>/<c>base_addressx</c> entries)
    /// against
    /// its own integrated assembler. clang aligns functions and loops itself (<c>.p2align 4</c>): those directives are
    /// dropped from the assembly both objects are built from, so the assembler does not re-pad around the nops.
    /// </summary>
    [TestMethod]
    [DataRow("switch_mask.c", "-O2 -g")]
    [DataRow("switch_mask.c", "-O2 -g -ffunction-sections")]
    [DataRow("loc_addr.c", "-O2 -g -ffunction-sections")]
    [DataRow("calls.c", "-Os -g")]
    [DataRow("switch.c", "-O2 -gdwarf-4 -ffunction-sections")]
    [DataRow("views.c", "-O2 -g -fdata-sections")]
    public void InsertNopMatchesClangsAssembler(string source, string flags)
    {
        string dir = Repo.NewTempDir();
        string raw = Path.Combine(dir, "raw.s"), s = Path.Combine(dir, "plain.s");
        string[] target = ["--target=powerpc64le-linux-gnu"];
        Tool.Check("clang-14",
            [.. target, .. flags.Split(' '), "-S", Path.Combine(Repo.Root, "tests", "fixtures", "src", source), "-o",
                raw]);
        File.WriteAllLines(s, File.ReadAllLines(raw).Where(l => !CodeAlignment().IsMatch(l)));
        AssertInsertNopMatchesOracle(dir, s, "powerpc64le-linux-gnu-", (from, to) =>
            Tool.Check("clang-14", [.. target, "-c", from, "-o", to]));
    }

    [GeneratedRegex(@"^\s*\.p2align\s+[45]\b")]
    private static partial Regex CodeAlignment();

    /// <summary>insert-nop (all local calls) on the object assembled from <paramref name="s"/> equals the object
    /// assembled from <paramref name="s"/> with a nop written after each of those calls.</summary>
    private static void AssertInsertNopMatchesOracle(string dir, string s, string prefix,
        Action<string, string> assemble)
    {
        string oracleS = Path.Combine(dir, "oracle.s");
        // The oracle: a nop after every bl that has none, but for the routines that never need one.
        var lines = File.ReadAllLines(s);
        var oracle = new List<string>();
        int inserted = 0;
        for (int i = 0; i < lines.Length; i++)
        {
            oracle.Add(lines[i]);
            var m = BranchAndLink().Match(lines[i]);
            if (!m.Success) continue;
            string target = m.Groups[1].Value.TrimStart('.');
            if (target is "_mcount" || target.StartsWith("_savegpr") || target.StartsWith("_restgpr")
                || target.StartsWith("_savefpr") || target.StartsWith("_restfpr")) continue;
            string next = lines.Skip(i + 1).FirstOrDefault(l => l.Trim().Length > 0)?.Trim() ?? "";
            if (next == "nop") continue;
            oracle.Add("\tnop");
            inserted++;
        }
        File.WriteAllLines(oracleS, oracle);
        string plainO = Path.Combine(dir, "plain.o"), oracleO = Path.Combine(dir, "oracle.o"),
            oursO = Path.Combine(dir, "ours.o");
        assemble(s, plainO);
        assemble(oracleS, oracleO);

        Assert.IsTrue(ElfImage.TryLoad(plainO, out var plain, out _));
        var result = ObjectPatcher.Patch(plain!, new PatchOptions(FixStrategy.InsertNop, SiteSelection.AllLocal));
        Assert.IsFalse(result.Report.Diagnostics.Any(d =>
            d.Code == Diagnostics.DiagnosticCatalog.InsertNopNotPossible),
                string.Join("\n", result.Report.Diagnostics.Select(d => d.Message)));
        Assert.AreEqual(inserted, result.Fixes.Count(f =>
            f.Strategy == FixStrategy.InsertNop), "sites selected differently from the oracle");
        Assert.IsTrue(inserted > 0);
        File.WriteAllBytes(oursO, result.Output!);

        Assert.IsTrue(ElfImage.TryLoad(oracleO, out var expected, out _));
        Assert.IsTrue(ElfImage.TryLoad(oursO, out var actual, out _));
        foreach (var section in expected!.Sections.Where(x => x.IsExecutable && x.HasFileData))
        {
            var ours = actual!.Sections.Single(x => x.Name == section.Name);
            CollectionAssert.AreEqual(expected.Data(section).ToArray(), actual.Data(ours).ToArray(),
                $"{section.Name} code differs");
        }
        // Relocations and symbols as readelf prints them (offsets, types, targets, addends; values and sizes).
        Assert.AreEqual(Readelf(prefix, "-rW", oracleO), Readelf(prefix, "-rW", oursO));
        Assert.AreEqual(Readelf(prefix, "-sW", oracleO), Readelf(prefix, "-sW", oursO));
        // Unwind tables compared as readelf decodes them: the same rows at the same addresses (the encoding of an
        // advance may legitimately differ).
        Assert.AreEqual(Frames(prefix, oracleO), Frames(prefix, oursO));
        // Debug information as readelf decodes it (relocations applied): line rows, DIEs (high_pc lengths, list
        // offsets), address ranges, range and location lists.
        foreach (string dump in new[] { "decodedline", "info", "aranges", "Ranges", "loc" })
            Assert.AreEqual(Debug(prefix, dump, oracleO), Debug(prefix, dump, oursO), $"--debug-dump={dump} differs");
        Assert.IsTrue(ObjectVerifier.Verify(oursO, LoaderOptions.Default).Accepted);
        // And a second patch finds nothing left to do.
        Assert.IsTrue(ElfImage.TryLoad(oursO, out var again, out _));
        Assert.AreEqual(0, ObjectPatcher.Patch(again!,
            new PatchOptions(FixStrategy.InsertNop, SiteSelection.AllLocal)).Fixes.Count);
    }

    private static string Debug(string prefix, string dump, string path) =>
        string.Join("\n", Tool.Check(prefix + "readelf", $"--debug-dump={dump}", path).Split('\n')
            .Where(l => !l.Contains(path)));

    private static string Frames(string prefix, string path) => string.Join("\n",
        Tool.Check(prefix + "readelf", "--debug-dump=frames-interp", path).Split('\n')
            .Select(l => Regex.Replace(l, @"^[0-9a-f]{8} [0-9a-f]{16} [0-9a-f]{8} (FDE|CIE)", "$1")));

    /// <summary>readelf's listing without the file offsets of sections, which legitimately differ.</summary>
    private static string Readelf(string prefix, string what, string path) =>
        string.Join("\n", Tool.Check(prefix + "readelf", what, path).Split('\n').Where(l =>
            !l.StartsWith("Relocation section")));

    [TestMethod]
    public void AutoUsesIslandsWhereTheLayoutIsNotUnderstood()
    {
        // Take the bound check away from the jump table: its size can no longer be known, so no byte may move.
        byte[] bytes = File.ReadAllBytes(Repo.Fixture("switch.kpatch.le.o"));
        Assert.IsTrue(ElfImage.TryParse("switch.o", bytes, out var image, out _));
        var text = image!.Sections.Single(x => x.Name == ".text.dispatch");
        int cmplwi = Enumerable.Range(0, (int)text.Size / 4).Select(i => i * 4)
            .First(o => image.ReadWord(text, (ulong)o) >> 26 == 10);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan((int)text.Offset + cmplwi),
            0x6000_0000);
        Assert.IsTrue(ElfImage.TryParse("switch.o", bytes, out image, out _));

        var auto = ObjectPatcher.Patch(image!, new PatchOptions(FixStrategy.Auto, SiteSelection.AllLocal));
        Assert.IsTrue(auto.Fixes.Where(f => f.Section == ".text.dispatch").All(f => f.Strategy == FixStrategy.Island));
        Assert.IsTrue(auto.Fixes.Any(f => f.Section == ".text.dispatch"));
        var explicitNop = ObjectPatcher.Patch(image!, new PatchOptions(FixStrategy.InsertNop, SiteSelection.AllLocal));
        var d = explicitNop.Report.Diagnostics.First(x => x.Code == Diagnostics.DiagnosticCatalog.InsertNopNotPossible);
        StringAssert.Contains(d.Message, "jump table");
        Assert.AreEqual(Diagnostics.Severity.Warning, d.Severity, "all-local sites load as they are");
    }

    [TestMethod]
    public void AutoInsertsNopsInDebugObjectsToo()
    {
        Assert.IsTrue(ElfImage.TryLoad(Repo.Fixture("livepatch.kpatch.le.o"), out var image, out _));
        var auto = ObjectPatcher.Patch(image!, new PatchOptions(FixStrategy.Auto, SiteSelection.AllLocal));
        Assert.IsTrue(auto.Fixes.Count > 0 && auto.Fixes.All(f => f.Strategy == FixStrategy.InsertNop));
        PatchTests.AssertBinutilsAccept(auto.Output!, "livepatch.kpatch.le.o");
    }
}
