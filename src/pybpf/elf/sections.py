"""Program section names → program type, expected attach type and load flags: libbpf's SEC() table.

The table is libbpf's ``section_defs`` (tools/lib/bpf/libbpf.c, Linux 6.12) in the same order,
because matching is first-match: ``"sk_reuseport/migrate"`` must be tried before ``"sk_reuseport"``,
``"xdp.frags/devmap"`` before ``"xdp.frags"``. Patterns follow libbpf's three forms:

* ``"name"`` — exactly this section name;
* ``"name+"`` — ``name`` alone or ``name/anything`` (``kprobe``, ``kprobe/do_unlinkat``);
* ``"name/"`` — must have the ``/extras`` part.

A leading ``?`` (libbpf: "do not load by default") is stripped before matching and reported as
``autoload = False``. An unknown name is reported (:func:`find_sec_def` returns ``None``), never
guessed from a prefix.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntFlag

from pybpf.uapi import BPF_F_SLEEPABLE, BPF_F_XDP_HAS_FRAGS, AttachType, ProgType

__all__ = ["SECTION_DEFS", "SecDef", "SecFlags", "SectionMatch", "find_sec_def", "match_section"]


class SecFlags(IntFlag):
    """libbpf's ``enum sec_def_flags``."""

    NONE = 0
    EXP_ATTACH_OPT = 1
    ATTACHABLE = 2
    ATTACHABLE_OPT = 3
    ATTACH_BTF = 4
    SLEEPABLE = 8
    XDP_FRAGS = 16
    USDT = 32


@dataclass(frozen=True, slots=True)
class SecDef:
    """One ``SEC_DEF``: the pattern, the program type, the expected attach type (``None`` = 0)."""

    pattern: str
    prog_type: ProgType
    expected_attach_type: AttachType | None
    flags: SecFlags

    def matches(self, sec_name: str) -> bool:
        """libbpf's ``sec_def_matches``."""
        pat = self.pattern
        if pat.endswith("/"):
            return sec_name.startswith(pat)
        if pat.endswith("+"):
            base = pat[:-1]
            if not sec_name.startswith(base):
                return False
            rest = sec_name[len(base) :]
            return rest == "" or rest.startswith("/")
        return sec_name == pat

    @property
    def prog_flags(self) -> int:
        """``BPF_F_*`` load flags libbpf adds for this definition (``libbpf_prepare_prog_load``)."""
        flags = 0
        if self.flags & SecFlags.SLEEPABLE:
            flags |= BPF_F_SLEEPABLE
        if self.prog_type == ProgType.XDP and self.flags & SecFlags.XDP_FRAGS:
            flags |= BPF_F_XDP_HAS_FRAGS
        return flags


def _d(pattern: str, prog_type: str, attach: str | None, flags: SecFlags) -> SecDef:
    return SecDef(pattern, ProgType[prog_type], AttachType[attach] if attach else None, flags)


_N, _A, _AO, _BTF, _S, _X, _U = (
    SecFlags.NONE,
    SecFlags.ATTACHABLE,
    SecFlags.ATTACHABLE_OPT,
    SecFlags.ATTACH_BTF,
    SecFlags.SLEEPABLE,
    SecFlags.XDP_FRAGS,
    SecFlags.USDT,
)

