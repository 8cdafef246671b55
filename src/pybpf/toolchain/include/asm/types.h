/* pybpf's fallback <asm/types.h>: the fixed-width integer types of the kernel UAPI (int-ll64).
 * Used only when the system has no such header (the search path adds pybpf's directory with
 * -idirafter, so system headers win). Written for pybpf from the UAPI's definitions. */
#ifndef _ASM_GENERIC_INT_LL64_H
#define _ASM_GENERIC_INT_LL64_H

typedef signed char __s8;
typedef unsigned char __u8;
typedef signed short __s16;
typedef unsigned short __u16;
typedef signed int __s32;
typedef unsigned int __u32;
typedef signed long long __s64;
typedef unsigned long long __u64;

#endif /* _ASM_GENERIC_INT_LL64_H */
