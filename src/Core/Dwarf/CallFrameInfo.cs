using PpcLivepatch.Elf;
using PpcLivepatch.Ppc64;

namespace PpcLivepatch.Dwarf;

/// <summary>How one register (or the CFA) is recovered in a CFI row. Offsets are in bytes, already scaled.</summary>
public readonly record struct RegisterRule(RegisterRuleKind Kind, long Value = 0)
{
    public override string ToString() => Kind switch
    {
        RegisterRuleKind.Offset => $"c{Value:+#;-#;+0}",
        RegisterRuleKind.ValOffset => $"v{Value:+#;-#;+0}",
        RegisterRuleKind.Register => $"r{Value}",
        RegisterRuleKind.SameValue => "s",
        RegisterRuleKind.Undefined => "u",
        _ => "exp",
    };
}

public enum RegisterRuleKind
{
    Undefined,
    SameValue,
    Offset,
    ValOffset,
    Register,
    Expression,
}

/// <summary>One row of the unwind table: CFA = register + offset, and the rule of every register that has
/// one.</summary>
public sealed record CfiRow(int CfaRegister, long CfaOffset, bool CfaIsExpression,
    IReadOnlyDictionary<ulong, RegisterRule> Registers);

public sealed record Cie(int Offset, int Length, ulong CodeAlign, long DataAlign, byte FdeEncoding,
    bool HasAugmentationData, int InstructionsStart, int End);

/// <summary>One FDE: where it is in its section, which code it covers, and where its instructions are.</summary>
public sealed record Fde(
    int Offset, int End, Cie Cie, int CiePointerField, int PcBeginField, int PcRangeField, int PcFieldSize,
    int CodeSection, ulong PcBegin, ulong PcRange, int InstructionsStart, int InstructionsEnd);

/// <summary>
/// The call frame information of one <c>.eh_frame</c> or <c>.debug_frame</c> section of a relocatable object: CIEs,
/// FDEs located through their pc_begin relocations, and an interpreter for the CFA programs.
/// </summary>
public sealed class CallFrameInfo
{
    public const byte DwCfaNop = 0x00, DwCfaAdvanceLoc4 = 0x04, DwCfaOffsetExtendedSf = 0x11,
        DwCfaRestoreExtended = 0x06,
        DwCfaUndefined = 0x07, DwCfaSameValue = 0x08, DwCfaRegister = 0x09, DwCfaDefCfa = 0x0c, DwCfaDefCfaSf = 0x12,
            DwCfaValOffsetSf = 0x15;

    private readonly ElfImage _image;

    private CallFrameInfo(ElfImage image, ElfSection section, bool isEhFrame)
    {
        _image = image;
        Section = section;
        IsEhFrame = isEhFrame;
    }

    public ElfSection Section { get; }
    public bool IsEhFrame { get; }
    public bool IsLittleEndian => _image.IsLittleEndian;
    public List<Cie> Cies { get; } = [];
    public List<Fde> Fdes { get; } = [];

    /// <summary>The object's frame sections (<c>.eh_frame</c> and <c>.debug_frame</c>), parsed.</summary>
    public static IEnumerable<CallFrameInfo> ReadAll(ElfImage image)
    {
        foreach (var s in image.Sections.Where(s => s.Name is ".eh_frame" or ".debug_frame" && s.HasFileData))
        {
            var cfi = new CallFrameInfo(image, s, s.Name == ".eh_frame");
            try
            {
                cfi.Parse();
            }
            catch (Exception e) when (e is OverflowException or ArgumentOutOfRangeException or IndexOutOfRangeException)
            {
                throw new DwarfFormatException($"{s.Name} is malformed: {e.Message}");
            }
            yield return cfi;
        }
    }

    public ReadOnlySpan<byte> Data => _image.Data(Section);

