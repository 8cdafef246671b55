// Global data: .data, .bss and .rodata maps accessed directly (map[id:N][0]+off), and a static
// subprogram.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

__u64 counter = 1;
__u32 seen[4];
const volatile __u32 limit = 10;

static __attribute__((noinline)) int bump(__u32 i)
{
	seen[i & 3] += 1;
	return seen[i & 3] > limit;
}

SEC("xdp")
int globals(struct xdp_md *ctx)
{
	counter += 1;
	return bump(ctx->data_end - ctx->data) ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
