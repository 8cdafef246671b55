/* Subprograms: static and global functions in .text called from two entry programs in the same
 * section in different orders (libbpf appends each used subprogram once per program, depth
 * first), a subprogram calling another, a callback passed by address (BPF_PSEUDO_FUNC) to
 * bpf_loop, and a static map-using subprogram (its relocations move with it). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} hits SEC(".maps");

static __noinline int sub_b(int x)
{
	return x * 3 + 1;
}

static __noinline int sub_a(int x)
{
	return sub_b(x) + 2;
}

static __noinline int sub_c(int x)
{
	__u32 k = 0;
	__u64 *v = bpf_map_lookup_elem(&hits, &k);

	if (v)
		*v += x;
	return sub_b(x) ^ 5;
}

__noinline int global_helper(int x)
{
	return x + 100;
}

static int loop_cb(__u32 idx, void *ctx)
{
	*(int *)ctx += idx;
	return 0;
}

SEC("tc")
int main_a(struct __sk_buff *skb)
{
	int acc = 0;

	bpf_loop(4, loop_cb, &acc, 0);
	return sub_a(skb->len) + global_helper(acc);
}

SEC("tc")
int main_b(struct __sk_buff *skb)
{
	return sub_c(skb->len) + sub_a(1);
}

char LICENSE[] SEC("license") = "GPL";
