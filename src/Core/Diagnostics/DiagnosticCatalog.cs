namespace PpcLivepatch.Diagnostics;

/// <summary>A code's fixed facts: its severity, what kind of finding it is, and a title. Each code has
/// docs/diagnostics/CODE.md.</summary>
public sealed record DiagnosticDescriptor(string Code, Severity Severity, string Title,
    DiagnosticKind Kind = DiagnosticKind.General);

/// <summary>
/// Every diagnostic code the tool can emit. Ranges (docs/architecture.md): PLP0xxx usage and toolchain,
/// PLP1xxx unreadable or unsupported input, PLP2xxx what the kernel loader would reject, PLP3xxx run-time hazards
/// the loader accepts, PLP4xxx information, PLP5xxx what a source-patch diff cannot turn into a livepatch. Codes are
/// stable: never renumber, only add.
/// </summary>
public static class DiagnosticCatalog
{
    public const string UsageError = "PLP0001";
    public const string InternalError = "PLP0002";
    public const string CompilerError = "PLP0010";
    public const string CompilerFatalError = "PLP0011";
    public const string CompilerWarning = "PLP0012";
    public const string CompilerNotFound = "PLP0013";
    public const string LinkerFailed = "PLP0014";
    public const string KernelTreeMissing = "PLP0015";
    public const string KbuildFailed = "PLP0016";
    public const string SymbolNotExported = "PLP0017";
    public const string SignatureDropped = "PLP0018";
    public const string SigningFailed = "PLP0019";
    public const string PatchDoesNotApply = "PLP0020";
    public const string PatchFileNotBuilt = "PLP0021";
    /// <summary>Retired: kernel patches that change one unit apply in order, as a series. Never reused.</summary>
    public const string PatchesOverlap = "PLP0022";
    public const string PatchedHeaderUnreachable = "PLP0023";
    public const string PatchBuildsNothing = "PLP0024";
    public const string KernelModuleNotBuilt = "PLP0025";
    public const string KbuildRecordUnreadable = "PLP0026";
    public const string KernelCompilerMismatch = "PLP0027";

    public const string NotElf = "PLP1001";
    public const string TruncatedOrMalformedHeader = "PLP1002";
    public const string UnsupportedClass = "PLP1003";
    public const string WrongMachine = "PLP1004";
    public const string UnsupportedFileType = "PLP1005";
    public const string MalformedSectionTable = "PLP1006";
    public const string MalformedSymbolTable = "PLP1007";
    public const string MalformedRelocation = "PLP1008";
    public const string UnreadableFile = "PLP1009";
    public const string UnwritableOutput = "PLP1010";
    public const string CannotRewrite = "PLP1011";

    public const string BadKlpSymbolItem = "PLP0101";
    public const string KlpSymbolNotFound = "PLP0102";
    public const string KlpDefinedSymbolNotAFunction = "PLP0103";
    public const string KlpCopyNotSeparable = "PLP0104";
    public const string KlpCopyHasClones = "PLP0105";
    public const string KlpSymbolNotInKernel = "PLP0106";
    public const string KlpSymbolAmbiguous = "PLP0107";

    public const string MissingNopAfterCall = "PLP2001";
    public const string TocRestoreNotAccepted = "PLP2002";
    public const string CallAtEndOfSection = "PLP2003";
    public const string UnsupportedRelocation = "PLP2004";
    public const string MalformedKlpRelaSection = "PLP2005";
    public const string MalformedKlpSymbol = "PLP2006";
    public const string CallNotRelocatable = "PLP2007";
    public const string CallOutsideCode = "PLP2008";
    public const string NoRoomForIsland = "PLP2009";
    public const string IslandOutOfRange = "PLP2010";
    public const string InsertNopNotPossible = "PLP2011";
    public const string NotMarkedLivepatch = "PLP2012";
    public const string KernelWithoutLivepatch = "PLP2013";
    public const string RewriteNotProven = "PLP2014";
    public const string TocBasedOnPcrelKernel = "PLP2015";
    public const string AsmCallInInlineAssembly = "PLP2016";
    public const string AsmRouteNotProven = "PLP2017";
    public const string FtraceModelMismatch = "PLP2018";
    public const string FtraceRecordsSplit = "PLP2019";

