namespace PpcLivepatch.Build.Tests;

/// <summary>
/// A fresh machine and a fresh clone: the prerequisites script while another apt holds dpkg's lock, and what an IDE
/// does first with the clone, restoring the solution (nuget.config names the local feed, artifacts/packages, which
/// must exist before anything was packed: NU1301 "The local source … doesn't exist" before).
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

    /// <summary>
    /// eng/install-prerequisites.sh waits for another apt (unattended-upgrades on a machine just booted) instead of
    /// giving up at once with "Could not get lock /var/lib/dpkg/lock-frontend": here the lock is held for 20 s by
    /// another process, as apt holds it, and the script, told every package is missing (a dpkg-query that finds
    /// none), runs the real apt-get, which must wait for it and then succeed (installing nothing new).
    /// </summary>
    [TestMethod]
    public void ThePrerequisitesScriptWaitsForAnotherAptsLock()
    {
        Assert.AreEqual("0", Tool.Run(Repo.Root, "id", "-u").Output.Trim(),
            "this test holds dpkg's lock and runs apt-get: run the suite as root (CI does)");
        string dir = Repo.NewTempDir(), bin = Path.Combine(dir, "bin");
        Directory.CreateDirectory(bin);
        File.WriteAllText(Path.Combine(bin, "dpkg-query"), "#!/bin/sh\nexit 1\n");
        File.SetUnixFileMode(Path.Combine(bin, "dpkg-query"),
            UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);

        const int HeldSeconds = 20;
        var holder = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("python3",
            ["-c", "import fcntl, sys, time\n" +
                "f = open('/var/lib/dpkg/lock-frontend', 'w')\n" +
                "fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)\n" +
                "print('held', flush=True)\n" +
                $"time.sleep({HeldSeconds})\n"])
            { RedirectStandardOutput = true, RedirectStandardError = true })!;
        try
        {
            // (Its stderr is read only if it failed: reading it to the end waits for the holder to end.)
            if (holder.StandardOutput.ReadLine() != "held") Assert.Fail(holder.StandardError.ReadToEnd());
            var held = System.Diagnostics.Stopwatch.StartNew();
            Assert.IsFalse(holder.HasExited, "the lock holder ended before the script ran");
            var install = Tool.RunWith(new Dictionary<string, string>
                { ["PATH"] = bin + ":" + Environment.GetEnvironmentVariable("PATH") },
                Repo.Root, Path.Combine(Repo.Root, "eng", "install-prerequisites.sh"));
            Assert.AreEqual(0, install.ExitCode, install.Output);
            Assert.IsFalse(install.Output.Contains("Could not get lock", StringComparison.Ordinal), install.Output);
            Assert.IsTrue(held.Elapsed.TotalSeconds >= HeldSeconds - 1,
                $"apt-get finished after {held.Elapsed.TotalSeconds:F1} s, before the lock was released (holder " +
                $"ended: {holder.HasExited})\n" + install.Output);
        }
        finally
        {
            if (!holder.HasExited) holder.Kill();
            holder.WaitForExit();
        }
    }
}
