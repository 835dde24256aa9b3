using System.Buffers.Binary;
using System.Text;
using PpcLivepatch.Diagnostics;
using PpcLivepatch.Ppc64;
using static PpcLivepatch.Elf.ElfConstants;

namespace PpcLivepatch.Elf;

public sealed record ElfSection(
    int Index, string Name, uint Type, ulong Flags, ulong Offset, ulong Size, uint Link, uint Info, ulong Alignment,
        ulong EntrySize)
{
    public bool IsAlloc => (Flags & ShfAlloc) != 0;
    public bool IsExecutable => (Flags & ShfExecInstr) != 0;
    public bool HasFileData => Type != ShtNobits && Type != ShtNull;

}

/// <summary>A symbol with its raw <c>st_shndx</c> (after SHN_XINDEX resolution), so SHN_LIVEPATCH stays
/// visible.</summary>
public sealed record ElfSymbol(int Index, string Name, ulong Value, ulong Size, byte Info, byte Other,
    uint SectionIndex)
{
    public byte Type => (byte)(Info & 0xf);
    public byte Bind => (byte)(Info >> 4);
    public bool IsUndefined => SectionIndex == ShnUndef;
    public bool IsLivepatch => SectionIndex == ShnLivepatch;
    /// <summary>Defined in a real section of this object (not UND, ABS, COMMON or livepatch).</summary>
    public bool IsInSection => SectionIndex != ShnUndef && (SectionIndex < ShnLoReserve || SectionIndex > ShnXindex);
}

public readonly record struct ElfRela(ulong Offset, uint Type, uint SymbolIndex, long Addend);

/// <summary>A SHT_RELA section and the section it applies to (<c>sh_info</c>).</summary> <summary>What a relocated
/// field names: a section (−1: none, e.g. an undefined symbol) and an address in it.</summary>
public readonly record struct RelocationTarget(int Section, ulong Value, uint Type);

public sealed record ElfRelocationSection(ElfSection Section, ElfSection Target, IReadOnlyList<ElfRela> Entries)
{
    public bool IsLivepatch =>
        (Section.Flags & ShfRelaLivepatch) != 0
            || Section.Name.StartsWith(KlpNames.RelaPrefix, StringComparison.Ordinal);
}

/// <summary>
/// A validated, read-only view of a 64-bit relocatable ELF image: header, sections, symbols and RELA entries,
/// with every offset, size and index checked against the file before it is used. Analysis reads objects only
/// through this type; editing goes through <see cref="ElfContainer"/>, so the verifier re-reads what the
/// writer produced with an independent parser.
/// </summary>
public sealed class ElfImage
{
    private readonly ReadOnlyMemory<byte> _bytes;

    private ElfImage(string path, ReadOnlyMemory<byte> bytes) { Path = path; _bytes = bytes; }

    public string Path { get; }
    public bool IsLittleEndian { get; private set; }
    public ushort Machine { get; private set; }
    public uint Flags { get; private set; }
    public PpcAbi Abi { get; private set; }
    public IReadOnlyList<ElfSection> Sections { get; private set; } = [];
    public IReadOnlyList<ElfSymbol> Symbols { get; private set; } = [];
    public IReadOnlyList<ElfRelocationSection> RelocationSections { get; private set; } = [];
    public ReadOnlyMemory<byte> Bytes => _bytes;

    /// <summary>
    /// The contents of a section (empty for SHT_NOBITS). A zlib-compressed section (SHF_COMPRESSED, as
    /// <c>-gz</c> and the kernel's CONFIG_DEBUG_INFO_COMPRESSED write debug sections) reads as its uncompressed
    /// contents, which is what its relocations and every reader refer to.
    /// </summary>
    public ReadOnlySpan<byte> Data(ElfSection s) =>
        _inflated.TryGetValue(s.Index, out var inflated) ? inflated : RawData(s);

