"""DEVMAP and DEVMAP_HASH (kernel/bpf/devmap.c): network devices for ``bpf_redirect_map``.

A value is ``struct bpf_devmap_val``: ``u32 ifindex`` and, when ``value_size == 8``, the id (fd on
update) of an XDP program to run on redirected frames. The device must exist (an interface of this
machine, by ifindex), as the kernel requires. Programs only read entries (``BPF_F_RDONLY_PROG`` is
forced on, as the kernel does).

Storage: DEVMAP keeps ``max_entries`` 8-byte slots ``{ifindex, prog_id}`` (ifindex 0 = empty) at
``data_off``; DEVMAP_HASH is a hash table (same layout as HASH) whose values are those 8 bytes.
"""

from __future__ import annotations

import errno
import socket

from pybpf.errors import BpfError
from pybpf.kernel.maps.array import ArrayMap
from pybpf.kernel.maps.base import EXIST, F_NUMA_NODE, F_RDONLY, F_WRONLY, NOEXIST, MapAttrs
from pybpf.kernel.maps.hash import HashMap
from pybpf.uapi import MapType

__all__ = ["DevMap", "DevMapHash", "ifindex_exists"]

DEV_CREATE_FLAG_MASK = F_NUMA_NODE | F_RDONLY | F_WRONLY
"""Not ``BPF_F_ACCESS_MASK``: a devmap refuses the ``*_PROG`` access flags (it sets ``BPF_F_RDONLY_PROG`` itself)."""


def ifindex_exists(ifindex: int) -> bool:
    try:
        return any(i == ifindex for i, _ in socket.if_nameindex())
    except OSError:
        return False


def dev_map_alloc_check(a: MapAttrs) -> None:
    if (a.max_entries == 0 or a.key_size != 4 or a.value_size not in (4, 8)
            or a.map_flags & ~DEV_CREATE_FLAG_MASK):
        raise BpfError(errno.EINVAL)
    if a.map_type == MapType.DEVMAP_HASH and a.max_entries > 1 << 31:
        raise BpfError(errno.EINVAL)
    a.map_flags |= 0x80  # BPF_F_RDONLY_PROG (dev_map_init_map)


class _DevValue:
    """Validation of ``struct bpf_devmap_val`` on update (``__dev_map_alloc_node``)."""

    def _dev_value(self, value: bytes) -> bytes:
        ifindex = int.from_bytes(value[:4], "little")
        prog_fd = int.from_bytes(value[4:8], "little", signed=True) if self.value_size == 8 else 0  # type: ignore[attr-defined]
        if not ifindex:
            if prog_fd > 0:
                raise BpfError(errno.EINVAL)
            return bytes(8)
        if not ifindex_exists(ifindex):
            raise BpfError(errno.EINVAL)
        prog_id = 0
        if prog_fd > 0:
            prog = self.kernel.get_prog(prog_fd)  # type: ignore[attr-defined]
            if int(prog.image.prog_type) != 6 or int(prog.image.expected_attach_type) != 33:
                raise BpfError(errno.EINVAL)  # must be XDP with expected attach type BPF_XDP_DEVMAP
            prog_id = prog.id
        return ifindex.to_bytes(4, "little") + prog_id.to_bytes(4, "little")


class DevMap(_DevValue, ArrayMap):
    """BPF_MAP_TYPE_DEVMAP."""

    map_types = (MapType.DEVMAP,)
    has_lookup_batch = False
    has_update_batch = False

    @classmethod
    def alloc_check(cls, attrs: MapAttrs, kernel: object) -> None:
        dev_map_alloc_check(attrs)

    @classmethod
    def layout(cls, a: MapAttrs, ncpus: int) -> tuple[int, int, int, int, int]:
        _elem, nb, data_off, aux, _total = super().layout(a, ncpus)
        return 8, nb, data_off, aux, data_off + 8 * a.max_entries

    def gen_lookup(self) -> None:
        return None

    @property
    def value_area_offset(self) -> None:
        return None

    def lookup_elem(self, key: bytes, *, from_prog: bool = True) -> int | None:
        i = int.from_bytes(key[:4], "little")
        if i >= self.max_entries:
            return None
        off = self.value_offset(i)
        return off if self._u32(off) else None

    def lookup_elem_sys(self, key: bytes, flags: int = 0) -> bytes:
        off = self.lookup_elem(key, from_prog=False)
        if off is None:
            raise BpfError(errno.ENOENT)
        return bytes(self.mem[off:off + self.value_size])

    def update_elem_sys(self, key: bytes, value: bytes, flags: int) -> None:
        if flags > EXIST:
            raise BpfError(errno.EINVAL)
        i = int.from_bytes(key[:4], "little")
        if i >= self.max_entries:
            raise BpfError(errno.E2BIG)
        if flags == NOEXIST:
            raise BpfError(errno.EEXIST)
        val = self._dev_value(value)
        off = self.value_offset(i)
        self.mem[off:off + 8] = val

    def update_elem(self, key: bytes, value: bytes, flags: int, *, from_prog: bool = False) -> int:
        return -errno.EINVAL

    def delete_elem(self, key: bytes) -> int:
        i = int.from_bytes(key[:4], "little")
        if i >= self.max_entries:
            return -errno.E2BIG
        off = self.value_offset(i)
        self.mem[off:off + 8] = bytes(8)
        return 0

    def ifindex_at(self, key: int) -> int | None:
        off = self.lookup_elem(key.to_bytes(4, "little"))
        return None if off is None else self._u32(off)


class DevMapHash(_DevValue, HashMap):
    """BPF_MAP_TYPE_DEVMAP_HASH."""

    map_types = (MapType.DEVMAP_HASH,)
    htab_batch = False
    has_update_batch = False
    has_delete_batch = False

    @classmethod
    def alloc_check(cls, attrs: MapAttrs, kernel: object) -> None:
        dev_map_alloc_check(attrs)

    def update_elem_sys(self, key: bytes, value: bytes, flags: int) -> None:
        if flags > EXIST:
            raise BpfError(errno.EINVAL)
        val = self._dev_value(value)
        if val == bytes(8):
            raise BpfError(errno.EINVAL)
        err = HashMap.update_elem(self, key, val[:self.value_size], flags, from_prog=False)
        if err:
            raise BpfError(-err)

    def update_elem(self, key: bytes, value: bytes, flags: int, *, from_prog: bool = False) -> int:
        return -errno.EINVAL

    def ifindex_at(self, key: int) -> int | None:
        off = self.lookup_elem(key.to_bytes(4, "little"))
        return None if off is None else self._u32(off)


MAP_CLASSES = (DevMap, DevMapHash)
