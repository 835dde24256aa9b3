namespace PpcLivepatch.Tests.Shared;

/// <summary>
/// The tests' scratch directories: one folder per test run under the system's temporary directory, removed when
/// the run ends with every test passed. A failed run keeps it (its files are what one looks at next), as does
/// <c>PPCLP_KEEP_TEST_DIRS=1</c>. Left to pile up, the suite's runs had filled 56 GB of a development machine.
/// </summary>
[TestClass]
public sealed class ScratchDirectories
{
    private static int s_failures;

    private static readonly string s_run = Path.Combine(Path.GetTempPath(),
        typeof(ScratchDirectories).Assembly.GetName().Name!.ToLowerInvariant(), $"run-{Environment.ProcessId}");

    /// <summary>A new empty directory of this run.</summary>
    public static string New()
    {
        string dir = Path.Combine(s_run, Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        return dir;
    }

    [GlobalTestCleanup]
    public static void NoteOutcome(TestContext context)
    {
        if (context.CurrentTestOutcome != UnitTestOutcome.Passed) Interlocked.Increment(ref s_failures);
    }

    [AssemblyCleanup]
    public static void RemoveThisRunsDirectories()
    {
        if (s_failures > 0 || Environment.GetEnvironmentVariable("PPCLP_KEEP_TEST_DIRS") == "1"
            || !Directory.Exists(s_run)) return;
        try { Directory.Delete(s_run, recursive: true); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"could not remove the test run's directories {s_run}: {e.Message}");
        }
    }
}