SECTION_DEFS: tuple[SecDef, ...] = (
    _d("socket", "SOCKET_FILTER", None, _N),
    _d("sk_reuseport/migrate", "SK_REUSEPORT", "SK_REUSEPORT_SELECT_OR_MIGRATE", _A),
    _d("sk_reuseport", "SK_REUSEPORT", "SK_REUSEPORT_SELECT", _A),
    _d("kprobe+", "KPROBE", None, _N),
    _d("uprobe+", "KPROBE", None, _N),
    _d("uprobe.s+", "KPROBE", None, _S),
    _d("kretprobe+", "KPROBE", None, _N),
    _d("uretprobe+", "KPROBE", None, _N),
    _d("uretprobe.s+", "KPROBE", None, _S),
    _d("kprobe.multi+", "KPROBE", "TRACE_KPROBE_MULTI", _N),
    _d("kretprobe.multi+", "KPROBE", "TRACE_KPROBE_MULTI", _N),
    _d("kprobe.session+", "KPROBE", "TRACE_KPROBE_SESSION", _N),
    _d("uprobe.multi+", "KPROBE", "TRACE_UPROBE_MULTI", _N),
    _d("uretprobe.multi+", "KPROBE", "TRACE_UPROBE_MULTI", _N),
    _d("uprobe.multi.s+", "KPROBE", "TRACE_UPROBE_MULTI", _S),
    _d("uretprobe.multi.s+", "KPROBE", "TRACE_UPROBE_MULTI", _S),
    _d("ksyscall+", "KPROBE", None, _N),
    _d("kretsyscall+", "KPROBE", None, _N),
    _d("usdt+", "KPROBE", None, _U),
    _d("usdt.s+", "KPROBE", None, _U | _S),
    _d("tc/ingress", "SCHED_CLS", "TCX_INGRESS", _N),
    _d("tc/egress", "SCHED_CLS", "TCX_EGRESS", _N),
    _d("tcx/ingress", "SCHED_CLS", "TCX_INGRESS", _N),
    _d("tcx/egress", "SCHED_CLS", "TCX_EGRESS", _N),
    _d("tc", "SCHED_CLS", None, _N),
    _d("classifier", "SCHED_CLS", None, _N),
    _d("action", "SCHED_ACT", None, _N),
    _d("netkit/primary", "SCHED_CLS", "NETKIT_PRIMARY", _N),
    _d("netkit/peer", "SCHED_CLS", "NETKIT_PEER", _N),
    _d("tracepoint+", "TRACEPOINT", None, _N),
    _d("tp+", "TRACEPOINT", None, _N),
    _d("raw_tracepoint+", "RAW_TRACEPOINT", None, _N),
    _d("raw_tp+", "RAW_TRACEPOINT", None, _N),
    _d("raw_tracepoint.w+", "RAW_TRACEPOINT_WRITABLE", None, _N),
    _d("raw_tp.w+", "RAW_TRACEPOINT_WRITABLE", None, _N),
    _d("tp_btf+", "TRACING", "TRACE_RAW_TP", _BTF),
    _d("fentry+", "TRACING", "TRACE_FENTRY", _BTF),
    _d("fmod_ret+", "TRACING", "MODIFY_RETURN", _BTF),
    _d("fexit+", "TRACING", "TRACE_FEXIT", _BTF),
    _d("fentry.s+", "TRACING", "TRACE_FENTRY", _BTF | _S),
    _d("fmod_ret.s+", "TRACING", "MODIFY_RETURN", _BTF | _S),
    _d("fexit.s+", "TRACING", "TRACE_FEXIT", _BTF | _S),
    _d("freplace+", "EXT", None, _BTF),
    _d("lsm+", "LSM", "LSM_MAC", _BTF),
    _d("lsm.s+", "LSM", "LSM_MAC", _BTF | _S),
    _d("lsm_cgroup+", "LSM", "LSM_CGROUP", _BTF),
    _d("iter+", "TRACING", "TRACE_ITER", _BTF),
    _d("iter.s+", "TRACING", "TRACE_ITER", _BTF | _S),
    _d("syscall", "SYSCALL", None, _S),
    _d("xdp.frags/devmap", "XDP", "XDP_DEVMAP", _X),
    _d("xdp/devmap", "XDP", "XDP_DEVMAP", _A),
    _d("xdp.frags/cpumap", "XDP", "XDP_CPUMAP", _X),
    _d("xdp/cpumap", "XDP", "XDP_CPUMAP", _A),
    _d("xdp.frags", "XDP", "XDP", _X),
    _d("xdp", "XDP", "XDP", _AO),
    _d("perf_event", "PERF_EVENT", None, _N),
    _d("lwt_in", "LWT_IN", None, _N),
    _d("lwt_out", "LWT_OUT", None, _N),
    _d("lwt_xmit", "LWT_XMIT", None, _N),
    _d("lwt_seg6local", "LWT_SEG6LOCAL", None, _N),
    _d("sockops", "SOCK_OPS", "CGROUP_SOCK_OPS", _AO),
    _d("sk_skb/stream_parser", "SK_SKB", "SK_SKB_STREAM_PARSER", _AO),
    _d("sk_skb/stream_verdict", "SK_SKB", "SK_SKB_STREAM_VERDICT", _AO),
    _d("sk_skb/verdict", "SK_SKB", "SK_SKB_VERDICT", _AO),
    _d("sk_skb", "SK_SKB", None, _N),
    _d("sk_msg", "SK_MSG", "SK_MSG_VERDICT", _AO),
    _d("lirc_mode2", "LIRC_MODE2", "LIRC_MODE2", _AO),
    _d("flow_dissector", "FLOW_DISSECTOR", "FLOW_DISSECTOR", _AO),
    _d("cgroup_skb/ingress", "CGROUP_SKB", "CGROUP_INET_INGRESS", _AO),
    _d("cgroup_skb/egress", "CGROUP_SKB", "CGROUP_INET_EGRESS", _AO),
    _d("cgroup/skb", "CGROUP_SKB", None, _N),
    _d("cgroup/sock_create", "CGROUP_SOCK", "CGROUP_INET_SOCK_CREATE", _A),
    _d("cgroup/sock_release", "CGROUP_SOCK", "CGROUP_INET_SOCK_RELEASE", _A),
    _d("cgroup/sock", "CGROUP_SOCK", "CGROUP_INET_SOCK_CREATE", _AO),
    _d("cgroup/post_bind4", "CGROUP_SOCK", "CGROUP_INET4_POST_BIND", _A),
    _d("cgroup/post_bind6", "CGROUP_SOCK", "CGROUP_INET6_POST_BIND", _A),
    _d("cgroup/bind4", "CGROUP_SOCK_ADDR", "CGROUP_INET4_BIND", _A),
    _d("cgroup/bind6", "CGROUP_SOCK_ADDR", "CGROUP_INET6_BIND", _A),
    _d("cgroup/connect4", "CGROUP_SOCK_ADDR", "CGROUP_INET4_CONNECT", _A),
    _d("cgroup/connect6", "CGROUP_SOCK_ADDR", "CGROUP_INET6_CONNECT", _A),
    _d("cgroup/connect_unix", "CGROUP_SOCK_ADDR", "CGROUP_UNIX_CONNECT", _A),
    _d("cgroup/sendmsg4", "CGROUP_SOCK_ADDR", "CGROUP_UDP4_SENDMSG", _A),
    _d("cgroup/sendmsg6", "CGROUP_SOCK_ADDR", "CGROUP_UDP6_SENDMSG", _A),
    _d("cgroup/sendmsg_unix", "CGROUP_SOCK_ADDR", "CGROUP_UNIX_SENDMSG", _A),
    _d("cgroup/recvmsg4", "CGROUP_SOCK_ADDR", "CGROUP_UDP4_RECVMSG", _A),
    _d("cgroup/recvmsg6", "CGROUP_SOCK_ADDR", "CGROUP_UDP6_RECVMSG", _A),
    _d("cgroup/recvmsg_unix", "CGROUP_SOCK_ADDR", "CGROUP_UNIX_RECVMSG", _A),
    _d("cgroup/getpeername4", "CGROUP_SOCK_ADDR", "CGROUP_INET4_GETPEERNAME", _A),
    _d("cgroup/getpeername6", "CGROUP_SOCK_ADDR", "CGROUP_INET6_GETPEERNAME", _A),
    _d("cgroup/getpeername_unix", "CGROUP_SOCK_ADDR", "CGROUP_UNIX_GETPEERNAME", _A),
    _d("cgroup/getsockname4", "CGROUP_SOCK_ADDR", "CGROUP_INET4_GETSOCKNAME", _A),
    _d("cgroup/getsockname6", "CGROUP_SOCK_ADDR", "CGROUP_INET6_GETSOCKNAME", _A),
    _d("cgroup/getsockname_unix", "CGROUP_SOCK_ADDR", "CGROUP_UNIX_GETSOCKNAME", _A),
    _d("cgroup/sysctl", "CGROUP_SYSCTL", "CGROUP_SYSCTL", _A),
    _d("cgroup/getsockopt", "CGROUP_SOCKOPT", "CGROUP_GETSOCKOPT", _A),
    _d("cgroup/setsockopt", "CGROUP_SOCKOPT", "CGROUP_SETSOCKOPT", _A),
    _d("cgroup/dev", "CGROUP_DEVICE", "CGROUP_DEVICE", _AO),
    _d("struct_ops+", "STRUCT_OPS", None, _N),
    _d("struct_ops.s+", "STRUCT_OPS", None, _S),
    _d("sk_lookup", "SK_LOOKUP", "SK_LOOKUP", _A),
    _d("netfilter", "NETFILTER", "NETFILTER", _N),
)


