"""CO-RE: relocate field offsets, sizes, type ids and enum values from local BTF to a target BTF.

This is libbpf's ``relo_core.c`` algorithm: parse the access string of a ``struct bpf_core_relo``
into a *spec* over the program's own (local) BTF; find target candidates with the same essential
name (``task_struct___old`` → ``task_struct``) and compatible kind; match the spec against each
candidate by member names; compute the original and the new value; demand that all matching
candidates agree; and patch the instruction (``imm`` of ALU/``lddw``, ``off`` of loads/stores,
possibly their size), or *poison* it (``call 0xbad2310``) when nothing matched and the relocation
asks for something that does not exist.

Errors are :class:`~pybpf.errors.BtfError` whose messages name the relocation and the type.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pybpf.btf.ext import CoreRelo
from pybpf.btf.spec import BtfSpec, essential_name
from pybpf.btf.types import (
    Array,
    BtfKind,
    Enum,
    Enum64,
    Float,
    FuncProto,
    Fwd,
    Int,
    IntEncoding,
    Ptr,
    Struct,
    Union,
)
from pybpf.errors import BtfError
from pybpf.isa import Insn, InsnClass
from pybpf.uapi import CoreReloKind as K

__all__ = [
    "POISON_IMM",
    "CoreResult",
    "calc_relo_insn",
    "essential_name",
    "find_candidates",
    "kind_str",
    "patch_insn",
]

POISON_IMM = 195896080  # 0xbad2310: "bad relo", what the verifier reports as an unknown helper
SPEC_MAX_LEN = 64

_FIELD = {
    K.BPF_CORE_FIELD_BYTE_OFFSET,
    K.BPF_CORE_FIELD_BYTE_SIZE,
    K.BPF_CORE_FIELD_EXISTS,
    K.BPF_CORE_FIELD_SIGNED,
    K.BPF_CORE_FIELD_LSHIFT_U64,
    K.BPF_CORE_FIELD_RSHIFT_U64,
}
_TYPE = {
    K.BPF_CORE_TYPE_ID_LOCAL,
    K.BPF_CORE_TYPE_ID_TARGET,
    K.BPF_CORE_TYPE_EXISTS,
    K.BPF_CORE_TYPE_MATCHES,
    K.BPF_CORE_TYPE_SIZE,
}
_ENUMVAL = {K.BPF_CORE_ENUMVAL_EXISTS, K.BPF_CORE_ENUMVAL_VALUE}
_KIND_STR = {
    K.BPF_CORE_FIELD_BYTE_OFFSET: "byte_off",
    K.BPF_CORE_FIELD_BYTE_SIZE: "byte_sz",
    K.BPF_CORE_FIELD_EXISTS: "field_exists",
    K.BPF_CORE_FIELD_SIGNED: "signed",
    K.BPF_CORE_FIELD_LSHIFT_U64: "lshift_u64",
    K.BPF_CORE_FIELD_RSHIFT_U64: "rshift_u64",
    K.BPF_CORE_TYPE_ID_LOCAL: "local_type_id",
    K.BPF_CORE_TYPE_ID_TARGET: "target_type_id",
    K.BPF_CORE_TYPE_EXISTS: "type_exists",
    K.BPF_CORE_TYPE_MATCHES: "type_matches",
    K.BPF_CORE_TYPE_SIZE: "type_size",
    K.BPF_CORE_ENUMVAL_EXISTS: "enumval_exists",
    K.BPF_CORE_ENUMVAL_VALUE: "enumval_value",
}


def kind_str(kind: K) -> str:
    """libbpf's short name of a relocation kind (``byte_off``, ``field_exists``...)."""
    return _KIND_STR.get(kind, "unknown")


class _Poison(Exception):
    """Internal: the relocation asks for something that does not exist (libbpf's -EUCLEAN)."""


@dataclass(slots=True)
class _Acc:
    type_id: int
    idx: int
    name: str | None = None


@dataclass(slots=True)
class _Spec:
    btf: BtfSpec
    root_type_id: int
    kind: K
    raw_spec: list[int] = field(default_factory=list)
    spec: list[_Acc] = field(default_factory=list)
    bit_offset: int = 0


