"""BTF as text: ``bpftool btf dump`` raw form (text and JSON) and bpftool's one-line type names.

The raw form is bpftool's ``dump_btf_type`` output, character for character (``[3] STRUCT 'xdp_md'
size=24 vlen=6`` followed by one tab-indented line per member). :func:`type_signature` is bpftool's
``btf_dumper_type_only``: the text it prints above a program in ``prog dump xlated``
(``int xdp_program(struct xdp_md * ctx)``). The C form lives in :mod:`pybpf.btf.cdump`.
"""

from __future__ import annotations

from typing import Any

from pybpf.btf.spec import MAX_RESOLVE_DEPTH, BtfSpec
from pybpf.btf.types import (
    Array,
    BtfKind,
    BtfType,
    Const,
    Datasec,
    DeclTag,
    Enum,
    Enum64,
    Float,
    Func,
    FuncLinkage,
    FuncProto,
    Fwd,
    Int,
    IntEncoding,
    Ptr,
    Restrict,
    Struct,
    Typedef,
    TypeTag,
    Union,
    Var,
    VarLinkage,
    Volatile,
)

__all__ = ["dump_raw", "dump_raw_json", "type_signature"]

_LINKAGE_VAR = {VarLinkage.STATIC: "static", VarLinkage.GLOBAL_ALLOCATED: "global", VarLinkage.GLOBAL_EXTERN: "extern"}
_LINKAGE_FUNC = {FuncLinkage.STATIC: "static", FuncLinkage.GLOBAL: "global", FuncLinkage.EXTERN: "extern"}


def _int_enc(enc: IntEncoding) -> str:
    # bpftool switches on the whole encoding value: a combination is "UNKN"
    return {0: "(none)", 1: "SIGNED", 2: "CHAR", 4: "BOOL"}.get(int(enc), "UNKN")


def _name(t: BtfType) -> str:
    return t.name if t.name else "(anon)"


def _raw_one(spec: BtfSpec, tid: int, t: BtfType) -> str:
    out = [f"[{tid}] {t.kind} '{_name(t)}'"]
    if isinstance(t, Int):
        out.append(f" size={t.size} bits_offset={t.bits_offset} nr_bits={t.nr_bits} encoding={_int_enc(t.encoding)}")
    elif isinstance(t, Ptr | Const | Volatile | Restrict | Typedef | TypeTag):
        out.append(f" type_id={t.type}")
    elif isinstance(t, Array):
        out.append(f" type_id={t.type} index_type_id={t.index_type} nr_elems={t.nelems}")
    elif isinstance(t, Struct | Union):
        out.append(f" size={t.size} vlen={len(t.members)}")
        for m in t.members:
            out.append(f"\n\t'{m.name or '(anon)'}' type_id={m.type} bits_offset={m.bits_offset}")
            if m.bitfield_size:
                out.append(f" bitfield_size={m.bitfield_size}")
    elif isinstance(t, Enum | Enum64):
        enc = "SIGNED" if t.signed else "UNSIGNED"
        out.append(f" encoding={enc} size={t.size} vlen={len(t.values)}")
        suffix = ("LL" if t.signed else "ULL") if isinstance(t, Enum64) else ""
        out.extend(f"\n\t'{v.name or '(anon)'}' val={v.value}{suffix}" for v in t.values)
    elif isinstance(t, Fwd):
        out.append(f" fwd_kind={'union' if t.is_union else 'struct'}")
    elif isinstance(t, Func):
        out.append(f" type_id={t.type} linkage={_LINKAGE_FUNC.get(t.linkage, '(unknown)')}")
    elif isinstance(t, FuncProto):
        out.append(f" ret_type_id={t.ret} vlen={len(t.params)}")
        out.extend(f"\n\t'{p.name or '(anon)'}' type_id={p.type}" for p in t.params)
    elif isinstance(t, Var):
        out.append(f" type_id={t.type}, linkage={_LINKAGE_VAR.get(t.linkage, '(unknown)')}")
    elif isinstance(t, Datasec):
        out.append(f" size={t.size} vlen={len(t.vars)}")
        for v in t.vars:
            out.append(f"\n\ttype_id={v.type} offset={v.offset} size={v.size}")
            if v.type < len(spec):
                vt = spec.types[v.type]
                out.append(f" ({vt.kind} '{_name(vt)}')")
    elif isinstance(t, Float):
        out.append(f" size={t.size}")
    elif isinstance(t, DeclTag):
        out.append(f" type_id={t.type} component_idx={t.component_idx}")
    return "".join(out)


def dump_raw(spec: BtfSpec, root_ids: list[int] | None = None) -> str:
    """``bpftool btf dump file X`` (format raw): one entry per type, each ending in a newline."""
    ids = root_ids if root_ids else range(1, len(spec))
    return "".join(_raw_one(spec, i, spec.type_by_id(i)) + "\n" for i in ids)


