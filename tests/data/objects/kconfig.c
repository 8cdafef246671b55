/* Kconfig externs of every kind libbpf accepts, strong and weak, for the values a loader supplies
 * (ObjectSpec.set_kconfig, libbpf's kconfig option) and the checks before loading. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

extern int CONFIG_HZ __kconfig;
extern _Bool CONFIG_BPF_SYSCALL __kconfig;
extern enum libbpf_tristate CONFIG_NET_SCH_INGRESS __kconfig;
extern char CONFIG_DEFAULT_HOSTNAME[8] __kconfig;
extern signed char CONFIG_SMALL __kconfig __weak;
extern unsigned long long CONFIG_BIG __kconfig __weak;
extern unsigned short CONFIG_PORT __kconfig __weak;
extern int LINUX_NOT_A_THING __kconfig __weak;

SEC("tc")
int use_kconfig(struct __sk_buff *skb)
{
	int r = CONFIG_HZ + CONFIG_SMALL + CONFIG_PORT + LINUX_NOT_A_THING;

	if (CONFIG_BPF_SYSCALL)
		r++;
	if (CONFIG_NET_SCH_INGRESS == TRI_MODULE)
		r += 2;
	r += CONFIG_DEFAULT_HOSTNAME[0];
	return r + (int)CONFIG_BIG;
}

char LICENSE[] SEC("license") = "GPL";
