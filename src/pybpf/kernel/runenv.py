"""The state one program run carries for its helpers (the vm's ``ctx.env``).

Helpers in :mod:`pybpf.kernel.helpers` reach the kernel through this object: which program runs,
on which "CPU", the XDP buffer or socket buffer being processed (so ``bpf_xdp_adjust_head`` can move
``data`` and ``bpf_skb_store_bytes`` can write the packet), the per-run ``bpf_redirect_info``, and
what the run printed. The packet and context live in regions of the interpreter's address space;
the state objects here own those regions and keep the context's pointer fields in step with them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pybpf.progtypes import SKB_RUNTIME, XDP_RUNTIME
from pybpf.vm import AddressSpace, Region, RegionKind

if TYPE_CHECKING:
    from pybpf.kernel.objects import Kernel
    from pybpf.kernel.program import Program

__all__ = ["RedirectInfo", "RunEnv", "SkbState", "XdpState", "metalen_invalid"]

PAGE_SIZE = 4096
XDP_PACKET_HEADROOM = 256
XDP_FRAME_SIZE = 40  # sizeof(struct xdp_frame)
SKB_SHARED_INFO = 320  # SKB_DATA_ALIGN(sizeof(struct skb_shared_info)) on x86-64
NET_SKB_PAD = 64
ETH_HLEN = 14
INT_MAX = 0x7FFFFFFF
XDP_META_MAX = 255  # type_max(skb_shared_info.meta_len), a u8


def metalen_invalid(metalen: int) -> bool:
    """``xdp_metalen_invalid``: XDP metadata is whole u32s, at most what ``meta_len`` can hold."""
    return bool(metalen & 3) or metalen > XDP_META_MAX



@dataclass(slots=True)
class RedirectInfo:
    """``struct bpf_redirect_info``: what ``bpf_redirect`` / ``bpf_redirect_map`` decided.

    It starts zeroed, as the kernel's per-context copy does (``bpf_net_ctx_get_ri``): ``map_id`` 0
    and ``map_type`` UNSPEC mean no redirect helper ran, so a bare ``return XDP_REDIRECT`` fails
    with ``-EBADRQC`` in ``xdp_do_generic_redirect``. ``bpf_redirect`` sets ``map_id = INT_MAX``
    (an id the map idr never hands out) to mean "to the device ``tgt_index``".
    """

    tgt_index: int = 0
    map_id: int = 0
    map_type: int = 0
    flags: int = 0
    map: Any = None


class XdpState:
    """An ``xdp_buff`` over one page: ``[hard_start | headroom | meta | data ... | tailroom]``.

    Offsets are into ``buf`` (the page). The packet region's valid window is ``[data_meta,
    data_end)``; the runtime context (``xdp_buff`` layout from progtypes) holds the addresses.
    """

    def __init__(self, space: AddressSpace, linear: bytes, *, headroom: int = XDP_PACKET_HEADROOM,
                 meta_len: int = 0, ingress_ifindex: int = 1, rx_queue_index: int = 0) -> None:
        self.space = space
        self.frame_sz = PAGE_SIZE
        self.buf = bytearray(PAGE_SIZE)
        self.data_meta = headroom
        self.data = headroom + meta_len
        self.data_end = headroom + len(linear)
        self.buf[self.data_meta:self.data_end] = linear
        self.frags = b""
        self.region: Region = space.add(self.buf, RegionKind.PACKET, "xdp packet",
                                        start=self.data_meta, end=self.data_end)
        self.ctx_buf = XDP_RUNTIME.pack({
            "data_hard_start": self.region.base,
            "ingress_ifindex": ingress_ifindex,
            "rx_queue_index": rx_queue_index,
            "frame_sz": self.frame_sz,
        })
        self.ctx_region: Region = space.add(self.ctx_buf, RegionKind.CTX, "xdp_md")
        self.sync()

    @property
    def hard_end(self) -> int:
        """``xdp_data_hard_end``: the tailroom for skb_shared_info is reserved."""
        return self.frame_sz - SKB_SHARED_INFO

    def sync(self) -> None:
        """Publish the current data_meta/data/data_end to the region window and the context."""
        self.space.resize(self.region, self.data_meta, self.data_end)
        base = self.region.base
        for name, off in (("data", self.data), ("data_end", self.data_end), ("data_meta", self.data_meta)):
            f = XDP_RUNTIME[name]
            self.ctx_buf[f.offset:f.offset + f.size] = (base + off).to_bytes(f.size, "little")

    @property
    def ctx_address(self) -> int:
        """The runtime context's address: what r1 holds when the program starts."""
        return self.ctx_region.address()

    def packet(self) -> bytes:
        """``data_meta .. data_end`` plus the non-linear part (what ``data_out`` receives)."""
        return bytes(self.buf[self.data_meta:self.data_end]) + self.frags

    def close(self) -> None:
        self.space.remove(self.region)
        self.space.remove(self.ctx_region)


