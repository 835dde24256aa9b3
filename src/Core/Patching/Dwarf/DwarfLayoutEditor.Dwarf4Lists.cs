using PpcLivepatch.Dwarf;
using PpcLivepatch.Elf;

namespace PpcLivepatch.Patching;

/// <summary>DWARF 4 <c>.debug_ranges</c> and <c>.debug_loc</c>.</summary>
internal sealed partial class DwarfLayoutEditor
{
    /// <summary>
    /// DWARF 4 <c>.debug_ranges</c>/<c>.debug_loc</c>: (begin, end) pairs. With relocations they follow the addends;
    /// without (the assembler resolved <c>.LVL1-.Ltext0</c>) they are offsets from the current base: the CU's low_pc,
    /// or the last base-address-selection entry.
    /// </summary>
    private void Dwarf4Lists(string name, bool locations)
    {
        var section = Section(name);
        if (section is null) return;
        var relocs = Relocations(section);
        byte[] data = _image.Data(section).ToArray();
        bool le = _image.IsLittleEndian, changed = false;
        foreach (ulong list in locations ? _locLists : _rangeLists)
            changed |= Dwarf4List(section, relocs, data, (int)list, locations);
        if (changed) SetSectionData(section.Index, data);
    }

    private bool Dwarf4List(ElfSection section, Dictionary<ulong, Target> relocs, byte[] data, int pos, bool locations)
    {
        string name = section.Name;
        bool le = _image.IsLittleEndian, changed = false;
        Target? baseAddress = _cuBase;
        while (pos + 16 <= data.Length)
        {
            var r = new DwarfReader(data, le, pos);
            ulong begin = r.U64(), end = r.U64();
            bool relocated = relocs.ContainsKey((ulong)pos) || relocs.ContainsKey((ulong)pos + 8);
            if (begin == 0 && end == 0 && !relocated) return changed;                                   // end of list
            if (begin == ulong.MaxValue)
            {
                baseAddress = relocs.TryGetValue((ulong)pos + 8, out var b) ? b : null;
                pos += 16;
                continue;
            }
            if (relocated && !locations) GrowRelocatedEnd(section, (ulong)pos + 8);
            if (!relocated && baseAddress is { } bas && Changes(bas.Section))
            {
                ulong newBegin = Moved(bas.Section, bas.Value, bas.Value + begin);
                ulong newEnd = locations ? Moved(bas.Section, bas.Value, bas.Value + end) : Ranged(bas.Section,
                    bas.Value, bas.Value + end);
                if (newBegin != begin) { ByteOrder.Write(data.AsSpan(pos), 8, newBegin, le); changed = true; }
                if (newEnd != end) { ByteOrder.Write(data.AsSpan(pos + 8), 8, newEnd, le); changed = true; }
            }
            else if (!relocated && baseAddress is null && _moved.Count > 0)
                throw new DwarfFormatException($"{name} has an entry without a known base address");
            pos += 16;
            if (locations) pos += 2 + r.U16();
        }
        throw new DwarfFormatException($"a {name} list runs past the end of the section");
    }
}
