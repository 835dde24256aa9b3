using PpcLivepatch.Ppc64;

namespace PpcLivepatch.Tests;

[TestClass]
public sealed class Ppc64Tests
{
    [TestMethod]
    [DataRow(0x4800_0001u, BranchKind.Bl)]
    [DataRow(0x4bff_fff1u, BranchKind.Bl)]
    [DataRow(0x4800_0000u, BranchKind.B)]
    [DataRow(0x4800_0003u, BranchKind.Bla)]
    [DataRow(0x4800_0002u, BranchKind.Ba)]
    [DataRow(0x4182_0074u, BranchKind.Bc)]   // beq
    [DataRow(0x4182_0075u, BranchKind.Bcl)]
    [DataRow(0x4182_0076u, BranchKind.Bca)]
    [DataRow(0x6000_0000u, BranchKind.Other)]
    [DataRow(0xe841_0018u, BranchKind.Other)]
    public void ClassifiesBranchForms(uint word, BranchKind expected) =>
        Assert.AreEqual(expected, Instruction.Classify(word));

    [TestMethod]
    public void OnlyRelativeBranchAndLinkDemandsANop()
    {
        // instr_is_relative_link_branch(): opcode 18 or 16, AA clear, LK set.
        Assert.IsTrue(Instruction.IsRelativeLinkBranch(0x4800_0001));
        Assert.IsTrue(Instruction.IsRelativeLinkBranch(0x4182_0075));
        Assert.IsFalse(Instruction.IsRelativeLinkBranch(0x4800_0000));
        Assert.IsFalse(Instruction.IsRelativeLinkBranch(0x4800_0003));
        Assert.IsFalse(Instruction.IsRelativeLinkBranch(0x6000_0000));
    }

