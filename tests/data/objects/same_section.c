/* A call from one program to a global function of the *same* program section: libbpf refuses
 * such objects (calls must go to .text); pybpf appends the callee like a .text subprogram. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

__noinline SEC("xdp") int helper_prog(struct xdp_md *ctx)
{
	return ctx->ingress_ifindex ? XDP_PASS : XDP_DROP;
}

SEC("xdp")
int caller_prog(struct xdp_md *ctx)
{
	return helper_prog(ctx) == XDP_PASS ? XDP_TX : XDP_ABORTED;
}

char LICENSE[] SEC("license") = "GPL";