    /// <summary>The section's bytes as they are in the file.</summary>
    public ReadOnlySpan<byte> RawData(ElfSection s) =>
        s.HasFileData ? _bytes.Span.Slice((int)s.Offset, (int)s.Size) : [];

    /// <summary>The size of <see cref="Data"/>: the uncompressed size of a compressed section.</summary>
    public ulong ContentSize(ElfSection s) =>
        _inflated.TryGetValue(s.Index, out var inflated) ? (ulong)inflated.Length : s.Size;

    /// <summary>The compression header's alignment of a compressed section, for writing it back.</summary>
    public ulong? CompressedAlignment(ElfSection s) => _inflated.ContainsKey(s.Index) ? ReadU64(RawData(s), 16) : null;

    private readonly Dictionary<int, byte[]> _inflated = [];

    /// <summary>Reads the 32-bit word at <paramref name="offset"/> in a section, in the file's byte order.</summary>
    public uint ReadWord(ElfSection s, ulong offset) => ReadU32(Data(s), (int)offset);

    public uint ReadU32(ReadOnlySpan<byte> data, int offset) => IsLittleEndian
        ? BinaryPrimitives.ReadUInt32LittleEndian(data[offset..])
            : BinaryPrimitives.ReadUInt32BigEndian(data[offset..]);

    /// <summary>Writes a 32-bit word at <paramref name="offset"/> of <paramref name="data"/>, in the file's byte
    /// order.</summary>
    public void WriteU32(Span<byte> data, int offset, uint value) =>
        ByteOrder.Write(data[offset..], 4, value, IsLittleEndian);

    public ulong ReadU64(ReadOnlySpan<byte> data, int offset) => IsLittleEndian
        ? BinaryPrimitives.ReadUInt64LittleEndian(data[offset..])
            : BinaryPrimitives.ReadUInt64BigEndian(data[offset..]);

    public ushort ReadU16(ReadOnlySpan<byte> data, int offset) => IsLittleEndian
        ? BinaryPrimitives.ReadUInt16LittleEndian(data[offset..])
            : BinaryPrimitives.ReadUInt16BigEndian(data[offset..]);

    /// <summary> What each relocation of <paramref name="section"/> names, by offset: the symbol's section (−1 when it
    /// is not in a section), S + A, and the relocation type — the one map the DWARF and CFI readers and editors look
    /// addresses up in. </summary>
    public Dictionary<ulong, RelocationTarget> RelocationTargets(ElfSection section)
    {
        var map = new Dictionary<ulong, RelocationTarget>();
        foreach (var rs in RelocationSections.Where(r => r.Target.Index == section.Index))
        foreach (var rela in rs.Entries)
        {
            var sym = Symbols[(int)rela.SymbolIndex];
            map[rela.Offset] = new RelocationTarget(sym.IsInSection ? (int)sym.SectionIndex : -1,
                unchecked(sym.Value + (ulong)rela.Addend), rela.Type);
        }
        return map;
    }

    public ElfSection? SectionOrNull(uint index) => index < Sections.Count ? Sections[(int)index] : null;

    /// <summary>Reads and validates a file. Never throws for bad input: the problem comes back as a PLP1xxx
    /// diagnostic.</summary>
    public static bool TryLoad(string path, out ElfImage? image, out Diagnostic? error)
    {
        byte[]? buffer = null;
        if (!ObjectFileReader.TryRead(path, ref buffer, out int length, out error))
        {
            image = null;
            return false;
        }
        return TryParse(path, buffer!.AsMemory(0, length), out image, out error);
    }

    /// <summary>
    /// Reads a file into <paramref name="buffer"/> (grown when too small, reused otherwise) and parses it. Checking
    /// thousands of modules then allocates one buffer per thread instead of one array per file.
    /// </summary>
    public static bool TryLoad(string path, ref byte[]? buffer, out ElfImage? image, out Diagnostic? error)
    {
        if (buffer is null || buffer.Length < 64 * 1024) buffer = new byte[64 * 1024];
        if (!ObjectFileReader.TryRead(path, ref buffer, out int length, out error))
        {
            image = null;
            return false;
        }
        return TryParse(path, buffer!.AsMemory(0, length), out image, out error);
    }

