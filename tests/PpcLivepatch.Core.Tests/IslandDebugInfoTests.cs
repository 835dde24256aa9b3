using PpcLivepatch.Elf;
using PpcLivepatch.Patching;

namespace PpcLivepatch.Tests;

/// <summary>
/// Island code is described like the call it stands for: addr2line (binutils' DWARF reader) names the call's function
/// and line at every word of an island, and llvm-dwarfdump's verifier accepts the grown ranges and added line rows.
/// </summary>
[TestClass]
public sealed class IslandDebugInfoTests
{
    [TestMethod]
    [DataRow("gcc", "-g")]
    [DataRow("gcc", "-gdwarf-4")]
    [DataRow("gcc", "-g -gz=zlib")]
    [DataRow("gcc-be", "-g")]
    [DataRow("clang", "-g")]
    [DataRow("clang", "-gdwarf-4")]
    public void Addr2lineNamesTheCallsLineInsideItsIsland(string compiler, string debug)
    {
        string dir = Repo.NewTempDir();
        string source = Path.Combine(Repo.Root, "tests", "fixtures", "src", "switch_mask.c");
        string input = Path.Combine(dir, "in.o"), output = Path.Combine(dir, "out.o");
        string prefix = compiler == "gcc-be" ? "powerpc64-linux-gnu-" : "powerpc64le-linux-gnu-";
        string[] flags = ["-O2", "-ffunction-sections", .. debug.Split(' '), "-c", source, "-o", input];
        if (compiler == "clang") Tool.Check("clang-14", ["--target=powerpc64le-linux-gnu", .. flags]);
        else Tool.Check(prefix + "gcc", flags);

        Assert.IsTrue(ElfImage.TryLoad(input, out var image, out _));
        var result = ObjectPatcher.Patch(image!, new PatchOptions(FixStrategy.Island, SiteSelection.AllLocal));
        Assert.IsNotNull(result.Output, string.Join("\n", result.Report.Diagnostics.Select(d => d.Message)));
        Assert.IsFalse(result.Report.Diagnostics.Any(d =>
            d.Code == Diagnostics.DiagnosticCatalog.UnwindNotExtended && d.Message.Contains("line rows")),
            "the islands should have been described");
        File.WriteAllBytes(output, result.Output);

        var islands = result.Fixes.Where(f => f.Strategy == FixStrategy.Island).ToList();
        Assert.IsTrue(islands.Count >= 10, "expected the all-local calls of switch_mask.c in islands, got " +
            $"{islands.Count}");
        int named = 0;
        foreach (var fix in islands)
        {
            string call = Addr2line(prefix, output, fix.Section, fix.Offset);
            StringAssert.Contains(call, fix.Function, $"addr2line of the call at {fix.Section}+0x{fix.Offset:x}");
            for (ulong word = 0; word < IslandPlanner.IslandSize; word += 4)
                Assert.AreEqual(call, Addr2line(prefix, output, fix.Section, fix.IslandOffset + word),
                    $"island at {fix.Section}+0x{fix.IslandOffset + word:x} for the call at +0x{fix.Offset:x}");
            if (!call.EndsWith(":?", StringComparison.Ordinal)) named++;
        }
        Assert.IsTrue(named >= islands.Count / 2, "most calls have a line of their own");
        string verify = Tool.Check("llvm-dwarfdump-14", "--verify", output);
        StringAssert.Contains(verify, "No errors.");
        PatchTests.AssertBinutilsAccept(result.Output, compiler == "gcc-be" ? "x.be.o" : "x.le.o");
    }

    /// <summary>Function and file:line of one address of a code section, as binutils' addr2line reads the
    /// DWARF.</summary>
    private static string Addr2line(string prefix, string path, string section, ulong offset) =>
        Tool.Check(prefix + "addr2line", "-f", "-e", path, "-j", section, $"0x{offset:x}").Trim().Replace('\n', ' ');
}
