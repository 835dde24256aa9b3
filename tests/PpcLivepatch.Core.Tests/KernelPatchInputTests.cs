using PpcLivepatch.Diagnostics;
using System.Text.Json;
using PpcLivepatch.Diff;
using PpcLivepatch.Kbuild;
using PpcLivepatch.KernelPatching;

namespace PpcLivepatch.Tests;

/// <summary>
/// The first steps from a kernel source patch to a livepatch: reading and applying the <c>.patch</c> (checked against
/// GNU patch on the diff pairs' patches and the oracle kernel's source), keeping unchanged lines' numbers with
/// <c>#line</c>, and finding the translation units in the build tree's kbuild records.
/// </summary>
[TestClass]
public sealed class KernelPatchInputTests
{
    private static string Patches => Path.Combine(Repo.Root, "tests", "fixtures", "diff", "patches");

    [TestMethod]
    public void EveryPairsPatchAppliesAsGnuPatchAppliesIt()
    {
        string source = KernelOracle.KlpSourceTree();
        foreach (string patch in Directory.GetFiles(Patches, "*.patch").Order(StringComparer.Ordinal))
        {
            if (patch.EndsWith(".base.patch", StringComparison.Ordinal)) continue;
            string basePatch = patch.Replace(".patch", ".base.patch", StringComparison.Ordinal);
            var files = UnifiedPatch.Parse(patch, File.ReadAllText(patch), out var error);
            Assert.IsNotNull(files, error?.Message);
            var file = files.Single();
            string dir = Repo.NewTempDir(), copy = Path.Combine(dir, file.Path);
            Directory.CreateDirectory(Path.GetDirectoryName(copy)!);
            File.Copy(Path.Combine(source, file.Path), copy);
            if (File.Exists(basePatch)) Tool.Check("patch", "-s", "-d", dir, "-p1", "-i", basePatch);
            string original = File.ReadAllText(copy);
            string? ours = UnifiedPatch.Apply(patch, file, original, lineMarkers: null, out error);
            Assert.IsNotNull(ours, error?.Message);
            Tool.Check("patch", "-s", "-d", dir, "-p1", "-i", patch);
            Assert.AreEqual(File.ReadAllText(copy), ours, Path.GetFileName(patch));
        }
    }

    [TestMethod]
    public void LineMarkersKeepTheNumbersOfTheLinesAfterEachHunk()
    {
        string patch = Path.Combine(Patches, "version-new-function.patch");
        var file = UnifiedPatch.Parse(patch, File.ReadAllText(patch), out _)!.Single();
        string original = File.ReadAllText(Path.Combine(KernelOracle.KlpSourceTree(), file.Path));
        string marked = UnifiedPatch.Apply(patch, file, original, "fs/proc/version.c", out _)!;
        var originalLines = original.Split('\n');
        // Read the output as the preprocessor does: a #line sets the number of the next line.
        int line = 1, checkedLines = 0, markers = 0;
        foreach (string l in marked.Split('\n'))
        {
            if (l.StartsWith("#line ", StringComparison.Ordinal))
            {
                markers++;
                StringAssert.EndsWith(l, " \"fs/proc/version.c\"");
                line = int.Parse(l.Split(' ')[1]);
                continue;
            }
            if (markers > 0 && line <= originalLines.Length)
            {
                Assert.AreEqual(originalLines[line - 1], l, $"line {line} after a marker");
                checkedLines++;
            }
            line++;
        }
        Assert.AreEqual(file.Hunks.Count, markers);
        Assert.IsTrue(checkedLines >= 5, $"the lines after the hunks keep their numbers ({checkedLines} checked)");
    }

