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
    [DataRow(null)]
    [DataRow("object\n")]
    [DataRow("klp-symbol\tname\tvmlinux\n")]
    public void AKernelPatchManifestThatIsMissingOrMalformedIsACodedError(string? text)
    {
        string manifest = Path.Combine(Repo.NewTempDir(), "manifest.txt");
        if (text is not null) File.WriteAllText(manifest, text);
        var engine = new FakeBuildEngine();
        Assert.IsFalse(new ReadKernelPatchManifest { BuildEngine = engine, Manifest = manifest }.Execute());
        var e = engine.Errors.Single();
        Assert.AreEqual("PLP1009", e.Code);
        StringAssert.Contains(e.Message, manifest);
    }

    [TestMethod]
    public void KernelPatchesAgainstATreeThatIsNoKernelAreACodedError()
    {
        // No vmlinux, no System.map: said with a code, not thrown.
        string dir = Repo.NewTempDir(), patch = Path.Combine(dir, "fix.patch");
        File.WriteAllText(patch, "--- a/f.c\n+++ b/f.c\n@@ -1 +1 @@\n-a\n+b\n");
        var engine = new FakeBuildEngine();
        var task = new PrepareKernelPatches { BuildEngine = engine, Patches = [new TaskItem(patch)],
            KernelDirectory = dir, WorkDirectory = Path.Combine(dir, "work"),
            Manifest = Path.Combine(dir, "work", "manifest.txt") };
        Assert.IsFalse(task.Execute());
        Assert.AreEqual("PLP1009", engine.Errors.Single().Code);
        Assert.IsFalse(File.Exists(task.Manifest));
    }

    [TestMethod]
    public void VerifyReportsTheRefusedCallAtItsCLineWithCodeAndHelpLink()
    {
        var engine = new FakeBuildEngine();
        string output = Path.Combine(Repo.NewTempDir(), "module.o");
        var task =
            new VerifyLivepatchModule { BuildEngine = engine,
                Objects = [Item(Repo.Fixture("livepatch.und.le.o"), output)], HelpLinkBase = "file:///docs/" };

        Assert.IsFalse(task.Execute());
        var e = engine.Errors.Single();
        Assert.AreEqual(("PLP2001", "livepatch.c", 31, 7),
            (e.Code, Path.GetFileName(e.File), e.LineNumber, e.ColumnNumber));
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
        var task = new VerifyLivepatchModule { BuildEngine = engine,
            Objects = [Item(Repo.Fixture("livepatch.und.le.o"), output)], Mode = "warn" };
        Assert.IsTrue(task.Execute());
        Assert.AreEqual(0, engine.Errors.Count);
        Assert.AreEqual("PLP2001", engine.Warnings.Single().Code);
        CollectionAssert.AreEqual(File.ReadAllBytes(Repo.Fixture("livepatch.und.le.o")), File.ReadAllBytes(output));
    }

    [TestMethod]
    public void PatchFixesAndReportsTheSummary()
    {
        var engine = new FakeBuildEngine();
        string dir = Repo.NewTempDir(), output = Path.Combine(dir, "p.o"), json = Path.Combine(dir, "r.json"),
            sarif = Path.Combine(dir, "r.sarif");
        var task = new PatchLivepatchObjects { BuildEngine = engine,
            Objects = [Item(Repo.Fixture("livepatch.und.le.o"), output)], JsonReport = json, SarifReport = sarif };
        Assert.IsTrue(task.Execute(), string.Join("\n", engine.Errors.Select(e => e.Message)));
        Assert.AreEqual(1, task.SitesFixed);
        Assert.IsTrue(engine.Messages.Any(m =>
            m.Message == "1 REL24 site fixed (insert-nop), 0 unfixable" && m.Importance == MessageImportance.High));
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
        var task = new PatchLivepatchObjects { BuildEngine = engine,
            Objects = [Item(Repo.Fixture("asm_calls.kpatch.le.o"), output)] };
        Assert.IsFalse(task.Execute());
        Assert.IsTrue(engine.Errors.Any(e => e.Code == "PLP3001"));
        Assert.IsFalse(File.Exists(output), "a failed patch leaves no output");

        var allowed = new FakeBuildEngine();
        new PatchLivepatchObjects { BuildEngine = allowed,
            Objects = [Item(Repo.Fixture("asm_calls.kpatch.le.o"), output)], AllowSiblingCalls = true }.Execute();
        Assert.AreEqual("PLP3001", allowed.Warnings.Single().Code);
        Assert.IsFalse(allowed.Errors.Any(e => e.Code == "PLP3001"));
    }

    [TestMethod]
    public void BadObjectIsACodedErrorNotAStackTrace()
    {
        string dir = Repo.NewTempDir(), bad = Path.Combine(dir, "bad.o");
        File.WriteAllText(bad, "not an object");
        foreach (LivepatchObjectTask task in new LivepatchObjectTask[] { new VerifyLivepatchModule(),
            new PatchLivepatchObjects(), new ConvertKlpSymbols() })
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
    public void KlpSymbolsAreCheckedAgainstTheKernelsSymbolMap()
    {
        string dir = Repo.NewTempDir();
        string map = Path.Combine(dir, "System.map");
        File.WriteAllText(map, """
            c000000000000000 T _stext
            c000000000010000 t show_stat
            c000000000010100 T version_proc_show
            c000000000020000 t show_stat
            c000000000030000 d saved_command_line
            """.Replace("            ", ""));
        string project = Path.Combine(dir, "Livepatch.csproj");
        File.WriteAllText(project,
            "<Project>\n  <ItemGroup>\n    <KlpSymbol Include=\"version_proc_shw\" />\n  </ItemGroup>\n</Project>\n");
        TaskItem Klp(string name, string? position = null, string? obj = null)
        {
            var item = new TaskItem(name);
            if (position is not null) item.SetMetadata("Position", position);
            if (obj is not null) item.SetMetadata("Object", obj);
            return item;
        }
        var misspelled = new DefinedItem("version_proc_shw", project);
        var engine = new FakeBuildEngine();
        var task = new CheckKlpSymbolsAgainstKernel
        {
            BuildEngine = engine, SystemMap = map,
            KlpSymbols = [Klp("version_proc_show"), Klp("saved_command_line", obj: "vmlinux"), Klp("show_stat", "2"),
                misspelled,
                Klp("show_stat"), Klp("show_stat", "3"), Klp("nfsd_helper", obj: "nfsd"),
                Klp("show_stat", "first")],   // not a number: Convert's PLP0101, not a guess here
        };
        Assert.IsFalse(task.Execute());
        var errors = engine.Errors.Select(e => (e.Code, e.Message!.Split(';')[0], e.File, e.LineNumber)).ToList();
        CollectionAssert.AreEqual(new[]
        {
            ("PLP0106",
                "KlpSymbol 'version_proc_shw': the target kernel has no symbol 'version_proc_shw' (" + map + ")",
                    project, 3),
            ("PLP0107",
                "KlpSymbol 'show_stat': the target kernel has 2 symbols named 'show_stat' (" + map + "), and no Position picks one", "/fake/project.csproj", 0),
            ("PLP0107",
                "KlpSymbol 'show_stat' has Position 3, and the target kernel has 2 symbols named 'show_stat' (" + map + ")", "/fake/project.csproj", 0),
        }, errors, string.Join("\n", errors));
        StringAssert.Contains(engine.Errors[1].Message,
            "unresolvable ambiguity for symbol 'show_stat' in object 'vmlinux'. Fix: Set Position to 1–2");
    }

    [TestMethod]
    public void AKlpSymbolNotInTheObjectPointsAtItsItem()
    {
        string dir = Repo.NewTempDir();
        string project = Path.Combine(dir, "Livepatch.csproj");
        File.WriteAllText(project,
            "<Project>\n  <ItemGroup>\n    <KlpSymbol Include=\"kernel_helper\" />\n    <KlpSymbol " +
                "Include=\"nowhere\" />\n  </ItemGroup>\n</Project>\n");
        ITaskItem[] items = [new DefinedItem("kernel_helper", project), new DefinedItem("nowhere", project)];
        var engine = new FakeBuildEngine();
        var task = new ConvertKlpSymbols
        {
            BuildEngine = engine, Objects = [Item(Repo.Fixture("livepatch.und.le.o"), Path.Combine(dir, "c.o"))],
                KlpSymbols = items,
        };
        Assert.IsTrue(task.Execute());
        var warning = engine.Warnings.Single(w => w.Code == "PLP0102");
        Assert.AreEqual((project, 4), (warning.File, warning.LineNumber));
    }

    [TestMethod]
    public void KlpSymbolMetadataIsReadAndChecked()
    {
        var engine = new FakeBuildEngine();
        string output = Path.Combine(Repo.NewTempDir(), "c.o");
        var klp = new TaskItem("kernel_helper");
        klp.SetMetadata("Object", "vmlinux");
        klp.SetMetadata("Position", "3");
        var task = new ConvertKlpSymbols { BuildEngine = engine,
            Objects = [Item(Repo.Fixture("livepatch.und.le.o"), output)], KlpSymbols = [klp] };
        Assert.IsTrue(task.Execute());
        Assert.IsTrue(File.ReadAllText(output,
            System.Text.Encoding.Latin1).Contains(".klp.sym.vmlinux.kernel_helper,3"));

        klp.SetMetadata("Position", "first");
        var bad = new FakeBuildEngine();
        Assert.IsFalse(new ConvertKlpSymbols { BuildEngine = bad,
            Objects = [Item(Repo.Fixture("livepatch.und.le.o"), output)], KlpSymbols = [klp] }.Execute());
        Assert.AreEqual("PLP0101", bad.Errors.Single().Code);
    }

    [TestMethod]
    public void CrossCompileTurnsGccOutputIntoCodedDiagnosticsOnce()
    {
        string dir = Repo.NewTempDir();
        File.WriteAllText(Path.Combine(dir, "shared.h"),
            "static inline int twice(int x) { int unused; return 2 * x; }\n");
        File.WriteAllText(Path.Combine(dir, "a.c"), "#include \"shared.h\"\nint a(int x) { return twice(x); }\n");
        File.WriteAllText(Path.Combine(dir, "b.c"),
            "#include \"shared.h\"\nint b(int x) { return undeclared + twice(x); }\n");
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

        // seen by both a.c and b.c: logged once
        var warning = engine.Warnings.Single(w => w.File.EndsWith("shared.h"));
        Assert.AreEqual(("PLP0012", Path.Combine(dir, "shared.h"), 1, 38),
            (warning.Code, warning.File, warning.LineNumber, warning.ColumnNumber));
        Assert.AreEqual("PLP0012", engine.Warnings.Single(w => w.File.EndsWith("b.c")).Code);
        var error = engine.Errors.Single(e => e.Code == "PLP0010");
        Assert.AreEqual((Path.Combine(dir, "b.c"), 2, 23), (error.File, error.LineNumber, error.ColumnNumber));
        Assert.AreEqual("file:///d/PLP0010.md", error.HelpLink);
        var fatal = engine.Errors.Single(e => e.Code == "PLP0011");
        Assert.AreEqual((Path.Combine(dir, "c.c"), 1), (fatal.File, fatal.LineNumber));
        Assert.IsFalse(engine.Errors.Any(e =>
            e.Code == "MSB6006"), "no generic tool failure on top of the coded errors");
        Assert.IsTrue(File.Exists(Path.Combine(dir, "obj", "a.c.o")));
        Assert.IsFalse(File.Exists(Path.Combine(dir, "obj", "b.c.o")), "a failed compile leaves no object");
        CollectionAssert.AreEqual(new[] { Path.Combine(dir, "shared.h") },
            ReadDependencyFiles.Parse(Path.Combine(dir, "obj", "a.c.d"), Path.Combine(dir, "a.c")).ToList());
    }

    private sealed class CrashingTask : LivepatchObjectTask
    {
        protected override PpcLivepatch.Steps.StepOptions Options() => throw new InvalidOperationException("boom");
    }

    [TestMethod]
    public void AnUnexpectedFailureIsOneCodedErrorAndNoOutput()
    {
        var engine = new FakeBuildEngine();
        string output = Path.Combine(Repo.NewTempDir(), "out.o");
        File.WriteAllText(output, "stale");
        var task = new CrashingTask { BuildEngine = engine,
            Objects = [Item(Repo.Fixture("calls.kpatch.le.o"), output)] };
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
        var task = new CrossCompile { BuildEngine = engine, Source = "/x/a.c", ObjectFile = "/x/a.o",
            CrossCompilePrefix = "nonexistent-ppc-" };
        Assert.IsFalse(task.Execute());
        var e = engine.Errors.Single();
        Assert.AreEqual("PLP0013", e.Code);
        StringAssert.Contains(e.Message, "nonexistent-ppc-gcc");
        StringAssert.Contains(e.Message, "names no toolchain Debian packages");
    }

    [TestMethod]
    [DataRow("powerpc64le-linux-gnu-", "apt-get install gcc-powerpc64le-linux-gnu")]
    [DataRow("powerpc64-linux-gnu-", "apt-get install gcc-powerpc64-linux-gnu")]
    [DataRow("", "apt-get install gcc binutils")]
    [DataRow("ppc64le-unknown-", "names no toolchain Debian packages")]
    public void EachPrefixGetsItsOwnInstallAdvice(string prefix, string advice) =>
        StringAssert.Contains(PpcLivepatch.Kbuild.Toolchain.InstallAdvice(prefix), advice);

    [TestMethod]
    public void AKbuildFailureShowsMakesErrorsAndItsProgress()
    {
        // A make that prints what kbuild prints when modpost stops the build, and fails as make does.
        string dir = Repo.NewTempDir(), kernel = Path.Combine(dir, "linux"), bin = Path.Combine(dir, "bin");
        Directory.CreateDirectory(kernel);
        Directory.CreateDirectory(bin);
        File.WriteAllText(Path.Combine(kernel, "Makefile"), "# a kernel tree\n");
        string make = Path.Combine(bin, "make");
        File.WriteAllText(make, """
            #!/bin/sh
            echo "  CC [M]  $PWD/kbuild/lp.o"
            echo "  MODPOST $PWD/kbuild/Module.symvers"
            echo 'ERROR: modpost: "missing_fn" [kbuild/lp.ko] undefined!'
            echo "make[1]: *** [scripts/Makefile.modpost:126: kbuild/Module.symvers] Error 1"
            echo "make: *** [Makefile:1960: modpost] Error 2"
            exit 2
            """.Replace("            ", ""));
        File.SetUnixFileMode(make, (UnixFileMode)0b111_101_101);
        var engine = new FakeBuildEngine();
        var task = new KbuildMake
        {
            BuildEngine = engine, KernelDirectory = kernel, KbuildDirectory = Path.Combine(dir, "kbuild"),
                SourceDirectory = dir,
            ProjectFile = Path.Combine(dir, "Livepatch.csproj"), ToolPath = bin,
        };
        Assert.IsFalse(task.Execute());
        var error = engine.Errors.Single();
        Assert.AreEqual("PLP0016", error.Code);
        StringAssert.Contains(error.Message,
            "make reported: ERROR: modpost: \"missing_fn\" [kbuild/lp.ko] undefined! | make[1]: ***");
        StringAssert.EndsWith(error.HelpLink, "PLP0016.md");
        // Progress at the importance a default build shows.
        Assert.IsTrue(engine.Messages.Any(m =>
            m.Importance == MessageImportance.High && m.Message!.StartsWith("  CC [M]")),
            string.Join("\n", engine.Messages.Select(m => $"{m.Importance}: {m.Message}")));
        Assert.IsTrue(engine.Messages.Any(m =>
            m.Importance == MessageImportance.High && m.Message!.StartsWith("kbuild: make -C ")));
    }

    [TestMethod]
    public void WithoutAPrefixTheTaskRunsPlainGcc()
    {
        // MSBuild never passes an empty parameter: the task's own default is what an empty CrossCompilePrefix gives.
        Assert.AreEqual("", new CrossCompile().CrossCompilePrefix);
        Assert.AreEqual("", new KbuildMake().CrossCompilePrefix);
    }
}