    private void Parse()
    {
        var relocs = _image.RelocationTargets(Section);
        var data = Data;
        int pos = 0;
        var pendingFdes = new List<(int Offset, int End, int CiePointerField, int CieOffset)>();
        while (pos + 4 <= data.Length)
        {
            var r = new DwarfReader(data, _image.IsLittleEndian, pos);
            uint length = r.U32();
            if (length == 0) { pos += 4; continue; }  // .eh_frame terminator or padding
            if (length == 0xffff_ffff) throw new DwarfFormatException("64-bit DWARF call frame entries are not " +
                "supported");
            if (length > (uint)(data.Length - r.Position)) throw new DwarfFormatException($"frame entry at 0x{pos:x} " +
                "runs past its section");
            int end = r.Position + (int)length;
            int idField = r.Position;
            uint id = r.U32();
            bool isCie = IsEhFrame ? id == 0 : id == 0xffff_ffff;
            if (isCie) Cies.Add(ParseCie(data, pos, idField + 4, end));
            else
            {
                int cieOffset = IsEhFrame ? idField - (int)id
                    : relocs.TryGetValue((ulong)idField, out var t) ? (int)t.Value : (int)id;
                pendingFdes.Add((pos, end, idField, cieOffset));
            }
            pos = end;
        }
        foreach (var (offset, end, field, cieOffset) in pendingFdes)
        {
            var cie = Cies.FirstOrDefault(c => c.Offset == cieOffset)
                ?? throw new DwarfFormatException($"FDE at 0x{offset:x} names no CIE");
            int fieldSize = IsEhFrame ? EncodedSize(cie.FdeEncoding) : 8;
            int pcBegin = field + 4, pcRange = pcBegin + fieldSize;
            var r = new DwarfReader(data, _image.IsLittleEndian, pcRange);
            ulong range = r.Fixed(fieldSize);
            if (cie.HasAugmentationData) r.Skip(r.Uleb());
            // S + A of the pc_begin relocation (ADDR64, or REL32 in .eh_frame) is the code address the FDE starts at.
            var (codeSection, begin) = relocs.TryGetValue((ulong)pcBegin, out var target) ? (target.Section,
                target.Value) : (-1, 0UL);
            // A range past the end of its code would make every address computed from it wrap; such an FDE
            // describes no code this object has.
            if (codeSection >= 0 && (begin > _image.Sections[codeSection].Size
                    || range > _image.Sections[codeSection].Size - begin))
                throw new DwarfFormatException(
                    $"FDE at 0x{offset:x} covers 0x{range:x} bytes from 0x{begin:x}, past the end of its code section");
            Fdes.Add(new Fde(offset, end, cie, field, pcBegin, pcRange, fieldSize, codeSection, begin, range,
                r.Position, end));
        }
    }

    private Cie ParseCie(ReadOnlySpan<byte> data, int offset, int start, int end)
    {
        var r = new DwarfReader(data, _image.IsLittleEndian, start);
        byte version = r.U8();
        string augmentation = r.CString();
        if (version >= 4) { r.U8(); r.U8(); }
        ulong codeAlign = r.Uleb();
        long dataAlign = r.Sleb();
        if (codeAlign == 0) throw new DwarfFormatException($"CIE at 0x{offset:x} has code alignment 0");
        if (version == 1) r.U8(); else r.Uleb();
        byte fdeEncoding = 0;
        bool z = augmentation.StartsWith('z');
        if (z)
        {
            int dataEnd = checked((int)r.Uleb() + r.Position);
            foreach (char c in augmentation[1..])
            {
                if (c == 'R') fdeEncoding = r.U8();
                else if (c == 'L') r.U8();
                else if (c == 'P') { byte enc = r.U8(); r.Skip((ulong)EncodedSize(enc)); }
            }
            r.Position = dataEnd;
        }
        else if (augmentation.Length > 0) throw new DwarfFormatException($"CIE augmentation '{augmentation}' is not " +
            "understood");
        return new Cie(offset, end - offset, codeAlign, dataAlign, fdeEncoding, z, r.Position, end);
    }

    private static int EncodedSize(byte encoding) => (encoding & 0x0f) switch
    {
        0x00 => 8,        // absptr (64-bit)
        0x02 or 0x0a => 2,
        0x03 or 0x0b => 4,
        0x04 or 0x0c => 8,
        _ => throw new DwarfFormatException($"pointer encoding 0x{encoding:x2} is not supported"),
    };

