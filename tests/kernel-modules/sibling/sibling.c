// SPDX-License-Identifier: GPL-2.0
/*
 * A livepatch whose replacement ends in a sibling call to a helper that lives in vmlinux (a KlpSymbol): GCC emits
 * "b version_proc_show", which the loader accepts but which leaves cmdline_proc_show's caller with vmlinux's TOC.
 * The SDK must fail the build at the return statement below (PLP3001).
 */
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/livepatch.h>
#include <linux/seq_file.h>

static int __attribute__((noipa)) version_proc_show(struct seq_file *m, void *v)
{
	seq_printf(m, "copy\n");
	return 0;
}

static int sibling_cmdline_proc_show(struct seq_file *m, void *v)
{
	return version_proc_show(m, v);
}

static struct klp_func funcs[] = { { .old_name = "cmdline_proc_show", .new_func = sibling_cmdline_proc_show }, { } };
static struct klp_object objs[] = { { .funcs = funcs }, { } };
static struct klp_patch patch = { .mod = THIS_MODULE, .objs = objs };

static int sibling_init(void)
{
	return klp_enable_patch(&patch);
}

module_init(sibling_init);
MODULE_LICENSE("GPL");
MODULE_INFO(livepatch, "Y");
