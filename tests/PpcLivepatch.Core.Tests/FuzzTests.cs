using System.Buffers.Binary;
using PpcLivepatch.Analysis;
using PpcLivepatch.Elf;
using PpcLivepatch.Patching;
using PpcLivepatch.Reports;

namespace PpcLivepatch.Tests;

/// <summary>
/// A mutation fuzzer over the fixtures: bit flips, truncations, and changes aimed at the fields parsers trust (ELF
/// header, section headers, symbols, relocations). Every mutant must give a report or a coded diagnostic — never an
/// exception — and every mutant that parses must keep the patch invariants. A short, seeded run is in the default
/// tests; PPCLP_FUZZ_ITERATIONS=100000 runs a long one. Inputs that ever found a bug live in tests/fixtures/fuzz/.
/// </summary>
[TestClass]
public sealed class FuzzTests
{
    private const int DefaultIterations = 3000;

    [TestMethod]
    public void MutantsGetReportsOrCodedDiagnosticsAndKeepThePatchInvariants()
    {
        int iterations = int.TryParse(Environment.GetEnvironmentVariable("PPCLP_FUZZ_ITERATIONS"), out int n)
            && n > 0 ? n : DefaultIterations;
        var seeds = Repo.AllFixtures.Select(File.ReadAllBytes).ToArray();
        var random = new Random(20261125);
        var failures = new List<string>();
        int parsed = 0, patched = 0;
        for (int i = 0; i < iterations && failures.Count < 5; i++)
        {
            byte[] mutant = Mutate(seeds[random.Next(seeds.Length)], random);
            string? failure = Check(mutant, ref parsed, ref patched);
            if (failure is not null) failures.Add($"iteration {i}: {failure} (saved as {Save(mutant)})");
        }
        Console.WriteLine($"fuzz: {iterations} mutants, {parsed} parsed, {patched} patched, {failures.Count} failures");
        Assert.AreEqual(0, failures.Count, string.Join("\n", failures));
        Assert.IsTrue(parsed > iterations / 10,
            "most mutants should still parse, or the fuzzer tests only the header checks");
    }

    public static IEnumerable<object[]> Regressions =>
        Directory.Exists(RegressionDir) ? Directory.GetFiles(RegressionDir,
            "*.o").Order(StringComparer.Ordinal).Select(f => new object[] { Path.GetFileName(f) }) : [];

    [TestMethod]
    [DynamicData(nameof(Regressions))]
    public void InputsThatOnceFoundBugsStayFixed(string name)
    {
        int parsed = 0, patched = 0;
        Assert.IsNull(Check(File.ReadAllBytes(Path.Combine(RegressionDir, name)), ref parsed, ref patched));
    }

    private static string RegressionDir => Path.Combine(Repo.Root, "tests", "fixtures", "fuzz");

