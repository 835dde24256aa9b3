using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;
using PpcLivepatch.Diagnostics;

namespace PpcLivepatch.Build.Tasks;

/// <summary>
/// The shape every task of the SDK has (after dotnet/sdk's TaskBase): <see cref="ExecuteCore"/> does the work over
/// the Core libraries and logs coded diagnostics; a file that cannot be read or written escaping it becomes one coded
/// error at <see cref="FailureFile"/>, anything else PLP0002 — never MSBuild's MSB4018 with a stack trace — and a task
/// that fails that way removes its outputs (<see cref="RemoveOutputs"/>), so no half-made file looks up to date.
/// </summary>
public abstract class PpcLivepatchTask : Microsoft.Build.Utilities.Task
{
    /// <summary>Prefix of the help links in the error list (the SDK points it at the docs shipped in the
    /// package).</summary>
    public string? HelpLinkBase { get; set; }

    public sealed override bool Execute() => TaskFailures.Guard(this, Log, HelpLinkBase, ExecuteCore);

    protected abstract bool ExecuteCore();

    /// <summary>Where an I/O failure is shown: the file the task works on, else the project.</summary>
    protected internal virtual string FailureFile => BuildEngine?.ProjectFileOfTaskNode ?? "";

    /// <summary>What the task was doing, for the failure's message.</summary>
    protected internal virtual string FailureWhat => GetType().Name;

    /// <summary>Deletes what a failed run may have left half made.</summary>
    protected internal virtual void RemoveOutputs() { }
}

/// <summary><see cref="PpcLivepatchTask"/>'s shape for the tasks that run a program (<see cref="ToolTask"/>): the
/// program runs from <see cref="ExecuteCore"/> through <see cref="RunTool"/>.</summary>
public abstract class PpcLivepatchToolTask : ToolTask
{
    public string? HelpLinkBase { get; set; }

    public sealed override bool Execute() => TaskFailures.Guard(this, Log, HelpLinkBase, ExecuteCore);

    protected abstract bool ExecuteCore();

    /// <summary>Runs the program (ToolTask's own execution).</summary>
    protected bool RunTool() => base.Execute();

    protected internal virtual string FailureFile => BuildEngine?.ProjectFileOfTaskNode ?? "";

    protected internal virtual string FailureWhat => GetType().Name;

    protected internal virtual void RemoveOutputs() { }
}

internal static class TaskFailures
{
    public static bool Guard(ITask task, TaskLoggingHelper log, string? helpLinkBase, Func<bool> work)
    {
        var (file, what, remove) = task switch
        {
            PpcLivepatchTask t => (t.FailureFile, t.FailureWhat, (Action)t.RemoveOutputs),
            PpcLivepatchToolTask t => (t.FailureFile, t.FailureWhat, t.RemoveOutputs),
            _ => ("", task.GetType().Name, () => { }),
        };
        try
        {
            return work();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A kernel file that cannot be read, a directory that cannot be written: said, not thrown.
            DiagnosticLogging.Log(log, Diagnostic.Create(DiagnosticCatalog.UnreadableFile, file,
                $"{what} failed: {e.Message}"), helpLinkBase);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // Expected failures are coded diagnostics already; this is a bug, reported as one coded line.
            DiagnosticLogging.Log(log, DiagnosticCatalog.InternalError, helpLinkBase,
                task.BuildEngine?.ProjectFileOfTaskNode ?? "", 0, 0, $"internal error in {task.GetType().Name} " +
                    $"({e.GetType().Name}: {e.Message}); please report it with the object file");
        }
        try { remove(); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        return false;
    }
}
