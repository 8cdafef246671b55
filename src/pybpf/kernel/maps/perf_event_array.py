"""PERF_EVENT_ARRAY: where ``bpf_perf_event_output`` sends samples.

In Linux each slot holds a perf event (an fd from ``perf_event_open`` on update) whose ring buffer
user space reads. pybpf keeps a sample ring per slot inside the map's storage, so samples are
shared like every map: slot ``i`` has ``PERF_RING_SIZE`` bytes at ``data_off + i * elem_size``
preceded by a 32-byte slot header ``{u64 head, u64 tail, u32 enabled, u32 lost}``; a sample is
``u32 size, u32 reserved, data`` padded to 8 bytes. A slot receives samples once it is enabled —
by updating it with a perf event fd (the syscall checks that the fd is one) or from Python with
:meth:`PerfEventArrayMap.enable` — and empty slots make the helper return -ENOENT, as in Linux.
"""

from __future__ import annotations

import errno
import os
import struct

from pybpf.errors import BpfError
from pybpf.kernel.maps.array import ArrayMap
from pybpf.kernel.maps.base import ANY, F_RDONLY_PROG, F_WRONLY_PROG, HEADER_SIZE, MapAttrs, round_up
from pybpf.kernel.maps.fd_array import fd_array_alloc_check
from pybpf.uapi import MapType

__all__ = ["PERF_RING_SIZE", "PerfEventArrayMap"]

PERF_RING_SIZE = 1 << 16
SLOT_HEADER = 32
_SLOT = struct.Struct("<QQII")


class PerfEventArrayMap(ArrayMap):
    """BPF_MAP_TYPE_PERF_EVENT_ARRAY."""

    map_types = (MapType.PERF_EVENT_ARRAY,)
    is_fd_map = True
    has_lookup_batch = False
    has_update_batch = False

    @classmethod
    def alloc_check(cls, attrs: MapAttrs, kernel: object) -> None:
        fd_array_alloc_check(attrs)
        if attrs.max_entries > 4096:
            raise BpfError(errno.ENOMEM, "pybpf keeps a 64 KiB sample ring per slot: at most 4096 slots")

    @classmethod
    def layout(cls, a: MapAttrs, ncpus: int) -> tuple[int, int, int, int, int]:
        elem = SLOT_HEADER + PERF_RING_SIZE
        data_off = round_up(HEADER_SIZE, 64)
        return elem, 0, data_off, 0, data_off + elem * a.max_entries

    def gen_lookup(self, insn_buf: object = None) -> None:
        return None

    @property
    def value_area_offset(self) -> None:
        return None

    def _slot(self, i: int) -> int:
        return self.data_off + i * self.elem_size

    def enabled(self, i: int) -> bool:
        return bool(self._u32(self._slot(i) + 16))

    def enable(self, index: int | None = None) -> None:
        """Start receiving samples in slot ``index`` (all slots when None)."""
        for i in range(self.max_entries) if index is None else [index]:
            self._set_u32(self._slot(i) + 16, 1)

    def lookup_elem_sys(self, key: bytes, flags: int = 0) -> bytes:
        raise BpfError(524)  # perf_event_fd_array has no map_fd_sys_lookup_elem: ENOTSUPP

    def update_elem_sys(self, key: bytes, value: bytes, flags: int) -> None:
        if flags != ANY:
            raise BpfError(errno.EINVAL)
        i = int.from_bytes(key[:4], "little")
        if i >= self.max_entries:
            raise BpfError(errno.E2BIG)
        fd = int.from_bytes(value[:4], "little")
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            raise BpfError(errno.EBADF) from None
        if target != "anon_inode:[perf_event]":
            raise BpfError(errno.EBADF)
        self.enable(i)

    def delete_elem(self, key: bytes) -> int:
        i = int.from_bytes(key[:4], "little")
        if i >= self.max_entries:
            return -errno.E2BIG
        if not self.enabled(i):
            return -errno.ENOENT
        self._set_u32(self._slot(i) + 16, 0)
        return 0

    def output(self, index: int, data: bytes) -> int:
        """``__bpf_perf_event_output`` for slot ``index``: 0, -E2BIG or -ENOENT."""
        if index >= self.max_entries:
            return -errno.E2BIG
        s = self._slot(index)
        if not self._u32(s + 16):
            return -errno.ENOENT
        need = 8 + round_up(len(data), 8)
        self.lock()
        try:
            head, tail, _enabled, lost = _SLOT.unpack_from(self.mem, s)
            if head - tail + need > PERF_RING_SIZE or need > PERF_RING_SIZE:
                struct.pack_into("<I", self.mem, s + 20, lost + 1)
                return 0  # perf drops the sample and counts it, the helper still succeeds
            ring = s + SLOT_HEADER
            rec = struct.pack("<II", len(data), 0) + data.ljust(need - 8, b"\0")
            pos = head % PERF_RING_SIZE
            first = min(len(rec), PERF_RING_SIZE - pos)
            self.mem[ring + pos:ring + pos + first] = rec[:first]
            if first < len(rec):
                self.mem[ring:ring + len(rec) - first] = rec[first:]
            struct.pack_into("<Q", self.mem, s, head + need)
            return 0
        finally:
            self.unlock()

    def read(self, index: int) -> list[bytes]:
        """Consume the samples of slot ``index`` (oldest first)."""
        s = self._slot(index)
        out: list[bytes] = []
        self.lock()
        try:
            head, tail, _e, _l = _SLOT.unpack_from(self.mem, s)
            ring = s + SLOT_HEADER
            while tail < head:
                pos = tail % PERF_RING_SIZE
                raw = self._ring_bytes(ring, pos, 8)
                size = int.from_bytes(raw[:4], "little")
                out.append(self._ring_bytes(ring, (pos + 8) % PERF_RING_SIZE, size))
                tail += 8 + round_up(size, 8)
            struct.pack_into("<Q", self.mem, s + 8, tail)
        finally:
            self.unlock()
        return out

    def lost(self, index: int) -> int:
        return self._u32(self._slot(index) + 20)

    def _ring_bytes(self, ring: int, pos: int, n: int) -> bytes:
        first = min(n, PERF_RING_SIZE - pos)
        data = bytes(self.mem[ring + pos:ring + pos + first])
        if first < n:
            data += bytes(self.mem[ring:ring + n - first])
        return data


MAP_CLASSES = (PerfEventArrayMap,)
_ = (F_RDONLY_PROG, F_WRONLY_PROG)
