namespace PpcLivepatch.Diagnostics;

public enum Severity
{
    Info,
    Warning,
    Error,
}

/// <summary>A place in C source, from DWARF line tables. Columns are 1-based; 0 means unknown.</summary>
public sealed record SourceLocation(string File, int Line, int Column);

/// <summary>
/// One finding, as data: everything a renderer (MSBuild, text, JSON, SARIF) needs, and nothing about how it is
/// shown. <see cref="ObjectPath"/> is the object file; <see cref="Source"/> is the C line when DWARF knows it.
/// </summary>
public sealed record Diagnostic(
    string Code,
    Severity Severity,
    string Message,
    string ObjectPath,
    string? Section = null,
    ulong? Offset = null,
    string? Function = null,
    ulong? FunctionOffset = null,
    string? Callee = null,
    SourceLocation? Source = null,
    string? Fix = null)
{
    public string HelpLink => DiagnosticCatalog.HelpLink(Code);

    /// <summary>Builds a diagnostic with the catalog's severity for <paramref name="code"/>.</summary>
    public static Diagnostic Create(string code, string objectPath, string message) =>
        new(code, DiagnosticCatalog.Get(code).Severity, message, objectPath);
}
