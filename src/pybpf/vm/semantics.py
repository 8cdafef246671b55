"""What each eBPF operation computes, as small pure functions over Python ints (RFC 9669 + Linux 6.12).

Registers are unsigned 64-bit values (``0 <= r < 2**64``) everywhere in the vm. The reference
interpreter calls these functions through tables keyed by the opcode table's ``AluOp`` / ``JmpOp`` /
``AtomicOp``; the translate-to-Python tier inlines the common operations and calls these for the rare
ones (signed division, byte swaps), so the two tiers share one definition of the corner cases:

* 32-bit operations use the low 32 bits of both operands and zero-extend the result;
* shift counts are masked (``& 31`` / ``& 63``);
* unsigned division by zero gives 0, modulo by zero leaves dst unchanged (32-bit: zero-extended) —
  what Linux's verifier patches in (``do_misc_fixups``);
* ``sdiv INT_MIN, -1`` = INT_MIN, ``smod INT_MIN, -1`` = 0 (C truncating division, remainder has the
  dividend's sign);
* ``movsx`` sign-extends the low 8/16/32 bits (``off``); ALU32 movsx then zero-extends.
"""

from __future__ import annotations

from collections.abc import Callable

from pybpf.isa.insn import Insn, sext
from pybpf.isa.opcodes import ADDR_PERCPU, AluOp, AtomicOp, InsnClass, JmpOp, OpInfo, Source

__all__ = [
    "ALU_FUNCS",
    "ATOMIC_FUNCS",
    "COND_FUNCS",
    "M32",
    "M64",
    "alu",
    "bswap",
    "condition",
    "sdiv",
    "sext",
    "smod",
    "to_be",
    "to_le",
]

M64 = (1 << 64) - 1
M32 = (1 << 32) - 1


def sdiv(a: int, b: int, bits: int) -> int:
    """Signed division truncating toward zero, as an unsigned ``bits``-wide result; b == 0 gives 0."""
    sa, sb = sext(a, bits), sext(b, bits)
    if sb == 0:
        return 0
    q = abs(sa) // abs(sb)
    if (sa < 0) != (sb < 0):
        q = -q
    return q & ((1 << bits) - 1)  # INT_MIN / -1 wraps to INT_MIN


def smod(a: int, b: int, bits: int) -> int:
    """Signed remainder with the dividend's sign (C ``%``); b == 0 leaves ``a`` (truncated to bits)."""
    sa, sb = sext(a, bits), sext(b, bits)
    if sb == 0:
        return a & ((1 << bits) - 1)
    r = abs(sa) % abs(sb)
    return (-r if sa < 0 else r) & ((1 << bits) - 1)


