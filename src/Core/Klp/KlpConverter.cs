using PpcLivepatch.Analysis;
using PpcLivepatch.Diagnostics;
using PpcLivepatch.Elf;
using static PpcLivepatch.Elf.ElfConstants;

namespace PpcLivepatch.Klp;

/// <summary>
/// A symbol that lives in the running kernel (or in a module) rather than in the livepatch module:
/// <paramref name="Symbol"/> is its name in our object, <paramref name="Object"/> is <c>vmlinux</c> or the module's
/// name, <paramref name="Name"/> its name there, <paramref name="Position"/> its kallsyms position among duplicates.
/// </summary>
public sealed record KlpSymbolSpec(string Symbol, string Object = "vmlinux", string? Name = null, ulong Position = 0)
{
    public string TargetName => Name ?? Symbol;
    public string KlpName => $"{KlpNames.SymPrefix}{Object}.{TargetName},{Position}";
}

public sealed record KlpConversion(byte[] Output, IReadOnlyList<Diagnostic> Diagnostics, int RelocationsMoved,
    IReadOnlyList<string> DroppedSections)
{
    public bool Succeeded => Diagnostics.All(d => d.Severity != Severity.Error);
}

/// <summary>
/// Binds references to <see cref="KlpSymbolSpec"/> symbols through livepatch relocations
/// (Documentation/livepatch/module-elf-format.rst), on a linked module object — <c>ld -r</c> would fold
/// <c>.klp.rela.*</c> sections back into ordinary ones and turn SHN_LIVEPATCH symbols into undefined ones, so this
/// runs after linking, as kpatch's create-klp-module does.
/// <list type="bullet">
/// <item>An undefined symbol (klp-convert's case) becomes <c>.klp.sym.&lt;obj&gt;.&lt;name&gt;,&lt;pos&gt;</c> with
/// SHN_LIVEPATCH, and its relocations in allocated sections move to
/// <c>.klp.rela.&lt;obj&gt;.&lt;section&gt;</c>.</item>
/// <item>A function defined here (kpatch's case: an unchanged static helper copied into the patched file) is dropped —
/// its own function section with its relocations and symbols — and every reference to it is bound to a new
/// livepatch symbol for the original. GCC compiled the calls to it as local calls without a nop, so Patch must run
/// next. Debug-section relocations into the dropped copy are removed; they carry no meaning for the original.</item>
/// </list>
/// </summary>
public static class KlpConverter
{
    private const ulong KlpRelaFlags = ShfAlloc | ShfInfoLink | ShfRelaLivepatch;

    public static KlpConversion Convert(ElfImage image, IReadOnlyList<KlpSymbolSpec> specs)
    {
        var diagnostics = new List<Diagnostic>();
        var functions = new FunctionMap(image);
        var plans = new List<(KlpSymbolSpec Spec, ElfSymbol Symbol, ElfSection? Dropped)>();
        foreach (var spec in specs)
        {
            if (Plan(image, functions, spec, diagnostics) is { } plan) plans.Add(plan);
        }
        if (plans.Count == 0 || diagnostics.Any(d => d.Severity == Severity.Error))
            return new KlpConversion(image.Bytes.ToArray(), diagnostics, 0, []);

        try
        {
            return Apply(image, plans, diagnostics);
        }
        catch (Exception e) when (e is ElfRewriteException or NotSupportedException or InvalidOperationException)
        {
            diagnostics.Add(Diagnostic.Create(DiagnosticCatalog.CannotRewrite, image.Path,
                $"the object cannot be rewritten, so no KlpSymbol was converted: {e.Message}"));
            return new KlpConversion(image.Bytes.ToArray(), diagnostics, 0, []);
        }
    }

