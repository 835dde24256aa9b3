using System.Diagnostics;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;
using PpcLivepatch.Diagnostics;
using PpcLivepatch.Diff;
using PpcLivepatch.Elf;
using PpcLivepatch.Kbuild;

namespace PpcLivepatch.Build.Tasks;

/// <summary>
/// From <c>KernelPatch</c> items to what the kbuild step links: each patched translation unit compiled twice with
/// the kernel's own command line (before and after the patch, the patched copy with <c>#line</c> markers so unchanged
/// lines keep their numbers), diffed (<see cref="ObjectDiff"/>, unbound), and the module's klp registration
/// generated. Outputs the diff objects, the registration source and the <c>KlpSymbol</c> items the Convert step binds
/// after the link.
/// </summary>
public sealed class PrepareKernelPatches : Microsoft.Build.Utilities.Task
{
    [Required] public ITaskItem[] Patches { get; set; } = [];
    [Required] public string KernelDirectory { get; set; } = "";
    public string KernelSource { get; set; } = "";
    [Required] public string WorkDirectory { get; set; } = "";
    public string? HelpLinkBase { get; set; }

    [Output] public ITaskItem[] Objects { get; private set; } = [];
    [Output] public ITaskItem[] KlpSymbols { get; private set; } = [];
    [Output] public string Registration { get; private set; } = "";

    public override bool Execute()
    {
        string build = Path.GetFullPath(KernelDirectory);
        string source = string.IsNullOrEmpty(KernelSource) ? Path.Combine(build, "source") : KernelSource;
        if (!Directory.Exists(source)) source = build;
        string realSource = Directory.ResolveLinkTarget(source, true)?.FullName ?? Path.GetFullPath(source);
        string symbolsFile = File.Exists(Path.Combine(build, "vmlinux")) ? Path.Combine(build, "vmlinux")
            : Path.Combine(build, "System.map");
        var symbols = KernelSymbols.Load(symbolsFile, "vmlinux", out var symbolsError);
        if (symbols is null)
        {
            DiagnosticLogging.Log(Log, symbolsError!, HelpLinkBase);
            return false;
        }
        var units = new KbuildUnits(build, source);
        var objects = new List<ITaskItem>();
        var bindings = new Dictionary<string, KernelBinding>(StringComparer.Ordinal);
        var replacements = new List<FunctionReplacement>();
        foreach (var item in Patches)
        {
            string patchPath = item.GetMetadata("FullPath");
            string text;
            try
            {
                text = File.ReadAllText(patchPath);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                DiagnosticLogging.Log(Log, Diagnostic.Create(DiagnosticCatalog.UnreadableFile, patchPath,
                    $"cannot read '{patchPath}': {e.Message}"), HelpLinkBase);
                continue;
            }
            var files = UnifiedPatch.Parse(patchPath, text, out var parseError);
            if (files is null)
            {
                DiagnosticLogging.Log(Log, parseError!, HelpLinkBase);
                continue;
            }
            var found = new List<Diagnostic>();
            foreach (var unit in units.For(files.Select(f => f.Path), patchPath, found))
                PrepareUnit(unit, files, patchPath, build, realSource, symbols, objects, bindings, replacements);
            foreach (var d in found) DiagnosticLogging.Log(Log, d, HelpLinkBase);
        }
        if (Log.HasLoggedErrors) return false;
        if (replacements.Count == 0)
        {
            DiagnosticLogging.Log(Log, Diagnostic.Create(DiagnosticCatalog.DiffNoFunctionChanged,
                Patches[0].GetMetadata("FullPath"), "the patches change no function the kernel builds"), HelpLinkBase);
            return false;
        }
        Registration = Path.Combine(WorkDirectory, "livepatch_registration.c");
        AtomicFile.WriteAllBytes(Registration,
            System.Text.Encoding.UTF8.GetBytes(KlpRegistration.Generate(replacements)));
        Objects = [.. objects];
        KlpSymbols = bindings.Values.Where(b => b.Klp).Select(b =>
        {
            var symbol = new TaskItem(b.Name);
            symbol.SetMetadata("Object", b.Object);
            symbol.SetMetadata("Position", b.Position.ToString(System.Globalization.CultureInfo.InvariantCulture));
            return (ITaskItem)symbol;
        }).ToArray();
        return !Log.HasLoggedErrors;
    }

