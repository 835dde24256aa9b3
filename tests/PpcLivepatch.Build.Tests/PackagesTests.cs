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
    private static readonly string[] Ids = ["PpcLivepatch.Build.Sdk", "PpcLivepatch.Cli", "PpcLivepatch.Templates"];

    [TestMethod]
    public void EveryPackageHasLicenceReadmeTagsAndRepository()
    {
        foreach (string id in Ids)
        {
            using var package = ZipFile.OpenRead(Path.Combine(PackedSdk.Feed, $"{id}.{PackedSdk.Version}.nupkg"));
            var nuspec = XDocument.Load(package.Entries.Single(e =>
                e.FullName.EndsWith(".nuspec", StringComparison.Ordinal)).Open());
            var metadata = nuspec.Root!.Elements().Single(e => e.Name.LocalName == "metadata");
            string? Field(string name) => metadata.Elements().FirstOrDefault(e => e.Name.LocalName == name)?.Value;
            Assert.AreEqual("MIT", Field("license"), id);
            Assert.AreEqual("README.md", Field("readme"), id);
            Assert.IsNotNull(package.GetEntry("README.md"), $"{id} lacks its readme");
            StringAssert.Contains(Field("tags"), "livepatch", id);
            Assert.IsFalse(string.IsNullOrWhiteSpace(Field("description")), id);
            var repository = metadata.Elements().Single(e => e.Name.LocalName == "repository");
            Assert.AreEqual("git", repository.Attribute("type")?.Value, id);
        }
    }

    [TestMethod]
    public void TheToolInstallsFromTheFeedAndShipsItsHelpPages()
    {
        string dir = Repo.NewTempDir(), tools = Path.Combine(dir, "tools");
        PackedSdk.UseIn(dir);
        var install = Tool.Run(dir, "dotnet", "tool", "install", "--tool-path", tools, "PpcLivepatch.Cli", "--version",
            PackedSdk.Version);
        Assert.AreEqual(0, install.ExitCode, install.Output);
        string tool = Path.Combine(tools, "ppc-livepatch");

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
