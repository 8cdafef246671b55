"""The eBPF instruction set: opcodes, instructions, assembler and disassembler (pure, no I/O)."""

from __future__ import annotations

from pybpf.isa.insn import (
    INSN_SIZE,
    NO_META,
    Insn,
    InsnIdx,
    InsnMeta,
    Insns,
    SourceLine,
    decode,
    encode,
    validate,
)
from pybpf.isa.opcodes import (
    OPCODES,
    AluOp,
    AtomicOp,
    InsnClass,
    JmpOp,
    Kind,
    Mode,
    OpInfo,
    PseudoCall,
    PseudoSrc,
    Size,
    Source,
)

__all__ = [
    "INSN_SIZE",
    "NO_META",
    "OPCODES",
    "AluOp",
    "AtomicOp",
    "Insn",
    "InsnClass",
    "InsnIdx",
    "InsnMeta",
    "Insns",
    "JmpOp",
    "Kind",
    "Mode",
    "OpInfo",
    "PseudoCall",
    "PseudoSrc",
    "Size",
    "Source",
    "SourceLine",
    "decode",
    "encode",
    "validate",
]
