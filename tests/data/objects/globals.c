/* Global data: .data, .rodata, .bss and custom .data.* / .rodata.* sections become array maps
 * referenced through BPF_PSEUDO_MAP_VALUE with offsets; static and hidden variables; string
 * literals in .rodata.str1.1. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

int counter = 5;                          /* .data */
const volatile __u32 limit = 1000;        /* .rodata */
const volatile __u64 scale = 3;           /* .rodata */
__u64 total;                              /* .bss */
static __u32 hidden_static = 11;          /* .data, static */
__hidden __u32 hidden_global = 12;        /* .data, hidden */
__u32 table[4] SEC(".data.table") = {1, 2, 3, 4};
const volatile char banner[8] SEC(".rodata.banner") = "pybpf";
__u8 scratch[16] SEC(".bss.scratch");

SEC("socket")
int read_globals(struct __sk_buff *skb)
{
	__u32 i = skb->len & 3;

	total += counter + hidden_static + hidden_global;
	scratch[i] = 1;
	if (counter > limit)
		return 0;
	bpf_printk("len %u", skb->len);
	return table[i] * scale + banner[1];
}

char LICENSE[] SEC("license") = "GPL";
