"""RINGBUF (kernel/bpf/ringbuf.c): a multi-producer, single-consumer byte ring of records.

Storage: ``max_entries`` bytes (a power of two, page aligned) of ring data at ``data_off`` (page
aligned); ``consumer_pos``, ``producer_pos`` and ``pending_pos`` are u64 words in the header (offsets
168, 176, 184). Each record starts with the kernel's 8-byte header: ``u32 len`` (bit 31 busy, bit
30 discarded) and ``u32 pg_off`` (here: the record's offset in the data area).

The kernel maps the data pages twice back to back, so a record may wrap around the end and still be
contiguous. A file mapping cannot do that portably, so a record that would cross the end is
preceded by a *discarded* filler record up to the end of the ring: consumers skip discarded records
as they must anyway, and every record the program sees is contiguous.
"""

from __future__ import annotations

import errno
import struct

from pybpf.errors import BpfError
from pybpf.kernel import native
from pybpf.kernel.maps.base import F_NUMA_NODE, HEADER_SIZE, OFF, Map, MapAttrs, round_up
from pybpf.kernel.native import PAGE_SIZE
from pybpf.uapi import MapType

__all__ = ["RingbufMap"]

BUSY_BIT = 1 << 31
DISCARD_BIT = 1 << 30
HDR_SZ = 8
RINGBUF_MAX_RECORD_SZ = 0xFFFFFFFF // 4
OFF_CONS = OFF["consumer_pos"]
OFF_PROD = OFF["producer_pos"]
OFF_PEND = OFF["pending_pos"]
RB_NO_WAKEUP, RB_FORCE_WAKEUP = 1, 2
RB_AVAIL_DATA, RB_RING_SIZE, RB_CONS_POS, RB_PROD_POS = 0, 1, 2, 3


class RingbufMap(Map):
    """BPF_MAP_TYPE_RINGBUF."""

    map_types = (MapType.RINGBUF,)
    has_keys = False

    @classmethod
    def alloc_check(cls, a: MapAttrs, kernel: object) -> None:
        if a.map_flags & ~F_NUMA_NODE:
            raise BpfError(errno.EINVAL)
        n = a.max_entries
        if a.key_size or a.value_size or n == 0 or n & (n - 1) or n % PAGE_SIZE:
            raise BpfError(errno.EINVAL)
        if n > 1 << 32:
            raise BpfError(errno.E2BIG)

    @classmethod
    def layout(cls, a: MapAttrs, ncpus: int) -> tuple[int, int, int, int, int]:
        data_off = round_up(HEADER_SIZE, PAGE_SIZE)
        return 0, 0, data_off, 0, data_off + a.max_entries

    @property
    def mask(self) -> int:
        return self.max_entries - 1

    # -- producer (program side) -------------------------------------------------------------------
    def reserve(self, size: int) -> int | None:
        """``__bpf_ringbuf_reserve``: storage offset of the sample area, or None."""
        if size > RINGBUF_MAX_RECORD_SZ:
            return None
        length = round_up(size + HDR_SZ, 8)
        if length > self.max_entries:
            return None
        self.lock()
        try:
            cons = self._u64(OFF_CONS)
            pend = self._u64(OFF_PEND)
            prod = self._u64(OFF_PROD)
            while prod - pend > 0:
                hdr = self.data_off + (pend & self.mask)
                hl = self._u32(hdr)
                if hl & BUSY_BIT:
                    break
                pend += round_up((hl & ~DISCARD_BIT) + HDR_SZ, 8)
            self._set_u64(OFF_PEND, pend)
            pos = prod & self.mask
            filler = 0
            if pos + length > self.max_entries:
                filler = self.max_entries - pos
            new_prod = prod + filler + length
            if new_prod - cons > self.mask or new_prod - pend > self.mask:
                return None
            if filler:
                hdr = self.data_off + pos
                struct.pack_into("<II", self.mem, hdr, (filler - HDR_SZ) | DISCARD_BIT, pos)
                prod += filler
                pos = 0
            hdr = self.data_off + pos
            struct.pack_into("<II", self.mem, hdr, size | BUSY_BIT, pos)
            self._set_u64(OFF_PROD, new_prod)
            return hdr + HDR_SZ
        finally:
            self.unlock()

    def commit(self, sample_off: int, discard: bool) -> None:
        """``bpf_ringbuf_commit``: clear the busy bit (set discard), atomically."""
        hdr = sample_off - HDR_SZ
        addr = self.base + hdr
        while True:
            old = self._u32(hdr)
            new = old ^ BUSY_BIT if old & BUSY_BIT else old
            if discard:
                new |= DISCARD_BIT
            if native.atomic_cmpxchg32(addr, old, new) == old:
                return

    def output(self, data: bytes, flags: int) -> int:
        """``bpf_ringbuf_output``."""
        if flags & ~(RB_NO_WAKEUP | RB_FORCE_WAKEUP):
            return -errno.EINVAL
        off = self.reserve(len(data))
        if off is None:
            return -errno.EAGAIN
        self.mem[off:off + len(data)] = data
        self.commit(off, False)
        return 0

    def query(self, flags: int) -> int:
        """``bpf_ringbuf_query``."""
        cons, prod = self._u64(OFF_CONS), self._u64(OFF_PROD)
        if flags == RB_AVAIL_DATA:
            return prod - cons
        if flags == RB_RING_SIZE:
            return self.max_entries
        if flags == RB_CONS_POS:
            return cons
        if flags == RB_PROD_POS:
            return prod
        return 0

    # -- consumer (user side) ---------------------------------------------------------------------
    def consume(self, limit: int | None = None) -> list[bytes]:
        """Read committed samples in order (libbpf's ``ring_buffer__consume``), skipping discarded
        ones; stops at a record still being written."""
        out: list[bytes] = []
        cons = self._u64(OFF_CONS)
        prod = self._u64(OFF_PROD)
        while cons < prod and (limit is None or len(out) < limit):
            hdr = self.data_off + (cons & self.mask)
            hl = self._u32(hdr)
            if hl & BUSY_BIT:
                break
            n = hl & ~DISCARD_BIT
            if not hl & DISCARD_BIT:
                out.append(bytes(self.mem[hdr + HDR_SZ:hdr + HDR_SZ + n]))
            cons += round_up(n + HDR_SZ, 8)
            self._set_u64(OFF_CONS, cons)
        return out

    def lookup_elem_sys(self, key: bytes, flags: int = 0) -> bytes:
        raise BpfError(524)

    def get_next_key(self, key: bytes | None) -> bytes:
        raise BpfError(524)


MAP_CLASSES = (RingbufMap,)
