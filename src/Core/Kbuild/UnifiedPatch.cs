using System.Text;
using System.Text.RegularExpressions;
using PpcLivepatch.Diagnostics;

namespace PpcLivepatch.Kbuild;

/// <summary>One hunk of a unified diff: where it starts in the old file, the lines it expects and the lines it
/// writes, the line of the <c>.patch</c> its header is on, and the <c>.patch</c> line of each line it writes (where a
/// finding about that line points).</summary>
public sealed record PatchHunk(int OldStart, IReadOnlyList<string> OldLines, IReadOnlyList<string> NewLines,
    int PatchLine)
{
    public IReadOnlyList<int> NewLinePatchLines { get; init; } = [];

    /// <summary>Which written lines the patch adds ('+'), as opposed to context it keeps.</summary>
    public IReadOnlyList<bool> NewLineAdded { get; init; } = [];

    /// <summary>The <c>.patch</c> line of each old line, and which of them the patch removes ('-').</summary>
    public IReadOnlyList<int> OldLinePatchLines { get; init; } = [];

    public IReadOnlyList<bool> OldLineRemoved { get; init; } = [];

    /// <summary>The <c>.patch</c> file the hunk is in.</summary>
    public string PatchPath { get; init; } = "";

    /// <summary>The <c>.patch</c> line of the first line this hunk adds at or after written line
    /// <paramref name="index"/>, else of its first added line, else its header.</summary>
    public int AddedLineFrom(int index)
    {
        for (int i = Math.Max(index, 0); i < NewLineAdded.Count; i++)
            if (NewLineAdded[i]) return NewLinePatchLines[i];
        for (int i = 0; i < NewLineAdded.Count; i++)
            if (NewLineAdded[i]) return NewLinePatchLines[i];
        return PatchLine;
    }
}

/// <summary>The hunks of one file in a unified diff, by its path relative to the tree (its first components stripped
/// as <c>patch -pN</c> strips them).</summary>
public sealed record FilePatch(string Path, IReadOnlyList<PatchHunk> Hunks, int PatchLine)
{
    /// <summary>The <c>.patch</c> file it is in.</summary>
    public string PatchPath { get; init; } = "";
}

/// <summary>
/// A unified diff (<c>git diff</c>, <c>diff -u</c>, a kernel mail patch) read and applied without guessing: a hunk
/// applies where its context and removed lines match exactly — at its stated line, or, as GNU patch allows, the
/// nearest place they match — or not at all, with a coded error at the hunk's line in the <c>.patch</c>.
/// </summary>
public static partial class UnifiedPatch
{
    [GeneratedRegex(@"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")]
    private static partial Regex HunkHeader();