@dataclass(frozen=True, slots=True)
class CoreResult:
    """``struct bpf_core_relo_res``: what to check the instruction against and what to write."""

    orig_val: int
    new_val: int
    poison: bool = False
    validate: bool = True
    fail_memsz_adjust: bool = False
    orig_sz: int = 0
    new_sz: int = 0
    orig_type_id: int = 0
    new_type_id: int = 0
    target_type_id: int = 0


def _kind_compat(a: object, b: object) -> bool:
    ka, kb = a.kind, b.kind  # type: ignore[attr-defined]
    enums = (BtfKind.ENUM, BtfKind.ENUM64)
    return ka == kb or (ka in enums and kb in enums)


def _skip(btf: BtfSpec, tid: int) -> tuple[int, object]:
    tid = btf.skip_mods_and_typedefs(tid)
    return tid, btf.types[tid]


def _parse_spec(btf: BtfSpec, relo: CoreRelo) -> _Spec:
    spec = _Spec(btf, relo.type_id, relo.kind)
    s = relo.access_str
    if not s or s[0] == ":":
        raise BtfError(f"invalid access string '{s}'")
    if relo.kind in _TYPE:
        if s != "0":
            raise BtfError(f"type-based relocation with access string '{s}' (expected '0')")
        return spec
    try:
        spec.raw_spec = [int(p) for p in s.split(":")]
    except ValueError:
        raise BtfError(f"invalid access string '{s}'") from None
    if any(v < 0 for v in spec.raw_spec) or not spec.raw_spec:
        raise BtfError(f"invalid access string '{s}'")
    if len(spec.raw_spec) > SPEC_MAX_LEN:
        raise BtfError(f"access string '{s}' too long")
    tid, t = _skip(btf, relo.type_id)
    idx = spec.raw_spec[0]
    spec.spec.append(_Acc(tid, idx))
    if relo.kind in _ENUMVAL:
        if not isinstance(t, Enum | Enum64) or len(spec.raw_spec) > 1 or idx >= len(t.values):
            raise BtfError(f"enum value relocation '{s}' does not name an enumerator of type [{tid}]")
        spec.spec[0].name = t.values[idx].name
        return spec
    if relo.kind not in _FIELD:
        raise BtfError(f"unknown relocation kind {int(relo.kind)}")
    sz = btf.resolve_size(tid)
    spec.bit_offset = idx * sz * 8
    for i in range(1, len(spec.raw_spec)):
        tid, t = _skip(btf, tid)
        idx = spec.raw_spec[i]
        if isinstance(t, Struct | Union):
            if idx >= len(t.members):
                raise BtfError(f"access string '{s}': member #{idx} of type [{tid}] does not exist")
            m = t.members[idx]
            spec.bit_offset += m.bits_offset
            if m.name:
                spec.spec.append(_Acc(tid, idx, m.name))
            tid = m.type
        elif isinstance(t, Array):
            prev = spec.spec[-1]
            elem_id, _ = _skip(btf, t.type)
            if not _is_flex_arr(btf, prev, t) and idx >= t.nelems:
                raise BtfError(f"access string '{s}': index {idx} past the end of array [{tid}]")
            spec.spec.append(_Acc(elem_id, idx))
            tid = elem_id
            spec.bit_offset += idx * btf.resolve_size(elem_id) * 8
        else:
            raise BtfError(
                f"relo for [{relo.type_id}] {s} (at idx {i}) captures type [{tid}] of unexpected kind {t.kind}"
            )
    return spec


def _is_flex_arr(btf: BtfSpec, acc: _Acc, arr: Array) -> bool:
    if acc.name is None or arr.nelems > 0:
        return False
    t = btf.types[acc.type_id]
    return isinstance(t, Struct | Union) and acc.idx == len(t.members) - 1


