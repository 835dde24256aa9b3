using System.Buffers.Binary;
using System.Security.Cryptography;
using PpcLivepatch.Cli;
using PpcLivepatch.Diagnostics;
using PpcLivepatch.Elf;

namespace PpcLivepatch.Tests;

/// <summary>
/// What <c>verify</c> and <c>patch</c> do with files that are not plain objects in plain files: FIFOs, devices,
/// symbolic links, large sparse files, and the permissions of what they write.
/// </summary>
[TestClass]
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class SpecialFileTests
{
    private const string Fixture = "livepatch.und.le.o";   // one call to fix

    private static (int Exit, string Out) Cli(params string[] args)
    {
        var stdout = new StringWriter();
        // Run apart, so that a hang fails the test instead of the run.
        var run = Task.Run(() => CliApp.Run(args, stdout, new StringWriter()));
        Assert.IsTrue(run.Wait(TimeSpan.FromSeconds(60)), $"ppc-livepatch {string.Join(' ', args)} did not finish");
        return (run.Result, stdout.ToString());
    }

    private static string MakeFifo(string dir)
    {
        string fifo = Path.Combine(dir, "pipe.o");
        Tool.Check("mkfifo", fifo);
        return fifo;
    }

    [TestMethod]
    [DataRow("verify"), DataRow("patch")]
    public void FifoInputIsRefusedAtOnce(string command)
    {
        string fifo = MakeFifo(Repo.NewTempDir());
        var (exit, output) = Cli(command, fifo);
        Assert.AreEqual(CliApp.ExitUsage, exit, output);
        Assert.AreEqual($"{fifo} : error {DiagnosticCatalog.UnreadableFile}: cannot read '{fifo}': it is a FIFO, not " +
            "a regular file.",
            output.Trim());
    }

    [TestMethod]
    [DataRow("verify"), DataRow("patch")]
    public void DeviceInputIsRefused(string command)
    {
        var (exit, output) = Cli(command, "/dev/zero");
        Assert.AreEqual(CliApp.ExitUsage, exit, output);
        StringAssert.Contains(output, $"error {DiagnosticCatalog.UnreadableFile}: cannot read '/dev/zero': it is a " +
            "character device");
    }

    [TestMethod]
    public void OutputToDevNullLeavesTheDevice()
    {
        var (exit, output) = Cli("patch", "-o", "/dev/null", Repo.Fixture(Fixture));
        Assert.AreEqual(CliApp.ExitAccepted, exit, output);
        Assert.AreEqual(FileKind.CharacterDevice, FileKinds.Of("/dev/null"), "/dev/null was replaced");
    }

    [TestMethod]
    public void OutputToAFifoIsWrittenThrough()
    {
        string dir = Repo.NewTempDir();
        string fifo = MakeFifo(dir);
        var reader = Task.Run(() => File.ReadAllBytes(fifo));
        var (exit, output) = Cli("patch", "-o", fifo, Repo.Fixture(Fixture));
        Assert.AreEqual(CliApp.ExitAccepted, exit, output);
        Assert.IsTrue(reader.Wait(TimeSpan.FromSeconds(30)));
        Assert.AreEqual(FileKind.Fifo, FileKinds.Of(fifo));
        Assert.IsTrue(ElfImage.TryParse("from-fifo", reader.Result, out var image, out var error), error?.Message);
        Assert.IsTrue(image!.Sections.Count > 0);
    }

    [TestMethod]
    public void OutputThroughASymlinkReplacesItsTarget()
    {
        string dir = Repo.NewTempDir();
        string target = Path.Combine(dir, "real.o"), link = Path.Combine(dir, "link.o");
        File.WriteAllText(target, "old");
        File.CreateSymbolicLink(link, "real.o");
        var (exit, output) = Cli("patch", "-o", link, Repo.Fixture(Fixture));
        Assert.AreEqual(CliApp.ExitAccepted, exit, output);
        Assert.AreEqual("real.o", new FileInfo(link).LinkTarget, "the link must stay a link");
        Assert.IsTrue(ElfImage.TryLoad(target, out _, out var error), error?.Message);
    }

    [TestMethod]
    public void InPlacePatchOfASymlinkPatchesItsTargetAndKeepsItsMode()
    {
        string dir = Repo.NewTempDir();
        string target = Path.Combine(dir, "real.o"), link = Path.Combine(dir, "link.o");
        File.Copy(Repo.Fixture(Fixture), target);
        File.SetUnixFileMode(target, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead);
        File.CreateSymbolicLink(link, target);
        byte[] before = File.ReadAllBytes(target);

        var (exit, output) = Cli("patch", link);

        Assert.AreEqual(CliApp.ExitAccepted, exit, output);
        Assert.AreEqual(target, new FileInfo(link).LinkTarget);
        CollectionAssert.AreNotEqual(before, File.ReadAllBytes(target), "the target was not patched");
        Assert.AreEqual(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead,
            File.GetUnixFileMode(target));
    }

    [TestMethod]
    public void NewOutputGetsTheInputsMode()
    {
        string dir = Repo.NewTempDir();
        string input = Path.Combine(dir, "in.o"), output = Path.Combine(dir, "out.o");
        File.Copy(Repo.Fixture(Fixture), input);
        var mode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        File.SetUnixFileMode(input, mode);
        var (exit, text) = Cli("patch", "-o", output, input);
        Assert.AreEqual(CliApp.ExitAccepted, exit, text);
        Assert.AreEqual(mode, File.GetUnixFileMode(output));
    }

    [TestMethod]
    public void OutputToADirectoryIsACodedError()
    {
        string dir = Repo.NewTempDir();
        var (exit, output) = Cli("patch", "-o", dir, Repo.Fixture(Fixture));
        Assert.AreEqual(CliApp.ExitUsage, exit, output);
        StringAssert.Contains(output, $"error {DiagnosticCatalog.UnwritableOutput}: cannot write '{dir}': it is a " +
            "directory");
    }

    [TestMethod]
    public void LargeSparseFileReadsOnlyTheObject()
    {
        // 1.5 GB on disk as far as stat is concerned, a few kilobytes of object: verify and patch read those.
        string dir = Repo.NewTempDir();
        string path = Path.Combine(dir, "sparse.o");
        File.Copy(Repo.Fixture(Fixture), path);
        using (var f = new FileStream(path, FileMode.Open)) f.SetLength(1_500L << 20);
        var before = GC.GetTotalAllocatedBytes(precise: true);
        var (exit, output) = Cli("verify", path);
        long allocated = GC.GetTotalAllocatedBytes(precise: true) - before;
        Assert.AreEqual(CliApp.ExitRejected, exit, output);   // the unfixed call, as for the fixture itself
        StringAssert.Contains(output, $"error {DiagnosticCatalog.MissingNopAfterCall}");
        Assert.IsTrue(allocated < 64 << 20, $"verify allocated {allocated} bytes for a 1.5 GB sparse file");

        var (patchExit, patchOutput) = Cli("patch", "-o", Path.Combine(dir, "out.o"), path);
        Assert.AreEqual(CliApp.ExitAccepted, patchExit, patchOutput);
        Assert.IsTrue(new FileInfo(Path.Combine(dir, "out.o")).Length < 1 << 20);
    }

    [TestMethod]
    [DataRow("verify"), DataRow("patch")]
    public void ObjectLargerThanTwoGigabytesIsOneCode(string command)
    {
        // A section placed at 2 GiB in a sparse file: the object really is that large. Both commands say so alike.
        string path = Path.Combine(Repo.NewTempDir(), "huge.o");
        byte[] bytes = File.ReadAllBytes(Repo.Fixture(Fixture));
        Assert.IsTrue(ElfImage.TryParse("f", bytes, out var image, out _));
        var comment = image!.Sections.First(s => s.Name == ".comment");
        ulong shoff = BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(40));
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan((int)shoff + comment.Index * 64 + 24), 1UL << 31);
        File.WriteAllBytes(path, bytes);
        using (var f = new FileStream(path, FileMode.Open)) f.SetLength((1L << 31) + 4096);
        byte[] hash = SHA256.HashData(File.OpenRead(path));

        var (exit, output) = Cli(command, path);

        Assert.AreEqual(CliApp.ExitUsage, exit, output);
        StringAssert.Contains(output, $"{path} : error {DiagnosticCatalog.UnreadableFile}: cannot read '{path}': the " +
            "object is ");
        StringAssert.Contains(output, "bytes are not supported");
        CollectionAssert.AreEqual(hash, SHA256.HashData(File.OpenRead(path)));
    }

    [TestMethod]
    public void ALargeFileClaimingMillionsOfSectionsIsNotReadIntoMemory()
    {
        // Extended section numbering (e_shnum 0, the count in section 0's sh_size) claiming 16 M sections, in a sparse
        // file large enough to hold their headers: refused from the headers, before any table is allocated.
        string path = Path.Combine(Repo.NewTempDir(), "many.o");
        byte[] bytes = File.ReadAllBytes(Repo.Fixture(Fixture));
        ulong shoff = BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(40));
        BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(60), 0);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan((int)shoff + 32), 16UL << 20);
        File.WriteAllBytes(path, bytes);
        using (var f = new FileStream(path, FileMode.Open)) f.SetLength((long)shoff + (16L << 20) * 64 + 4096);
        var (exit, output) = Cli("verify", path);
        Assert.AreEqual(CliApp.ExitUsage, exit, output);
        StringAssert.Contains(output, $"error {DiagnosticCatalog.MalformedSectionTable}: the section header table " +
            "claims 16777216 sections");
    }
}
