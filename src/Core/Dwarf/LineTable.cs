using PpcLivepatch.Diagnostics;
using PpcLivepatch.Elf;
using PpcLivepatch.Ppc64;

namespace PpcLivepatch.Dwarf;

/// <summary>One row of a decoded line program: an address inside a code section and its source position.</summary>
public readonly record struct LineRow(ulong Address, string File, int Line, int Column, bool EndSequence);

/// <summary>One sequence: contiguous rows for one code section (one function section under
/// -ffunction-sections).</summary>
public sealed record LineSequence(int SectionIndex, IReadOnlyList<LineRow> Rows)
{
    public ulong Start => Rows[0].Address;
    public ulong End => Rows[^1].Address;
}

/// <summary>
/// The address → file:line:column map of an object, from <c>.debug_line</c> (versions 2–5). Relocation-aware:
/// in a relocatable object each sequence's <c>DW_LNE_set_address</c> is zero in the bytes and carried by an
/// ADDR64 relocation to the code section, and DWARF 5 string forms are ADDR32 relocations into
/// <c>.debug_line_str</c>/<c>.debug_str</c>. Unlike LibObjectFile's reader it honours
/// <c>minimum_instruction_length</c> (4 on ppc64) in every version.
/// </summary>
public sealed class LineTable
{
    private readonly Dictionary<int, List<LineSequence>> _bySection;

    private LineTable(List<LineSequence> sequences)
    {
        Sequences = sequences;
        _bySection = sequences.GroupBy(s => s.SectionIndex).ToDictionary(g => g.Key,
            g => g.OrderBy(s => s.Start).ToList());
    }

    public IReadOnlyList<LineSequence> Sequences { get; }

    public static LineTable Empty { get; } = new([]);

    /// <summary>The source position of the instruction at <paramref name="offset"/> in a section, or null.</summary>
    public SourceLocation? Lookup(int sectionIndex, ulong offset)
    {
        if (!_bySection.TryGetValue(sectionIndex, out var sequences)) return null;
        foreach (var seq in sequences)
        {
            if (offset < seq.Start || offset >= seq.End) continue;
            LineRow? best = null;
            foreach (var row in seq.Rows)
            {
                if (row.EndSequence || row.Address > offset) break;
                best = row;
            }
            if (best is { } r) return new SourceLocation(r.File, r.Line, r.Column);
        }
        return null;
    }

    /// <summary>Decodes every line program of the object; an object without <c>.debug_line</c> gives an empty
    /// table.</summary>
    public static LineTable Read(ElfImage image)
    {
        var section = image.Sections.FirstOrDefault(s => s.Name == ".debug_line");
        if (section is null) return Empty;
        var relocations = RelocationsFor(image, section);
        var sequences = new List<LineSequence>();
        var data = image.Data(section);
        int position = 0;
        while (position < data.Length)
            position = ReadUnit(image, data, position, relocations, sequences);
        return new LineTable(sequences);
    }

    /// <summary>Reads <c>.debug_line</c>, or returns an empty table and the reason when it is malformed.</summary>
    public static LineTable ReadOrEmpty(ElfImage image, out string? problem)
    {
        try
        {
            problem = null;
            return Read(image);
        }
        catch (Exception e) when (e is DwarfFormatException or OverflowException or ArgumentOutOfRangeException
            or IndexOutOfRangeException)
        {
            problem = e.Message;
            return Empty;
        }
    }

    private readonly record struct Target(int SectionIndex, ulong Value);

    /// <summary>Addresses and string offsets: the ADDR64/ADDR32 relocations to sections.</summary>
    private static Dictionary<ulong, Target> RelocationsFor(ElfImage image, ElfSection section) =>
        image.RelocationTargets(section).Where(kv =>
            kv.Value.Section >= 0 && kv.Value.Type is R.PPC64_ADDR64 or R.PPC64_ADDR32)
            .ToDictionary(kv => kv.Key, kv => new Target(kv.Value.Section, kv.Value.Value));

    /// <summary>A unit's header and its directory and file tables (which DW_LNE_define_file may extend).</summary>
    private sealed class Header(LineProgramHeader program)
    {
        public LineProgramHeader Program { get; } = program;
        public int Version => Program.Version;
        public bool Dwarf64 => Program.Dwarf64;
        public List<string> Directories { get; } = [];
        public List<(string Name, ulong Dir)> Files { get; } = [];
    }

    private static int ReadUnit(ElfImage image, ReadOnlySpan<byte> data, int start,
        Dictionary<ulong, Target> relocations, List<LineSequence> sequences)
    {
        var h = new Header(LineProgramHeader.Read(data, image.IsLittleEndian, start));
        var r = new DwarfReader(data, image.IsLittleEndian, h.Program.TablesStart);
        if (h.Version >= 5) ReadV5EntryTables(image, ref r, h, relocations);
        else ReadV2EntryTables(ref r, h);
        RunProgram(new LineProgram(data, image.IsLittleEndian, h.Program), h, relocations, sequences);
        return h.Program.UnitEnd;
    }

