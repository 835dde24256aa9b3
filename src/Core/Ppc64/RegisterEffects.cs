namespace PpcLivepatch.Ppc64;

/// <summary>
/// What one instruction writes, as far as a proof about a jump table's index and base needs to know: general
/// registers, condition-register fields, CTR. <see cref="Known"/> is false for any instruction not decoded here;
/// a proof must then assume it writes everything.
/// </summary>
public readonly record struct RegisterEffects(uint Gprs, byte CrFields, bool Ctr, bool Known)
{
    public static readonly RegisterEffects Unknown = new(uint.MaxValue, 0xff, true, false);

    public bool WritesGpr(int r) => (Gprs & (1u << r)) != 0;
    public bool WritesCrField(int f) => (CrFields & (1 << f)) != 0;

    // r0 and r3–r12 are volatile across a call in both ABIs (and r2 belongs to the callee until restored);
    // cr0, cr1 and cr5–cr7 too, and CTR and LR.
    private const uint VolatileGprs = 0x1FFD;   // r0, r2–r12
    private const byte VolatileCr = 0b1110_0011;

    /// <summary>The effects of <paramref name="word"/>; a call clobbers every volatile register.</summary>
    public static RegisterEffects Of(uint word)
    {
        uint op = word >> 26;
        int rt = (int)(word >> 21) & 31, ra = (int)(word >> 16) & 31;
        bool rc = (word & 1) != 0;
        byte cr0 = rc ? (byte)1 : (byte)0;
        RegisterEffects Rt(byte cr = 0) => new(1u << rt, cr, false, true);
        RegisterEffects Ra(byte cr = 0) => new(1u << ra, cr, false, true);
        RegisterEffects RtRa() => new((1u << rt) | (1u << ra), 0, false, true);
        RegisterEffects None(byte cr = 0) => new(0, cr, false, true);
        switch (op)
        {
            case 7: case 8: case 12: case 14: case 15: return Rt();
            case 13: return Rt(1);
            case 10: case 11: return None((byte)(1 << (int)((word >> 23) & 7)));
            case 16:
            case 18:
                if ((word & 1) != 0) return Call(word);
                // A B-form branch that decrements CTR (BO bit 2 clear) writes it.
                return new(0, 0, op == 16 && (word & (4u << 21)) == 0, true);
            case 19: return Op19(word);
            case 20: case 21: case 23: case 30: return Ra(cr0);
            case 24: case 25: case 26: case 27: return Ra();
            case 28: case 29: return Ra(1);
            case 31: return Op31(word);
            case 32: case 34: case 40: case 42: return Rt();
            case 33: case 35: case 41: case 43: return RtRa();
            case 36: case 38: case 44: case 47: case 48: case 50: case 52: case 54: return None();
            case 37: case 39: case 45: case 49: case 51: case 53: case 55: return Ra();
            case 58: return (word & 3) switch { 0 or 2 => Rt(), 1 => RtRa(), _ => Unknown };
            case 62: return (word & 3) switch { 0 => None(), 1 => Ra(), _ => Unknown };
            default: return Unknown;
        }
    }

    private static RegisterEffects Call(uint word) =>
        // bl .+4 only reads the program counter into LR.
        Instruction.IsRelativeBranch(word) && Instruction.BranchDisplacement(word) == 4
            ? new(0, 0, false, true)
            : new(VolatileGprs, VolatileCr, true, true);

    private static RegisterEffects Op19(uint word)
    {
        uint xo = (word >> 1) & 0x3ff;
        if (xo is 16 or 528) return (word & 1) != 0 ? new(VolatileGprs, VolatileCr, true, true) : new(0, 0, false,
            true);
        if (xo == 150) return new(0, 0, false, true);                                    // isync
        if (xo == 0) return new(0, (byte)(1 << (int)((word >> 23) & 7)), false, true);   // mcrf
        if (xo is 33 or 129 or 193 or 225 or 257 or 289 or 417 or 449)                  // CR logical: writes bit BT
            return new(0, (byte)(1 << (int)(((word >> 21) & 31) >> 2)), false, true);
        return Unknown;
    }

    private static readonly HashSet<uint> XoArithmetic = [8, 9, 10, 11, 40, 73, 75, 104, 136, 138, 200, 202, 232, 233,
        234, 235, 266, 393, 395, 425, 427, 457, 459, 489, 491];
    private static readonly HashSet<uint> XLogicalToRa = [24, 26, 27, 28, 58, 60, 122, 124, 154, 186, 252, 284, 316,
        378, 412, 444, 476, 506, 508, 536, 538, 539, 570, 792, 794, 824, 826, 827, 890, 891, 922, 954, 986];
    private static readonly HashSet<uint> XLoads = [20, 21, 23, 52, 84, 87, 116, 279, 341, 343, 532, 534, 790];
    private static readonly HashSet<uint> XLoadsUpdate = [53, 55, 119, 311, 373, 375];
    private static readonly HashSet<uint> XStores = [149, 151, 215, 407, 660, 662, 918, 535, 599, 663, 727, 103, 231,
        844, 972, 54, 86, 246, 278, 982, 1014, 598, 854, 4, 68, 179, 243];
    private static readonly HashSet<uint> XStoresUpdate = [181, 183, 247, 439, 567, 631, 695, 759];

    private static RegisterEffects Op31(uint word)
    {
        uint xo10 = (word >> 1) & 0x3ff, xo9 = (word >> 1) & 0x1ff;
        int rt = (int)(word >> 21) & 31, ra = (int)(word >> 16) & 31;
        byte cr0 = (word & 1) != 0 ? (byte)1 : (byte)0;
        if (xo10 is 0 or 32) return new(0, (byte)(1 << (int)((word >> 23) & 7)), false, true);   // cmp, cmpl
        if (XLogicalToRa.Contains(xo10) || (xo9 >> 1) is 413 or 445) return new(1u << ra, cr0, false, true);
        // + mfcr, mfmsr, mfspr, mftb, setb
        if (XLoads.Contains(xo10) || xo10 is 19 or 83 or 339 or 371 or 128) return new(1u << rt, 0, false, true);
        if (XLoadsUpdate.Contains(xo10)) return new((1u << rt) | (1u << ra), 0, false, true);
        if (xo10 is 51 or 115) return new(1u << ra, 0, false, true);          // mfvsrd, mfvsrwz
        if (XStores.Contains(xo10)) return new(0, 0, false, true);
        if (xo10 is 150 or 214 or 694 or 726) return new(0, 1, false, true);  // st[bhwd]cx. set cr0
        if (XStoresUpdate.Contains(xo10)) return new(1u << ra, 0, false, true);
        if (xo10 == 144) return new(0, Reverse((byte)((word >> 12) & 0xff)), false, true);  // mtcrf
        if (xo10 == 467) return new(0, 0, SprOf(word) == 9, true);            // mtspr: CTR is SPR 9
        if ((word >> 1 & 31) == 15) return new(1u << rt, 0, false, true);     // isel
        if (XoArithmetic.Contains(xo9)) return new(1u << rt, cr0, false, true);
        return Unknown;
    }

    /// <summary>mtcrf's FXM names cr0 in its most significant bit.</summary>
    private static byte Reverse(byte fxm)
    {
        byte r = 0;
        for (int i = 0; i < 8; i++) if ((fxm & (0x80 >> i)) != 0) r |= (byte)(1 << i);
        return r;
    }

    /// <summary>The SPR number of mfspr/mtspr, whose two 5-bit halves are swapped in the encoding.</summary>
    public static int SprOf(uint word) => (int)(((word >> 16) & 31) | (((word >> 11) & 31) << 5));

}
