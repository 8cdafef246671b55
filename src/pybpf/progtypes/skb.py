"""``struct __sk_buff`` program types: SOCKET_FILTER, SCHED_CLS, SCHED_ACT, CGROUP_SKB, LWT_*.

The access rules follow ``net/core/filter.c`` (``bpf_skb_is_valid_access`` and the per-type
wrappers ``sk_filter_is_valid_access``, ``tc_cls_act_is_valid_access``, ``cg_skb_is_valid_access``,
``lwt_is_valid_access``). The runtime layout is pybpf's own ``struct pybpf_skb`` (not the kernel's
``sk_buff``): 64-bit pointers first, then every readable ``__sk_buff`` scalar as a ``u32`` (``cb``
and the IPv6 address arrays as byte regions), so a context conversion is one load or store.
"""

from __future__ import annotations

from pybpf.progtypes.context import (
    AccessAux,
    CtxField,
    CtxMapping,
    CtxStruct,
    ProgInfo,
    ProgTypeDescriptor,
    RetvalRange,
    RuntimeLayout,
    narrow_access_ok,
)
from pybpf.progtypes.protos import HelperProto, func_proto_switch, proto_by_name
from pybpf.progtypes.types import (
    PTR_TO_SOCK_COMMON_OR_NULL,
    AccessType,
    RegType,
)
from pybpf.uapi import AttachType, ProgType

__all__ = ["CGROUP_SKB", "LWT_IN", "LWT_OUT", "LWT_XMIT", "SCHED_ACT", "SCHED_CLS", "SKB_RUNTIME", "SK_BUFF",
           "SOCKET_FILTER"]


def _sk_buff() -> CtxStruct:
    fields: list[CtxField] = []
    off = 0

    def add(name: str, size: int = 4, count: int = 1) -> None:
        nonlocal off
        off = (off + size - 1) // size * size
        fields.append(CtxField(name, off, size, count))
        off += size * count

    for name in ("len", "pkt_type", "mark", "queue_mapping", "protocol", "vlan_present", "vlan_tci",
                 "vlan_proto", "priority", "ingress_ifindex", "ifindex", "tc_index"):
        add(name)
    add("cb", 4, 5)
    for name in ("hash", "tc_classid", "data", "data_end", "napi_id", "family", "remote_ip4", "local_ip4"):
        add(name)
    add("remote_ip6", 4, 4)
    add("local_ip6", 4, 4)
    for name in ("remote_port", "local_port", "data_meta"):
        add(name)
    add("flow_keys", 8)
    add("tstamp", 8)
    add("wire_len")
    add("gso_segs")
    add("sk", 8)
    add("gso_size")
    add("tstamp_type", 1)
    off += 3  # __u32 :24 padding
    add("hwtstamp", 8)
    return CtxStruct("__sk_buff", off, tuple(fields))


SK_BUFF = _sk_buff()
"""``struct __sk_buff`` (192 bytes), offsets as in the UAPI header."""

_SCALARS = ("len", "pkt_type", "mark", "queue_mapping", "protocol", "vlan_present", "vlan_tci", "vlan_proto",
            "priority", "ingress_ifindex", "ifindex", "tc_index", "hash", "tc_classid", "napi_id", "family",
            "remote_ip4", "local_ip4", "remote_port", "local_port", "wire_len", "gso_segs", "gso_size")

SKB_RUNTIME = RuntimeLayout.build(
    "pybpf_skb",
    [("data", 8), ("data_end", 8), ("data_meta", 8), ("sk", 8), ("flow_keys", 8), ("tstamp", 8), ("hwtstamp", 8)]
    + [(n, 4) for n in _SCALARS]
    + [("cb", 20), ("remote_ip6", 16), ("local_ip6", 16), ("tstamp_type", 1)],
)
"""The runtime context of every ``__sk_buff`` program type (see the module docstring)."""

_SKB_MAP = {n: CtxMapping(n) for n in (*_SCALARS, "data", "data_end", "data_meta", "sk", "tstamp", "hwtstamp",
                                       "tstamp_type")}
_SKB_MAP.update({n: CtxMapping(n, region=True) for n in ("cb", "remote_ip6", "local_ip6")})
# 16-bit in struct sk_buff: a store keeps the low half (the runtime u32's upper half stays 0)
_SKB_MAP.update({n: CtxMapping(n, store_size=2) for n in ("tc_index", "tc_classid")})
_SKB_MAP["queue_mapping"] = CtxMapping("queue_mapping", store_size=2, store_below=0xFFFF)