    private static void ReadV2EntryTables(ref DwarfReader r, Header h)
    {
        h.Directories.Add(""); // index 0: the compilation directory
        for (string dir; (dir = r.CString()).Length != 0;) h.Directories.Add(dir);
        h.Files.Add(("", 0)); // file indices are 1-based before DWARF 5
        for (string name; (name = r.CString()).Length != 0;)
        {
            ulong dir = r.Uleb();
            r.Uleb(); r.Uleb(); // mtime, length
            h.Files.Add((name, dir));
        }
    }

    private const ulong DwLnctPath = 1, DwLnctDirectoryIndex = 2;

    private static void ReadV5EntryTables(ElfImage image, ref DwarfReader r, Header h,
        Dictionary<ulong, Target> relocations)
    {
        foreach (bool isFiles in new[] { false, true })
        {
            int formatCount = r.U8();
            var formats = new (ulong Content, ulong Form)[formatCount];
            for (int i = 0; i < formatCount; i++) formats[i] = (r.Uleb(), r.Uleb());
            ulong count = r.Uleb();
            if (count > (ulong)r.Length) throw new DwarfFormatException($"implausible entry count {count}");
            for (ulong n = 0; n < count; n++)
            {
                string name = "";
                ulong dir = 0;
                foreach (var (content, form) in formats)
                {
                    ulong fieldOffset = (ulong)r.Position;
                    object value = ReadForm(image, ref r, form, h.Dwarf64, relocations, fieldOffset);
                    if (content == DwLnctPath && value is string s) name = s;
                    else if (content == DwLnctDirectoryIndex && value is ulong d) dir = d;
                }
                if (isFiles) h.Files.Add((name, dir)); else h.Directories.Add(name);
            }
        }
    }

    private static object ReadForm(ElfImage image, ref DwarfReader r, ulong form, bool dwarf64,
        Dictionary<ulong, Target> relocations, ulong fieldOffset)
    {
        switch (form)
        {
            case 0x08: return r.CString();                      // DW_FORM_string
            case 0x0e or 0x1f:                                   // DW_FORM_strp, DW_FORM_line_strp
            {
                ulong raw = dwarf64 ? r.U64() : r.U32();
                string sectionName = form == 0x1f ? ".debug_line_str" : ".debug_str";
                ElfSection? strings;
                ulong offset = raw;
                if (relocations.TryGetValue(fieldOffset, out var target))
                {
                    strings = image.SectionOrNull((uint)target.SectionIndex);
                    offset = target.Value;
                }
                else strings = image.Sections.FirstOrDefault(s => s.Name == sectionName);
                if (strings is null) throw new DwarfFormatException($"{sectionName} is missing");
                return DwarfReader.CStringAt(image.Data(strings), offset);
            }
            case 0x0b: return (ulong)r.U8();                     // DW_FORM_data1
            case 0x05: return (ulong)r.U16();                    // DW_FORM_data2
            case 0x06: return (ulong)r.U32();                    // DW_FORM_data4
            case 0x07: return r.U64();                           // DW_FORM_data8
            case 0x0f: return r.Uleb();                          // DW_FORM_udata
            case 0x1e: r.Skip(16); return 0UL;                   // DW_FORM_data16 (MD5)
            case 0x09: r.Skip(r.Uleb()); return 0UL;             // DW_FORM_block
            default: throw new DwarfFormatException($"unsupported form 0x{form:x} in a DWARF 5 line header");
        }
    }

    private static void RunProgram(LineProgram program, Header h, Dictionary<ulong, Target> relocations,
        List<LineSequence> sequences)
    {
        var rows = new List<LineRow>();
        ulong address = 0;
        int section = -1, file = 1, line = 1, column = 0;

        void Emit(bool endSequence)
        {
            rows.Add(new LineRow(address, FileName(h, file), line, column, endSequence));
            if (!endSequence) return;
            if (rows.Count > 1) sequences.Add(new LineSequence(section, rows.ToArray()));
            rows.Clear();
            address = 0; section = -1; file = 1; line = 1; column = 0;
        }

        while (program.Next(out var op))
        {
            address += op.AddressAdvance;
            switch (op.Kind)
            {
                case LineOpKind.Special:
                    line += (int)op.LineAdvance;
                    Emit(false);
                    break;
                case LineOpKind.Copy: Emit(false); break;
                case LineOpKind.EndSequence: Emit(true); break;
                case LineOpKind.AdvanceLine: line += (int)op.LineAdvance; break;
                case LineOpKind.SetFile: file = (int)op.Operand; break;
                case LineOpKind.SetColumn: column = (int)op.Operand; break;
                case LineOpKind.SetAddress:
                    if (relocations.TryGetValue((ulong)op.OperandOffset, out var target))
                    {
                        section = target.SectionIndex;
                        address = target.Value;
                    }
                    else { section = -1; address = op.Operand; }
                    break;
                case LineOpKind.DefineFile: h.Files.Add(program.DefineFile(op)); break;
            }
        }
    }

    private static string FileName(Header h, int index)
    {
        if (index < 0 || index >= h.Files.Count) return $"<file {index}>";
        var (name, dir) = h.Files[index];
        if (Path.IsPathRooted(name) || dir >= (ulong)h.Directories.Count) return name;
        // Directory 0 is the compilation directory: addr2line prints the name alone for it before DWARF 5.
        if (h.Version < 5 && dir == 0) return name;
        string directory = h.Directories[(int)dir];
        return directory.Length == 0 || directory == "." ? name : Path.Combine(directory, name);
    }
}
