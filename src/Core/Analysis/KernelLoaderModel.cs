using PpcLivepatch.Diagnostics;
using PpcLivepatch.Elf;
using PpcLivepatch.Ppc64;

namespace PpcLivepatch.Analysis;

/// <summary>The kernel the module is meant for.</summary> <param name="KernelAcceptsLdToc">The kernel has the 2023 fix
/// (6.3+) that accepts an already-written <c>ld r2,24(r1)</c> after a call, as left by an earlier load of the same
/// livepatch.</param> <param name="Pcrel">The kernel is built with CONFIG_PPC_KERNEL_PCREL: no TOC, no nop rule,
/// REL24_NOTOC applied.</param> <param name="ModuleName">The name the kernel prints in its messages; defaults to the
/// file name as kbuild makes it.</param> <param name="KernelHasLivepatch">Whether the kernel is built with
/// CONFIG_LIVEPATCH; null when it is not known.</param> <param name="KernelFtrace">The kernel's ftrace model (its
/// configuration says); a module's functions must have the same sites.</param>
public sealed record LoaderOptions(bool KernelAcceptsLdToc = false, bool Pcrel = false, string? ModuleName = null,
    bool? KernelHasLivepatch = null, FtraceSiteKind KernelFtrace = FtraceSiteKind.Unknown)
{
    public static LoaderOptions Default { get; } = new();

    public string ModuleNameFor(string path) =>
        ModuleName ?? Path.GetFileName(path).Split('.')[0].Replace('-', '_');
}

public enum Verdict
{
    Accept,
    Reject,
    Exempt,
}

/// <summary>The loader's verdict on one call site, why, and what the kernel would print if it refuses it.</summary>
public sealed record SiteVerdict(CallSite Site, Verdict Verdict, string Reason, string? Code = null,
    string? KernelMessage = null);

/// <summary>
/// What Linux 6.1's <c>apply_relocate_add()</c> and <c>restore_r2()</c> (arch/powerpc/kernel/module_64.c) decide
/// for a call relocation. The kernel looks only at <c>st_shndx</c>: SHN_UNDEF and SHN_LIVEPATCH callees are
/// reached through a stub that saves r2 in the caller's frame, so a real call (<c>bl</c>) must be followed by a
/// nop that the loader turns into the TOC restore; anything else fails the whole module with -ENOEXEC.
/// </summary>
public static class KernelLoaderModel
{
    private const string NopBecomesRestoreV2 = "the nop after the call becomes ld r2,24(r1)";
    private const string NopBecomesRestoreV1 = "the nop after the call becomes ld r2,40(r1)";

    /// <param name="moduleName">Asked only when the kernel would print a message (a million sites, few
    /// refusals).</param>
    public static SiteVerdict Judge(CallSite site, LoaderOptions options, Ppc64.PpcAbi abi, Func<string> moduleName)
    {
        if (site.IsPcrel && !options.Pcrel)
            return new SiteVerdict(site, Verdict.Reject,
                "R_PPC64_REL24_NOTOC (Power10 pcrel code) is applied only by kernels built with " +
                "CONFIG_PPC_KERNEL_PCREL",
                DiagnosticCatalog.UnsupportedRelocation);
        if (!site.IsExternal)
            return new SiteVerdict(site, Verdict.Accept,
                "callee is defined in the module: a direct branch to its local entry, no stub");
        if (site.Exemption is { } why)
            return new SiteVerdict(site, Verdict.Exempt, why);
        if (options.Pcrel)
            return new SiteVerdict(site, Verdict.Accept,
                "PCREL kernels keep no TOC in r2, so nothing is restored after the call");
        if (!Instruction.IsRelativeLinkBranch(site.Word))
            return new SiteVerdict(site, Verdict.Accept, site.Instruction == BranchKind.B
                ? "sibling call (b): it does not return here, so the loader does not look for a nop"
                : $"{Instruction.Mnemonic(site.Instruction)} is not a relative branch-and-link; the loader does not " +
                    "look for a nop");

        string At() =>
            $"{site.FunctionName}+0x{site.FunctionOffset + 4:x}/0x{site.Function?.Size ?? 0:x} [{moduleName()}]";
        string restore = abi == PpcAbi.ElfV2 ? "ld r2,24(r1)" : "ld r2,40(r1)";
        switch (site.Next)
        {
            case NextWord.Nop:
                return new SiteVerdict(site, Verdict.Accept,
                    abi == PpcAbi.ElfV2 ? NopBecomesRestoreV2 : NopBecomesRestoreV1);
            case NextWord.TocRestore when options.KernelAcceptsLdToc:
                return new SiteVerdict(site, Verdict.Accept,
                    $"{restore} is already there; kernels since 6.3 accept it");
            case NextWord.TocRestore:
                return new SiteVerdict(site, Verdict.Reject,
                    $"{restore} already follows the call, which kernels before 6.3 refuse",
                    DiagnosticCatalog.TocRestoreNotAccepted,
                    $"module_64: {moduleName()}: Expected nop after call, got {site.NextWordValue:x8} at {At()}");
            case NextWord.EndOfSection:
                return new SiteVerdict(site, Verdict.Reject,
                    "the call is the last word of its section, so there is no slot for the TOC restore (the loader " +
                        "would read and rewrite the word after the section)",
                    DiagnosticCatalog.CallAtEndOfSection);
            default:
                return new SiteVerdict(site, Verdict.Reject,
                    $"the word after the call is 0x{site.NextWordValue:x8}, not a nop, so r2 cannot be restored " +
                        "after the stub",
                    DiagnosticCatalog.MissingNopAfterCall,
                    $"module_64: {moduleName()}: Expected nop after call, got {site.NextWordValue:x8} at {At()}");
        }
    }

    /// <summary>
    /// The two kinds of call that make up nearly every site and that <see cref="Judge"/> accepts
    /// without a diagnostic — a REL24 to a symbol defined in the object, and a non-exempt <c>bl</c> to an outside
    /// symbol with its nop — decided from the raw words, so a summary need not describe them. Change it with Judge;
    /// SummaryModeTests checks the two agree on every fixture.
    /// </summary>
    internal static bool IsPlainAcceptedCall(ElfImage image, LoaderOptions options, ElfRelocationSection rs,
        ElfRela rela, ElfSymbol callee)
    {
        if (rela.Type != R.PPC64_REL24) return false;
        if (!callee.IsUndefined && !callee.IsLivepatch) return true;
        if (CallSiteScanner.ExemptionFor(callee.Name) is not null) return false;
        if (options.Pcrel) return true;
        var code = image.Data(rs.Target);
        if (rela.Offset + 8 > (ulong)code.Length) return false;
        int at = (int)rela.Offset;
        return Instruction.IsRelativeLinkBranch(image.ReadU32(code, at))
            && image.ReadU32(code, at + 4) == Instruction.Nop;
    }
}