    public static bool TryParse(string path, byte[] bytes, out ElfImage? image, out Diagnostic? error) =>
        TryParse(path, bytes.AsMemory(), out image, out error);

    /// <summary>
    /// Parses an image held in memory the caller owns (a reused read buffer): the image refers to it, so the caller
    /// must not reuse it while the image is in use. Reports built from the image do not refer to it.
    /// </summary>
    public static bool TryParse(string path, ReadOnlyMemory<byte> bytes, out ElfImage? image, out Diagnostic? error)
    {
        var candidate = new ElfImage(path, bytes);
        try
        {
            candidate.Parse();
            image = candidate;
            error = null;
            return true;
        }
        catch (MalformedElfException e)
        {
            image = null;
            error = Diagnostic.Create(e.Code, path, e.Message);
            return false;
        }
        catch (Exception e) when (e is ArgumentException or IndexOutOfRangeException or OverflowException)
        {
            // Every read is bounds-checked above; this is the net under that claim, not a code path we expect.
            image = null;
            error = Diagnostic.Create(DiagnosticCatalog.TruncatedOrMalformedHeader, path,
                $"malformed ELF object: {e.Message}");
            return false;
        }
    }

    private void Parse()
    {
        var b = _bytes.Span;
        if (b.Length == 0)
            throw new MalformedElfException(DiagnosticCatalog.NotElf, "file is empty, not an ELF object");
        if (b.Length < 4 || b[0] != 0x7f || b[1] != (byte)'E' || b[2] != (byte)'L' || b[3] != (byte)'F')
            throw new MalformedElfException(DiagnosticCatalog.NotElf, "not an ELF file (no \\x7fELF magic)");
        if (b.Length < 6)
            throw new MalformedElfException(DiagnosticCatalog.TruncatedOrMalformedHeader,
                $"ELF identification truncated at {b.Length} bytes");
        if (b[4] != ClassElf64)
            throw new MalformedElfException(DiagnosticCatalog.UnsupportedClass,
                b[4] == 1 ? "32-bit ELF (ELFCLASS32); ppc64 livepatch modules are ELFCLASS64" : "unknown ELF class " +
                    $"{b[4]}");
        if (b[5] != DataLsb && b[5] != DataMsb)
            throw new MalformedElfException(DiagnosticCatalog.TruncatedOrMalformedHeader,
                $"unknown ELF data encoding {b[5]}");
        IsLittleEndian = b[5] == DataLsb;
        if (b.Length < Elf64HeaderSize)
            throw new MalformedElfException(DiagnosticCatalog.TruncatedOrMalformedHeader,
                $"ELF header truncated: file has {b.Length} bytes, the header needs {Elf64HeaderSize}");

        var h = b;
        ushort type = ReadU16(h, 16);
        Machine = ReadU16(h, 18);
        if (Machine != EmPpc64)
            throw new MalformedElfException(DiagnosticCatalog.WrongMachine,
                $"object is for {MachineName(Machine)}, not EM_PPC64 (64-bit PowerPC)");
        if (type != EtRel)
            throw new MalformedElfException(DiagnosticCatalog.UnsupportedFileType,
                $"object is {FileTypeName(type)}; only relocatable objects (.o, .ko) can be checked");
        Flags = ReadU32(h, 48);
        Abi = AbiFacts.FromHeader(Flags, IsLittleEndian);
        ushort ehsize = ReadU16(h, 52);
        if (ehsize != Elf64HeaderSize)
            throw new MalformedElfException(DiagnosticCatalog.TruncatedOrMalformedHeader,
                $"e_ehsize is {ehsize}, expected {Elf64HeaderSize}");
        ulong phoff = ReadU64(h, 32);
        ushort phentsize = ReadU16(h, 54), phnum = ReadU16(h, 56);
        if (phnum != 0 && (phentsize != 56 || phoff > (ulong)b.Length || ((ulong)b.Length - phoff) / 56 < phnum))
            throw new MalformedElfException(DiagnosticCatalog.TruncatedOrMalformedHeader,
                $"program header table ({phnum} entries of {phentsize} bytes at 0x{phoff:x}) does not fit the " +
                    $"{b.Length}-byte file");

        ulong shoff = ReadU64(h, 40);
        ushort shentsize = ReadU16(h, 58);
        uint shnum = ReadU16(h, 60);
        uint shstrndx = ReadU16(h, 62);
        if (shoff == 0)
        {
            if (shnum != 0)
                throw new MalformedElfException(DiagnosticCatalog.MalformedSectionTable,
                    $"e_shnum is {shnum} but e_shoff is 0");
            return; // No sections: nothing to check, nothing to reject.
        }
        if (shentsize != Elf64SectionHeaderSize)
            throw new MalformedElfException(DiagnosticCatalog.MalformedSectionTable,
                $"e_shentsize is {shentsize}, expected {Elf64SectionHeaderSize}");
        if (shoff > (ulong)b.Length || (ulong)b.Length - shoff < Elf64SectionHeaderSize)
            throw new MalformedElfException(DiagnosticCatalog.MalformedSectionTable,
                $"section header table at 0x{shoff:x} lies past the end of the {b.Length}-byte file");
        // Extended numbering: the real counts live in section header 0 (gABI).
        if (shnum == 0) shnum = checked((uint)Math.Min(ReadU64(h, (int)shoff + 32), uint.MaxValue));
        if (shstrndx == ShnXindex) shstrndx = ReadU32(h, (int)shoff + 40);
        if (shnum > ((ulong)b.Length - shoff) / Elf64SectionHeaderSize)
            throw new MalformedElfException(DiagnosticCatalog.MalformedSectionTable,
                $"section header table ({shnum} entries at 0x{shoff:x}) extends past the end of the {b.Length}-byte " +
                    "file");

        var raw = new (uint name, uint type, ulong flags, ulong offset, ulong size, uint link, uint info, ulong align,
            ulong entsize)[shnum];
        for (int i = 0; i < shnum; i++)
        {
            int o = (int)shoff + i * Elf64SectionHeaderSize;
            raw[i] = (ReadU32(h, o), ReadU32(h, o + 4), ReadU64(h, o + 8), ReadU64(h, o + 24), ReadU64(h, o + 32),
                ReadU32(h, o + 40), ReadU32(h, o + 44), ReadU64(h, o + 48), ReadU64(h, o + 56));
            var s = raw[i];
            if (s.type != ShtNobits && s.type != ShtNull
                && (s.offset > (ulong)b.Length || (ulong)b.Length - s.offset < s.size))
                throw new MalformedElfException(DiagnosticCatalog.MalformedSectionTable,
                    $"section [{i}] (offset 0x{s.offset:x}, size 0x{s.size:x}) extends past the end of the " +
                        $"{b.Length}-byte file");
        }
        if (shstrndx >= shnum || raw[shstrndx].type != ShtStrtab)
            throw new MalformedElfException(DiagnosticCatalog.MalformedSectionTable,
                $"e_shstrndx {shstrndx} does not name a string table");
        var shstr = h.Slice((int)raw[shstrndx].offset, (int)raw[shstrndx].size);
        var sections = new ElfSection[shnum];
        for (int i = 0; i < shnum; i++)
        {
            var s = raw[i];
            string name = ReadString(shstr, s.name,
                () => $"section [{i}] name index 0x{s.name:x} is outside the section name table",
                    DiagnosticCatalog.MalformedSectionTable);
            sections[i] = new ElfSection(i, name, s.type, s.flags, s.offset, s.size, s.link, s.info, s.align,
                s.entsize);
        }
        // Two sections sharing file bytes would make an edit of one silently change the other.
        var laidOut = sections.Where(x => x.HasFileData && x.Size > 0).OrderBy(x => x.Offset).ToArray();
        for (int i = 1; i < laidOut.Length; i++)
            if (laidOut[i].Offset < laidOut[i - 1].Offset + laidOut[i - 1].Size)
                throw new MalformedElfException(DiagnosticCatalog.MalformedSectionTable,
                    $"sections {laidOut[i - 1].Name} and {laidOut[i].Name} overlap in the file " +
                        $"(0x{laidOut[i - 1].Offset:x}+0x{laidOut[i - 1].Size:x} and 0x{laidOut[i].Offset:x})");
        Sections = sections;
        // What compressed sections may inflate to, all together: a file's debug information is a few times its
        // compressed size, so far more than 64 times the whole file (and 8 MiB) is a zlib bomb, not DWARF.
        long budget = Math.Max(8L << 20, 64L * b.Length);
        foreach (var s in sections.Where(x => (x.Flags & ShfCompressed) != 0 && x.HasFileData))
        {
            _inflated[s.Index] = Inflate(s, budget);
            budget -= _inflated[s.Index].Length;
        }
        Symbols = ReadSymbols(sections);
        RelocationSections = ReadRelocations(sections);
    }

