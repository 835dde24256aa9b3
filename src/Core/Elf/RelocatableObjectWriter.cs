using System.Text;
using static PpcLivepatch.Elf.ElfConstants;

namespace PpcLivepatch.Elf;

/// <summary>
/// Lays out a new ELF64 relocatable object from sections, symbols and RELA entries: what the diff writes, where the
/// rewriting container (<see cref="ElfContainer"/>) only edits objects that exist. Deterministic: the same calls
/// give the same bytes. Locals must be added before globals (the gABI's order; sh_info counts the locals).
/// </summary>
public sealed class RelocatableObjectWriter(bool littleEndian, uint flags)
{
    private sealed record Section(string Name, uint Type, ulong Flags, ulong Alignment, byte[] Data, ulong Size,
        ulong EntrySize)
    {
        /// <summary><c>sh_link</c>: the section an SHF_LINK_ORDER section goes with.</summary>
        public int Link { get; set; }
    }

    private sealed record Symbol(string Name, byte Info, byte Other, ushort SectionIndex, ulong Value, ulong Size);

    private sealed record Rela(string Name, int Target, ulong Flags, List<(ulong Offset, uint Type, int Symbol,
        long Addend)> Entries);

    private readonly List<Section> _sections = [];
    private readonly List<Symbol> _symbols = [new("", 0, 0, 0, 0, 0)];
    private readonly List<Rela> _relas = [];
    private int _firstGlobal = -1;

    /// <summary>0 and 1 mean none; otherwise a power of two, at most 64 KiB (a ppc64 kernel's largest page).</summary>
    public static bool IsValidAlignment(ulong alignment) =>
        alignment <= 1 || (alignment <= 1 << 16 && (alignment & (alignment - 1)) == 0);

    /// <summary>Adds a section and returns its header index (the null section is 0).</summary>
    public int AddSection(string name, uint type, ulong sectionFlags, ulong alignment, byte[] data, ulong entrySize = 0)
    {
        if (!IsValidAlignment(alignment)) throw new ArgumentOutOfRangeException(nameof(alignment));
        _sections.Add(new Section(name, type, sectionFlags, Math.Max(1, alignment), data, (ulong)data.Length,
            entrySize));
        return _sections.Count;
    }

    /// <summary>Makes <paramref name="section"/> (SHF_LINK_ORDER) go with <paramref name="linkedTo"/>, as
    /// <c>__patchable_function_entries</c> goes with its function's section.</summary>
    public void SetLink(int section, int linkedTo) => _sections[section - 1].Link = linkedTo;

    public int AddNobitsSection(string name, ulong sectionFlags, ulong alignment, ulong size)
    {
        if (!IsValidAlignment(alignment)) throw new ArgumentOutOfRangeException(nameof(alignment));
        _sections.Add(new Section(name, ShtNobits, sectionFlags, Math.Max(1, alignment), [], size, 0));
        return _sections.Count;
    }

    public int AddSymbol(string name, byte bind, byte type, ushort sectionIndex, ulong value = 0, ulong size = 0,
        byte other = 0)
    {
        if (bind == StbLocal && _firstGlobal >= 0)
            throw new InvalidOperationException($"local symbol {name} added after a global");
        if (bind != StbLocal && _firstGlobal < 0) _firstGlobal = _symbols.Count;
        _symbols.Add(new Symbol(name, (byte)(bind << 4 | type), other, sectionIndex, value, size));
        return _symbols.Count - 1;
    }

    public void AddRelocations(string name, int targetSection, ulong sectionFlags,
        List<(ulong Offset, uint Type, int Symbol, long Addend)> entries) =>
        _relas.Add(new Rela(name, targetSection, sectionFlags, entries));

