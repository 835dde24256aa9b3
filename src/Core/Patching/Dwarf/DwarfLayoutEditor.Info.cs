using PpcLivepatch.Dwarf;
using PpcLivepatch.Elf;

namespace PpcLivepatch.Patching;

/// <summary><c>.debug_info</c>: DW_AT_high_pc lengths, and where the lists and address tables are.</summary>
internal sealed partial class DwarfLayoutEditor
{
    private void Info()
    {
        var info = Section(".debug_info");
        var abbrevSection = Section(".debug_abbrev");
        if (info is null || abbrevSection is null) return;
        var relocs = Relocations(info);
        var abbrevData = _image.Data(abbrevSection);
        byte[] data = _image.Data(info).ToArray();
        bool le = _image.IsLittleEndian, changed = false;
        int pos = 0;
        var abbrevTables = new Dictionary<ulong, Dictionary<ulong, List<(ulong, ulong, long)>>>();
        while (pos + 11 <= data.Length)
        {
            var r = new DwarfReader(data, le, pos);
            uint length = r.U32();
            if (length >= 0xffff_fff0) throw new DwarfFormatException("64-bit DWARF is not rewritten");
            int end = checked(r.Position + (int)length);
            int version = r.U16();
            int addressSize;
            ulong abbrevOffset;
            if (version >= 5)
            {
                byte unitType = r.U8();
                addressSize = r.U8();
                int field = r.Position;
                abbrevOffset = r.U32();
                if (relocs.TryGetValue((ulong)field, out var t)) abbrevOffset = t.Value;
                if (unitType is 4 or 5) r.Skip(8);        // skeleton/split: dwo id
                else if (unitType is 2 or 6) r.Skip(12);  // type units: signature + offset
            }
            else
            {
                int field = r.Position;
                abbrevOffset = r.U32();
                if (relocs.TryGetValue((ulong)field, out var t)) abbrevOffset = t.Value;
                addressSize = r.U8();
            }
            // A unit shorter than its own header is malformed (a run of zeros would otherwise be a million units).
            if (r.Position > end) throw new DwarfFormatException($"the unit at .debug_info+0x{pos:x} is shorter " +
                "than its header");
            // Units of one object share their abbreviation table: read it once.
            if (!abbrevTables.TryGetValue(abbrevOffset, out var abbrevs))
                abbrevTables[abbrevOffset] = abbrevs = ReadAbbrevs(abbrevData, (int)abbrevOffset, le);
            // DWARF 5 units (clang) name addresses by index into .debug_addr from the CU's DW_AT_addr_base, which
            // the CU's DIE may give after its own DW_AT_low_pc.
            ulong? addrBase = null;
            bool first = true;
            while (r.Position < end)
            {
                ulong code = r.Uleb();
                if (code == 0) continue;
                if (!abbrevs.TryGetValue(code, out var decl)) throw new DwarfFormatException($"abbreviation {code} " +
                    "is not defined");
                Target? low = null;
                ulong? lowIndex = null;
                ulong? loclistsBase = null, rnglistsBase = null;
                (int At, int Size)? high = null;
                foreach (var (name, form, _) in decl)
                {
                    int at = r.Position;
                    SkipForm(ref r, form, addressSize, version);
                    // location, frame_base, data_location… / ranges
                    if (version < 5 && form is 0x17 or 0x06 && name is 0x02 or 0x40 or 0x4b or 0x55)
                    {
                        ulong offset = relocs.TryGetValue((ulong)at, out var rt) ? rt.Value : new DwarfReader(data, le,
                            at).U32();
                        (name == 0x55 ? _rangeLists : _locLists).Add(offset);
                    }
                    // GCC's location views (DWARF 5): DW_AT_GNU_locviews names a list of ULEB view pairs that sits in
                    // .debug_loclists right before the DIE's location list, with no entry kinds of its own.
                    if (version >= 5 && form == 0x17 && name is 0x02 or 0x2137)
                    {
                        ulong offset = relocs.TryGetValue((ulong)at, out var rt) ? rt.Value : new DwarfReader(data, le,
                            at).U32();
                        (name == 0x2137 ? _viewLists : _v5LocLists).Add(offset);
                    }
                    // DW_AT_addr_base, loclists_base, rnglists_base
                    if (form == 0x17 && name is 0x73 or 0x8c or 0x74)
                    {
                        ulong offset = relocs.TryGetValue((ulong)at, out var rt) ? rt.Value : new DwarfReader(data, le,
                            at).U32();
                        if (name == 0x73) addrBase = offset;
                        else if (name == 0x8c) loclistsBase = offset;
                        else rnglistsBase = offset;
                    }
                    // DW_AT_low_pc
                    if (name == 0x11 && form == 0x01 && relocs.TryGetValue((ulong)at, out var t)) low = t;
                    // … as addrx
                    else if (name == 0x11 && form is 0x1b or 0x29 or 0x2a or 0x2b or 0x2c)
                        lowIndex = form == 0x1b ? new DwarfReader(data, le, at).Uleb() : new DwarfReader(data, le,
                            at).Fixed(r.Position - at);
                    // DW_AT_high_pc, constant
                    else if (name == 0x12 && form is 0x0b or 0x05 or 0x06 or 0x07) high = (at, r.Position - at);
                    // … as an address
                    else if (name == 0x12 && form == 0x01) GrowRelocatedEnd(info, (ulong)at);
                    else if (name == 0x12 && form is 0x0f) throw new DwarfFormatException("ULEB DW_AT_high_pc is not " +
                        "rewritten");
                }
                if (lowIndex is { } index) low = Address(addrBase, index, addressSize);
                // The first DIE of the unit is the CU: its low_pc is the base of lists without a base_address entry.
                if (first)
                {
                    var unit = new UnitBases(low, addrBase, addressSize);
                    _cuBase ??= low;
                    if (loclistsBase is { } lb) _unitsByListBase[(".debug_loclists", lb)] = unit;
                    if (rnglistsBase is { } rb) _unitsByListBase[(".debug_rnglists", rb)] = unit;
                    if (addrBase is not null) _addrUnits.Add(unit);
                    first = false;
                }
                if (low is { } lo && high is { } hi && Changes(lo.Section))
                {
                    ulong len = new DwarfReader(data, le, hi.At).Fixed(hi.Size);
                    ulong moved = Ranged(lo.Section, lo.Value, lo.Value + len);
                    if (hi.Size < 8 && moved >> (8 * hi.Size) != 0) throw new DwarfFormatException("a DW_AT_high_pc " +
                        "length no longer fits its form");
                    if (moved != len) { ByteOrder.Write(data.AsSpan(hi.At), hi.Size, moved, le); changed = true; }
                }
            }
            pos = end;
        }
        if (changed) SetSectionData(info.Index, data);
    }

