"""BLOOM_FILTER (kernel/bpf/bloom_filter.c): push values, peek says "maybe present" or ENOENT.

Storage: a bitset of ``bitset_mask + 1`` bits at ``data_off`` (``n_buckets`` holds the mask, as the
bit count minus one), sized as the kernel sizes it: ``max_entries * nr_hash_funcs / ln 2``
approximated by ``* 7 / 5``, rounded up to a power of two (at least 64 bits). Hash function ``i`` is
:func:`~pybpf.kernel.maps.base.key_hash` of the value with seed ``seed + i`` (the kernel uses jhash;
the bits differ, the semantics do not).
"""

from __future__ import annotations

import errno

from pybpf import uapi
from pybpf.errors import BpfError
from pybpf.kernel import native
from pybpf.kernel.maps.base import (
    ANY,
    F_ACCESS_MASK,
    F_NUMA_NODE,
    HEADER_SIZE,
    KMALLOC_MAX_SIZE,
    Map,
    MapAttrs,
    access_flags_ok,
    key_hash,
    round_up,
    roundup_pow_of_two,
)
from pybpf.uapi import MapType

__all__ = ["BloomFilterMap"]

BLOOM_CREATE_FLAG_MASK = F_NUMA_NODE | uapi.BPF_F_ZERO_SEED | F_ACCESS_MASK


def _bitset_mask(max_entries: int, nr_hash: int) -> int:
    nr_bits = max_entries * nr_hash
    if nr_bits > 0xFFFFFFFF:
        return 0xFFFFFFFF
    nr_bits = nr_bits // 5 * 7
    if nr_bits > 0xFFFFFFFF or nr_bits > 1 << 31:
        return 0xFFFFFFFF
    nr_bits = 64 if nr_bits <= 64 else roundup_pow_of_two(nr_bits)
    return nr_bits - 1


class BloomFilterMap(Map):
    """BPF_MAP_TYPE_BLOOM_FILTER."""

    map_types = (MapType.BLOOM_FILTER,)
    has_keys = False

    @classmethod
    def alloc_check(cls, a: MapAttrs, kernel: object) -> None:
        if a.value_size > KMALLOC_MAX_SIZE:
            raise BpfError(errno.E2BIG)
        if (a.key_size != 0 or a.value_size == 0 or a.max_entries == 0
                or a.map_flags & ~BLOOM_CREATE_FLAG_MASK or not access_flags_ok(a.map_flags)
                or a.map_extra & ~0xF):
            raise BpfError(errno.EINVAL)
        if (_bitset_mask(a.max_entries, a.map_extra or 5) + 1) // 8 > 1 << 31:
            raise BpfError(errno.ENOMEM)

    @classmethod
    def layout(cls, a: MapAttrs, ncpus: int) -> tuple[int, int, int, int, int]:
        mask = _bitset_mask(a.max_entries, a.map_extra & 0xF or 5)
        data_off = round_up(HEADER_SIZE, 64)
        nbytes = round_up((mask + 1 + 7) // 8, 8)
        return 0, mask, data_off, 0, data_off + nbytes

    @property
    def nr_hash_funcs(self) -> int:
        return self.map_extra & 0xF or 5

    def _bits(self, value: bytes) -> list[int]:
        v = bytes(value[:self.value_size])
        return [key_hash(v, (self.seed + i) & 0xFFFFFFFF) & self.n_buckets for i in range(self.nr_hash_funcs)]

    def push_elem(self, value: bytes, flags: int) -> int:
        if flags != ANY:
            return -errno.EINVAL
        for h in self._bits(value):
            off = self.data_off + (h // 64) * 8
            # set_bit is atomic in the kernel: a lock-free OR via cmpxchg
            addr = self.base + off
            while True:
                old = self._u64(off)
                new = old | (1 << (h % 64))
                if old == new or native.atomic_cmpxchg64(addr, old, new) == old:
                    break
        return 0

    def peek_elem(self, value: bytes | None = None) -> tuple[int, bytes]:
        assert value is not None
        for h in self._bits(value):
            off = self.data_off + (h // 64) * 8
            if not self._u64(off) >> (h % 64) & 1:
                return -errno.ENOENT, b""
        return 0, b""

    def lookup_elem_sys(self, key: bytes, flags: int = 0) -> bytes:
        raise BpfError(errno.EINVAL)

    def peek_elem_sys(self, value: bytes | None = None) -> bytes:
        err, _ = self.peek_elem(value)
        if err:
            raise BpfError(-err)
        return b""

    def update_elem(self, key: bytes, value: bytes, flags: int, *, from_prog: bool = False) -> int:
        return -errno.EINVAL

    def update_elem_sys(self, key: bytes, value: bytes, flags: int) -> None:
        err = self.push_elem(value, flags)
        if err:
            raise BpfError(-err)

    def delete_elem(self, key: bytes) -> int:
        return -errno.EOPNOTSUPP

    def pop_elem(self) -> tuple[int, bytes]:
        return -errno.EOPNOTSUPP, b""

    def get_next_key(self, key: bytes | None) -> bytes:
        raise BpfError(errno.EOPNOTSUPP)


MAP_CLASSES = (BloomFilterMap,)
