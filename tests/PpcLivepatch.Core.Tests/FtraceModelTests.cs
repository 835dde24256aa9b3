using PpcLivepatch.Analysis;
using PpcLivepatch.Cli;
using PpcLivepatch.Diagnostics;
using PpcLivepatch.Elf;

namespace PpcLivepatch.Tests;

/// <summary>
/// The three ppc64le ftrace models, read from objects the real compilers make with each kernel line's flags (GCC 12's
/// -mprofile-kernel for 6.1, GCC 14's two patchable nops for 6.12 and one for the out-of-line 7.x lines) and from a
/// kernel's configuration; a module of another model than its kernel's is refused (PLP2018).
/// </summary>
[TestClass]
public sealed class FtraceModelTests
{
    private const string Source = "extern int printk(const char *fmt, ...);\n" +
        "int answer(int v) { switch (v) { case 0: return printk(\"zero\"); case 1: return 7; case 2: return " +
        "printk(\"two %d\", v); default: return v + 1; } }\n" +
        "static __attribute__((noinline)) int helper(int v) { return printk(\"h%d\", v) + 1; }\n" +
        "int other(int v) { return helper(v) * 2; }\n";

    private static readonly Lazy<Dictionary<FtraceSiteKind, string>> s_objects = new(() =>
    {
        string dir = Repo.NewTempDir();
        string c = Path.Combine(dir, "f.c");
        File.WriteAllText(c, Source);
        string[] common = ["-O2", "-g", "-ffunction-sections", "-mcmodel=large", "-c", c];
        var objects = new Dictionary<FtraceSiteKind, string>
        {
            [FtraceSiteKind.MprofileKernel] = Path.Combine(dir, "mprofile.o"),
            [FtraceSiteKind.PatchableEntry] = Path.Combine(dir, "two-nops.o"),
            [FtraceSiteKind.OutOfLine] = Path.Combine(dir, "one-nop.o"),
            [FtraceSiteKind.Unknown] = Path.Combine(dir, "plain.o"),
        };
        Tool.Check("powerpc64le-linux-gnu-gcc",
            [.. common, "-pg", "-mprofile-kernel", "-o", objects[FtraceSiteKind.MprofileKernel]]);
        Tool.Check(Gcc14.Driver, [.. common, "-fpatchable-function-entry=2", "-o",
            objects[FtraceSiteKind.PatchableEntry]]);
        Tool.Check(Gcc14.Driver, [.. common, "-fpatchable-function-entry=1", "-o",
            objects[FtraceSiteKind.OutOfLine]]);
        Tool.Check(Gcc14.Driver, [.. common, "-o", objects[FtraceSiteKind.Unknown]]);
        return objects;
    });

    private static ElfImage Load(string path)
    {
        Assert.IsTrue(ElfImage.TryLoad(path, out var image, out var error), error?.Message);
        return image!;
    }

    [TestMethod]
    public void EachCompilersObjectIsReadAsItsModel()
    {
        foreach (var (kind, path) in s_objects.Value)
            Assert.AreEqual(kind, FtraceSites.Of(Load(path)), Path.GetFileName(path));
        // Every function of the patchable objects has its record, at its nops after the global entry.
        var two = Load(s_objects.Value[FtraceSiteKind.PatchableEntry]);
        Assert.AreEqual(3, FtraceSites.PatchableRecords(two).Count());
    }

    [TestMethod]
    [DataRow("CONFIG_FUNCTION_TRACER=y\nCONFIG_MPROFILE_KERNEL=y\n", FtraceSiteKind.MprofileKernel)]
    // 6.12 keeps CONFIG_MPROFILE_KERNEL=y beside the patchable entry it uses.
    [DataRow("CONFIG_FUNCTION_TRACER=y\nCONFIG_MPROFILE_KERNEL=y\nCONFIG_ARCH_USING_PATCHABLE_FUNCTION_ENTRY=y\n",
        FtraceSiteKind.PatchableEntry)]
    [DataRow("CONFIG_FUNCTION_TRACER=y\nCONFIG_ARCH_USING_PATCHABLE_FUNCTION_ENTRY=y\nCONFIG_PPC_FTRACE_OUT_OF_LINE=y",
        FtraceSiteKind.OutOfLine)]
    [DataRow("CONFIG_MPROFILE_KERNEL=y\nCONFIG_PPC_FTRACE_OUT_OF_LINE_X=y\n", FtraceSiteKind.Unknown)]
    public void TheKernelsModelComesFromItsConfiguration(string autoConf, FtraceSiteKind expected) =>
        Assert.AreEqual(expected, FtraceSites.OfKernelConfig(autoConf));

