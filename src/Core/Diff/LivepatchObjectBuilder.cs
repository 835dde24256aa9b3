using PpcLivepatch.Analysis;
using PpcLivepatch.Diagnostics;
using PpcLivepatch.Elf;
using PpcLivepatch.Klp;
using PpcLivepatch.Ppc64;
using static PpcLivepatch.Elf.ElfConstants;

namespace PpcLivepatch.Diff;

internal sealed record BuiltObject(byte[] Bytes, IReadOnlyList<KernelBinding> Bindings,
    IReadOnlyList<FunctionReplacement> Replacements);

/// <summary>What the diff's passes chose for the livepatch object: the functions to carry (changed, new, their
/// <c>.cold</c> parts), the new data, the functions that replace the kernel's, and the patch author's callbacks with
/// the symbols they get.</summary>
internal sealed record LivepatchContents(ObjectInventory Before, ObjectInventory After, SymbolCorrelation Correlation,
    IReadOnlyList<ObjectEntity> Functions, IReadOnlyList<ObjectEntity> Data, IReadOnlyList<ObjectEntity> Replaced,
    IReadOnlyDictionary<ObjectEntity, string> Callbacks);

/// <summary>How references to what stays in the kernel are bound: against <paramref name="Symbols"/> (a module's,
/// with <paramref name="Kernel"/> for what the module does not define), as livepatch symbols of
/// <paramref name="ObjectName"/>, or left unbound for a link step (<paramref name="Bind"/> false).</summary>
internal sealed record KernelBinder(KernelSymbols Symbols, string ObjectName, bool Bind, KernelSymbols? Kernel);

/// <summary>
/// Writes the livepatch object: one section per included function and new data object, the anonymous data they
/// use (string literals, constants, the <c>.toc</c> slots they load), the records of the kernel's tables that
/// belong to them, and a symbol for everything else they reference — bound to the running kernel afterwards by
/// <see cref="KlpConverter"/>, the same code that binds <c>KlpSymbol</c> items.
/// </summary>
internal sealed class LivepatchObjectBuilder
{
    private static readonly HashSet<string> LoaderSymbols =
        new(StringComparer.Ordinal) { ".TOC.", "_mcount", "mcount" };

    private sealed class Piece(string name, ElfSection source, ulong start, ulong size, ObjectEntity? entity)
    {
        public string Name { get; } = name;
        public ElfSection Source { get; } = source;
        public ulong Start { get; } = start;
        public ulong Size { get; set; } = size;
        public ObjectEntity? Entity { get; } = entity;
        public List<byte> Bytes { get; } = [];
        /// <summary>Relocations as (offset in the piece, type, target, addend).</summary>
        public List<(ulong Offset, uint Type, Target Target, long Addend)> Relocations { get; } = [];
        public int OutputIndex { get; set; }
        public int SectionSymbol { get; set; }
        /// <summary>The code an SHF_LINK_ORDER table goes with (a function's <c>__patchable_function_entries</c>):
        /// the linker keeps, drops and orders it with that section.</summary>
        public Piece? LinkedTo { get; set; }
    }

    /// <summary>A relocation target in the output: a piece's section, an included entity's symbol, or an external
    /// name; none of them for a relocation against symbol 0 (R_PPC64_ENTRY, R_PPC64_NONE).</summary>
    private sealed record Target(Piece? Piece, ObjectEntity? Entity, string? External, byte ExternalType);

    private static readonly Target NoSymbol = new(null, null, null, 0);

    private readonly ObjectInventory _before, _after;
    private readonly SymbolCorrelation _correlation;
    private readonly List<Diagnostic> _diagnostics;
    private readonly List<Piece> _pieces = [];
    private readonly Dictionary<ObjectEntity, Piece> _entityPieces = [];
    private readonly Dictionary<int, Piece> _wholeSections = [];
    private Piece? _toc;
    private readonly Dictionary<ulong, ulong> _tocSlots = [];
    private Piece? _fixup;
    private readonly Dictionary<ulong, ulong> _fixupStubs = [];
    private List<ulong>? _fixupStarts;

    private LivepatchObjectBuilder(ObjectInventory before, ObjectInventory after, SymbolCorrelation correlation,
        List<Diagnostic> diagnostics)
    {
        _before = before;
        _after = after;
        _correlation = correlation;
        _diagnostics = diagnostics;
    }

