// SPDX-License-Identifier: GPL-2.0
/* XDP programs for tests/hooks: each exercises one verdict or one packet-modifying helper. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
} tx_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
} seen SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u32);
} hash_ports SEC(".maps");

/* entries with a program of their own, run on the frame before it leaves */
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, struct bpf_devmap_val);
} prog_ports SEC(".maps");

/* swap source and destination MAC, send back out of the ingress device */
SEC("xdp")
int swap_tx(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	unsigned char tmp[ETH_ALEN];

	if ((void *)(eth + 1) > data_end)
		return XDP_DROP;
	__builtin_memcpy(tmp, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, tmp, ETH_ALEN);
	return XDP_TX;
}

/* drop frames whose ethertype is not IPv4, pass the rest */
SEC("xdp")
int ipv4_only(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return XDP_ABORTED;
	return eth->h_proto == bpf_htons(ETH_P_IP) ? XDP_PASS : XDP_DROP;
}

/* strip a 4-byte 802.1Q tag: move the MAC addresses up, then adjust_head(+4) */
SEC("xdp")
int pop_vlan(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	unsigned char macs[12];

	if (data + 18 > data_end)
		return XDP_PASS;
	if (*(__u16 *)(data + 12) != bpf_htons(0x8100))
		return XDP_PASS;
	__builtin_memcpy(macs, data, 12);
	__builtin_memcpy(data + 4, macs, 12);
	if (bpf_xdp_adjust_head(ctx, 4))
		return XDP_ABORTED;
	return XDP_PASS;
}

/* prepend 8 bytes: a copy of the MAC addresses and the marker 0xbeef, then TX */
SEC("xdp")
int push_head(struct xdp_md *ctx)
{
	void *data, *data_end;
	unsigned char macs[12];

	if (bpf_xdp_adjust_head(ctx, -8))
		return XDP_ABORTED;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (data + 22 > data_end)
		return XDP_ABORTED;
	__builtin_memcpy(macs, data + 8, 12);
	__builtin_memcpy(data, macs, 12);
	*(__u16 *)(data + 12) = bpf_htons(0x88b5);
	*(__u16 *)(data + 14) = bpf_htons(0xbeef);
	*(__u32 *)(data + 16) = 0;
	*(__u16 *)(data + 20) = bpf_htons(0x0800);
	return XDP_TX;
}

/* cut every frame to 60 bytes */
SEC("xdp")
int trim_tail(struct xdp_md *ctx)
{
	int len = ctx->data_end - ctx->data;

	if (len > 60 && bpf_xdp_adjust_tail(ctx, 60 - len))
		return XDP_ABORTED;
	return XDP_PASS;
}

/* grow every frame by 16 bytes and fill them with 0xab */
SEC("xdp")
int grow_tail(struct xdp_md *ctx)
{
	__u8 fill[16];
	__u32 len;

	if (bpf_xdp_adjust_tail(ctx, 16))
		return XDP_ABORTED;
	len = bpf_xdp_get_buff_len(ctx);
	__builtin_memset(fill, 0xab, sizeof(fill));
	if (len < 16 || bpf_xdp_store_bytes(ctx, len - 16, fill, sizeof(fill)))
		return XDP_ABORTED;
	return XDP_PASS;
}

/* reserve 4 bytes of metadata holding the frame length; the frame itself is unchanged */
SEC("xdp")
int meta_len(struct xdp_md *ctx)
{
	__u32 len = ctx->data_end - ctx->data;
	void *data, *meta;

	if (bpf_xdp_adjust_meta(ctx, -4))
		return XDP_ABORTED;
	data = (void *)(long)ctx->data;
	meta = (void *)(long)ctx->data_meta;
	if (meta + 4 > data)
		return XDP_ABORTED;
	*(__u32 *)meta = len;
	return XDP_PASS;
}

/* redirect to the device whose ifindex is in the frame's last byte */
SEC("xdp")
int redirect_byte(struct xdp_md *ctx)
{
	__u32 len = bpf_xdp_get_buff_len(ctx);
	__u8 last;

	if (len < 1 || bpf_xdp_load_bytes(ctx, len - 1, &last, 1))
		return XDP_ABORTED;
	return bpf_redirect(last, 0);
}

/* redirect through tx_ports[0]; XDP_DROP when the entry is empty */
SEC("xdp")
int redirect_devmap(struct xdp_md *ctx)
{
	return bpf_redirect_map(&tx_ports, 0, XDP_DROP);
}

/* redirect through hash_ports[7]; XDP_PASS when there is no such entry */
SEC("xdp")
int redirect_hash(struct xdp_md *ctx)
{
	return bpf_redirect_map(&hash_ports, 7, XDP_PASS);
}

/* a copy to every hash_ports entry */
SEC("xdp")
int broadcast_hash(struct xdp_md *ctx)
{
	return bpf_redirect_map(&hash_ports, 0, BPF_F_BROADCAST);
}

/* a copy to every tx_ports entry but the ingress device */
SEC("xdp")
int broadcast(struct xdp_md *ctx)
{
	return bpf_redirect_map(&tx_ports, 0, BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS);
}

/* remember what the context said about the frame's source */
SEC("xdp")
int source_info(struct xdp_md *ctx)
{
	__u32 k0 = 0, k1 = 1, k2 = 2;
	__u32 *v;

	v = bpf_map_lookup_elem(&seen, &k0);
	if (v)
		*v = ctx->ingress_ifindex;
	v = bpf_map_lookup_elem(&seen, &k1);
	if (v)
		*v = ctx->rx_queue_index;
	v = bpf_map_lookup_elem(&seen, &k2);
	if (v)
		*v = ctx->data_end - ctx->data;
	return XDP_PASS;
}

/* return XDP_REDIRECT without calling a redirect helper */
SEC("xdp")
int bare_redirect(struct xdp_md *ctx)
{
	return XDP_REDIRECT;
}

/* return the frame's first byte as the verdict */
SEC("xdp")
int verdict_byte(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	if (data + 1 > data_end)
		return XDP_ABORTED;
	return *(__u8 *)data;
}

/* always redirect to the loopback device (ifindex 1) */
SEC("xdp")
int redirect_lo(struct xdp_md *ctx)
{
	return bpf_redirect(1, 0);
}

/* the verdict encodes the context: ingress_ifindex | rx_queue_index << 8 | frame length << 16 */
SEC("xdp")
int ctx_verdict(struct xdp_md *ctx)
{
	return ctx->ingress_ifindex | ctx->rx_queue_index << 8 | (ctx->data_end - ctx->data) << 16;
}

/* redirect through prog_ports, the entry chosen by the rx queue */
SEC("xdp")
int redirect_prog_ports(struct xdp_md *ctx)
{
	return bpf_redirect_map(&prog_ports, ctx->rx_queue_index, XDP_ABORTED);
}

/* a DEVMAP entry's program: ARP frames are dropped, others get the egress ifindex as first byte */
SEC("xdp/devmap")
int devmap_mark(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return XDP_DROP;
	if (eth->h_proto == bpf_htons(ETH_P_ARP))
		return XDP_DROP;
	eth->h_dest[0] = ctx->egress_ifindex;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
