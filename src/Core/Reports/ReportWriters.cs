using System.Text;
using System.Text.Json;
using PpcLivepatch.Analysis;
using PpcLivepatch.Diagnostics;
using PpcLivepatch.Patching;
using PpcLivepatch.Ppc64;

namespace PpcLivepatch.Reports;

/// <summary>Output formats for verify reports. JSON field names are a public contract (README, "JSON
/// output").</summary>
public enum ReportFormat
{
    Text,
    Json,
    Sarif,
}

public static class ReportWriters
{
    /// <param name="helpLinkBase">Where help links point (the SDK's; default <see
    /// cref="DiagnosticCatalog.HelpLinkBase"/>): the same base in the reports as in the build's events.</param>
    public static string Render(IReadOnlyList<ObjectReport> reports, ReportFormat format,
        string? helpLinkBase = null) => format switch
    {
        ReportFormat.Text => Text(reports),
        ReportFormat.Json => Json(reports, helpLinkBase: helpLinkBase),
        ReportFormat.Sarif => Sarif(reports, helpLinkBase),
        _ => throw new ArgumentOutOfRangeException(nameof(format)),
    };

    /// <summary>Patch output: the verify report of each written object, plus what was fixed.</summary>
    public static string RenderPatch(IReadOnlyList<PatchResult> results, ReportFormat format,
        string? helpLinkBase = null)
    {
        var reports = results.Select(r => r.Report).ToList();
        return format switch
        {
            ReportFormat.Text => Text(reports) + PatchSummaryText(results),
            ReportFormat.Json => Json(reports, results.Select(r => r.Fixes).ToList(), helpLinkBase),
            ReportFormat.Sarif => Sarif(reports, helpLinkBase),
            _ => throw new ArgumentOutOfRangeException(nameof(format)),
        };
    }

    /// <summary>Per function: how many sites were fixed, and where (the first few).</summary>
    private static string PatchSummaryText(IReadOnlyList<PatchResult> results)
    {
        const int shown = 8;
        var sb = new StringBuilder();
        foreach (var r in results)
        foreach (var f in r.Fixes.GroupBy(f => f.Function))
        {
            var sites = f.Take(shown).Select(x => $"+0x{x.Offset:x} {x.Callee}");
            string more = f.Count() > shown ? $", {f.Count() - shown} more" : "";
            sb.Append($"  {f.Key}: {f.Count()} site{(f.Count() == 1 ? "" : "s")} fixed " +
                $"({string.Join(", ", sites)}{more})\n");
        }
        return sb.ToString();
    }

    /// <summary>
    /// One line per diagnostic in MSBuild's canonical form, so IDEs and build logs pick them up:
    /// <c>calls.c(21,7): error PLP2001: …</c>, or <c>calls.o : error PLP2001: …</c> without line info.
    /// </summary>
    public static string Text(IReadOnlyList<ObjectReport> reports)
    {
        var sb = new StringBuilder();
        foreach (var r in reports) sb.Append(Text(r));
        return sb.ToString();
    }

    /// <summary>One file's diagnostics, then its summary line.</summary>
    public static string Text(ObjectReport r)
    {
        var sb = new StringBuilder();
        foreach (var d in r.Diagnostics)
            sb.Append(CanonicalLine(d)).Append('\n');
        if (!r.Unreadable)
        {
            var c = r.Counts;
            sb.Append($"{r.Path}: {(r.Accepted ? "accepted" : "rejected")} ({c.Total} call " +
                $"site{(c.Total == 1 ? "" : "s")}: {c.Accepted} accepted, {c.Rejected} rejected, {c.Exempt} exempt)\n");
        }
        return sb.ToString();
    }

    /// <summary>
    /// Writes reports as they come (in order), so checking thousands of modules keeps only the diagnostics in
    /// memory, not every file's call sites. Returns the reports without their sites.
    /// </summary>
    /// <param name="rawOutput">The byte stream under <paramref name="output"/> (stdout), when there is one: JSON goes
    /// there as UTF-8 without a round trip through UTF-16 (a corpus's JSON is hundreds of megabytes).</param>
    public static List<ObjectReport> Stream(IEnumerable<ObjectReport> reports, ReportFormat format, TextWriter output,
        System.IO.Stream? rawOutput = null) => Stream(reports, format, output, rawOutput, DrainThreshold);

