using System.Collections.Concurrent;
using System.Text.RegularExpressions;

namespace PpcLivepatch.Build.Tests;

/// <summary>
/// Real kernel changes no one here wrote (tests/stable-changes: per-file changes between Debian's linux-source-6.1
/// 6.1.176-1, the oracle tree's source, and 6.1.187-1, picked by eng/stable-corpus/make-corpus.py), each built by the
/// packed SDK from its <c>.patch</c> alone. The modules go into one boot of the oracle kernel, which loads and
/// enables each, runs eng/stable-corpus/workload.sh while ftrace records which of the livepatch's new functions run,
/// then disables and unloads it; the refusals fail their builds with their codes. The whole corpus is
/// eng/stable-corpus/run.sh.
/// </summary>
public sealed partial class KernelOracleTests
{
    private sealed record StableChange(string Name, Tool.Result Result, string Ko);

    private sealed record StableRun(IReadOnlyDictionary<string, StableChange> Builds, Boot Boot);

    private static readonly Lazy<StableRun> s_stable = new(RunStableChanges);

    private static string StableModule(string name) => "lp_stable_" + name.Replace('-', '_');

    private static StableRun RunStableChanges()
    {
        string dir = Path.Combine(Repo.Root, "tests", "stable-changes");
        var builds = new ConcurrentDictionary<string, StableChange>(StringComparer.Ordinal);
        // One build per core: each is a compile of a kernel file twice and kbuild's link.
        Parallel.ForEach(Directory.GetFiles(dir, "*.patch").Order(StringComparer.Ordinal),
            new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, patch =>
            {
                string name = Path.GetFileNameWithoutExtension(patch), module = StableModule(name);
                var result = BuildKernelPatch(name, File.ReadAllText(patch), module, out string project);
                builds[name] = new StableChange(name, result, Path.Combine(project, "bin", "Debug", module + ".ko"));
            });
        var modules = builds.Values.Where(b => b.Result.ExitCode == 0 && File.Exists(b.Ko)).Select(b => b.Ko)
            .Order(StringComparer.Ordinal).ToArray();
        var boot = BootWith(new Dictionary<string, string>
        {
            ["PPCLP_ORACLE_PROBE"] = Path.Combine(Repo.Root, "eng", "stable-corpus", "workload.sh"),
            ["PPCLP_ORACLE_UNLOAD"] = "1",
        }, Path.Combine(s_env["KO_KLP_BUILD"], "vmlinux"), modules);
        return new StableRun(builds, boot);
    }

    /// <summary>
    /// A stable fix that can be livepatched builds, loads, enables, runs under the workload with no complaint from
    /// the kernel, disables and unloads; where the workload reaches the changed function, the trace shows the
    /// livepatch's copy running (called by the livepatch core's handler, not the original).
    /// </summary>
    [TestMethod]
    [DataRow("kernel_exit", "kernel/exit.c: release_task changed", "__klp_new_release_task")]
    [DataRow("kernel_sched_core", "kernel/sched/core.c: sched_fork changed", "__klp_new_sched_fork")]
    // __lock_task_sighand, inlined in three more; send_sigqueue fires a tracepoint, whose key is bound through kallsyms
    // (PLP5008 before).
    [DataRow("kernel_signal", "__lock_task_sighand, send_sigqueue, do_send_sig_info changed",
        "__klp_new___lock_task_sighand")]
    public void AStableFixThatCanBeLivepatchedLoadsAndRuns(string name, string changed, string ran)
    {
        var run = s_stable.Value;
        var build = run.Builds[name];
        Assert.AreEqual(0, build.Result.ExitCode, build.Result.Output);
        StringAssert.Contains(build.Result.Output, changed);
        string module = StableModule(name);
        Assert.AreEqual(0, run.Boot.InsmodStatus(module), run.Boot.Log);
        StringAssert.Contains(run.Boot.Log, $"ORACLE: livepatch {module} enabled=1 transition=0");
        StringAssert.Contains(run.Boot.Log, $"ORACLE: disable {module} enabled=0 transition=0");
        StringAssert.Contains(run.Boot.Log, $"ORACLE: rmmod {module} rc=0");
        string functions = Regex.Match(run.Boot.Log, $@"ORACLE: probe {module} ran: ?(.*)").Groups[1].Value.Trim();
        if (ran.Length > 0) CollectionAssert.Contains(functions.Split(' '), ran, run.Boot.Log);
        var complaints = run.Boot.Dmesg.Where(l => Regex.IsMatch(l, @"Oops|BUG:|WARNING:|Call Trace|panic"))
            .ToList();
        Assert.AreEqual(0, complaints.Count, string.Join("\n", complaints));
    }

    /// <summary>
    /// A stable fix that cannot be livepatched, or not from its file alone, is refused with the code that says why —
    /// each agrees with kpatch's create-diff-object on the same objects (eng/stable-corpus/run.sh) — and no module is
    /// left behind.
    /// </summary>
    [TestMethod]
    [DataRow("lib_rhashtable", "PLP5004", "rhashtable_walk_start_check has no ftrace call site")]
    [DataRow("block_blk-core", "PLP3001", "sibling call (b) to undefined symbol submit_bio_noacct_nocheck")]
    [DataRow("block_bdev", "PLP5002", "bdev_cache_init is in .init.text")]
    [DataRow("mm_vmscan", "PLP5001", "the patches change no function the kernel builds")]
    // The fix calls secs_to_jiffies(), which the same release added to a header.
    [DataRow("drivers_base_dd", "PLP0010", "implicit declaration of function")]
    public void AStableFixThatCannotBeLivepatchedIsRefusedWithItsCode(string name, string code, string message)
    {
        var build = s_stable.Value.Builds[name];
        Assert.AreNotEqual(0, build.Result.ExitCode, build.Result.Output);
        Assert.IsFalse(File.Exists(build.Ko), build.Result.Output);
        var error = Regex.Match(build.Result.Output,
            $@"{Regex.Escape(name)}\.patch(\(\d+\))? ?: (?:ppc-livepatch )?error {code}: (.*)");
        Assert.IsTrue(error.Success, build.Result.Output);
        StringAssert.Contains(error.Groups[2].Value, message);
    }
}
