using System.Diagnostics;

namespace PpcLivepatch.AssemblerRoute;

/// <summary>Runs a tool from an argument vector (never a shell string) and passes its output on.</summary>
public static class ToolProcess
{
    /// <returns>The exit code; 127 when the program cannot be started, with the reason on
    /// <paramref name="stderr"/>.</returns>
    public static int Run(IReadOnlyList<string> argv, TextWriter stdout, TextWriter stderr)
    {
        var info = new ProcessStartInfo(argv[0])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string a in argv.Skip(1)) info.ArgumentList.Add(a);
        Process process;
        try
        {
            process = Process.Start(info)!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            stderr.WriteLine($"{argv[0]}: cannot run: {e.Message}");
            return 127;
        }
        using (process)
        {
            // Both streams at once, so a compiler that fills one pipe never waits on the other.
            var err = process.StandardError.ReadToEndAsync();
            string output = process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            stdout.Write(output);
            stderr.Write(err.Result);
            return process.ExitCode;
        }
    }
}
