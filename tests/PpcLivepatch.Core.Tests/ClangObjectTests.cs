using PpcLivepatch.Elf;
using PpcLivepatch.Patching;

namespace PpcLivepatch.Tests;

/// <summary>What clang's objects carry that GCC's do not, checked with LLVM's own reader.</summary>
[TestClass]
public sealed class ClangObjectTests
{
    [TestMethod]
    public void AddrsigStillNamesTheSameSymbolsAfterIslandsRenumberThem()
    {
        // An address-taken global after the locals: the island symbols inserted among the locals renumber it, and
        // a stale .llvm_addrsig index would let lld fold a function whose address is taken.
        string dir = Repo.NewTempDir();
        string c = Path.Combine(dir, "addrsig.c"), o = Path.Combine(dir, "addrsig.o"),
            patched = Path.Combine(dir, "patched.o");
        File.WriteAllText(c, """
            static int __attribute__((noinline)) a(int x) { return x + 1; }
            int __attribute__((noinline)) b(int x) { return x * 2; }
            int (*const table[])(int) = { a, b };
            int caller(int x) { return a(x) + b(x); }
            """);
        Tool.Check("clang-14", "--target=powerpc64le-linux-gnu", "-O2", "-ffunction-sections", "-c", c, "-o", o);
        Assert.IsTrue(ElfImage.TryLoad(o, out var image, out _));
        var result = ObjectPatcher.Patch(image!, new PatchOptions(FixStrategy.Island, SiteSelection.AllLocal));
        Assert.IsNotNull(result.Output, string.Join("\n", result.Report.Diagnostics.Select(d => d.Message)));
        Assert.AreEqual(2, result.Fixes.Count);
        File.WriteAllBytes(patched, result.Output!);
        string before = Addrsig(o), after = Addrsig(patched);
        StringAssert.Contains(before, "Sym: b (");
        Assert.AreEqual(Names(before), Names(after), after);
        Assert.AreNotEqual(before, after,
            "the global's index should have moved (the test would prove nothing otherwise)");
    }

    private static string Addrsig(string path) => Tool.Check("llvm-readobj-14", "--addrsig", path);

    private static string Names(string listing) =>
        string.Join(",", listing.Split('\n').Where(l => l.Contains("Sym:")).Select(l => l.Trim().Split(' ')[1]));
}
