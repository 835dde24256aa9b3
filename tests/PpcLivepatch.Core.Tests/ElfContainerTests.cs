using PpcLivepatch.Elf;

namespace PpcLivepatch.Tests;

[TestClass]
public sealed class ElfContainerTests
{
    public static IEnumerable<object[]> Fixtures => Repo.FixtureRows;

    [TestMethod]
    public void FixtureSetIsComplete()
    {
        // Data-driven tests silently shrink when fixtures are missing; this one does not.
        Assert.AreEqual(37, Repo.AllFixtures.Count(),
            "tests/fixtures/elf should hold the 37 objects build-fixtures.sh makes");
    }

    [TestMethod]
    [DynamicData(nameof(Fixtures))]
    public void UnchangedObjectRoundTripsByteIdentical(string fixture)
    {
        byte[] original = File.ReadAllBytes(Repo.Fixture(fixture));
        Assert.IsTrue(ElfImage.TryParse(fixture, original, out var image, out var error), error?.Message);

        byte[] saved = ElfContainer.Load(image!).Save();

        CollectionAssert.AreEqual(original, saved, $"{fixture} changed on a load/save round trip");
    }

    [TestMethod]
    public void RoundTripKeepsElfV2LocalEntryBits()
    {
        // The guard for LibObjectFile's st_other truncation: the fixture must have local-entry symbols for the
        // round trip above to mean anything, and they must survive.
        string path = Repo.Fixture("calls.kpatch.le.o");
        Assert.IsTrue(ElfImage.TryLoad(path, out var image, out _));
        var withLocalEntry = image!.Symbols.Where(s => (s.Other & 0xe0) != 0).Select(s => (s.Name, s.Other)).ToList();
        Assert.IsTrue(withLocalEntry.Count >= 5, "fixture should have ELFv2 functions with a local entry point");

        Assert.IsTrue(ElfImage.TryParse(path, ElfContainer.Load(image).Save(), out var reread, out _));
        CollectionAssert.AreEqual(withLocalEntry, reread!.Symbols.Where(s =>
            (s.Other & 0xe0) != 0).Select(s => (s.Name, s.Other)).ToList());
        StringAssert.Contains(Tool.Check("powerpc64le-linux-gnu-readelf", "-sW", path), "[<localentry>: 8]");
    }

    [TestMethod]
    public void AddedSectionGoesLastAndKeepsEveryIndex()
    {
        string path = Repo.Fixture("calls.kpatch.le.o");
        Assert.IsTrue(ElfImage.TryLoad(path, out var image, out _));
        var container = ElfContainer.Load(image!);

        int index = container.AddProgbitsSection(".text.added", ElfConstants.ShfAlloc | ElfConstants.ShfExecInstr, 4,
            [0x00, 0x00, 0x00, 0x60]);
        byte[] saved = container.Save();

        Assert.IsTrue(ElfImage.TryParse(path, saved, out var reread, out var error), error?.Message);
        Assert.AreEqual(image!.Sections.Count, index);
        Assert.AreEqual(".text.added", reread!.Sections[^1].Name);
        CollectionAssert.AreEqual(image.Sections.Select(s =>
            s.Name).ToList(), reread.Sections.Take(image.Sections.Count).Select(s => s.Name).ToList());
        CollectionAssert.AreEqual(image.Symbols.Select(s =>
            (s.Name, s.SectionIndex)).ToList(), reread.Symbols.Select(s => (s.Name, s.SectionIndex)).ToList());
        AssertBinutilsAccept(saved, "powerpc64le-linux-gnu-");
    }

    [TestMethod]
    [DataRow("calls.kpatch.le.o", "powerpc64le-linux-gnu-")]
    [DataRow("calls.kpatch.be.o", "powerpc64-linux-gnu-")]
    public void GrownSectionKeepsEveryLaterSectionAligned(string fixture, string prefix)
    {
        string path = Repo.Fixture(fixture);
        Assert.IsTrue(ElfImage.TryLoad(path, out var image, out _));
        var text = image!.Sections.First(s => s.Name == ".text.caller");
        var container = ElfContainer.Load(image);
        // Grow by one word (a nop), as an island append does: three-byte-aligned sizes would break alignment.
        var grown = image.Data(text).ToArray().Concat(Nop(image.IsLittleEndian)).ToArray();
        container.SetSectionData(text.Index, grown);
        byte[] saved = container.Save();

        Assert.IsTrue(ElfImage.TryParse(path, saved, out var reread, out var error), error?.Message);
        Assert.AreEqual(text.Size + 4, reread!.Sections[text.Index].Size);
        foreach (var s in reread.Sections.Where(s => s.HasFileData && s.Alignment > 1))
            Assert.AreEqual(0UL, s.Offset % s.Alignment, $"{s.Name} at 0x{s.Offset:x} is not {s.Alignment}-aligned");
        AssertBinutilsAccept(saved, prefix);
    }

    private static byte[] Nop(bool le) => le ? [0x00, 0x00, 0x00, 0x60] : [0x60, 0x00, 0x00, 0x00];

    /// <summary>readelf reads it without complaint and ld -r links it: the independent check of a written
    /// object.</summary>
    private static void AssertBinutilsAccept(byte[] image, string prefix)
    {
        string dir = Repo.NewTempDir();
        string obj = Path.Combine(dir, "edited.o");
        File.WriteAllBytes(obj, image);
        var readelf = Tool.Run(prefix + "readelf", "-aW", obj);
        Assert.AreEqual(0, readelf.ExitCode, readelf.Stderr);
        Assert.AreEqual("", readelf.Stderr.Trim(), "readelf warned about the written object");
        Tool.Check(prefix + "ld", "-r", "-o", Path.Combine(dir, "linked.o"), obj);
    }
}
