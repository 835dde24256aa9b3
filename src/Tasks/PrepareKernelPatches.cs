using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
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
/// lines keep their numbers), diffed (<see cref="ObjectDiff"/>, unbound; a module's unit against the module's symbols,
/// as its own klp_object), and the module's klp registration generated. Writes a manifest of what it made, which
/// <see cref="ReadKernelPatchManifest"/> turns back into items when MSBuild skips this step as up to date.
/// </summary>
public sealed partial class PrepareKernelPatches : Microsoft.Build.Utilities.Task
{
    [Required] public ITaskItem[] Patches { get; set; } = [];
    [Required] public string KernelDirectory { get; set; } = "";
    public string KernelSource { get; set; } = "";
    [Required] public string WorkDirectory { get; set; } = "";
    /// <summary>The SDK's headers for patch authors (kpatch-macros.h): on the include path of the patched
    /// copies.</summary>
    public string IncludeDirectory { get; set; } = "";
    [Required] public string Manifest { get; set; } = "";
    public string? HelpLinkBase { get; set; }

    private sealed record Unit(KbuildUnit Kbuild, string PatchPath, IReadOnlyList<FilePatch> Files);

    public override bool Execute()
    {
        try
        {
            return Prepare();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A kernel file that cannot be read, a work directory that cannot be written: said, not thrown.
            DiagnosticLogging.Log(Log, Diagnostic.Create(DiagnosticCatalog.UnreadableFile, KernelDirectory,
                $"preparing the kernel patches failed: {e.Message}"), HelpLinkBase);
            return false;
        }
    }

