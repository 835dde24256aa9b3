using PpcLivepatch.Ppc64;

namespace PpcLivepatch.Diff;

/// <summary>How an object's functions are made traceable, which decides what the livepatch core can redirect.</summary>
public enum FtraceSiteKind
{
    /// <summary><c>-mprofile-kernel</c> (Linux up to 6.11 on ppc64le with GCC): <c>mflr r0; bl _mcount</c> right
    /// after the entry, listed in <c>__mcount_loc</c> by recordmcount.</summary>
    MprofileKernel,
    /// <summary><c>-fpatchable-function-entry</c> (6.12 and later: two nops after the local entry; out-of-line
    /// ftrace since 6.13: one), listed by the compiler in <c>__patchable_function_entries</c>.</summary>
    PatchableEntry,
    /// <summary>Neither is in the object: no traceable function at all, so the kernel's model is not
    /// known.</summary>
    Unknown,
}

/// <summary>
/// The one place that knows an object's ftrace model and whether a function of it has its ftrace site: an object
/// with a <c>__patchable_function_entries</c> section uses the patchable entry, any other the <c>_mcount</c> call.
/// </summary>
internal sealed class FtraceModel
{
    private readonly ObjectInventory _inventory;
    private readonly HashSet<(int Section, ulong Offset)> _patchableSites = [];

    public FtraceSiteKind Kind { get; }

    private FtraceModel(ObjectInventory inventory)
    {
        _inventory = inventory;
        var image = inventory.Image;
        Kind = image.Sections.Any(s => s.Name == "__mcount_loc") || image.Symbols.Any(s => s.IsUndefined
            && s.Name is "_mcount" or "mcount") ? FtraceSiteKind.MprofileKernel : FtraceSiteKind.Unknown;
        foreach (var table in image.Sections.Where(s => s.Name == "__patchable_function_entries"))
        {
            Kind = FtraceSiteKind.PatchableEntry;
            foreach (var r in inventory.RelocationsOf(table))
            {
                if (r.SymbolIndex >= image.Symbols.Count) continue;
                var sym = image.Symbols[(int)r.SymbolIndex];
                if (sym.IsInSection)
                    _patchableSites.Add(((int)sym.SectionIndex, unchecked(sym.Value + (ulong)r.Addend)));
            }
        }
    }

    public static FtraceModel Of(ObjectInventory inventory) => new(inventory);

    /// <summary>What the site looks like, for the refusal that says a function has none.</summary>
    public string SiteDescription => Kind switch
    {
        FtraceSiteKind.PatchableEntry =>
            "a __patchable_function_entries record (-fpatchable-function-entry's nops at its entry)",
        FtraceSiteKind.MprofileKernel => "bl _mcount in its prologue",
        _ => "neither -mprofile-kernel's bl _mcount nor a -fpatchable-function-entry record: the object has no " +
            "traceable function",
    };

    /// <summary>Whether the function has its ftrace site at its entry, where the livepatch core redirects it: within
    /// its first 16 bytes (the global entry's two TOC instructions, then the site).</summary>
    public bool HasSite(ObjectEntity f) => Kind == FtraceSiteKind.PatchableEntry
        ? _patchableSites.Any(s => s.Section == f.Section.Index && s.Offset >= f.Start && s.Offset - f.Start <= 16)
        : f.Relocations.Any(r => r.Type is R.PPC64_REL24 or R.PPC64_REL24_NOTOC && r.Offset - f.Start <= 16
            && _inventory.Image.Symbols[(int)r.SymbolIndex].Name is "_mcount" or "mcount" or "__fentry__");

    /// <summary>-pg without -mprofile-kernel: <c>_mcount</c> is called, but after the prologue.</summary>
    public bool CallsMcountLate(ObjectEntity f) => Kind == FtraceSiteKind.MprofileKernel
        && f.Relocations.Any(r => r.Type is R.PPC64_REL24 or R.PPC64_REL24_NOTOC
            && _inventory.Image.Symbols[(int)r.SymbolIndex].Name is "_mcount" or "mcount");
}