    private static string? Check(byte[] mutant, ref int parsed, ref int patched)
    {
        try
        {
            if (!ElfImage.TryParse("mutant.o", mutant, out var image, out var error))
                return error!.Code.StartsWith("PLP1", StringComparison.Ordinal) ? null : "parse failed with " +
                    $"{error.Code}";
            parsed++;
            var report = ObjectVerifier.Verify(image!, LoaderOptions.Default);
            _ = ReportWriters.Json([report]);
            byte[] before = (byte[])mutant.Clone();
            var first = ObjectPatcher.Patch(image!, new PatchOptions(FixStrategy.Island, SiteSelection.AllLocal));
            if (!mutant.AsSpan().SequenceEqual(before)) return "patch changed its input";
            if (first.Output is null)
                return first.Report.Diagnostics.Any(d => d.Code is Diagnostics.DiagnosticCatalog.CannotRewrite
                    or Diagnostics.DiagnosticCatalog.RewriteNotProven)
                    ? null : "no output and no PLP1011/PLP2014";
            var second = ObjectPatcher.Patch(image!, new PatchOptions(FixStrategy.Island, SiteSelection.AllLocal));
            if (!first.Output!.AsSpan().SequenceEqual(second.Output)) return "patch is not deterministic";
            if (!ElfImage.TryParse("patched.o", first.Output!, out var output, out var outputError))
                return $"patch wrote an object that does not parse: {outputError!.Message}";
            var again = ObjectPatcher.Patch(output!, new PatchOptions(FixStrategy.Island, SiteSelection.AllLocal));
            if (!again.Output!.AsSpan().SequenceEqual(first.Output)) return "patch(patch(x)) != patch(x)";
            var verified = ObjectVerifier.Verify(output!, LoaderOptions.Default);
            if (verified.Accepted != first.Report.Accepted) return "verify and patch disagree about the output";
            // auto too: the jump table proofs, insert-nop and the validator on malformed-but-parsable code.
            var auto = ObjectPatcher.Patch(image!, new PatchOptions(FixStrategy.Auto, SiteSelection.AllLocal));
            if (!mutant.AsSpan().SequenceEqual(before)) return "auto patch changed its input";
            if (auto.Output is not null && !ElfImage.TryParse("auto.o", auto.Output, out _, out var autoError))
                return $"auto patch wrote an object that does not parse: {autoError!.Message}";
            patched++;
            return null;
        }
        catch (Exception e)
        {
            return $"{e.GetType().Name}: {e.Message}\n{e.StackTrace}";
        }
    }

    internal static byte[] Mutate(byte[] seed, Random random)
    {
        byte[] m = (byte[])seed.Clone();
        int kind = random.Next(6);
        ulong shoff = BinaryPrimitives.ReadUInt64LittleEndian(m.AsSpan(40));
        bool le = m[5] == 1;
        int shnum = le ? BinaryPrimitives.ReadUInt16LittleEndian(m.AsSpan(60))
            : BinaryPrimitives.ReadUInt16BigEndian(m.AsSpan(60));
        if (!le) shoff = BinaryPrimitives.ReadUInt64BigEndian(m.AsSpan(40));
        switch (kind)
        {
            case 0: // bit flips anywhere
                for (int k = random.Next(1, 8); k > 0; k--) m[random.Next(m.Length)] ^= (byte)(1 << random.Next(8));
                return m;
            case 1: // truncation
                return m[..random.Next(m.Length)];
            case 2: // an ELF header field
                Scribble(m, random.Next(16, 64), random);
                return m;
            case 3: // a section header field
                if (shnum == 0 || shoff + (ulong)(64 * shnum) > (ulong)m.Length) goto case 0;
                Scribble(m, (int)shoff + 64 * random.Next(shnum) + random.Next(64), random);
                return m;
            default: // inside section contents: symbols, relocations, code (the biggest part of an object)
                if (shnum == 0) goto case 0;
                int at = random.Next(64, (int)Math.Min(shoff, (ulong)m.Length));
                Scribble(m, at, random);
                return m;
        }
    }

    /// <summary>Overwrites a field-sized run with a value parsers tend to mishandle.</summary>
    private static void Scribble(byte[] m, int at, Random random)
    {
        ulong[] values = [0, 1, 0xff, 0xffff, 0xff20, 0x7fff_ffff, 0xffff_ffff, ulong.MaxValue,
            (ulong)random.NextInt64(), (ulong)m.Length, (ulong)m.Length + 1];
        ulong v = values[random.Next(values.Length)];
        int width = new[] { 1, 2, 4, 8 }[random.Next(4)];
        for (int b = 0; b < width && at + b < m.Length; b++) m[at + b] = (byte)(v >> (8 * b));
    }

    private static string Save(byte[] mutant)
    {
        string dir = Path.Combine(Path.GetTempPath(), "ppclp-fuzz");
        Directory.CreateDirectory(dir);
        string path =
            Path.Combine(dir, $"{Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(mutant))[..16]}.o");
        File.WriteAllBytes(path, mutant);
        return path;
    }
}