/// <summary>
/// The object tasks run their steps in the package's native ppc-livepatch (<c>serve</c>) where there is one: what they
/// log and write must not depend on where the step ran, and a tool that fails must be a coded error.
/// </summary>
[TestClass]
public sealed class NativeStepTaskTests
{
    private static ITaskItem Item(string path, string output)
    {
        var item = new TaskItem(path);
        item.SetMetadata("OutputFile", output);
        return item;
    }

    private sealed record Run(bool Result, string[] Log, byte[]? Output, string? Report, int SitesFixed);

    private static string Describe(LazyFormattedBuildEventArgs e, string? code, string? file, int line, int column) =>
        $"{e.GetType().Name} {code} {file}({line},{column}) {e.Message}" + (e is BuildMessageEventArgs m
            ? $" [{m.Importance}]" : "");

    private static Run Execute(Func<FakeBuildEngine, LivepatchObjectTask> create, string output, string report)
    {
        foreach (string f in new[] { output, report }) if (File.Exists(f)) File.Delete(f);
        using var engine = new FakeBuildEngine();
        var task = create(engine);
        bool result = task.Execute();
        return new Run(result, Logged(engine), File.Exists(output) ? File.ReadAllBytes(output) : null,
            File.Exists(report) ? File.ReadAllText(report) : null,
            (task as PatchLivepatchObjects)?.SitesFixed ?? 0);
    }

