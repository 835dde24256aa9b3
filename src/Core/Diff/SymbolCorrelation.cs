using System.Text.RegularExpressions;
using PpcLivepatch.Elf;
using static PpcLivepatch.Elf.ElfConstants;

namespace PpcLivepatch.Diff;

/// <summary>
/// Which entity of the patched object is which of the original. By name first; then what GCC renumbers between two
/// compiles of one file: clones (<c>f.constprop.0</c> ↔ <c>f.constprop.1</c>, <c>.isra.N</c>, <c>.part.N</c>,
/// <c>.cold</c>) and function-scope statics (<c>count.12</c> ↔ <c>count.15</c>, told apart by the functions that use
/// them). A rename that cannot be paired one to one is left unpaired and reported, never guessed.
/// </summary>
public sealed partial class SymbolCorrelation
{
    private readonly Dictionary<string, string> _patchedToOriginal = new(StringComparer.Ordinal);

    /// <summary>Patched names whose original could not be told apart from another candidate.</summary>
    public IReadOnlyList<string> Ambiguous { get; }

    public SymbolCorrelation(ObjectInventory original, ObjectInventory patched)
    {
        var ambiguous = new List<string>();
        var paired = new HashSet<string>(StringComparer.Ordinal);
        // Function-scope constants (__func__.3, a const table): GCC's number shifts when the patch adds one before
        // them, so they are told apart by their bytes. One identical copy in the original: that copy. None, or
        // several alike: unpaired, a new constant in the livepatch — the same value, and a constant holds no state.
        var constants = patched.ByName.Keys.Where(n => IsConstantStatic(patched.ByName[n]))
            .Order(StringComparer.Ordinal).ToList();
        // Keyed once (a constant's name always has GCC's number, so its key is never null): one pass per constant
        // over every entity, each renaming its key afresh, was a tenth of a small diff.
        var originalConstants = original.ByName.Values.Where(IsConstantStatic)
            .ToLookup(o => Key(o.Name)!, StringComparer.Ordinal);
        foreach (var name in constants)
        {
            var alike = originalConstants[Key(name)!]
                .Where(o => ObjectInventory.SameBytes(original, o, patched, patched.ByName[name])).ToList();
            // Several alike (one message used in several places): the one of the same name, if it is among them.
            if (alike.Count > 1 && alike.FirstOrDefault(o => o.Name == name) is { } same) alike = [same];
            if (alike.Count == 1 && paired.Add(alike[0].Name)) _patchedToOriginal[name] = alike[0].Name;
        }
        // A clone's name proves nothing when the function has several clones (f.constprop.9 and f.constprop.10 are
        // numbered per compile: the original's .10 may be the patched .11): those pair below, by their code.
        var crowded = original.Entities.Concat(patched.Entities).Where(e => e.IsFunction).Select(e => Key(e.Name))
            .OfType<string>().GroupBy(k => k, StringComparer.Ordinal).Where(g => g.Count() > 2).Select(g => g.Key)
            .ToHashSet(StringComparer.Ordinal);
        foreach (var name in patched.ByName.Keys.Except(constants))
            if (!(Key(name) is { } k && crowded.Contains(k)) && original.ByName.ContainsKey(name) && paired.Add(name))
                _patchedToOriginal[name] = name;

        // Renumbered names: group the unpaired ones of each side by their number-free key.
        var looseOriginal = original.ByName.Keys.Where(n => !paired.Contains(n))
            .GroupBy(Key).Where(g => g.Key is not null).ToDictionary(g => g.Key!, g => g.ToList());
        var loosePatched = patched.ByName.Keys
            .Where(n => !_patchedToOriginal.ContainsKey(n) && !constants.Contains(n))
            .GroupBy(Key).Where(g => g.Key is not null).ToDictionary(g => g.Key!, g => g.ToList());
        foreach (var (key, names) in loosePatched)
        {
            if (!looseOriginal.TryGetValue(key, out var candidates)) continue;
            if (names.Count == 1 && candidates.Count == 1)
            {
                _patchedToOriginal[names[0]] = candidates[0];
                paired.Add(candidates[0]);
                continue;
            }
            // Clones of one function: the original's clone with the same code, numbered names read without their
            // numbers; then a last one left on each side is that one.
            foreach (var name in names.Where(n => patched.ByName[n].IsFunction))
            {
                var same = candidates.Where(c => !paired.Contains(c) && original.ByName[c].IsFunction
                    && SameCode(original, original.ByName[c], patched, patched.ByName[name])).ToList();
                if (same.Count == 1 && paired.Add(same[0])) _patchedToOriginal[name] = same[0];
            }
            var leftNames = names.Where(n => !_patchedToOriginal.ContainsKey(n)).ToList();
            var leftCandidates = candidates.Where(c => !paired.Contains(c)).ToList();
            if (leftNames.Count == 1 && leftCandidates.Count == 1 && leftNames.Count < names.Count)
            {
                _patchedToOriginal[leftNames[0]] = leftCandidates[0];
                paired.Add(leftCandidates[0]);
                continue;
            }
            // Several statics of one name (two functions' "count"): pair those used by the same functions.
            foreach (var name in leftNames)
            {
                var users = UsersOf(patched, name).Select(u => Original(u) ?? u).ToHashSet(StringComparer.Ordinal);
                var match = candidates.Where(c => UsersOf(original, c).ToHashSet(StringComparer.Ordinal)
                    .SetEquals(users)).ToList();
                if (match.Count == 1 && paired.Add(match[0])) _patchedToOriginal[name] = match[0];
                // An empty object (a lockdep class key without lockdep) holds no state: a new one is the same.
                else if (patched.ByName[name].Size != 0) ambiguous.Add(name);
            }
        }
        Ambiguous = ambiguous;
    }

