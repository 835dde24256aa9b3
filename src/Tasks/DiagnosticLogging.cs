using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;
using PpcLivepatch.Diagnostics;

namespace PpcLivepatch.Build.Tasks;

/// <summary>Maps Core diagnostics onto MSBuild's error list: code, help link, and the C line when DWARF has one.</summary>
internal static class DiagnosticLogging
{
    public const string Subcategory = "ppc-livepatch";

    /// <summary>Logs one diagnostic. <paramref name="promote"/> turns a warning into an error (SDK policy).</summary>
    public static void Log(TaskLoggingHelper log, Diagnostic d, string? helpLinkBase, bool promote = false)
    {
        string file = d.Source?.File ?? d.ObjectPath;
        int line = d.Source?.Line ?? 0, column = d.Source?.Column ?? 0;
        string message = d.Fix is null ? d.Message : $"{d.Message}. Fix: {d.Fix}";
        string helpLink = (helpLinkBase ?? DiagnosticCatalog.HelpLinkBase) + d.Code + ".md";
        var severity = promote && d.Severity == Severity.Warning ? Severity.Error : d.Severity;
        switch (severity)
        {
            case Severity.Error:
                log.LogError(Subcategory, d.Code, d.Code, helpLink, file, line, column, 0, 0, "{0}", message);
                break;
            case Severity.Warning:
                log.LogWarning(Subcategory, d.Code, d.Code, helpLink, file, line, column, 0, 0, "{0}", message);
                break;
            default:
                // Per-site information goes to detailed logs; summaries are shown at normal verbosity.
                var importance = d.Code == DiagnosticCatalog.SiteFixed ? MessageImportance.Low : MessageImportance.Normal;
                log.LogMessage(Subcategory, d.Code, d.Code, file, line, column, 0, 0, importance, "{0}", message);
                break;
        }
    }

    public static void Log(TaskLoggingHelper log, IEnumerable<Diagnostic> diagnostics, string? helpLinkBase, Func<Diagnostic, bool>? promote = null)
    {
        foreach (var d in diagnostics) Log(log, d, helpLinkBase, promote?.Invoke(d) ?? false);
    }

    /// <summary>An I/O failure while reading or writing an object, as a coded error instead of an MSB4018 stack trace.</summary>
    public static void LogIoError(TaskLoggingHelper log, string code, string path, Exception e, string? helpLinkBase) =>
        Log(log, Diagnostic.Create(code, path, $"cannot {(code == DiagnosticCatalog.UnwritableOutput ? "write" : "read")} '{path}': {e.Message}"), helpLinkBase);
}
