using PpcLivepatch.Analysis;
using PpcLivepatch.Diagnostics;
using PpcLivepatch.Elf;
using PpcLivepatch.Klp;
using PpcLivepatch.Patching;

namespace PpcLivepatch.Tests;

[TestClass]
public sealed class KlpConverterTests
{
    private static (KlpConversion Result, string Path) Convert(string fixture, params KlpSymbolSpec[] specs)
    {
        Assert.IsTrue(ElfImage.TryLoad(Repo.Fixture(fixture), out var image, out _));
        var result = KlpConverter.Convert(image!, specs);
        string path = Path.Combine(Repo.NewTempDir(), "converted.o");
        File.WriteAllBytes(path, result.Output);
        return (result, path);
    }

    [TestMethod]
    public void CopiedStaticHelperIsDroppedAndBoundToTheOriginal()
    {
        var (result, path) = Convert("livepatch.kpatch.le.o", new KlpSymbolSpec("cmdline_helper"));
        Assert.IsTrue(result.Succeeded, string.Join("\n", result.Diagnostics.Select(d => d.Message)));
        CollectionAssert.AreEqual(new[] { ".text.cmdline_helper" }, result.DroppedSections.ToList());

        // readelf's view: the copy is gone, the livepatch section and symbol are there in the kernel's format.
        string sections = Tool.Check("powerpc64le-linux-gnu-readelf", "-SW", path);
        Assert.IsFalse(sections.Contains(" .text.cmdline_helper "), "the copy's section should be gone");
        StringAssert.Matches(sections,
            new System.Text.RegularExpressions.Regex(@"\.klp\.rela\.vmlinux\.\.text\.livepatch_cmdline_show\s+RELA\s+.*\sAIo\s"));
        StringAssert.Matches(Tool.Check("powerpc64le-linux-gnu-readelf", "-sW", path),
            new System.Text.RegularExpressions.Regex(@"FUNC\s+GLOBAL\s+DEFAULT\s+OS \[0xff20\] \.klp\.sym\.vmlinux\.cmdline_helper,0"));
        var readelf = Tool.Run("powerpc64le-linux-gnu-readelf", "-aW", path);
        Assert.AreEqual("", readelf.Stderr.Trim(), "readelf warned about the converted object");
        // Debug relocations into the copy were removed, not left dangling: ld -r still takes the object.
        Tool.Check("powerpc64le-linux-gnu-ld", "-r", "-o", Path.Combine(Path.GetDirectoryName(path)!, "l.o"), path);

        // The local call GCC compiled without a nop is now a livepatch call the kernel refuses...
        var verified = ObjectVerifier.Verify(path, LoaderOptions.Default);
        var refused = verified.Diagnostics.Single(d => d.Code == DiagnosticCatalog.MissingNopAfterCall);
        Assert.AreEqual(".klp.sym.vmlinux.cmdline_helper,0", refused.Callee);
        Assert.AreEqual(29, refused.Source!.Line);
        // ...until Patch gives it an island.
        Assert.IsTrue(ElfImage.TryLoad(path, out var converted, out _));
        var patched = ObjectPatcher.Patch(converted!, new PatchOptions(FixStrategy.Island));
        Assert.AreEqual(1, patched.Fixes.Count);
        Assert.IsFalse(patched.Report.Diagnostics.Any(d => d.Code == DiagnosticCatalog.MissingNopAfterCall));
    }

    [TestMethod]
    public void UndefinedSymbolBecomesALivepatchSymbol()
    {
        var (result, path) = Convert("livepatch.und.le.o",
            new KlpSymbolSpec("kernel_helper", "vmlinux", "kernel_helper", 2));
        Assert.IsTrue(result.Succeeded);
        Assert.AreEqual(1, result.RelocationsMoved);
        Assert.AreEqual(0, result.DroppedSections.Count);
        string relocs = Tool.Check("powerpc64le-linux-gnu-readelf", "-rW", path);
        StringAssert.Contains(relocs, "Relocation section '.klp.rela.vmlinux..text.livepatch_cmdline_show'");
        StringAssert.Contains(relocs, ".klp.sym.vmlinux.kernel_helper,2");
        var verified = ObjectVerifier.Verify(path, LoaderOptions.Default);
        Assert.AreEqual("livepatch", verified.Sites.Single(s =>
            s.Site.Callee == ".klp.sym.vmlinux.kernel_helper,2").Site.CalleeKind.ToString().ToLowerInvariant());
        Assert.IsFalse(verified.Diagnostics.Any(d =>
            d.Code is DiagnosticCatalog.MalformedKlpRelaSection or DiagnosticCatalog.MalformedKlpSymbol));
    }

