"""What the verifier knows about map types beyond :class:`~pybpf.verifier.env.MapLike`: the
kernel struct behind a ``CONST_PTR_TO_MAP`` (for loads through a map pointer) and its fields."""

from __future__ import annotations

from typing import Any

from pybpf.uapi import MapType
from pybpf.verifier.log import Msg

__all__ = ["bpf_map_struct_field", "map_btf_struct_access"]

_STRUCT = {
    MapType.ARRAY: "bpf_array", MapType.PERCPU_ARRAY: "bpf_array", MapType.PROG_ARRAY: "bpf_array",
    MapType.PERF_EVENT_ARRAY: "bpf_array", MapType.CGROUP_ARRAY: "bpf_array", MapType.ARRAY_OF_MAPS: "bpf_array",
    MapType.HASH: "bpf_htab", MapType.PERCPU_HASH: "bpf_htab", MapType.LRU_HASH: "bpf_htab",
    MapType.LRU_PERCPU_HASH: "bpf_htab", MapType.HASH_OF_MAPS: "bpf_htab",
    MapType.RINGBUF: "bpf_ringbuf_map", MapType.LPM_TRIE: "lpm_trie", MapType.QUEUE: "bpf_queue_stack",
    MapType.STACK: "bpf_queue_stack", MapType.DEVMAP: "bpf_dtab", MapType.DEVMAP_HASH: "bpf_dtab",
    MapType.CPUMAP: "bpf_cpu_map", MapType.XSKMAP: "xsk_map", MapType.SOCKMAP: "bpf_stab",
    MapType.SOCKHASH: "bpf_shtab", MapType.STACK_TRACE: "bpf_stack_map", MapType.BLOOM_FILTER: "bpf_bloom_filter",
    MapType.SK_STORAGE: "bpf_local_storage_map", MapType.TASK_STORAGE: "bpf_local_storage_map",
    MapType.INODE_STORAGE: "bpf_local_storage_map", MapType.CGRP_STORAGE: "bpf_local_storage_map",
    MapType.REUSEPORT_SOCKARRAY: "reuseport_array",
}

# struct bpf_map: the first fields (x86-64): ops pointer at 0, inner_map_meta at 8, ...
_BPF_MAP_FIELDS = ((0, 8, "ops", True), (8, 8, "inner_map_meta", True), (16, 8, "security", True),
                   (24, 4, "map_type", False), (28, 4, "key_size", False), (32, 4, "value_size", False),
                   (36, 4, "max_entries", False))


def map_btf_struct_access(m: Any) -> str | None:
    """The kernel struct a program reads through a pointer to map ``m`` (None: not allowed)."""
    return _STRUCT.get(getattr(m, "map_type", -1))


def bpf_map_struct_field(off: int, size: int) -> str | None:
    """An error message when a read of ``size`` at ``off`` in ``struct bpf_map`` is refused, else None."""
    for foff, fsize, name, is_ptr in _BPF_MAP_FIELDS:
        if foff <= off < foff + fsize:
            if is_ptr and (off != foff or size != fsize):
                return Msg.BPF_MAP_PTR_MEMBER.format(name, foff, off, size)
            return None
    return None


def special_fields(m: Any) -> tuple[tuple[str, int, int], ...]:
    """The special fields of a map's value (``btf_record``): ``(kind, offset, size)`` with kind
    ``bpf_spin_lock``, ``bpf_timer``, ``kptr``... From ``m.btf_fields`` when the map lists them,
    else from ``spin_lock_off`` / ``timer_off`` attributes (the kernel layer's maps)."""
    fields = getattr(m, "btf_fields", None)
    if fields is not None:
        return tuple(fields)
    out: list[tuple[str, int, int]] = []
    lock = getattr(m, "spin_lock_off", None)
    if isinstance(lock, int):
        out.append(("bpf_spin_lock", lock, 4))
    timer = getattr(m, "timer_off", None)
    if isinstance(timer, int):
        out.append(("bpf_timer", timer, 16))
    return tuple(out)


def direct_read(m: Any, off: int, size: int) -> bytes | None:
    """Bytes of a (frozen, read-only) single-value map at ``off``: ``m.direct_read`` when the map
    offers it, else its ``storage`` at ``value_offset``."""
    reader = getattr(m, "direct_read", None)
    if reader is not None:
        data = reader(off, size)
        return None if data is None else bytes(data)
    storage = getattr(m, "storage", None)
    base = getattr(m, "value_offset", None)
    if storage is None or base is None or off < 0 or off + size > getattr(m, "value_size", 0):
        return None
    return bytes(storage[base + off : base + off + size])
