// Helpers whose results are deterministic, each program writing what the helpers returned into
// `out` — run on pybpf and on the live kernel by tests/kernel/test_helpers_vs_kernel.py, which
// compares the maps afterwards (bpftool's dumps against pybpf's).
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define NOUT 32

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __s64);
	__uint(max_entries, NOUT);
} out SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 4);
} table SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(value_size, sizeof(__u32));
	__uint(max_entries, 3);
} fifo SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_STACK);
	__uint(value_size, sizeof(__u32));
	__uint(max_entries, 3);
} lifo SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

struct locked {
	struct bpf_spin_lock lock;
	__u32 count;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct locked);
	__uint(max_entries, 1);
} guarded SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 5);
} numbers SEC(".maps");

static __always_inline void put(__u32 slot, __s64 v)
{
	__s64 *p = bpf_map_lookup_elem(&out, &slot);
	if (p)
		*p = v;
}

SEC("xdp")
int hash_ops(struct xdp_md *ctx)
{
	__u32 k1 = 1, k2 = 2, k3 = 3, k4 = 4, k5 = 5;
	__u64 v = 0x1122334455667788ULL, *p;

	put(0, bpf_map_update_elem(&table, &k1, &v, BPF_ANY));
	put(1, bpf_map_update_elem(&table, &k1, &v, BPF_NOEXIST));
	put(2, bpf_map_update_elem(&table, &k2, &v, BPF_EXIST));
	put(3, bpf_map_update_elem(&table, &k2, &v, 7));
	p = bpf_map_lookup_elem(&table, &k1);
	put(4, p ? (__s64)*p : -1);
	put(5, bpf_map_delete_elem(&table, &k1));
	put(6, bpf_map_delete_elem(&table, &k1));
	bpf_map_update_elem(&table, &k1, &v, BPF_ANY);
	bpf_map_update_elem(&table, &k2, &v, BPF_ANY);
	bpf_map_update_elem(&table, &k3, &v, BPF_ANY);
	put(7, bpf_map_update_elem(&table, &k4, &v, BPF_ANY));
	put(8, bpf_map_update_elem(&table, &k5, &v, BPF_ANY));
	put(9, bpf_map_update_elem(&table, &k4, &v, BPF_ANY));
	return XDP_PASS;
}

SEC("xdp")
int queue_ops(struct xdp_md *ctx)
{
	__u32 a = 10, b = 20, c = 30, d = 40, got = 0;

	put(0, bpf_map_peek_elem(&fifo, &got));
	put(1, bpf_map_push_elem(&fifo, &a, 0));
	put(2, bpf_map_push_elem(&fifo, &b, 0));
	put(3, bpf_map_push_elem(&fifo, &c, 0));
	put(4, bpf_map_push_elem(&fifo, &d, 0));
	put(5, bpf_map_push_elem(&fifo, &d, BPF_EXIST));
	put(6, bpf_map_peek_elem(&fifo, &got));
	put(7, got);
	put(8, bpf_map_pop_elem(&fifo, &got));
	put(9, got);
	put(10, bpf_map_push_elem(&lifo, &a, 0));
	put(11, bpf_map_push_elem(&lifo, &b, 0));
	put(12, bpf_map_peek_elem(&lifo, &got));
	put(13, got);
	put(14, bpf_map_pop_elem(&lifo, &got));
	put(15, got);
	put(16, bpf_map_pop_elem(&lifo, &got));
	put(17, bpf_map_pop_elem(&lifo, &got));
	put(18, bpf_map_push_elem(&fifo, &a, 3));
	return XDP_PASS;
}

SEC("xdp")
int ringbuf_ops(struct xdp_md *ctx)
{
	__u64 data = 0xabcdef;
	__u64 *r;

	put(0, bpf_ringbuf_query(&events, BPF_RB_RING_SIZE));
	put(1, bpf_ringbuf_output(&events, &data, sizeof(data), 0));
	put(2, bpf_ringbuf_output(&events, &data, 5, BPF_RB_NO_WAKEUP));
	put(3, bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA));
	put(4, bpf_ringbuf_query(&events, BPF_RB_PROD_POS));
	put(5, bpf_ringbuf_query(&events, BPF_RB_CONS_POS));
	r = bpf_ringbuf_reserve(&events, 16, 0);
	put(6, r != 0);
	if (r) {
		r[0] = 1;
		bpf_ringbuf_discard(r, 0);
	}
	put(7, bpf_ringbuf_query(&events, BPF_RB_PROD_POS));
	r = bpf_ringbuf_reserve(&events, 24, 0);
	if (r) {
		r[0] = 2;
		bpf_ringbuf_submit(r, BPF_RB_FORCE_WAKEUP);
	}
	put(8, bpf_ringbuf_query(&events, BPF_RB_PROD_POS));
	put(9, bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA));
	put(10, bpf_ringbuf_query(&events, 99));
	put(11, bpf_ringbuf_output(&events, &data, sizeof(data), 1 << 5));
	r = bpf_ringbuf_reserve(&events, 8000, 0);
	put(12, r != 0);
	if (r)
		bpf_ringbuf_discard(r, 0);
	return XDP_PASS;
}

