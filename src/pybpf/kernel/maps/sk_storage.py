"""SK_STORAGE (net/core/bpf_sk_storage.c, kernel/bpf/bpf_local_storage.c): a value per socket.

Linux hangs the values off the sockets themselves; user space names a socket by a file
descriptor of its own (the key is an ``int`` fd), programs by a socket pointer. pybpf's runs hold
no sockets, so programs only ever pass NULL (``bpf_sk_storage_get`` gives NULL,
``bpf_sk_storage_delete`` -EINVAL, see :mod:`pybpf.kernel.helpers.sock`), while user space can
keep values for this process's real sockets: they are keyed by the socket's inode number (what
identifies a socket across descriptors), in a fixed table of :data:`SK_STORAGE_SLOTS` entries per
map (ENOMEM beyond — Linux's only bound is memory). Unlike Linux, a value outlives its socket's
close until it is deleted (pybpf does not see the close). Creation checks are
``bpf_local_storage_map_alloc_check``'s, BTF for key and value included.

Storage: at ``data_off``, :data:`SK_STORAGE_SLOTS` slots of ``{u64 socket inode, u64 used}`` then
the value (``round_up(value_size, 8)``).
"""

from __future__ import annotations

import errno
import os

from pybpf import uapi
from pybpf.errors import ENOTSUPP, BpfError
from pybpf.kernel.maps.base import EXIST, F_LOCK, F_NO_PREALLOC, HEADER_SIZE, NOEXIST, Map, MapAttrs, round_up
from pybpf.kernel.maps.cgroup_storage import LOCAL_STORAGE_MAX_VALUE_SIZE
from pybpf.kernel.maps.xskmap import sockfd_check
from pybpf.uapi import MapType

__all__ = ["SK_STORAGE_SLOTS", "SkStorageMap"]

SK_STORAGE_SLOTS = 256
LOCAL_STORAGE_CREATE_FLAG_MASK = F_NO_PREALLOC | uapi.BPF_F_CLONE
SLOT_HEADER = 16
DATA_ALIGN = 64


def local_storage_alloc_check(a: MapAttrs) -> None:
    """``bpf_local_storage_map_alloc_check``."""
    if (a.map_flags & ~LOCAL_STORAGE_CREATE_FLAG_MASK or not a.map_flags & F_NO_PREALLOC or a.max_entries
            or a.key_size != 4 or not a.value_size or not a.btf_key_type_id or not a.btf_value_type_id):
        raise BpfError(errno.EINVAL)
    if a.value_size > LOCAL_STORAGE_MAX_VALUE_SIZE:
        raise BpfError(errno.E2BIG)


class SkStorageMap(Map):
    """BPF_MAP_TYPE_SK_STORAGE."""

    map_types = (MapType.SK_STORAGE,)

    @classmethod
    def alloc_check(cls, attrs: MapAttrs, kernel: object) -> None:
        local_storage_alloc_check(attrs)

    @classmethod
    def layout(cls, a: MapAttrs, ncpus: int) -> tuple[int, int, int, int, int]:
        elem = SLOT_HEADER + round_up(a.value_size, 8)
        data_off = round_up(HEADER_SIZE, DATA_ALIGN)
        return elem, 0, data_off, 0, data_off + elem * SK_STORAGE_SLOTS

    # -- slots ---------------------------------------------------------------------------------
    def _slot_off(self, i: int) -> int:
        return self.data_off + i * self.elem_size

    def _find(self, ino: int) -> int | None:
        for i in range(SK_STORAGE_SLOTS):
            off = self._slot_off(i)
            if self._u64(off + 8) and self._u64(off) == ino:
                return off
        return None

    def _socket_inode(self, key: bytes) -> int:
        fd = int.from_bytes(key[:4], "little", signed=True)
        sockfd_check(fd)
        return os.fstat(fd).st_ino

    # -- user space ----------------------------------------------------------------------------
    def lookup_elem_sys(self, key: bytes, flags: int = 0) -> bytes:
        off = self._find(self._socket_inode(key))
        if off is None:
            raise BpfError(errno.ENOENT)
        if flags & F_LOCK:
            return self._copy_locked_out(off + SLOT_HEADER)
        return bytes(self.mem[off + SLOT_HEADER:off + SLOT_HEADER + self.value_size])

    def update_elem_sys(self, key: bytes, value: bytes, flags: int) -> None:
        ino = self._socket_inode(key)
        if (flags & ~F_LOCK) > EXIST or (flags & F_LOCK and self.spin_lock_off is None):
            raise BpfError(errno.EINVAL)
        self.lock()
        try:
            off = self._find(ino)
            if off is not None and flags & ~F_LOCK == NOEXIST:
                raise BpfError(errno.EEXIST)
            if off is None:
                if flags & ~F_LOCK == EXIST:
                    raise BpfError(errno.ENOENT)
                off = next((self._slot_off(i) for i in range(SK_STORAGE_SLOTS)
                            if not self._u64(self._slot_off(i) + 8)), None)
                if off is None:
                    raise BpfError(errno.ENOMEM)
                self.mem[off + SLOT_HEADER:off + self.elem_size] = bytes(self.elem_size - SLOT_HEADER)
                self._set_u64(off, ino)
                self._set_u64(off + 8, 1)
            self._copy_value_in(off + SLOT_HEADER, value, bool(flags & F_LOCK))
        finally:
            self.unlock()

    def delete_elem_sys(self, key: bytes) -> None:
        ino = self._socket_inode(key)
        self.lock()
        try:
            off = self._find(ino)
            if off is None:
                raise BpfError(errno.ENOENT)
            self._set_u64(off + 8, 0)
        finally:
            self.unlock()

    def get_next_key(self, key: bytes | None) -> bytes:
        raise BpfError(ENOTSUPP)

    # -- programs: they never hold a socket in pybpf -------------------------------------------
    def lookup_elem(self, key: bytes, *, from_prog: bool = True) -> int | None:
        return None

    def delete_elem(self, key: bytes) -> int:
        return -errno.EINVAL


MAP_CLASSES = (SkStorageMap,)
