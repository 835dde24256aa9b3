using PpcLivepatch.Elf;
using PpcLivepatch.Ppc64;

namespace PpcLivepatch.Analysis;

/// <summary>What a livepatch object does with a table's entries that name the functions it carries.</summary>
public enum TableEntries
{
    /// <summary>Entry by entry: the entries of included code come along, the others stay behind.</summary>
    Carried,
    /// <summary>Nothing to carry: the kernel's linker script discards the section.</summary>
    Discarded,
    /// <summary>A table the diff does not know how to cut: a change that has entries in it is refused
    /// (PLP5008).</summary>
    Refused,
    /// <summary>The carried functions' entries are left out, with a note (PLP4005): the kernel does not read the table
    /// from a module (<see cref="KernelTable.WhyLeftOut"/> says why).</summary>
    LeftOut,
    /// <summary>Not a table of records: its slots go with the code that loads them (a carried function's slots are
    /// carried one by one), and a slot of code that stays in the kernel stays with it, even when it holds a changed
    /// function's address.</summary>
    Slots,
}

/// <summary>How a table's section is named by the kernel.</summary>
public enum TableName
{
    Exact,
    Prefix,
    Suffix,
}

/// <summary>How far a field's addend reaches past the code address it names (the field's anchor).</summary>
public enum FieldAnchor
{
    /// <summary>The field names the code address itself.</summary>
    None,
    /// <summary>A 48-byte feature-fixup entry: mask, value, then four <c>label - entry</c> offsets at +16…+40, so
    /// each REL64's addend is the label plus the field's distance from the entry.</summary>
    FeatureFixupEntry,
    /// <summary>One-word fixup entries (<c>__lwsync_fixup</c>, the <c>*_flush_fixup</c>s): one REL64 naming the
    /// label.</summary>
    OneWordFixup,
}

/// <summary>A fixed layout of a table's entries: its size and its relocated fields (offset, type); the field at
/// offset 0 names the entry's code address.</summary>
public sealed record EntryLayout(int Size, params (int Offset, uint Type)[] Fields);

/// <summary>
/// One kernel table of records about code (after kpatch's <c>special_sections[]</c>): where its entries go in a
/// livepatch object, how big they are (fixed <see cref="Layouts"/>, or derived from the relocations with at least
/// <see cref="FieldsPerEntry"/> relocated fields each), how its fields' addends read, and which of its references the
/// loader resolves. To add a table: one entry in <see cref="KernelTables.All"/> (docs/architecture.md).
/// </summary>
/// <param name="Holds">What the kernel keeps in it, for people reading the catalog.</param>
public sealed record KernelTable(string Name, string Holds)
{
    public TableName Match { get; init; } = TableName.Exact;
    public TableEntries Entries { get; init; } = TableEntries.Carried;
    /// <summary>The layouts the kernel lines use, when fixed: the Klp converter cuts a dropped copy's entries out
    /// only of a table whose contents fit one.</summary>
    public IReadOnlyList<EntryLayout> Layouts { get; init; } = [];
    /// <summary>Relocated fields every entry has: relocations alone cannot tell an 8-byte exception entry (insn,
    /// fixup) from two 4-byte ones, and a wrong, smaller size would carry half an entry.</summary>
    public int FieldsPerEntry { get; init; } = 1;
    /// <summary>The kernel keeps the module's entries and finds them by code address (ftrace, exceptions, jump
    /// labels, bugs): an entry must name the module's own code, never the kernel's.</summary>
    public bool LookedUpByAddress { get; init; }
    /// <summary>Its place-relative fields are read with their place added back.</summary>
    public bool PlaceRelative { get; init; }
    public FieldAnchor Anchor { get; init; } = FieldAnchor.None;
    /// <summary>Its references outside the object are keys the loader resolves when the module loads (jump
    /// labels), before the livepatch core binds its symbols: they must be exported.</summary>
    public bool ExternalsResolvedAtLoad { get; init; }
    /// <summary>For <see cref="TableEntries.LeftOut"/>: why leaving the entries out changes nothing.</summary>
    public string? WhyLeftOut { get; init; }

    public bool Names(string section) => Match switch
    {
        TableName.Prefix => section.StartsWith(Name, StringComparison.Ordinal),
        TableName.Suffix => section.EndsWith(Name, StringComparison.Ordinal),
        _ => section == Name,
    };
}

