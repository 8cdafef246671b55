"""Tristate numbers (``kernel/bpf/tnum.c``): what is known about the bits of a 64-bit value.

A :class:`Tnum` ``(value, mask)`` stands for every 64-bit ``x`` with ``x & ~mask == value``: bits
set in ``mask`` are unknown, the others are those of ``value`` (``value & mask == 0`` always).
All arithmetic wraps at 64 bits, as u64 in C: every operation masks with :data:`U64` in this one
module. Method names follow the kernel (``tnum_add`` -> :meth:`Tnum.add`).
"""

from __future__ import annotations

__all__ = ["U32", "U64", "Tnum", "tnum_const", "tnum_range", "tnum_unknown"]

U64 = (1 << 64) - 1
U32 = (1 << 32) - 1


class Tnum:
    """An immutable tristate number. ``str()`` prints the kernel's form: ``(0x0; 0xff)`` or the
    constant (decimal up to 65535, hex above, like ``tnum_strn``)."""

    __slots__ = ("mask", "value")

    value: int
    mask: int

    def __init__(self, value: int, mask: int) -> None:
        # Immutable by convention (no setter guard: tnums are built in the verifier's hot path).
        self.value = value & U64
        self.mask = mask & U64

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tnum) and self.value == other.value and self.mask == other.mask

    def __hash__(self) -> int:
        return hash((self.value, self.mask))

    def __repr__(self) -> str:
        return f"Tnum({self.value:#x}, {self.mask:#x})"

    def __str__(self) -> str:
        if self.mask == 0:
            return str(self.value) if self.value <= 0xFFFF else f"{self.value:#x}"
        return f"({self.value:#x}; {self.mask:#x})"

    # -- predicates ----------------------------------------------------------------------------
    def is_const(self) -> bool:
        return self.mask == 0

    def is_unknown(self) -> bool:
        return self.mask == U64

    def equals_const(self, b: int) -> bool:
        return self.mask == 0 and self.value == (b & U64)

    def is_aligned(self, size: int) -> bool:
        if not size:
            return True
        return not ((self.value | self.mask) & (size - 1))

    def in_(self, b: Tnum) -> bool:
        """``tnum_in(a, b)``: every value of ``b`` is a value of ``self``."""
        if b.mask & ~self.mask & U64:
            return False
        return self.value == (b.value & ~self.mask & U64)

    def overlap(self, b: Tnum) -> bool:
        mu = ~self.mask & ~b.mask & U64
        return (self.value & mu) == (b.value & mu)

    def contains(self, x: int) -> bool:
        """Is the concrete ``x`` one of the values? (Used by tests and the soundness checks.)"""
        return (x & U64 & ~self.mask) == self.value

    # -- arithmetic ------------------------------------------------------------------------------
    def lshift(self, shift: int) -> Tnum:
        return Tnum(self.value << shift, self.mask << shift)

    def rshift(self, shift: int) -> Tnum:
        return Tnum(self.value >> shift, self.mask >> shift)

    def arshift(self, min_shift: int, insn_bitness: int) -> Tnum:
        if insn_bitness == 32:
            v = _s32(self.value) >> min_shift
            m = _s32(self.mask) >> min_shift
            return Tnum(v & U32, m & U32)
        return Tnum(_s64(self.value) >> min_shift, _s64(self.mask) >> min_shift)

    def add(self, b: Tnum) -> Tnum:
        sm = (self.mask + b.mask) & U64
        sv = (self.value + b.value) & U64
        sigma = (sm + sv) & U64
        chi = sigma ^ sv
        mu = chi | self.mask | b.mask
        return Tnum(sv & ~mu, mu)

    def sub(self, b: Tnum) -> Tnum:
        dv = (self.value - b.value) & U64
        alpha = (dv + self.mask) & U64
        beta = (dv - b.mask) & U64
        chi = alpha ^ beta
        mu = chi | self.mask | b.mask
        return Tnum(dv & ~mu, mu)

    def and_(self, b: Tnum) -> Tnum:
        alpha = self.value | self.mask
        beta = b.value | b.mask
        v = self.value & b.value
        return Tnum(v, alpha & beta & ~v)

    def or_(self, b: Tnum) -> Tnum:
        v = self.value | b.value
        mu = self.mask | b.mask
        return Tnum(v, mu & ~v)

    def xor(self, b: Tnum) -> Tnum:
        v = self.value ^ b.value
        mu = self.mask | b.mask
        return Tnum(v & ~mu, mu)

    def mul(self, b: Tnum) -> Tnum:
        acc_v = (self.value * b.value) & U64
        acc_m = _ZERO
        a = self
        while a.value or a.mask:
            if a.value & 1:
                acc_m = acc_m.add(Tnum(0, b.mask))
            elif a.mask & 1:
                acc_m = acc_m.add(Tnum(0, b.value | b.mask))
            a = a.rshift(1)
            b = b.lshift(1)
        return Tnum(acc_v, 0).add(acc_m)

    def intersect(self, b: Tnum) -> Tnum:
        v = self.value | b.value
        mu = self.mask & b.mask
        return Tnum(v & ~mu, mu)

    def cast(self, size: int) -> Tnum:
        m = (1 << (size * 8)) - 1
        return Tnum(self.value & m, self.mask & m)

    def subreg(self) -> Tnum:
        return Tnum(self.value & U32, self.mask & U32)

    def clear_subreg(self) -> Tnum:
        return Tnum(self.value & ~U32, self.mask & ~U32)

    def with_subreg(self, subreg: Tnum) -> Tnum:
        return self.clear_subreg().or_(subreg.subreg())

    def const_subreg(self, value: int) -> Tnum:
        return self.with_subreg(Tnum(value & U32, 0))

    def sbin(self) -> str:
        """``tnum_sbin``: 64 characters of ``0``/``1``/``x``."""
        return "".join(
            "x" if (self.mask >> i) & 1 else ("1" if (self.value >> i) & 1 else "0") for i in range(63, -1, -1)
        )

    # -- constructors ------------------------------------------------------------------------------
    @staticmethod
    def const(value: int) -> Tnum:
        return Tnum(value, 0)

    @staticmethod
    def range(lo: int, hi: int) -> Tnum:
        return tnum_range(lo, hi)

    @staticmethod
    def unknown() -> Tnum:
        return TNUM_UNKNOWN


def _s32(v: int) -> int:
    v &= U32
    return v - (1 << 32) if v & 0x80000000 else v


def _s64(v: int) -> int:
    v &= U64
    return v - (1 << 64) if v & (1 << 63) else v


def tnum_const(value: int) -> Tnum:
    return Tnum(value, 0)


def tnum_range(lo: int, hi: int) -> Tnum:
    """``tnum_range(min, max)``: the smallest tnum holding every value in ``[min, max]`` (u64)."""
    lo &= U64
    hi &= U64
    chi = lo ^ hi
    bits = chi.bit_length()
    if bits > 63:
        return TNUM_UNKNOWN
    delta = (1 << bits) - 1
    return Tnum(lo & ~delta, delta)


def tnum_unknown() -> Tnum:
    return TNUM_UNKNOWN


TNUM_UNKNOWN = Tnum(0, U64)
_ZERO = Tnum(0, 0)
