"""LLVM's instruction text (``llvm-objdump -d`` of LLVM 19, BPF target).

LLVM decodes each 8-byte slot with tables generated from its instruction definitions: bits an
instruction fixes (opcode, a zero ``off``, ``imm`` of ``exit``...) must match, bits it does not use
are ignored, and register fields accept r0-r11. So ``0f 21 00 00 07 00 00 00`` (``add`` with a
stray ``imm``) still prints ``r1 += r2`` while ``b7 01 01 00 ...`` (``mov`` with ``off = 1``) is
``<unknown>``. :func:`llvm_decode` reproduces those rules per opcode-table kind; the text follows
LLVM's asm strings and ``BPFInstPrinter`` (hex immediates, ``r1 + 0x8`` / ``r10 - 0x4`` memory
operands, ``+0x2`` branch offsets, ``ll`` on 64-bit immediates).

``alu32`` is ``--mattr=+alu32`` (or ``--mcpu=v3``/``v4``): LLVM then decodes sub-64-bit loads,
stores and 32-bit atomics with its 32-bit subregister forms (``w1 = *(u32 *)(r2 + 0x0)``). Plain
``llvm-objdump -d`` does not.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pybpf.isa._operators import (
    ALU_OPERATORS,
    JMP_OPERATORS,
    LOAD_TYPES,
    MOVSX_CASTS,
    SIGNED_ALU_OPERATORS,
    SIGNED_LOAD_TYPES,
)
from pybpf.isa.insn import sext
from pybpf.isa.opcodes import OPCODES, AluOp, InsnClass, Kind, Mode, OpInfo, Size, Source

__all__ = ["LlvmInsn", "format_hex", "llvm_decode"]

_MAX_REG = 11  # LLVM's register classes include r11 / w11


def format_hex(v: int) -> str:
    """LLVM's ``formatImm`` with hex printing: ``0x1f``, ``-0x4``."""
    return f"{v:#x}" if v >= 0 else f"-{-v:#x}"


def _br(v: int) -> str:
    return ("+" if v >= 0 else "") + format_hex(v)


def _mem(base: int, off: int) -> str:
    return f"r{base} + {format_hex(off)}" if off >= 0 else f"r{base} - {format_hex(-off)}"


@dataclass(frozen=True, slots=True)
class LlvmInsn:
    """One decoded instruction: its text, its size in bytes (8 or 16), and for branches the offset
    in slots that llvm-objdump turns into a ``<symbol+0x..>`` annotation."""

    text: str
    size: int
    branch: int | None = None


# Atomic operations by the low byte of imm: bits 7-4 are the operation, bit 0 the fetch flag.
_ATOMIC_NOFETCH = {0x00: "+", 0x40: "|", 0x50: "&", 0xA0: "^"}
_ATOMIC_FETCH = {0x00: "add", 0x40: "or", 0x50: "and", 0xA0: "xor"}
_XCHG, _CMPXCHG = 0xE1, 0xF1
_MOVSX32_OFFS = {k: v for k, v in MOVSX_CASTS.items() if k < 32}
_ADDR_SPACE_CAST_OFF = 1

# A decoder gets (info, dst, src, off, imm, hi-imm or None, alu32) and returns the instruction or None.
_Decoder = Callable[[OpInfo, int, int, int, int, "int | None", bool], "LlvmInsn | None"]


def _rw(cls: InsnClass) -> str:
    return "w" if cls in (InsnClass.ALU, InsnClass.JMP32) else "r"


def _alu(info: OpInfo, dst: int, src: int, off: int, imm: int, hi: int | None, alu32: bool) -> LlvmInsn | None:
    if dst > _MAX_REG:
        return None
    rw = _rw(info.cls)
    op = info.alu_op
    assert op is not None
    if op == AluOp.NEG:
        return LlvmInsn(f"{rw}{dst} = -{rw}{dst}", 8)
    if info.source == Source.K:
        if off == 0:
            return LlvmInsn(f"{rw}{dst} {ALU_OPERATORS[op]} {format_hex(sext(imm, 32))}", 8)
        if off == 1 and op in SIGNED_ALU_OPERATORS:
            return LlvmInsn(f"{rw}{dst} {SIGNED_ALU_OPERATORS[op]} {format_hex(sext(imm, 32))}", 8)
        return None
    if src > _MAX_REG:
        return None
    if off == 0:
        return LlvmInsn(f"{rw}{dst} {ALU_OPERATORS[op]} {rw}{src}", 8)
    if off == 1 and op in SIGNED_ALU_OPERATORS:
        return LlvmInsn(f"{rw}{dst} {SIGNED_ALU_OPERATORS[op]} {rw}{src}", 8)
    if op == AluOp.MOV:
        casts = MOVSX_CASTS if info.cls == InsnClass.ALU64 else _MOVSX32_OFFS
        if off in casts:
            return LlvmInsn(f"{rw}{dst} = {casts[off]}{rw}{src}", 8)
        if off == _ADDR_SPACE_CAST_OFF and info.cls == InsnClass.ALU64:
            u = imm & 0xFFFFFFFF
            return LlvmInsn(f"r{dst} = addr_space_cast(r{src}, {format_hex(u >> 16)}, {format_hex(u & 0xFFFF)})", 8)
    return None