    /// <summary>An SHF_COMPRESSED section's contents: Elf64_Chdr (type, reserved, size, alignment), then the
    /// stream.</summary>
    private byte[] Inflate(ElfSection s, long budget)
    {
        var raw = RawData(s);
        if (raw.Length < Elf64ChdrSize)
            throw new MalformedElfException(DiagnosticCatalog.MalformedSectionTable,
                $"compressed section {s.Name} is shorter than its compression header");
        uint type = ReadU32(raw, 0);
        ulong size = ReadU64(raw, 8);
        if (type != ElfCompressZlib)
            throw new MalformedElfException(DiagnosticCatalog.MalformedSectionTable,
                $"section {s.Name} is compressed with ch_type {type}; only zlib (1) is read (recompile with " +
                    "-gz=zlib, or without -gz)");
        // A bound on what a section may claim to inflate to, so a crafted header cannot ask for gigabytes.
        if (size > (ulong)Math.Min(int.MaxValue - 64, 1032L * raw.Length + (1 << 20)))
            throw new MalformedElfException(DiagnosticCatalog.MalformedSectionTable,
                $"compressed section {s.Name} claims an implausible size 0x{size:x}");
        if ((long)size > budget)
            throw new MalformedElfException(DiagnosticCatalog.MalformedSectionTable,
                $"compressed section {s.Name} claims to inflate to 0x{size:x} bytes, more than this " +
                    $"{Bytes.Length}-byte file's compressed sections can plausibly hold (0x{Math.Max(budget, 0):x} " +
                    "left of 64 times the file); refusing what looks like a zlib bomb");
        var output = new byte[size];
        try
        {
            using var zlib = new System.IO.Compression.ZLibStream(new MemoryStream(raw[Elf64ChdrSize..].ToArray()),
                System.IO.Compression.CompressionMode.Decompress);
            int read = 0;
            while (read < output.Length && zlib.Read(output, read, output.Length - read) is var n && n > 0) read += n;
            if (read != output.Length || zlib.ReadByte() >= 0)
                throw new MalformedElfException(DiagnosticCatalog.MalformedSectionTable,
                    $"compressed section {s.Name} does not inflate to the 0x{size:x} bytes its header says");
        }
        catch (InvalidDataException e)
        {
            throw new MalformedElfException(DiagnosticCatalog.MalformedSectionTable,
                $"compressed section {s.Name} is not a valid zlib stream: {e.Message}");
        }
        return output;
    }