    /// <param name="drainThreshold">Bytes of JSON that may wait before they are written out (tests make it tiny).
    /// </param>
    internal static List<ObjectReport> Stream(IEnumerable<ObjectReport> reports, ReportFormat format,
        TextWriter output, System.IO.Stream? rawOutput, int drainThreshold)
    {
        var kept = new List<ObjectReport>();
        // JSON goes out through one writer, a file at a time: the document Json() would write, without holding it.
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(1 << 16);
        using var json = format == ReportFormat.Json ? new Utf8JsonWriter(buffer, JsonOptions) : null;
        json?.WriteStartObject();
        json?.WriteStartArray("files");
        foreach (var r in format == ReportFormat.Json ? Pipelined(reports) : reports)
        {
            if (format == ReportFormat.Text) output.Write(Text(r));
            if (json is not null)
            {
                // A large module's sites go out in pieces, so the buffer stays small instead of growing (and being
                // copied and faulted in afresh) to the size of the module's whole JSON.
                WriteFile(json, r, null, null, () => Drain(json, buffer, output, rawOutput), drainThreshold);
                Drain(json, buffer, output, rawOutput);
            }
            kept.Add(r with { Sites = [], Counts = r.Counts });
        }
        if (json is not null)
        {
            json.WriteEndArray();
            json.WriteEndObject();
            Drain(json, buffer, output, rawOutput);
            output.Write('\n');
        }
        if (format == ReportFormat.Sarif) output.Write(Sarif(kept));
        return kept;
    }

    /// <summary>
    /// JSON describes every call site of every file, so writing it costs about as much as checking the files: the
    /// checking runs ahead on another thread, in order, while this one writes (a bounded queue keeps memory flat).
    /// </summary>
    private static IEnumerable<ObjectReport> Pipelined(IEnumerable<ObjectReport> reports)
    {
        if (Environment.ProcessorCount < 2)
        {
            foreach (var r in reports) yield return r;
            yield break;
        }
        using var queue = new System.Collections.Concurrent.BlockingCollection<ObjectReport>(boundedCapacity: 2);
        using var stop = new CancellationTokenSource();
        var producer = Task.Run(() =>
        {
            try
            {
                foreach (var r in reports)
                {
                    if (stop.IsCancellationRequested) break;
                    queue.Add(r);
                }
            }
            finally { queue.CompleteAdding(); }
        });
        try
        {
            foreach (var r in queue.GetConsumingEnumerable()) yield return r;
        }
        finally
        {
            stop.Cancel();
            // A producer blocked on a full queue must be let go before its failure, if any, is rethrown here.
            while (queue.TryTake(out _)) { }
            producer.GetAwaiter().GetResult();
        }
    }

    private static void Drain(Utf8JsonWriter json, System.Buffers.ArrayBufferWriter<byte> buffer, TextWriter output,
        System.IO.Stream? raw)
    {
        json.Flush();
        if (raw is null) output.Write(Encoding.UTF8.GetString(buffer.WrittenSpan));
        else
        {
            output.Flush();
            raw.Write(buffer.WrittenSpan);
        }
        buffer.ResetWrittenCount();
    }

    public static string CanonicalLine(Diagnostic d)
    {
        string severity = d.Severity switch { Severity.Error => "error", Severity.Warning => "warning", _ => "info" };
        // A file without a known line (a project file whose item could not be found) is "file :", never "file(0)".
        string origin = d.Source is { } s
            ? s.Line > 0 ? $"{s.File}({s.Line}{(s.Column > 0 ? $",{s.Column}" : "")})" : $"{s.File} "
            : $"{d.ObjectPath} ";
        string fix = d.Fix is null ? "" : $" Fix: {d.Fix}";
        return $"{origin}: {severity} {d.Code}: {d.Sentence}{fix}";
    }

    public static string Json(IReadOnlyList<ObjectReport> reports,
        IReadOnlyList<IReadOnlyList<AppliedFix>>? fixes = null,
        string? helpLinkBase = null) => Write(w =>
    {
        w.WriteStartObject();
        w.WriteStartArray("files");
        for (int i = 0; i < reports.Count; i++) WriteFile(w, reports[i], fixes?[i], helpLinkBase);
        w.WriteEndArray();
        w.WriteEndObject();
    });