def _fields_compat(lb: BtfSpec, lid: int, tb: BtfSpec, tid: int) -> bool:
    for _ in range(32):
        lid, lt = _skip(lb, lid)
        tid, tt = _skip(tb, tid)
        if isinstance(lt, Struct | Union) and isinstance(tt, Struct | Union):
            return True
        if not _kind_compat(lt, tt):
            return False
        if isinstance(lt, Ptr | Float):
            return True
        if isinstance(lt, Fwd | Enum | Enum64):
            ln, tn = essential_name(lt.name), essential_name(tt.name)  # type: ignore[attr-defined]
            return not ln or not tn or ln == tn
        if isinstance(lt, Int):
            return lt.bits_offset == 0 and tt.bits_offset == 0  # type: ignore[attr-defined]
        if isinstance(lt, Array):
            lid, tid = lt.type, tt.type  # type: ignore[attr-defined]
            continue
        return False
    raise BtfError("type graph too deep while matching fields")


def _types_are_compat(lb: BtfSpec, lid: int, tb: BtfSpec, tid: int, level: int = 32) -> bool:
    if not _kind_compat(lb.types[lid], tb.types[tid]):
        return False
    for _ in range(32):
        lid, lt = _skip(lb, lid)
        tid, tt = _skip(tb, tid)
        if not _kind_compat(lt, tt):
            return False
        if lt.kind in (BtfKind.UNKN, BtfKind.STRUCT, BtfKind.UNION, BtfKind.ENUM, BtfKind.FWD, BtfKind.ENUM64):
            return True
        if isinstance(lt, Int):
            return lt.bits_offset == 0 and tt.bits_offset == 0  # type: ignore[attr-defined]
        if isinstance(lt, Ptr | Array):
            lid, tid = lt.type, tt.type  # type: ignore[attr-defined]
            continue
        if isinstance(lt, FuncProto):
            assert isinstance(tt, FuncProto)
            if len(lt.params) != len(tt.params):
                return False
            for lp, tp in zip(lt.params, tt.params, strict=True):
                if level <= 0:
                    raise BtfError("type graph too deep while checking compatibility")
                a, _ = _skip(lb, lp.type)
                b, _ = _skip(tb, tp.type)
                if not _types_are_compat(lb, a, tb, b, level - 1):
                    return False
            lid, _ = _skip(lb, lt.ret)
            tid, _ = _skip(tb, tt.ret)
            continue
        return False
    raise BtfError("type graph too deep while checking compatibility")


def _names_match(ln: str, tn: str) -> bool:
    if not tn:
        return not ln
    return essential_name(ln) == essential_name(tn)


def _types_match(lb: BtfSpec, lid: int, tb: BtfSpec, tid: int, behind_ptr: bool = False, level: int = 32) -> bool:
    """libbpf's ``__bpf_core_types_match`` (the TYPE_MATCHES relation)."""
    if level <= 0:
        raise BtfError("type graph too deep while matching types")
    for _ in range(32):
        lid, lt = _skip(lb, lid)
        tid, tt = _skip(tb, tid)
        if not _names_match(lt.name, tt.name):  # type: ignore[attr-defined]
            return False
        lk, tk = lt.kind, tt.kind  # type: ignore[attr-defined]
        if lk == BtfKind.UNKN:
            return lk == tk
        if isinstance(lt, Fwd):
            if behind_ptr:
                if lk == tk:
                    return lt.is_union == tt.is_union  # type: ignore[attr-defined]
                return (tk == BtfKind.STRUCT and not lt.is_union) or (tk == BtfKind.UNION and lt.is_union)
            return lk == tk and lt.is_union == tt.is_union  # type: ignore[attr-defined]
        if isinstance(lt, Enum | Enum64):
            if not isinstance(tt, Enum | Enum64):
                return False
            if lt.size != tt.size or len(lt.values) > len(tt.values):
                return False
            return all(any(_names_match(lv.name, tv.name) for tv in tt.values) for lv in lt.values)
        if isinstance(lt, Struct | Union):
            if behind_ptr:
                if lk == tk:
                    return True
                if not isinstance(tt, Fwd):
                    return False
                return (lk == BtfKind.UNION) == tt.is_union
            if lk != tk:
                return False
            assert isinstance(tt, Struct | Union)
            if len(lt.members) > len(tt.members):
                return False
            for lm in lt.members:
                if not any(
                    _names_match(lm.name, tm.name) and _types_match(lb, lm.type, tb, tm.type, behind_ptr, level - 1)
                    for tm in tt.members
                ):
                    return False
            return True
        if isinstance(lt, Int):
            if lk != tk:
                return False
            assert isinstance(tt, Int)
            return lt.size == tt.size and lt.is_signed == tt.is_signed
        if isinstance(lt, Ptr):
            if lk != tk:
                return False
            behind_ptr = True
            lid, tid = lt.type, tt.type  # type: ignore[attr-defined]
            continue
        if isinstance(lt, Array):
            if lk != tk or lt.nelems != tt.nelems:  # type: ignore[attr-defined]
                return False
            lid, tid = lt.type, tt.type  # type: ignore[attr-defined]
            continue
        if isinstance(lt, FuncProto):
            if lk != tk or len(lt.params) != len(tt.params):  # type: ignore[attr-defined]
                return False
            for lp, tp in zip(lt.params, tt.params, strict=True):  # type: ignore[attr-defined]
                if not _types_match(lb, lp.type, tb, tp.type, behind_ptr, level - 1):
                    return False
            lid, tid = lt.ret, tt.ret  # type: ignore[attr-defined]
            continue
        return False
    raise BtfError("type graph too deep while matching types")