def _r(name: str) -> range:
    return SK_BUFF.range_of(name)


def _till(first: str, last: str) -> range:
    return range(SK_BUFF.offsetof(first), _r(last).stop)


_CB = _till("cb[0]", "cb[4]")
_FAMILY_TILL_LOCAL_PORT = _till("family", "local_port")
_TSTAMP_TYPE = SK_BUFF.offsetof("tstamp_type")
_PADDING = range(_TSTAMP_TYPE + 1, SK_BUFF.offsetof("hwtstamp"))
_SIZE_DEFAULT = 4


def bpf_skb_is_valid_access(off: int, size: int, type: AccessType, prog: ProgInfo, aux: AccessAux) -> bool:
    """``bpf_skb_is_valid_access``: the checks shared by every ``__sk_buff`` type."""
    if off < 0 or off >= SK_BUFF.size:
        return False
    if off % size != 0:
        return False
    if off in _CB:
        return off + size <= _CB.stop
    if off in _r("data") or off in _r("data_meta") or off in _r("data_end"):
        return not (aux.is_ldsx or size != _SIZE_DEFAULT)
    if off in _r("remote_ip6") or off in _r("local_ip6") or off in _r("remote_ip4") or off in _r("local_ip4"):
        return size == _SIZE_DEFAULT
    if off in range(SK_BUFF.offsetof("flow_keys"), SK_BUFF.offsetof("flow_keys") + 8):
        return False
    if off in _r("hwtstamp"):
        return not (type == AccessType.WRITE or size != 8)
    if off in _r("tstamp"):
        return size == 8
    if off in range(SK_BUFF.offsetof("sk"), SK_BUFF.offsetof("sk") + 8):
        if type == AccessType.WRITE or size != 8:
            return False
        aux.reg_type = PTR_TO_SOCK_COMMON_OR_NULL
        return True
    if off == _TSTAMP_TYPE:
        return False
    if off in _PADDING:
        return False
    if type == AccessType.WRITE:
        return size == _SIZE_DEFAULT
    aux.ctx_field_size = _SIZE_DEFAULT
    return narrow_access_ok(off, size, _SIZE_DEFAULT)


def sk_filter_is_valid_access(off: int, size: int, type: AccessType, prog: ProgInfo, aux: AccessAux) -> bool:
    for name in ("tc_classid", "data", "data_meta", "data_end", "tstamp", "wire_len", "hwtstamp"):
        if off in _r(name):
            return False
    if off in _FAMILY_TILL_LOCAL_PORT:
        return False
    if type == AccessType.WRITE and off not in _CB:
        return False
    return bpf_skb_is_valid_access(off, size, type, prog, aux)


def tc_cls_act_is_valid_access(off: int, size: int, type: AccessType, prog: ProgInfo, aux: AccessAux) -> bool:
    if type == AccessType.WRITE and not (
        any(off in _r(n) for n in ("mark", "tc_index", "priority", "tc_classid", "tstamp", "queue_mapping"))
        or off in _CB
    ):
        return False
    if off in _r("data"):
        aux.reg_type = RegType.PTR_TO_PACKET
    elif off in _r("data_meta"):
        aux.reg_type = RegType.PTR_TO_PACKET_META
    elif off in _r("data_end"):
        aux.reg_type = RegType.PTR_TO_PACKET_END
    elif off in _FAMILY_TILL_LOCAL_PORT:
        return False
    elif off == _TSTAMP_TYPE:
        return size == 1
    return bpf_skb_is_valid_access(off, size, type, prog, aux)


def cg_skb_is_valid_access(off: int, size: int, type: AccessType, prog: ProgInfo, aux: AccessAux) -> bool:
    if off in _r("tc_classid") or off in _r("data_meta") or off in _r("wire_len"):
        return False
    if (off in _r("data") or off in _r("data_end")) and not prog.bpf_capable:
        return False
    if type == AccessType.WRITE:
        if off in _r("tstamp"):
            if not prog.bpf_capable:
                return False
        elif not (off in _r("mark") or off in _r("priority") or off in _CB):
            return False
    if off in _r("data"):
        aux.reg_type = RegType.PTR_TO_PACKET
    elif off in _r("data_end"):
        aux.reg_type = RegType.PTR_TO_PACKET_END
    return bpf_skb_is_valid_access(off, size, type, prog, aux)