    /// <summary>Everything the engine was told, in a comparable form; the engine's records are cleared.</summary>
    private static string[] Logged(FakeBuildEngine engine)
    {
        var log = engine.Errors.Select(e => Describe(e, e.Code, e.File, e.LineNumber, e.ColumnNumber))
            .Concat(engine.Warnings.Select(e => Describe(e, e.Code, e.File, e.LineNumber, e.ColumnNumber)))
            .Concat(engine.Messages.Select(e => Describe(e, e.Code, e.File, e.LineNumber, e.ColumnNumber)))
            .ToArray();
        engine.Errors.Clear();
        engine.Warnings.Clear();
        engine.Messages.Clear();
        return log;
    }

    private static void AssertSame(Run inProcess, Run native, string what)
    {
        Assert.AreEqual(inProcess.Result, native.Result, what);
        CollectionAssert.AreEqual(inProcess.Log, native.Log,
            $"{what}: logged\n{string.Join('\n', inProcess.Log)}\nvs\n{string.Join('\n', native.Log)}");
        Assert.AreEqual(inProcess.Output is null, native.Output is null, what);
        if (inProcess.Output is not null) CollectionAssert.AreEqual(inProcess.Output, native.Output, what);
        Assert.AreEqual(inProcess.Report, native.Report, what);
        Assert.AreEqual(inProcess.SitesFixed, native.SitesFixed, what);
    }

