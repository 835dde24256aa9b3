namespace PpcLivepatch.Kbuild;

/// <summary>The cross toolchain as kbuild and the SDK run it: where a tool is on PATH, and what to install for a
/// <c>CrossCompilePrefix</c> (Debian's package where Debian has one, else what the prefix must name).</summary>
public static class Toolchain
{
    /// <summary>The full path of <paramref name="tool"/> on PATH, or null.</summary>
    public static string? Find(string tool) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator,
                StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, tool)).FirstOrDefault(File.Exists);

    /// <summary>The first line of <c>COMPILER --version</c> (what kbuild records as
    /// <c>CONFIG_CC_VERSION_TEXT</c>), or null when it cannot be run.</summary>
    public static string? VersionText(string compiler)
    {
        string? path = Path.IsPathRooted(compiler) ? compiler : Find(compiler);
        if (path is null || !File.Exists(path)) return null;
        var psi = new System.Diagnostics.ProcessStartInfo(path, "--version")
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        psi.Environment["LC_ALL"] = "C";
        try
        {
            using var process = System.Diagnostics.Process.Start(psi)!;
            // Both streams at once, so a compiler that fills one pipe never waits on the other.
            var errors = process.StandardError.ReadToEndAsync();
            string first = process.StandardOutput.ReadToEnd().Split('\n')[0].Trim();
            process.WaitForExit();
            errors.Wait();
            return process.ExitCode == 0 && first.Length > 0 ? first : null;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return null;
        }
    }

    public static string InstallAdvice(string prefix) => prefix switch
    {
        "powerpc64le-linux-gnu-" =>
            "install it (Debian: apt-get install gcc-powerpc64le-linux-gnu binutils-powerpc64le-linux-gnu) " +
            "or set CrossCompilePrefix",
        "powerpc64-linux-gnu-" =>
            "install it (Debian: apt-get install gcc-powerpc64-linux-gnu binutils-powerpc64-linux-gnu) " +
            "or set CrossCompilePrefix",
        "" => "CrossCompilePrefix is empty, which builds with the host's own gcc and ld (on a ppc64 host); " +
            "install them (Debian: apt-get install gcc binutils), or set CrossCompilePrefix to a cross toolchain " +
            "such as powerpc64le-linux-gnu-",
        _ => $"CrossCompilePrefix '{prefix}' names no toolchain Debian packages; install one whose tools are " +
            $"named {prefix}gcc and {prefix}ld, or use powerpc64le-linux-gnu- (Debian: gcc-powerpc64le-linux-gnu) " +
            "or powerpc64-linux-gnu- (gcc-powerpc64-linux-gnu)",
    };
}
