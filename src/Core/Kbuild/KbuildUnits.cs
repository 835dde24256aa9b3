using PpcLivepatch.Diagnostics;

namespace PpcLivepatch.Kbuild;

/// <summary>How kbuild built one object: its command line, its source, and every file it read (the
/// <c>.NAME.o.cmd</c> record kbuild keeps next to each object, <c>fixdep</c>'s dependency list).</summary>
public sealed record KbuildUnit(string Object, string Command, string Source,
    IReadOnlyList<string> Dependencies)
{
    /// <summary>The compile's argument vector (the compiler first), read from <see cref="Command"/>; null when the
    /// record's command is not one <see cref="ShellWords"/> reads.</summary>
    public IReadOnlyList<string>? Arguments { get; } = ShellWords.SplitFirstCommand(Command);

    /// <summary>
    /// The arguments (run in the build tree) that compile <paramref name="copy"/> — the unit's source, original or
    /// patched, under its own file name — into <paramref name="output"/> the way a livepatch needs it: kbuild's own
    /// command line plus one section per function and datum, <c>-mcmodel=large</c> (every address through a
    /// <c>.toc</c> slot, which a livepatch module can bind), the source's directory for its quoted includes, and
    /// prefix maps that make <c>__FILE__</c> and DWARF name the tree-relative file as kbuild does for the original.
    /// recordmcount, which kbuild runs after the compile, is the caller's next step. Null when kbuild's command cannot
    /// be read or does not end in the unit's source.
    /// </summary>
    /// <param name="firstIncludes">Directories searched before any of kbuild's own (a patched header's copy).</param>
    public IReadOnlyList<string>? LivepatchCompileArguments(string copy, string output, string sourceTree,
        string buildTree, bool largeModel = true, bool debugInfo = false, IReadOnlyList<string>? firstIncludes = null)
    {
        if (Arguments is not { Count: > 1 } kbuild || kbuild[^1] != Source) return null;
        var args = new List<string> { kbuild[0] };
        args.AddRange((firstIncludes ?? []).Select(d => "-I" + d));
        for (int i = 1; i < kbuild.Count - 1; i++)
        {
            if (kbuild[i].StartsWith("-Wp,-MMD,", StringComparison.Ordinal)) continue;
            if (kbuild[i] == "-o" && i + 1 < kbuild.Count - 1)
            {
                args.Add("-o");
                args.Add(output);
                i++;
                continue;
            }
            args.Add(kbuild[i]);
        }
        args.Add(copy);
        string relative = Path.GetRelativePath(sourceTree, Source);
        string relativeDir = Path.GetDirectoryName(relative) is { Length: > 0 } d ? d + "/" : "";
        string copyDir = Path.GetDirectoryName(copy) + "/";
        args.AddRange(["-iquote", Path.GetDirectoryName(Source)!, "-ffunction-sections", "-fdata-sections"]);
        if (largeModel) args.Add("-mcmodel=large");
        if (debugInfo) args.Add("-g");
        args.AddRange([$"-ffile-prefix-map={copyDir}={relativeDir}", $"-fdebug-prefix-map={sourceTree}/=",
            $"-fdebug-prefix-map={buildTree}=."]);
        return args;
    }

    /// <summary>The module the unit is linked into (kbuild's <c>KBUILD_MODNAME</c> when it compiles with
    /// <c>-DMODULE</c>), or null for a unit of vmlinux: a livepatch's changes to it form that module's
    /// <c>klp_object</c>.</summary>
    public string? Module => Arguments is { } args && args.Contains("-DMODULE")
        && args.LastOrDefault(a => a.StartsWith("-DKBUILD_MODNAME=\"", StringComparison.Ordinal)) is { } name
        && name.EndsWith('"') && name["-DKBUILD_MODNAME=\"".Length..^1] is { Length: > 0 } module
        && module.All(c => char.IsAsciiLetterOrDigit(c) || c == '_') ? module : null;

    /// <summary>The directories of the compile's <c>-I</c> options, in order (<c>-I DIR</c> and
    /// <c>-IDIR</c>).</summary>
    private IEnumerable<string> IncludeDirectories()
    {
        var args = Arguments ?? [];
        for (int i = 1; i < args.Count; i++)
        {
            if (args[i] == "-I" && i + 1 < args.Count) yield return args[++i];
            else if (args[i].StartsWith("-I", StringComparison.Ordinal) && args[i].Length > 2)
                yield return args[i][2..];
        }
    }

    /// <summary>
    /// Where copies of <paramref name="header"/> (an absolute path) must go for this unit's compile to find them
    /// before the original: the directory of the unit's own source, where quoted includes look first (root null), and
    /// the path under every kbuild include directory (<c>-I</c>) that holds it, as (root, path under it) — under
    /// each, since the source may name it from any (<c>include/uapi/linux/x.h</c> is <c>&lt;uapi/linux/x.h&gt;</c>
    /// and <c>&lt;linux/x.h&gt;</c>). Empty when the compile cannot reach it.
    /// </summary>
    public IReadOnlyList<(string? Root, string PathUnderRoot)> HeaderPlacements(string header, string buildTree)
    {
        var placements = new List<(string?, string)>();
        if (Path.GetDirectoryName(header) == Path.GetDirectoryName(Source))
            placements.Add((null, Path.GetFileName(header)));
        foreach (string include in IncludeDirectories())
        {
            string dir = Path.GetFullPath(Path.Combine(buildTree, include));
            dir = Directory.ResolveLinkTarget(dir, returnFinalTarget: true)?.FullName ?? dir;
            if (header.StartsWith(dir.TrimEnd('/') + "/", StringComparison.Ordinal))
                placements.Add((dir, Path.GetRelativePath(dir, header)));
        }
        return placements.Distinct().ToList();
    }
}

