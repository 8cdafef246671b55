/* .kconfig externs libbpf refuses at load time: a strong LINUX_* it does not know, and a name
 * that is neither CONFIG_* nor LINUX_* (even weak). The object still opens. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

extern int LINUX_NOT_A_THING __kconfig;
extern int not_config __kconfig __weak;

SEC("tc")
int use_virtual(struct __sk_buff *skb)
{
	return LINUX_NOT_A_THING + not_config;
}

char LICENSE[] SEC("license") = "GPL";