    /// <param name="strip">How many leading path components to strip, as <c>patch -pN</c> does; 1 (kpatch-build's
    /// and quilt's default) reads git's <c>a/</c>/<c>b/</c> and <c>diff -Nupr src.orig/… src/…</c> alike.</param>
    public static IReadOnlyList<FilePatch>? Parse(string patchPath, string text, out Diagnostic? error, int strip = 1)
    {
        error = null;
        var files = new List<FilePatch>();
        var lines = text.Replace("\r\n", "\n").Split('\n');
        for (int i = 0; i < lines.Length; i++)
        {
            // What cannot be applied as text is said, not skipped: a skipped rename or binary change would build a
            // livepatch of part of the fix.
            if (lines[i].StartsWith("rename from ", StringComparison.Ordinal)
                || lines[i].StartsWith("copy from ", StringComparison.Ordinal)
                || lines[i].StartsWith("GIT binary patch", StringComparison.Ordinal)
                || (lines[i].StartsWith("Binary files ", StringComparison.Ordinal)
                    && lines[i].EndsWith(" differ", StringComparison.Ordinal)))
            {
                error = At(patchPath, i + 1, $"'{lines[i]}': renamed, copied and binary files cannot be applied to " +
                    "a kernel source tree's copies; give the change as a text diff of each file");
                return null;
            }
            if (!lines[i].StartsWith("--- ", StringComparison.Ordinal) || i + 1 >= lines.Length
                || !lines[i + 1].StartsWith("+++ ", StringComparison.Ordinal)) continue;
            int fileLine = i + 1;
            string newName = lines[i + 1][4..].Split('\t')[0].Trim();
            string? path = Strip(newName == "/dev/null" ? lines[i][4..].Split('\t')[0].Trim() : newName, strip);
            if (path is null)
            {
                error = At(patchPath, fileLine, $"'{newName}' has fewer than {strip + 1} path components, so " +
                    $"stripping {strip} (as patch -p{strip}) leaves no file name: set Strip (--strip) to the number " +
                    "of leading directories the patch's paths have");
                return null;
            }
            i += 2;
            var hunks = new List<PatchHunk>();
            while (i < lines.Length && HunkHeader().Match(lines[i]) is { Success: true } m)
            {
                int header = i + 1;
                int oldStart = int.Parse(m.Groups[1].Value);
                int oldCount = m.Groups[2].Success ? int.Parse(m.Groups[2].Value) : 1;
                int newCount = m.Groups[4].Success ? int.Parse(m.Groups[4].Value) : 1;
                var before = new List<string>();
                var after = new List<string>();
                var afterLines = new List<int>();
                var added = new List<bool>();
                var beforeLines = new List<int>();
                var removed = new List<bool>();
                i++;
                while (i < lines.Length && (before.Count < oldCount || after.Count < newCount))
                {
                    string l = lines[i];
                    if (l.StartsWith('\\')) { i++; continue; }   // "\ No newline at end of file"
                    char kind = l.Length == 0 ? ' ' : l[0];
                    string body = l.Length == 0 ? "" : l[1..];
                    if (kind is ' ')
                    {
                        before.Add(body); beforeLines.Add(i + 1); removed.Add(false);
                        after.Add(body); afterLines.Add(i + 1); added.Add(false);
                    }
                    else if (kind is '-') { before.Add(body); beforeLines.Add(i + 1); removed.Add(true); }
                    else if (kind is '+') { after.Add(body); afterLines.Add(i + 1); added.Add(true); }
                    else break;
                    i++;
                }
                if (before.Count != oldCount || after.Count != newCount)
                {
                    error = At(patchPath, header,
                        $"the hunk for {path} is cut short: it announces {oldCount} old and " +
                        $"{newCount} new lines and has {before.Count} and {after.Count}");
                    return null;
                }
                while (i < lines.Length && lines[i].StartsWith('\\')) i++;
                hunks.Add(new PatchHunk(oldStart, before, after, header)
                {
                    NewLinePatchLines = afterLines, NewLineAdded = added, OldLinePatchLines = beforeLines,
                    OldLineRemoved = removed, PatchPath = patchPath,
                });
            }
            i--;
            if (hunks.Count > 0) files.Add(new FilePatch(path, hunks, fileLine) { PatchPath = patchPath });
        }
        if (files.Count == 0)
        {
            error = At(patchPath, 1, "it contains no unified-diff hunks (--- a/FILE, +++ b/FILE, @@ … @@)");
            return null;
        }
        return files;
    }

    /// <summary>The path with the smallest prefix that holds <paramref name="count"/> slashes removed (as
    /// <c>patch -pN</c>), or null when it has fewer.</summary>
    private static string? Strip(string path, int count)
    {
        string rest = path;
        for (int k = 0; k < count; k++)
        {
            int slash = rest.IndexOf('/');
            if (slash < 0) return null;
            rest = rest[(slash + 1)..];
        }
        return rest.Length > 0 ? rest : null;
    }

    /// <summary>
    /// The patched text. With <paramref name="lineMarkers"/>, a <c>#line</c> directive follows each hunk, so that the
    /// lines after it keep their original numbers (<c>__LINE__</c>, WARN and BUG records) and functions the patch does
    /// not touch compile exactly as before.
    /// </summary>
    public static string? Apply(string patchPath, FilePatch file, string original, string? lineMarkers,
        out Diagnostic? error) => Apply(patchPath, file, original, lineMarkers, null, out error);

    /// <param name="placed">Receives each hunk and the 1-based line of the patched output (as numbered with
    /// <paramref name="lineMarkers"/>) its first written line has.</param>
    public static string? Apply(string patchPath, FilePatch file, string original, string? lineMarkers,
        List<(PatchHunk Hunk, int Line)>? placed, out Diagnostic? error)
    {
        error = null;
        bool finalNewline = original.EndsWith('\n');
        var lines = original.Replace("\r\n", "\n").Split('\n').ToList();
        if (finalNewline) lines.RemoveAt(lines.Count - 1);
        var output = new StringBuilder();
        int next = 0;   // the first original line (0-based) not yet copied
        int hunkNumber = 0;
        foreach (var hunk in file.Hunks)
        {
            hunkNumber++;
            int at = Locate(lines, hunk, next);
            if (at < 0)
            {
                error = At(patchPath, hunk.PatchLine, $"hunk #{hunkNumber} for {file.Path} does not apply: its " +
                    $"context and removed lines are not in the file at line {hunk.OldStart} or after line {next}");
                return null;
            }
            for (; next < at; next++) output.Append(lines[next]).Append('\n');
            placed?.Add((hunk, at + 1));
            foreach (var l in hunk.NewLines) output.Append(l).Append('\n');
            next = at + hunk.OldLines.Count;
            if (lineMarkers is not null && next < lines.Count)
                output.Append($"#line {next + 1} \"{lineMarkers}\"\n");
        }
        for (; next < lines.Count; next++)
        {
            output.Append(lines[next]);
            if (next < lines.Count - 1 || finalNewline) output.Append('\n');
        }
        return output.ToString();
    }

