using System.Text.RegularExpressions;

namespace PpcLivepatch.AssemblerRoute;

/// <summary>What one assembler statement is.</summary>
public enum StatementKind
{
    Label,
    Directive,
    Instruction,
}

/// <summary>A C line, as <c>.loc</c> or an inline-assembly marker names it.</summary>
public sealed record AsmSourceLine(string File, int Line, int Column);

/// <summary>
/// One statement of a compiler's assembly output: a label, a directive or an instruction, with where it stands — the
/// line it is on, the section it assembles into, whether it comes from an inline <c>asm</c> (between
/// <c>#APP</c> and <c>#NO_APP</c>), and the C line the compiler last named.
/// </summary>
public sealed record AsmStatement(
    int Line,
    StatementKind Kind,
    string Text,
    string Mnemonic,
    string Operands,
    string Section,
    bool InInlineAssembly,
    AsmSourceLine? Source)
{
    /// <summary>True for the last statement on its line (an edit after it can go on the next line).</summary>
    public bool EndsLine { get; init; }

    /// <summary>The function whose code the statement is part of (the last function label in its section).</summary>
    public string? Function { get; init; }
}

/// <summary>
/// A GNU-syntax ppc64 assembly file as GCC and clang write it, read statement by statement. It knows what the
/// assembler route needs and no more: sections (<c>.section</c>, <c>.text</c>/<c>.data</c>/<c>.bss</c>,
/// <c>.pushsection</c>/<c>.popsection</c>, <c>.previous</c>), labels (several on a line, numeric ones too), which
/// symbols are functions (<c>.type X, @function</c>), comments (<c>#</c> outside strings), statement separators
/// (<c>;</c>), inline assembly blocks and the C line each statement comes from (<c>.file</c>/<c>.loc</c>, and GCC's
/// <c># LINE "FILE" 1</c> marker at the start of an inline <c>asm</c>).
/// </summary>
public sealed partial class AssemblyText
{
    private AssemblyText(string[] lines, List<AsmStatement> statements, HashSet<string> functions,
        HashSet<string> labels)
    {
        Lines = lines;
        Statements = statements;
        Functions = functions;
        Labels = labels;
    }

    /// <summary>The file's lines, without their line ends.</summary>
    public IReadOnlyList<string> Lines { get; }

    public IReadOnlyList<AsmStatement> Statements { get; }

    /// <summary>Symbols the file types as functions.</summary>
    public IReadOnlySet<string> Functions { get; }

    /// <summary>Every label the file defines (functions' too).</summary>
    public IReadOnlySet<string> Labels { get; }

    /// <summary>Functions that hold inline assembly: hand-written code, whose address arithmetic only the
    /// object-level checks can vouch for.</summary>
    public IReadOnlySet<string> FunctionsWithInlineAssembly =>
        Statements.Where(s => s.InInlineAssembly && s.Function is not null).Select(s => s.Function!).ToHashSet();

    /// <summary>Inline assembly that computes a difference with a symbol (<c>.long sym - .</c>): a constant the
    /// assembler may recompute when code between moves, made by code the route cannot read.</summary>
    public bool InlineAssemblyComputesWithSymbols =>
        Statements.Any(s => s.InInlineAssembly && s.Operands.Contains('-') && SymbolInExpression().IsMatch(s.Operands));

    [GeneratedRegex(@"(?<![\w.$])(?:[A-Za-z_$][\w.$]*|\.[A-Za-z_$][\w.$]*)")]
    private static partial Regex SymbolInExpression();

    [GeneratedRegex(@"^\s*#\s*(\d+)\s+""((?:[^""\\]|\\.)*)""")]
    private static partial Regex InlineMarker();

    [GeneratedRegex(@"^([A-Za-z_.$][\w.$@]*|\d+|""[^""]*"")\s*:(?!:)")]
    private static partial Regex LeadingLabel();