def _match_member(lb: BtfSpec, lacc: _Acc, tb: BtfSpec, targ_id: int, spec: _Spec, depth: int = 0) -> int | None:
    """Find the local member ``lacc`` in target type ``targ_id``; returns the next target type id
    (the member's type) when found and compatible, else ``None``. Updates ``spec`` as libbpf does."""
    if depth > SPEC_MAX_LEN:
        raise BtfError("too deep struct/union nesting")
    targ_id, tt = _skip(tb, targ_id)
    if not isinstance(tt, Struct | Union):
        return None
    lt = lb.types[lacc.type_id]
    assert isinstance(lt, Struct | Union)
    lm = lt.members[lacc.idx]
    for i, m in enumerate(tt.members):
        if len(spec.raw_spec) == SPEC_MAX_LEN:
            raise BtfError("too deep struct/union/array nesting")
        spec.bit_offset += m.bits_offset
        spec.raw_spec.append(i)
        if not m.name:
            found = _match_member(lb, lacc, tb, m.type, spec, depth + 1)
            if found is not None:
                return found
        elif m.name == lm.name:
            spec.spec.append(_Acc(targ_id, i, m.name))
            if _fields_compat(lb, lm.type, tb, m.type):
                return m.type
            spec.spec.pop()
            spec.bit_offset -= m.bits_offset
            spec.raw_spec.pop()
            return None
        spec.bit_offset -= m.bits_offset
        spec.raw_spec.pop()
    return None


def _spec_match(local: _Spec, tb: BtfSpec, targ_id: int) -> _Spec | None:
    targ = _Spec(tb, targ_id, local.kind)
    if local.kind in _TYPE:
        if local.kind == K.BPF_CORE_TYPE_MATCHES:
            ok = _types_match(local.btf, local.root_type_id, tb, targ_id)
        else:
            ok = _types_are_compat(local.btf, local.root_type_id, tb, targ_id)
        return targ if ok else None
    lacc0 = local.spec[0]
    if local.kind in _ENUMVAL:
        tid, tt = _skip(tb, targ_id)
        if not isinstance(tt, Enum | Enum64):
            return None
        want = essential_name(lacc0.name or "")
        for i, v in enumerate(tt.values):
            if essential_name(v.name) == want:
                targ.spec.append(_Acc(tid, i, v.name))
                targ.raw_spec.append(i)
                return targ
        return None
    for i, lacc in enumerate(local.spec):
        targ_id, tt = _skip(tb, targ_id)
        if lacc.name is not None:
            nxt = _match_member(local.btf, lacc, tb, targ_id, targ)
            if nxt is None:
                return None
            targ_id = nxt
        else:
            if i > 0:
                if not isinstance(tt, Array):
                    return None
                if not _is_flex_arr(tb, targ.spec[i - 1], tt) and lacc.idx >= tt.nelems:
                    return None
                targ_id, _ = _skip(tb, tt.type)
            if len(targ.raw_spec) == SPEC_MAX_LEN:
                raise BtfError("too deep struct/union/array nesting")
            targ.spec.append(_Acc(targ_id, lacc.idx))
            targ.raw_spec.append(lacc.idx)
            targ.bit_offset += lacc.idx * tb.resolve_size(targ_id) * 8
    return targ


