/* Program types from SEC() names: several programs per section, '?' (not autoloaded),
 * attach targets after '/', xdp.frags, and a section no SEC() definition knows. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("socket") int sock_a(struct __sk_buff *skb) { return 0; }
SEC("socket") int sock_b(struct __sk_buff *skb) { return skb->len; }
SEC("tc") int tc_prog(struct __sk_buff *skb) { return 0; }
SEC("classifier") int cls_prog(struct __sk_buff *skb) { return 0; }
SEC("tc/ingress") int tcx_prog(struct __sk_buff *skb) { return 0; }
SEC("xdp.frags") int frags_prog(struct xdp_md *ctx) { return XDP_PASS; }
SEC("?xdp") int lazy_prog(struct xdp_md *ctx) { return XDP_PASS; }
SEC("kprobe/do_unlinkat") int kp(void *ctx) { return 0; }
SEC("kretprobe") int krp(void *ctx) { return 0; }
SEC("tracepoint/syscalls/sys_enter_openat") int tp(void *ctx) { return 0; }
SEC("raw_tp/sched_switch") int rawtp(void *ctx) { return 0; }
SEC("raw_tp.w/kfree_skb") int rawtp_w(void *ctx) { return 0; }
SEC("cgroup_skb/ingress") int cg_in(struct __sk_buff *skb) { return 1; }
SEC("cgroup/connect4") int cg_connect(struct bpf_sock_addr *ctx) { return 1; }
SEC("sk_reuseport/migrate") int reuse(struct sk_reuseport_md *ctx) { return 0; }
SEC("fentry/do_unlinkat") int fent(void *ctx) { return 0; }
SEC("lsm.s/file_open") int lsm_s(void *ctx) { return 0; }
SEC("syscall") int sys(void *ctx) { return 0; }
SEC("not_a_known_section") int mystery(void *ctx) { return 0; }

char LICENSE[] SEC("license") = "GPL";
