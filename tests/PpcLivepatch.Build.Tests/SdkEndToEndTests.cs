using System.IO.Compression;
using System.Reflection.PortableExecutable;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using Microsoft.Build.Logging.StructuredLogger;
using PpcLivepatch.Analysis;

namespace PpcLivepatch.Build.Tests;

/// <summary>
/// The product as a user meets it: the SDK packed with the .NET SDK's own `dotnet pack`, consumed from a local feed by
/// real projects in temporary folders (their own NuGet packages folder, so never a stale SDK), built with
/// `dotnet build`. Assertions read the exit code, the console and the binary log.
/// </summary>
[TestClass]
public sealed partial class SdkEndToEndTests
{
    private static string s_feed => PackedSdk.Feed;
    private static string s_version => PackedSdk.Version;

    private static string Consumer(string projectXml, params (string Name, string Text)[] files) =>
        PackedSdk.Consumer(projectXml, files);

    private static Tool.Result Build(string dir, string binlog = "build.binlog", params string[] extra) =>
        PackedSdk.Build(dir, binlog, extra);

    private static string Module(string dir, string name = "livepatch") =>
        Path.Combine(dir, "bin", "Debug", name + ".o");

    private static readonly string[] WorkTargets = ["PpcLivepatchCompile", "PpcLivepatchLink",
        "PpcLivepatchConvertKlp", "PpcLivepatchPatch", "PpcLivepatchVerify"];

    [TestMethod]
    public void SampleBuildsLoadsIncrementallyAndCleans()
    {
        string dir = PackedSdk.SampleConsumer();

        var first = Build(dir);
        Assert.AreEqual(0, first.ExitCode, first.Output);
        // The default assembler route gave the call its nop at compile time: nothing is left for the object step.
        StringAssert.Contains(first.Output, "0 REL24 sites fixed (none), 0 unfixable");
        string module = Module(dir, "livepatch_cmdline");
        StringAssert.Contains(first.Output, $"KernelLivepatch -> {module}");
        var report = ObjectVerifier.Verify(module, LoaderOptions.Default);
        Assert.IsTrue(report.Accepted, string.Join("\n", report.Diagnostics.Select(d => d.Message)));
        Assert.IsTrue(report.Sites.Any(s =>
            s.Site.Callee == ".klp.sym.vmlinux.version_proc_show,0" && s.Site.InLivepatchRelocations));

        // Second build: every work target is skipped as up to date.
        var second = Build(dir, "second.binlog");
        Assert.AreEqual(0, second.ExitCode, second.Output);
        var skipped = BinaryLog.ReadBuild(Path.Combine(dir, "second.binlog")).FindChildrenRecursive<Message>(m =>
            m.Text.StartsWith("Skipping target")).Select(m => m.Text).ToList();
        foreach (string target in WorkTargets)
            Assert.IsTrue(skipped.Any(t => t.Contains($"\"{target}\"")), $"{target} ran " +
                $"again:\n{string.Join("\n", skipped)}");

        // dotnet clean removes what the build wrote.
        var clean = Tool.Run(dir, "dotnet", "clean", "-tl:off", "-nologo", "--disable-build-servers");
        Assert.AreEqual(0, clean.ExitCode, clean.Output);
        Assert.IsFalse(File.Exists(module));
        Assert.AreEqual(0, Directory.Exists(Path.Combine(dir, "obj", "Debug", "livepatch"))
            ? Directory.GetFiles(Path.Combine(dir, "obj", "Debug", "livepatch"), "*",
                SearchOption.AllDirectories).Length : 0);
    }