    [TestMethod]
    public void AHunkAppliesWhereItsContextIsAndNowhereElse()
    {
        const string text = "a\nb\nc\nd\ne\nf\n";
        const string patchText = "--- a/x.c\n+++ b/x.c\n@@ -2,3 +2,3 @@\n b\n-c\n+C\n d\n";
        var file = UnifiedPatch.Parse("fix.patch", patchText, out _)!.Single();
        Assert.AreEqual("a\nb\nC\nd\ne\nf\n", UnifiedPatch.Apply("fix.patch", file, text, null, out _));
        // Three lines added above: the hunk applies three lines later, where its context now is.
        Assert.AreEqual("x\ny\nz\na\nb\nC\nd\ne\nf\n",
            UnifiedPatch.Apply("fix.patch", file, "x\ny\nz\n" + text, null, out _));
        // Context that is not in the file: refused at the hunk's line of the .patch.
        Assert.IsNull(UnifiedPatch.Apply("fix.patch", file, "a\nb\nX\nd\n", null, out var error));
        Assert.AreEqual(DiagnosticCatalog.PatchDoesNotApply, error!.Code);
        Assert.AreEqual(new SourceLocation("fix.patch", 3, 1), error.Source);
        StringAssert.Contains(error.Message, "hunk #1 for x.c does not apply");
    }

    /// <summary>
    /// Patches in a series apply in order, each on top of the ones before: the second replaces a line the first
    /// wrote. Lines the original had keep their numbers (a marker where the series moved them), and each written line
    /// leads back to the patch and line that wrote it; a hunk that only fits the original is refused at its line.
    /// </summary>
    [TestMethod]
    public void PatchesInASeriesApplyInOrderAndEachLineLeadsToThePatchThatWroteIt()
    {
        var first = UnifiedPatch.Parse("p1.patch",
            "--- a/x.c\n+++ b/x.c\n@@ -2,3 +2,5 @@\n b\n-c\n+C\n+X\n+Z\n d\n", out _)!.Single();
        var second = UnifiedPatch.Parse("p2.patch",
            "--- a/x.c\n+++ b/x.c\n@@ -3,3 +3,3 @@\n C\n-X\n+Y\n Z\n", out _)!.Single();
        var placed = new List<(PatchHunk, int)>();
        string? marked = UnifiedPatch.ApplySeries([first, second], "a\nb\nc\nd\ne\nf\n", "x.c", placed, out var error);
        Assert.IsNull(error, error?.Message);
        Assert.AreEqual("a\nb\nC\nY\nZ\n#line 4 \"x.c\"\nd\ne\nf\n", marked);
        Assert.AreEqual(("p1.patch", 6), UnifiedPatch.PatchPlaceOf(placed, 3));
        Assert.AreEqual(("p2.patch", 6), UnifiedPatch.PatchPlaceOf(placed, 4));
        Assert.AreEqual(("p1.patch", 8), UnifiedPatch.PatchPlaceOf(placed, 5));

        var stale = UnifiedPatch.Parse("p3.patch", "--- a/x.c\n+++ b/x.c\n@@ -2,2 +2,2 @@\n b\n-c\n+c2\n", out _)!
            .Single();
        Assert.IsNull(UnifiedPatch.ApplySeries([first, stale], "a\nb\nc\nd\ne\nf\n", "x.c", [], out error));
        Assert.AreEqual(DiagnosticCatalog.PatchDoesNotApply, error!.Code);
        Assert.AreEqual(new SourceLocation("p3.patch", 3, 1), error.Source);
        StringAssert.Contains(error.Message, "does not apply on top of the patches before it");
    }

    [TestMethod]
    public void AFindingAtAFunctionsLineLandsOnTheLineThePatchAddsInIt()
    {
        // cmdline-init.patch changes a line inside proc_cmdline_init; the diff's refusal names the function's first
        // line (its "{"), which maps to the "+" line of the .patch that changed it.
        string patch = Path.Combine(Patches, "cmdline-init.patch");
        string[] patchLines = File.ReadAllLines(patch);
        int plusLine = Array.FindIndex(patchLines, l => l.StartsWith('+') && !l.StartsWith("+++")) + 1;
        var file = UnifiedPatch.Parse(patch, File.ReadAllText(patch), out _)!.Single();
        string original = File.ReadAllText(Path.Combine(KernelOracle.KlpSourceTree(), file.Path));
        var placed = new List<(PatchHunk, int)>();
        string marked = UnifiedPatch.Apply(patch, file, original, file.Path, placed, out _)!;
        int functionLine = Array.FindIndex(marked.Split('\n'), l => l.Contains("proc_cmdline_init(void)")) + 2;
        Assert.AreEqual(plusLine, UnifiedPatch.PatchLineOf(placed, functionLine));
        Assert.IsNull(UnifiedPatch.PatchLineOf(placed, 10_000), "nothing is added after the end");
    }

