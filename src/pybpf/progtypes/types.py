"""The kernel's type vocabulary for registers, helper arguments and helper returns.

Linux packs a *base type* in the low 8 bits and *flags* above them (``include/linux/bpf.h``:
``BPF_BASE_TYPE_BITS``, ``enum bpf_type_flag``) into one integer, for register types
(``enum bpf_reg_type``), argument types (``enum bpf_arg_type``) and return types
(``enum bpf_return_type``). pybpf keeps that encoding — a register's type is a plain ``int`` — so a
type test is one mask, as in the kernel, and the verifier's hot paths never build enum objects.

``RegType``, ``ArgType``, ``RetType`` name the base types; ``TypeFlag`` the flags. The kernel's
extended names (``PTR_TO_MAP_VALUE_OR_NULL``, ``ARG_PTR_TO_UNINIT_MEM``...) are module constants.
"""

from __future__ import annotations

from enum import IntEnum, IntFlag

__all__ = [
    "ARG_PTR_TO_BTF_ID_OR_NULL",
    "ARG_PTR_TO_CTX_OR_NULL",
    "ARG_PTR_TO_FIXED_SIZE_MEM",
    "ARG_PTR_TO_MAP_VALUE_OR_NULL",
    "ARG_PTR_TO_MEM_OR_NULL",
    "ARG_PTR_TO_SOCKET_OR_NULL",
    "ARG_PTR_TO_STACK_OR_NULL",
    "ARG_PTR_TO_UNINIT_MEM",
    "BASE_TYPE_BITS",
    "BASE_TYPE_MASK",
    "PTR_TO_BTF_ID_OR_NULL",
    "PTR_TO_MAP_VALUE_OR_NULL",
    "PTR_TO_SOCKET_OR_NULL",
    "PTR_TO_SOCK_COMMON_OR_NULL",
    "PTR_TO_TCP_SOCK_OR_NULL",
    "RET_PTR_TO_BTF_ID_OR_NULL",
    "RET_PTR_TO_BTF_ID_TRUSTED",
    "RET_PTR_TO_DYNPTR_MEM_OR_NULL",
    "RET_PTR_TO_MAP_VALUE_OR_NULL",
    "RET_PTR_TO_RINGBUF_MEM_OR_NULL",
    "RET_PTR_TO_SOCKET_OR_NULL",
    "RET_PTR_TO_SOCK_COMMON_OR_NULL",
    "RET_PTR_TO_TCP_SOCK_OR_NULL",
    "AccessType",
    "ArgType",
    "RegType",
    "RetType",
    "TypeFlag",
    "base_type",
    "parse_type_expr",
    "type_flag",
    "type_may_be_null",
]

BASE_TYPE_BITS = 8
BASE_TYPE_MASK = (1 << BASE_TYPE_BITS) - 1


class TypeFlag(IntFlag):
    """``enum bpf_type_flag``: modifiers above the base type bits."""

    PTR_MAYBE_NULL = 1 << (0 + BASE_TYPE_BITS)
    MEM_RDONLY = 1 << (1 + BASE_TYPE_BITS)
    MEM_RINGBUF = 1 << (2 + BASE_TYPE_BITS)
    MEM_USER = 1 << (3 + BASE_TYPE_BITS)
    MEM_PERCPU = 1 << (4 + BASE_TYPE_BITS)
    OBJ_RELEASE = 1 << (5 + BASE_TYPE_BITS)
    PTR_UNTRUSTED = 1 << (6 + BASE_TYPE_BITS)
    MEM_UNINIT = 1 << (7 + BASE_TYPE_BITS)
    DYNPTR_TYPE_LOCAL = 1 << (8 + BASE_TYPE_BITS)
    DYNPTR_TYPE_RINGBUF = 1 << (9 + BASE_TYPE_BITS)
    MEM_FIXED_SIZE = 1 << (10 + BASE_TYPE_BITS)
    MEM_ALLOC = 1 << (11 + BASE_TYPE_BITS)
    PTR_TRUSTED = 1 << (12 + BASE_TYPE_BITS)
    MEM_RCU = 1 << (13 + BASE_TYPE_BITS)
    NON_OWN_REF = 1 << (14 + BASE_TYPE_BITS)
    DYNPTR_TYPE_SKB = 1 << (15 + BASE_TYPE_BITS)
    DYNPTR_TYPE_XDP = 1 << (16 + BASE_TYPE_BITS)
    MEM_ALIGNED = 1 << (17 + BASE_TYPE_BITS)
    MEM_WRITE = 1 << (18 + BASE_TYPE_BITS)


