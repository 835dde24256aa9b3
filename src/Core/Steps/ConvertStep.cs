using PpcLivepatch.Klp;

namespace PpcLivepatch.Steps;

/// <summary>The SDK's Convert step: binds the KlpSymbol references of each object through livepatch
/// relocations.</summary>
public static class ConvertStep
{
    public static StepResult Run(IReadOnlyList<StepObject> objects, IReadOnlyList<KlpSymbolSpec> symbols)
    {
        var events = new List<StepEvent>();
        foreach (var o in objects)
        {
            var image = StepFiles.Load(o.Input, events);
            if (image is null) continue;
            var result = KlpConverter.Convert(image, symbols);
            events.AddRange(result.Diagnostics.Select(StepEvent.Of));
            if (!result.Succeeded || !StepFiles.Write(o.Output, result.Output, events)) continue;
            if (!image.Bytes.Span.SequenceEqual(result.Output)) StepFiles.NoteDroppedSignature(image, o.Output, events);
            if (result.RelocationsMoved > 0 || result.DroppedSections.Count > 0)
            {
                string dropped = result.DroppedSections.Count > 0
                    ? $", copies dropped: {string.Join(", ", result.DroppedSections)}"
                    : "";
                events.Add(StepEvent.Say(
                    $"{o.Output}: {result.RelocationsMoved} relocations bound to livepatch symbols{dropped}",
                    prominent: false));
            }
        }
        return StepFiles.Finish(events, objects);
    }
}