    private ElfImage Image => _after.Image;

    public static BuiltObject? Build(LivepatchContents contents, KernelBinder binder, List<Diagnostic> diagnostics)
    {
        var b = new LivepatchObjectBuilder(contents.Before, contents.After, contents.Correlation, diagnostics);
        foreach (var (e, name) in contents.Callbacks) b._callbacks[e] = name;
        foreach (var e in contents.Functions.Concat(contents.Data)) b.AddEntity(e);
        foreach (var e in contents.Replaced) b._replaced.Add(e);
        // Relocations are resolved piece by piece; resolving may add pieces (strings, .toc slots) at the end.
        for (int i = 0; i < b._pieces.Count; i++) b.ResolveRelocations(b._pieces[i]);
        b.CarryRecords();
        for (int i = 0; i < b._pieces.Count; i++)
            if (b._pieces[i].Relocations.Count == 0) b.ResolveRelocations(b._pieces[i]);
        if (diagnostics.Any(d => d.Severity == Severity.Error)) return null;
        return b.Write(binder.Symbols, binder.ObjectName, binder.Bind, binder.Kernel);
    }

    private void AddEntity(ObjectEntity e)
    {
        Piece piece;
        if (e.IsFunction)
        {
            // The whole section: a -mcmodel=large function is preceded by the 8-byte .TOC. offset its global entry
            // loads (ld r2,-8(r12)), and anything else in the section could be reached without a relocation.
            if (_after.Entities.Any(o => o != e && o.Section.Index == e.Section.Index && o.Start != e.Start))
            {
                _diagnostics.Add(new Diagnostic(DiagnosticCatalog.DiffObjectsDoNotMatch,
                    $"{e.Name} shares {e.Section.Name} with other functions or data, so it cannot be taken out alone",
                    Image.Path, Function: e.Name,
                    Fix: e.Section.Name == ".text"
                        ? "Compile both objects with -ffunction-sections -fdata-sections."
                        : $"A section attribute (such as __sched or noinstr) puts {e.Name} in {e.Section.Name}, " +
                            "and no compiler flag gives it a section of its own: patch its callers instead."));
                return;
            }
            piece = new Piece(".text." + e.Name, e.Section, 0, Image.ContentSize(e.Section), e);
            piece.Bytes.AddRange(Image.Data(e.Section).ToArray());
        }
        else
        {
            string name = e.Section.Name.Contains("..", StringComparison.Ordinal) ? e.Section.Name
                : DataKind(e.Section.Name) + "." + e.Name;
            piece = new Piece(name, e.Section, e.Start, e.Size, e);
            if (e.Section.Type != ShtNobits) piece.Bytes.AddRange(_after.Bytes(e));
        }
        _pieces.Add(piece);
        _entityPieces[e] = piece;
    }

    private static string DataKind(string section)
    {
        foreach (var kind in new[] { ".rodata", ".data", ".bss", ".sdata", ".sbss" })
            if (section == kind || section.StartsWith(kind + ".", StringComparison.Ordinal)) return kind;
        return section;
    }

    private bool _resolving;

    private void ResolveRelocations(Piece piece)
    {
        if (piece.Source.Name == ".toc" || _resolving) return;
        _resolving = true;
        foreach (var r in _after.RelocationsIn(piece.Source, piece.Start, piece.Start + piece.Size))
            if (Resolve(r, piece.Source) is { } t)
                piece.Relocations.Add((r.Offset - piece.Start, r.Type, t.Target, t.Addend));
        _resolving = false;
    }