    [TestMethod]
    public void AModuleOfAnotherModelIsRefusedAndItsOwnAccepted()
    {
        string[] names = ["mprofile-kernel", "patchable-entry", "out-of-line"];
        foreach (var (kind, path) in s_objects.Value.Where(kv => kv.Key != FtraceSiteKind.Unknown))
            foreach (string kernel in names)
            {
                var stdout = new StringWriter();
                int exit = CliApp.Run(["verify", "--ftrace", kernel, path], stdout, new StringWriter());
                bool same = kernel == FtraceSites.NameOf(kind);
                Assert.AreEqual(same ? CliApp.ExitAccepted : CliApp.ExitRejected, exit, $"{kernel}: {stdout}");
                Assert.AreEqual(!same, stdout.ToString().Contains($"error {DiagnosticCatalog.FtraceModelMismatch}:"),
                    $"{kernel}: {stdout}");
                if (!same)
                    StringAssert.Contains(stdout.ToString(), $"the kernel is built for {FtraceSites.Describe(
                        FtraceSites.TryParse(kernel, out var k) ? k : FtraceSiteKind.Unknown)}");
            }
        // Without a model for the kernel nothing is compared; an object with no traceable function fits any.
        Assert.AreEqual(CliApp.ExitAccepted, CliApp.Run(["verify", s_objects.Value[FtraceSiteKind.PatchableEntry]],
            new StringWriter(), new StringWriter()));
        Assert.AreEqual(CliApp.ExitAccepted, CliApp.Run(["verify", "--ftrace", "out-of-line",
            s_objects.Value[FtraceSiteKind.Unknown]], new StringWriter(), new StringWriter()));
        var err = new StringWriter();
        Assert.AreEqual(CliApp.ExitUsage, CliApp.Run(["verify", "--ftrace", "fentry",
            s_objects.Value[FtraceSiteKind.Unknown]], new StringWriter(), err));
        StringAssert.Contains(err.ToString(), "unknown ftrace model 'fentry'");
    }

    /// <summary>A finished module whose records are not gathered into one section (kbuild's module.lds does) loses
    /// all but the first section's: PLP2019. One section, as ld gathers them, is fine.</summary>
    [TestMethod]
    public void AFinishedModuleWithItsRecordsInSeveralSectionsIsRefused()
    {
        string dir = Repo.NewTempDir();
        string bytes = Path.Combine(dir, "this_module.bin");
        File.WriteAllBytes(bytes, new byte[8]);
        string Finished(string name, params string[] ldOptions)
        {
            string linked = Path.Combine(dir, name + ".o"), ko = Path.Combine(dir, name + ".ko");
            Tool.Check("powerpc64le-linux-gnu-ld", ["-r", .. ldOptions, "-o", linked,
                s_objects.Value[FtraceSiteKind.PatchableEntry]]);
            Tool.Check("powerpc64le-linux-gnu-objcopy", "--add-section", ".gnu.linkonce.this_module=" + bytes,
                "--set-section-flags", ".gnu.linkonce.this_module=alloc,data", linked, ko);
            return ko;
        }
        // ld gathers same-named sections; --unique keeps one output section per input section.
        string module = Finished("module"), split = Finished("split", "--unique=__patchable_function_entries");
        Assert.AreEqual(0, ModuleChecks.FtraceRecordsSplit(Load(module)).Count());
        var d = ModuleChecks.FtraceRecordsSplit(Load(split)).Single();
        Assert.AreEqual(DiagnosticCatalog.FtraceRecordsSplit, d.Code);
        StringAssert.Contains(d.Message, "in 3 __patchable_function_entries sections; the kernel reads the first " +
            "(1 record) and never the other 2");
        var stdout = new StringWriter();
        Assert.AreEqual(CliApp.ExitRejected, CliApp.Run(["verify", split], stdout, new StringWriter()));
        StringAssert.Contains(stdout.ToString(), $"error {DiagnosticCatalog.FtraceRecordsSplit}:");
    }
}
