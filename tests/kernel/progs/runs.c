// Programs for the kernel layer's test-run and helper tests (tests/kernel/test_runs.py).
// Build: pybpf cc tests/kernel/progs/runs.c -o runs.o   (the tests compile it themselves)
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 8);
} results SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 16);
} table SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(value_size, sizeof(__u32));
	__uint(max_entries, 4);
} fifo SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
	__uint(max_entries, 2);
} jumps SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
	__uint(max_entries, 4);
} ports SEC(".maps");

static __always_inline void store(__u32 slot, __u64 v)
{
	__u64 *p = bpf_map_lookup_elem(&results, &slot);
	if (p)
		*p = v;
}

SEC("xdp")
int xdp_len(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	store(0, end - data);
	store(1, ctx->ingress_ifindex);
	store(2, ctx->rx_queue_index);
	return XDP_PASS;
}

SEC("xdp")
int xdp_pop_eth(struct xdp_md *ctx)
{
	if (bpf_xdp_adjust_head(ctx, 14))
		return XDP_ABORTED;
	return XDP_TX;
}

SEC("xdp")
int xdp_grow_front(struct xdp_md *ctx)
{
	if (bpf_xdp_adjust_head(ctx, -4))
		return XDP_ABORTED;
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	if (data + 4 > end)
		return XDP_ABORTED;
	__builtin_memcpy(data, "\xde\xad\xbe\xef", 4);
	return XDP_PASS;
}

SEC("xdp")
int xdp_trim(struct xdp_md *ctx)
{
	return bpf_xdp_adjust_tail(ctx, -10) ? XDP_ABORTED : XDP_PASS;
}

SEC("xdp")
int xdp_extend(struct xdp_md *ctx)
{
	return bpf_xdp_adjust_tail(ctx, 6) ? XDP_ABORTED : XDP_PASS;
}

SEC("xdp")
int xdp_meta(struct xdp_md *ctx)
{
	if (bpf_xdp_adjust_meta(ctx, -8))
		return XDP_ABORTED;
	__u64 *meta = (void *)(long)ctx->data_meta;
	void *data = (void *)(long)ctx->data;
	if ((void *)(meta + 1) > data)
		return XDP_ABORTED;
	*meta = 0x1122334455667788ULL;
	return XDP_PASS;
}

SEC("xdp")
int xdp_read_meta(struct xdp_md *ctx)
{
	__u32 *meta = (void *)(long)ctx->data_meta;
	void *data = (void *)(long)ctx->data;
	if ((void *)(meta + 1) > data)
		return XDP_DROP;
	return *meta;
}

SEC("xdp")
int xdp_redirect(struct xdp_md *ctx)
{
	return bpf_redirect(1, 0);
}

SEC("xdp")
int xdp_redirect_miss(struct xdp_md *ctx)
{
	return bpf_redirect_map(&ports, 3, XDP_DROP);
}

SEC("xdp")
int xdp_helpers(struct xdp_md *ctx)
{
	store(0, bpf_get_smp_processor_id());
	store(3, bpf_ktime_get_ns());
	store(4, bpf_get_prandom_u32());
	store(5, bpf_ktime_get_boot_ns());
	return XDP_PASS;
}

SEC("raw_tp/sys_enter")
int task_info(void *ctx)
{
	store(1, bpf_get_current_pid_tgid());
	store(2, bpf_get_current_uid_gid());
	char comm[16];
	bpf_get_current_comm(comm, sizeof(comm));
	__u64 first;
	__builtin_memcpy(&first, comm, 8);
	store(6, first);
	return 0;
}

SEC("xdp")
int xdp_printk(struct xdp_md *ctx)
{
	bpf_printk("len=%d x=%x s=%s", 42, 255, "str");
	return XDP_PASS;
}

static int add_cb(__u32 index, void *c)
{
	*(__u64 *)c += index;
	return 0;
}

SEC("xdp")
int xdp_loop(struct xdp_md *ctx)
{
	__u64 sum = 0;
	long n = bpf_loop(10, add_cb, &sum, 0);
	store(0, sum);
	store(1, n);
	return XDP_PASS;
}

SEC("xdp")
int xdp_ringbuf(struct xdp_md *ctx)
{
	__u32 *e = bpf_ringbuf_reserve(&events, sizeof(__u32), 0);
	if (!e)
		return XDP_ABORTED;
	*e = 0xabcd;
	bpf_ringbuf_submit(e, 0);
	__u64 v = 5;
	bpf_ringbuf_output(&events, &v, sizeof(v), 0);
	return XDP_PASS;
}

SEC("xdp")
int xdp_queue(struct xdp_md *ctx)
{
	__u32 v = 11, out = 0;
	bpf_map_push_elem(&fifo, &v, 0);
	v = 22;
	bpf_map_push_elem(&fifo, &v, 0);
	bpf_map_pop_elem(&fifo, &out);
	return out;
}

SEC("xdp")
int xdp_tail_target(struct xdp_md *ctx)
{
	return 42;
}

SEC("xdp")
int xdp_tail_caller(struct xdp_md *ctx)
{
	bpf_tail_call(ctx, &jumps, 1);
	return 7;  /* the slot was empty */
}

SEC("xdp")
int xdp_strtol(struct xdp_md *ctx)
{
	char buf[8] = "-1234x";
	long res = 0;
	long n = bpf_strtol(buf, sizeof(buf), 10, &res);
	store(0, res);
	store(1, n);
	return XDP_PASS;
}

SEC("xdp")
int xdp_csum(struct xdp_md *ctx)
{
	__be32 a[2] = {bpf_htonl(0x45000054), bpf_htonl(0x00004000)};
	store(0, bpf_csum_diff(0, 0, a, sizeof(a), 0));
	return XDP_PASS;
}

SEC("socket")
int sock_len(struct __sk_buff *skb)
{
	return skb->len;
}

SEC("tc")
int tc_proto(struct __sk_buff *skb)
{
	store(0, skb->protocol);
	store(1, skb->len);
	store(2, skb->mark);
	store(3, skb->pkt_type);
	store(4, skb->ifindex);
	skb->mark = 0x55;
	skb->cb[1] = 9;
	return skb->data_end - skb->data;
}

SEC("tc")
int tc_rewrite(struct __sk_buff *skb)
{
	__u8 b[2] = {0xca, 0xfe};
	if (bpf_skb_store_bytes(skb, 0, b, 2, 0))
		return 1;
	__u8 got[2];
	if (bpf_skb_load_bytes(skb, 12, got, 2))
		return 2;
	store(0, got[0] << 8 | got[1]);
	return 0;
}

SEC("tc")
int tc_csum(struct __sk_buff *skb)
{
	/* IPv4 header after 14 bytes of Ethernet: replace the TTL/proto word, fix the checksum */
	__u16 old = bpf_htons(0x4011), new = bpf_htons(0x3f11);
	if (bpf_skb_store_bytes(skb, 14 + 8, &new, 2, 0))
		return 1;
	return bpf_l3_csum_replace(skb, 14 + 10, old, new, 2);
}

char _license[] SEC("license") = "GPL";
