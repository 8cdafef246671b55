// bpf_loop calls Linux 6.12 inlines (optimize_bpf_loop): a constant-zero flags argument and one
// callback. The second call's flags are not known to be zero, so it stays a helper call.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct ctx { __u64 sum; __u32 limit; };

static int add(__u32 i, void *data)
{
	struct ctx *c = data;

	c->sum += i;
	return i >= c->limit;
}

SEC("xdp")
int loops(struct xdp_md *xdp)
{
	void *data = (void *)(long)xdp->data, *end = (void *)(long)xdp->data_end;
	struct ctx c = { 0, 100 };
	__u64 flags = 0;

	if (data + 2 > end)
		return XDP_ABORTED;
	c.limit = *(__u8 *)data;
	bpf_loop(20, add, &c, 0);
	if (*(__u8 *)(data + 1) == 0x42)
		flags = 1;
	bpf_loop(5, add, &c, flags);
	return c.sum & 3;
}

char LICENSE[] SEC("license") = "GPL";
