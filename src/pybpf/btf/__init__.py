"""BPF Type Format: the type model, the parser, ``.BTF.ext`` records, printers and CO-RE.

``BtfSpec.from_bytes(data)`` parses a ``.BTF`` section or ``/sys/kernel/btf/vmlinux``;
:func:`dump_raw` / :func:`dump_c` print it as ``bpftool btf dump`` does; :mod:`pybpf.btf.core`
relocates CO-RE accesses against a target BTF.
"""

from __future__ import annotations

from pybpf.btf.cdump import CDumper, dump_c
from pybpf.btf.encode import StringTable, encode_btf
from pybpf.btf.ext import BtfExt, CoreRelo, FuncInfo, LineInfo
from pybpf.btf.format import dump_raw, dump_raw_json, type_signature
from pybpf.btf.spec import BTF_MAGIC, BtfSpec, essential_name
from pybpf.btf.types import (
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

__all__ = [
    "BTF_MAGIC",
    "Array",
    "BtfExt",
    "BtfKind",
    "BtfSpec",
    "BtfType",
    "CDumper",
    "Const",
    "CoreRelo",
    "Datasec",
    "DeclTag",
    "Enum",
    "Enum64",
    "EnumValue",
    "Float",
    "Func",
    "FuncInfo",
    "FuncLinkage",
    "FuncProto",
    "Fwd",
    "Int",
    "IntEncoding",
    "LineInfo",
    "Member",
    "Param",
    "Ptr",
    "Restrict",
    "StringTable",
    "Struct",
    "TypeTag",
    "Typedef",
    "Union",
    "Var",
    "VarLinkage",
    "VarSecinfo",
    "Void",
    "Volatile",
    "dump_c",
    "dump_raw",
    "dump_raw_json",
    "encode_btf",
    "essential_name",
    "type_signature",
]
