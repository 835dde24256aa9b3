using System.Globalization;
using System.Text.RegularExpressions;

namespace PpcLivepatch.Diagnostics;

/// <summary>
/// One of gcc's <c>file:line:col: error|fatal error|warning|note: text</c> lines. <see cref="ToDiagnostic"/> gives it
/// our code — the code <c>ppc-livepatch cc</c> printed first in the text, else PLP0010/PLP0011/PLP0012 by its kind;
/// a note has none (it belongs to the line before it).
/// </summary>
public sealed partial record CompilerMessage(string File, int Line, int Column, string Kind, string Text)
{
    [GeneratedRegex(@"^(?<file>[^:]+?):(?:(?<line>\d+):(?:(?<col>\d+):)?)? (?<kind>fatal error|error|warning|note): (?<msg>.*)$")]
    private static partial Regex Format();

    [GeneratedRegex(@"^(?<code>PLP\d{4}): (?<text>.*)$")]
    private static partial Regex OwnCode();

    public bool IsNote => Kind == "note";

    /// <summary>The compiler driver's own messages (<c>gcc: fatal error: …</c>) name no file of the user's.</summary>
    public bool NamesNoFile => File is "cc1" or "gcc" or "make" || File.EndsWith("-gcc", StringComparison.Ordinal)
        || File.StartsWith("make[", StringComparison.Ordinal);

    public static CompilerMessage? Parse(string line)
    {
        var m = Format().Match(line);
        if (!m.Success) return null;
        return new CompilerMessage(m.Groups["file"].Value, Number(m.Groups["line"]), Number(m.Groups["col"]),
            m.Groups["kind"].Value, m.Groups["msg"].Value);

        static int Number(Group g) =>
            g.Success && int.TryParse(g.Value, NumberStyles.None, CultureInfo.InvariantCulture, out int n) ? n : 0;
    }

    /// <summary>The coded diagnostic, at <see cref="File"/>:<see cref="Line"/>; null for a note.</summary>
    public Diagnostic? ToDiagnostic()
    {
        if (IsNote) return null;
        string code = Kind switch
        {
            "fatal error" => DiagnosticCatalog.CompilerFatalError,
            "warning" => DiagnosticCatalog.CompilerWarning,
            _ => DiagnosticCatalog.CompilerError,
        };
        string text = Text;
        if (OwnCode().Match(Text) is { Success: true } own)
            (code, text) = (own.Groups["code"].Value, own.Groups["text"].Value);
        return new Diagnostic(code, text, File, Source: new SourceLocation(File, Line, Column));
    }

    /// <summary>
    /// The message where the user reads it: at the place <paramref name="locationMap"/> gives (a patched copy's line
    /// is its <c>.patch</c> line, with a note naming the C line), else with a driver message's file replaced by
    /// <paramref name="defaultFile"/>, a relative path made absolute and mapped by <paramref name="pathMap"/>.
    /// </summary>
    public CompilerMessage PlacedAt(string defaultFile, Func<string, string>? pathMap = null,
        Func<string, int, (string File, int Line, string Note)?>? locationMap = null)
    {
        if (locationMap?.Invoke(File, Line) is { } mapped)
            return this with { File = mapped.File, Line = mapped.Line, Column = 0, Text = Text + mapped.Note };
        string file = NamesNoFile ? defaultFile : Path.IsPathRooted(File) ? File : Path.GetFullPath(File);
        return this with { File = pathMap is null ? file : pathMap(file) };
    }
}
