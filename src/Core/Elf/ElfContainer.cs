using System.Buffers.Binary;
using LibObjectFile.Diagnostics;
using System.Runtime.InteropServices;
using Lof = LibObjectFile.Elf;

namespace PpcLivepatch.Elf;

/// <summary>
/// The editable ELF container, over LibObjectFile. It owns the workarounds that make LibObjectFile safe for ppc64
/// objects (docs/architecture.md, "LibObjectFile"): the ELFv2 local-entry bits of <c>st_other</c> are re-written after
/// every save, sections added later go to the end of the header table, sections are re-aligned when a size changed,
/// and removed sections are removed for real. Nothing outside Elf/ sees a LibObjectFile type.
/// </summary>
public sealed class ElfContainer
{
    private readonly Lof.ElfFile _elf;
    private readonly ElfImage _original;
    private bool _layoutChanged;

    private ElfContainer(Lof.ElfFile elf, ElfImage original)
    {
        _elf = elf;
        _original = original;
    }

    /// <summary>
    /// Loads an image that <see cref="ElfImage"/> has already validated. LibObjectFile is stricter than the kernel
    /// in places (and throws in others); whatever it refuses comes back as <see cref="ElfRewriteException"/>.
    /// </summary>
    public static ElfContainer Load(ElfImage validated)
    {
        try
        {
            // A MemoryStream over a private copy: LibObjectFile keeps section streams that point into it. Without a
            // module signature: LibObjectFile would carry those trailing bytes into the rewritten module, where they
            // no longer match and make the kernel refuse it.
            var bytes = validated.Bytes.Span;
            var stream = new MemoryStream(bytes[..^ModuleSignature.AppendedLength(bytes)].ToArray(), writable: false);
            if (!Lof.ElfFile.TryRead(stream, out var elf, out var diagnostics) || elf is null)
                throw new ElfRewriteException("the ELF library cannot read it: " + Describe(diagnostics));
            return new ElfContainer(elf, validated);
        }
        catch (Exception e) when (e is not ElfRewriteException
            and (ArgumentException or InvalidOperationException or IOException or FormatException or OverflowException
                or IndexOutOfRangeException or NotSupportedException or LibObjectFile.ObjectFileException))
        {
            throw new ElfRewriteException("the ELF library cannot read it: " + e.Message);
        }
    }

    public int SectionCount => _elf.Sections.Count;

    private Lof.ElfSection Section(int index) =>
        _elf.Sections.FirstOrDefault(s => s.SectionIndex == index)
            ?? throw new ArgumentOutOfRangeException(nameof(index), $"no section {index}");

    private Lof.ElfSymbolTable SymbolTable => _elf.Sections.OfType<Lof.ElfSymbolTable>().Single();

    /// <summary>Replaces the bytes of a PROGBITS section (e.g. code grown by an island).</summary>
    public void SetSectionData(int sectionIndex, byte[] data)
    {
        var section = Section(sectionIndex) as Lof.ElfStreamSection
            ?? throw new InvalidOperationException($"section {sectionIndex} has no stream contents");
        // A section that was compressed is written back compressed: new contents, the same kind of header.
        if (_original.CompressedAlignment(_original.Sections[sectionIndex]) is { } alignment) data = Deflate(data,
            alignment);
        if ((ulong)data.Length != section.Size) _layoutChanged = true;
        section.Stream = new MemoryStream(data);
    }

