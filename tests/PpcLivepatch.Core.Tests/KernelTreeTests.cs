using PpcLivepatch.Kbuild;

namespace PpcLivepatch.Tests;

/// <summary>
/// The compiler a kernel tree was built by (kbuild's CONFIG_CC_VERSION_TEXT) against the cross compiler here
/// (PLP0027): trees whose record names another family, another GCC major, or another release of the same major.
/// </summary>
[TestClass]
public sealed class KernelTreeTests
{
    private const string Compiler = "powerpc64le-linux-gnu-gcc";

    private static string Tree(string? recordedCompiler)
    {
        string dir = Repo.NewTempDir();
        Directory.CreateDirectory(Path.Combine(dir, "include", "config"));
        File.WriteAllText(Path.Combine(dir, "Makefile"), "");
        File.WriteAllText(Path.Combine(dir, "include", "config", "auto.conf"), "CONFIG_PPC64=y\n" +
            (recordedCompiler is null ? "" : $"CONFIG_CC_VERSION_TEXT={recordedCompiler}\n") + "CONFIG_LIVEPATCH=y\n");
        return dir;
    }

    /// <summary>The host compiler's version line and its x.y.z.</summary>
    private static (string Text, Version Release) Host()
    {
        string? text = Toolchain.VersionText(Compiler);
        Assert.IsNotNull(text, $"{Compiler} is not installed: run eng/install-prerequisites.sh");
        var release = System.Text.RegularExpressions.Regex.Match(text, @"(\d+)\.(\d+)\.(\d+)\s*$");
        Assert.IsTrue(release.Success, text);
        return (text, new Version(release.Value.Trim()));
    }

    [TestMethod]
    public void TheCompilerThatBuiltTheTreeIsAccepted()
    {
        var (text, _) = Host();
        string tree = Tree(text);
        Assert.IsNull(KernelTree.CompilerMismatch(tree, Compiler, sameRelease: false));
        Assert.IsNull(KernelTree.CompilerMismatch(tree, Compiler, sameRelease: true));
        // Debian's own kernels record the native compiler's name (gcc-12 …): the release is what is compared.
        var (_, release) = Host();
        Assert.IsNull(KernelTree.CompilerMismatch(Tree($"gcc-{release.Major} (Debian {release}-14+deb12u1) {release}"),
            Compiler, sameRelease: true));
    }

    [TestMethod]
    public void AnotherMajorOrFamilyIsRefusedEverywhereAnotherReleaseOnlyForKernelPatches()
    {
        var (text, release) = Host();
        string newer = $"{release.Major + 2}.2.0";
        string otherMajor = Tree($"{Compiler} (Debian {newer}-19) {newer}");
        string? message = KernelTree.CompilerMismatch(otherMajor, Compiler, sameRelease: false);
        Assert.IsNotNull(message);
        StringAssert.Contains(message, $"was built by '{Compiler} (Debian {newer}-19) {newer}', and '{Compiler}' is " +
            $"'{text}': kbuild passes the kernel's compiler flags");

        string clang = Tree("Debian clang version 14.0.6");
        Assert.IsNotNull(KernelTree.CompilerMismatch(clang, Compiler, sameRelease: false));

        string otherRelease = $"{release.Major}.{release.Minor + 1}.0";
        string minor = Tree($"{Compiler} (Debian {otherRelease}-1) {otherRelease}");
        Assert.IsNull(KernelTree.CompilerMismatch(minor, Compiler, sameRelease: false), "kbuild only warns");
        StringAssert.Contains(KernelTree.CompilerMismatch(minor, Compiler, sameRelease: true),
            "the unpatched units would not compile to the running kernel's code");
    }

    [TestMethod]
    public void ATreeThatDoesNotSayIsNotJudged()
    {
        Assert.IsNull(KernelTree.CompilerMismatch(Tree(null), Compiler, sameRelease: true));
        Assert.IsNull(KernelTree.CompilerMismatch(Repo.NewTempDir(), Compiler, sameRelease: true));
    }
}