    private static Dictionary<ulong, List<(ulong Name, ulong Form, long Implicit)>> ReadAbbrevs(ReadOnlySpan<byte> data,
        int offset, bool le)
    {
        var result = new Dictionary<ulong, List<(ulong, ulong, long)>>();
        var r = new DwarfReader(data, le, offset);
        while (true)
        {
            ulong code = r.Uleb();
            if (code == 0) break;
            r.Uleb();   // tag
            r.U8();     // children
            var attrs = new List<(ulong, ulong, long)>();
            while (true)
            {
                ulong name = r.Uleb(), form = r.Uleb();
                if (name == 0 && form == 0) break;
                attrs.Add((name, form, form == 0x21 ? r.Sleb() : 0));
            }
            result[code] = attrs;
        }
        return result;
    }

    private static void SkipForm(ref DwarfReader r, ulong form, int addressSize, int version)
    {
        switch (form)
        {
            case 0x01: r.Skip((ulong)addressSize); break;
            case 0x03: r.Skip(r.U16()); break;
            case 0x04: r.Skip(r.U32()); break;
            case 0x05 or 0x12 or 0x26 or 0x2a: r.Skip(2); break;
            case 0x06 or 0x0e or 0x13 or 0x17 or 0x1c or 0x1d or 0x1f or 0x28 or 0x2c or 0x1f20 or 0x1f21:
                r.Skip(4);
                break;
            case 0x07 or 0x14 or 0x20 or 0x24: r.Skip(8); break;
            case 0x08: r.CString(); break;
            case 0x09 or 0x18: r.Skip(r.Uleb()); break;
            case 0x0a: r.Skip(r.U8()); break;
            case 0x0b or 0x0c or 0x11 or 0x25 or 0x29: r.Skip(1); break;
            case 0x0d: r.Sleb(); break;
            case 0x0f or 0x15 or 0x1a or 0x1b or 0x22 or 0x23 or 0x1f01 or 0x1f02: r.Uleb(); break;
            case 0x10: r.Skip(version <= 2 ? (ulong)addressSize : 4); break;
            case 0x16: SkipForm(ref r, r.Uleb(), addressSize, version); break;
            case 0x19 or 0x21: break;
            case 0x1e: r.Skip(16); break;
            case 0x27 or 0x2b: r.Skip(3); break;
            default: throw new DwarfFormatException($"DWARF form 0x{form:x} is not known");
        }
    }
}
