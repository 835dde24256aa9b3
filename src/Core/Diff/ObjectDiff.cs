using PpcLivepatch.Analysis;
using PpcLivepatch.Diagnostics;
using PpcLivepatch.Dwarf;
using PpcLivepatch.Elf;
using PpcLivepatch.Ppc64;
using static PpcLivepatch.Elf.ElfConstants;

namespace PpcLivepatch.Diff;

/// <param name="ObjectName">The klp object the original belongs to: <c>vmlinux</c> or a module's name.</param>
/// <param name="Symbols">Where positions and exports come from; null: the original object itself.</param>
/// <param name="Bind">False: references to the kernel stay plain undefined symbols and the report lists how each is to
/// be bound — for a link step that binds them afterwards, since <c>ld -r</c> does not keep <c>.klp.rela</c> sections
/// (the SDK links, then its Convert step binds them).</param>
/// <param name="Kernel">For a module's unit (<paramref name="Symbols"/> then being the module's): vmlinux's symbols,
/// which bind the names the module does not define.</param>
/// <param name="FtraceSites">For a vmlinux unit: the running kernel's ftrace records and kallsyms ranges, against
/// which each replaced function's attachment is checked (PLP5011); null: not checked (a System.map has none).</param>
public sealed record DiffOptions(string ObjectName = "vmlinux", KernelSymbols? Symbols = null, bool Bind = true,
    KernelSymbols? Kernel = null, VmlinuxFtraceSites? FtraceSites = null);

/// <summary>A reference the livepatch module leaves to the running kernel.</summary>
/// <param name="Klp">True: bound through a <c>.klp.sym</c> symbol; false: a plain undefined (exported)
/// symbol.</param>
public sealed record KernelBinding(string Name, bool Klp, string Object, ulong Position)
{
    /// <summary>Left undefined without knowing that the kernel exports it (a static key, when the symbol source is
    /// the original object): the module's load fails by name if it does not.</summary>
    public bool ExportAssumed { get; init; }

    public string SymbolName => Klp ? $"{KlpNames.SymPrefix}{Object}.{Name},{Position}" : Name;
}

public sealed record DiffReport(string OriginalPath, string PatchedPath, IReadOnlyList<string> Changed,
    IReadOnlyList<string> New, IReadOnlyList<string> NewData, IReadOnlyList<string> LineNumbersOnly,
    IReadOnlyList<KernelBinding> Bindings, IReadOnlyList<Diagnostic> Diagnostics)
{
    public bool Succeeded => Diagnostics.All(d => d.Severity != Severity.Error);

    /// <summary>The klp_func entries the livepatch registers: one per changed function.</summary>
    public IReadOnlyList<FunctionReplacement> Replacements { get; init; } = [];

    /// <summary>The klp callbacks the patch registers (kpatch-macros.h), in the order the kernel calls
    /// them.</summary>
    public IReadOnlyList<KlpCallback> Callbacks { get; init; } = [];

    /// <summary>Where each changed or new function starts in the patched source, when the object has line
    /// tables.</summary>
    public IReadOnlyDictionary<string, SourceLocation> Sources { get; init; } =
        new Dictionary<string, SourceLocation>();
}

/// <summary>The report, and the livepatch object when nothing was refused.</summary>
public sealed record DiffResult(DiffReport Report, byte[]? Output);

/// <summary>
/// Diffs an object compiled twice — before and after a source patch, with <c>-ffunction-sections
/// -fdata-sections</c> — into the object a livepatch module is built from: the changed and new functions and the new
/// data, with every reference to what stays in the kernel bound to it (undefined when exported, a livepatch symbol
/// otherwise). What a livepatch cannot express (changed data, <c>__init</c> code, an untraceable function, a
/// reference that cannot reach the kernel) is refused with its own code.
/// </summary>
public static class ObjectDiff
{
    /// <summary>The diff as its passes, in order: each may refuse with its own codes; the object is built only when
    /// none did.</summary>
    public static DiffResult Run(ElfImage original, ElfImage patched, DiffOptions options)
    {
        var diff = new DiffRun(original, patched, options);
        if (!diff.CheckComparable()) return diff.Refused();
        diff.Inventory();
        diff.Compare();
        diff.CheckStaticLocals();
        diff.IncludeColdParts();
        diff.CheckIncludedCode();
        diff.CheckCorrelation();
        diff.CheckSomethingChanged();
        return diff.HasErrors ? diff.Refused() : diff.BuildObject();
    }

