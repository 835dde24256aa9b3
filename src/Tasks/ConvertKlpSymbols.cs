using Microsoft.Build.Framework;
using PpcLivepatch.Klp;

namespace PpcLivepatch.Build.Tasks;

/// <summary>
/// Binds the <c>KlpSymbol</c> items' references through livepatch relocations (<see cref="KlpConverter"/>).
/// Item metadata: <c>Object</c> (default vmlinux), <c>Name</c> (default the item), <c>Position</c> (default 0).
/// </summary>
public sealed class ConvertKlpSymbols : LivepatchObjectTask
{
    public ITaskItem[] KlpSymbols { get; set; } = [];

    protected override bool ExecuteCore()
    {
        if (!TryReadSpecs(out var specs)) return false;
        foreach (var item in Objects)
        {
            string output = OutputOf(item);
            var image = Load(item.ItemSpec);
            if (image is null) { DeleteIfExists(output); continue; }
            var result = KlpConverter.Convert(image, specs);
            DiagnosticLogging.Log(Log, result.Diagnostics, HelpLinkBase);
            if (!result.Succeeded || !Write(output, result.Output)) { DeleteIfExists(output); continue; }
            if (result.RelocationsMoved > 0 || result.DroppedSections.Count > 0)
                Log.LogMessage(MessageImportance.Normal, "{0}: {1} relocations bound to livepatch symbols{2}", output, result.RelocationsMoved,
                    result.DroppedSections.Count > 0 ? $", copies dropped: {string.Join(", ", result.DroppedSections)}" : "");
        }
        return !Log.HasLoggedErrors;
    }

    private bool TryReadSpecs(out List<KlpSymbolSpec> specs)
    {
        specs = [];
        foreach (var item in KlpSymbols)
        {
            string obj = item.GetMetadata("Object"), name = item.GetMetadata("Name"), position = item.GetMetadata("Position");
            if (!ulong.TryParse(string.IsNullOrEmpty(position) ? "0" : position, out ulong pos))
            {
                Log.LogError(DiagnosticLogging.Subcategory, Diagnostics.DiagnosticCatalog.BadKlpSymbolItem, Diagnostics.DiagnosticCatalog.BadKlpSymbolItem,
                    (HelpLinkBase ?? Diagnostics.DiagnosticCatalog.HelpLinkBase) + Diagnostics.DiagnosticCatalog.BadKlpSymbolItem + ".md",
                    BuildEngine?.ProjectFileOfTaskNode ?? "", 0, 0, 0, 0,
                    "KlpSymbol '{0}' has Position '{1}', which is not a non-negative number", item.ItemSpec, position);
                continue;
            }
            specs.Add(new KlpSymbolSpec(item.ItemSpec, string.IsNullOrEmpty(obj) ? "vmlinux" : obj, string.IsNullOrEmpty(name) ? null : name, pos));
        }
        return !Log.HasLoggedErrors;
    }
}