    [TestMethod]
    [DataRow("livepatch.und.le.o", "auto", "needed")]
    [DataRow("livepatch.klp.le.o", "island", "needed")]
    [DataRow("switch.kpatch.le.o", "auto", "all-local")]
    [DataRow("calls.kpatch.be.o", "insert-nop", "all-local")]
    [DataRow("asm_calls.kpatch.le.o", "auto", "all-local")]
    [DataRow("static_key.kpatch.le.o", "none", "needed")]
    public void NativeAndInProcessStepsLogAndWriteTheSame(string fixture, string strategy, string sites)
    {
        string dir = Repo.NewTempDir(), patched = Path.Combine(dir, "patched.o"), final = Path.Combine(dir, "final.o"),
            report = Path.Combine(dir, "report.json");
        Run Patch(string? tool) => Execute(engine => new PatchLivepatchObjects
        {
            BuildEngine = engine, Objects = [Item(Repo.Fixture(fixture), patched)], Strategy = strategy, Sites = sites,
            JsonReport = report, ToolPath = tool, HelpLinkBase = "file:///docs/",
        }, patched, report);
        Run Verify(string input, string? tool) => Execute(engine => new VerifyLivepatchModule
        {
            BuildEngine = engine, Objects = [Item(input, final)], Mode = "warn", JsonReport = report, ToolPath = tool,
        }, final, report);

        var inProcess = Patch(null);
        var native = Patch(PackedSdk.NativeTool);
        AssertSame(inProcess, native, $"patch {fixture}");
        Assert.IsTrue(native.Log.Length > 0, "the step said something");

        // Verify the unpatched object too: warn mode turns its rejections into warnings, the same in both.
        AssertSame(Verify(Repo.Fixture(fixture), null), Verify(Repo.Fixture(fixture), PackedSdk.NativeTool),
            $"verify {fixture}");
    }