    /// <summary>One diff's state, passed from pass to pass.</summary>
    private sealed class DiffRun(ElfImage original, ElfImage patched, DiffOptions options)
    {
        private readonly List<Diagnostic> _diagnostics = [];
        private ObjectInventory _before = null!, _after = null!;
        private SymbolCorrelation _correlation = null!;
        private PatchAuthorRecords _records = null!;
        private readonly List<ObjectEntity> _changed = [], _added = [], _addedData = [];
        private readonly List<string> _lineOnly = [];
        private HashSet<ObjectEntity> _included = [];
        private LineTable? _lines;

        public bool HasErrors => _diagnostics.Any(d => d.Severity == Severity.Error);

        /// <summary>The C line of a function's entry, from the patched object's line tables (when it was built with
        /// -g).</summary>
        private SourceLocation? SourceOf(string? function)
        {
            if (function is null || _after is null || !_after.ByName.TryGetValue(function, out var e)) return null;
            _lines ??= LineTable.ReadOrEmpty(patched, out _);
            return _lines.Lookup(e.Section.Index, e.Start);
        }

        private void Refuse(string code, string message, string? function = null, string? fix = null,
            string? datum = null) =>
            _diagnostics.Add(new Diagnostic(code, message, patched.Path, Function: function,
                Source: SourceOf(function), Fix: fix) { Datum = datum });

        /// <summary>Objects of one ABI, and one the diff reads (ELFv2): PLP5009.</summary>
        public bool CheckComparable()
        {
            if (original.Abi != patched.Abi || original.IsLittleEndian != patched.IsLittleEndian)
                Refuse(DiagnosticCatalog.DiffObjectsDoNotMatch, "the objects are for different ABIs " +
                    $"({AbiFacts.Name(original.Abi)} and {AbiFacts.Name(patched.Abi)})");
            if (patched.Abi != PpcAbi.ElfV2)
                Refuse(DiagnosticCatalog.DiffObjectsDoNotMatch, "only ELFv2 (ppc64le) objects can be diffed so far: " +
                        "ELFv1 function descriptors (.opd) are not followed",
                    fix: "Build the livepatch for a ppc64le kernel, or write the module by hand with KlpSymbol items.");
            return _diagnostics.Count == 0;
        }

        /// <summary>Inventory and correlation: each object's functions and data, the patched object's symbols matched
        /// to the original's, and the patch author's records (kpatch-macros.h; PLP5010).</summary>
        public void Inventory()
        {
            _before = new ObjectInventory(original);
            _after = new ObjectInventory(patched);
            _correlation = new SymbolCorrelation(_before, _after);
            _records = PatchAuthorRecords.Read(_after, (message, function) =>
                Refuse(DiagnosticCatalog.DiffPatchAuthorRecord, message, function,
                    "Use the macros as kpatch-macros.h defines them: one callback of each kind per patched file."));
        }

