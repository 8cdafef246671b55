"""QUEUE and STACK (kernel/bpf/queue_stack_maps.c): keyless FIFO / LIFO of values.

Storage: a ring of ``size = max_entries + 1`` value slots of ``round_up(value_size, 8)`` bytes at
``data_off``; ``head`` (next write) and ``tail`` (oldest) indices live in the header, as in the
kernel's ``struct bpf_queue_stack``; the map lock word serialises pushes and pops.
"""

from __future__ import annotations

import errno

from pybpf.errors import BpfError
from pybpf.kernel.maps.base import (
    EXIST,
    F_ACCESS_MASK,
    F_NUMA_NODE,
    HEADER_SIZE,
    KMALLOC_MAX_SIZE,
    NOEXIST,
    OFF_HEAD,
    OFF_TAIL,
    Map,
    MapAttrs,
    access_flags_ok,
    round_up,
)
from pybpf.uapi import MapType

__all__ = ["QueueMap", "StackMap"]

QUEUE_STACK_CREATE_FLAG_MASK = F_NUMA_NODE | F_ACCESS_MASK
U32_MAX = 0xFFFFFFFF


class _QueueStack(Map):
    has_keys = False

    @classmethod
    def alloc_check(cls, a: MapAttrs, kernel: object) -> None:
        if (a.max_entries == 0 or a.key_size != 0 or a.value_size == 0
                or a.map_flags & ~QUEUE_STACK_CREATE_FLAG_MASK or not access_flags_ok(a.map_flags)):
            raise BpfError(errno.EINVAL)
        if a.value_size > KMALLOC_MAX_SIZE:
            raise BpfError(errno.E2BIG)
        if a.max_entries >= U32_MAX // a.value_size:
            raise BpfError(errno.E2BIG)
        if (a.max_entries + 1) * round_up(a.value_size, 8) > 1 << 34:
            raise BpfError(errno.ENOMEM)

    @classmethod
    def layout(cls, a: MapAttrs, ncpus: int) -> tuple[int, int, int, int, int]:
        elem = round_up(a.value_size, 8)
        data_off = round_up(HEADER_SIZE, 64)
        size = a.max_entries + 1
        return elem, size, data_off, 0, data_off + elem * size

    @property
    def size(self) -> int:
        return self.n_buckets  # the ring size, max_entries + 1

    def _slot(self, i: int) -> int:
        return self.data_off + i * self.elem_size

    def _empty(self) -> bool:
        return self._u32(OFF_HEAD) == self._u32(OFF_TAIL)

    def _full(self) -> bool:
        head = self._u32(OFF_HEAD) + 1
        if head >= self.size:
            head = 0
        return head == self._u32(OFF_TAIL)

    def push_elem(self, value: bytes, flags: int) -> int:
        replace = bool(flags & EXIST)
        if flags & NOEXIST or flags > EXIST:
            return -errno.EINVAL
        self.lock()
        try:
            if self._full():
                if not replace:
                    return -errno.E2BIG
                tail = self._u32(OFF_TAIL) + 1
                self._set_u32(OFF_TAIL, 0 if tail >= self.size else tail)
            head = self._u32(OFF_HEAD)
            off = self._slot(head)
            self.mem[off:off + self.value_size] = value[:self.value_size]
            head += 1
            self._set_u32(OFF_HEAD, 0 if head >= self.size else head)
            return 0
        finally:
            self.unlock()

    def _get(self, delete: bool) -> tuple[int, bytes]:
        raise NotImplementedError

    def pop_elem(self) -> tuple[int, bytes]:
        return self._get(True)

    def peek_elem(self, value: bytes | None = None) -> tuple[int, bytes]:
        return self._get(False)

    # syscall side
    def lookup_elem_sys(self, key: bytes, flags: int = 0) -> bytes:
        err, value = self._get(False)
        if err:
            raise BpfError(-err)
        return value

    def update_elem_sys(self, key: bytes, value: bytes, flags: int) -> None:
        err = self.push_elem(value, flags)
        if err:
            raise BpfError(-err)

    def update_elem(self, key: bytes, value: bytes, flags: int, *, from_prog: bool = False) -> int:
        return -errno.EINVAL

    def lookup_and_delete_elem_sys(self, key: bytes, flags: int) -> bytes:
        if flags:
            raise BpfError(errno.EINVAL)
        err, value = self._get(True)
        if err:
            raise BpfError(-err)
        return value

    def get_next_key(self, key: bytes | None) -> bytes:
        raise BpfError(errno.EINVAL)

    def items(self) -> list[bytes]:
        """The values from the one a pop would return to the last (for dumps)."""
        out = []
        head, tail = self._u32(OFF_HEAD), self._u32(OFF_TAIL)
        i = tail
        while i != head:
            off = self._slot(i)
            out.append(bytes(self.mem[off:off + self.value_size]))
            i = 0 if i + 1 >= self.size else i + 1
        return out if isinstance(self, QueueMap) else out[::-1]


class QueueMap(_QueueStack):
    """BPF_MAP_TYPE_QUEUE: FIFO."""

    map_types = (MapType.QUEUE,)

    def _get(self, delete: bool) -> tuple[int, bytes]:
        self.lock()
        try:
            if self._empty():
                return -errno.ENOENT, bytes(self.value_size)
            tail = self._u32(OFF_TAIL)
            off = self._slot(tail)
            value = bytes(self.mem[off:off + self.value_size])
            if delete:
                tail += 1
                self._set_u32(OFF_TAIL, 0 if tail >= self.size else tail)
            return 0, value
        finally:
            self.unlock()


class StackMap(_QueueStack):
    """BPF_MAP_TYPE_STACK: LIFO."""

    map_types = (MapType.STACK,)

    def _get(self, delete: bool) -> tuple[int, bytes]:
        self.lock()
        try:
            if self._empty():
                return -errno.ENOENT, bytes(self.value_size)
            index = self._u32(OFF_HEAD) - 1
            if index < 0 or index >= self.size:
                index = self.size - 1
            off = self._slot(index)
            value = bytes(self.mem[off:off + self.value_size])
            if delete:
                self._set_u32(OFF_HEAD, index)
            return 0, value
        finally:
            self.unlock()


MAP_CLASSES = (QueueMap, StackMap)
