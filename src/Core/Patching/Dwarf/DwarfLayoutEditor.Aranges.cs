using PpcLivepatch.Dwarf;
using PpcLivepatch.Elf;

namespace PpcLivepatch.Patching;

/// <summary><c>.debug_aranges</c>: lengths as data.</summary>
internal sealed partial class DwarfLayoutEditor
{
    private void Aranges()
    {
        var section = Section(".debug_aranges");
        if (section is null) return;
        var relocs = Relocations(section);
        byte[] data = _image.Data(section).ToArray();
        bool le = _image.IsLittleEndian, changed = false;
        int pos = 0;
        while (pos + 12 <= data.Length)
        {
            var r = new DwarfReader(data, le, pos);
            uint length = r.U32();
            int end = checked(r.Position + (int)length);
            r.U16(); r.U32();
            int addressSize = r.U8();
            r.U8();
            if (addressSize is not (4 or 8)) throw new DwarfFormatException(".debug_aranges has address size " +
                $"{addressSize}");
            int tuples = (r.Position + 2 * addressSize - 1) / (2 * addressSize) * (2 * addressSize);
            for (int at = tuples; at + 2 * addressSize <= end; at += 2 * addressSize)
            {
                if (!relocs.TryGetValue((ulong)at, out var t) || !Changes(t.Section)) continue;
                var field = new DwarfReader(data, le, at + addressSize);
                ulong len = field.Fixed(addressSize);
                ulong moved = Ranged(t.Section, t.Value, t.Value + len);
                if (moved != len)
                {
                    ByteOrder.Write(data.AsSpan(at + addressSize), addressSize, moved, le);
                    changed = true;
                }
            }
            pos = end;
        }
        if (changed) SetSectionData(section.Index, data);
    }
}