        /// <summary>Compare: each entity of the patched object is the same, changed (a function to replace), new, or
        /// only its line numbers moved; changed data (PLP5003) and new or changed init/exit code or data (PLP5002)
        /// are refused.</summary>
        public void Compare()
        {
            var comparer = new EntityComparer(_before, _after, _correlation);
            foreach (var e in _after.Entities.Where(e => ReferenceEquals(_after.ByName[e.Name], e)))
            {
                // The macros' records are read above; what they tell the diff to leave out is left out.
                if (_records.Records.Contains(e) || _records.Ignores(e)) continue;
                string? originalName = _correlation.Original(e.Name);
                if (originalName is null)
                {
                    if (DataSections.IsInitOrExit(e.Section))
                        Refuse(DiagnosticCatalog.DiffInitChanged,
                            $"the patch adds {e.Name} to {e.Section.Name}: init code and initcalls run at boot, " +
                                "never from a livepatch", function: e.IsFunction ? e.Name : null,
                            fix: "Do the work from the patched functions instead, or from the livepatch module's own " +
                                "init (a klp callback).");
                    else (e.IsFunction ? _added : _addedData).Add(e);
                    continue;
                }
                var o = _before.ByName[originalName];
                switch (comparer.Compare(o, e))
                {
                    case Change.Same:
                        break;
                    case Change.LineNumbersOnly:
                        _lineOnly.Add(e.Name);
                        break;
                    // A record of a kernel table (a dynamic-debug descriptor: its line number and format) is the
                    // table's metadata about the code, not state the code keeps: the changed code uses the kernel's
                    // record, which dynamic debug already controls.
                    case Change.Changed when !e.IsFunction
                        && KernelTables.Find(o.Section.Name) is { Entries: TableEntries.Carried }:
                        _lineOnly.Add(e.Name);
                        break;
                    case Change.Changed when e.IsFunction:
                        _changed.Add(e);
                        break;
                    case Change.Changed when DataSections.IsInitOrExit(o.Section):
                        Refuse(DiagnosticCatalog.DiffInitChanged,
                            $"{originalName} ({o.Section.Name}) changed: init and exit data is gone or never used " +
                                "once the kernel runs, so a livepatch cannot change it", datum: originalName);
                        break;
                    case Change.Changed:
                        Refuse(DiagnosticCatalog.DiffDataChanged,
                            $"data object {originalName} ({o.Section.Name}) changed " +
                                (o.Size != e.Size ? $"size ({o.Size} -> {e.Size} bytes)" : "its initial value") +
                                ": a livepatch replaces functions, the kernel's copy of the data stays as it is",
                            fix: "Keep the data as it was; hold new state in a shadow variable " +
                                "(klp_shadow_get_or_alloc), or change the code that uses the data instead.",
                            datum: originalName);
                        break;
                }
            }
            // Aliases (sys_newuname and __se_sys_newuname: one function, two names) are one replacement, not two
            // attached to one address; the name without a leading "__" is the one kept.
            foreach (var names in _changed.GroupBy(e => (e.Section.Index, e.Start)).Where(g => g.Count() > 1).ToList())
                foreach (var alias in names.OrderBy(e => e.Name.StartsWith("__", StringComparison.Ordinal))
                             .ThenBy(e => e.Symbol.Index).Skip(1))
                    _changed.Remove(alias);
        }

        /// <summary>
        /// A changed function that stops using a static local of the original and starts using a new one would start
        /// that state again from its initial value, while the kernel's copy holds what the running system has counted
        /// (sequence numbers handed out, say): refused (PLP5012), as kpatch refuses it. Keeping the original's static,
        /// or holding new state in a shadow variable, is not.
        /// </summary>
        public void CheckStaticLocals()
        {
            var added = _addedData.Where(e => StaticLocals.CName(e) is not null).ToHashSet();
            foreach (var f in _changed)
            {
                if (_correlation.Original(f.Name) is not { } originalName) continue;
                // By C name, as the function's source names them: GCC's numbering of a static the patch kept may
                // change with the code around it (and the correlation may not pair it: PLP5005 says so).
                var now = StaticLocals.UsedBy(_after, f);
                var before = StaticLocals.UsedBy(_before, _before.ByName[originalName]);
                var namesNow = now.Select(StaticLocals.CName).ToHashSet(StringComparer.Ordinal);
                var namesBefore = before.Select(StaticLocals.CName).ToHashSet(StringComparer.Ordinal);
                var fresh = now.Where(e => added.Contains(e) && !namesBefore.Contains(StaticLocals.CName(e))).ToList();
                var dropped = before.Where(e => !namesNow.Contains(StaticLocals.CName(e))).ToList();
                if (fresh.Count == 0 || dropped.Count == 0) continue;
                Refuse(DiagnosticCatalog.DiffStaticLocalReplaced,
                    $"{f.Name} no longer uses the static local{(dropped.Count > 1 ? "s" : "")} " +
                        $"{string.Join(", ", dropped.Select(e => e.Name))} of the running kernel and uses the new " +
                        $"{string.Join(", ", fresh.Select(e => e.Name))} instead: the new state would start from its " +
                        "initial value while the kernel's holds what the system has counted so far",
                    function: f.Name,
                    fix: "Keep using the original static (the livepatch binds it to the kernel's copy), or keep new " +
                        "state in a shadow variable (klp_shadow_get_or_alloc) initialised from the old.");
            }
        }

