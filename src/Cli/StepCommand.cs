using System.Globalization;
using PpcLivepatch.Analysis;
using PpcLivepatch.Klp;
using PpcLivepatch.Patching;
using PpcLivepatch.Steps;

namespace PpcLivepatch.Cli;

/// <summary>
/// <c>ppc-livepatch step patch|verify|convert [OPTIONS] IN OUT [IN OUT...]</c>: one of the SDK's build steps, run
/// by its tasks in this (ahead-of-time compiled) process so a build does not wait for the JIT. Prints the step's
/// events in <see cref="StepProtocol"/>; exit status 0 succeeded, 1 failed, 2 bad usage.
/// <c>ppc-livepatch serve</c> runs steps one request line at a time until its input ends, so that an MSBuild node
/// starts the tool once rather than once per step.
/// </summary>
internal static class StepCommand
{
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        try
        {
            var result = Execute(args);
            stdout.Write(StepProtocol.Write(result));
            return result.Succeeded ? CliApp.ExitAccepted : CliApp.ExitRejected;
        }
        catch (UsageException e)
        {
            stderr.WriteLine($"ppc-livepatch : error {Diagnostics.DiagnosticCatalog.UsageError}: {e.Message}");
            return CliApp.ExitUsage;
        }
    }

    /// <summary>
    /// Answers each request line (<see cref="StepProtocol.ReadRequest"/>) with a step's events. A request that fails
    /// is answered with an error line and the next one is served: one bad step must not take the node's tool down.
    /// </summary>
    public static int Serve(TextReader stdin, TextWriter stdout)
    {
        stdout.Write(StepProtocol.ReadyLine + "\n");
        stdout.Flush();
        while (stdin.ReadLine() is { } line)
        {
            string response;
            try
            {
                var request = StepProtocol.ReadRequest(line);
                Environment.CurrentDirectory = request.Directory;   // relative item paths are the project's
                response = StepProtocol.Write(StepRunner.Run(request.Options, request.Objects));
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                response =
                    StepProtocol.WriteError(e is UsageException ? e.Message : $"{e.GetType().Name}: {e.Message}");
            }
            stdout.Write(response);
            stdout.Flush();
        }
        return CliApp.ExitAccepted;
    }

    /// <summary>The command-line form of a request (<c>step patch|verify|convert [OPTIONS] IN OUT…</c>), for running a
    /// step by hand.</summary>
    private static StepResult Execute(string[] args)
    {
        if (args.Length == 0 || StepOptionParsing.Step(args[0]) is not { } kind)
            throw new UsageException("step needs patch, verify or convert");
        string step = args[0];
        var shared = new SharedOptions();
        bool allowSiblingCalls = false, warnOnly = false;
        string? jsonReport = null, sarifReport = null;
        FixStrategy? strategy = FixStrategy.Auto;
        var sites = SiteSelection.Needed;
        var symbols = new List<KlpSymbolSpec>();
        var files = new List<string>();
        for (int i = 1; i < args.Length; i++)
        {
            string a = args[i];
            string? Value() => i + 1 < args.Length ? args[++i] : null;
            if (shared.TryTakeLoaderOption(a, Value)) continue;
            switch (a)
            {
                case "--allow-sibling-calls": allowSiblingCalls = true; break;
                case "--warn-only" when step == "verify": warnOnly = true; break;
                case "--json-report": jsonReport = Value(); break;
                case "--sarif-report": sarifReport = Value(); break;
                case "--strategy" when step == "patch": strategy = SharedOptions.Strategy(Value(),
                    allowNone: true); break;
                case "--sites" when step == "patch": sites = SharedOptions.Sites(Value()); break;
                case "--klp" when step == "convert":
                    // SYMBOL OBJECT NAME POSITION; an empty NAME means the symbol's own name.
                    if (i + 4 >= args.Length) throw new UsageException("--klp needs SYMBOL OBJECT NAME POSITION");
                    if (!ulong.TryParse(args[i + 4], NumberStyles.None, CultureInfo.InvariantCulture,
                        out ulong position))
                        throw new UsageException($"--klp position '{args[i + 4]}' is not a non-negative number");
                    symbols.Add(new KlpSymbolSpec(args[i + 1], args[i + 2],
                        args[i + 3].Length == 0 ? null : args[i + 3], position));
                    i += 4;
                    break;
                case "--":   // only object pairs follow, whatever their names
                    files.AddRange(args[(i + 1)..]);
                    i = args.Length;
                    break;
                default:
                    if (a.StartsWith('-') && a.Length > 1) throw new UsageException($"unknown option '{a}'");
                    files.Add(a);
                    break;
            }
        }
        if (files.Count == 0 || files.Count % 2 != 0) throw new UsageException("step needs INPUT OUTPUT pairs");
        var objects = new List<StepObject>();
        for (int i = 0; i < files.Count; i += 2) objects.Add(new StepObject(files[i], files[i + 1]));
        return StepRunner.Run(new StepOptions(kind, shared.Loader, strategy, sites, allowSiblingCalls, warnOnly,
            jsonReport, sarifReport, symbols), objects);
    }
}