    /// <summary>What a relocation of the patched object names, as a target in the output.</summary>
    private (Target Target, long Addend)? Resolve(ElfRela r, ElfSection from)
    {
        var sym = Image.Symbols[(int)r.SymbolIndex];
        if (r.SymbolIndex == 0) return (NoSymbol, r.Addend);
        if (sym.Type != SttSection)
        {
            if (!sym.IsInSection) return (External(sym.Name, sym.Type), r.Addend);
            if (_after.ByName.TryGetValue(sym.Name, out var e) && ReferenceEquals(e.Symbol, sym))
                return _entityPieces.ContainsKey(e) ? (new Target(null, e, null, 0), r.Addend)
                    : (External(_correlation.Original(e.Name) ?? e.Name, sym.Type), r.Addend);
            // A local label or other unsized symbol: resolve through its section like a section symbol.
        }
        if (!sym.IsInSection || Image.SectionOrNull(sym.SectionIndex) is not { } section)
        {
            Refuse($"a relocation in {from.Name} names symbol {sym.Name} in a special section");
            return null;
        }
        ulong at = unchecked(sym.Value + (ulong)r.Addend);
        foreach (var p in _pieces)
            if (p.Source.Index == section.Index && p.Source.Name != ".toc" && at >= p.Start && at <= p.Start + p.Size)
                return (new Target(p, null, null, 0), (long)(at - p.Start));
        if (section.Name == ".toc") return TocSlot(at, from);
        if (section.Name == ".fixup" && section.IsExecutable) return FixupStub(section, at, from);
        if (DataSections.IsMergeableStrings(section) || DataSections.IsMergeableConstants(section)
            || DataSections.IsAnonymousReadOnly(Image, section))
            return (new Target(WholeSection(section), null, null, 0), (long)at);
        if (_after.At(section.Index, at) is { } entity)
            return (External(_correlation.Original(entity.Name) ?? entity.Name, entity.Symbol.Type),
                (long)(at - entity.Start));
        Refuse($"a relocation in {from.Name} names {section.Name}+0x{at:x}, which is neither a named function or " +
            "object nor data the diff carries");
        return null;
    }

    private Target External(string name, byte type) => new(null, null, name, type);

    private Piece WholeSection(ElfSection section)
    {
        if (_wholeSections.TryGetValue(section.Index, out var p)) return p;
        p = new Piece(section.Name, section, 0, Image.ContentSize(section), null);
        if (section.Type != ShtNobits) p.Bytes.AddRange(Image.Data(section).ToArray());
        _pieces.Add(p);
        _wholeSections[section.Index] = p;
        return p;
    }

    /// <summary>A <c>.toc</c> slot the included code loads: copied with its relocation into the output's own
    /// <c>.toc</c>.</summary>
    private (Target, long)? TocSlot(ulong at, ElfSection from)
    {
        var toc = Image.Sections.First(s => s.Name == ".toc");
        ulong slot = at & ~7UL;
        if (!_tocSlots.TryGetValue(slot, out ulong placed))
        {
            _toc ??= NewPiece(".toc", toc);
            placed = (ulong)_toc.Bytes.Count;
            var data = Image.Data(toc);
            if (slot + 8 > (ulong)data.Length)
            {
                Refuse($"a relocation in {from.Name} names .toc+0x{at:x}, past the end of .toc");
                return null;
            }
            _toc.Bytes.AddRange(data.Slice((int)slot, 8).ToArray());
            _toc.Size = (ulong)_toc.Bytes.Count;
            _tocSlots[slot] = placed;
            foreach (var r in _after.RelocationsIn(toc, slot, slot + 8))
                if (Resolve(r, toc) is { } t)
                    _toc.Relocations.Add((placed + (r.Offset - slot), r.Type, t.Target, t.Addend));
        }
        return (new Target(_toc, null, null, 0), (long)(placed + (at - slot)));
    }