    /// <summary>
    /// A PCI quirk record is named after its line (<c>__pci_fixup_quirk_nopcipci&lt;__LINE__&gt;</c>), so its name is
    /// nowhere in the patch: the finding about it lands on the line the patch adds or removes at that number, in the
    /// numbering of the marked copy (the hunk's lines from where it applies, the rest as in the original).
    /// </summary>
    private const string QuirkAdded = """
        --- a/drivers/pci/quirks.c
        +++ b/drivers/pci/quirks.c
        @@ -297,6 +297,7 @@ static void quirk_nopcipci(struct pci_de
         	}
         }
         DECLARE_PCI_FIXUP_FINAL(PCI_VENDOR_ID_SI,	PCI_DEVICE_ID_SI_5597,		quirk_nopcipci);
        +DECLARE_PCI_FIXUP_FINAL(PCI_VENDOR_ID_SI,	0x1234,		quirk_nopcipci);
         DECLARE_PCI_FIXUP_FINAL(PCI_VENDOR_ID_SI,	PCI_DEVICE_ID_SI_496,		quirk_nopcipci);
         
         static void quirk_nopciamd(struct pci_dev *dev)

        """;

    private const string QuirkRemoved = """
        --- a/drivers/pci/quirks.c
        +++ b/drivers/pci/quirks.c
        @@ -296,7 +296,6 @@ static void quirk_nopcipci(struct pci_de
         		pci_pci_problems |= PCIPCI_FAIL;
         	}
         }
        -DECLARE_PCI_FIXUP_FINAL(PCI_VENDOR_ID_SI,	PCI_DEVICE_ID_SI_5597,		quirk_nopcipci);
         DECLARE_PCI_FIXUP_FINAL(PCI_VENDOR_ID_SI,	PCI_DEVICE_ID_SI_496,		quirk_nopcipci);
         
         static void quirk_nopciamd(struct pci_dev *dev)

        """;

    /// <summary>
    /// A PCI quirk record is named after its line (<c>__pci_fixup_quirk_nopcipci&lt;__LINE__&gt;</c>), so its name is
    /// nowhere in the patch: the finding about it (PLP5003, the record "changed") lands on the line the patch adds or
    /// removes at that number, in the numbering of the marked copy (a hunk's lines from where it applies, the rest as
    /// in the original), and names nothing else.
    /// </summary>
    [TestMethod]
    [DataRow(QuirkAdded, "__pci_fixup_quirk_nopcipci300", 7)]
    [DataRow(QuirkRemoved, "__pci_fixup_quirk_nopcipci299", 7)]
    public void AFindingAboutALineNamedRecordLandsOnTheLineThatAddsOrRemovesIt(string text, string datum, int line)
    {
        var file = UnifiedPatch.Parse("quirk.patch", text, out var parseError);
        Assert.IsNotNull(file, parseError?.Message);
        Assert.IsTrue(text.Split('\n')[line - 1].StartsWith("+DECLARE") || text.Split('\n')[line - 1]
            .StartsWith("-DECLARE"));
        string original = File.ReadAllText(Path.Combine(KernelOracle.KlpSourceTree(), "drivers/pci/quirks.c"));
        var placed = new List<(PatchHunk, int)>();
        Assert.IsNotNull(UnifiedPatch.Apply("quirk.patch", file.Single(), original, "drivers/pci/quirks.c", placed,
            out var error), error?.Message);
        Assert.AreEqual(line, UnifiedPatch.PatchLineOfName(placed, datum));
        Assert.IsNull(UnifiedPatch.PatchLineOfName(placed, "__pci_fixup_quirk_nopcipci301"), "a context line");
        Assert.IsNull(UnifiedPatch.PatchLineOfName(placed, "__pci_fixup_quirk_nopcipci420"), "no change there");
    }

