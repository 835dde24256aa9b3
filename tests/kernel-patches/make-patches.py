#!/usr/bin/env python3
# Writes *.patch here: the kernel-oracle test's KernelPatch set, as edits of Debian's linux-source-6.1 (the oracle
# tree's source, eng/kernel-oracle/setup.sh --klp). Each is built by the packed SDK, loaded into the oracle kernel under
# QEMU and read back from inside the guest (KernelOracleTests), or refused at its line. Run only to change them.
#
#   make-patches.py --line 6.12|7.2   the same edits of that line's source (eng/kernel-oracle/setup-line.sh) into
#                                     linux-LINE/, keeping only the patches whose 6.1 form does not apply there
import os, shutil, subprocess, sys, tempfile
CACHE = os.environ.get('PPCLP_KERNEL_CACHE', os.path.expanduser('~/.cache/ppclivepatch-kernel-oracle'))
LINE = sys.argv[2] if len(sys.argv) > 2 and sys.argv[1] == '--line' else '6.1'
HERE = os.path.dirname(os.path.abspath(__file__))
if LINE == '6.1':
    S = os.path.realpath(os.path.join(CACHE, 'klp-6.1.0-50', 'build', 'source'))
    OUT = HERE
else:
    S = os.path.join(CACHE, 'klp-' + LINE, 'src', 'linux-source-' + LINE)
    OUT = tempfile.mkdtemp()

def mk(name, path, edits, into=None, kpatch=False, base=()):
    """edits: (old, new) pairs applied once each, in order, to the pristine file -> INTO/NAME.patch (diff -u, no
    dates). kpatch: in the form kpatch's own patches have (diff -Nupr src.orig/PATH src/PATH), which patch -p1 and
    kpatch-build read. base: edits already made by the patches before this one in a series."""
    into = into or OUT
    a = open(os.path.join(S, path)).read()
    for old, new in base:
        assert a.count(old) == 1, (name, old)
        a = a.replace(old, new)
    b = a
    for old, new in edits:
        assert b.count(old) == 1, (name, old)
        b = b.replace(old, new)
    with tempfile.TemporaryDirectory() as t:
        for side, text in (('a', a), ('b', b)):
            os.makedirs(os.path.join(t, side, os.path.dirname(path)), exist_ok=True)
            open(os.path.join(t, side, path), 'w').write(text)
        out = subprocess.run(['diff', '-u', 'a/' + path, 'b/' + path], cwd=t, capture_output=True, text=True).stdout
    lines = out.split('\n')
    lines[0], lines[1] = '--- a/' + path, '+++ b/' + path
    if kpatch:
        lines = [f'diff -Nupr src.orig/{path} src/{path}', '--- src.orig/' + path, '+++ src/' + path] + lines[2:]
    open(os.path.join(into, name + '.patch'), 'w').write('\n'.join(lines))

# A static local: its value outlives each call, in the livepatch module's own data.
mk('version-static-local', 'fs/proc/version.c', [
    ('static int version_proc_show(struct seq_file *m, void *v)\n{\n',
     'static int version_proc_show(struct seq_file *m, void *v)\n{\n\tstatic unsigned int reads;\n\n'),
    ('\t\tutsname()->version);\n',
     '\t\tutsname()->version);\n\tseq_printf(m, "livepatched read %u\\n", ++reads);\n')])

# A new global, defined by the livepatch module.
mk('uptime-new-global', 'fs/proc/uptime.c', [
    ('static int uptime_proc_show(', 'unsigned long uptime_livepatch_reads;\n\nstatic int uptime_proc_show('),
    ('\tseq_printf(m, "%lu.%02lu %lu.%02lu\\n",',
     '\tuptime_livepatch_reads++;\n\tseq_printf(m, "%lu.%02lu %lu.%02lu reads=%lu\\n",'),
    ('\t\t\t(idle.tv_nsec / (NSEC_PER_SEC / 100)));',
     '\t\t\t(idle.tv_nsec / (NSEC_PER_SEC / 100)),\n\t\t\tuptime_livepatch_reads);')])