    private ElfSymbol[] ReadSymbols(ElfSection[] sections)
    {
        var symtabs = sections.Where(s => s.Type == ShtSymtab).ToArray();
        if (symtabs.Length == 0) return [];
        if (symtabs.Length > 1)
            throw new MalformedElfException(DiagnosticCatalog.MalformedSymbolTable,
                $"object has {symtabs.Length} symbol tables; a relocatable object has one");
        var symtab = symtabs[0];
        if (symtab.EntrySize != Elf64SymbolSize)
            throw new MalformedElfException(DiagnosticCatalog.MalformedSymbolTable,
                $"symbol table entry size is {symtab.EntrySize}, expected {Elf64SymbolSize}");
        if (symtab.Size % Elf64SymbolSize != 0)
            throw new MalformedElfException(DiagnosticCatalog.MalformedSymbolTable,
                $"symbol table size 0x{symtab.Size:x} is not a multiple of {Elf64SymbolSize}");
        if (symtab.Link >= sections.Length || sections[symtab.Link].Type != ShtStrtab)
            throw new MalformedElfException(DiagnosticCatalog.MalformedSymbolTable,
                $"symbol table's sh_link {symtab.Link} does not name a string table");
        var strtab = Data(sections[symtab.Link]);
        var xindex = sections.FirstOrDefault(s => s.Type == ShtSymtabShndx && s.Link == symtab.Index);
        var data = Data(symtab);
        int count = (int)(symtab.Size / Elf64SymbolSize);
        var symbols = new ElfSymbol[count];
        if (count > 0 && data[..Elf64SymbolSize].IndexOfAnyExcept((byte)0) >= 0)
            throw new MalformedElfException(DiagnosticCatalog.MalformedSymbolTable, "symbol 0 is not the null symbol");
        for (int i = 0; i < count; i++)
        {
            int o = i * Elf64SymbolSize;
            uint nameIndex = ReadU32(data, o);
            byte info = data[o + 4], other = data[o + 5];
            uint shndx = ReadU16(data, o + 6);
            if (shndx == ShnXindex)
            {
                if (xindex is null || (ulong)(i + 1) * 4 > xindex.Size)
                    throw new MalformedElfException(DiagnosticCatalog.MalformedSymbolTable,
                        $"symbol {i} uses SHN_XINDEX but no SHT_SYMTAB_SHNDX entry exists for it");
                shndx = ReadU32(Data(xindex), i * 4);
            }
            if (shndx != ShnUndef && shndx < ShnLoReserve && shndx >= sections.Length)
                throw new MalformedElfException(DiagnosticCatalog.MalformedSymbolTable,
                    $"symbol {i} has section index {shndx}, but the object has {sections.Length} sections");
            string name = ReadString(strtab, nameIndex,
                () => $"symbol {i} name index 0x{nameIndex:x} is outside the string table",
                    DiagnosticCatalog.MalformedSymbolTable);
            if (name.Length == 0 && (info & 0xf) == SttSection && shndx < sections.Length)
                name = sections[shndx].Name;
            symbols[i] = new ElfSymbol(i, name, ReadU64(data, o + 8), ReadU64(data, o + 16), info, other, shndx);
        }
        return symbols;
    }