    [TestMethod]
    [DataRow("not a patch\n", 1, "contains no unified-diff hunks")]
    [DataRow("--- a/x.c\n+++ b/x.c\n@@ -1,3 +1,3 @@\n a\n-b\n", 3, "cut short")]
    public void WhatIsNotAPatchIsCoded(string text, int line, string message)
    {
        Assert.IsNull(UnifiedPatch.Parse("bad.patch", text, out var error));
        Assert.AreEqual(DiagnosticCatalog.PatchDoesNotApply, error!.Code);
        Assert.AreEqual(line, error.Source!.Line);
        StringAssert.Contains(error.Message, message);
    }

    [TestMethod]
    public void UnitsComeFromTheBuildTreesKbuildRecords()
    {
        string build = KernelOracle.KlpBuildTree();
        var units = new KbuildUnits(build, KernelOracle.KlpSourceTree());
        var diagnostics = new List<Diagnostic>();
        var cmdline = units.For(["fs/proc/cmdline.c"], "fix.patch", diagnostics).Single();
        Assert.AreEqual("fs/proc/cmdline.o", cmdline.Object);
        StringAssert.EndsWith(cmdline.Source, "fs/proc/cmdline.c");
        StringAssert.Contains(cmdline.Command, "powerpc64le-linux-gnu-gcc");
        Assert.AreEqual(0, diagnostics.Count);

        // A header reaches every object whose record lists it; a .c file the configuration skips is a warning.
        var viaHeader = units.For(["include/linux/seq_file.h"], "fix.patch", diagnostics);
        Assert.IsTrue(viaHeader.Any(u => u.Object == "fs/proc/cmdline.o") && viaHeader.Count > 20, $"{viaHeader.Count}");
        Assert.AreEqual(0, units.For(["drivers/gpu/drm/nouveau/nouveau_drm.c"], "fix.patch", diagnostics).Count);
        Assert.AreEqual(DiagnosticCatalog.PatchFileNotBuilt, diagnostics.Single().Code);
        Assert.AreEqual(Severity.Warning, diagnostics.Single().Severity);
    }

