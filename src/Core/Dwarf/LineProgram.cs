namespace PpcLivepatch.Dwarf;

/// <summary>What one line-program opcode does to the state machine (DWARF 5 §6.2.5).</summary>
public enum LineOpKind
{
    /// <summary>A special opcode: advance the address and the line, then append a row.</summary>
    Special,
    Copy,
    AdvancePc,
    AdvanceLine,
    SetFile,
    SetColumn,
    ConstAddPc,
    FixedAdvancePc,
    EndSequence,
    SetAddress,
    DefineFile,
    /// <summary>Anything that moves neither the address nor a row's position (flags, discriminators, unknown
    /// opcodes).</summary>
    Other,
}

/// <summary>One decoded opcode: where it is, what it does, and its address advance in bytes (already scaled).</summary>
public readonly record struct LineOp(int Start, int End, LineOpKind Kind, ulong AddressAdvance, long LineAdvance,
    ulong Operand,
    int OperandOffset);

/// <summary>
/// The fixed part of a line unit's header: where the unit, its directory and file tables and its program are, and the
/// fields its opcodes are decoded with.
/// </summary>
public sealed record LineProgramHeader(int Start, int UnitEnd, bool Dwarf64, int Version, int TablesStart,
    int ProgramStart, byte MinInstLength,
    sbyte LineBase, byte LineRange, byte OpcodeBase, byte[] StandardOpcodeLengths)
{
    /// <summary>Reads the header of the unit at <paramref name="start"/>.</summary>
    public static LineProgramHeader Read(ReadOnlySpan<byte> data, bool littleEndian, int start)
    {
        var r = new DwarfReader(data, littleEndian, start);
        ulong length = r.U32();
        bool dwarf64 = false;
        if (length == 0xffff_ffff) { dwarf64 = true; length = r.U64(); }
        else if (length >= 0xffff_fff0) throw new DwarfFormatException($"reserved unit length 0x{length:x} at " +
            $"0x{start:x}");
        if (length > (ulong)(data.Length - r.Position))
            throw new DwarfFormatException($"line unit at 0x{start:x} claims 0x{length:x} bytes, past the section end");
        int end = r.Position + (int)length;
        int version = r.U16();
        if (version is < 2 or > 5) throw new DwarfFormatException($"unsupported .debug_line version {version}");
        if (version >= 5) { r.U8(); r.U8(); }   // address_size, segment_selector_size
        ulong headerLength = dwarf64 ? r.U64() : r.U32();
        int programStart = checked(r.Position + (int)headerLength);
        byte minInst = r.U8();
        if (version >= 4) r.U8();               // maximum_operations_per_instruction: 1 on non-VLIW targets
        r.U8();                                 // default_is_stmt
        sbyte lineBase = r.S8();
        byte lineRange = r.U8();
        byte opcodeBase = r.U8();
        if (lineRange == 0) throw new DwarfFormatException("line_range is 0");
        var lengths = new byte[Math.Max(0, opcodeBase - 1)];
        for (int i = 0; i < lengths.Length; i++) lengths[i] = r.U8();
        return new LineProgramHeader(start, end, dwarf64, version, r.Position, programStart, minInst, lineBase,
            lineRange, opcodeBase,
            lengths);
    }
}

/// <summary>
/// The one decoder of <c>.debug_line</c> opcodes, shared by the line table (which collects rows) and the DWARF layout
/// editor (which re-encodes address advances): both see the same opcodes, the same operands, the same advances.
/// </summary>
public ref struct LineProgram
{
    private DwarfReader _r;
    private readonly int _end;
    private readonly LineProgramHeader _h;

    public LineProgram(ReadOnlySpan<byte> data, bool littleEndian, LineProgramHeader header)
    {
        if (header.ProgramStart > header.UnitEnd) throw new DwarfFormatException("header_length runs past the unit");
        _r = new DwarfReader(data, littleEndian, header.ProgramStart);
        _end = header.UnitEnd;
        _h = header;
    }

    /// <summary>Decodes the next opcode; false at the end of the program.</summary>
    public bool Next(out LineOp op)
    {
        op = default;
        if (_r.Position >= _end) return false;
        int start = _r.Position;
        byte code = _r.U8();
        var h = _h;
        if (code >= h.OpcodeBase)
        {
            int adjusted = code - h.OpcodeBase;
            op = new LineOp(start, _r.Position, LineOpKind.Special, (ulong)(adjusted / h.LineRange) * h.MinInstLength,
                h.LineBase + adjusted % h.LineRange, 0, 0);
            return true;
        }
        LineOpKind kind = LineOpKind.Other;
        ulong advance = 0, operand = 0;
        long line = 0;
        int operandOffset = 0;
        switch (code)
        {
            case 0:
            {
                ulong len = _r.Uleb();
                int next = checked(_r.Position + (int)len);
                if (len == 0 || next > _end) throw new DwarfFormatException($"bad extended opcode length {len} at " +
                    $"0x{_r.Position:x}");
                operandOffset = _r.Position + 1;
                byte sub = _r.U8();
                if (sub == 1) kind = LineOpKind.EndSequence;
                else if (sub == 2) { kind = LineOpKind.SetAddress; operand = _r.Fixed((int)len - 1); }
                else if (sub == 3) kind = LineOpKind.DefineFile;
                _r.Position = next;   // also skips DW_LNE_set_discriminator and unknowns
                break;
            }
            case 1: kind = LineOpKind.Copy; break;
            case 2: kind = LineOpKind.AdvancePc; advance = _r.Uleb() * h.MinInstLength; break;
            case 3: kind = LineOpKind.AdvanceLine; line = _r.Sleb(); break;
            case 4: kind = LineOpKind.SetFile; operand = _r.Uleb(); break;
            case 5: kind = LineOpKind.SetColumn; operand = _r.Uleb(); break;
            case 6: case 7: case 10: case 11: break;                                   // flags
            case 8:
                kind = LineOpKind.ConstAddPc;
                advance = (ulong)((255 - h.OpcodeBase) / h.LineRange) * h.MinInstLength;
                break;
            case 9: kind = LineOpKind.FixedAdvancePc; advance = _r.U16(); break;       // not scaled
            // DW_LNS_set_isa and unknowns: skip operands
            default:
                for (int i = 0; i < h.StandardOpcodeLengths[code - 1]; i++) _r.Uleb();
                break;
        }
        op = new LineOp(start, _r.Position, kind, advance, line, operand, operandOffset);
        return true;
    }

    /// <summary>The operands of a DW_LNE_define_file at <paramref name="op"/> (DWARF 2–4): its name and
    /// directory.</summary>
    public (string Name, ulong Dir) DefineFile(LineOp op)
    {
        int saved = _r.Position;
        _r.Position = op.OperandOffset;
        string name = _r.CString();
        ulong dir = _r.Uleb();
        _r.Position = saved;
        return (name, dir);
    }
}
