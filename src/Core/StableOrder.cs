namespace PpcLivepatch;

/// <summary>
/// Grouping and stable sorting without LINQ's ordered enumerables: <c>ThenBy</c> is a generic virtual method, which
/// the Native AOT tool resolves through its type loader at run time, on every start (a twentieth of a small diff).
/// </summary>
internal static class StableOrder
{
    /// <summary>The items by key, keys in the order they first appear, items in their order.</summary>
    public static Dictionary<TKey, List<T>> GroupInto<T, TKey>(this IEnumerable<T> items, Func<T, TKey> key)
        where TKey : notnull
    {
        var groups = new Dictionary<TKey, List<T>>();
        foreach (var item in items)
        {
            var k = key(item);
            if (!groups.TryGetValue(k, out var list)) groups[k] = list = [];
            list.Add(item);
        }
        return groups;
    }

    /// <summary>The items sorted by <paramref name="compare"/>; items it finds equal keep their order.</summary>
    public static T[] StableSorted<T>(this List<T> items, Comparison<T> compare)
    {
        var order = new int[items.Count];
        for (int i = 0; i < order.Length; i++) order[i] = i;
        Array.Sort(order, (a, b) => compare(items[a], items[b]) is var c and not 0 ? c : a.CompareTo(b));
        var sorted = new T[order.Length];
        for (int i = 0; i < order.Length; i++) sorted[i] = items[order[i]];
        return sorted;
    }
}