    [TestMethod]
    public void AChangedHeadersCopyGoesWhereTheUnitFindsItFirst()
    {
        // Paths as kbuild records them: the source tree's real path (build/source is a link to it).
        string build = KernelOracle.KlpBuildTree(), source = Directory.ResolveLinkTarget(KernelOracle.KlpSourceTree(),
            returnFinalTarget: true)!.FullName;
        var units = new KbuildUnits(build, source);
        // kbuild records "fs/proc/../../lib/kstrtox.h" as the compiler found it: the same file as lib/kstrtox.h.
        var kstrtox = units.For(["lib/kstrtox.h"], "fix.patch", []);
        CollectionAssert.Contains(kstrtox.Select(u => u.Object).ToList(), "fs/proc/base.o");
        var fd = units.For(["fs/proc/fd.h"], "fix.patch", []);
        CollectionAssert.AreEqual(new[] { "fs/proc/base.o", "fs/proc/fd.o" }, fd.Select(u => u.Object).ToArray());
        var unit = fd[1];
        // A header next to the unit's source: quoted includes look there first, and kbuild's -I of the source's own
        // directory finds it as <fd.h>.
        CollectionAssert.AreEqual(new (string?, string)[] { (null, "fd.h"), (Path.Combine(source, "fs/proc"), "fd.h") },
            unit.HeaderPlacements(Path.Combine(source, "fs/proc/fd.h"), build).ToArray());
        // include/uapi/linux/fs.h is <linux/fs.h> through -I include/uapi and <uapi/linux/fs.h> through -I include.
        var uapi = unit.HeaderPlacements(Path.Combine(source, "include/uapi/linux/fs.h"), build);
        CollectionAssert.AreEquivalent(new (string?, string)[] { (Path.Combine(source, "include"), "uapi/linux/fs.h"),
            (Path.Combine(source, "include/uapi"), "linux/fs.h") }, uapi.ToArray());
        Assert.AreEqual(0, unit.HeaderPlacements("/usr/include/stdio.h", build).Count);
        // Only what the running kernel holds: include/vdso/datapage.h is also read by the vDSO's objects, which are
        // linked into neither vmlinux.a nor a module; a module's own unit (its .mod list) counts.
        var datapage = units.For(["include/vdso/datapage.h"], "fix.patch", []).Select(u => u.Object).ToList();
        Assert.IsTrue(datapage.Count > 0 && !datapage.Any(o => o.Contains("/vdso/", StringComparison.Ordinal)),
            string.Join(" ", datapage));
        Assert.AreEqual("fs/binfmt_misc.o", units.For(["fs/binfmt_misc.c"], "fix.patch", []).Single().Object);
        var found = new List<Diagnostic>();
        Assert.AreEqual("fs/proc/array.o", units.For(["fs/proc/array.c"], "fix.patch", found).SingleOrDefault()?.Object,
            string.Join("\n", found));
        Assert.IsFalse(units.For(["include/linux/module.h"], "fix.patch", []).Any(u =>
            u.Object.EndsWith(".mod.o", StringComparison.Ordinal) || u.Object.StartsWith("arch/powerpc/boot/",
                StringComparison.Ordinal)), "the modules' .mod.o and the boot wrapper are not the running kernel");
        // The copies' directories are searched before kbuild's own.
        var args = unit.LivepatchCompileArguments("/w/fd.c", "/w/fd.o", source, build, firstIncludes: ["/w/include0"])!;
        CollectionAssert.AreEqual(new[] { "powerpc64le-linux-gnu-gcc", "-I/w/include0" }, args.Take(2).ToArray());
        // kbuild's quoting is read as the shell reads it: -DKBUILD_MODNAME='"fd"' is one word without its quotes.
        CollectionAssert.Contains(args.ToList(), "-DKBUILD_BASENAME=\"fd\"");
        Assert.AreEqual("/w/fd.o", args[args.ToList().IndexOf("-o") + 1]);
    }

    [TestMethod]
    public void TheUnitCompiledFromItsKbuildRecordIsTheCommittedPairByteForByte()
    {
        // The command the SDK will run is the one tests/fixtures/diff/build-pairs.sh ran for the committed pairs:
        // compiled in the build tree and run through recordmcount, the original of cmdline-string is the same bytes.
        string build = KernelOracle.KlpBuildTree(), source = KernelOracle.KlpSourceTree();
        var unit = new KbuildUnits(build, source).For(["fs/proc/cmdline.c"], "fix.patch", []).Single();
        string dir = Repo.NewTempDir(), copyDir = Path.Combine(dir, "orig"), output = Path.Combine(dir, "cmdline.o");
        Directory.CreateDirectory(copyDir);
        string copy = Path.Combine(copyDir, "cmdline.c");
        File.Copy(Path.Combine(source, "fs/proc/cmdline.c"), copy);
        var args = unit.LivepatchCompileArguments(copy, output,
            Directory.ResolveLinkTarget(source, true)?.FullName ?? source, build)!;
        Assert.AreEqual(0, Tool.RunIn(build, args[0], [.. args.Skip(1)]).ExitCode);
        Assert.AreEqual(0, Tool.RunIn(build, Path.Combine(build, "scripts", "recordmcount"), output).ExitCode);
        CollectionAssert.AreEqual(File.ReadAllBytes(Path.Combine(Repo.Root, "tests", "fixtures", "diff", "pairs",
            "cmdline-string.orig.o")), File.ReadAllBytes(output));
    }

