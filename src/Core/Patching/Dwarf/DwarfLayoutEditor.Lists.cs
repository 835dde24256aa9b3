using PpcLivepatch.Dwarf;
using PpcLivepatch.Elf;

namespace PpcLivepatch.Patching;

/// <summary>DWARF 5 <c>.debug_rnglists</c> and <c>.debug_loclists</c>, with their offset tables.</summary>
internal sealed partial class DwarfLayoutEditor
{
    private void Lists(string name, bool locations)
    {
        var section = Section(name);
        if (section is null) return;
        var relocs = Relocations(section);
        var data = _image.Data(section);
        bool le = _image.IsLittleEndian;
        var output = new List<byte>(data.Length + 16);
        var anchors = new List<(ulong Old, ulong New)>();
        int pos = 0;
        while (pos + 12 <= data.Length)
        {
            var r = new DwarfReader(data, le, pos);
            uint length = r.U32();
            if (length >= 0xffff_fff0) throw new DwarfFormatException($"64-bit DWARF {name} is not rewritten");
            int end = checked(r.Position + (int)length);
            r.U16();
            int addressSize = r.U8();
            r.U8();
            uint offsetCount = r.U32();
            // DWARF 5 offset tables (clang: DW_FORM_loclistx/rnglistx) hold each list's start relative to the table,
            // which follows the header; the lists' new starts are written in once the unit is rewritten.
            int table = r.Position;
            r.Skip(4UL * offsetCount);
            var unit = _unitsByListBase.TryGetValue((name, (ulong)table), out var u) ? u
                : _addrUnits.Count == 1 ? _addrUnits[0] : new UnitBases(_cuBase, null, addressSize);
            int unitStart = output.Count, firstEntry = r.Position;
            anchors.Add(((ulong)pos, (ulong)output.Count));
            int unitAnchors = anchors.Count;
            Copy(output, data, pos, r.Position);
            Target? baseAddress = unit.Base;
            ulong Span(int code, ulong from, ulong to) => locations ? Moved(code, from, to) : Ranged(code, from, to);
            while (r.Position < end)
            {
                int start = r.Position;
                anchors.Add(((ulong)start, (ulong)output.Count));
                if (locations && _viewLists.Contains((ulong)start))
                {
                    // View numbers count rows at one address; moving code keeps them. Copied as they are, up to the
                    // location list they belong to, and they must decode as whole ULEB pairs up to there.
                    ulong next = _v5LocLists.GetViewBetween((ulong)start + 1, (ulong)end).FirstOrDefault();
                    if (next == 0) throw new DwarfFormatException($"{name} has a location view list at 0x{start:x} " +
                        "without its location list");
                    while ((ulong)r.Position < next) { r.Uleb(); r.Uleb(); }
                    if ((ulong)r.Position != next) throw new DwarfFormatException($"{name}'s view list at " +
                        $"0x{start:x} runs into its location list");
                    Copy(output, data, start, r.Position);
                    continue;
                }
                byte kind = r.U8();
                output.Add(kind);
                int afterKind = r.Position;
                switch (locations ? kind : RangeKindAsLocation(kind))
                {
                    case 0: baseAddress = unit.Base; break;                                          // end_of_list
                    case 1:                                                                          // base_addressx
                        baseAddress = Address(unit.AddrBase, r.Uleb(), addressSize);
                        Copy(output, data, afterKind, r.Position);
                        break;
                    // startx_endx
                    case 2:
                        r.Uleb();
                        r.Uleb();
                        Copy(output, data, afterKind, r.Position);
                        CopyExpression(ref r, data, output, anchors, locations);
                        break;
                    case 3:                                                                          // startx_length
                    {
                        var s0 = Address(unit.AddrBase, r.Uleb(), addressSize);
                        Copy(output, data, afterKind, r.Position);
                        ulong len = r.Uleb();
                        Leb128.Append(output, s0 is { } st ? Span(st.Section, st.Value, st.Value + len) : len);
                        CopyExpression(ref r, data, output, anchors, locations);
                        break;
                    }
                    case 4:                                                                          // offset_pair
                    {
                        ulong from = r.Uleb(), to = r.Uleb();
                        if (baseAddress is { } b && Changes(b.Section))
                        {
                            Leb128.Append(output, Moved(b.Section, b.Value, b.Value + from));
                            Leb128.Append(output, Span(b.Section, b.Value, b.Value + to));
                        }
                        else Copy(output, data, afterKind, r.Position);
                        CopyExpression(ref r, data, output, anchors, locations);
                        break;
                    }
                    // default_location
                    case 5: { int e = r.Position; r.Skip(r.Uleb()); Copy(output, data, e, r.Position); break; }
                    case 6:                                                                          // base_address
                        baseAddress = relocs.TryGetValue((ulong)r.Position, out var t) ? t : null;
                        r.Skip((ulong)addressSize);
                        Copy(output, data, afterKind, r.Position);
                        break;
                    // start_end
                    case 7:
                        if (!locations) GrowRelocatedEnd(section, (ulong)(r.Position + addressSize));
                        r.Skip(2UL * (ulong)addressSize);
                        Copy(output, data, afterKind, r.Position);
                        CopyExpression(ref r, data, output, anchors, locations);
                        break;
                    case 8:                                                                          // start_length
                    {
                        bool known = relocs.TryGetValue((ulong)r.Position, out var s0);
                        r.Skip((ulong)addressSize);
                        Copy(output, data, afterKind, r.Position);
                        ulong len = r.Uleb();
                        Leb128.Append(output, known ? Span(s0.Section, s0.Value, s0.Value + len) : len);
                        CopyExpression(ref r, data, output, anchors, locations);
                        break;
                    }
                    // GNU view pair
                    case 9: r.Uleb(); r.Uleb(); Copy(output, data, afterKind, r.Position); break;
                    default: throw new DwarfFormatException($"{name} entry kind {kind} is not known");
                }
            }
            if (offsetCount > 0) RewriteOffsetTable(name, output, data, anchors, unitAnchors, table,
                unitStart + (table - pos), offsetCount, le);
            PatchUnitLength(output, unitStart, le);
            pos = end;
        }
        anchors.Add(((ulong)data.Length, (ulong)output.Count));
        Rewrite(section, [.. output], anchors);
    }

