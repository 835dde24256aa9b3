using Microsoft.Build.Framework;
using PpcLivepatch.Diagnostics;

namespace PpcLivepatch.Build.Tasks;

/// <summary>
/// Checks the vmlinux <c>KlpSymbol</c> items against the target kernel's <c>System.map</c> before anything is compiled,
/// as the livepatch core will resolve them when the patch is enabled (klp_find_object_symbol): a name the kernel does
/// not have, or one it has several times without a <c>Position</c> that picks one (1-based, in address order, as
/// kallsyms counts), would build a module the kernel refuses at enable time. Errors are at the item in the project
/// file. Symbols of other objects (modules) are not in System.map and are not checked.
/// </summary>
public sealed class CheckKlpSymbolsAgainstKernel : PpcLivepatchTask
{
    public ITaskItem[] KlpSymbols { get; set; } = [];

    [Required]
    public string SystemMap { get; set; } = "";

    protected override bool ExecuteCore()
    {
        var vmlinux = KlpSymbols.Where(i => i.GetMetadata("Object") is "" or "vmlinux").ToList();
        if (vmlinux.Count == 0) return true;
        Dictionary<string, int> counts;
        try
        {
            counts = Count(SystemMap, vmlinux.Select(ProjectItemLocation.KlpSymbolName)
                .ToHashSet(StringComparer.Ordinal));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            DiagnosticLogging.Log(Log, DiagnosticCatalog.UnreadableFile, HelpLinkBase, SystemMap, 0, 0,
                $"cannot read the kernel's symbol map '{SystemMap}': {e.Message}");
            return false;
        }
        foreach (var item in vmlinux)
        {
            string name = ProjectItemLocation.KlpSymbolName(item);
            string position = item.GetMetadata("Position");
            // A Position that is not a number is Convert's PLP0101; judged here as 0 it would mislead.
            if (!ulong.TryParse(string.IsNullOrEmpty(position) ? "0" : position, out ulong pos)) continue;
            int count = counts.GetValueOrDefault(name);
            var (file, line) = ProjectItemLocation.Of(item, "KlpSymbol", BuildEngine?.ProjectFileOfTaskNode ?? "");
            var at = new SourceLocation(file, line, 0);
            Diagnostic? d = null;
            string refused = $"the livepatch core would refuse it: {(count > 1 && pos == 0
                ? $"unresolvable ambiguity for symbol '{name}' in object 'vmlinux'"
                : $"symbol position {pos} for symbol '{name}' in object 'vmlinux' not found")}";
            if (count == 0)
                d = new Diagnostic(DiagnosticCatalog.KlpSymbolNotInKernel,
                    $"KlpSymbol '{item.ItemSpec}': the target kernel has no symbol '{name}' ({SystemMap}); " +
                    "the livepatch core would refuse to enable the patch",
                    file, Callee: name, Source: at,
                    Fix: "Check the name against the kernel's System.map or /proc/kallsyms (a static function may " +
                        "have been renamed, specialised or inlined away).");
            else if (count > 1 && pos == 0)
                d = new Diagnostic(DiagnosticCatalog.KlpSymbolAmbiguous,
                    $"KlpSymbol '{item.ItemSpec}': the target kernel has {count} symbols named '{name}' " +
                    $"({SystemMap}), and no Position picks one; {refused}",
                    file, Callee: name, Source: at,
                    Fix: $"Set Position to 1–{count}: the symbol's place among them in address order, as " +
                        "/proc/kallsyms lists them.");
            else if (pos > (ulong)count)
                d = new Diagnostic(DiagnosticCatalog.KlpSymbolAmbiguous,
                    $"KlpSymbol '{item.ItemSpec}' has Position {pos}, and the target kernel has {count} " +
                    $"symbol{(count == 1 ? "" : "s")} named '{name}' ({SystemMap}); {refused}",
                    file, Callee: name, Source: at,
                    Fix: count == 1 ? "Set Position to 0 (or 1): the name is unique." : $"Set Position to 1–{count}.");
            if (d is not null) DiagnosticLogging.Log(Log, d, HelpLinkBase);
        }
        return !Log.HasLoggedErrors;
    }

    /// <summary>How often each wanted name occurs in a System.map ("address type name" per line).</summary>
    private static Dictionary<string, int> Count(string systemMap, HashSet<string> wanted)
    {
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (string line in File.ReadLines(systemMap))
        {
            int last = line.LastIndexOf(' ');
            if (last < 0) continue;
            string name = line[(last + 1)..];
            if (wanted.Contains(name)) counts[name] = counts.GetValueOrDefault(name) + 1;
        }
        return counts;
    }
}