    /// <summary> The FDE's CFA program with every location advance re-encoded for moved code: a row at old address A is
    /// at <paramref name="map"/>(A) afterwards. Other instructions are copied as they are; advances take the smallest
    /// form. </summary>
    public byte[] RemapAdvances(Fde fde, Func<ulong, ulong> map)
    {
        var data = Data;
        var r = new DwarfReader(data, _image.IsLittleEndian, fde.InstructionsStart);
        var output = new List<byte>();
        ulong loc = 0;
        ulong align = fde.Cie.CodeAlign;
        void Advance(ulong delta)
        {
            ulong next = loc + delta * align;
            ulong moved = map(fde.PcBegin + next) - map(fde.PcBegin + loc);
            if (moved % align != 0) throw new DwarfFormatException("a moved row is not aligned to the code alignment");
            EncodeAdvance(output, moved / align, _image.IsLittleEndian);
            loc = next;
        }
        while (r.Position < fde.InstructionsEnd)
        {
            int start = r.Position;
            byte op = r.U8();
            switch (op >> 6)
            {
                case 1: Advance((ulong)(op & 0x3f)); continue;
                case 2: r.Uleb(); break;
                case 3: break;
                default:
                    switch (op)
                    {
                        case 0x01: throw new DwarfFormatException("DW_CFA_set_loc is not supported");
                        case 0x02: Advance(r.U8()); continue;
                        case 0x03: Advance(r.U16()); continue;
                        case 0x04: Advance(r.U32()); continue;
                        case 0x05 or 0x09 or 0x0c or 0x14 or 0x2f: r.Uleb(); r.Uleb(); break;
                        case 0x11 or 0x12 or 0x15: r.Uleb(); r.Sleb(); break;
                        case 0x06 or 0x07 or 0x08 or 0x0d or 0x0e or 0x2e: r.Uleb(); break;
                        case 0x13: r.Sleb(); break;
                        case 0x0f: r.Skip(r.Uleb()); break;
                        case 0x10 or 0x16: r.Uleb(); r.Skip(r.Uleb()); break;
                        case 0x00 or 0x0a or 0x0b: break;
                        default: throw new DwarfFormatException($"unknown call frame instruction 0x{op:x2}");
                    }
                    break;
            }
            for (int i = start; i < r.Position; i++) output.Add(data[i]);
        }
        return [.. output];
    }

    /// <summary>The smallest advance form for <paramref name="delta"/> code-alignment units.</summary>
    public static void EncodeAdvance(List<byte> output, ulong delta, bool littleEndian)
    {
        if (delta == 0) return;
        if (delta < 0x40) { output.Add((byte)(0x40 | delta)); return; }
        (byte op, int size) = delta <= 0xff ? ((byte)0x02, 1) : delta <= 0xffff ? ((byte)0x03, 2) : ((byte)0x04, 4);
        output.Add(op);
        for (int i = 0; i < size; i++)
            output.Add((byte)(delta >> (8 * (littleEndian ? i : size - 1 - i))));
    }

    /// <summary>The CIE's initial row.</summary>

    /// <summary>The row in effect at <paramref name="pcOffset"/> (relative to the FDE's start), and the program's final
    /// location.</summary>
    public (CfiRow Row, ulong FinalLocation, int LastInstructionEnd) RowAt(Fde fde, ulong pcOffset)
    {
        var initial = Run(fde.Cie, fde.Cie.InstructionsStart, fde.Cie.End, null, ulong.MaxValue);
        return Run(fde.Cie, fde.InstructionsStart, fde.InstructionsEnd, initial.Row, pcOffset);
    }

