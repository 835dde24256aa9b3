using PpcLivepatch.Diagnostics;
using PpcLivepatch.Elf;
using PpcLivepatch.Ppc64;

namespace PpcLivepatch.Analysis;

/// <summary>Where a call's target lives, as the module loader sees it (only <c>st_shndx</c> and binding
/// matter).</summary>
public enum CalleeKind
{
    /// <summary>Defined in this object with local binding (static functions, section symbols).</summary>
    Local,
    /// <summary>Defined in this object with global binding.</summary>
    Global,
    /// <summary>Defined in this object with weak binding.</summary>
    Weak,
    /// <summary>SHN_UNDEF: resolved by the kernel against exported symbols, reached through a stub.</summary>
    Undefined,
    /// <summary>SHN_LIVEPATCH: resolved by the livepatch core through kallsyms, reached through a stub.</summary>
    Livepatch,
}

/// <summary>What follows the call instruction: what <c>restore_r2()</c> looks at.</summary>
public enum NextWord
{
    Nop,
    /// <summary>Already <c>ld r2,24(r1)</c> (ELFv1: 40(r1)), as after a previous load of the same module.</summary>
    TocRestore,
    Other,
    /// <summary>The call is the last word of its section: the loader would read and patch whatever follows
    /// it.</summary>
    EndOfSection,
}

/// <summary>
/// One R_PPC64_REL24 / REL24_NOTOC relocation, and everything about it the loader model needs. It holds the one
/// relocation, not its whole section, so reports over thousands of modules stay small.
/// </summary>
public sealed record CallSite(
    ElfSection Section,
    ElfSection RelocationSection,
    bool InLivepatchRelocations,
    int RelocationIndex,
    ElfRela Relocation,
    ulong Offset,
    uint RelocationType,
    FunctionRange? Function,
    ElfSymbol CalleeSymbol,
    string Callee,
    CalleeKind CalleeKind,
    uint Word,
    BranchKind Instruction,
    uint? NextWordValue,
    NextWord Next,
    string? Exemption)
{
    public bool IsPcrel => RelocationType == R.PPC64_REL24_NOTOC;
    public bool IsExternal => CalleeKind is CalleeKind.Undefined or CalleeKind.Livepatch;
    public ulong FunctionOffset => Function is null ? Offset : Offset - Function.Start;
    public string FunctionName => Function?.Name ?? Section.Name;

    /// <summary>The C line of the call, filled in from DWARF when the object has line tables.</summary>
    public SourceLocation? Source { get; init; }

    /// <summary><c>caller+0x24</c>, or <c>.text+0x24</c> when no function symbol covers the site.</summary>
    public string Where => $"{FunctionName}+0x{FunctionOffset:x}";
}
