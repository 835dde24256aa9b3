namespace PpcLivepatch.Elf;

/// <summary>The generic ELF constants this tool reads (System V gABI), plus the two livepatch ones.</summary>
public static class ElfConstants
{
    public const byte ClassElf64 = 2;
    public const byte DataLsb = 1;
    public const byte DataMsb = 2;
    public const ushort EtRel = 1;
    public const ushort EmPpc64 = 21;
    public const ushort EmPpc = 20;

    public const uint ShtNull = 0, ShtProgbits = 1, ShtSymtab = 2, ShtStrtab = 3, ShtRela = 4, ShtNobits = 8,
        ShtRel = 9,
        ShtGroup = 17, ShtSymtabShndx = 18;

    public const ulong ShfWrite = 0x1, ShfAlloc = 0x2, ShfExecInstr = 0x4, ShfInfoLink = 0x40, ShfLinkOrder = 0x80,
        ShfCompressed = 0x800;
    public const uint ElfCompressZlib = 1;
    public const int Elf64ChdrSize = 24;
    /// <summary>Marks a <c>.klp.rela.*</c> section (include/uapi/linux/elf.h).</summary>
    public const ulong ShfRelaLivepatch = 0x0010_0000;

    public const ushort ShnUndef = 0;
    public const ushort ShnLoReserve = 0xff00;
    /// <summary>Symbols the livepatch core resolves through kallsyms when the patch loads.</summary>
    public const ushort ShnLivepatch = 0xff20;
    public const ushort ShnAbs = 0xfff1;
    public const ushort ShnCommon = 0xfff2;
    public const ushort ShnXindex = 0xffff;

    public const byte SttNotype = 0, SttObject = 1, SttFunc = 2, SttSection = 3, SttFile = 4;
    public const byte StbLocal = 0, StbGlobal = 1, StbWeak = 2;

    public const int Elf64HeaderSize = 64;
    public const int Elf64SectionHeaderSize = 64;
    public const int Elf64SymbolSize = 24;
    public const int Elf64RelaSize = 24;

    public static string MachineName(ushort machine) => machine switch
    {
        3 => "EM_386 (x86)",
        EmPpc => "EM_PPC (32-bit PowerPC)",
        EmPpc64 => "EM_PPC64",
        40 => "EM_ARM",
        62 => "EM_X86_64",
        183 => "EM_AARCH64",
        243 => "EM_RISCV",
        22 => "EM_S390",
        _ => $"machine {machine}",
    };

    public static string FileTypeName(ushort type) => type switch
    {
        0 => "ET_NONE",
        1 => "ET_REL (relocatable)",
        2 => "ET_EXEC (executable)",
        3 => "ET_DYN (shared object)",
        4 => "ET_CORE (core dump)",
        _ => $"type {type}",
    };
}
