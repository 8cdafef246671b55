"""Map types with Linux semantics over native storage: one module per family.

``map_class(map_type)`` gives the implementing class (KeyError for a type pybpf does not have).
"""

from __future__ import annotations

from pybpf.kernel.maps.base import Map, MapAttrs, MapMeta, key_hash

__all__ = ["Map", "MapAttrs", "MapMeta", "key_hash", "map_class", "supported_map_types"]

_REGISTRY: dict[int, type[Map]] = {}


def _register() -> None:
    from pybpf.kernel.maps import (
        array,
        bloom,
        cgroup_storage,
        devmap,
        fd_array,
        hash,
        lpm_trie,
        perf_event_array,
        queue_stack,
        ringbuf,
        sk_storage,
        xskmap,
    )

    for mod in (array, hash, lpm_trie, queue_stack, ringbuf, fd_array, devmap, bloom, perf_event_array,
                cgroup_storage, sk_storage, xskmap):
        for cls in mod.MAP_CLASSES:
            for t in cls.map_types:
                _REGISTRY[int(t)] = cls


def map_class(map_type: int) -> type[Map]:
    """The class implementing ``map_type``; KeyError if pybpf has none."""
    if not _REGISTRY:
        _register()
    return _REGISTRY[int(map_type)]


def supported_map_types() -> list[int]:
    """The map types pybpf implements, by number."""
    if not _REGISTRY:
        _register()
    return sorted(_REGISTRY)