def _raw_json_one(tid: int, t: BtfType) -> dict[str, Any]:
    d: dict[str, Any] = {"id": tid, "kind": str(t.kind), "name": _name(t)}
    if isinstance(t, Int):
        d.update(size=t.size, bits_offset=t.bits_offset, nr_bits=t.nr_bits, encoding=_int_enc(t.encoding))
    elif isinstance(t, Ptr | Const | Volatile | Restrict | Typedef | TypeTag):
        d["type_id"] = t.type
    elif isinstance(t, Array):
        d.update(type_id=t.type, index_type_id=t.index_type, nr_elems=t.nelems)
    elif isinstance(t, Struct | Union):
        members = []
        for m in t.members:
            md: dict[str, Any] = {"name": m.name or "(anon)", "type_id": m.type, "bits_offset": m.bits_offset}
            if m.bitfield_size:
                md["bitfield_size"] = m.bitfield_size
            members.append(md)
        d.update(size=t.size, vlen=len(t.members), members=members)
    elif isinstance(t, Enum | Enum64):
        d.update(
            encoding="SIGNED" if t.signed else "UNSIGNED",
            size=t.size,
            vlen=len(t.values),
            values=[{"name": v.name or "(anon)", "val": v.value} for v in t.values],
        )
    elif isinstance(t, Fwd):
        d["fwd_kind"] = "union" if t.is_union else "struct"
    elif isinstance(t, Func):
        d.update(type_id=t.type, linkage=_LINKAGE_FUNC.get(t.linkage, "(unknown)"))
    elif isinstance(t, FuncProto):
        d.update(
            ret_type_id=t.ret,
            vlen=len(t.params),
            params=[{"name": p.name or "(anon)", "type_id": p.type} for p in t.params],
        )
    elif isinstance(t, Var):
        d.update(type_id=t.type, linkage=_LINKAGE_VAR.get(t.linkage, "(unknown)"))
    elif isinstance(t, Datasec):
        d.update(
            size=t.size,
            vlen=len(t.vars),
            vars=[{"type_id": v.type, "offset": v.offset, "size": v.size} for v in t.vars],
        )
    elif isinstance(t, Float):
        d["size"] = t.size
    elif isinstance(t, DeclTag):
        d.update(type_id=t.type, component_idx=t.component_idx)
    return d


def dump_raw_json(spec: BtfSpec, root_ids: list[int] | None = None) -> dict[str, Any]:
    """``bpftool -j btf dump file X``: ``{"types": [...]}`` with bpftool's field names."""
    ids = root_ids if root_ids else range(1, len(spec))
    return {"types": [_raw_json_one(i, spec.type_by_id(i)) for i in ids]}


def type_signature(spec: BtfSpec, tid: int) -> str:
    """bpftool's ``btf_dumper_type_only``: ``int xdp_program(struct xdp_md * ctx)`` for a FUNC.

    Returns ``""`` where bpftool prints nothing (unknown kinds, over-deep graphs).
    """
    out: list[str] = []
    if not _sig(spec, tid, out, 0):
        return ""
    return "".join(out)


def _sig(spec: BtfSpec, tid: int, out: list[str], depth: int) -> bool:
    if depth > MAX_RESOLVE_DEPTH:
        return False
    if tid == 0:
        out.append("void ")
        return True
    if not 0 < tid < len(spec):
        return False
    t = spec.types[tid]
    k = t.kind
    if k in (BtfKind.INT, BtfKind.TYPEDEF, BtfKind.FLOAT):
        out.append(f"{t.name} ")
    elif isinstance(t, Struct):
        out.append(f"struct {t.name} ")
    elif isinstance(t, Union):
        out.append(f"union {t.name} ")
    elif isinstance(t, Enum | Enum64):
        out.append(f"enum {t.name} ")
    elif isinstance(t, Array):
        if not _sig(spec, t.type, out, depth + 1):
            return False
        out.append(f"[{t.nelems}]")
    elif isinstance(t, Ptr):
        if not _sig(spec, t.type, out, depth + 1):
            return False
        out.append("* ")
    elif isinstance(t, Fwd):
        out.append(f"{'union' if t.is_union else 'struct'} {t.name} ")
    elif isinstance(t, Volatile | Const | Restrict):
        out.append({BtfKind.VOLATILE: "volatile ", BtfKind.CONST: "const ", BtfKind.RESTRICT: "restrict "}[k])
        if not _sig(spec, t.type, out, depth + 1):
            return False
    elif isinstance(t, FuncProto):
        return _func(spec, t, None, out, depth)
    elif isinstance(t, Func):
        proto = spec.types[t.type]
        if not isinstance(proto, FuncProto):
            return False
        return _func(spec, proto, t, out, depth)
    elif isinstance(t, Var):
        if t.linkage == VarLinkage.STATIC:
            out.append("static ")
        if not _sig(spec, t.type, out, depth + 1):
            return False
        out.append(f" {t.name}")
    elif isinstance(t, Datasec):
        out.append(f'section ("{t.name}") ')
    else:
        return False
    return True


def _func(spec: BtfSpec, proto: FuncProto, func: Func | None, out: list[str], depth: int) -> bool:
    if not _sig(spec, proto.ret, out, depth + 1):
        return False
    out.append(f"{func.name}(" if func is not None else "(")
    for i, p in enumerate(proto.params):
        if i:
            out.append(", ")
        if p.type:
            if not _sig(spec, p.type, out, depth + 1):
                return False
            if p.name:
                out.append(p.name)
            elif out and out[-1].endswith(" "):
                out[-1] = out[-1][:-1]
        else:
            out.append("...")
    out.append(")")
    return True
