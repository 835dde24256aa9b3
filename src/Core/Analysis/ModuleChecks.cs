using PpcLivepatch.Diagnostics;
using PpcLivepatch.Elf;
using PpcLivepatch.Ppc64;
using static PpcLivepatch.Elf.ElfConstants;

namespace PpcLivepatch.Analysis;

/// <summary>Object-wide rules of the module loader and the livepatch core, beyond single call sites.</summary>
public static class ModuleChecks
{
    /// <summary>
    /// apply_relocations() hands every RELA section whose target is allocated to apply_relocate_add(), whose
    /// switch fails the module on the first type it does not know (<c>Unknown ADD relocation</c>). One diagnostic
    /// per relocation section and type, located at its first use.
    /// </summary>
    public static IEnumerable<Diagnostic> UnsupportedRelocations(ElfImage image, FunctionMap functions,
        LoaderOptions options)
    {
        string module = options.ModuleNameFor(image.Path);
        foreach (var rs in image.RelocationSections.Where(r => r.Target.IsAlloc))
        {
            bool any = false;
            foreach (var e in rs.Entries)
                if (!RelocationCatalog.IsSupportedByKernel(e.Type, options.Pcrel)) { any = true; break; }
            if (!any) continue;
            foreach (var group in rs.Entries.Select((e, i) => (e, i))
                         .Where(x => !RelocationCatalog.IsSupportedByKernel(x.e.Type, options.Pcrel))
                         .GroupBy(x => x.e.Type))
            {
                var first = group.First().e;
                var f = functions.Containing(rs.Target.Index, first.Offset);
                string name = RelocationCatalog.NameOf(group.Key);
                int count = group.Count();
                string why = group.Key == R.PPC64_REL24_NOTOC && !options.Pcrel
                    ? " (Power10 pcrel code; only CONFIG_PPC_KERNEL_PCREL kernels apply it — build with -mno-pcrel " +
                        "-mno-prefixed, as the kernel does)"
                    : "";
                yield return new Diagnostic(DiagnosticCatalog.UnsupportedRelocation,
                    $"{rs.Section.Name} has {count} {name} relocation{(count == 1 ? "" : "s")}, first at " +
                    $"{rs.Target.Name}+0x{first.Offset:x}{why}; " +
                    $"the kernel would refuse the module: module_64: {module}: Unknown ADD relocation: {group.Key}",
                    image.Path, rs.Target.Name, first.Offset, f?.Name, f is null ? null : first.Offset - f.Start,
                    Fix: "Compile with the kernel's module flags (no -mlongcall, -mno-pcrel -mno-prefixed on " +
                        "Power10) so that only supported relocations are emitted.");
            }
        }
    }

    /// <summary>
    /// A CONFIG_PPC_KERNEL_PCREL kernel gives modules no TOC: module_frob_arch_sections() skips dedotify(), so
    /// nothing turns the undefined <c>.TOC.</c> that TOC-based code names (the global entry's
    /// <c>addis r2,r12,.TOC.-f@ha</c>, the large model's <c>.quad .TOC.-f</c>) into the module's TOC pointer, and
    /// resolving it as a kernel symbol fails. One diagnostic, at the first relocation that names it.
    /// </summary>
    public static IEnumerable<Diagnostic> TocBasedOnPcrelKernel(ElfImage image, FunctionMap functions,
        LoaderOptions options)
    {
        if (!options.Pcrel) yield break;
        var toc = image.Symbols.Where(s =>
            s.Name == ".TOC." && s.SectionIndex == ShnUndef).Select(s => (uint)s.Index).ToHashSet();
        if (toc.Count == 0) yield break;
        var uses = image.RelocationSections.Where(r => r.Target.IsAlloc)
            .SelectMany(r => r.Entries.Where(e => toc.Contains(e.SymbolIndex)).Select(e => (r.Target, e.Offset)))
            .ToList();
        if (uses.Count == 0) yield break;
        var (section, offset) = uses[0];
        var f = functions.Containing(section.Index, offset);
        yield return new Diagnostic(DiagnosticCatalog.TocBasedOnPcrelKernel,
            $"the object is TOC-based code ({uses.Count} relocation{(uses.Count == 1 ? " names" : "s name")} .TOC., " +
            $"first at {section.Name}+0x{offset:x}); a kernel built with CONFIG_PPC_KERNEL_PCREL gives modules no " +
            $"TOC and would refuse it: {options.ModuleNameFor(image.Path)}: Unknown symbol .TOC. (err -2)",
            image.Path, section.Name, offset, f?.Name, f is null ? null : offset - f.Start,
            Fix: "Compile the module as the target kernel's kbuild does (-mpcrel -mprefixed on a PCREL kernel), or " +
                "target a kernel without CONFIG_PPC_KERNEL_PCREL (no --pcrel / LivepatchPcrel=false).");
    }

