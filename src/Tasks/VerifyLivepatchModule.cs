using Microsoft.Build.Framework;
using PpcLivepatch.Analysis;
using PpcLivepatch.Diagnostics;

namespace PpcLivepatch.Build.Tasks;

/// <summary>
/// Runs the kernel loader model on the final module(s) and copies each accepted one to its <c>OutputFile</c>.
/// With <see cref="Mode"/> <c>warn</c> the rejections become warnings and the output is still written — for
/// experiments that want to watch the kernel refuse a module.
/// </summary>
public sealed class VerifyLivepatchModule : LivepatchObjectTask
{
    /// <summary><c>error</c> (default) or <c>warn</c>.</summary>
    public string Mode { get; set; } = "error";

    public bool AllowSiblingCalls { get; set; }

    public string? JsonReport { get; set; }

    public string? SarifReport { get; set; }

    protected override bool ExecuteCore()
    {
        bool warnOnly = string.Equals(Mode, "warn", StringComparison.OrdinalIgnoreCase);
        var reports = new List<ObjectReport>();
        foreach (var item in Objects)
        {
            string output = OutputOf(item);
            var image = Load(item.ItemSpec);
            if (image is null) { DeleteIfExists(output); continue; }
            var report = ObjectVerifier.Verify(image, LoaderOptions);
            reports.Add(report);
            foreach (var d in report.Diagnostics)
            {
                bool promote = !AllowSiblingCalls && d.Code == DiagnosticCatalog.SiblingCallToExternal;
                var shown = warnOnly && (d.Severity == Severity.Error || promote) ? d with { Severity = Severity.Warning } : d;
                DiagnosticLogging.Log(Log, shown, HelpLinkBase, promote && !warnOnly);
            }
            int rejected = report.Sites.Count(s => s.Verdict == Verdict.Reject);
            Log.LogMessage(MessageImportance.Normal, "{0}: {1} ({2} call sites, {3} rejected)", item.ItemSpec,
                report.Accepted ? "the kernel would load it" : "the kernel would refuse it", report.Sites.Count, rejected);
            bool ok = !Log.HasLoggedErrors;
            if (ok && output != item.ItemSpec && !Write(output, image.Bytes.ToArray())) ok = false;
            if (!ok) DeleteIfExists(output);
        }
        WriteReport(JsonReport, ReportWriters.Render(reports, ReportFormat.Json));
        WriteReport(SarifReport, ReportWriters.Render(reports, ReportFormat.Sarif));
        return !Log.HasLoggedErrors;
    }
}