    private bool Prepare()
    {
        // A manifest names a finished preparation: none while this one runs, so a failed run is retried.
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(Manifest))!);
        File.Delete(Manifest);
        string build = Path.GetFullPath(KernelDirectory);
        string source = string.IsNullOrEmpty(KernelSource) ? Path.Combine(build, "source") : KernelSource;
        if (!Directory.Exists(source)) source = build;
        string realSource = Directory.ResolveLinkTarget(source, true)?.FullName ?? Path.GetFullPath(source);
        var vmlinux = LoadSymbols(File.Exists(Path.Combine(build, "vmlinux")) ? Path.Combine(build, "vmlinux")
            : Path.Combine(build, "System.map"), "vmlinux");
        if (vmlinux is null) return false;

        var kbuildUnits = new KbuildUnits(build, source);
        var units = new List<Unit>();
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
            foreach (var u in kbuildUnits.For(files.Select(f => f.Path), patchPath, found))
            {
                // Each unit is compiled from one patch's copy: two patches of one file would each drop the other's.
                if (units.FirstOrDefault(x => x.Kbuild.Object == u.Object) is { } first)
                    found.Add(Diagnostic.Create(DiagnosticCatalog.PatchDoesNotApply, patchPath,
                        $"{Path.GetFileName(first.PatchPath)} and {Path.GetFileName(patchPath)} both change " +
                            $"{u.Object}'s sources: put the changes to one file in one KernelPatch"));
                else units.Add(new Unit(u, patchPath, files));
            }
            foreach (var d in found) DiagnosticLogging.Log(Log, d, HelpLinkBase);
        }
        if (Log.HasLoggedErrors) return false;
        if (units.Count == 0)
        {
            DiagnosticLogging.Log(Log, Diagnostic.Create(DiagnosticCatalog.DiffNoFunctionChanged,
                Patches[0].GetMetadata("FullPath"), "the patches change no file this kernel's configuration builds"),
                HelpLinkBase);
            return false;
        }

        var objects = new List<string>();
        var bindings = new Dictionary<(string, string), KernelBinding>();
        var replacements = new List<FunctionReplacement>();
        var callbacks = new List<(KlpCallback Callback, string PatchPath)>();
        var moduleSymbols = new Dictionary<string, KernelSymbols?>(StringComparer.Ordinal);
        for (int i = 0; i < units.Count; i++)
        {
            var unit = units[i];
            string? module = unit.Kbuild.Module;
            KernelSymbols? symbols = vmlinux;
            if (module is not null && !moduleSymbols.TryGetValue(module, out symbols))
                symbols = moduleSymbols[module] = ModuleSymbols(kbuildUnits, module, unit);
            if (symbols is null) continue;
            var result = PrepareUnit(unit, $"{i + 1} of {units.Count}", build, realSource,
                new DiffOptions(module ?? "vmlinux", symbols, Bind: false, Kernel: module is null ? null : vmlinux));
            if (result is null) continue;
            objects.Add(result.Value.Object);
            foreach (var b in result.Value.Report.Bindings) bindings[(b.Object, b.Name)] = b;
            replacements.AddRange(result.Value.Report.Replacements);
            callbacks.AddRange(result.Value.Report.Callbacks.Select(c => (c, unit.PatchPath)));
        }
        foreach (var twice in callbacks.GroupBy(c => (c.Callback.Object, c.Callback.Kind)).Where(g => g.Count() > 1))
            DiagnosticLogging.Log(Log, Diagnostic.Create(DiagnosticCatalog.DiffPatchAuthorRecord,
                twice.First().PatchPath, $"the patches register {twice.Count()} {twice.Key.Kind} callbacks for " +
                    $"{twice.Key.Object}: a klp_object has one of each kind"), HelpLinkBase);
        if (Log.HasLoggedErrors) return false;
        if (replacements.Count == 0 && callbacks.Count == 0)
        {
            DiagnosticLogging.Log(Log, Diagnostic.Create(DiagnosticCatalog.DiffNoFunctionChanged,
                Patches[0].GetMetadata("FullPath"), "the patches change no function the kernel builds"), HelpLinkBase);
            return false;
        }
        string registration = Path.Combine(WorkDirectory, "livepatch_registration.c");
        AtomicFile.WriteAllBytes(registration, Encoding.UTF8.GetBytes(
            KlpRegistration.Generate(replacements, callbacks.Select(c => c.Callback))));
        var manifest = new StringBuilder();
        manifest.Append("registration\t").Append(registration).Append('\n');
        foreach (string o in objects) manifest.Append("object\t").Append(o).Append('\n');
        foreach (var b in bindings.Values.Where(b => b.Klp).OrderBy(b => b.Object, StringComparer.Ordinal)
                     .ThenBy(b => b.Name, StringComparer.Ordinal))
            manifest.Append(CultureInfo.InvariantCulture, $"klp-symbol\t{b.Name}\t{b.Object}\t{b.Position}\n");
        AtomicFile.WriteAllBytes(Manifest, Encoding.UTF8.GetBytes(manifest.ToString()));
        return true;
    }

    private KernelSymbols? LoadSymbols(string path, string objectName)
    {
        var symbols = KernelSymbols.Load(path, objectName, out var error);
        if (symbols is null) DiagnosticLogging.Log(Log, error!, HelpLinkBase);
        return symbols;
    }

    /// <summary>A module's unit binds against the module as the build tree built it.</summary>
    private KernelSymbols? ModuleSymbols(KbuildUnits kbuildUnits, string module, Unit unit)
    {
        if (kbuildUnits.ModuleFile(module) is { } ko) return LoadSymbols(ko, module);
        DiagnosticLogging.Log(Log, Diagnostic.Create(DiagnosticCatalog.UnreadableFile, unit.PatchPath,
            $"cannot read the symbols of module {module}, which {unit.Kbuild.Object} belongs to: {KernelDirectory} " +
                "has not built it (it is not in modules.order); build the kernel's modules first"), HelpLinkBase);
        return null;
    }

    private (string Object, DiffReport Report)? PrepareUnit(Unit unit, string progress, string build, string source,
        DiffOptions options)
    {
        var kbuild = unit.Kbuild;
        string relative = Path.GetRelativePath(source, kbuild.Source);
        string dir = Path.Combine(WorkDirectory, Path.ChangeExtension(relative, null).Replace('/', '_'));
        string originalCopy = Path.Combine(dir, "orig", Path.GetFileName(relative));
        string patchedCopy = Path.Combine(dir, "patched", Path.GetFileName(relative));
        // The patched files this unit reads: its own source, and each changed header its kbuild record lists.
        var placed = new Dictionary<string, List<(PatchHunk Hunk, int Line)>>(StringComparer.Ordinal);
        string? Patch(string path, string original)
        {
            string result = original;
            var where = placed[path] = [];
            foreach (var file in unit.Files.Where(f => f.Path == path))
            {
                if (UnifiedPatch.Apply(unit.PatchPath, file, result, path, where, out var error) is not { } applied)
                {
                    DiagnosticLogging.Log(Log, error!, HelpLinkBase);
                    return null;
                }
                result = applied;
            }
            return result;
        }
        string text = File.ReadAllText(kbuild.Source);
        if (Patch(relative, text) is not { } patched) return null;
        var headerCopies = new Dictionary<string, (string Header, string Text)>(StringComparer.Ordinal);
        var firstIncludes = new List<string>();
        foreach (string header in unit.Files.Select(f => f.Path).Distinct().Where(p => p.EndsWith(".h",
                     StringComparison.Ordinal)).Order(StringComparer.Ordinal))
        {
            string absolute = Path.GetFullPath(Path.Combine(source, header));
            if (!kbuild.Dependencies.Contains(absolute, StringComparer.Ordinal)) continue;
            if (Patch(header, File.ReadAllText(absolute)) is not { } patchedHeader) return null;
            // Named as the original is, so __FILE__, the line tables and gcc's messages say the header's own path.
            string copyText = $"#line 1 \"{header}\"\n" + patchedHeader;
            var placements = kbuild.HeaderPlacements(absolute, build);
            if (placements.Count == 0)
            {
                DiagnosticLogging.Log(Log, Diagnostic.Create(DiagnosticCatalog.PatchDoesNotApply, unit.PatchPath,
                    $"{header} changes, and {kbuild.Object} reads it, but not from its own directory or a -I " +
                        "directory of its command line, so the compile cannot be given the patched copy"),
                    HelpLinkBase);
                return null;
            }
            foreach (var (root, under) in placements)
            {
                string copyRoot = Path.Combine(dir, root is null ? "patched" : "include" + firstIncludes.Count);
                if (root is not null) firstIncludes.Add(copyRoot);
                headerCopies[Path.Combine(copyRoot, under)] = (header, copyText);
            }
        }
        string originalObject = Path.Combine(dir, "orig.o"), patchedObject = Path.Combine(dir, "patched.o");
        string what = options.ObjectName == "vmlinux" ? "" : $" (module {options.ObjectName})";
        (string, int, string)? Original(string file, int line) =>
            file == relative || file == originalCopy ? (kbuild.Source, line, "") : null;
        if (!Compile(kbuild, text, originalCopy, originalObject, source, build, "", Original,
                $"  {relative}{what}, {progress}: compiling the original")) return null;
        // gcc's messages about the patched files land on the .patch line the code came from.
        (string, int, string)? Patched(string file, int line)
        {
            string? path = file == patchedCopy ? relative : headerCopies.TryGetValue(file, out var h) ? h.Header
                : placed.ContainsKey(file) ? file : null;
            return path is null ? null
                : (unit.PatchPath, UnifiedPatch.PatchLineOf(placed[path], line) ?? 0, $" ({path}:{line})");
        }
        string include = string.IsNullOrEmpty(IncludeDirectory) ? "" : $" -I{Path.GetFullPath(IncludeDirectory)}";
        // A header copy an earlier build placed would be found before the original: only this build's may stay.
        if (Directory.Exists(dir))
            foreach (string stale in Directory.GetDirectories(dir).Where(d => Path.GetFileName(d) == "patched"
                         || Path.GetFileName(d).StartsWith("include", StringComparison.Ordinal)))
                Directory.Delete(stale, recursive: true);
        foreach (var (copy, (_, copyText)) in headerCopies)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(copy)!);
            File.WriteAllText(copy, copyText);
        }
        string headersKey = string.Concat(headerCopies.OrderBy(c => c.Key, StringComparer.Ordinal)
            .Select(c => $"{c.Key}\n{c.Value.Text}\n"));
        if (!Compile(kbuild, patched, patchedCopy, patchedObject, source, build, include, Patched,
                $"  {relative}{what}, {progress}: compiling the patched copy", firstIncludes, headersKey)) return null;
        if (!ElfImage.TryLoad(originalObject, out var before, out var error1))
        {
            DiagnosticLogging.Log(Log, error1!, HelpLinkBase);
            return null;
        }
        if (!ElfImage.TryLoad(patchedObject, out var after, out var error2))
        {
            DiagnosticLogging.Log(Log, error2!, HelpLinkBase);
            return null;
        }
        var result = ObjectDiff.Run(before!, after!, options);
        // A unit the patch reaches through a header may not change at all; the patch as a whole must change something.
        if (result.Report.Diagnostics.Count > 0
            && result.Report.Diagnostics.All(d => d.Code == DiagnosticCatalog.DiffNoFunctionChanged))
        {
            Log.LogMessage(MessageImportance.High, $"  {relative}{what}: no function changed");
            return null;
        }
        // A finding lands on the .patch line the change came from; the C line (from the -g line tables) goes along.
        foreach (var d in result.Report.Diagnostics)
        {
            int? line = d.Source is { } s && placed.TryGetValue(s.File, out var hunks)
                ? UnifiedPatch.PatchLineOf(hunks, s.Line)
                : d.Datum is { } datum ? placed.Values.Select(p => UnifiedPatch.PatchLineOfName(p, datum))
                    .FirstOrDefault(l => l is not null) : null;
            string where = d.Source is { } c ? $" ({c.File}:{c.Line})" : "";
            DiagnosticLogging.Log(Log, d with { ObjectPath = unit.PatchPath, Message = d.Message + where,
                Source = new SourceLocation(unit.PatchPath, line ?? 0, 0) }, HelpLinkBase);
        }
        if (result.Output is null) return null;
        string diffed = Path.Combine(dir, Path.GetFileNameWithoutExtension(relative) + "_livepatch.o");
        AtomicFile.WriteAllBytes(diffed, result.Output);
        var report = result.Report;
        Log.LogMessage(MessageImportance.High, $"  {relative}{what}: " + string.Join(", ",
            new[] { (report.Changed, "changed"), (report.New, "new"),
                    (report.Callbacks.Select(c => c.Kind + " callback").ToList(), "registered") }
                .Where(x => x.Item1.Count > 0).Select(x => $"{string.Join(", ", x.Item1)} {x.Item2}")));
        return (diffed, report);
    }

    /// <summary>Compiles one copy; skipped when the object was built from the same text by the same command (the
    /// original is compiled once, until the kernel tree or the SDK's command changes).</summary>
    private bool Compile(KbuildUnit unit, string text, string copy, string output, string source, string build,
        string extraOptions, Func<string, int, (string, int, string)?> locate, string progress,
        IReadOnlyList<string>? firstIncludes = null, string headersKey = "")
    {
        // -g: the line tables place the diff's findings on the .patch's lines.
        string command = unit.LivepatchCompileCommand(copy, output, source, build, debugInfo: true,
            firstIncludes: firstIncludes) + extraOptions + $" && ./scripts/recordmcount '{output}'";
        string stamp = output + ".key";
        string key = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(command + "\n" + text + "\n" +
            headersKey)));
        if (File.Exists(output) && File.Exists(stamp) && File.ReadAllText(stamp) == key)
        {
            Log.LogMessage(MessageImportance.Normal, $"{progress.Replace(": compiling", ":")} is up to date");
            return true;
        }
        Log.LogMessage(MessageImportance.High, progress);
        Directory.CreateDirectory(Path.GetDirectoryName(copy)!);
        File.Delete(stamp);
        File.WriteAllText(copy, text);
        var psi = new ProcessStartInfo("bash") { WorkingDirectory = build, RedirectStandardOutput = true,
            RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(command);
        using var process = Process.Start(psi)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        string stderr = process.StandardError.ReadToEnd();
        process.WaitForExit();
        foreach (string line in AtMacroUse((stderr + stdout.Result).Split('\n')))
            if (line.Length > 0 && !GccOutput.TryLog(Log, BuildEngine, line, copy, HelpLinkBase, null,
                    (file, ln) => locate(file, ln) is var (f, l, n) ? (f, l, n) : null))
                Log.LogMessage(MessageImportance.Normal, line);
        if (process.ExitCode == 0)
        {
            AtomicFile.WriteAllBytes(stamp, Encoding.UTF8.GetBytes(key));
            return true;
        }
        File.Delete(output);
        if (!Log.HasLoggedErrors)
            DiagnosticLogging.Log(Log, Diagnostic.Create(DiagnosticCatalog.CompilerError, copy,
                $"compiling {unit.Object} for the livepatch failed (exit {process.ExitCode})"), HelpLinkBase);
        return false;
    }

    /// <summary>An error inside one of the SDK's macros (kpatch-macros.h refusing KPATCH_FORCE_UNSAFE, say) is the
    /// patch author's, at the line that used the macro: gcc names that line in the "in expansion of macro" notes
    /// after the error, and the error is moved there.</summary>
    private IEnumerable<string> AtMacroUse(string[] lines)
    {
        string headers = string.IsNullOrEmpty(IncludeDirectory) ? "\0" : Path.GetFullPath(IncludeDirectory);
        for (int i = 0; i < lines.Length; i++)
        {
            var error = GccLocation().Match(lines[i]);
            if (!error.Success || !error.Groups["file"].Value.StartsWith(headers, StringComparison.Ordinal)
                || error.Groups["kind"].Value == "note")
            {
                yield return lines[i];
                continue;
            }
            string? use = null;
            for (int j = i + 1; j < lines.Length; j++)
            {
                var next = GccLocation().Match(lines[j]);
                if (!next.Success) continue;
                if (next.Groups["kind"].Value != "note") break;
                if (lines[j].Contains("in expansion of macro", StringComparison.Ordinal)
                    && !next.Groups["file"].Value.StartsWith(headers, StringComparison.Ordinal))
                    use = next.Groups["location"].Value;
            }
            yield return use is null ? lines[i] : use + lines[i][error.Groups["location"].Length..];
        }
    }

    [System.Text.RegularExpressions.GeneratedRegex(
        @"^(?<location>(?<file>[^:]+):\d+:\d+): (?<kind>fatal error|error|warning|note):")]
    private static partial System.Text.RegularExpressions.Regex GccLocation();
}