    [TestMethod]
    public void TheAssemblerRouteLeavesNothingToPatchAndSwitchingToItRecompiles()
    {
        string dir = PackedSdk.SampleConsumer();
        var auto = Build(dir, "auto.binlog", "-p:Rel24Strategy=auto");
        Assert.AreEqual(0, auto.ExitCode, auto.Output);
        StringAssert.Contains(auto.Output, "1 REL24 site fixed (insert-nop), 0 unfixable");

        // Rel24Strategy=asm (the default): the compiler's assembly gets the nop after the call to the KlpSymbol copy,
        // so the object step has nothing to fix, and the strategy change alone recompiles the source.
        var asm = Build(dir, "asm.binlog");
        Assert.AreEqual(0, asm.ExitCode, asm.Output);
        StringAssert.Contains(asm.Output, "0 REL24 sites fixed (none), 0 unfixable");
        var skipped = BinaryLog.ReadBuild(Path.Combine(dir, "asm.binlog")).FindChildrenRecursive<Message>(m =>
            m.Text.StartsWith("Skipping target")).Select(m => m.Text);
        Assert.IsFalse(skipped.Any(t =>
            t.Contains("\"PpcLivepatchCompile\"")), "switching to the assembler route must recompile");
        string compiled = Path.Combine(dir, "obj", "Debug", "livepatch", "compile", "livepatch.o");
        var objdump = Tool.Run(dir, "powerpc64le-linux-gnu-objdump", "-dr", compiled);
        Assert.AreEqual(0, objdump.ExitCode, objdump.Output);
        var lines = objdump.Output.Split('\n');
        int call = Array.FindIndex(lines, l => l.Contains("R_PPC64_REL24\tversion_proc_show"));
        Assert.IsTrue(call > 0 && lines[call + 1].Contains("\tnop"), string.Join("\n", lines));
        string module = Module(dir, "livepatch_cmdline");
        var report = ObjectVerifier.Verify(module, LoaderOptions.Default);
        Assert.IsTrue(report.Accepted, string.Join("\n", report.Diagnostics.Select(d => d.Message)));
        Assert.IsTrue(report.Sites.Any(s =>
            s.Site.Callee == ".klp.sym.vmlinux.version_proc_show,0" && s.Site.InLivepatchRelocations));
    }

