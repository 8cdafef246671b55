"""Device and route helpers (net/core/filter.c): ``bpf_check_mtu`` and ``bpf_fib_lookup``.

The devices are this machine's interfaces (the same table the XDP/skb hooks and ``bpf_redirect``
use): a run's device is the one its context names (``ingress_ifindex`` for XDP, ``ifindex`` for
an skb; the loopback device, ifindex 1, in test runs, as ``net/bpf/test_run.c`` chooses). MTU,
link type and the per-device forwarding switches come from ``/sys/class/net`` and
``/proc/sys/net``.

pybpf has no FIB of its own: ``bpf_fib_lookup`` makes every check the kernel makes before the
route lookup (size, flags, family, link-local IPv6, the device, forwarding enabled on it) and then
answers as Linux does for a destination no route matches, ``BPF_FIB_LKUP_RET_NOT_FWDED``. On a
host with forwarding enabled and real routes, the kernel would find them and pybpf does not.
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from pybpf.progtypes import SKB_RUNTIME, XDP_RUNTIME
from pybpf.uapi import HelperId, ProgType

__all__ = ["HELPERS", "NetDevice", "fib_lookup_value", "net_device"]

AF_INET, AF_INET6 = 2, 10
FIB_LOOKUP_SIZE = 64  # sizeof(struct bpf_fib_lookup)
BPF_FIB_LOOKUP_DIRECT, BPF_FIB_LOOKUP_OUTPUT, BPF_FIB_LOOKUP_SKIP_NEIGH = 1, 2, 4
BPF_FIB_LOOKUP_TBID, BPF_FIB_LOOKUP_SRC, BPF_FIB_LOOKUP_MARK = 8, 16, 32
BPF_FIB_LOOKUP_MASK = 0x3F
BPF_FIB_LKUP_RET_NOT_FWDED, BPF_FIB_LKUP_RET_FWD_DISABLED = 4, 5
BPF_MTU_CHK_SEGS = 1
BPF_MTU_CHK_RET_SUCCESS, BPF_MTU_CHK_RET_FRAG_NEEDED = 0, 1
ARPHRD_ETHER, ARPHRD_LOOPBACK = 1, 772
ETH_HLEN = 14
_M32 = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class NetDevice:
    """What the helpers need of a ``struct net_device``."""

    ifindex: int
    name: str
    mtu: int
    hard_header_len: int
    ipv4_forwarding: bool
    ipv6_forwarding: bool


def _read_int(path: Path, default: int) -> int:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return default


@lru_cache(maxsize=64)
def _device_by_index(ifindex: int) -> NetDevice | None:
    try:
        name = socket.if_indextoname(ifindex)
    except OSError:
        return None
    sysfs = Path("/sys/class/net") / name
    mtu = _read_int(sysfs / "mtu", 65536 if ifindex == 1 else 1500)
    link = _read_int(sysfs / "type", ARPHRD_LOOPBACK if ifindex == 1 else ARPHRD_ETHER)
    # Ethernet and loopback devices have 14-byte link headers; tunnels and other L3 devices none.
    hard_header_len = ETH_HLEN if link in (ARPHRD_ETHER, ARPHRD_LOOPBACK) else 0
    v4 = _read_int(Path("/proc/sys/net/ipv4/conf") / name / "forwarding", 0) != 0
    v6 = _read_int(Path("/proc/sys/net/ipv6/conf") / name / "forwarding", 0) != 0
    return NetDevice(ifindex, name, mtu, hard_header_len, v4, v6)


def net_device(ifindex: int) -> NetDevice | None:
    """``dev_get_by_index``: the device with ``ifindex`` on this machine, or None. Devices are read
    once per process (their MTU and forwarding switches as they were then)."""
    if ifindex <= 0 or ifindex > _M32:
        return None
    return _device_by_index(ifindex)


def _is_xdp(ctx: Any) -> bool:
    return int(getattr(ctx.env, "prog_type", 0)) == ProgType.XDP


def _ctx_field(ctx: Any, r1: int, layout: Any, name: str) -> int:
    f = layout[name]
    return int(ctx.load(r1 + f.offset, f.size))


def _run_device(ctx: Any, r1: int) -> int:
    """The ifindex of the device the run's packet is on (XDP: ``rxq->dev``; skb: ``skb->dev``)."""
    if _is_xdp(ctx):
        return _ctx_field(ctx, r1, XDP_RUNTIME, "ingress_ifindex") or 1
    return _ctx_field(ctx, r1, SKB_RUNTIME, "ifindex") or 1