    [TestMethod]
    public void BothCasesTogetherThenPatchLoads()
    {
        var (result, path) = Convert("livepatch.kpatch.le.o", new KlpSymbolSpec("cmdline_helper"),
            new KlpSymbolSpec("printk"), new KlpSymbolSpec("kernel_helper", "vmlinux"));
        Assert.IsTrue(result.Succeeded, string.Join("\n", result.Diagnostics.Select(d => d.Message)));
        CollectionAssert.AreEquivalent(new[] { ".text.cmdline_helper", ".text.kernel_helper" },
            result.DroppedSections.ToList());
        Assert.IsTrue(ElfImage.TryLoad(path, out var converted, out _));
        var patched = ObjectPatcher.Patch(converted!, new PatchOptions(FixStrategy.Island));
        Assert.AreEqual(2, patched.Fixes.Count,
            "cmdline_helper and kernel_helper were local calls; printk already had its nop");
        Assert.IsFalse(patched.Report.Diagnostics.Any(d => d.Code == DiagnosticCatalog.MissingNopAfterCall));
        PatchTests.AssertBinutilsAccept(patched.Output!, "livepatch.kpatch.le.o");
    }

    [TestMethod]
    public void DroppedCopyTakesItsFtraceRecordAlong()
    {
        var (result, path) = Convert("mcount_copy.kpatch.le.o", new KlpSymbolSpec("copied_helper"));
        Assert.IsTrue(result.Succeeded, string.Join("\n", result.Diagnostics.Select(d => d.Message)));
        // readelf: one __mcount_loc entry left, at offset 0, for the function that stays.
        string relocs = Tool.Check("powerpc64le-linux-gnu-readelf", "-rW", path);
        var mcount = relocs[relocs.IndexOf("'.rela__mcount_loc'")..];
        StringAssert.Contains(mcount, "contains 1 entry");
        StringAssert.Matches(mcount,
            new System.Text.RegularExpressions.Regex(@"0000000000000000\s+\S+\s+R_PPC64_ADDR64\s+0+\s+\.text\.kept \+ 24"));
        StringAssert.Contains(Tool.Check("powerpc64le-linux-gnu-readelf", "-SW", path),
            "__mcount_loc      PROGBITS        0000000000000000");
        Assert.IsTrue(ElfImage.TryLoad(path, out var image, out _));
        Assert.AreEqual(8UL, image!.Sections.Single(s => s.Name == "__mcount_loc").Size);
        Tool.Check("powerpc64le-linux-gnu-ld", "-r", "-o", Path.Combine(Path.GetDirectoryName(path)!, "l.o"), path);
    }

    private const string CloneSource = """
        struct ctx { int a, b, c; };
        static __attribute__((noinline)) int helper(const struct ctx *c, int scale) { return c->a * scale + c->b; }
        int patched_entry(int x) { struct ctx c = { x, 2, 3 }; return helper(&c, 4) + 1; }
        int patched_other(int y) { struct ctx c = { y, 5, 6 }; return helper(&c, 4) * 2; }
        """;

    [TestMethod]
    public void ACopyGccSpecialisedIsNamedInTheWarningAndCanBeBoundByTheClonesName()
    {
        // GCC 12 with the kernel's flags turns helper into helper.constprop.0.isra.0: no symbol 'helper' is left.
        string dir = Repo.NewTempDir(), source = Path.Combine(dir, "clone.c"), obj = Path.Combine(dir, "clone.o");
        File.WriteAllText(source, CloneSource);
        Tool.Check("powerpc64le-linux-gnu-gcc", "-O2", "-mcmodel=large", "-mprofile-kernel", "-pg", "-mcpu=power8",
            "-mno-prefixed", "-mno-pcrel",
            "-fno-PIE", "-ffunction-sections", "-fdata-sections", "-g", "-c", source, "-o", obj);
        Assert.IsTrue(ElfImage.TryLoad(obj, out var image, out _));
        string clone = image!.Symbols.Single(s => s.Name.StartsWith("helper.", StringComparison.Ordinal)).Name;
        Assert.IsTrue(KlpNames.IsGccCloneOf(clone, "helper"), clone);

        var named = KlpConverter.Convert(image, [new KlpSymbolSpec("helper")]);
        var warning = named.Diagnostics.Single();
        Assert.AreEqual((DiagnosticCatalog.KlpSymbolNotFound, Severity.Warning), (warning.Code, warning.Severity));
        StringAssert.Contains(warning.Message, $"GCC specialised the copy into {clone}");
        StringAssert.Contains(warning.Fix, "__attribute__((noipa))");
        StringAssert.Contains(warning.Fix, $"<KlpSymbol Include=\"{clone}\" />");
        CollectionAssert.AreEqual(image.Bytes.ToArray(), named.Output);

        // Bound by the clone's own name, the copy goes and both calls name the original's clone.
        var bound = KlpConverter.Convert(image, [new KlpSymbolSpec(clone)]);
        Assert.IsTrue(bound.Succeeded, string.Join("\n", bound.Diagnostics.Select(d => d.Message)));
        CollectionAssert.AreEqual(new[] { ".text." + clone }, bound.DroppedSections.ToList());
        string path = Path.Combine(dir, "converted.o");
        File.WriteAllBytes(path, bound.Output);
        string relocs = Tool.Check("powerpc64le-linux-gnu-readelf", "-rW", path);
        Assert.AreEqual(2, relocs.Split('\n')
            .Count(l => l.Contains($"R_PPC64_REL24") && l.Contains($".klp.sym.vmlinux.{clone},0")), relocs);
    }

