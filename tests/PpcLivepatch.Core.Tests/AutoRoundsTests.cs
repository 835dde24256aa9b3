using PpcLivepatch.Diagnostics;
using PpcLivepatch.Elf;
using PpcLivepatch.Patching;

namespace PpcLivepatch.Tests;

/// <summary>
/// auto in one pass does what two passes would: a function that may move only as a whole (here a computed goto
/// through label differences, which no table proof explains) no longer costs the other functions of its section
/// their inserted nops; its own calls get a second round over the first round's output. A patch of auto's output
/// finds nothing to do.
/// </summary>
[TestClass]
public sealed class AutoRoundsTests
{
    private const string Harness = """
        #include <stdio.h>
        int f(int), g(int), k(int);
        int main(void)
        {
            unsigned long s = 0;
            for (int a = -50; a < 50; a++) s = s * 1000003 + (unsigned)(f(a) ^ g(a) ^ k(a));
            printf("%lu\n", s);
            return 0;
        }
        """;

    [TestMethod]
    public void AFunctionThatMovesWholeLeavesTheOthersTheirNops()
    {
        string dir = Repo.NewTempDir();
        string o = Path.Combine(dir, "move_whole.o"), harness = Path.Combine(dir, "main.c");
        Tool.Check("powerpc64le-linux-gnu-gcc", "-O2", "-c",
            Path.Combine(Repo.Root, "tests", "fixtures", "src", "move_whole.c"), "-o", o);
        Assert.IsTrue(ElfImage.TryLoad(o, out var image, out _));
        var result = ObjectPatcher.Patch(image!, new PatchOptions(FixStrategy.Auto, SiteSelection.AllLocal));
        Assert.IsNotNull(result.Output);
        var byFunction = result.Fixes.GroupBy(f => f.Function).ToDictionary(g => g.Key, g => g.ToList());
        Assert.IsTrue(byFunction["g"].Concat(byFunction["k"]).All(f => f.Strategy == FixStrategy.InsertNop),
            string.Join(", ", result.Fixes.Select(f => $"{f.Function} {f.Strategy}")));
        Assert.AreEqual(4, byFunction["g"].Count + byFunction["k"].Count);
        // f's calls: no nop inside f (it moves as a whole); an island does not fit (f is not last in .text), which is
        // said at f's own call offsets in the input.
        Assert.IsFalse(byFunction.ContainsKey("f"));
        // (h is static and in the same .text: the assembler resolved the calls, so they are plain bl words.)
        var text = image!.Sections.Single(s => s.Name == ".text");
        var calls = Enumerable.Range(0, (int)text.Size / 4).Select(i => (ulong)i * 4).Where(at =>
            Ppc64.Instruction.Classify(image.ReadWord(text, at)) == Ppc64.BranchKind.Bl).ToHashSet();
        var left = result.Report.Diagnostics.Where(d => d.Code == DiagnosticCatalog.NoRoomForIsland).ToList();
        Assert.AreEqual(2, left.Count);
        Assert.IsTrue(left.All(d => calls.Contains(d.Offset!.Value) && d.Message.Contains($"+0x{d.Offset:x} (f+")),
            string.Join("\n", left.Select(d => d.Message)));

        // The program computes the same, and a second patch has nothing to do.
        string patched = Path.Combine(dir, "patched.o");
        File.WriteAllBytes(patched, result.Output);
        File.WriteAllText(harness, Harness);
        string Run(string obj)
        {
            string exe = obj + ".exe";
            Tool.Check("powerpc64le-linux-gnu-gcc", "-O2", "-static", harness, obj, "-o", exe);
            return Tool.Check("qemu-ppc64le", exe);
        }
        Assert.AreEqual(Run(o), Run(patched));
        Assert.IsTrue(ElfImage.TryParse(patched, result.Output, out var again, out _));
        Assert.AreEqual(0, ObjectPatcher.Patch(again!, new PatchOptions(FixStrategy.Auto, SiteSelection.AllLocal))
            .Fixes.Count);
    }
}