/// <summary>The catalog of the kernel's tables of code addresses that tools moving or carrying code must
/// know.</summary>
public static class KernelTables
{
    private static KernelTable FeatureFixup(string name, string holds) => new(name, holds)
    {
        PlaceRelative = true, Anchor = FieldAnchor.FeatureFixupEntry, FieldsPerEntry = 4,
    };

    private static KernelTable OneWordFixup(string name, string holds) => new(name, holds)
    {
        PlaceRelative = true, Anchor = FieldAnchor.OneWordFixup,
    };

    // ppc64, Linux 6.1: __mcount_loc holds ftrace call sites (ADDR64); __ex_table {insn, fixup} as REL32 pairs;
    // __jump_table {code, target, key} as REL32, REL32, REL64; __bug_table {bug_addr, [file,] line, flags} with
    // relative pointers, 12 bytes with CONFIG_DEBUG_BUGVERBOSE and 8 without — told apart by the relocations.
    public static IReadOnlyList<KernelTable> All { get; } =
    [
        new("__mcount_loc", "ftrace call sites (-mprofile-kernel's bl _mcount)")
        {
            LookedUpByAddress = true, PlaceRelative = true, Layouts = [new(8, (0, R.PPC64_ADDR64))],
        },
        new("__patchable_function_entries", "ftrace sites (-fpatchable-function-entry's nops)")
        {
            LookedUpByAddress = true, PlaceRelative = true, Layouts = [new(8, (0, R.PPC64_ADDR64))],
        },
        new("__bug_table", "BUG()/WARN() sites")
        {
            LookedUpByAddress = true, PlaceRelative = true,
            Layouts = [new(12, (0, R.PPC64_REL32), (4, R.PPC64_REL32)), new(8, (0, R.PPC64_REL32))],
        },
        new("__ex_table", "exception fixups of user accesses {insn, fixup}")
        {
            LookedUpByAddress = true, PlaceRelative = true, FieldsPerEntry = 2,
            Layouts = [new(8, (0, R.PPC64_REL32), (4, R.PPC64_REL32))],
        },
        new("__jump_table", "static branches {code, target, key}")
        {
            LookedUpByAddress = true, PlaceRelative = true, FieldsPerEntry = 3, ExternalsResolvedAtLoad = true,
            Layouts = [new(16, (0, R.PPC64_REL32), (4, R.PPC64_REL32), (8, R.PPC64_REL64))],
        },
        new("__dyndbg", "dynamic debug call sites (pr_debug's descriptors)"),
        new("__verbose", "dynamic debug call sites, as kernels before 5.x named the section"),
        FeatureFixup("__ftr_fixup", "CPU feature alternatives"),
        FeatureFixup("__mmu_ftr_fixup", "MMU feature alternatives"),
        FeatureFixup("__fw_ftr_fixup", "firmware feature alternatives"),
        OneWordFixup("__lwsync_fixup", "lwsync sites patched on CPUs without it"),
        OneWordFixup("__stf_entry_barrier_fixup", "store-forwarding barriers at kernel entry"),
        OneWordFixup("__stf_exit_barrier_fixup", "store-forwarding barriers at kernel exit"),
        OneWordFixup("__rfi_flush_fixup", "L1D flushes at return from interrupt"),
        OneWordFixup("__barrier_nospec_fixup", "speculation barriers (barrier_nospec)"),
        OneWordFixup("__btb_flush_fixup", "branch target buffer flushes"),
        OneWordFixup("__entry_flush_fixup", "L1D flushes at kernel entry"),
        OneWordFixup("__uaccess_flush_fixup", "L1D flushes after user accesses"),
        OneWordFixup("__scv_entry_flush_fixup", "L1D flushes at scv entry"),
        new(".eh_frame", "call-frame information")
        {
            Entries = TableEntries.LeftOut,
            WhyLeftOut = "the kernel unwinds ppc64 code by the stack's back chain, never by a module's .eh_frame " +
                "(kbuild compiles modules with -fno-asynchronous-unwind-tables)",
        },
        new(".toc", "the TOC's address slots (-mcmodel=large: every address the code loads)")
        {
            Entries = TableEntries.Slots,
        },
        new(".discard", "what the kernel's linker script throws away")
        {
            Match = TableName.Prefix, Entries = TableEntries.Discarded,
        },
        // Any other fixup table reads as the one-word kind, but its entries are not carried: its layout is a guess.
        OneWordFixup("_fixup", "fixup sites of a kind this catalog does not list") with
        {
            Match = TableName.Suffix, Entries = TableEntries.Refused,
        },
    ];

