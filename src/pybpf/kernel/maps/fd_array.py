"""Maps whose values are other objects: PROG_ARRAY, ARRAY_OF_MAPS, HASH_OF_MAPS.

From user space a value is an fd on update and an id on lookup (the kernel's ``map_fd_get_ptr`` /
``map_fd_sys_lookup_elem``); in storage a slot holds the referenced object's id (u32, 0 = empty),
so the value means the same thing in every process. Each filled slot also holds a reference (a hard
link in the bpffs root, see :mod:`pybpf.kernel.pin`), keeping the target alive as the kernel's
refcount does.

Programs see a program array only through ``bpf_tail_call`` and a map-in-map through
``bpf_map_lookup_elem``, which returns the inner map (the engine turns it into its map pointer).
"""

from __future__ import annotations

import errno
from typing import Any

from pybpf.errors import ENOTSUPP, BpfError
from pybpf.kernel.maps.array import ArrayMap, array_alloc_check
from pybpf.kernel.maps.base import ANY, F_RDONLY_PROG, F_WRONLY_PROG, OFF, Map, MapAttrs, MapMeta
from pybpf.kernel.maps.hash import HashMap, htab_alloc_check
from pybpf.uapi import MapType, ProgType

__all__ = ["ArrayOfMaps", "HashOfMaps", "ProgArrayMap", "map_meta_alloc_check"]

OFF_OWNER_TYPE = OFF["owner_prog_type"]
OFF_OWNER_ATTACH = OFF["owner_attach_type"]


def fd_array_alloc_check(a: MapAttrs) -> None:
    """``fd_array_map_alloc_check``."""
    if a.value_size != 4:
        raise BpfError(errno.EINVAL)
    if a.map_flags & (F_RDONLY_PROG | F_WRONLY_PROG):
        raise BpfError(errno.EINVAL)
    array_alloc_check(a)


def map_meta_alloc_check(inner: Map) -> None:
    """``bpf_map_meta_alloc``: the template map must not itself be a map-in-map."""
    if inner.inner_map_meta is not None:
        raise BpfError(errno.EINVAL)
    if inner.map_type in (MapType.PROG_ARRAY, MapType.RINGBUF) or inner.is_fd_map:
        # types without map_meta_equal
        raise BpfError(ENOTSUPP)


class _FdSlots:
    """Shared behaviour of the fd-valued array maps (slot ``i`` holds an object id)."""

    is_fd_map = True

    def _slot_get(self: Any, i: int) -> int:
        return int(self._u32(self.value_offset(i)))

    def _slot_set(self: Any, i: int, obj_id: int) -> None:
        self._set_u32(self.value_offset(i), obj_id)

    def lookup_elem_sys(self: Any, key: bytes, flags: int = 0) -> bytes:
        i = int.from_bytes(key[:4], "little")
        if i >= self.max_entries:
            raise BpfError(errno.ENOENT)
        obj_id = self._slot_get(i)
        if not obj_id:
            raise BpfError(errno.ENOENT)
        return obj_id.to_bytes(4, "little")

    def update_elem(self: Any, key: bytes, value: bytes, flags: int, *, from_prog: bool = False) -> int:
        return -errno.EINVAL  # only user space can store fds (``map_update_elem`` from programs: EINVAL)

    def update_elem_sys(self: Any, key: bytes, value: bytes, flags: int) -> None:
        if flags != ANY:
            raise BpfError(errno.EINVAL)
        i = int.from_bytes(key[:4], "little")
        if i >= self.max_entries:
            raise BpfError(errno.E2BIG)
        target = self.resolve_value_fd(int.from_bytes(value[:4], "little"))
        self.store(i, target)

    def store(self: Any, i: int, target: Any) -> None:
        self.kernel.hold(self, str(i), target)
        self._slot_set(i, target.id)

    def delete_elem(self: Any, key: bytes) -> int:
        i = int.from_bytes(key[:4], "little")
        if i >= self.max_entries:
            return -errno.E2BIG
        if not self._slot_get(i):
            return -errno.ENOENT
        self._slot_set(i, 0)
        self.kernel.release(self, str(i))
        return 0

    def target(self: Any, i: int) -> Any:
        """The object in slot ``i`` (None if empty or gone)."""
        if i >= self.max_entries:
            return None
        obj_id = self._slot_get(i)
        if not obj_id:
            return None
        return self.target_by_id(obj_id)


