namespace PpcLivepatch.Ppc64;

/// <summary>The two 64-bit PowerPC ELF ABIs, and the facts about them that call sites depend on.</summary>
public enum PpcAbi
{
    /// <summary>ELFv1 (big-endian ppc64): function descriptors in <c>.opd</c>, TOC save slot 40(r1).</summary>
    ElfV1,
    /// <summary>ELFv2 (ppc64le, and BE kernels built with it): global/local entry points, TOC save slot
    /// 24(r1).</summary>
    ElfV2,
}

public static class AbiFacts
{
    /// <summary><c>e_flags</c> value 2 means ELFv2 (psABI: EF_PPC64_ABI).</summary>
    public const uint EfPpc64AbiMask = 3;

    public static PpcAbi FromHeader(uint eFlags, bool littleEndian) => (eFlags & EfPpc64AbiMask) switch
    {
        2 => PpcAbi.ElfV2,
        1 => PpcAbi.ElfV1,
        // Unspecified: little-endian has only ever been ELFv2, big-endian objects default to ELFv1.
        _ => littleEndian ? PpcAbi.ElfV2 : PpcAbi.ElfV1,
    };

    /// <summary>The <c>ld r2,N(r1)</c> the kernel writes over the nop (PPC_INST_LD_TOC).</summary>
    public static uint TocRestoreInstruction(PpcAbi abi) =>
        abi == PpcAbi.ElfV2 ? Instruction.LdR2Sp24 : Instruction.LdR2Sp40;

    /// <summary>
    /// ELFv2 local entry offset encoded in <c>st_other</c> bits 5–7 (PPC64_LOCAL_ENTRY_OFFSET): 0 and 1 mean the
    /// entries coincide, 2..6 mean 4, 8, … 64 bytes. ELFv1 has no local entry.
    /// </summary>
    public static int LocalEntryOffset(PpcAbi abi, byte stOther)
    {
        if (abi == PpcAbi.ElfV1) return 0;
        int v = (stOther >> 5) & 7;
        return ((1 << v) >> 2) << 2;
    }

    public static string Name(PpcAbi abi) => abi == PpcAbi.ElfV2 ? "elfv2" : "elfv1";
}
