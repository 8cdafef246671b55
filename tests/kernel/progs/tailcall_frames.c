// Tail calls from a subprogram stack frames (tests/kernel/test_tail_calls_vs_kernel.py)
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

int entry(struct __sk_buff *skb);

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__uint(key_size, sizeof(__u32));
	__array(values, int (struct __sk_buff *));
} jmp_table SEC(".maps") = {
	.values = { [0] = (void *)&entry },
};

/* each of the 34 stacked frames keeps its own local across the tail call */
static __attribute__((noinline)) int sub(struct __sk_buff *skb)
{
	volatile int keep = 1000;

	bpf_tail_call(skb, &jmp_table, 0);
	return keep;
}

SEC("tc")
int entry(struct __sk_buff *skb)
{
	volatile int mine = 1;

	return sub(skb) + mine;
}

char LICENSE[] SEC("license") = "GPL";
