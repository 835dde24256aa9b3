namespace PpcLivepatch;

/// <summary>
/// A stable sort without LINQ's ordered enumerables: <c>ThenBy</c> is a generic virtual method, which the Native AOT
/// tool resolves through its type loader at run time, on every start (a twentieth of a small diff).
/// </summary>
internal static class StableOrder
{
    /// <summary>The items sorted by <paramref name="compare"/>; items it finds equal keep their order.</summary>
    public static T[] StableSorted<T>(this IEnumerable<T> items, Comparison<T> compare)
    {
        T[] all = [.. items];
        var order = new int[all.Length];
        for (int i = 0; i < order.Length; i++) order[i] = i;
        Array.Sort(order, (a, b) => compare(all[a], all[b]) is var c and not 0 ? c : a.CompareTo(b));
        return Array.ConvertAll(order, i => all[i]);
    }
}
