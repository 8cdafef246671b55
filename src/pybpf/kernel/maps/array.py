"""ARRAY and PERCPU_ARRAY (kernel/bpf/arraymap.c).

Storage: after the header, ``max_entries`` values of ``elem_size = round_up(value_size, 8)`` bytes
starting at ``data_off`` (a 64-byte aligned offset). A per-CPU array stores, for each index, the
copies of all CPUs one after the other: index ``i``, CPU ``c`` at
``data_off + (i * ncpus + c) * elem_size``.

The verifier inlines ``bpf_map_lookup_elem`` on a plain array (``gen_lookup``): add ``data_off`` to
the map pointer, bounds-check the index, scale by the element size (shift when it is a power of
two), add — the kernel's ``array_map_gen_lookup`` with our value-area offset instead of its 312.
"""

from __future__ import annotations

import errno

from pybpf import uapi
from pybpf.errors import ENOTSUPP, BpfError
from pybpf.isa import Insn
from pybpf.kernel.maps.base import (
    ANY,
    EXIST,
    F_ACCESS_MASK,
    F_LOCK,
    F_NUMA_NODE,
    HEADER_SIZE,
    NOEXIST,
    NUMA_NO_NODE,
    PCPU_MIN_UNIT_SIZE,
    Map,
    MapAttrs,
    access_flags_ok,
    round_up,
)
from pybpf.uapi import MapType

__all__ = ["ArrayMap", "PercpuArrayMap", "array_alloc_check"]

ARRAY_CREATE_FLAG_MASK = (F_NUMA_NODE | uapi.BPF_F_MMAPABLE | F_ACCESS_MASK | uapi.BPF_F_PRESERVE_ELEMS
                          | uapi.BPF_F_INNER_MAP)
INT_MAX = 0x7FFFFFFF
DATA_ALIGN = 64


def array_alloc_check(a: MapAttrs) -> None:
    """``array_map_alloc_check`` (+ ``array_map_alloc``'s size checks)."""
    percpu = a.map_type == MapType.PERCPU_ARRAY
    if (a.max_entries == 0 or a.key_size != 4 or a.value_size == 0
            or a.map_flags & ~ARRAY_CREATE_FLAG_MASK or not access_flags_ok(a.map_flags)
            or (percpu and a.numa_node != NUMA_NO_NODE)):
        raise BpfError(errno.EINVAL)
    if a.map_type != MapType.ARRAY and a.map_flags & (uapi.BPF_F_MMAPABLE | uapi.BPF_F_INNER_MAP):
        raise BpfError(errno.EINVAL)
    if a.map_type != MapType.PERF_EVENT_ARRAY and a.map_flags & uapi.BPF_F_PRESERVE_ELEMS:
        raise BpfError(errno.EINVAL)
    if a.value_size > INT_MAX:
        raise BpfError(errno.E2BIG)
    if percpu and round_up(a.value_size, 8) > PCPU_MIN_UNIT_SIZE:
        raise BpfError(errno.E2BIG)
    # the kernel allocates max_entries * elem_size bytes (vmalloc): refuse absurd sizes as ENOMEM
    if a.max_entries * round_up(a.value_size, 8) > 1 << 34:
        raise BpfError(errno.ENOMEM)


