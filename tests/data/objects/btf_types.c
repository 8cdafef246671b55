/* C constructs the BTF printers must get right: bitfields and padding, packed structs,
 * anonymous structs/unions/enums, function pointers and arrays of them, forward declarations,
 * typedef chains, const/volatile, enums of all sizes and signedness, flexible arrays. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct fwd_only;
typedef struct fwd_only fwd_t;
typedef unsigned long long u64_t;
typedef u64_t *u64_ptr_t;

enum small_e { SMALL_A = 1, SMALL_B = 2 } __attribute__((packed));
enum neg_e { NEG_A = -5, NEG_B = 7 };
enum big_e { BIG_A = 1, BIG_B = 0x100000000ULL };
enum { ANON_TOP = 42 };

struct bits {
	unsigned int a : 3;
	unsigned int b : 5;
	int c : 12;
	unsigned long long d : 40;
	char e;
	unsigned short f : 4;
};

struct padded {
	char c;
	long long l;
	short s;
	int tail[];
};

struct packed_s {
	char c;
	int i;
	short s;
} __attribute__((packed));

typedef int (*handler_t)(void *ctx, const char *name, ...);

struct everything {
	const volatile int cv;
	struct {
		int x, y;
	} point;
	union {
		__u32 u32;
		__u8 bytes[4];
	};
	enum { MODE_OFF, MODE_ON } mode;
	handler_t handler;
	int (*ops[3])(struct everything *self, fwd_t *f);
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

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct everything);
} things SEC(".maps");

SEC("xdp")
int use_types(struct xdp_md *ctx)
{
	__u32 k = 0;
	struct everything *e = bpf_map_lookup_elem(&things, &k);

	if (!e)
		return XDP_DROP;
	return e->bits.c + e->packed.i + ANON_TOP;
}

char LICENSE[] SEC("license") = "GPL";
