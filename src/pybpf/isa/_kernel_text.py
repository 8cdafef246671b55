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

from pybpf.isa._operators import (
    ALU_OPERATORS,
    ATOMIC_NAMES,
    JMP_OPERATORS,
    LOAD_TYPES,
    MOVSX_CASTS,
    SIGNED_ALU_OPERATORS,
    SIGNED_LOAD_TYPES,
)
from pybpf.isa.insn import Insn, sext
from pybpf.isa.opcodes import (
    NOSPEC_CODE,
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
    split_opcode,
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

    ``calls_resolved``: the stream is a post-fixup (xlated) one. There the kernel's helper calls hold
    the offset of the implementing function, which is never a helper id, so ``__func_get_name`` always
    ends up asking ``call`` (bpftool's answer is the kallsyms name: ``bpf_user_rnd_u32`` for
    ``bpf_get_prandom_u32``). pybpf's stream keeps the helper id, so with this flag ``call`` is asked
    first and the UAPI name is only its fallback. Verifier logs print the stream before the fixups
    and leave it unset.
    """

    call: CallNamer | None = None
    imm: ImmPrinter | None = None
    calls_resolved: bool = False


NO_CALLBACKS = KernelCallbacks()

_NULL = "(null)"  # what printf("%s", NULL) prints, in glibc and in the kernel's vsnprintf alike

_ALU_STR: dict[AluOp, str] = {**ALU_OPERATORS, AluOp.NEG: "neg", AluOp.END: "endian"}
_JMP_STR: dict[JmpOp, str] = {**JMP_OPERATORS, JmpOp.JA: "jmp", JmpOp.CALL: "call", JmpOp.EXIT: "exit"}
# Pointer-valued lddw kinds: the kernel hides their value unless the reader may see kernel pointers.
_PTR_PSEUDO = frozenset({PseudoSrc.MAP_FD, PseudoSrc.MAP_VALUE, PseudoSrc.MAP_IDX, PseudoSrc.MAP_IDX_VALUE,
                         PseudoSrc.BTF_ID})
_HELPER_IDS = frozenset(int(h) for h in HelperId)
_ADDR_SPACE_CAST = 1  # BPF_ADDR_SPACE_CAST: ALU64 mov X with off = 1
_ADDR_PERCPU = -1  # internal-only mov X with off = -1: dst = src + this CPU's per-cpu offset


def _sd(v: int) -> str:
    """``%+d``."""
    return f"{v:+d}"


def _reg(cls: InsnClass | int, n: int) -> str:
    return f"{'w' if cls in (InsnClass.ALU, InsnClass.JMP32) else 'r'}{n}"


# -- per-kind formatters: each returns the text after "(%02x) " --------------------------------------

def _alu(insn: Insn, cbs: KernelCallbacks, leaks: bool) -> str:
    cls, op, source, _, _ = split_opcode(insn.code)
    off = sext(insn.off, 16)
    d = insn.dst
    if op == AluOp.END:
        if cls == InsnClass.ALU64:
            return f"r{d} = bswap{sext(insn.imm, 32)} r{d}"
        to = "be" if source == Source.X else "le"
        return f"r{d} = {to}{sext(insn.imm, 32)} r{d}"
    if op == AluOp.NEG:
        return f"{_reg(cls, d)} = -{_reg(cls, d)}"
    mov64_x = (cls, op, source) == (InsnClass.ALU64, AluOp.MOV, Source.X)
    if mov64_x and off == _ADDR_SPACE_CAST:
        imm = insn.imm & 0xFFFFFFFF
        return f"r{d} = addr_space_cast(r{insn.src}, {imm >> 16}, {imm & 0xFFFF})"
    if mov64_x and off == _ADDR_PERCPU:
        return f"r{d} = &(void __percpu *)(r{insn.src})"
    if op in SIGNED_ALU_OPERATORS and off == 1:
        opstr = SIGNED_ALU_OPERATORS[AluOp(op)]
    else:
        opstr = _ALU_STR.get(op, _NULL)  # type: ignore[call-overload]
    if source == Source.X:
        sx = MOVSX_CASTS.get(off, "") if op == AluOp.MOV else ""
        return f"{_reg(cls, d)} {opstr} {sx}{_reg(cls, insn.src)}"
    return f"{_reg(cls, d)} {opstr} {sext(insn.imm, 32)}"


def _stx(insn: Insn, cbs: KernelCallbacks, leaks: bool) -> str:
    _, _, _, size, mode = split_opcode(insn.code)
    ty = LOAD_TYPES[size]
    where = f"(r{insn.dst} {_sd(sext(insn.off, 16))})"
    if mode == Mode.MEM:
        return f"*({ty} *){where} = r{insn.src}"
    if mode == Mode.ATOMIC:
        imm = sext(insn.imm, 32)
        a64 = "64" if size == Size.DW else ""
        if imm in (AtomicOp.ADD, AtomicOp.AND, AtomicOp.OR, AtomicOp.XOR):
            return f"lock *({ty} *){where} {_ALU_STR[AluOp(imm & 0xF0)]} r{insn.src}"
        if imm in (AtomicOp.FETCH_ADD, AtomicOp.FETCH_AND, AtomicOp.FETCH_OR, AtomicOp.FETCH_XOR):
            name = ATOMIC_NAMES[AtomicOp(imm & 0xF0)]
            return f"r{insn.src} = atomic{a64}_fetch_{name}(({ty} *){where}, r{insn.src})"
        if imm == AtomicOp.CMPXCHG:
            return f"r0 = atomic{a64}_cmpxchg(({ty} *){where}, r0, r{insn.src})"
        if imm == AtomicOp.XCHG:
            return f"r{insn.src} = atomic{a64}_xchg(({ty} *){where}, r{insn.src})"
    return f"\x00BUG_{insn.code:02x}"


def _st(insn: Insn, cbs: KernelCallbacks, leaks: bool) -> str:
    _, _, _, size, mode = split_opcode(insn.code)
    if mode == Mode.MEM:
        ty = LOAD_TYPES[size]
        return f"*({ty} *)(r{insn.dst} {_sd(sext(insn.off, 16))}) = {sext(insn.imm, 32)}"
    if mode == split_opcode(NOSPEC_CODE).mode:  # the kernel looks at the mode only (any size prints)
        return "nospec"
    return f"\x00BUG_st_{insn.code:02x}"


def _ldx(insn: Insn, cbs: KernelCallbacks, leaks: bool) -> str:
    _, _, _, size, mode = split_opcode(insn.code)
    if mode == Mode.MEM:
        ty = LOAD_TYPES[size]
    elif mode == Mode.MEMSX:
        ty = SIGNED_LOAD_TYPES.get(size, _NULL)
    else:
        return f"\x00BUG_ldx_{insn.code:02x}"
    return f"r{insn.dst} = *({ty} *)(r{insn.src} {_sd(sext(insn.off, 16))})"


def _ld(insn: Insn, cbs: KernelCallbacks, leaks: bool) -> str:
    _, _, _, size, mode = split_opcode(insn.code)
    if mode == Mode.ABS:
        return f"r0 = *({LOAD_TYPES[size]} *)skb[{sext(insn.imm, 32)}]"
    if mode == Mode.IND:
        return f"r0 = *({LOAD_TYPES[size]} *)skb[r{insn.src} + {sext(insn.imm, 32)}]"
    if mode == Mode.IMM and size == Size.DW:
        full = insn.imm & 0xFFFFFFFFFFFFFFFF
        if insn.src in _PTR_PSEUDO and not leaks:
            full = 0
        text = cbs.imm(insn, full) if cbs.imm is not None else f"{full:#x}"
        return f"r{insn.dst} = {text}"
    return f"\x00BUG_ld_{insn.code:02x}"


def _call_name(insn: Insn, cbs: KernelCallbacks) -> str:
    """The kernel's ``__func_get_name``: helper table, then the callback, then a default."""
    imm = sext(insn.imm, 32)
    if cbs.calls_resolved and cbs.call is not None:
        res = cbs.call(insn)
        if res is not None:
            return res
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
    cls, op, source, _, _ = split_opcode(insn.code)
    off = sext(insn.off, 16)
    if op == JmpOp.CALL:
        if insn.src == PseudoCall.CALL:
            return f"call pc{_call_name(insn, cbs)}"
        return f"call {_call_name(insn, cbs)}#{sext(insn.imm, 32)}"
    # ja, may_goto, gotol and exit are told apart by the whole opcode (the source bit included)
    info = OPCODES.get(insn.code)
    kind = info.kind if info is not None else None
    if kind is Kind.JA:
        return f"goto pc{_sd(off)}" if cls == InsnClass.JMP else f"gotol pc{_sd(sext(insn.imm, 32))}"
    if kind is Kind.MAY_GOTO and insn.src == 0:  # BPF_MAY_GOTO
        return f"may_goto pc{_sd(off)}"
    if kind is Kind.EXIT:
        return "exit"
    opstr = _JMP_STR.get(op, _NULL)  # type: ignore[call-overload]
    if source == Source.X:
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
    _BY_KIND[OPCODES[code].kind] if code in OPCODES else _BY_CLASS[split_opcode(code).cls] for code in range(256)
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
