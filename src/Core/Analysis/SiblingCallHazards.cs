using PpcLivepatch.Diagnostics;
using PpcLivepatch.Elf;
using PpcLivepatch.Ppc64;

namespace PpcLivepatch.Analysis;

/// <summary>
/// Sibling calls (<c>b sym</c>) to symbols outside the module: the loader accepts them, but the stub stores the
/// module's r2 into the TOC slot of the caller's caller, and nothing restores it when the callee returns there.
/// kpatch refuses them (create-diff-object "unsupported sibling call"; a crash is on record in dynup/kpatch
/// commit 8b952bd). Worse when the function is also called locally in the object: a local <c>bl</c> has no TOC
/// restore at all, so that caller certainly continues with the wrong r2.
/// </summary>
public static class SiblingCallHazards
{
    /// <param name="allSites">When <paramref name="sites"/> is a summary without the local calls, how to get them
    /// all.</param>
    public static IEnumerable<Diagnostic> Find(ObjectAnalysis analysis, IReadOnlyList<CallSite> sites,
        LoaderOptions options, Func<IReadOnlyList<CallSite>>? allSites = null)
    {
        var image = analysis.Image;
        if (options.Pcrel) yield break; // no TOC, nothing to clobber
        HashSet<FunctionRange>? locallyCalled = null;   // scanning every code word is costly: only when needed
        foreach (var site in sites)
        {
            if (site.Instruction != BranchKind.B || !site.IsExternal || site.Exemption is not null || site.IsPcrel)
                continue;
            locallyCalled ??= LocallyCalledFunctions(analysis, allSites?.Invoke() ?? sites);
            bool calledLocally = site.Function is not null && locallyCalled.Contains(site.Function);
            string kind = site.CalleeKind == CalleeKind.Livepatch ? "livepatch" : "undefined";
            string fn = site.Function?.Name ?? "the function";
            string message = $"sibling call (b) to {kind} symbol {site.Callee} at " +
                $"{site.Section.Name}+0x{site.Offset:x} ({site.Where}): " +
                             "the loader's stub saves this module's r2 into the caller's frame and nothing restores it";
            if (calledLocally)
                message += $"; {fn} is also called locally in this object (bl without a TOC restore), so that caller " +
                    "continues with the callee's r2";
            yield return new Diagnostic(
                calledLocally ? DiagnosticCatalog.SiblingCallFromLocallyCalledFunction
                    : DiagnosticCatalog.SiblingCallToExternal,
                message, image.Path, site.Section.Name, site.Offset, site.Function?.Name, site.FunctionOffset,
                    site.Callee, site.Source,
                Fix: $"Add __attribute__((optimize(\"no-optimize-sibling-calls\"))) to {fn}(), or compile with " +
                    "-fno-optimize-sibling-calls.");
        }
    }

    /// <summary>
    /// Functions reached by a <c>bl</c> from this object: through call relocations to symbols defined here, and
    /// through assembler-resolved <c>bl</c> words that carry no relocation at all (one-.text objects).
    /// </summary>
    private static HashSet<FunctionRange> LocallyCalledFunctions(ObjectAnalysis analysis, IReadOnlyList<CallSite> sites)
    {
        var functions = analysis.Functions;
        var called = new HashSet<FunctionRange>();
        foreach (var site in sites.Where(s => s.Instruction == BranchKind.Bl && !s.IsExternal))
        {
            if (functions.CallTarget(site.CalleeSymbol, site.Relocation.Addend) is { } target) called.Add(target);
        }
        foreach (var branch in analysis.References.RelocationFreeBranches.Where(b => b.IsCall))
        {
            if (functions.Containing(branch.Section.Index, branch.Target) is { } callee) called.Add(callee);
        }
        return called;
    }
}