/// <summary>
/// The translation units a source patch touches, found in the kernel build tree the way kbuild itself would
/// rebuild them: a changed <c>.c</c> file is its own unit when the kernel's configuration builds it; a changed header
/// reaches every unit whose dependency record lists it.
/// </summary>
public sealed class KbuildUnits
{
    private readonly string _buildTree;
    private readonly string _sourceTree;
    private List<KbuildUnit>? _all;

    /// <param name="sourceTree">The tree the kernel was built from (<c>KernelDir/source</c> for an out-of-tree
    /// build, else the build tree itself).</param>
    public KbuildUnits(string buildTree, string sourceTree)
    {
        _buildTree = Path.GetFullPath(buildTree);
        // kbuild records real paths: an out-of-tree build's "source" link is followed.
        _sourceTree = Directory.ResolveLinkTarget(Path.GetFullPath(sourceTree), returnFinalTarget: true)?.FullName
            ?? Path.GetFullPath(sourceTree);
    }

    /// <summary>The units to rebuild for files changed by a patch (paths relative to the source tree), and a warning
    /// per changed <c>.c</c> file the configuration does not build.</summary>
    public IReadOnlyList<KbuildUnit> For(IEnumerable<string> changedFiles, string patchPath,
        List<Diagnostic> diagnostics)
    {
        var units = new List<KbuildUnit>();
        foreach (string file in changedFiles)
        {
            if (file.EndsWith(".c", StringComparison.Ordinal))
            {
                string record = Path.Combine(_buildTree, Path.GetDirectoryName(file) ?? "",
                    "." + Path.GetFileNameWithoutExtension(file) + ".o.cmd");
                if (File.Exists(record) && Read(record) is { } unit)
                {
                    if (IsLinked(unit)) units.Add(unit);
                    else diagnostics.Add(Diagnostic.Create(DiagnosticCatalog.PatchFileNotBuilt, patchPath,
                        $"{file} is built ({unit.Object}) but linked into neither vmlinux nor a module (the vDSO, " +
                        "the boot wrapper, a host tool), so a livepatch cannot reach it"));
                }
                else diagnostics.Add(Diagnostic.Create(DiagnosticCatalog.PatchFileNotBuilt, patchPath,
                    $"{file} is not built by this kernel's configuration (no " +
                    $"{Path.GetRelativePath(_buildTree, record)}" +
                    "), so its change cannot be in the running kernel"));
            }
            else if (file.EndsWith(".h", StringComparison.Ordinal))
            {
                string header = Path.Combine(_sourceTree, file);
                units.AddRange(All().Where(u => u.Dependencies.Contains(header, StringComparer.Ordinal)
                    && IsLinked(u)));
            }
        }
        return units.DistinctBy(u => u.Object).OrderBy(u => u.Object, StringComparer.Ordinal).ToList();
    }

    /// <summary>The built module file of a module (its name as <c>KBUILD_MODNAME</c> spells it), from the build tree's
    /// <c>modules.order</c> (which names <c>.ko</c> files up to 6.1 and their <c>.o</c> since); null when the tree
    /// did not build it.</summary>
    public string? ModuleFile(string module)
    {
        string order = Path.Combine(_buildTree, "modules.order");
        if (!File.Exists(order)) return null;
        foreach (string line in File.ReadLines(order))
        {
            string entry = line.Trim();
            if (entry.Length == 0) continue;
            string ko = Path.ChangeExtension(entry, ".ko");
            if (Path.GetFileNameWithoutExtension(ko).Replace('-', '_') == module
                && File.Exists(Path.Combine(_buildTree, ko)))
                return Path.Combine(_buildTree, ko);
        }
        return null;
    }

    private HashSet<string>? _linked;
    private bool _linkedRead;

