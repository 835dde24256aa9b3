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
public sealed class CrossCompile : PpcLivepatchToolTask
{
    private const string CompilerNotFound = DiagnosticCatalog.CompilerNotFound;

    [Required] public string Source { get; set; } = "";
    [Required] public string ObjectFile { get; set; } = "";
    public string? DependencyFile { get; set; }
    /// <summary>Empty on a ppc64 host: plain <c>gcc</c>, as kbuild's empty CROSS_COMPILE (MSBuild does not pass an
    /// empty parameter, so the default must be the empty prefix, not a cross one).</summary>
    public string CrossCompilePrefix { get; set; } = "";
    public string Flags { get; set; } = "";
    /// <summary>
    /// The assembler route (Rel24Strategy=asm): the program that runs the compile as compile-to-assembly, nop
    /// insertion, assembly and validation (<c>ppc-livepatch</c>, or <c>dotnet</c>), and its arguments before the
    /// compiler's (<c>cc --</c>); its settings come in <see cref="ToolTask.EnvironmentVariables"/>.
    /// </summary>
    public string? RouteTool { get; set; }

    public string? RouteArguments { get; set; }

    private readonly List<string> _notes = [];
    private bool _warned;

    /// <summary>Written when the compile succeeded without a warning, removed otherwise.</summary>
    public string? CleanStamp { get; set; }

    protected override string ToolName => CrossCompilePrefix + "gcc";

    private string CompilerPath() => Kbuild.Toolchain.Find(ToolName) ?? ToolName;

    protected override MessageImportance StandardErrorLoggingImportance => MessageImportance.Normal;

    protected override string GenerateFullPathToTool() => string.IsNullOrEmpty(RouteTool) ? CompilerPath() : RouteTool;

    protected override bool ExecuteCore()
    {
        if (string.IsNullOrEmpty(ToolPath) && !Path.IsPathRooted(CompilerPath()))
        {
            DiagnosticLogging.Log(Log, CompilerNotFound, HelpLinkBase, Source, 0, 0,
                $"the compiler '{ToolName}' is not on PATH; {Kbuild.Toolchain.InstallAdvice(CrossCompilePrefix)}");
            return false;
        }
        // NuGet may not keep file modes: the package's native tool gets its execute bits on first use.
        if (!string.IsNullOrEmpty(RouteTool) && Path.IsPathRooted(RouteTool) && File.Exists(RouteTool)
            && !NativeStep.TryMakeExecutable(RouteTool, out string? why))
            Log.LogMessage(MessageImportance.Low, "{0} cannot be made executable: {1}", RouteTool, why);
        bool ok;
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(ObjectFile))!);
            ok = RunTool() && !DiagnosticLogging.HasFailed(this);
        }
        catch (Exception e) when (PpcLivepatch.Steps.StepFiles.IsIoFailure(e) || e is ArgumentException)
        {
            DiagnosticLogging.LogIoError(Log, DiagnosticCatalog.UnwritableOutput, ObjectFile, e, HelpLinkBase);
            ok = false;
        }
        // A compile that warned is never up to date: its warnings show again next build, and -warnaserror fails
        // every time (the object is dated before any source, so the Compile target runs it again).
        // A compile that warned is never up to date: it leaves no clean stamp (one of the Compile target's outputs),
        // so its warnings show again next build and -warnaserror fails every time. (Dating the object back instead
        // would make the link take a changed object for older than the module.)
        if (!string.IsNullOrEmpty(CleanStamp))
        {
            if (ok && !_warned)
            {
                try { File.WriteAllBytes(CleanStamp, []); }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
            }
            else TryDelete(CleanStamp);
        }
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
        if (!string.IsNullOrEmpty(RouteTool))
        {
            b.AppendTextUnquoted(RouteArguments ?? "cc --");
            b.AppendFileNameIfNotNull(CompilerPath());
            b.AppendTextUnquoted(" ");
        }
        b.AppendTextUnquoted(Flags);
        // Columns as IDEs count them (a tab is one column, as in DWARF), and no colour escapes in the log.
        b.AppendSwitch("-fdiagnostics-column-unit=byte");
        b.AppendSwitch("-fdiagnostics-color=never");
        if (!string.IsNullOrEmpty(DependencyFile))
        {
            b.AppendSwitch("-MMD");
            b.AppendSwitchIfNotNull("-MF ", DependencyFile);
        }
        b.AppendSwitch("-c");
        b.AppendFileNameIfNotNull(Source);
        b.AppendSwitchIfNotNull("-o ", ObjectFile);
        return b.ToString();
    }

    /// <summary>A failure that printed no diagnostic we recognise still gets our code, not MSB6006.</summary>
    protected override bool HandleTaskExecutionErrors()
    {
        if (!Log.HasLoggedErrors)
            DiagnosticLogging.Log(Log, DiagnosticCatalog.CompilerError, HelpLinkBase,
                BuildEngine?.ProjectFileOfTaskNode ?? "", 0, 0,
                $"the cross compiler exited with code {ExitCode}; its messages are above");
        return false;
    }

    protected override void LogEventsFromTextOutput(string line, MessageImportance importance)
    {
        if (line.Contains(": warning: ", StringComparison.Ordinal)) _warned = true;
        if (!GccOutput.TryLog(Log, BuildEngine, line, Source, HelpLinkBase, pathMap: null))
            Log.LogMessage(importance, "{0}", line);
    }


    private static void TryDelete(string path)
    {
        try { if (File.Exists(path)) File.Delete(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
    }
}
