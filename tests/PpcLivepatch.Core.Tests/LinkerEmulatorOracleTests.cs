using PpcLivepatch.Cli;

namespace PpcLivepatch.Tests;

/// <summary>
/// GNU ld enforces the kernel's rule for calls into a shared library ("call to `f' lacks nop, can't restore toc"),
/// and qemu-user runs the result: the callee lives in a shared library with its own TOC, and the caller reads its
/// own data through r2 right after each call. The unpatched object must not link; the patched one must link and
/// print what the plain static build prints — which it only can if r2 is restored through the island.
/// </summary>
[TestClass]
public sealed class LinkerEmulatorOracleTests
{
    [TestMethod]
    [DataRow("le", "powerpc64le-linux-gnu-", "qemu-ppc64le", "island")]
    [DataRow("be", "powerpc64-linux-gnu-", "qemu-ppc64", "island")]
    [DataRow("le", "powerpc64le-linux-gnu-", "qemu-ppc64le", "insert-nop")]
    [DataRow("be", "powerpc64-linux-gnu-", "qemu-ppc64", "insert-nop")]
    public void PatchedCallLinksAgainstASharedLibraryAndComputesTheSameResult(string endian, string prefix,
        string qemu, string strategy)
    {
        string dir = Repo.NewTempDir();
        string src = Path.Combine(Repo.Root, "tests", "fixtures", "src");
        string gcc = prefix + "gcc";
        string sysroot = "/usr/" + prefix.TrimEnd('-');

        // Reference: the unmodified source, helper() local, linked statically.
        Tool.Check(gcc, "-O2", "-ffunction-sections", "-c", Path.Combine(src, "oracle_caller.c"), "-o",
            Path.Combine(dir, "caller.o"));
        Tool.Check(gcc, "-O2", "-static", Path.Combine(src, "oracle_main.c"), Path.Combine(dir, "caller.o"), "-o",
            Path.Combine(dir, "static"));
        string expected = Tool.Check(qemu, Path.Combine(dir, "static"));
        StringAssert.Contains(expected, "caller(25) = ");

        Tool.Check(gcc, "-O2", "-fPIC", "-shared", Path.Combine(src, "oracle_lib.c"), "-o",
            Path.Combine(dir, "libhelper.so"));
        string unpatched = Repo.Fixture($"oracle_caller.und.{endian}.o");
        var refused = Tool.Run(gcc, "-O2", "-no-pie", Path.Combine(src, "oracle_main.c"), unpatched, "-L" + dir,
            "-lhelper", "-o", Path.Combine(dir, "refused"));
        Assert.AreNotEqual(0, refused.ExitCode, "ld linked a call without a nop to a shared library");
        StringAssert.Contains(refused.Stderr, "call to `helper' lacks nop, can't restore toc");

        // Our verifier agrees with ld before, and after the patch.
        Assert.AreEqual(CliApp.ExitRejected, CliApp.Run(["verify", unpatched], new StringWriter(), new StringWriter()));
        string patched = Path.Combine(dir, "caller.patched.o");
        var patchOutput = new StringWriter();
        Assert.AreEqual(CliApp.ExitAccepted,
            CliApp.Run(["patch", "--strategy", strategy, "-o", patched, unpatched], patchOutput, new StringWriter()),
                patchOutput.ToString());
        StringAssert.Contains(patchOutput.ToString(), $"fixed ({strategy})");
        Assert.AreEqual(CliApp.ExitAccepted, CliApp.Run(["verify", patched], new StringWriter(), new StringWriter()));

        var linked = Tool.Run(gcc, "-O2", "-no-pie", Path.Combine(src, "oracle_main.c"), patched, "-L" + dir,
            "-lhelper", "-o", Path.Combine(dir, "dynamic"));
        Assert.AreEqual(0, linked.ExitCode, linked.Stderr);
        // ld turned the island's nop into the TOC restore, as the kernel will.
        string disassembly = Tool.Check(prefix + "objdump", "-d", "--section=.text", Path.Combine(dir, "dynamic"));
        StringAssert.Contains(disassembly, endian == "le" ? "ld      r2,24(r1)" : "ld      r2,40(r1)");

        var run = Tool.Run(qemu, "-L", sysroot, "-E", "LD_LIBRARY_PATH=" + dir, Path.Combine(dir, "dynamic"));
        Assert.AreEqual(0, run.ExitCode, run.Stderr);
        Assert.AreEqual(expected, run.Stdout);
    }
}