    public static AssemblyText Parse(string text)
    {
        string[] lines = text.Split('\n');
        for (int i = 0; i < lines.Length; i++) lines[i] = lines[i].TrimEnd('\r');
        var statements = new List<AsmStatement>();
        var functions = new HashSet<string>(StringComparer.Ordinal);
        var labels = new HashSet<string>(StringComparer.Ordinal);
        var files = new Dictionary<int, string>();
        var sections = new SectionStack();
        bool inline = false;
        AsmSourceLine? source = null, inlineSource = null;
        var functionIn = new Dictionary<string, string>(StringComparer.Ordinal);

        for (int n = 0; n < lines.Length; n++)
        {
            string line = lines[n];
            string trimmed = line.Trim();
            // Compiler markers are comments to the assembler, and facts to us.
            if (trimmed is "#APP") { inline = true; inlineSource = null; continue; }
            if (trimmed is "#NO_APP") { inline = false; inlineSource = null; continue; }
            if (inline && InlineMarker().Match(trimmed) is { Success: true } marker)
            {
                int markerLine = Number(marker.Groups[1].Value);
                inlineSource = markerLine > 0 ? new(Unescape(marker.Groups[2].Value), markerLine, 0) : inlineSource;
                continue;
            }
            var pieces = SplitStatements(StripComment(line));
            int first = statements.Count;
            foreach (string piece in pieces)
            {
                string rest = piece.Trim();
                while (LeadingLabel().Match(rest) is { Success: true } label)
                {
                    string name = label.Groups[1].Value.Trim('"');
                    labels.Add(name);
                    if (functions.Contains(name)) functionIn[sections.Current] = name;
                    statements.Add(new(n, StatementKind.Label, name, "", "", sections.Current, inline,
                        inline ? inlineSource ?? source : source));
                    rest = rest[label.Length..].TrimStart();
                }
                if (rest.Length == 0) continue;
                int space = rest.IndexOfAny([' ', '\t']);
                string mnemonic = space < 0 ? rest : rest[..space];
                string operands = space < 0 ? "" : rest[(space + 1)..].Trim();
                if (mnemonic.StartsWith('.'))
                {
                    switch (mnemonic)
                    {
                        case ".file": ReadFile(operands, files); break;
                        case ".loc":
                            source = ReadLoc(operands, files) ?? source;
                            break;
                        case ".type":
                            if (Operands(operands) is [var name, var type]
                                && type.TrimStart('@', '%', '#') is "function" or "gnu_indirect_function")
                                functions.Add(name.Trim('"'));
                            break;
                        default: sections.Apply(mnemonic, operands); break;
                    }
                    statements.Add(new(n, StatementKind.Directive, rest, mnemonic, operands, sections.Current, inline,
                        inline ? inlineSource ?? source : source));
                }
                else statements.Add(new(n, StatementKind.Instruction, rest, mnemonic, operands, sections.Current,
                    inline, inline ? inlineSource ?? source : source));
            }
            for (int k = first; k < statements.Count; k++)
                statements[k] = statements[k] with
                {
                    EndsLine = k == statements.Count - 1,
                    Function = functionIn.GetValueOrDefault(statements[k].Section),
                };
        }
        return new AssemblyText(lines, statements, functions, labels);
    }

    /// <summary>Splits a line at <c>;</c> outside strings.</summary>
    private static List<string> SplitStatements(string line)
    {
        var pieces = new List<string>();
        int start = 0;
        bool quoted = false;
        for (int i = 0; i < line.Length; i++)
        {
            char c = line[i];
            if (c == '\\' && quoted) { i++; continue; }
            if (c == '"') quoted = !quoted;
            else if (c == ';' && !quoted) { pieces.Add(line[start..i]); start = i + 1; }
        }
        pieces.Add(line[start..]);
        return pieces;
    }

