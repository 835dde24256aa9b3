using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;
using PpcLivepatch.Diagnostics;
using PpcLivepatch.Kbuild;

namespace PpcLivepatch.Build.Tasks;

/// <summary> Kbuild mode's cross-compiler step: <c>make -C KernelDir M=KbuildDir ARCH=powerpc CROSS_COMPILE=… KCFLAGS=…
/// modules</c>. The sources sit in <see cref="KbuildDirectory"/> as links to the user's files; gcc's diagnostics are
/// mapped back to those files and logged with the same codes as in the plain mode. </summary>
public sealed class KbuildMake : PpcLivepatchToolTask
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

    /// <summary>The module's name and its kbuild objects (<c>x.o</c>; <c>x.o_shipped</c> ones too), for the Kbuild
    /// file this step writes (only when its text changes, so kbuild's own up-to-date checks hold).</summary>
    [Required] public string ModuleName { get; set; } = "";

    public string[] KbuildObjects { get; set; } = [];

    /// <summary>The directories of the user's sources, on the compile's include path.</summary>
    public string[] IncludeDirectories { get; set; } = [];

    protected override string ToolName => "make";

    /// <summary>make's last lines, for a failure that printed nothing we recognise.</summary>
    private readonly Queue<string> _recent = new();
    private readonly List<string> _buildErrors = [];

    protected override MessageImportance StandardOutputLoggingImportance => MessageImportance.Normal;
    protected override MessageImportance StandardErrorLoggingImportance => MessageImportance.Normal;

    protected override string GenerateFullPathToTool() => Toolchain.Find(ToolName) ?? ToolName;

    protected override bool ExecuteCore()
    {
        if (!KernelTree.IsBuildTree(KernelDirectory))
        {
            DiagnosticLogging.Log(Log, DiagnosticCatalog.KernelTreeMissing, HelpLinkBase, ProjectFile ?? "", 0, 0,
                $"KernelDir '{KernelDirectory}' is not a kernel build tree (no Makefile): point it at the kernel's " +
                "build output or its headers " +
                "package (e.g. /lib/modules/<version>/build)");
            return false;
        }
        // kbuild would stop with make's "Error 127" and no name: say which compiler is missing and how to get it.
        if (Toolchain.Find(CrossCompilePrefix + "gcc") is null)
        {
            DiagnosticLogging.Log(Log, DiagnosticCatalog.CompilerNotFound, HelpLinkBase, ProjectFile ?? "", 0, 0,
                $"the compiler '{CrossCompilePrefix}gcc' that kbuild runs is not on PATH; " +
                    Toolchain.InstallAdvice(CrossCompilePrefix));
            return false;
        }
        if (!string.IsNullOrEmpty(CompilerRoute) && Path.IsPathRooted(CompilerRoute) && File.Exists(CompilerRoute)
            && !NativeStep.TryMakeExecutable(CompilerRoute, out string? why))
            Log.LogMessage(MessageImportance.Low, "{0} cannot be made executable: {1}", CompilerRoute, why);
        KbuildModule.WriteKbuildFile(KbuildDirectory, ModuleName, KbuildObjects, IncludeDirectories,
            SourceDirectory.TrimEnd('/'));
        _linkerScript = WriteLinkerScript();
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

    private string? _linkerScript;

    /// <summary>The KlpSymbols' separate-sections script in the kbuild directory (rewritten only when its text
    /// changes, so kbuild's own checks hold), or null when there is none.</summary>
    private string? WriteLinkerScript()
    {
        string path = Path.Combine(KbuildDirectory, "klp-symbols.lds");
        if (KbuildModule.SeparateSectionsScript(KlpSymbols) is not { } text)
        {
            if (File.Exists(path)) File.Delete(path);
            return null;
        }
        if (!File.Exists(path) || File.ReadAllText(path) != text)
            PpcLivepatch.Elf.AtomicFile.WriteAllBytes(path, System.Text.Encoding.UTF8.GetBytes(text));
        return path;
    }

    protected override string GenerateCommandLineCommands()
    {
        // make hands $(CC) to the shell: the route's program is quoted there.
        string? route = string.IsNullOrEmpty(CompilerRoute) ? null
            : $"'{CompilerRoute}' {CompilerRouteArguments ?? "cc --"}";
        var b = new CommandLineBuilder();
        foreach (string argument in KbuildModule.MakeArguments(KernelDirectory, KbuildDirectory, CrossCompilePrefix,
                     route, KCFlags, _linkerScript))
            b.AppendSwitchIfNotNull("", argument);
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
        var kind = KbuildModule.Classify(line, out string? symbol);
        if (kind == KbuildLine.BuildError) _buildErrors.Add(line.Trim());
        _recent.Enqueue(line.Trim());
        if (_recent.Count > 8) _recent.Dequeue();
        if (kind == KbuildLine.Progress)
        {
            Log.LogMessage(MessageImportance.High, "{0}", line);
            return;
        }
        if (kind == KbuildLine.Undefined && !KbuildModule.IsLivepatchSymbol(symbol!, KlpSymbols))
        {
            DiagnosticLogging.Log(Log, DiagnosticCatalog.SymbolNotExported, HelpLinkBase, ProjectFile ?? "", 0, 0,
                $"'{symbol}' is not exported by the kernel in KernelDir, so the module loader will not resolve it; " +
                "if it is a kernel symbol, " +
                $"declare <KlpSymbol Include=\"{symbol}\" />");
            return;
        }
        Log.LogMessage(importance, "{0}", line);
    }
}
