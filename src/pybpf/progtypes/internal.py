"""Internal functions: the map operations the verifier's fixups call directly (contract 2).

Linux's ``do_misc_fixups`` replaces ``call bpf_map_lookup_elem`` and friends by a direct call of
the map type's operation (``ops->map_update_elem`` → ``htab_map_update_elem``...) or inlines the
map's ``map_gen_lookup`` sequence (which may itself call ``__htab_map_lookup_elem``).
``bpftool prog dump xlated`` shows such calls as ``call htab_map_update_elem#NNN``.

pybpf gives every such function a stable id from this registry: ``0x10000 + position`` in
:data:`INTERNAL_FUNCTIONS` (never reorder; append only), so ids never collide with helper ids. A call
instruction keeps ``src = 0`` and holds the id in ``imm``; engines dispatch it like a helper (the
kernel layer supplies Python implementations, the JIT native ones). Arguments are those of the
helper it replaces (R1 = the map, R2 = key ...), as in the kernel.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cache

from pybpf.progtypes.protos import HelperProto, proto_by_name
from pybpf.uapi import HelperId, MapType

__all__ = [
    "INTERNAL_BASE",
    "INTERNAL_FUNCTIONS",
    "InternalFunction",
    "by_id",
    "by_name",
    "internal_id",
    "is_internal",
    "map_op_function",
]

INTERNAL_BASE = 0x10000

# name, the helper it stands in for (its prototype is the internal function's), map types it serves.
_TABLE: tuple[tuple[str, HelperId, tuple[MapType, ...]], ...] = (
    ("__htab_map_lookup_elem", HelperId.map_lookup_elem, (MapType.HASH, MapType.LRU_HASH, MapType.HASH_OF_MAPS)),
    ("htab_map_update_elem", HelperId.map_update_elem, (MapType.HASH,)),
    ("htab_map_delete_elem", HelperId.map_delete_elem, (MapType.HASH,)),
    ("htab_lru_map_update_elem", HelperId.map_update_elem, (MapType.LRU_HASH,)),
    ("htab_lru_map_delete_elem", HelperId.map_delete_elem, (MapType.LRU_HASH,)),
    ("htab_percpu_map_lookup_elem", HelperId.map_lookup_elem, (MapType.PERCPU_HASH,)),
    ("htab_percpu_map_update_elem", HelperId.map_update_elem, (MapType.PERCPU_HASH,)),
    ("htab_lru_percpu_map_lookup_elem", HelperId.map_lookup_elem, (MapType.LRU_PERCPU_HASH,)),
    ("htab_lru_percpu_map_update_elem", HelperId.map_update_elem, (MapType.LRU_PERCPU_HASH,)),
    ("array_map_lookup_elem", HelperId.map_lookup_elem, (MapType.ARRAY,)),
    ("array_map_update_elem", HelperId.map_update_elem, (MapType.ARRAY, MapType.PERCPU_ARRAY)),
    ("array_map_delete_elem", HelperId.map_delete_elem, (MapType.ARRAY, MapType.PERCPU_ARRAY)),
    ("percpu_array_map_lookup_elem", HelperId.map_lookup_elem, (MapType.PERCPU_ARRAY,)),
    ("array_of_map_lookup_elem", HelperId.map_lookup_elem, (MapType.ARRAY_OF_MAPS,)),
    ("htab_of_map_lookup_elem", HelperId.map_lookup_elem, (MapType.HASH_OF_MAPS,)),
    ("trie_lookup_elem", HelperId.map_lookup_elem, (MapType.LPM_TRIE,)),
    ("trie_update_elem", HelperId.map_update_elem, (MapType.LPM_TRIE,)),
    ("trie_delete_elem", HelperId.map_delete_elem, (MapType.LPM_TRIE,)),
    ("queue_stack_map_push_elem", HelperId.map_push_elem, (MapType.QUEUE, MapType.STACK)),
    ("queue_map_pop_elem", HelperId.map_pop_elem, (MapType.QUEUE,)),
    ("queue_map_peek_elem", HelperId.map_peek_elem, (MapType.QUEUE,)),
    ("stack_map_pop_elem", HelperId.map_pop_elem, (MapType.STACK,)),
    ("stack_map_peek_elem", HelperId.map_peek_elem, (MapType.STACK,)),
    ("bloom_map_push_elem", HelperId.map_push_elem, (MapType.BLOOM_FILTER,)),
    ("bloom_map_peek_elem", HelperId.map_peek_elem, (MapType.BLOOM_FILTER,)),
    ("dev_map_redirect", HelperId.redirect_map, (MapType.DEVMAP,)),
    ("dev_hash_map_redirect", HelperId.redirect_map, (MapType.DEVMAP_HASH,)),
    ("cpu_map_redirect", HelperId.redirect_map, (MapType.CPUMAP,)),
    ("xsk_map_redirect", HelperId.redirect_map, (MapType.XSKMAP,)),
    ("bpf_for_each_array_elem", HelperId.for_each_map_elem, (MapType.ARRAY, MapType.PERCPU_ARRAY)),
    ("bpf_for_each_hash_elem", HelperId.for_each_map_elem,
     (MapType.HASH, MapType.LRU_HASH, MapType.PERCPU_HASH, MapType.LRU_PERCPU_HASH)),
    ("percpu_array_map_lookup_percpu_elem", HelperId.map_lookup_percpu_elem, (MapType.PERCPU_ARRAY,)),
    ("htab_percpu_map_lookup_percpu_elem", HelperId.map_lookup_percpu_elem, (MapType.PERCPU_HASH,)),
    ("htab_lru_percpu_map_lookup_percpu_elem", HelperId.map_lookup_percpu_elem, (MapType.LRU_PERCPU_HASH,)),
)

_HELPER_PROTO = {
    HelperId.map_lookup_elem: "bpf_map_lookup_elem_proto",
    HelperId.map_update_elem: "bpf_map_update_elem_proto",
    HelperId.map_delete_elem: "bpf_map_delete_elem_proto",
    HelperId.map_push_elem: "bpf_map_push_elem_proto",
    HelperId.map_pop_elem: "bpf_map_pop_elem_proto",
    HelperId.map_peek_elem: "bpf_map_peek_elem_proto",
    HelperId.redirect_map: "bpf_xdp_redirect_map_proto",
    HelperId.for_each_map_elem: "bpf_for_each_map_elem_proto",
    HelperId.map_lookup_percpu_elem: "bpf_map_lookup_percpu_elem_proto",
}


@dataclass(frozen=True, slots=True)
class InternalFunction:
    """One internal function: its id (``imm`` of the call), kernel name, the helper it replaces,
    the map types it serves, and its prototype (that of the replaced helper)."""

    id: int
    name: str
    replaces: HelperId
    map_types: tuple[MapType, ...]
    proto: HelperProto


INTERNAL_FUNCTIONS: tuple[InternalFunction, ...] = tuple(
    InternalFunction(
        INTERNAL_BASE + i, name, helper, types,
        replace(proto_by_name(_HELPER_PROTO[helper]), name=name, func=name),
    )
    for i, (name, helper, types) in enumerate(_TABLE)
)


@cache
def _by_name() -> dict[str, InternalFunction]:
    return {f.name: f for f in INTERNAL_FUNCTIONS}


def is_internal(func_id: int) -> bool:
    """True for ids in the internal-function range (a call with ``src=0`` and such an ``imm``)."""
    return INTERNAL_BASE <= func_id < INTERNAL_BASE + len(INTERNAL_FUNCTIONS)


def by_id(func_id: int) -> InternalFunction:
    """The internal function with id ``func_id``; KeyError if none."""
    if not is_internal(func_id):
        raise KeyError(f"no internal function with id {func_id:#x}")
    return INTERNAL_FUNCTIONS[func_id - INTERNAL_BASE]


def by_name(name: str) -> InternalFunction:
    return _by_name()[name]


def internal_id(name: str) -> int:
    """``internal_id("htab_map_update_elem")`` -> its call ``imm``."""
    return _by_name()[name].id


def map_op_function(map_type: int, helper: int) -> InternalFunction | None:
    """The internal function a call of ``helper`` on a map of ``map_type`` becomes, if Linux
    replaces it (``do_misc_fixups``); ``None`` where the helper call stays."""
    for f in INTERNAL_FUNCTIONS:
        if f.replaces == helper and map_type in f.map_types:
            return f
    return None
