"""Scalar bounds: every ALU op, narrowing and branch refinement keep every concrete value.

The abstract input is built like the verifier builds registers (a tnum and ranges synced by
``reg_bounds_sync``); a concrete member is drawn; the concrete result of the operation must be a
member of the abstract result — the soundness of ``adjust_scalar_min_max_vals`` and friends.
"""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from pybpf.isa import Insn
from pybpf.progtypes import ProgInfo, descriptor
from pybpf.uapi import ProgType
from pybpf.verifier.env import VerifierEnv
from pybpf.verifier.regs import RegState, reg_bounds_sync, reg_bounds_violation, s32, s64
from pybpf.verifier.state import FuncState, VerifierState
from pybpf.verifier.tnum import U32, U64, Tnum, tnum_range
from pybpf.verifier.transfer.alu import adjust_scalar_min_max_vals, coerce_reg_to_size, coerce_reg_to_size_sx
from pybpf.verifier.transfer.jmp import is_branch_taken, reg_set_min_max

U64S = st.integers(0, U64)


@st.composite
def scalar_and_member(draw: st.DrawFn) -> tuple[RegState, int]:
    """An abstract scalar (tnum ∩ u64 range ∩ s64 range, synced) and one of its members."""
    kind = draw(st.sampled_from(["const", "range", "tnum", "signed", "small"]))
    x = draw(U64S)
    r = RegState.unknown_scalar()
    if kind == "const":
        r = RegState.const(x)
        return r, x
    if kind == "small":
        x = draw(st.integers(0, 300))
    if kind in ("range", "small"):
        a, b = sorted((x, (x + draw(st.integers(0, 1 << draw(st.integers(0, 63))))) & U64))
        assume(a <= x <= b)
        r.umin_value, r.umax_value = a, b
        r.var_off = tnum_range(a, b)
    elif kind == "tnum":
        mask = draw(st.sampled_from([0xFF, 0xFFFF, 0xF0, 0xFFFFFFFF, U64, 0x8000000000000001]))
        r.var_off = Tnum(x & ~mask, mask)
    else:
        sx = s64(x)
        lo = sx - draw(st.integers(0, 1000))
        hi = sx + draw(st.integers(0, 1000))
        assume(lo >= -(1 << 63) and hi < (1 << 63))
        r.smin_value, r.smax_value = lo, hi
    reg_bounds_sync(r)
    assume(reg_bounds_violation(r) is None)
    assert r.contains(x), (r, x)
    return r, x


def _env() -> VerifierEnv:
    env = VerifierEnv([Insn(0x95)], desc=descriptor(ProgType.SOCKET_FILTER), prog=ProgInfo(1))
    st_ = VerifierState()
    st_.frame = [FuncState()]
    env.cur_state = st_
    return env


_OPS = {
    0x00: lambda a, b, bits: a + b,
    0x10: lambda a, b, bits: a - b,
    0x20: lambda a, b, bits: a * b,
    0x40: lambda a, b, bits: a | b,
    0x50: lambda a, b, bits: a & b,
    0xA0: lambda a, b, bits: a ^ b,
    0x60: lambda a, b, bits: a << b,
    0x70: lambda a, b, bits: a >> b,
    0xC0: lambda a, b, bits: (s64(a) if bits == 64 else s32(a)) >> b,
}


@given(scalar_and_member(), scalar_and_member(), st.sampled_from(sorted(_OPS)), st.booleans())
@settings(max_examples=600, deadline=None)
def test_alu_ops_are_sound(a: tuple[RegState, int], b: tuple[RegState, int], op: int, alu64: bool) -> None:
    dst, x = a
    src, y = b
    bits = 64 if alu64 else 32
    mask = U64 if alu64 else U32
    if op in (0x60, 0x70, 0xC0):
        y %= bits
        src = RegState.const(y)
    insn = Insn((0x07 if alu64 else 0x04) | op | 0x08, dst=1, src=2)
    out = dst.copy()
    adjust_scalar_min_max_vals(_env(), insn, out, src.copy())
    xv, yv = (x & mask), (y & mask)
    result = _OPS[op](xv, yv, bits) & mask
    assert reg_bounds_violation(out) is None
    assert out.contains(result), (hex(op), dst, src, x, y, result, out)


@given(scalar_and_member(), st.sampled_from([1, 2, 4]), st.booleans())
@settings(max_examples=300, deadline=None)
def test_narrowing_is_sound(a: tuple[RegState, int], size: int, sign: bool) -> None:
    reg, x = a
    out = reg.copy()
    bits = 8 * size
    low = x & ((1 << bits) - 1)
    if sign:
        coerce_reg_to_size_sx(out, size)
        want = (low - (1 << bits) if low >> (bits - 1) else low) & U64
    else:
        coerce_reg_to_size(out, size)
        want = low
    assert out.contains(want), (reg, x, out)


_CMP = {
    0x10: lambda a, b: a == b, 0x50: lambda a, b: a != b, 0x20: lambda a, b: a > b, 0x30: lambda a, b: a >= b,
    0xA0: lambda a, b: a < b, 0xB0: lambda a, b: a <= b, 0x40: lambda a, b: bool(a & b),
}
_SCMP = {0x60: lambda a, b: a > b, 0x70: lambda a, b: a >= b, 0xC0: lambda a, b: a < b, 0xD0: lambda a, b: a <= b}


@given(scalar_and_member(), scalar_and_member(), st.sampled_from(sorted(_CMP | _SCMP)), st.booleans())
@settings(max_examples=600, deadline=None)
def test_branch_refinement_is_sound(a: tuple[RegState, int], b: tuple[RegState, int], op: int, jmp32: bool) -> None:
    r1, x = a
    r2, y = b
    if jmp32:
        xv, yv = x & U32, y & U32
        sx, sy = s32(xv), s32(yv)
    else:
        xv, yv = x, y
        sx, sy = s64(x), s64(y)
    taken = _CMP[op](xv, yv) if op in _CMP else _SCMP[op](sx, sy)
    pred = is_branch_taken(r1, r2, op, jmp32)
    if pred >= 0:
        assert bool(pred) == taken
    t1, t2, f1, f2 = r1.copy(), r2.copy(), r1.copy(), r2.copy()
    env = _env()
    try:
        reg_set_min_max(env, t1, t2, f1, f2, op, jmp32)
    except Exception:  # an impossible branch may violate invariants: only checked paths matter
        return
    if taken:
        if reg_bounds_violation(t1) is None and reg_bounds_violation(t2) is None:
            assert t1.contains(x) and t2.contains(y), ("taken", hex(op), r1, r2, x, y, t1, t2)
    elif reg_bounds_violation(f1) is None and reg_bounds_violation(f2) is None:
        assert f1.contains(x) and f2.contains(y), ("fallthrough", hex(op), r1, r2, x, y, f1, f2)


@pytest.mark.parametrize(("lo", "hi"), [(0, 0xFF), (-5, 5), (0x100000000, 0x1000000FF)])
def test_reg_bounds_sync_keeps_range(lo: int, hi: int) -> None:
    r = RegState.unknown_scalar()
    r.smin_value, r.smax_value = lo, hi
    reg_bounds_sync(r)
    for v in (lo, hi, (lo + hi) // 2):
        assert r.contains(v & U64)
    assert not r.contains((hi + 1) & U64) or hi + 1 > (1 << 63) - 1
