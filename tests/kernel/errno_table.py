"""The errno table: bpf(2) calls that fail (or succeed) in a specific way, each written once and run
against any "side" — pybpf's ``sys_bpf`` or the live kernel's — through the same ``union bpf_attr``.

Each case returns the raw result of its last call (``-errno`` or a non-negative value). ``expect`` is
what Linux 6.12 returns (read from its sources and confirmed on the live kernel); a case whose live
answer differs on the running kernel for a documented reason carries ``live`` with that answer.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pybpf import uapi
from pybpf.kernel import Kernel
from pybpf.kernel.attr import BpfAttr, BpfMapInfo, addr_of
from pybpf.kernel.syscall import live_bpf, sys_bpf
from pybpf.uapi import BpfCmd, MapType

ENOTSUPP = 524
Cmd = BpfCmd
MT = MapType
F_NO_PREALLOC, F_NO_COMMON_LRU, F_RDONLY, F_WRONLY, F_MMAPABLE, F_LOCK = 1, 2, 8, 16, 1024, 4


class Side:
    """One bpf(2) implementation plus the bookkeeping a case needs (fds to close, pins to remove)."""

    def __init__(self, name: str, call: Callable[..., int], close: Callable[[int], None]) -> None:
        self.name = name
        self._call = call
        self._close = close
        self.fds: list[int] = []
        self.pins: list[str] = []
        self.keep: list[object] = []  # ctypes buffers that must outlive the call

    def bpf(self, cmd: int, attr: BpfAttr | None, size: int | None = None) -> int:
        return self._call(cmd, attr, size)

    def map(self, map_type: int, key_size: int, value_size: int, max_entries: int, flags: int = 0,
            *, inner_fd: int = 0, extra: int = 0, name: bytes = b"") -> int:
        a = BpfAttr()
        m = a.map_create
        m.map_type, m.key_size, m.value_size, m.max_entries, m.map_flags = (
            map_type, key_size, value_size, max_entries, flags)
        m.inner_map_fd = inner_fd
        m.map_extra = extra
        m.map_name = name
        fd = self.bpf(Cmd.MAP_CREATE, a)
        assert fd >= 0, f"{self.name}: map create failed: {fd}"
        self.fds.append(fd)
        return fd

    def elem(self, cmd: int, fd: int, key: bytes | None, value: bytes | None = None, flags: int = 0,
             *, value_len: int = 64) -> int:
        a = BpfAttr()
        a.elem.map_fd = fd
        if key is not None:
            kb = ctypes.create_string_buffer(key, len(key))
            self.keep.append(kb)
            a.elem.key = addr_of(kb)
        vb = ctypes.create_string_buffer(value, len(value)) if value is not None else \
            ctypes.create_string_buffer(value_len)
        self.keep.append(vb)
        a.elem.value = addr_of(vb)
        a.elem.flags = flags
        return self.bpf(cmd, a)

    def update(self, fd: int, key: bytes | None, value: bytes, flags: int = 0) -> int:
        return self.elem(Cmd.MAP_UPDATE_ELEM, fd, key, value, flags)

    def lookup(self, fd: int, key: bytes | None, flags: int = 0) -> int:
        return self.elem(Cmd.MAP_LOOKUP_ELEM, fd, key, None, flags)

    def delete(self, fd: int, key: bytes | None) -> int:
        a = BpfAttr()
        a.elem.map_fd = fd
        if key is not None:
            kb = ctypes.create_string_buffer(key, len(key))
            self.keep.append(kb)
            a.elem.key = addr_of(kb)
        return self.bpf(Cmd.MAP_DELETE_ELEM, a)

    def obj(self, cmd: int, path: str, fd: int = 0, flags: int = 0) -> int:
        a = BpfAttr()
        pb = ctypes.create_string_buffer(path.encode())
        self.keep.append(pb)
        a.obj.pathname = addr_of(pb)
        a.obj.bpf_fd = fd
        a.obj.file_flags = flags
        return self.bpf(cmd, a)

    def cleanup(self) -> None:
        for fd in self.fds:
            with contextlib.suppress(OSError):
                self._close(fd)
        self.fds.clear()
        self.keep.clear()


def u32(v: int) -> bytes:
    return v.to_bytes(4, "little")


@dataclass(frozen=True)
class Case:
    name: str
    run: Callable[[Side], int]
    expect: int  # 0 = success (any non-negative result), else the positive errno
    live: int | None = field(default=None)  # the running kernel's answer where it differs from 6.12


CASES: list[Case] = []


def case(expect: int, live: int | None = None) -> Callable[[Callable[[Side], int]], Callable[[Side], int]]:
    def deco(fn: Callable[[Side], int]) -> Callable[[Side], int]:
        CASES.append(Case(fn.__name__, fn, expect, live))
        return fn

    return deco


def _create(s: Side, map_type: int, key_size: int, value_size: int, max_entries: int, flags: int = 0,
            **kw: object) -> int:
    a = BpfAttr()
    m = a.map_create
    m.map_type, m.key_size, m.value_size, m.max_entries, m.map_flags = (
        map_type, key_size, value_size, max_entries, flags)
    for k, v in kw.items():
        setattr(m, k, v)
    fd = s.bpf(Cmd.MAP_CREATE, a)
    if fd >= 0:
        s.fds.append(fd)
    return fd


# -- MAP_CREATE ------------------------------------------------------------------------------------

@case(errno.EINVAL)
def create_array_key_size_8(s: Side) -> int:
    return _create(s, MT.ARRAY, 8, 4, 1)


@case(errno.EINVAL)
def create_array_value_size_0(s: Side) -> int:
    return _create(s, MT.ARRAY, 4, 0, 1)


@case(errno.EINVAL)
def create_array_max_entries_0(s: Side) -> int:
    return _create(s, MT.ARRAY, 4, 4, 0)


@case(errno.EINVAL)
def create_unknown_type(s: Side) -> int:
    return _create(s, 999, 4, 4, 1)


@case(errno.EINVAL)
def create_hash_key_size_0(s: Side) -> int:
    return _create(s, MT.HASH, 0, 4, 1)


@case(errno.EINVAL)
def create_hash_mmapable(s: Side) -> int:
    return _create(s, MT.HASH, 4, 4, 1, F_MMAPABLE)


@case(ENOTSUPP)
def create_lru_no_prealloc(s: Side) -> int:
    return _create(s, MT.LRU_HASH, 4, 4, 8, F_NO_PREALLOC)


@case(errno.EINVAL)
def create_hash_no_common_lru(s: Side) -> int:
    return _create(s, MT.HASH, 4, 4, 8, F_NO_COMMON_LRU)


@case(0)
def create_lru_percpu_hash(s: Side) -> int:
    return _create(s, MT.LRU_PERCPU_HASH, 4, 4, 8, F_NO_COMMON_LRU)


@case(errno.EINVAL)
def create_lpm_needs_no_prealloc(s: Side) -> int:
    return _create(s, MT.LPM_TRIE, 8, 4, 8)


@case(errno.EINVAL)
def create_lpm_key_too_small(s: Side) -> int:
    return _create(s, MT.LPM_TRIE, 4, 4, 8, F_NO_PREALLOC)


@case(0)
def create_lpm(s: Side) -> int:
    return _create(s, MT.LPM_TRIE, 8, 4, 8, F_NO_PREALLOC)


@case(errno.EINVAL)
def create_queue_with_key(s: Side) -> int:
    return _create(s, MT.QUEUE, 4, 4, 8)


@case(errno.EINVAL)
def create_ringbuf_not_pow2(s: Side) -> int:
    return _create(s, MT.RINGBUF, 0, 0, 4096 * 3)


@case(errno.EINVAL)
def create_ringbuf_with_value(s: Side) -> int:
    return _create(s, MT.RINGBUF, 0, 4, 4096)


@case(0)
def create_ringbuf(s: Side) -> int:
    return _create(s, MT.RINGBUF, 0, 0, 4096)


@case(errno.EINVAL)
def create_bloom_bad_extra(s: Side) -> int:
    return _create(s, MT.BLOOM_FILTER, 0, 4, 8, map_extra=16)


@case(errno.EINVAL)
def create_hash_with_map_extra(s: Side) -> int:
    return _create(s, MT.HASH, 4, 4, 8, map_extra=1)


@case(errno.EINVAL)
def create_bad_name_char(s: Side) -> int:
    return _create(s, MT.ARRAY, 4, 4, 1, map_name=b"bad-name")


@case(errno.EINVAL)
def create_name_not_terminated(s: Side) -> int:
    return _create(s, MT.ARRAY, 4, 4, 1, map_name=b"a" * 16)


@case(0)
def create_good_name(s: Side) -> int:
    return _create(s, MT.ARRAY, 4, 4, 1, map_name=b"ok_name.1")


@case(errno.EINVAL)
def create_rdonly_and_wronly(s: Side) -> int:
    return _create(s, MT.ARRAY, 4, 4, 1, F_RDONLY | F_WRONLY)


@case(errno.EINVAL)
def create_check_attr_tail(s: Side) -> int:
    a = BpfAttr()
    a.map_create.map_type, a.map_create.key_size, a.map_create.value_size = MT.ARRAY, 4, 4
    a.map_create.max_entries = 1
    a.raw[100] = 1
    return s.bpf(Cmd.MAP_CREATE, a)


@case(errno.E2BIG)
def create_size_tail_nonzero(s: Side) -> int:
    buf = (ctypes.c_uint8 * 200)()
    a = BpfAttr.from_buffer(buf)
    a.map_create.map_type, a.map_create.key_size, a.map_create.value_size = MT.ARRAY, 4, 4
    a.map_create.max_entries = 1
    buf[180] = 1
    s.keep.append(buf)
    return s.bpf(Cmd.MAP_CREATE, buf, 200)


@case(0)
def create_size_tail_zero(s: Side) -> int:
    buf = (ctypes.c_uint8 * 200)()
    a = BpfAttr.from_buffer(buf)
    a.map_create.map_type, a.map_create.key_size, a.map_create.value_size = MT.ARRAY, 4, 4
    a.map_create.max_entries = 1
    s.keep.append(buf)
    fd = s.bpf(Cmd.MAP_CREATE, buf, 200)
    if fd >= 0:
        s.fds.append(fd)
    return fd


@case(errno.EBADF)
def create_array_of_maps_bad_inner(s: Side) -> int:
    return _create(s, MT.ARRAY_OF_MAPS, 4, 4, 1, inner_map_fd=9999)


@case(errno.EINVAL)
def create_array_of_maps_nested(s: Side) -> int:
    inner = s.map(MT.ARRAY, 4, 4, 1)
    outer = s.map(MT.ARRAY_OF_MAPS, 4, 4, 1, inner_fd=inner)
    return _create(s, MT.ARRAY_OF_MAPS, 4, 4, 1, inner_map_fd=outer)


@case(errno.EINVAL)
def create_array_of_maps_value_8(s: Side) -> int:
    inner = s.map(MT.ARRAY, 4, 4, 1)
    return _create(s, MT.ARRAY_OF_MAPS, 4, 8, 1, inner_map_fd=inner)


@case(errno.E2BIG)
def create_percpu_array_value_too_big(s: Side) -> int:
    return _create(s, MT.PERCPU_ARRAY, 4, 40000, 1)


@case(errno.EINVAL)
def create_prog_array_value_8(s: Side) -> int:
    return _create(s, MT.PROG_ARRAY, 4, 8, 4)


@case(errno.EINVAL)
def create_devmap_value_12(s: Side) -> int:
    return _create(s, MT.DEVMAP, 4, 12, 4)


@case(errno.EINVAL)
def create_devmap_rdonly_prog(s: Side) -> int:
    # devmaps take BPF_F_RDONLY/WRONLY but not the *_PROG access flags (found by the random test)
    return _create(s, MT.DEVMAP, 4, 4, 1, flags=uapi.BPF_F_RDONLY_PROG)


@case(errno.EINVAL)
def create_devmap_hash_wronly_prog(s: Side) -> int:
    return _create(s, MT.DEVMAP_HASH, 4, 4, 1, flags=uapi.BPF_F_WRONLY_PROG)


@case(0)
def create_devmap_rdonly(s: Side) -> int:
    return _create(s, MT.DEVMAP, 4, 4, 1, flags=uapi.BPF_F_RDONLY)


@case(errno.EINVAL)
def create_btf_key_without_value(s: Side) -> int:
    return _create(s, MT.HASH, 4, 4, 4, btf_key_type_id=1)


@case(errno.EBADF)
def create_btf_bad_fd(s: Side) -> int:
    return _create(s, MT.HASH, 4, 4, 4, btf_fd=9999, btf_key_type_id=1, btf_value_type_id=2)


@case(errno.EINVAL)
def create_hash_percpu_lru_flag_mask(s: Side) -> int:
    return _create(s, MT.HASH, 4, 4, 4, 1 << 20)


# -- LOOKUP ------------------------------------------------------------------------------------------

@case(errno.EBADF)
def lookup_bad_fd(s: Side) -> int:
    return s.lookup(9999, u32(0))


@case(errno.EINVAL)
def lookup_not_a_map(s: Side) -> int:
    fd = os.open("/dev/null", os.O_RDONLY)
    try:
        return s.lookup(fd, u32(0))
    finally:
        os.close(fd)


@case(errno.ENOENT)
def lookup_hash_missing(s: Side) -> int:
    fd = s.map(MT.HASH, 4, 4, 4)
    return s.lookup(fd, u32(1))


@case(errno.ENOENT)
def lookup_array_out_of_range(s: Side) -> int:
    fd = s.map(MT.ARRAY, 4, 4, 4)
    return s.lookup(fd, u32(4))


@case(0)
def lookup_array_ok(s: Side) -> int:
    fd = s.map(MT.ARRAY, 4, 4, 4)
    return s.lookup(fd, u32(3))


@case(errno.EINVAL)
def lookup_bad_flags(s: Side) -> int:
    fd = s.map(MT.ARRAY, 4, 4, 4)
    return s.lookup(fd, u32(0), 1)


@case(errno.EINVAL)
def lookup_lock_without_spin_lock(s: Side) -> int:
    fd = s.map(MT.ARRAY, 4, 4, 4)
    return s.lookup(fd, u32(0), F_LOCK)


@case(errno.EFAULT)
def lookup_null_key(s: Side) -> int:
    fd = s.map(MT.ARRAY, 4, 4, 4)
    return s.lookup(fd, None)


@case(errno.EINVAL)
def lookup_queue_with_key(s: Side) -> int:
    fd = s.map(MT.QUEUE, 0, 4, 4)
    return s.lookup(fd, u32(0))


@case(errno.ENOENT)
def lookup_queue_empty(s: Side) -> int:
    fd = s.map(MT.QUEUE, 0, 4, 4)
    return s.lookup(fd, None)


@case(errno.EPERM)
def lookup_wronly_map(s: Side) -> int:
    fd = s.map(MT.ARRAY, 4, 4, 4, F_WRONLY)
    return s.lookup(fd, u32(0))


@case(errno.EFAULT)
def lookup_bad_value_pointer(s: Side) -> int:
    fd = s.map(MT.ARRAY, 4, 4, 4)
    kb = ctypes.create_string_buffer(u32(0), 4)
    s.keep.append(kb)
    a = BpfAttr()
    a.elem.map_fd, a.elem.key, a.elem.value = fd, addr_of(kb), 16
    return s.bpf(Cmd.MAP_LOOKUP_ELEM, a)


@case(ENOTSUPP)
def lookup_ringbuf(s: Side) -> int:
    fd = s.map(MT.RINGBUF, 0, 0, 4096)
    return s.lookup(fd, None)


@case(errno.ENOENT)
def lookup_prog_array_empty(s: Side) -> int:
    fd = s.map(MT.PROG_ARRAY, 4, 4, 4)
    return s.lookup(fd, u32(0))


@case(errno.ENOENT)
def lookup_bloom_missing(s: Side) -> int:
    fd = s.map(MT.BLOOM_FILTER, 0, 4, 64)
    return s.elem(Cmd.MAP_LOOKUP_ELEM, fd, None, u32(77))


@case(0)
def lookup_bloom_present(s: Side) -> int:
    fd = s.map(MT.BLOOM_FILTER, 0, 4, 64)
    s.update(fd, None, u32(77))
    return s.elem(Cmd.MAP_LOOKUP_ELEM, fd, None, u32(77))


# -- UPDATE ------------------------------------------------------------------------------------------

@case(errno.EEXIST)
def update_array_noexist(s: Side) -> int:
    fd = s.map(MT.ARRAY, 4, 4, 4)
    return s.update(fd, u32(0), u32(1), 1)


@case(errno.E2BIG)
def update_array_out_of_range(s: Side) -> int:
    fd = s.map(MT.ARRAY, 4, 4, 4)
    return s.update(fd, u32(4), u32(1))


@case(errno.EINVAL)
def update_array_bad_flags(s: Side) -> int:
    fd = s.map(MT.ARRAY, 4, 4, 4)
    return s.update(fd, u32(0), u32(1), 3)


@case(errno.ENOENT)
def update_hash_exist_missing(s: Side) -> int:
    fd = s.map(MT.HASH, 4, 4, 4)
    return s.update(fd, u32(0), u32(1), 2)


@case(errno.EEXIST)
def update_hash_noexist_present(s: Side) -> int:
    fd = s.map(MT.HASH, 4, 4, 4)
    s.update(fd, u32(0), u32(1))
    return s.update(fd, u32(0), u32(2), 1)


@case(errno.E2BIG)
def update_hash_full(s: Side) -> int:
    fd = s.map(MT.HASH, 4, 4, 2)
    s.update(fd, u32(0), u32(1))
    s.update(fd, u32(1), u32(1))
    return s.update(fd, u32(2), u32(1))


@case(0)
def update_hash_full_replace(s: Side) -> int:
    fd = s.map(MT.HASH, 4, 4, 2)
    s.update(fd, u32(0), u32(1))
    s.update(fd, u32(1), u32(1))
    return s.update(fd, u32(1), u32(7))


@case(0)
def update_lru_full_evicts(s: Side) -> int:
    fd = s.map(MT.LRU_HASH, 4, 4, 2)
    for i in range(6):
        r = s.update(fd, u32(i), u32(i))
        if r:
            return r
    return s.lookup(fd, u32(5))


@case(errno.EPERM)
def update_frozen(s: Side) -> int:
    fd = s.map(MT.ARRAY, 4, 4, 4)
    a = BpfAttr()
    a.elem.map_fd = fd
    s.bpf(Cmd.MAP_FREEZE, a)
    return s.update(fd, u32(0), u32(1))


@case(errno.EPERM)
def update_rdonly_map(s: Side) -> int:
    fd = s.map(MT.ARRAY, 4, 4, 4, F_RDONLY)
    return s.update(fd, u32(0), u32(1))


@case(errno.EFAULT)
def update_bad_value_pointer(s: Side) -> int:
    fd = s.map(MT.ARRAY, 4, 4, 4)
    kb = ctypes.create_string_buffer(u32(0), 4)
    s.keep.append(kb)
    a = BpfAttr()
    a.elem.map_fd, a.elem.key, a.elem.value = fd, addr_of(kb), 8
    return s.bpf(Cmd.MAP_UPDATE_ELEM, a)


@case(errno.E2BIG)
def update_queue_full(s: Side) -> int:
    fd = s.map(MT.QUEUE, 0, 4, 2)
    s.update(fd, None, u32(1))
    s.update(fd, None, u32(2))
    return s.update(fd, None, u32(3))


@case(0)
def update_queue_full_exist_replaces(s: Side) -> int:
    fd = s.map(MT.QUEUE, 0, 4, 2)
    s.update(fd, None, u32(1))
    s.update(fd, None, u32(2))
    return s.update(fd, None, u32(3), 2)


@case(errno.EINVAL)
def update_queue_noexist(s: Side) -> int:
    fd = s.map(MT.QUEUE, 0, 4, 2)
    return s.update(fd, None, u32(1), 1)


@case(errno.ENOSPC)
def update_lpm_full(s: Side) -> int:
    fd = s.map(MT.LPM_TRIE, 8, 4, 1, F_NO_PREALLOC)
    s.update(fd, u32(32) + bytes([10, 0, 0, 1]), u32(1))
    return s.update(fd, u32(32) + bytes([10, 0, 0, 2]), u32(1))


@case(errno.EINVAL)
def update_lpm_prefix_too_long(s: Side) -> int:
    fd = s.map(MT.LPM_TRIE, 8, 4, 4, F_NO_PREALLOC)
    return s.update(fd, u32(33) + bytes([10, 0, 0, 1]), u32(1))


@case(errno.EINVAL)
def update_prog_array_with_map_fd(s: Side) -> int:
    fd = s.map(MT.PROG_ARRAY, 4, 4, 4)
    other = s.map(MT.ARRAY, 4, 4, 1)
    return s.update(fd, u32(0), u32(other))


@case(errno.EINVAL)
def update_prog_array_flags(s: Side) -> int:
    fd = s.map(MT.PROG_ARRAY, 4, 4, 4)
    return s.update(fd, u32(0), u32(0), 1)


@case(errno.EINVAL)
def update_devmap_bad_ifindex(s: Side) -> int:
    fd = s.map(MT.DEVMAP, 4, 4, 4)
    return s.update(fd, u32(0), u32(99999))


@case(0)
def update_devmap_lo(s: Side) -> int:
    fd = s.map(MT.DEVMAP, 4, 4, 4)
    return s.update(fd, u32(0), u32(1))


@case(errno.EINVAL)
def update_array_of_maps_mismatch(s: Side) -> int:
    inner = s.map(MT.ARRAY, 4, 4, 1)
    outer = s.map(MT.ARRAY_OF_MAPS, 4, 4, 2, inner_fd=inner)
    other = s.map(MT.ARRAY, 4, 8, 1)
    return s.update(outer, u32(0), u32(other))


@case(0)
def update_array_of_maps_ok(s: Side) -> int:
    inner = s.map(MT.ARRAY, 4, 4, 1)
    outer = s.map(MT.ARRAY_OF_MAPS, 4, 4, 2, inner_fd=inner)
    other = s.map(MT.ARRAY, 4, 4, 1)
    return s.update(outer, u32(1), u32(other))


@case(errno.EINVAL)
def update_bloom_flags(s: Side) -> int:
    fd = s.map(MT.BLOOM_FILTER, 0, 4, 64)
    return s.update(fd, None, u32(1), 2)


# -- DELETE ------------------------------------------------------------------------------------------

@case(errno.EINVAL)
def delete_array(s: Side) -> int:
    fd = s.map(MT.ARRAY, 4, 4, 4)
    return s.delete(fd, u32(0))


@case(errno.ENOENT)
def delete_hash_missing(s: Side) -> int:
    fd = s.map(MT.HASH, 4, 4, 4)
    return s.delete(fd, u32(0))


@case(0)
def delete_hash_present(s: Side) -> int:
    fd = s.map(MT.HASH, 4, 4, 4)
    s.update(fd, u32(0), u32(0))
    return s.delete(fd, u32(0))


@case(errno.EINVAL)
def delete_queue(s: Side) -> int:
    fd = s.map(MT.QUEUE, 0, 4, 4)
    return s.delete(fd, None)


@case(errno.EOPNOTSUPP)
def delete_bloom(s: Side) -> int:
    fd = s.map(MT.BLOOM_FILTER, 0, 4, 64)
    return s.delete(fd, None)


@case(errno.E2BIG)
def delete_prog_array_out_of_range(s: Side) -> int:
    fd = s.map(MT.PROG_ARRAY, 4, 4, 4)
    return s.delete(fd, u32(9))


@case(errno.ENOENT)
def delete_prog_array_empty(s: Side) -> int:
    fd = s.map(MT.PROG_ARRAY, 4, 4, 4)
    return s.delete(fd, u32(1))


@case(errno.ENOENT)
def delete_lpm_missing(s: Side) -> int:
    fd = s.map(MT.LPM_TRIE, 8, 4, 4, F_NO_PREALLOC)
    return s.delete(fd, u32(8) + bytes(4))


@case(errno.EPERM)
def delete_rdonly(s: Side) -> int:
    fd = s.map(MT.HASH, 4, 4, 4, F_RDONLY)
    return s.delete(fd, u32(0))


# -- GET_NEXT_KEY ----------------------------------------------------------------------------------

def _next(s: Side, fd: int, key: bytes | None, key_size: int = 4) -> int:
    a = BpfAttr()
    a.elem.map_fd = fd
    if key is not None:
        kb = ctypes.create_string_buffer(key, len(key))
        s.keep.append(kb)
        a.elem.key = addr_of(kb)
    nb = ctypes.create_string_buffer(max(key_size, 1))
    s.keep.append(nb)
    a.elem.value = addr_of(nb)
    return s.bpf(Cmd.MAP_GET_NEXT_KEY, a)


@case(errno.ENOENT)
def next_key_array_last(s: Side) -> int:
    fd = s.map(MT.ARRAY, 4, 4, 4)
    return _next(s, fd, u32(3))


@case(0)
def next_key_array_out_of_range_restarts(s: Side) -> int:
    fd = s.map(MT.ARRAY, 4, 4, 4)
    return _next(s, fd, u32(77))


@case(errno.ENOENT)
def next_key_hash_empty(s: Side) -> int:
    fd = s.map(MT.HASH, 4, 4, 4)
    return _next(s, fd, None)


@case(0)
def next_key_hash_missing_restarts(s: Side) -> int:
    fd = s.map(MT.HASH, 4, 4, 4)
    s.update(fd, u32(1), u32(1))
    return _next(s, fd, u32(42))


@case(errno.EINVAL)
def next_key_queue(s: Side) -> int:
    fd = s.map(MT.QUEUE, 0, 4, 4)
    return _next(s, fd, None, 0)


@case(errno.EOPNOTSUPP)
def next_key_bloom(s: Side) -> int:
    fd = s.map(MT.BLOOM_FILTER, 0, 4, 64)
    return _next(s, fd, None, 0)


@case(errno.ENOENT)
def next_key_lpm_empty(s: Side) -> int:
    fd = s.map(MT.LPM_TRIE, 8, 4, 4, F_NO_PREALLOC)
    return _next(s, fd, None, 8)


@case(errno.EFAULT)
def next_key_bad_out_pointer(s: Side) -> int:
    fd = s.map(MT.ARRAY, 4, 4, 4)
    a = BpfAttr()
    a.elem.map_fd, a.elem.value = fd, 8
    return s.bpf(Cmd.MAP_GET_NEXT_KEY, a)


# -- LOOKUP_AND_DELETE -----------------------------------------------------------------------------

@case(ENOTSUPP)
def lookup_and_delete_array(s: Side) -> int:
    fd = s.map(MT.ARRAY, 4, 4, 4)
    return s.elem(Cmd.MAP_LOOKUP_AND_DELETE_ELEM, fd, u32(0))


@case(errno.ENOENT)
def lookup_and_delete_hash_missing(s: Side) -> int:
    fd = s.map(MT.HASH, 4, 4, 4)
    return s.elem(Cmd.MAP_LOOKUP_AND_DELETE_ELEM, fd, u32(0))


@case(0)
def lookup_and_delete_hash(s: Side) -> int:
    fd = s.map(MT.HASH, 4, 4, 4)
    s.update(fd, u32(0), u32(5))
    r = s.elem(Cmd.MAP_LOOKUP_AND_DELETE_ELEM, fd, u32(0))
    return r if r else s.lookup(fd, u32(0)) + errno.ENOENT  # 0 when the element is gone


@case(errno.EINVAL)
def lookup_and_delete_queue_flags(s: Side) -> int:
    fd = s.map(MT.QUEUE, 0, 4, 4)
    return s.elem(Cmd.MAP_LOOKUP_AND_DELETE_ELEM, fd, None, None, F_LOCK)


@case(errno.ENOENT)
def lookup_and_delete_queue_empty(s: Side) -> int:
    fd = s.map(MT.QUEUE, 0, 4, 4)
    return s.elem(Cmd.MAP_LOOKUP_AND_DELETE_ELEM, fd, None)


@case(errno.EPERM)
def lookup_and_delete_rdonly(s: Side) -> int:
    fd = s.map(MT.HASH, 4, 4, 4, F_RDONLY)
    return s.elem(Cmd.MAP_LOOKUP_AND_DELETE_ELEM, fd, u32(0))


# -- FREEZE ---------------------------------------------------------------------------------------

def _freeze(s: Side, fd: int) -> int:
    a = BpfAttr()
    a.elem.map_fd = fd
    return s.bpf(Cmd.MAP_FREEZE, a)


@case(0)
def freeze_once(s: Side) -> int:
    return _freeze(s, s.map(MT.ARRAY, 4, 4, 1))


@case(errno.EPERM)
def freeze_twice(s: Side) -> int:
    fd = s.map(MT.ARRAY, 4, 4, 1)
    _freeze(s, fd)
    return _freeze(s, fd)


@case(errno.EBADF)
def freeze_bad_fd(s: Side) -> int:
    return _freeze(s, 9999)


@case(0)
def frozen_map_still_readable(s: Side) -> int:
    fd = s.map(MT.ARRAY, 4, 4, 1)
    _freeze(s, fd)
    return s.lookup(fd, u32(0))


# -- ids and info ---------------------------------------------------------------------------------

@case(errno.EINVAL)
def next_id_too_large(s: Side) -> int:
    a = BpfAttr()
    a.get_id.start_id = 0x7FFFFFFF
    return s.bpf(Cmd.MAP_GET_NEXT_ID, a)


@case(errno.ENOENT)
def map_fd_by_id_zero(s: Side) -> int:
    a = BpfAttr()
    return s.bpf(Cmd.MAP_GET_FD_BY_ID, a)


@case(errno.EINVAL)
def map_fd_by_id_bad_flags(s: Side) -> int:
    a = BpfAttr()
    a.get_id.start_id = 1
    a.get_id.open_flags = 1
    return s.bpf(Cmd.MAP_GET_FD_BY_ID, a)


@case(errno.ENOENT)
def prog_fd_by_id_missing(s: Side) -> int:
    a = BpfAttr()
    a.get_id.start_id = 0x7FFFFFF0
    return s.bpf(Cmd.PROG_GET_FD_BY_ID, a)


@case(errno.EBADFD)
def info_bad_fd(s: Side) -> int:
    a = BpfAttr()
    a.info.bpf_fd = 9999
    return s.bpf(Cmd.OBJ_GET_INFO_BY_FD, a)


@case(errno.EINVAL)
def info_not_bpf(s: Side) -> int:
    fd = os.open("/dev/null", os.O_RDONLY)
    try:
        a = BpfAttr()
        a.info.bpf_fd = fd
        return s.bpf(Cmd.OBJ_GET_INFO_BY_FD, a)
    finally:
        os.close(fd)


@case(errno.E2BIG)
def info_tail_not_zero(s: Side) -> int:
    fd = s.map(MT.ARRAY, 4, 4, 1)
    buf = (ctypes.c_uint8 * 128)()
    buf[100] = 1
    s.keep.append(buf)
    a = BpfAttr()
    a.info.bpf_fd, a.info.info_len, a.info.info = fd, 128, addr_of(buf)
    return s.bpf(Cmd.OBJ_GET_INFO_BY_FD, a)


@case(0)
def info_map(s: Side) -> int:
    fd = s.map(MT.HASH, 8, 16, 32, name=b"infomap")
    info = BpfMapInfo()
    s.keep.append(info)
    a = BpfAttr()
    a.info.bpf_fd, a.info.info_len, a.info.info = fd, ctypes.sizeof(info), addr_of(info)
    r = s.bpf(Cmd.OBJ_GET_INFO_BY_FD, a)
    if r:
        return r
    ok = (info.type, info.key_size, info.value_size, info.max_entries, info.name, a.info.info_len) == (
        MT.HASH, 8, 16, 32, b"infomap", 88)
    return 0 if ok else -1000


# -- pins -----------------------------------------------------------------------------------------

_PIN_DIR = "/sys/fs/bpf"


def _pin_path(s: Side, name: str) -> str:
    p = f"{_PIN_DIR}/pybpf-errno-{os.getpid()}-{name}"
    s.pins.append(p)
    return p


@case(errno.EINVAL)
def pin_bad_fd(s: Side) -> int:
    return s.obj(Cmd.OBJ_PIN, _pin_path(s, "badfd"), 9999)


@case(errno.EPERM)
def pin_outside_bpffs(s: Side) -> int:
    fd = s.map(MT.ARRAY, 4, 4, 1)
    return s.obj(Cmd.OBJ_PIN, f"/tmp/pybpf-errno-{os.getpid()}", fd)


@case(errno.ENOENT)
def pin_missing_parent(s: Side) -> int:
    fd = s.map(MT.ARRAY, 4, 4, 1)
    return s.obj(Cmd.OBJ_PIN, f"{_PIN_DIR}/no-such-dir-{os.getpid()}/x", fd)


@case(errno.EEXIST)
def pin_twice(s: Side) -> int:
    fd = s.map(MT.ARRAY, 4, 4, 1)
    path = _pin_path(s, "twice")
    s.obj(Cmd.OBJ_PIN, path, fd)
    return s.obj(Cmd.OBJ_PIN, path, fd)


@case(errno.EINVAL)
def pin_bad_flags(s: Side) -> int:
    fd = s.map(MT.ARRAY, 4, 4, 1)
    return s.obj(Cmd.OBJ_PIN, _pin_path(s, "flags"), fd, 8)


@case(0)
def pin_and_get(s: Side) -> int:
    fd = s.map(MT.ARRAY, 4, 4, 1)
    path = _pin_path(s, "get")
    r = s.obj(Cmd.OBJ_PIN, path, fd)
    if r:
        return r
    s.update(fd, u32(0), u32(1234))
    fd2 = s.obj(Cmd.OBJ_GET, path)
    if fd2 < 0:
        return fd2
    s.fds.append(fd2)
    a = BpfAttr()
    kb = ctypes.create_string_buffer(u32(0), 4)
    vb = ctypes.create_string_buffer(4)
    s.keep += [kb, vb]
    a.elem.map_fd, a.elem.key, a.elem.value = fd2, addr_of(kb), addr_of(vb)
    r = s.bpf(Cmd.MAP_LOOKUP_ELEM, a)
    return r if r else (0 if vb.raw == u32(1234) else -1000)


@case(errno.ENOENT)
def get_missing(s: Side) -> int:
    return s.obj(Cmd.OBJ_GET, f"{_PIN_DIR}/pybpf-no-such-pin-{os.getpid()}")


@case(errno.EINVAL)
def get_with_bpf_fd(s: Side) -> int:
    return s.obj(Cmd.OBJ_GET, f"{_PIN_DIR}/x", 3)


@case(errno.EINVAL)
def get_bad_flags(s: Side) -> int:
    return s.obj(Cmd.OBJ_GET, f"{_PIN_DIR}/x", 0, 1)


@case(errno.EACCES)
def get_directory(s: Side) -> int:
    return s.obj(Cmd.OBJ_GET, _PIN_DIR)


@case(errno.EPERM)
def get_rdonly_then_update(s: Side) -> int:
    fd = s.map(MT.ARRAY, 4, 4, 1)
    path = _pin_path(s, "ro")
    s.obj(Cmd.OBJ_PIN, path, fd)
    fd2 = s.obj(Cmd.OBJ_GET, path, 0, F_RDONLY)
    if fd2 < 0:
        return fd2
    s.fds.append(fd2)
    return s.update(fd2, u32(0), u32(1))


# -- batch ------------------------------------------------------------------------------------------

def _batch(s: Side, cmd: int, fd: int, count: int, *, flags: int = 0, elem_flags: int = 0,
           keys: bytes = b"", values: bytes = b"", key_size: int = 4, value_size: int = 4) -> tuple[int, int]:
    kb = ctypes.create_string_buffer(keys, max(len(keys), count * key_size, 1))
    vb = ctypes.create_string_buffer(values, max(len(values), count * value_size, 1))
    ob = ctypes.create_string_buffer(64)
    s.keep += [kb, vb, ob]
    a = BpfAttr()
    b = a.batch
    b.map_fd, b.count, b.flags, b.elem_flags = fd, count, flags, elem_flags
    b.keys, b.values, b.out_batch = addr_of(kb), addr_of(vb), addr_of(ob)
    r = s.bpf(cmd, a)
    return r, b.count


@case(0)
def batch_lookup_count_zero(s: Side) -> int:
    fd = s.map(MT.HASH, 4, 4, 4)
    return _batch(s, Cmd.MAP_LOOKUP_BATCH, fd, 0)[0]


@case(errno.EINVAL)
def batch_hash_flags(s: Side) -> int:
    fd = s.map(MT.HASH, 4, 4, 4)
    return _batch(s, Cmd.MAP_LOOKUP_BATCH, fd, 4, flags=1)[0]


@case(ENOTSUPP)
def batch_queue(s: Side) -> int:
    fd = s.map(MT.QUEUE, 0, 4, 4)
    return _batch(s, Cmd.MAP_LOOKUP_BATCH, fd, 4)[0]


@case(errno.ENOENT)
def batch_hash_all(s: Side) -> int:
    fd = s.map(MT.HASH, 4, 4, 8)
    for i in range(5):
        s.update(fd, u32(i), u32(i * 10))
    r, count = _batch(s, Cmd.MAP_LOOKUP_BATCH, fd, 8)
    return r if count == 5 else -1000 - count


@case(errno.ENOENT)
def batch_array_all(s: Side) -> int:
    fd = s.map(MT.ARRAY, 4, 4, 3)
    r, count = _batch(s, Cmd.MAP_LOOKUP_BATCH, fd, 8)
    return r if count == 3 else -1000 - count


@case(0)
def batch_update_array(s: Side) -> int:
    fd = s.map(MT.ARRAY, 4, 4, 3)
    r, count = _batch(s, Cmd.MAP_UPDATE_BATCH, fd, 2, keys=u32(0) + u32(2), values=u32(5) + u32(6))
    return r if count == 2 else -1000 - count


@case(errno.E2BIG)
def batch_update_array_partial(s: Side) -> int:
    fd = s.map(MT.ARRAY, 4, 4, 3)
    return _batch(s, Cmd.MAP_UPDATE_BATCH, fd, 2, keys=u32(0) + u32(9), values=u32(5) + u32(6))[0]


@case(ENOTSUPP)
def batch_delete_array(s: Side) -> int:
    fd = s.map(MT.ARRAY, 4, 4, 3)
    return _batch(s, Cmd.MAP_DELETE_BATCH, fd, 1, keys=u32(0))[0]


@case(errno.ENOENT)
def batch_delete_hash_missing(s: Side) -> int:
    fd = s.map(MT.HASH, 4, 4, 3)
    return _batch(s, Cmd.MAP_DELETE_BATCH, fd, 1, keys=u32(0))[0]


# -- misc ------------------------------------------------------------------------------------------

@case(errno.EINVAL)
def unknown_command(s: Side) -> int:
    return s.bpf(999, BpfAttr())


@case(errno.EFAULT)
def null_attr(s: Side) -> int:
    return s.bpf(Cmd.MAP_CREATE, None, 152)


@case(errno.E2BIG)
def attr_size_above_page(s: Side) -> int:
    buf = (ctypes.c_uint8 * 8192)()
    s.keep.append(buf)
    return s.bpf(Cmd.MAP_CREATE, buf, 8192)


# -- PROG_LOAD -------------------------------------------------------------------------------------

PT_SOCKET_FILTER, PT_KPROBE, PT_XDP, PT_CGROUP_SKB = 1, 2, 6, 8
RET2 = bytes.fromhex("b700000002000000" "9500000000000000")  # r0 = 2; exit


def _load(s: Side, code: bytes, prog_type: int = PT_XDP, *, license: bytes | None = b"GPL",
          log_level: int = 0, log_size: int = 0, with_buf: bool | None = None, flags: int = 0,
          name: bytes = b"", attach: int = 0, insn_cnt: int | None = None, insns_addr: int | None = None) -> int:
    a = BpfAttr()
    p = a.prog_load
    ib = ctypes.create_string_buffer(code, max(len(code), 1))
    s.keep.append(ib)
    p.prog_type = prog_type
    p.insn_cnt = len(code) // 8 if insn_cnt is None else insn_cnt
    p.insns = addr_of(ib) if insns_addr is None else insns_addr
    if license is not None:
        lb = ctypes.create_string_buffer(license)
        s.keep.append(lb)
        p.license = addr_of(lb)
    p.log_level = log_level
    p.log_size = log_size
    if with_buf if with_buf is not None else log_size > 0:
        buf = ctypes.create_string_buffer(max(log_size, 1))
        s.keep.append(buf)
        p.log_buf = addr_of(buf)
    p.prog_flags = flags
    p.prog_name = name
    p.expected_attach_type = attach
    fd = s.bpf(Cmd.PROG_LOAD, a)
    if fd >= 0:
        s.fds.append(fd)
    return fd


@case(0)
def load_ok(s: Side) -> int:
    return _load(s, RET2)


@case(errno.E2BIG)
def load_no_insns(s: Side) -> int:
    return _load(s, RET2, insn_cnt=0)


@case(errno.EINVAL)
def load_bad_flags(s: Side) -> int:
    return _load(s, RET2, flags=1 << 12)


@case(errno.EINVAL)
def load_unknown_type(s: Side) -> int:
    return _load(s, RET2, 999)


@case(errno.EFAULT)
def load_bad_insns_pointer(s: Side) -> int:
    return _load(s, RET2, insns_addr=8)


@case(errno.EFAULT)
def load_null_license(s: Side) -> int:
    return _load(s, RET2, license=None)


@case(errno.EINVAL)
def load_bad_name(s: Side) -> int:
    return _load(s, RET2, name=b"no spaces")


@case(errno.EINVAL)
def load_log_buf_without_size(s: Side) -> int:
    return _load(s, RET2, log_level=1, with_buf=True)


@case(errno.EINVAL)
def load_log_size_without_buf(s: Side) -> int:
    return _load(s, RET2, log_level=1, log_size=64, with_buf=False)


@case(errno.EINVAL)
def load_log_buf_without_level(s: Side) -> int:
    return _load(s, RET2, log_size=64)


@case(errno.EINVAL)
def load_log_level_unknown_bit(s: Side) -> int:
    return _load(s, RET2, log_level=16, log_size=64)


@case(errno.ENOSPC)
def load_log_too_small(s: Side) -> int:
    return _load(s, RET2, log_level=1, log_size=8)


@case(0)
def load_log_big_enough(s: Side) -> int:
    return _load(s, RET2, log_level=1, log_size=4096)


@case(errno.EINVAL)
def load_cgroup_skb_bad_attach(s: Side) -> int:
    return _load(s, RET2, PT_CGROUP_SKB, attach=6)


@case(errno.EACCES)
def load_exit_without_r0(s: Side) -> int:
    return _load(s, bytes.fromhex("9500000000000000"))


@case(errno.EINVAL)
def load_no_exit(s: Side) -> int:
    return _load(s, bytes.fromhex("b700000000000000"))


@case(errno.EBADF)
def load_bad_map_fd(s: Side) -> int:
    code = bytes.fromhex("18110000" "0f270000" "0000000000000000") + RET2  # r1 = map[fd:9999]
    return _load(s, code)


# -- PROG_TEST_RUN ------------------------------------------------------------------------------------

def _test_run(s: Side, prog_fd: int, data: bytes, *, data_size_out: int = 0, ctx_size_in: int = 0,
              repeat: int = 1) -> tuple[int, BpfAttr]:
    a = BpfAttr()
    t = a.test
    db = ctypes.create_string_buffer(data, max(len(data), 1))
    ob = ctypes.create_string_buffer(4096)
    s.keep += [db, ob]
    t.prog_fd, t.data_in, t.data_size_in, t.repeat = prog_fd, addr_of(db), len(data), repeat
    t.data_out, t.data_size_out = addr_of(ob), data_size_out
    t.ctx_size_in = ctx_size_in
    return s.bpf(Cmd.PROG_TEST_RUN, a), a


@case(0)
def test_run_ok(s: Side) -> int:
    fd = _load(s, RET2)
    r, a = _test_run(s, fd, bytes(64), repeat=5)
    return r if r else (0 if (a.test.retval, a.test.data_size_out) == (2, 64) else -1000)


@case(errno.EBADF)
def test_run_bad_fd(s: Side) -> int:
    return _test_run(s, 9999, bytes(64))[0]


@case(errno.EINVAL)
def test_run_ctx_size_without_ctx(s: Side) -> int:
    fd = _load(s, RET2)
    return _test_run(s, fd, bytes(64), ctx_size_in=24)[0]


@case(errno.EINVAL)
def test_run_xdp_too_short(s: Side) -> int:
    fd = _load(s, RET2)
    return _test_run(s, fd, bytes(10))[0]


@case(errno.ENOSPC)
def test_run_data_out_too_small(s: Side) -> int:
    fd = _load(s, RET2)
    r, a = _test_run(s, fd, bytes(64), data_size_out=10)
    return r if a.test.data_size_out == 64 and a.test.retval == 2 else -1000


@case(errno.EINVAL)
def test_run_socket_filter_too_short(s: Side) -> int:
    fd = _load(s, RET2, PT_SOCKET_FILTER)
    return _test_run(s, fd, bytes(10))[0]


@case(0)
def test_run_socket_filter(s: Side) -> int:
    fd = _load(s, RET2, PT_SOCKET_FILTER)
    r, a = _test_run(s, fd, bytes(6) + bytes(range(1, 7)) + b"\x08\x00" + bytes(20))
    return r if r else (0 if a.test.retval == 2 else -1000)


@case(ENOTSUPP)
def test_run_kprobe(s: Side) -> int:
    fd = _load(s, bytes.fromhex("b700000000000000" "9500000000000000"), PT_KPROBE)
    return _test_run(s, fd, bytes(64))[0]


@contextlib.contextmanager
def both_sides(root: Path, ncpus: int = 2) -> Iterator[tuple[Side, Side]]:
    """pybpf (a fresh Kernel under ``root``) and the live kernel, as two :class:`Side` objects that
    take the same bpf(2) calls; every fd either side handed out is closed afterwards."""
    k = Kernel(root, ncpus=ncpus)
    ours = Side("pybpf", lambda c, a, s: sys_bpf(c, a, s, kernel=k), k.close)
    linux = Side("linux", live_bpf, os.close)
    try:
        yield ours, linux
    finally:
        ours.cleanup()
        linux.cleanup()