    public const string SiblingCallToExternal = "PLP3001";
    public const string SiblingCallFromLocallyCalledFunction = "PLP3002";

    public const string SiteFixed = "PLP4001";
    public const string PatchSummary = "PLP4002";
    public const string UnwindNotExtended = "PLP4003";
    public const string AsmCallsLeftToObjectStep = "PLP4004";
    public const string DiffTableEntriesDropped = "PLP4005";

    public const string DiffNoFunctionChanged = "PLP5001";
    public const string DiffInitChanged = "PLP5002";
    public const string DiffDataChanged = "PLP5003";
    public const string DiffFunctionNotPatchable = "PLP5004";
    public const string DiffSymbolAmbiguous = "PLP5005";
    public const string DiffSymbolMissing = "PLP5006";
    public const string DiffTocReferenceToKernel = "PLP5007";
    public const string DiffCannotCarry = "PLP5008";
    public const string DiffObjectsDoNotMatch = "PLP5009";
    public const string DiffPatchAuthorRecord = "PLP5010";
    public const string DiffFtraceSiteNotOwn = "PLP5011";
    public const string DiffStaticLocalReplaced = "PLP5012";

    /// <summary>
    /// Base of help links: an absolute URI ending in '/', the same in SARIF, JSON and MSBuild events. By default the
    /// pages shipped with the running binary — found by walking up from it to <c>docs/diagnostics/</c> (the SDK
    /// package's root, the CLI tool package's, the repository's) — as a <c>file://</c> URI; where there are none, a
    /// <c>urn:</c> that still names the page. The MSBuild layer may point it elsewhere.
    /// </summary>
    public static string HelpLinkBase { get; set; } = ShippedPages();

    /// <summary>The catalog's index page (docs/diagnostics/README.md): SARIF's informationUri.</summary>
    public static string InformationUri(string? linkBase = null) =>
        (linkBase ?? HelpLinkBase) is var b
            && b.StartsWith("urn:", StringComparison.Ordinal) ? b + "README" : b + "README.md";

