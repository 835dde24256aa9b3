using System.Text.Json;
using PpcLivepatch.Diff;

namespace PpcLivepatch.KernelPatching;

/// <summary>
/// What a kernel-patch preparation made, for the link that follows: the generated klp registration (C), the diff
/// objects, and the kernel symbols the diff left unbound (bound by the Convert step after the link, since <c>ld -r</c>
/// and kbuild's link do not keep <c>.klp.rela</c> sections). Written as JSON once the preparation finished, so a
/// build that skips the preparation as up to date links the same objects and binds the same symbols.
/// </summary>
public sealed record KernelPatchManifest(string Registration, IReadOnlyList<string> Objects,
    IReadOnlyList<KernelBinding> KlpSymbols)
{
    private const int Version = 1;

    public byte[] ToJson()
    {
        using var stream = new MemoryStream();
        using (var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            json.WriteStartObject();
            json.WriteNumber("version", Version);
            json.WriteString("registration", Registration);
            json.WriteStartArray("objects");
            foreach (string o in Objects) json.WriteStringValue(o);
            json.WriteEndArray();
            json.WriteStartArray("klpSymbols");
            foreach (var b in KlpSymbols)
            {
                json.WriteStartObject();
                json.WriteString("name", b.Name);
                json.WriteString("object", b.Object);
                json.WriteNumber("position", b.Position);
                json.WriteEndObject();
            }
            json.WriteEndArray();
            json.WriteEndObject();
        }
        stream.WriteByte((byte)'\n');
        return stream.ToArray();
    }

    /// <summary>The manifest in <paramref name="json"/>, or null with why it is not one this version wrote.</summary>
    public static KernelPatchManifest? Read(byte[] json, out string? error)
    {
        error = null;
        try
        {
            using var doc = JsonDocument.Parse(json);
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("version", out var v)
                || v.ValueKind != JsonValueKind.Number || v.GetInt32() != Version)
            {
                error = $"it is not a version {Version} kernel-patch manifest";
                return null;
            }
            var objects = Field(root, "objects").EnumerateArray().Select(o => o.GetString()!).ToList();
            var symbols = Field(root, "klpSymbols").EnumerateArray().Select(s => new KernelBinding(
                Field(s, "name").GetString()!, Klp: true, Field(s, "object").GetString()!,
                Field(s, "position").GetUInt64())).ToList();
            return new KernelPatchManifest(Field(root, "registration").GetString()!, objects, symbols);
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException
            or FormatException or ArgumentNullException)
        {
            error = e.Message;
            return null;
        }
    }

    private static JsonElement Field(JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var value) ? value
            : throw new FormatException($"it has no \"{name}\"");
}