class SkbState:
    """A linear ``sk_buff`` as ``bpf_prog_test_run_skb`` builds it.

    ``buf`` = ``[NET_SKB_PAD headroom | frame | tailroom]``; ``data`` is the offset of ``skb->data``
    (the MAC header for tc programs, the network header for socket filters), ``len`` is ``skb->len``.
    """

    def __init__(self, space: AddressSpace, frame: bytes, *, l2: bool, fields: dict[str, int]) -> None:
        self.space = space
        self.buf = bytearray(NET_SKB_PAD + len(frame) + SKB_SHARED_INFO)
        self.buf[NET_SKB_PAD:NET_SKB_PAD + len(frame)] = frame
        self.mac = NET_SKB_PAD
        self.l2 = l2
        self.data = NET_SKB_PAD if l2 else NET_SKB_PAD + ETH_HLEN
        self.len = len(frame) - (0 if l2 else ETH_HLEN)
        self.region: Region = space.add(self.buf, RegionKind.PACKET, "skb data",
                                        start=self.data, end=self.data + self.len)
        self.ctx_buf = SKB_RUNTIME.pack(fields)
        self.ctx_region: Region = space.add(self.ctx_buf, RegionKind.CTX, "__sk_buff")
        self.sync()

    def sync(self) -> None:
        self.space.resize(self.region, self.data, self.data + self.len)
        base = self.region.base
        values = {"data": base + self.data, "data_end": base + self.data + self.len,
                  "data_meta": base + self.data, "len": self.len}
        for name, v in values.items():
            f = SKB_RUNTIME[name]
            self.ctx_buf[f.offset:f.offset + f.size] = (v & ((1 << (8 * f.size)) - 1)).to_bytes(f.size, "little")

    @property
    def ctx_address(self) -> int:
        """The runtime context's address: what r1 holds when the program starts."""
        return self.ctx_region.address()

    @property
    def data_address(self) -> int:
        """The address of ``skb->data`` (LD_ABS/LD_IND read from here)."""
        return self.region.base + self.data

    def field(self, name: str) -> int:
        """A scalar field of the runtime context (``SKB_RUNTIME``), as the program left it."""
        f = SKB_RUNTIME[name]
        return int.from_bytes(self.ctx_buf[f.offset:f.offset + f.size], "little")

    def set_field(self, name: str, value: int) -> None:
        """Set a scalar field of the runtime context."""
        f = SKB_RUNTIME[name]
        self.ctx_buf[f.offset:f.offset + f.size] = (value & ((1 << (8 * f.size)) - 1)).to_bytes(f.size, "little")

    def packet(self) -> bytes:
        return bytes(self.buf[self.data:self.data + self.len])

    def close(self) -> None:
        self.space.remove(self.region)
        self.space.remove(self.ctx_region)


@dataclass(slots=True)
class RunEnv:
    """What the helpers of one run see as ``ctx.env``."""

    kernel: Kernel
    prog: Program | None
    cpu: int = 0
    xdp: XdpState | None = None
    skb: SkbState | None = None
    ri: RedirectInfo = field(default_factory=RedirectInfo)
    trace: list[str] = field(default_factory=list)
    perf_output: list[tuple[int, bytes]] = field(default_factory=list)
    locked: list[int] = field(default_factory=list)
    user: Any = None
    """Application data for application-defined program types."""
    skb_hash_valid: bool = False
    """``skb->sw_hash``/``l4_hash``: ``skb->hash`` holds a computed flow hash (``bpf_get_hash_recalc``)."""
    skb_ip_summed: int = 0
    """``skb->ip_summed``: CHECKSUM_NONE (0) in test runs, as ``bpf_prog_test_run_skb`` builds the skb."""
    skb_csum: int = 0
    """``skb->csum`` (meaningful with CHECKSUM_COMPLETE, 2)."""

    @property
    def prog_type(self) -> int:
        """The running program's type (helpers whose behaviour depends on it, e.g. ``bpf_redirect``)."""
        return int(self.prog.image.prog_type) if self.prog is not None else 0
