using System.Collections.Concurrent;
using PpcLivepatch.Diagnostics;
using PpcLivepatch.Elf;
using PpcLivepatch.Patching;

namespace PpcLivepatch.Tests;

/// <summary>
/// Soundness at breadth, where the rewriter is most at risk: switch-heavy random programs
/// (<see cref="SwitchProgramGenerator"/>) compiled by GCC 12 and clang-14, medium and large code model, with and
/// without the compilers' default <c>-g</c> (DWARF 5 with location views), patched with every strategy and
/// <c>--sites all-local</c> (every local call fixed), linked statically and run under qemu-ppc64le. Each run must
/// print the unpatched program's checksum, or the patch must refuse with a coded diagnostic and write nothing — a
/// different checksum, a crash or an uncoded failure fails the test. A small set runs by default;
/// PPCLP_SWITCH_COUNT=N runs N programs per configuration.
/// </summary>
[TestClass]
public sealed class SwitchOracleTests
{
    private const int DefaultPrograms = 2;

    /// <summary>GCC (LE, and BE for ELFv1) and clang-14; both code models; no debug info, the default -g (DWARF 5 with
    /// location views), DWARF 4, and zlib-compressed debug sections.</summary>
    public static IEnumerable<object[]> Configurations =>
        (from model in new[] { "medium", "large" }
         from debug in new[] { "", "-g", "-gdwarf-4", "-g -gz=zlib" }
         select new object[] { "gcc", model, debug })
        .Concat(from debug in new[] { "", "-g" } select new object[] { "gcc-be", "large", debug })
        .Concat(from model in new[] { "medium", "large" } from debug in new[] { "",
            "-g" } select new object[] { "clang", model, debug });

    /// <summary>--sites needed: the helpers are global and made undefined (elfedit.py --undefine, as patch extraction
    /// does), so every call to them lacks the nop the loader wants; a separate object serves them at link
    /// time.</summary>
    public static IEnumerable<object[]> NeededConfigurations =>
        new[] { new object[] { "gcc", "large", "-g" }, ["gcc", "medium", ""], ["clang", "medium", ""],
            ["gcc-be", "large", ""] };

    [TestMethod]
    [DynamicData(nameof(Configurations))]
    public void PatchedSwitchProgramsComputeTheSameChecksumOrAreRefused(string compiler, string model, string debug) =>
        RunAndAssert(compiler, model, debug, SiteSelection.AllLocal);

    [TestMethod]
    [DynamicData(nameof(NeededConfigurations))]
    public void NeededSitesInSwitchProgramsAreFixedWithTheSameChecksum(string compiler, string model, string debug) =>
        RunAndAssert(compiler, model, debug, SiteSelection.Needed);

    private static void RunAndAssert(string compiler, string model, string debug, SiteSelection sites)
    {
        int programs = int.TryParse(Environment.GetEnvironmentVariable("PPCLP_SWITCH_COUNT"), out int n)
            && n > 0 ? n : DefaultPrograms;
        var outcome = Run(compiler, model, debug, programs, seedBase: 1000, sites);
        Console.WriteLine(outcome.Summary);
        Assert.AreEqual(0, outcome.Wrong.Count, string.Join("\n", outcome.Wrong));
        Assert.IsTrue(outcome.Compared > 0, "no patched program was run");
        Assert.IsTrue(outcome.SitesFixed > 0, "the programs should have had local calls to fix");
    }

    [TestMethod]
    public void TheGeneratorMakesJumpTablesWithAndWithoutBoundChecks()
    {
        // The programs must exercise what the oracle is for: bctr dispatches, some behind a mask with no cmplwi.
        string dir = Repo.NewTempDir();
        string c = Path.Combine(dir, "p.c"), o = Path.Combine(dir, "p.o");
        File.WriteAllText(c, new SwitchProgramGenerator(1000).Program());
        Tool.Check("powerpc64le-linux-gnu-gcc", "-O2", "-mcmodel=large", "-c", c, "-o", o);
        string disassembly = Tool.Check("powerpc64le-linux-gnu-objdump", "-d", o);
        Assert.IsTrue(disassembly.Split('\n').Count(l => l.Contains("\tbctr")) >= 4, "expected several jump tables");
        Assert.IsTrue(disassembly.Contains("andi."), "expected a masked switch");
    }

    internal sealed record Outcome(int Compared, int Refused, int SitesFixed, int NopSites, List<string> Wrong,
        Dictionary<string, int> RefusalsByReason)
    {
        public string Summary => $"{Compared} patched programs compared, {Refused} coded refusals, {SitesFixed} " +
            $"sites fixed ({NopSites} by insert-nop), "
                                 + $"{Wrong.Count} wrong; refusals: " +
                                     $"{string.Join("; ", RefusalsByReason.Select(kv => $"{kv.Value}× {kv.Key}"))}";
    }

