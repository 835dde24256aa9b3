using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;
using PpcLivepatch.Build.Tasks;

namespace PpcLivepatch.Build.Tests;

[TestClass]
public sealed class TaskTests
{
    private static ITaskItem Item(string path, string? output = null)
    {
        var item = new TaskItem(path);
        if (output is not null) item.SetMetadata("OutputFile", output);
        return item;
    }

    [TestMethod]
    public void VerifyReportsTheRefusedCallAtItsCLineWithCodeAndHelpLink()
    {
        var engine = new FakeBuildEngine();
        string output = Path.Combine(Repo.NewTempDir(), "module.o");
        var task = new VerifyLivepatchModule { BuildEngine = engine, Objects = [Item(Repo.Fixture("livepatch.und.le.o"), output)], HelpLinkBase = "file:///docs/" };

        Assert.IsFalse(task.Execute());
        var e = engine.Errors.Single();
        Assert.AreEqual(("PLP2001", "livepatch.c", 31, 7), (e.Code, Path.GetFileName(e.File), e.LineNumber, e.ColumnNumber));
        Assert.AreEqual("file:///docs/PLP2001.md", e.HelpLink);
        Assert.AreEqual("PLP2001", e.HelpKeyword);
        StringAssert.Contains(e.Message, "Expected nop after call, got 38210070");
        Assert.IsFalse(File.Exists(output), "a refused module must not be written");
    }

    [TestMethod]
    public void VerifyWarnModeKeepsTheModuleForExperiments()
    {
        var engine = new FakeBuildEngine();
        string output = Path.Combine(Repo.NewTempDir(), "module.o");
        var task = new VerifyLivepatchModule { BuildEngine = engine, Objects = [Item(Repo.Fixture("livepatch.und.le.o"), output)], Mode = "warn" };
        Assert.IsTrue(task.Execute());
        Assert.AreEqual(0, engine.Errors.Count);
        Assert.AreEqual("PLP2001", engine.Warnings.Single().Code);
        CollectionAssert.AreEqual(File.ReadAllBytes(Repo.Fixture("livepatch.und.le.o")), File.ReadAllBytes(output));
    }

    [TestMethod]
    public void PatchFixesAndReportsTheSummary()
    {
        var engine = new FakeBuildEngine();
        string dir = Repo.NewTempDir(), output = Path.Combine(dir, "p.o"), json = Path.Combine(dir, "r.json"), sarif = Path.Combine(dir, "r.sarif");
        var task = new PatchLivepatchObjects { BuildEngine = engine, Objects = [Item(Repo.Fixture("livepatch.und.le.o"), output)], JsonReport = json, SarifReport = sarif };
        Assert.IsTrue(task.Execute(), string.Join("\n", engine.Errors.Select(e => e.Message)));
        Assert.AreEqual(1, task.SitesFixed);
        Assert.IsTrue(engine.Messages.Any(m => m.Message == "1 REL24 site fixed (insert-nop), 0 unfixable" && m.Importance == MessageImportance.High));
        var fixedSite = engine.Messages.Single(m => m.Code == "PLP4001");
        Assert.AreEqual((31, 7), (fixedSite.LineNumber, fixedSite.ColumnNumber));
        StringAssert.Contains(File.ReadAllText(json), "\"strategy\": \"insert-nop\"");
        StringAssert.Contains(File.ReadAllText(sarif), "\"version\": \"2.1.0\"");
        var verify = new VerifyLivepatchModule { BuildEngine = engine, Objects = [Item(output)] };
        Assert.IsTrue(verify.Execute());
    }

    [TestMethod]
    public void SiblingCallsAreErrorsUnlessAllowed()
    {
        // livepatch.klp.le.o has PLP3002 (always an error) and, in asm_calls, a plain PLP3001 the SDK promotes.
        var engine = new FakeBuildEngine();
        string output = Path.Combine(Repo.NewTempDir(), "p.o");
        var task = new PatchLivepatchObjects { BuildEngine = engine, Objects = [Item(Repo.Fixture("asm_calls.kpatch.le.o"), output)] };
        Assert.IsFalse(task.Execute());
        Assert.IsTrue(engine.Errors.Any(e => e.Code == "PLP3001"));
        Assert.IsFalse(File.Exists(output), "a failed patch leaves no output");

        var allowed = new FakeBuildEngine();
        new PatchLivepatchObjects { BuildEngine = allowed, Objects = [Item(Repo.Fixture("asm_calls.kpatch.le.o"), output)], AllowSiblingCalls = true }.Execute();
        Assert.AreEqual("PLP3001", allowed.Warnings.Single().Code);
        Assert.IsFalse(allowed.Errors.Any(e => e.Code == "PLP3001"));
    }

    [TestMethod]
    public void BadObjectIsACodedErrorNotAStackTrace()
    {
        string dir = Repo.NewTempDir(), bad = Path.Combine(dir, "bad.o");
        File.WriteAllText(bad, "not an object");
        foreach (LivepatchObjectTask task in new LivepatchObjectTask[] { new VerifyLivepatchModule(), new PatchLivepatchObjects(), new ConvertKlpSymbols() })
        {
            var engine = new FakeBuildEngine();
            task.BuildEngine = engine;
            task.Objects = [Item(bad, Path.Combine(dir, "out.o"))];
            Assert.IsFalse(task.Execute(), task.GetType().Name);
            var e = engine.Errors.Single();
            Assert.AreEqual(("PLP1001", bad), (e.Code, e.File), task.GetType().Name);
            Assert.IsFalse(File.Exists(Path.Combine(dir, "out.o")));
        }
    }

