// SPDX-License-Identifier: GPL-2.0
/*
 * A livepatch-shaped replacement of a /proc show function. Built without kernel headers, so it declares the few
 * kernel interfaces it uses itself.
 *
 *   seq_printf()         exported by vmlinux: an undefined symbol, and GCC emits "bl seq_printf; nop".
 *   saved_command_line   exported data.
 *   cmdline_len()        static in the original source file and copied here unchanged, as kpatch-style patches do.
 *                        GCC compiles the call as a local "bl" with no nop. The project's KlpSymbol item makes the
 *                        module call the original in vmlinux instead, through a livepatch relocation, which the
 *                        kernel refuses without a nop: the SDK fixes that call.
 */
struct seq_file;

extern int seq_printf(struct seq_file *m, const char *fmt, ...);
extern char *saved_command_line;

static int __attribute__((noinline)) cmdline_len(const char *s)
{
	int n = 0;

	while (s[n])
		n++;
	return n;
}

int livepatch_cmdline_proc_show(struct seq_file *m, void *v)
{
	int len = cmdline_len(saved_command_line);

	seq_printf(m, "%s [livepatched: %d bytes]\n", saved_command_line, len);
	return 0;
}
