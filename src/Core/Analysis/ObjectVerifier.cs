using PpcLivepatch.Diagnostics;
using PpcLivepatch.Dwarf;
using PpcLivepatch.Elf;
using PpcLivepatch.Ppc64;

namespace PpcLivepatch.Analysis;

/// <summary>Everything verify found in one object: each call site's verdict and the diagnostics.</summary>
/// <summary>How many call sites got each verdict.</summary>
public readonly record struct SiteCounts(int Accepted, int Rejected, int Exempt)
{
    public int Total => Accepted + Rejected + Exempt;

    public static SiteCounts Of(IEnumerable<SiteVerdict> verdicts)
    {
        int a = 0, r = 0, e = 0;
        foreach (var v in verdicts)
        {
            if (v.Verdict == Verdict.Reject) r++;
            else if (v.Verdict == Verdict.Exempt) e++;
            else a++;
        }
        return new SiteCounts(a, r, e);
    }
}

public sealed record ObjectReport(string Path, PpcAbi? Abi, IReadOnlyList<SiteVerdict> Sites,
    IReadOnlyList<Diagnostic> Diagnostics)
{
    private SiteCounts? _counts;

    /// <summary>The verdict counts; a summary report has them without the <see cref="Sites"/> themselves.</summary>
    public SiteCounts Counts
    {
        get => _counts ?? SiteCounts.Of(Sites);
        init => _counts = value;
    }

    /// <summary>True when the kernel would load the object (warnings allowed).</summary>
    public bool Accepted => Diagnostics.All(d => d.Severity != Severity.Error);

    /// <summary>True when the input could not be read or parsed at all.</summary>
    public bool Unreadable => Abi is null;
}

/// <summary>Runs the kernel loader model and the hazard checks over one object file.</summary>
public static class ObjectVerifier
{
    [ThreadStatic] private static byte[]? t_buffer;

    /// <summary>Reads and verifies one file. The read buffer is reused per thread; the report does not refer to
    /// it.</summary>
    public static ObjectReport Verify(string path, LoaderOptions options) => Verify(path, options, allSites: true);

    /// <param name="allSites">False: a summary — the report keeps only the sites that are not plain accepted local
    /// calls (the ones diagnostics and hazards are about), with <see cref="ObjectReport.Counts"/> for all.</param>
    public static ObjectReport Verify(string path, LoaderOptions options, bool allSites)
    {
        if (!ElfImage.TryLoad(path, ref t_buffer, out var image, out var error))
            return new ObjectReport(path, null, [], [error!]);
        return Verify(image!, options, allSites);
    }

    /// <summary>
    /// Verifies files one after the other, yielding each report as it is ready, so a caller can write it and let it
    /// go. Sequential on purpose: on the Debian module corpus two threads were slower than one (1.5 s vs 1.05 s, and
    /// twice the memory) — the work is allocation-bound, not CPU-bound.
    /// </summary>
    public static IEnumerable<ObjectReport> VerifyEach(IEnumerable<string> paths, LoaderOptions options,
        bool allSites = true) =>
        paths.Select(p => Verify(p, options, allSites));

    public static ObjectReport Verify(ElfImage image, LoaderOptions options) =>
        Verify(new ObjectAnalysis(image), options, allSites: true);

    public static ObjectReport Verify(ElfImage image, LoaderOptions options, bool allSites) =>
        Verify(new ObjectAnalysis(image), options, allSites);

    public static ObjectReport Verify(ObjectAnalysis analysis, LoaderOptions options, bool allSites)
    {
        var image = analysis.Image;
        var functions = analysis.Functions;
        var lines = analysis.Lines;
        Func<ElfRelocationSection, ElfRela, ElfSymbol, bool>? interesting = allSites ? null
            : (rs, rela, sym) => !KernelLoaderModel.IsPlainAcceptedCall(image, options, rs, rela, sym);
        var sites = CallSiteScanner.Scan(image, functions, lines, interesting, out int plainAccepted);
        string? module = null;
        string ModuleName() => module ??= options.ModuleNameFor(image.Path);
        var verdicts = new List<SiteVerdict>(sites.Count);
        foreach (var s in sites) verdicts.Add(KernelLoaderModel.Judge(s, options, image.Abi, ModuleName));

        var diagnostics = new List<Diagnostic>();
        // REL24_NOTOC rejections are reported once per section by the relocation-type check below.
        foreach (var v in verdicts.Where(v =>
            v.Verdict == Verdict.Reject && v.Code != DiagnosticCatalog.UnsupportedRelocation))
            diagnostics.Add(ToDiagnostic(image.Path, v));
        diagnostics.AddRange(ModuleChecks.UnsupportedRelocations(image, functions, options));
        diagnostics.AddRange(ModuleChecks.TocBasedOnPcrelKernel(image, functions, options));
        diagnostics.AddRange(ModuleChecks.LivepatchFormat(image, options));
        diagnostics.AddRange(ModuleChecks.FtraceModelMismatch(image, options));
        diagnostics.AddRange(ModuleChecks.FtraceRecordsSplit(image));
        diagnostics.AddRange(SiblingCallHazards.Find(analysis, sites, options,
            allSites ? null : () => CallSiteScanner.Scan(image, functions, lines)));
        diagnostics.Sort(CompareDiagnostics);
        var counts = SiteCounts.Of(verdicts);
        return new ObjectReport(image.Path, image.Abi, verdicts,
            diagnostics) { Counts = counts with { Accepted = counts.Accepted + plainAccepted } };
    }

    private static Diagnostic ToDiagnostic(string path, SiteVerdict v)
    {
        var s = v.Site;
        string kind = s.CalleeKind == CalleeKind.Livepatch ? "livepatch" : "undefined";
        string message = $"call to {kind} symbol {s.Callee} at {s.Section.Name}+0x{s.Offset:x} ({s.Where}) will not " +
            $"load: {v.Reason}";
        if (v.KernelMessage is not null) message += $"; the kernel would print: {v.KernelMessage}";
        string fix = v.Code switch
        {
            DiagnosticCatalog.TocRestoreNotAccepted =>
                "Target a kernel with the 2023 restore_r2() fix (6.3 or later, --kernel-accepts-ld-toc), or put the " +
                    "nop back.",
            DiagnosticCatalog.CallAtEndOfSection =>
                "The call must be followed by a nop inside the same section; this comes from hand-written assembly — " +
                    "add the nop there.",
            _ => s.CalleeKind == CalleeKind.Livepatch
                ? "The call was compiled as a local call (the callee was a static copy in this file): run " +
                    "'ppc-livepatch patch' on the object (the SDK's Patch step does it), which gives the call its " +
                        $"nop, or call {KlpNames.SourceName(s.Callee)}() through an extern declaration."
                : "Calls to functions outside the module must be compiled as external calls (bl f; nop): declare the " +
                    "callee extern, or add the nop in hand-written assembly.",
        };
        return new Diagnostic(v.Code!, message, path,
            s.Section.Name, s.Offset, s.Function?.Name, s.FunctionOffset, s.Callee, s.Source, fix);
    }

    internal static int CompareDiagnostics(Diagnostic a, Diagnostic b)
    {
        int c = string.CompareOrdinal(a.Section, b.Section);
        if (c != 0) return c;
        c = Nullable.Compare(a.Offset, b.Offset);
        return c != 0 ? c : string.CompareOrdinal(a.Code, b.Code);
    }
}