def _calc_field(relo: CoreRelo, spec: _Spec | None) -> tuple[int, int, int, bool]:
    """``(value, field size, field type id, validate)`` for a field relocation, or raise _Poison."""
    if relo.kind == K.BPF_CORE_FIELD_EXISTS:
        return (1 if spec else 0), 0, 0, True
    if spec is None:
        raise _Poison
    acc = spec.spec[-1]
    btf = spec.btf
    if acc.name is None:
        sz = btf.resolve_size(acc.type_id)
        if relo.kind == K.BPF_CORE_FIELD_BYTE_OFFSET:
            return spec.bit_offset // 8, sz, acc.type_id, True
        if relo.kind == K.BPF_CORE_FIELD_BYTE_SIZE:
            return sz, 0, 0, True
        raise BtfError(f"relo {int(relo.kind)} at insn #{relo.insn_idx} can't be applied to array access")
    t = btf.types[acc.type_id]
    assert isinstance(t, Struct | Union)
    m = t.members[acc.idx]
    ftid, mt = _skip(btf, m.type)
    bit_off = spec.bit_offset
    bit_sz = m.bitfield_size
    bitfield = bit_sz > 0
    if bitfield:
        byte_sz = getattr(mt, "size", 0)
        if byte_sz <= 0:
            raise BtfError(f"bitfield member '{m.name}' has a type without size")
        byte_off = bit_off // 8 // byte_sz * byte_sz
        while bit_off + bit_sz - byte_off * 8 > byte_sz * 8:
            if byte_sz >= 8:
                raise BtfError(f"relo {int(relo.kind)} at insn #{relo.insn_idx} can't be satisfied for bitfield")
            byte_sz *= 2
            byte_off = bit_off // 8 // byte_sz * byte_sz
    else:
        byte_sz = btf.resolve_size(ftid)
        byte_off = spec.bit_offset // 8
        bit_sz = byte_sz * 8
    validate = not bitfield
    k = relo.kind
    if k == K.BPF_CORE_FIELD_BYTE_OFFSET:
        return byte_off, (0 if bitfield else byte_sz), (0 if bitfield else ftid), validate
    if k == K.BPF_CORE_FIELD_BYTE_SIZE:
        return byte_sz, 0, 0, validate
    if k == K.BPF_CORE_FIELD_SIGNED:
        signed = (isinstance(mt, Enum | Enum64) and mt.signed) or (
            isinstance(mt, Int) and bool(mt.encoding & IntEncoding.SIGNED)
        )
        return int(signed), 0, 0, True
    if k == K.BPF_CORE_FIELD_LSHIFT_U64:
        return 64 - (bit_off + bit_sz - byte_off * 8), 0, 0, validate
    if k == K.BPF_CORE_FIELD_RSHIFT_U64:
        return 64 - bit_sz, 0, 0, True
    raise BtfError(f"unrecognized CO-RE relocation {kind_str(k)} ({int(k)})")


def _calc_type(relo: CoreRelo, spec: _Spec | None) -> tuple[int, bool]:
    if spec is None:
        return 0, True
    k = relo.kind
    if k == K.BPF_CORE_TYPE_ID_TARGET:
        return spec.root_type_id, False
    if k in (K.BPF_CORE_TYPE_EXISTS, K.BPF_CORE_TYPE_MATCHES):
        return 1, True
    if k == K.BPF_CORE_TYPE_SIZE:
        return spec.btf.resolve_size(spec.root_type_id), True
    raise BtfError(f"unrecognized CO-RE relocation {kind_str(k)} ({int(k)})")