    [TestMethod]
    public void ClonesThatStayWhenTheCopyIsDroppedAreNamed()
    {
        // GCC keeps the helper for some callers and a specialised clone for others (here named as GCC names them).
        string dir = Repo.NewTempDir(), source = Path.Combine(dir, "both.c"), obj = Path.Combine(dir, "both.o");
        File.WriteAllText(source, """
            static __attribute__((noipa)) int helper(int x) { return x + 1; }
            static int helper_clone(int x) __asm__("helper.constprop.0");
            static __attribute__((noipa)) int helper_clone(int x) { return x + 2; }
            int entry(int x) { return helper(x) + helper_clone(x); }
            """);
        Tool.Check("powerpc64le-linux-gnu-gcc", "-O2", "-mcmodel=large", "-mcpu=power8", "-mno-prefixed", "-mno-pcrel",
            "-fno-PIE",
            "-ffunction-sections", "-c", source, "-o", obj);
        Assert.IsTrue(ElfImage.TryLoad(obj, out var image, out _));
        var result = KlpConverter.Convert(image!, [new KlpSymbolSpec("helper")]);
        Assert.IsTrue(result.Succeeded, string.Join("\n", result.Diagnostics.Select(d => d.Message)));
        CollectionAssert.AreEqual(new[] { ".text.helper" }, result.DroppedSections.ToList());
        var warning = result.Diagnostics.Single();
        Assert.AreEqual((DiagnosticCatalog.KlpCopyHasClones, Severity.Warning), (warning.Code, warning.Severity));
        StringAssert.Contains(warning.Message, "GCC also made helper.constprop.0 of it");
        StringAssert.Contains(warning.Fix, "noipa");
    }

    [TestMethod]
    [DataRow("helper.isra.0", "helper", true)]
    [DataRow("helper.constprop.0.isra.0", "helper", true)]
    [DataRow("helper.part.3", "helper", true)]
    [DataRow("helper.cold", "helper", true)]
    [DataRow("helper.constprop.1.cold.2", "helper", true)]
    [DataRow("helper.localalias", "helper", true)]
    [DataRow("helper_two.isra.0", "helper", false)]
    [DataRow("helper.isra", "helper", false)]
    [DataRow("helper.something.0", "helper", false)]
    [DataRow("helper", "helper", false)]
    public void GccCloneNames(string name, string function, bool clone) =>
        Assert.AreEqual(clone, KlpNames.IsGccCloneOf(name, function));

    // Records in the kernel's tables, written as the kernel's macros write them (relative pointers), from one helper
    // that the patch carries as a copy and from a function that stays.
    private const string TableRecords = """
        #define RECORD(table, fields) asm volatile("1: nop\n\t.pushsection " table ",\"a\"\n\t.balign 4\n\t" fields "\n\t.popsection")
        #define STR(x) #x
        #if BUG_SIZE == 8   /* without CONFIG_DEBUG_BUGVERBOSE: the address and the flags */
        #define BUG_RECORD(size) RECORD("__bug_table", ".long 1b - .\n\t.short 0\n\t.org .-6+8")
        #else               /* with it: the file and line too (BUG_SIZE 16 is no layout the kernel has) */
        #define BUG_RECORD(size) RECORD("__bug_table", ".long 1b - ., 2f - .\n\t.short 10, 0\n\t.org .-12+" STR(size) "\n\t" \
            ".pushsection .rodata.str1.1,\"aMS\",@progbits,1\n2: .asciz \"tables.c\"\n\t.popsection")
        #endif
        static __attribute__((noipa)) int copied_helper(int x)
        {
            RECORD("__ex_table", ".long 1b - ., 1b - .");
            BUG_RECORD(BUG_SIZE);
            return x + 1;
        }
        int kept(int x)
        {
            RECORD("__ex_table", ".long 1b - ., " KEPT_FIXUP " - .");
            BUG_RECORD(BUG_SIZE);
            return copied_helper(x) * 2;
        }
        """;

