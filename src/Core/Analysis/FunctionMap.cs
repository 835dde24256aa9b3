using PpcLivepatch.Elf;
using PpcLivepatch.Ppc64;
using static PpcLivepatch.Elf.ElfConstants;

namespace PpcLivepatch.Analysis;

/// <summary>A function's code: its name and byte range inside one section.</summary>
public sealed record FunctionRange(string Name, int SectionIndex, ulong Start, ulong Size, ElfSymbol Symbol)
{
    public ulong End => Start + Size;
}

/// <summary>
/// Maps code addresses (section, offset) to functions and symbols to the code they name. ELFv2 function symbols
/// point at code; ELFv1 function symbols point at <c>.opd</c> descriptors whose first doubleword is an ADDR64
/// relocation to the code, so both ABIs end up with the same code ranges.
/// </summary>
public sealed class FunctionMap
{
    private readonly ElfImage _image;
    private readonly Dictionary<int, FunctionRange[]> _bySection;
    private readonly Dictionary<(int Section, ulong Offset), (int Section, ulong Offset)> _opdToCode = new();
    private readonly int _opdIndex = -1;

    public FunctionMap(ElfImage image)
    {
        _image = image;
        var opd = image.Sections.FirstOrDefault(s => s.Name == ".opd");
        if (opd is not null)
        {
            _opdIndex = opd.Index;
            foreach (var rs in image.RelocationSections.Where(r => r.Target.Index == opd.Index))
            foreach (var rela in rs.Entries.Where(e => e.Type == R.PPC64_ADDR64))
            {
                var sym = image.Symbols[(int)rela.SymbolIndex];
                if (sym.IsInSection)
                    _opdToCode[(opd.Index, rela.Offset)] = ((int)sym.SectionIndex,
                        unchecked(sym.Value + (ulong)rela.Addend));
            }
        }

        var ranges = new List<FunctionRange>();
        foreach (var sym in image.Symbols.Where(s => s.Type == SttFunc && s.IsInSection))
        {
            var (section, start) = CodeAddress((int)sym.SectionIndex, sym.Value);
            if (section < 0 || section == _opdIndex) continue;
            ranges.Add(new FunctionRange(sym.Name, section, start, sym.Size, sym));
        }
        // By address, a global before a local alias of it, otherwise in symbol table order (a stable sort; not
        // LINQ's ThenBy, a generic virtual method the native tool resolves at run time on every start).
        _bySection = ranges.GroupBy(r => r.SectionIndex).ToDictionary(g => g.Key,
            g => g.StableSorted((a, b) => a.Start != b.Start ? a.Start.CompareTo(b.Start)
                : (b.Symbol.Bind == StbGlobal).CompareTo(a.Symbol.Bind == StbGlobal)));
    }

    public IEnumerable<FunctionRange> All => _bySection.Values.SelectMany(r => r);

    public IReadOnlyList<FunctionRange> InSection(int sectionIndex) =>
        _bySection.TryGetValue(sectionIndex, out var r) ? r : [];

    /// <summary>
    /// The code a (section, offset) names: itself, or for an ELFv1 <c>.opd</c> descriptor the code entry it holds.
    /// Returns section -1 for a descriptor without a relocation.
    /// </summary>
    public (int Section, ulong Offset) CodeAddress(int section, ulong offset)
    {
        if (section != _opdIndex) return (section, offset);
        return _opdToCode.TryGetValue((section, offset), out var code) ? code : (-1, 0);
    }

    /// <summary>The function whose range holds the address; failing that the closest function starting before
    /// it.</summary>
    public FunctionRange? Containing(int sectionIndex, ulong offset)
    {
        if (!_bySection.TryGetValue(sectionIndex, out var ranges)) return null;
        // The last function starting at or before the offset (sorted by start); one-.text modules have hundreds.
        int lo = 0, hi = ranges.Length - 1, last = -1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            if (ranges[mid].Start <= offset) { last = mid; lo = mid + 1; } else hi = mid - 1;
        }
        FunctionRange? before = null;
        for (int i = last; i >= 0 && i > last - 8; i--)
        {
            // Aliases and zero-sized symbols can share a start: prefer a range that covers the offset.
            var f = ranges[i];
            if (offset < f.End) return f;
            if (f.Size == 0 && before is null) before = f;
        }
        return before;
    }

    /// <summary>True when a function starts at the address (its global entry, or its ELFv2 local entry).</summary>
    public bool IsEntry(int sectionIndex, ulong offset)
    {
        if (Containing(sectionIndex, offset) is not { } f) return false;
        return offset == f.Start || offset == f.Start + (ulong)AbiFacts.LocalEntryOffset(_image.Abi, f.Symbol.Other);
    }

    /// <summary>A readable name for what a relocation points at: <c>func</c>, <c>func+0x10</c> or
    /// <c>.text+0x40</c>.</summary>
    public string Describe(ElfSymbol symbol, long addend)
    {
        if (symbol.Type != SttSection || !symbol.IsInSection)
            return addend == 0 ? symbol.Name : $"{symbol.Name}{FormatAddend(addend)}";
        var (section, offset) = CodeAddress((int)symbol.SectionIndex, unchecked(symbol.Value + (ulong)addend));
        if (section >= 0 && Containing(section, offset) is { } f && offset < f.End)
            return offset == f.Start ? f.Name : $"{f.Name}+0x{offset - f.Start:x}";
        return $"{symbol.Name}{FormatAddend(addend)}";
    }

    /// <summary>The function a call relocation lands in, if it lands in code defined in this object.</summary>
    public FunctionRange? CallTarget(ElfSymbol symbol, long addend)
    {
        if (!symbol.IsInSection) return null;
        var (section, offset) = CodeAddress((int)symbol.SectionIndex, unchecked(symbol.Value + (ulong)addend));
        if (section < 0) return null;
        offset += (ulong)AbiFacts.LocalEntryOffset(_image.Abi, symbol.Other);
        return Containing(section, offset);
    }

    private static string FormatAddend(long addend) => addend < 0 ? $"-0x{-addend:x}" : $"+0x{addend:x}";
}
