using PpcLivepatch.Diagnostics;
using PpcLivepatch.Kbuild;

namespace PpcLivepatch.KernelPatching;

/// <summary>A translation unit to build twice, and the patch (and its files' changes) it is built from.</summary>
public sealed record PlannedUnit(KbuildUnit Kbuild, string PatchPath, IReadOnlyList<FilePatch> Files);

/// <summary>
/// The plan: the patches read, and each changed file followed to the translation units kbuild built from it (a
/// <c>.c</c> file to its own unit, a header to every unit that read it). A unit is built from one patch's copy, so
/// two patches that change one unit's sources are refused rather than one silently dropping the other's change.
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
                if (units.FirstOrDefault(x => x.Kbuild.Object == u.Object) is { } first)
                    diagnostics.Add(Diagnostic.Create(DiagnosticCatalog.PatchesOverlap, patchPath,
                        $"{Path.GetFileName(first.PatchPath)} and {Path.GetFileName(patchPath)} both change " +
                            $"{u.Object}'s sources: put the changes to one file in one KernelPatch"));
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
