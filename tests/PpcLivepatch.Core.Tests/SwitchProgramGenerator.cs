using System.Text;

namespace PpcLivepatch.Tests;

/// <summary>
/// Random C programs made of switches — what csmith never generates and what jump tables are made of: dense and
/// sparse cases, a switch on a mask (no bound check of its own), on an offset index, on a remainder, fallthrough,
/// nested switches, returns from inside a case, several switches in one function, switches in a loop, and calls to
/// static helpers from the cases (the local calls a patch fixes). Deterministic for a seed. The program is one
/// translation unit (<c>prog.c</c>) with global <c>fN(int, int)</c> functions; <see cref="Harness"/> calls them over a
/// grid of inputs and prints a checksum.
/// </summary>
/// <remarks>
/// With <c>rich</c>, functions also get what a second, held-out generator found to matter: computed gotos through
/// absolute and label-difference tables, function-pointer tables, setjmp/longjmp, variable-length arrays, a varargs
/// helper, and inline-assembly program-counter reads (<c>bl 1f; .long K; 1: mflr</c> — a nop after that branch
/// would read the nop instead of K).
/// </remarks>
internal sealed class SwitchProgramGenerator(int seed, bool globalHelpers = false, bool rich = false)
{
    private readonly Random _random = new(seed);
    private readonly StringBuilder _c = new();
    private const int Helpers = 4;

    public int Functions { get; } = 4;

    public string Program()
    {
        _c.Clear();
        _c.AppendLine($"/* switch-heavy program, seed {seed} */");
        if (rich) _c.AppendLine("#include <setjmp.h>\n#include <stdarg.h>");
        _c.Append(HelperDefinitions(globalHelpers ? "" : "static "));
        if (rich) _c.Append(RichHelpers());
        for (int f = 0; f < Functions; f++)
        {
            _c.AppendLine($"int f{f}(int a, int b)");
            _c.AppendLine("{");
            _c.AppendLine($"\tint r = h{_random.Next(Helpers)}(b);");
            int switches = _random.Next(2, 5);
            for (int s = 0; s < switches; s++)
            {
                Switch(1, _random.Next(6) == 0);
                if (rich) RichStatement(f, s);
            }
            _c.AppendLine("\treturn r;");
            _c.AppendLine("}");
        }
        return _c.ToString();
    }

    private string HelperDefinitions(string storage)
    {
        string[] ops = ["x * 7 + 3", "(x ^ 0x5a5a) - 11", "(x << 3) - x", "x / 3 + (x & 15)"];
        var c = new StringBuilder();
        for (int h = 0; h < Helpers; h++)
            c.AppendLine($"{storage}int __attribute__((noinline)) h{h}(int x) {{ return " +
                $"{ops[(h + seed) % ops.Length]}; }}");
        return c.ToString();
    }

    /// <summary>The helpers as a translation unit of their own: what serves the calls once they are made
    /// undefined.</summary>
    public string HelperUnit() => HelperDefinitions("");

    /// <summary>The helpers' names (global with <c>globalHelpers</c>: calls to them become the loader's "needed"
    /// sites).</summary>
    public IEnumerable<string> HelperNames => Enumerable.Range(0, Helpers).Select(h => $"h{h}");

    /// <summary>Calls every function over a grid of inputs, folding the results into one checksum.</summary>
    public string Harness()
    {
        var c = new StringBuilder("#include <stdio.h>\n");
        for (int f = 0; f < Functions; f++) c.AppendLine($"int f{f}(int, int);");
        c.AppendLine("int main(void)\n{\n\tunsigned long s = 0;");
        c.AppendLine("\tfor (int a = -40; a < 90; a++)\n\t\tfor (int b = -5; b < 30; b++) {");
        for (int f = 0; f < Functions; f++) c.AppendLine($"\t\t\ts = s * 1000003 + (unsigned)f{f}(a, b);");
        c.AppendLine("\t\t}\n\tprintf(\"checksum = %lu\\n\", s);\n\treturn 0;\n}");
        return c.ToString();
    }

    private string RichHelpers()
    {
        string storage = globalHelpers ? "" : "static ";
        return $$"""
            {{storage}}int __attribute__((noinline)) hv(int n, ...)
            {
            	va_list ap;
            	int s = 0;
            	va_start(ap, n);
            	for (int i = 0; i < n; i++) s = s * 31 + va_arg(ap, int);
            	va_end(ap);
            	return s;
            }
            static int (*const fptab[4])(int) = { h0, h1, h2, h3 };
            static jmp_buf jb;
            static void __attribute__((noinline)) jump_if(int x) { if (x & 1) longjmp(jb, x | 2); }
            /* The return address of "bl 1f" is the word after it: a nop there would be read instead of K. */
            static unsigned __attribute__((noinline)) pc_word(void)
            {
            	unsigned long p;
            	__asm__ volatile("bl 1f\n\t.long {{0x12345000 + seed % 4096}}\n1:\tmflr %0" : "=r"(p) : : "lr");
            	return *(unsigned *)p;
            }

            """;
    }

