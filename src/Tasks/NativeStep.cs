using System.ComponentModel;
using System.Diagnostics;
using System.Text;
using Microsoft.Build.Framework;
using PpcLivepatch.Steps;

namespace PpcLivepatch.Build.Tasks;

/// <summary>
/// Runs build steps in the native <c>ppc-livepatch serve</c> the package ships: started once per build in each
/// MSBuild node (registered with the engine, which disposes it when the build ends), it answers one request per step,
/// so neither the JIT nor a process start is paid per step. A tool that cannot be started returns null (the task runs
/// the step in process instead); a tool that fails during a step is an internal error, never silently retried.
/// </summary>
internal sealed class NativeStep : IDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _stderr = new();
    private bool _disposed;

    internal int ProcessId => _process.Id;

    private NativeStep(Process process)
    {
        _process = process;
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (_stderr) { if (_stderr.Length < 8192) _stderr.AppendLine(e.Data); }
        };
        process.BeginErrorReadLine();
    }

    public static StepResult? Run(LivepatchObjectTask task, string toolPath, StepRequest stepRequest)
    {
        var objects = stepRequest.Objects;
        string request = StepProtocol.WriteRequest(stepRequest);

        var engine = task.BuildEngine as IBuildEngine4;
        string key = "PpcLivepatch.NativeStep|" + toolPath;
        var server = engine?.GetRegisteredTaskObject(key, RegisteredTaskObjectLifetime.Build) as NativeStep;
        if (server is null || server._process.HasExited)
        {
            if (server is not null)
            {
                engine!.UnregisterTaskObject(key, RegisteredTaskObjectLifetime.Build);
                server.Dispose();
            }
            server = Start(task, toolPath);
            if (server is null) return null;
            engine?.RegisterTaskObject(key, server, RegisteredTaskObjectLifetime.Build, allowEarlyCollection: false);
        }
        try
        {
            lock (server)
            {
                string failure;
                if (server.TrySend(request, out string? response))
                {
                    if (StepProtocol.TryRead(response!, out var result, out string? error)) return result;
                    failure = error!;   // the server answered that the step could not run; it serves on
                }
                else
                {
                    engine?.UnregisterTaskObject(key, RegisteredTaskObjectLifetime.Build);
                    server.Dispose();
                    string stderr = server.Stderr();
                    failure = "it ended part way" + (stderr.Length > 0 ? $": {stderr}" : "");
                }
                task.LogInternalError($"{toolPath} failed during the step ({failure}); please report it with the " +
                    "object file");
                foreach (var o in objects) StepFiles.DeleteIfExists(o.Output);
                return new StepResult([]);
            }
        }
        finally
        {
            if (engine is null) server.Dispose();   // no engine to keep it for the next step
        }
    }

    private static NativeStep? Start(LivepatchObjectTask task, string toolPath)
    {
        if (!File.Exists(toolPath))
        {
            task.LogDetail($"{toolPath} not found; running the step in process");
            return null;
        }
        if (!TryMakeExecutable(toolPath, out string? why))
        {
            task.LogDetail($"{toolPath} is not executable ({why}); running the step in process");
            return null;
        }
        var start = new ProcessStartInfo(toolPath)
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            StandardOutputEncoding = new UTF8Encoding(false),
            StandardInputEncoding = new UTF8Encoding(false),
        };
        start.ArgumentList.Add("serve");
        NativeStep server;
        try
        {
            server = new NativeStep(Process.Start(start)!);
        }
        catch (Win32Exception e)
        {
            task.LogDetail($"{toolPath} could not be started ({e.Message}); running the step in process");
            return null;
        }
        // A binary that cannot run here (an older C library than it was linked against) ends before its first line.
        string? first = null;
        try { first = server._process.StandardOutput.ReadLine(); } catch (IOException) { }
        if (first == StepProtocol.ReadyLine) return server;
        server.Dispose();
        string stderr = server.Stderr();
        task.LogNote($"{toolPath} did not start ({(stderr.Length > 0 ? stderr : first ?? "no output")}); running the " +
            "step in process");
        return null;
    }

    private bool TrySend(string request, out string? response)
    {
        response = null;
        try
        {
            _process.StandardInput.Write(request);
            _process.StandardInput.Flush();
            var text = new StringBuilder();
            while (_process.StandardOutput.ReadLine() is { } line)
            {
                text.Append(line).Append('\n');
                if (StepProtocol.IsClosingLine(line))
                {
                    response = text.ToString();
                    return true;
                }
            }
            response = text.ToString();   // the tool ended part way
            return false;
        }
        catch (IOException)
        {
            return false;
        }
    }

    private string Stderr()
    {
        lock (_stderr) return _stderr.ToString().Trim();
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        try
        {
            _process.StandardInput.Close();   // the server's cue to end
            if (!_process.WaitForExit(1000)) _process.Kill();
            _process.WaitForExit();   // and its stderr read to the end
        }
        catch (Exception e) when (e is IOException or InvalidOperationException or Win32Exception) { }
        _process.Dispose();
    }

    /// <summary>NuGet may not keep file modes when it extracts a package, so the first build sets the execute
    /// bits.</summary>
    internal static bool TryMakeExecutable(string path, out string? why)
    {
        why = null;
        if (OperatingSystem.IsWindows()) { why = "not a Linux host"; return false; }
        try
        {
            var mode = File.GetUnixFileMode(path);
            const UnixFileMode execute =
                UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute;
            if ((mode & UnixFileMode.UserExecute) == 0) File.SetUnixFileMode(path, mode | execute);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            why = e.Message;
            return false;
        }
    }
}