    private void PrepareUnit(KbuildUnit unit, IReadOnlyList<FilePatch> files, string patchPath, string build,
        string source, KernelSymbols symbols, List<ITaskItem> objects, Dictionary<string, KernelBinding> bindings,
        List<FunctionReplacement> replacements)
    {
        string relative = Path.GetRelativePath(source, unit.Source);
        string dir = Path.Combine(WorkDirectory, Path.ChangeExtension(relative, null).Replace('/', '_'));
        string originalCopy = Path.Combine(dir, "orig", Path.GetFileName(relative));
        string patchedCopy = Path.Combine(dir, "patched", Path.GetFileName(relative));
        Directory.CreateDirectory(Path.GetDirectoryName(originalCopy)!);
        Directory.CreateDirectory(Path.GetDirectoryName(patchedCopy)!);
        string text = File.ReadAllText(unit.Source);
        File.WriteAllText(originalCopy, text);
        string patched = text;
        var placed = new List<(PatchHunk Hunk, int Line)>();
        foreach (var file in files.Where(f => f.Path == relative))
        {
            if (UnifiedPatch.Apply(patchPath, file, patched, relative, placed, out var error) is not { } applied)
            {
                DiagnosticLogging.Log(Log, error!, HelpLinkBase);
                return;
            }
            patched = applied;
        }
        File.WriteAllText(patchedCopy, patched);
        string originalObject = Path.Combine(dir, "orig.o"), patchedObject = Path.Combine(dir, "patched.o");
        Log.LogMessage(MessageImportance.High, $"  {relative}: compiling the original and the patched copy");
        if (!Compile(unit, originalCopy, originalObject, source, build)
            || !Compile(unit, patchedCopy, patchedObject, source, build)) return;
        if (!ElfImage.TryLoad(originalObject, out var before, out var error1))
        {
            DiagnosticLogging.Log(Log, error1!, HelpLinkBase);
            return;
        }
        if (!ElfImage.TryLoad(patchedObject, out var after, out var error2))
        {
            DiagnosticLogging.Log(Log, error2!, HelpLinkBase);
            return;
        }
        var result = ObjectDiff.Run(before!, after!, new DiffOptions("vmlinux", symbols, Bind: false));
        // A finding lands on the .patch line the change came from; the C line (from the -g line tables) goes along.
        foreach (var d in result.Report.Diagnostics)
        {
            int? line = d.Source is { } s && s.File == relative ? UnifiedPatch.PatchLineOf(placed, s.Line) : null;
            string where = d.Source is { } c ? $" ({c.File}:{c.Line})" : "";
            DiagnosticLogging.Log(Log, d with { ObjectPath = patchPath, Message = d.Message + where,
                Source = new SourceLocation(patchPath, line ?? 0, 0) }, HelpLinkBase);
        }
        if (result.Output is null) return;
        string diffed = Path.Combine(dir, Path.GetFileNameWithoutExtension(relative) + "_livepatch.o");
        AtomicFile.WriteAllBytes(diffed, result.Output);
        objects.Add(new TaskItem(diffed));
        foreach (var b in result.Report.Bindings) bindings[b.Name] = b;
        replacements.AddRange(result.Report.Replacements);
        Log.LogMessage(MessageImportance.High, $"  {relative}: {string.Join(", ", result.Report.Changed)} changed" +
            (result.Report.New.Count > 0 ? $", {string.Join(", ", result.Report.New)} new" : ""));
    }

    private bool Compile(KbuildUnit unit, string copy, string output, string source, string build)
    {
        // -g: the line tables place the diff's findings on the .patch's lines.
        string command = unit.LivepatchCompileCommand(copy, output, source, build, debugInfo: true) +
            $" && ./scripts/recordmcount '{output}'";
        var psi = new ProcessStartInfo("bash") { WorkingDirectory = build, RedirectStandardOutput = true,
            RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(command);
        using var process = Process.Start(psi)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        string stderr = process.StandardError.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode == 0) return true;
        DiagnosticLogging.Log(Log, Diagnostic.Create(DiagnosticCatalog.CompilerError, copy,
            $"compiling {unit.Object} for the livepatch failed (exit {process.ExitCode}): " +
                $"{(stderr + stdout.Result).Trim()}"), HelpLinkBase);
        return false;
    }
}
