// SPDX-License-Identifier: GPL-2.0
/*
 * A livepatch whose copied helper has records in the kernel's tables: a WARN (a __bug_table entry and, on powerpc,
 * an __ex_table entry for the trap), a get_user (an __ex_table entry), a static branch (a __jump_table entry) and,
 * like every function, an ftrace call site (__mcount_loc). The project's KlpSymbol drops the copy: its records must
 * go with it, and those of the replacement, which stays, must not.
 */
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/livepatch.h>
#include <linux/seq_file.h>
#include <linux/uaccess.h>
#include <linux/jump_label.h>
#include <linux/bug.h>

static DEFINE_STATIC_KEY_FALSE(tables_key);

static int __attribute__((noipa)) version_proc_show(struct seq_file *m, void *v)
{
	int probe;

	WARN_ON_ONCE(!m);
	if (static_branch_unlikely(&tables_key) && get_user(probe, (int __user *)v))
		return -EFAULT;
	seq_printf(m, "copy\n");
	return 0;
}

static int tables_cmdline_proc_show(struct seq_file *m, void *v)
{
	WARN_ON_ONCE(!m);   /* the replacement's own records stay */
	if (static_branch_unlikely(&tables_key))
		seq_printf(m, "key\n");
	version_proc_show(m, v);
	seq_printf(m, "%s [livepatched by PpcLivepatch.Build]\n", saved_command_line);
	return 0;
}

static struct klp_func funcs[] = { { .old_name = "cmdline_proc_show", .new_func = tables_cmdline_proc_show }, { } };
static struct klp_object objs[] = { { .funcs = funcs }, { } };
static struct klp_patch patch = { .mod = THIS_MODULE, .objs = objs };

static int tables_init(void)
{
	return klp_enable_patch(&patch);
}

static void tables_exit(void)
{
}

module_init(tables_init);
module_exit(tables_exit);
MODULE_LICENSE("GPL");
MODULE_INFO(livepatch, "Y");
