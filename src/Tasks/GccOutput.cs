using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;
using PpcLivepatch.Diagnostics;

namespace PpcLivepatch.Build.Tasks;

/// <summary>
/// gcc's <c>file:line:col: error|fatal error|warning|note: text</c> lines as coded, located MSBuild diagnostics
/// (MSBuild's own matcher gives them a random per-process code and misses <c>fatal error:</c>). A diagnostic seen
/// before in the same build — a header's, reached from several sources — is logged once.
/// </summary>
internal static class GccOutput
{
    /// <param name="defaultFile">Where driver messages without a file of their own are shown.</param>
    /// <param name="pathMap">Maps a path gcc printed (a kbuild copy) back to the user's file.</param>
    /// <returns>False when the line is not a gcc diagnostic.</returns>
    /// <param name="locationMap">Maps a file and line as gcc printed them (a patched copy's, say) to the place the
    /// user edits, with a note for the message; null when the line is not its to map.</param>
    public static bool TryLog(TaskLoggingHelper log, IBuildEngine? engine, string line, string defaultFile,
        string? helpLinkBase, Func<string, string>? pathMap,
        Func<string, int, (string File, int Line, string Note)?>? locationMap = null) =>
        CompilerMessage.Parse(line) is { } message
            && Log(log, engine, message.PlacedAt(defaultFile, pathMap, locationMap), helpLinkBase);

    /// <summary>Logs a message already placed at the user's file: coded, or a note as a message.</summary>
    public static bool Log(TaskLoggingHelper log, IBuildEngine? engine, CompilerMessage m, string? helpLinkBase)
    {
        if (!FirstTimeInBuild(engine, $"{m.File}|{m.Line}|{m.Column}|{m.Kind}|{m.Text}")) return true;
        if (m.ToDiagnostic() is { } d)
            DiagnosticLogging.Log(log, d.Code, helpLinkBase, m.File, m.Line, m.Column, d.Message);
        else
            log.LogMessage(DiagnosticLogging.Subcategory, null, null, m.File, m.Line, m.Column, 0, 0,
                MessageImportance.Normal, "note: {0}", m.Text);
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