def _end(info: OpInfo, dst: int, src: int, off: int, imm: int, hi: int | None, alu32: bool) -> LlvmInsn | None:
    if dst > _MAX_REG or imm not in (16, 32, 64):
        return None
    if info.cls == InsnClass.ALU64:
        name = "bswap"
    else:
        name = "be" if info.source == Source.X else "le"
    return LlvmInsn(f"r{dst} = {name}{imm} r{dst}", 8)


def _jcond(info: OpInfo, dst: int, src: int, off: int, imm: int, hi: int | None, alu32: bool) -> LlvmInsn | None:
    if dst > _MAX_REG:
        return None
    rw = _rw(info.cls)
    assert info.jmp_op is not None
    op = JMP_OPERATORS[info.jmp_op]
    if info.source == Source.X:
        if src > _MAX_REG:
            return None
        return LlvmInsn(f"if {rw}{dst} {op} {rw}{src} goto {_br(off)}", 8, off)
    return LlvmInsn(f"if {rw}{dst} {op} {format_hex(sext(imm, 32))} goto {_br(off)}", 8, off)


def _ja(info: OpInfo, dst: int, src: int, off: int, imm: int, hi: int | None, alu32: bool) -> LlvmInsn | None:
    if info.cls == InsnClass.JMP32:
        return LlvmInsn(f"gotol {_br(sext(imm, 32))}", 8, sext(imm, 32))
    return LlvmInsn(f"goto {_br(off)}", 8, off)


def _may_goto(info: OpInfo, dst: int, src: int, off: int, imm: int, hi: int | None, alu32: bool) -> LlvmInsn | None:
    return LlvmInsn(f"may_goto {_br(off)}", 8, off)


def _call(info: OpInfo, dst: int, src: int, off: int, imm: int, hi: int | None, alu32: bool) -> LlvmInsn | None:
    return LlvmInsn(f"call {format_hex(sext(imm, 32))}", 8)


def _callx(info: OpInfo, dst: int, src: int, off: int, imm: int, hi: int | None, alu32: bool) -> LlvmInsn | None:
    return LlvmInsn(f"callx r{dst}", 8) if dst <= _MAX_REG else None


def _exit(info: OpInfo, dst: int, src: int, off: int, imm: int, hi: int | None, alu32: bool) -> LlvmInsn | None:
    return LlvmInsn("exit", 8) if imm & 0xFFFFFFFF == 0 else None


def _lddw(info: OpInfo, dst: int, src: int, off: int, imm: int, hi: int | None, alu32: bool) -> LlvmInsn | None:
    if dst > _MAX_REG or off != 0 or hi is None:
        return None
    lo = imm & 0xFFFFFFFF
    if src == 0:
        return LlvmInsn(f"r{dst} = {format_hex(sext((hi << 32) | lo, 64))} ll", 16)
    return LlvmInsn(f"ld_pseudo\tr{dst}, {format_hex(src)}, {format_hex(lo)}", 16)


def _ld_abs(info: OpInfo, dst: int, src: int, off: int, imm: int, hi: int | None, alu32: bool) -> LlvmInsn | None:
    assert info.size is not None
    return LlvmInsn(f"r0 = *({LOAD_TYPES[info.size]} *)skb[{format_hex(sext(imm, 32))}]", 8)


def _ld_ind(info: OpInfo, dst: int, src: int, off: int, imm: int, hi: int | None, alu32: bool) -> LlvmInsn | None:
    assert info.size is not None
    return LlvmInsn(f"r0 = *({LOAD_TYPES[info.size]} *)skb[r{src}]", 8) if src <= _MAX_REG else None


def _sub32(info: OpInfo, alu32: bool) -> bool:
    """LLVM's 32-bit subregister forms: with alu32, for sub-64-bit MEM / ATOMIC loads and stores."""
    return alu32 and info.size != Size.DW and info.mode in (Mode.MEM, Mode.ATOMIC)


