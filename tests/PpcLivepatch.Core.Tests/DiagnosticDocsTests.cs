using PpcLivepatch.Diagnostics;

namespace PpcLivepatch.Tests;

[TestClass]
public sealed class DiagnosticDocsTests
{
    [TestMethod]
    public void EveryCodeHasADocPageThatExplainsIt()
    {
        foreach (var d in DiagnosticCatalog.All)
        {
            string page = Path.Combine(Repo.Root, "docs", "diagnostics", d.Code + ".md");
            Assert.IsTrue(File.Exists(page), $"{d.Code} has no page at docs/diagnostics/{d.Code}.md");
            string text = File.ReadAllText(page);
            StringAssert.StartsWith(text, $"# {d.Code}: ", d.Code);
            foreach (string heading in new[] { "## Example", "## How to fix" })
                StringAssert.Contains(text, heading, $"{d.Code} page lacks '{heading}'");
        }
    }

    [TestMethod]
    public void CodesAreStableAndInTheirRanges()
    {
        foreach (var d in DiagnosticCatalog.All)
        {
            StringAssert.Matches(d.Code, new System.Text.RegularExpressions.Regex(@"^PLP\d{4}$"));
            char range = d.Code[3];
            if (range == '2') Assert.AreEqual(Severity.Error, d.Severity, d.Code);
            if (range == '1') Assert.AreEqual(Severity.Error, d.Severity, d.Code);
        }
        Assert.AreEqual(DiagnosticCatalog.All.Count, DiagnosticCatalog.All.Select(d => d.Code).Distinct().Count());
        var pages = Directory.GetFiles(Path.Combine(Repo.Root, "docs", "diagnostics"),
            "PLP*.md").Select(Path.GetFileNameWithoutExtension);
        CollectionAssert.AreEquivalent(DiagnosticCatalog.All.Select(d =>
            d.Code).ToList(), pages.ToList(), "a page without a code, or a code without a page");
    }

    [TestMethod]
    public void TheIndexListsEveryCodeWithItsSeverity()
    {
        // docs/diagnostics/README.md is SARIF's informationUri: it must not fall behind the catalog.
        string index = File.ReadAllText(Path.Combine(Repo.Root, "docs", "diagnostics", "README.md"));
        foreach (var d in DiagnosticCatalog.All)
            StringAssert.Contains(index, $"| [{d.Code}]({d.Code}.md) | {d.Severity.ToString().ToLowerInvariant()} |",
                d.Code);
    }
}
