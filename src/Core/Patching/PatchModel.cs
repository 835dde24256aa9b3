using PpcLivepatch.Analysis;
using PpcLivepatch.Diagnostics;

namespace PpcLivepatch.Patching;

/// <summary>Which call sites a patch run fixes.</summary>
public enum SiteSelection
{
    /// <summary>Only what the loader would refuse: stub calls (undefined/livepatch callee) without a nop.</summary>
    Needed,
    /// <summary>
    /// Also every <c>bl</c> to a function defined in the object that has no free nop after it — what kpatch's GCC
    /// plugin does at compile time — so that any callee can later be moved out of the module.
    /// </summary>
    AllLocal,
}

public enum FixStrategy
{
    /// <summary>Redirect the call through a 12-byte island appended inside the caller: no existing byte
    /// moves.</summary>
    Island,
    /// <summary>Insert the nop at bl+4 and move everything after it, as the compiler would have laid it out.</summary>
    InsertNop,
    /// <summary>InsertNop where the section's layout is fully understood, Island otherwise.</summary>
    Auto,
}

public sealed record PatchOptions(FixStrategy Strategy = FixStrategy.Auto, SiteSelection Sites = SiteSelection.Needed,
    LoaderOptions? Loader = null)
{
    public LoaderOptions LoaderOptions => Loader ?? LoaderOptions.Default;
}

/// <summary>
/// One call site that was fixed: with <see cref="FixStrategy.Island"/> where its island is; with
/// <see cref="FixStrategy.InsertNop"/> where the call is now (its nop follows it). <see cref="Why"/> says why auto
/// chose the strategy.
/// </summary>
public sealed record AppliedFix(string Section, ulong Offset, string Function, string Callee, FixStrategy Strategy,
    ulong IslandOffset, SourceLocation? Source)
{
    public ulong? NewOffset { get; init; }
    public string? Why { get; init; }

    /// <summary>What the strategy did, for the PLP4001 line: "a nop inserted after it (…)".</summary>
    public string Done { get; init; } = "";
}

/// <summary>
/// The outcome of patching one object: the fixes, the verify report of the output (with the diagnostics of sites
/// that could not be fixed), and the output bytes (identical to the input when nothing needed fixing).
/// </summary>
public sealed record PatchResult(ObjectReport Report, IReadOnlyList<AppliedFix> Fixes, byte[]? Output, int BytesAdded)
{
    public bool Changed => Fixes.Count > 0;
}
