namespace PpcLivepatch.Ppc64;

/// <summary>What a word at a call relocation is, as far as the module loader cares.</summary>
public enum BranchKind
{
    /// <summary>Not a branch the loader recognises (or data).</summary>
    Other,
    /// <summary><c>b</c>: I-form, no link — a sibling (tail) call.</summary>
    B,
    /// <summary><c>bl</c>: I-form with link — a call that returns to bl+4.</summary>
    Bl,
    /// <summary><c>ba</c>: absolute I-form, no link.</summary>
    Ba,
    /// <summary><c>bla</c>: absolute I-form with link.</summary>
    Bla,
    /// <summary><c>bc</c>: B-form conditional branch, no link.</summary>
    Bc,
    /// <summary><c>bcl</c>: B-form conditional branch with link.</summary>
    Bcl,
    /// <summary>Absolute B-form, with or without link.</summary>
    Bca,
}

/// <summary>
/// Decode and encode of the few Power ISA forms this tool reasons about. Every encode goes through
/// <see cref="CheckBranchDisplacement"/>, so an out-of-range or misaligned displacement can never be written.
/// </summary>
public static class Instruction
{
    public const uint Nop = 0x6000_0000;        // ori r0,r0,0
    public const uint B = 0x4800_0000;          // b .+0
    public const uint Bl = 0x4800_0001;         // bl .+0
    public const uint LdR2Sp24 = 0xE841_0018;   // ld r2,24(r1)  — ELFv2 TOC restore
    public const uint LdR2Sp40 = 0xE841_0028;   // ld r2,40(r1)  — ELFv1 TOC restore
    public const uint CrorNop15 = 0x4DEF_7B82;  // cror 15,15,15 — GNU ld's alternative call nop
    public const uint CrorNop31 = 0x4FFF_FB82;  // cror 31,31,31
    public const uint Bctr = 0x4E80_0420;       // bctr
    public const uint Blr = 0x4E80_0020;        // blr

    private const uint AaBit = 0x2;
    private const uint LkBit = 0x1;
    private const uint IFormLiMask = 0x03FF_FFFC;
    private const uint BFormBdMask = 0x0000_FFFC;

    public static uint PrimaryOpcode(uint word) => word >> 26;

    public static BranchKind Classify(uint word)
    {
        bool aa = (word & AaBit) != 0, lk = (word & LkBit) != 0;
        return PrimaryOpcode(word) switch
        {
            18 =>
                (aa, lk) switch { (false, false) =>
                    BranchKind.B, (false, true) => BranchKind.Bl, (true, false) => BranchKind.Ba, _ => BranchKind.Bla },
            16 => aa ? BranchKind.Bca : lk ? BranchKind.Bcl : BranchKind.Bc,
            _ => BranchKind.Other,
        };
    }

    /// <summary>
    /// The kernel's <c>instr_is_relative_link_branch()</c>: opcode 18 or 16, AA clear, LK set. Only such a
    /// branch makes <c>restore_r2()</c> demand a nop after it.
    /// </summary>
    public static bool IsRelativeLinkBranch(uint word) => Classify(word) is BranchKind.Bl or BranchKind.Bcl;

    /// <summary>True for a PC-relative branch (I-form or B-form, AA clear), with or without link.</summary>
    public static bool IsRelativeBranch(uint word) =>
        Classify(word) is BranchKind.B or BranchKind.Bl or BranchKind.Bc or BranchKind.Bcl;

    /// <summary>The signed byte displacement of a relative I-form or B-form branch.</summary>
    public static long BranchDisplacement(uint word) => PrimaryOpcode(word) switch
    {
        18 => SignExtend(word & IFormLiMask, 26),
        16 => SignExtend(word & BFormBdMask, 16),
        _ => throw new ArgumentException($"0x{word:x8} is not a branch", nameof(word)),
    };

    /// <summary>Encodes an unconditional I-form branch (<c>b</c> or <c>bl</c>) with the given displacement.</summary>
    public static uint EncodeIForm(long displacement, bool link)
    {
        CheckBranchDisplacement(displacement, 26);
        return B | ((uint)displacement & IFormLiMask) | (link ? LkBit : 0);
    }

    /// <summary>Replaces the displacement of an existing relative branch, keeping every other bit.</summary>
    public static uint WithDisplacement(uint word, long displacement)
    {
        switch (PrimaryOpcode(word))
        {
            case 18:
                CheckBranchDisplacement(displacement, 26);
                return (word & ~IFormLiMask) | ((uint)displacement & IFormLiMask);
            case 16:
                CheckBranchDisplacement(displacement, 16);
                return (word & ~BFormBdMask) | ((uint)displacement & BFormBdMask);
            default:
                throw new ArgumentException($"0x{word:x8} is not a branch", nameof(word));
        }
    }

    /// <summary>The one range and alignment check every branch encode goes through.</summary>
    public static void CheckBranchDisplacement(long displacement, int bits)
    {
        long min = -(1L << (bits - 1)), max = (1L << (bits - 1)) - 4;
        if ((displacement & 3) != 0)
            throw new ArgumentOutOfRangeException(nameof(displacement),
                $"branch displacement 0x{displacement:x} is not a multiple of 4");
        if (displacement < min || displacement > max)
            throw new ArgumentOutOfRangeException(nameof(displacement),
                $"branch displacement {displacement} is not in [{min}, {max}]");
    }

    /// <summary>A short assembler-like spelling for reports: <c>bl</c>, <c>b</c>, <c>nop</c>, or the raw
    /// word.</summary>
    public static string Mnemonic(BranchKind kind) => kind switch
    {
        BranchKind.B => "b",
        BranchKind.Bl => "bl",
        BranchKind.Ba => "ba",
        BranchKind.Bla => "bla",
        BranchKind.Bc => "bc",
        BranchKind.Bcl => "bcl",
        BranchKind.Bca => "bca",
        _ => "other",
    };

    private static long SignExtend(uint value, int bits) => ((long)value << (64 - bits)) >> (64 - bits);
}
