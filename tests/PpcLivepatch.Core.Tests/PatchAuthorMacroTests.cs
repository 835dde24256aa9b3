using PpcLivepatch.Diagnostics;
using PpcLivepatch.Diff;
using PpcLivepatch.Elf;
using static PpcLivepatch.Elf.ElfConstants;

namespace PpcLivepatch.Tests;

/// <summary>
/// The SDK's kpatch-macros.h (src/Sdk/Sdk/include) as the diff reads it: objects compiled by the cross gcc from
/// files that include the shipped header (with two stand-in kernel headers for what it needs from the kernel), like
/// kbuild compiles a unit — one section per function and datum, <c>-mprofile-kernel</c> ftrace sites. Also how a
/// module's unit binds: the module's own symbols, vmlinux's exports and vmlinux's other symbols.
/// </summary>
[TestClass]
public sealed class PatchAuthorMacroTests
{
    private const string Original = """
        extern int printk(const char *fmt, ...);
        static __attribute__((noinline)) int helper(int x) { return x * 3; }
        int f(int x) { return helper(x) + 1; }
        int g(int x) { return x - 1; }

        """;

    private static ElfImage CompileUnit(string source, string extraFlags = "")
    {
        string dir = Repo.NewTempDir(), include = Path.Combine(dir, "include", "linux");
        Directory.CreateDirectory(include);
        File.WriteAllText(Path.Combine(include, "compiler.h"), """
            #define __used __attribute__((__used__))
            #define __section(s) __attribute__((__section__(s)))
            #define ___PASTE(a, b) a##b
            #define __PASTE(a, b) ___PASTE(a, b)
            #define __UNIQUE_ID(prefix) __PASTE(__PASTE(__UNIQUE_ID_, prefix), __COUNTER__)
            """);
        File.WriteAllText(Path.Combine(include, "livepatch.h"), "struct klp_object;\n");
        string c = Path.Combine(dir, "unit.c"), o = Path.Combine(dir, "unit.o");
        File.WriteAllText(c, source);
        string sdkInclude = Path.Combine(Repo.Root, "src", "Sdk", "Sdk", "include");
        Tool.Check("powerpc64le-linux-gnu-gcc", ["-O2", "-c", "-ffunction-sections", "-fdata-sections",
            "-mcmodel=large", "-pg", "-mprofile-kernel", "-fno-asynchronous-unwind-tables", "-I" + Path.Combine(dir, "include"), "-I" + sdkInclude,
            .. extraFlags.Split(' ', StringSplitOptions.RemoveEmptyEntries), c, "-o", o]);
        Assert.IsTrue(ElfImage.TryLoad(o, out var image, out var error), error?.Message);
        return image!;
    }

    private static DiffResult Diff(string patched, DiffOptions? options = null) =>
        ObjectDiff.Run(CompileUnit(Original), CompileUnit(patched), options ?? new DiffOptions());

    [TestMethod]
    public void CallbacksBecomeGlobalFunctionsTheRegistrationNamesAndTheRecordsStayBehind()
    {
        var result = Diff(Original.Replace("return x * 3;", "return x * 4;") + """
            #include "kpatch-macros.h"
            static int setup(patch_object *obj) { return printk("setup\n"); }
            KPATCH_PRE_PATCH_CALLBACK(setup);
            static void teardown(patch_object *obj) { printk("teardown\n"); }
            KPATCH_POST_UNPATCH_CALLBACK(teardown);
            """);
        Assert.IsTrue(result.Report.Succeeded, string.Join("\n", result.Report.Diagnostics));
        CollectionAssert.AreEqual(new[] { "helper" }, result.Report.Changed.ToArray());
        CollectionAssert.AreEquivalent(new[] { "setup", "teardown" }, result.Report.New.ToArray());
        Assert.AreEqual("pre_patch:__klp_pre_patch_vmlinux,post_unpatch:__klp_post_unpatch_vmlinux",
            string.Join(",", result.Report.Callbacks.Select(c => $"{c.Kind}:{c.Symbol}")));
        Assert.IsTrue(ElfImage.TryParse("out.o", result.Output!, out var output, out _));
        foreach (string name in new[] { "__klp_pre_patch_vmlinux", "__klp_post_unpatch_vmlinux" })
            Assert.IsTrue(output!.Symbols.Any(s => s.Name == name && s.Bind == StbGlobal && s.Type == SttFunc
                && s.IsInSection), name);
        Assert.IsFalse(output!.Sections.Any(s => s.Name.StartsWith(".plp.", StringComparison.Ordinal)),
            "the macros' records are not the module's");
        string registration = KlpRegistration.Generate(result.Report.Replacements, result.Report.Callbacks);
        StringAssert.Contains(registration, "int __klp_pre_patch_vmlinux(struct klp_object *obj);");
        StringAssert.Contains(registration, "void __klp_post_unpatch_vmlinux(struct klp_object *obj);");
        StringAssert.Contains(registration, "{ .name = NULL, .funcs = funcs_0, .callbacks = { .pre_patch = " +
            "__klp_pre_patch_vmlinux, .post_unpatch = __klp_post_unpatch_vmlinux } },");
    }

