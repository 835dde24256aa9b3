using System.Globalization;
using PpcLivepatch.Elf;
using static PpcLivepatch.Elf.ElfConstants;

namespace PpcLivepatch.Diff;

/// <summary>One symbol of the running kernel (or module) as kallsyms lists it.</summary>
public sealed record KernelSymbol(string Name, ulong Address, bool IsGlobal, string? File, int Order);

/// <summary>How a name resolves to the livepatch core's symbol position (kernel/livepatch/core.c).</summary>
public sealed record SymbolPosition(ulong Position, string? Problem, bool Missing = false);

/// <summary>
/// Where symbol positions come from (<c>--symbols</c>): an ELF file (vmlinux, a module, or the original object) or
/// a <c>System.map</c>-style text file. The livepatch core finds <c>name,pos</c> by counting the symbols of that name
/// in kallsyms order — address order for vmlinux, symbol-table order for a module — and takes the pos-th (1-based);
/// pos 0 means "the only one". Exported names (<c>__ksymtab_name</c>) are bound as plain undefined symbols.
/// </summary>
public sealed class KernelSymbols
{
    private readonly Dictionary<string, List<KernelSymbol>> _byName;
    private readonly HashSet<string> _exported;

    /// <summary>False when the positions come from the original object itself, which cannot know about other files'
    /// symbols of the same name.</summary>
    public bool KnowsWholeKernel { get; }
    public string Source { get; }

    private KernelSymbols(string source, IEnumerable<KernelSymbol> symbols, bool wholeKernel, bool addressOrder)
    {
        Source = source;
        KnowsWholeKernel = wholeKernel;
        _byName = symbols.GroupBy(s => s.Name, StringComparer.Ordinal).ToDictionary(g => g.Key,
            g => (addressOrder ? g.OrderBy(s => s.Address).ThenBy(s => s.Order) : g.OrderBy(s => s.Order)).ToList(),
            StringComparer.Ordinal);
        _exported = _byName.Keys.Where(k => k.StartsWith("__ksymtab_", StringComparison.Ordinal))
            .Select(k => k["__ksymtab_".Length..]).ToHashSet(StringComparer.Ordinal);
    }

    public bool IsExported(string name) => _exported.Contains(name);

    /// <summary>The position of <paramref name="name"/>: for a local of the original object, the one defined in
    /// <paramref name="file"/>; for a global, the global one.</summary>
    public SymbolPosition Position(string name, bool isGlobal, string? file)
    {
        if (!_byName.TryGetValue(name, out var all))
            return new SymbolPosition(0, $"{Source} has no symbol named {name}", Missing: true);
        if (all.Count == 1) return new SymbolPosition(0, null);
        var candidates = isGlobal ? all.Where(s => s.IsGlobal).ToList()
            : file is null ? [] : all.Where(s => !s.IsGlobal && s.File == file).ToList();
        if (candidates.Count == 1) return new SymbolPosition((ulong)all.IndexOf(candidates[0]) + 1, null);
        string which = isGlobal ? "the global one" : file is null ? "the original object's (it names no source file)"
            : $"the one from {file}";
        return new SymbolPosition(0, $"{Source} has {all.Count} symbols named {name} and {candidates.Count} of them " +
            $"could be {which}");
    }

    /// <summary>Reads an ELF symbol table (locals keep the STT_FILE they follow) or a System.map.</summary>
    public static KernelSymbols? Load(string path, string objectName, out Diagnostics.Diagnostic? error)
    {
        error = null;
        byte[]? buffer = null;
        if (!ObjectFileReader.TryRead(path, ref buffer, out int length, out var readError))
        {
            error = readError;
            return null;
        }
        var bytes = buffer!.AsMemory(0, length);
        if (bytes.Span.StartsWith("\u007fELF"u8))
        {
            // vmlinux's kallsyms are in address order; a module's in its symbol table's order.
            var table = ElfSymbolTable.Read(bytes, out string? problem);
            if (table is null)
            {
                error = Diagnostics.Diagnostic.Create(Diagnostics.DiagnosticCatalog.UnreadableFile, path,
                    $"its symbol table cannot be read: {problem}");
                return null;
            }
            return FromSymbols(table, path, wholeKernel: true, addressOrder: objectName == "vmlinux");
        }
        return FromSystemMap(path, System.Text.Encoding.UTF8.GetString(bytes.Span), out error);
    }

    public static KernelSymbols FromElf(ElfImage image, string source, bool wholeKernel, bool addressOrder) =>
        FromSymbols(image.Symbols.Select(s => (s.Name, s.Value, s.Info, (ushort)s.SectionIndex)).ToList(), source,
            wholeKernel, addressOrder);

    private static KernelSymbols FromSymbols(IReadOnlyList<(string Name, ulong Value, byte Info, ushort Section)> table,
        string source, bool wholeKernel, bool addressOrder)
    {
        var list = new List<KernelSymbol>();
        string? file = null;
        foreach (var (name, value, info, section) in table)
        {
            byte type = (byte)(info & 0xf), bind = (byte)(info >> 4);
            if (type == SttFile) { file = name; continue; }
            if (name.Length == 0 || type == SttSection || section == ShnUndef) continue;
            bool global = bind != StbLocal;
            list.Add(new KernelSymbol(name, value, global, global ? null : file, list.Count));
        }
        return new KernelSymbols(source, list, wholeKernel, addressOrder);
    }

    private static KernelSymbols? FromSystemMap(string path, string text, out Diagnostics.Diagnostic? error)
    {
        error = null;
        var list = new List<KernelSymbol>();
        int lineNumber = 0;
        foreach (var line in text.Split('\n'))
        {
            lineNumber++;
            if (line.Length == 0) continue;
            var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length < 3 || parts[1].Length != 1
                || !ulong.TryParse(parts[0], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out ulong address))
            {
                error = Diagnostics.Diagnostic.Create(Diagnostics.DiagnosticCatalog.UnreadableFile, path,
                    $"line {lineNumber} is neither an ELF file's start nor a System.map line (address type name)");
                return null;
            }
            list.Add(new KernelSymbol(parts[2], address, char.IsUpper(parts[1][0]), null, list.Count));
        }
        return new KernelSymbols(path, list, wholeKernel: true, addressOrder: true);
    }
}