    [TestMethod]
    public void TheNativeToolAgreesOnEveryFixtureAndEveryInputThatOnceFoundABug()
    {
        // Ahead-of-time compilation trims and precompiles: the same code must still behave the same, bad input
        // included.
        string dir = Repo.NewTempDir(), output = Path.Combine(dir, "out.o"), report = Path.Combine(dir, "report.json");
        var inputs = Directory.GetFiles(Path.Combine(Repo.Root, "tests", "fixtures", "elf"), "*.o")
            .Concat(Directory.GetFiles(Path.Combine(Repo.Root, "tests", "fixtures", "fuzz"),
                "*.o")).Order(StringComparer.Ordinal).ToList();
        Assert.IsTrue(inputs.Count > 40);
        using var shared = new FakeBuildEngine();   // one server for every native run, as in a build
        foreach (string input in inputs)
        {
            Run Patch(string? tool)
            {
                foreach (string f in new[] { output, report }) if (File.Exists(f)) File.Delete(f);
                var engine = tool is null ? new FakeBuildEngine() : shared;
                var task = new PatchLivepatchObjects { BuildEngine = engine, Objects = [Item(input, output)],
                    Sites = "all-local", JsonReport = report, ToolPath = tool };
                bool result = task.Execute();
                return new Run(result, Logged(engine), File.Exists(output) ? File.ReadAllBytes(output) : null,
                    File.Exists(report) ? File.ReadAllText(report) : null, task.SitesFixed);
            }
            AssertSame(Patch(null), Patch(PackedSdk.NativeTool), Path.GetFileName(input));
        }
        Assert.AreEqual(1, shared.Registered.Count, "one server served every native run");
    }

