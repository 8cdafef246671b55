/* For comparison with what the live kernel keeps after loading (bpftool prog dump xlated): a
 * program whose verifier rewrites are one-for-one — XDP context loads, global data references,
 * bpf-to-bpf calls into static and global subprograms — so every instruction can be matched. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

const volatile __u32 min_len = 14;
__u64 seen;

static __noinline int frame_len(void *data, void *data_end)
{
	return data_end - data;
}

__noinline int classify(int len)
{
	if (len < 0)
		return XDP_ABORTED;
	return len >= 64 ? XDP_PASS : XDP_DROP;
}

SEC("xdp")
int kernel_check(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	int len = frame_len(data, data_end);

	seen += 1;
	if (len < min_len)
		return XDP_DROP;
	return classify(len);
}

char LICENSE[] SEC("license") = "GPL";
