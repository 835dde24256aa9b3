using PpcLivepatch.Dwarf;
using PpcLivepatch.Elf;

namespace PpcLivepatch.Analysis;

/// <summary>
/// What is known about one input object, computed once and shared by every stage of a run — the verifier's
/// before-report, site selection, the strategies' eligibility checks, the DWARF and CFI rewriters and the translation
/// validator. Each part is built the first time it is asked for.
/// </summary>
public sealed class ObjectAnalysis
{
    private readonly Lazy<CodeReferences> _references;
    private readonly Lazy<JumpTableAnalysis> _tables;
    private readonly Lazy<LineTable> _lines;
    private readonly Lazy<(IReadOnlyList<CallFrameInfo> Frames, string? Problem)> _frames;

    public ObjectAnalysis(ElfImage image)
    {
        Image = image;
        Functions = new FunctionMap(image);
        _references = new(() => new CodeReferences(image, Functions));
        _tables = new(() => new JumpTableAnalysis(image, Functions, References));
        _lines = new(() => LineTable.ReadOrEmpty(image, out _));
        _frames = new(ReadFrames);
    }

    public ElfImage Image { get; }

    public FunctionMap Functions { get; }

    public CodeReferences References => _references.Value;

    /// <summary>Jump tables, proven per code section when a section is first asked about.</summary>
    public JumpTableAnalysis Tables => _tables.Value;

    /// <summary>The line table, or an empty one when <c>.debug_line</c> is missing or malformed.</summary>
    public LineTable Lines => _lines.Value;

    /// <summary>Every <c>.eh_frame</c>/<c>.debug_frame</c> section, decoded; empty with the reason when one is
    /// malformed.</summary>
    public IReadOnlyList<CallFrameInfo> Frames => _frames.Value.Frames;

    /// <summary>Why the frame sections could not be decoded, or null.</summary>
    public string? FramesProblem => _frames.Value.Problem;

    private (IReadOnlyList<CallFrameInfo>, string?) ReadFrames()
    {
        try
        {
            return (CallFrameInfo.ReadAll(Image).ToList(), null);
        }
        catch (DwarfFormatException e)
        {
            return ([], e.Message);
        }
    }
}