    /// <summary>
    /// A <c>.fixup</c> stub (powerpc's uaccess, futex and load_unaligned_zeropad asm: an exception entry's fixup code,
    /// which sets an error and branches back into its function): the bytes from the address an entry names to the
    /// next such address, copied with their relocations into the output's own <c>.fixup</c>. A stub must branch back
    /// into code the livepatch carries, never into the kernel's copy of the function.
    /// </summary>
    private (Target, long)? FixupStub(ElfSection fixup, ulong at, ElfSection from)
    {
        _fixupStarts ??= Image.RelocationSections.SelectMany(rs => rs.Entries)
            .Where(r => r.SymbolIndex < Image.Symbols.Count && Image.Symbols[(int)r.SymbolIndex] is
                { IsInSection: true } sym && sym.SectionIndex == (uint)fixup.Index)
            .Select(r => unchecked(Image.Symbols[(int)r.SymbolIndex].Value + (ulong)r.Addend))
            .Append(Image.ContentSize(fixup)).Distinct().Order().ToList();
        int next = _fixupStarts.FindIndex(start => start > at);
        if (!_fixupStarts.Contains(at) || next < 0)
        {
            Refuse($"a relocation in {from.Name} names .fixup+0x{at:x}, which is not the start of a fixup stub");
            return null;
        }
        if (!_fixupStubs.TryGetValue(at, out ulong placed))
        {
            ulong end = _fixupStarts[next];
            _fixup ??= NewPiece(".fixup", fixup);
            placed = (ulong)_fixup.Bytes.Count;
            _fixup.Bytes.AddRange(Image.Data(fixup).Slice((int)at, (int)(end - at)).ToArray());
            _fixup.Size = (ulong)_fixup.Bytes.Count;
            _fixupStubs[at] = placed;
            foreach (var r in _after.RelocationsIn(fixup, at, end))
            {
                if (Resolve(r, fixup) is not { } t) continue;
                if (t.Target.Piece is null && t.Target.Entity is null)
                    Refuse($"the .fixup stub at .fixup+0x{at:x} branches to {t.Target.External}, which the livepatch " +
                        "does not carry: the stub would return into the kernel's copy of the function");
                _fixup.Relocations.Add((placed + (r.Offset - at), r.Type, t.Target, t.Addend));
            }
        }
        return (new Target(_fixup, null, null, 0), (long)placed);
    }

    private Piece NewPiece(string name, ElfSection source)
    {
        var p = new Piece(name, source, 0, 0, null);
        _pieces.Add(p);
        return p;
    }


    /// <summary>Copies the records of the kernel's tables that name included code.</summary>
    private void CarryRecords()
    {
        var code = _pieces.Where(p => p.Entity is { IsFunction: true }).ToList();
        foreach (var table in Image.Sections.Where(s => s.IsAlloc && !s.IsExecutable))
        {
            var relocations = _after.RelocationsOf(table);
            if (relocations.Count == 0 || _pieces.Any(p => p.Source.Index == table.Index)) continue;
            if (_after.Entities.Any(e => e.Section.Index == table.Index)) continue;
            bool NamesIncludedCode(ElfRela r)
            {
                var sym = Image.Symbols[(int)r.SymbolIndex];
                if (!sym.IsInSection) return false;
                ulong at = unchecked(sym.Value + (ulong)r.Addend);
                return code.Any(p => p.Source.Index == sym.SectionIndex && at >= p.Start && at < p.Start + p.Size);
            }
            if (!relocations.Any(NamesIncludedCode)) continue;
            var kind = KernelTables.Find(table.Name);
            if (kind is null or { Entries: TableEntries.Refused })
            {
                Refuse($"{table.Name} has entries for the changed functions, and the diff does not know how to carry " +
                    "that table's entries");
                continue;
            }
            if (kind.Entries is TableEntries.Discarded or TableEntries.Slots) continue;
            if (kind.Entries == TableEntries.LeftOut)
            {
                _diagnostics.Add(Diagnostic.Create(DiagnosticCatalog.DiffTableEntriesDropped, Image.Path,
                    $"the changed functions' entries of {table.Name} ({kind.Holds}) are left out: {kind.WhyLeftOut}"));
                continue;
            }
            ulong size = Image.ContentSize(table);
            ulong? record = KernelTables.EntrySize(table.Name, relocations, size);
            if (record is null)
            {
                Refuse($"{table.Name} has entries for the changed functions, but its entry size cannot be derived " +
                    "from its relocations");
                continue;
            }
            var piece = new Piece(table.Name, table, 0, 0, null);
            if ((table.Flags & ShfLinkOrder) != 0)
                piece.LinkedTo = code.FirstOrDefault(p => p.Source.Index == table.Link);
            var data = Image.Data(table);
            for (ulong start = 0; start < size; start += record.Value)
            {
                var inRecord = relocations.Where(r => r.Offset >= start && r.Offset < start + record.Value).ToList();
                if (!inRecord.Any(NamesIncludedCode)) continue;
                ulong placed = (ulong)piece.Bytes.Count;
                piece.Bytes.AddRange(data.Slice((int)start, (int)record.Value).ToArray());
                foreach (var r in inRecord)
                {
                    var resolved = Resolve(r, table);
                    if (resolved is not { } t) continue;
                    if (kind.ExternalsResolvedAtLoad && t.Target.External is { } key)
                        _jumpKeys.Add(key);
                    piece.Relocations.Add((placed + (r.Offset - start), r.Type, t.Target, t.Addend));
                }
            }
            piece.Size = (ulong)piece.Bytes.Count;
            _pieces.Add(piece);
        }
    }

