// Map helpers the verifier rewrites: array and hash lookups inlined (map_gen_lookup), LRU lookups
// setting the ref bit, updates/deletes/queue operations turned into direct calls of the map's own
// functions. The key comes from the packet length (no context field but data/data_end, whose
// conversion is the same in both layouts).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct { __uint(type, BPF_MAP_TYPE_ARRAY); __type(key, __u32); __type(value, __u64); __uint(max_entries, 16); } arr SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __type(key, __u32); __type(value, __u64); __uint(max_entries, 64); } hash SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_LRU_HASH); __type(key, __u64); __type(value, __u32); __uint(max_entries, 64); } lru SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_QUEUE); __type(value, __u32); __uint(max_entries, 8); } queue SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_PROG_ARRAY); __uint(max_entries, 4); __type(key, __u32); __type(value, __u32); } jmp SEC(".maps");

SEC("xdp")
int map_ops(struct xdp_md *ctx)
{
	__u32 k = (ctx->data_end - ctx->data) & 15;
	__u64 v = 1, *p;
	__u32 *l, q = 7;
	__u64 lk = k;

	p = bpf_map_lookup_elem(&arr, &k);
	if (p)
		*p += 1;
	bpf_map_update_elem(&arr, &k, &v, BPF_ANY);
	p = bpf_map_lookup_elem(&hash, &k);
	if (!p)
		bpf_map_update_elem(&hash, &k, &v, BPF_NOEXIST);
	else
		bpf_map_delete_elem(&hash, &k);
	l = bpf_map_lookup_elem(&lru, &lk);
	if (l)
		q += *l;
	bpf_map_update_elem(&lru, &lk, &q, BPF_ANY);
	bpf_map_push_elem(&queue, &q, 0);
	bpf_map_pop_elem(&queue, &q);
	return q & 3;
}

SEC("xdp")
int tail(struct xdp_md *ctx)
{
	bpf_tail_call(ctx, &jmp, 1);
	bpf_tail_call(ctx, &jmp, (ctx->data_end - ctx->data) & 3);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