    /// <summary>
    /// The kernel finds a module's ftrace sites where its own model puts them: an -mprofile-kernel kernel reads
    /// <c>__mcount_loc</c> and expects <c>bl _mcount</c> there, a patchable-entry kernel reads
    /// <c>__patchable_function_entries</c> and expects its number of nops (and, out of line, makes one stub per
    /// record). A module of the other model either has no records the kernel reads (its functions cannot be traced
    /// or livepatched) or records ftrace_init refuses with <c>ftrace_bug</c> and disables tracing. One diagnostic.
    /// </summary>
    public static IEnumerable<Diagnostic> FtraceModelMismatch(ElfImage image, LoaderOptions options)
    {
        if (options.KernelFtrace == FtraceSiteKind.Unknown) yield break;
        var kind = FtraceSites.Of(image);
        if (kind == FtraceSiteKind.Unknown || kind == options.KernelFtrace) yield break;
        string table = kind == FtraceSiteKind.MprofileKernel ? FtraceSites.McountTable : FtraceSites.PatchableTable;
        yield return new Diagnostic(DiagnosticCatalog.FtraceModelMismatch,
            $"the module's functions are traced by {FtraceSites.Describe(kind)}, listed in {table}; the kernel is " +
            $"built for {FtraceSites.Describe(options.KernelFtrace)} and would not find them where it looks: they " +
            "could not be traced, and a livepatch of them could never be attached",
            image.Path, table,
            Fix: $"Compile the module with the compiler and flags the kernel was built with ({FtraceSites.Flags(
                options.KernelFtrace)}): run kbuild against KernelDir with the kernel's own CROSS_COMPILE, in the " +
                "environment that built the kernel.");
    }

    /// <summary>
    /// The loader reads a module's ftrace records from the first section of their table's name only
    /// (<c>section_objs</c> in kernel/module/main.c), and out of line (7.x) reserves one stub per record of that
    /// section (<c>module_frob_arch_sections</c>); kbuild's module.lds gathers the records into one. A finished module
    /// (it has <c>.gnu.linkonce.this_module</c>) linked otherwise leaves the functions recorded in the other sections
    /// untraceable — a livepatch of one of them is never attached, and an out-of-line kernel has no stub for them.
    /// </summary>
    public static IEnumerable<Diagnostic> FtraceRecordsSplit(ElfImage image)
    {
        if (!image.Sections.Any(s => s.Name == ".gnu.linkonce.this_module")) yield break;
        foreach (string table in new[] { FtraceSites.McountTable, FtraceSites.PatchableTable })
        {
            var sections = image.Sections.Where(s => s.Name == table && s.HasFileData).ToList();
            if (sections.Count < 2) continue;
            ulong first = sections[0].Size / 8, rest = sections.Skip(1).Aggregate(0UL, (sum, s) => sum + s.Size / 8);
            yield return new Diagnostic(DiagnosticCatalog.FtraceRecordsSplit,
                $"the module's ftrace records are in {sections.Count} {table} sections; the kernel reads the first " +
                $"({first} record{(first == 1 ? "" : "s")}) and never the other {rest}: those functions could not " +
                "be traced, " +
                "a livepatch of them would never be attached, and an out-of-line kernel reserves no stub for them",
                image.Path, table,
                Fix: $"Link the module with kbuild (scripts/module.lds gathers every {table} into one section), or " +
                    "with a linker script that does the same.");
        }
    }

    /// <summary>
    /// A finished module (it has <c>.gnu.linkonce.this_module</c>) with livepatch symbols must say it is a livepatch:
    /// without <c>livepatch=Y</c> in <c>.modinfo</c> (<c>MODULE_INFO(livepatch, "Y")</c>) the loader keeps no copy of
    /// its ELF sections for later objects' livepatch relocations, and klp_enable_patch() refuses it ("module … is not
    /// marked as a livepatch module"), so loading fails in its init function.
    /// </summary>
    private static Diagnostic? NotMarkedAsLivepatch(ElfImage image)
    {
        if (IsMarkedLivepatch(image) != false) return null;
        return new Diagnostic(DiagnosticCatalog.NotMarkedLivepatch,
            "the module has livepatch symbols but its .modinfo has no livepatch=Y; the kernel would refuse to enable " +
            "it: livepatch: module is not marked as a livepatch module",
            image.Path, ".modinfo",
            Fix: "Add MODULE_INFO(livepatch, \"Y\"); to the patch source, as every livepatch module does.");
    }

    /// <summary>
    /// Whether a finished module (it has <c>.gnu.linkonce.this_module</c>) says <c>livepatch=Y</c> in <c>.modinfo</c>;
    /// null for an object before kbuild's final link, which has no <c>.modinfo</c> of its own yet.
    /// </summary>
    public static bool? IsMarkedLivepatch(ElfImage image)
    {
        if (!image.Sections.Any(s => s.Name == ".gnu.linkonce.this_module")) return null;
        var modinfo = image.Sections.FirstOrDefault(s => s.Name == ".modinfo" && s.HasFileData);
        return modinfo is not null
            && System.Text.Encoding.ASCII.GetString(image.Data(modinfo)).Split('\0').Contains("livepatch=Y");
    }

    /// <summary>Livepatch relocation sections and symbols must have the form the livepatch core parses.</summary>
    public static IEnumerable<Diagnostic> LivepatchFormat(ElfImage image, LoaderOptions options)
    {
        if (options.KernelHasLivepatch == false && IsMarkedLivepatch(image) == true)
            yield return new Diagnostic(DiagnosticCatalog.KernelWithoutLivepatch,
                $"the module is a livepatch (livepatch=Y in .modinfo), and the target kernel is built without " +
                "CONFIG_LIVEPATCH; it would refuse it: " +
                $"{options.ModuleNameFor(image.Path)}: module is marked as livepatch module, but livepatch support " +
                    "is disabled",
                image.Path, ".modinfo",
                Fix: "Build against the tree of a kernel with CONFIG_LIVEPATCH=y (KernelDir): livepatches load only " +
                    "there.");
        foreach (var rs in image.RelocationSections.Where(r => r.IsLivepatch))
        {
            var s = rs.Section;
            var problems = new List<string>();
            if (!KlpNames.IsValidRelaSectionName(s.Name))
                problems.Add("its name does not have the form .klp.rela.<object>.<section> (object name 1–55 " +
                    "characters without '.')");
            if ((s.Flags & ShfRelaLivepatch) == 0)
                problems.Add("it lacks SHF_RELA_LIVEPATCH (0x00100000), so the module loader would apply it at load " +
                    "time against unresolved livepatch symbols");
            if ((s.Flags & ShfAlloc) == 0)
                problems.Add("it lacks SHF_ALLOC, so it is not kept for the livepatch core to apply");
            if (problems.Count > 0)
                yield return new Diagnostic(DiagnosticCatalog.MalformedKlpRelaSection,
                    $"livepatch relocation section {s.Name} is malformed: {string.Join("; ", problems)}",
                    image.Path, s.Name,
                    Fix: "Emit livepatch relocations as kpatch's create-klp-module does: SHT_RELA named " +
                        ".klp.rela.<object>.<section> with SHF_ALLOC|SHF_INFO_LINK|SHF_RELA_LIVEPATCH.");
        }

        if (!image.Symbols.Any(s => s.IsLivepatch)) yield break;
        if (NotMarkedAsLivepatch(image) is { } unmarked) yield return unmarked;
        var referenced = image.RelocationSections.SelectMany(r => r.Entries).Select(e => e.SymbolIndex).ToHashSet();
        foreach (var sym in image.Symbols.Where(s => s.IsLivepatch && referenced.Contains((uint)s.Index)))
        {
            if (!KlpNames.TryParseSymbol(sym.Name, out _, out _, out _))
                yield return new Diagnostic(DiagnosticCatalog.MalformedKlpSymbol,
                    $"symbol '{sym.Name}' is SHN_LIVEPATCH but its name does not have the form " +
                    ".klp.sym.<object>.<name>,<position>; " +
                    "the livepatch core would refuse it (\"symbol has an incorrectly formatted name\")",
                    image.Path, Callee: sym.Name,
                    Fix: "Name livepatch symbols .klp.sym.<object>.<symbol>,<sympos>, e.g. " +
                        ".klp.sym.vmlinux.saved_command_line,0.");
        }
    }
}