    [TestMethod]
    public void IFormEncodeReachesExactlyPlusMinus32MiB()
    {
        Assert.AreEqual(0x49ff_fffdu, Instruction.EncodeIForm(0x1ff_fffc, link: true));
        Assert.AreEqual(0x4a00_0000u, Instruction.EncodeIForm(-0x200_0000, link: false));
        Assert.AreEqual(0x1ff_fffcL, Instruction.BranchDisplacement(Instruction.EncodeIForm(0x1ff_fffc, true)));
        Assert.AreEqual(-0x200_0000L, Instruction.BranchDisplacement(Instruction.EncodeIForm(-0x200_0000, true)));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Instruction.EncodeIForm(0x200_0000, true));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Instruction.EncodeIForm(-0x200_0004, true));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Instruction.EncodeIForm(6, true));
    }

    [TestMethod]
    public void BFormDisplacementKeepsConditionBitsAndReaches32KiB()
    {
        uint beq = 0x4182_0074;
        Assert.AreEqual(0x74L, Instruction.BranchDisplacement(beq));
        uint moved = Instruction.WithDisplacement(beq, -0x8000);
        Assert.AreEqual(0x4182_8000u, moved);
        Assert.AreEqual(-0x8000L, Instruction.BranchDisplacement(moved));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Instruction.WithDisplacement(beq, 0x8000));
    }

    [TestMethod]
    public void AbiFactsMatchTheKernel()
    {
        Assert.AreEqual(0xe841_0018u, AbiFacts.TocRestoreInstruction(PpcAbi.ElfV2));   // PPC_INST_LD_TOC, ELFv2
        Assert.AreEqual(0xe841_0028u, AbiFacts.TocRestoreInstruction(PpcAbi.ElfV1));
        Assert.AreEqual(PpcAbi.ElfV2, AbiFacts.FromHeader(2, littleEndian: false));
        Assert.AreEqual(PpcAbi.ElfV1, AbiFacts.FromHeader(0, littleEndian: false));
        Assert.AreEqual(PpcAbi.ElfV2, AbiFacts.FromHeader(0, littleEndian: true));
        // PPC64_LOCAL_ENTRY_OFFSET: st_other 0x60 (value 3) is 8 bytes; 0 and 1 mean no separate local entry.
        Assert.AreEqual(8, AbiFacts.LocalEntryOffset(PpcAbi.ElfV2, 0x60));
        Assert.AreEqual(0, AbiFacts.LocalEntryOffset(PpcAbi.ElfV2, 0x20));
        Assert.AreEqual(4, AbiFacts.LocalEntryOffset(PpcAbi.ElfV2, 0x40));
        Assert.AreEqual(0, AbiFacts.LocalEntryOffset(PpcAbi.ElfV1, 0x60));
    }

    [TestMethod]
    public void CatalogNamesEveryTypeOfThePsAbiListAndTheLoaderSubset()
    {
        // domain.md §7, from binutils include/elf/ppc64.h.
        uint[] listed = [1, 2, 3, 4, 5, 6, 7, 10, 11, 12, 13, 26, 38, 44, 47, 48, 49, 50, 51, 56, 57, 63, 64, 107, 108,
            109,
            116, 117, 118, 119, 120, 132, 133, 249, 250, 251, 252];
        foreach (uint n in listed)
            StringAssert.StartsWith(RelocationCatalog.NameOf(n), "R_PPC64_", $"type {n}");
        Assert.AreEqual("R_PPC64_REL24", RelocationCatalog.NameOf(10));
        Assert.AreEqual("R_PPC64_REL24_NOTOC", RelocationCatalog.NameOf(116));

        uint[] tocKernel = [1, 10, 26, 38, 44, 47, 48, 50, 51, 63, 64, 109, 118, 250, 252];
        CollectionAssert.AreEquivalent(tocKernel, listed.Where(n =>
            RelocationCatalog.IsSupportedByKernel(n, pcrelKernel: false)).ToArray());
        uint[] pcrelKernel = [1, 10, 26, 38, 44, 116, 118, 132, 133, 250, 252];
        CollectionAssert.AreEquivalent(pcrelKernel, listed.Where(n =>
            RelocationCatalog.IsSupportedByKernel(n, pcrelKernel: true)).ToArray());
        Assert.IsFalse(RelocationCatalog.IsSupportedByKernel(999, false));
        Assert.AreEqual("R_PPC64_<999>", RelocationCatalog.NameOf(999));
    }

    /// <summary>
    /// Every name in the catalog is binutils' name for that number: relocations of every catalogued type are added to a
    /// real object and <c>readelf -r</c> names them. Numbers nobody defines (not in the catalog) keep the explicit
    /// <c>R_PPC64_&lt;n&gt;</c> form, so a report never claims a name it cannot back.
    /// </summary>
    [TestMethod]
    public void CatalogNamesAreBinutilsNames()
    {
        Assert.IsTrue(Elf.ElfImage.TryLoad(Repo.Fixture("calls.kpatch.le.o"), out var image, out _));
        var rela = image!.RelocationSections.First(r => r.Target.IsExecutable);
        var section = image.Symbols.First(y =>
            y.Type == Elf.ElfConstants.SttSection && y.SectionIndex == (uint)rela.Target.Index);
        var container = Elf.ElfContainer.Load(image);
        var types = RelocationCatalog.All.Select(t => t.Number).Where(n => n != 0).Order().ToList();
        foreach (uint n in types) container.AddRelocation(rela.Section.Index, 0, n, section.Index, 0);
        string path = Path.Combine(Repo.NewTempDir(), "every-type.o");
        File.WriteAllBytes(path, container.Save());

        var listed = Tool.Check("powerpc64le-linux-gnu-readelf", "-rW", path).Split('\n')
            .SkipWhile(l => !l.Contains($"'{rela.Section.Name}'")).Skip(2).TakeWhile(l => l.Trim().Length > 0)
            .Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[2]).ToList();
        Assert.IsTrue(types.Count > 100, $"the catalog should name the psABI's types, has {types.Count}");
        var ours = types.Select(n => RelocationCatalog.NameOf(n)).ToList();
        var theirs = listed.TakeLast(types.Count).ToList();
        var differ = ours.Zip(theirs, (o, t) => o == t ? null : $"{o} vs readelf's {t}").OfType<string>().ToList();
        Assert.AreEqual(0, differ.Count, string.Join("; ", differ));
    }
}
