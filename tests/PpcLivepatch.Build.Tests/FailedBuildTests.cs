using Microsoft.Build.Logging.StructuredLogger;
using PpcLivepatch.Tests.Shared;

namespace PpcLivepatch.Build.Tests;

/// <summary>
/// A build that fails must not look good: no module in bin/, no report from an earlier success, and nothing the next
/// unchanged build could take for up to date.
/// </summary>
[TestClass]
public sealed class FailedBuildTests
{
    private const string Project = """
        <Project Sdk="PpcLivepatch.Build.Sdk/VERSION">
          <ItemGroup><KlpSymbol Include="helper" /></ItemGroup>
        </Project>
        """;

    private const string GoodSource =
        "static int __attribute__((noinline)) helper(int v) { return v * 3 + 1; }\n\nint patched(int v)\n{\n\treturn " +
            "helper(v + 1) + 2;\n}\n";

    private static string Obj(string dir, params string[] parts) =>
        Path.Combine([dir, "obj", "Debug", "livepatch", .. parts]);

    private static string[] EveryOutput(string dir) =>
    [
        Path.Combine(dir, "bin", "Debug", "livepatch.o"),
        Obj(dir, "link", "livepatch.o"), Obj(dir, "convert", "livepatch.o"), Obj(dir, "patch", "livepatch.o"),
        Obj(dir, "livepatch.patch.json"), Obj(dir, "livepatch.patch.sarif"),
        Obj(dir, "livepatch.verify.json"), Obj(dir, "livepatch.verify.sarif"),
    ];

    private static void AssertAllExist(IEnumerable<string> files)
    {
        foreach (string f in files) Assert.IsTrue(File.Exists(f), $"{f} was not written");
    }

    [TestMethod]
    public void AFailedCompileRemovesTheOutputsOfEveryLaterStep()
    {
        string dir = PackedSdk.Consumer(Project, ("lp.c", GoodSource));
        var good = PackedSdk.Build(dir, "good.binlog");
        Assert.AreEqual(0, good.ExitCode, good.Output);
        AssertAllExist(EveryOutput(dir));

        File.WriteAllText(Path.Combine(dir, "lp.c"), GoodSource.Replace("+ 2;", "+ not_declared;"));
        var failed = PackedSdk.Build(dir, "failed.binlog");
        Assert.AreEqual(1, failed.ExitCode, failed.Output);
        StringAssert.Contains(failed.Output, "error PLP0010");
        foreach (string f in EveryOutput(dir)) Assert.IsFalse(File.Exists(f), $"{f} survived the failed build");

        File.WriteAllText(Path.Combine(dir, "lp.c"), GoodSource);
        var again = PackedSdk.Build(dir, "again.binlog");
        Assert.AreEqual(0, again.ExitCode, again.Output);
        AssertAllExist(EveryOutput(dir));
    }

    [TestMethod]
    public void AKernelPatchWithoutKernelDirSaysWhatItNeeds()
    {
        string dir = PackedSdk.Consumer("""
            <Project Sdk="PpcLivepatch.Build.Sdk/VERSION">
              <ItemGroup><KernelPatch Include="fix.patch" /></ItemGroup>
            </Project>
            """, ("fix.patch", "--- a/fs/proc/cmdline.c\n+++ b/fs/proc/cmdline.c\n"));
        var build = PackedSdk.Build(dir);
        Assert.AreEqual(1, build.ExitCode, build.Output);
        StringAssert.Contains(build.Output, "Livepatch.csproj : error PLP0015: KernelPatch items need KernelDir");
    }

