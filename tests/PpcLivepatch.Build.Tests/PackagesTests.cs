using System.IO.Compression;
using System.Xml.Linq;

namespace PpcLivepatch.Build.Tests;

/// <summary>
/// The packages as users install them, from the feed ./build.sh pack fills: the ppc-livepatch .NET tool, the
/// dotnet new template, and the metadata NuGet shows for each.
/// </summary>
[TestClass]
public sealed class PackagesTests
{
    private static readonly string[] Ids = ["PpcLivepatch.Build.Sdk", "PpcLivepatch.Cli", "PpcLivepatch.Templates",
        .. PackedSdk.ToolRids.Select(rid => $"PpcLivepatch.Cli.{rid}")];

    private static ZipArchive Open(string id, string extension = "nupkg") =>
        ZipFile.OpenRead(Path.Combine(PackedSdk.Feed, $"{id}.{PackedSdk.Version}.{extension}"));

    private static XElement Metadata(ZipArchive package) =>
        XDocument.Load(package.Entries.Single(e => e.FullName.EndsWith(".nuspec", StringComparison.Ordinal)).Open())
            .Root!.Elements().Single(e => e.Name.LocalName == "metadata");

    [TestMethod]
    public void EveryPackageHasLicenceReadmeIconTagsAndRepository()
    {
        foreach (string id in Ids)
        {
            using var package = Open(id);
            var metadata = Metadata(package);
            string? Field(string name) => metadata.Elements().FirstOrDefault(e => e.Name.LocalName == name)?.Value;
            Assert.AreEqual("MIT", Field("license"), id);
            Assert.AreEqual("README.md", Field("readme"), id);
            Assert.IsNotNull(package.GetEntry("README.md"), $"{id} lacks its readme");
            Assert.AreEqual("icon.png", Field("icon"), id);
            using (var icon = new MemoryStream())
            {
                var entry = package.GetEntry("icon.png");
                Assert.IsNotNull(entry, $"{id} lacks its icon");
                entry.Open().CopyTo(icon);
                CollectionAssert.AreEqual(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, icon.ToArray()[..4],
                    $"{id}'s icon is not a PNG");
            }
            StringAssert.Contains(Field("tags"), "livepatch", id);
            Assert.IsFalse(string.IsNullOrWhiteSpace(Field("description")), id);
            var repository = metadata.Elements().Single(e => e.Name.LocalName == "repository");
            Assert.AreEqual("git", repository.Attribute("type")?.Value, id);
        }
    }

    /// <summary>Nothing a Linux user does not run: no dependency group (the SDK and the tools bring what they need,
    /// the template is content), no Windows copies of the tasks' dependencies, no debug files in the native tools
    /// (the portable tool's PDBs are also in its symbols package).</summary>
    [TestMethod]
    public void NoPackageCarriesStrayDependenciesWindowsCopiesOrNativeDebugFiles()
    {
        foreach (string id in Ids)
        {
            using var package = Open(id);
            Assert.IsFalse(Metadata(package).Elements().Any(e => e.Name.LocalName == "dependencies"),
                $"{id} declares dependencies");
            var stray = package.Entries.Select(e => e.FullName).Where(name =>
                name.Contains("/runtimes/win", StringComparison.Ordinal) || name.StartsWith("runtimes/win")
                || (id.Contains("linux-", StringComparison.Ordinal)
                    && (name.EndsWith(".pdb", StringComparison.Ordinal)
                        || name.EndsWith(".dbg", StringComparison.Ordinal)))).ToList();
            Assert.AreEqual(0, stray.Count, $"{id} carries {string.Join(", ", stray)}");
        }
        using var symbols = Open("PpcLivepatch.Cli.any", "snupkg");
        var pdbs = symbols.Entries.Select(e => Path.GetFileName(e.FullName))
            .Where(n => n.EndsWith(".pdb", StringComparison.Ordinal)).Order(StringComparer.Ordinal).ToList();
        CollectionAssert.AreEqual(new[] { "PpcLivepatch.Core.pdb", "ppc-livepatch.pdb" }, pdbs);
    }