def _packet_len(ctx: Any, r1: int) -> int:
    if _is_xdp(ctx):
        return _ctx_field(ctx, r1, XDP_RUNTIME, "data_end") - _ctx_field(ctx, r1, XDP_RUNTIME, "data")
    return _ctx_field(ctx, r1, SKB_RUNTIME, "len")


def _s32(v: int) -> int:
    v &= _M32
    return v - (1 << 32) if v & 0x80000000 else v


def check_mtu(ctx: Any, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """``bpf_check_mtu(ctx, ifindex, &mtu_len, len_diff, flags)``: would the packet (or an L3 length
    of ``*mtu_len``), grown by ``len_diff``, fit the device's MTU? Writes the MTU to ``*mtu_len``.
    ``ifindex`` 0 means the run's own device."""
    xdp = _is_xdp(ctx)
    flags = r5
    mtu_len = int(ctx.load(r3, 4))
    len_diff = _s32(r4)
    if xdp:
        if flags:
            return -errno.EINVAL
    else:
        if flags & ~BPF_MTU_CHK_SEGS:
            return -errno.EINVAL
        if flags & BPF_MTU_CHK_SEGS and (len_diff or mtu_len):
            return -errno.EINVAL
    ifindex = r2 & _M32
    dev = net_device(ifindex or _run_device(ctx, r1))
    if dev is None:
        return -errno.ENODEV
    dev_len = dev.mtu + dev.hard_header_len
    length = mtu_len + dev.hard_header_len if mtu_len else _packet_len(ctx, r1)
    length += len_diff
    # test-run skbs are never GSO, so the segment check never applies (skb_is_gso is false)
    ret = BPF_MTU_CHK_RET_SUCCESS if length <= dev_len else BPF_MTU_CHK_RET_FRAG_NEEDED
    ctx.store(r3, 4, dev.mtu)
    return ret


def _rt6_need_strict(addr: bytes) -> bool:
    """Multicast (ff00::/8), link-local (fe80::/10) and loopback (::1) IPv6 addresses."""
    return addr[0] == 0xFF or (addr[0] == 0xFE and addr[1] & 0xC0 == 0x80) or addr == bytes(15) + b"\x01"


def fib_lookup_value(params: bytes, plen: int, flags: int) -> int:
    """What ``bpf_fib_lookup`` returns for ``params`` (``struct bpf_fib_lookup``) against this
    machine's devices and an empty FIB (see the module docstring)."""
    if _s32(plen) < FIB_LOOKUP_SIZE:
        return -errno.EINVAL
    if flags & ~BPF_FIB_LOOKUP_MASK:
        return -errno.EINVAL
    family = params[0]
    ifindex = int.from_bytes(params[8:12], "little")
    if family == AF_INET:
        dev = net_device(ifindex)
        if dev is None:
            return -errno.ENODEV
        if not dev.ipv4_forwarding:
            return BPF_FIB_LKUP_RET_FWD_DISABLED
        return BPF_FIB_LKUP_RET_NOT_FWDED
    if family == AF_INET6:
        if _rt6_need_strict(params[32:48]) or _rt6_need_strict(params[16:32]):
            return BPF_FIB_LKUP_RET_NOT_FWDED
        dev = net_device(ifindex)
        if dev is None:
            return -errno.ENODEV
        if not dev.ipv6_forwarding:
            return BPF_FIB_LKUP_RET_FWD_DISABLED
        return BPF_FIB_LKUP_RET_NOT_FWDED
    return -errno.EAFNOSUPPORT


def fib_lookup(ctx: Any, r1: int, r2: int, r3: int, r4: int, *_: int) -> int:
    """``bpf_fib_lookup(ctx, params, plen, flags)`` (XDP and skb variants alike)."""
    if _s32(r3) < FIB_LOOKUP_SIZE or (r4 & _M32) & ~BPF_FIB_LOOKUP_MASK:
        return -errno.EINVAL
    return fib_lookup_value(ctx.read(r2, FIB_LOOKUP_SIZE), r3, r4 & _M32)


HELPERS: dict[int, Any] = {
    HelperId.check_mtu: check_mtu,
    HelperId.fib_lookup: fib_lookup,
}
