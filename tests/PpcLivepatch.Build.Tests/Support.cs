using System.Collections;
using System.Diagnostics;
using System.Reflection;
using Microsoft.Build.Framework;

[assembly: Parallelize(Scope = ExecutionScope.ClassLevel)]
// The tests drive Linux tools (cross binutils, qemu, the native ppc-livepatch).
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]

namespace PpcLivepatch.Build.Tests;

internal static class Repo
{
    public static string Root { get; } = typeof(Repo).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
        .Single(a => a.Key == "RepositoryRoot").Value!;

    public static string Fixture(string name) => Path.Combine(Root, "tests", "fixtures", "elf", name);

    public static string NewTempDir() => PpcLivepatch.Tests.Shared.ScratchDirectories.New();
}

/// <summary>
/// Records what tasks log, as MSBuild would pass it to loggers (code, file, line, column, help link), and keeps
/// registered task objects until it is disposed, as MSBuild keeps them until the build ends.
/// </summary>
internal sealed class FakeBuildEngine : IBuildEngine4, IDisposable
{
    private readonly Dictionary<object, object> _registered = [];

    public List<BuildErrorEventArgs> Errors { get; } = [];
    public List<BuildWarningEventArgs> Warnings { get; } = [];
    public List<BuildMessageEventArgs> Messages { get; } = [];

    public void LogErrorEvent(BuildErrorEventArgs e) => Errors.Add(e);
    public void LogWarningEvent(BuildWarningEventArgs e) => Warnings.Add(e);
    public void LogMessageEvent(BuildMessageEventArgs e) => Messages.Add(e);
    public void LogCustomEvent(CustomBuildEventArgs e) { }

    public bool ContinueOnError => false;
    public int LineNumberOfTaskNode => 0;
    public int ColumnNumberOfTaskNode => 0;
    public string ProjectFileOfTaskNode => "/fake/project.csproj";
    public bool IsRunningMultipleNodes => false;

    public bool BuildProjectFile(string projectFileName, string[] targetNames, IDictionary globalProperties,
        IDictionary targetOutputs) => throw new NotSupportedException();
    public bool BuildProjectFile(string projectFileName, string[] targetNames, IDictionary globalProperties,
        IDictionary targetOutputs, string toolsVersion) => throw new NotSupportedException();
    public bool BuildProjectFilesInParallel(string[] projectFileNames, string[] targetNames,
        IDictionary[] globalProperties, IDictionary[] targetOutputsPerProject, string[] toolsVersion,
            bool useResultsCache, bool unloadProjectsOnCompletion) => throw new NotSupportedException();
    public BuildEngineResult BuildProjectFilesInParallel(string[] projectFileNames, string[] targetNames,
        IDictionary[] globalProperties, IList<string>[] removeGlobalProperties, string[] toolsVersion,
            bool returnTargetOutputs) => throw new NotSupportedException();
    public void Yield() { }
    public void Reacquire() { }

    public void RegisterTaskObject(object key, object obj, RegisteredTaskObjectLifetime lifetime,
        bool allowEarlyCollection) => _registered[key] = obj;
    public object? GetRegisteredTaskObject(object key, RegisteredTaskObjectLifetime lifetime) =>
        _registered.GetValueOrDefault(key);
    public object? UnregisterTaskObject(object key,
        RegisteredTaskObjectLifetime lifetime) { _registered.Remove(key, out var o); return o; }
    public IReadOnlyCollection<object> Registered => _registered.Values;

    public void Dispose()
    {
        foreach (var o in _registered.Values.OfType<IDisposable>()) o.Dispose();
        _registered.Clear();
    }
}

internal static class Tool
{
    public sealed record Result(int ExitCode, string Output);

    /// <summary>
    /// Runs a command with stdout and stderr merged. Variables that `dotnet test` sets for its own MSBuild are
    /// removed, so a child `dotnet build` is an ordinary one.
    /// </summary>
    public static Result Run(string workingDirectory, string tool, params string[] args) =>
        RunWith(null, workingDirectory, tool, args);

    /// <param name="environment">Variables to set for the command, on top of the cleaned ones.</param>
    public static Result RunWith(IReadOnlyDictionary<string, string>? environment, string workingDirectory,
        string tool, params string[] args)
    {
        var psi = new ProcessStartInfo(tool) { WorkingDirectory = workingDirectory, RedirectStandardOutput = true,
            RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (string key in psi.Environment.Keys.ToList())
            if (key.StartsWith("MSBuild", StringComparison.OrdinalIgnoreCase)
                || key is "DOTNET_HOST_PATH" or "VSTEST_HOST_DEBUG"
                || key.StartsWith("TESTINGPLATFORM", StringComparison.OrdinalIgnoreCase))
                psi.Environment.Remove(key);
        psi.Environment["MSBUILDDISABLENODEREUSE"] = "1";
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        psi.Environment["DOTNET_NOLOGO"] = "1";
        foreach (var (key, value) in environment ?? new Dictionary<string, string>()) psi.Environment[key] = value;
        Process p;
        try { p = Process.Start(psi)!; }
        catch (System.ComponentModel.Win32Exception) { Assert.Fail($"'{tool}' is not installed: run " +
            "eng/install-prerequisites.sh"); throw; }
        var output = new System.Text.StringBuilder();
        p.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        if (!p.WaitForExit(300_000)) { p.Kill(true); Assert.Fail($"{tool} {string.Join(' ', args)} did not finish in " +
            "300 s"); }
        p.WaitForExit();
        return new Result(p.ExitCode, output.ToString());
    }
}

/// <summary>An item as MSBuild hands it to a task after evaluating a project file: with its defining project, which a
/// plain <see cref="Microsoft.Build.Utilities.TaskItem"/> cannot be given.</summary>
internal sealed class DefinedItem(string itemSpec, string definingProject) : ITaskItem
{
    private readonly Microsoft.Build.Utilities.TaskItem _item = new(itemSpec);

    public string ItemSpec { get => _item.ItemSpec; set => _item.ItemSpec = value; }
    public System.Collections.ICollection MetadataNames => _item.MetadataNames;
    public int MetadataCount => _item.MetadataCount;
    public string GetMetadata(string metadataName) =>
        metadataName == "DefiningProjectFullPath" ? definingProject : _item.GetMetadata(metadataName);
    public void SetMetadata(string metadataName, string metadataValue) =>
        _item.SetMetadata(metadataName, metadataValue);
    public void RemoveMetadata(string metadataName) => _item.RemoveMetadata(metadataName);
    public void CopyMetadataTo(ITaskItem destinationItem) => _item.CopyMetadataTo(destinationItem);
    public System.Collections.IDictionary CloneCustomMetadata() => _item.CloneCustomMetadata();
}
