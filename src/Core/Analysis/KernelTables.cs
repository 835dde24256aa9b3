using PpcLivepatch.Elf;
using PpcLivepatch.Ppc64;

namespace PpcLivepatch.Analysis;

/// <summary>Facts about the kernel's tables of code addresses that tools moving code must know.</summary>
public static class KernelTables
{
    /// <summary> How far a relocation's addend reaches past the code address it names. The kernel's feature-fixup
    /// tables store <c>label - entry</c>: a 48-byte <c>__ftr_fixup</c>-style entry holds four such offsets at +16…+40,
    /// so each REL64's addend is the label plus the field's distance from the entry (the "+16…+40 anchor"); the
    /// one-word fixup tables (<c>__lwsync_fixup</c>, <c>__*_flush_fixup</c> …) and everything else name the label
    /// itself. Null: unknown layout. </summary>
    public static ulong? AnchorOf(string section, ElfRela rela)
    {
        if (section is "__ftr_fixup" or "__mmu_ftr_fixup" or "__fw_ftr_fixup")
        {
            ulong field = rela.Offset % 48;
            return rela.Type == R.PPC64_REL64 && field is 16 or 24 or 32 or 40 ? field : null;
        }
        if (section.EndsWith("_fixup", StringComparison.Ordinal))
            return rela.Type == R.PPC64_REL64 && rela.Offset % 8 == 0 ? 0 : null;
        return 0;
    }

    /// <summary>
    /// A kernel table of fixed-size records that each describe one code address of the module: the record size, and
    /// the offset inside a record of the field naming that address (the other fields belong to it).
    /// </summary>
    public sealed record RecordLayout(int Size, int AddressField);

    // ppc64, Linux 6.1: __mcount_loc holds ftrace call sites (ADDR64); __ex_table {insn, fixup} as REL32 pairs;
    // __jump_table {code, target, key} as REL32, REL32, REL64; __bug_table {bug_addr, [file,] line, flags} with
    // relative pointers, 12 bytes with CONFIG_DEBUG_BUGVERBOSE and 8 without — told apart by the relocations.
    private static readonly Dictionary<string, (int Size, (int Field, uint Type)[] Fields)[]> RecordTables = new()
    {
        ["__mcount_loc"] = [(8, [(0, R.PPC64_ADDR64)])],
        ["__ex_table"] = [(8, [(0, R.PPC64_REL32), (4, R.PPC64_REL32)])],
        ["__jump_table"] = [(16, [(0, R.PPC64_REL32), (4, R.PPC64_REL32), (8, R.PPC64_REL64)])],
        ["__bug_table"] = [(12, [(0, R.PPC64_REL32), (4, R.PPC64_REL32)]), (8, [(0, R.PPC64_REL32)])],
    };

    /// <summary>True for the tables of code addresses the kernel reads from a module (ftrace, exceptions, jump labels,
    /// bugs).</summary>
    public static bool IsRecordTable(string section) =>
        RecordTables.ContainsKey(section) || section == "__patchable_function_entries";

    /// <summary>
    /// The layout of a record table whose contents fit it: the size divides the section, every relocation is one of a
    /// record's fields with that field's type, and every record has its address. Null when the table is not one this
    /// knows, or its relocations do not fit any layout (then nothing may be cut out of it).
    /// </summary>
    public static RecordLayout? LayoutOf(string section, ulong size, IReadOnlyList<ElfRela> relocations)
    {
        if (!RecordTables.TryGetValue(section, out var candidates)) return null;
        foreach (var (recordSize, fields) in candidates)
        {
            if (size % (ulong)recordSize != 0) continue;
            bool fits = relocations.All(r => fields.Contains(((int)(r.Offset % (ulong)recordSize), r.Type)));
            ulong addresses = (ulong)relocations.Count(r => r.Offset % (ulong)recordSize == 0);
            if (fits && addresses == size / (ulong)recordSize) return new RecordLayout(recordSize, 0);
        }
        return null;
    }
}