# A call from the changed function to a static function that stays in the kernel: gcc compiles the call to
# do_task_stat as a local `bl` with no nop after it, the livepatch binds do_task_stat through .klp.sym, and the loader
# demands the nop. It is samples/KernelPatch's patch; the test builds the sample.
mk('stat-livepatched', 'fs/proc/array.c', [
    ('\treturn do_task_stat(m, ns, pid, task, 1);\n}\n\nint proc_pid_statm(',
     '\tint ret = do_task_stat(m, ns, pid, task, 1);\n\n\tseq_puts(m, "livepatched\\n");\n\treturn ret;\n}\n\n'
     'int proc_pid_statm(')],
   into=os.path.join(HERE, '..', '..', 'samples', 'KernelPatch') if LINE == '6.1' else None)

# A shadow variable (klp_shadow_*) and kpatch-style callbacks through the SDK's kpatch-macros.h.
mk('cmdline-shadow-callbacks', 'fs/proc/cmdline.c', [
    ('#include <linux/seq_file.h>\n',
     '#include <linux/seq_file.h>\n#include <linux/livepatch.h>\n#include "kpatch-macros.h"\n\n'
     '#define CMDLINE_READS_ID 0x504c50\n\n'
     'static int cmdline_pre_patch(patch_object *obj)\n{\n\tpr_info("cmdline livepatch: pre-patch\\n");\n\treturn 0;\n}\n'
     'KPATCH_PRE_PATCH_CALLBACK(cmdline_pre_patch);\n\n'
     'static void cmdline_post_patch(patch_object *obj)\n{\n\tpr_info("cmdline livepatch: post-patch\\n");\n}\n'
     'KPATCH_POST_PATCH_CALLBACK(cmdline_post_patch);\n\n'
     'static void cmdline_pre_unpatch(patch_object *obj)\n{\n\tpr_info("cmdline livepatch: pre-unpatch\\n");\n}\n'
     'KPATCH_PRE_UNPATCH_CALLBACK(cmdline_pre_unpatch);\n\n'
     'static void cmdline_post_unpatch(patch_object *obj)\n{\n'
     '\tklp_shadow_free_all(CMDLINE_READS_ID, NULL);\n\tpr_info("cmdline livepatch: post-unpatch\\n");\n}\n'
     'KPATCH_POST_UNPATCH_CALLBACK(cmdline_post_unpatch);\n'),
    ('\tseq_puts(m, saved_command_line);\n\tseq_putc(m, \'\\n\');\n',
     '\tunsigned long *reads = klp_shadow_get_or_alloc(saved_command_line, CMDLINE_READS_ID,\n'
     '\t\t\t\t\t\t      sizeof(*reads), GFP_KERNEL, NULL, NULL);\n\n'
     '\tseq_puts(m, saved_command_line);\n'
     '\tseq_printf(m, " [shadow reads=%lu]\\n", reads ? ++*reads : 0);\n')])

# A module's function (fs/binfmt_misc.ko): its own klp_object, patched when the module is loaded.
# Since 6.7 binfmt_misc's state is per user namespace (misc->enabled).
mk('binfmt-misc-status', 'fs/binfmt_misc.c', [
    ('\tchar *s = enabled ? "enabled\\n" : "disabled\\n";',
     '\tchar *s = enabled ? "enabled [livepatched]\\n" : "disabled [livepatched]\\n";')] if LINE == '6.1' else [
    ('\ts = misc->enabled ? "enabled\\n" : "disabled\\n";',
     '\ts = misc->enabled ? "enabled [livepatched]\\n" : "disabled [livepatched]\\n";')])

# A system call, through kpatch's KPATCH_SYSCALL_DEFINE1 (the SDK's kpatch-syscall.h).
mk('uname-syscall', 'kernel/sys.c', [
    ('SYSCALL_DEFINE1(newuname, struct new_utsname __user *, name)\n{\n\tstruct new_utsname tmp;\n\n'
     '\tdown_read(&uts_sem);\n\tmemcpy(&tmp, utsname(), sizeof(tmp));\n\tup_read(&uts_sem);\n',
     '#include "kpatch-syscall.h"\nKPATCH_SYSCALL_DEFINE1(newuname, struct new_utsname __user *, name)\n{\n'
     '\tstruct new_utsname tmp;\n\n'
     '\tdown_read(&uts_sem);\n\tmemcpy(&tmp, utsname(), sizeof(tmp));\n\tup_read(&uts_sem);\n'
     '\tstrcat(tmp.sysname, "-livepatched");\n')])

