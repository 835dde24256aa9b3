using System.Text.RegularExpressions;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;
using PpcLivepatch.Diagnostics;

namespace PpcLivepatch.Build.Tasks;

/// <summary>
/// Compiles one C source with the cross gcc. gcc's <c>file:line:col: error|warning|note:</c> lines become coded,
/// located diagnostics (MSBuild's own matcher would give them a random per-process code, and it misses
/// <c>fatal error:</c>); a diagnostic that several sources share (a header's) is logged once per build.
/// <c>-MMD</c> writes the dependency file the SDK feeds back into the target's inputs, so header edits rebuild.
/// </summary>
public sealed partial class CrossCompile : ToolTask
{
    private const string CompilerError = DiagnosticCatalog.CompilerError;
    private const string CompilerFatalError = DiagnosticCatalog.CompilerFatalError;
    private const string CompilerWarning = DiagnosticCatalog.CompilerWarning;
    private const string CompilerNotFound = DiagnosticCatalog.CompilerNotFound;

    [Required] public string Source { get; set; } = "";
    [Required] public string ObjectFile { get; set; } = "";
    public string? DependencyFile { get; set; }
    public string CrossCompilePrefix { get; set; } = "powerpc64le-linux-gnu-";
    public string Flags { get; set; } = "";
    public string? HelpLinkBase { get; set; }

    private readonly List<string> _notes = [];

    protected override string ToolName => CrossCompilePrefix + "gcc";

    protected override MessageImportance StandardErrorLoggingImportance => MessageImportance.Normal;

    protected override string GenerateFullPathToTool()
    {
        foreach (string dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            string candidate = Path.Combine(dir, ToolName);
            if (File.Exists(candidate)) return candidate;
        }
        return ToolName;
    }

    public override bool Execute()
    {
        if (string.IsNullOrEmpty(ToolPath) && !Path.IsPathRooted(GenerateFullPathToTool()))
        {
            string package = CrossCompilePrefix.StartsWith("powerpc64le", StringComparison.Ordinal) ? "gcc-powerpc64le-linux-gnu" : "gcc-powerpc64-linux-gnu";
            Log.LogError(DiagnosticLogging.Subcategory, CompilerNotFound, CompilerNotFound, HelpLink(CompilerNotFound), Source, 0, 0, 0, 0,
                "the cross compiler '{0}' is not on PATH; install it (Debian: apt-get install {1}) or set CrossCompilePrefix", ToolName, package);
            return false;
        }
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(ObjectFile))!);
        bool ok = base.Execute() && !Log.HasLoggedErrors;
        if (!ok)
        {
            // No stale object may survive a failed compile: the next build would think it up to date.
            TryDelete(ObjectFile);
            if (DependencyFile is not null) TryDelete(DependencyFile);
        }
        return ok;
    }

    protected override string GenerateCommandLineCommands()
    {
        var b = new CommandLineBuilder();
        b.AppendTextUnquoted(Flags);
        // Columns as IDEs count them (a tab is one column, as in DWARF), and no colour escapes in the log.
        b.AppendSwitch("-fdiagnostics-column-unit=byte");
        b.AppendSwitch("-fdiagnostics-color=never");
        if (!string.IsNullOrEmpty(DependencyFile)) { b.AppendSwitch("-MMD"); b.AppendSwitchIfNotNull("-MF ", DependencyFile); }
        b.AppendSwitch("-c");
        b.AppendFileNameIfNotNull(Source);
        b.AppendSwitchIfNotNull("-o ", ObjectFile);
        return b.ToString();
    }

    [GeneratedRegex(@"^(?<file>[^:]+?):(?:(?<line>\d+):(?:(?<col>\d+):)?)? (?<kind>fatal error|error|warning|note): (?<msg>.*)$")]
    private static partial Regex GccDiagnostic();

    protected override void LogEventsFromTextOutput(string line, MessageImportance importance)
    {
        var m = GccDiagnostic().Match(line);
        if (!m.Success)
        {
            Log.LogMessage(importance, "{0}", line);
            return;
        }
        string file = m.Groups["file"].Value, kind = m.Groups["kind"].Value, msg = m.Groups["msg"].Value;
        int ln = m.Groups["line"].Success ? int.Parse(m.Groups["line"].Value) : 0;
        int col = m.Groups["col"].Success ? int.Parse(m.Groups["col"].Value) : 0;
        if (file is "cc1" or "gcc" || file.EndsWith("-gcc", StringComparison.Ordinal)) file = Source; // driver errors: no file of their own
        else if (!Path.IsPathRooted(file)) file = Path.GetFullPath(file);
        if (!FirstTimeInBuild($"{file}|{ln}|{col}|{kind}|{msg}")) return;
        switch (kind)
        {
            case "error":
                Log.LogError(DiagnosticLogging.Subcategory, CompilerError, CompilerError, HelpLink(CompilerError), file, ln, col, 0, 0, "{0}", msg);
                break;
            case "fatal error":
                Log.LogError(DiagnosticLogging.Subcategory, CompilerFatalError, CompilerFatalError, HelpLink(CompilerFatalError), file, ln, col, 0, 0, "{0}", msg);
                break;
            case "warning":
                Log.LogWarning(DiagnosticLogging.Subcategory, CompilerWarning, CompilerWarning, HelpLink(CompilerWarning), file, ln, col, 0, 0, "{0}", msg);
                break;
            default:
                Log.LogMessage(DiagnosticLogging.Subcategory, null, null, file, ln, col, 0, 0, MessageImportance.Normal, "note: {0}", msg);
                break;
        }
    }

    /// <summary>Shared across the batches of one build, so a header's warning shows once, not once per source.</summary>
    private bool FirstTimeInBuild(string key)
    {
        const string registration = "PpcLivepatch.CrossCompile.Seen";
        if (BuildEngine is not IBuildEngine4 engine) return true;
        var seen = engine.GetRegisteredTaskObject(registration, RegisteredTaskObjectLifetime.Build) as HashSet<string>;
        if (seen is null)
        {
            seen = [];
            engine.RegisterTaskObject(registration, seen, RegisteredTaskObjectLifetime.Build, allowEarlyCollection: false);
        }
        lock (seen) return seen.Add(key);
    }

    private string HelpLink(string code) => (HelpLinkBase ?? DiagnosticCatalog.HelpLinkBase) + code + ".md";

    private static void TryDelete(string path)
    {
        try { if (File.Exists(path)) File.Delete(path); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