    [TestMethod]
    public void PackageShipsPortableAndPrecompiledTasksAndANativeToolThatBuildTheSameModule()
    {
        // tasks/net8.0 is IL for any MSBuild on .NET 8+; tasks/net10.0 is the same code precompiled (ReadyToRun).
        using (var package = ZipFile.OpenRead(Path.Combine(s_feed, $"PpcLivepatch.Build.Sdk.{s_version}.nupkg")))
        {
            foreach (string framework in new[] { "net8.0", "net10.0" })
            foreach (string assembly in new[] { "PpcLivepatch.Build.Tasks.dll", "PpcLivepatch.Core.dll",
                "LibObjectFile.dll" })
            {
                var entry = package.GetEntry($"tasks/{framework}/{assembly}");
                Assert.IsNotNull(entry, $"tasks/{framework}/{assembly} is missing from the package");
                using var bytes = new MemoryStream();
                using (var stream = entry.Open()) stream.CopyTo(bytes);
                bytes.Position = 0;
                using var pe = new PEReader(bytes);
                bool readyToRun = pe.PEHeaders.CorHeader!.ManagedNativeHeaderDirectory.Size > 0;
                Assert.AreEqual(framework == "net10.0", readyToRun, $"tasks/{framework}/{assembly}: ReadyToRun = " +
                    $"{readyToRun}");
            }
        }

        // One folder for both builds: the compiler writes the source's path into the object.
        string dir = PackedSdk.SampleConsumer();
        string jitLog = Path.Combine(Repo.NewTempDir(), "jit.txt");
        (string Framework, byte[] Module) BuildSample(params string[] extra)
        {
            foreach (string sub in new[] { "bin", "obj" })
                if (Directory.Exists(Path.Combine(dir, sub))) Directory.Delete(Path.Combine(dir, sub), true);
            // The runtime lists every method it compiles: precompiled tasks must not be among them.
            var jit = new Dictionary<string, string>
                { ["DOTNET_JitStdOutFile"] = jitLog, ["DOTNET_JitDisasmSummary"] = "1" };
            var build = PackedSdk.BuildWith(extra.Length == 0 ? jit : null, dir, "build.binlog", extra);
            Assert.AreEqual(0, build.ExitCode, build.Output);
            string framework = BinaryLog.ReadBuild(Path.Combine(dir, "build.binlog"))
                .FindChildrenRecursive<Property>(p =>
                    p.Name == "PpcLivepatchTaskFramework").Select(p => p.Value).Distinct().Single();
            return (framework, File.ReadAllBytes(Module(dir, "livepatch_cmdline")));
        }

        // This test host is MSBuild's: .NET 10 on linux-x64 picks the precompiled tasks, anything else the portable
        // ones.
        string expected = RuntimeInformation.RuntimeIdentifier == "linux-x64"
            && Environment.Version.Major >= 10 ? "net10.0" : "net8.0";
        var chosen = BuildSample();
        var steps = BinaryLog.ReadBuild(Path.Combine(dir,
            "build.binlog")).FindChildrenRecursive<Microsoft.Build.Logging.StructuredLogger.Task>(
            t => t.Name is "ConvertKlpSymbols" or "PatchLivepatchObjects" or "VerifyLivepatchModule").ToList();
        Assert.AreEqual(3, steps.Count);
        foreach (var step in steps)
        {
            // On linux-x64 every object step ran in the package's native tool, none fell back to MSBuild's process.
            string tool = step.FindChildrenRecursive<Property>(p => p.Name == "ToolPath").Single().Value;
            StringAssert.EndsWith(tool, "/tools/linux-x64/ppc-livepatch");
            Assert.IsFalse(step.FindChildrenRecursive<Message>(m =>
                m.Text.Contains("running the step in process")).Any(), step.Name);
        }
        Assert.IsFalse(ServersRunningFrom(dir).Any(), "a ppc-livepatch server outlived the build");
        if (chosen.Framework == "net10.0")
        {
            // crossgen2 must see MSBuild's assemblies, or it leaves every method that touches an MSBuild type to the
            // JIT.
            var jitted = File.ReadAllLines(jitLog).Where(l =>
                l.Contains("JIT compiled PpcLivepatch.") && !l.Contains("Tier1")).ToList();
            Assert.IsTrue(File.ReadAllLines(jitLog).Length > 100,
                "the JIT log is empty: DOTNET_JitStdOutFile was not honoured");
            Assert.AreEqual(0, jitted.Count, "JIT-compiled despite ReadyToRun:\n" + string.Join('\n', jitted.Take(20)));
        }
        var inProcess = BuildSample("-p:PpcLivepatchUseNativeTool=false");
        var portable = BuildSample("-p:PpcLivepatchTaskFramework=net8.0");
        Assert.AreEqual(expected, chosen.Framework);
        Assert.AreEqual("net8.0", portable.Framework);
        CollectionAssert.AreEqual(portable.Module, chosen.Module,
            "the portable tasks and the native tool wrote different modules");
        CollectionAssert.AreEqual(inProcess.Module, chosen.Module,
            "the precompiled tasks in process and the native tool wrote different modules");
    }

    [TestMethod]
    public void PackageShipsANativeToolForLinuxX64()
    {
        using var package = ZipFile.OpenRead(Path.Combine(s_feed, $"PpcLivepatch.Build.Sdk.{s_version}.nupkg"));
        var entry = package.GetEntry("tools/linux-x64/ppc-livepatch");
        Assert.IsNotNull(entry, "tools/linux-x64/ppc-livepatch is missing from the package");
        var header = new byte[20];
        using (var stream = entry.Open()) stream.ReadExactly(header);
        CollectionAssert.AreEqual(new byte[] { 0x7f, (byte)'E', (byte)'L', (byte)'F' }, header[..4], "not an ELF file");
        Assert.AreEqual(2, header[4], "not ELF64");
        Assert.AreEqual(62, BitConverter.ToUInt16(header, 18), "not x86-64 (EM_X86_64)");

        string tool = PackedSdk.ExtractNativeTool();
        File.SetUnixFileMode(tool, File.GetUnixFileMode(tool) | UnixFileMode.UserExecute);
        var help = Tool.Run(Repo.NewTempDir(), tool, "--help");
        Assert.AreEqual(0, help.ExitCode, help.Output);
        StringAssert.Contains(help.Output, "usage: ppc-livepatch verify");
    }

