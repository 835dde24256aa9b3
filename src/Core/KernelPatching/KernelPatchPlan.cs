using PpcLivepatch.Diagnostics;
using PpcLivepatch.Kbuild;

namespace PpcLivepatch.KernelPatching;

/// <summary>A translation unit to build twice, and the patch (and its files' changes) it is built from.</summary>
public sealed record PlannedUnit(KbuildUnit Kbuild, string PatchPath, IReadOnlyList<FilePatch> Files);

/// <summary>
/// The plan: the patches read, and each changed file followed to the translation units kbuild built from it (a
/// <c>.c</c> file to its own unit, a header to every unit that read it). Patches are a series: a later patch that
/// changes a unit an earlier one changes applies on top of it, in item order, as quilt and kpatch-build apply theirs.
/// </summary>
public static class KernelPatchPlan
{
    public static IReadOnlyList<PlannedUnit> Make(IReadOnlyList<KernelPatchFile> patches, KbuildUnits kbuildUnits,
        List<Diagnostic> diagnostics)
    {
        var units = new List<PlannedUnit>();
        foreach (var (patchPath, strip) in patches)
        {
            string text;
            try
            {
                text = File.ReadAllText(patchPath);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                diagnostics.Add(Diagnostic.Create(DiagnosticCatalog.UnreadableFile, patchPath,
                    $"cannot read '{patchPath}': {e.Message}"));
                continue;
            }
            var files = UnifiedPatch.Parse(patchPath, text, out var parseError, strip);
            if (files is null)
            {
                diagnostics.Add(parseError!);
                continue;
            }
            foreach (var u in kbuildUnits.For(files.Select(f => f.Path), patchPath, diagnostics))
            {
                // A unit an earlier patch changes: this one applies on top of it, as in a quilt series.
                if (units.FindIndex(x => x.Kbuild.Object == u.Object) is var earlier and >= 0)
                    units[earlier] = units[earlier] with { Files = [.. units[earlier].Files, .. files] };
                else if (u.Arguments is null)
                    diagnostics.Add(Diagnostic.Create(DiagnosticCatalog.KbuildRecordUnreadable, patchPath,
                        $"kbuild's command for {u.Object} uses shell syntax beyond words and quotes, so it cannot be " +
                            $"run as an argument vector: {u.Command}"));
                else units.Add(new PlannedUnit(u, patchPath, files));
            }
        }
        return units;
    }
}