def bswap(value: int, width: int) -> int:
    """Reverse the byte order of the low ``width`` bits (16/32/64); higher bits are cleared."""
    return int.from_bytes((value & ((1 << width) - 1)).to_bytes(width // 8, "little"), "big")


def to_le(value: int, width: int) -> int:
    """``le16/32/64`` on a little-endian machine: truncate to ``width`` bits."""
    return value & ((1 << width) - 1)


def to_be(value: int, width: int) -> int:
    """``be16/32/64`` on a little-endian machine: byte swap (and truncate)."""
    return bswap(value, width)


# Each ALU function takes dst and src already truncated to ``bits`` (unsigned) plus the insn's ``off``
# and returns the unsigned ``bits``-wide result.
def _add(a: int, b: int, bits: int, off: int) -> int:
    return (a + b) & ((1 << bits) - 1)


def _sub(a: int, b: int, bits: int, off: int) -> int:
    return (a - b) & ((1 << bits) - 1)


def _mul(a: int, b: int, bits: int, off: int) -> int:
    return (a * b) & ((1 << bits) - 1)


def _div(a: int, b: int, bits: int, off: int) -> int:
    if off == 1:
        return sdiv(a, b, bits)
    return a // b if b else 0


def _mod(a: int, b: int, bits: int, off: int) -> int:
    if off == 1:
        return smod(a, b, bits)
    return a % b if b else a


def _or(a: int, b: int, bits: int, off: int) -> int:
    return a | b


def _and(a: int, b: int, bits: int, off: int) -> int:
    return a & b


def _xor(a: int, b: int, bits: int, off: int) -> int:
    return a ^ b


def _lsh(a: int, b: int, bits: int, off: int) -> int:
    return (a << (b & (bits - 1))) & ((1 << bits) - 1)


def _rsh(a: int, b: int, bits: int, off: int) -> int:
    return a >> (b & (bits - 1))


def _arsh(a: int, b: int, bits: int, off: int) -> int:
    return (sext(a, bits) >> (b & (bits - 1))) & ((1 << bits) - 1)


def _neg(a: int, b: int, bits: int, off: int) -> int:
    return -a & ((1 << bits) - 1)


def _mov(a: int, b: int, bits: int, off: int) -> int:
    if off:  # movsx: sign-extend the low `off` bits of src to the operation's width
        return sext(b, off) & ((1 << bits) - 1)
    return b


ALU_FUNCS: dict[AluOp, Callable[[int, int, int, int], int]] = {
    AluOp.ADD: _add,
    AluOp.SUB: _sub,
    AluOp.MUL: _mul,
    AluOp.DIV: _div,
    AluOp.OR: _or,
    AluOp.AND: _and,
    AluOp.LSH: _lsh,
    AluOp.RSH: _rsh,
    AluOp.NEG: _neg,
    AluOp.MOD: _mod,
    AluOp.XOR: _xor,
    AluOp.MOV: _mov,
    AluOp.ARSH: _arsh,
}


def is_percpu_mov(insn: Insn, info: OpInfo) -> bool:
    """Whether ``insn`` is the verifier's per-CPU address instruction (ALU64 ``mov`` X, off
    :data:`~pybpf.isa.opcodes.ADDR_PERCPU`): ``dst = src + this CPU's per-CPU offset``."""
    return (info.alu_op is AluOp.MOV and info.cls == InsnClass.ALU64 and info.source is Source.X
            and insn.off == ADDR_PERCPU)


def alu(op: AluOp, dst: int, src: int, *, is64: bool, off: int = 0) -> int:
    """Result of ``dst = dst <op> src`` (``src`` is the register value or the sign-extended immediate,
    as u64); for 32-bit operations the result is zero-extended."""
    bits = 64 if is64 else 32
    mask = (1 << bits) - 1
    if op is AluOp.MOV and off and not is64:
        # ALU32 movsx: sign-extend to 32 bits, then zero-extend to 64.
        return sext(src, off) & M32
    return ALU_FUNCS[op](dst & mask, src & mask, bits, off)


COND_FUNCS: dict[JmpOp, Callable[[int, int, int], bool]] = {
    JmpOp.JEQ: lambda a, b, bits: a == b,
    JmpOp.JNE: lambda a, b, bits: a != b,
    JmpOp.JGT: lambda a, b, bits: a > b,
    JmpOp.JGE: lambda a, b, bits: a >= b,
    JmpOp.JLT: lambda a, b, bits: a < b,
    JmpOp.JLE: lambda a, b, bits: a <= b,
    JmpOp.JSET: lambda a, b, bits: bool(a & b),
    JmpOp.JSGT: lambda a, b, bits: sext(a, bits) > sext(b, bits),
    JmpOp.JSGE: lambda a, b, bits: sext(a, bits) >= sext(b, bits),
    JmpOp.JSLT: lambda a, b, bits: sext(a, bits) < sext(b, bits),
    JmpOp.JSLE: lambda a, b, bits: sext(a, bits) <= sext(b, bits),
}


def condition(op: JmpOp, dst: int, src: int, *, is64: bool) -> bool:
    """Whether a conditional jump is taken; JMP32 compares the low 32 bits."""
    bits = 64 if is64 else 32
    mask = (1 << bits) - 1
    return COND_FUNCS[op](dst & mask, src & mask, bits)


# Atomic read-modify-write: new memory value from (old, operand); fetch variants also return old.
ATOMIC_FUNCS: dict[AtomicOp, Callable[[int, int, int], int]] = {
    AtomicOp.ADD: lambda old, v, mask: (old + v) & mask,
    AtomicOp.OR: lambda old, v, mask: old | v,
    AtomicOp.AND: lambda old, v, mask: old & v,
    AtomicOp.XOR: lambda old, v, mask: old ^ v,
    AtomicOp.XCHG: lambda old, v, mask: v,
}
