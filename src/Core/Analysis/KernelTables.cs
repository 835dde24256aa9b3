using PpcLivepatch.Elf;
using PpcLivepatch.Ppc64;

namespace PpcLivepatch.Analysis;

/// <summary>Facts about the kernel's tables of code addresses that tools moving code must know.</summary>
public static class KernelTables
{
    /// <summary>
    /// How far a relocation's addend reaches past the code address it names. The kernel's feature-fixup tables store
    /// <c>label - entry</c>: a 48-byte <c>__ftr_fixup</c>-style entry holds four such offsets at +16…+40, so each REL64's
    /// addend is the label plus the field's distance from the entry (the "+16…+40 anchor"); the one-word fixup tables
    /// (<c>__lwsync_fixup</c>, <c>__*_flush_fixup</c> …) and everything else name the label itself. Null: unknown layout.
    /// </summary>
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

}
