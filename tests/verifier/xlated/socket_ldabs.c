// A socket filter with legacy packet loads (LD_ABS/LD_IND) and __sk_buff reads. Not part of the
// exact comparison: Linux rewrites LD_ABS/LD_IND into helper calls (bpf_gen_ld_abs) and reads
// sk_buff fields at the kernel's offsets; pybpf keeps LD_ABS for its engines and reads its own
// runtime layout (see README.md).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

unsigned long long load_byte(void *skb, unsigned long long off) asm("llvm.bpf.load.byte");
unsigned long long load_half(void *skb, unsigned long long off) asm("llvm.bpf.load.half");

SEC("socket")
int ldabs(struct __sk_buff *skb)
{
	__u32 r = skb->len + skb->mark;

	if (load_half(skb, 12) != 0x0800)
		return 0;
	r += load_byte(skb, 23);
	return r & 0xfff;
}

char LICENSE[] SEC("license") = "GPL";