    internal static Outcome Run(string compiler, string model, string debug, int programs, int seedBase,
        SiteSelection sites = SiteSelection.AllLocal)
    {
        bool needed = sites == SiteSelection.Needed;
        string dir = Repo.NewTempDir();
        string harnessObj = Path.Combine(dir, "harness.o");
        var generator0 = new SwitchProgramGenerator(seedBase);
        bool bigEndian = compiler == "gcc-be";
        string gcc = bigEndian ? "powerpc64-linux-gnu-gcc" : "powerpc64le-linux-gnu-gcc",
            qemu = bigEndian ? "qemu-ppc64" : "qemu-ppc64le";
        File.WriteAllText(Path.Combine(dir, "harness.c"), generator0.Harness());
        Tool.Check(gcc, "-O2", "-c", Path.Combine(dir, "harness.c"), "-o", harnessObj);

        int compared = 0, refused = 0, fixedSites = 0, nopSites = 0;
        var wrong = new ConcurrentBag<string>();
        var reasons = new ConcurrentDictionary<string, int>();
        var lockObj = new object();
        Parallel.For(0, programs, new ParallelOptions { MaxDegreeOfParallelism = 2 }, i =>
        {
            int seed = seedBase + i;
            string c = Path.Combine(dir, $"p{seed}.c"), o = Path.Combine(dir, $"p{seed}.o"), exe =
                Path.Combine(dir, $"p{seed}");
            var generator = new SwitchProgramGenerator(seed, globalHelpers: needed);
            File.WriteAllText(c, generator.Program());
            string[] flags =
                ["-O2", $"-mcmodel={model}", "-ffunction-sections",
                    .. debug.Split(' ', StringSplitOptions.RemoveEmptyEntries)];
            void Compile(string source, string obj)
            {
                if (compiler == "clang")
                    Tool.Check("clang-14", ["--target=powerpc64le-linux-gnu", .. flags, "-c", source, "-o", obj]);
                else Tool.Check(gcc, [.. flags, "-c", source, "-o", obj]);
            }
            Compile(c, o);
            string[] extraObjects = [];
            if (needed)
            {
                string helpers = Path.Combine(dir, $"h{seed}.c"), helpersObj = Path.Combine(dir, $"h{seed}.o"),
                    defined = o + ".defined";
                File.WriteAllText(helpers, generator.HelperUnit());
                Compile(helpers, helpersObj);
                File.Move(o, defined);
                Tool.Check("python3", [Path.Combine(Repo.Root, "tests", "fixtures", "elfedit.py"), defined, o,
                    .. generator.HelperNames.SelectMany(h => new[] { "--undefine", h })]);
                extraObjects = [helpersObj];
            }
            Tool.Check(gcc, ["-static", harnessObj, o, .. extraObjects, "-o", exe]);
            string expected = RunProgram(qemu, exe);

            Assert.IsTrue(ElfImage.TryLoad(o, out var image, out _));
            foreach (var strategy in new[] { FixStrategy.Auto, FixStrategy.InsertNop, FixStrategy.Island })
            {
                string what = $"{compiler} -mcmodel={model} {debug} seed {seed} {strategy} {sites}";
                var result = ObjectPatcher.Patch(image!, new PatchOptions(strategy, sites));
                var refusals = result.Report.Diagnostics.Where(d =>
                    d.Code is DiagnosticCatalog.InsertNopNotPossible or DiagnosticCatalog.RewriteNotProven).ToList();
                foreach (var d in refusals) reasons.AddOrUpdate(Reason(d), 1, (_, k) => k + 1);
                if (result.Output is null)
                {
                    if (refusals.Count == 0) wrong.Add($"{what}: no output and no coded refusal");
                    lock (lockObj) refused++;
                    continue;
                }
                string patchedObj = $"{o}.{strategy}.o", patchedExe = $"{exe}.{strategy}";
                File.WriteAllBytes(patchedObj, result.Output);
                var link = Tool.Run(gcc, ["-static", harnessObj, patchedObj, .. extraObjects, "-o", patchedExe]);
                if (link.ExitCode != 0)
                {
                    wrong.Add($"{what}: the patched object does not link: {link.Stderr}");
                    continue;
                }
                string actual = RunProgram(qemu, patchedExe);
                if (actual != expected) wrong.Add($"{what}: expected '{expected.Trim()}', got '{actual.Trim()}' " +
                    $"(kept in {dir})");
                lock (lockObj)
                {
                    compared++;
                    if (refusals.Count > 0) refused++;
                    fixedSites += result.Fixes.Count;
                    nopSites += result.Fixes.Count(f => f.Strategy == FixStrategy.InsertNop);
                }
            }
        });
        return new Outcome(compared, refused, fixedSites, nopSites, [.. wrong], new(reasons));
    }

    /// <summary>The reason of a refusal without its addresses, to count refusals by kind.</summary>
    private static string Reason(Diagnostic d)
    {
        string m = d.Message;
        int colon = m.IndexOf(": ", StringComparison.Ordinal);
        string why = colon < 0 ? m : m[(colon + 2)..];
        return System.Text.RegularExpressions.Regex.Replace(why, @"\+0x[0-9a-f]+|0x[0-9a-f]{8}|\d+", "N");
    }

    private static string RunProgram(string qemu, string exe)
    {
        var r = Tool.Run("timeout", "20", qemu, exe);
        return r.ExitCode == 0 ? r.Stdout : $"exit {r.ExitCode}: {r.Stderr.Trim()}";
    }
}
