using System.Text.RegularExpressions;
using static PpcLivepatch.Elf.ElfConstants;

namespace PpcLivepatch.Diff;

/// <summary>
/// A function's static locals — GCC names a function-scope <c>static</c> <c>NAME.N</c>, a local data object — as the
/// function's code reaches them: directly, through a section symbol, or through the <c>.toc</c> slot that holds the
/// address (<c>-mcmodel=large</c>).
/// </summary>
internal static partial class StaticLocals
{
    [GeneratedRegex(@"^(?<name>[A-Za-z_][A-Za-z0-9_]*)\.\d+$")]
    private static partial Regex GccStaticName();

    /// <summary>The C name of a static local (<c>calls</c> for <c>calls.0</c>), or null for any other symbol.</summary>
    public static string? CName(ObjectEntity e) =>
        !e.IsFunction && e.Symbol.Bind == StbLocal && GccStaticName().Match(e.Name) is { Success: true } m
            ? m.Groups["name"].Value : null;

    public static IReadOnlyList<ObjectEntity> UsedBy(ObjectInventory inventory, ObjectEntity function)
    {
        var image = inventory.Image;
        var used = new List<ObjectEntity>();
        foreach (var r in function.Relocations)
        {
            var target = Target(r.SymbolIndex, r.Addend);
            var section = target.Section;
            if (section is { Name: ".toc" })
            {
                var slot = inventory.RelocationsIn(section, target.At, target.At + 8);
                target = slot.Count == 1 ? Target(slot[0].SymbolIndex, slot[0].Addend) : default;
            }
            if (target.Entity is { } e && CName(e) is not null && !used.Contains(e)) used.Add(e);
        }
        return used;

        (Elf.ElfSection? Section, ulong At, ObjectEntity? Entity) Target(uint symbolIndex, long addend)
        {
            if (symbolIndex >= image.Symbols.Count) return default;
            var sym = image.Symbols[(int)symbolIndex];
            if (!sym.IsInSection || sym.SectionIndex >= image.Sections.Count) return default;
            var section = image.Sections[(int)sym.SectionIndex];
            ulong at = unchecked(sym.Value + (ulong)addend);
            return (section, at, sym.Type == SttSection ? inventory.At(section.Index, at)
                : inventory.ByName.GetValueOrDefault(sym.Name));
        }
    }
}