    private static void WriteFile(Utf8JsonWriter w, ObjectReport r, IReadOnlyList<AppliedFix>? fixes,
        string? helpLinkBase, Action? drain = null, int drainThreshold = DrainThreshold)
    {
        w.WriteStartObject();
        w.WriteString("path", r.Path);
        if (r.Abi is { } abi) w.WriteString("abi", AbiFacts.Name(abi)); else w.WriteNull("abi");
        w.WriteBoolean("accepted", r.Accepted);
        w.WriteStartArray(SiteJson.Sites);
        // A module repeats its section names, callees, reasons and source files across thousands of sites: each is
        // escaped once (a corpus's JSON is hundreds of megabytes of sites).
        var encoded = new Dictionary<string, JsonEncodedText>(StringComparer.Ordinal);
        // Most sites repeat the previous site's section, function and file as the very same string object: checking
        // that first skips hashing them.
        var last = new (string Text, JsonEncodedText Json)[8];
        JsonEncodedText Encoded(string text, int field)
        {
            ref var previous = ref last[field];
            if (ReferenceEquals(previous.Text, text)) return previous.Json;
            if (!encoded.TryGetValue(text, out var e)) encoded[text] = e =
                JsonEncodedText.Encode(text, JsonOptions.Encoder);
            previous = (text, e);
            return e;
        }
        foreach (var v in r.Sites)
        {
            var s = v.Site;
            w.WriteStartObject();
            w.WriteString(SiteJson.Section, Encoded(s.Section.Name, 0));
            w.WriteNumber(SiteJson.Offset, s.Offset);
            if (s.Function?.Name is { } function) w.WriteString(SiteJson.Function, Encoded(function, 1));
            else w.WriteNull(SiteJson.Function);
            w.WriteNumber(SiteJson.FunctionOffset, s.FunctionOffset);
            w.WriteString(SiteJson.Callee, Encoded(s.Callee, 2));
            w.WriteString(SiteJson.CalleeKind, SiteJson.CalleeKinds[(int)s.CalleeKind]);
            w.WriteString(SiteJson.Relocation, Encoded(RelocationCatalog.NameOf(s.RelocationType), 3));
            w.WriteString(SiteJson.Instruction, Encoded(Instruction.Mnemonic(s.Instruction), 4));
            w.WriteString(SiteJson.Next, SiteJson.NextWords[(int)s.Next]);
            w.WriteString(SiteJson.Verdict, SiteJson.Verdicts[(int)v.Verdict]);
            w.WriteString(SiteJson.Reason, Encoded(v.Reason, 5));
            if (s.Source is { } source)
            {
                w.WriteStartObject(SiteJson.Source);
                w.WriteString(SiteJson.File, Encoded(source.File, 6));
                w.WriteNumber(SiteJson.Line, source.Line);
                w.WriteNumber(SiteJson.Column, source.Column);
                w.WriteEndObject();
            }
            else w.WriteNull(SiteJson.Source);
            w.WriteEndObject();
            if (drain is not null && w.BytesPending >= drainThreshold) drain();
        }
        w.WriteEndArray();
        WriteDiagnostics(w, r.Diagnostics, helpLinkBase);
        if (fixes is not null)
        {
            w.WriteStartArray("fixes");
            foreach (var f in fixes)
            {
                w.WriteStartObject();
                w.WriteString("section", f.Section);
                w.WriteNumber("offset", f.Offset);
                w.WriteString("function", f.Function);
                w.WriteString("callee", f.Callee);
                w.WriteString("strategy", FixStrategies.NameOf(f.Strategy));
                if (f.NewOffset is { } moved) w.WriteNumber("newOffset", moved);   // the call moved
                else w.WriteNumber("islandOffset", f.IslandOffset);
                if (f.Why is not null) w.WriteString("why", f.Why);   // why auto did not insert a nop there
                WriteSource(w, f.Source);
                w.WriteEndObject();
            }
            w.WriteEndArray();
        }
        w.WriteEndObject();
    }

