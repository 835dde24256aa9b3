using PpcLivepatch.Elf;

namespace PpcLivepatch.Tests;

[TestClass]
public sealed class AtomicFileTests
{
    [TestMethod]
    public void ReplacesContentAndLeavesNoTemporaryFile()
    {
        string dir = Repo.NewTempDir();
        string path = Path.Combine(dir, "out.o");
        File.WriteAllText(path, "old");

        AtomicFile.WriteAllBytes(path, "new content"u8);

        Assert.AreEqual("new content", File.ReadAllText(path));
        CollectionAssert.AreEqual(new[] { path }, Directory.GetFiles(dir));
    }

    [TestMethod]
    public void AWriteReplacesTheFileItsNameOrALinkReaches()
    {
        string dir = Repo.NewTempDir();
        string input = Path.Combine(dir, "in.o"), other = Path.Combine(dir, "out.o"), link = Path.Combine(dir, "l.o");
        File.WriteAllText(input, "x");
        File.CreateSymbolicLink(link, "in.o");

        Assert.IsTrue(AtomicFile.Replaces(input, input));
        Assert.IsTrue(AtomicFile.Replaces(Path.Combine(dir, ".", "in.o"), input));
        Assert.IsTrue(AtomicFile.Replaces(link, input));
        Assert.IsFalse(AtomicFile.Replaces(other, input), "a new file replaces nothing");
    }

    [TestMethod]
    public void FailedWriteLeavesTheOldFileUntouched()
    {
        string dir = Repo.NewTempDir();
        string path = Path.Combine(dir, "missing-subdir", "out.o");

        Assert.ThrowsExactly<DirectoryNotFoundException>(() => AtomicFile.WriteAllBytes(path, "x"u8));
        Assert.AreEqual(0, Directory.GetFiles(dir).Length);
    }
}
