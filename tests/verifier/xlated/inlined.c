// Rewrites Linux 6.12 does on x86-64, some of which pybpf reproduces differently (see README.md):
// signed division guards through the hidden register AX (as Linux), bpf_get_smp_processor_id
// inlined (as Linux but w0 = 0), per-CPU map lookups with per-CPU address arithmetic (kept as
// calls), bpf_loop inlined (as Linux).
// cflags: -mcpu=v4
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct { __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY); __type(key, __u32); __type(value, __u64); __uint(max_entries, 4); } pcpu SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_PERCPU_HASH); __type(key, __u32); __type(value, __u64); __uint(max_entries, 8); } pcpu_hash SEC(".maps");

static int cb(__u32 i, void *ctx)
{
	*(__u64 *)ctx += i;
	return 0;
}

SEC("xdp")
int inlined(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	__s64 a, b;
	__u32 k;
	__u64 sum, *p;

	if (data + 3 > end)
		return 0;
	a = (__s64)*(__u8 *)data - 100;
	b = (__s64)*(__u8 *)(data + 1) - 1;
	k = *(__u8 *)(data + 2) & 3;
	sum = a / b + a % b;

	sum += bpf_get_smp_processor_id();
	sum += bpf_get_prandom_u32() & 1;
	bpf_loop(10, cb, &sum, 0);
	p = bpf_map_lookup_elem(&pcpu, &k);
	if (p)
		sum += *p;
	p = bpf_map_lookup_elem(&pcpu_hash, &k);
	if (p)
		sum += *p;
	return sum & 3;
}

char LICENSE[] SEC("license") = "GPL";
