"""Map keys and values seen through BTF: Python values, ctypes types, and bpftool's formatting.

Two consumers: the Pythonic map API (``coll.maps["counter"][0]`` gives an ``int`` when the map's key
and value types are known) and ``pybpf map dump``, which prints what ``bpftool map dump`` prints for
maps with BTF (``btf_dumper.c``: integers by size and signedness, ``char`` arrays as strings when
they hold a NUL-terminated printable string, enums by enumerator name, structs as objects,
bitfields and 128-bit integers as hex).

:func:`btf_decode` returns plain JSON-able Python values; :func:`btf_encode` goes back (integers,
strings for char arrays, dicts/lists for structs/arrays); :func:`btf_ctype` builds the equivalent
``ctypes`` type for callers that prefer structured objects.
"""

from __future__ import annotations

import ctypes
from typing import Any

from pybpf.btf import (
    Array,
    BtfSpec,
    Const,
    Datasec,
    Enum,
    Enum64,
    Float,
    Int,
    IntEncoding,
    Ptr,
    Restrict,
    Struct,
    Typedef,
    TypeTag,
    Union,
    Var,
    Volatile,
)
from pybpf.errors import BtfError

__all__ = ["btf_ctype", "btf_decode", "btf_encode", "btf_size"]

_MODS = (Typedef, Const, Volatile, Restrict, TypeTag)


def _resolve(spec: BtfSpec, tid: int) -> tuple[int, Any]:
    seen = 0
    t = spec.type_by_id(tid)
    while isinstance(t, _MODS):
        tid = t.type
        t = spec.type_by_id(tid)
        seen += 1
        if seen > 64:
            raise BtfError("BTF modifier chain too long")
    return tid, t


def btf_size(spec: BtfSpec, tid: int) -> int:
    return spec.resolve_size(tid)


def _is_str_array(spec: BtfSpec, arr: Array, data: bytes) -> bool:
    if not arr.nelems:
        return False
    et = spec.type_by_id(arr.type)
    while isinstance(et, (Const, Volatile, Restrict, TypeTag)):
        et = spec.type_by_id(et.type)
    if not isinstance(et, Int) or et.size != 1:
        return False
    if not et.encoding & IntEncoding.CHAR and et.name != "char":
        return False
    for b in data[:arr.nelems]:
        if not b:
            return True
        if b <= 0x1F or b >= 0x7F:
            return False
    return False