    [TestMethod]
    public void OneServerPerToolServesEveryStepOfTheBuildAndEndsWithIt()
    {
        string dir = Repo.NewTempDir(), tool = PackedSdk.ExtractNativeTool();
        var engine = new FakeBuildEngine();
        var convert = new ConvertKlpSymbols { BuildEngine = engine,
            Objects = [Item(Repo.Fixture("livepatch.und.le.o"), Path.Combine(dir, "c.o"))], ToolPath = tool };
        var patch = new PatchLivepatchObjects { BuildEngine = engine,
            Objects = [Item(Path.Combine(dir, "c.o"), Path.Combine(dir, "p.o"))], ToolPath = tool };
        Assert.IsTrue(convert.Execute(), string.Join('\n', engine.Errors.Select(e => e.Message)));
        var server = (NativeStep)engine.Registered.Single();
        int pid = server.ProcessId;
        Assert.IsTrue(patch.Execute(), string.Join('\n', engine.Errors.Select(e => e.Message)));
        Assert.AreSame(server, engine.Registered.Single(), "the second step reuses the server");
        Assert.AreEqual(1, patch.SitesFixed);
        Assert.AreEqual(UnixFileMode.UserExecute, File.GetUnixFileMode(tool) & UnixFileMode.UserExecute,
            "the task made the tool executable");

        engine.Dispose();   // what MSBuild does when the build ends
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while (Directory.Exists($"/proc/{pid}") && DateTime.UtcNow < deadline) Thread.Sleep(20);
        Assert.IsFalse(Directory.Exists($"/proc/{pid}"), $"server {pid} outlived the build");
    }

