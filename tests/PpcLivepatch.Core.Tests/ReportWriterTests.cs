using System.Text.Json;
using PpcLivepatch.Analysis;
using PpcLivepatch.Reports;

namespace PpcLivepatch.Tests;

/// <summary>The streamed JSON of verify (site objects from names encoded once, written in pieces while the next file
/// is checked) against the document System.Text.Json's own writer makes.</summary>
[TestClass]
public sealed class ReportWriterTests
{
    [TestMethod]
    public void StreamedJsonIsWhatTheJsonWriterWritesForEveryFixture()
    {
        var paths = Repo.AllFixtures.ToList();
        var reports = ObjectVerifier.VerifyEach(paths, LoaderOptions.Default).ToList();
        var streamed = new StringWriter();
        ReportWriters.Stream(ObjectVerifier.VerifyEach(paths, LoaderOptions.Default), ReportFormat.Json, streamed);

        // The reference: the same document written node by node with Utf8JsonWriter, indented.
        var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions
                   { Indented = true,
                       Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            using var parsed = JsonDocument.Parse(ReportWriters.Json(reports));
            parsed.WriteTo(w);
        }
        string reference = System.Text.Encoding.UTF8.GetString(buffer.ToArray()) + "\n";
        Assert.AreEqual(reference, streamed.ToString());
        Assert.AreEqual(ReportWriters.Json(reports), streamed.ToString());
        Assert.IsTrue(reports.Sum(r => r.Sites.Count) > 300, "the fixtures have sites to write");
    }

    [TestMethod]
    public void JsonWrittenOutSiteBySiteIsTheSameDocument()
    {
        // A large module's sites are written out in pieces; a threshold of one byte makes every site a piece, and
        // both the text writer and the raw byte stream must still carry the one document.
        var paths = Repo.AllFixtures.ToList();
        string whole = ReportWriters.Json(ObjectVerifier.VerifyEach(paths, LoaderOptions.Default).ToList());
        var text = new StringWriter();
        ReportWriters.Stream(ObjectVerifier.VerifyEach(paths, LoaderOptions.Default), ReportFormat.Json, text, null,
            drainThreshold: 1);
        Assert.AreEqual(whole, text.ToString());

        var raw = new MemoryStream();
        var beside = new StringWriter();
        ReportWriters.Stream(ObjectVerifier.VerifyEach(paths, LoaderOptions.Default), ReportFormat.Json, beside, raw,
            drainThreshold: 1);
        Assert.AreEqual(whole, System.Text.Encoding.UTF8.GetString(raw.ToArray()) + beside);
    }

    [TestMethod]
    public void AFailureWhileCheckingAheadReachesTheWriter()
    {
        static IEnumerable<ObjectReport> Failing()
        {
            yield return ObjectVerifier.Verify(Repo.Fixture("calls.kpatch.le.o"), LoaderOptions.Default);
            throw new InvalidOperationException("checking failed");
        }
        var e = Assert.ThrowsExactly<InvalidOperationException>(() =>
            ReportWriters.Stream(Failing(), ReportFormat.Json, new StringWriter()));
        Assert.AreEqual("checking failed", e.Message);
    }
}
