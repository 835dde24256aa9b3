// SPDX-License-Identifier: GPL-2.0
#include <linux/module.h>
#include <linux/jiffies.h>

/*
 * A plain (not livepatch) module for the real-kernel oracle: jiffies_to_msecs, exported by vmlinux, is called from
 * hand-written assembly with no nop after the bl. The kernel refuses the module as built; patched, it loads and
 * prints the right result, which it can only do if the TOC is restored after the call through the stub.
 */
unsigned int asm_call_exported(unsigned long j);
asm(".section .text.asm_call_exported,\"ax\",@progbits\n"
    ".globl asm_call_exported\n"
    ".type asm_call_exported,@function\n"
    "asm_call_exported:\n"
    "	mflr 0\n"
    "	std 0,16(1)\n"
    "	stdu 1,-32(1)\n"
    "	bl jiffies_to_msecs\n"
    "	li 0,0\n"
    "	addi 1,1,32\n"
    "	ld 0,16(1)\n"
    "	mtlr 0\n"
    "	blr\n"
    ".size asm_call_exported, .-asm_call_exported\n"
    ".text\n");

static int __init nonop_init(void)
{
	pr_info("nonop: jiffies_to_msecs(%d) = %u\n", HZ, asm_call_exported(HZ));
	return 0;
}
module_init(nonop_init);
MODULE_LICENSE("GPL");