    [TestMethod]
    public void AToolThatCannotRunHereMeansTheStepRunsInProcess()
    {
        // What the dynamic loader says when the package's binary needs a newer C library than the host has.
        string tool = Script("echo \"ppc-livepatch: /lib/x86_64-linux-gnu/libc.so.6: version 'GLIBC_2.99' not " +
            "found\" >&2; exit 1");
        string output = Path.Combine(Repo.NewTempDir(), "p.o");
        using var engine = new FakeBuildEngine();
        var task = new PatchLivepatchObjects { BuildEngine = engine,
            Objects = [Item(Repo.Fixture("livepatch.und.le.o"), output)], ToolPath = tool };
        Assert.IsTrue(task.Execute(), string.Join('\n', engine.Errors.Select(e => e.Message)));
        Assert.AreEqual(1, task.SitesFixed);
        Assert.IsTrue(File.Exists(output));
        var note = engine.Messages.Single(m => m.Message!.Contains("did not start"));
        StringAssert.Contains(note.Message, "version 'GLIBC_2.99' not found");
        StringAssert.EndsWith(note.Message, "running the step in process");
        Assert.AreEqual(MessageImportance.Normal, note.Importance);
        Assert.AreEqual(0, engine.Registered.Count, "no server is kept for a tool that did not start");
    }

    [TestMethod]
    public void AMissingToolMeansTheStepRunsInProcess()
    {
        string output = Path.Combine(Repo.NewTempDir(), "p.o");
        using var engine = new FakeBuildEngine();
        var task = new PatchLivepatchObjects { BuildEngine = engine,
            Objects = [Item(Repo.Fixture("livepatch.und.le.o"), output)], ToolPath = "/nonexistent/ppc-livepatch" };
        Assert.IsTrue(task.Execute());
        Assert.AreEqual(1, task.SitesFixed);
        Assert.IsTrue(File.Exists(output));
        Assert.IsTrue(engine.Messages.Any(m =>
            m.Message!.Contains("not found; running the step in process") && m.Importance == MessageImportance.Low));
    }

    private static string Script(string body)
    {
        string path = Path.Combine(Repo.NewTempDir(), "fake-tool");
        File.WriteAllText(path, "#!/bin/sh\n" + body + "\n");
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return path;
    }

    [TestMethod]
    [DataRow("echo '{\"ready\":true}'; read line; echo '{\"message\":\"half\",\"prominent\":false}'; echo 'fatal: " +
        "out of cheese' >&2; exit 134", "it ended part way: fatal: out of cheese")]
    [DataRow("echo '{\"ready\":true}'; while read line; do echo '{\"error\":\"FormatException: boom\"}'; done",
        "FormatException: boom")]
    [DataRow("echo '{\"ready\":true}'; while read line; do echo 'garbage'; echo '{\"sitesFixed\":0}'; done",
        "unreadable line 'garbage'")]
    public void AToolThatFailsDuringAStepIsAnInternalErrorAndLeavesNoOutput(string script, string message)
    {
        string output = Path.Combine(Repo.NewTempDir(), "p.o");
        File.WriteAllText(output, "stale");
        using var engine = new FakeBuildEngine();
        var task = new PatchLivepatchObjects { BuildEngine = engine,
            Objects = [Item(Repo.Fixture("livepatch.und.le.o"), output)], ToolPath = Script(script) };
        Assert.IsFalse(task.Execute());
        var error = engine.Errors.Single();
        Assert.AreEqual("PLP0002", error.Code);
        StringAssert.Contains(error.Message, message);
        Assert.IsFalse(File.Exists(output), "no output after a failed step");
    }

