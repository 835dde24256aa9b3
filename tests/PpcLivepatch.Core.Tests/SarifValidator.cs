using System.Diagnostics;

namespace PpcLivepatch.Tests.Shared;

/// <summary>
/// npm's <c>@microsoft/sarif-multitool validate</c>, the SARIF SDK's own validator (schema and rules), over SARIF we
/// wrote: every error and every warning it reports fails the test. eng/install-prerequisites.sh installs it.
/// </summary>
internal static class SarifValidator
{
    private static string Tool =>
        Path.Combine(Environment.GetEnvironmentVariable("PPCLP_SARIF_MULTITOOL_DIR")
            ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache",
                "ppclivepatch-sarif-multitool"),
            "node_modules", "@microsoft", "sarif-multitool-linux", "Sarif.Multitool");

    public static void AssertValid(params string[] sarifFiles)
    {
        if (!File.Exists(Tool))
            Assert.Fail($"the SARIF validator is not installed at {Tool}: run eng/install-prerequisites.sh (npm " +
                "install @microsoft/sarif-multitool)");
        foreach (string file in sarifFiles)
        {
            string log = Path.Combine(Path.GetTempPath(), $"sarif-validation-{Guid.NewGuid():N}.sarif");
            var psi = new ProcessStartInfo(Tool) { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (string a in new[] { "validate", file, "--output", log }) psi.ArgumentList.Add(a);
            using var p = Process.Start(psi)!;
            var stdout = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEndAsync();
            if (!p.WaitForExit(300_000))
            {
                p.Kill(true);
                Assert.Fail($"sarif-multitool validate {file} did not finish");
            }
            p.WaitForExit();
            File.Delete(log);
            string output = stdout.Result + stderr.Result;
            var findings = output.Split('\n').Where(l => l.Contains(": error ") || l.Contains(": warning ")).ToList();
            Assert.AreEqual(0, p.ExitCode, $"sarif-multitool validate {file} failed:\n{output}");
            Assert.AreEqual(0, findings.Count, $"{file}:\n{string.Join("\n", findings)}");
            StringAssert.Contains(output, "1 files scanned", output);
        }
    }
}
