"""The BTF type model: one frozen dataclass per kind (``include/uapi/linux/btf.h``).

Types refer to each other by **type id** (an ``int``; 0 is ``void``), exactly as the encoding does,
never by object reference: BTF graphs are cyclic (``struct list_head { struct list_head *next; }``),
and ids are what every consumer prints (``bpftool btf dump``, the verifier log, ``btf_key_type_id``).
A :class:`~pybpf.btf.spec.BtfSpec` owns the id → type table and answers the graph questions (size,
alignment, "skip typedefs and modifiers").

Names are resolved strings; ``""`` is an anonymous type. Raw encoding details that change meaning are
kept (``kflag`` of structs says how member offsets are encoded; the ``signed`` flag of enums), so a
type re-encodes to the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import ClassVar

__all__ = [
    "Array",
    "BtfKind",
    "BtfType",
    "Const",
    "Datasec",
    "DeclTag",
    "Enum",
    "Enum64",
    "EnumValue",
    "Float",
    "Func",
    "FuncLinkage",
    "FuncProto",
    "Fwd",
    "Int",
    "IntEncoding",
    "Member",
    "Param",
    "Ptr",
    "Restrict",
    "Struct",
    "TypeTag",
    "Typedef",
    "Union",
    "Var",
    "VarLinkage",
    "VarSecinfo",
    "Void",
    "Volatile",
]


class BtfKind(IntEnum):
    """``BTF_KIND_*``; ``str()`` is the upper-case name bpftool prints (``STRUCT``, ``FUNC_PROTO``)."""

    UNKN = 0
    INT = 1
    PTR = 2
    ARRAY = 3
    STRUCT = 4
    UNION = 5
    ENUM = 6
    FWD = 7
    TYPEDEF = 8
    VOLATILE = 9
    CONST = 10
    RESTRICT = 11
    FUNC = 12
    FUNC_PROTO = 13
    VAR = 14
    DATASEC = 15
    FLOAT = 16
    DECL_TAG = 17
    TYPE_TAG = 18
    ENUM64 = 19

    def __str__(self) -> str:
        return self.name


class IntEncoding(IntFlag):
    """``BTF_INT_*`` encoding bits of an INT."""

    NONE = 0
    SIGNED = 1
    CHAR = 2
    BOOL = 4


class VarLinkage(IntEnum):
    """``BTF_VAR_*``."""

    STATIC = 0
    GLOBAL_ALLOCATED = 1
    GLOBAL_EXTERN = 2


class FuncLinkage(IntEnum):
    """``enum btf_func_linkage`` (stored in a FUNC's vlen)."""

    STATIC = 0
    GLOBAL = 1
    EXTERN = 2


@dataclass(frozen=True, slots=True)
class Void:
    """Type id 0. Not encoded; present so that ``spec.types[0]`` exists."""

    kind: ClassVar[BtfKind] = BtfKind.UNKN
    name: str = ""


@dataclass(frozen=True, slots=True)
class Int:
    """An integer: ``size`` bytes, of which ``nr_bits`` starting at ``bits_offset`` hold the value;
    ``encoding`` says signed / char / bool."""

    name: str
    size: int
    encoding: IntEncoding = IntEncoding.NONE
    bits_offset: int = 0
    nr_bits: int = 0
    kind: ClassVar[BtfKind] = BtfKind.INT

    @property
    def is_signed(self) -> bool:
        """``BTF_INT_SIGNED`` set."""
        return bool(self.encoding & IntEncoding.SIGNED)


@dataclass(frozen=True, slots=True)
class Ptr:
    """A pointer to type ``type`` (0: ``void *``); its size is the BTF's pointer size."""

    type: int
    name: str = ""
    kind: ClassVar[BtfKind] = BtfKind.PTR


@dataclass(frozen=True, slots=True)
class Array:
    """``nelems`` elements of ``type``; ``index_type`` is the integer type the compiler recorded for
    the index (printed by bpftool, unused otherwise)."""

    type: int
    index_type: int
    nelems: int
    name: str = ""
    kind: ClassVar[BtfKind] = BtfKind.ARRAY


@dataclass(frozen=True, slots=True)
class Member:
    """A struct/union member; ``bitfield_size`` is 0 for a plain member."""

    name: str
    type: int
    bits_offset: int
    bitfield_size: int = 0


@dataclass(frozen=True, slots=True)
class Struct:
    """``kflag`` set: member offsets carry bitfield sizes (``BTF_MEMBER_BITFIELD_SIZE``)."""

    name: str
    size: int
    members: tuple[Member, ...] = ()
    kflag: bool = False
    kind: ClassVar[BtfKind] = BtfKind.STRUCT


@dataclass(frozen=True, slots=True)
class Union:
    """Like :class:`Struct`, all members at offset 0 in C terms (offsets are still recorded)."""

    name: str
    size: int
    members: tuple[Member, ...] = ()
    kflag: bool = False
    kind: ClassVar[BtfKind] = BtfKind.UNION


@dataclass(frozen=True, slots=True)
class EnumValue:
    """An enumerator; ``value`` is already interpreted as signed or unsigned per the enum's flag."""

    name: str
    value: int


@dataclass(frozen=True, slots=True)
class Enum:
    """A 32-bit-or-smaller enum; ``signed`` is the kind flag (values printed signed or unsigned)."""

    name: str
    size: int
    values: tuple[EnumValue, ...] = ()
    signed: bool = False
    kind: ClassVar[BtfKind] = BtfKind.ENUM


@dataclass(frozen=True, slots=True)
class Enum64:
    """An enum with 64-bit values (``BTF_KIND_ENUM64``); ``signed`` as for :class:`Enum`."""

    name: str
    size: int
    values: tuple[EnumValue, ...] = ()
    signed: bool = False
    kind: ClassVar[BtfKind] = BtfKind.ENUM64


@dataclass(frozen=True, slots=True)
class Fwd:
    """A forward declaration (``struct foo;`` or ``union foo;``, by ``is_union``)."""

    name: str
    is_union: bool = False
    kind: ClassVar[BtfKind] = BtfKind.FWD


@dataclass(frozen=True, slots=True)
class Typedef:
    """``typedef <type> name;``"""

    name: str
    type: int
    kind: ClassVar[BtfKind] = BtfKind.TYPEDEF


@dataclass(frozen=True, slots=True)
class Volatile:
    """The ``volatile`` qualifier on ``type``."""

    type: int
    name: str = ""
    kind: ClassVar[BtfKind] = BtfKind.VOLATILE


@dataclass(frozen=True, slots=True)
class Const:
    """The ``const`` qualifier on ``type``."""

    type: int
    name: str = ""
    kind: ClassVar[BtfKind] = BtfKind.CONST


@dataclass(frozen=True, slots=True)
class Restrict:
    """The ``restrict`` qualifier on ``type``."""

    type: int
    name: str = ""
    kind: ClassVar[BtfKind] = BtfKind.RESTRICT


@dataclass(frozen=True, slots=True)
class TypeTag:
    """``__attribute__((btf_type_tag(name)))`` on ``type`` (``__kptr``, ``__user``, ``__percpu``...)."""

    name: str
    type: int
    kind: ClassVar[BtfKind] = BtfKind.TYPE_TAG


@dataclass(frozen=True, slots=True)
class Func:
    """A function; ``type`` is its FUNC_PROTO."""

    name: str
    type: int
    linkage: FuncLinkage = FuncLinkage.STATIC
    kind: ClassVar[BtfKind] = BtfKind.FUNC


@dataclass(frozen=True, slots=True)
class Param:
    """A FUNC_PROTO parameter; a last parameter of type 0 means ``...``."""

    name: str
    type: int


@dataclass(frozen=True, slots=True)
class FuncProto:
    """A function type: return type ``ret`` and parameters (names may be empty)."""

    ret: int
    params: tuple[Param, ...] = ()
    name: str = ""
    kind: ClassVar[BtfKind] = BtfKind.FUNC_PROTO

    @property
    def type(self) -> int:
        """The return type (the encoding's ``type`` field)."""
        return self.ret


@dataclass(frozen=True, slots=True)
class Var:
    """A global or static variable of type ``type`` (DATASEC entries point at these)."""

    name: str
    type: int
    linkage: VarLinkage = VarLinkage.STATIC
    kind: ClassVar[BtfKind] = BtfKind.VAR


@dataclass(frozen=True, slots=True)
class VarSecinfo:
    """One variable of a DATASEC: its VAR (or FUNC, for ``.ksyms``), offset and size in the section."""

    type: int
    offset: int
    size: int


@dataclass(frozen=True, slots=True)
class Datasec:
    """An ELF data section (``.data``, ``.maps``, ``.ksyms``...) and the variables placed in it;
    clang leaves ``size`` and offsets 0, libbpf fills them from the ELF file."""

    name: str
    size: int
    vars: tuple[VarSecinfo, ...] = ()
    kind: ClassVar[BtfKind] = BtfKind.DATASEC


@dataclass(frozen=True, slots=True)
class Float:
    """A floating-point type of ``size`` bytes."""

    name: str
    size: int
    kind: ClassVar[BtfKind] = BtfKind.FLOAT


@dataclass(frozen=True, slots=True)
class DeclTag:
    """``component_idx`` -1 tags the type itself, otherwise a member or parameter index."""

    name: str
    type: int
    component_idx: int = -1
    kind: ClassVar[BtfKind] = BtfKind.DECL_TAG


BtfType = (
    Void
    | Int
    | Ptr
    | Array
    | Struct
    | Union
    | Enum
    | Enum64
    | Fwd
    | Typedef
    | Volatile
    | Const
    | Restrict
    | TypeTag
    | Func
    | FuncProto
    | Var
    | Datasec
    | Float
    | DeclTag
)
"""Any BTF type."""

# kinds whose ``type`` field is a single reference (modifiers and friends)
REF_KINDS = frozenset(
    {
        BtfKind.PTR,
        BtfKind.TYPEDEF,
        BtfKind.VOLATILE,
        BtfKind.CONST,
        BtfKind.RESTRICT,
        BtfKind.TYPE_TAG,
        BtfKind.FUNC,
        BtfKind.VAR,
        BtfKind.DECL_TAG,
    }
)
MODIFIER_KINDS = frozenset({BtfKind.VOLATILE, BtfKind.CONST, BtfKind.RESTRICT, BtfKind.TYPE_TAG})