    /// <summary>Whether the unit's object is in the running kernel: a member of vmlinux's archive (kbuild's thin
    /// <c>vmlinux.a</c>, or <c>built-in.a</c> before 6.1) or of a module (its <c>.mod</c> list). A tree that has
    /// neither cannot tell, and every unit counts.</summary>
    private bool IsLinked(KbuildUnit unit)
    {
        if (!_linkedRead)
        {
            _linkedRead = true;
            string archive = Path.Combine(_buildTree, "vmlinux.a");
            if (!File.Exists(archive)) archive = Path.Combine(_buildTree, "built-in.a");
            if (File.Exists(archive))
            {
                _linked = new HashSet<string>(StringComparer.Ordinal);
                ThinArchiveMembers(archive, _linked, depth: 0);
                foreach (string mod in Directory.EnumerateFiles(_buildTree, "*.mod", SearchOption.AllDirectories))
                    foreach (string member in File.ReadLines(mod))
                        if (member.Trim() is { Length: > 0 } m) _linked.Add(m);
            }
        }
        return _linked is null || _linked.Contains(unit.Object);
    }

    /// <summary>The member paths (relative to the build tree) of a GNU thin archive, nested archives followed: a
    /// thin archive stores no member data, only headers and the names table.</summary>
    private void ThinArchiveMembers(string archive, HashSet<string> members, int depth)
    {
        var data = File.ReadAllBytes(archive);
        if (depth > 8 || data.Length < 8 || !data.AsSpan(0, 8).SequenceEqual("!<thin>\n"u8)) return;
        string names = "";
        string directory = Path.GetRelativePath(_buildTree, Path.GetDirectoryName(archive)!);
        for (int at = 8; at + 60 <= data.Length;)
        {
            string name = System.Text.Encoding.ASCII.GetString(data, at, 16).TrimEnd();
            if (!long.TryParse(System.Text.Encoding.ASCII.GetString(data, at + 48, 10).Trim(), out long size)
                || size < 0) return;
            at += 60;
            if (name is "/" or "//" || name.StartsWith("/SYM", StringComparison.Ordinal))
            {
                if (size > data.Length - at) return;
                if (name == "//") names = System.Text.Encoding.UTF8.GetString(data, at, (int)size);
                at += (int)size + (int)(size & 1);
                continue;
            }
            string path = name.TrimEnd('/');
            // "/OFFSET" into the names table, the field's rest padding (GNU ar may end it with another '/').
            if (name.StartsWith('/') && int.TryParse(new string(name[1..].TakeWhile(char.IsAsciiDigit).ToArray()),
                    out int offset) && offset < names.Length)
            {
                int end = names.IndexOf("/\n", offset, StringComparison.Ordinal);
                path = names[offset..(end >= 0 ? end : names.Length)];
            }
            path = Path.GetRelativePath(_buildTree, Path.GetFullPath(Path.Combine(_buildTree, directory, path)));
            if (path.EndsWith(".a", StringComparison.Ordinal))
                ThinArchiveMembers(Path.Combine(_buildTree, path), members, depth + 1);
            else members.Add(path);
        }
    }

    private List<KbuildUnit> All() => _all ??= Directory
        .EnumerateFiles(_buildTree, ".*.o.cmd", SearchOption.AllDirectories)
        .Select(Read).OfType<KbuildUnit>().ToList();

    /// <summary>Reads a <c>.NAME.o.cmd</c> record: <c>cmd_X.o := …</c> (<c>savedcmd_X.o</c> since 6.3),
    /// <c>source_X.o := …</c>, <c>deps_X.o := \</c> and one dependency per continued line.</summary>
    public static KbuildUnit? Read(string record)
    {
        string? obj = null, command = null, source = null;
        var deps = new List<string>();
        bool inDeps = false;
        foreach (string raw in File.ReadLines(record))
        {
            string line = raw.TrimEnd();
            if (inDeps)
            {
                string dep = line.TrimEnd('\\').Trim();
                // kbuild records a path as the compiler found it: "fs/proc/../../lib/kstrtox.h" is lib/kstrtox.h.
                if (dep.Length > 0 && !dep.StartsWith("$(wildcard", StringComparison.Ordinal))
                    deps.Add(Path.IsPathRooted(dep) ? Path.GetFullPath(dep) : dep);
                inDeps = line.EndsWith('\\');
                continue;
            }
            int prefix = line.StartsWith("cmd_", StringComparison.Ordinal) ? 4
                : line.StartsWith("savedcmd_", StringComparison.Ordinal) ? 9 : 0;
            if (prefix > 0 && line.IndexOf(" := ", StringComparison.Ordinal) is var at && at > prefix)
            {
                obj = line[prefix..at];
                command = line[(at + 4)..];
            }
            else if (line.StartsWith("source_", StringComparison.Ordinal)
                && line.IndexOf(" := ", StringComparison.Ordinal)
                is > 7 and var s)
                source = line[(s + 4)..].Trim();
            else if (line.StartsWith("deps_", StringComparison.Ordinal)) inDeps = line.EndsWith('\\');
        }
        return obj is null || command is null || source is null ? null : new KbuildUnit(obj, command, source, deps);
    }
}