    private (CfiRow Row, ulong FinalLocation, int LastInstructionEnd) Run(Cie cie, int start, int end, CfiRow? initial,
        ulong stopAt)
    {
        var data = Data;
        var r = new DwarfReader(data, _image.IsLittleEndian, start);
        int cfaReg = initial?.CfaRegister ?? 1;
        long cfaOff = initial?.CfaOffset ?? 0;
        bool cfaExpr = initial?.CfaIsExpression ?? false;
        var regs = initial is null ? new Dictionary<ulong, RegisterRule>()
            : new Dictionary<ulong, RegisterRule>(initial.Registers);
        var initialRegs = initial?.Registers ?? new Dictionary<ulong, RegisterRule>();
        var stack = new Stack<(int, long, bool, Dictionary<ulong, RegisterRule>)>();
        ulong loc = 0;
        int lastEnd = start;
        bool stopped = false;
        CfiRow Snapshot() => new(cfaReg, cfaOff, cfaExpr, new Dictionary<ulong, RegisterRule>(regs));
        CfiRow? atStop = null;

        void Advance(ulong delta)
        {
            ulong next = loc + delta * cie.CodeAlign;
            if (!stopped && next > stopAt) { atStop = Snapshot(); stopped = true; }
            loc = next;
        }
        void Restore(ulong reg)
        {
            if (initialRegs.TryGetValue(reg, out var rule)) regs[reg] = rule; else regs.Remove(reg);
        }

        while (r.Position < end)
        {
            byte op = r.U8();
            switch (op >> 6)
            {
                case 1: Advance((ulong)(op & 0x3f)); break;
                case 2: regs[(ulong)(op & 0x3f)] = new(RegisterRuleKind.Offset, (long)r.Uleb() * cie.DataAlign); break;
                case 3: Restore((ulong)(op & 0x3f)); break;
                default:
                    switch (op)
                    {
                        case DwCfaNop: break;
                        case 0x01: throw new DwarfFormatException("DW_CFA_set_loc is not supported");
                        case 0x02: Advance(r.U8()); break;
                        case 0x03: Advance(r.U16()); break;
                        case 0x04: Advance(r.U32()); break;
                        case 0x05: { ulong reg = r.Uleb(); regs[reg] = new(RegisterRuleKind.Offset,
                            (long)r.Uleb() * cie.DataAlign); break; }
                        case 0x06: Restore(r.Uleb()); break;
                        case 0x07: regs[r.Uleb()] = new(RegisterRuleKind.Undefined); break;
                        case 0x08: regs[r.Uleb()] = new(RegisterRuleKind.SameValue); break;
                        case 0x09: { ulong reg = r.Uleb(); regs[reg] = new(RegisterRuleKind.Register,
                            (long)r.Uleb()); break; }
                        case 0x0a:
                            stack.Push((cfaReg, cfaOff, cfaExpr, new Dictionary<ulong, RegisterRule>(regs)));
                            break;
                        case 0x0b:
                            if (stack.Count == 0) throw new DwarfFormatException("DW_CFA_restore_state without " +
                                "remember_state");
                            (cfaReg, cfaOff, cfaExpr, regs) = stack.Pop();
                            break;
                        case 0x0c: cfaReg = (int)r.Uleb(); cfaOff = (long)r.Uleb(); cfaExpr = false; break;
                        case 0x0d: cfaReg = (int)r.Uleb(); break;
                        case 0x0e: cfaOff = (long)r.Uleb(); break;
                        case 0x0f: r.Skip(r.Uleb()); cfaExpr = true; break;
                        case 0x10:
                        {
                            ulong reg = r.Uleb();
                            r.Skip(r.Uleb());
                            regs[reg] = new(RegisterRuleKind.Expression);
                            break;
                        }
                        case 0x11: { ulong reg = r.Uleb(); regs[reg] = new(RegisterRuleKind.Offset,
                            r.Sleb() * cie.DataAlign); break; }
                        case 0x12: cfaReg = (int)r.Uleb(); cfaOff = r.Sleb() * cie.DataAlign; cfaExpr = false; break;
                        case 0x13: cfaOff = r.Sleb() * cie.DataAlign; break;
                        case 0x14: { ulong reg = r.Uleb(); regs[reg] = new(RegisterRuleKind.ValOffset,
                            (long)r.Uleb() * cie.DataAlign); break; }
                        case 0x15: { ulong reg = r.Uleb(); regs[reg] = new(RegisterRuleKind.ValOffset,
                            r.Sleb() * cie.DataAlign); break; }
                        case 0x16:
                        {
                            ulong reg = r.Uleb();
                            r.Skip(r.Uleb());
                            regs[reg] = new(RegisterRuleKind.Expression);
                            break;
                        }
                        // DW_CFA_GNU_args_size
                        case 0x2e: r.Uleb(); break;
                        case 0x2f: { ulong reg = r.Uleb(); regs[reg] = new(RegisterRuleKind.Offset,
                            -(long)r.Uleb() * cie.DataAlign); break; }
                        default: throw new DwarfFormatException($"unknown call frame instruction 0x{op:x2}");
                    }
                    break;
            }
            if (op != DwCfaNop) lastEnd = r.Position;
        }
        return (atStop ?? Snapshot(), loc, lastEnd);
    }
}