class RegType(IntEnum):
    """``enum bpf_reg_type``: what a register holds (base types; add ``TypeFlag`` bits)."""

    NOT_INIT = 0
    SCALAR_VALUE = 1
    PTR_TO_CTX = 2
    CONST_PTR_TO_MAP = 3
    PTR_TO_MAP_VALUE = 4
    PTR_TO_MAP_KEY = 5
    PTR_TO_STACK = 6
    PTR_TO_PACKET_META = 7
    PTR_TO_PACKET = 8
    PTR_TO_PACKET_END = 9
    PTR_TO_FLOW_KEYS = 10
    PTR_TO_SOCKET = 11
    PTR_TO_SOCK_COMMON = 12
    PTR_TO_TCP_SOCK = 13
    PTR_TO_TP_BUFFER = 14
    PTR_TO_XDP_SOCK = 15
    PTR_TO_BTF_ID = 16
    PTR_TO_MEM = 17
    PTR_TO_ARENA = 18
    PTR_TO_BUF = 19
    PTR_TO_FUNC = 20
    CONST_PTR_TO_DYNPTR = 21


class ArgType(IntEnum):
    """``enum bpf_arg_type``: what a helper argument must be (base types; add ``TypeFlag`` bits)."""

    ARG_DONTCARE = 0
    ARG_CONST_MAP_PTR = 1
    ARG_PTR_TO_MAP_KEY = 2
    ARG_PTR_TO_MAP_VALUE = 3
    ARG_PTR_TO_MEM = 4
    ARG_PTR_TO_ARENA = 5
    ARG_CONST_SIZE = 6
    ARG_CONST_SIZE_OR_ZERO = 7
    ARG_PTR_TO_CTX = 8
    ARG_ANYTHING = 9
    ARG_SCALAR = 10
    ARG_PTR_TO_SPIN_LOCK = 11
    ARG_PTR_TO_SOCK_COMMON = 12
    ARG_PTR_TO_SOCKET = 13
    ARG_PTR_TO_BTF_ID = 14
    ARG_PTR_TO_RINGBUF_MEM = 15
    ARG_CONST_ALLOC_SIZE_OR_ZERO = 16
    ARG_PTR_TO_BTF_ID_SOCK_COMMON = 17
    ARG_PTR_TO_PERCPU_BTF_ID = 18
    ARG_PTR_TO_FUNC = 19
    ARG_PTR_TO_STACK = 20
    ARG_PTR_TO_CONST_STR = 21
    ARG_PTR_TO_TIMER = 22
    ARG_KPTR_XCHG_DEST = 23
    ARG_PTR_TO_DYNPTR = 24


class RetType(IntEnum):
    """``enum bpf_return_type``: what a helper returns in R0 (base types; add ``TypeFlag`` bits)."""

    RET_INTEGER = 0
    RET_VOID = 1
    RET_PTR_TO_MAP_VALUE = 2
    RET_PTR_TO_SOCKET = 3
    RET_PTR_TO_TCP_SOCK = 4
    RET_PTR_TO_SOCK_COMMON = 5
    RET_PTR_TO_MEM = 6
    RET_PTR_TO_MEM_OR_BTF_ID = 7
    RET_PTR_TO_BTF_ID = 8


class AccessType(IntEnum):
    """``enum bpf_access_type``."""

    READ = 1
    WRITE = 2


_F = TypeFlag
PTR_TO_MAP_VALUE_OR_NULL = int(_F.PTR_MAYBE_NULL | RegType.PTR_TO_MAP_VALUE)
PTR_TO_SOCKET_OR_NULL = int(_F.PTR_MAYBE_NULL | RegType.PTR_TO_SOCKET)
PTR_TO_SOCK_COMMON_OR_NULL = int(_F.PTR_MAYBE_NULL | RegType.PTR_TO_SOCK_COMMON)
PTR_TO_TCP_SOCK_OR_NULL = int(_F.PTR_MAYBE_NULL | RegType.PTR_TO_TCP_SOCK)
PTR_TO_BTF_ID_OR_NULL = int(_F.PTR_MAYBE_NULL | RegType.PTR_TO_BTF_ID)

