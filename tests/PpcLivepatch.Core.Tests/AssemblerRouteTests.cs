using PpcLivepatch.Analysis;
using PpcLivepatch.AssemblerRoute;
using PpcLivepatch.Diagnostics;
using PpcLivepatch.Elf;
using PpcLivepatch.Patching;

namespace PpcLivepatch.Tests;

/// <summary>
/// The assembler route (Rel24Strategy=asm, <c>ppc-livepatch cc</c>): compile to assembly, a nop after each call to a
/// function that needs one, assemble, and write the object only when it is shown to differ from the compiler's by
/// exactly those nops. Nothing is left for the object rewriters where the proof goes through, the program computes
/// what the compiler's own object computes, and label branches (program-counter reads) never get a nop.
/// </summary>
[TestClass]
public sealed class AssemblerRouteTests
{
    private static readonly string Sources = Path.Combine(Repo.Root, "tests", "fixtures", "src");

    internal static AssemblerRouteResult Route(string[] command, bool allLocal, params string[] callees)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var result = AssemblerRouteCompiler.Run(command, new AssemblerRouteOptions(NopRules.For(callees, allLocal)),
            stdout, stderr);
        Console.Write(stderr.ToString());
        return result;
    }

    private static string Compile(string compiler, string source, string dir, string extra, bool allLocal = true,
        params string[] callees)
    {
        string o = Path.Combine(dir, Path.GetFileNameWithoutExtension(source) + ".o"),
            d = Path.ChangeExtension(o, ".d");
        string[] driver = compiler == "clang-14" ? ["clang-14", "--target=powerpc64le-linux-gnu"] : [compiler];
        var result = Route([.. driver, "-O2", "-mcmodel=large", "-ffunction-sections",
            .. extra.Split(' ', StringSplitOptions.RemoveEmptyEntries), "-MMD", "-MF", d, "-c", source, "-o", o],
            allLocal, callees);
        Assert.AreEqual(0, result.ExitCode, string.Join("\n", result.Diagnostics.Select(x => x.Message)));
        Assert.IsTrue(result.TookRoute);
        Assert.IsTrue(File.Exists(d), "the dependency file comes from the compile to assembly");
        StringAssert.StartsWith(File.ReadAllText(d), o + ":", "the dependency target is the object, not the assembly");
        Assert.IsFalse(Directory.GetFiles(dir, "*ppclp*", SearchOption.AllDirectories).Any(),
            "the intermediate files are removed");
        return o;
    }

    [TestMethod]
    [DataRow("powerpc64le-linux-gnu-gcc", "switch_mask.c", "")]
    [DataRow("powerpc64le-linux-gnu-gcc", "views.c", "-g")]
    [DataRow("powerpc64le-linux-gnu-gcc", "views.c", "-g -gz=zlib")]
    [DataRow("powerpc64-linux-gnu-gcc", "switch_mask.c", "-g")]
    [DataRow("powerpc64le-linux-gnu-gcc", "calls.c", "-mprofile-kernel -pg -g")]
    [DataRow("clang-14", "calls.c", "-g")]
    public void AllLocalLeavesNothingForTheRewriters(string compiler, string source, string extra)
    {
        string dir = Repo.NewTempDir();
        string o = Compile(compiler, Path.Combine(Sources, source), dir, extra);
        Assert.IsTrue(ElfImage.TryLoad(o, out var image, out var error), error?.Message);
        var result = ObjectPatcher.Patch(image!, new PatchOptions(FixStrategy.Auto, SiteSelection.AllLocal));
        Assert.AreEqual(0, result.Fixes.Count, string.Join("\n", result.Fixes.Select(f => $"{f.Function} {f.Callee} " +
            $"+0x{f.Offset:x}")));
        var verified = ObjectVerifier.Verify(image!, LoaderOptions.Default);
        Assert.IsTrue(verified.Accepted);
        // Debug info survived: the calls still have their C lines.
        if (extra.Contains("-g")) Assert.IsTrue(verified.Sites.All(s => s.Site.Source is not null));
    }

    [TestMethod]
    public void NamedCalleesGetANopAndOthersDoNot()
    {
        string dir = Repo.NewTempDir();
        string o = Compile("powerpc64le-linux-gnu-gcc", Path.Combine(Sources, "switch_mask.c"), dir, "",
            allLocal: false, "helper");
        string plain = Path.Combine(dir, "plain.o");
        Tool.Check("powerpc64le-linux-gnu-gcc", "-O2", "-mcmodel=large", "-ffunction-sections", "-c",
            Path.Combine(Sources, "switch_mask.c"), "-o", plain);
        string Disassembly(string path) => Tool.Check("powerpc64le-linux-gnu-objdump", "-dr", path);
        int NopsAfterHelperCalls(string listing)
        {
            var lines = listing.Split('\n');
            return Enumerable.Range(0, lines.Length - 1).Count(i => lines[i].Contains("R_PPC64_REL24\t.text.helper")
                && lines[i + 1].Contains("\tnop"));
        }
        Assert.AreEqual(0, NopsAfterHelperCalls(Disassembly(plain)), "gcc itself puts no nop after a local call");
        Assert.IsTrue(NopsAfterHelperCalls(Disassembly(o)) >= 6, Disassembly(o));
        Assert.AreEqual(RunWithHarness(plain, "switch_mask_main.c"), RunWithHarness(o, "switch_mask_main.c"));
    }

    private static string RunWithHarness(string obj, string harnessSource, string gcc = "powerpc64le-linux-gnu-gcc",
        string qemu = "qemu-ppc64le")
    {
        string harness = obj + ".main.o", exe = obj + ".exe";
        Tool.Check(gcc, "-O2", "-c", Path.Combine(Sources, harnessSource), "-o", harness);
        Tool.Check(gcc, "-static", harness, obj, "-o", exe);
        var r = Tool.Run("timeout", "20", qemu, exe);
        Assert.AreEqual(0, r.ExitCode, $"{exe}: {r.Stderr}");
        return r.Stdout;
    }

    /// <summary>clang's -mcmodel=large address idiom <c>bl .L0$pb; .L0$pb: mflr</c> anchors every jump table: a nop
    /// between the two made every case land 4 bytes early (the programs hung). The branch to the label gets none, the
    /// calls get theirs, the assembler recomputes the table's label differences, and nothing is left for the object
    /// step.</summary>
    [TestMethod]
    public void ClangLargeModelAddressIdiomKeepsItsMeaning()
    {
        string dir = Repo.NewTempDir();
        string source = Path.Combine(Sources, "switch_mask.c");
        string o = Path.Combine(dir, "route.o");
        var result = Route(["clang-14", "--target=powerpc64le-linux-gnu", "-O2", "-mcmodel=large",
            "-ffunction-sections", "-c", source, "-o", o], allLocal: true);
        Assert.AreEqual(0, result.ExitCode);
        Assert.AreEqual(0, result.Diagnostics.Count, string.Join("\n", result.Diagnostics.Select(d => d.Message)));
        Assert.IsTrue(result.NopsInserted > 0);
        string listing = Tool.Check("powerpc64le-linux-gnu-objdump", "-d", o);
        var lines = listing.Split('\n');
        int idioms = 0;
        for (int i = 0; i + 1 < lines.Length; i++)
            if (System.Text.RegularExpressions.Regex.Match(lines[i], @"^\s*([0-9a-f]+):.*\tbl\s+([0-9a-f]+) <") is
                { Success: true } m && Convert.ToUInt64(m.Groups[2].Value, 16) == Convert.ToUInt64(m.Groups[1].Value,
                    16) + 4)
            {
                idioms++;
                Assert.IsFalse(lines[i + 1].Contains("\tnop"), lines[i]);
            }
        Assert.IsTrue(idioms > 0, "expected clang's address idiom");
        Assert.IsTrue(ElfImage.TryLoad(o, out var image, out _));
        Assert.AreEqual(0, ObjectPatcher.Patch(image!, new PatchOptions(FixStrategy.Auto, SiteSelection.AllLocal))
            .Fixes.Count, "every call already has its nop");
        string plain = Path.Combine(dir, "plain.o");
        Tool.Check("clang-14", "--target=powerpc64le-linux-gnu", "-O2", "-mcmodel=large", "-ffunction-sections", "-c",
            source, "-o", plain);
        Assert.AreEqual(RunWithHarness(plain, "switch_mask_main.c"), RunWithHarness(o, "switch_mask_main.c"));
    }

    /// <summary>Where a moved function holds inline assembly, only what the object-level checks prove is accepted: a
    /// program-counter read there keeps the section's code, and its calls go to the object step (PLP4004).</summary>
    [TestMethod]
    public void InlineAssemblyInAMovedFunctionKeepsTheObjectLevelProof()
    {
        string dir = Repo.NewTempDir();
        string c = Path.Combine(dir, "pcf.c"), o = Path.Combine(dir, "pcf.o");
        File.WriteAllText(c, """
            static int __attribute__((noinline)) h(int x) { return x * 7 + 3; }
            int f(int a)
            {
            	unsigned long p;
            	int r = h(a);
            	asm volatile("bl 1f\n1:\tmflr %0" : "=r"(p) : : "lr");
            	return r + h((int)(p & 3));
            }
            """);
        var result = Route(["powerpc64le-linux-gnu-gcc", "-O2", "-ffunction-sections", "-g", "-c", c, "-o", o],
            allLocal: true);
        Assert.AreEqual(0, result.ExitCode);
        var note = result.Diagnostics.Single();
        Assert.AreEqual(DiagnosticCatalog.AsmCallsLeftToObjectStep, note.Code);
        StringAssert.Contains(note.Message, "reads the program counter");
        Assert.AreEqual(".text.f", note.Section);
        Assert.IsTrue(ElfImage.TryLoad(o, out var image, out _));
        var patched = ObjectPatcher.Patch(image!, new PatchOptions(FixStrategy.Auto, SiteSelection.AllLocal));
        Assert.AreEqual(2, patched.Fixes.Count, "the object step fixes both calls");
    }

    /// <summary>The object step takes the route's nops as the calls' own. In clang's medium-model code with a computed
    /// goto (seed 5005 of the rich generator), table words the analysis cannot prove have addends equal to some of
    /// those nops' addresses; a later word of a table names its case plus its distance from the table's start, so
    /// only a table's first word (a place something names) may mark its addend as a jump target.</summary>
    [TestMethod]
    public void TheObjectStepTakesTheRoutesNopsAsTheCallsOwn()
    {
        string dir = Repo.NewTempDir();
        string c = Path.Combine(dir, "rich.c"), o = Path.Combine(dir, "rich.o");
        File.WriteAllText(c, new SwitchProgramGenerator(5005, rich: true).Program());
        var result = Route(["clang-14", "--target=powerpc64le-linux-gnu", "-O2", "-mcmodel=medium",
            "-ffunction-sections", "-c", c, "-o", o], allLocal: true);
        Assert.AreEqual(0, result.ExitCode);
        Assert.AreEqual(0, result.Diagnostics.Count);
        Assert.IsTrue(ElfImage.TryLoad(o, out var image, out _));
        var again = ObjectPatcher.Patch(image!, new PatchOptions(FixStrategy.Auto, SiteSelection.AllLocal));
        Assert.AreEqual(0, again.Fixes.Count, string.Join(", ", again.Fixes.Select(f =>
            $"{f.Function}+0x{f.Offset:x} {f.Callee}")));
    }

    private const string PcReadProgram = """
        #include <stdio.h>
        static int __attribute__((noinline)) h(int x) { return x * 7 + 3; }
        /* The word after the bl is data: the return address points at it. */
        static unsigned __attribute__((noinline)) marker(void)
        {
            unsigned long p;
            asm volatile("bl 1f\n\t.long 0x12345678\n1:\tmflr %0" : "=r"(p) : : "lr");
            return *(unsigned *)(p);
        }
        int main(void) { printf("%x %d\n", marker(), h(marker() & 0xff)); return 0; }
        """;

    /// <summary>GCC, inline assembly that reads the program counter (<c>bl 1f; …; 1: mflr</c>): no nop goes after
    /// the branch to the label, so the word read is the program's own.</summary>
    [TestMethod]
    public void InlineAssemblyProgramCounterReadsGetNoNop()
    {
        string dir = Repo.NewTempDir();
        string c = Path.Combine(dir, "pc.c"), o = Path.Combine(dir, "pc.o"), exe = Path.Combine(dir, "pc");
        File.WriteAllText(c, PcReadProgram);
        var result = Route(["powerpc64le-linux-gnu-gcc", "-O2", "-g", "-c", c, "-o", o], allLocal: true);
        Assert.AreEqual(0, result.ExitCode);
        Tool.Check("powerpc64le-linux-gnu-gcc", "-static", o, "-o", exe);
        Assert.AreEqual("12345678 843", Tool.Check("qemu-ppc64le", exe).Trim());
        // main's calls to h got their nops (they are outside the inline assembly).
        Assert.IsTrue(ElfImage.TryLoad(o, out var image, out _));
        Assert.AreEqual(0, ObjectPatcher.Patch(image!, new PatchOptions(FixStrategy.Auto, SiteSelection.AllLocal))
            .Fixes.Count(f => f.Callee == "h"));
    }

    /// <summary>A call in inline assembly that would need a nop is refused at the asm statement's C line, and no
    /// object is written (an earlier one is removed).</summary>
    [TestMethod]
    public void ACallInsideInlineAssemblyThatNeedsANopIsRefused()
    {
        string dir = Repo.NewTempDir();
        string c = Path.Combine(dir, "asmcall.c"), o = Path.Combine(dir, "asmcall.o");
        File.WriteAllText(c,
            "void helper(void);\n\nvoid f(void)\n{\n\tasm volatile(\"bl helper\" ::: \"lr\", \"r3\");\n}\n");
        File.WriteAllText(o, "stale");
        var result = Route(["powerpc64le-linux-gnu-gcc", "-O2", "-c", c, "-o", o], allLocal: false, "helper");
        Assert.AreEqual(1, result.ExitCode);
        var d = result.Diagnostics.Single();
        Assert.AreEqual(DiagnosticCatalog.AsmCallInInlineAssembly, d.Code);
        Assert.AreEqual(5, d.Source!.Line);
        StringAssert.EndsWith(d.Source.File, "asmcall.c");
        Assert.AreEqual("helper", d.Callee);
        Assert.IsFalse(File.Exists(o));
        // The same call with its nop written in the asm text is accepted.
        File.WriteAllText(c, "void helper(void);\nvoid f(void) { asm volatile(\"bl helper\\n\\tnop\" ::: \"lr\"); }\n");
        Assert.AreEqual(0, Route(["powerpc64le-linux-gnu-gcc", "-O2", "-c", c, "-o", o], false, "helper").ExitCode);
    }

    [TestMethod]
    public void TheRouteIsDeterministic()
    {
        string dir = Repo.NewTempDir();
        string a = Compile("powerpc64le-linux-gnu-gcc", Path.Combine(Sources, "views.c"), dir, "-g");
        byte[] first = File.ReadAllBytes(a);
        string b = Compile("powerpc64le-linux-gnu-gcc", Path.Combine(Sources, "views.c"), dir, "-g");
        CollectionAssert.AreEqual(first, File.ReadAllBytes(b));
    }

    [TestMethod]
    public void CommandsThatAreNotACompileOfTheModulesSourcesRunUnchanged()
    {
        string dir = Repo.NewTempDir(), other = Repo.NewTempDir();
        string source = Path.Combine(other, "x.c");
        File.WriteAllText(source,
            "static int __attribute__((noinline)) h(int x) { return x + 1; }\nint f(int x) { return h(x) * 2; }\n");
        // Outside --only-under (kbuild's own compiles): no nops, and no assembly step.
        string o = Path.Combine(dir, "x.o");
        var stdout = new StringWriter();
        var r = AssemblerRouteCompiler.Run(["powerpc64le-linux-gnu-gcc", "-O2", "-c", source, "-o", o],
            new AssemblerRouteOptions(NopRules.For([], allLocal: true), OnlyUnder: dir), stdout, stdout);
        Assert.AreEqual(0, r.ExitCode);
        Assert.IsFalse(r.TookRoute);
        string plain = Path.Combine(dir, "plain.o");
        Tool.Check("powerpc64le-linux-gnu-gcc", "-O2", "-c", source, "-o", plain);
        CollectionAssert.AreEqual(File.ReadAllBytes(plain), File.ReadAllBytes(o),
            "a compile outside the module's directory is not touched");
        // Not a compile at all (kbuild's version and option probes).
        var version = AssemblerRouteCompiler.Run(["powerpc64le-linux-gnu-gcc", "--version"],
            new AssemblerRouteOptions(NopRules.For([], true)), stdout, stdout);
        Assert.AreEqual(0, version.ExitCode);
        StringAssert.Contains(stdout.ToString(), "gcc");
        // A compiler error is the compiler's: its exit code, its message, no object.
        File.WriteAllText(source, "int f(void) { return missing; }\n");
        var err = new StringWriter();
        var failed = AssemblerRouteCompiler.Run(["powerpc64le-linux-gnu-gcc", "-c", source, "-o", o],
            new AssemblerRouteOptions(NopRules.For([], true)), stdout, err);
        Assert.AreNotEqual(0, failed.ExitCode);
        StringAssert.Contains(err.ToString(), "missing");
        Assert.IsFalse(File.Exists(o));
    }

    /// <summary>The CLI form kbuild uses as CC, with its settings from the environment and its findings in the
    /// compiler's form.</summary>
    [TestMethod]
    public void TheCcCommandPrintsFindingsAsTheCompilerDoes()
    {
        string dir = Repo.NewTempDir();
        string c = Path.Combine(dir, "asmcall.c"), o = Path.Combine(dir, "asmcall.o");
        File.WriteAllText(c, "void helper(void);\nvoid f(void)\n{\n\tasm volatile(\"bl helper\" ::: \"lr\");\n}\n");
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int rc = Cli.CliApp.Run(["cc", "--nop-after", "helper", "--", "powerpc64le-linux-gnu-gcc", "-O2", "-c", c,
            "-o", o], stdout, stderr);
        Assert.AreEqual(1, rc);
        StringAssert.Contains(stderr.ToString(), $"{c}:4: error: PLP2016: the call to helper is inside");
        Assert.AreEqual(2, Cli.CliApp.Run(["cc", "--bogus", "--", "gcc"], stdout, stderr));
        Assert.AreEqual(2, Cli.CliApp.Run(["cc", "--all-local"], stdout, stderr));
    }
}
