using Microsoft.Build.Framework;

namespace PpcLivepatch.Build.Tasks;

/// <summary>
/// Where an item was written: its defining project file (MSBuild's DefiningProjectFullPath) and the line of the
/// element whose Include names it — MSBuild gives tasks no line numbers, so the file is searched for it. A diagnostic
/// about an item then opens the project file at that item in the IDE.
/// </summary>
internal static class ProjectItemLocation
{
    /// <summary>The symbol a KlpSymbol item names: its Name metadata, else the item itself.</summary>
    public static string KlpSymbolName(ITaskItem item) =>
        item.GetMetadata("Name") is { Length: > 0 } name ? name : item.ItemSpec;

    public static (string File, int Line) Of(ITaskItem item, string itemType, string fallbackFile)
    {
        string file = item.GetMetadata("DefiningProjectFullPath");
        if (string.IsNullOrEmpty(file) || !File.Exists(file)) return (fallbackFile, 0);
        try
        {
            string[] lines = File.ReadAllLines(file);
            for (int i = 0; i < lines.Length; i++)
            {
                int element = lines[i].IndexOf("<" + itemType, StringComparison.Ordinal);
                if (element < 0) continue;
                int include = lines[i].IndexOf("Include=\"", element, StringComparison.Ordinal);
                if (include < 0) continue;
                int start = include + "Include=\"".Length, end = lines[i].IndexOf('"', start);
                if (end < 0) continue;
                if (lines[i][start..end].Split(';').Any(v => v.Trim() == item.ItemSpec)) return (file, i + 1);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        return (file, 0);
    }

    /// <summary>The line of <c>&lt;property&gt;</c> in <paramref name="file"/>, or 0.</summary>
    public static int PropertyLine(string file, string property)
    {
        try
        {
            if (!File.Exists(file)) return 0;
            string[] lines = File.ReadAllLines(file);
            for (int i = 0; i < lines.Length; i++)
                if (lines[i].Contains("<" + property + ">", StringComparison.Ordinal)
                    || lines[i].Contains("<" + property + " ", StringComparison.Ordinal))
                    return i + 1;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        return 0;
    }
}
