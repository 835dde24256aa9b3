using System.Text.RegularExpressions;

namespace PpcLivepatch.Build.Tests;

/// <summary>
/// The SDK under test, packed once per test run with the .NET SDK's own `dotnet pack` into a private feed, and
/// consumer folders that use it: their nuget.config adds the feed and names a packages folder of their own, so a
/// consumer never resolves a stale copy of the same version.
/// </summary>
internal static class PackedSdk
{
    private static readonly Lazy<string> s_feed = new(Pack);

    public static string Version { get; } = Regex.Match(File.ReadAllText(Path.Combine(Repo.Root, "global.json")),
        "\"PpcLivepatch\\.Build\\.Sdk\"\\s*:\\s*\"([^\"]+)\"").Groups[1].Value;

    public static string Feed => s_feed.Value;

    /// <summary>The tool's packages per runtime identifier: Native AOT builds, and the portable one as fallback.</summary>
    public static readonly string[] ToolRids = ["linux-x64", "linux-arm64", "any"];

    private static readonly Lazy<string> s_nativeTool = new(ExtractNativeTool);

    /// <summary>The package's native ppc-livepatch, shared by the tests that only run steps in it.</summary>
    public static string NativeTool => s_nativeTool.Value;

    /// <summary>A fresh copy of the package's native ppc-livepatch, not executable (the tasks set the mode).</summary>
    public static string ExtractNativeTool()
    {
        string path = Path.Combine(Repo.NewTempDir(), "ppc-livepatch");
        using var package =
            System.IO.Compression.ZipFile.OpenRead(Path.Combine(Feed, $"PpcLivepatch.Build.Sdk.{Version}.nupkg"));
        var entry = package.GetEntry("tools/linux-x64/ppc-livepatch");
        Assert.IsNotNull(entry, "the package has no tools/linux-x64/ppc-livepatch");
        using (var source = entry.Open())
        using (var target = File.Create(path))
            source.CopyTo(target);
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        return path;
    }

    private static string Pack()
    {
        string feed = Repo.NewTempDir();
        // What ./build.sh pack packs: the SDK, the ppc-livepatch tool, the dotnet new template.
        foreach (var (project, id) in new[] { ("Sdk", "PpcLivepatch.Build.Sdk"), ("Cli", "PpcLivepatch.Cli"),
            ("Templates", "PpcLivepatch.Templates") })
        {
            var pack = Tool.Run(Repo.Root, "dotnet", "pack", Path.Combine(Repo.Root, "src", project), "-c", "Release",
                "-o", feed, "-nologo");
            Assert.AreEqual(0, pack.ExitCode, pack.Output);
            Assert.IsTrue(File.Exists(Path.Combine(feed, $"{id}.{Version}.nupkg")), pack.Output);
        }
        // The tool's pack also makes the packages its pointer package names, one per runtime identifier.
        foreach (string rid in ToolRids)
            Assert.IsTrue(File.Exists(Path.Combine(feed, $"PpcLivepatch.Cli.{rid}.{Version}.nupkg")),
                $"no PpcLivepatch.Cli.{rid} package in the feed");
        return feed;
    }

    /// <summary>Makes <paramref name="dir"/> resolve the SDK under test (with or without a version in the
    /// project).</summary>
    public static void UseIn(string dir)
    {
        File.WriteAllText(Path.Combine(dir, "nuget.config"), $"""
            <configuration>
              <config><add key="globalPackagesFolder" value="{Path.Combine(dir, ".packages")}" /></config>
              <packageSources><add key="ppclp-under-test" value="{Feed}" /></packageSources>
            </configuration>
            """);
        File.WriteAllText(Path.Combine(dir, "global.json"), $$"""{ "msbuild-sdks": { "PpcLivepatch.Build.Sdk": "{{Version}}" } }""");
        File.WriteAllText(Path.Combine(dir, "Directory.Build.props"), "<Project />");
        File.WriteAllText(Path.Combine(dir, "Directory.Build.targets"), "<Project />");
    }

    /// <summary>A folder that resolves the SDK under test, with the packed dotnet new template installed under a CLI
    /// home of its own (the template engine keeps what is installed there, not in the machine's).</summary>
    public static (string Dir, IReadOnlyDictionary<string, string> Home) WithTemplate()
    {
        string dir = Repo.NewTempDir();
        UseIn(dir);
        var home = new Dictionary<string, string> { ["DOTNET_CLI_HOME"] = Path.Combine(dir, "home") };
        var install = Tool.RunWith(home, dir, "dotnet", "new", "install",
            Path.Combine(Feed, $"PpcLivepatch.Templates.{Version}.nupkg"));
        Assert.AreEqual(0, install.ExitCode, install.Output);
        return (dir, home);
    }

    /// <summary>A consumer folder with the project (VERSION in it is replaced) and its files.</summary>
    public static string Consumer(string projectXml, params (string Name, string Text)[] files)
    {
        string dir = Repo.NewTempDir();
        UseIn(dir);
        File.WriteAllText(Path.Combine(dir, "Livepatch.csproj"), projectXml.Replace("VERSION", Version));
        foreach (var (name, text) in files)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(dir, name))!);
            File.WriteAllText(Path.Combine(dir, name), text);
        }
        return dir;
    }

    /// <summary>A consumer folder holding a copy of a sample (its project, C sources and patches).</summary>
    public static string SampleConsumer(string sample = "KernelLivepatch")
    {
        string dir = Repo.NewTempDir();
        foreach (string f in Directory.GetFiles(Path.Combine(Repo.Root, "samples", sample)).Where(f =>
            f.EndsWith(".c") || f.EndsWith(".csproj") || f.EndsWith(".patch")))
            File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        UseIn(dir);
        return dir;
    }

    public static Tool.Result Build(string dir, string binlog = "build.binlog", params string[] extra) =>
        BuildWith(null, dir, binlog, extra);

    public static Tool.Result BuildWith(IReadOnlyDictionary<string, string>? environment, string dir,
        string binlog = "build.binlog", params string[] extra) =>
        Tool.RunWith(environment, dir, "dotnet",
            ["build", "-tl:off", "-nologo", "--disable-build-servers", "-v:n", $"-bl:{binlog}", .. extra]);
}
