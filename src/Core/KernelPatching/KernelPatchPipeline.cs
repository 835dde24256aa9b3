using System.Text;
using PpcLivepatch.Diagnostics;
using PpcLivepatch.Diff;
using PpcLivepatch.Elf;
using PpcLivepatch.Kbuild;

namespace PpcLivepatch.KernelPatching;

/// <summary>
/// From kernel source patches to what a livepatch module is linked from, as named stages: <b>plan</b> (patches →
/// the translation units kbuild built from the files they change), <b>stage</b> (private copies, the patched ones with
/// <c>#line</c> markers), <b>compile</b> each unit twice with the kernel's own command, <b>diff</b> the two objects
/// (<see cref="ObjectDiff"/>, unbound; a module's unit against the module's symbols, as its own klp_object),
/// <b>place</b> every finding on the <c>.patch</c> line it came from, and <b>register</b>: the klp registration (C)
/// and the manifest. The SDK's PrepareKernelPatches and <c>ppc-livepatch kernel-patch</c> both run it.
/// </summary>
public sealed class KernelPatchPipeline(KernelPatchJob job, IKernelPatchLog log)
{
    private bool _failed;
    private string _vmlinuxPath = "";
    private VmlinuxFtraceSites? _ftraceSites;
    private bool _ftraceSitesRead;

