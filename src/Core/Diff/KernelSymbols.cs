using System.Globalization;
using System.Text;
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
/// A kernel has tens of thousands of symbols and a diff asks about a few dozen: the table is kept as read (names as
/// byte ranges) and only the names asked about become strings.
/// </summary>
public sealed class KernelSymbols
{
    private readonly record struct Raw(int NameStart, int NameLength, ulong Address, bool IsGlobal, int File);

    private readonly byte[] _names;
    private readonly List<Raw> _table;
    private readonly bool _addressOrder;
    private readonly Dictionary<string, List<KernelSymbol>> _byName = new(StringComparer.Ordinal);

    /// <summary>False when the positions come from the original object itself, which cannot know about other files'
    /// symbols of the same name.</summary>
    public bool KnowsWholeKernel { get; }
    public string Source { get; }

    private KernelSymbols(string source, byte[] names, List<Raw> table, bool wholeKernel, bool addressOrder)
    {
        Source = source;
        _names = names;
        _table = table;
        KnowsWholeKernel = wholeKernel;
        _addressOrder = addressOrder;
    }

    private ReadOnlySpan<byte> NameOf(Raw r) => _names.AsSpan(r.NameStart, r.NameLength);

    /// <summary>Looks up every name (and its <c>__ksymtab_</c> twin) in one pass over the table.</summary>
    public void Prepare(IEnumerable<string> names)
    {
        var wanted = new HashSet<string>(StringComparer.Ordinal);
        foreach (var n in names)
        {
            if (_byName.ContainsKey(n)) continue;
            wanted.Add(n);
            wanted.Add("__ksymtab_" + n);
        }
        if (wanted.Count == 0) return;
        foreach (var n in wanted) _byName[n] = [];
        // By length first: most of the table is passed over on an integer lookup, the rest compared as bytes.
        var byLength = wanted.Select(n => (Name: n, Bytes: Encoding.UTF8.GetBytes(n)))
            .GroupBy(x => x.Bytes.Length).ToDictionary(g => g.Key, g => g.ToArray());
        for (int i = 0; i < _table.Count; i++)
        {
            var r = _table[i];
            if (!byLength.TryGetValue(r.NameLength, out var candidates)) continue;
            foreach (var (name, bytes) in candidates)
            {
                if (!NameOf(r).SequenceEqual(bytes)) continue;
                string? file = r.File >= 0 ? Encoding.UTF8.GetString(NameOf(_table[r.File])) : null;
                _byName[name].Add(new KernelSymbol(name, r.Address, r.IsGlobal, file, i));
            }
        }
        if (!_addressOrder) return;
        foreach (var n in wanted)
            _byName[n].Sort((a, b) => a.Address != b.Address ? a.Address.CompareTo(b.Address)
                : a.Order.CompareTo(b.Order));
    }

    private List<KernelSymbol> Named(string name)
    {
        if (!_byName.TryGetValue(name, out var list))
        {
            Prepare([name]);
            list = _byName[name];
        }
        return list;
    }

    public bool Defines(string name) => Named(name).Count > 0;

    public bool IsExported(string name)
    {
        Named(name);
        return _byName["__ksymtab_" + name].Count > 0;
    }

    /// <summary>The position of <paramref name="name"/>: for a local of the original object, the one defined in
    /// <paramref name="file"/>; for a global, the global one.</summary>
    public SymbolPosition Position(string name, bool isGlobal, string? file)
    {
        var all = Named(name);
        if (all.Count == 0) return new SymbolPosition(0, $"{Source} has no symbol named {name}", Missing: true);
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
        var kind = FileKinds.Of(path);
        if (kind is FileKind.Fifo or FileKind.CharacterDevice or FileKind.BlockDevice or FileKind.Socket
            or FileKind.Directory)
        {
            error = Unreadable(path, $"it is {FileKinds.Describe(kind)}, not a regular file");
            return null;
        }
        try
        {
            using var handle = File.OpenHandle(path);
            Span<byte> magic = stackalloc byte[4];
            if (RandomAccess.Read(handle, magic, 0) == 4 && magic.SequenceEqual("\u007fELF"u8))
            {
                var table = ElfSymbolTable.Read(handle, out string? problem);
                if (table is not { } t)
                {
                    error = Unreadable(path, $"its symbol table cannot be read: {problem}");
                    return null;
                }
                // vmlinux's kallsyms are in address order; a module's in its symbol table's order.
                return FromElf(path, t.Names, t.Entries, wholeKernel: true, addressOrder: objectName == "vmlinux");
            }
            long length = RandomAccess.GetLength(handle);
            if (length > int.MaxValue)
            {
                error = Unreadable(path, $"it is {length} bytes, too large for a System.map");
                return null;
            }
            var text = GC.AllocateUninitializedArray<byte>((int)length);
            int read = 0;
            while (read < text.Length && RandomAccess.Read(handle, text.AsSpan(read), read) is > 0 and var n) read += n;
            return FromSystemMap(path, text, read, out error);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException
                                       or ArgumentException)
        {
            error = Unreadable(path, e.Message);
            return null;
        }
    }