    [TestMethod]
    public void TheKernelTreeSaysWhichLoaderToVerifyFor()
    {
        string Tree(string release, string config)
        {
            string dir = Repo.NewTempDir();
            Directory.CreateDirectory(Path.Combine(dir, "include", "config"));
            File.WriteAllText(Path.Combine(dir, "include", "config", "kernel.release"), release + "\n");
            File.WriteAllText(Path.Combine(dir, "include", "config", "auto.conf"), config);
            return dir;
        }
        string old = Tree("6.1.0-50-powerpc64le", "CONFIG_PPC64=y\n");
        string pcrel = Tree("6.8.0-31-powerpc64le", "CONFIG_PPC64=y\nCONFIG_PPC_KERNEL_PCREL=y\nCONFIG_LIVEPATCH=y\n");
        (string LdToc, string Pcrel, string Livepatch) Evaluate(string projectBody, params string[] extra)
        {
            string dir = Consumer($"""<Project Sdk="PpcLivepatch.Build.Sdk/VERSION">{projectBody}</Project>""");
            var run = Tool.Run(dir, "dotnet",
                ["msbuild", "-nologo", "-getProperty:KernelAcceptsLdToc", "-getProperty:LivepatchPcrel",
                    "-getProperty:KernelHasLivepatch", .. extra]);
            Assert.AreEqual(0, run.ExitCode, run.Output);
            var json = System.Text.Json.JsonDocument.Parse(run.Output[run.Output.IndexOf('{')..])
                .RootElement.GetProperty("Properties");
            return (json.GetProperty("KernelAcceptsLdToc").GetString()!,
                json.GetProperty("LivepatchPcrel").GetString()!,
                json.GetProperty("KernelHasLivepatch").GetString()!.ToLowerInvariant());
        }

        Assert.AreEqual(("false", "false", ""), Evaluate(""),
            "without KernelDir: a 6.1-era TOC kernel, livepatch support unknown");
        Assert.AreEqual(("false", "false", "false"),
            Evaluate($"<PropertyGroup><KernelDir>{old}</KernelDir></PropertyGroup>"));
        Assert.AreEqual(("true", "true", "true"),
            Evaluate($"<PropertyGroup><KernelDir>{pcrel}</KernelDir></PropertyGroup>"), "6.8 with PCREL and LIVEPATCH");
        Assert.AreEqual(("true", "true", "true"), Evaluate("", $"-p:KernelDir={pcrel}"));
        Assert.AreEqual(("false", "true", "true"),
            Evaluate($"<PropertyGroup><KernelDir>{pcrel}</KernelDir><KernelAcceptsLdToc>false</KernelAcceptsLdToc></PropertyGroup>"),
            "what the project says wins");
    }

