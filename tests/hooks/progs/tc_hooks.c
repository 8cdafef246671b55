// SPDX-License-Identifier: GPL-2.0
/* tc and socket-filter programs for tests/hooks. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u32);
} seen SEC(".maps");

static void put(__u32 k, __u32 v)
{
	__u32 *p = bpf_map_lookup_elem(&seen, &k);

	if (p)
		*p = v;
}

/* mark IPv4 frames 0x42 and pass them, drop everything else */
SEC("tc")
int mark_ipv4(struct __sk_buff *skb)
{
	if (skb->protocol != bpf_htons(ETH_P_IP))
		return TC_ACT_SHOT;
	skb->mark = 0x42;
	return TC_ACT_OK;
}

/* record what the skb says about the frame */
SEC("tc")
int skb_info(struct __sk_buff *skb)
{
	put(0, skb->len);
	put(1, skb->protocol);
	put(2, skb->vlan_present);
	put(3, skb->vlan_tci);
	put(4, skb->ifindex);
	put(5, skb->pkt_type);
	put(6, skb->mark);
	put(7, skb->ingress_ifindex);
	return TC_ACT_OK;
}

/* redirect to the ifindex in the frame's last byte; to its ingress if the byte before is 1 */
SEC("tc")
int redirect_byte(struct __sk_buff *skb)
{
	__u8 tail[2];

	if (bpf_skb_load_bytes(skb, skb->len - 2, tail, 2))
		return TC_ACT_SHOT;
	return bpf_redirect(tail[1], tail[0] == 1 ? BPF_F_INGRESS : 0);
}

/* rewrite the first destination MAC byte through bpf_skb_store_bytes */
SEC("tc")
int store_mac(struct __sk_buff *skb)
{
	__u8 v = 0xee;

	bpf_skb_store_bytes(skb, 0, &v, 1, 0);
	return TC_ACT_OK;
}

/* keep 20 bytes of IPv4 frames, drop the others */
SEC("socket")
int sock_ipv4_head(struct __sk_buff *skb)
{
	__u16 proto;

	if (bpf_skb_load_bytes(skb, 12, &proto, 2))
		return 0;
	return proto == bpf_htons(ETH_P_IP) ? 20 : 0;
}

/* accept everything, whole */
SEC("socket")
int sock_all(struct __sk_buff *skb)
{
	return -1;
}

char LICENSE[] SEC("license") = "GPL";
