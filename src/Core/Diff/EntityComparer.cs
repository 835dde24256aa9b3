using PpcLivepatch.Ppc64;

namespace PpcLivepatch.Diff;

/// <summary>How an entity of the patched object compares with its original.</summary>
public enum Change
{
    Same,
    Changed,
    /// <summary>Only immediates that pass a <c>__LINE__</c> to a line-taking kernel function differ (inserting lines
    /// above a function moves every line after them).</summary>
    LineNumbersOnly,
}

/// <summary>
/// Compares an entity's bytes and relocations: equal sizes, equal bytes (a RELA object keeps relocated fields zero,
/// so bytes compare as they are), the same relocations at the same offsets, and each naming the same thing.
/// </summary>
public sealed class EntityComparer(ObjectInventory original, ObjectInventory patched, SymbolCorrelation correlation)
{
    private readonly ReferenceMeaning _originalMeaning = new(original, n => n);
    private readonly ReferenceMeaning _patchedMeaning =
        new(patched, n => correlation.Original(n) ?? (patched.ByName.ContainsKey(n) ? "new:" + n : n));

    /// <summary>Kernel functions that take the caller's <c>__LINE__</c> as an argument (might_sleep(),
    /// lockdep and WARN helpers).</summary>
    private static readonly HashSet<string> LineTakers = new(StringComparer.Ordinal)
    {
        "__might_sleep", "__might_resched", "__might_fault", "__cant_sleep", "__cant_migrate", "___might_sleep",
        "lockdep_rcu_suspicious", "__warn_printk", "__might_sleep_precision", "warn_slowpath_fmt", "printk", "_printk",
        // btrfs reports the line of a failed transaction (btrfs_abort_transaction(), btrfs_handle_fs_error()).
        "__btrfs_abort_transaction", "__btrfs_handle_fs_error", "__btrfs_panic",
    };

    public Change Compare(ObjectEntity before, ObjectEntity after)
    {
        if (before.Size != after.Size || before.Section.Type != after.Section.Type) return Change.Changed;
        // ELFv2 local entry offsets live in st_other: a different prologue length is a different function.
        if (before.Symbol.Other != after.Symbol.Other) return Change.Changed;
        if (!SameRelocations(before, after)) return Change.Changed;
        // Zero-filled (.bss): the size says it all.
        if (before.Section.Type == Elf.ElfConstants.ShtNobits) return Change.Same;
        var a = original.Span(before);
        var b = patched.Span(after);
        if (a.SequenceEqual(b)) return Change.Same;
        return before.IsFunction && OnlyLineNumbersDiffer(a, b, after) ? Change.LineNumbersOnly : Change.Changed;
    }

    private bool SameRelocations(ObjectEntity before, ObjectEntity after)
    {
        var x = before.Relocations;
        var y = after.Relocations;
        if (x.Count != y.Count) return false;
        for (int i = 0; i < x.Count; i++)
        {
            if (x[i].Offset - before.Start != y[i].Offset - after.Start || x[i].Type != y[i].Type) return false;
            if (_originalMeaning.Of(x[i]) != _patchedMeaning.Of(y[i])) return false;
        }
        return true;
    }

    /// <summary>Every differing word is <c>li rN,imm</c> (N = 3..10, an argument register) followed within eight
    /// words by a call to a line-taking function.</summary>
    private bool OnlyLineNumbersDiffer(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b, ObjectEntity after)
    {
        var image = patched.Image;
        for (int at = 0; at + 4 <= a.Length; at += 4)
        {
            uint x = image.ReadU32(a, at), y = image.ReadU32(b, at);
            if (x == y) continue;
            if (!IsLoadImmediateToArgument(x, out int rx) || !IsLoadImmediateToArgument(y, out int ry) || rx != ry)
                return false;
            if (!CallsLineTakerSoonAfter(after, (ulong)at)) return false;
        }
        return true;
    }

    // li rD,SIMM is addi rD,0,SIMM: primary opcode 14, RA = 0.
    private static bool IsLoadImmediateToArgument(uint word, out int register)
    {
        register = (int)(word >> 21) & 31;
        return word >> 26 == 14 && ((word >> 16) & 31) == 0 && register is >= 3 and <= 10;
    }

    private bool CallsLineTakerSoonAfter(ObjectEntity f, ulong at) =>
        f.Relocations.Any(r => r.Type is R.PPC64_REL24 or R.PPC64_REL24_NOTOC
            && r.Offset - f.Start > at && r.Offset - f.Start <= at + 32
            && LineTakers.Contains(patched.Image.Symbols[(int)r.SymbolIndex].Name));
}