    public byte[] Write()
    {
        int firstGlobal = _firstGlobal < 0 ? _symbols.Count : _firstGlobal;
        var shstr = new StringTable();
        var str = new StringTable();
        var output = new List<byte>(new byte[Elf64HeaderSize]);
        var headers = new List<byte[]> { new byte[Elf64SectionHeaderSize] };

        void Align(ulong alignment)
        {
            while ((ulong)output.Count % alignment != 0) output.Add(0);
        }
        byte[] Header(string name, uint type, ulong sectionFlags, ulong offset, ulong size, uint link, uint info,
            ulong alignment, ulong entrySize)
        {
            var h = new byte[Elf64SectionHeaderSize];
            W32(h, 0, shstr.Add(name)); W32(h, 4, type); W64(h, 8, sectionFlags); W64(h, 24, offset);
            W64(h, 32, size); W32(h, 40, link); W32(h, 44, info); W64(h, 48, alignment); W64(h, 56, entrySize);
            return h;
        }

        foreach (var s in _sections)
        {
            Align(s.Alignment);
            ulong offset = (ulong)output.Count;
            if (s.Type != ShtNobits) output.AddRange(s.Data);
            headers.Add(Header(s.Name, s.Type, s.Flags, offset, s.Size, (uint)s.Link, 0, s.Alignment, s.EntrySize));
        }
        int symtabIndex = _sections.Count + _relas.Count + 1;
        foreach (var r in _relas)
        {
            Align(8);
            ulong offset = (ulong)output.Count;
            foreach (var (o, type, sym, addend) in r.Entries)
            {
                var e = new byte[Elf64RelaSize];
                W64(e, 0, o); W64(e, 8, (ulong)sym << 32 | type); W64(e, 16, (ulong)addend);
                output.AddRange(e);
            }
            headers.Add(Header(r.Name, ShtRela, r.Flags, offset, (ulong)(r.Entries.Count * Elf64RelaSize),
                (uint)symtabIndex, (uint)r.Target, 8, Elf64RelaSize));
        }
        Align(8);
        ulong symtabOffset = (ulong)output.Count;
        foreach (var sym in _symbols)
        {
            var e = new byte[Elf64SymbolSize];
            W32(e, 0, sym.Name.Length == 0 ? 0 : str.Add(sym.Name));
            e[4] = sym.Info; e[5] = sym.Other; W16(e, 6, sym.SectionIndex); W64(e, 8, sym.Value); W64(e, 16, sym.Size);
            output.AddRange(e);
        }
        headers.Add(Header(".symtab", ShtSymtab, 0, symtabOffset, (ulong)(_symbols.Count * Elf64SymbolSize),
            (uint)symtabIndex + 1, (uint)firstGlobal, 8, Elf64SymbolSize));
        ulong strtabOffset = (ulong)output.Count;
        output.AddRange(str.Bytes);
        headers.Add(Header(".strtab", ShtStrtab, 0, strtabOffset, (ulong)str.Bytes.Count, 0, 0, 1, 0));
        int shstrIndex = headers.Count;
        ulong shstrOffset = (ulong)output.Count;
        // The section-name table names itself, so its own name goes in before its bytes are copied.
        var shstrHeader = Header(".shstrtab", ShtStrtab, 0, shstrOffset, 0, 0, 0, 1, 0);
        output.AddRange(shstr.Bytes);
        W64(shstrHeader, 32, (ulong)shstr.Bytes.Count);
        headers.Add(shstrHeader);
        Align(8);
        ulong shoff = (ulong)output.Count;
        foreach (var h in headers) output.AddRange(h);

        var bytes = output.ToArray();
        bytes[0] = 0x7f; bytes[1] = (byte)'E'; bytes[2] = (byte)'L'; bytes[3] = (byte)'F';
        bytes[4] = ClassElf64; bytes[5] = littleEndian ? DataLsb : DataMsb; bytes[6] = 1;
        W16(bytes, 16, EtRel); W16(bytes, 18, EmPpc64); W32(bytes, 20, 1); W64(bytes, 40, shoff);
        W32(bytes, 48, flags); W16(bytes, 52, Elf64HeaderSize); W16(bytes, 58, Elf64SectionHeaderSize);
        W16(bytes, 60, (ushort)headers.Count); W16(bytes, 62, (ushort)shstrIndex);
        return bytes;
    }

    private void W16(byte[] b, int at, uint v) => ByteOrder.Write(b.AsSpan(at), 2, v, littleEndian);
    private void W32(byte[] b, int at, uint v) => ByteOrder.Write(b.AsSpan(at), 4, v, littleEndian);
    private void W64(byte[] b, int at, ulong v) => ByteOrder.Write(b.AsSpan(at), 8, v, littleEndian);

    private sealed class StringTable
    {
        private readonly Dictionary<string, uint> _offsets = new(StringComparer.Ordinal);
        public List<byte> Bytes { get; } = [0];

        public uint Add(string s)
        {
            if (_offsets.TryGetValue(s, out uint at)) return at;
            at = (uint)Bytes.Count;
            Bytes.AddRange(Encoding.UTF8.GetBytes(s));
            Bytes.Add(0);
            _offsets[s] = at;
            return at;
        }
    }
}
