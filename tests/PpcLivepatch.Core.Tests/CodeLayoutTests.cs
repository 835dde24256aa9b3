namespace PpcLivepatch.Tests;

/// <summary>The sources stay readable side by side: no line of C# over 120 columns, except text that cannot be
/// wrapped without changing it (inside a raw string literal, a verbatim regex).</summary>
[TestClass]
public sealed class CodeLayoutTests
{
    [TestMethod]
    public void NoSourceLineIsLongerThan120Columns()
    {
        var offenders = new List<string>();
        var sources = Directory.EnumerateFiles(Path.Combine(Repo.Root, "src"), "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}")
                && !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}"));
        foreach (string file in sources)
        {
            bool inRaw = false;
            int number = 0;
            foreach (string line in File.ReadLines(file))
            {
                number++;
                bool wasInRaw = inRaw;
                if ((line.Split("\"\"\"").Length - 1) % 2 == 1) inRaw = !inRaw;
                if (line.Length <= 120 || wasInRaw || line.Contains("@\"", StringComparison.Ordinal)) continue;
                offenders.Add($"{Path.GetRelativePath(Repo.Root, file)}:{number}: {line.Length} columns");
            }
        }
        Assert.AreEqual(0, offenders.Count, string.Join("\n", offenders));
    }
}