def _calc_enumval(relo: CoreRelo, spec: _Spec | None) -> int:
    if relo.kind == K.BPF_CORE_ENUMVAL_EXISTS:
        return 1 if spec else 0
    if spec is None:
        raise _Poison
    t = spec.btf.types[spec.spec[0].type_id]
    assert isinstance(t, Enum | Enum64)
    val = t.values[spec.spec[0].idx].value
    if isinstance(t, Enum):
        val &= 0xFFFFFFFF
        if val & 0x80000000:  # the s32 in struct btf_enum, widened to u64
            val -= 1 << 32
    return val & 0xFFFFFFFFFFFFFFFF


def _calc_relo(relo: CoreRelo, local: _Spec, targ: _Spec | None) -> CoreResult:
    try:
        if relo.kind in _FIELD:
            o_val, o_sz, o_tid, validate = _calc_field(relo, local)
            n_val, n_sz, n_tid, _ = _calc_field(relo, targ)
            fail = False
            if o_sz != n_sz and targ is not None:
                ot, nt = local.btf.types[o_tid], targ.btf.types[n_tid]
                ok = (isinstance(ot, Ptr) and isinstance(nt, Ptr)) or (
                    isinstance(ot, Int)
                    and isinstance(nt, Int)
                    and ot.encoding != IntEncoding.SIGNED
                    and nt.encoding != IntEncoding.SIGNED
                )
                fail = not ok
            return CoreResult(
                o_val, n_val, False, validate, fail, o_sz, n_sz, o_tid, n_tid, targ.root_type_id if targ else 0
            )
        if relo.kind in _TYPE:
            o_val, validate = _calc_type(relo, local)
            n_val, _ = _calc_type(relo, targ)
            return CoreResult(o_val, n_val, False, validate, target_type_id=targ.root_type_id if targ else 0)
        if relo.kind in _ENUMVAL:
            o_val = _calc_enumval(relo, local)
            n_val = _calc_enumval(relo, targ)
            return CoreResult(o_val, n_val, target_type_id=targ.root_type_id if targ else 0)
    except _Poison:
        return CoreResult(0, 0, poison=True)
    raise BtfError(f"unrecognized CO-RE relocation {kind_str(relo.kind)} ({int(relo.kind)})")


def find_candidates(local: BtfSpec, local_id: int, target: BtfSpec, *, exact_names: bool = False) -> list[int]:
    """Target type ids with the local type's essential name and a compatible kind.

    ``exact_names`` drops flavored candidates (``foo___v2``): kernel BTF never has them, and when a
    program's own BTF serves as the target its flavors must not match themselves.
    """
    lt = local.types[local_id]
    name = essential_name(lt.name)
    out = []
    for tid in target.find_essential(name):
        t = target.types[tid]
        if exact_names and t.name != name:
            continue
        if _kind_compat(t, lt):
            out.append(tid)
    return out


def calc_relo_insn(local: BtfSpec, relo: CoreRelo, target: BtfSpec, *, exact_names: bool = False) -> CoreResult:
    """``bpf_core_calc_relo_insn``: resolve one relocation of ``local`` BTF against ``target``
    (``exact_names``: see :func:`find_candidates`)."""
    if not 0 < relo.type_id < len(local):
        raise BtfError(f"relocation against invalid type id {relo.type_id}")
    lt = local.types[relo.type_id]
    try:
        lspec = _parse_spec(local, relo)
    except BtfError as e:
        name = lt.name or "<anon>"
        raise BtfError(f"parsing [{relo.type_id}] {lt.kind} {name} + {relo.access_str} failed: {e.message}") from None
    if relo.kind == K.BPF_CORE_TYPE_ID_LOCAL:
        return CoreResult(relo.type_id, relo.type_id, validate=False)
    if not lt.name:
        raise BtfError(f"<{kind_str(relo.kind)}> ({int(relo.kind)}) relocation doesn't support anonymous types")
    result: CoreResult | None = None
    chosen: _Spec | None = None
    for cand in find_candidates(local, relo.type_id, target, exact_names=exact_names):
        cspec = _spec_match(lspec, target, cand)
        if cspec is None:
            continue
        res = _calc_relo(relo, lspec, cspec)
        if result is None:
            result, chosen = res, cspec
        elif chosen is not None and cspec.bit_offset != chosen.bit_offset:
            raise BtfError(f"field offset ambiguity: {cspec.bit_offset} != {chosen.bit_offset}")
        elif res.poison != result.poison or res.new_val != result.new_val:
            raise BtfError(
                f"relocation decision ambiguity: {'failure' if res.poison else 'success'} {res.new_val} != "
                f"{'failure' if result.poison else 'success'} {result.new_val}"
            )
    if result is None:
        result = _calc_relo(relo, lspec, None)
    return result