    private static KlpConversion Apply(ElfImage image,
        List<(KlpSymbolSpec Spec, ElfSymbol Symbol, ElfSection? Dropped)> plans, List<Diagnostic> diagnostics)
    {
        var container = ElfContainer.Load(image);
        // Which symbol indices (and, for dropped copies, which section symbols) each spec replaces.
        var replaced = new Dictionary<uint, (int NewSymbol, long AddendShift, KlpSymbolSpec Spec)>();
        var dropped = new HashSet<int>();
        foreach (var (spec, symbol, section) in plans)
        {
            if (section is null)
            {
                container.RebindSymbol(symbol.Index, spec.KlpName, ShnLivepatch);
                replaced[(uint)symbol.Index] = (symbol.Index, 0, spec);
                continue;
            }
            int klp = container.AddGlobalSymbol(spec.KlpName, ShnLivepatch, SttFunc);
            dropped.Add(section.Index);
            foreach (var s in image.Symbols.Where(s => s.IsInSection && s.SectionIndex == (uint)section.Index))
                // A section symbol plus addend A names the copy's byte A; the livepatch symbol's value is the
                // original's
                // start (kallsyms gives its global entry), which is the copy's symbol value.
                replaced[(uint)s.Index] = (klp, s.Index == symbol.Index ? 0 : -(long)symbol.Value + (long)s.Value,
                    spec);
        }

        int moved = 0;
        var klpSections = new Dictionary<(string Object, int Target), int>();
        foreach (var rs in image.RelocationSections)
        {
            if (dropped.Contains(rs.Target.Index)) continue; // goes with its section
            var remove = new HashSet<int>();
            bool IntoDroppedCopy(ElfRela rela) =>
                replaced.ContainsKey(rela.SymbolIndex)
                    && image.Symbols[(int)rela.SymbolIndex] is { IsInSection: true } sym
                    && dropped.Contains((int)sym.SectionIndex);
            // The copy's records in the kernel's tables (its ftrace call site, exception and bug entries, jump labels)
            // go with the copy: bound to the original they would make the kernel treat vmlinux code as this module's.
            bool table = KernelTables.IsRecordTable(rs.Target.Name);
            var layout = table ? KernelTables.LayoutOf(rs.Target.Name, rs.Target.Size, rs.Entries) : null;
            var goneRecords = layout is null ? [] : rs.Entries.Where(r =>
                r.Offset % (ulong)layout.Size == (ulong)layout.AddressField && IntoDroppedCopy(r))
                .Select(r => r.Offset / (ulong)layout.Size).ToHashSet();
            // Records that stay move down over the ones cut out, and so do their relocations that become livepatch
            // ones.
            ulong Packed(ulong offset) =>
                layout is null ? offset : offset - (ulong)goneRecords.Count(g =>
                    g < offset / (ulong)layout.Size) * (ulong)layout.Size;
            for (int i = 0; i < rs.Entries.Count; i++)
            {
                var rela = rs.Entries[i];
                // goes with its record
                if (layout is not null && goneRecords.Contains(rela.Offset / (ulong)layout.Size)) continue;
                if (!replaced.TryGetValue(rela.SymbolIndex, out var r)) continue;
                bool droppedTarget = IntoDroppedCopy(rela);
                if (droppedTarget && table)
                {
                    diagnostics.Add(NotSeparable(image, rs, rela, r.Spec, layout is null
                        ? "its layout is not one the converter knows, so the record cannot be cut out"
                        : "the record describes code that stays in the module"));
                    continue;
                }
                if (!rs.Target.IsAlloc)
                {
                    // Debug information about the dropped copy: nothing to bind it to.
                    if (droppedTarget) remove.Add(i);
                    continue;
                }
                if (rs.IsLivepatch) continue; // already a livepatch relocation
                var key = (r.Spec.Object, rs.Target.Index);
                if (!klpSections.TryGetValue(key, out int klpRela))
                    klpSections[key] = klpRela =
                        container.AddRelocationSection($"{KlpNames.RelaPrefix}{r.Spec.Object}.{rs.Target.Name}",
                            rs.Target.Index, KlpRelaFlags);
                container.AddRelocation(klpRela, Packed(rela.Offset), rela.Type, r.NewSymbol,
                    rela.Addend + r.AddendShift);
                remove.Add(i);
                moved++;
            }
            if (goneRecords.Count > 0) DropTableEntries(image, container, rs, goneRecords, layout!.Size, remove);
            if (remove.Count > 0) container.RemoveRelocations(rs.Section.Index, remove.Contains);
        }

        if (diagnostics.Any(d => d.Severity == Severity.Error))
            return new KlpConversion(image.Bytes.ToArray(), diagnostics, 0, []);
        var droppedNames = new List<string>();
        if (dropped.Count > 0)
        {
            var doomed = new HashSet<int>(dropped);
            foreach (var rs in image.RelocationSections.Where(r => dropped.Contains(r.Target.Index)))
                doomed.Add(rs.Section.Index);
            droppedNames.AddRange(dropped.Select(i => image.Sections[i].Name));
            container.RemoveSections(doomed);
        }
        byte[] output = container.Save();
        // As in the patcher: what the ELF library writes must still parse, or nothing is written.
        if (!ElfImage.TryParse(image.Path, output, out _, out var error))
            throw new ElfRewriteException($"the rewritten object would be malformed ({error!.Message})");
        return new KlpConversion(output, diagnostics, moved, droppedNames);
    }

