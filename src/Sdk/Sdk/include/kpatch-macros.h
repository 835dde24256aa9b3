/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The patch-author macros kpatch documents, for KernelPatch items built by PpcLivepatch.Build: a patch written for
 * kpatch-build builds unchanged. Written from kpatch's documented behaviour (doc/patch-author-guide.md), not from its
 * code. Each macro leaves a record in a .plp.* section of the patched object; `ppc-livepatch diff` reads the records
 * and turns them into what they mean (a klp callback, a change it leaves out). No record reaches the module.
 */
#ifndef PPCLIVEPATCH_KPATCH_MACROS_H
#define PPCLIVEPATCH_KPATCH_MACROS_H

#include <linux/compiler.h>
#include <linux/livepatch.h>

typedef struct klp_object patch_object;

typedef int (*plp_pre_patch_callback_t)(patch_object *obj);
typedef void (*plp_post_patch_callback_t)(patch_object *obj);
typedef void (*plp_pre_unpatch_callback_t)(patch_object *obj);
typedef void (*plp_post_unpatch_callback_t)(patch_object *obj);

/* A pointer in a section of its own: the type checks the callback's signature, the section names its kind. */
#define PLP_CALLBACK_RECORD(kind, fn) \
	static plp_##kind##_callback_t __plp_##kind##_##fn __used __section(".plp.callback." #kind) = fn

/* Run before the patch applies to an object (vmlinux, or a module when it loads); non-zero refuses the patch. */
#define KPATCH_PRE_PATCH_CALLBACK(fn) PLP_CALLBACK_RECORD(pre_patch, fn)
/* Run once the patch is applied to the object. */
#define KPATCH_POST_PATCH_CALLBACK(fn) PLP_CALLBACK_RECORD(post_patch, fn)
/* Run before the patch is removed from the object; the counterpart of the post-patch callback. */
#define KPATCH_PRE_UNPATCH_CALLBACK(fn) PLP_CALLBACK_RECORD(pre_unpatch, fn)
/* Run once the patch is removed from the object; the counterpart of the pre-patch callback. */
#define KPATCH_POST_UNPATCH_CALLBACK(fn) PLP_CALLBACK_RECORD(post_unpatch, fn)

/* A function that changed only as a side effect (a line number in a WARN, say): the livepatch leaves it out. */
#define KPATCH_IGNORE_FUNCTION(fn) \
	static void *__plp_ignore_function_##fn __used __section(".plp.ignore.function") = (void *)(fn)

/* A section whose changes are side effects: the livepatch leaves out whatever changed in it. */
#define KPATCH_IGNORE_SECTION(name) \
	static const char __UNIQUE_ID(plp_ignore_section)[] __used __section(".plp.ignore.section") = name

/*
 * kpatch's own core could skip the activeness check for one function; the kernel's livepatch core cannot (its
 * consistency model covers the whole patch, and /sys/kernel/livepatch/<patch>/force is the administrator's call).
 * Refused here, at the patch's line, rather than built into a module that would not do what the patch asks.
 */
#define KPATCH_FORCE_UNSAFE(fn) \
	_Static_assert(0, "KPATCH_FORCE_UNSAFE(" #fn "): the kernel livepatch core has no per-function force; " \
		       "remove it")

#endif /* PPCLIVEPATCH_KPATCH_MACROS_H */
