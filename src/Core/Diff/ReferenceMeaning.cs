using System.Text;
using PpcLivepatch.Elf;
using static PpcLivepatch.Elf.ElfConstants;

namespace PpcLivepatch.Diff;

/// <summary>
/// What a relocation refers to, in words that mean the same in both compiles: a symbol by its original name, a
/// section-symbol reference by the entity it lands in, a string literal by its text, a constant by its bytes, a
/// <c>.toc</c> slot by what the slot holds. Two relocations compare equal when their meanings do — never by offsets,
/// which any change moves.
/// </summary>
public sealed class ReferenceMeaning(ObjectInventory inventory, Func<string, string> originalName)
{
    private ElfImage Image => inventory.Image;

    public string Of(ElfRela rela) => Of(Image.Symbols[(int)rela.SymbolIndex], rela.Addend, depth: 0);

    private string Of(ElfSymbol sym, long addend, int depth)
    {
        if (sym.Type != SttSection || !sym.IsInSection)
            return originalName(sym.Name) + Addend(addend);
        var section = Image.Sections[(int)sym.SectionIndex];
        ulong at = unchecked(sym.Value + (ulong)addend);
        if (section.Name == ".toc" && depth == 0)
        {
            // A TOC slot is an address the code loads: it means what the slot's own relocation names.
            var slot = inventory.RelocationsIn(section, at, at + 8);
            return slot.Count == 1 && slot[0].Offset == at
                ? "toc(" + Of(Image.Symbols[(int)slot[0].SymbolIndex], slot[0].Addend, depth + 1) + ")"
                : $"toc(?{at})";
        }
        if (DataSections.IsMergeableStrings(section))
            return "str(" + CString(section, at) + ")";
        if (inventory.At(section.Index, at) is { } entity)
            // A function-scope constant means its bytes (GCC's number for it moves, and two alike are
            // interchangeable); an empty static (a lockdep key without lockdep) holds nothing: its C name.
            return SymbolCorrelation.IsConstantStatic(entity)
                ? "const(" + Convert.ToHexString(inventory.Bytes(entity)) + ")" + Addend((long)(at - entity.Start))
                : entity.Size == 0 && StaticLocals.CName(entity) is { } empty ? "empty(" + empty + ")"
                : originalName(entity.Name) + Addend((long)(at - entity.Start));
        if (DataSections.IsMergeableConstants(section))
            return "const(" + Convert.ToHexString(Constant(section, at)) + ")";
        // Unnamed data (a constant gcc keeps in plain .rodata, say): its extent is unknown, so it means the whole
        // section's bytes and references — a change anywhere in it changes every function that reads it, never none.
        return section.Name + Addend((long)at) + "=" + Contents(section, depth);
    }

    private readonly Dictionary<int, string> _contents = [];

    private string Contents(ElfSection section, int depth)
    {
        if (_contents.TryGetValue(section.Index, out var known)) return known;
        if (depth > 2) return "?";
        _contents[section.Index] = "(cycle)";
        byte[] bytes = section.Type == ShtNobits ? BitConverter.GetBytes(Image.ContentSize(section))
            : Image.Data(section).ToArray();
        // A sanitizer's record of its check (UBSAN's handler data) starts with where the check is: file, line,
        // column. The line moves with any edit above it and says nothing of what the code does.
        if (section.Name.StartsWith(".data..Lubsan_data", StringComparison.Ordinal) && bytes.Length >= 16)
            Array.Clear(bytes, 8, 8);
        // The bytes themselves, not a digest: compared only within this run, exact, and without loading OpenSSL for
        // SHA-256 (8 ms of a 20 ms diff of a small object).
        var text = new StringBuilder(Convert.ToBase64String(bytes));
        foreach (var r in inventory.RelocationsOf(section))
            text.Append(';').Append(r.Offset).Append(':').Append(r.Type).Append(':')
                .Append(Of(Image.Symbols[(int)r.SymbolIndex], r.Addend, depth + 1));
        return _contents[section.Index] = text.ToString();
    }

    private static string Addend(long a) => a == 0 ? "" : a > 0 ? $"+{a}" : $"{a}";

    private string CString(ElfSection section, ulong at)
    {
        var data = Image.Data(section);
        if (at >= (ulong)data.Length) return "?";
        var rest = data[(int)at..];
        int end = rest.IndexOf((byte)0);
        return Encoding.UTF8.GetString(end < 0 ? rest : rest[..end]);
    }

    private byte[] Constant(ElfSection section, ulong at)
    {
        var data = Image.Data(section);
        int size = (int)Math.Max(1, section.EntrySize);
        return at + (ulong)size <= (ulong)data.Length ? data.Slice((int)at, size).ToArray() : [];
    }
}

/// <summary>Kinds of data section the diff treats as anonymous content rather than named objects.</summary>
public static class DataSections
{
    private const ulong ShfMerge = 0x10, ShfStrings = 0x20;

    public static bool IsMergeableStrings(ElfSection s) =>
        (s.Flags & (ShfMerge | ShfStrings)) == (ShfMerge | ShfStrings);

    public static bool IsMergeableConstants(ElfSection s) => (s.Flags & (ShfMerge | ShfStrings)) == ShfMerge;

    /// <summary>Read-only data no symbol names — with <c>-fdata-sections</c> every named object has a section of its
    /// own, so this is what the compiler made (a constant it loads, a literal pool): it has no identity, and a copy
    /// reads as the original does.</summary>
    public static bool IsAnonymousReadOnly(ElfImage image, ElfSection s) =>
        s.Type == ElfConstants.ShtProgbits && (s.Flags & ElfConstants.ShfAlloc) != 0
        && (s.Flags & (ElfConstants.ShfWrite | ElfConstants.ShfExecInstr)) == 0
        && !image.Symbols.Any(sym => sym.IsInSection && sym.SectionIndex == (uint)s.Index
            && sym.Type is not (ElfConstants.SttSection or ElfConstants.SttFile));

    /// <summary><c>.init.*</c>, <c>.exit.*</c> and the initcall tables: code and data that runs at boot (or at
    /// unload) and is freed or never kept.</summary>
    public static bool IsInitOrExit(ElfSection s) =>
        s.Name.StartsWith(".init.", StringComparison.Ordinal) || s.Name.StartsWith(".exit.", StringComparison.Ordinal)
        || s.Name.StartsWith(".meminit.", StringComparison.Ordinal)
        || s.Name.StartsWith(".initcall", StringComparison.Ordinal);
}
