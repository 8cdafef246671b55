/* struct_ops: a variable in SEC(".struct_ops.link") whose function pointers point at programs. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct my_ops {
	int (*init)(void);
	void (*release)(int x);
	char name[16];
};

SEC("struct_ops/my_init")
int my_init(void)
{
	return 0;
}

SEC("struct_ops/my_release")
void my_release(int x)
{
}

SEC(".struct_ops.link")
struct my_ops ops = {
	.init = (void *)my_init,
	.release = (void *)my_release,
	.name = "pybpf_ops",
};

char LICENSE[] SEC("license") = "GPL";
