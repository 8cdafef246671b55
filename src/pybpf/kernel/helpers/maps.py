"""Map helpers (kernel/bpf/helpers.c, the map types' ops) and the internal functions of contract 2.

A map argument is a map pointer: the base address of the map's storage region in the interpreter's
address space (``ctx.space.map_at(ptr)`` gives the map back). A value a helper returns is an address
inside that region, so the program writes straight into the map's native memory.
"""

from __future__ import annotations

import errno
from typing import Any

from pybpf.errors import HelperError
from pybpf.kernel.maps.base import Map
from pybpf.uapi import HelperId, MapType
from pybpf.vm import RegionKind

__all__ = ["HELPERS", "INTERNAL", "map_arg", "map_pointer", "map_value_address"]

BPF_MAX_LOOPS = 8 * 1024 * 1024
_M64 = (1 << 64) - 1
_IN_MAP = (MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS)


def map_arg(ctx: Any, ptr: int) -> Map:
    """The map a map-pointer argument names (HelperError if it is not one)."""
    m = ctx.space.map_at(ptr)
    if not isinstance(m, Map):
        raise HelperError(f"{ptr:#x} is not a map pointer", pc=ctx.pc)
    return m


def map_pointer(ctx: Any, m: Map) -> int:
    """The map pointer of ``m`` in this run's address space (registering its storage if needed)."""
    return int(ctx.space.map_region(m.id, m.storage, m, m.name or f"map[id:{m.id}]").base)


def map_value_address(ctx: Any, m: Map, off: int) -> int:
    """The pointer a helper returns for storage offset ``off`` of ``m``: the map's region base plus the offset, so the
    program writes the map's own memory."""
    return map_pointer(ctx, m) + off


def _key(ctx: Any, m: Map, ptr: int) -> bytes:
    return ctx.read(ptr, m.key_size)


def _value_in(ctx: Any, m: Map, ptr: int) -> bytes:
    return ctx.read(ptr, m.value_size)


# -- bpf_map_*_elem ---------------------------------------------------------------------------------

def map_lookup_elem(ctx: Any, r1: int, r2: int, *_: int) -> int:
    """``bpf_map_lookup_elem``: a pointer to the value (this CPU's copy for per-CPU maps), or 0; a map of maps gives
    the inner map's pointer. LRU maps mark the element referenced."""
    m = map_arg(ctx, r1)
    key = _key(ctx, m, r2)
    if m.map_type in _IN_MAP:
        inner = m.inner_lookup(key)  # type: ignore[attr-defined]
        return map_pointer(ctx, inner) if inner is not None else 0
    off = m.lookup_elem(key, from_prog=True)
    return 0 if off is None else map_value_address(ctx, m, off)


def map_update_elem(ctx: Any, r1: int, r2: int, r3: int, r4: int, *_: int) -> int:
    """``bpf_map_update_elem``: the map type's update with the program's flags; a negative errno in R0 on failure."""
    m = map_arg(ctx, r1)
    return m.update_elem(_key(ctx, m, r2), _value_in(ctx, m, r3), r4, from_prog=True)


def map_delete_elem(ctx: Any, r1: int, r2: int, *_: int) -> int:
    """``bpf_map_delete_elem``."""
    m = map_arg(ctx, r1)
    return m.delete_elem(_key(ctx, m, r2))


def map_push_elem(ctx: Any, r1: int, r2: int, r3: int, *_: int) -> int:
    """``bpf_map_push_elem`` (queue, stack, bloom filter); ``BPF_EXIST`` overwrites the oldest element
    of a full queue."""
    m = map_arg(ctx, r1)
    return m.push_elem(_value_in(ctx, m, r2), r3)


def map_pop_elem(ctx: Any, r1: int, r2: int, *_: int) -> int:
    """``bpf_map_pop_elem``: the value is written to the program's buffer even on failure (zeros), as the kernel's
    helper leaves it."""
    m = map_arg(ctx, r1)
    err, value = m.pop_elem()
    ctx.write(r2, value[:m.value_size].ljust(m.value_size, b"\0"))
    return err


def map_peek_elem(ctx: Any, r1: int, r2: int, *_: int) -> int:
    """``bpf_map_peek_elem``."""
    m = map_arg(ctx, r1)
    if m.map_type == MapType.BLOOM_FILTER:
        err, _v = m.peek_elem(_value_in(ctx, m, r2))
        return err
    err, value = m.peek_elem()
    ctx.write(r2, value[:m.value_size].ljust(m.value_size, b"\0"))
    return err


