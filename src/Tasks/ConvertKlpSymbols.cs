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
            string obj = item.GetMetadata("Object"), name = item.GetMetadata("Name"), position = item.GetMetadata("Position");
            if (!ulong.TryParse(string.IsNullOrEmpty(position) ? "0" : position, out ulong pos))
            {
                LogTaskError(DiagnosticCatalog.BadKlpSymbolItem,
                    $"KlpSymbol '{item.ItemSpec}' has Position '{position}', which is not a non-negative number");
                continue;
            }
            specs.Add(new KlpSymbolSpec(item.ItemSpec, string.IsNullOrEmpty(obj) ? "vmlinux" : obj,
                string.IsNullOrEmpty(name) ? null : name, pos));
        }
        return Log.HasLoggedErrors ? null : new StepOptions(StepKind.Convert, LoaderOptions, Symbols: specs);
    }
}