    private static Diagnostics.Diagnostic Unreadable(string path, string why) =>
        Diagnostics.Diagnostic.Create(Diagnostics.DiagnosticCatalog.UnreadableFile, path,
            $"cannot read '{path}': {why}");

    /// <summary>The original object's own symbols: positions among its own definitions.</summary>
    public static KernelSymbols FromElf(ElfImage image, string source, bool wholeKernel, bool addressOrder)
    {
        var names = new List<byte>();
        var table = new List<Raw>();
        int file = -1;
        foreach (var s in image.Symbols)
        {
            var name = Encoding.UTF8.GetBytes(s.Name);
            var raw = new Raw(names.Count, name.Length, s.Value, s.Bind != StbLocal, -1);
            names.AddRange(name);
            if (s.Type == SttFile) { file = table.Count; table.Add(raw); continue; }
            if (s.Name.Length == 0 || s.Type == SttSection || s.IsUndefined) continue;
            table.Add(raw with { File = raw.IsGlobal ? -1 : file });
        }
        return new KernelSymbols(source, names.ToArray(), table, wholeKernel, addressOrder);
    }

    private static KernelSymbols FromElf(string source, byte[] file, List<ElfSymbolTable.Entry> entries,
        bool wholeKernel, bool addressOrder)
    {
        var table = new List<Raw>(entries.Count);
        int current = -1;
        foreach (var e in entries)
        {
            byte type = (byte)(e.Info & 0xf);
            bool global = e.Info >> 4 != StbLocal;
            var raw = new Raw(e.NameStart, e.NameLength, e.Value, global, -1);
            if (type == SttFile) { current = table.Count; table.Add(raw); continue; }
            if (e.NameLength == 0 || type == SttSection || e.Section == ShnUndef) continue;
            table.Add(raw with { File = global ? -1 : current });
        }
        return new KernelSymbols(source, file, table, wholeKernel, addressOrder);
    }

    private static KernelSymbols? FromSystemMap(string path, byte[] file, int length, out Diagnostics.Diagnostic? error)
    {
        error = null;
        var table = new List<Raw>(length / 40);
        var text = file.AsSpan(0, length);
        int at = 0, lineNumber = 0;
        while (at < length)
        {
            lineNumber++;
            int end = text[at..].IndexOf((byte)'\n');
            int lineEnd = end < 0 ? length : at + end;
            var line = text[at..lineEnd];
            int start = at;
            at = lineEnd + 1;
            if (line.IsEmpty) continue;
            // "address type name": the type is one letter, upper case for a global.
            int first = line.IndexOf((byte)' ');
            ulong address = 0;
            if (first <= 0 || line.Length <= first + 3 || line[first + 2] != (byte)' '
                || !ulong.TryParse(line[..first], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out address))
            {
                error = Diagnostics.Diagnostic.Create(Diagnostics.DiagnosticCatalog.UnreadableFile, path,
                    $"line {lineNumber} is neither an ELF file's start nor a System.map line (address type name)");
                return null;
            }
            int nameLength = line.Length - (first + 3);
            if (line[^1] == (byte)'\r') nameLength--;
            table.Add(new Raw(start + first + 3, nameLength, address, char.IsAsciiLetterUpper((char)line[first + 1]),
                -1));
        }
        return new KernelSymbols(path, file, table, wholeKernel: true, addressOrder: true);
    }
}
