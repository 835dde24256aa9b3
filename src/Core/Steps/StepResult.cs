using PpcLivepatch.Diagnostics;

namespace PpcLivepatch.Steps;

/// <summary>One object through a build step: read from <see cref="Input"/>, written atomically to <see
/// cref="Output"/>.</summary>
public sealed record StepObject(string Input, string Output);

/// <summary>
/// One thing a step has to say, in order: a diagnostic, already carrying the severity the SDK's policy gives it, or a
/// plain message (<see cref="Prominent"/>: shown even at minimal verbosity, like a step's summary).
/// </summary>
public sealed record StepEvent(Diagnostic? Diagnostic, string? Message, bool Prominent = false)
{
    public static StepEvent Of(Diagnostic diagnostic) => new(diagnostic, null);

    public static StepEvent Say(string message, bool prominent) => new(null, message, prominent);
}

/// <summary>What a build step did: its events and, for Patch, how many call sites it fixed.</summary>
public sealed record StepResult(IReadOnlyList<StepEvent> Events, int SitesFixed = 0)
{
    public bool Succeeded => Events.All(e => e.Diagnostic?.Severity != Severity.Error);
}