    private byte[] Deflate(byte[] contents, ulong alignment)
    {
        var output = new MemoryStream();
        var header = new byte[ElfConstants.Elf64ChdrSize];
        if (_original.IsLittleEndian)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(header, ElfConstants.ElfCompressZlib);
            BinaryPrimitives.WriteUInt64LittleEndian(header.AsSpan(8), (ulong)contents.Length);
            BinaryPrimitives.WriteUInt64LittleEndian(header.AsSpan(16), alignment);
        }
        else
        {
            BinaryPrimitives.WriteUInt32BigEndian(header, ElfConstants.ElfCompressZlib);
            BinaryPrimitives.WriteUInt64BigEndian(header.AsSpan(8), (ulong)contents.Length);
            BinaryPrimitives.WriteUInt64BigEndian(header.AsSpan(16), alignment);
        }
        output.Write(header);
        using (var zlib = new System.IO.Compression.ZLibStream(output, System.IO.Compression.CompressionLevel.Optimal,
            leaveOpen: true))
            zlib.Write(contents);
        return output.ToArray();
    }

    /// <summary>Moves one entry of a RELA section to another offset of the section it applies to.</summary>
    public void SetRelocationOffset(int relaSectionIndex, int entryIndex, ulong offset)
    {
        var table = Section(relaSectionIndex) as Lof.ElfRelocationTable
            ?? throw new InvalidOperationException($"section {relaSectionIndex} is not a relocation table");
        CollectionsMarshal.AsSpan(table.Entries)[entryIndex].Offset = offset;
    }

    public void SetRelocationAddend(int relaSectionIndex, int entryIndex, long addend)
    {
        var table = Section(relaSectionIndex) as Lof.ElfRelocationTable
            ?? throw new InvalidOperationException($"section {relaSectionIndex} is not a relocation table");
        CollectionsMarshal.AsSpan(table.Entries)[entryIndex].Addend = addend;
    }

    public void SetSymbolValue(int symbolIndex, ulong value) =>
        CollectionsMarshal.AsSpan(SymbolTable.Entries)[symbolIndex].Value = value;

    public void SetSymbolSize(int symbolIndex, ulong size) =>
        CollectionsMarshal.AsSpan(SymbolTable.Entries)[symbolIndex].Size = size;

    /// <summary>Appends a global symbol with a reserved section index (e.g. SHN_LIVEPATCH); appending shifts
    /// nothing.</summary>
    public int AddGlobalSymbol(string name, ushort specialSectionIndex, byte type, ulong value = 0, ulong size = 0)
    {
        var symtab = SymbolTable;
        symtab.Entries.Add(new Lof.ElfSymbol
        {
            Name = name,
            Value = value,
            Size = size,
            Type = (Lof.ElfSymbolType)type,
            Bind = Lof.ElfSymbolBind.Global,
            SectionLink = new Lof.ElfSectionLink(specialSectionIndex),
        });
        _layoutChanged = true;
        return symtab.Entries.Count - 1;
    }

    /// <summary>Turns a symbol into one with a reserved section index (e.g. SHN_LIVEPATCH) and a new name.</summary>
    public void RebindSymbol(int symbolIndex, string name, ushort specialSectionIndex)
    {
        var entries = CollectionsMarshal.AsSpan(SymbolTable.Entries);
        entries[symbolIndex].Name = name;
        entries[symbolIndex].SectionLink = new Lof.ElfSectionLink(specialSectionIndex);
        _layoutChanged = true;
    }

    /// <summary>Appends a RELA section for <paramref name="targetSectionIndex"/> at the end of the header
    /// table.</summary>
    public int AddRelocationSection(string name, int targetSectionIndex, ulong flags)
    {
        var table = new Lof.ElfRelocationTable(true)
        {
            Name = name,
            Link = SymbolTable,
            Info = Section(targetSectionIndex),
            Flags = (Lof.ElfSectionFlags)flags,
            VirtualAddressAlignment = 8,
            OrderInSectionHeaderTable = (uint)_elf.Sections.Count,
        };
        _elf.Add(table);
        _layoutChanged = true;
        return table.SectionIndex;
    }

    public void AddRelocation(int relaSectionIndex, ulong offset, uint type, int symbolIndex, long addend)
    {
        var table = Section(relaSectionIndex) as Lof.ElfRelocationTable
            ?? throw new InvalidOperationException($"section {relaSectionIndex} is not a relocation table");
        table.Entries.Add(new Lof.ElfRelocation(offset, new Lof.ElfRelocationType(_elf.Arch, type), (uint)symbolIndex,
            addend));
        _layoutChanged = true;
    }

    /// <summary>Removes the entries of a RELA section whose index <paramref name="remove"/> selects.</summary>
    public void RemoveRelocations(int relaSectionIndex, Func<int, bool> remove)
    {
        var table = Section(relaSectionIndex) as Lof.ElfRelocationTable
            ?? throw new InvalidOperationException($"section {relaSectionIndex} is not a relocation table");
        var kept = table.Entries.Where((_, i) => !remove(i)).ToList();
        table.Entries.Clear();
        table.Entries.AddRange(kept);
        _layoutChanged = true;
    }

    /// <summary>
    /// Removes sections and every symbol defined in them, renumbering what refers to symbols by index. Relocations
    /// against the removed symbols must be gone already. Sections are identified by their index before the call.
    /// </summary>
    public void RemoveSections(IReadOnlyCollection<int> sectionIndexes)
    {
        if (_elf.Sections.Any(s => s.Type == Lof.ElfSectionType.Group))
            throw new NotSupportedException("objects with SHT_GROUP sections cannot have sections removed (group " +
                "member lists are raw section indices)");
        var doomed = sectionIndexes.Select(Section).ToHashSet();
        var symtab = SymbolTable;
        var removedSymbols = new List<int>();
        for (int i = symtab.Entries.Count - 1; i > 0; i--)
        {
            var link = symtab.Entries[i].SectionLink;
            if (!link.IsSpecial && link.Section is { } section && doomed.Contains(section))
            {
                symtab.Entries.RemoveAt(i);
                removedSymbols.Add(i);
            }
        }
        foreach (var table in _elf.Sections.OfType<Lof.ElfRelocationTable>().Where(t => !doomed.Contains(t)))
        {
            var entries = CollectionsMarshal.AsSpan(table.Entries);
            for (int i = 0; i < entries.Length; i++)
            {
                uint index = entries[i].SymbolIndex;
                if (removedSymbols.Contains((int)index))
                    throw new InvalidOperationException($"{table.Name.Value} still refers to removed symbol {index}");
                entries[i].SymbolIndex = index - (uint)removedSymbols.Count(r => r < index);
            }
        }
        foreach (var section in doomed) RemoveSection(section);
        _layoutChanged = true;
    }

    /// <summary>
    /// Workaround 4: in LibObjectFile 2.3.1 removing a section from <c>Content</c> leaves it in the private list
    /// behind <c>Sections</c>, which the header table is written from, so the section would still be written.
    /// Remove it from both; indices and links are recomputed when the file is laid out.
    /// </summary>
    private void RemoveSection(Lof.ElfSection section)
    {
        _elf.Content.Remove(section);
        var field = typeof(Lof.ElfFile).GetField("_sections",
            System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance);
        if (field?.GetValue(_elf) is not List<Lof.ElfSection> sections)
            throw new NotSupportedException("this LibObjectFile version keeps sections differently; section removal " +
                "needs updating");
        sections.Remove(section);
    }

    /// <summary>
    /// Adds a local symbol after the existing locals (the gABI wants locals first). Every symbol index at or past
    /// the insertion point moves up by one: relocations and SHT_GROUP signatures are renumbered here, since
    /// LibObjectFile keeps both as raw indices. Returns the new symbol's index.
    /// </summary>
    public int AddLocalSymbol(string name, int sectionIndex, ulong value, ulong size, byte type)
    {
        var symtab = SymbolTable;
        int insertAt = symtab.Entries.FindIndex(1, e => e.Bind != Lof.ElfSymbolBind.Local);
        if (insertAt < 0) insertAt = symtab.Entries.Count;
        symtab.Entries.Insert(insertAt, new Lof.ElfSymbol
        {
            Name = name,
            Value = value,
            Size = size,
            Type = (Lof.ElfSymbolType)type,
            Bind = Lof.ElfSymbolBind.Local,
            SectionLink = Section(sectionIndex),
        });
        foreach (var table in _elf.Sections.OfType<Lof.ElfRelocationTable>())
        {
            var entries = CollectionsMarshal.AsSpan(table.Entries);
            for (int i = 0; i < entries.Length; i++)
                if (entries[i].SymbolIndex >= (uint)insertAt) entries[i].SymbolIndex++;
        }
        foreach (var group in _elf.Sections.Where(s => s.Type == Lof.ElfSectionType.Group))
        {
            // A group's sh_info is its signature symbol's index, which LibObjectFile does not follow.
            if (group.Info.SpecialIndex >= (uint)insertAt)
                group.Info = new Lof.ElfSectionLink(group.Info.SpecialIndex + 1);
        }
        foreach (var addrsig in _elf.Sections.OfType<Lof.ElfStreamSection>().Where(s => (uint)s.Type == ShtLlvmAddrsig))
            RenumberAddrsig(addrsig, insertAt);
        _layoutChanged = true;
        return insertAt;
    }

    /// <summary>clang's list of address-significant symbols (SHT_LLVM_ADDRSIG): ULEB128 symbol indices.</summary>
    private const uint ShtLlvmAddrsig = 0x6FFF_4C03;

    /// <summary>
    /// The linker folds identical functions unless <c>.llvm_addrsig</c> names them; a stale index there would let it
    /// fold a function whose address is taken. Follow the symbols an insertion renumbers.
    /// </summary>
    private static void RenumberAddrsig(Lof.ElfStreamSection addrsig, int insertAt)
    {
        var input = new MemoryStream();
        addrsig.Stream.Position = 0;
        addrsig.Stream.CopyTo(input);
        byte[] bytes = input.ToArray();
        var output = new List<byte>(bytes.Length + 8);
        for (int at = 0; at < bytes.Length; )
        {
            ulong index = Leb128.Read(bytes, ref at);
            Leb128.Append(output, index >= (ulong)insertAt ? index + 1 : index);
        }
        addrsig.Stream = new MemoryStream(output.ToArray());
    }

    /// <summary>Adds a new PROGBITS section at the end of the section header table (workaround 2).</summary>
    public int AddProgbitsSection(string name, ulong flags, ulong alignment, byte[] data)
    {
        var section = new Lof.ElfStreamSection(Lof.ElfSectionSpecialType.Data)
        {
            Name = name,
            Flags = (Lof.ElfSectionFlags)flags,
            VirtualAddressAlignment = alignment,
            Stream = new MemoryStream(data),
            // Without this LibObjectFile sorts the new section to index 1 and renumbers every other section,
            // which SHT_GROUP member lists do not follow.
            OrderInSectionHeaderTable = (uint)_elf.Sections.Count,
        };
        _elf.Add(section);
        _layoutChanged = true;
        return _elf.Sections.Count - 1;
    }

    /// <summary>Serialises the object. Unchanged objects come out byte-identical to their input.</summary>
    public byte[] Save()
    {
        if (_layoutChanged) Realign();
        // Sized for the input and a little more (a patch adds a few sections): growing by doubling copied it twice.
        var output = new MemoryStream(_original.Bytes.Length + _original.Bytes.Length / 8 + 4096);
        try
        {
            if (!_elf.TryWrite(output, out var diagnostics))
                throw new ElfRewriteException("the ELF library cannot write it: " + Describe(diagnostics));
        }
        catch (Exception e) when (e is not ElfRewriteException
            and (ArgumentException or InvalidOperationException or IOException or OverflowException
                or IndexOutOfRangeException or NotSupportedException or LibObjectFile.ObjectFileException))
        {
            throw new ElfRewriteException("the ELF library cannot write it: " + e.Message);
        }
        byte[] image = output.ToArray();
        RestoreSymbolOther(image);
        if (!_layoutChanged) RestoreEmptySectionOffsets(image);
        return image;
    }

    /// <summary>
    /// Workaround 1: LibObjectFile writes <c>st_other &amp; 3</c>, dropping the ELFv2 local-entry offset (bits 5–7);
    /// the result links but jumps to the global entry with a wrong r12 and crashes. Write the full byte back.
    /// </summary>
    private void RestoreSymbolOther(byte[] image)
    {
        foreach (var symtab in _elf.Sections.OfType<Lof.ElfSymbolTable>())
        {
            long position = (long)symtab.Position;
            for (int i = 0; i < symtab.Entries.Count; i++)
                image[position + i * ElfConstants.Elf64SymbolSize + 5] = (byte)symtab.Entries[i].Visibility;
        }
    }

    /// <summary>
    /// Workaround 5: LibObjectFile places an empty section (clang's <c>.llvm_addrsig</c> when nothing is
    /// address-significant) at an offset of its own choosing; keep the input's, so an unchanged object round-trips.
    /// </summary>
    private void RestoreEmptySectionOffsets(byte[] image)
    {
        bool le = _original.IsLittleEndian;
        ulong shoff = le ? BinaryPrimitives.ReadUInt64LittleEndian(image.AsSpan(0x28))
            : BinaryPrimitives.ReadUInt64BigEndian(image.AsSpan(0x28));
        if (_elf.Sections.Count != _original.Sections.Count) return;
        foreach (var s in _original.Sections.Where(s => s.Index > 0 && s.Size == 0))
        {
            var field = image.AsSpan((int)shoff + s.Index * 64 + 0x18, 8);
            if (le) BinaryPrimitives.WriteUInt64LittleEndian(field, s.Offset);
            else BinaryPrimitives.WriteUInt64BigEndian(field, s.Offset);
        }
    }

    /// <summary>
    /// Workaround 3: the reader keeps inter-section padding as fixed blobs and alignment 1, so growing a section
    /// would leave every later section misaligned. Drop the padding and align each section to its sh_addralign.
    /// </summary>
    private void Realign()
    {
        foreach (var gap in _elf.Content.OfType<Lof.ElfStreamContentData>().ToList())
        {
            if (IsAllZero(gap)) _elf.Content.Remove(gap);
        }
        foreach (var content in _elf.Content)
        {
            switch (content)
            {
                case Lof.ElfSectionHeaderTable table:
                    table.FileAlignment = 8;
                    break;
                case Lof.ElfSection section:
                    section.FileAlignment = (uint)Math.Clamp(section.VirtualAddressAlignment, 1, 1u << 16);
                    break;
            }
        }
    }

    private static bool IsAllZero(Lof.ElfStreamContentData data)
    {
        var stream = data.Stream;
        stream.Position = 0;
        int b;
        while ((b = stream.ReadByte()) >= 0)
            if (b != 0) return false;
        return true;
    }

    private static string Describe(DiagnosticBag? bag) =>
        bag is null ? "(no details)" : string.Join("; ", bag.Messages.Select(m => m.ToString()));
}

/// <summary>An object the verifier could read but the container cannot rewrite; reported as PLP1011.</summary>
public sealed class ElfRewriteException(string message) : Exception(message);
