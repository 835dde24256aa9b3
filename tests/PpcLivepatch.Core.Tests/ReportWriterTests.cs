using System.Text.Json;
using PpcLivepatch.Analysis;
using PpcLivepatch.Reports;

namespace PpcLivepatch.Tests;

/// <summary>The streamed JSON of verify (hand-laid site objects, written while the next file is checked) against the
/// document System.Text.Json's own writer makes.</summary>
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
                   { Indented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
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
