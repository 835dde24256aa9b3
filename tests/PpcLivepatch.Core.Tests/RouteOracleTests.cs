using System.Collections.Concurrent;
using PpcLivepatch.AssemblerRoute;
using PpcLivepatch.Diagnostics;
using PpcLivepatch.Elf;
using PpcLivepatch.Patching;

namespace PpcLivepatch.Tests;

/// <summary>
/// Every route over the rich generated programs (<see cref="SwitchProgramGenerator"/> with computed gotos, function-
/// pointer tables, setjmp/longjmp, VLAs, varargs and inline-assembly program-counter reads): the assembler route
/// (then the object step over what it left), and the object rewriters auto, insert-nop and island over the compiler's
/// own object; GCC 12 (little- and big-endian) and clang-14, medium and large model, -O1..-O3/-Os by seed, one section
/// per function or one for all, no debug
/// information, the default -g (DWARF 5 with location views) and -gdwarf-4, and -fPIC. Every call is chosen
/// (all-local). Each route's program must print the compiler's own program's output, or the route must refuse with a
/// coded diagnostic and write nothing; a second auto patch of any output must find nothing to do. A small set runs by
/// default; PPCLP_ROUTE_COUNT=N runs N programs per configuration (the closing note's long run).
/// </summary>
[TestClass]
public sealed class RouteOracleTests
{
    private const int DefaultPrograms = 1;

    public static IEnumerable<object[]> Configurations =>
        new[]
        {
            new object[] { "gcc", "large", "-g" }, ["gcc", "medium", ""], ["gcc", "large", "-gdwarf-4"],
            ["gcc", "medium", "-g -fPIC"], ["clang", "large", "-g"], ["clang", "medium", ""],
            ["clang", "large", "-gdwarf-4 -fPIC"], ["gcc-be", "large", "-g"], ["gcc-be", "medium", ""],
            // One .text for every function: a function the object rewriter cannot prove moves as a whole.
            ["gcc", "large", "-g -fno-function-sections"], ["clang", "medium", "-fno-function-sections"],
            // GCC 14 (the 6.12 and 7.x lines' compiler) with its default -g, and the kernels' ftrace nops at each
            // entry: two (6.12), one (out of line), and in one .text where moved code carries the records along.
            ["gcc14", "large", "-g"], ["gcc14", "medium", "-g -fpatchable-function-entry=2"],
            ["gcc14", "large", "-fpatchable-function-entry=1"],
            ["gcc14", "medium", "-g -fpatchable-function-entry=2 -fno-function-sections"],
        };

    [TestMethod]
    [DynamicData(nameof(Configurations))]
    public void EveryRouteKeepsTheProgramsMeaning(string compiler, string model, string extra)
    {
        int programs = int.TryParse(Environment.GetEnvironmentVariable("PPCLP_ROUTE_COUNT"), out int n) && n > 0
            ? n : DefaultPrograms;
        var outcome = Run(compiler, model, extra, programs, seedBase: 5000);
        Console.WriteLine(outcome.Summary);
        Assert.AreEqual(0, outcome.Wrong.Count, string.Join("\n", outcome.Wrong));
        Assert.AreEqual(0, outcome.NotIdempotent.Count, string.Join("\n", outcome.NotIdempotent));
        Assert.IsTrue(outcome.Runs["asm"] > 0, "the assembler route ran no program");
        Assert.IsTrue(outcome.AsmNops > 0, "the assembler route should have placed nops");
    }

    [TestMethod]
    public void TheRichGeneratorMakesWhatItSays()
    {
        string c = new SwitchProgramGenerator(5000, rich: true).Program() + new SwitchProgramGenerator(5001, rich:
            true).Program();
        foreach (string feature in new[] { "goto *t[", "goto *(&&", "fptab[", "setjmp(jb)", "v[n]", "hv(3,",
            "pc_word()", "switch (" })
            StringAssert.Contains(c, feature);
    }

    internal sealed record Outcome(Dictionary<string, int> Runs, int AsmNops, List<string> Wrong,
        List<string> NotIdempotent, Dictionary<string, int> Refusals)
    {
        public string Summary =>
            $"runs {string.Join(", ", Runs.Select(kv => $"{kv.Key} {kv.Value}"))}; {AsmNops} nops by the assembler " +
            $"route; {Wrong.Count} wrong; {NotIdempotent.Count} not idempotent; refusals: " +
            (Refusals.Count == 0 ? "none" : string.Join(", ", Refusals.Select(kv => $"{kv.Value}× {kv.Key}")));
    }