    private static string ShippedPages()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string pages = Path.Combine(dir.FullName, "docs", "diagnostics");
            if (File.Exists(Path.Combine(pages, UsageError + ".md")))
                return new Uri(pages + Path.DirectorySeparatorChar).AbsoluteUri;
        }
        return "urn:ppc-livepatch:diagnostics:";
    }

    private static readonly Dictionary<string, DiagnosticDescriptor> Descriptors = new DiagnosticDescriptor[]
    {
        new(UsageError, Severity.Error, "Invalid command-line usage or task parameter"),
        new(InternalError, Severity.Error, "Internal error"),
        new(CompilerError, Severity.Error, "The cross compiler reported an error"),
        new(CompilerFatalError, Severity.Error, "The cross compiler stopped with a fatal error"),
        new(CompilerWarning, Severity.Warning, "The cross compiler reported a warning"),
        new(CompilerNotFound, Severity.Error, "The cross compiler is not installed"),
        new(LinkerFailed, Severity.Error, "Linking the module object failed"),
        new(KernelTreeMissing, Severity.Error, "KernelDir is not a kernel build tree"),
        new(KbuildFailed, Severity.Error, "The kbuild modules step failed"),
        new(SymbolNotExported, Severity.Warning, "Undefined symbol is not exported by the kernel"),
        new(SignatureDropped, Severity.Warning, "Signed module changed: its signature is dropped"),
        new(SigningFailed, Severity.Error, "Module cannot be signed"),
        new(PatchDoesNotApply, Severity.Error, "A kernel source patch does not apply"),
        new(PatchFileNotBuilt, Severity.Warning, "A patched source file is not built by the kernel's configuration"),
        new(PatchesOverlap, Severity.Error, "Two kernel patches change the sources of one translation unit (retired)"),
        new(PatchedHeaderUnreachable, Severity.Error, "A patched header cannot be put before a unit's original"),
        new(PatchBuildsNothing, Severity.Error, "The kernel patches change no file the kernel's configuration builds"),
        new(KernelModuleNotBuilt, Severity.Error, "The module a patched unit belongs to is not built in KernelDir"),
        new(KbuildRecordUnreadable, Severity.Error, "kbuild's record of a unit's compile cannot be read"),
        new(KernelCompilerMismatch, Severity.Error, "KernelDir's kernel was built by another compiler"),
        new(BadKlpSymbolItem, Severity.Error, "KlpSymbol item cannot form a livepatch symbol name"),
        new(KlpSymbolNotFound, Severity.Warning, "KlpSymbol does not occur in the object"),
        new(KlpDefinedSymbolNotAFunction, Severity.Error, "KlpSymbol is defined here as data"),
        new(KlpCopyNotSeparable, Severity.Error, "Copied function cannot be dropped from its section"),
        new(KlpCopyHasClones, Severity.Warning, "GCC clones of a dropped copy stay in the module"),
        new(KlpSymbolNotInKernel, Severity.Error, "KlpSymbol is not a symbol of the target kernel"),
        new(KlpSymbolAmbiguous, Severity.Error, "KlpSymbol names several kernel symbols and has no valid Position"),
        new(NotElf, Severity.Error, "Input is not an ELF file"),
        new(TruncatedOrMalformedHeader, Severity.Error, "ELF header is truncated or malformed"),
        new(UnsupportedClass, Severity.Error, "Only 64-bit ELF (ELFCLASS64) is supported"),
        new(WrongMachine, Severity.Error, "Object is not for 64-bit PowerPC (EM_PPC64)"),
        new(UnsupportedFileType, Severity.Error, "Only relocatable objects (.o, .ko) are supported"),
        new(MalformedSectionTable, Severity.Error, "Section header table or section contents are malformed"),
        new(MalformedSymbolTable, Severity.Error, "Symbol table is malformed"),
        new(MalformedRelocation, Severity.Error, "Relocation section or entry is malformed"),
        new(UnreadableFile, Severity.Error, "File cannot be read"),
        new(UnwritableOutput, Severity.Error, "Output file cannot be written"),
        new(CannotRewrite, Severity.Error, "Object can be checked but not rewritten", DiagnosticKind.Refused),
        new(MissingNopAfterCall, Severity.Error, "Call through a module stub has no nop after it",
            DiagnosticKind.Rejected),
        new(TocRestoreNotAccepted, Severity.Error, "Call is followed by a TOC restore that this kernel refuses",
            DiagnosticKind.Rejected),
        new(CallAtEndOfSection, Severity.Error, "Call is the last word of its section", DiagnosticKind.Rejected),
        new(UnsupportedRelocation, Severity.Error, "Relocation type the module loader does not apply",
            DiagnosticKind.Rejected),
        new(MalformedKlpRelaSection, Severity.Error, "Livepatch relocation section is malformed",
            DiagnosticKind.Rejected),
        new(MalformedKlpSymbol, Severity.Error, "Livepatch symbol name is malformed", DiagnosticKind.Rejected),
        new(CallNotRelocatable, Severity.Error, "Call site is not a relative bl and cannot be redirected",
            DiagnosticKind.Unfixed),
        new(CallOutsideCode, Severity.Error, "Call relocation outside an executable section", DiagnosticKind.Unfixed),
        new(NoRoomForIsland, Severity.Error, "No room for an island inside the calling function",
            DiagnosticKind.Unfixed),
        new(IslandOutOfRange, Severity.Error, "Island would be out of branch range", DiagnosticKind.Unfixed),
        new(InsertNopNotPossible, Severity.Error, "A nop cannot be inserted in this section", DiagnosticKind.Unfixed),
        new(NotMarkedLivepatch, Severity.Error, "Module has livepatch relocations but is not marked as a livepatch",
            DiagnosticKind.Rejected),
        new(KernelWithoutLivepatch, Severity.Error, "Livepatch module for a kernel without CONFIG_LIVEPATCH",
            DiagnosticKind.Rejected),
        new(RewriteNotProven, Severity.Error, "The rewritten code could not be proven to mean what the original meant",
            DiagnosticKind.Refused),
        new(TocBasedOnPcrelKernel, Severity.Error, "TOC-based module for a kernel built with CONFIG_PPC_KERNEL_PCREL",
            DiagnosticKind.Rejected),
        new(AsmCallInInlineAssembly, Severity.Error, "A call inside inline assembly needs a nop the assembler route " +
            "cannot give", DiagnosticKind.Unfixed),
        new(AsmRouteNotProven, Severity.Error, "The assembler route's object could not be proven to mean what the " +
            "compiler's meant", DiagnosticKind.Refused),
        new(FtraceModelMismatch, Severity.Error, "Module compiled with another ftrace model than its kernel's",
            DiagnosticKind.Rejected),
        new(FtraceRecordsSplit, Severity.Error, "A module's ftrace records are split over several sections",
            DiagnosticKind.Rejected),
        new(SiteFixed, Severity.Info, "Call site fixed", DiagnosticKind.Fixed),
        new(PatchSummary, Severity.Info, "Patch summary", DiagnosticKind.Summary),
        new(UnwindNotExtended, Severity.Info, "Unwind or debug information not extended over an island",
            DiagnosticKind.Note),
        new(AsmCallsLeftToObjectStep, Severity.Info, "The assembler route left a section's calls to the object step",
            DiagnosticKind.Note),
        new(DiffTableEntriesDropped, Severity.Info,
            "The changed functions' entries of a table the kernel does not read are left out", DiagnosticKind.Note),
        new(SiblingCallToExternal, Severity.Warning, "Sibling call to a symbol outside the module",
            DiagnosticKind.Hazard),
        new(SiblingCallFromLocallyCalledFunction, Severity.Error,
            "Sibling call to an external symbol from a function that is also called locally", DiagnosticKind.Hazard),
        new(DiffNoFunctionChanged, Severity.Error, "No function changed between the two objects"),
        new(DiffInitChanged, Severity.Error, "The patch changes __init or __exit code or data"),
        new(DiffDataChanged, Severity.Error, "The patch changes existing data"),
        new(DiffFunctionNotPatchable, Severity.Error, "A changed function has no ftrace call site"),
        new(DiffSymbolAmbiguous, Severity.Error, "A symbol's position among same-named symbols cannot be determined"),
        new(DiffSymbolMissing, Severity.Error, "A symbol the changed code uses is not in the kernel's symbols"),
        new(DiffTocReferenceToKernel, Severity.Error, "TOC-relative reference to a symbol that stays in the kernel"),
        new(DiffCannotCarry, Severity.Error, "Something the changed code needs cannot be carried into the livepatch"),
        new(DiffObjectsDoNotMatch, Severity.Error, "The two objects cannot be diffed"),
        new(DiffPatchAuthorRecord, Severity.Error, "A patch-author macro (kpatch-macros.h) cannot be honoured"),
        new(DiffFtraceSiteNotOwn, Severity.Error,
            "The kernel could attach the livepatch to another function's ftrace site"),
        new(DiffStaticLocalReplaced, Severity.Error,
            "A changed function replaces a static local of the running kernel with a new one"),
    }.ToDictionary(d => d.Code);

    public static IReadOnlyCollection<DiagnosticDescriptor> All => Descriptors.Values;

    /// <summary>The catalog's severity for a code; Error for a code this tool does not know (read from
    /// elsewhere).</summary>
    public static Severity SeverityOf(string code) =>
        Descriptors.TryGetValue(code, out var d) ? d.Severity : Severity.Error;

    public static DiagnosticKind KindOf(string code) =>
        Descriptors.TryGetValue(code, out var d) ? d.Kind : DiagnosticKind.General;

    public static DiagnosticDescriptor Get(string code) =>
        Descriptors.TryGetValue(code, out var d) ? d : throw new ArgumentException($"unknown diagnostic code {code}",
            nameof(code));

    /// <summary>The page of <paramref name="code"/> under <paramref name="linkBase"/> (default <see
    /// cref="HelpLinkBase"/>).</summary>
    public static string HelpLink(string code, string? linkBase = null) =>
        (linkBase ?? HelpLinkBase) is var b
            && b.StartsWith("urn:", StringComparison.Ordinal) ? b + code : b + code + ".md";
}