    private static Diagnostic NotSeparable(ElfImage image, ElfRelocationSection rs, ElfRela rela, KlpSymbolSpec spec,
        string why) =>
        new(DiagnosticCatalog.KlpCopyNotSeparable,
            $"{rs.Target.Name} records an address inside the copy of '{spec.Symbol}' that is being dropped, and " +
                $"{why}; binding it to the original would make the kernel treat code in {spec.Object} as this module's",
            image.Path, rs.Target.Name, rela.Offset, Callee: spec.Symbol,
            Fix: "Build the livepatch without such records for the copied helper, or do not declare the helper as a " +
                "KlpSymbol.");

    /// <summary>
    /// Removes whole records of a table of fixed-size records (an <c>__mcount_loc</c> address per <c>bl _mcount</c>, an
    /// <c>__ex_table</c> pair per faulting instruction …): their bytes, their relocations, and the gap — later
    /// relocations move down. The kernel must not be told about code of a copy that is no longer in the module.
    /// </summary>
    private static void DropTableEntries(ElfImage image, ElfContainer container, ElfRelocationSection rs,
        HashSet<ulong> goneRecords, int recordSize, HashSet<int> remove)
    {
        var data = image.Data(rs.Target);
        var kept = new List<byte>(data.Length);
        for (int at = 0; at + recordSize <= data.Length; at += recordSize)
            if (!goneRecords.Contains((ulong)(at / recordSize))) kept.AddRange(data.Slice(at, recordSize).ToArray());
        container.SetSectionData(rs.Target.Index, [.. kept]);
        for (int i = 0; i < rs.Entries.Count; i++)
        {
            ulong offset = rs.Entries[i].Offset, record = offset / (ulong)recordSize;
            if (goneRecords.Contains(record)) { remove.Add(i); continue; }
            ulong below = (ulong)goneRecords.Count(g => g < record);
            if (below > 0 && !remove.Contains(i)) container.SetRelocationOffset(rs.Section.Index, i,
                offset - below * (ulong)recordSize);
        }
    }