    /// <summary>Runs every stage; the manifest (also written to <paramref name="manifestPath"/>), or null after the
    /// findings that say why not. No manifest is left from an earlier run while this one works or after it
    /// failed.</summary>
    public KernelPatchManifest? Run(string manifestPath)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(manifestPath))!);
        File.Delete(manifestPath);
        string build = Path.GetFullPath(job.KernelDirectory);
        string source = string.IsNullOrEmpty(job.KernelSource) ? Path.Combine(build, "source") : job.KernelSource;
        if (!Directory.Exists(source)) source = build;
        string realSource = Directory.ResolveLinkTarget(source, true)?.FullName ?? Path.GetFullPath(source);
        _vmlinuxPath = Path.Combine(build, "vmlinux");
        var vmlinux = LoadSymbols(File.Exists(_vmlinuxPath) ? _vmlinuxPath : Path.Combine(build, "System.map"),
            "vmlinux");
        if (vmlinux is null) return null;

        // Plan
        var kbuildUnits = new KbuildUnits(build, source);
        var found = new List<Diagnostic>();
        var units = KernelPatchPlan.Make(job.Patches, kbuildUnits, found);
        ReportAll(found);
        if (_failed) return null;
        if (units.Count == 0)
        {
            Report(Diagnostic.Create(DiagnosticCatalog.PatchBuildsNothing, job.Patches[0].Path,
                "the patches change no file this kernel's configuration builds"));
            return null;
        }

        // Stage, compile, diff and place, unit by unit
        var compiler = new UnitCompiler(build, realSource, job.IncludeDirectory, log);
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
            var result = BuildUnit(unit, compiler, $"{i + 1} of {units.Count}", build, realSource,
                new DiffOptions(module ?? "vmlinux", symbols, Bind: false, Kernel: module is null ? null : vmlinux,
                    FtraceSites: module is null ? FtraceSites() : null));
            if (result is null) continue;
            objects.Add(result.Value.Object);
            foreach (var b in result.Value.Report.Bindings) bindings[(b.Object, b.Name)] = b;
            replacements.AddRange(result.Value.Report.Replacements);
            callbacks.AddRange(result.Value.Report.Callbacks.Select(c => (c, unit.PatchPath)));
        }

        // Register
        foreach (var twice in callbacks.GroupBy(c => (c.Callback.Object, c.Callback.Kind)).Where(g => g.Count() > 1))
            Report(Diagnostic.Create(DiagnosticCatalog.DiffPatchAuthorRecord, twice.First().PatchPath,
                $"the patches register {twice.Count()} {twice.Key.Kind} callbacks for {twice.Key.Object}: a " +
                    "klp_object has one of each kind"));
        if (_failed) return null;
        if (replacements.Count == 0 && callbacks.Count == 0)
        {
            Report(Diagnostic.Create(DiagnosticCatalog.DiffNoFunctionChanged, job.Patches[0].Path,
                "the patches change no function the kernel builds"));
            return null;
        }
        string registration = Path.Combine(job.WorkDirectory, "livepatch_registration.c");
        AtomicFile.WriteAllBytes(registration, Encoding.UTF8.GetBytes(
            KlpRegistration.Generate(replacements, callbacks.Select(c => c.Callback))));
        var manifest = new KernelPatchManifest(registration, objects, bindings.Values.Where(b => b.Klp)
            .OrderBy(b => b.Object, StringComparer.Ordinal).ThenBy(b => b.Name, StringComparer.Ordinal).ToList());
        AtomicFile.WriteAllBytes(manifestPath, manifest.ToJson());
        return manifest;
    }

    /// <summary>vmlinux's ftrace records, read once; none from a tree that has only a System.map.</summary>
    private VmlinuxFtraceSites? FtraceSites()
    {
        if (_ftraceSitesRead) return _ftraceSites;
        _ftraceSitesRead = true;
        if (!File.Exists(_vmlinuxPath)) return null;
        // A livepatch kernel always has ftrace records (CONFIG_LIVEPATCH needs dynamic ftrace): a vmlinux without
        // readable ones cannot show where the patch will attach, and nothing is built on a guess.
        _ftraceSites = VmlinuxFtraceSites.Load(_vmlinuxPath, out string? why);
        if (_ftraceSites is null)
            Report(Diagnostic.Create(DiagnosticCatalog.UnreadableFile, _vmlinuxPath,
                $"cannot read where the kernel attaches a livepatch: {why}"));
        return _ftraceSites;
    }

    private void Report(Diagnostic d)
    {
        if (d.Severity == Severity.Error) _failed = true;
        log.Report(d);
    }

    private void ReportAll(IEnumerable<Diagnostic> diagnostics)
    {
        foreach (var d in diagnostics) Report(d);
    }

    private KernelSymbols? LoadSymbols(string path, string objectName)
    {
        var symbols = KernelSymbols.Load(path, objectName, out var error);
        if (symbols is null) Report(error!);
        return symbols;
    }

    /// <summary>A module's unit binds against the module as the build tree built it.</summary>
    private KernelSymbols? ModuleSymbols(KbuildUnits kbuildUnits, string module, PlannedUnit unit)
    {
        if (kbuildUnits.ModuleFile(module) is { } ko) return LoadSymbols(ko, module);
        Report(Diagnostic.Create(DiagnosticCatalog.KernelModuleNotBuilt, unit.PatchPath,
            $"cannot read the symbols of module {module}, which {unit.Kbuild.Object} belongs to: " +
                $"{job.KernelDirectory} has not built it (it is not in modules.order); build the kernel's modules " +
                "first"));
        return null;
    }

    private (string Object, DiffReport Report)? BuildUnit(PlannedUnit unit, UnitCompiler compiler, string progress,
        string build, string source, DiffOptions options)
    {
        var kbuild = unit.Kbuild;
        var staged = new List<Diagnostic>();
        var copies = UnitCopies.Make(unit, job.WorkDirectory, source, build, staged);
        ReportAll(staged);
        if (copies is null) return null;
        string relative = copies.Relative;
        string originalObject = Path.Combine(copies.Directory, "orig.o");
        string patchedObject = Path.Combine(copies.Directory, "patched.o");
        string what = options.ObjectName == "vmlinux" ? "" : $" (module {options.ObjectName})";
        if (!compiler.Compile(kbuild, copies.OriginalText, copies.OriginalCopy, originalObject,
                (file, line) => copies.LocateOriginal(file, line, kbuild.Source),
                $"  {relative}{what}, {progress}: compiling the original", patched: false))
            return Failed();
        copies.PlaceHeaders();
        if (!compiler.Compile(kbuild, copies.PatchedText, copies.PatchedCopy, patchedObject,
                (file, line) => copies.LocatePatched(file, line, unit.PatchPath),
                $"  {relative}{what}, {progress}: compiling the patched copy", patched: true, copies.FirstIncludes,
                copies.HeadersKey))
            return Failed();
        if (!ElfImage.TryLoad(originalObject, out var before, out var error1))
        {
            Report(error1!);
            return null;
        }
        if (!ElfImage.TryLoad(patchedObject, out var after, out var error2))
        {
            Report(error2!);
            return null;
        }
        var result = ObjectDiff.Run(before!, after!, options);
        // A unit the patch reaches through a header may not change at all; the patch as a whole must change something.
        if (result.Report.Diagnostics.Count > 0
            && result.Report.Diagnostics.All(d => d.Code == DiagnosticCatalog.DiffNoFunctionChanged))
        {
            log.Progress($"  {relative}{what}: no function changed", prominent: true);
            return null;
        }
        foreach (var d in result.Report.Diagnostics) Report(AtPatchLine(d, unit.PatchPath, copies.Placed));
        if (result.Output is null) return null;
        string diffed = Path.Combine(copies.Directory, Path.GetFileNameWithoutExtension(relative) + "_livepatch.o");
        AtomicFile.WriteAllBytes(diffed, result.Output);
        var report = result.Report;
        log.Progress($"  {relative}{what}: " + string.Join(", ",
            new[] { (report.Changed, "changed"), (report.New, "new"),
                    (report.Callbacks.Select(c => c.Kind + " callback").ToList(), "registered") }
                .Where(x => x.Item1.Count > 0).Select(x => $"{string.Join(", ", x.Item1)} {x.Item2}")),
            prominent: true);
        return (diffed, report);

        (string, DiffReport)? Failed()
        {
            _failed = true;
            return null;
        }
    }

    /// <summary>A finding lands on the .patch line the change came from; the C line (from the -g line tables) goes
    /// along in the message.</summary>
    private static Diagnostic AtPatchLine(Diagnostic d, string patchPath,
        IReadOnlyDictionary<string, List<(PatchHunk Hunk, int Line)>> placed)
    {
        var place = d.Source is { } s && placed.TryGetValue(s.File, out var hunks)
            ? UnifiedPatch.PatchPlaceOf(hunks, s.Line)
            : d.Datum is { } datum ? placed.Values.Select(p => UnifiedPatch.PatchLineOfName(p, datum))
                .FirstOrDefault(l => l is not null) is { } l ? (patchPath, l) : null : null;
        // In a series, the patch that wrote the line.
        if (place is { Patch.Length: > 0 } p) patchPath = p.Patch;
        string where = d.Source is { } c ? $" ({c.File}:{c.Line})" : "";
        return d with { ObjectPath = patchPath, Message = d.Message + where,
            Source = new SourceLocation(patchPath, place?.Line ?? 0, 0) };
    }
}
