"""The kernel's instruction text (``print_bpf_insn`` of kernel/bpf/disasm.c, Linux 6.12).

This is the text of the verifier log (``0: (b7) r1 = 0``) and of ``bpftool prog dump xlated``. The
kernel prints whatever bytes it is given, including opcodes that no valid program contains
(``BUG_ld_38``, ``(c2) nospec``, an ALU opcode with an unassigned operation prints ``(null)`` where
C's printf would), so this printer accepts any :class:`Insn` and never raises.

Dispatch: an opcode in :data:`OPCODES` is printed by the formatter of its :class:`Kind`; an opcode
outside the table falls back to the formatter of its class, which is how the kernel itself is
organised (it switches on the class, then on the mode or operation bits).

Numbers follow the C format strings exactly: ``%d`` of the signed 32-bit immediate for arithmetic,
``0x%x`` of its unsigned value in conditional jumps, ``%+d`` of the signed 16-bit offset.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pybpf.isa.insn import Insn
from pybpf.isa.opcodes import (
    OPCODES,
    AluOp,
    AtomicOp,
    InsnClass,
    JmpOp,
    Kind,
    Mode,
    PseudoCall,
    PseudoSrc,
    Size,
    Source,
)
from pybpf.uapi import HelperId

__all__ = ["CallNamer", "ImmPrinter", "KernelCallbacks", "kernel_insn_text"]

CallNamer = Callable[[Insn], "str | None"]
"""``cb_call``: the name of a call's target, or ``None`` to let the printer choose its default."""

ImmPrinter = Callable[[Insn, int], str]
"""``cb_imm``: the text of an lddw's value, given the instruction and its full 64-bit immediate."""


@dataclass(frozen=True, slots=True)
class KernelCallbacks:
    """The kernel's ``struct bpf_insn_cbs``: how calls and 64-bit immediates are named.

    ``call`` is asked for calls that are not known helpers (bpf-to-bpf calls, kfuncs, internal
    functions the verifier patched in, unknown helper ids); ``imm`` prints every lddw value. Without
    them the kernel's defaults apply: ``pc+N`` / ``kernel-function`` / ``unknown`` and ``0x%llx``.
    """

    call: CallNamer | None = None
    imm: ImmPrinter | None = None


NO_CALLBACKS = KernelCallbacks()

_NULL = "(null)"  # what printf("%s", NULL) prints, in glibc and in the kernel's vsnprintf alike

_ALU_STR = {
    AluOp.ADD: "+=",
    AluOp.SUB: "-=",
    AluOp.MUL: "*=",
    AluOp.DIV: "/=",
    AluOp.OR: "|=",
    AluOp.AND: "&=",
    AluOp.LSH: "<<=",
    AluOp.RSH: ">>=",
    AluOp.NEG: "neg",
    AluOp.MOD: "%=",
    AluOp.XOR: "^=",
    AluOp.MOV: "=",
    AluOp.ARSH: "s>>=",
    AluOp.END: "endian",
}
_ALU_SIGN_STR = {AluOp.DIV: "s/=", AluOp.MOD: "s%="}
_MOVSX_STR = {8: "(s8)", 16: "(s16)", 32: "(s32)"}
_ATOMIC_ALU_STR = {AtomicOp.ADD: "add", AtomicOp.AND: "and", AtomicOp.OR: "or", AtomicOp.XOR: "xor"}
_LDST_STR = {Size.W: "u32", Size.H: "u16", Size.B: "u8", Size.DW: "u64"}
_LDSX_STR = {Size.W: "s32", Size.H: "s16", Size.B: "s8"}
_JMP_STR = {
    JmpOp.JA: "jmp",
    JmpOp.JEQ: "==",
    JmpOp.JGT: ">",
    JmpOp.JLT: "<",
    JmpOp.JGE: ">=",
    JmpOp.JLE: "<=",
    JmpOp.JSET: "&",
    JmpOp.JNE: "!=",
    JmpOp.JSGT: "s>",
    JmpOp.JSLT: "s<",
    JmpOp.JSGE: "s>=",
    JmpOp.JSLE: "s<=",
    JmpOp.CALL: "call",
    JmpOp.EXIT: "exit",
}
# Pointer-valued lddw kinds: the kernel hides their value unless the reader may see kernel pointers.
_PTR_PSEUDO = frozenset({PseudoSrc.MAP_FD, PseudoSrc.MAP_VALUE, PseudoSrc.MAP_IDX, PseudoSrc.MAP_IDX_VALUE,
                         PseudoSrc.BTF_ID})
_HELPER_IDS = frozenset(int(h) for h in HelperId)
_ADDR_SPACE_CAST = 1  # BPF_ADDR_SPACE_CAST: ALU64 mov X with off = 1
_ADDR_PERCPU = -1  # internal-only mov X with off = -1: dst = src + this CPU's per-cpu offset
_NOSPEC_MODE = 0xC0  # BPF_ST | 0xc0: the verifier's speculation barrier (no UAPI name)