    [TestMethod]
    [DataRow("gcc -DX='\"a b\"' -c -o x.o x.c ; ./tools/objtool x.o", "gcc|-DX=\"a b\"|-c|-o|x.o|x.c")]
    [DataRow("gcc \"-I/a dir\" a\\ b.c && ./scripts/recordmcount x.o", "gcc|-I/a dir|a b.c")]
    [DataRow("gcc -D'Q=\"x\"'\"y\" z  ", "gcc|-DQ=\"x\"y|z")]
    [DataRow("gcc -DV=\"\\\"q\\\"\" x.c || true", "gcc|-DV=\"q\"|x.c")]
    public void KbuildsCommandIsReadAsTheShellReadsIt(string command, string words) =>
        CollectionAssert.AreEqual(words.Split('|'), ShellWords.SplitFirstCommand(command)!.ToArray());

    [TestMethod]
    [DataRow("gcc $(CFLAGS) x.c")]
    [DataRow("gcc `cat flags` x.c")]
    [DataRow("gcc x.c > out")]
    [DataRow("gcc 'x.c")]
    [DataRow("gcc \"$HOME/x.c\"")]
    [DataRow("   ")]
    public void ACommandBeyondWordsAndQuotesIsNotGuessed(string command) =>
        Assert.IsNull(ShellWords.SplitFirstCommand(command));

    [TestMethod]
    public void TheManifestIsTypedJsonAndAnOtherFileIsNotTakenForOne()
    {
        var manifest = new KernelPatchManifest("/w/livepatch_registration.c", ["/w/fs_proc_cmdline/cmdline_livepatch.o"],
            [new KernelBinding("saved_command_line", true, "vmlinux", 0), new KernelBinding("calls", true, "vmlinux", 2)]);
        byte[] json = manifest.ToJson();
        var read = KernelPatchManifest.Read(json, out string? error);
        Assert.IsNotNull(read, error);
        Assert.AreEqual(manifest.Registration, read.Registration);
        CollectionAssert.AreEqual(manifest.Objects.ToArray(), read.Objects.ToArray());
        CollectionAssert.AreEqual(manifest.KlpSymbols.ToArray(), read.KlpSymbols.ToArray());
        Assert.AreEqual(2, JsonDocument.Parse(json).RootElement.GetProperty("klpSymbols").GetArrayLength());
        // The tab-separated manifest of earlier versions, and JSON of another shape, are refused with why.
        Assert.IsNull(KernelPatchManifest.Read("registration\t/w/r.c\n"u8.ToArray(), out error));
        Assert.IsNotNull(error);
        Assert.IsNull(KernelPatchManifest.Read("{\"version\":1}"u8.ToArray(), out error));
        StringAssert.Contains(error, "objects");
    }

    /// <summary>
    /// loadavg_proc_show (0x11c bytes) is followed in the oracle's vmlinux by code no symbol names — the weak
    /// arch_report_meminfo the linker kept — with a bl _mcount of its own: its ftrace_location() range holds two
    /// sites, and the kernel attached a livepatch to the dead one (it loaded and did nothing). That is refused;
    /// cmdline_proc_show's range holds only its own site.
    /// </summary>
    [TestMethod]
    public void AFunctionWhoseFtraceRangeHoldsOtherCodesSiteIsRefused()
    {
        var sites = VmlinuxFtraceSites.Load(Path.Combine(KernelOracle.KlpBuildTree(), "vmlinux"), out string? why);
        Assert.IsNotNull(sites, why);
        var at = new SourceLocation("fs/proc/loadavg.c", 15, 0);
        var d = sites.Check("loadavg_proc_show", 0, "loadavg.o", at);
        Assert.IsNotNull(d);
        Assert.AreEqual(DiagnosticCatalog.DiffFtraceSiteNotOwn, d.Code);
        Assert.AreEqual(Severity.Error, d.Severity);
        StringAssert.Contains(d.Message, "holds 2 ftrace site(s): +0xc, +0x124: past its end (0x11c bytes)");
        Assert.AreEqual(at, d.Source);
        Assert.IsNull(sites.Check("cmdline_proc_show", 0, "cmdline.o", null));
        Assert.IsNull(sites.Check("no_such_function", 0, "x.o", null));
        // A System.map has no records: nothing to check, and said so.
        Assert.IsNull(VmlinuxFtraceSites.Load(Path.Combine(KernelOracle.KlpBuildTree(), "System.map"), out why));
        StringAssert.Contains(why, "not a 64-bit ELF file");
        // A truncated vmlinux is said, never read past its end.
        string cut = Path.Combine(Repo.NewTempDir(), "vmlinux");
        using (var source = File.OpenRead(Path.Combine(KernelOracle.KlpBuildTree(), "vmlinux")))
        using (var target = File.Create(cut))
        {
            var head = new byte[1 << 20];
            target.Write(head, 0, source.Read(head));
        }
        Assert.IsNull(VmlinuxFtraceSites.Load(cut, out why));
        StringAssert.Contains(why, "outside the file");
    }

