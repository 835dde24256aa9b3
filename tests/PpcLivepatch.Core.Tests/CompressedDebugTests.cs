using System.Buffers.Binary;
using PpcLivepatch.Analysis;
using PpcLivepatch.Diagnostics;
using PpcLivepatch.Dwarf;
using PpcLivepatch.Elf;
using PpcLivepatch.Patching;

namespace PpcLivepatch.Tests;

/// <summary>
/// zlib-compressed debug sections (gcc -gz, the kernel's CONFIG_DEBUG_INFO_COMPRESSED): read as their contents, so
/// diagnostics keep their C lines and insert-nop rewrites them; bad compressed data is a coded error.
/// </summary>
[TestClass]
public sealed class CompressedDebugTests
{
    private static string Compile(string extra)
    {
        string dir = Repo.NewTempDir(), o = Path.Combine(dir, "views.o");
        Tool.Check("powerpc64le-linux-gnu-gcc",
            ["-O2", "-mcmodel=large", "-ffunction-sections", "-g",
                .. extra.Split(' ', StringSplitOptions.RemoveEmptyEntries),
            "-c", Path.Combine(Repo.Root, "tests", "fixtures", "src", "views.c"), "-o", o]);
        return o;
    }

    [TestMethod]
    public void CompressedObjectsGiveTheSameLinesAndTheSamePatchAsPlainOnes()
    {
        Assert.IsTrue(ElfImage.TryLoad(Compile("-gz=zlib"), out var compressed, out var error), error?.Message);
        Assert.IsTrue(ElfImage.TryLoad(Compile(""), out var plain, out _));
        Assert.IsTrue(compressed!.Sections.Any(s =>
            s.Name == ".debug_info" && (s.Flags & ElfConstants.ShfCompressed) != 0), "gcc -gz should compress");

        string Lines(ElfImage image) =>
            string.Join("\n", ObjectVerifier.Verify(image, LoaderOptions.Default)
                .Sites.Select(s => $"{s.Site.Offset:x} {s.Site.Source}"));
        Assert.AreEqual(Lines(plain!), Lines(compressed));
        StringAssert.Contains(Lines(compressed), "views.c, Line = ");

        var a = ObjectPatcher.Patch(compressed, new PatchOptions(FixStrategy.InsertNop, SiteSelection.AllLocal));
        var b = ObjectPatcher.Patch(plain!, new PatchOptions(FixStrategy.InsertNop, SiteSelection.AllLocal));
        Assert.IsTrue(a.Fixes.Count > 0 && a.Fixes.All(f =>
            f.Strategy == FixStrategy.InsertNop), string.Join("\n", a.Report.Diagnostics.Select(d => d.Message)));
        Assert.AreEqual(b.Fixes.Count, a.Fixes.Count);
        Assert.IsTrue(ElfImage.TryParse("out.o", a.Output!, out var output, out _));
        var info = output!.Sections.Single(s => s.Name == ".debug_info");
        Assert.AreNotEqual(0UL, info.Flags & ElfConstants.ShfCompressed, "written back compressed");
        Assert.IsTrue(ElfImage.TryParse("plain-out.o", b.Output!, out var plainOutput, out _));
        foreach (string name in new[] { ".debug_info", ".debug_line", ".debug_loclists", ".debug_rnglists",
            ".debug_aranges" })
        {
            var x = output.Sections.SingleOrDefault(s => s.Name == name);
            var y = plainOutput!.Sections.SingleOrDefault(s => s.Name == name);
            Assert.AreEqual(y is null, x is null, name);
            if (x is not null) CollectionAssert.AreEqual(plainOutput.Data(y!).ToArray(), output.Data(x).ToArray(),
                $"{name}'s contents differ from the uncompressed patch");
        }
    }

    [TestMethod]
    public void ACorruptCompressedSectionIsACodedError()
    {
        byte[] bytes = File.ReadAllBytes(Compile("-gz=zlib"));
        Assert.IsTrue(ElfImage.TryParse("gz.o", bytes, out var image, out _));
        var info = image!.Sections.Single(s => s.Name == ".debug_info");
        bytes[(int)info.Offset + ElfConstants.Elf64ChdrSize + 4] ^= 0xff;   // inside the zlib stream
        Assert.IsFalse(ElfImage.TryParse("bad.o", bytes, out _, out var error));
        Assert.AreEqual(DiagnosticCatalog.MalformedSectionTable, error!.Code);
        StringAssert.Contains(error.Message, ".debug_info");

        byte[] zstd = File.ReadAllBytes(Compile("-gz=zlib"));
        BinaryPrimitives.WriteUInt32LittleEndian(zstd.AsSpan((int)info.Offset), 2);   // ELFCOMPRESS_ZSTD
        Assert.IsFalse(ElfImage.TryParse("zstd.o", zstd, out _, out error));
        Assert.AreEqual(DiagnosticCatalog.MalformedSectionTable, error!.Code);
        StringAssert.Contains(error.Message, "only zlib");

        byte[] huge = File.ReadAllBytes(Compile("-gz=zlib"));
        BinaryPrimitives.WriteUInt64LittleEndian(huge.AsSpan((int)info.Offset + 8), 1UL << 40);
        Assert.IsFalse(ElfImage.TryParse("huge.o", huge, out _, out error));
        StringAssert.Contains(error!.Message, "implausible");
    }
}
