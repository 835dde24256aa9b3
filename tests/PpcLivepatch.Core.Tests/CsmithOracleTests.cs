using PpcLivepatch.Elf;
using PpcLivepatch.Patching;

namespace PpcLivepatch.Tests;

/// <summary>
/// Semantic preservation at breadth: random C programs from Debian's csmith, compiled for ppc64le, patched with
/// --sites all-local (every local call through an island), linked statically and run under qemu-ppc64le must print
/// the same checksum as the unpatched program. A handful run by default; PPCLP_CSMITH_COUNT=200 runs more.
/// </summary>
[TestClass]
public sealed class CsmithOracleTests
{
    private const int DefaultPrograms = 4;
    private static readonly TimeSpan RunLimit = TimeSpan.FromSeconds(10);

    [TestMethod]
    [DataRow(FixStrategy.Island, "", "gcc")]
    // insert-nop handles objects without unwind tables so far; -fno-asynchronous-unwind-tables lets auto use it
    // wherever no conditional branch would fall out of reach.
    [DataRow(FixStrategy.Auto, "-fno-asynchronous-unwind-tables", "gcc")]
    // GCC 14, the newer kernel lines' compiler, with their two patchable nops at each entry.
    [DataRow(FixStrategy.Auto, "-fno-asynchronous-unwind-tables -fpatchable-function-entry=2", "gcc14")]
    [DataRow(FixStrategy.Island, "-g", "gcc14")]
    public void RandomProgramsComputeTheSameChecksumAfterPatching(FixStrategy strategy, string extraFlag,
        string compiler)
    {
        // GCC 14 runs in its Debian 13 environment, which sees the test's folders but not this machine's
        // /usr/include: csmith's headers go along.
        string gcc = compiler == "gcc14" ? Gcc14.Driver : "powerpc64le-linux-gnu-gcc";
        int wanted = int.TryParse(Environment.GetEnvironmentVariable("PPCLP_CSMITH_COUNT"), out int n)
            && n > 0 ? n : DefaultPrograms;
        string dir = Repo.NewTempDir();
        string csmithInclude = "/usr/include/csmith";
        if (compiler == "gcc14")
        {
            if (!Directory.Exists("/usr/include/csmith"))
                Assert.Fail("csmith's headers are not installed: run eng/install-prerequisites.sh (apt-get install " +
                    "csmith libcsmith-dev)");
            csmithInclude = Path.Combine(dir, "csmith-include");
            Directory.CreateDirectory(csmithInclude);
            foreach (string h in Directory.GetFiles("/usr/include/csmith"))
                File.Copy(h, Path.Combine(csmithInclude, Path.GetFileName(h)));
        }
        int compared = 0, sitesFixed = 0, nonTerminating = 0, nopSites = 0;
        var failures = new List<string>();
        for (int seed = 1; compared < wanted && seed <= wanted * 4; seed++)
        {
            string c = Path.Combine(dir, $"p{seed}.c"), o = Path.Combine(dir, $"p{seed}.o"), exe =
                Path.Combine(dir, $"p{seed}");
            Tool.Check("csmith", "--seed", seed.ToString(), "--max-funcs", "10", "--no-packed-struct", "-o", c);
            Tool.Check(gcc,
                ["-O2", "-ffunction-sections", "-w", "-I" + csmithInclude,
                    .. extraFlag.Split(' ', StringSplitOptions.RemoveEmptyEntries), "-c", c, "-o", o]);
            Tool.Check(gcc, "-static", o, "-o", exe);
            var expected = RunWithLimit(exe);
            // csmith programs may loop for a long time: take the next seed
            if (expected is null) { nonTerminating++; continue; }

            Assert.IsTrue(ElfImage.TryLoad(o, out var image, out _));
            var result = ObjectPatcher.Patch(image!, new PatchOptions(strategy, SiteSelection.AllLocal));
            Assert.IsFalse(result.Report.Diagnostics.Any(d =>
                d.Code == Diagnostics.DiagnosticCatalog.InsertNopNotPossible),
                string.Join("\n", result.Report.Diagnostics.Select(d => d.Message)));
            string patchedObj = Path.Combine(dir, $"p{seed}.patched.o"), patchedExe = exe + ".patched";
            File.WriteAllBytes(patchedObj, result.Output!);
            Tool.Check(gcc, "-static", patchedObj, "-o", patchedExe);
            string? actual = RunWithLimit(patchedExe, RunLimit * 3);
            if (actual != expected) failures.Add($"seed {seed}: expected '{expected?.Trim()}', got '{actual?.Trim()}'");
            compared++;
            sitesFixed += result.Fixes.Count;
            nopSites += result.Fixes.Count(f => f.Strategy == FixStrategy.InsertNop);
        }
        Console.WriteLine($"csmith ({compiler} {strategy} {extraFlag}): {compared} programs compared, {sitesFixed} call sites fixed " +
            $"({nopSites} by insert-nop), {nonTerminating} seeds skipped as non-terminating, {failures.Count} " +
                "mismatches");
        Assert.AreEqual(0, failures.Count, string.Join("\n", failures));
        Assert.AreEqual(wanted, compared, "not enough terminating csmith programs");
        Assert.IsTrue(sitesFixed > compared, "the programs should have had local calls to fix");
        if (strategy == FixStrategy.Auto) Assert.IsTrue(nopSites > sitesFixed / 4, "auto should insert nops in most " +
            $"sections ({nopSites} of {sitesFixed})");
    }

    private static string? RunWithLimit(string exe, TimeSpan? limit = null)
    {
        var r = Tool.Run("timeout", ((int)(limit ?? RunLimit).TotalSeconds).ToString(), "qemu-ppc64le", exe);
        if (r.ExitCode == 124) return null;
        Assert.AreEqual(0, r.ExitCode, $"{exe}: {r.Stderr}");
        StringAssert.StartsWith(r.Stdout, "checksum = ");
        return r.Stdout;
    }
}
