using System.Text;
using System.Text.Json;
using PpcLivepatch.Diagnostics;

namespace PpcLivepatch.Steps;

/// <summary>
/// How the SDK's tasks and <c>ppc-livepatch step</c>/<c>serve</c> talk. <c>serve</c> first prints
/// <see cref="ReadyLine"/>. A request is one JSON line: the directory relative paths are resolved against, the
/// typed <see cref="StepOptions"/> and the object pairs. A response is one JSON object per line, the
/// events in order, then a closing line: <c>{"sitesFixed":N}</c>, or <c>{"error":"…"}</c> when the step could not
/// run. A response without a closing line comes from a tool that died part way. Internal to the SDK and the tool it
/// ships; not a stable interface.
/// </summary>
public static class StepProtocol
{
    private static readonly JsonWriterOptions LineOptions =
        new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static string WriteRequest(StepRequest request) => Line(w =>
    {
        w.WriteStartObject();
        w.WriteString("directory", request.Directory);
        w.WritePropertyName("options");
        request.Options.Write(w);
        w.WriteStartArray("objects");
        foreach (var o in request.Objects)
        {
            w.WriteStartObject();
            w.WriteString("input", o.Input);
            w.WriteString("output", o.Output);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteEndObject();
    });

    /// <exception cref="FormatException">The line is not a request.</exception>
    public static StepRequest ReadRequest(string line)
    {
        try
        {
            using var doc = JsonDocument.Parse(line);
            var root = doc.RootElement;
            var objects = root.GetProperty("objects").EnumerateArray()
                .Select(o => new StepObject(o.GetProperty("input").GetString()!,
                    o.GetProperty("output").GetString()!)).ToList();
            return new StepRequest(root.GetProperty("directory").GetString()!,
                StepOptions.Read(root.GetProperty("options")), objects);
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException
            or FormatException)
        {
            throw new FormatException($"not a step request: {e.Message}", e);
        }
    }

    /// <summary>What <c>serve</c> says first, once it runs: a tool that ends before saying it never started.</summary>
    public static string ReadyLine { get; } = "{\"ready\":true}";

    public static string WriteError(string message) => Line(w =>
    {
        w.WriteStartObject();
        w.WriteString("error", message);
        w.WriteEndObject();
    });

    /// <summary>True for the line that ends a response.</summary>
    public static bool IsClosingLine(string line) =>
        line.StartsWith("{\"sitesFixed\":", StringComparison.Ordinal)
            || line.StartsWith("{\"error\":", StringComparison.Ordinal);

    private static string Line(Action<Utf8JsonWriter> body)
    {
        var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer, LineOptions)) body(w);
        buffer.WriteByte((byte)'\n');
        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    public static string Write(StepResult result)
    {
        var text = new StringBuilder();
        foreach (var e in result.Events) text.Append(Line(w => WriteEvent(w, e)));
        text.Append(Line(w =>
        {
            w.WriteStartObject();
            w.WriteNumber("sitesFixed", result.SitesFixed);
            w.WriteEndObject();
        }));
        return text.ToString();
    }

    private static void WriteEvent(Utf8JsonWriter w, StepEvent e)
    {
        w.WriteStartObject();
        if (e.Diagnostic is { } d)
        {
            w.WriteStartObject("diagnostic");
            w.WriteString("code", d.Code);
            w.WriteString("severity", d.Severity.ToString());
            w.WriteString("kind", d.Kind.ToString());
            w.WriteString("message", d.Message);
            w.WriteString("objectPath", d.ObjectPath);
            if (d.Section is not null) w.WriteString("section", d.Section);
            if (d.Offset is { } offset) w.WriteNumber("offset", offset);
            if (d.Function is not null) w.WriteString("function", d.Function);
            if (d.FunctionOffset is { } functionOffset) w.WriteNumber("functionOffset", functionOffset);
            if (d.Callee is not null) w.WriteString("callee", d.Callee);
            if (d.Source is { } s)
            {
                w.WriteString("file", s.File);
                w.WriteNumber("line", s.Line);
                w.WriteNumber("column", s.Column);
            }
            if (d.Fix is not null) w.WriteString("fix", d.Fix);
            w.WriteEndObject();
        }
        else
        {
            w.WriteString("message", e.Message);
            w.WriteBoolean("prominent", e.Prominent);
        }
        w.WriteEndObject();
    }

    /// <summary>Reads what <see cref="Write"/> wrote; false (with the reason) for anything else, including a cut-off
    /// run.</summary>
    public static bool TryRead(string text, out StepResult? result, out string? error)
    {
        result = null;
        var events = new List<StepEvent>();
        foreach (string line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            try
            {
                using var doc = JsonDocument.Parse(line);
                var root = doc.RootElement;
                if (root.TryGetProperty("sitesFixed", out var fixedCount))
                {
                    result = new StepResult(events, fixedCount.GetInt32());
                    error = null;
                    return true;
                }
                if (root.TryGetProperty("error", out var failure))
                {
                    error = failure.GetString();
                    return false;
                }
                if (root.TryGetProperty("diagnostic", out var d)) events.Add(StepEvent.Of(ReadDiagnostic(d)));
                else events.Add(StepEvent.Say(root.GetProperty("message").GetString()!,
                    root.GetProperty("prominent").GetBoolean()));
            }
            catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException
                or FormatException or ArgumentException)
            {
                error = $"unreadable line '{line}': {e.Message}";
                return false;
            }
        }
        error = "the run did not finish (no closing line)";
        return false;
    }

    private static Diagnostic ReadDiagnostic(JsonElement d)
    {
        string? Text(string name) => d.TryGetProperty(name, out var v) ? v.GetString() : null;
        ulong? Number(string name) => d.TryGetProperty(name, out var v) ? v.GetUInt64() : null;
        var source = d.TryGetProperty("file", out var file)
            ? new SourceLocation(file.GetString()!, d.GetProperty("line").GetInt32(),
                d.GetProperty("column").GetInt32())
            : null;
        var severity = Text("severity") switch
        {
            nameof(Severity.Error) => Severity.Error,
            nameof(Severity.Warning) => Severity.Warning,
            nameof(Severity.Info) => Severity.Info,
            var s => throw new FormatException($"unknown severity '{s}'"),
        };
        var kind = Enum.TryParse<DiagnosticKind>(Text("kind"), out var k) ? k
            : throw new FormatException($"unknown kind '{Text("kind")}'");
        return new Diagnostic(Text("code")!, Text("message")!, Text("objectPath")!,
            Text("section"), Number("offset"), Text("function"), Number("functionOffset"), Text("callee"), source,
                Text("fix"))
            { Severity = severity, Kind = kind };
    }
}
