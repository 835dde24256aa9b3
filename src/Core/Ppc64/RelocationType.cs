namespace PpcLivepatch.Ppc64;

/// <summary>
/// One entry of the ppc64 relocation catalog: the psABI number and name, and whether Linux's module loader
/// (<c>arch/powerpc/kernel/module_64.c</c>, <c>apply_relocate_add()</c>) knows the type. A type it does not
/// know makes the whole module fail to load with <c>Unknown ADD relocation</c>.
/// </summary>
public sealed record RelocationType(uint Number, string Name, KernelSupport Support);

/// <summary>Which kernels' module loader applies a relocation type.</summary>
[Flags]
public enum KernelSupport
{
    None = 0,
    /// <summary>Applied by TOC-based (non-PCREL) kernels, the only kind up to 6.3.</summary>
    TocKernel = 1,
    /// <summary>Applied by kernels built with CONFIG_PPC_KERNEL_PCREL (6.4 and later).</summary>
    PcrelKernel = 2,
    Both = TocKernel | PcrelKernel,
}

/// <summary>ppc64 relocation numbers from the psABI (binutils <c>include/elf/ppc64.h</c>).</summary>
public static class R
{
    public const uint PPC64_NONE = 0;
    public const uint PPC64_ADDR32 = 1;
    public const uint PPC64_ADDR24 = 2;
    public const uint PPC64_ADDR16 = 3;
    public const uint PPC64_ADDR16_LO = 4;
    public const uint PPC64_ADDR16_HI = 5;
    public const uint PPC64_ADDR16_HA = 6;
    public const uint PPC64_ADDR14 = 7;
    public const uint PPC64_REL24 = 10;
    public const uint PPC64_REL14 = 11;
    public const uint PPC64_REL14_BRTAKEN = 12;
    public const uint PPC64_REL14_BRNTAKEN = 13;
    public const uint PPC64_REL32 = 26;
    public const uint PPC64_ADDR64 = 38;
    public const uint PPC64_REL64 = 44;
    public const uint PPC64_TOC16 = 47;
    public const uint PPC64_TOC16_LO = 48;
    public const uint PPC64_TOC16_HI = 49;
    public const uint PPC64_TOC16_HA = 50;
    public const uint PPC64_TOC = 51;
    public const uint PPC64_ADDR16_DS = 56;
    public const uint PPC64_ADDR16_LO_DS = 57;
    public const uint PPC64_TOC16_DS = 63;
    public const uint PPC64_TOC16_LO_DS = 64;
    public const uint PPC64_TLSGD = 107;
    public const uint PPC64_TLSLD = 108;
    public const uint PPC64_TOCSAVE = 109;
    public const uint PPC64_REL24_NOTOC = 116;
    public const uint PPC64_ADDR64_LOCAL = 117;
    public const uint PPC64_ENTRY = 118;
    public const uint PPC64_PLTSEQ = 119;
    public const uint PPC64_PLTCALL = 120;
    public const uint PPC64_PCREL34 = 132;
    public const uint PPC64_GOT_PCREL34 = 133;
    public const uint PPC64_REL16 = 249;
    public const uint PPC64_REL16_LO = 250;
    public const uint PPC64_REL16_HI = 251;
    public const uint PPC64_REL16_HA = 252;
}

/// <summary>The relocation catalog: names for every type we print, and what the module loader applies.</summary>
public static class RelocationCatalog
{
    private static readonly Dictionary<uint, RelocationType> ByNumber = Build();

    public static RelocationType Get(uint number) =>
        ByNumber.TryGetValue(number, out var t) ? t : new RelocationType(number, $"R_PPC64_<{number}>",
            KernelSupport.None);

    public static string NameOf(uint number) => Get(number).Name;

    public static IReadOnlyCollection<RelocationType> All => ByNumber.Values;

    /// <summary>True when a kernel of the given kind applies this type to a module's allocated sections.</summary>
    public static bool IsSupportedByKernel(uint number, bool pcrelKernel) =>
        number < SupportTable.Length && (SupportTable[number] & (pcrelKernel ? KernelSupport.PcrelKernel : KernelSupport.TocKernel)) != 0;

    // Checked for every relocation of every module: an array, not a dictionary lookup.
    private static readonly KernelSupport[] SupportTable = BuildSupportTable();

    private static KernelSupport[] BuildSupportTable()
    {
        var table = new KernelSupport[256];
        foreach (var t in ByNumber.Values) table[t.Number] = t.Support;
        return table;
    }