    [TestMethod]
    public void TheToolInstallsFromTheFeedAsItsNativeBuildAndShipsItsHelpPages()
    {
        string dir = Repo.NewTempDir(), tools = Path.Combine(dir, "tools");
        PackedSdk.UseIn(dir);
        var install = Tool.Run(dir, "dotnet", "tool", "install", "--tool-path", tools, "PpcLivepatch.Cli", "--version",
            PackedSdk.Version);
        Assert.AreEqual(0, install.ExitCode, install.Output);
        string tool = Path.Combine(tools, "ppc-livepatch");

        // On linux-x64 the command is the Native AOT build: an x86-64 ELF executable, no assembly beside it.
        string installed = Path.GetFullPath(new FileInfo(tool).ResolveLinkTarget(returnFinalTarget: true)?.FullName
            ?? tool);
        StringAssert.Contains(installed, "ppclivepatch.cli.linux-x64", "the linux-x64 package was installed");
        Assert.AreEqual("Advanced Micro Devices X86-64", ElfMachine(installed), installed);
        Assert.IsFalse(File.Exists(Path.Combine(Path.GetDirectoryName(installed)!, "ppc-livepatch.dll")),
            "the native package holds no assemblies");

        var version = Tool.Run(dir, tool, "--version");
        Assert.AreEqual($"ppc-livepatch {PackedSdk.Version}", version.Output.Trim());

        var sarif = Tool.Run(dir, tool, "verify", "--format=sarif", Repo.Fixture("livepatch.und.le.o"));
        Assert.AreEqual(1, sarif.ExitCode, sarif.Output);
        var helpUri = System.Text.Json.JsonDocument.Parse(sarif.Output)
            .RootElement.GetProperty("runs")[0].GetProperty("tool")
            .GetProperty("driver").GetProperty("rules")[0].GetProperty("helpUri").GetString()!;
        Assert.IsTrue(helpUri.StartsWith("file://", StringComparison.Ordinal)
            && File.Exists(new Uri(helpUri).LocalPath),
            $"the help link {helpUri} is not a page the tool package installed");
        StringAssert.Contains(new Uri(helpUri).LocalPath, tools);
    }

    /// <summary>The linux-arm64 package's tool, cross-compiled here, run by qemu-aarch64 on the fixtures: the same
    /// reports, byte for byte, as the linux-x64 build's.</summary>
    [TestMethod]
    public void TheArm64ToolGivesTheX64ToolsReports()
    {
        string dir = Repo.NewTempDir();
        string x64 = ExtractTool(dir, "linux-x64"), arm64 = ExtractTool(dir, "linux-arm64");
        Assert.AreEqual("AArch64", ElfMachine(arm64));
        string[] fixtures = ["livepatch.und.le.o", "asm_calls.kmod.be.o", "switch.kpatch.le.o"];
        foreach (string fixture in fixtures)
        {
            string[] args = ["verify", "--format", "json", Repo.Fixture(fixture)];
            var expected = Tool.Run(dir, x64, args);
            var actual = Tool.Run(dir, "qemu-aarch64", ["-L", "/usr/aarch64-linux-gnu", arm64, .. args]);
            Assert.AreEqual(expected.ExitCode, actual.ExitCode, actual.Output);
            Assert.AreEqual(expected.Output, actual.Output, fixture);
            Assert.IsTrue(expected.Output.Length > 200, expected.Output);
        }
    }

