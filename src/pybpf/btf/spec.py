"""``BtfSpec``: a parsed ``.BTF`` blob — the type table, the string table and the graph questions.

Parsing is a border: every malformed input (short header, offsets outside the blob, unknown kinds,
type ids that point nowhere, names outside the string table) becomes a :class:`~pybpf.errors.BtfError`
naming the type id and what is wrong; nothing foreign escapes. All loops are bounded by counts read
from the blob and checked against its length, and graph walks (size, alignment, modifier chains) are
bounded the way libbpf bounds them (``MAX_RESOLVE_DEPTH``), so a cyclic or hostile graph cannot hang.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from pybpf.btf.types import (
    MODIFIER_KINDS,
    Array,
    BtfKind,
    BtfType,
    Const,
    Datasec,
    DeclTag,
    Enum,
    Enum64,
    EnumValue,
    Float,
    Func,
    FuncLinkage,
    FuncProto,
    Fwd,
    Int,
    IntEncoding,
    Member,
    Param,
    Ptr,
    Restrict,
    Struct,
    Typedef,
    TypeTag,
    Union,
    Var,
    VarLinkage,
    VarSecinfo,
    Void,
    Volatile,
)
from pybpf.errors import BtfError

__all__ = ["BTF_MAGIC", "MAX_RESOLVE_DEPTH", "BtfSpec", "essential_name"]

BTF_MAGIC = 0xEB9F
BTF_VERSION = 1
MAX_RESOLVE_DEPTH = 32  # libbpf's bound on typedef/modifier/array chains
_HDR_MIN = 24

T = TypeVar("T")


@dataclass(slots=True, eq=False)
class BtfSpec:
    """Parsed BTF: ``types[id]`` (``types[0]`` is ``void``), the string table, lookups by name.

    Immutable in practice (types are frozen dataclasses, the tuple is never rebuilt); ``raw`` keeps
    the original bytes for ``BPF_BTF_LOAD``.
    """

    types: tuple[BtfType, ...]
    strings: bytes
    raw: bytes = b""
    byteorder: str = "little"
    pointer_size: int = 8
    _by_name: dict[str, list[int]] = field(default_factory=dict, repr=False)
    _by_essential: dict[str, list[int]] | None = field(default=None, repr=False)

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> BtfSpec:
        """Parse a ``.BTF`` section (or ``/sys/kernel/btf/vmlinux``)."""
        raw = bytes(data)
        if len(raw) < _HDR_MIN:
            raise BtfError(f"BTF too short: {len(raw)} bytes, the header alone is {_HDR_MIN}")
        (magic,) = struct.unpack_from("<H", raw, 0)
        if magic == BTF_MAGIC:
            bo, order = "<", "little"
        elif magic == 0x9FEB:
            bo, order = ">", "big"
        else:
            raise BtfError(f"invalid BTF magic {magic:#06x} (expected {BTF_MAGIC:#06x})")
        version, _flags, hdr_len = struct.unpack_from(bo + "BBI", raw, 2)
        if version != BTF_VERSION:
            raise BtfError(f"unsupported BTF version {version}")
        if hdr_len < _HDR_MIN or hdr_len > len(raw):
            raise BtfError(f"invalid BTF header length {hdr_len} (blob is {len(raw)} bytes)")
        type_off, type_len, str_off, str_len = struct.unpack_from(bo + "IIII", raw, 8)
        body = len(raw) - hdr_len
        if type_off + type_len > body or str_off + str_len > body:
            raise BtfError(
                f"BTF sections out of bounds: types at {type_off}+{type_len}, strings at "
                f"{str_off}+{str_len}, {body} bytes after the header"
            )
        if type_off % 4:
            raise BtfError(f"BTF type section offset {type_off} is not 4-byte aligned")
        if type_off < str_off < type_off + type_len or str_off < type_off < str_off + str_len:
            raise BtfError("BTF type and string sections overlap")
        strings = raw[hdr_len + str_off : hdr_len + str_off + str_len]
        if not strings or strings[0] != 0 or strings[-1] != 0:
            raise BtfError("invalid BTF string section: must start and end with a NUL byte")
        type_data = raw[hdr_len + type_off : hdr_len + type_off + type_len]
        types = _parse_types(type_data, strings, bo)
        spec = cls(types=tuple(types), strings=strings, raw=raw, byteorder=order)
        spec._validate()
        spec._index()
        return spec

    @classmethod
    def from_types(cls, types: list[BtfType] | tuple[BtfType, ...], *, strings: bytes | None = None) -> BtfSpec:
        """Build a spec from types (``types[0]`` must be :class:`Void`); the string table and
        ``raw`` come from encoding them (see :mod:`pybpf.btf.encode`). ``strings``: a string table
        to keep (every string at its offset, new names appended) — a fixed-up copy of a parsed spec
        passes ``spec.strings`` so offsets recorded elsewhere (line info) still hold."""
        from pybpf.btf.encode import StringTable, encode_btf

        raw = encode_btf(types, strings=StringTable(strings) if strings is not None else None)
        return cls.from_bytes(raw)

    def _index(self) -> None:
        by_name: dict[str, list[int]] = {}
        for tid, t in enumerate(self.types):
            if t.name:
                by_name.setdefault(t.name, []).append(tid)
        self._by_name = by_name

    def _validate(self) -> None:
        n = len(self.types)
        for tid, t in enumerate(self.types):
            for ref in _refs(t):
                if not 0 <= ref < n:
                    raise BtfError(f"type [{tid}] {t.kind}: references type [{ref}], but there are only {n} types")
            if isinstance(t, Datasec):
                for v in t.vars:
                    if v.type == 0 or self.types[v.type].kind not in (BtfKind.VAR, BtfKind.FUNC):
                        raise BtfError(f"type [{tid}] DATASEC '{t.name}': entry [{v.type}] is not a VAR")
            if isinstance(t, Func) and (t.type == 0 or self.types[t.type].kind != BtfKind.FUNC_PROTO):
                raise BtfError(f"type [{tid}] FUNC '{t.name}': type [{t.type}] is not a FUNC_PROTO")

    # -- access ---------------------------------------------------------------------------
    def __len__(self) -> int:
        """The number of types including ``void`` (libbpf's ``btf__type_cnt``)."""
        return len(self.types)

    def __iter__(self) -> Iterator[tuple[int, BtfType]]:
        return iter(enumerate(self.types))

    def type_by_id(self, tid: int) -> BtfType:
        """``types[tid]``, or a :class:`BtfError` for an id outside the table (ids come from data)."""
        if not 0 <= tid < len(self.types):
            raise BtfError(f"type id {tid} out of range (0..{len(self.types) - 1})")
        return self.types[tid]

    def typed(self, tid: int, kind: type[T]) -> T:
        """``type_by_id`` checked to be of one class."""
        t = self.type_by_id(tid)
        if not isinstance(t, kind):
            raise BtfError(f"type [{tid}] is {t.kind}, expected {kind.__name__.upper()}")
        return t

    def string_at(self, off: int) -> str:
        """The NUL-terminated string at ``off`` in the string table."""
        return _string_at(self.strings, off)

    def find(self, name: str, kind: BtfKind | None = None) -> list[int]:
        """All type ids named ``name`` (optionally of one kind), in id order."""
        ids = self._by_name.get(name, [])
        if kind is None:
            return list(ids)
        return [i for i in ids if self.types[i].kind == kind]

    def find_essential(self, name: str) -> list[int]:
        """Type ids whose name minus a ``___flavor`` suffix is ``name`` (CO-RE candidate search)."""
        if self._by_essential is None:
            index: dict[str, list[int]] = {}
            for tid, t in enumerate(self.types):
                if t.name:
                    index.setdefault(essential_name(t.name), []).append(tid)
            self._by_essential = index
        return list(self._by_essential.get(name, []))

    def find_one(self, name: str, kind: BtfKind | None = None) -> int | None:
        """The first type id named ``name`` (optionally of one kind), or ``None``."""
        ids = self.find(name, kind)
        return ids[0] if ids else None

    # -- graph questions (libbpf semantics) -----------------------------------------------
    def skip_mods_and_typedefs(self, tid: int) -> int:
        """Follow typedefs and const/volatile/restrict/type tags to the underlying type id."""
        for _ in range(MAX_RESOLVE_DEPTH):
            t = self.type_by_id(tid)
            if t.kind in MODIFIER_KINDS or t.kind == BtfKind.TYPEDEF:
                tid = t.type  # type: ignore[union-attr]
                continue
            return tid
        raise BtfError(f"type [{tid}]: modifier/typedef chain longer than {MAX_RESOLVE_DEPTH}")

    def skip_mods(self, tid: int) -> int:
        """Follow const/volatile/restrict/type tags (not typedefs) to the underlying type id."""
        for _ in range(MAX_RESOLVE_DEPTH):
            t = self.type_by_id(tid)
            if t.kind in MODIFIER_KINDS:
                tid = t.type  # type: ignore[union-attr]
                continue
            return tid
        raise BtfError(f"type [{tid}]: modifier chain longer than {MAX_RESOLVE_DEPTH}")

    def resolve_size(self, tid: int) -> int:
        """Size in bytes of type ``tid``, as libbpf's ``btf__resolve_size`` (arrays multiply)."""
        orig = tid
        nelems = 1
        for _ in range(MAX_RESOLVE_DEPTH):
            t = self.type_by_id(tid)
            if tid == 0:
                break
            if isinstance(t, Int | Struct | Union | Enum | Enum64 | Datasec | Float):
                size = t.size
                if nelems and size > 0xFFFFFFFF // nelems:
                    raise BtfError(f"type [{orig}]: size overflows 32 bits")
                return nelems * size
            if isinstance(t, Ptr):
                return nelems * self.pointer_size
            if isinstance(t, Array):
                if nelems and t.nelems > 0xFFFFFFFF // nelems:
                    raise BtfError(f"type [{orig}]: array size overflows 32 bits")
                nelems *= t.nelems
                tid = t.type
                continue
            if t.kind in (BtfKind.TYPEDEF, BtfKind.VAR, BtfKind.DECL_TAG) or t.kind in MODIFIER_KINDS:
                tid = t.type  # type: ignore[union-attr]
                continue
            raise BtfError(f"type [{orig}]: cannot determine the size of {t.kind}")
        raise BtfError(f"type [{orig}]: cannot determine size (void or chain too long)")

    def align_of(self, tid: int, _depth: int = 0) -> int:
        """Alignment in bytes, as libbpf's ``btf__align_of``: 0 where a kind has none (void, funcs)."""
        if _depth > MAX_RESOLVE_DEPTH:
            raise BtfError(f"type [{tid}]: type graph too deep to compute alignment")
        t = self.type_by_id(tid)
        if isinstance(t, Int | Enum | Enum64 | Float):
            return min(self.pointer_size, t.size)
        if isinstance(t, Ptr):
            return self.pointer_size
        if isinstance(t, Typedef | Volatile | Const | Restrict | TypeTag):
            return self.align_of(t.type, _depth + 1)
        if isinstance(t, Array):
            return self.align_of(t.type, _depth + 1)
        if isinstance(t, Struct | Union):
            max_align = 1
            for m in t.members:
                align = self.align_of(m.type, _depth + 1)
                if align <= 0:
                    return 0
                max_align = max(max_align, align)
                if m.bitfield_size == 0 and m.bits_offset % (8 * align):
                    return 1
            if t.size % max_align:
                return 1
            return max_align
        return 0

    def member_offset(self, struct_id: int, name: str) -> tuple[int, Member]:
        """Bit offset and member of ``name`` in a struct/union (anonymous members searched)."""
        found = self._find_member(struct_id, name, 0, 0)
        if found is None:
            raise BtfError(f"type [{struct_id}] has no member '{name}'")
        return found

    def _find_member(self, sid: int, name: str, base: int, depth: int) -> tuple[int, Member] | None:
        if depth > MAX_RESOLVE_DEPTH:
            return None
        t = self.type_by_id(self.skip_mods_and_typedefs(sid))
        if not isinstance(t, Struct | Union):
            return None
        for m in t.members:
            if m.name == name:
                return base + m.bits_offset, m
            if not m.name:
                sub = self._find_member(m.type, name, base + m.bits_offset, depth + 1)
                if sub is not None:
                    return sub
        return None


# -- parsing ---------------------------------------------------------------------------------


def essential_name(name: str) -> str:
    """The name without a ``___flavor`` suffix (libbpf's ``bpf_core_essential_name_len``):
    ``task_struct___v2`` → ``task_struct``; ``a____b`` has no flavor (four underscores)."""
    n = len(name)
    for i in range(n - 5, -1, -1):
        if name[i] != "_" and name[i + 1 : i + 4] == "___" and name[i + 4] != "_":
            return name[: i + 1]
    return name


def _string_at(strings: bytes, off: int) -> str:
    if not 0 <= off < len(strings):
        raise BtfError(f"string offset {off} outside the string table ({len(strings)} bytes)")
    end = strings.find(b"\0", off)
    if end < 0:
        raise BtfError(f"string at offset {off} is not NUL-terminated")
    try:
        return strings[off:end].decode()
    except UnicodeDecodeError as e:
        raise BtfError(f"string at offset {off} is not valid UTF-8") from e


def _refs(t: BtfType) -> Iterator[int]:
    """Every type id ``t`` refers to."""
    if isinstance(t, Ptr | Typedef | Volatile | Const | Restrict | TypeTag | Func | Var | DeclTag):
        yield t.type
    elif isinstance(t, Array):
        yield t.type
        yield t.index_type
    elif isinstance(t, Struct | Union):
        for m in t.members:
            yield m.type
    elif isinstance(t, FuncProto):
        yield t.ret
        for p in t.params:
            yield p.type
    elif isinstance(t, Datasec):
        for v in t.vars:
            yield v.type


def _parse_types(data: bytes, strings: bytes, bo: str) -> list[BtfType]:
    types: list[BtfType] = [Void()]
    hdr = struct.Struct(bo + "III")
    u32 = struct.Struct(bo + "I")
    trip = struct.Struct(bo + "III")
    pair = struct.Struct(bo + "II")
    enum32 = struct.Struct(bo + "Ii")
    off = 0
    n = len(data)

    def name_of(name_off: int, tid: int) -> str:
        try:
            return _string_at(strings, name_off)
        except BtfError as e:
            raise BtfError(f"type [{tid}]: invalid name: {e.message}") from None

    def need(size: int, tid: int, what: str) -> None:
        if off + size > n:
            raise BtfError(f"type [{tid}] {what}: truncated ({off + size} > {n} bytes of type data)")

    while off < n:
        tid = len(types)
        if tid > 0xFFFFF:
            raise BtfError("more than 2^20 - 1 BTF types")
        need(12, tid, "header")
        name_off, info, size_or_type = hdr.unpack_from(data, off)
        off += 12
        kind_no = (info >> 24) & 0x1F
        vlen = info & 0xFFFF
        kflag = bool(info >> 31)
        try:
            kind = BtfKind(kind_no)
        except ValueError:
            raise BtfError(f"type [{tid}]: unknown kind {kind_no}") from None
        name = name_of(name_off, tid)
        t: BtfType
        if kind == BtfKind.INT:
            need(4, tid, "INT")
            (v,) = u32.unpack_from(data, off)
            off += 4
            enc, bits_off, nr_bits = (v >> 24) & 0x0F, (v >> 16) & 0xFF, v & 0xFF
            if size_or_type not in (1, 2, 4, 8, 16) or nr_bits + bits_off > size_or_type * 8:
                raise BtfError(f"type [{tid}] INT '{name}': invalid size {size_or_type} / bits {nr_bits}+{bits_off}")
            t = Int(name, size_or_type, IntEncoding(enc & 0x7), bits_off, nr_bits)
        elif kind == BtfKind.PTR:
            t = Ptr(size_or_type, name)
        elif kind == BtfKind.ARRAY:
            need(12, tid, "ARRAY")
            elem, index, nelems = trip.unpack_from(data, off)
            off += 12
            t = Array(elem, index, nelems, name)
        elif kind in (BtfKind.STRUCT, BtfKind.UNION):
            need(12 * vlen, tid, str(kind))
            members = []
            for _ in range(vlen):
                m_name_off, m_type, m_off = trip.unpack_from(data, off)
                off += 12
                m_name = name_of(m_name_off, tid)
                if kflag:
                    members.append(Member(m_name, m_type, m_off & 0xFFFFFF, m_off >> 24))
                else:
                    members.append(Member(m_name, m_type, m_off, 0))
            cls = Struct if kind == BtfKind.STRUCT else Union
            t = cls(name, size_or_type, tuple(members), kflag)
        elif kind == BtfKind.ENUM:
            need(8 * vlen, tid, "ENUM")
            values = []
            for _ in range(vlen):
                v_name_off, val = enum32.unpack_from(data, off)
                off += 8
                values.append(EnumValue(name_of(v_name_off, tid), val if kflag else val & 0xFFFFFFFF))
            if size_or_type not in (1, 2, 4, 8):
                raise BtfError(f"type [{tid}] ENUM '{name}': invalid size {size_or_type}")
            t = Enum(name, size_or_type, tuple(values), kflag)
        elif kind == BtfKind.ENUM64:
            need(12 * vlen, tid, "ENUM64")
            values = []
            for _ in range(vlen):
                v_name_off, lo, hi = trip.unpack_from(data, off)
                off += 12
                val = (hi << 32) | lo
                if kflag and val >> 63:
                    val -= 1 << 64
                values.append(EnumValue(name_of(v_name_off, tid), val))
            if size_or_type not in (1, 2, 4, 8):
                raise BtfError(f"type [{tid}] ENUM64 '{name}': invalid size {size_or_type}")
            t = Enum64(name, size_or_type, tuple(values), kflag)
        elif kind == BtfKind.FWD:
            t = Fwd(name, kflag)
        elif kind == BtfKind.TYPEDEF:
            t = Typedef(name, size_or_type)
        elif kind == BtfKind.VOLATILE:
            t = Volatile(size_or_type, name)
        elif kind == BtfKind.CONST:
            t = Const(size_or_type, name)
        elif kind == BtfKind.RESTRICT:
            t = Restrict(size_or_type, name)
        elif kind == BtfKind.TYPE_TAG:
            t = TypeTag(name, size_or_type)
        elif kind == BtfKind.FUNC:
            if vlen > FuncLinkage.EXTERN:
                raise BtfError(f"type [{tid}] FUNC '{name}': invalid linkage {vlen}")
            t = Func(name, size_or_type, FuncLinkage(vlen))
        elif kind == BtfKind.FUNC_PROTO:
            need(8 * vlen, tid, "FUNC_PROTO")
            params = []
            for _ in range(vlen):
                p_name_off, p_type = pair.unpack_from(data, off)
                off += 8
                params.append(Param(name_of(p_name_off, tid), p_type))
            t = FuncProto(size_or_type, tuple(params), name)
        elif kind == BtfKind.VAR:
            need(4, tid, "VAR")
            (linkage,) = u32.unpack_from(data, off)
            off += 4
            if linkage > VarLinkage.GLOBAL_EXTERN:
                raise BtfError(f"type [{tid}] VAR '{name}': invalid linkage {linkage}")
            t = Var(name, size_or_type, VarLinkage(linkage))
        elif kind == BtfKind.DATASEC:
            need(12 * vlen, tid, "DATASEC")
            secinfos = []
            for _ in range(vlen):
                v_type, v_off, v_size = trip.unpack_from(data, off)
                off += 12
                secinfos.append(VarSecinfo(v_type, v_off, v_size))
            t = Datasec(name, size_or_type, tuple(secinfos))
        elif kind == BtfKind.FLOAT:
            if size_or_type not in (2, 4, 8, 12, 16):
                raise BtfError(f"type [{tid}] FLOAT '{name}': invalid size {size_or_type}")
            t = Float(name, size_or_type)
        elif kind == BtfKind.DECL_TAG:
            need(4, tid, "DECL_TAG")
            (comp,) = struct.unpack_from(bo + "i", data, off)
            off += 4
            t = DeclTag(name, size_or_type, comp)
        else:  # UNKN
            raise BtfError(f"type [{tid}]: kind UNKN is not a valid type")
        types.append(t)
    return types