def lwt_is_valid_access(off: int, size: int, type: AccessType, prog: ProgInfo, aux: AccessAux) -> bool:
    for name in ("tc_classid", "data_meta", "tstamp", "wire_len", "hwtstamp"):
        if off in _r(name):
            return False
    if off in _FAMILY_TILL_LOCAL_PORT:
        return False
    if type == AccessType.WRITE and not (off in _r("mark") or off in _r("priority") or off in _CB):
        return False
    if off in _r("data"):
        aux.reg_type = RegType.PTR_TO_PACKET
    elif off in _r("data_end"):
        aux.reg_type = RegType.PTR_TO_PACKET_END
    return bpf_skb_is_valid_access(off, size, type, prog, aux)


_NO_RETVAL_ATTACH = frozenset(int(a) for a in (
    AttachType.CGROUP_INET_INGRESS, AttachType.CGROUP_INET_EGRESS, AttachType.CGROUP_SOCK_OPS,
    AttachType.CGROUP_UDP4_RECVMSG, AttachType.CGROUP_UDP6_RECVMSG, AttachType.CGROUP_UNIX_RECVMSG,
    AttachType.CGROUP_INET4_GETPEERNAME, AttachType.CGROUP_INET6_GETPEERNAME, AttachType.CGROUP_UNIX_GETPEERNAME,
    AttachType.CGROUP_INET4_GETSOCKNAME, AttachType.CGROUP_INET6_GETSOCKNAME, AttachType.CGROUP_UNIX_GETSOCKNAME,
))


def cgroup_common_func_proto(helper_id: int, prog: ProgInfo) -> HelperProto | None:
    """``cgroup_common_func_proto``: the cgroup helpers every cgroup program type gets first."""
    from pybpf.uapi import HelperId

    if helper_id == HelperId.get_local_storage:
        return proto_by_name("bpf_get_local_storage_proto")
    if helper_id in (HelperId.get_retval, HelperId.set_retval):
        if prog.expected_attach_type in _NO_RETVAL_ATTACH:
            return None
        return proto_by_name("bpf_get_retval_proto" if helper_id == HelperId.get_retval else "bpf_set_retval_proto")
    return None


def _cg_skb_range(prog: ProgInfo) -> RetvalRange:
    if prog.expected_attach_type == AttachType.CGROUP_INET_EGRESS:
        return RetvalRange(0, 3)
    return RetvalRange(0, 1)


def _skb_type(prog_type: ProgType, name: str, check, switch: str, **kw: object) -> ProgTypeDescriptor:
    return ProgTypeDescriptor(
        prog_type=int(prog_type),
        name=name,
        ctx=SK_BUFF,
        runtime=SKB_RUNTIME,
        is_valid_access=check,
        func_proto=func_proto_switch(switch),
        ctx_map=_SKB_MAP,
        has_ctx_out=True,
        test_run="skb",
        ctx_btf_name="__sk_buff",
        **kw,  # type: ignore[arg-type]
    )


SOCKET_FILTER = _skb_type(ProgType.SOCKET_FILTER, "socket_filter", sk_filter_is_valid_access,
                          "sk_filter_func_proto", ld_abs=True, unpriv=True)
SCHED_CLS = _skb_type(ProgType.SCHED_CLS, "sched_cls", tc_cls_act_is_valid_access, "tc_cls_act_func_proto",
                      ld_abs=True, packet_access="rw")
SCHED_ACT = _skb_type(ProgType.SCHED_ACT, "sched_act", tc_cls_act_is_valid_access, "tc_cls_act_func_proto",
                      ld_abs=True, packet_access="rw")
CGROUP_SKB = _skb_type(ProgType.CGROUP_SKB, "cgroup_skb", cg_skb_is_valid_access, "cg_skb_func_proto",
                       packet_access="r", unpriv=True, return_range=_cg_skb_range,
                       func_proto_first=cgroup_common_func_proto)
LWT_IN = _skb_type(ProgType.LWT_IN, "lwt_in", lwt_is_valid_access, "lwt_in_func_proto", packet_access="r")
LWT_OUT = _skb_type(ProgType.LWT_OUT, "lwt_out", lwt_is_valid_access, "lwt_out_func_proto", packet_access="r")
LWT_XMIT = _skb_type(ProgType.LWT_XMIT, "lwt_xmit", lwt_is_valid_access, "lwt_xmit_func_proto",
                     packet_access="rw")
