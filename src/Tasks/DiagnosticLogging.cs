using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;
using PpcLivepatch.Diagnostics;

namespace PpcLivepatch.Build.Tasks;

/// <summary>Maps Core diagnostics onto MSBuild's error list: code, help link, and the C line when DWARF has
/// one.</summary>
internal static class DiagnosticLogging
{
    public const string Subcategory = "ppc-livepatch";

    /// <summary>Logs one diagnostic with its own severity (the steps have applied the SDK's policies).</summary>
    public static void Log(TaskLoggingHelper log, Diagnostic d, string? helpLinkBase)
    {
        string message = d.Fix is null ? d.Message : $"{d.Sentence} Fix: {d.Fix}";
        // Per-site information goes to detailed logs; summaries are shown at normal verbosity.
        var importance = d.Kind == DiagnosticKind.Fixed ? MessageImportance.Low : MessageImportance.Normal;
        Write(log, d.Code, d.Severity, helpLinkBase, d.Source?.File ?? d.ObjectPath,
            d.Source?.Line ?? 0, d.Source?.Column ?? 0, message, importance);
    }

    /// <summary>
    /// Every coded event of every task goes out here: the code as code and help keyword, the help link, the file and
    /// line, and the catalog's severity.
    /// </summary>
    public static void Log(TaskLoggingHelper log, string code, string? helpLinkBase, string file, int line, int column,
        string message) =>
        Write(log, code, DiagnosticCatalog.SeverityOf(code), helpLinkBase, file, line, column, message,
            MessageImportance.Normal);

    /// <summary>The warning codes each task has logged.</summary>
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<TaskLoggingHelper, HashSet<string>>
        s_warnings = [];

    /// <summary>
    /// Whether the task has failed as the build sees it: it logged an error, or a warning the build promotes to one
    /// (-warnaserror, WarningsAsErrors). A task must then leave no output behind — else the unchanged next build finds
    /// it up to date and succeeds.
    /// </summary>
    public static bool HasFailed(Microsoft.Build.Utilities.Task task)
    {
        if (task.Log.HasLoggedErrors) return true;
        if (task.BuildEngine is not IBuildEngine8 engine || !s_warnings.TryGetValue(task.Log, out var codes))
            return false;
        lock (codes) return codes.Any(engine.ShouldTreatWarningAsError);
    }

    private static void Write(TaskLoggingHelper log, string code, Severity severity, string? helpLinkBase, string file,
        int line, int column, string message, MessageImportance importance)
    {
        string helpLink = DiagnosticCatalog.HelpLink(code, helpLinkBase);
        if (severity == Severity.Warning)
        {
            var codes = s_warnings.GetValue(log, _ => []);
            lock (codes) codes.Add(code);
        }
        switch (severity)
        {
            case Severity.Error:
                log.LogError(Subcategory, code, code, helpLink, file, line, column, 0, 0, "{0}", message);
                break;
            case Severity.Warning:
                log.LogWarning(Subcategory, code, code, helpLink, file, line, column, 0, 0, "{0}", message);
                break;
            default:
                log.LogMessage(Subcategory, code, code, file, line, column, 0, 0, importance, "{0}", message);
                return;
        }
        // MSBuild's binary log keeps an error's or warning's code and help keyword but not its help link: the page
        // goes beside it as a message, where the log viewer shows it.
        log.LogMessage(MessageImportance.Low, "{0}", $"{code} is explained at {helpLink}");
    }


    /// <summary>An I/O failure while reading or writing an object, as a coded error instead of an MSB4018 stack
    /// trace.</summary>
    public static void LogIoError(TaskLoggingHelper log, string code, string path, Exception e, string? helpLinkBase) =>
        Log(log, Diagnostic.Create(code, path,
            $"cannot {(code == DiagnosticCatalog.UnwritableOutput ? "write" : "read")} '{path}': {e.Message}"),
                helpLinkBase);
}
