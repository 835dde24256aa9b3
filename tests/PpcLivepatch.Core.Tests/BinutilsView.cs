using System.Text.RegularExpressions;

namespace PpcLivepatch.Tests;

/// <summary>
/// An object as Debian's binutils show it (readelf -SW/-sW/-rW, objdump -dz), parsed from their text output: the
/// independent view the scanner's classification is checked against.
/// </summary>
internal sealed partial class BinutilsView
{
    public sealed record Section(int Index, string Name, string Flags, int Info);
    public sealed record Symbol(int Index, string Ndx, string Bind, string Name);
    public sealed record Reloc(string RelaSection, string TargetSection, ulong Offset, string Type, int SymbolIndex);
    public sealed record Insn(string Mnemonic, string Operands);

    public List<Section> Sections { get; } = [];
    public Dictionary<int, Symbol> Symbols { get; } = [];
    public List<Reloc> Relocs { get; } = [];
    public Dictionary<(string Section, ulong Offset), Insn> Code { get; } = [];

    public static BinutilsView Of(string fixture)
    {
        string path = Repo.Fixture(fixture);
        var view = new BinutilsView();
        view.ParseSections(Tool.Check(Repo.Binutils(fixture, "readelf"), "-SW", path));
        view.ParseSymbols(Tool.Check(Repo.Binutils(fixture, "readelf"), "-sW", path));
        view.ParseRelocs(Tool.Check(Repo.Binutils(fixture, "readelf"), "-rW", path));
        view.ParseCode(Tool.Check(Repo.Binutils(fixture, "objdump"), "-dz", path));
        return view;
    }

    [GeneratedRegex(@"^\s*\[\s*(\d+)\]\s+(\S+)\s+(\S+)\s+[0-9a-f]+\s+[0-9a-f]+\s+[0-9a-f]+\s+[0-9a-f]+\s+(.*)$")]
    private static partial Regex SectionLine();

    private void ParseSections(string text)
    {
        foreach (var line in text.Split('\n'))
        {
            var m = SectionLine().Match(line);
            if (!m.Success) continue;
            var rest = m.Groups[4].Value.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            // Flg may be empty: the last three columns are always Lk, Inf, Al.
            string flags = rest.Length == 4 ? rest[0] : "";
            Sections.Add(new Section(int.Parse(m.Groups[1].Value), m.Groups[2].Value, flags, int.Parse(rest[^2])));
        }
    }

    [GeneratedRegex(@"^\s*(\d+):\s+[0-9a-f]+\s+\d+\s+\S+\s+(\S+)\s+(?:DEFAULT|HIDDEN|INTERNAL|PROTECTED)(?:\s+\[[^\]]*\])?\s+(UND|ABS|COM|\d+|OS \[0x[0-9a-f]+\]|PRC \[0x[0-9a-f]+\])\s*(.*)$")]
    private static partial Regex SymbolLine();

    private void ParseSymbols(string text)
    {
        foreach (var line in text.Split('\n'))
        {
            var m = SymbolLine().Match(line);
            if (m.Success)
                Symbols[int.Parse(m.Groups[1].Value)] = new Symbol(int.Parse(m.Groups[1].Value), m.Groups[3].Value,
                    m.Groups[2].Value, m.Groups[4].Value);
        }
    }

    [GeneratedRegex(@"^Relocation section '([^']+)'")]
    private static partial Regex RelocHeader();

    [GeneratedRegex(@"^([0-9a-f]{16})\s+([0-9a-f]{16})\s+(R_PPC64_\S+)")]
    private static partial Regex RelocLine();

    private void ParseRelocs(string text)
    {
        string? current = null;
        foreach (var line in text.Split('\n'))
        {
            var h = RelocHeader().Match(line);
            if (h.Success) { current = h.Groups[1].Value; continue; }
            var m = RelocLine().Match(line);
            if (!m.Success || current is null) continue;
            var rela = Sections.Single(s => s.Name == current);
            string target = Sections.Single(s => s.Index == rela.Info).Name;
            ulong info = Convert.ToUInt64(m.Groups[2].Value, 16);
            Relocs.Add(new Reloc(current, target, Convert.ToUInt64(m.Groups[1].Value, 16), m.Groups[3].Value,
                (int)(info >> 32)));
        }
    }

    [GeneratedRegex(@"^Disassembly of section (\S+):")]
    private static partial Regex DisassemblyHeader();

    [GeneratedRegex(@"^\s*([0-9a-f]+):\t(?:[0-9a-f]{2} ){4}\s*\t?(\S*)\s*(\S*)")]
    private static partial Regex InsnLine();

    private void ParseCode(string text)
    {
        string? section = null;
        foreach (var line in text.Split('\n'))
        {
            var h = DisassemblyHeader().Match(line);
            if (h.Success) { section = h.Groups[1].Value; continue; }
            var m = InsnLine().Match(line);
            if (m.Success && section is not null)
                Code[(section, Convert.ToUInt64(m.Groups[1].Value, 16))] = new Insn(m.Groups[2].Value,
                    m.Groups[3].Value);
        }
    }

    public bool IsAlloc(string section) => Sections.Single(s => s.Name == section).Flags.Contains('A');
}
