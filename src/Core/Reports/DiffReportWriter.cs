using System.Text;
using PpcLivepatch.Analysis;
using PpcLivepatch.Diff;

namespace PpcLivepatch.Reports;

/// <summary>What <c>ppc-livepatch diff</c> prints: the diagnostics (as every command prints them), then what goes
/// into the livepatch and what it leaves bound to the kernel.</summary>
public static class DiffReportWriter
{
    public static string Render(DiffReport report, Ppc64.PpcAbi? abi, ReportFormat format) => format switch
    {
        ReportFormat.Text => Text(report),
        ReportFormat.Json => Json(report),
        ReportFormat.Sarif => ReportWriters.Sarif([new ObjectReport(report.PatchedPath, abi, [], report.Diagnostics)]),
        _ => throw new ArgumentOutOfRangeException(nameof(format)),
    };

    private static string Text(DiffReport r)
    {
        var sb = new StringBuilder();
        foreach (var d in r.Diagnostics) sb.Append(ReportWriters.CanonicalLine(d)).Append('\n');
        static string List(string what, IReadOnlyList<string> names) =>
            names.Count == 0 ? "" : $"{names.Count} {what} ({string.Join(", ", names)})";
        var parts = new[] { List("changed", r.Changed), List("new", r.New), List("new data", r.NewData) }
            .Where(p => p.Length > 0).ToList();
        sb.Append($"{r.PatchedPath}: {(r.Succeeded ? "livepatch object written" : "refused")}" +
            (parts.Count > 0 ? $": {string.Join(", ", parts)}" : "") + "\n");
        foreach (var (name, source) in r.Sources)
            sb.Append($"  {name}: {source.File}:{source.Line}\n");
        if (r.LineNumbersOnly.Count > 0)
            sb.Append($"  unchanged but for line numbers: {string.Join(", ", r.LineNumbersOnly)}\n");
        foreach (var b in r.Bindings)
            sb.Append($"  {b.Name}: {(b.Klp ? b.SymbolName : b.ExportAssumed
                ? "a static key, left undefined (the kernel must export it; a load fails by name if not)"
                : "exported, left undefined")}\n");
        return sb.ToString();
    }

    private static string Json(DiffReport r) => ReportWriters.Write(w =>
    {
        w.WriteStartObject();
        w.WriteString("original", r.OriginalPath);
        w.WriteString("patched", r.PatchedPath);
        w.WriteBoolean("succeeded", r.Succeeded);
        void Names(string name, IReadOnlyList<string> names)
        {
            w.WriteStartArray(name);
            foreach (var n in names) w.WriteStringValue(n);
            w.WriteEndArray();
        }
        Names("changed", r.Changed);
        Names("new", r.New);
        Names("newData", r.NewData);
        Names("lineNumbersOnly", r.LineNumbersOnly);
        w.WriteStartArray("functions");
        foreach (var (name, change) in r.Changed.Select(n => (n, "changed")).Concat(r.New.Select(n => (n, "new"))))
        {
            w.WriteStartObject();
            w.WriteString("name", name);
            w.WriteString("change", change);
            ReportWriters.WriteSource(w, r.Sources.GetValueOrDefault(name));
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteStartArray("kernelSymbols");
        foreach (var b in r.Bindings)
        {
            w.WriteStartObject();
            w.WriteString("name", b.Name);
            w.WriteString("binding", b.Klp ? "livepatch" : b.ExportAssumed ? "undefined" : "exported");
            w.WriteString("object", b.Object);
            w.WriteNumber("position", b.Position);
            w.WriteString("symbol", b.SymbolName);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        ReportWriters.WriteDiagnostics(w, r.Diagnostics, null);
        w.WriteEndObject();
    });
}