    private static string CompileTableRecords(string dir, string bugSize, string keptFixup)
    {
        string source = Path.Combine(dir, "tables.c"), obj = Path.Combine(dir, "tables.o");
        File.WriteAllText(source, TableRecords);
        Tool.Check("powerpc64le-linux-gnu-gcc", "-O2", "-mcmodel=large", "-mprofile-kernel", "-pg", "-mcpu=power8",
            "-mno-prefixed", "-mno-pcrel",
            "-fno-PIE", "-ffunction-sections", "-fdata-sections", $"-DBUG_SIZE={bugSize}",
                $"-DKEPT_FIXUP=\"{keptFixup}\"", "-c", source, "-o", obj);
        return obj;
    }

    [TestMethod]
    [DataRow("12")]
    [DataRow("8")]
    public void ADroppedCopysRecordsInTheKernelsTablesGoWithIt(string bugSize)
    {
        string dir = Repo.NewTempDir();
        string obj = CompileTableRecords(dir, bugSize, "1b");
        Assert.IsTrue(ElfImage.TryLoad(obj, out var image, out _));
        var result = KlpConverter.Convert(image!, [new KlpSymbolSpec("copied_helper")]);
        Assert.IsTrue(result.Succeeded, string.Join("\n", result.Diagnostics.Select(d => d.Message)));
        string path = Path.Combine(dir, "converted.o");
        File.WriteAllBytes(path, result.Output);

        // readelf: each table keeps only the records of kept(), packed from offset 0, with all their fields.
        string relocs = Tool.Check("powerpc64le-linux-gnu-readelf", "-rW", path);
        string Table(string name) => relocs.Contains($"'.rela{name}'")
            ? relocs[relocs.IndexOf($"'.rela{name}'")..].Split("\n\n")[0] : "";
        StringAssert.Contains(Table("__ex_table"), "contains 2 entries");
        StringAssert.Matches(Table("__ex_table"),
            new System.Text.RegularExpressions.Regex(@"0000000000000000\s+\S+\s+R_PPC64_REL32\s+0+\s+\.text\.kept \+ \w+\n0000000000000004\s+\S+\s+R_PPC64_REL32\s+0+\s+\.text\.kept"));
        StringAssert.Contains(Table("__bug_table"), bugSize == "8" ? "contains 1 entry" : "contains 2 entries");
        StringAssert.Matches(Table("__bug_table"),
            new System.Text.RegularExpressions.Regex(@"0000000000000000\s+\S+\s+R_PPC64_REL32\s+0+\s+\.text\.kept"));
        Assert.IsFalse((Table("__ex_table") + Table("__bug_table")).Contains("copied_helper"), relocs);
        Assert.IsTrue(ElfImage.TryLoad(path, out var converted, out _));
        Assert.AreEqual(8UL, converted!.Sections.Single(s => s.Name == "__ex_table").Size);
        Assert.AreEqual(ulong.Parse(bugSize), converted.Sections.Single(s => s.Name == "__bug_table").Size);
        Tool.Check("powerpc64le-linux-gnu-ld", "-r", "-o", Path.Combine(dir, "l.o"), path);
    }

