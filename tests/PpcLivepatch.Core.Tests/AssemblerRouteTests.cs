using PpcLivepatch.Analysis;
using PpcLivepatch.Elf;
using PpcLivepatch.Patching;

namespace PpcLivepatch.Tests;

/// <summary>
/// The assembler route (Rel24Strategy=asm): src/Sdk/Sdk/tools/ppclp-asm-cc compiles to assembly, puts a nop after
/// each call that needs one, and assembles. Nothing is left for the object rewriters, and the program computes what
/// the compiler's own object computes.
/// </summary>
[TestClass]
public sealed class AssemblerRouteTests
{
    private static string Wrapper => Path.Combine(Repo.Root, "src", "Sdk", "Sdk", "tools", "ppclp-asm-cc");

    private static string Compile(string compiler, string source, string dir, string extra,
        params (string, string)[] environment)
    {
        string o = Path.Combine(dir, Path.GetFileNameWithoutExtension(source) + ".o"),
            d = Path.ChangeExtension(o, ".d");
        var env = string.Join(" ", environment.Select(e => $"{e.Item1}='{e.Item2}'"));
        string command = $"{env} bash '{Wrapper}' {compiler} -O2 -mcmodel=large -ffunction-sections {extra} -MMD -MF " +
            $"'{d}' -c '{source}' -o '{o}'";
        var r = Tool.Run("bash", "-c", command);
        Assert.AreEqual(0, r.ExitCode, r.Stderr);
        Assert.IsTrue(File.Exists(d), "the dependency file comes from the compile to assembly");
        Assert.IsFalse(Directory.GetFiles(dir, "*.ppclp*").Any(), "the intermediate assembly is removed");
        return o;
    }

    [TestMethod]
    [DataRow("powerpc64le-linux-gnu-gcc", "switch_mask.c", "")]
    [DataRow("powerpc64le-linux-gnu-gcc", "views.c", "-g")]
    [DataRow("powerpc64le-linux-gnu-gcc", "views.c", "-g -gz=zlib")]
    [DataRow("powerpc64-linux-gnu-gcc", "switch_mask.c", "-g")]
    [DataRow("powerpc64le-linux-gnu-gcc", "calls.c", "-mprofile-kernel -pg -g")]
    public void AllLocalLeavesNothingForTheRewriters(string compiler, string source, string extra)
    {
        string dir = Repo.NewTempDir();
        string o = Compile(compiler, Path.Combine(Repo.Root, "tests", "fixtures", "src", source), dir, extra,
            ("PPCLP_NOP_ALL_LOCAL", "1"));
        Assert.IsTrue(ElfImage.TryLoad(o, out var image, out var error), error?.Message);
        var result = ObjectPatcher.Patch(image!, new PatchOptions(FixStrategy.Auto, SiteSelection.AllLocal));
        Assert.AreEqual(0, result.Fixes.Count, string.Join("\n", result.Fixes.Select(f => $"{f.Function} {f.Callee} " +
            $"+0x{f.Offset:x}")));
        Assert.IsTrue(ObjectVerifier.Verify(image!, LoaderOptions.Default).Accepted);
        // Debug info survived: the calls still have their C lines.
        if (extra.Contains("-g"))
            Assert.IsTrue(ObjectVerifier.Verify(image!, LoaderOptions.Default).Sites.All(s =>
                s.Site.Source is not null));
    }

    [TestMethod]
    public void NamedCalleesGetANopAndOthersDoNot()
    {
        string dir = Repo.NewTempDir();
        string o = Compile("powerpc64le-linux-gnu-gcc",
            Path.Combine(Repo.Root, "tests", "fixtures", "src", "switch_mask.c"), dir, "",
                ("PPCLP_NOP_CALLEES", "helper"));
        string plain = Path.Combine(dir, "plain.o");
        Tool.Check("powerpc64le-linux-gnu-gcc", "-O2", "-mcmodel=large", "-ffunction-sections", "-c",
            Path.Combine(Repo.Root, "tests", "fixtures", "src", "switch_mask.c"), "-o", plain);
        string Disassembly(string path) => Tool.Check("powerpc64le-linux-gnu-objdump", "-dr", path);
        int NopsAfterHelperCalls(string listing)
        {
            var lines = listing.Split('\n');
            return Enumerable.Range(0, lines.Length - 1).Count(i => lines[i].Contains("R_PPC64_REL24\t.text.helper")
                && lines[i + 1].Contains("\tnop"));
        }
        Assert.AreEqual(0, NopsAfterHelperCalls(Disassembly(plain)), "gcc itself puts no nop after a local call");
        Assert.IsTrue(NopsAfterHelperCalls(Disassembly(o)) >= 6, Disassembly(o));

        // And the program computes the same.
        string harness = Path.Combine(dir, "main.o");
        Tool.Check("powerpc64le-linux-gnu-gcc", "-O2", "-c",
            Path.Combine(Repo.Root, "tests", "fixtures", "src", "switch_mask_main.c"), "-o", harness);
        string Run(string obj)
        {
            string exe = obj + ".exe";
            Tool.Check("powerpc64le-linux-gnu-gcc", "-static", harness, obj, "-o", exe);
            return Tool.Check("qemu-ppc64le", exe);
        }
        Assert.AreEqual(Run(plain), Run(o));
    }

    [TestMethod]
    public void CommandsThatAreNotACompileOfTheModulesSourcesRunUnchanged()
    {
        string dir = Repo.NewTempDir(), other = Repo.NewTempDir();
        string source = Path.Combine(other, "x.c");
        File.WriteAllText(source,
            "static int __attribute__((noinline)) h(int x) { return x + 1; }\nint f(int x) { return h(x) * 2; }\n");
        // Outside PPCLP_ASM_DIR (kbuild's own compiles): no nops, and no assembly step.
        string o = Path.Combine(dir, "x.o");
        var r = Tool.Run("bash", "-c", $"PPCLP_ASM_DIR='{dir}' PPCLP_NOP_ALL_LOCAL=1 bash '{Wrapper}' " +
            $"powerpc64le-linux-gnu-gcc -O2 -c '{source}' -o '{o}'");
        Assert.AreEqual(0, r.ExitCode, r.Stderr);
        string plain = Path.Combine(dir, "plain.o");
        Tool.Check("powerpc64le-linux-gnu-gcc", "-O2", "-c", source, "-o", plain);
        Assert.AreEqual(Tool.Check("powerpc64le-linux-gnu-objdump", "-d", plain).Replace(plain, ""),
            Tool.Check("powerpc64le-linux-gnu-objdump", "-d", o).Replace(o, ""),
            "a compile outside the module's directory is not touched");
        // Not a compile at all (kbuild's version and option probes).
        var version = Tool.Run("bash", "-c", $"bash '{Wrapper}' powerpc64le-linux-gnu-gcc --version");
        Assert.AreEqual(0, version.ExitCode);
        StringAssert.Contains(version.Stdout, "gcc");
    }
}