SEC("xdp")
int csum_ops(struct xdp_md *ctx)
{
	__u32 a[4] = {0x01020304, 0x05060708, 0xffff0000, 0x12345678};
	__u32 b[2] = {0xdeadbeef, 0x0badf00d};

	put(0, bpf_csum_diff(a, 16, b, 8, 0));
	put(1, bpf_csum_diff(0, 0, b, 8, 0x1234));
	put(2, bpf_csum_diff(a, 8, 0, 0, 0));
	put(3, bpf_csum_diff(a, 6, b, 8, 0));
	put(4, bpf_csum_diff(a, 16, b, 8, 0xffffffff));
	return XDP_PASS;
}

static long count_cb(__u32 i, void *ctx)
{
	__u64 *n = ctx;

	*n += 1;
	return 0;
}

static long stop_cb(__u32 i, void *ctx)
{
	return 1;
}

static long sum_cb(struct bpf_map *map, __u32 *key, __u32 *value, void *ctx)
{
	__u64 *n = ctx;

	*n += 1;
	return 0;
}

static long first_cb(struct bpf_map *map, __u32 *key, __u32 *value, void *ctx)
{
	return 1;
}

SEC("xdp")
int loop_ops(struct xdp_md *ctx)
{
	__u64 n = 0;
	__u32 k = 2, v = 7;

	put(0, bpf_loop(10, count_cb, &n, 0));
	put(1, n);
	put(2, bpf_loop(3, count_cb, &n, 1));
	put(3, bpf_loop(5, stop_cb, &n, 0));
	bpf_map_update_elem(&numbers, &k, &v, BPF_ANY);
	n = 0;
	put(4, bpf_for_each_map_elem(&numbers, sum_cb, &n, 0));
	put(5, n);
	put(6, bpf_for_each_map_elem(&numbers, first_cb, &n, 0));
	put(7, bpf_for_each_map_elem(&numbers, sum_cb, &n, 1));
	return XDP_PASS;
}

SEC("xdp")
int string_ops(struct xdp_md *ctx)
{
	char s1[] = "  -123xyz", s2[] = "0x1f", s3[] = "777", s4[] = "99999999999999999999", s5[] = "+12";
	long l = 0;
	unsigned long ul = 0;
	char buf[32];
	__u64 args[3] = {42, 0x2a, (__u64)-1};

	put(0, bpf_strtol(s1, sizeof(s1), 0, &l));
	put(1, l);
	put(2, bpf_strtoul(s2, sizeof(s2), 0, &ul));
	put(3, ul);
	put(4, bpf_strtoul(s3, sizeof(s3), 8, &ul));
	put(5, ul);
	put(6, bpf_strtol(s4, sizeof(s4), 10, &l));
	put(7, bpf_strtoul(s1, sizeof(s1), 10, &ul));
	put(8, bpf_strtol(s5, sizeof(s5), 10, &l));
	put(9, l);
	put(10, bpf_strtol(s2, sizeof(s2), 3, &l));
	put(11, bpf_snprintf(buf, sizeof(buf), "%d-%x-%lld", args, sizeof(args)));
	put(12, *(__u64 *)buf);
	put(13, bpf_snprintf(buf, 8, "%d-%x-%lld", args, sizeof(args)));
	put(14, *(__u64 *)buf);
	return XDP_PASS;
}

SEC("xdp")
int lock_ops(struct xdp_md *ctx)
{
	__u32 zero = 0;
	struct locked *v = bpf_map_lookup_elem(&guarded, &zero);

	if (!v)
		return XDP_ABORTED;
	bpf_spin_lock(&v->lock);
	v->count += 3;
	bpf_spin_unlock(&v->lock);
	put(0, v->count);
	put(1, bpf_get_smp_processor_id());
	return XDP_PASS;
}

SEC("tc")
int skb_ops(struct __sk_buff *skb)
{
	__u32 word = 0, new_ip = bpf_htonl(0x0a000002);
	__u16 old16 = 0;

	put(0, bpf_skb_load_bytes(skb, 26, &word, 4));
	put(1, word);
	put(2, bpf_skb_load_bytes(skb, skb->len - 2, &word, 4));
	put(3, bpf_l3_csum_replace(skb, ETH_HLEN + 10, word, new_ip, 4));
	put(4, bpf_skb_store_bytes(skb, 26, &new_ip, 4, BPF_F_RECOMPUTE_CSUM));
	put(5, bpf_l4_csum_replace(skb, ETH_HLEN + 20 + 6, 0, bpf_htons(7), 2));
	put(6, bpf_l4_csum_replace(skb, ETH_HLEN + 20 + 6, word, new_ip, BPF_F_PSEUDO_HDR | 4));
	put(7, bpf_l3_csum_replace(skb, ETH_HLEN + 10, 0, 0, 3));
	put(8, bpf_skb_store_bytes(skb, skb->len, &new_ip, 4, 0));
	put(9, bpf_skb_load_bytes(skb, 0, &old16, 2));
	put(10, old16);
	return 0;
}
char LICENSE[] SEC("license") = "GPL";