    private readonly HashSet<string> _jumpKeys = new(StringComparer.Ordinal);

    private void Refuse(string message) =>
        _diagnostics.Add(Diagnostic.Create(DiagnosticCatalog.DiffCannotCarry, Image.Path, message));

    private BuiltObject? Write(KernelSymbols symbols, string objectName, bool bind, KernelSymbols? kernel)
    {
        var bindings = Bind(symbols, objectName, kernel);
        if (bindings is null || !CheckReferences(bindings)) return null;
        return WriteObject(bindings, symbols, objectName, bind);
    }

    /// <summary>The policies on what the carried code references: a static key the loader resolves before klp binds
    /// (PLP5008), a TOC-relative reference to the kernel (PLP5007), a section alignment the writer cannot keep
    /// (PLP5009).</summary>
    private bool CheckReferences(Dictionary<string, KernelBinding> bindings)
    {
        // The loader writes vmlinux's livepatch relocations while it loads the module, before jump labels are set
        // up (kernel/module/main.c, apply_relocations, since 5.8); a module's are written only when that module
        // comes, after this one's jump labels were set up.
        foreach (var key in _jumpKeys)
            if (bindings.TryGetValue(key, out var b) && b.Klp && b.Object != "vmlinux")
                _diagnostics.Add(Diagnostic.Create(DiagnosticCatalog.DiffCannotCarry, Image.Path,
                    $"a static branch in the changed code uses key {key} of module {b.Object}, which does not " +
                        $"export it: the livepatch core binds {b.Object}'s symbols when {b.Object} loads, after " +
                        "the livepatch module's jump labels were set up"));
        foreach (var p in _pieces.Where(p => p.Entity is { IsFunction: true }))
            foreach (var (offset, type, target, _) in p.Relocations)
                if (IsTocRelative(type) && target.External is { } name && !LoaderSymbols.Contains(name))
                    _diagnostics.Add(new Diagnostic(DiagnosticCatalog.DiffTocReferenceToKernel,
                        $"{p.Entity!.Name}+0x{offset:x} addresses {name} relative to the TOC " +
                            $"({RelocationCatalog.NameOf(type)}), and {name} stays in the kernel, out of the " +
                            "livepatch module's TOC range", Image.Path, Function: p.Entity.Name, Offset: offset,
                        Fix: "Compile the patched file with -mcmodel=large, which loads every address from a .toc " +
                            "slot, or make the variable extern in the patch so GCC addresses it through the TOC."));
        foreach (var p in _pieces.Where(p => !RelocatableObjectWriter.IsValidAlignment(p.Source.Alignment)))
            _diagnostics.Add(Diagnostic.Create(DiagnosticCatalog.DiffObjectsDoNotMatch, Image.Path,
                $"{p.Source.Name} asks for alignment {p.Source.Alignment}, which is not a power of two up to 64 KiB"));
        return !_diagnostics.Any(d => d.Severity == Severity.Error);
    }

