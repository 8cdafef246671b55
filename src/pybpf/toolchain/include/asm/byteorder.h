/* pybpf's fallback <asm/byteorder.h>: BPF objects built here are little-endian (bpfel). */
#ifndef _PYBPF_ASM_BYTEORDER_H
#define _PYBPF_ASM_BYTEORDER_H

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#ifndef __LITTLE_ENDIAN_BITFIELD
#define __LITTLE_ENDIAN_BITFIELD
#endif
#ifndef __LITTLE_ENDIAN
#define __LITTLE_ENDIAN 1234
#endif
#else
#ifndef __BIG_ENDIAN_BITFIELD
#define __BIG_ENDIAN_BITFIELD
#endif
#ifndef __BIG_ENDIAN
#define __BIG_ENDIAN 4321
#endif
#endif

#endif /* _PYBPF_ASM_BYTEORDER_H */
