using PpcLivepatch.Analysis;
using PpcLivepatch.Ppc64;

namespace PpcLivepatch.Diff;

/// <summary>
/// Whether a function of an object has its ftrace site where the livepatch core redirects it, in the object's own
/// ftrace model (<see cref="FtraceSites"/>): the patchable models by the compiler's records, -mprofile-kernel by the
/// <c>bl _mcount</c> at the entry.
/// </summary>
internal sealed class FtraceModel
{
    private readonly ObjectInventory _inventory;
    private readonly HashSet<(int Section, ulong Offset)> _patchableSites;

    public FtraceSiteKind Kind { get; }

    private FtraceModel(ObjectInventory inventory)
    {
        _inventory = inventory;
        Kind = FtraceSites.Of(inventory.Image);
        _patchableSites = [.. FtraceSites.PatchableRecords(inventory.Image)];
    }

    public static FtraceModel Of(ObjectInventory inventory) => new(inventory);

    private bool Patchable => Kind is FtraceSiteKind.PatchableEntry or FtraceSiteKind.OutOfLine;

    /// <summary>What the site looks like, for the refusal that says a function has none.</summary>
    public string SiteDescription => Kind switch
    {
        FtraceSiteKind.Unknown => "neither -mprofile-kernel's bl _mcount nor a -fpatchable-function-entry record: " +
            "the object has no traceable function",
        FtraceSiteKind.MprofileKernel => "no bl _mcount at its entry; the object is built with " +
            FtraceSites.Describe(Kind),
        _ => $"no {FtraceSites.PatchableTable} record; the object is built with {FtraceSites.Describe(Kind)}",
    };

    /// <summary>Whether the function has its ftrace site at its entry, where the livepatch core redirects it: within
    /// its first 16 bytes (the global entry's two TOC instructions, then the site).</summary>
    public bool HasSite(ObjectEntity f) => Patchable
        ? _patchableSites.Any(s => s.Section == f.Section.Index && s.Offset >= f.Start && s.Offset - f.Start <= 16)
        : f.Relocations.Any(r => r.Type is R.PPC64_REL24 or R.PPC64_REL24_NOTOC && r.Offset - f.Start <= 16
            && _inventory.Image.Symbols[(int)r.SymbolIndex].Name is "_mcount" or "mcount" or "__fentry__");

    /// <summary>-pg without -mprofile-kernel: <c>_mcount</c> is called, but after the prologue.</summary>
    public bool CallsMcountLate(ObjectEntity f) => Kind == FtraceSiteKind.MprofileKernel
        && f.Relocations.Any(r => r.Type is R.PPC64_REL24 or R.PPC64_REL24_NOTOC
            && _inventory.Image.Symbols[(int)r.SymbolIndex].Name is "_mcount" or "mcount");
}