    /// <summary>Processes running <c>ppc-livepatch serve</c> from a consumer's packages folder.</summary>
    private static IEnumerable<int> ServersRunningFrom(string consumer)
    {
        foreach (string proc in Directory.GetDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(proc), out int pid)) continue;
            string cmdline;
            try { cmdline = File.ReadAllText(Path.Combine(proc,
                "cmdline")); } catch (IOException) { continue; } catch (UnauthorizedAccessException) { continue; }
            if (cmdline.StartsWith(consumer, StringComparison.Ordinal)
                && cmdline.Contains("ppc-livepatch\0serve", StringComparison.Ordinal)) yield return pid;
        }
    }

    [TestMethod]
    public void ParallelSolutionBuildGivesTheSameModulesAsASerialOne()
    {
        string dir = Repo.NewTempDir();
        PackedSdk.UseIn(dir);
        string[] names = ["alpha", "beta", "gamma"];
        foreach (string name in names)
        {
            Directory.CreateDirectory(Path.Combine(dir, name));
            File.WriteAllText(Path.Combine(dir, name, $"{name}.csproj"), $$"""
                <Project Sdk="PpcLivepatch.Build.Sdk/{{s_version}}">
                  <ItemGroup><KlpSymbol Include="{{name}}_helper" /></ItemGroup>
                </Project>
                """);
            File.WriteAllText(Path.Combine(dir, name, $"{name}.c"), $$"""
                extern int printk(const char *fmt, ...);
                static int __attribute__((noipa)) {{name}}_helper(int x) { return x * {{name.Length}}; }
                int {{name}}_patched(int x) { int r = {{name}}_helper(x); printk("{{name}} %d\n", r); return r + 1; }
                """);
        }
        Assert.AreEqual(0, Tool.Run(dir, "dotnet", "new", "sln", "-n", "all", "--format", "sln").ExitCode);
        Assert.AreEqual(0,
            Tool.Run(dir, "dotnet", ["sln", "all.sln", "add", .. names.Select(n => Path.Combine(n, $"{n}.csproj"))])
                .ExitCode);

        Dictionary<string, byte[]> BuildWith(string parallelism)
        {
            foreach (string name in names)
                foreach (string sub in new[] { "bin", "obj" })
                    if (Directory.Exists(Path.Combine(dir, name, sub)))
                        Directory.Delete(Path.Combine(dir, name, sub), true);
            var build = Tool.Run(dir, "dotnet", "build", "all.sln", parallelism, "-tl:off", "-nologo",
                "--disable-build-servers");
            Assert.AreEqual(0, build.ExitCode, build.Output);
            return names.ToDictionary(n => n, n => File.ReadAllBytes(Path.Combine(dir, n, "bin", "Debug", $"{n}.o")));
        }

        var serial = BuildWith("-m:1");
        var parallel = BuildWith("-m:2");
        foreach (string name in names)
            CollectionAssert.AreEqual(serial[name], parallel[name], $"{name}.o differs between -m:1 and -m:2");
        Assert.IsTrue(names.All(n =>
            ObjectVerifier.Verify(Path.Combine(dir, n, "bin", "Debug", $"{n}.o"), LoaderOptions.Default).Accepted));
    }

    [TestMethod]
    public void TouchingOneSourceOrItsHeaderRebuildsOnlyIt()
    {
        string dir = Consumer("""<Project Sdk="PpcLivepatch.Build.Sdk/VERSION" />""",
            ("a.c", "extern int ext(int);\nint a(int x) { return ext(x) + 1; }\n"),
            ("sub/b.c", "#include \"../hdr.h\"\nextern int ext(int);\nint b(int x) { return ext(x) * SCALE; }\n"),
            ("hdr.h", "#define SCALE 3\n"));
        Assert.AreEqual(0, Build(dir).ExitCode);
        string objects = Path.Combine(dir, "obj", "Debug", "livepatch", "compile");
        string a = Path.Combine(objects, "a.o"), b = Path.Combine(objects, "sub", "b.o");
        var (aTime, bTime) = (File.GetLastWriteTimeUtc(a), File.GetLastWriteTimeUtc(b));

        Thread.Sleep(1100);
        File.SetLastWriteTimeUtc(Path.Combine(dir, "a.c"), DateTime.UtcNow);
        Assert.AreEqual(0, Build(dir).ExitCode);
        Assert.IsTrue(File.GetLastWriteTimeUtc(a) > aTime, "a.c was touched: a.o must be rebuilt");
        Assert.AreEqual(bTime, File.GetLastWriteTimeUtc(b), "b.o must not be rebuilt");

        aTime = File.GetLastWriteTimeUtc(a);
        Thread.Sleep(1100);
        File.WriteAllText(Path.Combine(dir, "hdr.h"), "#define SCALE 5\n");
        Assert.AreEqual(0, Build(dir).ExitCode);
        Assert.IsTrue(File.GetLastWriteTimeUtc(b) > bTime, "hdr.h changed: b.o (which includes it) must be rebuilt");
        Assert.AreEqual(aTime, File.GetLastWriteTimeUtc(a), "a.o does not include hdr.h");
    }

    [TestMethod]
    public void SiblingCallToALivepatchSymbolFailsTheBuildAtTheCLine()
    {
        string dir = Consumer("""
            <Project Sdk="PpcLivepatch.Build.Sdk/VERSION">
              <ItemGroup><KlpSymbol Include="helper" /></ItemGroup>
            </Project>
            """,
            ("sibling.c", "static int __attribute__((noinline)) helper(int v) { return v * 3 + 1; }\n\nint " +
                "patched(int v)\n{\n\treturn helper(v + 1);\n}\n"));
        var result = Build(dir);
        Assert.AreEqual(1, result.ExitCode, result.Output);
        StringAssert.Matches(result.Output,
            new Regex(Regex.Escape(Path.Combine(dir,
                "sibling.c")) + @"\(5,\d+\): ppc-livepatch error PLP3001: sibling call \(b\) to livepatch symbol \.klp\.sym\.vmlinux\.helper,0"));
        var error = BinaryLog.ReadBuild(Path.Combine(dir, "build.binlog")).FindChildrenRecursive<Error>().Single(e =>
            e.Code == "PLP3001");
        Assert.AreEqual((Path.Combine(dir, "sibling.c"), 5), (error.File, error.LineNumber));
        Assert.IsFalse(File.Exists(Module(dir)), "no module is written when the build fails");
        Assert.IsFalse(File.Exists(Path.Combine(dir, "obj", "Debug", "livepatch", "patch", "livepatch.o")),
            "a failed step leaves no output behind");

        // The documented opt-out keeps it a warning.
        var allowed = Build(dir, "allowed.binlog", "-p:LivepatchAllowSiblingCalls=true");
        Assert.AreEqual(0, allowed.ExitCode, allowed.Output);
        StringAssert.Contains(allowed.Output, "ppc-livepatch warning PLP3001");
    }

    [TestMethod]
    public void CompilerErrorIsACodedErrorAtTheCLine()
    {
        string dir = Consumer("""<Project Sdk="PpcLivepatch.Build.Sdk/VERSION" />""",
            ("bad.c", "int f(int x)\n{\n\treturn x + not_declared;\n}\n"));
        var result = Build(dir);
        Assert.AreEqual(1, result.ExitCode, result.Output);
        StringAssert.Matches(result.Output,
            new Regex(Regex.Escape(Path.Combine(dir,
                "bad.c")) + @"\(3,13\): ppc-livepatch error PLP0010: .not_declared. undeclared"));
        var errors = BinaryLog.ReadBuild(Path.Combine(dir, "build.binlog")).FindChildrenRecursive<Error>();
        Assert.IsTrue(errors.All(e => e.Code?.StartsWith("PLP") == true),
            string.Join("\n", errors.Select(e => $"{e.Code}: {e.Text}")));
    }

    [TestMethod]
    public void BadLivepatchObjectIsAnInputError()
    {
        string dir = Consumer("""
            <Project Sdk="PpcLivepatch.Build.Sdk/VERSION">
              <ItemGroup><LivepatchObject Include="prebuilt/module.o" /></ItemGroup>
            </Project>
            """, ("prebuilt/module.o", "this is not an ELF object\n"));
        var result = Build(dir);
        Assert.AreEqual(1, result.ExitCode, result.Output);
        StringAssert.Contains(result.Output, $"{Path.Combine(dir, "prebuilt", "module.o")} : ppc-livepatch error " +
            "PLP1001: not an ELF file");
        Assert.IsFalse(result.Output.Contains("MSB4018"), "no task crash");
    }

    [TestMethod]
    public void PrebuiltObjectGetsConvertPatchAndVerify()
    {
        string dir = Consumer("""
            <Project Sdk="PpcLivepatch.Build.Sdk/VERSION">
              <ItemGroup>
                <LivepatchObject Include="prebuilt/livepatch.kpatch.le.o" />
                <KlpSymbol Include="cmdline_helper" />
              </ItemGroup>
            </Project>
            """);
        Directory.CreateDirectory(Path.Combine(dir, "prebuilt"));
        File.Copy(Repo.Fixture("livepatch.kpatch.le.o"), Path.Combine(dir, "prebuilt", "livepatch.kpatch.le.o"));
        var result = Build(dir, "build.binlog", "-p:LivepatchAllowSiblingCalls=true");
        Assert.AreEqual(0, result.ExitCode, result.Output);
        StringAssert.Contains(result.Output, "1 REL24 site fixed (insert-nop)");
        Assert.IsTrue(ObjectVerifier.Verify(Path.Combine(dir, "bin", "Debug", "livepatch.kpatch.le.o"),
            LoaderOptions.Default).Accepted);
        Assert.IsFalse(BinaryLog.ReadBuild(Path.Combine(dir,
            "build.binlog")).FindChildrenRecursive<Microsoft.Build.Logging.StructuredLogger.Task>(t =>
                t.Name == "CrossCompile").Any(), "nothing to compile");
    }
}