    /// <summary>A KernelDir that is no kernel tree is PLP0015 at the line that sets it, before anything runs in it
    /// (a KernelPatch project said PLP1009 with .NET's exception text before).</summary>
    [TestMethod]
    public void AWrongKernelDirIsSaidAtItsLine()
    {
        string dir = PackedSdk.Consumer("""
            <Project Sdk="PpcLivepatch.Build.Sdk/VERSION">
              <PropertyGroup>
                <KernelDir>/nonexistent/linux-build</KernelDir>
              </PropertyGroup>
              <ItemGroup><KernelPatch Include="fix.patch" /></ItemGroup>
            </Project>
            """, ("fix.patch", "--- a/fs/proc/cmdline.c\n+++ b/fs/proc/cmdline.c\n"));
        var build = PackedSdk.Build(dir, "kerneldir.binlog");
        Assert.AreEqual(1, build.ExitCode, build.Output);
        var log = BinaryLog.ReadBuild(Path.Combine(dir, "kerneldir.binlog"));
        var error = log.FindChildrenRecursive<Error>().Single();
        Assert.AreEqual(("PLP0015", Path.Combine(dir, "Livepatch.csproj"), 3),
            (error.Code, error.File, error.LineNumber));
        StringAssert.Contains(error.Text, "KernelDir '/nonexistent/linux-build' is not a kernel build tree");
        // The binary log does not keep an error's help link (the error list gets it from the event): the page is
        // named beside the error, and it is the page the package ships.
        var help = log.FindChildrenRecursive<Message>(m => m.Text.StartsWith("PLP0015 is explained at ",
            StringComparison.Ordinal)).Single();
        string page = new Uri(help.Text["PLP0015 is explained at ".Length..]).LocalPath;
        Assert.IsTrue(File.Exists(page) && page.EndsWith("docs/diagnostics/PLP0015.md", StringComparison.Ordinal),
            help.Text);
        Assert.IsFalse(build.Output.Contains("PLP1009"), build.Output);
    }

    /// <summary>In kbuild mode a missing cross compiler is named, with what to install (make's "Error 127" without
    /// a name before).</summary>
    [TestMethod]
    public void AMissingCrossCompilerInKbuildModeIsNamed()
    {
        string dir = PackedSdk.Consumer(Project, ("lp.c", GoodSource), ("kernel/Makefile", "modules:\n\ttrue\n"));
        var build = PackedSdk.Build(dir, "nocc.binlog", $"-p:KernelDir={Path.Combine(dir, "kernel")}",
            "-p:CrossCompilePrefix=nosuch-linux-gnu-");
        Assert.AreEqual(1, build.ExitCode, build.Output);
        var error = BinaryLog.ReadBuild(Path.Combine(dir, "nocc.binlog")).FindChildrenRecursive<Error>().Single();
        Assert.AreEqual("PLP0013", error.Code);
        StringAssert.Contains(error.Text, "the compiler 'nosuch-linux-gnu-gcc' that kbuild runs is not on PATH");
        StringAssert.Contains(error.Text, "names no toolchain Debian packages");
    }

    [TestMethod]
    public void AFailedVerifyKeepsOnlyItsOwnFreshReports()
    {
        string dir = PackedSdk.Consumer(Project, ("lp.c", GoodSource));
        var good = PackedSdk.Build(dir, "good.binlog");
        Assert.AreEqual(0, good.ExitCode, good.Output);

        // No strategy: the call to the livepatch symbol keeps no nop, and Verify refuses the module.
        var failed = PackedSdk.Build(dir, "failed.binlog", "-p:Rel24Strategy=none");
        Assert.AreEqual(1, failed.ExitCode, failed.Output);
        StringAssert.Contains(failed.Output, "error PLP2001");
        Assert.IsFalse(File.Exists(Path.Combine(dir, "bin", "Debug", "livepatch.o")),
            "no module next to a failed build");
        // Verify's own reports are this run's: they hold the rejection, not the earlier success.
        StringAssert.Contains(File.ReadAllText(Obj(dir, "livepatch.verify.sarif")), "\"PLP2001\"");
        StringAssert.Contains(File.ReadAllText(Obj(dir, "livepatch.verify.json")), "PLP2001");
        // The SARIF the SDK writes, with a result at the C line, passes the SARIF SDK's validator.
        SarifValidator.AssertValid(Obj(dir, "livepatch.verify.sarif"), Obj(dir, "livepatch.patch.sarif"));
        // Earlier steps succeeded: their outputs stay.
        AssertAllExist([Obj(dir, "patch", "livepatch.o"), Obj(dir, "livepatch.patch.json")]);

        var unchanged = PackedSdk.Build(dir, "unchanged.binlog", "-p:Rel24Strategy=none");
        Assert.AreEqual(1, unchanged.ExitCode, "the same inputs must fail again:\n" + unchanged.Output);
    }

