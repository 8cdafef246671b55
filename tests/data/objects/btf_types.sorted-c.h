#ifndef __VMLINUX_H__
#define __VMLINUX_H__

#ifndef BPF_NO_PRESERVE_ACCESS_INDEX
#pragma clang attribute push (__attribute__((preserve_access_index)), apply_to = record)
#endif

#ifndef __ksym
#define __ksym __attribute__((section(".ksyms")))
#endif

#ifndef __weak
#define __weak __attribute__((weak))
#endif

enum big_e {
	BIG_A = 1ULL,
	BIG_B = 4294967296ULL,
};

enum neg_e {
	NEG_A = -5,
	NEG_B = 7,
};

enum small_e {
	SMALL_A = 1,
	SMALL_B = 2,
} __attribute__((mode(byte)));

typedef unsigned char __u8;

typedef unsigned int __u32;

typedef unsigned long long u64_t;

typedef u64_t *u64_ptr_t;

struct bits {
	unsigned int a: 3;
	unsigned int b: 5;
	int c: 12;
	unsigned long long d: 40;
	char e;
	unsigned short f: 4;
};

typedef int (*handler_t)(void *, const char *, ...);

struct fwd_only;

typedef struct fwd_only fwd_t;

struct padded;

struct packed_s {
	char c;
	int i;
	short s;
} __attribute__((packed));

struct everything {
	volatile const int cv;
	struct {
		int x;
		int y;
	} point;
	union {
		__u32 u32;
		__u8 bytes[4];
	};
	enum {
		MODE_OFF = 0,
		MODE_ON = 1,
	} mode;
	handler_t handler;
	int (*ops[3])(struct everything *, fwd_t *);
	struct bits bits;
	struct padded *padded;
	struct packed_s packed;
	u64_ptr_t pp;
	enum small_e small;
	enum neg_e neg;
	enum big_e big;
	char matrix[2][3];
	void *restrict_ptr;
	struct fwd_only *fwd;
};

struct xdp_md {
	__u32 data;
	__u32 data_end;
	__u32 data_meta;
	__u32 ingress_ifindex;
	__u32 rx_queue_index;
	__u32 egress_ifindex;
};


/* BPF kfuncs */
#ifndef BPF_NO_KFUNC_PROTOTYPES
#endif

#ifndef BPF_NO_PRESERVE_ACCESS_INDEX
#pragma clang attribute pop
#endif

#endif /* __VMLINUX_H__ */