    [TestMethod]
    public void AKeptRecordsLivepatchRelocationFollowsItsRecordDown()
    {
        // Jump labels on a kernel static key that is not exported (a KlpSymbol): each record's key field becomes a
        // .klp.rela relocation. The copy's record goes, key field and all; the kept record moves down to offset 0.
        string dir = Repo.NewTempDir(), source = Path.Combine(dir, "keys.c"), obj = Path.Combine(dir, "keys.o");
        File.WriteAllText(source, """
            #define JUMP() asm volatile("1: nop\n\t.pushsection __jump_table,\"aw\"\n\t.balign 8\n\t.long 1b - ., 1b - .\n\t.quad kernel_key - .\n\t.popsection")
            static __attribute__((noipa)) int copied_helper(int x) { JUMP(); return x + 1; }
            int kept(int x) { JUMP(); return copied_helper(x) * 2; }
            """);
        Tool.Check("powerpc64le-linux-gnu-gcc", "-O2", "-mcmodel=large", "-mcpu=power8", "-mno-prefixed", "-mno-pcrel",
            "-fno-PIE",
            "-ffunction-sections", "-c", source, "-o", obj);
        Assert.IsTrue(ElfImage.TryLoad(obj, out var image, out _));
        var result = KlpConverter.Convert(image!,
            [new KlpSymbolSpec("copied_helper"), new KlpSymbolSpec("kernel_key")]);
        Assert.IsTrue(result.Succeeded, string.Join("\n", result.Diagnostics.Select(d => d.Message)));
        string path = Path.Combine(dir, "converted.o");
        File.WriteAllBytes(path, result.Output);

        string relocs = Tool.Check("powerpc64le-linux-gnu-readelf", "-rW", path);
        string klp = relocs[relocs.IndexOf("'.klp.rela.vmlinux.__jump_table'",
            StringComparison.Ordinal)..].Split("\n\n")[0];
        StringAssert.Contains(klp, "contains 1 entry", relocs);
        StringAssert.Matches(klp,
            new System.Text.RegularExpressions.Regex(@"\n0000000000000008\s+\S+\s+R_PPC64_REL64\s+0+\s+\.klp\.sym\.vmlinux\.kernel_key,0"));
        string table = relocs[relocs.IndexOf("'.rela__jump_table'", StringComparison.Ordinal)..].Split("\n\n")[0];
        StringAssert.Contains(table, "contains 2 entries");
        StringAssert.Matches(table,
            new System.Text.RegularExpressions.Regex(@"\n0000000000000000\s+\S+\s+R_PPC64_REL32\s+0+\s+\.text\.kept \+ \w+\n0000000000000004\s"));
        Assert.IsTrue(ElfImage.TryLoad(path, out var converted, out _));
        Assert.AreEqual(16UL, converted!.Sections.Single(s => s.Name == "__jump_table").Size);
    }

    [TestMethod]
    [DataRow("12", "copied_helper", "the record describes code that stays in the module")]
    [DataRow("16", "1b", "its layout is not one the converter knows")]
    public void ARecordThatCannotBeCutOutWithTheCopyIsCoded(string bugSize, string keptFixup, string why)
    {
        string obj = CompileTableRecords(Repo.NewTempDir(), bugSize, keptFixup);
        Assert.IsTrue(ElfImage.TryLoad(obj, out var image, out _));
        var result = KlpConverter.Convert(image!, [new KlpSymbolSpec("copied_helper")]);
        Assert.IsFalse(result.Succeeded);
        var d = result.Diagnostics.First(d => d.Severity == Severity.Error);
        Assert.AreEqual(DiagnosticCatalog.KlpCopyNotSeparable, d.Code);
        StringAssert.Contains(d.Message, why);
        CollectionAssert.AreEqual(image!.Bytes.ToArray(), result.Output, "nothing is half-converted");
    }

    [TestMethod]
    public void ConversionIsDeterministic()
    {
        var specs = new[] { new KlpSymbolSpec("cmdline_helper"), new KlpSymbolSpec("printk") };
        CollectionAssert.AreEqual(Convert("livepatch.kpatch.le.o", specs).Result.Output,
            Convert("livepatch.kpatch.le.o", specs).Result.Output);
    }

    [TestMethod]
    public void CopyInASharedTextSectionCannotBeDropped()
    {
        var (result, _) = Convert("calls.kmod.le.o", new KlpSymbolSpec("helper_a"));
        var d = result.Diagnostics.Single();
        Assert.AreEqual(DiagnosticCatalog.KlpCopyNotSeparable, d.Code);
        StringAssert.Contains(d.Fix, "-ffunction-sections");
        CollectionAssert.AreEqual(File.ReadAllBytes(Repo.Fixture("calls.kmod.le.o")), result.Output,
            "nothing is half-converted");
    }

    [TestMethod]
    [DataRow("calls_fp", "vmlinux", DiagnosticCatalog.KlpDefinedSymbolNotAFunction)]
    [DataRow("no_such_symbol", "vmlinux", DiagnosticCatalog.KlpSymbolNotFound)]
    [DataRow("helper_a", "vm.linux", DiagnosticCatalog.BadKlpSymbolItem)]
    public void BadItemsAreCoded(string symbol, string obj, string code)
    {
        var (result, _) = Convert("calls.kpatch.le.o", new KlpSymbolSpec(symbol, obj));
        Assert.AreEqual(code, result.Diagnostics.Single().Code);
    }
}