class ArrayMap(Map):
    """BPF_MAP_TYPE_ARRAY."""

    map_types = (MapType.ARRAY,)
    has_lookup_batch = True
    has_update_batch = True

    @classmethod
    def alloc_check(cls, attrs: MapAttrs, kernel: object) -> None:
        array_alloc_check(attrs)

    @classmethod
    def layout(cls, a: MapAttrs, ncpus: int) -> tuple[int, int, int, int, int]:
        elem = round_up(a.value_size, 8)
        copies = ncpus if cls.percpu else 1
        data_off = round_up(HEADER_SIZE, DATA_ALIGN)
        total = data_off + a.max_entries * copies * elem
        return elem, 0, data_off, 0, total

    # -- MapLike -------------------------------------------------------------------------------
    def gen_lookup(self) -> list[Insn] | None:
        if self.map_flags & uapi.BPF_F_INNER_MAP:
            return None
        elem = self.elem_size
        out = [
            Insn(0x07, dst=1, imm=self.data_off),  # r1 += data_off
            Insn(0x61, dst=0, src=2, off=0),  # r0 = *(u32 *)(r2 + 0)
            Insn(0x35, dst=0, off=3, imm=self.max_entries),  # if r0 >= max_entries goto +3
        ]
        if elem & (elem - 1) == 0:
            out.append(Insn(0x67, dst=0, imm=elem.bit_length() - 1))  # r0 <<= log2(elem)
        else:
            out.append(Insn(0x27, dst=0, imm=elem))  # r0 *= elem
        out += [
            Insn(0x0F, dst=0, src=1),  # r0 += r1
            Insn(0x05, off=1),  # goto +1
            Insn(0xB7, dst=0, imm=0),  # r0 = 0
        ]
        return out

    @property
    def value_area_offset(self) -> int | None:
        return self.data_off

    def direct_value_addr(self, off: int) -> int:
        if self.max_entries != 1:
            raise BpfError(ENOTSUPP)
        if off >= self.value_size:
            raise BpfError(errno.EINVAL)
        return self.data_off + off

    # -- ops ----------------------------------------------------------------------------------
    def _index(self, key: bytes) -> int:
        return int.from_bytes(key[:4], "little")

    def value_offset(self, index: int, cpu: int = 0) -> int:
        if self.percpu:
            return self.data_off + (index * self.ncpus + cpu) * self.elem_size
        return self.data_off + index * self.elem_size

    def lookup_elem(self, key: bytes, *, from_prog: bool = True) -> int | None:
        i = self._index(key)
        if i >= self.max_entries:
            return None
        return self.value_offset(i, self.kernel.cpu if self.percpu else 0)

    def _update_index(self, key: bytes, flags: int) -> int:
        """``array_map_update_elem``'s checks: the index, or a negative errno."""
        if (flags & ~F_LOCK) > EXIST:
            return -errno.EINVAL
        i = self._index(key)
        if i >= self.max_entries:
            return -errno.E2BIG
        if flags & NOEXIST:
            return -errno.EEXIST
        return i

    def update_elem(self, key: bytes, value: bytes, flags: int, *, from_prog: bool = False) -> int:
        i = self._update_index(key, flags)
        if i < 0:
            return i
        err = self._check_lock_flag(flags)
        if err:
            return err
        self._copy_value_in(self.value_offset(i), value, bool(flags & F_LOCK))
        return 0

    def delete_elem(self, key: bytes) -> int:
        return -errno.EINVAL

    def get_next_key(self, key: bytes | None) -> bytes:
        index = self._index(key) if key is not None else 0xFFFFFFFF
        if index >= self.max_entries:
            return (0).to_bytes(4, "little")
        if index == self.max_entries - 1:
            raise BpfError(errno.ENOENT)
        return (index + 1).to_bytes(4, "little")

    def for_each_elem(self) -> list[tuple[bytes, int | None, int]]:
        cpu = self.kernel.cpu if self.percpu else 0
        return [(i.to_bytes(4, "little"), None, self.value_offset(i, cpu)) for i in range(self.max_entries)]


class PercpuArrayMap(ArrayMap):
    """BPF_MAP_TYPE_PERCPU_ARRAY: each index has one value per CPU."""

    map_types = (MapType.PERCPU_ARRAY,)
    percpu = True

    def gen_lookup(self) -> list[Insn] | None:
        return None  # the kernel's needs BPF_MOV64_PERCPU_REG (JIT per-CPU support)

    @property
    def value_area_offset(self) -> int | None:
        return None

    def direct_value_addr(self, off: int) -> int:
        raise BpfError(ENOTSUPP)

    def lookup_elem_sys(self, key: bytes, flags: int = 0) -> bytes:
        i = self._index(key)
        if i >= self.max_entries:
            raise BpfError(errno.ENOENT)
        start = self.value_offset(i, 0)
        return bytes(self.mem[start:start + self.elem_size * self.ncpus])

    def update_elem_sys(self, key: bytes, value: bytes, flags: int) -> None:
        if flags > EXIST:
            raise BpfError(errno.EINVAL)
        i = self._index(key)
        if i >= self.max_entries:
            raise BpfError(errno.E2BIG)
        if flags == NOEXIST:
            raise BpfError(errno.EEXIST)
        start = self.value_offset(i, 0)
        n = self.elem_size * self.ncpus
        self.mem[start:start + n] = value[:n].ljust(n, b"\0")

    def update_elem(self, key: bytes, value: bytes, flags: int, *, from_prog: bool = False) -> int:
        # the program path writes this CPU's copy only
        i = self._update_index(key, flags)
        if i < 0:
            return i
        if flags & F_LOCK:
            return -errno.EINVAL
        off = self.value_offset(i, self.kernel.cpu)
        self.mem[off:off + self.value_size] = value[:self.value_size]
        return 0


MAP_CLASSES = (ArrayMap, PercpuArrayMap)
_ = ANY
