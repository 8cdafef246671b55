"""Every opcode of the table, run on both tiers over edge-case operands, against the semantics module.

One program per (opcode, offset variant) applies the instruction to every pair of interesting
values and folds each result into r0; both tiers must produce the fold that
:mod:`pybpf.vm.semantics` predicts. Random programs (test_differential.py) then cover combinations.
"""

from __future__ import annotations

import itertools

import pytest

from pybpf.isa import OPCODES, Insn, Insns, Kind
from pybpf.isa.opcodes import AluOp, AtomicOp, InsnClass, Mode, Source
from pybpf.vm import AddressSpace, Interpreter, RegionKind, TranslatedProgram
from pybpf.vm.engine import Engine
from pybpf.vm.semantics import ATOMIC_FUNCS, M32, M64, alu, bswap, condition, sext, to_be, to_le

VALUES = [0, 1, 2, 7, 31, 32, 63, 64, 0x7F, 0x80, 0xFF, 0x8000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF,
          1 << 32, 0x123456789ABCDEF0, 1 << 63, (1 << 63) - 1, M64 - 1, M64]
IMMS = [0, 1, -1, 2, 3, 31, 32, 63, -63, 0x7F, -0x80, 0x7FFFFFFF, -0x80000000, 17]
FOLD = 0x100000001B3  # FNV-64 prime: r0 = r0 * FOLD ^ x
ENGINES = [Interpreter, TranslatedProgram]


def _lddw(reg: int, value: int) -> Insn:
    return Insn(0x18, reg, imm=sext(value, 64))


def _fold(reg: int) -> list[Insn]:
    return [_lddw(3, FOLD), Insn(0x2F, 0, 3), Insn(0xAF, 0, reg)]  # r0 *= r3 (64); r0 ^= reg


def _predict_fold(results: list[int]) -> int:
    acc = 0
    for x in results:
        acc = ((acc * FOLD) & M64) ^ x
    return acc


def _run(cls: type[Engine], insns: Insns, memory: bytearray | None = None) -> int:
    space = AddressSpace()
    r1 = 0
    if memory is not None:
        r1 = space.add(memory, RegionKind.MEM).address()
    return cls(insns, space=space).run(r1, 0 if memory is None else len(memory))


def _alu_cases() -> list[tuple[int, int]]:
    cases = []
    for code, info in sorted(OPCODES.items()):
        if info.kind is Kind.ALU:
            offs = sorted(info.off.allowed or {0})
            if info.source is Source.K and info.alu_op is AluOp.MOV:
                offs = [0]
            cases.extend((code, off) for off in offs)
    return cases


@pytest.mark.parametrize(("code", "off"), _alu_cases(), ids=lambda v: f"{v:#04x}" if v > 32 else str(v))
@pytest.mark.parametrize("engine", ENGINES, ids=lambda c: c.tier)
def test_alu(engine: type[Engine], code: int, off: int) -> None:
    info = OPCODES[code]
    is64 = info.cls == InsnClass.ALU64
    prog: list[Insn] = [Insn(0xB7, 0, imm=0)]
    expect: list[int] = []
    if info.source is Source.X:
        pairs: list[tuple[int, int | None]] = list(itertools.product(VALUES, VALUES))
    else:
        pairs = list(itertools.product(VALUES, IMMS))  # type: ignore[arg-type]
    for a, b in pairs:
        prog.append(_lddw(1, a))
        if info.source is Source.X:
            prog += [_lddw(2, b), Insn(code, 1, 2, off)]  # type: ignore[arg-type]
            src = b
        else:
            imm = 0 if info.alu_op is AluOp.NEG else b
            prog.append(Insn(code, 1, 0, off, imm))  # type: ignore[arg-type]
            src = sext(imm, 32) & M64  # type: ignore[arg-type]
        prog += _fold(1)
        expect.append(alu(info.alu_op, a, src, is64=is64, off=off))  # type: ignore[arg-type]
    prog.append(Insn(0x95))
    assert _run(engine, Insns(prog)) == _predict_fold(expect)


@pytest.mark.parametrize("code", sorted(c for c, i in OPCODES.items() if i.kind is Kind.END), ids=hex)
@pytest.mark.parametrize("engine", ENGINES, ids=lambda c: c.tier)
def test_byte_swaps(engine: type[Engine], code: int) -> None:
    info = OPCODES[code]
    swap = {(InsnClass.ALU, Source.K): to_le, (InsnClass.ALU, Source.X): to_be}.get((info.cls, info.source), bswap)
    prog: list[Insn] = [Insn(0xB7, 0, imm=0)]
    expect = []
    for value, width in itertools.product(VALUES, (16, 32, 64)):
        prog += [_lddw(1, value), Insn(code, 1, imm=width), *_fold(1)]
        expect.append(swap(value, width))
    prog.append(Insn(0x95))
    assert _run(engine, Insns(prog)) == _predict_fold(expect)


