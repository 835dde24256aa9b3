using PpcLivepatch.Cli;
using PpcLivepatch.Diagnostics;

try
{
    return CliApp.Run(args, Console.Out, Console.Error);
}
catch (Exception e)
{
    // Every expected failure is a coded diagnostic already; anything else is a bug — say so in one coded line.
    Console.Error.WriteLine($"ppc-livepatch : error {DiagnosticCatalog.InternalError}: internal error " +
        $"({e.GetType().Name}: {e.Message}); please report it with the input file");
    // The stack is for the report, not for the user's log.
    if (Environment.GetEnvironmentVariable("PPC_LIVEPATCH_DEBUG") == "1") Console.Error.WriteLine(e);
    return CliApp.ExitUsage;
}