def _s16(v: int) -> int:
    v &= 0xFFFF
    return v - 0x10000 if v & 0x8000 else v


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def _sd(v: int) -> str:
    """``%+d``."""
    return f"{v:+d}"


def _reg(cls: InsnClass | int, n: int) -> str:
    return f"{'w' if cls in (InsnClass.ALU, InsnClass.JMP32) else 'r'}{n}"


# -- per-kind formatters: each returns the text after "(%02x) " --------------------------------------

def _alu(insn: Insn, cbs: KernelCallbacks, leaks: bool) -> str:
    cls = insn.code & 0x07
    op = insn.code & 0xF0
    off = _s16(insn.off)
    d = insn.dst
    if op == AluOp.END:
        if cls == InsnClass.ALU64:
            return f"r{d} = bswap{_s32(insn.imm)} r{d}"
        to = "be" if insn.code & Source.X else "le"
        return f"r{d} = {to}{_s32(insn.imm)} r{d}"
    if op == AluOp.NEG:
        return f"{_reg(cls, d)} = -{_reg(cls, d)}"
    mov64_x = insn.code == (InsnClass.ALU64 | AluOp.MOV | Source.X)
    if mov64_x and off == _ADDR_SPACE_CAST:
        imm = insn.imm & 0xFFFFFFFF
        return f"r{d} = addr_space_cast(r{insn.src}, {imm >> 16}, {imm & 0xFFFF})"
    if mov64_x and off == _ADDR_PERCPU:
        return f"r{d} = &(void __percpu *)(r{insn.src})"
    if op in _ALU_SIGN_STR and off == 1:
        opstr = _ALU_SIGN_STR[AluOp(op)]
    else:
        opstr = _ALU_STR.get(op, _NULL)  # type: ignore[call-overload]
    if insn.code & Source.X:
        sx = _MOVSX_STR.get(off, "") if op == AluOp.MOV else ""
        return f"{_reg(cls, d)} {opstr} {sx}{_reg(cls, insn.src)}"
    return f"{_reg(cls, d)} {opstr} {_s32(insn.imm)}"


def _stx(insn: Insn, cbs: KernelCallbacks, leaks: bool) -> str:
    size = Size(insn.code & 0x18)
    mode = insn.code & 0xE0
    ty = _LDST_STR[size]
    where = f"(r{insn.dst} {_sd(_s16(insn.off))})"
    if mode == Mode.MEM:
        return f"*({ty} *){where} = r{insn.src}"
    if mode == Mode.ATOMIC:
        imm = _s32(insn.imm)
        a64 = "64" if size == Size.DW else ""
        if imm in (AtomicOp.ADD, AtomicOp.AND, AtomicOp.OR, AtomicOp.XOR):
            return f"lock *({ty} *){where} {_ALU_STR[AluOp(imm & 0xF0)]} r{insn.src}"
        if imm in (AtomicOp.FETCH_ADD, AtomicOp.FETCH_AND, AtomicOp.FETCH_OR, AtomicOp.FETCH_XOR):
            name = _ATOMIC_ALU_STR[AtomicOp(imm & 0xF0)]
            return f"r{insn.src} = atomic{a64}_fetch_{name}(({ty} *){where}, r{insn.src})"
        if imm == AtomicOp.CMPXCHG:
            return f"r0 = atomic{a64}_cmpxchg(({ty} *){where}, r0, r{insn.src})"
        if imm == AtomicOp.XCHG:
            return f"r{insn.src} = atomic{a64}_xchg(({ty} *){where}, r{insn.src})"
    return f"\x00BUG_{insn.code:02x}"


def _st(insn: Insn, cbs: KernelCallbacks, leaks: bool) -> str:
    mode = insn.code & 0xE0
    if mode == Mode.MEM:
        ty = _LDST_STR[Size(insn.code & 0x18)]
        return f"*({ty} *)(r{insn.dst} {_sd(_s16(insn.off))}) = {_s32(insn.imm)}"
    if mode == _NOSPEC_MODE:
        return "nospec"
    return f"\x00BUG_st_{insn.code:02x}"


def _ldx(insn: Insn, cbs: KernelCallbacks, leaks: bool) -> str:
    mode = insn.code & 0xE0
    size = Size(insn.code & 0x18)
    if mode == Mode.MEM:
        ty = _LDST_STR[size]
    elif mode == Mode.MEMSX:
        ty = _LDSX_STR.get(size, _NULL)
    else:
        return f"\x00BUG_ldx_{insn.code:02x}"
    return f"r{insn.dst} = *({ty} *)(r{insn.src} {_sd(_s16(insn.off))})"


