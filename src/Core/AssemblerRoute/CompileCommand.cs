namespace PpcLivepatch.AssemblerRoute;

/// <summary>
/// A compiler command line as the assembler route sees it: a compile of one C source to one object
/// (<c>-c x.c [-o x.o]</c>) becomes compile-to-assembly with the same flags, then an assembly of the edited text with
/// the flags that still mean something for a <c>.s</c> file. Anything else (a link, a version or option probe, a
/// preprocessing, an assembly source) is not a compile the route touches. Argument vectors only: nothing is
/// re-parsed by a shell.
/// </summary>
public sealed class CompileCommand
{
    private readonly string[] _args;
    private readonly int _sourceIndex;
    private readonly int _outputIndex;   // index of the -o value, or -1 when the object name is gcc's default

    private CompileCommand(string[] args, int sourceIndex, int outputIndex, string output)
    {
        _args = args;
        _sourceIndex = sourceIndex;
        _outputIndex = outputIndex;
        Output = output;
    }

    public string Compiler => _args[0];

    public string Source => _args[_sourceIndex];

    public string Output { get; }

    public bool IsClang => Path.GetFileName(Compiler).Contains("clang", StringComparison.Ordinal);

    /// <summary>The compile, or null when the command is not a compile of one C source to an object.</summary>
    public static CompileCommand? TryParse(IReadOnlyList<string> command)
    {
        if (command.Count < 2) return null;
        string[] args = [.. command];
        bool compile = false;
        int source = -1, output = -1;
        for (int i = 1; i < args.Length; i++)
        {
            string a = args[i];
            switch (a)
            {
                case "-c": compile = true; break;
                case "-S" or "-E" or "-M" or "-MM" or "-x" or "-save-temps" or "-flto": return null;
                case "-o":
                    if (i + 1 >= args.Length) return null;
                    output = ++i;
                    break;
                default:
                    if (TakesValue(a)) { i++; break; }
                    // -oFILE, -save-temps=…: left to the compiler as it is
                    if (a.StartsWith("-o", StringComparison.Ordinal)
                        || a.StartsWith("-save-temps", StringComparison.Ordinal)) return null;
                    if (!a.StartsWith('-') && a.EndsWith(".c", StringComparison.Ordinal))
                    {
                        if (source >= 0) return null;   // several sources in one command
                        source = i;
                    }
                    break;
            }
        }
        if (!compile || source < 0) return null;
        string obj = output >= 0 ? args[output] : Path.GetFileNameWithoutExtension(args[source]) + ".o";
        return new CompileCommand(args, source, output, obj);
    }

    /// <summary>Driver options whose value is the next argument.</summary>
    private static bool TakesValue(string a) =>
        a is "-MF" or "-MT" or "-MQ" or "-include" or "-imacros" or "-isystem" or "-idirafter" or "-iquote"
            or "-iprefix" or "-target" or "--param" or "-Xassembler" or "-Xpreprocessor" or "-Xlinker" or "-I" or "-D"
            or "-U" or "-L" or "-Xclang";

    /// <summary>The same compile, stopping at assembly written to <paramref name="assembly"/>. Diagnostics and the
    /// dependency file come from this step; the dependency target stays the object's name.</summary>
    public List<string> ToAssembly(string assembly)
    {
        var list = new List<string>();
        bool dependencies = false, namedTarget = false;
        for (int i = 0; i < _args.Length; i++)
        {
            string a = _args[i];
            if (i == _outputIndex - 1 && a == "-o") continue;
            if (i == _outputIndex) continue;
            if (a == "-c") { list.Add("-S"); continue; }
            if (a is "-MMD" or "-MD" || a.StartsWith("-Wp,-MMD,", StringComparison.Ordinal)
                || a.StartsWith("-Wp,-MD,", StringComparison.Ordinal)) dependencies = true;
            if (a is "-MT" or "-MQ") namedTarget = true;
            list.Add(a);
        }
        if (dependencies && !namedTarget) list.AddRange(["-MT", Output]);
        list.AddRange(["-o", assembly]);
        return list;
    }

    /// <summary>
    /// The assembly of <paramref name="assembly"/> into <paramref name="obj"/> with the same driver: no dependency
    /// output (the first step wrote it) and no debug flags (the assembly carries the compiler's own debug directives;
    /// <c>-g</c> would make the assembler describe the .s file instead), but <c>-gz</c> still compresses them.
    /// </summary>
    public List<string> ToObject(string assembly, string obj)
    {
        var list = new List<string>();
        for (int i = 0; i < _args.Length; i++)
        {
            string a = _args[i];
            if (i == _outputIndex - 1 && a == "-o") continue;
            if (i == _outputIndex) continue;
            if (i == _sourceIndex) { list.Add(assembly); continue; }
            if (a is "-MF" or "-MT" or "-MQ") { i++; continue; }
            if (a is "-MMD" or "-MD" or "-MP" || a.StartsWith("-Wp,-MMD,", StringComparison.Ordinal)
                || a.StartsWith("-Wp,-MD,", StringComparison.Ordinal)) continue;
            if (a.StartsWith("-gz", StringComparison.Ordinal)) { list.Add(a); continue; }
            if (IsDebugFlag(a)) continue;
            list.Add(a);
        }
        // clang warns that the C flags are unused for an assembly source (an error under -Werror).
        if (IsClang) list.Insert(1, "-Qunused-arguments");
        list.AddRange(["-o", obj]);
        return list;
    }

    private static bool IsDebugFlag(string a) =>
        a is "-g" or "-gstrict-dwarf" or "-gcolumn-info" or "-Wa,-g"
        || a.Length == 3 && a.StartsWith("-g", StringComparison.Ordinal) && char.IsDigit(a[2])
        || a.StartsWith("-gdwarf", StringComparison.Ordinal) || a.StartsWith("-ggdb", StringComparison.Ordinal)
        || a.StartsWith("-gno-", StringComparison.Ordinal)
        || a.StartsWith("-gvariable-location-views", StringComparison.Ordinal)
        || a.StartsWith("-Wa,--gdwarf", StringComparison.Ordinal)
        || a.StartsWith("-Wa,-gdwarf", StringComparison.Ordinal);
}