    [TestMethod]
    public void KlpSymbolMetadataIsReadAndChecked()
    {
        var engine = new FakeBuildEngine();
        string output = Path.Combine(Repo.NewTempDir(), "c.o");
        var klp = new TaskItem("kernel_helper");
        klp.SetMetadata("Object", "vmlinux");
        klp.SetMetadata("Position", "3");
        var task = new ConvertKlpSymbols { BuildEngine = engine, Objects = [Item(Repo.Fixture("livepatch.und.le.o"), output)], KlpSymbols = [klp] };
        Assert.IsTrue(task.Execute());
        Assert.IsTrue(File.ReadAllText(output, System.Text.Encoding.Latin1).Contains(".klp.sym.vmlinux.kernel_helper,3"));

        klp.SetMetadata("Position", "first");
        var bad = new FakeBuildEngine();
        Assert.IsFalse(new ConvertKlpSymbols { BuildEngine = bad, Objects = [Item(Repo.Fixture("livepatch.und.le.o"), output)], KlpSymbols = [klp] }.Execute());
        Assert.AreEqual("PLP0101", bad.Errors.Single().Code);
    }

    [TestMethod]
    public void CrossCompileTurnsGccOutputIntoCodedDiagnosticsOnce()
    {
        string dir = Repo.NewTempDir();
        File.WriteAllText(Path.Combine(dir, "shared.h"), "static inline int twice(int x) { int unused; return 2 * x; }\n");
        File.WriteAllText(Path.Combine(dir, "a.c"), "#include \"shared.h\"\nint a(int x) { return twice(x); }\n");
        File.WriteAllText(Path.Combine(dir, "b.c"), "#include \"shared.h\"\nint b(int x) { return undeclared + twice(x); }\n");
        File.WriteAllText(Path.Combine(dir, "c.c"), "#include \"missing.h\"\n");
        var engine = new FakeBuildEngine();
        bool Compile(string name) => new CrossCompile
        {
            BuildEngine = engine, Source = Path.Combine(dir, name), ObjectFile = Path.Combine(dir, "obj", name + ".o"),
            DependencyFile = Path.Combine(dir, "obj", name + ".d"), Flags = "-O2 -Wall", HelpLinkBase = "file:///d/",
        }.Execute();

        Assert.IsTrue(Compile("a.c"));
        Assert.IsFalse(Compile("b.c"));
        Assert.IsFalse(Compile("c.c"));

        var warning = engine.Warnings.Single(w => w.File.EndsWith("shared.h"));  // seen by both a.c and b.c: logged once
        Assert.AreEqual(("PLP0012", Path.Combine(dir, "shared.h"), 1, 38), (warning.Code, warning.File, warning.LineNumber, warning.ColumnNumber));
        Assert.AreEqual("PLP0012", engine.Warnings.Single(w => w.File.EndsWith("b.c")).Code);
        var error = engine.Errors.Single(e => e.Code == "PLP0010");
        Assert.AreEqual((Path.Combine(dir, "b.c"), 2, 23), (error.File, error.LineNumber, error.ColumnNumber));
        Assert.AreEqual("file:///d/PLP0010.md", error.HelpLink);
        var fatal = engine.Errors.Single(e => e.Code == "PLP0011");
        Assert.AreEqual((Path.Combine(dir, "c.c"), 1), (fatal.File, fatal.LineNumber));
        Assert.IsFalse(engine.Errors.Any(e => e.Code == "MSB6006"), "no generic tool failure on top of the coded errors");
        Assert.IsTrue(File.Exists(Path.Combine(dir, "obj", "a.c.o")));
        Assert.IsFalse(File.Exists(Path.Combine(dir, "obj", "b.c.o")), "a failed compile leaves no object");
        CollectionAssert.AreEqual(new[] { Path.Combine(dir, "shared.h") },
            ReadDependencyFiles.Parse(Path.Combine(dir, "obj", "a.c.d"), Path.Combine(dir, "a.c")).ToList());
    }

    private sealed class CrashingTask : LivepatchObjectTask
    {
        protected override bool ExecuteCore() => throw new InvalidOperationException("boom");
    }

    [TestMethod]
    public void AnUnexpectedFailureIsOneCodedErrorAndNoOutput()
    {
        var engine = new FakeBuildEngine();
        string output = Path.Combine(Repo.NewTempDir(), "out.o");
        File.WriteAllText(output, "stale");
        var task = new CrashingTask { BuildEngine = engine, Objects = [Item(Repo.Fixture("calls.kpatch.le.o"), output)] };
        Assert.IsFalse(task.Execute());
        var e = engine.Errors.Single();
        Assert.AreEqual("PLP0002", e.Code);
        StringAssert.Contains(e.Message, "InvalidOperationException: boom");
        Assert.IsFalse(File.Exists(output), "a stale output must not survive a failed step");
    }

    [TestMethod]
    public void MissingCrossCompilerSaysHowToInstallIt()
    {
        var engine = new FakeBuildEngine();
        var task = new CrossCompile { BuildEngine = engine, Source = "/x/a.c", ObjectFile = "/x/a.o", CrossCompilePrefix = "nonexistent-ppc-" };
        Assert.IsFalse(task.Execute());
        var e = engine.Errors.Single();
        Assert.AreEqual("PLP0013", e.Code);
        StringAssert.Contains(e.Message, "nonexistent-ppc-gcc");
    }
}
