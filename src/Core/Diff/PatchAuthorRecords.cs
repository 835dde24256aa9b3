using PpcLivepatch.Diagnostics;
using PpcLivepatch.Elf;
using static PpcLivepatch.Elf.ElfConstants;

namespace PpcLivepatch.Diff;

/// <summary>A klp callback the patch asks for: <paramref name="Kind"/> is <c>pre_patch</c>, <c>post_patch</c>,
/// <c>pre_unpatch</c> or <c>post_unpatch</c>; <paramref name="Symbol"/> is the function's global name in the livepatch
/// object.</summary>
public sealed record KlpCallback(string Kind, string Object, string Symbol)
{
    /// <summary>The kinds in the order the kernel calls them over a patch's life.</summary>
    public static readonly string[] Kinds = ["pre_patch", "post_patch", "pre_unpatch", "post_unpatch"];

    public static string SymbolFor(string kind, string objectName) =>
        $"__klp_{kind}_{(objectName == "vmlinux" ? "vmlinux" : "module_" + objectName)}";
}

/// <summary>
/// What a patch author asked for through the SDK's <c>kpatch-macros.h</c> (kpatch's documented patch-author
/// macros): each macro leaves a record in a <c>.plp.*</c> section of the patched object — a pointer to a callback
/// (<c>.plp.callback.KIND</c>), to a function whose change is a side effect (<c>.plp.ignore.function</c>), or the name
/// of such a section (<c>.plp.ignore.section</c>). The records themselves never reach the livepatch.
/// </summary>
internal sealed class PatchAuthorRecords
{
    public HashSet<ObjectEntity> Records { get; } = [];
    public Dictionary<string, ObjectEntity> Callbacks { get; } = new(StringComparer.Ordinal);
    public HashSet<string> IgnoredFunctions { get; } = new(StringComparer.Ordinal);
    public HashSet<string> IgnoredSections { get; } = new(StringComparer.Ordinal);

    public bool Ignores(ObjectEntity e) =>
        (e.IsFunction && IgnoredFunctions.Contains(e.Name)) || IgnoredSections.Contains(e.Section.Name);

    public static PatchAuthorRecords Read(ObjectInventory after, Action<string, string?> refuse)
    {
        var records = new PatchAuthorRecords();
        foreach (var e in after.Entities.Where(e => e.Section.Name.StartsWith(".plp.", StringComparison.Ordinal))
                     .OrderBy(e => e.Symbol.Index))
        {
            records.Records.Add(e);
            string section = e.Section.Name;
            if (section == ".plp.ignore.section")
            {
                var bytes = after.Bytes(e);
                int end = Array.IndexOf(bytes, (byte)0);
                if (end <= 0) refuse($"{e.Name} in {section} holds no section name", null);
                else records.IgnoredSections.Add(System.Text.Encoding.UTF8.GetString(bytes, 0, end));
                continue;
            }
            var function = Pointee(after, e);
            if (function is null)
            {
                refuse($"{e.Name} in {section} does not point to a function of the patched file", null);
                continue;
            }
            if (section == ".plp.ignore.function")
            {
                records.IgnoredFunctions.Add(function.Name);
                continue;
            }
            string kind = section[".plp.callback.".Length..];
            if (!section.StartsWith(".plp.callback.", StringComparison.Ordinal) || !KlpCallback.Kinds.Contains(kind))
                refuse($"{e.Name} is in {section}, which is no record kpatch-macros.h makes", null);
            else if (!records.Callbacks.TryAdd(kind, function))
                refuse($"the patch registers two {kind} callbacks in one file (" + string.Join(" and ",
                    new[] { records.Callbacks[kind].Name, function.Name }.Order(StringComparer.Ordinal)) +
                    "): a klp_object has one of each kind", function.Name);
        }
        return records;
    }

    /// <summary>The function a record's one pointer names, by its symbol or by its section and offset.</summary>
    private static ObjectEntity? Pointee(ObjectInventory after, ObjectEntity record)
    {
        if (record.Relocations.Count != 1 || record.Relocations[0].Offset != record.Start) return null;
        var r = record.Relocations[0];
        if (r.SymbolIndex >= after.Image.Symbols.Count) return null;
        var symbol = after.Image.Symbols[(int)r.SymbolIndex];
        var target = symbol.Type == SttSection
            ? after.At((int)symbol.SectionIndex, (ulong)r.Addend)
            : r.Addend == 0 ? after.ByName.GetValueOrDefault(symbol.Name) : null;
        return target is { IsFunction: true } ? target : null;
    }
}
