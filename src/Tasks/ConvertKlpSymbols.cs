using Microsoft.Build.Framework;
using PpcLivepatch.Diagnostics;
using PpcLivepatch.Klp;
using PpcLivepatch.Steps;

namespace PpcLivepatch.Build.Tasks;

/// <summary>
/// Binds the <c>KlpSymbol</c> items' references through livepatch relocations (<see cref="ConvertStep"/>).
/// Item metadata: <c>Object</c> (default vmlinux), <c>Name</c> (default the item), <c>Position</c> (default 0).
/// </summary>
public sealed class ConvertKlpSymbols : LivepatchObjectTask
{
    public ITaskItem[] KlpSymbols { get; set; } = [];

    protected override StepOptions? Options()
    {
        var specs = new List<KlpSymbolSpec>();
        foreach (var item in KlpSymbols)
        {
            string obj = item.GetMetadata("Object"), name = item.GetMetadata("Name"),
                position = item.GetMetadata("Position");
            if (!ulong.TryParse(string.IsNullOrEmpty(position) ? "0" : position, out ulong pos))
            {
                var (file, line) = ProjectItemLocation.Of(item, "KlpSymbol", BuildEngine?.ProjectFileOfTaskNode ?? "");
                DiagnosticLogging.Log(Log, DiagnosticCatalog.BadKlpSymbolItem, HelpLinkBase, file, line, 0,
                    $"KlpSymbol '{item.ItemSpec}' has Position '{position}', which is not a non-negative number");
                continue;
            }
            specs.Add(new KlpSymbolSpec(item.ItemSpec, string.IsNullOrEmpty(obj) ? "vmlinux" : obj,
                string.IsNullOrEmpty(name) ? null : name, pos));
        }
        return Log.HasLoggedErrors ? null : new StepOptions(StepKind.Convert, LoaderOptions, Symbols: specs);
    }

    /// <summary>
    /// A finding about a KlpSymbol as a whole (not found, a clone, data) is about what the user wrote: it points at the
    /// item in the project file, not at obj/…/link/x.o. Findings at a place in the object stay there.
    /// </summary>
    protected override Diagnostic Locate(Diagnostic d)
    {
        if (d.Section is not null || d.Source is not null || d.Callee is null) return d;
        var item = KlpSymbols.FirstOrDefault(i => ProjectItemLocation.KlpSymbolName(i) == d.Callee);
        if (item is null) return d;
        var (file, line) = ProjectItemLocation.Of(item, "KlpSymbol",
            BuildEngine?.ProjectFileOfTaskNode ?? d.ObjectPath);
        return d with { Source = new SourceLocation(file, line, 0) };
    }
}