    /// <summary>A rewrite in place replaces the only copy of the user's object, so its bytes reach the disk before
    /// the rename; an output made from other files (a diff, a patch to <c>-o</c>) is not flushed, as a compiler's is
    /// not (the flush was a third of a whole diff on this project's machines). Seen by strace on the native
    /// tool.</summary>
    [TestMethod]
    public void TheToolFlushesOnlyARewriteInPlace()
    {
        string dir = Repo.NewTempDir(), tool = ExtractTool(dir, "linux-x64");
        int Flushes(params string[] args)
        {
            string log = Path.Combine(dir, "strace.log");
            var run = Tool.Run(dir, "strace", ["-f", "-qq", "-e", "trace=fsync,fdatasync,sync_file_range", "-o", log,
                tool, .. args]);
            Assert.AreEqual(0, run.ExitCode, $"ppc-livepatch {string.Join(' ', args)}: {run.Output}");
            return File.ReadAllLines(log).Count(l => l.Contains("sync", StringComparison.Ordinal));
        }
        string pairs = Path.Combine(Repo.Root, "tests", "fixtures", "kpatch-unit");
        Assert.AreEqual(0, Flushes("diff", Path.Combine(pairs, "cmdline-ubsan.ORIG.o"),
            Path.Combine(pairs, "cmdline-ubsan.PATCHED.o"), "-o", Path.Combine(dir, "livepatch.o")));
        Assert.IsTrue(File.Exists(Path.Combine(dir, "livepatch.o")));

        string copy = Path.Combine(dir, "livepatch.und.le.o");
        File.Copy(Repo.Fixture("livepatch.und.le.o"), copy);
        Assert.AreEqual(0, Flushes("patch", copy, "-o", Path.Combine(dir, "patched.o")));
        var before = File.ReadAllBytes(copy);
        Assert.AreEqual(1, Flushes("patch", copy));
        CollectionAssert.AreNotEqual(before, File.ReadAllBytes(copy), "the in-place patch changed nothing");

        // -o naming a symbolic link to the input: the write follows the link and replaces the input itself.
        string second = Path.Combine(dir, "second.o"), link = Path.Combine(dir, "link.o");
        File.Copy(Repo.Fixture("livepatch.und.le.o"), second);
        File.CreateSymbolicLink(link, second);
        Assert.AreEqual(1, Flushes("patch", second, "-o", link));
        Assert.IsNotNull(new FileInfo(link).LinkTarget, "the link was replaced instead of followed");
    }

    private static string ExtractTool(string dir, string rid)
    {
        string path = Path.Combine(dir, rid, "ppc-livepatch");
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        using var package = Open($"PpcLivepatch.Cli.{rid}");
        package.GetEntry($"tools/any/{rid}/ppc-livepatch")!.ExtractToFile(path);
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return path;
    }

    /// <summary>Where no native build is named for the host, <c>dotnet tool install</c> takes the portable one: the
    /// pointer package as a host of another identifier sees it (linux-x64 left out), installed and run under the
    /// dotnet host.</summary>
    [TestMethod]
    public void AHostWithoutANativeBuildGetsThePortableTool()
    {
        string feed = Repo.NewTempDir(), dir = Repo.NewTempDir(), tools = Path.Combine(dir, "tools");
        foreach (string id in new[] { "PpcLivepatch.Cli", "PpcLivepatch.Cli.any" })
            File.Copy(Path.Combine(PackedSdk.Feed, $"{id}.{PackedSdk.Version}.nupkg"),
                Path.Combine(feed, $"{id}.{PackedSdk.Version}.nupkg"));
        using (var pointer = ZipFile.Open(Path.Combine(feed, $"PpcLivepatch.Cli.{PackedSdk.Version}.nupkg"),
            ZipArchiveMode.Update))
        {
            var entry = pointer.GetEntry("tools/any/any/DotnetToolSettings.xml")!;
            XDocument settings;
            using (var reader = entry.Open()) settings = XDocument.Load(reader);
            var x64 = settings.Descendants("RuntimeIdentifierPackage")
                .Where(e => e.Attribute("RuntimeIdentifier")?.Value == "linux-x64").ToList();
            Assert.AreEqual(1, x64.Count, settings.ToString());
            x64.ForEach(e => e.Remove());
            entry.Delete();
            using var writer = pointer.CreateEntry("tools/any/any/DotnetToolSettings.xml").Open();
            settings.Save(writer);
        }
        File.WriteAllText(Path.Combine(dir, "nuget.config"), $"""
            <configuration>
              <config><add key="globalPackagesFolder" value="{Path.Combine(dir, ".packages")}" /></config>
              <packageSources><add key="ppclp-fallback" value="{feed}" /></packageSources>
            </configuration>
            """);
        var install = Tool.Run(dir, "dotnet", "tool", "install", "--tool-path", tools, "PpcLivepatch.Cli", "--version",
            PackedSdk.Version);
        Assert.AreEqual(0, install.ExitCode, install.Output);
        Assert.IsTrue(Directory.EnumerateFiles(tools, "ppc-livepatch.dll", SearchOption.AllDirectories)
            .Any(f => f.Contains("ppclivepatch.cli.any", StringComparison.Ordinal)), install.Output);

        var verify = Tool.Run(dir, Path.Combine(tools, "ppc-livepatch"), "verify", Repo.Fixture("livepatch.und.le.o"));
        Assert.AreEqual(1, verify.ExitCode, verify.Output);
        StringAssert.Contains(verify.Output, "error PLP2001");
    }

