"""The corner cases of RFC 9669 / Linux 6.12 arithmetic, with values worked out by hand."""

from __future__ import annotations

import pytest

from pybpf.isa.opcodes import AluOp, AtomicOp, JmpOp
from pybpf.vm.semantics import ATOMIC_FUNCS, M32, M64, alu, bswap, condition, sdiv, sext, smod, to_be, to_le

INT64_MIN = 1 << 63
INT32_MIN = 1 << 31


def u64(v: int) -> int:
    return v & M64


@pytest.mark.parametrize(
    ("op", "a", "b", "is64", "off", "want"),
    [
        (AluOp.DIV, 7, 0, True, 0, 0),  # division by zero gives 0
        (AluOp.MOD, 7, 0, True, 0, 7),  # modulo by zero leaves dst
        (AluOp.MOD, (5 << 32) | 9, 0, False, 0, 9),  # ... zero-extended for the 32-bit form
        (AluOp.DIV, (5 << 32) | 9, 0, False, 0, 0),
        (AluOp.DIV, u64(-1), 2, True, 0, (M64 >> 1)),  # unsigned
        (AluOp.DIV, u64(-7), 2, True, 1, u64(-3)),  # sdiv truncates toward zero
        (AluOp.MOD, u64(-7), 2, True, 1, u64(-1)),  # smod takes the dividend's sign
        (AluOp.MOD, 7, u64(-2), True, 1, 1),
        (AluOp.DIV, INT64_MIN, u64(-1), True, 1, INT64_MIN),  # overflow wraps
        (AluOp.MOD, INT64_MIN, u64(-1), True, 1, 0),
        (AluOp.DIV, INT32_MIN, M32, False, 1, INT32_MIN),
        (AluOp.MOD, INT32_MIN, M32, False, 1, 0),
        (AluOp.DIV, u64(-7), 0, True, 1, 0),  # sdiv by zero is 0 too
        (AluOp.MOD, u64(-7), 0, False, 1, u64(-7) & M32),
        (AluOp.LSH, 1, 65, True, 0, 2),  # shift counts are masked
        (AluOp.LSH, 1, 33, False, 0, 2),
        (AluOp.RSH, 1 << 63, 63 + 64, True, 0, 1),
        (AluOp.ARSH, INT32_MIN, 4, False, 0, 0xF8000000),
        (AluOp.ARSH, INT64_MIN, 63, True, 0, M64),
        (AluOp.ARSH, (1 << 32) | 0x40000000, 4, False, 0, 0x04000000),  # upper half is ignored
        (AluOp.NEG, 1, 0, False, 0, M32),
        (AluOp.NEG, 1, 0, True, 0, M64),
        (AluOp.ADD, M32, 1, False, 0, 0),
        (AluOp.MUL, 1 << 32, 1 << 32, True, 0, 0),
        (AluOp.MOV, 0, 0x80, True, 8, u64(-128)),  # movsx
        (AluOp.MOV, 0, 0x80, False, 8, 0xFFFFFF80),  # 32-bit movsx zero-extends the 32-bit result
        (AluOp.MOV, 0, 0x18000, True, 16, u64(-0x8000)),
        (AluOp.MOV, 0, 0x80000000, True, 32, u64(-INT32_MIN)),
        (AluOp.MOV, 0, (1 << 40) | 5, False, 0, 5),  # mov32 truncates
        (AluOp.XOR, M64, M32, False, 0, 0),
    ],
)
def test_alu_corner_cases(op: AluOp, a: int, b: int, is64: bool, off: int, want: int) -> None:
    assert alu(op, a, b, is64=is64, off=off) == want


def test_signed_helpers() -> None:
    assert sext(0xFF, 8) == -1 and sext(0x7F, 8) == 127 and sext(1 << 63, 64) == -(1 << 63)
    assert sdiv(u64(-9), 4, 64) == u64(-2)
    assert smod(u64(-9), 4, 64) == u64(-1)
    assert sdiv(9, u64(-4), 64) == u64(-2)


def test_byte_order() -> None:
    assert bswap(0x1122, 16) == 0x2211
    assert bswap(0xAABB1122, 16) == 0x2211  # higher bits are dropped
    assert bswap(0x1122334455667788, 32) == 0x88776655
    assert bswap(0x1122334455667788, 64) == 0x8877665544332211
    assert to_le(0x123456789, 32) == 0x23456789 and to_le(0x123456789, 64) == 0x123456789
    assert to_be(0x0102, 16) == 0x0201


@pytest.mark.parametrize(
    ("op", "a", "b", "is64", "want"),
    [
        (JmpOp.JSGT, INT32_MIN, 1, False, False),  # 0x80000000 is negative as s32
        (JmpOp.JGT, INT32_MIN, 1, False, True),
        (JmpOp.JSGT, INT32_MIN, 1, True, True),  # ... but positive as s64
        (JmpOp.JSLT, M64, 0, True, True),
        (JmpOp.JEQ, (1 << 32) | 5, 5, False, True),  # JMP32 compares the low halves
        (JmpOp.JEQ, (1 << 32) | 5, 5, True, False),
        (JmpOp.JSET, 0b1010, 0b0100, True, False),
        (JmpOp.JSET, 0b1010, 0b0010, True, True),
        (JmpOp.JSLE, u64(-1), u64(-1), True, True),
        (JmpOp.JLE, 0, M64, True, True),
    ],
)
def test_conditions(op: JmpOp, a: int, b: int, is64: bool, want: bool) -> None:
    assert condition(op, a, b, is64=is64) is want


def test_atomic_operations() -> None:
    assert ATOMIC_FUNCS[AtomicOp.ADD](M32, 1, M32) == 0
    assert ATOMIC_FUNCS[AtomicOp.XCHG](5, 9, M64) == 9
    assert ATOMIC_FUNCS[AtomicOp.AND](0b110, 0b011, M64) == 0b010