    private BuiltObject? WriteObject(Dictionary<string, KernelBinding> bindings, KernelSymbols symbols,
        string objectName, bool bind)
    {
        var writer = new RelocatableObjectWriter(Image.IsLittleEndian, Image.Flags);
        foreach (var p in _pieces)
        {
            ulong flags = p.Source.Flags & ~ShfInfoLink & (p.LinkedTo is null ? ~ShfLinkOrder : ~0UL);
            p.OutputIndex = p.Source.Type == ShtNobits
                ? writer.AddNobitsSection(p.Name, flags, p.Source.Alignment, p.Size)
                : writer.AddSection(p.Name, ShtProgbits, flags, p.Source.Alignment, p.Bytes.ToArray(),
                    p.Source.EntrySize);
        }
        foreach (var p in _pieces.Where(p => p.LinkedTo is not null))
            writer.SetLink(p.OutputIndex, p.LinkedTo!.OutputIndex);
        writer.AddSection(".note.GNU-stack", ShtProgbits, 0, 1, []);
        var symbolIndex = new Dictionary<object, int>();
        foreach (var p in _pieces)
            p.SectionSymbol = writer.AddSymbol("", StbLocal, SttSection, (ushort)p.OutputIndex);
        // Unbound, the object is linked with a registration that names each replacement function: those become
        // globals with a name of their own (the originals may be static, and two files' statics may share a name).
        // A callback is named by the registration whether bound or not.
        // A new static that has the name of an original one the code binds to the kernel (__func__.1 when GCC
        // renumbered the statics around it) is written under a name of its own: one name, one symbol.
        var boundNames = _pieces.SelectMany(p => p.Relocations).Select(r => r.Target.External).OfType<string>()
            .ToHashSet(StringComparer.Ordinal);
        string NameOf(ObjectEntity e) => _callbacks.TryGetValue(e, out var callback) ? callback
            : !bind && _replaced.Contains(e) ? FunctionReplacement.SymbolFor(e.Name)
            : !e.IsFunction && boundNames.Contains(e.Name) ? e.Name + ".livepatch" : e.Name;
        byte BindOf(ObjectEntity e) => _callbacks.ContainsKey(e) || (!bind && _replaced.Contains(e)) ? StbGlobal
            : e.Symbol.Bind;
        var entities = _pieces.Where(p => p.Entity is not null).Select(p => (Piece: p, Entity: p.Entity!)).ToList();
        foreach (var (p, e) in entities.Where(x => BindOf(x.Entity) == StbLocal)
                     .Concat(entities.Where(x => BindOf(x.Entity) != StbLocal)))
            symbolIndex[e] = writer.AddSymbol(NameOf(e), BindOf(e), e.Symbol.Type, (ushort)p.OutputIndex,
                e.Start - p.Start, e.Size, e.Symbol.Other);
        var externals = _pieces.SelectMany(p => p.Relocations).Where(r => r.Target.External is not null)
            .GroupBy(r => r.Target.External!, StringComparer.Ordinal).OrderBy(g => g.Key, StringComparer.Ordinal);
        foreach (var g in externals)
            symbolIndex[g.Key] = writer.AddSymbol(g.Key, StbGlobal, g.First().Target.ExternalType == SttFunc
                ? SttFunc : g.First().Target.ExternalType == SttObject ? SttObject : SttNotype, ShnUndef);
        foreach (var p in _pieces.Where(p => p.Relocations.Count > 0))
        {
            var entries = p.Relocations.OrderBy(r => r.Offset).Select(r => (r.Offset, r.Type,
                r.Target.Piece is { } tp ? tp.SectionSymbol
                : r.Target.Entity is { } te ? symbolIndex[te]
                : r.Target.External is { } name ? symbolIndex[name] : 0, r.Addend)).ToList();
            writer.AddRelocations(".rela" + p.Name, p.OutputIndex, ShfInfoLink | (p.Source.Flags & ShfAlloc), entries);
        }
        byte[] bytes = writer.Write();

        // Bind the names that stay in the kernel, exactly as KlpSymbol items are bound.
        if (!ElfImage.TryParse(Image.Path, bytes, out var image, out var error))
        {
            _diagnostics.Add(error!);
            return null;
        }
        var specs = bindings.Values.Where(b => b.Klp)
            .Select(b => new KlpSymbolSpec(b.Name, b.Object, b.Name, b.Position)).ToList();
        if (bind && specs.Count > 0)
        {
            var converted = KlpConverter.Convert(image!, specs);
            _diagnostics.AddRange(converted.Diagnostics.Where(d => d.Severity == Severity.Error));
            if (!converted.Succeeded) return null;
            bytes = converted.Output;
        }
        return new BuiltObject(bytes, bindings.Values.OrderBy(b => b.Name, StringComparer.Ordinal).ToList(),
            Replacements(symbols, objectName, bind));
    }

    private readonly HashSet<ObjectEntity> _replaced = [];
    private readonly Dictionary<ObjectEntity, string> _callbacks = [];

