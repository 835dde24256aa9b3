using PpcLivepatch.Analysis;
using PpcLivepatch.Dwarf;
using PpcLivepatch.Elf;

namespace PpcLivepatch.Patching;

/// <summary>
/// Extends the FDE of each patched function over its islands, so an unwinder standing in an island (a debugger,
/// perf, a crash dump tool) sees the frame of the call site: the FDE's pc_range grows to the new end of the function,
/// and for each island the CFA program advances to the island and re-states the call site's row. The frame
/// section is rebuilt with the longer FDE, and everything that points into it follows: relocation offsets,
/// <c>.eh_frame</c> CIE pointers (relative) and <c>.debug_frame</c> CIE pointers (relocated).
/// </summary>
internal static class FdeExtender
{
    /// <summary>
    /// One rewrite of each frame section for both strategies: FDEs of island functions grow over their islands,
    /// FDEs of sections that got inserted nops have their location advances re-encoded and their range mapped.
    /// </summary>
    /// <returns>Notes on FDEs that could not be extended (the islands then have no unwind rows).</returns>
    public static List<string> Rewrite(ObjectAnalysis analysis, ElfContainer container,
        IReadOnlyList<CodeLayout> layouts)
    {
        var notes = new List<string>();
        if (analysis.FramesProblem is { } problem)
        {
            notes.Add($"call frame information not extended over the islands: {problem}");
            return notes;
        }
        foreach (var cfi in analysis.Frames)
        {
            var rewritten = new Dictionary<Fde, (byte[] Instructions, ulong NewRange, bool Replace)>();
            foreach (var change in layouts.Where(l => l.Islands.Count > 0))
            {
                var fde = cfi.Fdes.FirstOrDefault(f =>
                    f.CodeSection == change.Section && f.PcBegin + f.PcRange == change.OldEnd);
                if (fde is null) continue;
                try
                {
                    rewritten[fde] = (IslandRows(cfi, fde, change.Islands), change.NewEnd - fde.PcBegin, false);
                }
                catch (Exception e) when (e is NotSupportedException or DwarfFormatException or OverflowException
                    or ArgumentOutOfRangeException or IndexOutOfRangeException)
                {
                    notes.Add($"{cfi.Section.Name} FDE at 0x{fde.Offset:x} not extended: {e.Message}");
                }
            }
            foreach (var moved in layouts.Where(l => l.MovesCode))
            {
                foreach (var fde in cfi.Fdes.Where(f => f.CodeSection == moved.Section))
                {
                    // The program is replaced whole: the part up to the instructions is kept by Rebuild.
                    byte[] program = cfi.RemapAdvances(fde, moved.Map);
                    rewritten[fde] = (program, moved.Map(fde.PcBegin + fde.PcRange) - moved.Map(fde.PcBegin), true);
                }
            }
            if (rewritten.Count > 0) Rebuild(analysis.Image, container, cfi, rewritten);
        }
        return notes;
    }

    /// <summary>The CFA instructions that take the row at the end of the FDE to each island's call-site row.</summary>
    private static byte[] IslandRows(CallFrameInfo cfi, Fde fde, IReadOnlyList<(ulong Call, ulong Island)> islands)
    {
        var cie = fde.Cie;
        var (current, loc, _) = cfi.RowAt(fde, ulong.MaxValue);
        var output = new List<byte>();
        foreach (var island in islands)
        {
            var (site, _, _) = cfi.RowAt(fde, island.Call - fde.PcBegin);
            if (site.CfaIsExpression || site.Registers.Values.Any(r => r.Kind == RegisterRuleKind.Expression))
                throw new NotSupportedException("the call site's row uses DWARF expressions");
            ulong target = island.Island - fde.PcBegin;
            Advance(output, (target - loc) / cie.CodeAlign, cfi);
            loc = target;
            Transition(output, current, site, cie);
            current = site;
        }
        return [.. output];
    }

    private static void Advance(List<byte> output, ulong delta, CallFrameInfo cfi)
    {
        if (delta == 0) return;
        if (delta < 0x40) { output.Add((byte)(0x40 | delta)); return; }                // DW_CFA_advance_loc
        output.Add(CallFrameInfo.DwCfaAdvanceLoc4);
        var word = new byte[4];
        ByteOrder.Write(word.AsSpan(0), 4, checked((uint)delta), cfi.IsLittleEndian);
        output.AddRange(word);
    }

    private static void Transition(List<byte> output, CfiRow from, CfiRow to, Cie cie)
    {
        if (from.CfaRegister != to.CfaRegister || from.CfaOffset != to.CfaOffset || from.CfaIsExpression)
        {
            if (to.CfaOffset >= 0)
            {
                output.Add(CallFrameInfo.DwCfaDefCfa);
                Uleb(output, (ulong)to.CfaRegister);
                Uleb(output, (ulong)to.CfaOffset);
            }
            else
            {
                output.Add(CallFrameInfo.DwCfaDefCfaSf);
                Uleb(output, (ulong)to.CfaRegister);
                Sleb(output, Factor(to.CfaOffset, cie));
            }
        }
        foreach (ulong reg in from.Registers.Keys.Union(to.Registers.Keys).Order())
        {
            bool had = from.Registers.TryGetValue(reg, out var before);
            if (!to.Registers.TryGetValue(reg, out var rule))
            {
                if (had) { output.Add(CallFrameInfo.DwCfaRestoreExtended); Uleb(output, reg); }
                continue;
            }
            if (had && before == rule) continue;
            switch (rule.Kind)
            {
                case RegisterRuleKind.Offset: output.Add(CallFrameInfo.DwCfaOffsetExtendedSf); Uleb(output,
                    reg); Sleb(output, Factor(rule.Value, cie)); break;
                case RegisterRuleKind.ValOffset: output.Add(CallFrameInfo.DwCfaValOffsetSf); Uleb(output,
                    reg); Sleb(output, Factor(rule.Value, cie)); break;
                case RegisterRuleKind.Register: output.Add(CallFrameInfo.DwCfaRegister); Uleb(output,
                    reg); Uleb(output, (ulong)rule.Value); break;
                case RegisterRuleKind.SameValue: output.Add(CallFrameInfo.DwCfaSameValue); Uleb(output, reg); break;
                case RegisterRuleKind.Undefined: output.Add(CallFrameInfo.DwCfaUndefined); Uleb(output, reg); break;
                default: throw new NotSupportedException($"register {reg} has a rule of kind {rule.Kind}");
            }
        }
    }

