"""Tristate numbers: every concrete value of the inputs lands in the abstract result."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pybpf.verifier.tnum import U64, Tnum, tnum_range

U64S = st.integers(0, U64)


@st.composite
def tnum_and_member(draw: st.DrawFn) -> tuple[Tnum, int]:
    value = draw(U64S)
    mask = draw(st.one_of(U64S, st.sampled_from([0, 0xFF, 0xFFFFFFFF, U64, 0xF0F0])))
    t = Tnum(value & ~mask, mask)
    member = (t.value | (draw(U64S) & t.mask)) & U64
    return t, member


def s64(v: int) -> int:
    return v - (1 << 64) if v >> 63 else v


@given(tnum_and_member(), tnum_and_member())
@settings(max_examples=400)
def test_binary_ops_are_sound(a: tuple[Tnum, int], b: tuple[Tnum, int]) -> None:
    ta, x = a
    tb, y = b
    assert ta.add(tb).contains(x + y)
    assert ta.sub(tb).contains(x - y)
    assert ta.and_(tb).contains(x & y)
    assert ta.or_(tb).contains(x | y)
    assert ta.xor(tb).contains(x ^ y)
    assert ta.mul(tb).contains(x * y)


@given(tnum_and_member(), st.integers(0, 63))
def test_shifts_are_sound(a: tuple[Tnum, int], k: int) -> None:
    t, x = a
    assert t.lshift(k).contains(x << k)
    assert t.rshift(k).contains(x >> k)
    assert t.arshift(k, 64).contains(s64(x) >> k)
    lo = x & 0xFFFFFFFF
    sx32 = lo - (1 << 32) if lo >> 31 else lo
    assert t.subreg().arshift(k % 32, 32).contains((sx32 >> (k % 32)) & 0xFFFFFFFF)


@given(U64S, U64S, U64S)
def test_range_contains_its_values(lo: int, hi: int, x: int) -> None:
    if lo > hi:
        lo, hi = hi, lo
    t = tnum_range(lo, hi)
    v = lo + x % (hi - lo + 1)
    assert t.contains(v)


@given(tnum_and_member(), tnum_and_member())
def test_intersect_and_in(a: tuple[Tnum, int], b: tuple[Tnum, int]) -> None:
    ta, x = a
    tb, _ = b
    if tb.contains(x):
        assert ta.intersect(tb).contains(x)
    assert Tnum.unknown().in_(ta)
    assert ta.in_(ta)


@given(tnum_and_member(), st.sampled_from([1, 2, 4, 8]))
def test_cast_and_subreg(a: tuple[Tnum, int], size: int) -> None:
    t, x = a
    assert t.cast(size).contains(x & ((1 << (8 * size)) - 1))
    assert t.subreg().contains(x & 0xFFFFFFFF)
    assert t.clear_subreg().contains(x & ~0xFFFFFFFF & U64)


def test_kernel_examples() -> None:
    assert str(Tnum(0, 0xFFFFFFFF)) == "(0x0; 0xffffffff)"
    assert str(Tnum.const(7)) == "7"
    assert str(Tnum.const(0x10000)) == "0x10000"
    assert tnum_range(0, 0xFF) == Tnum(0, 0xFF)
    assert tnum_range(4, 7) == Tnum(4, 3)
    assert tnum_range(0, U64).is_unknown()
    assert Tnum.const(3).add(Tnum.const(4)) == Tnum.const(7)
    assert Tnum(0, 0xFF).is_aligned(1)
    assert not Tnum(2, 0).is_aligned(4)
    assert Tnum(0, 0xF).mul(Tnum.const(2)) == Tnum(0, 0x1E)
