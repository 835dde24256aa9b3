using PpcLivepatch.Diagnostics;
using PpcLivepatch.Elf;
using static PpcLivepatch.Elf.ElfConstants;

namespace PpcLivepatch.Diff;

/// <summary>
/// Where the running kernel attaches a livepatch of a vmlinux function. The livepatch core registers its ftrace
/// handler at <c>ftrace_location(old_func)</c>, which (kernel/trace/ftrace.c since 5.19) looks for an ftrace record
/// anywhere in [old_func, old_func + its kallsyms size) — up to the next symbol — and returns the one its binary
/// search lands on. Code the linker kept after a function with no symbol of its own (a weak default whose strong twin
/// replaced it: powerpc's <c>arch_report_meminfo</c> after <c>loadavg_proc_show</c> in 6.1) lies in that range, with
/// its own <c>bl _mcount</c>: the patch may be attached to that dead code, load, say it is enabled, and never run.
/// The records are vmlinux's <c>__start_mcount_loc</c>…<c>__stop_mcount_loc</c> (the <c>-mprofile-kernel</c> call
/// sites, or the <c>-fpatchable-function-entry</c> nops on later kernel lines).
/// </summary>
public sealed class VmlinuxFtraceSites
{
    private readonly ulong[] _sites;
    private readonly ulong[] _symbolStarts;
    /// <summary>The functions by name, each name's definitions in address order (kallsyms order for vmlinux).</summary>
    private readonly Dictionary<string, List<(ulong Address, ulong Size)>> _functions;

    private VmlinuxFtraceSites(ulong[] sites, ulong[] symbolStarts,
        Dictionary<string, List<(ulong Address, ulong Size)>> functions)
    {
        _sites = sites;
        _symbolStarts = symbolStarts;
        _functions = functions;
    }

    /// <summary>The ftrace sites and kallsyms ranges of a linked vmlinux (only its headers, symbol table and the
    /// records are read); null, with why, for a file that has no records.</summary>
    public static VmlinuxFtraceSites? Load(string path, out string? why)
    {
        why = null;
        try
        {
            using var handle = File.OpenHandle(path);
            var elf = ElfSymbolTable.ReadAll(handle, out string? problem);
            if (elf is null)
            {
                why = $"{path}: {problem}";
                return null;
            }
            string NameOf(ElfSymbolTable.Entry e) =>
                System.Text.Encoding.UTF8.GetString(elf.Names, e.NameStart, e.NameLength);
            bool Defined(ElfSymbolTable.Entry e) => e.Section != ShnUndef && e.Section < elf.Sections.Count;
            var start = elf.Entries.FirstOrDefault(e => Defined(e) && NameOf(e) == "__start_mcount_loc");
            var stop = elf.Entries.FirstOrDefault(e => Defined(e) && NameOf(e) == "__stop_mcount_loc");
            if (start.NameLength == 0 || stop.NameLength == 0 || stop.Value < start.Value)
            {
                why = $"{path} has no __start_mcount_loc/__stop_mcount_loc (no ftrace records)";
                return null;
            }
            var section = elf.Sections[start.Section];
            ulong length = stop.Value - start.Value;
            if (section.Type == ShtNobits || start.Value < section.Address
                || start.Value - section.Address + length > section.Size || length % 8 != 0 || length > int.MaxValue)
            {
                why = $"{path}'s ftrace records do not lie inside their section";
                return null;
            }
            // Sizes come from the file's own headers: nothing is allocated for more than the file holds.
            if (section.Offset + (start.Value - section.Address) + length > (ulong)RandomAccess.GetLength(handle))
            {
                why = $"{path}'s ftrace records lie past the end of the file";
                return null;
            }
            var data = new byte[length];
            if (RandomAccess.Read(handle, data, (long)(section.Offset + start.Value - section.Address)) != data.Length)
            {
                why = $"{path}'s ftrace records lie past the end of the file";
                return null;
            }
            var sites = new ulong[length / 8];
            for (int i = 0; i < sites.Length; i++)
                sites[i] = elf.IsLittleEndian ? System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(
                        data.AsSpan(i * 8)) : System.Buffers.Binary.BinaryPrimitives.ReadUInt64BigEndian(
                        data.AsSpan(i * 8));
            Array.Sort(sites);
            // kallsyms' symbols in the text: every named code symbol (not sections, files or local labels).
            var code = elf.Entries.Where(e => Defined(e) && (e.Info & 0xf) is SttFunc or SttNotype && e.NameLength > 0
                    && (elf.Sections[e.Section].Flags & ShfExecInstr) != 0)
                .Select(e => (Entry: e, Name: NameOf(e)))
                .Where(x => !x.Name.StartsWith(".L", StringComparison.Ordinal) && !x.Name.StartsWith('$')).ToList();
            var functions = new Dictionary<string, List<(ulong, ulong)>>(StringComparer.Ordinal);
            foreach (var (e, name) in code.Where(x => (x.Entry.Info & 0xf) == SttFunc).OrderBy(x => x.Entry.Value))
            {
                if (!functions.TryGetValue(name, out var list)) functions[name] = list = [];
                list.Add((e.Value, e.Size));
            }
            return new VmlinuxFtraceSites(sites, code.Select(x => x.Entry.Value).Distinct().Order().ToArray(),
                functions);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            why = $"{path}: {e.Message}";
            return null;
        }
    }