    private static readonly string[] OptimizationLevels = ["-O1", "-O2", "-O3", "-Os"];

    internal static Outcome Run(string compiler, string model, string extra, int programs, int seedBase)
    {
        string dir = Repo.NewTempDir();
        bool bigEndian = compiler == "gcc-be";
        // GCC 14's programs are linked with its own C library (Debian 13's), as they were compiled against it.
        string gcc = bigEndian ? "powerpc64-linux-gnu-gcc" : compiler == "gcc14" ? Gcc14.Driver
                : "powerpc64le-linux-gnu-gcc",
            qemu = bigEndian ? "qemu-ppc64" : "qemu-ppc64le";
        string[] driver = compiler == "clang" ? ["clang-14", "--target=powerpc64le-linux-gnu"]
            : compiler == "gcc14" ? [Gcc14.Driver] : [gcc];
        string harnessObj = Path.Combine(dir, "harness.o");
        File.WriteAllText(Path.Combine(dir, "harness.c"), new SwitchProgramGenerator(seedBase).Harness());
        Tool.Check(gcc, "-O2", "-c", Path.Combine(dir, "harness.c"), "-o", harnessObj);

        var runs = new ConcurrentDictionary<string, int>(new[] { "asm", "asm+auto", "auto", "insert-nop", "island" }
            .ToDictionary(r => r, _ => 0));
        var wrong = new ConcurrentBag<string>();
        var notIdempotent = new ConcurrentBag<string>();
        var refusals = new ConcurrentDictionary<string, int>();
        int asmNops = 0;
        Parallel.For(0, programs, new ParallelOptions { MaxDegreeOfParallelism = 2 }, i =>
        {
            int seed = seedBase + i;
            string opt = OptimizationLevels[seed % OptimizationLevels.Length];
            string what = $"{compiler} -mcmodel={model} {opt} {extra} seed {seed}";
            string c = Path.Combine(dir, $"p{seed}.c"), plain = Path.Combine(dir, $"p{seed}.o");
            File.WriteAllText(c, new SwitchProgramGenerator(seed, rich: true).Program());
            string[] flags = [.. driver, opt, $"-mcmodel={model}", "-ffunction-sections",
                .. extra.Split(' ', StringSplitOptions.RemoveEmptyEntries)];
            Tool.Check(flags[0], [.. flags[1..], "-c", c, "-o", plain]);
            string expected = RunLinked(gcc, qemu, harnessObj, plain, $"{plain}.exe");
            if (extra.Contains("-fpatchable-function-entry", StringComparison.Ordinal)
                && PatchableEntries(plain).Count == 0)
                wrong.Add($"{what}: the compiler wrote no __patchable_function_entries records");

            void Check(string route, string obj, byte[]? bytes, FixStrategy strategy)
            {
                if (bytes is not null) File.WriteAllBytes(obj, bytes);
                string actual = RunLinked(gcc, qemu, harnessObj, obj, $"{obj}.exe");
                if (actual != expected)
                    wrong.Add($"{what} {route}: expected '{expected.Trim()}', got '{actual.Trim()}' (kept in {dir})");
                if (PatchableEntries(obj) is var entries && !entries.SequenceEqual(PatchableEntries(plain)))
                    wrong.Add($"{what} {route}: the ftrace nops are no longer where their records say, at each " +
                        $"function's entry: {string.Join(", ", entries)} (kept in {dir})");
                runs.AddOrUpdate(route, 1, (_, k) => k + 1);
                // Idempotence: what a route wrote has nothing left for a second patch of the same strategy (the
                // assembler route's output is for the object step, which is auto).
                Assert.IsTrue(ElfImage.TryLoad(obj, out var image, out var error), error?.Message);
                var again = ObjectPatcher.Patch(image!, new PatchOptions(strategy, SiteSelection.AllLocal));
                if (again.Fixes.Count > 0 && route != "asm")
                    notIdempotent.Add($"{what} {route}: a second patch fixed {again.Fixes.Count} more: " +
                        string.Join(", ", again.Fixes.Take(4).Select(f => $"{f.Function}+0x{f.Offset:x} {f.Callee}")));
            }
            void Refused(string route, IEnumerable<Diagnostic> diagnostics)
            {
                var coded = diagnostics.Where(d => d.Severity == Severity.Error).ToList();
                if (coded.Count == 0) wrong.Add($"{what} {route}: no output and no coded refusal");
                foreach (var d in coded.Take(1)) refusals.AddOrUpdate($"{route} {d.Code}", 1, (_, k) => k + 1);
            }

            // The assembler route, then the object step over what it left (as the SDK runs them).
            string asm = Path.Combine(dir, $"p{seed}.asm.o");
            var routed = AssemblerRouteCompiler.Run([.. flags, "-c", c, "-o", asm],
                new AssemblerRouteOptions(NopRules.For([], allLocal: true)), TextWriter.Null, TextWriter.Null);
            if (routed.ExitCode != 0)
            {
                if (File.Exists(asm)) wrong.Add($"{what} asm: an object was left after a refusal");
                Refused("asm", routed.Diagnostics);
            }
            else
            {
                Interlocked.Add(ref asmNops, routed.NopsInserted);
                foreach (var d in routed.Diagnostics) refusals.AddOrUpdate($"asm {d.Code}", 1, (_, k) => k + 1);
                Check("asm", asm, null, FixStrategy.Auto);
                Assert.IsTrue(ElfImage.TryLoad(asm, out var routedImage, out _));
                var rest = ObjectPatcher.Patch(routedImage!, new PatchOptions(FixStrategy.Auto,
                    SiteSelection.AllLocal));
                // The route's nops are the calls' own: the object step only fixes sections the route left to it.
                var left = routed.Diagnostics.Where(d => d.Code == DiagnosticCatalog.AsmCallsLeftToObjectStep)
                    .Select(d => d.Section).ToHashSet();
                foreach (var f in rest.Fixes.Where(f => !left.Contains(f.Section)).Take(3))
                    notIdempotent.Add($"{what} asm: the object step fixed {f.Function}+0x{f.Offset:x} {f.Callee} in " +
                        $"{f.Section}, a section the route did not leave to it");
                if (rest.Output is null) Refused("asm+auto", rest.Report.Diagnostics);
                else Check("asm+auto", $"{asm}.auto.o", rest.Output, FixStrategy.Auto);
            }

            Assert.IsTrue(ElfImage.TryLoad(plain, out var image, out _));
            foreach (var (route, strategy) in new[] { ("auto", FixStrategy.Auto),
                ("insert-nop", FixStrategy.InsertNop), ("island", FixStrategy.Island) })
            {
                var result = ObjectPatcher.Patch(image!, new PatchOptions(strategy, SiteSelection.AllLocal));
                if (result.Output is null) Refused(route, result.Report.Diagnostics);
                else Check(route, $"{plain}.{route}.o", result.Output, strategy);
            }
        });
        return new Outcome(new(runs), asmNops, [.. wrong], [.. notIdempotent], new(refusals));
    }