    /// <summary>The ELF e_machine of an executable, as readelf names it.</summary>
    private static string ElfMachine(string path)
    {
        var header = Tool.Run(Path.GetDirectoryName(path)!, "readelf", "-h", path);
        Assert.AreEqual(0, header.ExitCode, header.Output);
        string line = header.Output.Split('\n').Single(l => l.TrimStart().StartsWith("Machine:"));
        return line.Split(':', 2)[1].Trim();
    }

    [TestMethod]
    public void TheTemplateCreatesProjectsThatBuild()
    {
        var (dir, home) = PackedSdk.WithTemplate();
        var plain = Tool.RunWith(home, dir, "dotnet", "new", "ppc-livepatch", "-o", Path.Combine(dir, "MyPatch"));
        Assert.AreEqual(0, plain.ExitCode, plain.Output);
        string project = Path.Combine(dir, "MyPatch", "MyPatch.csproj");
        StringAssert.Contains(File.ReadAllText(project),
            $"<Project Sdk=\"PpcLivepatch.Build.Sdk/{PackedSdk.Version}\">");
        Assert.IsFalse(System.Text.RegularExpressions.Regex.IsMatch(File.ReadAllText(project), @"^\s*<KernelDir>",
            System.Text.RegularExpressions.RegexOptions.Multiline),
            "plain mode sets no KernelDir");
        Assert.IsTrue(File.Exists(Path.Combine(dir, "MyPatch", "livepatch.c")));
        Assert.IsTrue(File.Exists(Path.Combine(dir, "MyPatch", "nuget.config")));

        var build = PackedSdk.Build(Path.Combine(dir, "MyPatch"));
        Assert.AreEqual(0, build.ExitCode, build.Output);
        Assert.IsTrue(File.Exists(Path.Combine(dir, "MyPatch", "bin", "Debug", "mypatch.o")), build.Output);

        var kbuild = Tool.RunWith(home, dir, "dotnet", "new", "ppc-livepatch", "-o", Path.Combine(dir, "Kb"),
            "--kernelDir", "/src/linux");
        Assert.AreEqual(0, kbuild.ExitCode, kbuild.Output);
        StringAssert.Contains(File.ReadAllText(Path.Combine(dir, "Kb", "Kb.csproj")),
            "<KernelDir>/src/linux</KernelDir>");
    }

    [TestMethod]
    public void TheTemplateUsesThePackageVersion()
    {
        string template = File.ReadAllText(Path.Combine(Repo.Root, "src", "Templates", "content", "ppc-livepatch",
            ".template.config", "template.json"));
        StringAssert.Contains(template, $"\"defaultValue\": \"{PackedSdk.Version}\"", "template.json's sdkVersion " +
            "must follow global.json");
    }
}