    /// <summary>The catalog's entry for a section: an exact name first, then a name pattern; null when the section
    /// is not a kernel table.</summary>
    public static KernelTable? Find(string section) =>
        All.FirstOrDefault(t => t.Match == TableName.Exact && t.Names(section))
            ?? All.FirstOrDefault(t => t.Match != TableName.Exact && t.Names(section));

    /// <summary>
    /// How far a relocation's addend reaches past the code address it names: the field's distance from its entry in
    /// a feature-fixup entry (+16…+40), 0 for the one-word fixups and everything else. Null: a field of a fixup table
    /// that is not one its layout has.
    /// </summary>
    public static ulong? AnchorOf(string section, ElfRela rela)
    {
        switch (Find(section)?.Anchor)
        {
            case FieldAnchor.FeatureFixupEntry:
                ulong field = rela.Offset % 48;
                return rela.Type == R.PPC64_REL64 && field is 16 or 24 or 32 or 40 ? field : null;
            case FieldAnchor.OneWordFixup:
                return rela.Type == R.PPC64_REL64 && rela.Offset % 8 == 0 ? 0 : null;
            default:
                return 0;
        }
    }

    /// <summary>A record table's layout in a module: the record size, and the offset inside a record of the field
    /// naming its code address (the other fields belong to it).</summary>
    public sealed record RecordLayout(int Size, int AddressField);

    /// <summary>True for the tables of code addresses the kernel keeps for a module and looks up by address.</summary>
    public static bool IsRecordTable(string section) => Find(section)?.LookedUpByAddress == true;

    /// <summary>
    /// The layout of a record table whose contents fit one of its fixed layouts: the size divides the section, every
    /// relocation is one of a record's fields with that field's type, and every record has its address. Null when the
    /// table has no fixed layout, or its relocations do not fit any (then nothing may be cut out of it).
    /// </summary>
    public static RecordLayout? LayoutOf(string section, ulong size, IReadOnlyList<ElfRela> relocations)
    {
        foreach (var layout in Find(section)?.Layouts ?? [])
        {
            if (size % (ulong)layout.Size != 0) continue;
            bool fits = relocations.All(r => layout.Fields.Contains(((int)(r.Offset % (ulong)layout.Size), r.Type)));
            ulong addresses = (ulong)relocations.Count(r => r.Offset % (ulong)layout.Size == 0);
            if (fits && addresses == size / (ulong)layout.Size) return new RecordLayout(layout.Size, 0);
        }
        return null;
    }

    /// <summary>
    /// A table's entry size, from the table itself: the smallest size that divides it and under which every entry
    /// has the same relocations at the same places — with at least the catalog's relocated fields per entry (16- or
    /// 24-byte jump entries, 12-byte bug entries, 48-byte feature fixups: whatever the kernel that built the object
    /// used). Null when none fits.
    /// </summary>
    public static ulong? EntrySize(string table, IReadOnlyList<ElfRela> relocations, ulong tableSize) =>
        EntrySize(relocations, tableSize, Find(table)?.FieldsPerEntry ?? 1);

    public static ulong? EntrySize(IReadOnlyList<ElfRela> relocations, ulong tableSize, int fieldsPerEntry = 1)
    {
        if (relocations.Count == 0 || tableSize == 0) return null;
        for (ulong size = 4; size <= tableSize; size += 4)
        {
            if (tableSize % size != 0) continue;
            var first = Pattern(relocations, 0, size);
            if (first.Count < fieldsPerEntry) continue;
            bool same = true;
            for (ulong start = size; start < tableSize && same; start += size)
                same = Pattern(relocations, start, size).SequenceEqual(first);
            if (same) return size;
        }
        return null;
    }

    private static List<(ulong, uint)> Pattern(IReadOnlyList<ElfRela> relocations, ulong start, ulong size) =>
        relocations.Where(r => r.Offset >= start && r.Offset < start + size).Select(r => (r.Offset - start, r.Type))
            .OrderBy(x => x.Item1).ToList();
}