    [TestMethod]
    [DataRow("-warnaserror")]
    [DataRow("-p:WarningsAsErrors=PLP0102")]
    public void AWarningPromotedToAnErrorLeavesNothingUpToDate(string promotion)
    {
        // 'missing' is in no object: PLP0102, a warning, from Convert.
        string dir = PackedSdk.Consumer(Project.Replace("<KlpSymbol Include=\"helper\" />",
            "<KlpSymbol Include=\"helper\" /><KlpSymbol Include=\"missing\" />"), ("lp.c", GoodSource));
        var first = PackedSdk.Build(dir, "first.binlog", promotion);
        Assert.AreEqual(1, first.ExitCode, first.Output);
        StringAssert.Contains(first.Output, "error PLP0102");
        // WarningsAsErrors is known to the task, which then removes its output; -warnaserror is applied to the event
        // only, so the step's output may stay, but never up to date: the step that warned has no clean stamp.
        if (promotion.Contains("WarningsAsErrors"))
        {
            Assert.IsFalse(File.Exists(Obj(dir, "convert", "livepatch.o")),
                "Convert's output survived its promoted warning");
            Assert.IsFalse(File.Exists(Path.Combine(dir, "bin", "Debug", "livepatch.o")),
                "no module next to a failed build");
        }
        Assert.IsFalse(File.Exists(Obj(dir, "convert.clean")), "a step that warned must run again");

        var second = PackedSdk.Build(dir, "second.binlog", promotion);
        Assert.AreEqual(1, second.ExitCode, "the unchanged second build must fail as the first did:\n" + second.Output);
        StringAssert.Contains(second.Output, "error PLP0102");

        var skipped = BinaryLog.ReadBuild(Path.Combine(dir, "second.binlog")).FindChildrenRecursive<Message>(m =>
            m.Text.StartsWith("Skipping target \"PpcLivepatchConvertKlp\""));
        Assert.AreEqual(0, skipped.Count, "Convert was taken for up to date");

        var relaxed = PackedSdk.Build(dir, "relaxed.binlog");
        Assert.AreEqual(0, relaxed.ExitCode, relaxed.Output);
        StringAssert.Contains(relaxed.Output, "warning PLP0102");
        var errors = BinaryLog.ReadBuild(Path.Combine(dir, "relaxed.binlog")).FindChildrenRecursive<Error>();
        Assert.AreEqual(0, errors.Count);
    }

    /// <summary>
    /// A gcc warning (PLP0012) under -warnaserror fails every build, not only the one that compiled (the second
    /// returned 0 before: the compile was up to date and said nothing); TreatWarningsAsErrors, as C# projects set it,
    /// is honoured (it was ignored); without either the build succeeds and still shows the warning each time.
    /// </summary>
    [TestMethod]
    public void ACompilerWarningAsAnErrorFailsEveryBuild()
    {
        string warning = GoodSource.Replace("\treturn ", "\tint unused;\n\treturn ");
        string dir = PackedSdk.Consumer(Project, ("lp.c", warning));
        for (int i = 0; i < 2; i++)
        {
            var build = PackedSdk.Build(dir, $"strict{i}.binlog", "-warnaserror");
            Assert.AreEqual(1, build.ExitCode, $"build {i + 1}:\n{build.Output}");
            StringAssert.Contains(build.Output, "error PLP0012");
        }
        var treat = PackedSdk.Build(dir, "treat.binlog", "-p:TreatWarningsAsErrors=true");
        Assert.AreEqual(1, treat.ExitCode, treat.Output);
        StringAssert.Contains(treat.Output, "error PLP0012");
        for (int i = 0; i < 2; i++)
        {
            var relaxed = PackedSdk.Build(dir, $"relaxed{i}.binlog");
            Assert.AreEqual(0, relaxed.ExitCode, relaxed.Output);
            StringAssert.Contains(relaxed.Output, "warning PLP0012");
        }
        // A changed source that still warns is linked into the module (the warned object was dated back before, and
        // the link took it for older than the module it had made).
        File.WriteAllText(Path.Combine(dir, "lp.c"), warning.Replace("+ 2;", "+ 0x5a5a;"));
        var changed = PackedSdk.Build(dir, "changed.binlog");
        Assert.AreEqual(0, changed.ExitCode, changed.Output);
        string module = Path.Combine(dir, "bin", "Debug", "livepatch.o");
        StringAssert.Contains(Tool.Run(dir, "powerpc64le-linux-gnu-objdump", "-d", module).Output, "23130",
            "the module has the changed code (addi ...,23130 is + 0x5a5a)");
        // The object a relaxed build left in bin/ is gone after a strict build fails: it is not that build's result.
        // (With a bare -warnaserror, MSBuild's task host says the warning is not promoted — ShouldTreatWarningAsError
        // is false — so the steps finish and the build fails only at its end; TreatWarningsAsErrors and
        // -warnaserror:CODE are seen by the steps.)
        Assert.AreEqual(1, Directory.GetFiles(Path.Combine(dir, "bin"), "*.o", SearchOption.AllDirectories).Length);
        var strictAgain = PackedSdk.Build(dir, "strict-again.binlog", "-p:TreatWarningsAsErrors=true");
        Assert.AreEqual(1, strictAgain.ExitCode, strictAgain.Output);
        Assert.AreEqual(0, Directory.GetFiles(Path.Combine(dir, "bin"), "*.o", SearchOption.AllDirectories).Length,
            strictAgain.Output);
    }