def _ldx(info: OpInfo, dst: int, src: int, off: int, imm: int, hi: int | None, alu32: bool) -> LlvmInsn | None:
    if dst > _MAX_REG or src > _MAX_REG:
        return None
    assert info.size is not None
    ty = SIGNED_LOAD_TYPES[info.size] if info.mode == Mode.MEMSX else LOAD_TYPES[info.size]
    rw = "w" if _sub32(info, alu32) else "r"
    return LlvmInsn(f"{rw}{dst} = *({ty} *)({_mem(src, off)})", 8)


def _st(info: OpInfo, dst: int, src: int, off: int, imm: int, hi: int | None, alu32: bool) -> LlvmInsn | None:
    if dst > _MAX_REG:
        return None
    assert info.size is not None
    return LlvmInsn(f"*({LOAD_TYPES[info.size]} *)({_mem(dst, off)}) = {format_hex(sext(imm, 32))}", 8)


def _stx(info: OpInfo, dst: int, src: int, off: int, imm: int, hi: int | None, alu32: bool) -> LlvmInsn | None:
    if dst > _MAX_REG or src > _MAX_REG:
        return None
    assert info.size is not None
    rw = "w" if _sub32(info, alu32) else "r"
    return LlvmInsn(f"*({LOAD_TYPES[info.size]} *)({_mem(dst, off)}) = {rw}{src}", 8)


# LLVM's atomic forms by access size: (register prefix, xchg name, cmpxchg name).
_ATOMIC_FORMS = {Size.DW: ("r", "xchg_64", "cmpxchg_64"), Size.W: ("w", "xchg32_32", "cmpxchg32_32")}


def _atomic(info: OpInfo, dst: int, src: int, off: int, imm: int, hi: int | None, alu32: bool) -> LlvmInsn | None:
    if dst > _MAX_REG or src > _MAX_REG:
        return None
    low = imm & 0xFF
    op, fetch = low & 0xF0, low & 0x0F == 1
    addr = _mem(dst, off)
    assert info.size is not None
    if info.size == Size.W and not alu32:  # only the v1 "xadd" exists in LLVM's 64-bit table for 32-bit atomics
        return LlvmInsn(f"lock *(u32 *)({addr}) += r{src}", 8) if op == 0 else None
    rw, xchg, cmpxchg = _ATOMIC_FORMS[info.size]
    ty = LOAD_TYPES[info.size]
    if low == _XCHG:
        return LlvmInsn(f"{rw}{src} = {xchg}({addr}, {rw}{src})", 8)
    if low == _CMPXCHG:
        return LlvmInsn(f"{rw}0 = {cmpxchg}({addr}, {rw}0, {rw}{src})", 8)
    if op in _ATOMIC_NOFETCH:
        if fetch:
            return LlvmInsn(f"{rw}{src} = atomic_fetch_{_ATOMIC_FETCH[op]}(({ty} *)({addr}), {rw}{src})", 8)
        return LlvmInsn(f"lock *({ty} *)({addr}) {_ATOMIC_NOFETCH[op]}= {rw}{src}", 8)
    return None


_BY_KIND: dict[Kind, _Decoder] = {
    Kind.ALU: _alu,
    Kind.END: _end,
    Kind.JA: _ja,
    Kind.JCOND: _jcond,
    Kind.MAY_GOTO: _may_goto,
    Kind.CALL: _call,
    Kind.CALLX: _callx,
    Kind.EXIT: _exit,
    Kind.LDDW: _lddw,
    Kind.LD_ABS: _ld_abs,
    Kind.LD_IND: _ld_ind,
    Kind.LDX: _ldx,
    Kind.ST: _st,
    Kind.STX: _stx,
    Kind.ATOMIC: _atomic,
}
_DECODER: dict[int, tuple[OpInfo, _Decoder]] = {code: (info, _BY_KIND[info.kind]) for code, info in OPCODES.items()}


def llvm_decode(data: bytes | bytearray | memoryview, *, alu32: bool = False) -> LlvmInsn | None:
    """Decode the instruction at the start of ``data`` as LLVM does; ``None`` is ``<unknown>``.

    ``data`` needs 8 bytes (16 for lddw); fewer is a decoding failure, as in LLVM.
    """
    if len(data) < 8:
        return None
    code, regs = data[0], data[1]
    entry = _DECODER.get(code)
    if entry is None:
        return None
    info, decode = entry
    off = sext(data[2] | data[3] << 8, 16)
    imm = int.from_bytes(bytes(data[4:8]), "little")
    hi = int.from_bytes(bytes(data[12:16]), "little") if info.kind is Kind.LDDW and len(data) >= 16 else None
    return decode(info, regs & 0xF, regs >> 4, off, imm, hi, alu32)