    /// <summary>
    /// Several patches' changes to one file applied in order, each on top of the ones before (a quilt series, or
    /// KernelPatch items in item order), and marked as <c>Apply</c> marks one patch: a line the original had keeps its
    /// number, a line a patch wrote continues the numbering of the line before it. <paramref name="placed"/> receives
    /// one run of written lines per patch hunk, each pointing at its own <c>.patch</c> lines.
    /// </summary>
    public static string? ApplySeries(IReadOnlyList<FilePatch> files, string original, string lineMarkers,
        List<(PatchHunk Hunk, int Line)> placed, out Diagnostic? error)
    {
        error = null;
        bool finalNewline = original.EndsWith('\n');
        var lines = original.Replace("\r\n", "\n").Split('\n').ToList();
        if (finalNewline) lines.RemoveAt(lines.Count - 1);
        // Where each line of the text so far came from: the original's line (1-based), or a patch hunk's line.
        var origins = Enumerable.Range(1, lines.Count).Select(n => new LineOrigin(n, null, 0)).ToList();
        foreach (var file in files)
        {
            var nextLines = new List<string>();
            var nextOrigins = new List<LineOrigin>();
            int next = 0, hunkNumber = 0;
            foreach (var hunk in file.Hunks)
            {
                hunkNumber++;
                int at = Locate(lines, hunk, next);
                if (at < 0)
                {
                    error = At(file.PatchPath, hunk.PatchLine, $"hunk #{hunkNumber} for {file.Path} does not apply " +
                        "on top of the patches before it: its context and removed lines are not in the file at line " +
                        $"{hunk.OldStart} or after line {next}");
                    return null;
                }
                for (; next < at; next++) { nextLines.Add(lines[next]); nextOrigins.Add(origins[next]); }
                int old = 0;
                for (int k = 0; k < hunk.NewLines.Count; k++)
                {
                    nextLines.Add(hunk.NewLines[k]);
                    if (hunk.NewLineAdded[k]) { nextOrigins.Add(new LineOrigin(0, hunk, k)); continue; }
                    while (hunk.OldLineRemoved[old]) old++;   // a kept line: the next old line not removed
                    nextOrigins.Add(origins[at + old++]);
                }
                next = at + hunk.OldLines.Count;
            }
            for (; next < lines.Count; next++) { nextLines.Add(lines[next]); nextOrigins.Add(origins[next]); }
            (lines, origins) = (nextLines, nextOrigins);
        }
        var output = new StringBuilder();
        int number = 1;   // the number the next written line has
        for (int i = 0; i < lines.Count; i++)
        {
            var o = origins[i];
            if (o.Line > 0 && o.Line != number)
            {
                output.Append($"#line {o.Line} \"{lineMarkers}\"\n");
                number = o.Line;
            }
            if (o.Hunk is { } hunk && (i == 0 || origins[i - 1].Hunk != hunk))
            {
                int end = i;
                while (end < lines.Count && origins[end].Hunk == hunk) end++;
                var run = Enumerable.Range(i, end - i).ToList();
                placed.Add((new PatchHunk(0, [], run.Select(j => lines[j]).ToList(), hunk.PatchLine)
                {
                    NewLinePatchLines = run.Select(j => hunk.NewLinePatchLines[origins[j].Index]).ToList(),
                    NewLineAdded = run.Select(_ => true).ToList(), PatchPath = hunk.PatchPath,
                }, number));
            }
            output.Append(lines[i]);
            if (i < lines.Count - 1 || finalNewline) output.Append('\n');
            number++;
        }
        return output.ToString();
    }

    private sealed record LineOrigin(int Line, PatchHunk? Hunk, int Index);

