"""CGROUP_STORAGE and PERCPU_CGROUP_STORAGE (kernel/bpf/local_storage.c).

In Linux such a map holds one value per (cgroup, attach type) a program using it is attached to,
allocated at attach time; ``bpf_get_local_storage`` returns the value of the cgroup the program
runs for. ``BPF_PROG_TEST_RUN`` allocates a fresh, zeroed storage of each type for the run
(``bpf_cgroup_storages_alloc`` in net/bpf/test_run.c) that the map never lists and that is freed
after the run.

pybpf attaches no programs to cgroups, so, seen from user space, the map is always empty: lookups
and updates find no storage (ENOENT), deletion is not an operation the type has (EINVAL) and there
is no first key (ENOENT). The test run's storage is the map's one data area: ``round_up(value_size, 8)``
bytes (times ``ncpus`` for the per-CPU type, CPU ``c`` at
``data_off + c * elem_size``) that :func:`reset_run_storage` zeroes when a test run starts, and
where ``bpf_get_local_storage`` points.
"""

from __future__ import annotations

import errno

from pybpf.errors import BpfError
from pybpf.kernel.maps.base import (
    ANY,
    EXIST,
    F_ACCESS_MASK,
    F_LOCK,
    F_NUMA_NODE,
    HEADER_SIZE,
    PCPU_MIN_UNIT_SIZE,
    Map,
    MapAttrs,
    access_flags_ok,
    round_up,
)
from pybpf.uapi import MapType

__all__ = ["CgroupStorageMap", "LOCAL_STORAGE_MAX_VALUE_SIZE", "PercpuCgroupStorageMap", "reset_run_storage"]

LOCAL_STORAGE_CREATE_FLAG_MASK = F_NUMA_NODE | F_ACCESS_MASK
LOCAL_STORAGE_ELEM_SIZE = 128
"""``sizeof(struct bpf_local_storage_elem)`` on x86-64 (its data is cache-line aligned)."""
LOCAL_STORAGE_MAX_VALUE_SIZE = 0xFFFF - LOCAL_STORAGE_ELEM_SIZE
"""``BPF_LOCAL_STORAGE_MAX_VALUE_SIZE``: U16_MAX less the element header (the KMALLOC bound is larger)."""
CGROUP_STORAGE_KEY_SIZE = 16
"""``sizeof(struct bpf_cgroup_storage_key)``: ``u64 cgroup_inode_id``, ``u32 attach_type``, padding."""
DATA_ALIGN = 64


def cgroup_storage_alloc_check(a: MapAttrs) -> None:
    """``cgroup_storage_map_alloc``'s checks, in its order."""
    max_value = LOCAL_STORAGE_MAX_VALUE_SIZE
    if a.map_type == MapType.PERCPU_CGROUP_STORAGE:
        max_value = min(max_value, PCPU_MIN_UNIT_SIZE)
    if a.key_size not in (CGROUP_STORAGE_KEY_SIZE, 8):
        raise BpfError(errno.EINVAL)
    if a.value_size == 0:
        raise BpfError(errno.EINVAL)
    if a.value_size > max_value:
        raise BpfError(errno.E2BIG)
    if a.map_flags & ~LOCAL_STORAGE_CREATE_FLAG_MASK or not access_flags_ok(a.map_flags):
        raise BpfError(errno.EINVAL)
    if a.max_entries:
        raise BpfError(errno.EINVAL)


class CgroupStorageMap(Map):
    """BPF_MAP_TYPE_CGROUP_STORAGE: one value shared by all CPUs."""

    map_types = (MapType.CGROUP_STORAGE,)

    @classmethod
    def alloc_check(cls, attrs: MapAttrs, kernel: object) -> None:
        cgroup_storage_alloc_check(attrs)

    @classmethod
    def layout(cls, a: MapAttrs, ncpus: int) -> tuple[int, int, int, int, int]:
        elem = round_up(a.value_size, 8)
        data_off = round_up(HEADER_SIZE, DATA_ALIGN)
        return elem, 0, data_off, 0, data_off + elem * (ncpus if cls.percpu else 1)

    # -- the test run's storage ----------------------------------------------------------------
    def run_storage_offset(self, cpu: int = 0) -> int:
        """Where the running program's storage (CPU ``cpu``'s copy for the per-CPU type) starts."""
        return self.data_off + (cpu % self.ncpus) * self.elem_size if self.percpu else self.data_off

    def reset_run_storage(self) -> None:
        """A fresh storage for a test run: zero the data area (``bpf_cgroup_storages_alloc``)."""
        n = self.elem_size * (self.ncpus if self.percpu else 1)
        self.mem[self.data_off:self.data_off + n] = bytes(n)

    # -- user space: no cgroup is attached, so there is no storage to find -----------------------
    def lookup_elem_sys(self, key: bytes, flags: int = 0) -> bytes:
        raise BpfError(errno.ENOENT)

    def update_elem_sys(self, key: bytes, value: bytes, flags: int) -> None:
        if flags & ~(F_LOCK | EXIST):
            raise BpfError(errno.EINVAL)
        if flags & F_LOCK and self.spin_lock_off is None:
            raise BpfError(errno.EINVAL)
        raise BpfError(errno.ENOENT)

    def delete_elem(self, key: bytes) -> int:
        return -errno.EINVAL

    def get_next_key(self, key: bytes | None) -> bytes:
        raise BpfError(errno.ENOENT)

    def lookup_elem(self, key: bytes, *, from_prog: bool = True) -> int | None:
        return None


class PercpuCgroupStorageMap(CgroupStorageMap):
    """BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE: one value per CPU."""

    map_types = (MapType.PERCPU_CGROUP_STORAGE,)
    percpu = True

    def update_elem_sys(self, key: bytes, value: bytes, flags: int) -> None:
        if flags not in (ANY, EXIST):  # bpf_percpu_cgroup_storage_update
            raise BpfError(errno.EINVAL)
        raise BpfError(errno.ENOENT)


def reset_run_storage(maps: object) -> None:
    """Give a test run fresh cgroup storages: every cgroup-storage map among ``maps`` (a program's
    ``used_maps`` values) gets its run storage zeroed."""
    for m in maps:  # type: ignore[attr-defined]
        if isinstance(m, CgroupStorageMap):
            m.reset_run_storage()


MAP_CLASSES = (CgroupStorageMap, PercpuCgroupStorageMap)
