"""A builder DSL for instructions, in the shape of the kernel's ``BPF_*`` macros (``include/linux/filter.h``).

Tests across the project build programs with it::

    from pybpf.isa.dsl import *

    prog = program(
        mov64_imm(R0, 0),
        stx_mem(Size.W, R10, R0, -4),
        mov64_reg(R2, R10),
        alu64_imm(AluOp.ADD, R2, -4),
        ld_map_fd(R1, map_fd),
        call(HelperId.map_lookup_elem),
        jeq_imm(R0, 0, "out"),       # a label instead of an offset
        mov64_imm(R0, 1),
        label("out"),
        exit_(),
    )

Two layers, both driven by :data:`OPCODES`:

* the kernel's macros with an explicit operation or size (``alu64_imm(op, dst, imm)``, ``jmp_reg(op,
  dst, src, off)``, ``ldx_mem(size, dst, src, off)``, ``st_mem``, ``stx_mem``, ``atomic_op``...), and
  their common shorthands (``mov64_imm``, ``ld_imm64``, ``ld_map_fd``, ``call``, ``exit_``);
* one function per table entry, named after :attr:`OpInfo.name` (``add64_imm(dst, imm)``,
  ``jsgt32_reg(dst, src, off)``, ``ldxh(dst, src, off)``, ``stxdw(dst, src, off)``...), generated from
  the table so that every opcode has a builder and none is hand-listed.

A jump offset may be a label name (``str``); :func:`program` resolves labels to offsets in raw slots
(lddw counts twice), so hand-built programs need no offset arithmetic. Every builder validates its
operands (register numbers 0-10, field widths) and raises :class:`pybpf.errors.IsaError`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import IntEnum

from pybpf.errors import IsaError
from pybpf.isa.insn import Insn, Insns
from pybpf.isa.opcodes import (
    LDDW_CODE,
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
    "R0", "R1", "R2", "R3", "R4", "R5", "R6", "R7", "R8", "R9", "R10", "RFP",
    "AluOp", "AtomicOp", "JmpOp", "Label", "Reg", "Size",
    "alu32_imm", "alu32_reg", "alu64_imm", "alu64_reg", "atomic_op", "bswap", "call", "call_kfunc",
    "call_pc", "endian", "exit_", "gotol", "insn_for", "ja", "jmp32_imm", "jmp32_reg", "jmp_imm",
    "jmp_reg", "label", "ld_abs", "ld_imm64", "ld_ind", "ld_map_fd", "ld_map_value", "ld_pseudo",
    "ldx_mem", "ldsx_mem", "may_goto", "mov32_imm", "mov32_reg", "mov64_imm", "mov64_reg", "movsx32_reg",
    "movsx64_reg", "neg32", "neg64", "program", "st_mem", "stx_mem",
]


class Reg(IntEnum):
    """The eleven registers. ``R10`` (``RFP``) is the read-only frame pointer."""

    R0 = 0
    R1 = 1
    R2 = 2
    R3 = 3
    R4 = 4
    R5 = 5
    R6 = 6
    R7 = 7
    R8 = 8
    R9 = 9
    R10 = 10


R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 = Reg
RFP = Reg.R10


@dataclass(frozen=True, slots=True)
class Label:
    """A position marker for :func:`program`; emits no instruction."""

    name: str


@dataclass(frozen=True, slots=True)
class _Pending:
    """An instruction whose jump offset (``off``, or ``imm`` for gotol / bpf-to-bpf calls) is a label."""

    insn: Insn
    target: str
    field: str  # "off" or "imm"


Item = Insn | Label | _Pending
Off = int | str


def label(name: str) -> Label:
    """Mark the next instruction's position as ``name`` (cilium's ``.WithSymbol``)."""
    return Label(name)


def _reg(value: int, what: str) -> int:
    if not isinstance(value, int) or not 0 <= value <= 10:
        raise IsaError(f"{what} register must be r0-r10, got {value!r}")
    return int(value)


def _imm32(value: int) -> int:
    if not isinstance(value, int) or not -(1 << 31) <= value <= 0xFFFFFFFF:
        raise IsaError(f"immediate {value!r} does not fit in 32 bits")
    return value - (1 << 32) if value > 0x7FFFFFFF else value


def _off16(value: int) -> int:
    if not isinstance(value, int) or not -0x8000 <= value <= 0x7FFF:
        raise IsaError(f"offset {value!r} does not fit in a signed 16-bit field")
    return value


def _with_target(insn: Insn, off: Off, field: str = "off") -> Insn | _Pending:
    if isinstance(off, str):
        return _Pending(insn, off, field)
    if field == "off":
        return insn.replace(off=_off16(off))
    return insn.replace(imm=_imm32(off))


def _code(cls: InsnClass, *parts: int) -> int:
    code = int(cls)
    for p in parts:
        code |= int(p)
    if code not in OPCODES:
        raise IsaError(f"no instruction has opcode {code:#04x}")
    return code


# -- the kernel's macros ------------------------------------------------------------------------

def alu64_imm(op: AluOp, dst: int, imm: int) -> Insn:
    """``BPF_ALU64_IMM(OP, DST, IMM)``."""
    return Insn(_code(InsnClass.ALU64, op, Source.K), _reg(dst, "destination"), 0, 0, _imm32(imm))


def alu32_imm(op: AluOp, dst: int, imm: int) -> Insn:
    """``BPF_ALU32_IMM(OP, DST, IMM)``."""
    return Insn(_code(InsnClass.ALU, op, Source.K), _reg(dst, "destination"), 0, 0, _imm32(imm))


def alu64_reg(op: AluOp, dst: int, src: int, off: int = 0) -> Insn:
    """``BPF_ALU64_REG(OP, DST, SRC)``; ``off=1`` makes div/mod signed (``BPF_ALU64_REG_OFF``)."""
    return Insn(_code(InsnClass.ALU64, op, Source.X), _reg(dst, "destination"), _reg(src, "source"), _off16(off))


def alu32_reg(op: AluOp, dst: int, src: int, off: int = 0) -> Insn:
    """``BPF_ALU32_REG(OP, DST, SRC)``."""
    return Insn(_code(InsnClass.ALU, op, Source.X), _reg(dst, "destination"), _reg(src, "source"), _off16(off))


def mov64_imm(dst: int, imm: int) -> Insn:
    """``BPF_MOV64_IMM``: ``dst = imm`` (sign-extended)."""
    return alu64_imm(AluOp.MOV, dst, imm)


def mov32_imm(dst: int, imm: int) -> Insn:
    """``BPF_MOV32_IMM``: ``wdst = imm``."""
    return alu32_imm(AluOp.MOV, dst, imm)


def mov64_reg(dst: int, src: int) -> Insn:
    """``BPF_MOV64_REG``."""
    return alu64_reg(AluOp.MOV, dst, src)


def mov32_reg(dst: int, src: int) -> Insn:
    """``BPF_MOV32_REG``."""
    return alu32_reg(AluOp.MOV, dst, src)


def movsx64_reg(dst: int, src: int, bits: int) -> Insn:
    """``BPF_MOVSX64_REG``: ``dst = (s8|s16|s32)src``."""
    if bits not in (8, 16, 32):
        raise IsaError(f"movsx64 sign-extends from 8, 16 or 32 bits, not {bits}")
    return alu64_reg(AluOp.MOV, dst, src, bits)


def movsx32_reg(dst: int, src: int, bits: int) -> Insn:
    """``BPF_MOVSX32_REG``: ``wdst = (s8|s16)wsrc``."""
    if bits not in (8, 16):
        raise IsaError(f"movsx32 sign-extends from 8 or 16 bits, not {bits}")
    return alu32_reg(AluOp.MOV, dst, src, bits)


def neg64(dst: int) -> Insn:
    """``dst = -dst``."""
    return Insn(_code(InsnClass.ALU64, AluOp.NEG), _reg(dst, "destination"))


def neg32(dst: int) -> Insn:
    """``wdst = -wdst``."""
    return Insn(_code(InsnClass.ALU, AluOp.NEG), _reg(dst, "destination"))


def endian(dst: int, bits: int, *, big: bool) -> Insn:
    """``BPF_ENDIAN(TYPE, DST, LEN)``: ``le16/32/64`` or (``big=True``) ``be16/32/64``."""
    if bits not in (16, 32, 64):
        raise IsaError(f"byte swaps are 16, 32 or 64 bits wide, not {bits}")
    return Insn(_code(InsnClass.ALU, AluOp.END, Source.X if big else Source.K), _reg(dst, "destination"), 0, 0,
                bits)


def bswap(dst: int, bits: int) -> Insn:
    """``BPF_BSWAP(DST, LEN)``: unconditional byte swap (ALU64 class, v4)."""
    if bits not in (16, 32, 64):
        raise IsaError(f"byte swaps are 16, 32 or 64 bits wide, not {bits}")
    return Insn(_code(InsnClass.ALU64, AluOp.END), _reg(dst, "destination"), 0, 0, bits)


def ld_imm64(dst: int, imm: int, src: int = PseudoSrc.NONE) -> Insn:
    """``BPF_LD_IMM64_RAW(DST, SRC, IMM)``: the two-slot 64-bit immediate load."""
    if not isinstance(imm, int) or not -(1 << 63) <= imm <= 0xFFFFFFFFFFFFFFFF:
        raise IsaError(f"immediate {imm!r} does not fit in 64 bits")
    if imm > 0x7FFFFFFFFFFFFFFF:
        imm -= 1 << 64
    if src not in tuple(PseudoSrc):
        raise IsaError(f"lddw source field must be a BPF_PSEUDO_* kind (0-6), got {src!r}")
    return Insn(LDDW_CODE, _reg(dst, "destination"), int(src), 0, imm)


def ld_pseudo(dst: int, src: int, imm: int) -> Insn:
    """``BPF_LD_IMM64_RAW`` with a pseudo source: ``src`` says what ``imm`` is."""
    return ld_imm64(dst, imm, src)


def ld_map_fd(dst: int, fd: int) -> Insn:
    """``BPF_LD_MAP_FD(DST, MAP_FD)``: ``dst = &map`` (the loader replaces the fd)."""
    return ld_imm64(dst, fd & 0xFFFFFFFF, PseudoSrc.MAP_FD)


def ld_map_value(dst: int, fd: int, off: int = 0) -> Insn:
    """``BPF_LD_MAP_VALUE(DST, MAP_FD, OFF)``: ``dst = &map.value[0] + off``."""
    if not 0 <= off <= 0xFFFFFFFF:
        raise IsaError(f"map value offset {off!r} does not fit in 32 bits")
    return ld_imm64(dst, (fd & 0xFFFFFFFF) | (off << 32), PseudoSrc.MAP_VALUE)


def ld_abs(size: Size, imm: int) -> Insn:
    """``BPF_LD_ABS(SIZE, IMM)``: legacy packet load into r0."""
    return Insn(_code(InsnClass.LD, Mode.ABS, size), 0, 0, 0, _imm32(imm))


def ld_ind(size: Size, src: int, imm: int) -> Insn:
    """``BPF_LD_IND(SIZE, SRC, IMM)``."""
    return Insn(_code(InsnClass.LD, Mode.IND, size), 0, _reg(src, "source"), 0, _imm32(imm))


def ldx_mem(size: Size, dst: int, src: int, off: int) -> Insn:
    """``BPF_LDX_MEM(SIZE, DST, SRC, OFF)``: ``dst = *(size *)(src + off)``."""
    return Insn(_code(InsnClass.LDX, Mode.MEM, size), _reg(dst, "destination"), _reg(src, "source"), _off16(off))


def ldsx_mem(size: Size, dst: int, src: int, off: int) -> Insn:
    """``BPF_LDX_MEMSX(SIZE, DST, SRC, OFF)``: sign-extending load (v4)."""
    return Insn(_code(InsnClass.LDX, Mode.MEMSX, size), _reg(dst, "destination"), _reg(src, "source"),
                _off16(off))


def stx_mem(size: Size, dst: int, src: int, off: int) -> Insn:
    """``BPF_STX_MEM(SIZE, DST, SRC, OFF)``: ``*(size *)(dst + off) = src``."""
    return Insn(_code(InsnClass.STX, Mode.MEM, size), _reg(dst, "destination"), _reg(src, "source"), _off16(off))


def st_mem(size: Size, dst: int, off: int, imm: int) -> Insn:
    """``BPF_ST_MEM(SIZE, DST, OFF, IMM)``: ``*(size *)(dst + off) = imm``."""
    return Insn(_code(InsnClass.ST, Mode.MEM, size), _reg(dst, "destination"), 0, _off16(off), _imm32(imm))


def atomic_op(size: Size, op: AtomicOp | int, dst: int, src: int, off: int) -> Insn:
    """``BPF_ATOMIC_OP(SIZE, OP, DST, SRC, OFF)``: ``op`` is an :class:`AtomicOp` (with FETCH or not)."""
    if op not in tuple(AtomicOp):
        raise IsaError(f"unknown atomic operation {op!r}")
    return Insn(_code(InsnClass.STX, Mode.ATOMIC, size), _reg(dst, "destination"), _reg(src, "source"),
                _off16(off), int(op))


def jmp_imm(op: JmpOp, dst: int, imm: int, off: Off) -> Insn | _Pending:
    """``BPF_JMP_IMM(OP, DST, IMM, OFF)``; ``off`` may be a label."""
    return _with_target(Insn(_code(InsnClass.JMP, op, Source.K), _reg(dst, "destination"), 0, 0, _imm32(imm)), off)


def jmp_reg(op: JmpOp, dst: int, src: int, off: Off) -> Insn | _Pending:
    """``BPF_JMP_REG(OP, DST, SRC, OFF)``."""
    return _with_target(Insn(_code(InsnClass.JMP, op, Source.X), _reg(dst, "destination"), _reg(src, "source")),
                        off)


def jmp32_imm(op: JmpOp, dst: int, imm: int, off: Off) -> Insn | _Pending:
    """``BPF_JMP32_IMM(OP, DST, IMM, OFF)``."""
    return _with_target(Insn(_code(InsnClass.JMP32, op, Source.K), _reg(dst, "destination"), 0, 0, _imm32(imm)),
                        off)


def jmp32_reg(op: JmpOp, dst: int, src: int, off: Off) -> Insn | _Pending:
    """``BPF_JMP32_REG(OP, DST, SRC, OFF)``."""
    return _with_target(Insn(_code(InsnClass.JMP32, op, Source.X), _reg(dst, "destination"),
                             _reg(src, "source")), off)


def ja(off: Off) -> Insn | _Pending:
    """``BPF_JMP_A(OFF)``: ``goto pc+off``."""
    return _with_target(Insn(_code(InsnClass.JMP, JmpOp.JA)), off)


def gotol(imm: Off) -> Insn | _Pending:
    """``BPF_JMP32_A(IMM)``: the long jump, offset in ``imm`` (v4)."""
    return _with_target(Insn(_code(InsnClass.JMP32, JmpOp.JA)), imm, "imm")


def may_goto(off: Off) -> Insn | _Pending:
    """``may_goto pc+off``: the bounded-loop escape (``BPF_JCOND`` with ``BPF_MAY_GOTO``)."""
    return _with_target(Insn(_code(InsnClass.JMP, JmpOp.JCOND)), off)


def call(helper: int) -> Insn:
    """``BPF_EMIT_CALL(FUNC)``: a helper call by id (``HelperId`` or an internal function id)."""
    return Insn(_code(InsnClass.JMP, JmpOp.CALL), 0, PseudoCall.HELPER, 0, _imm32(int(helper)))


def call_pc(imm: Off) -> Insn | _Pending:
    """``BPF_CALL_REL(IMM)``: bpf-to-bpf call; ``imm`` is relative to the next instruction, or a label."""
    return _with_target(Insn(_code(InsnClass.JMP, JmpOp.CALL), 0, PseudoCall.CALL), imm, "imm")


def call_kfunc(btf_id: int, off: int = 0) -> Insn:
    """``BPF_CALL_KFUNC(OFF, IMM)``: kernel function by BTF id (``off`` = module BTF fd index)."""
    return Insn(_code(InsnClass.JMP, JmpOp.CALL), 0, PseudoCall.KFUNC, _off16(off), _imm32(btf_id))


def exit_() -> Insn:
    """``BPF_EXIT_INSN()``."""
    return Insn(_code(InsnClass.JMP, JmpOp.EXIT))


# -- program assembly with labels --------------------------------------------------------------------

def program(*items: Item | Iterable[Item]) -> Insns:
    """Instructions (and nested iterables of them) with :func:`label` markers -> :class:`Insns`.

    Jump offsets given as label names become slot-relative offsets; an unknown or duplicate label, or
    an offset that does not fit its field, raises :class:`IsaError`.
    """
    flat: list[Item] = []

    def walk(xs: Iterable[Item | Iterable[Item]]) -> None:
        for x in xs:
            if isinstance(x, Insn | Label | _Pending):
                flat.append(x)
            elif isinstance(x, Iterable) and not isinstance(x, str | bytes):
                walk(x)
            else:
                raise IsaError(f"not an instruction or label: {x!r}")

    walk(items)
    labels: dict[str, int] = {}
    slot = 0
    for x in flat:
        if isinstance(x, Label):
            if x.name in labels:
                raise IsaError(f"label {x.name!r} defined twice")
            labels[x.name] = slot
        else:
            slot += (x.insn if isinstance(x, _Pending) else x).width
    out: list[Insn] = []
    slot = 0
    for x in flat:
        if isinstance(x, Label):
            continue
        if isinstance(x, _Pending):
            if x.target not in labels:
                raise IsaError(f"unknown label {x.target!r}", insn_idx=slot)
            rel = labels[x.target] - slot - 1
            insn = x.insn.replace(off=_off16(rel)) if x.field == "off" else x.insn.replace(imm=_imm32(rel))
        else:
            insn = x
        out.append(insn)
        slot += insn.width
    return Insns(out)


# -- one builder per opcode, generated from the table ------------------------------------------------

def insn_for(name: str) -> Callable[..., Insn | _Pending]:
    """The builder for the table entry named ``name`` (``"add64_imm"``, ``"ldxw"``, ``"jslt32_reg"``)."""
    try:
        return _GENERATED[name]
    except KeyError:
        raise IsaError(f"no instruction named {name!r}") from None


def _make(info: OpInfo) -> Callable[..., Insn | _Pending] | None:
    code = info.code
    k = info.kind
    x = info.source == Source.X
    if k is Kind.ALU and info.alu_op == AluOp.NEG:
        def f_neg(dst: int) -> Insn:
            return Insn(code, _reg(dst, "destination"))
        return f_neg
    if k is Kind.ALU and x:
        def f_alu_x(dst: int, src: int, off: int = 0) -> Insn:
            return Insn(code, _reg(dst, "destination"), _reg(src, "source"), _off16(off))
        return f_alu_x
    if k is Kind.ALU:
        def f_alu_k(dst: int, imm: int, off: int = 0) -> Insn:
            return Insn(code, _reg(dst, "destination"), 0, _off16(off), _imm32(imm))
        return f_alu_k
    if k is Kind.END:
        def f_end(dst: int, bits: int) -> Insn:
            if bits not in (16, 32, 64):
                raise IsaError(f"byte swaps are 16, 32 or 64 bits wide, not {bits}")
            return Insn(code, _reg(dst, "destination"), 0, 0, bits)
        return f_end
    if k is Kind.JCOND and x:
        def f_j_x(dst: int, src: int, off: Off) -> Insn | _Pending:
            return _with_target(Insn(code, _reg(dst, "destination"), _reg(src, "source")), off)
        return f_j_x
    if k is Kind.JCOND:
        def f_j_k(dst: int, imm: int, off: Off) -> Insn | _Pending:
            return _with_target(Insn(code, _reg(dst, "destination"), 0, 0, _imm32(imm)), off)
        return f_j_k
    if k in (Kind.LDX,):
        def f_ldx(dst: int, src: int, off: int) -> Insn:
            return Insn(code, _reg(dst, "destination"), _reg(src, "source"), _off16(off))
        return f_ldx
    if k is Kind.STX:
        def f_stx(dst: int, src: int, off: int) -> Insn:
            return Insn(code, _reg(dst, "destination"), _reg(src, "source"), _off16(off))
        return f_stx
    if k is Kind.ST:
        def f_st(dst: int, off: int, imm: int) -> Insn:
            return Insn(code, _reg(dst, "destination"), 0, _off16(off), _imm32(imm))
        return f_st
    if k is Kind.ATOMIC:
        def f_atomic(op: AtomicOp | int, dst: int, src: int, off: int) -> Insn:
            if op not in tuple(AtomicOp):
                raise IsaError(f"unknown atomic operation {op!r}")
            return Insn(code, _reg(dst, "destination"), _reg(src, "source"), _off16(off), int(op))
        return f_atomic
    if k is Kind.LD_ABS:
        def f_abs(imm: int) -> Insn:
            return Insn(code, 0, 0, 0, _imm32(imm))
        return f_abs
    if k is Kind.LD_IND:
        def f_ind(src: int, imm: int) -> Insn:
            return Insn(code, 0, _reg(src, "source"), 0, _imm32(imm))
        return f_ind
    if k is Kind.CALLX:
        def f_callx(dst: int) -> Insn:
            return Insn(code, _reg(dst, "destination"))
        return f_callx
    return None  # ja, gotol, may_goto, call, exit, lddw: the hand-named builders above


_GENERATED: dict[str, Callable[..., Insn | _Pending]] = {}
for _info in OPCODES.values():
    _fn = _make(_info)
    if _fn is not None:
        _fn.__name__ = _fn.__qualname__ = _info.name
        _fn.__doc__ = f"Build ``{_info.name}`` (opcode {_info.code:#04x})."
        _GENERATED[_info.name] = _fn
_GENERATED.update({"ja": ja, "gotol": gotol, "may_goto": may_goto, "call": call, "exit": exit_,
                   "lddw": ld_imm64})
_module = sys.modules[__name__]
for _name, _fn in _GENERATED.items():
    if not hasattr(_module, _name) and _name != "exit":  # exit_ is the builder; never shadow exit()
        setattr(_module, _name, _fn)
        __all__.append(_name)
del _module, _name, _fn, _info