        /// <summary>Include: the changed and new functions, each with its <c>.cold</c> part (the same function's cold
        /// path, which jumps back into its parent) or its parent.</summary>
        public void IncludeColdParts()
        {
            _included = _changed.Concat(_added).ToHashSet();
            foreach (var f in _included.ToList())
            {
                foreach (var part in _after.Entities.Where(p => p.IsFunction && IsColdPartOf(p.Name, f.Name)))
                    _included.Add(part);
                if (ColdParent(f.Name) is { } parent && _after.ByName.TryGetValue(parent, out var p))
                    _included.Add(p);
            }
        }

        /// <summary>What a livepatch can replace: not init/exit code (PLP5002), only a function with an ftrace site
        /// at its entry (PLP5004).</summary>
        public void CheckIncludedCode()
        {
            var ftrace = FtraceModel.Of(_before);
            foreach (var f in _included)
            {
                if (DataSections.IsInitOrExit(f.Section))
                    Refuse(DiagnosticCatalog.DiffInitChanged,
                        $"{f.Name} is in {f.Section.Name}: init and exit code runs before a livepatch can apply (or " +
                            "is freed), so changing it has no effect", function: f.Name,
                        fix: "Leave __init/__exit functions out of the patch; a fix that must run at boot needs a " +
                            "reboot.");
                else if (_correlation.Original(f.Name) is { } o && !ftrace.HasSite(_before.ByName[o]))
                {
                    if (ftrace.CallsMcountLate(_before.ByName[o]))
                        Refuse(DiagnosticCatalog.DiffFunctionNotPatchable,
                            $"{o} calls _mcount after its prologue, not at its entry: the object was built with " +
                                "plain -pg (clang, which has no -mprofile-kernel, or gcc without it), and ppc64's " +
                                "livepatch core redirects only -mprofile-kernel's entry call", function: f.Name,
                            fix: "Build with gcc and the kernel's own flags (-mprofile-kernel), as the kernel the " +
                                "livepatch is for was built.");
                    else
                        Refuse(DiagnosticCatalog.DiffFunctionNotPatchable,
                            $"{o} has no ftrace call site ({ftrace.SiteDescription}): the livepatch core redirects " +
                                "a function through ftrace, so this one cannot be replaced", function: f.Name,
                            fix: "Remove notrace from the function, or patch its callers instead.");
                }
            }
        }

        /// <summary>Statics the correlation could not tell apart are not guessed (PLP5005).</summary>
        public void CheckCorrelation()
        {
            foreach (var name in _correlation.Ambiguous)
                Refuse(DiagnosticCatalog.DiffSymbolAmbiguous,
                    $"{name} could be any of several statics of the original with the same name, used by the same " +
                        "functions; it is not guessed");
        }

