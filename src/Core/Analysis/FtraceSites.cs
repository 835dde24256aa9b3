using PpcLivepatch.Elf;
using PpcLivepatch.Ppc64;

namespace PpcLivepatch.Analysis;

/// <summary>How a kernel line makes its functions traceable on ppc64, which decides where the livepatch core redirects
/// a function and what the module loader does with a module's records.</summary>
public enum FtraceSiteKind
{
    /// <summary>No traceable function in the object (or a kernel without the function tracer): the model is not
    /// known from it.</summary>
    Unknown,
    /// <summary><c>-mprofile-kernel</c> (Linux up to 6.11 with GCC, and any line built by a GCC whose patchable nops
    /// land before the local entry): <c>mflr r0; bl _mcount</c> after the local entry, listed in
    /// <c>__mcount_loc</c> by recordmcount.</summary>
    MprofileKernel,
    /// <summary><c>-fpatchable-function-entry=2</c> (6.12 built by GCC 14): two nops after the local entry, listed by
    /// the compiler in <c>__patchable_function_entries</c>; no <c>_mcount</c> call.</summary>
    PatchableEntry,
    /// <summary>Out-of-line ftrace (<c>CONFIG_PPC_FTRACE_OUT_OF_LINE</c>, 6.13 and later): one nop after the local
    /// entry, listed in <c>__patchable_function_entries</c>; the module loader makes one stub per record.</summary>
    OutOfLine,
}

/// <summary>
/// The one place that tells the ftrace models apart: from an object's own records (which sections it has, and how
/// many nops each patchable record points at) and from a kernel's configuration.
/// </summary>
public static class FtraceSites
{
    public const string PatchableTable = "__patchable_function_entries";
    public const string McountTable = "__mcount_loc";

    /// <summary>The model an object was compiled with. A patchable record followed by a second nop everywhere is the
    /// two-nop model; one record whose next word is code is the out-of-line model's single nop.</summary>
    public static FtraceSiteKind Of(ElfImage image)
    {
        bool any = false, allTwo = true;
        foreach (var (section, offset) in PatchableRecords(image))
        {
            var code = image.Data(image.Sections[section]);
            if (offset + 4 > (ulong)code.Length) continue;
            any = true;
            if (image.ReadU32(code, (int)offset) != Instruction.Nop) continue;
            if (offset + 8 > (ulong)code.Length || image.ReadU32(code, (int)offset + 4) != Instruction.Nop)
                allTwo = false;
        }
        if (any) return allTwo ? FtraceSiteKind.PatchableEntry : FtraceSiteKind.OutOfLine;
        return image.Sections.Any(s => s.Name == McountTable)
            || image.Symbols.Any(s => s.IsUndefined && s.Name is "_mcount" or "mcount")
            ? FtraceSiteKind.MprofileKernel : FtraceSiteKind.Unknown;
    }

    /// <summary>The code addresses (section index, offset) the object's <c>__patchable_function_entries</c> records
    /// name.</summary>
    public static IEnumerable<(int Section, ulong Offset)> PatchableRecords(ElfImage image)
    {
        foreach (var rs in image.RelocationSections.Where(r => r.Target.Name == PatchableTable))
            foreach (var r in rs.Entries)
            {
                if (r.SymbolIndex >= image.Symbols.Count) continue;
                var sym = image.Symbols[(int)r.SymbolIndex];
                if (sym.IsInSection && sym.SectionIndex < image.Sections.Count)
                    yield return ((int)sym.SectionIndex, unchecked(sym.Value + (ulong)r.Addend));
            }
    }

    /// <summary>The model a kernel build uses, from its <c>include/config/auto.conf</c>.</summary>
    public static FtraceSiteKind OfKernelConfig(string autoConf)
    {
        bool Has(string option) => autoConf.Contains(option + "=y\n", StringComparison.Ordinal)
            || autoConf.EndsWith(option + "=y", StringComparison.Ordinal);
        if (!Has("CONFIG_FUNCTION_TRACER")) return FtraceSiteKind.Unknown;
        if (Has("CONFIG_PPC_FTRACE_OUT_OF_LINE")) return FtraceSiteKind.OutOfLine;
        if (Has("CONFIG_ARCH_USING_PATCHABLE_FUNCTION_ENTRY")) return FtraceSiteKind.PatchableEntry;
        return Has("CONFIG_MPROFILE_KERNEL") ? FtraceSiteKind.MprofileKernel : FtraceSiteKind.Unknown;
    }

    /// <summary>The model and what its ftrace site looks like, for messages.</summary>
    public static string Describe(FtraceSiteKind kind) => kind switch
    {
        FtraceSiteKind.MprofileKernel => "-mprofile-kernel (mflr r0; bl _mcount after the local entry)",
        FtraceSiteKind.PatchableEntry => "-fpatchable-function-entry=2 (two nops after the local entry)",
        FtraceSiteKind.OutOfLine => "out-of-line ftrace (-fpatchable-function-entry=1: one nop after the local entry)",
        _ => "no ftrace site",
    };

    /// <summary>The model's name in options (<c>--ftrace</c>, <c>KernelFtrace</c>) and reports.</summary>
    public static string NameOf(FtraceSiteKind kind) => kind switch
    {
        FtraceSiteKind.MprofileKernel => "mprofile-kernel",
        FtraceSiteKind.PatchableEntry => "patchable-entry",
        FtraceSiteKind.OutOfLine => "out-of-line",
        _ => "unknown",
    };

    public const string Choices = "mprofile-kernel, patchable-entry or out-of-line";

    /// <summary>A model by its <see cref="NameOf"/> name; empty is <see cref="FtraceSiteKind.Unknown"/>.</summary>
    public static bool TryParse(string? name, out FtraceSiteKind kind)
    {
        kind = name switch
        {
            null or "" => FtraceSiteKind.Unknown,
            "mprofile-kernel" => FtraceSiteKind.MprofileKernel,
            "patchable-entry" => FtraceSiteKind.PatchableEntry,
            "out-of-line" => FtraceSiteKind.OutOfLine,
            _ => (FtraceSiteKind)(-1),
        };
        return (int)kind >= 0;
    }

    /// <summary>The compiler flag of the model, for fixes.</summary>
    public static string Flags(FtraceSiteKind kind) => kind switch
    {
        FtraceSiteKind.MprofileKernel => "-pg -mprofile-kernel",
        FtraceSiteKind.PatchableEntry => "-fpatchable-function-entry=2",
        FtraceSiteKind.OutOfLine => "-fpatchable-function-entry=1",
        _ => "",
    };
}