    /// <summary>Where the hunk's old lines are: at the stated line, else the nearest exact match after the previous
    /// hunk; -1 when nowhere.</summary>
    private static int Locate(List<string> lines, PatchHunk hunk, int from)
    {
        int stated = Math.Max(hunk.OldStart - 1, 0);
        if (hunk.OldLines.Count == 0) return Math.Max(stated, from);
        for (int distance = 0; distance < lines.Count; distance++)
        {
            foreach (int at in new[] { stated - distance, stated + distance })
                if (at >= from && at + hunk.OldLines.Count <= lines.Count && Matches(lines, at, hunk.OldLines))
                    return at;
            if (stated - distance < from && stated + distance + hunk.OldLines.Count > lines.Count) break;
        }
        return -1;
    }

    private static bool Matches(List<string> lines, int at, IReadOnlyList<string> expected)
    {
        for (int k = 0; k < expected.Count; k++)
            if (lines[at + k] != expected[k]) return false;
        return true;
    }

    /// <summary>
    /// The <c>.patch</c> line a finding at a C line of the marked output comes from — a changed function's first
    /// line, say: the first line the patch adds at or after it. Null when the patch adds nothing after the line.
    /// </summary>
    public static int? PatchLineOf(IReadOnlyList<(PatchHunk Hunk, int Line)> placed, int line) =>
        PatchPlaceOf(placed, line)?.Line;

    /// <summary>As <see cref="PatchLineOf"/>, with the <c>.patch</c> file the line is in (in a series, the patch
    /// that wrote it).</summary>
    public static (string Patch, int Line)? PatchPlaceOf(IReadOnlyList<(PatchHunk Hunk, int Line)> placed, int line)
    {
        foreach (var (hunk, start) in placed.OrderBy(p => p.Line))
        {
            if (line < start) return (hunk.PatchPath, hunk.AddedLineFrom(0));
            if (line < start + hunk.NewLines.Count) return (hunk.PatchPath, hunk.AddedLineFrom(line - start));
        }
        return null;
    }

    /// <summary>
    /// The <c>.patch</c> line for a finding about a named datum, which line tables do not place: the first line added
    /// by the first hunk whose text names it (a changed initializer's hunk shows its declaration as context, or
    /// changes it). Null when no hunk names it.
    /// </summary>
    public static int? PatchLineOfName(IReadOnlyList<(PatchHunk Hunk, int Line)> placed, string name)
    {
        var word = new Regex($@"(?<![A-Za-z0-9_]){Regex.Escape(name)}(?![A-Za-z0-9_])");
        foreach (var (hunk, _) in placed.OrderBy(p => p.Line))
            if (hunk.NewLines.Any(word.IsMatch) || hunk.OldLines.Any(word.IsMatch)) return hunk.AddedLineFrom(0);
        return LineNamedDatum(placed, name);
    }

    /// <summary>
    /// A datum a macro names after its line (<c>DECLARE_PCI_FIXUP_FINAL(…, quirk_x)</c> defines
    /// <c>__pci_fixup_quirk_x&lt;__LINE__&gt;</c>): the line the patch adds or removes at that line number (a hunk's
    /// lines are numbered from where it applies, as the marked copy numbers them) that names the macro's argument.
    /// </summary>
    private static int? LineNamedDatum(IReadOnlyList<(PatchHunk Hunk, int Line)> placed, string name)
    {
        var m = TrailingLineNumber().Match(name);
        if (!m.Success || !int.TryParse(m.Groups[2].Value, out int line)) return null;
        string stem = m.Groups[1].Value;
        bool Names(string text) => Identifier().Matches(text)
            .Any(id => id.Value.Length >= 4 && stem.EndsWith(id.Value, StringComparison.Ordinal));
        foreach (var (hunk, start) in placed)
        {
            int i = line - start;
            if (i >= 0 && i < hunk.NewLines.Count && hunk.NewLineAdded[i] && Names(hunk.NewLines[i]))
                return hunk.NewLinePatchLines[i];
            if (i >= 0 && i < hunk.OldLines.Count && hunk.OldLineRemoved[i] && Names(hunk.OldLines[i]))
                return hunk.OldLinePatchLines[i];
        }
        return null;
    }

    [GeneratedRegex(@"^([A-Za-z_][A-Za-z0-9_]*?)(\d+)$")]
    private static partial Regex TrailingLineNumber();

    [GeneratedRegex(@"[A-Za-z_][A-Za-z0-9_]*")]
    private static partial Regex Identifier();

    private static Diagnostic At(string patchPath, int line, string message) =>
        new(DiagnosticCatalog.PatchDoesNotApply, message, patchPath, Source: new SourceLocation(patchPath, line, 1));
}