    [TestMethod]
    [DataRow("--- src.orig/fs/proc/cmdline.c\n+++ src/fs/proc/cmdline.c\n", 1, "fs/proc/cmdline.c")]
    [DataRow("--- a/fs/proc/cmdline.c\n+++ b/fs/proc/cmdline.c\n", 1, "fs/proc/cmdline.c")]
    [DataRow("--- fs/proc/cmdline.c\n+++ fs/proc/cmdline.c\n", 0, "fs/proc/cmdline.c")]
    [DataRow("--- linux-6.1/fs/proc/cmdline.c.orig\n+++ /home/me/linux-6.1/fs/proc/cmdline.c\n", 4,
        "fs/proc/cmdline.c")]
    public void FileNamesAreReadAsPatchStripsThem(string headers, int strip, string path)
    {
        var files = UnifiedPatch.Parse("fix.patch", headers + "@@ -1 +1 @@\n-a\n+b\n", out var error, strip);
        Assert.IsNotNull(files, error?.Message);
        Assert.AreEqual(path, files.Single().Path);
    }

    [TestMethod]
    [DataRow("diff --git a/x.c b/y.c\nsimilarity index 90%\nrename from x.c\nrename to y.c\n", 3, "rename from x.c")]
    [DataRow("diff --git a/logo.png b/logo.png\nGIT binary patch\nliteral 5\n", 2, "GIT binary patch")]
    [DataRow("Binary files a/logo.png and b/logo.png differ\n", 1, "Binary files")]
    [DataRow("--- a\n+++ b\n@@ -1 +1 @@\n-a\n+b\n", 1, "'b' has fewer than 2 path components")]
    public void WhatPatchCannotApplyAsTextIsCoded(string text, int line, string message)
    {
        Assert.IsNull(UnifiedPatch.Parse("fix.patch", text, out var error));
        Assert.AreEqual(DiagnosticCatalog.PatchDoesNotApply, error!.Code);
        Assert.AreEqual(line, error.Source!.Line);
        StringAssert.Contains(error.Message, message);
    }

    /// <summary>modpost reports a function-scope static without GCC's .N suffix: __already_done.94, bound as a
    /// livepatch symbol, is "__already_done" in its warning and must not be called unexported (PLP0017).</summary>
    [TestMethod]
    public void ModpostsNamesWithoutTheirSuffixAreTheLivepatchSymbols()
    {
        string[] bound = ["__already_done.94", "_rs.3", "saved_command_line", "calls.0.constprop", "key.part.0"];
        Assert.IsTrue(KbuildModule.IsLivepatchSymbol("__already_done", bound));
        Assert.IsTrue(KbuildModule.IsLivepatchSymbol("_rs", bound));
        Assert.IsTrue(KbuildModule.IsLivepatchSymbol("saved_command_line", bound));
        Assert.IsTrue(KbuildModule.IsLivepatchSymbol("calls", bound), "cut at .0 before another dot, as modpost does");
        Assert.IsFalse(KbuildModule.IsLivepatchSymbol("key", bound), "only a number after the dot is cut");
        Assert.IsFalse(KbuildModule.IsLivepatchSymbol("printk", bound));
        Assert.IsFalse(KbuildModule.IsLivepatchSymbol("_r", bound));
    }
}