    /// <summary>The "diagnostics" array every JSON report has.</summary>
    internal static void WriteDiagnostics(Utf8JsonWriter w, IEnumerable<Diagnostic> diagnostics, string? helpLinkBase)
    {
        w.WriteStartArray("diagnostics");
        foreach (var d in diagnostics)
        {
            w.WriteStartObject();
            w.WriteString("code", d.Code);
            w.WriteString("severity", d.Severity.ToString().ToLowerInvariant());
            w.WriteString("message", d.Message);
            WriteStringOrNull(w, "section", d.Section);
            if (d.Offset is { } o) w.WriteNumber("offset", o); else w.WriteNull("offset");
            WriteStringOrNull(w, "function", d.Function);
            WriteStringOrNull(w, "callee", d.Callee);
            WriteSource(w, d.Source);
            WriteStringOrNull(w, "fix", d.Fix);
            w.WriteString("helpLink", DiagnosticCatalog.HelpLink(d.Code, helpLinkBase));
            w.WriteEndObject();
        }
        w.WriteEndArray();
    }

    /// <summary>SARIF 2.1.0: one run, the catalog as rules, results located at the C line when DWARF has it.</summary>
    public static string Sarif(IReadOnlyList<ObjectReport> reports, string? helpLinkBase = null) => Write(w =>
    {
        var diagnostics = reports.SelectMany(r => r.Diagnostics).ToList();
        var rules = diagnostics.Select(d => d.Code).Distinct().Order(StringComparer.Ordinal).ToList();
        w.WriteStartObject();
        w.WriteString("$schema",
            "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json");
        w.WriteString("version", "2.1.0");
        w.WriteStartArray("runs");
        w.WriteStartObject();
        w.WriteStartObject("tool");
        w.WriteStartObject("driver");
        w.WriteString("name", "ppc-livepatch");
        w.WriteString("version", typeof(ReportWriters).Assembly.GetName().Version?.ToString(3) ?? "0.0.0");
        w.WriteString("informationUri", DiagnosticCatalog.InformationUri(helpLinkBase));
        w.WriteStartArray("rules");
        foreach (var code in rules)
        {
            var descriptor = DiagnosticCatalog.Get(code);
            w.WriteStartObject();
            w.WriteString("id", code);
            w.WriteStartObject("shortDescription");
            w.WriteString("text", descriptor.Title);
            w.WriteEndObject();
            w.WriteString("helpUri", DiagnosticCatalog.HelpLink(code, helpLinkBase));
            w.WriteStartObject("defaultConfiguration");
            w.WriteString("level", Level(descriptor.Severity));
            w.WriteEndObject();
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteEndObject();
        w.WriteEndObject();
        w.WriteStartArray("results");
        foreach (var d in diagnostics)
        {
            w.WriteStartObject();
            w.WriteString("ruleId", d.Code);
            w.WriteNumber("ruleIndex", rules.IndexOf(d.Code));
            w.WriteString("level", Level(d.Severity));
            w.WriteStartObject("message");
            w.WriteString("text", d.Fix is null ? d.Message : $"{d.Sentence} Fix: {d.Fix}");
            w.WriteEndObject();
            // The object is the result's analysis target; the C line, when DWARF gives one, its physical location.
            // An object file has no lines: a site in it is a logical location (function+offset).
            w.WriteStartObject("analysisTarget");
            w.WriteString("uri", FileUri(d.ObjectPath));
            w.WriteEndObject();
            bool logical = d.Function is not null || d.Section is not null;
            if (d.Source is not null || logical)
            {
                w.WriteStartArray("locations");
                w.WriteStartObject();
                if (d.Source is { } s)
                {
                    w.WriteStartObject("physicalLocation");
                    WriteSourceArtifact(w, s.File);
                    // DWARF gives a point, not a range: the region is that line (from the column, when known).
                    int line = Math.Max(s.Line, 1);
                    w.WriteStartObject("region");
                    w.WriteNumber("startLine", line);
                    w.WriteNumber("startColumn", Math.Max(s.Column, 1));
                    w.WriteNumber("endLine", line);
                    w.WriteEndObject();
                    w.WriteEndObject();
                }
                if (logical)
                {
                    w.WriteStartArray("logicalLocations");
                    w.WriteStartObject();
                    w.WriteString("fullyQualifiedName", d.Function is not null
                        ? $"{d.Function}+0x{d.Offset ?? 0:x}" : $"{d.Section}+0x{d.Offset ?? 0:x}");
                    w.WriteString("kind", "function");
                    w.WriteEndObject();
                    w.WriteEndArray();
                }
                w.WriteEndObject();
                w.WriteEndArray();
            }
            w.WriteStartObject("properties");
            w.WriteString("object", d.ObjectPath);
            WriteStringOrNull(w, "section", d.Section);
            if (d.Offset is { } o) w.WriteNumber("offset", o);
            WriteStringOrNull(w, "callee", d.Callee);
            w.WriteEndObject();
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteEndObject();
        w.WriteEndArray();
        w.WriteEndObject();
    });

    /// <summary>
    /// A DWARF file name: absolute, a file:// URI; relative (compiled with a relative path and no usable
    /// DW_AT_comp_dir), a relative reference against the SRCROOT base, which the SARIF viewer asks the user for — never
    /// resolved against this process's directory, which is not where it was compiled.
    /// </summary>
    private static void WriteSourceArtifact(Utf8JsonWriter w, string file)
    {
        w.WriteStartObject("artifactLocation");
        if (Path.IsPathRooted(file)) w.WriteString("uri", FileUri(file));
        else
        {
            w.WriteString("uri", string.Join('/', file.Replace('\\', '/').Split('/').Select(Uri.EscapeDataString)));
            w.WriteString("uriBaseId", "SRCROOT");
        }
        w.WriteEndObject();
    }

    /// <summary>SARIF wants absolute URIs (a bare "/path" is a relative reference): file:// of the full path.</summary>
    private static string FileUri(string path) => new Uri(Path.GetFullPath(path)).AbsoluteUri;

    private static string Level(Severity s) =>
        s switch { Severity.Error => "error", Severity.Warning => "warning", _ => "note" };

    internal static void WriteSource(Utf8JsonWriter w, SourceLocation? source)
    {
        if (source is null) { w.WriteNull("source"); return; }
        w.WriteStartObject("source");
        w.WriteString("file", source.File);
        w.WriteNumber("line", source.Line);
        w.WriteNumber("column", source.Column);
        w.WriteEndObject();
    }

    private static void WriteStringOrNull(Utf8JsonWriter w, string name, string? value)
    {
        if (value is null) w.WriteNull(name); else w.WriteString(name, value);
    }

    /// <summary>The site objects' names and enum values, encoded once.</summary>
    private const int DrainThreshold = 48 << 10;

    private static class SiteJson
    {
        public static readonly JsonEncodedText Sites = JsonEncodedText.Encode("sites"),
            Section = JsonEncodedText.Encode("section"), Offset = JsonEncodedText.Encode("offset"),
            Function = JsonEncodedText.Encode("function"), FunctionOffset = JsonEncodedText.Encode("functionOffset"),
            Callee = JsonEncodedText.Encode("callee"), CalleeKind = JsonEncodedText.Encode("calleeKind"),
            Relocation = JsonEncodedText.Encode("relocation"), Instruction = JsonEncodedText.Encode("instruction"),
            Next = JsonEncodedText.Encode("next"), Verdict = JsonEncodedText.Encode("verdict"),
            Reason = JsonEncodedText.Encode("reason"), Source = JsonEncodedText.Encode("source"),
            File = JsonEncodedText.Encode("file"), Line = JsonEncodedText.Encode("line"),
            Column = JsonEncodedText.Encode("column");

        public static readonly JsonEncodedText[] CalleeKinds =
            Enum.GetValues<CalleeKind>().Select(k => JsonEncodedText.Encode(k.ToString().ToLowerInvariant())).ToArray();

        public static readonly JsonEncodedText[] Verdicts =
            Enum.GetValues<Verdict>().Select(k => JsonEncodedText.Encode(k.ToString().ToLowerInvariant())).ToArray();

        public static readonly JsonEncodedText[] NextWords = Enum.GetValues<NextWord>()
            .Select(n => JsonEncodedText.Encode(
            n switch
            {
                NextWord.Nop => "nop",
                NextWord.TocRestore => "toc-restore",
                NextWord.EndOfSection => "end-of-section",
                _ => "other",
            })).ToArray();
    }

    private static readonly JsonWriterOptions JsonOptions = new()
    {
        Indented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    internal static string Write(Action<Utf8JsonWriter> body)
    {
        var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer, JsonOptions))
            body(w);
        return Encoding.UTF8.GetString(buffer.ToArray()) + "\n";
    }
}
