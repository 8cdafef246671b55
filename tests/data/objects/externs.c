/* Externs: Kconfig values in .kconfig (libbpf lays them out by alignment, size, name, and
 * supplies the LINUX_* ones), a kernel variable and kfuncs in .ksyms. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

extern unsigned int LINUX_KERNEL_VERSION __kconfig;
extern _Bool LINUX_HAS_BPF_COOKIE __kconfig;
extern int CONFIG_HZ __kconfig __weak;
extern char CONFIG_LOCALVERSION[8] __kconfig __weak;
extern const int bpf_prog_active __ksym;
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;
extern void bpf_rcu_read_lock(void) __ksym __weak;

SEC("tc")
int use_externs(struct __sk_buff *skb)
{
	int r = 0;

	bpf_rcu_read_lock();
	if (LINUX_KERNEL_VERSION >= KERNEL_VERSION(6, 1, 0))
		r += 1;
	if (LINUX_HAS_BPF_COOKIE)
		r += CONFIG_HZ;
	r += CONFIG_LOCALVERSION[0];
	r += *(const int *)&bpf_prog_active;
	if (bpf_rdonly_cast(skb, 0))
		r++;
	return r;
}

char LICENSE[] SEC("license") = "GPL";
