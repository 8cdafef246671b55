"""The instructions whose x86 forms pin registers, in the code the load path runs (verified programs,
no checks): division and modulo use rax:rdx (eBPF R0 and R3) and must turn a zero divisor into the
interpreter's result (x / 0 = 0, x % 0 = x) and INT_MIN / -1 into no fault; shifts by a register
count use cl (R4 is rcx); atomics with R0 (cmpxchg's rax). Every combination of operand registers
among R0, R3, R4 and another, every width, every source, on the edge values — against the reference
interpreter, one result at a time."""

from __future__ import annotations

import itertools
import platform

import pytest

from pybpf.isa import Insn, Insns
from pybpf.isa.opcodes import AluOp, InsnClass, Source
from pybpf.jit.compile import compile_program
from pybpf.jit.runtime import JitProgram, NativeBuffer
from pybpf.vm.interp import Interpreter
from pybpf.vm.memory import RegionKind

pytestmark = pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="the JIT emits x86-64")

INT64_MIN = 1 << 63
VALUES = (0, 1, 7, 0xFFFF_FFFF_FFFF_FFFF, INT64_MIN, 0x8000_0000, 0xFFFF_FFFF, 0x7FFF_FFFF_FFFF_FFFF,
          0xFFFF_FFFF_8000_0000, 65)
DIVISORS = (0, 1, 3, 0xFFFF_FFFF_FFFF_FFFF, 0xFFFF_FFFF, INT64_MIN, 0x8000_0000)
REGS = (0, 3, 4, 7)  # rax, rdx, rcx, r13


def _lddw(reg: int, value: int) -> Insn:
    return Insn(0x18, reg, 0, 0, value)


def _program(op_insn: Insn, dst: int, src: int, a: int, b: int) -> Insns:
    """r<dst> = a; r<src> = b; the op; store every register involved to [r6]; r0 = r<dst>."""
    body = [Insn(0xBF, 6, 1), _lddw(dst, a)]
    if src != dst:
        body.append(_lddw(src, b))
    body.append(op_insn)
    body += [Insn(0x7B, 6, r, 8 * k) for k, r in enumerate(REGS)]
    body += [Insn(0xBF, 0, dst), Insn(0x95)]
    return Insns(body)


def _both(prog: Insns) -> tuple[tuple[int, bytes], tuple[int, bytes]]:
    interp = Interpreter(prog, helpers={})
    buf = bytearray(8 * len(REGS))
    region = interp.space.add(buf, RegionKind.MEM, "regs")
    want = interp.run(region.address())
    native = NativeBuffer(bytes(8 * len(REGS)))
    with JitProgram(compile_program(prog, verified=True)) as p:
        got = p.run(native.address)
    # registers never written keep whatever the engine started with: compare only the ones set
    return (got, native.read()), (want, bytes(buf))


def _compare(prog: Insns, written: set[int]) -> None:
    (got, gmem), (want, wmem) = _both(prog)
    assert got == want
    for k, r in enumerate(REGS):
        if r in written:
            assert gmem[8 * k:8 * k + 8] == wmem[8 * k:8 * k + 8], f"r{r}"


@pytest.mark.parametrize(("alu_op", "signed"), [(AluOp.DIV, 0), (AluOp.MOD, 0), (AluOp.DIV, 1), (AluOp.MOD, 1)],
                         ids=["div", "mod", "sdiv", "smod"])
@pytest.mark.parametrize("cls", [InsnClass.ALU64, InsnClass.ALU], ids=["64", "32"])
def test_division_register_pairs_and_edge_values(alu_op: AluOp, signed: int, cls: InsnClass) -> None:
    for dst, src in itertools.product(REGS, REGS):
        for a, b in itertools.product(VALUES, DIVISORS):
            if dst == src:
                b = a
            op = Insn(int(cls) | int(alu_op) | int(Source.X), dst, src, signed)
            _compare(_program(op, dst, src, a, b), {dst, src})
    for dst in REGS:  # immediate divisors, including 0 and -1
        for a, imm in itertools.product(VALUES, (0, -1, 1, 3, -0x8000_0000)):
            op = Insn(int(cls) | int(alu_op) | int(Source.K), dst, 0, signed, imm)
            _compare(_program(op, dst, dst, a, a), {dst})


@pytest.mark.parametrize("alu_op", [AluOp.LSH, AluOp.RSH, AluOp.ARSH], ids=["lsh", "rsh", "arsh"])
@pytest.mark.parametrize("cls", [InsnClass.ALU64, InsnClass.ALU], ids=["64", "32"])
def test_shifts_by_a_register_through_cl(alu_op: AluOp, cls: InsnClass) -> None:
    width = 64 if cls == InsnClass.ALU64 else 32
    counts = (0, 1, width // 2 - 1, width - 1)
    for dst, src in itertools.product(REGS, REGS):
        if dst == src:  # the register is both the value and the count
            cases = [(c, c) for c in counts]
        else:
            cases = list(itertools.product((0x8000_0000_0000_0001, 0xDEAD_BEEF, 0xFFFF_FFFF_FFFF_FFFF), counts))
        for a, count in cases:
            op = Insn(int(cls) | int(alu_op) | int(Source.X), dst, src)
            _compare(_program(op, dst, src, a, count), {dst, src})


def test_atomics_with_r0_and_the_shift_registers() -> None:
    """cmpxchg compares with R0 (rax) and returns the old value there; fetch ops return into src."""
    cmpxchg, fetch_add, xchg = 0xF1, 0x01, 0xE1
    for size_code in (0xDB, 0xC3):  # 64- and 32-bit
        for imm in (cmpxchg, fetch_add, xchg):
            for src in (0, 3, 4, 7):
                if imm == cmpxchg and src == 0:
                    continue  # R0 is cmpxchg's comparand: it cannot also be the new value
                for old, r0 in ((5, 5), (5, 6), (0xFFFF_FFFF_FFFF_FFFF, 0xFFFF_FFFF)):
                    prog = Insns([
                        Insn(0xBF, 6, 1), _lddw(8, old), Insn(0x7B, 10, 8, -8),
                        _lddw(0, r0), *([] if src == 0 else [_lddw(src, 0x1234_5678_9ABC_DEF0)]),
                        Insn(size_code, 10, src, -8, imm),
                        Insn(0x79, 9, 10, -8),
                        *[Insn(0x7B, 6, r, 8 * k) for k, r in enumerate(REGS)], Insn(0xBF, 0, 9), Insn(0x95),
                    ])
                    _compare(prog, {0, src})