    /// <summary>A location entry's expression, copied; its anchor lets a relocation inside it (DW_OP_addr)
    /// move.</summary>
    private static void CopyExpression(ref DwarfReader r, ReadOnlySpan<byte> data, List<byte> output,
        List<(ulong Old, ulong New)> anchors, bool locations)
    {
        if (!locations) return;
        int e = r.Position;
        anchors.Add(((ulong)e, (ulong)output.Count));
        r.Skip(r.Uleb());
        Copy(output, data, e, r.Position);
    }

    /// <summary>Each offset-table entry of a rewritten list unit: the new distance from the table to its
    /// list.</summary>
    private static void RewriteOffsetTable(string name, List<byte> output, ReadOnlySpan<byte> data,
        List<(ulong Old, ulong New)> anchors,
                                           int unitAnchors, int table, int newTable, uint count, bool le)
    {
        var starts = new Dictionary<ulong, ulong>();
        for (int i = unitAnchors; i < anchors.Count; i++) starts.TryAdd(anchors[i].Old, anchors[i].New);
        for (int i = 0; i < count; i++)
        {
            ulong offset = new DwarfReader(data, le, table + 4 * i).U32();
            if (!starts.TryGetValue((ulong)table + offset, out ulong start))
                throw new DwarfFormatException($"{name} offset entry {i} (0x{offset:x}) does not start a list");
            ulong moved = start - (ulong)newTable;
            for (int k = 0; k < 4; k++) output[newTable + 4 * i + k] = (byte)(moved >> (8 * (le ? k : 3 - k)));
        }
    }


    /// <summary>Range list kinds in the numbering of location list kinds (which have default_location at 5).</summary>
    private static int RangeKindAsLocation(byte kind) => kind switch
    {
        0 => 0, 1 => 1, 2 => 2, 3 => 3, 4 => 4, 5 => 6, 6 => 7, 7 => 8,
        _ => 99,
    };
}