@dataclass(frozen=True, slots=True)
class SectionMatch:
    """What a section name means: the definition (``None`` if unknown), the name without ``?``,
    whether libbpf loads it by default, and the attach target after the first ``/``."""

    section: str
    sec_def: SecDef | None
    autoload: bool
    attach_to: str | None

    @property
    def prog_type(self) -> ProgType | None:
        """The definition's program type (``None`` for an unknown section name)."""
        return self.sec_def.prog_type if self.sec_def else None

    @property
    def expected_attach_type(self) -> AttachType | None:
        """The definition's expected attach type (``None`` when it has none, i.e. 0)."""
        return self.sec_def.expected_attach_type if self.sec_def else None


def find_sec_def(sec_name: str) -> SecDef | None:
    """libbpf's ``find_sec_def``: the first definition matching ``sec_name`` (without ``?``)."""
    for d in SECTION_DEFS:
        if d.matches(sec_name):
            return d
    return None


def match_section(raw_name: str) -> SectionMatch:
    """Interpret an ELF program section name, ``?`` prefix included."""
    autoload = not raw_name.startswith("?")
    name = raw_name if autoload else raw_name[1:]
    sec_def = find_sec_def(name)
    attach_to = name.split("/", 1)[1] if "/" in name else None
    return SectionMatch(name, sec_def, autoload, attach_to)
