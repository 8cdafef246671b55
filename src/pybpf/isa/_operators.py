"""The spellings both text dialects share, kept in one place for the printers and the assembler.

The kernel's ``disasm.c`` and LLVM's BPF instruction printer write instructions as C-like
statements and agree on the operators (``r1 += r2``, ``if r1 s> r2 goto``), on the access types
(``*(u32 *)``, ``*(s16 *)``) and on the ``movsx`` casts (``(s8)``). Each printer adds its own forms
(the kernel's ``neg`` and ``endian`` placeholders, LLVM's ``w`` registers); :mod:`pybpf.isa.asm`
reads all of them back from these tables.
"""

from __future__ import annotations

from pybpf.isa.opcodes import AluOp, AtomicOp, JmpOp, Size

__all__ = [
    "ALU_OPERATORS",
    "ATOMIC_NAMES",
    "JMP_OPERATORS",
    "LOAD_TYPES",
    "MOVSX_CASTS",
    "SIGNED_ALU_OPERATORS",
    "SIGNED_LOAD_TYPES",
]

ALU_OPERATORS: dict[AluOp, str] = {
    AluOp.ADD: "+=",
    AluOp.SUB: "-=",
    AluOp.MUL: "*=",
    AluOp.DIV: "/=",
    AluOp.OR: "|=",
    AluOp.AND: "&=",
    AluOp.LSH: "<<=",
    AluOp.RSH: ">>=",
    AluOp.MOD: "%=",
    AluOp.XOR: "^=",
    AluOp.MOV: "=",
    AluOp.ARSH: "s>>=",
}
SIGNED_ALU_OPERATORS: dict[AluOp, str] = {AluOp.DIV: "s/=", AluOp.MOD: "s%="}
"""``sdiv`` / ``smod``: DIV / MOD with ``off == 1``."""

JMP_OPERATORS: dict[JmpOp, str] = {
    JmpOp.JEQ: "==",
    JmpOp.JGT: ">",
    JmpOp.JGE: ">=",
    JmpOp.JSET: "&",
    JmpOp.JNE: "!=",
    JmpOp.JSGT: "s>",
    JmpOp.JSGE: "s>=",
    JmpOp.JLT: "<",
    JmpOp.JLE: "<=",
    JmpOp.JSLT: "s<",
    JmpOp.JSLE: "s<=",
}

LOAD_TYPES: dict[Size, str] = {Size.B: "u8", Size.H: "u16", Size.W: "u32", Size.DW: "u64"}
SIGNED_LOAD_TYPES: dict[Size, str] = {Size.B: "s8", Size.H: "s16", Size.W: "s32"}
"""``BPF_MEMSX`` loads (there is no sign-extending 8-byte load)."""

MOVSX_CASTS: dict[int, str] = {8: "(s8)", 16: "(s16)", 32: "(s32)"}
"""``movsx``'s ``off`` (bits taken from the source) as printed before the source register."""

ATOMIC_NAMES: dict[AtomicOp, str] = {AtomicOp.ADD: "add", AtomicOp.AND: "and", AtomicOp.OR: "or", AtomicOp.XOR: "xor"}
"""The operation in ``atomic_fetch_<name>`` (kernel and LLVM alike)."""
