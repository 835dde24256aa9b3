using PpcLivepatch.Dwarf;
using PpcLivepatch.Elf;
using PpcLivepatch.Ppc64;
using static PpcLivepatch.Elf.ElfConstants;

namespace PpcLivepatch.Analysis;

/// <summary>
/// Finds every call relocation (R_PPC64_REL24, R_PPC64_REL24_NOTOC) that the module loader will apply — those in
/// RELA sections, ordinary or <c>.klp.rela.*</c>, whose target section is allocated — and describes each site.
/// </summary>
public static class CallSiteScanner
{
    /// <summary>
    /// Callees whose calls need no TOC restore: ftrace entry points (the kernel's is_mprofile_ftrace_call(); with
    /// -mprofile-kernel <c>bl _mcount</c> has no nop) and the out-of-line register save/restore routines that the
    /// kernel links into every module from crtsavres.o, so they are never reached through a stub.
    /// </summary>
    public static string? ExemptionFor(string calleeName)
    {
        // The kernel's dedotify() strips ELFv1 dot-symbols' leading '.' before it looks at names.
        var name = calleeName.StartsWith('.') ? calleeName.AsSpan(1) : calleeName;
        if (name is "_mcount" or "mcount" or "ftrace_caller" or "ftrace_regs_caller")
            return "ftrace entry point: the kernel's is_mprofile_ftrace_call() needs no TOC restore";
        if (name.StartsWith("_savegpr", StringComparison.Ordinal)
            || name.StartsWith("_restgpr", StringComparison.Ordinal) ||
            name.StartsWith("_savefpr", StringComparison.Ordinal)
                || name.StartsWith("_restfpr", StringComparison.Ordinal) ||
            name.StartsWith("_savevr", StringComparison.Ordinal)
                || name.StartsWith("_restvr", StringComparison.Ordinal))
            return "register save/restore routine linked into every module from crtsavres.o";
        return null;
    }

    public static IReadOnlyList<CallSite> Scan(ElfImage image, FunctionMap functions, LineTable? lines = null) =>
        Scan(image, functions, lines, null, out _);

    /// <summary>
    /// Scans the call relocations; with <paramref name="keep"/>, describes only the ones it selects (describing a
    /// million sites costs more than reading the objects) and counts the others in <paramref name="skipped"/>.
    /// </summary>
    public static IReadOnlyList<CallSite> Scan(ElfImage image, FunctionMap functions, LineTable? lines,
        Func<ElfRelocationSection, ElfRela, ElfSymbol, bool>? keep, out int skipped)
    {
        skipped = 0;
        var sites = new List<CallSite>();
        foreach (var rs in image.RelocationSections)
        {
            if (!rs.Target.IsAlloc) continue;
            for (int i = 0; i < rs.Entries.Count; i++)
            {
                var rela = rs.Entries[i];
                if (rela.Type is not (R.PPC64_REL24 or R.PPC64_REL24_NOTOC)) continue;
                if (keep is not null && !keep(rs, rela, image.Symbols[(int)rela.SymbolIndex])) { skipped++; continue; }
                sites.Add(Describe(image, functions, lines, rs, i, rela));
            }
        }
        // Relocations nearly always come in address order already; checking that first saves sorting a million sites.
        if (!IsSorted(sites)) sites.Sort(AddressOrder);
        return sites;
    }

    private static CallSite Describe(ElfImage image, FunctionMap functions, LineTable? lines, ElfRelocationSection rs,
        int index, ElfRela rela)
    {
        var section = rs.Target;
        var symbol = image.Symbols[(int)rela.SymbolIndex];
        var data = image.Data(section);
        // A REL24 field is the whole instruction word; a site too close to the end has no word to decode.
        uint word = rela.Offset + 4 <= (ulong)data.Length ? image.ReadU32(data, (int)rela.Offset) : 0;
        uint? next = rela.Offset + 8 <= (ulong)data.Length ? image.ReadU32(data, (int)rela.Offset + 4) : null;
        uint tocRestore = AbiFacts.TocRestoreInstruction(image.Abi);
        var nextKind = next switch
        {
            null => NextWord.EndOfSection,
            Instruction.Nop => NextWord.Nop,
            var w when w == tocRestore => NextWord.TocRestore,
            _ => NextWord.Other,
        };
        return new CallSite(
            section, rs.Section, rs.IsLivepatch, index, rela, rela.Offset, rela.Type,
            functions.Containing(section.Index, rela.Offset),
            symbol, functions.Describe(symbol, rela.Addend), KindOf(symbol),
            word, Instruction.Classify(word), next, nextKind,
            symbol.IsInSection ? null : ExemptionFor(symbol.Name))
        {
            Source = lines?.Lookup(section.Index, rela.Offset),
        };
    }

    /// <summary>Sites in address order; two relocations at one address (only in malformed input) by their place in
    /// the relocation sections, so the order never depends on the sort algorithm.</summary>
    private static int AddressOrder(CallSite a, CallSite b)
    {
        int c = a.Section.Index.CompareTo(b.Section.Index);
        if (c == 0) c = a.Offset.CompareTo(b.Offset);
        if (c == 0) c = a.RelocationSection.Index.CompareTo(b.RelocationSection.Index);
        return c != 0 ? c : a.RelocationIndex.CompareTo(b.RelocationIndex);
    }

    private static bool IsSorted(List<CallSite> sites)
    {
        for (int i = 1; i < sites.Count; i++)
            if (AddressOrder(sites[i - 1], sites[i]) > 0) return false;
        return true;
    }

    public static CalleeKind KindOf(ElfSymbol symbol) => symbol switch
    {
        { IsLivepatch: true } => CalleeKind.Livepatch,
        { IsUndefined: true } => CalleeKind.Undefined,
        { Bind: StbWeak } => CalleeKind.Weak,
        { Bind: StbGlobal } => CalleeKind.Global,
        _ => CalleeKind.Local,
    };
}
