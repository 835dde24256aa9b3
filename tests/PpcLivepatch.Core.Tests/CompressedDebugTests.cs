using System.Buffers.Binary;
using PpcLivepatch.Analysis;
using PpcLivepatch.Diagnostics;
using PpcLivepatch.Dwarf;
using PpcLivepatch.Elf;
using PpcLivepatch.Patching;
using PpcLivepatch.Ppc64;

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

/// <summary>
/// Inputs made to cost time: a small object whose compressed .debug_info inflates to megabytes of zeros (a zlib
/// bomb; 16 MiB took patch 182 s before), and relocation tables with one field relocated twice (an internal error in
/// patch, accepted by verify, before).
/// </summary>
[TestClass]
public sealed class CostlyInputTests
{
    private static string DebugInfoOfZeros(int mebibytes)
    {
        string dir = Repo.NewTempDir();
        string o = Path.Combine(dir, "views.o"), plain = Path.Combine(dir, "plain.o"),
            zeros = Path.Combine(dir, "zeros.bin"), filled = Path.Combine(dir, "filled.o"),
            bomb = Path.Combine(dir, $"bomb{mebibytes}.o");
        Tool.Check("powerpc64le-linux-gnu-gcc", "-O2", "-g", "-c",
            Path.Combine(Repo.Root, "tests", "fixtures", "src", "views.c"), "-o", o);
        File.WriteAllBytes(zeros, new byte[mebibytes << 20]);
        // objcopy cannot replace and compress in one go.
        Tool.Check("powerpc64le-linux-gnu-objcopy", "--decompress-debug-sections", o, plain);
        Tool.Check("powerpc64le-linux-gnu-objcopy", $"--update-section=.debug_info={zeros}", plain, filled);
        Tool.Check("powerpc64le-linux-gnu-objcopy", "--compress-debug-sections=zlib", filled, bomb);
        Assert.IsTrue(new FileInfo(bomb).Length < 64 << 10, "the bomb should be small");
        return bomb;
    }

    [TestMethod]
    public void AZlibBombIsRefusedBeforeItIsInflated()
    {
        string bomb = DebugInfoOfZeros(16);
        foreach (string command in new[] { "verify", "patch" })
        {
            var stdout = new StringWriter();
            int rc = Cli.CliApp.Run([command, bomb], stdout, stdout);
            Assert.AreEqual(Cli.CliApp.ExitUsage, rc, stdout.ToString());
            StringAssert.Contains(stdout.ToString(), "error PLP1006: compressed section .debug_info claims to " +
                "inflate to 0x1000000 bytes");
        }
    }

    [TestMethod]
    public void DebugInfoOfZerosWithinTheBoundIsAMalformedUnitNotAMillionOfThem()
    {
        // 4 MiB inflates within the bound: the DWARF editor meets a unit shorter than its header at once (it read an
        // abbreviation table for each of a million four-byte units before), and the calls are still fixed.
        string bomb = DebugInfoOfZeros(4);
        Assert.IsTrue(ElfImage.TryLoad(bomb, out var image, out var error), error?.Message);
        var result = ObjectPatcher.Patch(image!, new PatchOptions(FixStrategy.Auto, SiteSelection.AllLocal));
        Assert.IsNotNull(result.Output);
        Assert.AreEqual(2, result.Fixes.Count);
        Assert.IsTrue(result.Fixes.All(f => f.Strategy == FixStrategy.Island), "no layout proof over broken DWARF");
    }

    [TestMethod]
    public void AFieldRelocatedTwiceIsAMalformedRelocationInEveryCommand()
    {
        string dir = Repo.NewTempDir();
        string o = Path.Combine(dir, "calls.o");
        File.Copy(Repo.Fixture("calls.kmod.le.o"), o);
        Assert.IsTrue(ElfImage.TryLoad(o, out var image, out _));
        var rela = image!.RelocationSections.First(r => r.Entries.Count(e => e.Type == R.PPC64_REL24) >= 2);
        int first = rela.Entries.ToList().FindIndex(e => e.Type == R.PPC64_REL24);
        int second = rela.Entries.ToList().FindIndex(first + 1, e => e.Type == R.PPC64_REL24);
        byte[] bytes = File.ReadAllBytes(o);
        Array.Copy(bytes, (long)rela.Section.Offset + first * 24, bytes, (long)rela.Section.Offset + second * 24, 24);
        File.WriteAllBytes(o, bytes);
        foreach (string[] command in new[] { new[] { "verify", o }, ["patch", o, "-o", o + ".out"],
            ["diff", o, o, "-o", o + ".diff"] })
        {
            var stdout = new StringWriter();
            int rc = Cli.CliApp.Run(command, stdout, stdout);
            Assert.AreEqual(Cli.CliApp.ExitUsage, rc, $"{command[0]}: {stdout}");
            StringAssert.Contains(stdout.ToString(), $"PLP1008: {rela.Section.Name} entries {first} and {second} are " +
                "both R_PPC64_REL24 at offset");
        }
        Assert.IsFalse(File.Exists(o + ".out") || File.Exists(o + ".diff"));
        CollectionAssert.AreEqual(bytes, File.ReadAllBytes(o), "the input is not touched");
    }
}
