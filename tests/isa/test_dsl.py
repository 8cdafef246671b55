"""The builder DSL: kernel-macro builders, one generated builder per table entry, labels."""

from __future__ import annotations

import pytest

from pybpf.errors import IsaError
from pybpf.isa import OPCODES, Insn, Kind, dsl, validate
from pybpf.isa.disasm import dump_xlated
from pybpf.isa.dsl import (
    R0,
    R1,
    R2,
    R6,
    R10,
    AluOp,
    AtomicOp,
    JmpOp,
    Size,
    alu32_imm,
    alu64_imm,
    alu64_reg,
    atomic_op,
    bswap,
    call,
    call_kfunc,
    call_pc,
    endian,
    exit_,
    gotol,
    insn_for,
    ja,
    jmp32_reg,
    jmp_imm,
    label,
    ld_abs,
    ld_imm64,
    ld_ind,
    ld_map_fd,
    ld_map_value,
    ldsx_mem,
    ldx_mem,
    may_goto,
    mov32_imm,
    mov64_imm,
    mov64_reg,
    movsx32_reg,
    movsx64_reg,
    neg64,
    program,
    st_mem,
    stx_mem,
)
from pybpf.uapi import HelperId


def test_kernel_macros_encode_like_the_kernel() -> None:
    assert mov64_imm(R1, 0).encode() == bytes.fromhex("b701000000000000")
    assert stx_mem(Size.W, R10, R1, -4).encode() == bytes.fromhex("631afcff00000000")
    assert mov64_reg(R2, R10).encode() == bytes.fromhex("bfa2000000000000")
    assert alu64_imm(AluOp.ADD, R2, -4).encode() == bytes.fromhex("07020000fcffffff")
    assert ld_map_fd(R1, 5).encode() == bytes.fromhex("18110000050000000000000000000000")
    assert call(HelperId.map_lookup_elem).encode() == bytes.fromhex("8500000001000000")
    assert atomic_op(Size.W, AtomicOp.ADD, R0, R1, 0).encode() == bytes.fromhex("c310000000000000")
    assert exit_().encode() == bytes.fromhex("9500000000000000")
    assert ld_map_value(R1, 3, 16) == Insn(0x18, 1, 2, 0, 3 | 16 << 32)
    assert ld_imm64(R1, 0xFFFFFFFFFFFFFFFF) == Insn(0x18, 1, 0, 0, -1)
    assert alu64_reg(AluOp.DIV, R1, R2, off=1) == Insn(0x3F, 1, 2, 1, 0)
    assert movsx64_reg(R0, R1, 32) == Insn(0xBF, 0, 1, 32, 0)
    assert movsx32_reg(R0, R1, 8) == Insn(0xBC, 0, 1, 8, 0)
    assert endian(R1, 16, big=True) == Insn(0xDC, 1, 0, 0, 16)
    assert bswap(R1, 64) == Insn(0xD7, 1, 0, 0, 64)
    assert neg64(R6) == Insn(0x87, 6)
    assert ld_abs(Size.B, 12) == Insn(0x30, 0, 0, 0, 12)
    assert ld_ind(Size.H, R1, 2) == Insn(0x48, 0, 1, 0, 2)
    assert ldsx_mem(Size.H, R0, R1, 2) == Insn(0x89, 0, 1, 2, 0)
    assert st_mem(Size.DW, R10, -8, 7) == Insn(0x7A, 10, 0, -8, 7)
    assert call_kfunc(100, 1) == Insn(0x85, 0, 2, 1, 100)
    assert mov32_imm(R1, 0xFFFFFFFF) == Insn(0xB4, 1, 0, 0, -1)
    assert alu32_imm(AluOp.LSH, R1, 3) == Insn(0x64, 1, 0, 0, 3)
    assert jmp_imm(JmpOp.JGE, R0, 1, 3) == Insn(0x35, 0, 0, 3, 1)
    assert jmp32_reg(JmpOp.JSLT, R0, R1, -2) == Insn(0xCE, 0, 1, -2, 0)
    assert ja(1) == Insn(0x05, 0, 0, 1, 0)
    assert gotol(100000) == Insn(0x06, 0, 0, 0, 100000)
    assert may_goto(2) == Insn(0xE5, 0, 0, 2, 0)
    assert call_pc(-3) == Insn(0x85, 0, 1, 0, -3)


