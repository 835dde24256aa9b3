using PpcLivepatch.Analysis;
using PpcLivepatch.Dwarf;
using PpcLivepatch.Elf;

namespace PpcLivepatch.Tests;

[TestClass]
public sealed class LineTableTests
{
    public static IEnumerable<object[]> DebugFixtures =>
        Repo.AllFixtures.Select(Path.GetFileName).Where(f =>
            f!.Contains("dwarf") || f.Contains("kpatch") || f.Contains("kmodg") || f.Contains("klp")
                || f.StartsWith("livepatch.und"))
            .Where(f => !f!.StartsWith("asm_")).Select(f => new object[] { f! });

    [TestMethod]
    [DynamicData(nameof(DebugFixtures))]
    public void EveryCallSiteMapsToTheLineAddr2lineReports(string fixture)
    {
        string path = Repo.Fixture(fixture);
        Assert.IsTrue(ElfImage.TryLoad(path, out var image, out _));
        var lines = LineTable.Read(image!);
        Assert.IsTrue(lines.Sequences.Count > 0, $"{fixture} has no line program");
        var sites = CallSiteScanner.Scan(image!, new FunctionMap(image!), lines);
        Assert.IsTrue(sites.Count > 0);

        foreach (var group in sites.GroupBy(s => s.Section.Name))
        {
            var args = new List<string> { "-e", path, "-j", group.Key };
            args.AddRange(group.Select(s => $"0x{s.Offset:x}"));
            var answers = Tool.Check(Repo.Binutils(fixture, "addr2line"), [.. args]).Split('\n',
                StringSplitOptions.RemoveEmptyEntries);
            var list = group.ToList();
            Assert.AreEqual(list.Count, answers.Length);
            for (int i = 0; i < list.Count; i++)
            {
                string at = $"{fixture} {group.Key}+0x{list[i].Offset:x}";
                // addr2line prints "file:line" or "file:line (discriminator N)"; "??:0" when it knows nothing, "file:?"
                // for code without line rows (top-level asm in a C file).
                string answer = answers[i].Split(" (")[0];
                int colon = answer.LastIndexOf(':');
                string file = answer[..colon], line = answer[(colon + 1)..];
                if (file == "??" || line == "?")
                {
                    Assert.IsNull(list[i].Source, at);
                    continue;
                }
                Assert.IsNotNull(list[i].Source, at);
                Assert.AreEqual(Path.GetFileName(file), Path.GetFileName(list[i].Source!.File), at);
                Assert.AreEqual(line, list[i].Source!.Line.ToString(), at);
            }
        }
    }

    [TestMethod]
    [DataRow("calls.dwarf3.le.o", 3)]
    [DataRow("calls.dwarf4.le.o", 4)]
    [DataRow("calls.dwarf5.le.o", 5)]
    public void FixturesCoverEveryLineTableVersionGasWrites(string fixture, int version)
    {
        StringAssert.Contains(Tool.Check("powerpc64le-linux-gnu-readelf", "--debug-dump=rawline",
            Repo.Fixture(fixture)), $"DWARF Version:               {version}");
    }

    [TestMethod]
    public void ColumnsComeFromTheLineProgram()
    {
        Assert.IsTrue(ElfImage.TryLoad(Repo.Fixture("livepatch.klp.le.o"), out var image, out _));
        var sites = CallSiteScanner.Scan(image!, new FunctionMap(image!), LineTable.Read(image!));
        var call = sites.Single(s => s.Callee == ".klp.sym.vmlinux.cmdline_helper,0");
        // livepatch.c line 29: "\tint n = cmdline_helper(buf, len);" — the call starts at column 10.
        Assert.AreEqual(new Diagnostics.SourceLocation("livepatch.c", 29, 10), call.Source);
    }

    [TestMethod]
    public void ObjectsWithoutDebugInfoHaveNoSourceLocations()
    {
        Assert.IsTrue(ElfImage.TryLoad(Repo.Fixture("calls.kmod.le.o"), out var image, out _));
        Assert.AreEqual(0, LineTable.Read(image!).Sequences.Count);
    }
}
