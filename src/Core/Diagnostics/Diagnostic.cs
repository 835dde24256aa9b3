namespace PpcLivepatch.Diagnostics;

public enum Severity
{
    Info,
    Warning,
    Error,
}

/// <summary>What a diagnostic is about: steps and renderers choose what to show by it, never by message text or
/// code.</summary>
public enum DiagnosticKind
{
    /// <summary>Usage, toolchain, unreadable input, livepatch symbols, signing.</summary>
    General,
    /// <summary>What the kernel's module loader (or livepatch) refuses in an object.</summary>
    Rejected,
    /// <summary>What the loader accepts but breaks at run time (sibling calls to external symbols).</summary>
    Hazard,
    /// <summary>A call site chosen for fixing that stays unfixed, with why.</summary>
    Unfixed,
    /// <summary>A call site fixed.</summary>
    Fixed,
    /// <summary>An object whose rewrite as a whole was refused: nothing was written.</summary>
    Refused,
    /// <summary>A note on a rewrite (unwind or debug information not extended).</summary>
    Note,
    /// <summary>The summary line of a patch.</summary>
    Summary,
}

/// <summary>A place in C source, from DWARF line tables. Columns are 1-based; 0 means unknown.</summary>
public sealed record SourceLocation(string File, int Line, int Column);

/// <summary>
/// One finding, as data: everything a renderer (MSBuild, text, JSON, SARIF) needs, and nothing about how it is
/// shown. <see cref="ObjectPath"/> is the object file; <see cref="Source"/> is the C line when DWARF knows it.
/// <see cref="Severity"/> and <see cref="Kind"/> are the catalog's for the code; only the named policies below
/// change them.
/// </summary>
public sealed record Diagnostic(
    string Code,
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
    public Severity Severity { get; init; } = DiagnosticCatalog.SeverityOf(Code);

    public DiagnosticKind Kind { get; init; } = DiagnosticCatalog.KindOf(Code);

    /// <summary>The data object a finding is about (a changed variable), which line tables do not place: a source
    /// patch's finding is placed by it instead.</summary>
    public string? Datum { get; init; }

    public string HelpLink => DiagnosticCatalog.HelpLink(Code);

    /// <summary>The message as a sentence: one closing period, also when it quotes a system message that has
    /// one.</summary>
    public string Sentence =>
        Message.EndsWith('.') || Message.EndsWith('?') || Message.EndsWith('!') ? Message : Message + ".";

    public static Diagnostic Create(string code, string objectPath, string message) => new(code, message, objectPath);

    /// <summary>A site that only <c>--sites all-local</c> chose, left unfixed: the kernel loads it as it is.</summary>
    public Diagnostic LeftAsIs() => this with { Severity = Severity.Warning };

    /// <summary>SDK policy: a warning the build treats as an error (sibling calls unless allowed).</summary>
    public Diagnostic Promoted() => Severity == Severity.Warning ? this with { Severity = Severity.Error } : this;

    /// <summary>An error shown as a warning: LivepatchVerifyMode=warn, or a report that could not be written.</summary>
    public Diagnostic Demoted() => Severity == Severity.Error ? this with { Severity = Severity.Warning } : this;

    /// <summary>True for a call site that stays unfixed after a patch, whatever the reason.</summary>
    public bool IsUnfixedSite =>
        Offset is not null && Kind is DiagnosticKind.Unfixed or DiagnosticKind.Rejected or DiagnosticKind.Refused;
}