    [TestMethod]
    public void MisspelledPropertiesAreCodedErrorsAtTheProjectFileBeforeAnyStep()
    {
        var engine = new FakeBuildEngine();
        string key = Path.Combine(Repo.NewTempDir(), "options.cache");
        var task = new CheckLivepatchProperties
        {
            BuildEngine = engine, KeyFile = key, Rel24Strategy = "foo", Rel24Sites = "some",
                LivepatchVerifyMode = "warning",
            KernelAcceptsLdToc = "maybe", LivepatchPcrel = "false", LivepatchAbi = "elfv3",
        };
        Assert.IsFalse(task.Execute());
        CollectionAssert.AreEquivalent(
            new[] { "KernelAcceptsLdToc is 'maybe'", "Rel24Strategy is 'foo'", "Rel24Sites is 'some'",
                "LivepatchVerifyMode is 'warning'",
                "LivepatchAbi is 'elfv3'" },
            engine.Errors.Select(e => e.Message!.Split(';')[0]).ToArray());
        Assert.IsTrue(engine.Errors.All(e =>
            e.Code == "PLP0001" && e.File == "/fake/project.csproj" && e.HelpLink!.EndsWith("PLP0001.md")));
        Assert.IsFalse(File.Exists(key), "no key for options that cannot be used");
    }

    [TestMethod]
    public void APropertyErrorPointsAtTheLineThatSetsIt()
    {
        string dir = Repo.NewTempDir();
        string project = Path.Combine(dir, "Livepatch.csproj");
        File.WriteAllText(project,
            "<Project>\n  <PropertyGroup>\n    <LivepatchAbi>elfv3</LivepatchAbi>\n  </PropertyGroup>\n</Project>\n");
        var engine = new FakeBuildEngine();
        var task = new CheckLivepatchProperties
        {
            BuildEngine = engine, KeyFile = Path.Combine(dir, "options.cache"), LivepatchAbi = "elfv3",
                Rel24Sites = "some",
            Rel24Strategy = "asm", LivepatchVerifyMode = "error",
            ProjectFile = project,
        };
        Assert.IsFalse(task.Execute());
        var errors = engine.Errors.OrderBy(e =>
            e.Message).Select(e => (e.File, e.LineNumber, e.Message!.Split(';')[0])).ToArray();
        CollectionAssert.AreEqual(new[] { (project, 3, "LivepatchAbi is 'elfv3'"),
            (project, 0, "Rel24Sites is 'some'") }, errors,
            "a value set in the project file has its line; one from the command line has none");
    }

    [TestMethod]
    public void TheOptionsKeyIsTheStepOptionsAndChangesOnlyWithThem()
    {
        string key = Path.Combine(Repo.NewTempDir(), "options.cache");
        string Run(string strategy, string sites = "needed", string extra = "")
        {
            var engine = new FakeBuildEngine();
            var task = new CheckLivepatchProperties
            {
                BuildEngine = engine, KeyFile = key, Rel24Strategy = strategy, Rel24Sites = sites,
                    LivepatchVerifyMode = "error", Extra = extra,
            };
            Assert.IsTrue(task.Execute(), string.Join("\n", engine.Errors.Select(e => e.Message)));
            return File.ReadAllText(key);
        }
        string asm = Run("asm");
        StringAssert.Contains(asm, "\"step\":\"patch\"");
        StringAssert.Contains(asm, "\"strategy\":\"auto\"", "asm reaches the patch step as auto");
        var written = File.GetLastWriteTimeUtc(key);
        File.SetLastWriteTimeUtc(key, written.AddMinutes(-5));
        Assert.AreEqual(asm, Run("auto"), "the same step options, the same key");
        Assert.AreEqual(written.AddMinutes(-5), File.GetLastWriteTimeUtc(key),
            "an unchanged key is not rewritten (the steps stay up to date)");
        Assert.AreNotEqual(asm, Run("island"));
        Assert.AreNotEqual(asm, Run("auto", sites: "all-local"));
        Assert.AreNotEqual(asm, Run("auto", extra: "true|sha512"));
    }
}