    private ElfRelocationSection[] ReadRelocations(ElfSection[] sections)
    {
        var result = new List<ElfRelocationSection>();
        foreach (var s in sections.Where(s => s.Type == ShtRela))
        {
            if (s.EntrySize != Elf64RelaSize)
                throw new MalformedElfException(DiagnosticCatalog.MalformedRelocation,
                    $"relocation section {s.Name} has entry size {s.EntrySize}, expected {Elf64RelaSize}");
            if (s.Size % Elf64RelaSize != 0)
                throw new MalformedElfException(DiagnosticCatalog.MalformedRelocation,
                    $"relocation section {s.Name} size 0x{s.Size:x} is not a multiple of {Elf64RelaSize}");
            if (s.Link >= sections.Length || sections[s.Link].Type != ShtSymtab)
                throw new MalformedElfException(DiagnosticCatalog.MalformedRelocation,
                    $"relocation section {s.Name} has sh_link {s.Link}, which is not the symbol table");
            if (s.Info == 0 || s.Info >= sections.Length)
                throw new MalformedElfException(DiagnosticCatalog.MalformedRelocation,
                    $"relocation section {s.Name} applies to section {s.Info}, which does not exist");
            var target = sections[s.Info];
            var data = Data(s);
            int count = (int)(s.Size / Elf64RelaSize);
            var entries = new ElfRela[count];
            for (int i = 0; i < count; i++)
            {
                int o = i * Elf64RelaSize;
                ulong info = ReadU64(data, o + 8);
                var rela = new ElfRela(ReadU64(data, o), (uint)(info & 0xffff_ffff), (uint)(info >> 32),
                    (long)ReadU64(data, o + 16));
                if (rela.SymbolIndex >= Symbols.Count)
                    throw new MalformedElfException(DiagnosticCatalog.MalformedRelocation,
                        $"{s.Name} entry {i} refers to symbol {rela.SymbolIndex}, but the symbol table has " +
                            $"{Symbols.Count} entries");
                if (rela.Type != 0 && rela.Offset >= ContentSize(target))
                    throw new MalformedElfException(DiagnosticCatalog.MalformedRelocation,
                        $"{s.Name} entry {i} is at offset 0x{rela.Offset:x}, past the end of {target.Name} (size " +
                            $"0x{ContentSize(target):x})");
                entries[i] = rela;
            }
            CheckNoDuplicates(s, entries);
            result.Add(new ElfRelocationSection(s, target, entries));
        }
        return [.. result];
    }

