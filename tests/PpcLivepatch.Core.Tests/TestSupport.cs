using System.Diagnostics;
using System.Reflection;

[assembly: Parallelize(Scope = ExecutionScope.MethodLevel)]

namespace PpcLivepatch.Tests;

/// <summary>Paths of the repository and its committed fixture objects.</summary>
internal static class Repo
{
    public static string Root { get; } = typeof(Repo).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
        .Single(a => a.Key == "RepositoryRoot").Value!;

    public static string FixtureDir => Path.Combine(Root, "tests", "fixtures", "elf");

    public static string Fixture(string name)
    {
        string path = Path.Combine(FixtureDir, name);
        if (!File.Exists(path)) Assert.Fail($"fixture {name} is missing: run tests/fixtures/build-fixtures.sh");
        return path;
    }

    public static IEnumerable<string> AllFixtures =>
        Directory.GetFiles(FixtureDir, "*.o").Order(StringComparer.Ordinal);

    /// <summary>One row per fixture object, for [DynamicData].</summary>
    public static IEnumerable<object[]> FixtureRows => AllFixtures.Select(p => new object[] { Path.GetFileName(p) });

    public static bool IsBigEndian(string fixture) => fixture.Contains(".be.", StringComparison.Ordinal);

    /// <summary>The Debian cross binutils prefix for a fixture's byte order.</summary>
    public static string Binutils(string fixture, string tool) =>
        (IsBigEndian(fixture) ? "powerpc64-linux-gnu-" : "powerpc64le-linux-gnu-") + tool;

    public static string NewTempDir() => Shared.ScratchDirectories.New();
}

/// <summary>Runs the real external tools the tests check against. A missing tool fails with how to install
/// it.</summary>
internal static class Tool
{
    public sealed record Result(int ExitCode, string Stdout, string Stderr);

    private static readonly Dictionary<string, string> Packages = new()
    {
        ["powerpc64le-linux-gnu-"] = "binutils-powerpc64le-linux-gnu / gcc-powerpc64le-linux-gnu",
        ["powerpc64-linux-gnu-"] = "binutils-powerpc64-linux-gnu / gcc-powerpc64-linux-gnu",
        ["qemu-"] = "qemu-user",
        ["csmith"] = "csmith libcsmith-dev",
        ["clang-14"] = "clang-14",
        ["llvm-"] = "llvm-14",
        ["gcc"] = "gcc",
    };

    public static Result Run(string tool, params string[] args) => RunIn(null, tool, args);

    public static Result RunIn(string? workingDirectory, string tool, params string[] args)
    {
        var psi = new ProcessStartInfo(tool) { RedirectStandardOutput = true, RedirectStandardError = true,
            UseShellExecute = false };
        if (workingDirectory is not null) psi.WorkingDirectory = workingDirectory;
        foreach (var a in args) psi.ArgumentList.Add(a);
        Process p;
        try
        {
            p = Process.Start(psi)!;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            string package = Packages.FirstOrDefault(kv =>
                tool.StartsWith(kv.Key, StringComparison.Ordinal)).Value ?? tool;
            Assert.Fail($"'{tool}' is not installed: run eng/install-prerequisites.sh (apt-get install {package})");
            throw;
        }
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(120_000))
        {
            p.Kill(entireProcessTree: true);
            Assert.Fail($"{tool} {string.Join(' ', args)} did not finish in 120 s");
        }
        p.WaitForExit();
        return new Result(p.ExitCode, stdout.Result, stderr.Result);
    }

    public static string Check(string tool, params string[] args)
    {
        var r = Run(tool, args);
        Assert.AreEqual(0, r.ExitCode, $"{tool} {string.Join(' ', args)} failed:\n{r.Stderr}");
        return r.Stdout;
    }
}

/// <summary>The kernel oracle's CONFIG_LIVEPATCH build tree (eng/kernel-oracle/setup.sh --klp, which ./build.sh test
/// runs): its vmlinux, System.map, kbuild records and source, for the tests of the diff and of kernel patches.</summary>
internal static class KernelOracle
{
    public static string KlpBuildTree()
    {
        string dir = Environment.GetEnvironmentVariable("PPCLP_KERNEL_CACHE")
            ?? Path.Combine(Environment.GetEnvironmentVariable("HOME") ?? "/root", ".cache",
                "ppclivepatch-kernel-oracle");
        string env = Path.Combine(dir, "env.sh");
        if (!File.Exists(env)) Assert.Fail($"the kernel oracle is not set up ({env} is missing): run " +
            "eng/kernel-oracle/setup.sh --klp");
        string? tree = File.ReadAllLines(env).Select(l => l.Split('=', 2))
            .FirstOrDefault(p => p.Length == 2 && p[0] == "KO_KLP_BUILD")?[1];
        if (string.IsNullOrEmpty(tree) || !File.Exists(Path.Combine(tree, "System.map")))
            Assert.Fail("the livepatch kernel is not built: run eng/kernel-oracle/setup.sh --klp");
        return tree;
    }

    /// <summary>The source the tree was built from (its "source" link).</summary>
    public static string KlpSourceTree() => Path.GetFullPath(Path.Combine(KlpBuildTree(), "source"));
}

/// <summary>
/// Debian 13's GCC 14 for ppc64le, the compiler of the 6.12 and 7.x kernel lines, run in the Debian 13 environment that
/// eng/kernel-oracle/setup-line.sh makes (eng/kernel-oracle/in-trixie.sh): a driver script named like a cross gcc, so
/// that every route runs it as it runs any compiler.
/// </summary>
internal static class Gcc14
{
    private static readonly Lazy<string> s_driver = new(() =>
    {
        string cache = Environment.GetEnvironmentVariable("PPCLP_KERNEL_CACHE") ?? Path.Combine(
            Environment.GetEnvironmentVariable("HOME") ?? "/root", ".cache", "ppclivepatch-kernel-oracle");
        if (!File.Exists(Path.Combine(cache, "trixie", ".ready")))
            Assert.Fail($"GCC 14 needs the Debian 13 environment ({Path.Combine(cache, "trixie")} is missing): run " +
                "eng/kernel-oracle/setup-line.sh 6.12");
        string dir = Repo.NewTempDir();
        string driver = Path.Combine(dir, "powerpc64le-linux-gnu-gcc-14");
        File.WriteAllText(driver, "#!/bin/sh\nexec " + Path.Combine(Repo.Root, "eng", "kernel-oracle",
            "in-trixie.sh") + " powerpc64le-linux-gnu-gcc \"$@\"\n");
        Tool.Check("chmod", "+x", driver);
        var version = Tool.Run(driver, "-dumpversion");
        Assert.AreEqual(0, version.ExitCode, version.Stderr);
        Assert.IsTrue(version.Stdout.StartsWith("14", StringComparison.Ordinal), version.Stdout);
        return driver;
    });

    public static string Driver => s_driver.Value;
}
