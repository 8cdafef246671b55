// Division/modulo by registers (guarded by the verifier against zero) and dead code from
// branches the verifier proves constant.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int divmod(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	__u64 a, b, r;
	__u32 a32, b32;

	if (data + 2 > end)
		return 0;
	a = *(__u8 *)data;
	b = *(__u8 *)(data + 1);
	a32 = a;
	b32 = b;

	r = a / b;
	r += a % b;
	r += a32 / b32;
	r += a32 % b32;
	return r & 3;
}

SEC("xdp")
int dead_code(struct xdp_md *ctx)
{
	__u32 x = (ctx->data_end - ctx->data) & 0xf;
	__u32 y, z;

	asm volatile("%0 = 16" : "=r"(y));
	asm volatile("%0 = %1" : "=r"(z) : "r"(x));
	if (z >= y)          /* never taken: z <= 15 */
		return 5;
	if (z < 16)          /* always taken */
		z += 2;
	else
		z = 99;
	return z & 3;
}

char LICENSE[] SEC("license") = "GPL";
