using System.Text.RegularExpressions;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;
using PpcLivepatch.Diagnostics;

namespace PpcLivepatch.Build.Tasks;

/// <summary>
/// gcc's <c>file:line:col: error|fatal error|warning|note: text</c> lines as coded, located MSBuild diagnostics
/// (MSBuild's own matcher gives them a random per-process code and misses <c>fatal error:</c>). A diagnostic seen
/// before in the same build — a header's, reached from several sources — is logged once.
/// </summary>
internal static partial class GccOutput
{
    [GeneratedRegex(@"^(?<file>[^:]+?):(?:(?<line>\d+):(?:(?<col>\d+):)?)? (?<kind>fatal error|error|warning|note): (?<msg>.*)$")]
    private static partial Regex Diagnostic();

    [GeneratedRegex(@"^(?<code>PLP\d{4}): (?<text>.*)$")]
    private static partial Regex OwnCode();

    /// <param name="defaultFile">Where driver messages without a file of their own are shown.</param>
    /// <param name="pathMap">Maps a path gcc printed (a kbuild copy) back to the user's file.</param>
    /// <returns>False when the line is not a gcc diagnostic.</returns>
    /// <param name="locationMap">Maps a file and line as gcc printed them (a patched copy's, say) to the place the
    /// user edits, with a note for the message; null when the line is not its to map.</param>
    public static bool TryLog(TaskLoggingHelper log, IBuildEngine? engine, string line, string defaultFile,
        string? helpLinkBase, Func<string, string>? pathMap,
        Func<string, int, (string File, int Line, string Note)?>? locationMap = null)
    {
        var m = Diagnostic().Match(line);
        if (!m.Success) return false;
        string file = m.Groups["file"].Value, kind = m.Groups["kind"].Value, msg = m.Groups["msg"].Value;
        int ln = m.Groups["line"].Success ? int.Parse(m.Groups["line"].Value) : 0;
        int col = m.Groups["col"].Success ? int.Parse(m.Groups["col"].Value) : 0;
        if (locationMap?.Invoke(file, ln) is { } mapped)
        {
            (file, ln, col, msg) = (mapped.File, mapped.Line, 0, msg + mapped.Note);
        }
        else
        {
            if (file is "cc1" or "gcc" or "make" || file.EndsWith("-gcc", StringComparison.Ordinal)
                || file.StartsWith("make[", StringComparison.Ordinal)) file = defaultFile;
            else if (!Path.IsPathRooted(file)) file = Path.GetFullPath(file);
            if (pathMap is not null) file = pathMap(file);
        }
        if (!FirstTimeInBuild(engine, $"{file}|{ln}|{col}|{kind}|{msg}")) return true;
        // ppc-livepatch cc prints its own findings in the compiler's form, with their code first.
        if (OwnCode().Match(msg) is { Success: true } own)
        {
            DiagnosticLogging.Log(log, own.Groups["code"].Value, helpLinkBase, file, ln, col, own.Groups["text"].Value);
            return true;
        }
        switch (kind)
        {
            case "error":
                DiagnosticLogging.Log(log, DiagnosticCatalog.CompilerError, helpLinkBase, file, ln, col, msg);
                break;
            case "fatal error":
                DiagnosticLogging.Log(log, DiagnosticCatalog.CompilerFatalError, helpLinkBase, file, ln, col, msg);
                break;
            case "warning":
                DiagnosticLogging.Log(log, DiagnosticCatalog.CompilerWarning, helpLinkBase, file, ln, col, msg);
                break;
            default:
                log.LogMessage(DiagnosticLogging.Subcategory, null, null, file, ln, col, 0, 0, MessageImportance.Normal,
                    "note: {0}", msg);
                break;
        }
        return true;
    }

    /// <summary>Shared across the tasks of one build, so a header's warning shows once, not once per source.</summary>
    private static bool FirstTimeInBuild(IBuildEngine? engine, string key)
    {
        const string registration = "PpcLivepatch.GccOutput.Seen";
        if (engine is not IBuildEngine4 engine4) return true;
        var seen = engine4.GetRegisteredTaskObject(registration, RegisteredTaskObjectLifetime.Build) as HashSet<string>;
        if (seen is null)
        {
            seen = [];
            engine4.RegisterTaskObject(registration, seen, RegisteredTaskObjectLifetime.Build,
                allowEarlyCollection: false);
        }
        lock (seen) return seen.Add(key);
    }
}
