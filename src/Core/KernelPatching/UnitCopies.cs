using PpcLivepatch.Diagnostics;
using PpcLivepatch.Kbuild;

namespace PpcLivepatch.KernelPatching;

/// <summary>
/// A unit's private copies: its source before and after the patch, and a copy of each changed header it reads, placed
/// where its compile finds it before the original (next to the source, under the <c>-I</c> directory that holds it).
/// The patched texts carry <c>#line</c> markers, so unchanged lines keep their numbers and each line of the objects'
/// line tables leads back to the <c>.patch</c> line it came from.
/// </summary>
internal sealed class UnitCopies
{
    public required string Directory { get; init; }
    /// <summary>The source's path relative to the source tree (<c>fs/proc/cmdline.c</c>).</summary>
    public required string Relative { get; init; }
    public required string OriginalText { get; init; }
    public required string PatchedText { get; init; }
    public required string OriginalCopy { get; init; }
    public required string PatchedCopy { get; init; }
    /// <summary>Each header copy's path and (tree-relative header, text).</summary>
    public required IReadOnlyDictionary<string, (string Header, string Text)> Headers { get; init; }
    /// <summary>The include directories searched before kbuild's own.</summary>
    public required IReadOnlyList<string> FirstIncludes { get; init; }
    /// <summary>Per patched file (tree-relative), where its hunks landed in the patched text.</summary>
    public required IReadOnlyDictionary<string, List<(PatchHunk Hunk, int Line)>> Placed { get; init; }

    /// <summary>The copies of <paramref name="unit"/> under <paramref name="workDirectory"/>, or null after a coded
    /// finding (a hunk that does not apply, a header the compile cannot be given).</summary>
    public static UnitCopies? Make(PlannedUnit unit, string workDirectory, string source, string build,
        List<Diagnostic> diagnostics)
    {
        var kbuild = unit.Kbuild;
        string relative = Path.GetRelativePath(source, kbuild.Source);
        string dir = Path.Combine(workDirectory, Path.ChangeExtension(relative, null).Replace('/', '_'));
        var placed = new Dictionary<string, List<(PatchHunk Hunk, int Line)>>(StringComparer.Ordinal);
        string? Patch(string path, string original)
        {
            string result = original;
            var where = placed[path] = [];
            var changes = unit.Files.Where(f => f.Path == path).ToList();
            // Patches in a series: each applies on top of the ones before.
            if (changes.Select(f => f.PatchPath).Distinct().Count() > 1)
            {
                string? series = UnifiedPatch.ApplySeries(changes, original, path, where, out var seriesError);
                if (series is null) diagnostics.Add(seriesError!);
                return series;
            }
            foreach (var file in changes)
            {
                if (UnifiedPatch.Apply(unit.PatchPath, file, result, path, where, out var error) is not { } applied)
                {
                    diagnostics.Add(error!);
                    return null;
                }
                result = applied;
            }
            return result;
        }
        string text = File.ReadAllText(kbuild.Source);
        if (Patch(relative, text) is not { } patched) return null;
        var headers = new Dictionary<string, (string Header, string Text)>(StringComparer.Ordinal);
        var firstIncludes = new List<string>();
        foreach (string header in unit.Files.Select(f => f.Path).Distinct().Where(p => p.EndsWith(".h",
                     StringComparison.Ordinal)).Order(StringComparer.Ordinal))
        {
            string absolute = Path.GetFullPath(Path.Combine(source, header));
            if (!kbuild.Dependencies.Contains(absolute, StringComparer.Ordinal)) continue;
            if (Patch(header, File.ReadAllText(absolute)) is not { } patchedHeader) return null;
            // Named as the original is, so __FILE__, the line tables and gcc's messages say the header's own path.
            string copyText = $"#line 1 \"{header}\"\n" + patchedHeader;
            var placements = kbuild.HeaderPlacements(absolute, build);
            if (placements.Count == 0)
            {
                diagnostics.Add(Diagnostic.Create(DiagnosticCatalog.PatchedHeaderUnreachable, unit.PatchPath,
                    $"{header} changes, and {kbuild.Object} reads it, but not from its own directory or a -I " +
                        "directory of its command line, so the compile cannot be given the patched copy"));
                return null;
            }
            foreach (var (root, under) in placements)
            {
                string copyRoot = Path.Combine(dir, root is null ? "patched" : "include" + firstIncludes.Count);
                if (root is not null) firstIncludes.Add(copyRoot);
                headers[Path.Combine(copyRoot, under)] = (header, copyText);
            }
        }
        return new UnitCopies
        {
            Directory = dir, Relative = relative, OriginalText = text, PatchedText = patched,
            OriginalCopy = Path.Combine(dir, "orig", Path.GetFileName(relative)),
            PatchedCopy = Path.Combine(dir, "patched", Path.GetFileName(relative)),
            Headers = headers, FirstIncludes = firstIncludes, Placed = placed,
        };
    }

    /// <summary>gcc's messages about the original copy are the kernel source's.</summary>
    public (string, int, string)? LocateOriginal(string file, int line, string kernelSource) =>
        file == Relative || file == OriginalCopy ? (kernelSource, line, "") : null;

    /// <summary>gcc's messages about the patched files land on the .patch line the code came from, with the C line as
    /// a note.</summary>
    public (string, int, string)? LocatePatched(string file, int line, string patchPath)
    {
        string? path = file == PatchedCopy ? Relative : Headers.TryGetValue(file, out var h) ? h.Header
            : Placed.ContainsKey(file) ? file : null;
        if (path is null) return null;
        var place = UnifiedPatch.PatchPlaceOf(Placed[path], line);
        return (place is { Patch.Length: > 0 } p ? p.Patch : patchPath, place?.Line ?? 0, $" ({path}:{line})");
    }

    /// <summary>The header copies' text, for the patched compile's key.</summary>
    public string HeadersKey => string.Concat(Headers.OrderBy(c => c.Key, StringComparer.Ordinal)
        .Select(c => $"{c.Key}\n{c.Value.Text}\n"));

    /// <summary>Writes this build's header copies; one an earlier build placed would be found before the original, so
    /// only this build's may stay.</summary>
    public void PlaceHeaders()
    {
        if (System.IO.Directory.Exists(Directory))
            foreach (string stale in System.IO.Directory.GetDirectories(Directory).Where(d =>
                         Path.GetFileName(d) == "patched"
                         || Path.GetFileName(d).StartsWith("include", StringComparison.Ordinal)))
                System.IO.Directory.Delete(stale, recursive: true);
        foreach (var (copy, (_, copyText)) in Headers)
        {
            System.IO.Directory.CreateDirectory(Path.GetDirectoryName(copy)!);
            File.WriteAllText(copy, copyText);
        }
    }
}
