using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;
using PpcLivepatch.Diagnostics;

namespace PpcLivepatch.Build.Tasks;

/// <summary> Kbuild mode's cross-compiler step: <c>make -C KernelDir M=KbuildDir ARCH=powerpc CROSS_COMPILE=… KCFLAGS=…
/// modules</c>. The sources sit in <see cref="KbuildDirectory"/> as links to the user's files; gcc's diagnostics are
/// mapped back to those files and logged with the same codes as in the plain mode. </summary>
public sealed partial class KbuildMake : PpcLivepatchToolTask
{
    [Required] public string KernelDirectory { get; set; } = "";
    [Required] public string KbuildDirectory { get; set; } = "";
    /// <summary>Where the user's sources are; paths under <see cref="KbuildDirectory"/> are shown under it.</summary>
    [Required] public string SourceDirectory { get; set; } = "";
    /// <summary>The .ko make writes; deleted when make fails, so no stale module looks up to date.</summary>
    public string? ModuleFile { get; set; }
    /// <summary>kbuild's CROSS_COMPILE; empty on a ppc64 host.</summary>
    public string CrossCompilePrefix { get; set; } = "";
    public string KCFlags { get; set; } = "";
    /// <summary>KlpSymbol item names: modpost may call them undefined, the livepatch relocations resolve
    /// them.</summary>
    public string[] KlpSymbols { get; set; } = [];
    /// <summary>The project file, where diagnostics without a C location are shown.</summary>
    public string? ProjectFile { get; set; }
    /// <summary>The assembler route (Rel24Strategy=asm): its program (<c>ppc-livepatch</c>, or <c>dotnet</c>) and
    /// arguments (<c>cc --</c>), made kbuild's CC in front of the cross gcc.</summary>
    public string? CompilerRoute { get; set; }

    public string? CompilerRouteArguments { get; set; }

    protected override string ToolName => "make";

    [System.Text.RegularExpressions.GeneratedRegex(@"^WARNING: modpost: ""(?<sym>[^""]+)"" \[.*\] undefined!")]
    private static partial System.Text.RegularExpressions.Regex ModpostUndefined();

    /// <summary>What make and kbuild print when they stop, other than a compiler diagnostic: make's own errors
    /// (<c>make[2]: *** … Error 1</c>, <c>No rule to make target</c>), modpost's (<c>ERROR: modpost: …</c>), the
    /// linker's (<c>ld: …</c>).</summary>
    [System.Text.RegularExpressions.GeneratedRegex(@"^(?:make(?:\[\d+\])?: \*\*\* |ERROR: modpost: |(?:\S*-)?ld(?:\.bfd)?: |scripts/\S+: error)")]
    private static partial System.Text.RegularExpressions.Regex BuildError();

    /// <summary>kbuild's progress lines (<c>  CC [M]  x.o</c>, <c>  LD [M]  x.ko</c>, <c>  MODPOST …</c>).</summary>
    [System.Text.RegularExpressions.GeneratedRegex(@"^  [A-Z][A-Z0-9_]*(?: \[M\])?\s{2,}\S")]
    private static partial System.Text.RegularExpressions.Regex Progress();

    /// <summary>make's last lines, for a failure that printed nothing we recognise.</summary>
    private readonly Queue<string> _recent = new();
    private readonly List<string> _buildErrors = [];

    protected override MessageImportance StandardOutputLoggingImportance => MessageImportance.Normal;
    protected override MessageImportance StandardErrorLoggingImportance => MessageImportance.Normal;

    protected override string GenerateFullPathToTool() => OnPath(ToolName) ?? ToolName;