    /// <summary>One of the rich features, as a statement of function f.</summary>
    private void RichStatement(int f, int s)
    {
        string label = $"g{f}_{s}";
        switch (_random.Next(7))
        {
            case 0:
                // Computed goto through a table of absolute label addresses.
                Line(1, "{");
                Line(2, $"static void *const t[] = {{ &&{label}a, &&{label}b, &&{label}c, &&{label}d }};");
                Line(2, $"goto *t[(unsigned)(a + {s}) & 3];");
                Line(1, $"{label}a: r += h{_random.Next(Helpers)}(b); goto {label}e;");
                Line(1, $"{label}b: r ^= {_random.Next(1, 999)}; goto {label}e;");
                Line(1, $"{label}c: r = r * 3 - h{_random.Next(Helpers)}(a);");
                Line(1, $"{label}d: r -= {_random.Next(1, 99)};");
                Line(1, $"{label}e: ;");
                Line(1, "}");
                break;
            case 1:
                // Computed goto through label differences (position-independent).
                Line(1, "{");
                Line(2, $"static const int d[] = {{ &&{label}a - &&{label}a, &&{label}b - &&{label}a, " +
                    $"&&{label}c - &&{label}a }};");
                Line(2, $"goto *(&&{label}a + d[(unsigned)(b + {s}) % 3]);");
                Line(1, $"{label}a: r += {_random.Next(1, 99)}; goto {label}e;");
                Line(1, $"{label}b: r = h{_random.Next(Helpers)}(r) + 1; goto {label}e;");
                Line(1, $"{label}c: r -= h{_random.Next(Helpers)}(b);");
                Line(1, $"{label}e: ;");
                Line(1, "}");
                break;
            case 2:
                Line(1, $"r += fptab[(unsigned)(a ^ {s}) & 3](b + r);");
                break;
            case 3:
                Line(1, "{");
                Line(2, "volatile int saved = r;");
                Line(2, $"int k = setjmp(jb);");
                Line(2, $"if (k == 0) {{ jump_if(a + {s}); r += h{_random.Next(Helpers)}(b); }}");
                Line(2, "else r = saved + k;");
                Line(1, "}");
                break;
            case 4:
                Line(1, "{");
                Line(2, $"int n = ((unsigned)a % 7) + 1, v[n];");
                Line(2, $"for (int i = 0; i < n; i++) v[i] = h{_random.Next(Helpers)}(i + b);");
                Line(2, "r += v[n / 2] - v[0];");
                Line(1, "}");
                break;
            case 5:
                Line(1, $"r += hv(3, a, b, r) + hv(1, {s});");
                break;
            default:
                Line(1, "r += (int)(pc_word() & 0xfff);");
                break;
        }
    }

    private void Line(int depth, string text) => _c.Append('\t', depth).AppendLine(text);

    private void Switch(int depth, bool inLoop)
    {
        var (selector, values) = _random.Next(5) switch
        {
            0 => Masked(),
            1 => ($"(unsigned)(a - {_random.Next(5, 40)})", Dense(0, _random.Next(5, 24))),
            2 => ($"a % {_random.Next(5, 13)}", Dense(-3, _random.Next(6, 14))),
            3 => ("b", Sparse()),
            _ => (depth == 1 ? "a" : "b", Dense(_random.Next(-4, 4), _random.Next(5, 20))),
        };
        if (inLoop)
        {
            Line(depth, $"for (int i = 0; i < {_random.Next(2, 5)}; i++) {{");
            selector = $"({selector}) + i";
            depth++;
        }
        Line(depth, $"switch ({selector}) {{");
        foreach (int v in values)
        {
            Line(depth, $"case {v}:");
            Body(depth + 1, v);
        }
        if (_random.Next(3) > 0)
        {
            Line(depth, "default:");
            Line(depth + 1, $"r += {_random.Next(1, 99)};");
        }
        Line(depth, "}");
        if (inLoop) Line(depth - 1, "}");
    }

    private void Body(int depth, int value)
    {
        switch (_random.Next(9))
        {
            case 0: Line(depth, $"r = h{_random.Next(Helpers)}(r + {value});"); break;
            case 1: Line(depth, $"r ^= {_random.Next(1, 1 << 12)};"); break;
            case 2: Line(depth, $"r = r * {_random.Next(2, 9)} - {value};"); break;
            case 3: Line(depth, $"r += h{_random.Next(Helpers)}(a) - h{_random.Next(Helpers)}(b);"); break;
            case 4: Line(depth, $"if (r > {_random.Next(100, 5000)}) return r - {value};"); break;
            case 5 when depth < 4: Switch(depth, false); break;
            case 6: Line(depth, $"r = (r >> 1) + {value};"); break;
            default: Line(depth, $"r -= {_random.Next(1, 500)};"); break;
        }
        if (_random.Next(4) > 0) Line(depth, "break;");   // else fall through into the next case
    }

    /// <summary>A mask selector: the index is bounded by the mask, so the compiler emits no compare of its
    /// own.</summary>
    private (string, IEnumerable<int>) Masked()
    {
        int[] masks = [7, 13, 15, 11, 31, 27];
        int mask = masks[_random.Next(masks.Length)];
        var values = Enumerable.Range(0, mask + 1).Where(v => (v & mask) == v && _random.Next(5) > 0).ToList();
        if (values.Count < 4) values = Enumerable.Range(0, mask + 1).Where(v => (v & mask) == v).ToList();
        return ($"a & {mask}", values);
    }

    private static IEnumerable<int> Dense(int from, int count) => Enumerable.Range(from, count);

    private IEnumerable<int> Sparse() =>
        Enumerable.Range(0, _random.Next(4, 9)).Select(i => i * _random.Next(40, 90) + _random.Next(10)).Distinct();
}