/// <summary>The items <see cref="PrepareKernelPatches"/> made, read back from its manifest — on every build, so a
/// build that skips the preparation as up to date links the same objects and binds the same symbols.</summary>
public sealed class ReadKernelPatchManifest : Microsoft.Build.Utilities.Task
{
    [Required] public string Manifest { get; set; } = "";

    [Output] public ITaskItem[] Objects { get; private set; } = [];
    [Output] public ITaskItem[] KlpSymbols { get; private set; } = [];
    [Output] public string Registration { get; private set; } = "";

    public override bool Execute()
    {
        var objects = new List<ITaskItem>();
        var symbols = new List<ITaskItem>();
        string[] lines;
        try
        {
            lines = File.ReadAllLines(Manifest);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            DiagnosticLogging.Log(Log, Diagnostic.Create(DiagnosticCatalog.UnreadableFile, Manifest,
                $"cannot read '{Manifest}': {e.Message}"), null);
            return false;
        }
        foreach (string line in lines)
        {
            string[] f = line.Split('\t');
            if (f.Length != (f[0] == "klp-symbol" ? 4 : 2))
            {
                DiagnosticLogging.Log(Log, Diagnostic.Create(DiagnosticCatalog.UnreadableFile, Manifest,
                    $"'{Manifest}' is not a manifest PrepareKernelPatches wrote (line '{line}'): delete it and build " +
                        "again"), null);
                return false;
            }
            switch (f[0])
            {
                case "registration":
                    Registration = f[1];
                    break;
                case "object":
                    objects.Add(new TaskItem(f[1]));
                    break;
                case "klp-symbol":
                    var symbol = new TaskItem(f[1]);
                    symbol.SetMetadata("Object", f[2]);
                    symbol.SetMetadata("Position", f[3]);
                    symbols.Add(symbol);
                    break;
            }
        }
        Objects = [.. objects];
        KlpSymbols = [.. symbols];
        return true;
    }
}
