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
        foreach (var name in patched.ByName.Keys)
            if (original.ByName.ContainsKey(name) && paired.Add(name)) _patchedToOriginal[name] = name;

        // Renumbered names: group the unpaired ones of each side by their number-free key.
        var looseOriginal = original.ByName.Keys.Where(n => !paired.Contains(n))
            .GroupBy(Key).Where(g => g.Key is not null).ToDictionary(g => g.Key!, g => g.ToList());
        var loosePatched = patched.ByName.Keys.Where(n => !_patchedToOriginal.ContainsKey(n))
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
            // Several statics of one name (two functions' "count"): pair those used by the same functions.
            foreach (var name in names)
            {
                var users = UsersOf(patched, name).Select(u => Original(u) ?? u).ToHashSet(StringComparer.Ordinal);
                var match = candidates.Where(c => UsersOf(original, c).ToHashSet(StringComparer.Ordinal)
                    .SetEquals(users)).ToList();
                if (match.Count == 1 && paired.Add(match[0])) _patchedToOriginal[name] = match[0];
                else ambiguous.Add(name);
            }
        }
        Ambiguous = ambiguous;
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
