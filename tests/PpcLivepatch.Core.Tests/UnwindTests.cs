using System.Text.RegularExpressions;
using PpcLivepatch.Dwarf;
using PpcLivepatch.Elf;
using PpcLivepatch.Patching;

namespace PpcLivepatch.Tests;

/// <summary>The FDE of a patched function covers its islands, and readelf's own CFI interpreter gives each island the
/// row of its call site.</summary>
[TestClass]
public sealed partial class UnwindTests
{
    [TestMethod]
    [DataRow("oracle_caller.und.le.o", SiteSelection.Needed, ".eh_frame")]
    [DataRow("oracle_caller.und.be.o", SiteSelection.Needed, ".eh_frame")]
    [DataRow("livepatch.klp.le.o", SiteSelection.AllLocal, ".debug_frame")]
    [DataRow("calls.kpatch.le.o", SiteSelection.AllLocal, ".debug_frame")]
    [DataRow("calls.kpatch.be.o", SiteSelection.AllLocal, ".debug_frame")]
    [DataRow("switch.kpatch.be.o", SiteSelection.AllLocal, ".debug_frame")]
    public void IslandsInheritTheCallSiteRow(string fixture, SiteSelection sites, string frameSection)
    {
        Assert.IsTrue(ElfImage.TryLoad(Repo.Fixture(fixture), out var input, out _));
        var result = ObjectPatcher.Patch(input!, new PatchOptions(FixStrategy.Island, sites));
        Assert.IsTrue(result.Fixes.Count > 0);
        Assert.IsFalse(result.Report.Diagnostics.Any(d =>
            d.Code == "PLP4003"), string.Join("\n", result.Report.Diagnostics.Select(d => d.Message)));
        string path = Path.Combine(Repo.NewTempDir(), "p.o");
        File.WriteAllBytes(path, result.Output!);
        Assert.IsTrue(ElfImage.TryLoad(path, out var output, out _));

        // readelf's decoded table, one block per FDE in section order.
        var fdes = ReadelfFrames(Tool.Check(Repo.Binutils(fixture, "readelf"), "--debug-dump=frames-interp", path),
            frameSection);
        // Only which FDE belongs to which function comes from our parser; the rows are readelf's.
        var ours = CallFrameInfo.ReadAll(output!).Single(c => c.Section.Name == frameSection);
        foreach (var fix in result.Fixes)
        {
            var section = output!.Sections.Single(s => s.Name == fix.Section);
            int index = ours.Fdes.FindIndex(f => f.CodeSection == section.Index);
            Assert.IsTrue(index >= 0, $"{fix.Section} has no FDE");
            var fde = fdes[index];
            Assert.AreEqual(section.Size, fde.End, $"{fix.Section}: FDE does not reach the end of the islands");
            string site = fde.RowAt(fix.Offset), island = fde.RowAt(fix.IslandOffset),
                back = fde.RowAt(fix.IslandOffset + 8);
            Assert.AreEqual(site, island, $"{fixture} {fix.Section}+0x{fix.IslandOffset:x}");
            Assert.AreEqual(site, back, $"{fixture} {fix.Section}+0x{fix.IslandOffset + 8:x}");
        }
        PatchTests.AssertBinutilsAccept(result.Output!, fixture);
    }

    private sealed record FdeTable(ulong End, List<(ulong Loc, string Row)> Rows)
    {
        public string RowAt(ulong pc) => Rows.Last(r => r.Loc <= pc).Row;
    }

    [GeneratedRegex(@"^[0-9a-f]{8} [0-9a-f]+ [0-9a-f]+ FDE cie=[0-9a-f]+ pc=([0-9a-f]+)\.\.([0-9a-f]+)$")]
    private static partial Regex FdeHeader();

    [GeneratedRegex(@"^([0-9a-f]{16}) (.*)$")]
    private static partial Regex Row();

    private static List<FdeTable> ReadelfFrames(string text, string section)
    {
        var result = new List<FdeTable>();
        bool inSection = false;
        FdeTable? current = null;
        foreach (var line in text.Split('\n'))
        {
            if (line.StartsWith("Contents of the "))
            {
                inSection = line.Contains($"{section} section");
                current = null;
                continue;
            }
            if (!inSection) continue;
            var h = FdeHeader().Match(line);
            if (h.Success)
            {
                current = new FdeTable(Convert.ToUInt64(h.Groups[2].Value, 16), []);
                result.Add(current);
                continue;
            }
            var r = Row().Match(line);
            if (r.Success && current is not null)
                current.Rows.Add((Convert.ToUInt64(r.Groups[1].Value, 16),
                    Regex.Replace(r.Groups[2].Value.Trim(), @"\s+", " ")));
        }
        return result;
    }
}
