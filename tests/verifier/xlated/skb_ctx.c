// __sk_buff field accesses in a tc classifier and a socket filter: convert_ctx_accesses.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("tc")
int tc_fields(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	__u32 r = skb->len + skb->mark + skb->priority + skb->ifindex + skb->hash;

	r ^= skb->protocol;
	r ^= skb->queue_mapping + skb->tc_index;
	r ^= *(volatile __u8 *)&skb->mark;          /* narrow load */
	r ^= *(volatile __u16 *)((char *)&skb->len + 2);  /* narrow load, upper half */
	skb->cb[1] = r;
	skb->mark = r;
	skb->priority = 3;
	skb->tc_classid = 5;
	if (data + 14 > data_end)
		return 2;
	return *(__u8 *)(data + 12) == 8 ? 0 : 1;
}

SEC("socket")
int sock_fields(struct __sk_buff *skb)
{
	__u32 r = skb->len;

	r += skb->pkt_type + skb->ingress_ifindex + skb->vlan_present + skb->vlan_tci;
	r += skb->cb[0];
	return r & 0xfff;
}

char LICENSE[] SEC("license") = "GPL";