    /// <summary>The klp_func entries: each changed function, its original's name and kallsyms position.</summary>
    private List<FunctionReplacement> Replacements(KernelSymbols symbols, string objectName, bool bind)
    {
        string? file = _before.Image.Symbols.FirstOrDefault(s => s.Type == SttFile)?.Name;
        var list = new List<FunctionReplacement>();
        foreach (var e in _replaced.OrderBy(e => e.Symbol.Index))
        {
            string old = _correlation.Original(e.Name)!;
            bool local = _before.ByName[old].Symbol.Bind == StbLocal;
            var position = symbols.Position(old, !local, local ? file : null);
            if (position.Problem is { } problem)
            {
                _diagnostics.Add(new Diagnostic(position.Missing ? DiagnosticCatalog.DiffSymbolMissing
                    : DiagnosticCatalog.DiffSymbolAmbiguous,
                    $"{old}, which the livepatch replaces, cannot be found in the kernel: {problem}", Image.Path,
                    Function: e.Name));
                continue;
            }
            list.Add(new FunctionReplacement(old, objectName, position.Position,
                bind ? e.Name : FunctionReplacement.SymbolFor(e.Name)));
        }
        return list;
    }

    private static bool IsTocRelative(uint type) =>
        type is R.PPC64_TOC16 or R.PPC64_TOC16_LO or R.PPC64_TOC16_HI or R.PPC64_TOC16_HA or R.PPC64_TOC16_DS
            or R.PPC64_TOC16_LO_DS;

    /// <summary>How each external name reaches the kernel: plain undefined when exported (or the loader's own), a
    /// livepatch symbol with its kallsyms position otherwise. For a module's unit (<paramref name="kernel"/> given),
    /// what the module defines is always a livepatch symbol of the module — the livepatch may load before the module
    /// does, and the livepatch core binds it when the module comes — and the rest is vmlinux's.</summary>
    private Dictionary<string, KernelBinding>? Bind(KernelSymbols symbols, string objectName, KernelSymbols? kernel)
    {
        var names = _pieces.SelectMany(p => p.Relocations).Select(r => r.Target.External).OfType<string>()
            .Distinct(StringComparer.Ordinal).OrderBy(n => n, StringComparer.Ordinal).ToList();
        string? file = _before.Image.Symbols.FirstOrDefault(s => s.Type == SttFile)?.Name;
        symbols.Prepare(names);
        kernel?.Prepare(names);
        var bindings = new Dictionary<string, KernelBinding>(StringComparer.Ordinal);
        bool failed = false;
        foreach (var name in names)
        {
            if (LoaderSymbols.Contains(name)) continue;
            var defined = _before.ByName.TryGetValue(name, out var e) ? e.Symbol : null;
            bool local = defined is { Bind: StbLocal };
            var source = symbols;
            string owner = objectName;
            if (kernel is not null && defined is null && !symbols.Defines(name))
            {
                source = kernel;
                owner = "vmlinux";
            }
            if (!local && (kernel is null || owner == "vmlinux") && source.IsExported(name))
            {
                bindings[name] = new KernelBinding(name, false, owner, 0);
                continue;
            }
            // The original object alone knows only its own definitions: other files' symbols are taken as unique
            // vmlinux globals. A module's static key is resolved before the module's livepatch symbols are (see
            // CheckReferences): there only an exported key can work, so it stays undefined, and a key the kernel
            // does not export fails the load by name.
            if (!source.KnowsWholeKernel && defined is null)
            {
                bool assumed = owner != "vmlinux" && _jumpKeys.Contains(name);
                bindings[name] = new KernelBinding(name, !assumed, owner, 0) { ExportAssumed = assumed };
                continue;
            }
            var position = source.Position(name, !local, local ? file : null);
            if (position.Problem is { } problem)
            {
                _diagnostics.Add(Diagnostic.Create(position.Missing ? DiagnosticCatalog.DiffSymbolMissing
                    : DiagnosticCatalog.DiffSymbolAmbiguous, Image.Path,
                    $"{name}, which the changed code uses, cannot be bound to the kernel: {problem}"));
                failed = true;
                continue;
            }
            bindings[name] = new KernelBinding(name, true, owner, position.Position);
        }
        return failed ? null : bindings;
    }
}
