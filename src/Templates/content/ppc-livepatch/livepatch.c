// SPDX-License-Identifier: GPL-2.0
/*
 * A livepatch that replaces cmdline_proc_show() (fs/proc/cmdline.c): /proc/cmdline then also prints the kernel
 * version, through the kernel's own static version_proc_show() (a KlpSymbol in the project file).
 *
 * Without KernelDir the project builds an object for checking, without kernel headers: the few kernel interfaces
 * used are declared below. With KernelDir it builds the livepatch module (.ko) with kbuild.
 */
#ifdef __KERNEL__
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/livepatch.h>
#include <linux/seq_file.h>
#else
struct seq_file;
extern int seq_printf(struct seq_file *m, const char *fmt, ...);
extern char *saved_command_line;
#endif

/* The patch's copy of the kernel's static helper: the SDK drops it and binds the call to the original. noipa keeps
 * GCC from specialising it under another name (version_proc_show.isra.0), which would no longer match. */
static int __attribute__((noipa)) version_proc_show(struct seq_file *m, void *v)
{
	seq_printf(m, "(copy)\n");
	return 0;
}

int livepatch_cmdline_proc_show(struct seq_file *m, void *v)
{
	/* Not "return version_proc_show(m, v);": GCC would make that a tail call, which leaves a kernel function
	 * returning with the kernel's TOC pointer in this module's caller (PLP3001). */
	seq_printf(m, "%s [livepatched] ", saved_command_line);
	version_proc_show(m, v);
	return 0;
}

#ifdef __KERNEL__
static struct klp_func funcs[] = {
	{ .old_name = "cmdline_proc_show", .new_func = livepatch_cmdline_proc_show, },
	{ }
};

static struct klp_object objs[] = {
	{ .funcs = funcs, },   /* .name NULL: vmlinux */
	{ }
};

static struct klp_patch patch = {
	.mod = THIS_MODULE,
	.objs = objs,
};

static int __init livepatch_init(void)
{
	return klp_enable_patch(&patch);
}

static void __exit livepatch_exit(void)
{
}

module_init(livepatch_init);
module_exit(livepatch_exit);
MODULE_LICENSE("GPL");
MODULE_INFO(livepatch, "Y");
#endif
