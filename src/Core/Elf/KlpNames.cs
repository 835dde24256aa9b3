using System.Text.RegularExpressions;

namespace PpcLivepatch.Elf;

/// <summary>
/// The names the livepatch core parses (Documentation/livepatch/module-elf-format.rst):
/// <c>.klp.rela.&lt;object&gt;.&lt;section&gt;</c> (kernel/livepatch/core.c, <c>".klp.rela.%55[^.]"</c>) and
/// <c>.klp.sym.&lt;object&gt;.&lt;name&gt;,&lt;sympos&gt;</c> (<c>".klp.sym.%55[^.].%511[^,],%lu"</c>).
/// </summary>
public static partial class KlpNames
{
    public const string RelaPrefix = ".klp.rela.";
    public const string SymPrefix = ".klp.sym.";

    [GeneratedRegex(@"^\.klp\.rela\.(?<obj>[^.]{1,55})\.(?<sec>.+)$")]
    private static partial Regex RelaName();

    [GeneratedRegex(@"^\.klp\.sym\.(?<obj>[^.]{1,55})\.(?<name>[^,]{1,511}),(?<pos>\d+)$")]
    private static partial Regex SymName();

    public static bool IsValidRelaSectionName(string name) => RelaName().IsMatch(name);

    /// <summary>Splits <c>.klp.sym.vmlinux.saved_command_line,0</c> into its object, symbol name and
    /// position.</summary>
    public static bool TryParseSymbol(string name, out string objectName, out string symbol, out ulong position)
    {
        var m = SymName().Match(name);
        objectName = m.Success ? m.Groups["obj"].Value : "";
        symbol = m.Success ? m.Groups["name"].Value : "";
        position = 0;
        return m.Success && ulong.TryParse(m.Groups["pos"].Value, out position);
    }

    // GCC's names for specialised copies of a function: IPA-CP (.constprop.N), IPA-SRA (.isra.N), partial inlining
    // (.part.N), hot/cold splitting (.cold, .cold.N), LTO privatisation and local aliases — and chains of them.
    [GeneratedRegex(@"^(\.(constprop|isra|part|lto_priv|specialized)\.\d+|\.cold(\.\d+)?|\.localalias)+$")]
    private static partial Regex GccCloneSuffix();

    /// <summary>True when <paramref name="name"/> is a GCC clone of <paramref name="function"/>, e.g.
    /// <c>helper.constprop.0.isra.0</c>.</summary>
    public static bool IsGccCloneOf(string name, string function) =>
        name.Length > function.Length + 1 && name.StartsWith(function, StringComparison.Ordinal)
            && name[function.Length] == '.'
        && GccCloneSuffix().IsMatch(name.AsSpan(function.Length));

    /// <summary>The name a C programmer knows: <c>cmdline_helper</c> for
    /// <c>.klp.sym.vmlinux.cmdline_helper,0</c>.</summary>
    public static string SourceName(string symbolName) =>
        TryParseSymbol(symbolName, out _, out string symbol, out _) ? symbol : symbolName;
}
