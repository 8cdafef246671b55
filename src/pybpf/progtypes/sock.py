"""Socket structs a program can reach through pointers: ``struct bpf_sock`` (PTR_TO_SOCKET and
PTR_TO_SOCK_COMMON), ``struct bpf_tcp_sock`` (PTR_TO_TCP_SOCK), ``struct bpf_xdp_sock``.

Access rules from ``net/core/filter.c``: ``bpf_sock_is_valid_access``,
``bpf_sock_common_is_valid_access``, ``bpf_tcp_sock_is_valid_access``,
``bpf_xdp_sock_is_valid_access``. All read-only.
"""

from __future__ import annotations

from pybpf.progtypes.context import AccessAux, CtxField, CtxStruct, narrow_access_ok
from pybpf.progtypes.types import AccessType, RegType

__all__ = ["BPF_SOCK", "BPF_TCP_SOCK", "sock_is_valid_access"]

BPF_SOCK = CtxStruct("bpf_sock", 80, (
    CtxField("bound_dev_if", 0, 4), CtxField("family", 4, 4), CtxField("type", 8, 4), CtxField("protocol", 12, 4),
    CtxField("mark", 16, 4), CtxField("priority", 20, 4), CtxField("src_ip4", 24, 4), CtxField("src_ip6", 28, 4, 4),
    CtxField("src_port", 44, 4), CtxField("dst_port", 48, 2), CtxField("dst_ip4", 52, 4),
    CtxField("dst_ip6", 56, 4, 4), CtxField("state", 72, 4), CtxField("rx_queue_mapping", 76, 4),
))
"""``struct bpf_sock`` (80 bytes)."""

_TCP_U32 = ("snd_cwnd", "srtt_us", "rtt_min", "snd_ssthresh", "rcv_nxt", "snd_nxt", "snd_una", "mss_cache",
            "ecn_flags", "rate_delivered", "rate_interval_us", "packets_out", "retrans_out", "total_retrans",
            "segs_in", "data_segs_in", "segs_out", "data_segs_out", "lost_out", "sacked_out")
BPF_TCP_SOCK = CtxStruct("bpf_tcp_sock", 112, (
    *(CtxField(n, 4 * i, 4) for i, n in enumerate(_TCP_U32)),
    CtxField("bytes_received", 80, 8), CtxField("bytes_acked", 88, 8), CtxField("dsack_dups", 96, 4),
    CtxField("delivered", 100, 4), CtxField("delivered_ce", 104, 4), CtxField("icsk_retransmits", 108, 4),
))
"""``struct bpf_tcp_sock`` (112 bytes)."""

_NARROW = (0, 4, 8, 12, 44, 76)  # state/family/type/protocol/src_port/rx_queue_mapping (+ ranges below)


def bpf_sock_is_valid_access(off: int, size: int, type: AccessType, aux: AccessAux) -> bool:
    if off < 0 or off >= BPF_SOCK.size or off % size:
        return False
    ranged = (24 <= off < 28) or (28 <= off < 44) or (52 <= off < 56) or (56 <= off < 72)
    if off in (72, 4, 8, 12, 44, 76) or ranged:
        aux.ctx_field_size = 4
        return narrow_access_ok(off, size, 4)
    if 48 <= off < 52:
        if off >= 50:
            return False
        field_size = 4 if size == 4 else 2
        aux.ctx_field_size = field_size
        return narrow_access_ok(off, size, field_size)
    return size == 4


def bpf_sock_common_is_valid_access(off: int, size: int, type: AccessType, aux: AccessAux) -> bool:
    if 8 <= off < 24:  # type .. priority
        return False
    return bpf_sock_is_valid_access(off, size, type, aux)


def bpf_tcp_sock_is_valid_access(off: int, size: int, type: AccessType, aux: AccessAux) -> bool:
    if off < 0 or off >= BPF_TCP_SOCK.size or off % size:
        return False
    if off in (80, 88):
        return size == 8
    return size == 4


def bpf_xdp_sock_is_valid_access(off: int, size: int, type: AccessType, aux: AccessAux) -> bool:
    if off < 0 or off >= 4 or off % size:
        return False
    return size == 4


def sock_is_valid_access(reg_type: int, off: int, size: int, type: AccessType, aux: AccessAux) -> bool:
    """Dispatch on the pointer's register type, as ``check_sock_access`` does."""
    if reg_type == RegType.PTR_TO_SOCK_COMMON:
        return bpf_sock_common_is_valid_access(off, size, type, aux)
    if reg_type == RegType.PTR_TO_SOCKET:
        return bpf_sock_is_valid_access(off, size, type, aux)
    if reg_type == RegType.PTR_TO_TCP_SOCK:
        return bpf_tcp_sock_is_valid_access(off, size, type, aux)
    if reg_type == RegType.PTR_TO_XDP_SOCK:
        return bpf_xdp_sock_is_valid_access(off, size, type, aux)
    return False