    private static string? OnPath(string tool)
    {
        foreach (string dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator,
            StringSplitOptions.RemoveEmptyEntries))
            if (File.Exists(Path.Combine(dir, tool))) return Path.Combine(dir, tool);
        return null;
    }

    protected override bool ExecuteCore()
    {
        if (!Directory.Exists(KernelDirectory) || !File.Exists(Path.Combine(KernelDirectory, "Makefile")))
        {
            DiagnosticLogging.Log(Log, DiagnosticCatalog.KernelTreeMissing, HelpLinkBase, ProjectFile ?? "", 0, 0,
                $"KernelDir '{KernelDirectory}' is not a kernel build tree (no Makefile): point it at the kernel's " +
                "build output or its headers " +
                "package (e.g. /lib/modules/<version>/build)");
            return false;
        }
        // kbuild would stop with make's "Error 127" and no name: say which compiler is missing and how to get it.
        if (OnPath(CrossCompilePrefix + "gcc") is null)
        {
            DiagnosticLogging.Log(Log, DiagnosticCatalog.CompilerNotFound, HelpLinkBase, ProjectFile ?? "", 0, 0,
                $"the compiler '{CrossCompilePrefix}gcc' that kbuild runs is not on PATH; " +
                    ToolchainAdvice.Install(CrossCompilePrefix));
            return false;
        }
        if (!string.IsNullOrEmpty(CompilerRoute) && Path.IsPathRooted(CompilerRoute) && File.Exists(CompilerRoute)
            && !NativeStep.TryMakeExecutable(CompilerRoute, out string? why))
            Log.LogMessage(MessageImportance.Low, "{0} cannot be made executable: {1}", CompilerRoute, why);
        // kbuild takes a while: say so at the verbosity people build at, and show its progress lines there too.
        Log.LogMessage(MessageImportance.High, "{0}", $"kbuild: make -C {KernelDirectory} " +
            $"M={KbuildDirectory.TrimEnd('/')} modules");
        bool ok = RunTool() && !DiagnosticLogging.HasFailed(this);
        if (!ok && ModuleFile is not null)
        {
            try { if (File.Exists(ModuleFile)) File.Delete(ModuleFile); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        }
        return ok;
    }

    protected override string GenerateCommandLineCommands()
    {
        var b = new CommandLineBuilder();
        b.AppendSwitchIfNotNull("-C ", KernelDirectory);
        b.AppendSwitch("M=" + KbuildDirectory.TrimEnd('/'));
        b.AppendSwitch("ARCH=powerpc");
        // Livepatches refer to symbols the kernel does not export; they become livepatch relocations after the build,
        // so modpost's "undefined" must not stop it. Undefined names that are not KlpSymbol items are reported below.
        b.AppendSwitch("KBUILD_MODPOST_WARN=1");
        b.AppendSwitch("CROSS_COMPILE=" + CrossCompilePrefix);
        // make hands $(CC) to the shell: the route's program is quoted there.
        if (!string.IsNullOrEmpty(CompilerRoute)) b.AppendSwitchIfNotNull("CC=",
            $"'{CompilerRoute}' {CompilerRouteArguments ?? "cc --"} {CrossCompilePrefix}gcc");
        b.AppendSwitchIfNotNull("KCFLAGS=", KCFlags + " -fdiagnostics-column-unit=byte -fdiagnostics-color=never");
        b.AppendSwitch("modules");
        return b.ToString();
    }

    /// <summary>A failure that printed no diagnostic we recognise still gets our code, not MSB6006.</summary>
    /// <remarks>
    /// make's own error lines are shown in the message (at default verbosity make's output is not shown at all, so
    /// "see above" would point at nothing); without any, its last lines are.
    /// </remarks>
    protected override bool HandleTaskExecutionErrors()
    {
        if (!Log.HasLoggedErrors)
        {
            string shown = _buildErrors.Count > 0
                ? "make reported: " + string.Join(" | ", _buildErrors.Take(5))
                : _recent.Count > 0 ? "its last lines: " + string.Join(" | ", _recent) : "it printed nothing";
            DiagnosticLogging.Log(Log, DiagnosticCatalog.KbuildFailed, HelpLinkBase, ProjectFile ?? "", 0, 0,
                $"kbuild (make modules) exited with code {ExitCode}; {shown}");
        }
        return false;
    }

    protected override void LogEventsFromTextOutput(string line, MessageImportance importance)
    {
        string kbuild = Path.GetFullPath(KbuildDirectory).TrimEnd('/') + "/";
        string source = Path.GetFullPath(SourceDirectory).TrimEnd('/') + "/";
        string Map(string path) =>
            path.StartsWith(kbuild, StringComparison.Ordinal) ? source + path[kbuild.Length..] : path;
        if (GccOutput.TryLog(Log, BuildEngine, line, ProjectFile ?? "", HelpLinkBase, Map)) return;
        if (BuildError().IsMatch(line)) _buildErrors.Add(line.Trim());
        _recent.Enqueue(line.Trim());
        if (_recent.Count > 8) _recent.Dequeue();
        if (Progress().IsMatch(line))
        {
            Log.LogMessage(MessageImportance.High, "{0}", line);
            return;
        }
        var undefined = ModpostUndefined().Match(line);
        if (undefined.Success && !KlpSymbols.Contains(undefined.Groups["sym"].Value))
        {
            string symbol = undefined.Groups["sym"].Value;
            DiagnosticLogging.Log(Log, DiagnosticCatalog.SymbolNotExported, HelpLinkBase, ProjectFile ?? "", 0, 0,
                $"'{symbol}' is not exported by the kernel in KernelDir, so the module loader will not resolve it; " +
                "if it is a kernel symbol, " +
                $"declare <KlpSymbol Include=\"{symbol}\" />");
            return;
        }
        Log.LogMessage(importance, "{0}", line);
    }
}