    [TestMethod]
    public void TwoCallbacksOfOneKindAreRefused()
    {
        var result = Diff(Original.Replace("return x * 3;", "return x * 4;") + """
            #include "kpatch-macros.h"
            static int one(patch_object *obj) { return 0; }
            static int two(patch_object *obj) { return 1; }
            KPATCH_PRE_PATCH_CALLBACK(one);
            KPATCH_PRE_PATCH_CALLBACK(two);
            """);
        Assert.IsNull(result.Output);
        var refusal = result.Report.Diagnostics.Single(d => d.Code == DiagnosticCatalog.DiffPatchAuthorRecord);
        StringAssert.Contains(refusal.Message, "two pre_patch callbacks in one file (one and two)");
    }

    [TestMethod]
    public void ARecordThatPointsAtDataIsRefused()
    {
        // The macro given a variable: the record's pointer names no function.
        var result = Diff(Original.Replace("return x * 3;", "return x * 4;") + """
            static int counter;
            static void *record __attribute__((used, section(".plp.ignore.function"))) = &counter;
            """);
        Assert.IsNull(result.Output);
        StringAssert.Contains(result.Report.Diagnostics.Single(d => d.Code == DiagnosticCatalog.DiffPatchAuthorRecord)
            .Message, "does not point to a function of the patched file");
    }

    [TestMethod]
    public void IgnoredFunctionsAndSectionsAreLeftOut()
    {
        string both = Original.Replace("return x * 3;", "return x * 4;").Replace("return x - 1;", "return x - 2;");
        var neither = Diff(both);
        CollectionAssert.AreEquivalent(new[] { "helper", "g" }, neither.Report.Changed.ToArray());

        var function = Diff(both + "#include \"kpatch-macros.h\"\nKPATCH_IGNORE_FUNCTION(g);\n");
        Assert.IsTrue(function.Report.Succeeded, string.Join("\n", function.Report.Diagnostics));
        CollectionAssert.AreEqual(new[] { "helper" }, function.Report.Changed.ToArray());
        Assert.IsTrue(ElfImage.TryParse("out.o", function.Output!, out var output, out _));
        Assert.IsFalse(output!.Sections.Any(s => s.Name == ".text.g"));

        var section = Diff(both + "#include \"kpatch-macros.h\"\nKPATCH_IGNORE_SECTION(\".text.helper\");\n");
        Assert.IsTrue(section.Report.Succeeded, string.Join("\n", section.Report.Diagnostics));
        CollectionAssert.AreEqual(new[] { "g" }, section.Report.Changed.ToArray());

        var only = Diff(Original.Replace("return x - 1;", "return x - 2;") +
            "#include \"kpatch-macros.h\"\nKPATCH_IGNORE_FUNCTION(g);\n");
        Assert.AreEqual(DiagnosticCatalog.DiffNoFunctionChanged, only.Report.Diagnostics.Single().Code);
    }

    [TestMethod]
    public void AnAnonymousReadOnlyConstantIsCarriedAsACopy()
    {
        // gcc keeps a struct's initializer as an unnamed constant in plain .rodata (with -fdata-sections every named
        // object has its own section): the changed function loads it through .toc, and the livepatch gets a copy.
        string original = Original + "struct five { long v[5]; };\n" +
            "void fill(struct five *p) { struct five t = { { 1, 2, 3, 4, 5 } }; *p = t; }\n";
        var before = CompileUnit(original);
        var after = CompileUnit(original.Replace("{ 1, 2, 3, 4, 5 }", "{ 1, 2, 3, 4, 6 }"));
        Assert.IsTrue(after.Sections.Any(s => s.Name == ".rodata"), "gcc put the initializer elsewhere");
        var result = ObjectDiff.Run(before, after, new DiffOptions());
        Assert.IsTrue(result.Report.Succeeded, string.Join("\n", result.Report.Diagnostics));
        CollectionAssert.AreEqual(new[] { "fill" }, result.Report.Changed.ToArray());
        Assert.IsTrue(ElfImage.TryParse("out.o", result.Output!, out var output, out _));
        var rodata = output!.Sections.Single(s => s.Name == ".rodata");
        CollectionAssert.AreEqual(after.Data(after.Sections.Single(s => s.Name == ".rodata")).ToArray(),
            output.Data(rodata).ToArray());
    }

