// SPDX-License-Identifier: GPL-2.0
/*
 * A livepatch for /proc/cmdline, built two ways by the same project:
 *
 *  - plain (no KernelDir): gcc + ld -r without kernel headers; the few kernel interfaces it uses are declared here.
 *  - kbuild (KernelDir=<kernel build tree>): a real livepatch module that replaces cmdline_proc_show().
 *
 * The replacement calls
 *   seq_printf()          exported by vmlinux: undefined here, so GCC emits "bl seq_printf; nop";
 *   version_proc_show()   static in fs/proc/version.c. Patches built kpatch-style carry a copy of such helpers.
 *                         GCC compiles the call to the copy as a local "bl" with no nop. The project's KlpSymbol
 *                         item drops the copy and binds the call to the original in vmlinux through a livepatch
 *                         relocation — which the kernel refuses without a nop after the call, so the SDK fixes it.
 * The copy below prints less than the original (no "(builder@host)" part), so the output shows which one ran.
 * noipa keeps GCC from cloning it under another name (version_proc_show.isra.0), which would no longer match.
 */
#ifdef __KERNEL__
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/livepatch.h>
#include <linux/seq_file.h>
#include <linux/utsname.h>
#else
struct seq_file;
extern int seq_printf(struct seq_file *m, const char *fmt, ...);
extern char *saved_command_line;
#endif

static int __attribute__((noipa)) version_proc_show(struct seq_file *m, void *v)
{
#ifdef __KERNEL__
	seq_printf(m, "%s version %s %s\n", utsname()->sysname, utsname()->release, utsname()->version);
#else
	seq_printf(m, "version (copy)\n");
#endif
	return 0;
}

int livepatch_cmdline_proc_show(struct seq_file *m, void *v)
{
	version_proc_show(m, v);
	seq_printf(m, "%s [livepatched by PpcLivepatch.Build]\n", saved_command_line);
	return 0;
}

#ifdef __KERNEL__
static struct klp_func funcs[] = {
	{
		.old_name = "cmdline_proc_show",
		.new_func = livepatch_cmdline_proc_show,
	}, { }
};

static struct klp_object objs[] = {
	{
		/* name being NULL means vmlinux */
		.funcs = funcs,
	}, { }
};

static struct klp_patch patch = {
	.mod = THIS_MODULE,
	.objs = objs,
};

static int livepatch_init(void)
{
	return klp_enable_patch(&patch);
}

static void livepatch_exit(void)
{
}

module_init(livepatch_init);
module_exit(livepatch_exit);
MODULE_LICENSE("GPL");
MODULE_INFO(livepatch, "Y");
#endif
