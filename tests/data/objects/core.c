/* CO-RE relocations: against a flavored UAPI context struct (resolved from the object's own
 * BTF), against a kernel-internal struct (pending without kernel BTF), field existence of a
 * field the real struct lacks (poisoned), type and enum facts. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

/* a subset of struct __sk_buff, in another order: CO-RE finds the real offsets */
struct __sk_buff___mine {
	__u32 mark;
	__u32 len;
	__u32 no_such_field;
} __attribute__((preserve_access_index));

struct task_struct {
	int pid;
	int tgid;
} __attribute__((preserve_access_index));

enum xdp_action___mine { XDP_PASS___mine = 0 };

SEC("tc")
int core_prog(struct __sk_buff *skb)
{
	struct __sk_buff___mine *s = (void *)skb;
	int r = s->len + s->mark;

	if (bpf_core_field_exists(s->no_such_field))
		r += s->no_such_field;
	r += bpf_core_type_size(struct __sk_buff);
	r += bpf_core_enum_value(enum xdp_action, XDP_TX);
	return r;
}

SEC("kprobe/do_exit")
int core_kernel(void *ctx)
{
	struct task_struct *t = (void *)bpf_get_current_task();
	int pid = 0;

	bpf_core_read(&pid, sizeof(pid), &t->pid);
	return pid;
}

char LICENSE[] SEC("license") = "GPL";