    /// <summary>
    /// Two relocations of one type at one offset are never meant (the second would overwrite the first's field, and
    /// an editor keyed by offset would keep only one): refused. Different types at one offset (a TLS marker beside
    /// its call) are fine. Entries come sorted by offset from every assembler and linker, so the usual check is a look
    /// back over the entries at the same offset.
    /// </summary>
    private static void CheckNoDuplicates(ElfSection s, ElfRela[] entries)
    {
        bool sorted = true;
        for (int i = 1; i < entries.Length && sorted; i++)
        {
            if (entries[i].Offset < entries[i - 1].Offset) { sorted = false; break; }
            for (int k = i - 1; k >= 0 && entries[k].Offset == entries[i].Offset; k--)
                if (entries[k].Type == entries[i].Type && entries[i].Type != 0) Duplicate(s, entries[i], k, i);
        }
        if (sorted) return;
        var seen = new Dictionary<(ulong, uint), int>();
        for (int i = 0; i < entries.Length; i++)
            if (entries[i].Type != 0 && !seen.TryAdd((entries[i].Offset, entries[i].Type), i))
                Duplicate(s, entries[i], seen[(entries[i].Offset, entries[i].Type)], i);
    }

    private static void Duplicate(ElfSection s, ElfRela e, int first, int second) =>
        throw new MalformedElfException(DiagnosticCatalog.MalformedRelocation,
            $"{s.Name} entries {first} and {second} are both {Ppc64.RelocationCatalog.NameOf(e.Type)} at offset " +
                $"0x{e.Offset:x}: one field cannot be relocated twice");

    private static string ReadString(ReadOnlySpan<byte> table, uint index, Func<string> describe, string code)
    {
        if (index >= table.Length)
            throw new MalformedElfException(code, describe());
        var rest = table[(int)index..];
        int end = rest.IndexOf((byte)0);
        if (end < 0)
            throw new MalformedElfException(code, describe() + " (string is not NUL-terminated)");
        return Encoding.UTF8.GetString(rest[..end]);
    }

    private sealed class MalformedElfException(string code, string message) : Exception(message)
    {
        public string Code { get; } = code;
    }
}