    /// <summary>Each -fpatchable-function-entry record as the function it is in, its offset there, and whether
    /// nops are at it: a route may move code, never a function's entry nops away from its entry.</summary>
    private static List<string> PatchableEntries(string obj)
    {
        Assert.IsTrue(ElfImage.TryLoad(obj, out var image, out var error), error?.Message);
        var entries = new List<string>();
        foreach (var (section, offset) in Analysis.FtraceSites.PatchableRecords(image!))
        {
            var f = image!.Symbols.FirstOrDefault(s => s.Type == ElfConstants.SttFunc && s.SectionIndex == section
                && offset >= s.Value && offset < s.Value + Math.Max(s.Size, 1));
            var code = image.Data(image.Sections[section]);
            bool nop = offset + 4 <= (ulong)code.Length && image.ReadU32(code, (int)offset) == Ppc64.Instruction.Nop;
            entries.Add($"{f?.Name ?? "?"}+0x{offset - (f?.Value ?? 0):x}{(nop ? "" : " (not a nop)")}");
        }
        entries.Sort(StringComparer.Ordinal);
        return entries;
    }

    private static string RunLinked(string gcc, string qemu, string harness, string obj, string exe)
    {
        var link = Tool.Run(gcc, "-static", harness, obj, "-o", exe);
        if (link.ExitCode != 0) return $"link failed: {link.Stderr.Trim()}";
        var r = Tool.Run("timeout", "20", qemu, exe);
        return r.ExitCode == 0 ? r.Stdout : $"exit {r.ExitCode}: {r.Stderr.Trim()}";
    }
}
