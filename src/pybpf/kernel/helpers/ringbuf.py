"""Ring buffer and perf event output helpers (kernel/bpf/ringbuf.c, kernel/trace/bpf_trace.c,
net/core/filter.c ``bpf_xdp_event_output`` / ``bpf_skb_event_output``).

A reserved ring-buffer sample is memory inside the ring buffer map's storage, so the pointer
``bpf_ringbuf_reserve`` returns is an address in the map's region; submit/discard find the map again
from that address.
"""

from __future__ import annotations

import errno
from typing import Any

from pybpf.errors import HelperError
from pybpf.kernel.helpers.maps import map_arg, map_value_address
from pybpf.kernel.maps.perf_event_array import PerfEventArrayMap
from pybpf.kernel.maps.ringbuf import RingbufMap
from pybpf.uapi import HelperId
from pybpf.vm import RegionKind

__all__ = ["HELPERS"]

BPF_F_INDEX_MASK = 0xFFFFFFFF
BPF_F_CURRENT_CPU = BPF_F_INDEX_MASK
BPF_F_CTXLEN_MASK = 0xFFFFF << 32


def ringbuf_reserve(ctx: Any, r1: int, r2: int, r3: int, *_: int) -> int:
    """``bpf_ringbuf_reserve``: room for a record (8-byte header, length rounded to 8) or 0 when the ring is full; the
    record stays busy until submitted or discarded."""
    m = map_arg(ctx, r1)
    if r3 or not isinstance(m, RingbufMap):
        return 0
    off = m.reserve(r2)
    return 0 if off is None else map_value_address(ctx, m, off)


def _sample(ctx: Any, ptr: int) -> tuple[RingbufMap, int]:
    region = ctx.space.find(ptr)
    if region is None or region.kind is not RegionKind.MAP or not isinstance(region.owner, RingbufMap):
        raise HelperError(f"{ptr:#x} is not a ring buffer sample", pc=ctx.pc)
    return region.owner, ptr - region.base


def ringbuf_submit(ctx: Any, r1: int, r2: int, *_: int) -> int:
    """``bpf_ringbuf_submit``: the reserved record becomes visible to the consumer."""
    m, off = _sample(ctx, r1)
    m.commit(off, discard=False)
    return 0


def ringbuf_discard(ctx: Any, r1: int, r2: int, *_: int) -> int:
    """``bpf_ringbuf_discard``: the reserved record is skipped by the consumer."""
    m, off = _sample(ctx, r1)
    m.commit(off, discard=True)
    return 0


def ringbuf_output(ctx: Any, r1: int, r2: int, r3: int, r4: int, *_: int) -> int:
    """``bpf_ringbuf_output``: reserve, copy and submit in one call (``RingbufMap.output``)."""
    m = map_arg(ctx, r1)
    if not isinstance(m, RingbufMap):
        return -errno.EINVAL
    data = ctx.read(r2, r3) if r3 else b""
    return m.output(data, r4)


def ringbuf_query(ctx: Any, r1: int, r2: int, *_: int) -> int:
    """``bpf_ringbuf_query``: available data, ring size, consumer or producer position (0 for an unknown flag)."""
    m = map_arg(ctx, r1)
    return m.query(r2) if isinstance(m, RingbufMap) else 0


def perf_event_output(ctx: Any, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """``bpf_perf_event_output(ctx, map, flags, data, size)``; for XDP and skb programs the upper
    flag bits (``BPF_F_CTXLEN_MASK``) append that many packet bytes to the sample."""
    env = ctx.env
    if r3 & ~(BPF_F_INDEX_MASK | BPF_F_CTXLEN_MASK):
        return -errno.EINVAL
    m = map_arg(ctx, r2)
    if not isinstance(m, PerfEventArrayMap):
        return -errno.EINVAL
    index = r3 & BPF_F_INDEX_MASK
    if index == BPF_F_CURRENT_CPU:
        index = int(getattr(env, "cpu", 0))
    data = ctx.read(r4, r5) if r5 else b""
    ctx_len = (r3 & BPF_F_CTXLEN_MASK) >> 32
    if ctx_len:
        pkt = b""
        xdp = getattr(env, "xdp", None)
        skb = getattr(env, "skb", None)
        if xdp is not None:
            pkt = bytes(xdp.buf[xdp.data:xdp.data_end]) + xdp.frags
        elif skb is not None:
            pkt = skb.packet()
        if ctx_len > len(pkt):
            return -errno.EFAULT
        data += pkt[:ctx_len]
    err = m.output(index, data)
    if not err:
        out = getattr(env, "perf_output", None)
        if out is not None:
            out.append((index, data))
    return err


HELPERS: dict[int, Any] = {
    HelperId.ringbuf_reserve: ringbuf_reserve,
    HelperId.ringbuf_submit: ringbuf_submit,
    HelperId.ringbuf_discard: ringbuf_discard,
    HelperId.ringbuf_output: ringbuf_output,
    HelperId.ringbuf_query: ringbuf_query,
    HelperId.perf_event_output: perf_event_output,
}
