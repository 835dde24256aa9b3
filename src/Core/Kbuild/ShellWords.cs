using System.Text;

namespace PpcLivepatch.Kbuild;

/// <summary>
/// The words of a command kbuild recorded for <c>sh -c</c> (<c>cmd_X.o := …</c>), read as POSIX sh reads them —
/// blanks separate words; single quotes keep everything; double quotes keep everything but <c>\</c> before
/// <c>$ ` " \</c>; a backslash outside quotes keeps the next character — up to the first unquoted <c>;</c>,
/// <c>&amp;&amp;</c> or <c>||</c>: the compile is the first command, what follows (objtool, recordmcount) is
/// kbuild's own. So the compile runs as an argument vector, never through a shell that would read a path's blanks or
/// quotes. Expansions (<c>$</c>, backquotes), redirections, pipes and subshells are not read: a record using them
/// yields null.
/// </summary>
public static class ShellWords
{
    public static IReadOnlyList<string>? SplitFirstCommand(string command)
    {
        var words = new List<string>();
        var word = new StringBuilder();
        bool inWord = false;
        for (int i = 0; i < command.Length; i++)
        {
            char c = command[i];
            switch (c)
            {
                case ' ' or '\t' or '\n':
                    if (inWord) words.Add(word.ToString());
                    word.Clear();
                    inWord = false;
                    break;
                case ';':
                    return End();
                case '&' or '|' when i + 1 < command.Length && command[i + 1] == c:
                    return End();
                case '$' or '`' or '<' or '>' or '|' or '&' or '(' or ')':
                    return null;
                case '\'':
                    int close = command.IndexOf('\'', i + 1);
                    if (close < 0) return null;
                    word.Append(command, i + 1, close - i - 1);
                    inWord = true;
                    i = close;
                    break;
                case '"':
                    inWord = true;
                    for (i++; ; i++)
                    {
                        if (i >= command.Length) return null;
                        char d = command[i];
                        if (d == '"') break;
                        if (d is '$' or '`') return null;
                        if (d == '\\' && i + 1 < command.Length && command[i + 1] is '$' or '`' or '"' or '\\' or '\n')
                            d = command[++i];
                        word.Append(d);
                    }
                    break;
                case '\\':
                    if (i + 1 >= command.Length) return null;
                    word.Append(command[++i]);
                    inWord = true;
                    break;
                default:
                    word.Append(c);
                    inWord = true;
                    break;
            }
        }
        return End();

        IReadOnlyList<string>? End()
        {
            if (inWord) words.Add(word.ToString());
            return words.Count > 0 ? words : null;
        }
    }

    /// <summary>The command as one line a user can paste into a shell (for progress and error messages).</summary>
    public static string Join(IEnumerable<string> words) => string.Join(' ', words.Select(Quote));

    private static string Quote(string word) =>
        word.Length > 0 && word.All(c => char.IsAsciiLetterOrDigit(c) || "-_=+./,:@%".Contains(c))
            ? word : "'" + word.Replace("'", "'\\''") + "'";
}
