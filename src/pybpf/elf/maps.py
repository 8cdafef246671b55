"""Map definitions in all the forms objects carry them → :class:`MapSpec`.

* BTF-defined maps in ``SEC(".maps")`` (libbpf 1.x): an anonymous struct per variable whose members
  encode the attributes in their types — ``__uint(type, X)`` is ``int (*type)[X]``, ``__type(key, T)``
  is ``T *key`` — parsed as libbpf's ``parse_btf_map_def`` (same rules, same messages).
* Legacy ``SEC("maps")`` definitions, sized from the symbol table (section size / number of map
  symbols): 20 bytes or less is libbpf's ``struct bpf_map_def`` (type, key_size, value_size,
  max_entries, map_flags); more is iproute2's ``struct bpf_elf_map`` (type, size_key, size_value,
  max_elem, flags, id, pinning[, inner_id, inner_idx]) — the seed demo's form. libbpf 1.x refuses
  this section; pybpf reads it.
* Global data: ``.data``, ``.rodata``, ``.bss`` and their ``.name`` variants become single-element
  array maps named as libbpf names them (``internal_map_name``), ``.rodata`` read-only and frozen.
* ``.kconfig`` externs become one more read-only map; ``.struct_ops`` variables become STRUCT_OPS
  maps.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from pybpf.btf.spec import BtfSpec
from pybpf.btf.types import Array, Datasec, Enum, Enum64, FuncProto, Ptr, Struct, Var, VarLinkage
from pybpf.elf.reader import STT_FUNC, STT_SECTION, ElfFile, Section
from pybpf.elf.spec import MapOrigin, MapSpec, PathArg, Pinning, path_str
from pybpf.errors import BtfError, ElfError
from pybpf.uapi import BPF_F_MMAPABLE, BPF_F_RDONLY_PROG, BPF_OBJ_NAME_LEN, MapType

__all__ = [
    "PAGE_SIZE",
    "btf_maps",
    "internal_map_name",
    "legacy_maps",
]

PAGE_SIZE = 4096
_MAP_IN_MAP = (MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS)


def internal_map_name(obj_name: str, real_name: str) -> str:
    """libbpf's ``internal_map_name``: ``<first chars of the object name><section name>``, at most 15
    characters; sections with a second dot (``.rodata.str1.1``) keep only their own name."""
    sfx_len = min(max(7, len(real_name)), BPF_OBJ_NAME_LEN - 1)
    pfx_len = 0 if "." in real_name[1:] else min(BPF_OBJ_NAME_LEN - sfx_len - 1, len(obj_name))
    name = obj_name[:pfx_len] + real_name[:sfx_len]
    return "".join(c if (c.isascii() and c.isalnum()) or c in "_." else "_" for c in name)


def object_name(path: PathArg) -> str:
    """libbpf's object name: the file's base name cut to 15 characters, then at the first dot
    (``path``: ``str``, ``bytes`` or ``os.PathLike``)."""
    base = path_str(path).rsplit("/", 1)[-1][: BPF_OBJ_NAME_LEN - 1]
    return base.split(".", 1)[0]


def _map_type(value: int) -> MapType | int:
    """The :class:`MapType`, or the number itself for a type this kernel does not have (the
    kernel, not the reader, refuses it at MAP_CREATE, as with libbpf)."""
    try:
        return MapType(value)
    except ValueError:
        return value


def adjust_ringbuf_sz(sz: int) -> int:
    """libbpf rounds a ring buffer's size up to a power-of-2 multiple of the page size."""
    if sz == 0:
        return 0
    if sz % PAGE_SIZE == 0 and (sz // PAGE_SIZE) & (sz // PAGE_SIZE - 1) == 0:
        return sz
    mul = 1
    while mul <= 0xFFFFFFFF // PAGE_SIZE:
        if mul * PAGE_SIZE > sz:
            return mul * PAGE_SIZE
        mul <<= 1
    return sz


# -- BTF-defined maps ----------------------------------------------------------------------------


@dataclass(slots=True)
class _MapDef:
    map_type: int = 0
    key_size: int = 0
    value_size: int = 0
    max_entries: int = 0
    map_flags: int = 0
    numa_node: int = 0
    map_extra: int = 0
    pinning: int = 0
    key_type_id: int = 0
    value_type_id: int = 0
    has_inner: bool = False


def _field_int(btf: BtfSpec, map_name: str, mname: str, mtype: int) -> int:
    t = btf.types[btf.skip_mods_and_typedefs(mtype)]
    if not isinstance(t, Ptr):
        raise BtfError(f"map '{map_name}': attr '{mname}': expected PTR, got {t.kind}.")
    arr = btf.type_by_id(t.type)
    if not isinstance(arr, Array):
        raise BtfError(f"map '{map_name}': attr '{mname}': expected ARRAY, got {arr.kind}.")
    return arr.nelems


def _field_long(btf: BtfSpec, map_name: str, mname: str, mtype: int) -> int:
    t = btf.types[btf.skip_mods_and_typedefs(mtype)]
    if isinstance(t, Ptr):
        return _field_int(btf, map_name, mname, mtype)
    if not isinstance(t, Enum | Enum64):
        raise BtfError(f"map '{map_name}': attr '{mname}': expected ENUM or ENUM64, got {t.kind}.")
    if len(t.values) != 1:
        raise BtfError(f"map '{map_name}': attr '{mname}': invalid __ulong")
    return t.values[0].value & 0xFFFFFFFFFFFFFFFF


def parse_btf_map_def(btf: BtfSpec, map_name: str, def_t: Struct, *, is_inner: bool) -> tuple[_MapDef, _MapDef | None]:
    """libbpf's ``parse_btf_map_def``: the attributes of one BTF map definition struct."""
    d = _MapDef()
    inner: _MapDef | None = None
    n = len(def_t.members)
    for i, m in enumerate(def_t.members):
        name = m.name
        if not name:
            raise BtfError(f"map '{map_name}': invalid field #{i}.")
        if name == "type":
            d.map_type = _field_int(btf, map_name, name, m.type)
        elif name == "max_entries":
            d.max_entries = _field_int(btf, map_name, name, m.type)
        elif name == "map_flags":
            d.map_flags = _field_int(btf, map_name, name, m.type)
        elif name == "numa_node":
            d.numa_node = _field_int(btf, map_name, name, m.type)
        elif name in ("key_size", "value_size"):
            sz = _field_int(btf, map_name, name, m.type)
            cur = d.key_size if name == "key_size" else d.value_size
            if cur and cur != sz:
                raise BtfError(f"map '{map_name}': conflicting {name.split('_')[0]} size {cur} != {sz}.")
            if name == "key_size":
                d.key_size = sz
            else:
                d.value_size = sz
        elif name in ("key", "value"):
            t = btf.type_by_id(m.type)
            if not isinstance(t, Ptr):
                raise BtfError(f"map '{map_name}': {name} spec is not PTR: {t.kind}.")
            try:
                sz = btf.resolve_size(t.type)
            except BtfError:
                raise BtfError(f"map '{map_name}': can't determine {name} size for type [{t.type}].") from None
            cur = d.key_size if name == "key" else d.value_size
            if cur and cur != sz:
                raise BtfError(f"map '{map_name}': conflicting {name} size {cur} != {sz}.")
            if name == "key":
                d.key_size, d.key_type_id = sz, t.type
            else:
                d.value_size, d.value_type_id = sz, t.type
        elif name == "values":
            is_mim = d.map_type in _MAP_IN_MAP
            is_pa = d.map_type == MapType.PROG_ARRAY
            desc = "map-in-map inner" if is_mim else "prog-array value"
            if is_inner:
                raise BtfError(f"map '{map_name}': multi-level inner maps not supported.")
            if i != n - 1:
                raise BtfError(f"map '{map_name}': '{name}' member should be last.")
            if not is_mim and not is_pa:
                raise BtfError(f"map '{map_name}': should be map-in-map or prog-array.")
            if d.value_size and d.value_size != 4:
                raise BtfError(f"map '{map_name}': conflicting value size {d.value_size} != 4.")
            d.value_size = 4
            t = btf.type_by_id(m.type)
            if not isinstance(t, Array) or t.nelems:
                raise BtfError(f"map '{map_name}': {desc} spec is not a zero-sized array.")
            pt = btf.types[btf.skip_mods_and_typedefs(t.type)]
            if not isinstance(pt, Ptr):
                raise BtfError(f"map '{map_name}': {desc} def is of unexpected kind {pt.kind}.")
            target = btf.types[btf.skip_mods_and_typedefs(pt.type)]
            if is_pa:
                if not isinstance(target, FuncProto):
                    raise BtfError(f"map '{map_name}': prog-array value def is of unexpected kind {target.kind}.")
                continue
            if not isinstance(target, Struct):
                raise BtfError(f"map '{map_name}': map-in-map inner def is of unexpected kind {target.kind}.")
            inner, _ = parse_btf_map_def(btf, f"{map_name}.inner", target, is_inner=True)
            d.has_inner = True
        elif name == "pinning":
            if is_inner:
                raise BtfError(f"map '{map_name}': inner def can't be pinned.")
            val = _field_int(btf, map_name, name, m.type)
            if val not in (0, 1):
                raise BtfError(f"map '{map_name}': invalid pinning value {val}.")
            d.pinning = val
        elif name == "map_extra":
            d.map_extra = _field_long(btf, map_name, name, m.type)
        else:
            raise BtfError(f"map '{map_name}': unknown field '{name}'.")
    if d.map_type == 0:
        raise BtfError(f"map '{map_name}': map type isn't specified.")
    return d, inner


def _spec_from_def(name: str, d: _MapDef, *, section: str, offset: int) -> MapSpec:
    max_entries = d.max_entries
    if d.map_type in (MapType.RINGBUF, MapType.USER_RINGBUF):
        max_entries = adjust_ringbuf_sz(max_entries)
    return MapSpec(
        name=name,
        type=_map_type(d.map_type),
        key_size=d.key_size,
        value_size=d.value_size,
        max_entries=max_entries,
        flags=d.map_flags,
        numa_node=d.numa_node,
        map_extra=d.map_extra,
        pinning=Pinning.BY_NAME if d.pinning == 1 else Pinning.NONE,
        key_type_id=d.key_type_id,
        value_type_id=d.value_type_id,
        origin=MapOrigin.BTF,
        section=section,
        offset=offset,
        real_name=name,
    )


def btf_maps(elf: ElfFile, sec: Section, btf: BtfSpec | None) -> list[MapSpec]:
    """The maps of ``SEC(".maps")``, in DATASEC order (libbpf's ``init_user_btf_maps``)."""
    if btf is None:
        raise BtfError("section .maps needs BTF, but the object has no .BTF section", path=elf.path)
    sec_id = btf.find_one(sec.name)
    dsec = btf.types[sec_id] if sec_id is not None else None
    if not isinstance(dsec, Datasec):
        raise BtfError(f"DATASEC '{sec.name}' not found.", path=elf.path)
    out = []
    size = sec.size
    for i, vi in enumerate(dsec.vars):
        var = btf.types[vi.type]
        map_name = var.name
        if not map_name:
            raise BtfError(f"map #{i}: empty name.", path=elf.path)
        if vi.offset + vi.size > size:
            raise BtfError(f"map '{map_name}' BTF data is corrupted.", path=elf.path)
        if not isinstance(var, Var):
            raise BtfError(f"map '{map_name}': unexpected var kind {var.kind}.", path=elf.path)
        if var.linkage != VarLinkage.GLOBAL_ALLOCATED:
            linkage = {0: "static", 2: "extern"}.get(int(var.linkage), "unknown")
            raise BtfError(f"map '{map_name}': unsupported map linkage {linkage}.", path=elf.path)
        def_t = btf.types[btf.skip_mods_and_typedefs(var.type)]
        if not isinstance(def_t, Struct):
            raise BtfError(f"map '{map_name}': unexpected def kind {var.kind}.", path=elf.path)
        if def_t.size > vi.size:
            raise BtfError(f"map '{map_name}': invalid def size.", path=elf.path)
        try:
            d, inner = parse_btf_map_def(btf, map_name, def_t, is_inner=False)
        except BtfError as e:
            raise BtfError(e.message, path=elf.path) from None
        spec = _spec_from_def(map_name, d, section=sec.name, offset=vi.offset)
        if inner is not None:
            spec.inner_map = _spec_from_def(f"{map_name}.inner", inner, section=sec.name, offset=vi.offset)
        out.append(spec)
    return out


# -- legacy `maps` section ---------------------------------------------------------------------

_BPF_MAP_DEF_SIZE = 20  # struct bpf_map_def: 5 x u32
_ELF_MAP_FIELDS = ("type", "size_key", "size_value", "max_elem", "flags", "id", "pinning", "inner_id", "inner_idx")


def legacy_maps(elf: ElfFile, sec: Section) -> list[MapSpec]:
    """Definitions in ``SEC("maps")``: one per symbol, all the same size (section size / count)."""
    syms = sorted(
        (s for s in elf.symbols if s.shndx == sec.index and s.type not in (STT_SECTION, STT_FUNC) and s.name),
        key=lambda s: (s.value, s.index),
    )
    if not syms:
        if sec.size:
            raise ElfError(f"section {sec.name} holds {sec.size} bytes but no map symbols", path=elf.path)
        return []
    if sec.size == 0 or sec.size % len(syms):
        raise ElfError(
            f"unable to determine map definition size section {sec.name}, {len(syms)} maps in {sec.size} bytes",
            path=elf.path,
        )
    def_sz = sec.size // len(syms)
    iproute2 = def_sz > _BPF_MAP_DEF_SIZE
    if def_sz < 16 or def_sz % 4:
        raise ElfError(
            f"map definitions of {def_sz} bytes in section {sec.name} are neither bpf_map_def nor bpf_elf_map",
            path=elf.path,
        )
    data = sec.data
    out = []
    for s in syms:
        if s.value + def_sz > len(data):
            raise ElfError(f'corrupted maps section in {elf.path}: last map "{s.name}" too small', path=elf.path)
        words = struct.unpack_from(f"<{min(def_sz, 36) // 4}I", data, s.value)
        fields = dict(zip(_ELF_MAP_FIELDS, words, strict=False))
        if not iproute2:
            # struct bpf_map_def: type, key_size, value_size, max_entries, map_flags
            fields.setdefault("flags", 0)
        elif def_sz > 36 and any(data[s.value + 36 : s.value + def_sz]):
            raise ElfError(f"map '{s.name}': unrecognized extra bytes in bpf_elf_map definition", path=elf.path)
        pin = fields.get("pinning", 0)
        spec = MapSpec(
            name=s.name,
            type=_map_type(fields["type"]),
            key_size=fields["size_key"],
            value_size=fields["size_value"],
            max_entries=fields["max_elem"],
            flags=fields.get("flags", 0),
            pinning={0: Pinning.NONE, 1: Pinning.OBJECT_NS, 2: Pinning.GLOBAL_NS}.get(pin, Pinning.NONE),
            origin=MapOrigin.IPROUTE2 if iproute2 else MapOrigin.LEGACY,
            section=sec.name,
            offset=s.value,
            real_name=s.name,
            elf_map_id=fields.get("id", 0),
            inner_id=fields.get("inner_id", 0),
            inner_idx=fields.get("inner_idx", 0),
        )
        if iproute2 and pin > 2:
            raise ElfError(f"map '{s.name}': custom pinning type {pin} is not supported", path=elf.path)
        out.append(spec)
    return out


# -- global data -------------------------------------------------------------------------------


def data_map(obj_name: str, sec: Section, btf: BtfSpec | None, *, kind: str) -> MapSpec:
    """The internal map of a ``.data``/``.rodata``/``.bss`` section (libbpf's
    ``bpf_object__init_internal_map``)."""
    flags = BPF_F_RDONLY_PROG if kind in ("rodata", "kconfig") else 0
    value_type_id = 0
    if btf is not None:
        tid = btf.find_one(sec.name)
        if tid is not None:
            value_type_id = tid
            t = btf.types[tid]
            if isinstance(t, Datasec) and any(
                isinstance(var := btf.types[v.type], Var) and var.linkage != VarLinkage.STATIC for v in t.vars
            ):
                flags |= BPF_F_MMAPABLE
    return MapSpec(
        name=internal_map_name(obj_name, sec.name),
        type=MapType.ARRAY,
        key_size=4,
        value_size=sec.size,
        max_entries=1,
        flags=flags,
        value_type_id=value_type_id,
        data=None if kind == "bss" else sec.data,
        frozen=kind in ("rodata", "kconfig"),
        origin=MapOrigin.DATA,
        section=sec.name,
        real_name=sec.name,
    )