# A header: fs/proc/fd.h gets a new inline that fs/proc/fd.c's seq_show calls. Every unit whose kbuild record lists
# the header is compiled twice (fd.c and base.c); base.c does not change. Two files in one patch.
mk('fdinfo-header', 'fs/proc/fd.h', [
    ('#include <linux/fs.h>\n', '#include <linux/fs.h>\n#include <linux/seq_file.h>\n'),
    ('\treturn PROC_I(inode)->fd;\n}\n',
     '\treturn PROC_I(inode)->fd;\n}\n\nstatic inline void proc_fd_livepatch_note(struct seq_file *m)\n{\n'
     '\tseq_puts(m, "livepatched:\\t1\\n");\n}\n')])
mk('fdinfo-header.c-part', 'fs/proc/fd.c', [
    ('\tif (file->f_op->show_fdinfo)\n\t\tfile->f_op->show_fdinfo(m, file);\n\nout:',
     '\tif (file->f_op->show_fdinfo)\n\t\tfile->f_op->show_fdinfo(m, file);\n\tproc_fd_livepatch_note(m);\n\nout:')])
with open(os.path.join(OUT, 'fdinfo-header.patch'), 'a') as whole:
    whole.write(open(os.path.join(OUT, 'fdinfo-header.c-part.patch')).read())
os.remove(os.path.join(OUT, 'fdinfo-header.c-part.patch'))

# A tracepoint in the changed code: its static key (__tracepoint_sched_kthread_stop_ret) is not exported, so the
# livepatch binds it through kallsyms; the loader writes that relocation before it sets up the module's jump labels,
# and enabling the event turns the branch in the livepatch on.
mk('version-tracepoint', 'fs/proc/version.c', [
    ('#include "internal.h"\n', '#include "internal.h"\n#include <trace/events/sched.h>\n'),
    ('\t\tutsname()->version);\n', '\t\tutsname()->version);\n\ttrace_sched_kthread_stop_ret(4242);\n')])

# A series: the second patch is written on top of the first (its context is the first one's line), and the two
# KernelPatch items apply in order, as quilt and kpatch-build apply a series.
SERIES_1 = [('\t\tutsname()->version);\n', '\t\tutsname()->version);\n\tseq_puts(m, "series: one\\n");\n')]
mk('version-series-1', 'fs/proc/version.c', SERIES_1)
mk('version-series-2', 'fs/proc/version.c', [('\tseq_puts(m, "series: one\\n");\n',
                                              '\tseq_puts(m, "series: one, two\\n");\n')], base=SERIES_1)

# Refused: the kernel's data changes (PLP5003) — the banner is read by the unchanged version_proc_show.
mk('banner-data', 'init/version.c', [
    ('\t"%s version %s"\n', '\t"%s version %s [livepatched]"\n')])

# In kpatch's own patch form (src.orig/ and src/, read as patch -p1 reads it): /proc/meminfo's first label.
mk('meminfo-kpatch-form', 'fs/proc/meminfo.c', [
    ('show_val_kb(m, "MemTotal:       ", i.totalram);', 'show_val_kb(m, "MemTotal[lp]:   ", i.totalram);')],
   kpatch=True)

# Refused (PLP5011): loadavg_proc_show's kallsyms range also holds the ftrace site of code the linker kept after it
# without a symbol (the weak arch_report_meminfo), where the kernel could attach the patch and never run it.
mk('loadavg-format', 'fs/proc/loadavg.c', [
    ('"%lu.%02lu %lu.%02lu %lu.%02lu %u/%d %d\\n"', '"%lu.%02lu %lu.%02lu %lu.%02lu %u/%d %d [livepatched]\\n"')])

# A newer line keeps a patch of its own only where the 6.1 form does not apply to its source (a series' later patch
# goes with its first).
if LINE != '6.1':
    line_dir = os.path.join(HERE, 'linux-' + LINE)
    shutil.rmtree(line_dir, ignore_errors=True)
    os.makedirs(line_dir)
    for name in sorted(os.listdir(OUT)):
        first = name.replace('-2.patch', '-1.patch') if name.startswith('version-series-') else name
        original = os.path.join(HERE, first)
        if not os.path.exists(original):
            original = os.path.join(HERE, '..', '..', 'samples', 'KernelPatch', first)
        applies = subprocess.run(['patch', '-p1', '--dry-run', '-F0', '-s', '-d', S, '-i', original],
                                 capture_output=True).returncode == 0
        if not applies:
            shutil.copy(os.path.join(OUT, name), line_dir)
    shutil.rmtree(OUT)