def map_lookup_percpu_elem(ctx: Any, r1: int, r2: int, r3: int, *_: int) -> int:
    """``bpf_map_lookup_percpu_elem``: another CPU's copy; 0 for a CPU number beyond the map's."""
    m = map_arg(ctx, r1)
    cpu = r3 & 0xFFFFFFFF
    if cpu >= m.ncpus:
        return 0
    saved = m.kernel.cpu
    m.kernel.cpu = cpu
    try:
        off = m.lookup_elem(_key(ctx, m, r2), from_prog=True)
    finally:
        m.kernel.cpu = saved
    return 0 if off is None else map_value_address(ctx, m, off)


def for_each_map_elem(ctx: Any, r1: int, r2: int, r3: int, r4: int, *_: int) -> int:
    """``bpf_for_each_map_elem(map, callback, ctx, flags)``: callback(map, key, value, ctx) per
    element until it returns 1; returns the number of elements visited."""
    if r4:
        return -errno.EINVAL
    m = map_arg(ctx, r1)
    mp = map_pointer(ctx, m)
    elems = m.for_each_elem()
    scratch = None
    n = 0
    try:
        for key, koff, voff in elems:
            if koff is None:
                if scratch is None:
                    scratch = ctx.space.add(bytearray(max(8, len(key))), RegionKind.MEM, "for_each key")
                scratch.buf[0:len(key)] = key
                kaddr = scratch.address(0)
            else:
                kaddr = mp + koff
            n += 1
            if ctx.call(r2, mp, kaddr, mp + voff, r3, 0) & _M64:
                break
    finally:
        if scratch is not None:
            ctx.space.remove(scratch)
    return n


def loop(ctx: Any, r1: int, r2: int, r3: int, r4: int, *_: int) -> int:
    """``bpf_loop(nr_loops, callback, ctx, flags)``."""
    if r4:
        return -errno.EINVAL
    nr = r1 & 0xFFFFFFFF
    if nr > BPF_MAX_LOOPS:
        return -errno.E2BIG
    for i in range(nr):
        if ctx.call(r2, i, r3) & _M64:
            return i + 1
    return nr


# -- internal functions (contract 2): what the verifier's fixups call directly --------------------

def _htab_lookup_raw(ctx: Any, r1: int, r2: int, *_: int) -> int:
    """``__htab_map_lookup_elem``: returns the *element* (the inline code steps to the value)."""
    m = map_arg(ctx, r1)
    off = m.lookup_elem_raw(_key(ctx, m, r2))  # type: ignore[attr-defined]
    return 0 if off is None else map_value_address(ctx, m, off)


def _internal_table() -> dict[int, Any]:
    from pybpf.progtypes.internal import INTERNAL_FUNCTIONS

    by_helper = HELPERS  # an internal function runs the helper it replaces
    out: dict[int, Any] = {}
    for f in INTERNAL_FUNCTIONS:
        if f.name == "__htab_map_lookup_elem":
            out[f.id] = _htab_lookup_raw
        elif f.replaces in by_helper:
            out[f.id] = by_helper[f.replaces]
        elif f.replaces == HelperId.redirect_map:
            from pybpf.kernel.helpers.packet import redirect_map

            out[f.id] = redirect_map
    return out


def get_local_storage(ctx: Any, r1: int, r2: int, *_: int) -> int:
    """``bpf_get_local_storage(map, flags)``: the running program's cgroup storage of the map's type —
    in a test run, the fresh storage the run allocated (:mod:`pybpf.kernel.maps.cgroup_storage`);
    this CPU's copy for the per-CPU type."""
    m = map_arg(ctx, r1)
    if not hasattr(m, "run_storage_offset"):
        raise HelperError(f"bpf_get_local_storage: map {m.id} is not a cgroup storage", pc=ctx.pc)
    return map_value_address(ctx, m, m.run_storage_offset(int(getattr(ctx.env, "cpu", 0))))


HELPERS: dict[int, Any] = {
    HelperId.get_local_storage: get_local_storage,
    HelperId.map_lookup_elem: map_lookup_elem,
    HelperId.map_update_elem: map_update_elem,
    HelperId.map_delete_elem: map_delete_elem,
    HelperId.map_push_elem: map_push_elem,
    HelperId.map_pop_elem: map_pop_elem,
    HelperId.map_peek_elem: map_peek_elem,
    HelperId.map_lookup_percpu_elem: map_lookup_percpu_elem,
    HelperId.for_each_map_elem: for_each_map_elem,
    HelperId.loop: loop,
}


def INTERNAL() -> dict[int, Any]:
    """The internal functions of contract 2 by id (the map ops the verifier calls directly), each run by the helper it
    replaces."""
    return _internal_table()
