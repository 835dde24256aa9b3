using System.Buffers.Binary;
using System.Security.Cryptography;
using PpcLivepatch.Analysis;
using PpcLivepatch.Cli;
using PpcLivepatch.Diagnostics;
using PpcLivepatch.Elf;

namespace PpcLivepatch.Tests;

/// <summary>Every kind of bad input gets a coded PLP1xxx diagnostic, exit code 2, no exception, and an unchanged
/// file.</summary>
[TestClass]
public sealed class BadInputTests
{
    private static readonly byte[] Good = File.ReadAllBytes(Repo.Fixture("calls.kpatch.le.o"));

    private static (int Exit, string Out, string Err) VerifyFile(string path)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int exit = CliApp.Run(["verify", path], stdout, stderr);
        return (exit, stdout.ToString(), stderr.ToString());
    }

    private static void AssertRejectedAs(byte[] bytes, string code, string messagePart)
    {
        string path = Path.Combine(Repo.NewTempDir(), "bad.o");
        File.WriteAllBytes(path, bytes);
        byte[] before = SHA256.HashData(bytes);

        var (exit, output, _) = VerifyFile(path);

        Assert.AreEqual(CliApp.ExitUsage, exit, output);
        StringAssert.StartsWith(output, $"{path} : error {code}: ", output);
        StringAssert.Contains(output, messagePart);
        CollectionAssert.AreEqual(before, SHA256.HashData(File.ReadAllBytes(path)), "input changed");
    }

    private static byte[] Mutate(Action<byte[], ElfImage> change)
    {
        byte[] copy = (byte[])Good.Clone();
        Assert.IsTrue(ElfImage.TryParse("good", copy, out var image, out _));
        change(copy, image!);
        return copy;
    }

    private static ulong SectionHeaderOffset(byte[] b, int index) =>
        BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(40)) + (ulong)(64 * index);

    [TestMethod] public void EmptyFile() => AssertRejectedAs([], DiagnosticCatalog.NotElf, "empty");
    [TestMethod] public void TextFile() =>
        AssertRejectedAs("int main(void) { return 0; }\n"u8.ToArray(), DiagnosticCatalog.NotElf, "not an ELF file");
    [TestMethod] public void TruncatedInsideTheMagic() =>
        AssertRejectedAs(Good[..3], DiagnosticCatalog.NotElf, "not an ELF file");
    [TestMethod] public void TruncatedInsideTheIdent() =>
        AssertRejectedAs(Good[..5], DiagnosticCatalog.TruncatedOrMalformedHeader, "truncated");
    [TestMethod] public void TruncatedInsideTheHeader() =>
        AssertRejectedAs(Good[..40], DiagnosticCatalog.TruncatedOrMalformedHeader, "header truncated");
    [TestMethod] public void TruncatedBeforeTheSectionHeaders() =>
        AssertRejectedAs(Good[..(Good.Length / 2)], DiagnosticCatalog.MalformedSectionTable, "past the end");
    [TestMethod] public void WrongEndianness() =>
        AssertRejectedAs(Mutate((b, _) => b[5] = 2), DiagnosticCatalog.WrongMachine, "not EM_PPC64");

    [TestMethod]
    public void OverlappingSections() => AssertRejectedAs(Mutate((b, img) =>
    {
        var first = img.Sections.First(s => s.Name == ".text.caller");
        var second = img.Sections.First(s => s.Name == ".text.tail");
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan((int)SectionHeaderOffset(b, second.Index) + 24),
            first.Offset + 4);
    }), DiagnosticCatalog.MalformedSectionTable, "overlap in the file");

    [TestMethod]
    public void RelocationSectionApplyingToItselfIsHarmless()
    {
        byte[] b = Mutate((b, img) =>
        {
            var rela = img.RelocationSections.First(r => r.Target.Name == ".text.caller").Section;
            BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan((int)SectionHeaderOffset(b, rela.Index) + 44),
                (uint)rela.Index);
        });
        Assert.IsTrue(ElfImage.TryParse("self.o", b, out var image, out var error), error?.Message);
        var report = ObjectVerifier.Verify(image!, LoaderOptions.Default);
        Assert.IsFalse(report.Sites.Any(s => s.Site.Section.Name.StartsWith(".rela")));
    }

    [TestMethod] public void BadDataEncoding() =>
        AssertRejectedAs(Mutate((b, _) => b[5] = 7), DiagnosticCatalog.TruncatedOrMalformedHeader, "data encoding");

    [TestMethod]
    public void TruncatedAtEveryHeaderBoundary()
    {
        foreach (int length in new[] { 1, 4, 6, 16, 18, 20, 24, 32, 40, 48, 52, 58, 62, 63, 64, Good.Length - 64,
            Good.Length - 1 })
        {
            string path = Path.Combine(Repo.NewTempDir(), "cut.o");
            File.WriteAllBytes(path, Good[..length]);
            var (exit, output, _) = VerifyFile(path);
            Assert.AreEqual(CliApp.ExitUsage, exit, $"cut at {length}: {output}");
            StringAssert.Matches(output, new System.Text.RegularExpressions.Regex(" : error PLP100[1-9]: "),
                $"cut at {length}");
        }
    }

    /// <summary>Compiles a one-line C file with a real compiler; returns the object or program it wrote.</summary>
    private static byte[] Compile(string compiler, string source, params string[] flags)
    {
        string dir = Repo.NewTempDir(), c = Path.Combine(dir, "x.c"), output = Path.Combine(dir, "x.out");
        File.WriteAllText(c, source);
        Tool.Check(compiler, [.. flags, c, "-o", output]);
        return File.ReadAllBytes(output);
    }

    [TestMethod]
    public void Elf32Object() => AssertRejectedAs(
        Compile("powerpc64-linux-gnu-gcc", "int f(int x) { return x + 1; }\n", "-m32", "-c"),
            DiagnosticCatalog.UnsupportedClass, "ELFCLASS32");

    [TestMethod]
    public void HostObjectForAnotherMachine() => AssertRejectedAs(
        Compile("gcc", "int f(int x) { return x + 1; }\n", "-c"), DiagnosticCatalog.WrongMachine, "not EM_PPC64");

    [TestMethod]
    public void LinkedExecutableIsNotARelocatableObject() => AssertRejectedAs(
        Compile("powerpc64le-linux-gnu-gcc", "void _start(void) { for (;;) ; }\n", "-nostdlib", "-static"),
            DiagnosticCatalog.UnsupportedFileType, "ET_EXEC");

    [TestMethod]
    public void SectionContentsPastTheEnd() => AssertRejectedAs(Mutate((b, img) =>
    {
        var text = img.Sections.First(s => s.Name == ".text.caller");
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan((int)SectionHeaderOffset(b, text.Index) + 24),
            0xffff_ffff_0000);
    }), DiagnosticCatalog.MalformedSectionTable, "extends past the end");

    [TestMethod]
    public void SectionSizePastTheEnd() => AssertRejectedAs(Mutate((b, img) =>
    {
        var text = img.Sections.First(s => s.Name == ".text.caller");
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan((int)SectionHeaderOffset(b, text.Index) + 32),
            ulong.MaxValue - 8);
    }), DiagnosticCatalog.MalformedSectionTable, "extends past the end");

    [TestMethod]
    public void HugeSectionCount() =>
        AssertRejectedAs(Mutate((b, _) => BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(60), 0xfff0)),
        DiagnosticCatalog.MalformedSectionTable, "extends past the end");

    [TestMethod]
    public void SectionNameIndexOutOfRange() => AssertRejectedAs(Mutate((b, _) =>
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan((int)SectionHeaderOffset(b, 3)), 0x7fff_ffff)),
        DiagnosticCatalog.MalformedSectionTable, "outside the section name table");

    [TestMethod]
    public void SectionNameTableIndexOutOfRange() =>
        AssertRejectedAs(Mutate((b, _) => BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(62), 999)),
        DiagnosticCatalog.MalformedSectionTable, "does not name a string table");

    [TestMethod]
    public void SymbolSectionIndexOutOfRange() => AssertRejectedAs(Mutate((b, img) =>
    {
        var symtab = img.Sections.First(s => s.Type == ElfConstants.ShtSymtab);
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan((int)symtab.Offset + 5 * 24 + 6), 0xfe00);
    }), DiagnosticCatalog.MalformedSymbolTable, "section index 65024");

    [TestMethod]
    public void SymbolNameIndexOutOfRange() => AssertRejectedAs(Mutate((b, img) =>
    {
        var symtab = img.Sections.First(s => s.Type == ElfConstants.ShtSymtab);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan((int)symtab.Offset + 3 * 24), 0x7fff_0000);
    }), DiagnosticCatalog.MalformedSymbolTable, "outside the string table");

    [TestMethod]
    public void RelocationSymbolIndexOutOfRange() => AssertRejectedAs(Mutate((b, img) =>
    {
        var rela = img.RelocationSections.First(r => r.Target.Name == ".text.caller").Section;
        b[rela.Offset + 8 + 6] = 0x7f; // high byte of r_sym (little-endian r_info)
    }), DiagnosticCatalog.MalformedRelocation, "refers to symbol");

    [TestMethod]
    public void RelocationOffsetPastItsSection() => AssertRejectedAs(Mutate((b, img) =>
    {
        var rela = img.RelocationSections.First(r => r.Target.Name == ".text.caller").Section;
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan((int)rela.Offset), 0x10_0000);
    }), DiagnosticCatalog.MalformedRelocation, "past the end of .text.caller");

    [TestMethod]
    public void RelocationSectionLinkedToTheWrongTable() => AssertRejectedAs(Mutate((b, img) =>
    {
        var rela = img.RelocationSections.First(r => r.Target.Name == ".text.caller").Section;
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan((int)SectionHeaderOffset(b, rela.Index) + 40),
            (uint)rela.Info);
    }), DiagnosticCatalog.MalformedRelocation, "is not the symbol table");

    [TestMethod]
    public void RelocationSectionTargetOutOfRange() => AssertRejectedAs(Mutate((b, img) =>
    {
        var rela = img.RelocationSections.First().Section;
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan((int)SectionHeaderOffset(b, rela.Index) + 44), 5000);
    }), DiagnosticCatalog.MalformedRelocation, "does not exist");

    [TestMethod]
    public void SymbolTableLinkedToItself() => AssertRejectedAs(Mutate((b, img) =>
    {
        var symtab = img.Sections.First(s => s.Type == ElfConstants.ShtSymtab);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan((int)SectionHeaderOffset(b, symtab.Index) + 40),
            (uint)symtab.Index);
    }), DiagnosticCatalog.MalformedSymbolTable, "does not name a string table");

    [TestMethod]
    public void MissingFile()
    {
        string path = Path.Combine(Repo.NewTempDir(), "absent.o");
        var (exit, output, _) = VerifyFile(path);
        Assert.AreEqual(CliApp.ExitUsage, exit);
        StringAssert.StartsWith(output, $"{path} : error {DiagnosticCatalog.UnreadableFile}: cannot read");
    }

    [TestMethod]
    public void DirectoryInsteadOfFile()
    {
        string dir = Repo.NewTempDir();
        var (exit, output, _) = VerifyFile(dir);
        Assert.AreEqual(CliApp.ExitUsage, exit);
        StringAssert.Contains(output, $"error {DiagnosticCatalog.UnreadableFile}: cannot read");
    }

    [TestMethod]
    public void PathThroughAFile()
    {
        // Unreadable even for root (CI runs as root, so permission bits would not stop the read).
        string file = Path.Combine(Repo.NewTempDir(), "plain.o");
        File.WriteAllBytes(file, Good);
        var (exit, output, _) = VerifyFile(Path.Combine(file, "inner.o"));
        Assert.AreEqual(CliApp.ExitUsage, exit);
        StringAssert.Contains(output, $"error {DiagnosticCatalog.UnreadableFile}: cannot read");
    }

    /// <summary>Mounts a small tmpfs (root only; CI runs as root) and runs <paramref name="body"/> with its
    /// path.</summary>
    private static void WithTmpfs(string options, Action<string> body)
    {
        string mountPoint = Repo.NewTempDir();
        var mount = Tool.Run("mount", "-t", "tmpfs", "-o", options, "tmpfs", mountPoint);
        Assert.AreEqual(0, mount.ExitCode, $"mounting a tmpfs needs root (CI runs as root): {mount.Stderr}");
        try { body(mountPoint); }
        finally { Tool.Run("umount", mountPoint); }
    }

    [TestMethod]
    public void DiskFullWhileWritingLeavesNoPartialOutput()
    {
        string input = Repo.Fixture("calls.dwarf3.le.o");
        byte[] before = SHA256.HashData(File.ReadAllBytes(input));
        WithTmpfs("size=8k", dir =>
        {
            string output = Path.Combine(dir, "out.o");
            var stdout = new StringWriter();
            Assert.AreEqual(CliApp.ExitUsage,
                CliApp.Run(["patch", "--sites", "all-local", "-o", output, input], stdout, new StringWriter()));
            StringAssert.Contains(stdout.ToString(), $"{output} : error PLP1010: cannot write");
            Assert.AreEqual(0, Directory.GetFiles(dir).Length, "no partial or temporary file may be left");
        });
        CollectionAssert.AreEqual(before, SHA256.HashData(File.ReadAllBytes(input)));
    }

    [TestMethod]
    public void ReadOnlyOutputDirectory()
    {
        WithTmpfs("size=1m,ro", dir =>
        {
            string output = Path.Combine(dir, "out.o");
            var stdout = new StringWriter();
            Assert.AreEqual(CliApp.ExitUsage,
                CliApp.Run(["patch", "-o", output, Repo.Fixture("livepatch.und.le.o")], stdout, new StringWriter()));
            StringAssert.Contains(stdout.ToString(), $"{output} : error PLP1010: cannot write");
            Assert.IsFalse(stdout.ToString().Contains(".."), $"one period closes a sentence: {stdout}");
        });
    }

    [TestMethod]
    public void AMessageQuotingASystemErrorEndsWithOnePeriod()
    {
        var d = Diagnostics.Diagnostic.Create(DiagnosticCatalog.UnwritableOutput, "out.o",
            "cannot write 'out.o': Read-only file system.") with
            { Fix = "Choose a writable -o." };
        Assert.AreEqual("out.o : error PLP1010: cannot write 'out.o': Read-only file system. Fix: Choose a writable " +
            "-o.",
            Reports.ReportWriters.CanonicalLine(d));
        Assert.AreEqual("out.o : error PLP1010: cannot write 'out.o': no space.",
            Reports.ReportWriters.CanonicalLine(d with { Message = "cannot write 'out.o': no space", Fix = null }));
    }

    [TestMethod]
    public void ALocationWithoutALineIsNeverLineZero()
    {
        var d = new Diagnostics.Diagnostic(DiagnosticCatalog.KlpSymbolNotFound, "KlpSymbol 'x' does not occur", "a.o",
            Source: new Diagnostics.SourceLocation("/p/Livepatch.csproj", 0, 0));
        Assert.AreEqual("/p/Livepatch.csproj : warning PLP0102: KlpSymbol 'x' does not occur.",
            Reports.ReportWriters.CanonicalLine(d));
        string sarif = Reports.ReportWriters.Sarif([new ObjectReport("a.o", null, [], [d])]);
        StringAssert.Contains(sarif, "\"startLine\": 1,");
        Assert.IsFalse(sarif.Contains("\"startLine\": 0"));
    }

    [TestMethod]
    public void OneBadFileDoesNotHideTheOthers()
    {
        string dir = Repo.NewTempDir();
        string bad = Path.Combine(dir, "bad.o");
        File.WriteAllText(bad, "junk");
        var stdout = new StringWriter();
        int exit = CliApp.Run(["verify", bad, Repo.Fixture("livepatch.klp.le.o")], stdout, new StringWriter());
        Assert.AreEqual(CliApp.ExitUsage, exit);
        StringAssert.Contains(stdout.ToString(), DiagnosticCatalog.NotElf);
        StringAssert.Contains(stdout.ToString(), DiagnosticCatalog.MissingNopAfterCall);
    }
    /// <summary>A fixture with one edit; returns its path in a fresh directory.</summary>
    private static string MutatedFixture(string fixture, Action<byte[], ElfImage> change)
    {
        byte[] bytes = File.ReadAllBytes(Repo.Fixture(fixture));
        Assert.IsTrue(ElfImage.TryParse(fixture, bytes, out var image, out _));
        change(bytes, image!);
        string path = Path.Combine(Repo.NewTempDir(), fixture);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    /// <summary>Runs <c>patch</c> (an internal error would throw here) and returns its exit code, output and
    /// whether it wrote OUT.</summary>
    private static (int Exit, string Out, bool Wrote) PatchTo(string input, string strategy)
    {
        string output = Path.Combine(Repo.NewTempDir(), "out.o");
        byte[] before = SHA256.HashData(File.ReadAllBytes(input));
        var stdout = new StringWriter();
        int exit = CliApp.Run(["patch", "--strategy", strategy, "--sites", "all-local", "-o", output, input], stdout,
            new StringWriter());
        CollectionAssert.AreEqual(before, SHA256.HashData(File.ReadAllBytes(input)), "input changed");
        return (exit, stdout.ToString(), File.Exists(output));
    }

    // Found by the structure-aware fuzzer: each was an internal error (PLP0002) before.
    [TestMethod]
    [DataRow("auto"), DataRow("insert-nop"), DataRow("island")]
    public void LineProgramWithMinimumInstructionLengthZero(string strategy)
    {
        string input = MutatedFixture("switch.dwarf4.le.o", (b, img) =>
            b[img.Sections.First(s => s.Name == ".debug_line").Offset + 10] = 0); // v4: length, version, header_length
        var (exit, output, wrote) = PatchTo(input, strategy);
        if (strategy == "insert-nop")
        {
            StringAssert.Contains(output, "minimum_instruction_length 0");
            StringAssert.Contains(output, $"warning {DiagnosticCatalog.InsertNopNotPossible}");
        }
        else
        {
            Assert.AreEqual(CliApp.ExitAccepted, exit, output);
            Assert.IsTrue(wrote);
            StringAssert.Contains(output, "fixed (island)");
        }
    }

    [TestMethod]
    [DataRow("auto"), DataRow("insert-nop"), DataRow("island")]
    public void FdeRangeOfFourGigabytes(string strategy)
    {
        string input = MutatedFixture("oracle_caller.und.le.o", (b, img) =>
        {
            var fde = Dwarf.CallFrameInfo.ReadAll(img).Single(c => c.IsEhFrame).Fdes.First();
            BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan((int)img.Sections.First(s => s.Name == ".eh_frame").Offset
                + fde.PcRangeField), 0xffff_ffff);
        });
        var (exit, output, wrote) = PatchTo(input, strategy);
        StringAssert.Contains(output, "FDE at 0x14 covers 0xffffffff bytes from 0x0, past the end of its code section");
        if (strategy == "insert-nop")
        {
            Assert.AreEqual(CliApp.ExitRejected, exit, output);
            StringAssert.Contains(output, $"error {DiagnosticCatalog.InsertNopNotPossible}");
        }
        else
        {
            // The island needs no frame rewrite to be right; the unwinder just has no row for it (said as PLP4003).
            Assert.AreEqual(CliApp.ExitAccepted, exit, output);
            Assert.IsTrue(wrote);
            StringAssert.Contains(output, $"info {DiagnosticCatalog.UnwindNotExtended}");
        }
    }

    [TestMethod]
    [DataRow("auto"), DataRow("insert-nop"), DataRow("island")]
    public void TocOfTypeNote(string strategy)
    {
        string input = MutatedFixture("calls.kpatch.le.o", (b, img) =>
            BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan((int)SectionHeaderOffset(b,
                img.Sections.First(s => s.Name == ".toc").Index) + 4), 7)); // SHT_NOTE
        var (exit, output, wrote) = PatchTo(input, strategy);
        // The ELF library would read the words as notes and drop them: refused, nothing written.
        Assert.AreEqual(CliApp.ExitRejected, exit, output);
        StringAssert.Contains(output, $"error {DiagnosticCatalog.CannotRewrite}: the object cannot be rewritten");
        StringAssert.Contains(output, "the rewritten object would be malformed");
        Assert.IsFalse(wrote, "a refused object gets no output");
    }
    [TestMethod]
    [DataRow("calls.p10.le.o", DiagnosticCatalog.UnsupportedRelocation)]   // Power10 REL24_NOTOC on a TOC kernel
    [DataRow("livepatch.klpbad.le.o", DiagnosticCatalog.MalformedKlpRelaSection)]
    public void RejectedObjectGetsNoOutput(string fixture, string code)
    {
        string dir = Repo.NewTempDir();
        string output = Path.Combine(dir, "out.o");
        var stdout = new StringWriter();
        int exit = CliApp.Run(["patch", "-o", output, Repo.Fixture(fixture)], stdout, new StringWriter());
        Assert.AreEqual(CliApp.ExitRejected, exit, stdout.ToString());
        StringAssert.Contains(stdout.ToString(), $"error {code}");
        Assert.IsFalse(File.Exists(output), "make must not find an up-to-date output of a failed patch");
        Assert.AreEqual(0, Directory.GetFiles(dir).Length);
    }
}
