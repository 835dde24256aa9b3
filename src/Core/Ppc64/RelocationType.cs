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
        number < SupportTable.Length
            && (SupportTable[number] & (pcrelKernel ? KernelSupport.PcrelKernel : KernelSupport.TocKernel)) != 0;

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
            // The rest of the psABI (and binutils), named so that no report prints a number; the loader applies none.
            (8, "R_PPC64_ADDR14_BRTAKEN", KernelSupport.None),
            (9, "R_PPC64_ADDR14_BRNTAKEN", KernelSupport.None),
            (14, "R_PPC64_GOT16", KernelSupport.None),
            (15, "R_PPC64_GOT16_LO", KernelSupport.None),
            (16, "R_PPC64_GOT16_HI", KernelSupport.None),
            (17, "R_PPC64_GOT16_HA", KernelSupport.None),
            (19, "R_PPC64_COPY", KernelSupport.None),
            (20, "R_PPC64_GLOB_DAT", KernelSupport.None),
            (21, "R_PPC64_JMP_SLOT", KernelSupport.None),
            (22, "R_PPC64_RELATIVE", KernelSupport.None),
            (24, "R_PPC64_UADDR32", KernelSupport.None),
            (25, "R_PPC64_UADDR16", KernelSupport.None),
            (27, "R_PPC64_PLT32", KernelSupport.None),
            (28, "R_PPC64_PLTREL32", KernelSupport.None),
            (29, "R_PPC64_PLT16_LO", KernelSupport.None),
            (30, "R_PPC64_PLT16_HI", KernelSupport.None),
            (31, "R_PPC64_PLT16_HA", KernelSupport.None),
            (33, "R_PPC64_SECTOFF", KernelSupport.None),
            (34, "R_PPC64_SECTOFF_LO", KernelSupport.None),
            (35, "R_PPC64_SECTOFF_HI", KernelSupport.None),
            (36, "R_PPC64_SECTOFF_HA", KernelSupport.None),
            (37, "R_PPC64_REL30", KernelSupport.None),
            (39, "R_PPC64_ADDR16_HIGHER", KernelSupport.None),
            (40, "R_PPC64_ADDR16_HIGHERA", KernelSupport.None),
            (41, "R_PPC64_ADDR16_HIGHEST", KernelSupport.None),
            (42, "R_PPC64_ADDR16_HIGHESTA", KernelSupport.None),
            (43, "R_PPC64_UADDR64", KernelSupport.None),
            (45, "R_PPC64_PLT64", KernelSupport.None),
            (46, "R_PPC64_PLTREL64", KernelSupport.None),
            (52, "R_PPC64_PLTGOT16", KernelSupport.None),
            (53, "R_PPC64_PLTGOT16_LO", KernelSupport.None),
            (54, "R_PPC64_PLTGOT16_HI", KernelSupport.None),
            (55, "R_PPC64_PLTGOT16_HA", KernelSupport.None),
            (58, "R_PPC64_GOT16_DS", KernelSupport.None),
            (59, "R_PPC64_GOT16_LO_DS", KernelSupport.None),
            (60, "R_PPC64_PLT16_LO_DS", KernelSupport.None),
            (61, "R_PPC64_SECTOFF_DS", KernelSupport.None),
            (62, "R_PPC64_SECTOFF_LO_DS", KernelSupport.None),
            (65, "R_PPC64_PLTGOT16_DS", KernelSupport.None),
            (66, "R_PPC64_PLTGOT16_LO_DS", KernelSupport.None),
            (67, "R_PPC64_TLS", KernelSupport.None),
            (68, "R_PPC64_DTPMOD64", KernelSupport.None),
            (69, "R_PPC64_TPREL16", KernelSupport.None),
            (70, "R_PPC64_TPREL16_LO", KernelSupport.None),
            (71, "R_PPC64_TPREL16_HI", KernelSupport.None),
            (72, "R_PPC64_TPREL16_HA", KernelSupport.None),
            (73, "R_PPC64_TPREL64", KernelSupport.None),
            (74, "R_PPC64_DTPREL16", KernelSupport.None),
            (75, "R_PPC64_DTPREL16_LO", KernelSupport.None),
            (76, "R_PPC64_DTPREL16_HI", KernelSupport.None),
            (77, "R_PPC64_DTPREL16_HA", KernelSupport.None),
            (78, "R_PPC64_DTPREL64", KernelSupport.None),
            (79, "R_PPC64_GOT_TLSGD16", KernelSupport.None),
            (80, "R_PPC64_GOT_TLSGD16_LO", KernelSupport.None),
            (81, "R_PPC64_GOT_TLSGD16_HI", KernelSupport.None),
            (82, "R_PPC64_GOT_TLSGD16_HA", KernelSupport.None),
            (83, "R_PPC64_GOT_TLSLD16", KernelSupport.None),
            (84, "R_PPC64_GOT_TLSLD16_LO", KernelSupport.None),
            (85, "R_PPC64_GOT_TLSLD16_HI", KernelSupport.None),
            (86, "R_PPC64_GOT_TLSLD16_HA", KernelSupport.None),
            (87, "R_PPC64_GOT_TPREL16_DS", KernelSupport.None),
            (88, "R_PPC64_GOT_TPREL16_LO_DS", KernelSupport.None),
            (89, "R_PPC64_GOT_TPREL16_HI", KernelSupport.None),
            (90, "R_PPC64_GOT_TPREL16_HA", KernelSupport.None),
            (91, "R_PPC64_GOT_DTPREL16_DS", KernelSupport.None),
            (92, "R_PPC64_GOT_DTPREL16_LO_DS", KernelSupport.None),
            (93, "R_PPC64_GOT_DTPREL16_HI", KernelSupport.None),
            (94, "R_PPC64_GOT_DTPREL16_HA", KernelSupport.None),
            (95, "R_PPC64_TPREL16_DS", KernelSupport.None),
            (96, "R_PPC64_TPREL16_LO_DS", KernelSupport.None),
            (97, "R_PPC64_TPREL16_HIGHER", KernelSupport.None),
            (98, "R_PPC64_TPREL16_HIGHERA", KernelSupport.None),
            (99, "R_PPC64_TPREL16_HIGHEST", KernelSupport.None),
            (100, "R_PPC64_TPREL16_HIGHESTA", KernelSupport.None),
            (101, "R_PPC64_DTPREL16_DS", KernelSupport.None),
            (102, "R_PPC64_DTPREL16_LO_DS", KernelSupport.None),
            (103, "R_PPC64_DTPREL16_HIGHER", KernelSupport.None),
            (104, "R_PPC64_DTPREL16_HIGHERA", KernelSupport.None),
            (105, "R_PPC64_DTPREL16_HIGHEST", KernelSupport.None),
            (106, "R_PPC64_DTPREL16_HIGHESTA", KernelSupport.None),
            (110, "R_PPC64_ADDR16_HIGH", KernelSupport.None),
            (111, "R_PPC64_ADDR16_HIGHA", KernelSupport.None),
            (112, "R_PPC64_TPREL16_HIGH", KernelSupport.None),
            (113, "R_PPC64_TPREL16_HIGHA", KernelSupport.None),
            (114, "R_PPC64_DTPREL16_HIGH", KernelSupport.None),
            (115, "R_PPC64_DTPREL16_HIGHA", KernelSupport.None),
            (121, "R_PPC64_PLTSEQ_NOTOC", KernelSupport.None),
            (122, "R_PPC64_PLTCALL_NOTOC", KernelSupport.None),
            (123, "R_PPC64_PCREL_OPT", KernelSupport.None),
            (124, "R_PPC64_REL24_P9NOTOC", KernelSupport.None),
            (128, "R_PPC64_D34", KernelSupport.None),
            (129, "R_PPC64_D34_LO", KernelSupport.None),
            (130, "R_PPC64_D34_HI30", KernelSupport.None),
            (131, "R_PPC64_D34_HA30", KernelSupport.None),
            (134, "R_PPC64_PLT_PCREL34", KernelSupport.None),
            (135, "R_PPC64_PLT_PCREL34_NOTOC", KernelSupport.None),
            (136, "R_PPC64_ADDR16_HIGHER34", KernelSupport.None),
            (137, "R_PPC64_ADDR16_HIGHERA34", KernelSupport.None),
            (138, "R_PPC64_ADDR16_HIGHEST34", KernelSupport.None),
            (139, "R_PPC64_ADDR16_HIGHESTA34", KernelSupport.None),
            (140, "R_PPC64_REL16_HIGHER34", KernelSupport.None),
            (141, "R_PPC64_REL16_HIGHERA34", KernelSupport.None),
            (142, "R_PPC64_REL16_HIGHEST34", KernelSupport.None),
            (143, "R_PPC64_REL16_HIGHESTA34", KernelSupport.None),
            (144, "R_PPC64_D28", KernelSupport.None),
            (145, "R_PPC64_PCREL28", KernelSupport.None),
            (146, "R_PPC64_TPREL34", KernelSupport.None),
            (147, "R_PPC64_DTPREL34", KernelSupport.None),
            (148, "R_PPC64_GOT_TLSGD_PCREL34", KernelSupport.None),
            (149, "R_PPC64_GOT_TLSLD_PCREL34", KernelSupport.None),
            (150, "R_PPC64_GOT_TPREL_PCREL34", KernelSupport.None),
            (151, "R_PPC64_GOT_DTPREL_PCREL34", KernelSupport.None),
            (240, "R_PPC64_REL16_HIGH", KernelSupport.None),
            (241, "R_PPC64_REL16_HIGHA", KernelSupport.None),
            (242, "R_PPC64_REL16_HIGHER", KernelSupport.None),
            (243, "R_PPC64_REL16_HIGHERA", KernelSupport.None),
            (244, "R_PPC64_REL16_HIGHEST", KernelSupport.None),
            (245, "R_PPC64_REL16_HIGHESTA", KernelSupport.None),
            (246, "R_PPC64_REL16DX_HA", KernelSupport.None),
            (247, "R_PPC64_JMP_IREL", KernelSupport.None),
            (248, "R_PPC64_IRELATIVE", KernelSupport.None),
            (253, "R_PPC64_GNU_VTINHERIT", KernelSupport.None),
            (254, "R_PPC64_GNU_VTENTRY", KernelSupport.None),
        ];
        return table.ToDictionary(e => e.n, e => new RelocationType(e.n, e.name, e.s));
    }
}