        /// <summary>A patch that changes no function is said (PLP5001), with the line-number-only changes.</summary>
        public void CheckSomethingChanged()
        {
            if (_changed.Count == 0 && _added.Count == 0 && _addedData.Count == 0 && _diagnostics.Count == 0)
                Refuse(DiagnosticCatalog.DiffNoFunctionChanged,
                    "no function changed" + (_lineOnly.Count > 0
                        ? " (only line numbers passed to might_sleep() and the like: " +
                            $"{string.Join(", ", _lineOnly)})"
                        : ""),
                    fix: "Check that the patch applies to this file and that both objects were built from it.");
        }

        /// <summary>Bind and write (<see cref="LivepatchObjectBuilder"/>: carried table entries, bindings, PLP5006-
        /// PLP5008), then the sibling calls the result would make (PLP3001/PLP3002 as errors).</summary>
        public DiffResult BuildObject()
        {
            var symbols = options.Symbols
                ?? KernelSymbols.FromElf(original, original.Path, wholeKernel: false, addressOrder: false);
            var callbacks = _records.Callbacks.OrderBy(c => Array.IndexOf(KlpCallback.Kinds, c.Key))
                .Select(c => (Entity: c.Value, Callback: new KlpCallback(c.Key, options.ObjectName,
                    KlpCallback.SymbolFor(c.Key, options.ObjectName)))).ToList();
            var contents = new LivepatchContents(_before, _after, _correlation,
                _included.OrderBy(e => e.Symbol.Index).ToList(), _addedData, _changed,
                callbacks.ToDictionary(c => c.Entity, c => c.Callback.Symbol));
            var build = LivepatchObjectBuilder.Build(contents, new KernelBinder(symbols, options.ObjectName,
                options.Bind, options.Kernel), _diagnostics);
            if (build is not null) _diagnostics.AddRange(SiblingCalls(build.Bytes, patched.Path));
            var sources = new Dictionary<string, SourceLocation>(StringComparer.Ordinal);
            foreach (var f in _changed.Concat(_added))
                if (SourceOf(f.Name) is { } source) sources[f.Name] = source;
            // Where the kernel will attach each replacement: its own ftrace site, or refused (PLP5011).
            if (build is not null && options.ObjectName == "vmlinux" && options.FtraceSites is { } sites)
                foreach (var r in build.Replacements)
                    if (sites.Check(r.OldName, r.Position, patched.Path, sources.GetValueOrDefault(r.OldName)) is { } d)
                        _diagnostics.Add(d);
            var report = new DiffReport(original.Path, patched.Path, Names(_changed), Names(_added),
                Names(_addedData), _lineOnly, build?.Bindings ?? [], _diagnostics)
            {
                Sources = sources, Replacements = build?.Replacements ?? [],
                Callbacks = build is null ? [] : callbacks.Select(c => c.Callback).ToList(),
            };
            return new DiffResult(report, report.Succeeded ? build?.Bytes : null);
        }

        public DiffResult Refused() =>
            new(new DiffReport(original.Path, patched.Path, [], [], [], [], [], _diagnostics), null);
    }

    /// <summary>A tail call from included code to the kernel leaves the caller with the module's r2 (PLP3001): in a
    /// livepatch that is every caller of the patched function, so here it is an error, as the SDK makes it.</summary>
    private static IEnumerable<Diagnostic> SiblingCalls(byte[] output, string path)
    {
        if (!ElfImage.TryParse(path, output, out var image, out var error)) return [error!];
        return ObjectVerifier.Verify(image!, LoaderOptions.Default).Diagnostics
            .Where(d => d.Code is DiagnosticCatalog.SiblingCallToExternal
                or DiagnosticCatalog.SiblingCallFromLocallyCalledFunction)
            .Select(d => d.Promoted() with { ObjectPath = path });
    }

    private static List<string> Names(IEnumerable<ObjectEntity> e) => e.Select(x => x.Name).ToList();

    private static bool IsColdPartOf(string name, string parent) =>
        name.StartsWith(parent + ".cold", StringComparison.Ordinal);

    private static string? ColdParent(string name)
    {
        int at = name.IndexOf(".cold", StringComparison.Ordinal);
        return at > 0 ? name[..at] : null;
    }
}