def test_every_opcode_has_a_generated_builder() -> None:
    for info in OPCODES.values():
        fn = insn_for(info.name)
        assert fn.__name__ in (info.name, "exit_", "ld_imm64", "ja", "gotol", "may_goto", "call")
        if info.kind is Kind.ALU and info.alu_op == AluOp.NEG:
            insn = fn(3)
        elif info.kind in (Kind.ALU, Kind.LDX, Kind.STX):
            insn = fn(1, 2, 0) if info.source != 0 or info.kind is not Kind.ALU else fn(1, 5)
        elif info.kind is Kind.END:
            insn = fn(1, 32)
        elif info.kind is Kind.JCOND:
            insn = fn(1, 2, 4)
        elif info.kind is Kind.ST:
            insn = fn(10, -8, 1)
        elif info.kind is Kind.ATOMIC:
            insn = fn(AtomicOp.XCHG, 10, 1, -8)
        elif info.kind is Kind.LD_ABS:
            insn = fn(4)
        elif info.kind is Kind.LD_IND:
            insn = fn(1, 4)
        elif info.kind is Kind.CALLX:
            insn = fn(2)
        elif info.kind in (Kind.JA, Kind.MAY_GOTO) or info.kind is Kind.CALL:
            insn = fn(1)
        elif info.kind is Kind.LDDW:
            insn = fn(1, 1 << 40)
        else:
            insn = fn()
        assert insn.code == info.code, info.name
        assert validate(insn) is None, (info.name, validate(insn))
    assert dsl.add64_imm(1, 2) == Insn(0x07, 1, 0, 0, 2)  # type: ignore[attr-defined]
    assert dsl.jeq_imm(0, 0, 2) == Insn(0x15, 0, 0, 2, 0)  # type: ignore[attr-defined]
    assert dsl.ldxw(0, 2, 0) == Insn(0x61, 0, 2, 0, 0)  # type: ignore[attr-defined]
    assert "add64_imm" in dsl.__all__ and "exit" not in dsl.__all__


def test_program_resolves_labels_in_slots() -> None:
    prog = program(
        mov64_imm(R1, 0),
        jmp_imm(JmpOp.JEQ, R1, 0, "skip"),
        ld_imm64(R2, 1),  # two slots
        [mov64_imm(R0, 1), ja("end")],  # nested iterables flatten
        label("skip"),
        mov64_imm(R0, 2),
        gotol("end"),
        call_pc("end"),
        label("end"),
        exit_(),
    )
    assert prog.slot_count == 10
    assert prog.at(1).off == 4  # slot 1 -> slot 6
    assert prog.at(5).off == 3  # ja at slot 5 -> slot 9
    assert prog.at(7).imm == 1  # gotol at slot 7 -> slot 9
    assert prog.at(8).imm == 0 and prog.at(8).src == 1
    assert dump_xlated(prog).splitlines()[1] == "   1: (15) if r1 == 0x0 goto pc+4"


@pytest.mark.parametrize(
    ("build", "needle"),
    [
        (lambda: mov64_imm(11, 0), "r0-r10"),
        (lambda: mov64_imm(R1, 1 << 32), "does not fit in 32 bits"),
        (lambda: ldx_mem(Size.W, R0, R1, 40000), "signed 16-bit"),
        (lambda: movsx32_reg(R0, R1, 32), "8 or 16"),
        (lambda: bswap(R0, 8), "16, 32 or 64"),
        (lambda: atomic_op(Size.W, 0x33, R0, R1, 0), "unknown atomic"),
        (lambda: ldsx_mem(Size.DW, R0, R1, 0), "no instruction has opcode"),
        (lambda: ld_imm64(R0, 1, 9), "BPF_PSEUDO"),
        (lambda: program(ja("nowhere")), "unknown label"),
        (lambda: program(label("a"), label("a"), exit_()), "defined twice"),
        (lambda: program(ja("far"), [mov64_imm(R0, 0)] * 40000, label("far"), exit_()), "signed 16-bit"),
        (lambda: program("exit"), "not an instruction"),
        (lambda: insn_for("frob"), "no instruction named"),
    ],
)
def test_bad_operands_raise_isa_error(build: object, needle: str) -> None:
    with pytest.raises(IsaError, match=needle):
        build()  # type: ignore[operator]