    /// <summary>A function-scope static the code cannot change: read-only bytes with no relocations.</summary>
    internal static bool IsConstantStatic(ObjectEntity e) =>
        StaticLocals.CName(e) is not null && (e.Section.Flags & ShfWrite) == 0 && e.Section.Type != ShtNobits
            && e.Relocations.Count == 0 && e.Size > 0;

    /// <summary>The same bytes and the same relocations, read as <see cref="ReferenceMeaning"/> reads them with
    /// every name GCC numbers taken without its number.</summary>
    private static bool SameCode(ObjectInventory a, ObjectEntity x, ObjectInventory b, ObjectEntity y)
    {
        if (x.Size != y.Size || x.Relocations.Count != y.Relocations.Count
            || !ObjectInventory.SameBytes(a, x, b, y)) return false;
        var (left, right) = (new ReferenceMeaning(a, n => Key(n) ?? n), new ReferenceMeaning(b, n => Key(n) ?? n));
        for (int i = 0; i < x.Relocations.Count; i++)
        {
            var (rx, ry) = (x.Relocations[i], y.Relocations[i]);
            if (rx.Offset - x.Start != ry.Offset - y.Start || rx.Type != ry.Type || left.Of(rx) != right.Of(ry))
                return false;
        }
        return true;
    }

    /// <summary>The original's name for a patched entity, or null for a new one.</summary>
    public string? Original(string patchedName) =>
        _patchedToOriginal.TryGetValue(patchedName, out var o) ? o : null;

    // f.constprop.0 -> f.constprop.#, count.12 -> count.#: the parts GCC numbers per compile.
    [GeneratedRegex(@"\.(\d+)(?=\.|$)")]
    private static partial Regex Number();

    // __initcall__kmod_proc__213_25_proc_cmdline_init5: a counter and the line of the initcall, both per compile.
    [GeneratedRegex(@"^(__initcall__kmod_.*?__)\d+_\d+_")]
    private static partial Regex InitcallEntry();

    private static string? Key(string name) =>
        InitcallEntry().IsMatch(name) ? InitcallEntry().Replace(name, "$1#_#_")
        : Number().IsMatch(name) ? Number().Replace(name, ".#") : null;

    /// <summary>The functions whose relocations name <paramref name="entity"/> (directly or through their
    /// section).</summary>
    private static IEnumerable<string> UsersOf(ObjectInventory inventory, string entity)
    {
        if (!inventory.ByName.TryGetValue(entity, out var target)) yield break;
        foreach (var f in inventory.Entities.Where(e => e.IsFunction))
        {
            foreach (var r in f.Relocations)
            {
                var sym = inventory.Image.Symbols[(int)r.SymbolIndex];
                bool names = sym.Name == entity
                    || sym.Type == SttSection && sym.SectionIndex == target.Section.Index
                        && inventory.At(target.Section.Index, unchecked(sym.Value + (ulong)r.Addend)) == target;
                if (names) { yield return f.Name; break; }
            }
        }
    }
}