ARG_PTR_TO_MAP_VALUE_OR_NULL = int(_F.PTR_MAYBE_NULL | ArgType.ARG_PTR_TO_MAP_VALUE)
ARG_PTR_TO_MEM_OR_NULL = int(_F.PTR_MAYBE_NULL | ArgType.ARG_PTR_TO_MEM)
ARG_PTR_TO_CTX_OR_NULL = int(_F.PTR_MAYBE_NULL | ArgType.ARG_PTR_TO_CTX)
ARG_PTR_TO_SOCKET_OR_NULL = int(_F.PTR_MAYBE_NULL | ArgType.ARG_PTR_TO_SOCKET)
ARG_PTR_TO_STACK_OR_NULL = int(_F.PTR_MAYBE_NULL | ArgType.ARG_PTR_TO_STACK)
ARG_PTR_TO_BTF_ID_OR_NULL = int(_F.PTR_MAYBE_NULL | ArgType.ARG_PTR_TO_BTF_ID)
ARG_PTR_TO_UNINIT_MEM = int(_F.MEM_UNINIT | _F.MEM_WRITE | ArgType.ARG_PTR_TO_MEM)
ARG_PTR_TO_FIXED_SIZE_MEM = int(_F.MEM_FIXED_SIZE | ArgType.ARG_PTR_TO_MEM)

RET_PTR_TO_MAP_VALUE_OR_NULL = int(_F.PTR_MAYBE_NULL | RetType.RET_PTR_TO_MAP_VALUE)
RET_PTR_TO_SOCKET_OR_NULL = int(_F.PTR_MAYBE_NULL | RetType.RET_PTR_TO_SOCKET)
RET_PTR_TO_TCP_SOCK_OR_NULL = int(_F.PTR_MAYBE_NULL | RetType.RET_PTR_TO_TCP_SOCK)
RET_PTR_TO_SOCK_COMMON_OR_NULL = int(_F.PTR_MAYBE_NULL | RetType.RET_PTR_TO_SOCK_COMMON)
RET_PTR_TO_RINGBUF_MEM_OR_NULL = int(_F.PTR_MAYBE_NULL | _F.MEM_RINGBUF | RetType.RET_PTR_TO_MEM)
RET_PTR_TO_DYNPTR_MEM_OR_NULL = int(_F.PTR_MAYBE_NULL | RetType.RET_PTR_TO_MEM)
RET_PTR_TO_BTF_ID_OR_NULL = int(_F.PTR_MAYBE_NULL | RetType.RET_PTR_TO_BTF_ID)
RET_PTR_TO_BTF_ID_TRUSTED = int(_F.PTR_TRUSTED | RetType.RET_PTR_TO_BTF_ID)

_EXTENDED: dict[str, int] = {
    name: int(value)
    for name, value in globals().items()
    if name.isupper() and name.startswith(("PTR_TO_", "ARG_", "RET_")) and isinstance(value, int)
}


def base_type(t: int) -> int:
    """The kernel's ``base_type()``: strip the flags."""
    return t & BASE_TYPE_MASK


def type_flag(t: int) -> int:
    """The kernel's ``type_flag()``: only the flags."""
    return t & ~BASE_TYPE_MASK


def type_may_be_null(t: int) -> bool:
    return bool(t & TypeFlag.PTR_MAYBE_NULL)


def parse_type_expr(expr: str) -> int:
    """``"ARG_PTR_TO_MEM | PTR_MAYBE_NULL | MEM_RDONLY"`` -> its integer, as the C compiler would.

    Used on the generated kernel tables, which hold the initialisers' text.
    """
    value = 0
    for part in expr.split("|"):
        name = part.strip().strip("()")
        if not name:
            continue
        if name in _EXTENDED:
            value |= _EXTENDED[name]
        elif name in TypeFlag.__members__:
            value |= TypeFlag[name]
        elif name in RegType.__members__:
            value |= RegType[name]
        elif name in ArgType.__members__:
            value |= ArgType[name]
        elif name in RetType.__members__:
            value |= RetType[name]
        else:
            raise KeyError(f"unknown type name {name!r} in {expr!r}")
    return value
