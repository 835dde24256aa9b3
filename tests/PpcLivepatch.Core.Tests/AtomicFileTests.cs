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
    public void FailedWriteLeavesTheOldFileUntouched()
    {
        string dir = Repo.NewTempDir();
        string path = Path.Combine(dir, "missing-subdir", "out.o");

        Assert.ThrowsExactly<DirectoryNotFoundException>(() => AtomicFile.WriteAllBytes(path, "x"u8));
        Assert.AreEqual(0, Directory.GetFiles(dir).Length);
    }
}
