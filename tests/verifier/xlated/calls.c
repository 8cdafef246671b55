// Calls as bpftool names them on a JIT-enabled kernel: helpers by the kernel function that implements
// them (bpf_get_prandom_u32 is bpf_user_rnd_u32), map operations by the map's own function, and
// bpf-to-bpf calls by the callee's JIT symbol bpf_prog_<tag>_<name> — nested calls (the tag covers
// the callee's own calls, rewritten as jit_subprogs leaves them) and a subprogram whose inlined
// bpf_loop holds a callback address (a pseudo-function lddw) and a call of it.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct { __uint(type, BPF_MAP_TYPE_HASH); __type(key, __u32); __type(value, __u64); __uint(max_entries, 64); } hash SEC(".maps");

struct acc { __u64 sum; };

static __attribute__((noinline)) __u32 mix(__u32 h, __u32 k)
{
	k *= 0xcc9e2d51u;
	h ^= (k << 15) | (k >> 17);
	return h * 5 + 0xe6546b64u;
}

static __attribute__((noinline)) __u32 mix_twice(__u32 h, __u32 k)
{
	return mix(mix(h, k), k ^ 0x5bd1e995u);
}

static int step(__u32 i, void *data)
{
	struct acc *a = data;

	a->sum += i;
	return 0;
}

static __attribute__((noinline)) __u64 summed(__u32 n)
{
	struct acc a = { n };

	bpf_loop(8, step, &a, 0);
	return a.sum;
}

SEC("xdp")
int helpers(struct xdp_md *ctx)
{
	__u32 k = (ctx->data_end - ctx->data) & 15;
	__u64 v = bpf_ktime_get_ns(), *p;

	p = bpf_map_lookup_elem(&hash, &k);
	if (p)
		v += *p;
	bpf_map_update_elem(&hash, &k, &v, BPF_ANY);
	if (bpf_get_prandom_u32() & 1)
		bpf_map_delete_elem(&hash, &k);
	return bpf_get_prandom_u32() & 3;
}

SEC("xdp")
int subprogs(struct xdp_md *ctx)
{
	__u32 n = (ctx->data_end - ctx->data) & 0xff;

	return (mix_twice(n, 7) + mix(n, 9) + summed(n)) & 3;
}

char LICENSE[] SEC("license") = "GPL";