    private static (KlpSymbolSpec, ElfSymbol, ElfSection?)? Plan(ElfImage image, FunctionMap functions,
        KlpSymbolSpec spec, List<Diagnostic> diagnostics)
    {
        void Error(string code, string message, string fix) =>
            diagnostics.Add(new Diagnostic(code, message, image.Path, Callee: spec.Symbol, Fix: fix));

        if (spec.Object.Length is 0 or > 55 || spec.Object.Contains('.') || spec.TargetName.Contains(',')
            || spec.TargetName.Length is 0 or > 511)
        {
            Error(DiagnosticCatalog.BadKlpSymbolItem, $"KlpSymbol '{spec.Symbol}' cannot be named {spec.KlpName}: " +
                "the object name must be 1–55 characters without '.', the symbol name 1–511 characters without ','",
                "Set Object to vmlinux or the module's name (e.g. nfsd), and Name to the symbol's name in that " +
                "object.");
            return null;
        }
        var candidates = image.Symbols.Where(s =>
            s.Name == spec.Symbol && s.Index > 0 && s.Type != SttSection && s.Type != SttFile).ToList();
        if (candidates.Count == 0)
        {
            var clones = image.Symbols.Where(s =>
                s.Type == SttFunc && s.IsInSection && KlpNames.IsGccCloneOf(s.Name, spec.Symbol))
                .Select(s => s.Name).Distinct().ToList();
            diagnostics.Add(clones.Count == 0
                ? new Diagnostic(DiagnosticCatalog.KlpSymbolNotFound,
                    $"KlpSymbol '{spec.Symbol}' does not occur in this object; nothing to convert", image.Path,
                        Callee: spec.Symbol,
                    Fix: "Remove the KlpSymbol item, or check its spelling against the object's symbol table.")
                // The usual surprise in a livepatch: GCC specialised the copied helper, so the calls go to a clone with
                // another signature that stays in the module, and the original is never called.
                : new Diagnostic(DiagnosticCatalog.KlpSymbolNotFound,
                    $"KlpSymbol '{spec.Symbol}' does not occur in this object: GCC specialised the copy into " +
                        $"{string.Join(", ", clones)}, and the patch calls that clone, which stays in the module",
                    image.Path, Callee: spec.Symbol,
                    Fix: "Declare the copy __attribute__((noipa)) in the patch source so the calls go to " +
                        $"'{spec.Symbol}' itself, or, if the original object has the same clone (its name in " +
                            "/proc/kallsyms), bind that: <KlpSymbol " +
                                $"Include=\"{clones.FirstOrDefault(c => !c.Contains(".cold")) ?? clones[0]}\" />."));
            return null;
        }
        var defined = candidates.FirstOrDefault(s => s.IsInSection);
        if (defined is null)
        {
            var undefined = candidates.First();
            return undefined.IsUndefined ? (spec, undefined, null) : null; // already SHN_LIVEPATCH: nothing to do
        }
        if (defined.Type != SttFunc)
        {
            Error(DiagnosticCatalog.KlpDefinedSymbolNotAFunction, $"KlpSymbol '{spec.Symbol}' is defined in this " +
                "object as data; only a copied function can be dropped and bound to the original",
                "Declare the variable extern in the patch source, so the object refers to it undefined.");
            return null;
        }
        var function = functions.All.FirstOrDefault(f => f.Symbol.Index == defined.Index);
        var section = function is null ? null : image.Sections[function.SectionIndex];
        var others = section is null ? [] : functions.InSection(section.Index).Where(f =>
            f.Name != spec.Symbol).Select(f => f.Name).ToList();
        if (section is null || others.Count > 0 || image.Abi == Ppc64.PpcAbi.ElfV1)
        {
            string why = section is null ? "no code range was found for it"
                : image.Abi == Ppc64.PpcAbi.ElfV1 ? "ELFv1 function descriptors (.opd) are not converted yet"
                : $"its section {section.Name} also holds {string.Join(", ", others)}";
            Error(DiagnosticCatalog.KlpCopyNotSeparable, $"KlpSymbol '{spec.Symbol}' is defined in this object, and " +
                $"its copy cannot be dropped: {why}",
                "Compile with -ffunction-sections, so each function is alone in its section and the copy can be " +
                    "removed.");
            return null;
        }
        // Calls GCC sent to a specialised clone of the copy keep running the module's clone, not the original.
        var staying = image.Symbols.Where(s =>
            s.Type == SttFunc && s.IsInSection && KlpNames.IsGccCloneOf(s.Name, spec.Symbol)
                && !s.Name.Contains(".cold"))
            .Select(s => s.Name).Distinct().ToList();
        if (staying.Count > 0)
            diagnostics.Add(new Diagnostic(DiagnosticCatalog.KlpCopyHasClones,
                $"KlpSymbol '{spec.Symbol}': the copy is dropped, but GCC also made {string.Join(", ", staying)} of " +
                    "it, and the calls that go there keep running that clone in the module instead of the original",
                image.Path, Callee: spec.Symbol,
                Fix: "Declare the copy __attribute__((noipa)) in the patch source, so that every call goes to " +
                    $"'{spec.Symbol}' itself."));
        return (spec, defined, section);
    }
}
