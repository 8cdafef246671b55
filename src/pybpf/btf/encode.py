"""Types back to a ``.BTF`` blob: the inverse of :meth:`BtfSpec.from_bytes`.

Why: tests build BTF without a compiler (malformed cases, CO-RE targets), and the bpf(2) layer needs
bytes for ``BPF_BTF_LOAD`` after it has fixed up a spec (libbpf rewrites DATASEC sizes and extern
VARs before loading). The string table is rebuilt (deduplicated, in first-use order), so a parsed
blob re-encodes to an equivalent blob, not necessarily the identical one — unless the encoder is
given the original string table (``StringTable(seed)``): then every string keeps its offset and new
ones are appended, as libbpf's in-place edits do, so line info (whose file names and source text
live in that table, referenced by offset from ``.BTF.ext``) stays valid.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Sequence

from pybpf.btf.spec import BTF_MAGIC
from pybpf.btf.types import (
    Array,
    BtfType,
    Const,
    Datasec,
    DeclTag,
    Enum,
    Enum64,
    Float,
    Func,
    FuncProto,
    Fwd,
    Int,
    Ptr,
    Restrict,
    Struct,
    Typedef,
    TypeTag,
    Union,
    Var,
    Void,
    Volatile,
)
from pybpf.errors import BtfError

__all__ = ["StringTable", "encode_btf"]


class StringTable:
    """A deduplicating NUL-separated string table; offset 0 is the empty string."""

    def __init__(self, seed: bytes = b"\0") -> None:
        """A table holding ``seed`` (a BTF string section: NUL first and last) at its offsets."""
        if not seed.startswith(b"\0") or not seed.endswith(b"\0"):
            raise BtfError("a BTF string table starts and ends with a NUL byte")
        self._data = bytearray(seed)
        self._offsets: dict[str, int] = {"": 0}
        start = 1
        while start < len(seed):
            end = seed.index(b"\0", start)
            with contextlib.suppress(UnicodeDecodeError):
                self._offsets.setdefault(seed[start:end].decode(), start)
            start = end + 1

    def add(self, s: str) -> int:
        """The offset of ``s``, appending it the first time."""
        off = self._offsets.get(s)
        if off is None:
            off = len(self._data)
            self._data += s.encode() + b"\0"
            self._offsets[s] = off
        return off

    def bytes(self) -> bytes:
        """The table as it goes into the BTF blob."""
        return bytes(self._data)


def _info(kind: int, vlen: int = 0, kflag: bool = False) -> int:
    if not 0 <= vlen <= 0xFFFF:
        raise BtfError(f"vlen {vlen} does not fit in 16 bits")
    return (int(kflag) << 31) | (kind << 24) | vlen


def encode_btf(types: Sequence[BtfType], *, strings: StringTable | None = None) -> bytes:
    """Encode ``types`` (``types[0]`` is void and not emitted) as a little-endian BTF blob."""
    try:
        return _encode(types, strings)
    except struct.error as e:
        raise BtfError(f"cannot encode BTF: a field is out of range ({e})") from None


def _encode(types: Sequence[BtfType], strings: StringTable | None) -> bytes:
    if not types or not isinstance(types[0], Void):
        raise BtfError("types[0] must be Void")
    st = strings or StringTable()
    out = bytearray()
    put = out.extend
    for t in types[1:]:
        name = st.add(t.name)
        k = int(t.kind)
        if isinstance(t, Int):
            put(struct.pack("<III", name, _info(k), t.size))
            put(struct.pack("<I", (int(t.encoding) << 24) | (t.bits_offset << 16) | t.nr_bits))
        elif isinstance(t, Ptr | Typedef | Volatile | Const | Restrict | TypeTag):
            put(struct.pack("<III", name, _info(k), t.type))
        elif isinstance(t, Array):
            put(struct.pack("<III", name, _info(k), 0))
            put(struct.pack("<III", t.type, t.index_type, t.nelems))
        elif isinstance(t, Struct | Union):
            put(struct.pack("<III", name, _info(k, len(t.members), t.kflag), t.size))
            for m in t.members:
                off = (m.bitfield_size << 24) | m.bits_offset if t.kflag else m.bits_offset
                if not t.kflag and m.bitfield_size:
                    raise BtfError(f"{t.kind} '{t.name}': bitfield member '{m.name}' needs kflag")
                put(struct.pack("<III", st.add(m.name), m.type, off))
        elif isinstance(t, Enum):
            put(struct.pack("<III", name, _info(k, len(t.values), t.signed), t.size))
            for v in t.values:
                put(struct.pack("<II", st.add(v.name), v.value & 0xFFFFFFFF))
        elif isinstance(t, Enum64):
            put(struct.pack("<III", name, _info(k, len(t.values), t.signed), t.size))
            for v in t.values:
                val = v.value & 0xFFFFFFFFFFFFFFFF
                put(struct.pack("<III", st.add(v.name), val & 0xFFFFFFFF, val >> 32))
        elif isinstance(t, Fwd):
            put(struct.pack("<III", name, _info(k, 0, t.is_union), 0))
        elif isinstance(t, Func):
            put(struct.pack("<III", name, _info(k, int(t.linkage)), t.type))
        elif isinstance(t, FuncProto):
            put(struct.pack("<III", name, _info(k, len(t.params)), t.ret))
            for p in t.params:
                put(struct.pack("<II", st.add(p.name), p.type))
        elif isinstance(t, Var):
            put(struct.pack("<III", name, _info(k), t.type))
            put(struct.pack("<I", int(t.linkage)))
        elif isinstance(t, Datasec):
            put(struct.pack("<III", name, _info(k, len(t.vars)), t.size))
            for v in t.vars:
                put(struct.pack("<III", v.type, v.offset, v.size))
        elif isinstance(t, Float):
            put(struct.pack("<III", name, _info(k), t.size))
        elif isinstance(t, DeclTag):
            put(struct.pack("<III", name, _info(k), t.type))
            put(struct.pack("<i", t.component_idx))
        else:
            raise BtfError(f"cannot encode {type(t).__name__}")
    strs = st.bytes()
    hdr = struct.pack("<HBBIIIII", BTF_MAGIC, 1, 0, 24, 0, len(out), len(out), len(strs))
    return hdr + bytes(out) + strs
