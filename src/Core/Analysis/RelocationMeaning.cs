using PpcLivepatch.Elf;
using PpcLivepatch.Ppc64;

namespace PpcLivepatch.Analysis;

/// <summary>
/// What code address a relocation names, as its consumer reads it: S + A − anchor. Moving code is only sound for a
/// relocation whose anchor is known; the editor that moves code and the validator that checks it use this one rule.
/// </summary>
public static class RelocationMeaning
{
    /// <summary>A word relative to its own place (S + A − P): it names "that code" only where its reader adds P
    /// back.</summary>
    public static bool IsPlaceRelative(uint type) =>
        type is R.PPC64_REL32 or R.PPC64_REL64 or R.PPC64_REL14 or R.PPC64_REL24
        or R.PPC64_REL24_NOTOC or R.PPC64_REL16 or R.PPC64_REL16_LO or R.PPC64_REL16_HI or R.PPC64_REL16_HA;

    /// <summary>Sections whose readers add a place-relative word's place back: the kernel's tables, unwind and debug
    /// information.</summary>
    public static bool AddsPlaceBack(string section) =>
        KernelTables.Find(section) is { PlaceRelative: true } || section == ".eh_frame"
        || section.StartsWith(".debug_", StringComparison.Ordinal);

    /// <summary>
    /// How far a relocation's addend reaches past the code address of <paramref name="codeSection"/> it names: a kernel
    /// table's field anchor, a proven jump table word's distance from its base, 0 for plain addresses. Null when the
    /// meaning is not known (a data word relative to its own place in a section no known reader owns, such as a
    /// clang jump table whose proof failed) — then the code it names must not move.
    /// </summary>
    public static ulong? Anchor(ElfSection relocated, ElfRela rela, int codeSection, JumpTableAnalysis tables)
    {
        if (tables.EntryAnchor(codeSection, relocated.Index, rela.Offset) is { } entry) return entry;
        // Branches (REL24/REL14) inside code name their target; other place-relative words need a known reader.
        bool branch = relocated.IsExecutable && rela.Type is R.PPC64_REL24 or R.PPC64_REL24_NOTOC or R.PPC64_REL14;
        if (IsPlaceRelative(rela.Type) && !branch && !AddsPlaceBack(relocated.Name)) return null;
        return KernelTables.AnchorOf(relocated.Name, rela);
    }
}