    [TestMethod]
    [DataRow("clang-14", "--target=powerpc64le-linux-gnu -pg")]
    [DataRow("powerpc64le-linux-gnu-gcc", "-pg")]
    public void AnObjectWhoseMcountCallIsNotAtItsEntryIsRefusedAndSaysWhy(string compiler, string flags)
    {
        // clang has no -mprofile-kernel: its -pg calls _mcount after the prologue, as gcc's plain -pg does, and
        // ppc64's livepatch core redirects only -mprofile-kernel's call at the entry (a 6.1 kernel built by clang
        // has no livepatch support at all).
        ElfImage Compile(string source)
        {
            string dir = Repo.NewTempDir(), c = Path.Combine(dir, "unit.c"), o = Path.Combine(dir, "unit.o");
            File.WriteAllText(c, source);
            Tool.Check(compiler, [.. flags.Split(' '), "-O2", "-c", "-ffunction-sections", "-fdata-sections",
                "-mcmodel=large", "-fno-asynchronous-unwind-tables", c, "-o", o]);
            Assert.IsTrue(ElfImage.TryLoad(o, out var image, out var error), error?.Message);
            return image!;
        }
        var result = ObjectDiff.Run(Compile(Original), Compile(Original.Replace("return x * 3;", "return x * 4;")),
            new DiffOptions());
        Assert.IsNull(result.Output);
        var refusal = result.Report.Diagnostics.Single();
        Assert.AreEqual(DiagnosticCatalog.DiffFunctionNotPatchable, refusal.Code);
        StringAssert.Contains(refusal.Message, "helper calls _mcount after its prologue, not at its entry");
    }

    [TestMethod]
    public void AModulesUnitBindsItsOwnSymbolsToTheModuleAndTheRestToVmlinux()
    {
        // f calls the module's static helper, vmlinux's exported printk and vmlinux's unexported vm_internal.
        string original = Original.Replace("int g(int x)", "extern int vm_internal(int);\nint g(int x)");
        string patched = original.Replace("return helper(x) + 1;",
            "printk(\"f\\n\"); return helper(x) + vm_internal(x);");
        string dir = Repo.NewTempDir(), map = Path.Combine(dir, "System.map");
        File.WriteAllText(map, "c000000000001000 T printk\nc000000000002000 t vm_internal\n" +
            "c000000000003000 r __ksymtab_printk\n");
        var vmlinux = KernelSymbols.Load(map, "vmlinux", out var error);
        Assert.IsNotNull(vmlinux, error?.Message);
        var before = CompileUnit(original, "-DMODULE");
        var module = KernelSymbols.FromElf(before, "mymod.ko", wholeKernel: true, addressOrder: false);
        var result = ObjectDiff.Run(before, CompileUnit(patched, "-DMODULE"),
            new DiffOptions("mymod", module, Bind: false, Kernel: vmlinux));
        Assert.IsTrue(result.Report.Succeeded, string.Join("\n", result.Report.Diagnostics));
        Assert.AreEqual("helper:klp:mymod,printk:plain:vmlinux,vm_internal:klp:vmlinux", string.Join(",",
            result.Report.Bindings.Select(b => $"{b.Name}:{(b.Klp ? "klp" : "plain")}:{b.Object}")));
        Assert.AreEqual("f:mymod", string.Join(",", result.Report.Replacements.Select(r => $"{r.OldName}:{r.Object}")));
        StringAssert.Contains(KlpRegistration.Generate(result.Report.Replacements), "{ .name = \"mymod\", " +
            ".funcs = funcs_0 },");

        // The CLI says the same with --object, --symbols (the module) and --vmlinux.
        string orig = Path.Combine(dir, "orig.o"), patchedObject = Path.Combine(dir, "patched.o");
        File.WriteAllBytes(orig, File.ReadAllBytes(before.Path));
        File.WriteAllBytes(patchedObject, File.ReadAllBytes(CompileUnit(patched, "-DMODULE").Path));
        var stdout = new StringWriter();
        int exit = Cli.CliApp.Run(["diff", orig, patchedObject, "-o", Path.Combine(dir, "out.o"), "--symbols", orig,
            "--object", "mymod", "--vmlinux", map, "--unbound", "--format", "text"], stdout, new StringWriter());
        Assert.AreEqual(0, exit, stdout.ToString());
        StringAssert.Contains(stdout.ToString(), "vm_internal: .klp.sym.vmlinux.vm_internal,0");
        StringAssert.Contains(stdout.ToString(), "helper: .klp.sym.mymod.helper,0");
        StringAssert.Contains(stdout.ToString(), "printk: exported, left undefined");
    }
}