def _bits(data: bytes, bit_offset: int, nr_bits: int) -> int:
    whole = int.from_bytes(data[:(bit_offset + nr_bits + 7) // 8], "little")
    return (whole >> bit_offset) & ((1 << nr_bits) - 1)


def _hex(v: int, plain: bool) -> Any:
    text = f"{v:#x}"
    return _Raw(text) if plain else text


class _Raw(str):
    """A value bpftool prints without quotes in plain mode (hex numbers, pointers)."""


def btf_decode(spec: BtfSpec, tid: int, data: bytes, *, plain: bool = False, bit_offset: int = 0) -> Any:
    """The value of type ``tid`` stored in ``data``, as bpftool's BTF dumper shows it."""
    t = spec.type_by_id(tid)
    if isinstance(t, _MODS):
        _rid, _t = _resolve(spec, tid)
        return btf_decode(spec, _rid, data, plain=plain, bit_offset=bit_offset)
    if isinstance(t, Int):
        nr = t.nr_bits or t.size * 8
        if bit_offset or t.bits_offset or nr % 8:
            return _hex(_bits(data, bit_offset + t.bits_offset, nr), plain)
        if nr == 128:
            return _hex(int.from_bytes(data[:16], "little"), plain)
        raw = data[:t.size]
        if t.encoding & IntEncoding.BOOL:
            return bool(raw[0]) if raw else False
        if t.encoding & IntEncoding.CHAR:
            c = raw[0] if raw else 0
            if 0x20 <= c < 0x7F:
                return chr(c)
            return _Raw(f"{c:#x}") if plain else f"\\u00{c:02x}"
        return int.from_bytes(raw, "little", signed=t.is_signed)
    if isinstance(t, (Struct, Union)):
        out: dict[str, Any] = {}
        for m in t.members:
            off = m.bits_offset
            chunk = data[off // 8:]
            if m.bitfield_size:
                out[m.name] = _hex(_bits(chunk, off % 8, m.bitfield_size), plain)
            else:
                out[m.name] = btf_decode(spec, m.type, chunk, plain=plain, bit_offset=off % 8)
        return out
    if isinstance(t, Array):
        if _is_str_array(spec, t, data):
            return data[:t.nelems].split(b"\0", 1)[0].decode("latin-1")
        esize = spec.resolve_size(t.type)
        return [btf_decode(spec, t.type, data[i * esize:], plain=plain) for i in range(t.nelems)]
    if isinstance(t, (Enum, Enum64)):
        size = t.size
        if isinstance(t, Enum64):
            value = int.from_bytes(data[:8], "little")
            for ev in t.values:
                if ev.value & ((1 << 64) - 1) == value:
                    return ev.name
            return value
        value = int.from_bytes(data[:size], "little", signed=True)
        for ev in t.values:
            if ev.value == value or (ev.value & ((1 << (8 * size)) - 1)) == (value & ((1 << (8 * size)) - 1)):
                return ev.name
        return value
    if isinstance(t, Ptr):
        v = int.from_bytes(data[:8], "little")
        return _Raw(f'"{v:#x}"') if plain else v
    if isinstance(t, Float):
        import struct as _s

        fmt = {4: "<f", 8: "<d"}.get(t.size)
        return _s.unpack(fmt, data[:t.size])[0] if fmt else data[:t.size].hex()
    if isinstance(t, Var):
        return {t.name: btf_decode(spec, t.type, data, plain=plain)}
    if isinstance(t, Datasec):
        return {t.name: [btf_decode(spec, v.type, data[v.offset:], plain=plain) for v in t.vars]}
    return "(unsupported-kind"


def btf_encode(spec: BtfSpec, tid: int, value: Any) -> bytes:
    """Bytes for ``value`` as type ``tid`` (integers, enum names, strings for char arrays, dicts for
    structs, lists for arrays); ``bytes`` pass through (padded/truncated to the size)."""
    size = spec.resolve_size(tid)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)[:size].ljust(size, b"\0")
    rid, t = _resolve(spec, tid)
    buf = bytearray(size)
    if isinstance(t, Int):
        if isinstance(value, str) and len(value) == 1:
            value = ord(value)
        n = int(value)
        nr = t.nr_bits or t.size * 8
        if nr % 8 or t.bits_offset:
            n = (n & ((1 << nr) - 1)) << t.bits_offset
            return n.to_bytes(size, "little")
        return (n & ((1 << (8 * t.size)) - 1)).to_bytes(t.size, "little")
    if isinstance(t, (Enum, Enum64)):
        if isinstance(value, str):
            for ev in t.values:
                if ev.name == value:
                    value = ev.value
                    break
            else:
                raise ValueError(f"{value!r} is not an enumerator of {t.name or 'enum'}")
        return (int(value) & ((1 << (8 * t.size)) - 1)).to_bytes(t.size, "little")
    if isinstance(t, Ptr):
        return (int(value) & ((1 << 64) - 1)).to_bytes(8, "little")
    if isinstance(t, Array):
        esize = spec.resolve_size(t.type)
        if isinstance(value, str):
            raw = value.encode("latin-1")
            return raw[:size].ljust(size, b"\0")
        for i, v in enumerate(value):
            if i >= t.nelems:
                raise ValueError(f"too many elements for an array of {t.nelems}")
            buf[i * esize:(i + 1) * esize] = btf_encode(spec, t.type, v)
        return bytes(buf)
    if isinstance(t, (Struct, Union)):
        if not isinstance(value, dict):
            raise TypeError(f"a {t.name or 'struct'} value must be a dict of member values")
        names = {m.name for m in t.members}
        unknown = set(value) - names
        if unknown:
            raise ValueError(f"unknown members: {', '.join(sorted(unknown))}")
        for m in t.members:
            if m.name not in value:
                continue
            off = m.bits_offset
            if m.bitfield_size or off % 8:
                bits = m.bitfield_size or spec.resolve_size(m.type) * 8
                whole = int.from_bytes(buf, "little")
                mask = ((1 << bits) - 1) << off
                whole = (whole & ~mask) | ((int(value[m.name]) << off) & mask)
                buf[:] = whole.to_bytes(size, "little")
                continue
            raw = btf_encode(spec, m.type, value[m.name])
            buf[off // 8:off // 8 + len(raw)] = raw
        return bytes(buf)
    raise ValueError(f"cannot encode a value of BTF type id {rid}")


_INT_CTYPES = {
    (1, False): ctypes.c_uint8, (1, True): ctypes.c_int8,
    (2, False): ctypes.c_uint16, (2, True): ctypes.c_int16,
    (4, False): ctypes.c_uint32, (4, True): ctypes.c_int32,
    (8, False): ctypes.c_uint64, (8, True): ctypes.c_int64,
}


def btf_ctype(spec: BtfSpec, tid: int, _cache: dict[int, Any] | None = None) -> Any:
    """A ctypes type with the layout of BTF type ``tid`` (structs become Structure subclasses)."""
    cache = _cache if _cache is not None else {}
    if tid in cache:
        return cache[tid]
    rid, t = _resolve(spec, tid)
    if isinstance(t, Int):
        ct = ctypes.c_bool if t.encoding & IntEncoding.BOOL else _INT_CTYPES.get((t.size, t.is_signed))
        if ct is None:
            ct = ctypes.c_uint8 * t.size
    elif isinstance(t, (Enum, Enum64)):
        ct = _INT_CTYPES[(t.size, bool(getattr(t, "signed", False)))]
    elif isinstance(t, Ptr):
        ct = ctypes.c_uint64
    elif isinstance(t, Float):
        ct = {4: ctypes.c_float, 8: ctypes.c_double}.get(t.size, ctypes.c_uint8 * t.size)
    elif isinstance(t, Array):
        ct = btf_ctype(spec, t.type, cache) * t.nelems
    elif isinstance(t, (Struct, Union)):
        base = ctypes.Structure if isinstance(t, Struct) else ctypes.Union
        ct = type(t.name or f"anon_{rid}", (base,), {"_pack_": 1})
        cache[tid] = ct
        fields: list[tuple[Any, ...]] = []
        pos = 0
        pad = 0
        for m in t.members:
            off = m.bits_offset // 8
            if isinstance(t, Struct) and off > pos:
                fields.append((f"_pad{pad}", ctypes.c_uint8 * (off - pos)))
                pad += 1
                pos = off
            mct = btf_ctype(spec, m.type, cache)
            if m.bitfield_size:
                fields.append((m.name or f"_bf{pad}", ctypes.c_uint32, m.bitfield_size))
                pad += 1
                continue
            fields.append((m.name or f"_anon{pad}", mct))
            pad += 1
            if isinstance(t, Struct):
                pos = off + ctypes.sizeof(mct)
        if isinstance(t, Struct) and pos < t.size:
            fields.append((f"_pad{pad}", ctypes.c_uint8 * (t.size - pos)))
        ct._fields_ = fields
        return ct
    else:
        ct = ctypes.c_uint8 * spec.resolve_size(rid)
    cache[tid] = ct
    return ct
