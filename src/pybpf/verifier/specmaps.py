"""Maps for verification only: a :class:`~pybpf.verifier.env.MapLike` built from a map
description (an ELF reader ``MapSpec`` or anything with the same attributes), without creating a
kernel object. ``pybpf verify`` and the scoreboard use them to check programs without side effects;
a real load goes through the kernel layer's maps instead (which also inline lookups).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["SpecMap", "maps_from_specs"]


@dataclass
class SpecMap:
    """A MapLike from a description: attributes, BTF-derived special fields, frozen contents."""

    id: int
    name: str
    map_type: int
    key_size: int
    value_size: int
    max_entries: int
    map_flags: int = 0
    frozen: bool = False
    data: bytes | None = None
    inner_map_meta: Any = None
    btf_fields: tuple[tuple[str, int, int], ...] = ()
    has_btf: bool = True

    def direct_read(self, off: int, size: int) -> bytes | None:
        """Contents of the (single) value, for read-only frozen maps (``.rodata``)."""
        if self.data is None:
            return bytes(size) if self.frozen and off >= 0 and off + size <= self.value_size else None
        buf = self.data.ljust(self.value_size, b"\0")
        if off < 0 or off + size > len(buf):
            return None
        return buf[off : off + size]


_SPECIAL_SIZES = {"bpf_spin_lock": 4, "bpf_timer": 16, "bpf_wq": 16, "bpf_list_head": 16, "bpf_rb_root": 16}


def special_fields_from_btf(btf: Any, type_id: int) -> tuple[tuple[str, int, int], ...]:
    """``(kind, offset, size)`` of the special members of a BTF struct (bpf_spin_lock, bpf_timer...)."""
    if btf is None or not type_id:
        return ()
    try:
        t = btf.type_by_id(type_id)
        while not hasattr(t, "members") and hasattr(t, "type"):
            t = btf.type_by_id(t.type)
        if not hasattr(t, "members"):
            return ()
        out: list[tuple[str, int, int]] = []
        for mem in t.members:
            mt = btf.type_by_id(mem.type)
            while not getattr(mt, "name", "") and hasattr(mt, "type") and not hasattr(mt, "members"):
                mt = btf.type_by_id(mt.type)
            name = getattr(mt, "name", "")
            if name in _SPECIAL_SIZES:
                out.append((name, mem.bits_offset // 8, _SPECIAL_SIZES[name]))
        return tuple(out)
    except Exception:
        return ()


def maps_from_specs(specs: Mapping[str, Any], btf: Any = None, *, first_id: int = 1,
                    first_fd: int = 1000) -> tuple[dict[str, SpecMap], dict[str, int]]:
    """``(maps by name, fds by name)`` for an object's map specs: fds from ``first_fd`` on
    (what the program's lddw's carry), ids from ``first_id``."""
    maps: dict[str, SpecMap] = {}
    fds: dict[str, int] = {}
    for i, (name, ms) in enumerate(specs.items()):
        inner = None
        if getattr(ms, "inner_map", None) is not None:
            im = ms.inner_map
            inner = SpecMap(0, im.name, int(im.type), im.key_size, im.value_size, im.max_entries, im.flags)
        maps[name] = SpecMap(
            id=first_id + i, name=name[:15], map_type=int(ms.type), key_size=ms.key_size,
            value_size=ms.value_size, max_entries=ms.max_entries, map_flags=ms.flags,
            frozen=bool(getattr(ms, "frozen", False)), data=getattr(ms, "data", None), inner_map_meta=inner,
            btf_fields=special_fields_from_btf(btf, getattr(ms, "value_type_id", 0)),
            has_btf=bool(getattr(ms, "value_type_id", 0)),
        )
        fds[name] = first_fd + i
    return maps, fds