    /// <summary>
    /// A coded refusal (PLP5011) when the kernel could attach the replacement of <paramref name="function"/> (its
    /// <c>old_sympos</c> <paramref name="position"/>: 0 the only one, else the n-th in address order) anywhere but
    /// at its own ftrace site; null when it has exactly its own, or when vmlinux has no such function (the binding
    /// says so elsewhere).
    /// </summary>
    public Diagnostic? Check(string function, ulong position, string path, SourceLocation? source)
    {
        if (!_functions.TryGetValue(function, out var named) || (position == 0 && named.Count > 1)
            || position > (ulong)named.Count) return null;
        var symbol = named[position == 0 ? 0 : (int)position - 1];
        ulong begin = symbol.Address;
        int next = Array.BinarySearch(_symbolStarts, begin + 1);
        if (next < 0) next = ~next;
        ulong end = next < _symbolStarts.Length ? _symbolStarts[next] : begin + Math.Max(symbol.Size, 4);
        int first = Array.BinarySearch(_sites, begin);
        if (first < 0) first = ~first;
        var inRange = new List<ulong>();
        for (int i = first; i < _sites.Length && _sites[i] < end; i++) inRange.Add(_sites[i]);
        var own = inRange.Where(a => a < begin + symbol.Size).ToList();
        if (inRange.Count == 1 && own.Count == 1) return null;
        string sites = string.Join(", ", inRange.Select(a => $"+0x{a - begin:x}"));
        string why = inRange.Count == 0 ? "none at all: the function is not traceable in this kernel"
            : own.Count == 0 ? $"{sites}, none inside the function itself (0x{symbol.Size:x} bytes)"
            : $"{sites}: past its end (0x{symbol.Size:x} bytes) lies code no symbol names, with an ftrace site of " +
                "its own, and ftrace_location() may return that one";
        return new Diagnostic(DiagnosticCatalog.DiffFtraceSiteNotOwn,
            $"{function}'s ftrace_location() range in vmlinux [0x{begin:x}, +0x{end - begin:x}) holds " +
                $"{inRange.Count} ftrace site(s): {why}; the livepatch core attaches the patch where " +
                "ftrace_location() points, so it would load, report itself enabled, and never run",
            path, Function: function, Source: source,
            Fix: "Patch the function's callers instead (their ranges hold only their own ftrace site), or change the " +
                "kernel so the code after the function has a symbol of its own.");
    }
}
