/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kpatch's KPATCH_SYSCALL_DEFINEn, for KernelPatch items built by PpcLivepatch.Build, written from its documented
 * behaviour. A system call's body is the kernel's __do_sys<name>(), which is 'inline' and so 'notrace': the livepatch
 * core cannot redirect it (the diff refuses it, PLP5004). Defined through these macros, the body is a function of
 * another name — new to the diff, so it goes into the livepatch whole — reached from the kernel's own wrapper
 * (sys<name>, traced), which the livepatch replaces. The tracing metadata SYSCALL_DEFINEn adds
 * (CONFIG_FTRACE_SYSCALLS) is left out: it would be new data the running kernel's tables never see.
 */
#ifndef PPCLIVEPATCH_KPATCH_SYSCALL_H
#define PPCLIVEPATCH_KPATCH_SYSCALL_H

#include <linux/syscalls.h>

#define KPATCH_SYSCALL_DEFINE1(name, ...) PLP_SYSCALL_DEFINEx(1, _##name, __VA_ARGS__)
#define KPATCH_SYSCALL_DEFINE2(name, ...) PLP_SYSCALL_DEFINEx(2, _##name, __VA_ARGS__)
#define KPATCH_SYSCALL_DEFINE3(name, ...) PLP_SYSCALL_DEFINEx(3, _##name, __VA_ARGS__)
#define KPATCH_SYSCALL_DEFINE4(name, ...) PLP_SYSCALL_DEFINEx(4, _##name, __VA_ARGS__)
#define KPATCH_SYSCALL_DEFINE5(name, ...) PLP_SYSCALL_DEFINEx(5, _##name, __VA_ARGS__)
#define KPATCH_SYSCALL_DEFINE6(name, ...) PLP_SYSCALL_DEFINEx(6, _##name, __VA_ARGS__)

/* The kernel's wrapper (__SYSCALL_DEFINEx: sys<name>, __se_sys<name>, __do_sys<name>) with a one-call body that the
 * compiler inlines, and the patch's body as __plp_do_sys<name>. */
#define PLP_SYSCALL_DEFINEx(x, sname, ...)						\
	static long __plp_do_sys##sname(__MAP(x, __SC_DECL, __VA_ARGS__));		\
	__SYSCALL_DEFINEx(x, sname, __VA_ARGS__)					\
	{										\
		return __plp_do_sys##sname(__MAP(x, __SC_ARGS, __VA_ARGS__));		\
	}										\
	static noinline long __plp_do_sys##sname(__MAP(x, __SC_DECL, __VA_ARGS__))

#endif /* PPCLIVEPATCH_KPATCH_SYSCALL_H */
