using PpcLivepatch.Dwarf;
using PpcLivepatch.Elf;
using PpcLivepatch.Ppc64;
using static PpcLivepatch.Elf.ElfConstants;

namespace PpcLivepatch.Patching;

/// <summary><c>.debug_line</c>: address advances re-encoded, and a sequence per island.</summary>
internal sealed partial class DwarfLayoutEditor
{
    private void Line()
    {
        var section = Section(".debug_line");
        if (section is null) return;
        var relocs = Relocations(section);
        var data = _image.Data(section);
        var output = new List<byte>(data.Length + 64);
        var anchors = new List<(ulong Old, ulong New)>();
        bool le = _image.IsLittleEndian;
        int pos = 0;
        while (pos < data.Length)
        {
            var h = LineProgramHeader.Read(data, le, pos);
            if (h.Dwarf64) throw new DwarfFormatException("64-bit DWARF line tables are not rewritten");
            byte minInst = h.MinInstLength, lineRange = h.LineRange, opcodeBase = h.OpcodeBase;
            sbyte lineBase = h.LineBase;
            if (minInst == 0 || opcodeBase == 0)
                throw new DwarfFormatException($".debug_line has minimum_instruction_length {minInst}, line_range " +
                    $"{lineRange}, opcode_base {opcodeBase}");

            int unitStart = output.Count;
            anchors.Add(((ulong)pos, (ulong)output.Count));
            Copy(output, data, pos, h.ProgramStart);
            int section0 = -1;
            ulong address = 0;
            var row = new LineRegisters();
            var rows = new List<(int Section, ulong Address, LineRegisters State, bool End)>();
            var program = new LineProgram(data, le, h);
            while (program.Next(out var op))
            {
                anchors.Add(((ulong)op.Start, (ulong)output.Count));
                ulong advance = op.AddressAdvance;
                ulong moved = Moved(section0, address, address + advance);
                address += advance;
                switch (op.Kind)
                {
                    case LineOpKind.Special:
                    {
                        row = row with { Line = row.Line + op.LineAdvance };
                        rows.Add((section0, address, row, false));
                        ulong special = (ulong)(op.LineAdvance - lineBase) + lineRange * (moved / minInst) + opcodeBase;
                        if (special <= 255) output.Add((byte)special);
                        else
                        {
                            output.Add(2); Leb128.Append(output, moved / minInst);                  // DW_LNS_advance_pc
                            // the row, no address advance
                            output.Add((byte)(op.LineAdvance - lineBase + opcodeBase));
                        }
                        continue;
                    }
                    case LineOpKind.AdvancePc:
                        output.Add(2);
                        Leb128.Append(output, moved / minInst);
                        continue;
                    case LineOpKind.ConstAddPc:
                        if (moved == advance) output.Add(8);
                        else { output.Add(2); Leb128.Append(output, moved / minInst); }
                        continue;
                    case LineOpKind.FixedAdvancePc:
                        if (moved > 0xffff) throw new DwarfFormatException("DW_LNS_fixed_advance_pc no longer fits");
                        output.Add(9);
                        output.Add((byte)(le ? moved : moved >> 8));
                        output.Add((byte)(le ? moved >> 8 : moved));
                        continue;
                    case LineOpKind.EndSequence:
                        rows.Add((section0, address, row, true));
                        section0 = -1; address = 0; row = new LineRegisters();
                        break;
                    case LineOpKind.SetAddress:
                        if (relocs.TryGetValue((ulong)op.OperandOffset, out var t))
                        {
                            section0 = t.Section;
                            address = t.Value;
                        }
                        else { section0 = -1; address = op.Operand; }
                        break;
                    case LineOpKind.Copy: rows.Add((section0, address, row, false)); break;
                    case LineOpKind.AdvanceLine: row = row with { Line = row.Line + op.LineAdvance }; break;
                    case LineOpKind.SetFile: row = row with { File = op.Operand }; break;
                    case LineOpKind.SetColumn: row = row with { Column = op.Operand }; break;
                }
                Copy(output, data, op.Start, op.End);
            }
            AppendIslandRows(output, rows, minInst);
            PatchUnitLength(output, unitStart, le);
            pos = h.UnitEnd;
        }
        anchors.Add(((ulong)data.Length, (ulong)output.Count));
        Rewrite(section, [.. output], anchors);
        foreach (var (at, island) in _islandAddresses) AddIslandAddressRelocation(section, at, island);
    }

    /// <summary>The line-program registers a row carries besides its address.</summary>
    private readonly record struct LineRegisters(ulong File, long Line, ulong Column)
    {
        public LineRegisters() : this(1, 1, 0) { }
    }

    private readonly List<(int At, IslandLine Island)> _islandAddresses = [];

    /// <summary>
    /// One sequence per island of this unit's code: the row of its call (file, line, column), covering the island's
    /// 12 bytes. Its DW_LNE_set_address gets a relocation to the island, added once the section's layout is final.
    /// </summary>
    private void AppendIslandRows(List<byte> output,
        List<(int Section, ulong Address, LineRegisters State, bool End)> rows, byte minInst)
    {
        foreach (var island in _islands)
        {
            // The call's row: the last row at or before the call whose sequence goes on past it.
            int found = -1;
            for (int i = 0; i + 1 < rows.Count; i++)
                if (!rows[i].End && rows[i].Section == island.Section && rows[i].Address <= island.Call
                    && rows[i + 1].Section == island.Section && rows[i + 1].Address > island.Call)
                    found = i;
            if (found < 0) continue;
            var state = rows[found].State;
            output.AddRange([0, 9, 2]);                                                   // DW_LNE_set_address
            _islandAddresses.Add((output.Count, island));
            output.AddRange(new byte[8]);
            if (state.File != 1) { output.Add(4); Leb128.Append(output, state.File); }
            if (state.Line != 1) { output.Add(3); Leb128.AppendSigned(output, state.Line - 1); }
            if (state.Column != 0) { output.Add(5); Leb128.Append(output, state.Column); }
            output.Add(1);                                                                // DW_LNS_copy
            output.Add(2); Leb128.Append(output, (ulong)IslandPlanner.IslandSize / minInst);   // DW_LNS_advance_pc
            output.AddRange([0, 1, 1]);                                                   // DW_LNE_end_sequence
        }
    }

    private void AddIslandAddressRelocation(ElfSection lineSection, int at, IslandLine island)
    {
        var table = _image.RelocationSections.FirstOrDefault(rs => rs.Target.Index == lineSection.Index);
        var symbol = _image.Symbols.FirstOrDefault(y => y.Type == SttSection && y.SectionIndex == (uint)island.Section);
        if (table is null || symbol is null)
            throw new DwarfFormatException("there is no relocation table for .debug_line or no section symbol for " +
                "the island's section");
        int relaSection = table.Section.Index, sym = symbol.Index;
        _edits.Add(c => c.AddRelocation(relaSection, (ulong)at, R.PPC64_ADDR64, sym, (long)island.Island));
    }
}
