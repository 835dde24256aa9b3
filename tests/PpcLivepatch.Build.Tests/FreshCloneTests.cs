namespace PpcLivepatch.Build.Tests;

/// <summary>
/// What an IDE does first with a fresh clone: restore the solution. nuget.config names the local feed
/// (artifacts/packages), which must exist before anything was packed (NU1301 "The local source … doesn't exist"
/// before).
/// </summary>
[TestClass]
public sealed class FreshCloneTests
{
    [TestMethod]
    public void TheSolutionRestoresInAFreshClone()
    {
        string dir = Repo.NewTempDir(), clone = Path.Combine(dir, "clone");
        var cloned = Tool.Run(dir, "git", "clone", "--quiet", "--no-hardlinks", Repo.Root, clone);
        Assert.AreEqual(0, cloned.ExitCode, cloned.Output);
        Assert.IsTrue(Directory.Exists(Path.Combine(clone, "artifacts", "packages")),
            "the local feed's folder comes with the clone");
        var restore = Tool.Run(clone, "dotnet", "restore", "PpcLivepatch.Build.sln", "-nologo");
        Assert.AreEqual(0, restore.ExitCode, restore.Output);
        Assert.IsFalse(restore.Output.Contains("NU1301"), restore.Output);
    }
}