    [TestMethod]
    public void UserInputIsCheckedWhereItWasWrittenBeforeTheCompilerRuns()
    {
        string dir = PackedSdk.Consumer("""
            <Project Sdk="PpcLivepatch.Build.Sdk/VERSION">
              <ItemGroup>
                <KlpSymbol Include="helpr" />
              </ItemGroup>
            </Project>
            """, ("lp.c", GoodSource), ("System.map", "c000000000010000 t helper\nc000000000010100 T printk\n"));
        string project = Path.Combine(dir, "Livepatch.csproj");

        var misspelled = PackedSdk.Build(dir, "map.binlog", $"-p:KernelSystemMap={Path.Combine(dir, "System.map")}");
        Assert.AreEqual(1, misspelled.ExitCode, misspelled.Output);
        var error = BinaryLog.ReadBuild(Path.Combine(dir, "map.binlog")).FindChildrenRecursive<Error>().Single();
        Assert.AreEqual(("PLP0106", project, 3), (error.Code, error.File, error.LineNumber));
        Assert.IsFalse(Directory.Exists(Obj(dir, "compile")), "the compiler ran before the item was checked");

        var abi = PackedSdk.Build(dir, "abi.binlog", "-p:LivepatchAbi=elfv3");
        Assert.AreEqual(1, abi.ExitCode, abi.Output);
        var abiError = BinaryLog.ReadBuild(Path.Combine(dir, "abi.binlog")).FindChildrenRecursive<Error>().Single();
        Assert.AreEqual(("PLP0001", project), (abiError.Code, abiError.File));
        StringAssert.Contains(abiError.Text,
            "LivepatchAbi is 'elfv3'; use elfv2 (ppc64le) or elfv1 (big-endian ppc64)");
        Assert.IsFalse(Directory.Exists(Obj(dir, "compile")));
    }

    [TestMethod]
    public void AnEmptyCrossCompilePrefixUsesThePlainTools()
    {
        // As on a ppc64le host: gcc and ld without a prefix (here the x86-64 ones, so Convert refuses the object).
        string dir = PackedSdk.Consumer("""
            <Project Sdk="PpcLivepatch.Build.Sdk/VERSION">
              <PropertyGroup>
                <CrossCompilePrefix></CrossCompilePrefix>
                <LivepatchCFlags>-O2 -ffunction-sections</LivepatchCFlags>
              </PropertyGroup>
            </Project>
            """, ("lp.c", GoodSource));
        var result = PackedSdk.Build(dir, "plain.binlog");
        // The default asm route runs the compiler through ppc-livepatch cc: the compiler it is given is the host's gcc.
        StringAssert.Contains(result.Output, "ppc-livepatch cc -- /usr/bin/gcc -O2");
        StringAssert.Contains(result.Output, "\"ld\" -r -o");
        Assert.AreEqual(1, result.ExitCode, result.Output);
        StringAssert.Contains(result.Output, "error PLP1004");
    }
}