@pytest.mark.parametrize("code", sorted(c for c, i in OPCODES.items() if i.kind is Kind.JCOND), ids=hex)
@pytest.mark.parametrize("engine", ENGINES, ids=lambda c: c.tier)
def test_conditional_jumps(engine: type[Engine], code: int) -> None:
    info = OPCODES[code]
    is64 = info.cls == InsnClass.JMP
    others = VALUES if info.source is Source.X else IMMS
    prog: list[Insn] = [Insn(0xB7, 0, imm=0)]
    expect = []
    for a, b in itertools.product(VALUES, others):
        prog.append(_lddw(1, a))
        if info.source is Source.X:
            prog.append(_lddw(2, b))
            jcc = Insn(code, 1, 2, 2)
            rhs = b
        else:
            jcc = Insn(code, 1, 0, 2, b)
            rhs = sext(b, 32) & M64
        # r4 = 1; if cond goto +2 (skip the next two); r4 = 2; ja +0
        prog += [Insn(0xB7, 4, imm=1), jcc, Insn(0xB7, 4, imm=2), Insn(0x05, off=0), *_fold(4)]
        expect.append(1 if condition(info.jmp_op, a, rhs, is64=is64) else 2)  # type: ignore[arg-type]
    prog.append(Insn(0x95))
    assert _run(engine, Insns(prog)) == _predict_fold(expect)


def _mem_cases() -> list[int]:
    return sorted(c for c, i in OPCODES.items() if i.kind in (Kind.LDX, Kind.ST, Kind.STX, Kind.ATOMIC))


@pytest.mark.parametrize("code", _mem_cases(), ids=hex)
@pytest.mark.parametrize("base", [1, 10], ids=["memory", "stack"])
@pytest.mark.parametrize("engine", ENGINES, ids=lambda c: c.tier)
def test_memory_instructions(engine: type[Engine], code: int, base: int) -> None:
    """Each access on input memory (through r1) and on the stack (r10): the bytes afterwards and
    the loaded / fetched values must be what the semantics say."""
    info = OPCODES[code]
    size = info.size.bytes  # type: ignore[union-attr]
    pattern = bytes(range(0x81, 0x81 + 64))
    ops = [int(op) for op in AtomicOp] if info.kind is Kind.ATOMIC else [0]
    for op in ops:
        mem = bytearray(pattern)
        prog: list[Insn] = [Insn(0xBF, 6, 1), Insn(0xB7, 0, imm=0)]
        # copy the pattern onto the stack so both bases see the same bytes
        prog += [x for k in range(0, 64, 8) for x in (Insn(0x79, 3, 6, k), Insn(0x7B, 10, 3, k - 64))]
        ptr, off = (6, 8) if base == 1 else (10, -56)
        value = 0x1122334455667788
        prog += [_lddw(2, value), Insn(0xB7, 0, imm=0x5A)]
        if info.kind is Kind.LDX:
            prog += [Insn(code, 4, ptr, off), *_fold(4)]
        elif info.kind is Kind.ST:
            prog.append(Insn(code, ptr, 0, off, -0x7EDCBA99))
        elif info.kind is Kind.STX:
            prog.append(Insn(code, ptr, 2, off))
        else:
            prog += [_lddw(0, int.from_bytes(pattern[8 : 8 + size], "little")), Insn(code, ptr, 2, off, op)]
            prog += [Insn(0xBF, 4, 0), *_fold(2), *_fold(4)]
        # fold the 16 bytes around the access so every written byte is checked
        prog += [x for k in range(0, 16, 8) for x in (Insn(0x79, 5, ptr, off - 8 + k), *_fold(5))]
        prog.append(Insn(0x95))
        got = _run(engine, Insns(prog), mem)
        # predict
        area = bytearray(pattern)
        at = 8
        old = int.from_bytes(area[at : at + size], "little")
        r0 = 0x5A
        r2, r4 = value, 0
        results: list[int] = []
        if info.kind is Kind.LDX:
            loaded = sext(old, 8 * size) & M64 if info.mode is Mode.MEMSX else old
            r0 = 0x5A
            results.append(loaded)
            acc_start = r0
        elif info.kind is Kind.ST:
            area[at : at + size] = (sext(-0x7EDCBA99, 32) & ((1 << 8 * size) - 1)).to_bytes(size, "little")
            acc_start = r0
        elif info.kind is Kind.STX:
            area[at : at + size] = (value & ((1 << 8 * size) - 1)).to_bytes(size, "little")
            acc_start = r0
        else:
            mask = (1 << 8 * size) - 1
            r0 = old  # the comparand equals memory: cmpxchg swaps
            atomic = AtomicOp(op)
            if atomic is AtomicOp.CMPXCHG:
                new = value & mask
                r0 = old
            else:
                new = ATOMIC_FUNCS[atomic.base](old, value & mask, mask)
                if atomic.fetch:
                    r2 = old
            area[at : at + size] = new.to_bytes(size, "little")
            r4 = r0
            results += [r2, r4]
            acc_start = r0
        results += [int.from_bytes(area[k : k + 8], "little") for k in (0, 8)]
        acc = acc_start
        for x in results:
            acc = ((acc * FOLD) & M64) ^ x
        assert got == acc, (hex(code), op)
        if base == 1 and info.kind is not Kind.LDX:
            assert mem == area


@pytest.mark.parametrize("engine", ENGINES, ids=lambda c: c.tier)
def test_32_bit_results_zero_extend(engine: type[Engine]) -> None:
    prog = Insns([_lddw(0, M64), Insn(0x04, 0, imm=0), Insn(0x95)])  # add32 r0, 0
    assert _run(engine, prog) == M32
