using Microsoft.Build.Framework;
using PpcLivepatch.Analysis;
using PpcLivepatch.Diagnostics;
using PpcLivepatch.Steps;

namespace PpcLivepatch.Build.Tasks;

/// <summary>
/// Common shape of the object tasks: one build step (<see cref="PpcLivepatch.Steps"/>) over the items of
/// <see cref="Objects"/>, each read from its path and written atomically to its <c>OutputFile</c> metadata. The step
/// runs in the ahead-of-time compiled tool at <see cref="ToolPath"/> when there is one — a build's first patch then
/// does not wait for the JIT — and in this process otherwise; both report the same events. A failed step leaves no
/// outputs, so the next incremental build does not mistake them for up to date.
/// </summary>
public abstract class LivepatchObjectTask : PpcLivepatchTask
{
    protected internal override void RemoveOutputs()
    {
        foreach (var o in StepObjects()) StepFiles.DeleteIfExists(o.Output);
    }

    [Required]
    public ITaskItem[] Objects { get; set; } = [];

    public bool KernelAcceptsLdToc { get; set; }

    public bool Pcrel { get; set; }

    public string? ModuleName { get; set; }

    /// <summary><c>true</c> or <c>false</c>: whether the target kernel has CONFIG_LIVEPATCH; empty when not
    /// known.</summary>
    public string? KernelHasLivepatch { get; set; }

    private bool? HasLivepatch => bool.TryParse(KernelHasLivepatch, out bool value) ? value : null;

    /// <summary>The target kernel's ftrace model (<see cref="FtraceSites.NameOf"/>); empty when not known. Checked by
    /// CheckLivepatchProperties.</summary>
    public string? KernelFtrace { get; set; }

    /// <summary>
    /// Written when the step succeeds without a warning, removed otherwise; the SDK lists it among the step's outputs.
    /// A step that warned therefore runs again in the next build and shows its warnings again — so that a build with
    /// <c>-warnaserror</c> (which MSBuild applies to the event, without telling the task) fails every time, not only
    /// the first.
    /// </summary>
    public string? CleanStamp { get; set; }

    /// <summary>The native <c>ppc-livepatch</c> to run the step in; empty runs it in this process.</summary>
    public string? ToolPath { get; set; }

    protected LoaderOptions LoaderOptions => StepProperties.Loader(KernelAcceptsLdToc, Pcrel, ModuleName, HasLivepatch,
        FtraceSites.TryParse(KernelFtrace, out var ftrace) ? ftrace : FtraceSiteKind.Unknown);

    /// <summary>The step's options from the task's parameters, or null after logging why they cannot be used.</summary>
    protected abstract StepOptions? Options();

    protected virtual void StepFinished(StepResult result) { }

    /// <summary>Where the user should look for a diagnostic, when that is not the object (a task's own
    /// items).</summary>
    protected virtual Diagnostic Locate(Diagnostic d) => d;

    protected sealed override bool ExecuteCore()
    {
        if (Options() is not { } options) return false;
        // The reports' help links point where the build's events do, wherever the step runs.
        options = options with
        {
            HelpLinkBase = string.IsNullOrEmpty(HelpLinkBase) ? DiagnosticCatalog.HelpLinkBase : HelpLinkBase,
        };
        var objects = StepObjects();
        var request = new StepRequest(Environment.CurrentDirectory, options, objects);
        var result = (string.IsNullOrEmpty(ToolPath) ? null : NativeStep.Run(this, ToolPath, request))
            ?? StepRunner.Run(options, objects);
        foreach (var e in result.Events)
        {
            if (e.Diagnostic is { } d) DiagnosticLogging.Log(Log, Locate(d), HelpLinkBase);
            else Log.LogMessage(e.Prominent ? MessageImportance.High : MessageImportance.Normal, "{0}", e.Message);
        }
        StepFinished(result);
        bool warned = result.Events.Any(e => e.Diagnostic?.Severity == Severity.Warning);
        if (result.Succeeded && !DiagnosticLogging.HasFailed(this))
        {
            if (!string.IsNullOrEmpty(CleanStamp))
            {
                if (warned) StepFiles.DeleteIfExists(CleanStamp);
                else TouchStamp(CleanStamp);
            }
            return true;
        }
        foreach (var o in objects) StepFiles.DeleteIfExists(o.Output);
        if (!string.IsNullOrEmpty(CleanStamp)) StepFiles.DeleteIfExists(CleanStamp);
        return false;
    }

    private List<StepObject> StepObjects() => Objects.Select(i => new StepObject(i.ItemSpec, OutputOf(i))).ToList();

    private static string OutputOf(ITaskItem item)
    {
        string output = item.GetMetadata("OutputFile");
        return string.IsNullOrEmpty(output) ? item.ItemSpec : output;
    }

    /// <summary>A stamp that cannot be written only costs a rerun of the step.</summary>
    private static void TouchStamp(string path)
    {
        try { File.WriteAllBytes(path, []); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    internal void LogInternalError(string message) =>
        LogTaskError(DiagnosticCatalog.InternalError, message);

    protected void LogTaskError(string code, string message) =>
        DiagnosticLogging.Log(Log, code, HelpLinkBase, BuildEngine?.ProjectFileOfTaskNode ?? "", 0, 0, message);

    internal void LogDetail(string message) => Log.LogMessage(MessageImportance.Low, "{0}", message);

    internal void LogNote(string message) => Log.LogMessage(MessageImportance.Normal, "{0}", message);
}