    private static long Factor(long bytes, Cie cie)
    {
        if (cie.DataAlign == 0 || bytes % cie.DataAlign != 0) throw new NotSupportedException($"offset {bytes} is " +
            $"not a multiple of the data alignment {cie.DataAlign}");
        return bytes / cie.DataAlign;
    }

    private static void Uleb(List<byte> o, ulong v)
    {
        do { byte b = (byte)(v & 0x7f); v >>= 7; o.Add(v != 0 ? (byte)(b | 0x80) : b); } while (v != 0);
    }

    private static void Sleb(List<byte> o, long v)
    {
        while (true)
        {
            byte b = (byte)(v & 0x7f);
            v >>= 7;
            bool done = (v == 0 && (b & 0x40) == 0) || (v == -1 && (b & 0x40) != 0);
            o.Add(done ? b : (byte)(b | 0x80));
            if (done) return;
        }
    }

    /// <param name="rewritten">Per FDE: instructions to append after the last one (islands), or to replace the program
    /// with (<c>Replace</c>, inserted nops), and the new pc_range.</param>
    private static void Rebuild(ElfImage image, ElfContainer container, CallFrameInfo cfi,
        Dictionary<Fde, (byte[] Instructions, ulong NewRange, bool Replace)> rewritten)
    {
        var data = cfi.Data;
        bool le = image.IsLittleEndian;
        var entries = cfi.Cies.Select(c =>
            (Offset: c.Offset, End: c.End)).Concat(cfi.Fdes.Select(f =>
                (f.Offset, f.End))).OrderBy(e => e.Offset).ToList();
        var output = new List<byte>();
        var newStart = new Dictionary<int, int>();
        int copied = 0;
        foreach (var (offset, end) in entries)
        {
            // Bytes between entries (the .eh_frame terminator, padding) stay as they are.
            for (int i = copied; i < offset; i++) output.Add(data[i]);
            newStart[offset] = output.Count;
            var fde = cfi.Fdes.FirstOrDefault(f => f.Offset == offset);
            if (fde is null || !rewritten.TryGetValue(fde, out var change))
            {
                for (int i = offset; i < end; i++) output.Add(data[i]);
            }
            else
            {
                int keep = change.Replace ? fde.InstructionsStart : cfi.RowAt(fde, ulong.MaxValue).LastInstructionEnd;
                var entry = new List<byte>();
                for (int i = offset; i < keep; i++) entry.Add(data[i]);
                entry.AddRange(change.Instructions);
                int alignment = (end - offset) % 8 == 0 ? 8 : 4;
                while (entry.Count % alignment != 0) entry.Add(CallFrameInfo.DwCfaNop);
                var bytes = entry.ToArray();
                ByteOrder.Write(bytes.AsSpan(0), 4, (uint)(bytes.Length - 4), le);
                int rangeField = fde.PcRangeField - offset;
                if (fde.PcFieldSize == 4) ByteOrder.Write(bytes.AsSpan(rangeField), 4, checked((uint)change.NewRange),
                    le);
                else ByteOrder.Write(bytes.AsSpan(rangeField), 8, change.NewRange, le);
                output.AddRange(bytes);
            }
            copied = end;
        }
        for (int i = copied; i < data.Length; i++) output.Add(data[i]);

        // An old position inside an entry keeps its distance from the entry's start (only instructions grew).
        int Map(ulong old)
        {
            var containing = entries.Where(x => (ulong)x.Offset <= old).ToList();
            if (containing.Count == 0) return (int)old;
            var e = containing[^1];
            return newStart[e.Offset] + (int)(old - (ulong)e.Offset);
        }

        var bytesOut = output.ToArray();
        if (cfi.IsEhFrame)
        {
            // .eh_frame CIE pointers are "this field minus the CIE": recompute from the new positions.
            foreach (var fde in cfi.Fdes)
                ByteOrder.Write(bytesOut.AsSpan(Map((ulong)fde.CiePointerField)), 4,
                    (uint)(Map((ulong)fde.CiePointerField) - newStart[fde.Cie.Offset]), le);
        }
        container.SetSectionData(cfi.Section.Index, bytesOut);

        var sectionSymbols = image.Symbols.Where(s =>
            s.Type == ElfConstants.SttSection && s.SectionIndex == (uint)cfi.Section.Index).Select(s =>
                (uint)s.Index).ToHashSet();
        foreach (var rs in image.RelocationSections)
        {
            for (int i = 0; i < rs.Entries.Count; i++)
            {
                var rela = rs.Entries[i];
                if (rs.Target.Index == cfi.Section.Index)
                    container.SetRelocationOffset(rs.Section.Index, i, (ulong)Map(rela.Offset));
                // .debug_frame CIE pointers (and anything else) that name a place in the frame section.
                if (sectionSymbols.Contains(rela.SymbolIndex) && rela.Addend >= 0)
                    container.SetRelocationAddend(rs.Section.Index, i, Map((ulong)rela.Addend));
            }
        }
    }


}