    /// <summary>A line without its <c>#</c> comment (the ppc64 assembler's comment character), strings kept.</summary>
    private static string StripComment(string line)
    {
        bool quoted = false;
        for (int i = 0; i < line.Length; i++)
        {
            char c = line[i];
            if (c == '\\' && quoted) { i++; continue; }
            if (c == '"') quoted = !quoted;
            else if (c == '#' && !quoted) return line[..i];
        }
        return line;
    }

    /// <summary>Comma-separated operands, commas inside strings and parentheses kept.</summary>
    public static List<string> Operands(string operands)
    {
        var list = new List<string>();
        int depth = 0, start = 0;
        bool quoted = false;
        for (int i = 0; i < operands.Length; i++)
        {
            char c = operands[i];
            if (c == '\\' && quoted) { i++; continue; }
            if (c == '"') quoted = !quoted;
            else if (quoted) continue;
            else if (c == '(') depth++;
            else if (c == ')') depth--;
            else if (c == ',' && depth == 0) { list.Add(operands[start..i].Trim()); start = i + 1; }
        }
        if (operands.Trim().Length > 0) list.Add(operands[start..].Trim());
        return list;
    }

    private static string Unescape(string s) => s.Replace("\\\\", "\\").Replace("\\\"", "\"");

    /// <summary><c>.file N "name"</c> and DWARF 5's <c>.file N "dir" "name" [md5 …]</c>.</summary>
    private static void ReadFile(string operands, Dictionary<int, string> files)
    {
        var m = Regex.Match(operands, @"^(\d+)\s+""((?:[^""\\]|\\.)*)""(?:\s+""((?:[^""\\]|\\.)*)"")?");
        if (!m.Success) return;
        string name = Unescape(m.Groups[3].Success ? m.Groups[3].Value : m.Groups[2].Value);
        if (m.Groups[3].Success && !Path.IsPathRooted(name) && m.Groups[2].Value.Length > 0)
            name = Path.Combine(Unescape(m.Groups[2].Value), name);
        files[Number(m.Groups[1].Value)] = name;
    }

    private static AsmSourceLine? ReadLoc(string operands, Dictionary<int, string> files)
    {
        var m = Regex.Match(operands, @"^(\d+)\s+(\d+)(?:\s+(\d+))?");
        if (!m.Success || !files.TryGetValue(Number(m.Groups[1].Value), out string? file)) return null;
        int line = Number(m.Groups[2].Value);
        return line <= 0 ? null : new(file, line, m.Groups[3].Success ? Number(m.Groups[3].Value) : 0);
    }

    /// <summary>A number from the text; one too large for a line number names no line (0).</summary>
    private static int Number(string digits) => int.TryParse(digits, out int n) ? n : 0;

    /// <summary>The section statements assemble into, as the assembler tracks it.</summary>
    private sealed class SectionStack
    {
        private readonly Stack<(string Current, string Previous)> _pushed = new();
        private string _previous = ".text";

        public string Current { get; private set; } = ".text";

        public void Apply(string directive, string operands)
        {
            switch (directive)
            {
                case ".text" or ".data" or ".bss": Switch(directive); break;
                case ".section": Switch(SectionName(operands)); break;
                case ".pushsection":
                    _pushed.Push((Current, _previous));
                    Switch(SectionName(operands));
                    break;
                case ".popsection" when _pushed.Count > 0:
                    (Current, _previous) = _pushed.Pop();
                    break;
                case ".previous": (Current, _previous) = (_previous, Current); break;
            }
        }

        private void Switch(string name)
        {
            if (name.Length == 0 || name == Current) return;
            _previous = Current;
            Current = name;
        }

        private static string SectionName(string operands)
        {
            var all = Operands(operands);
            if (all.Count == 0) return "";
            string name = all[0].Trim();
            // ".section .text.f,"ax",@progbits", ".section ".text"" and a subsection number after a space.
            if (!name.StartsWith('"')) name = name.Split(' ', '\t')[0];
            return name.Trim('"');
        }
    }
}