class ProgArrayMap(_FdSlots, ArrayMap):
    """BPF_MAP_TYPE_PROG_ARRAY: slots hold program ids; ``bpf_tail_call`` jumps through it."""

    map_types = (MapType.PROG_ARRAY,)
    has_lookup_batch = False
    has_update_batch = False

    @classmethod
    def alloc_check(cls, attrs: MapAttrs, kernel: object) -> None:
        fd_array_alloc_check(attrs)

    def gen_lookup(self) -> None:
        return None

    @property
    def value_area_offset(self) -> None:
        return None

    def direct_value_addr(self, off: int) -> int:
        raise BpfError(ENOTSUPP)

    def resolve_value_fd(self, fd: int) -> Any:
        prog = self.kernel.get_prog(fd)
        if prog.prog_type == ProgType.EXT or not self.compatible(prog):
            raise BpfError(errno.EINVAL)
        return prog

    def compatible(self, prog: Any) -> bool:
        """``bpf_prog_map_compatible``: the first program fixes the owner type and attach type."""
        ptype = int(prog.image.prog_type) + 1
        attach = int(prog.image.expected_attach_type)
        owner = self._u32(OFF_OWNER_TYPE)
        if not owner:
            self._set_u32(OFF_OWNER_TYPE, ptype)
            self._set_u32(OFF_OWNER_ATTACH, attach)
            return True
        return owner == ptype and self._u32(OFF_OWNER_ATTACH) == attach

    def target_by_id(self, obj_id: int) -> Any:
        return self.kernel.prog_by_id(obj_id)

    def lookup_elem(self, key: bytes, *, from_prog: bool = True) -> int | None:
        return None


class ArrayOfMaps(_FdSlots, ArrayMap):
    """BPF_MAP_TYPE_ARRAY_OF_MAPS: slots hold inner map ids."""

    map_types = (MapType.ARRAY_OF_MAPS,)
    needs_inner = True

    @classmethod
    def alloc_check(cls, attrs: MapAttrs, kernel: object) -> None:
        fd_array_alloc_check(attrs)

    def gen_lookup(self) -> None:
        return None  # slots hold ids, not addresses: the helper resolves them

    @property
    def value_area_offset(self) -> None:
        return None

    def direct_value_addr(self, off: int) -> int:
        raise BpfError(ENOTSUPP)

    def resolve_value_fd(self, fd: int) -> Map:
        inner = self.kernel.get_map(fd)
        if self.inner_map_meta is None or not self.inner_map_meta.matches(inner):
            raise BpfError(errno.EINVAL)
        return inner

    def target_by_id(self, obj_id: int) -> Map | None:
        return self.kernel.map_by_id(obj_id)

    def lookup_elem(self, key: bytes, *, from_prog: bool = True) -> int | None:
        return None

    def inner_lookup(self, key: bytes) -> Map | None:
        """What ``bpf_map_lookup_elem`` on this map gives a program: the inner map, or None."""
        return self.target(int.from_bytes(key[:4], "little"))


class HashOfMaps(HashMap):
    """BPF_MAP_TYPE_HASH_OF_MAPS: a hash table whose values are inner map ids."""

    map_types = (MapType.HASH_OF_MAPS,)
    needs_inner = True
    is_fd_map = True
    htab_batch = True

    @classmethod
    def alloc_check(cls, attrs: MapAttrs, kernel: object) -> None:
        if attrs.value_size != 4:
            raise BpfError(errno.EINVAL)
        htab_alloc_check(attrs, getattr(kernel, "ncpus", 1))

    def _elem_slot(self, e: int) -> str:
        return "e" + str((e - self.data_off) // self.elem_size)

    def update_elem(self, key: bytes, value: bytes, flags: int, *, from_prog: bool = False) -> int:
        if not from_prog and getattr(self, "_storing", False):
            return super().update_elem(key, value, flags, from_prog=False)
        return -errno.EINVAL

    def update_elem_sys(self, key: bytes, value: bytes, flags: int) -> None:
        inner = self.kernel.get_map(int.from_bytes(value[:4], "little"))
        if self.inner_map_meta is None or not self.inner_map_meta.matches(inner):
            raise BpfError(errno.EINVAL)
        self._storing = True
        try:
            err = super().update_elem(key, inner.id.to_bytes(4, "little"), flags, from_prog=False)
        finally:
            self._storing = False
        if err:
            raise BpfError(-err)
        off = super().lookup_elem(key, from_prog=False)
        if off is not None:
            e = off - self.val_off
            self.kernel.hold(self, self._elem_slot(e), inner)

    def _on_remove(self, e: int) -> None:
        self.kernel.release(self, self._elem_slot(e))

    def lookup_elem(self, key: bytes, *, from_prog: bool = True) -> int | None:
        if from_prog:
            return None
        return super().lookup_elem(key, from_prog=False)

    def inner_lookup(self, key: bytes) -> Map | None:
        off = super().lookup_elem(key, from_prog=False)
        if off is None:
            return None
        mid = self._u32(off)
        return self.kernel.map_by_id(mid) if mid else None

    def lookup_and_delete_elem_sys(self, key: bytes, flags: int) -> bytes:
        raise BpfError(ENOTSUPP)


MAP_CLASSES = (ProgArrayMap, ArrayOfMaps, HashOfMaps)
_ = MapMeta