def patch_insn(insn: Insn, res: CoreResult, *, insn_idx: int = 0) -> list[Insn]:
    """``bpf_core_patch_insn``: the patched instruction (two ``call``s when an lddw is poisoned)."""
    cls = insn.cls
    poison = [Insn(0x85, 0, 0, 0, POISON_IMM)] * insn.width
    if cls in (InsnClass.ALU, InsnClass.ALU64):
        if insn.code & 0x08:
            raise BtfError(f"trying to relocate unrecognized insn #{insn_idx}, code:{insn.code:#x}")
        if res.poison:
            return poison
        if res.validate and (insn.imm & 0xFFFFFFFF) != (res.orig_val & 0xFFFFFFFF):
            raise BtfError(
                f"unexpected insn #{insn_idx} (ALU/ALU64) value: got {insn.imm & 0xFFFFFFFF}, "
                f"exp {res.orig_val} -> {res.new_val}"
            )
        new = res.new_val & 0xFFFFFFFF
        return [insn.replace(imm=new - (1 << 32) if new & 0x80000000 else new)]
    if cls in (InsnClass.LDX, InsnClass.ST, InsnClass.STX):
        if res.poison:
            return poison
        if res.validate and insn.off != res.orig_val:
            raise BtfError(
                f"unexpected insn #{insn_idx} (LDX/ST/STX) value: got {insn.off}, exp {res.orig_val} -> {res.new_val}"
            )
        if res.new_val > 0x7FFF:
            raise BtfError(f"insn #{insn_idx} (LDX/ST/STX) value too big: {res.new_val}")
        if res.fail_memsz_adjust:
            return poison
        out = insn.replace(off=res.new_val)
        if res.new_sz != res.orig_sz:
            sizes = {0x18: 8, 0x00: 4, 0x08: 2, 0x10: 1}
            have = sizes[insn.code & 0x18]
            if have != res.orig_sz:
                raise BtfError(f"insn #{insn_idx} (LDX/ST/STX) unexpected mem size: got {have}, exp {res.orig_sz}")
            codes = {8: 0x18, 4: 0x00, 2: 0x08, 1: 0x10}
            if res.new_sz not in codes:
                raise BtfError(f"insn #{insn_idx} (LDX/ST/STX) invalid new mem size: {res.new_sz}")
            out = out.replace(code=(insn.code & ~0x18) | codes[res.new_sz])
        return [out]
    if insn.code == 0x18:
        if insn.src != 0 or insn.off != 0:
            raise BtfError(f"insn #{insn_idx} (LDIMM64) has unexpected form")
        if res.poison:
            return poison
        imm = insn.imm & 0xFFFFFFFFFFFFFFFF
        if res.validate and imm != res.orig_val:
            raise BtfError(
                f"unexpected insn #{insn_idx} (LDIMM64) value: got {imm}, exp {res.orig_val} -> {res.new_val}"
            )
        new = res.new_val & 0xFFFFFFFFFFFFFFFF
        return [insn.replace(imm=new - (1 << 64) if new >> 63 else new)]
    raise BtfError(
        f"trying to relocate unrecognized insn #{insn_idx}, code:{insn.code:#x}, src:{insn.src:#x}, "
        f"dst:{insn.dst:#x}, off:{insn.off:#x}, imm:{insn.imm & 0xFFFFFFFF:#x}"
    )