def _ld(insn: Insn, cbs: KernelCallbacks, leaks: bool) -> str:
    mode = insn.code & 0xE0
    size = Size(insn.code & 0x18)
    if mode == Mode.ABS:
        return f"r0 = *({_LDST_STR[size]} *)skb[{_s32(insn.imm)}]"
    if mode == Mode.IND:
        return f"r0 = *({_LDST_STR[size]} *)skb[r{insn.src} + {_s32(insn.imm)}]"
    if mode == Mode.IMM and size == Size.DW:
        full = insn.imm & 0xFFFFFFFFFFFFFFFF
        if insn.src in _PTR_PSEUDO and not leaks:
            full = 0
        text = cbs.imm(insn, full) if cbs.imm is not None else f"{full:#x}"
        return f"r{insn.dst} = {text}"
    return f"\x00BUG_ld_{insn.code:02x}"


def _call_name(insn: Insn, cbs: KernelCallbacks) -> str:
    """The kernel's ``__func_get_name``: helper table, then the callback, then a default."""
    imm = _s32(insn.imm)
    if insn.src == 0 and imm in _HELPER_IDS:
        return "bpf_" + HelperId(imm).name
    if cbs.call is not None:
        res = cbs.call(insn)
        if res is not None:
            return res
    if insn.src == PseudoCall.CALL:
        return _sd(imm)
    if insn.src == PseudoCall.KFUNC:
        return "kernel-function"
    return "unknown"


def _jmp(insn: Insn, cbs: KernelCallbacks, leaks: bool) -> str:
    cls = insn.code & 0x07
    op = insn.code & 0xF0
    off = _s16(insn.off)
    if op == JmpOp.CALL:
        if insn.src == PseudoCall.CALL:
            return f"call pc{_call_name(insn, cbs)}"
        return f"call {_call_name(insn, cbs)}#{_s32(insn.imm)}"
    if insn.code == InsnClass.JMP | JmpOp.JA:
        return f"goto pc{_sd(off)}"
    if insn.code == InsnClass.JMP | JmpOp.JCOND and insn.src == 0:  # BPF_MAY_GOTO
        return f"may_goto pc{_sd(off)}"
    if insn.code == InsnClass.JMP32 | JmpOp.JA:
        return f"gotol pc{_sd(_s32(insn.imm))}"
    if insn.code == InsnClass.JMP | JmpOp.EXIT:
        return "exit"
    opstr = _JMP_STR.get(op, _NULL)  # type: ignore[call-overload]
    if insn.code & Source.X:
        return f"if {_reg(cls, insn.dst)} {opstr} {_reg(cls, insn.src)} goto pc{_sd(off)}"
    return f"if {_reg(cls, insn.dst)} {opstr} {insn.imm & 0xFFFFFFFF:#x} goto pc{_sd(off)}"


_Formatter = Callable[[Insn, KernelCallbacks, bool], str]

_BY_KIND: dict[Kind, _Formatter] = {
    Kind.ALU: _alu,
    Kind.END: _alu,
    Kind.JA: _jmp,
    Kind.JCOND: _jmp,
    Kind.MAY_GOTO: _jmp,
    Kind.CALL: _jmp,
    Kind.CALLX: _jmp,
    Kind.EXIT: _jmp,
    Kind.LDDW: _ld,
    Kind.LD_ABS: _ld,
    Kind.LD_IND: _ld,
    Kind.LDX: _ldx,
    Kind.ST: _st,
    Kind.STX: _stx,
    Kind.ATOMIC: _stx,
}
# Opcodes outside the table (internal ones such as nospec, or garbage) print by class, as in C.
_BY_CLASS: dict[int, _Formatter] = {
    InsnClass.LD: _ld,
    InsnClass.LDX: _ldx,
    InsnClass.ST: _st,
    InsnClass.STX: _stx,
    InsnClass.ALU: _alu,
    InsnClass.JMP: _jmp,
    InsnClass.JMP32: _jmp,
    InsnClass.ALU64: _alu,
}
_FORMATTER: tuple[_Formatter, ...] = tuple(
    _BY_KIND[OPCODES[code].kind] if code in OPCODES else _BY_CLASS[code & 0x07] for code in range(256)
)


def kernel_insn_text(insn: Insn, cbs: KernelCallbacks | None = None, *, allow_ptr_leaks: bool = True) -> str:
    """One instruction as ``print_bpf_insn`` prints it, without the trailing newline.

    ``(b7) r1 = 0``; opcodes the kernel cannot print come out as it prints them (``BUG_ld_38``, with
    no ``(xx)`` prefix). ``allow_ptr_leaks=False`` zeroes pointer-valued lddw immediates, as the
    verifier does for unprivileged loaders.
    """
    text = _FORMATTER[insn.code & 0xFF](insn, cbs or NO_CALLBACKS, allow_ptr_leaks)
    if text.startswith("\x00"):
        return text[1:]
    return f"({insn.code & 0xFF:02x}) {text}"