    private static Dictionary<uint, RelocationType> Build()
    {
        // Support columns follow apply_relocate_add(): the TOC-relative forms and TOCSAVE (accepted, ignored)
        // exist only without PCREL, REL24_NOTOC/PCREL34/GOT_PCREL34 only with it.
        (uint n, string name, KernelSupport s)[] table =
        [
            (R.PPC64_NONE, "R_PPC64_NONE", KernelSupport.None),
            (R.PPC64_ADDR32, "R_PPC64_ADDR32", KernelSupport.Both),
            (R.PPC64_ADDR24, "R_PPC64_ADDR24", KernelSupport.None),
            (R.PPC64_ADDR16, "R_PPC64_ADDR16", KernelSupport.None),
            (R.PPC64_ADDR16_LO, "R_PPC64_ADDR16_LO", KernelSupport.None),
            (R.PPC64_ADDR16_HI, "R_PPC64_ADDR16_HI", KernelSupport.None),
            (R.PPC64_ADDR16_HA, "R_PPC64_ADDR16_HA", KernelSupport.None),
            (R.PPC64_ADDR14, "R_PPC64_ADDR14", KernelSupport.None),
            (R.PPC64_REL24, "R_PPC64_REL24", KernelSupport.Both),
            (R.PPC64_REL14, "R_PPC64_REL14", KernelSupport.None),
            (R.PPC64_REL14_BRTAKEN, "R_PPC64_REL14_BRTAKEN", KernelSupport.None),
            (R.PPC64_REL14_BRNTAKEN, "R_PPC64_REL14_BRNTAKEN", KernelSupport.None),
            (R.PPC64_REL32, "R_PPC64_REL32", KernelSupport.Both),
            (R.PPC64_ADDR64, "R_PPC64_ADDR64", KernelSupport.Both),
            (R.PPC64_REL64, "R_PPC64_REL64", KernelSupport.Both),
            (R.PPC64_TOC16, "R_PPC64_TOC16", KernelSupport.TocKernel),
            (R.PPC64_TOC16_LO, "R_PPC64_TOC16_LO", KernelSupport.TocKernel),
            (R.PPC64_TOC16_HI, "R_PPC64_TOC16_HI", KernelSupport.None),
            (R.PPC64_TOC16_HA, "R_PPC64_TOC16_HA", KernelSupport.TocKernel),
            (R.PPC64_TOC, "R_PPC64_TOC", KernelSupport.TocKernel),
            (R.PPC64_ADDR16_DS, "R_PPC64_ADDR16_DS", KernelSupport.None),
            (R.PPC64_ADDR16_LO_DS, "R_PPC64_ADDR16_LO_DS", KernelSupport.None),
            (R.PPC64_TOC16_DS, "R_PPC64_TOC16_DS", KernelSupport.TocKernel),
            (R.PPC64_TOC16_LO_DS, "R_PPC64_TOC16_LO_DS", KernelSupport.TocKernel),
            (R.PPC64_TLSGD, "R_PPC64_TLSGD", KernelSupport.None),
            (R.PPC64_TLSLD, "R_PPC64_TLSLD", KernelSupport.None),
            (R.PPC64_TOCSAVE, "R_PPC64_TOCSAVE", KernelSupport.TocKernel),
            (R.PPC64_REL24_NOTOC, "R_PPC64_REL24_NOTOC", KernelSupport.PcrelKernel),
            (R.PPC64_ADDR64_LOCAL, "R_PPC64_ADDR64_LOCAL", KernelSupport.None),
            (R.PPC64_ENTRY, "R_PPC64_ENTRY", KernelSupport.Both),
            (R.PPC64_PLTSEQ, "R_PPC64_PLTSEQ", KernelSupport.None),
            (R.PPC64_PLTCALL, "R_PPC64_PLTCALL", KernelSupport.None),
            (R.PPC64_PCREL34, "R_PPC64_PCREL34", KernelSupport.PcrelKernel),
            (R.PPC64_GOT_PCREL34, "R_PPC64_GOT_PCREL34", KernelSupport.PcrelKernel),
            (R.PPC64_REL16, "R_PPC64_REL16", KernelSupport.None),
            (R.PPC64_REL16_LO, "R_PPC64_REL16_LO", KernelSupport.Both),
            (R.PPC64_REL16_HI, "R_PPC64_REL16_HI", KernelSupport.None),
            (R.PPC64_REL16_HA, "R_PPC64_REL16_HA", KernelSupport.Both),
        ];
        return table.ToDictionary(e => e.n, e => new RelocationType(e.n, e.name, e.s));
    }
}
