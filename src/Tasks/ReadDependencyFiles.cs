using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

namespace PpcLivepatch.Build.Tasks;

/// <summary>
/// Reads the make-style dependency files gcc wrote with <c>-MMD</c> and returns each source with a
/// <c>Dependencies</c> metadata (its headers), so that editing a header recompiles exactly the sources that
/// include it. A missing or unreadable file just means "not compiled yet".
/// </summary>
public sealed class ReadDependencyFiles : PpcLivepatchTask
{
    [Required] public ITaskItem[] Sources { get; set; } = [];

    [Output] public ITaskItem[] SourcesWithDependencies { get; private set; } = [];

    protected override bool ExecuteCore()
    {
        SourcesWithDependencies = Sources.Select(source =>
        {
            var item = new TaskItem(source);
            item.SetMetadata("Dependencies",
                string.Join(";", Parse(source.GetMetadata("DependencyFile"), source.GetMetadata("FullPath"))));
            return (ITaskItem)item;
        }).ToArray();
        return true;
    }

    /// <summary>The prerequisites of the first rule: <c>target: src.c dir/a.h \</c> continued over lines.</summary>
    internal static IEnumerable<string> Parse(string dependencyFile, string source)
    {
        string text;
        try
        {
            if (string.IsNullOrEmpty(dependencyFile) || !File.Exists(dependencyFile)) return [];
            text = File.ReadAllText(dependencyFile);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return [];
        }
        string joined = text.Replace("\\\r\n", " ").Replace("\\\n", " ");
        string firstRule = joined.Split('\n')[0];
        int colon = firstRule.IndexOf(": ", StringComparison.Ordinal);
        if (colon < 0) return [];
        var result = new List<string>();
        // Escaped spaces ("\ ") belong to a file name.
        foreach (string token in firstRule[(colon + 2)..].Replace("\\ ", "\u0001").Split(' ',
            StringSplitOptions.RemoveEmptyEntries))
        {
            string path = Path.GetFullPath(token.Replace('\u0001', ' '),
                Path.GetDirectoryName(Path.GetFullPath(dependencyFile))!);
            if (path != source) result.Add(path);
        }
        return result;
    }
}
