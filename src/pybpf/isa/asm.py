"""The assembler: instruction text in the kernel's or LLVM's dialect back to instructions.

It reads what the disassemblers print, so ``text -> bytes -> text`` is the identity for every form:

* the kernel dialect (verifier log, ``bpftool prog dump xlated``): ``r1 = 0``, ``*(u32 *)(r10 -4) =
  r1``, ``if r0 >= 0x1 goto pc+3``, ``call bpf_map_lookup_elem#1``, ``r1 = map[id:22]``... A whole
  ``dump xlated`` listing is accepted: ``   4: `` indices and ``(18)`` opcodes (checked against the
  text), ``opcodes`` byte lines, the function header (kept as ``InsnMeta.func``) and ``; source``
  comments (kept as ``InsnMeta.source``, with file/line/column when ``linum`` printed them);
* the LLVM dialect (``llvm-objdump -d``): ``r1 = 0x0``, ``*(u32 *)(r10 - 0x4) = r1``, ``w1 = 0x1``,
  ``r1 = 0x0 ll``, ``if r0 == 0x0 goto +0x2 <f+0x58>``, ``lock *(u32 *)(r0 + 0x0) += r1``... A whole
  objdump listing is accepted: slot numbers and raw bytes are skipped, ``<symbol>:`` lines become
  labels (``InsnMeta.symbol``) and relocation lines attach their target as ``InsnMeta.reference``.

Extensions in both dialects: ``name:`` defines a label; a jump or call target may be a label name
(``goto out``, ``if r1 == 0 goto out``, ``call my_func`` for a bpf-to-bpf call); numbers may be
decimal or hex anywhere; ``;`` and ``//`` start comments, ``#`` too at the start of a line.

What the text does not say cannot come back: the kernel prints lddw of ``BPF_PSEUDO_BTF_ID`` and
``BPF_PSEUDO_MAP_IDX`` as plain numbers and LLVM prints helper and bpf-to-bpf calls alike, so those
assemble to the plain forms. Errors are :class:`pybpf.errors.AsmError` with 1-based line and column.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pybpf.errors import AsmError, IsaError
from pybpf.isa._operators import (
    ALU_OPERATORS,
    ATOMIC_NAMES,
    JMP_OPERATORS,
    LOAD_TYPES,
    MOVSX_CASTS,
    SIGNED_ALU_OPERATORS,
    SIGNED_LOAD_TYPES,
)
from pybpf.isa.insn import Insn, InsnMeta, Insns, SourceLine, sext
from pybpf.isa.opcodes import (
    CALL_CODE,
    LDDW_CODE,
    NOSPEC_CODE,
    OPCODES,
    AluOp,
    AtomicOp,
    InsnClass,
    JmpOp,
    Mode,
    PseudoCall,
    PseudoSrc,
    Size,
    Source,
)
from pybpf.uapi import HelperId

__all__ = ["Dialect", "assemble", "assemble_insn"]

Dialect = Literal["kernel", "llvm"]

# -- shared vocabulary -------------------------------------------------------------------------------

_ALU_OPS: dict[str, tuple[AluOp, int]] = {
    **{text: (op, 0) for op, text in ALU_OPERATORS.items()},
    **{text: (op, 1) for op, text in SIGNED_ALU_OPERATORS.items()},
}
_JMP_OPS: dict[str, JmpOp] = {text: op for op, text in JMP_OPERATORS.items()}
_TYPES: dict[str, tuple[Size, Mode]] = {
    **{text: (size, Mode.MEM) for size, text in LOAD_TYPES.items()},
    **{text: (size, Mode.MEMSX) for size, text in SIGNED_LOAD_TYPES.items()},
}
_CASTS = {text.strip("()"): bits for bits, text in MOVSX_CASTS.items()}
_ATOMIC_NAMES = {  # `atomic_fetch_<name>`: the fetching form of each operation
    name: next(f for f in AtomicOp if f.fetch and f.base is op) for op, name in ATOMIC_NAMES.items()
}
_KERNEL_LOCK_OPS = {"+=": AtomicOp.ADD, "|=": AtomicOp.OR, "&=": AtomicOp.AND, "^=": AtomicOp.XOR}
# Opcodes the text forms build directly (the table's names for them).
_JA = JmpOp.JA | InsnClass.JMP
_GOTOL = JmpOp.JA | InsnClass.JMP32
_MAY_GOTO = JmpOp.JCOND | InsnClass.JMP
_EXIT = JmpOp.EXIT | InsnClass.JMP
_CALLX = JmpOp.CALL | Source.X | InsnClass.JMP
_MOV64_X = AluOp.MOV | Source.X | InsnClass.ALU64
_HELPERS_BY_NAME = {"bpf_" + h.name: int(h) for h in HelperId}
_HELPER_IDS = frozenset(int(h) for h in HelperId)

_ALU_RE = "|".join(re.escape(k) for k in sorted(_ALU_OPS, key=len, reverse=True))
_JMP_RE = "|".join(re.escape(k) for k in sorted(_JMP_OPS, key=len, reverse=True))
_TYPE_RE = "|".join(_TYPES)
_NUM = r"[+-]?\s*(?:0[xX][0-9a-fA-F]+|\d+)"
_REG = r"[rw]\d+"
_LABEL = r"[A-Za-z_.$][\w.$]*"
_MEM = rf"\(\s*(?P<base>{_REG})\s*(?P<off>{_NUM})?\s*\)"


@dataclass(frozen=True, slots=True)
class _Pending:
    insn: Insn
    label: str
    field: str  # "off" or "imm"
    col: int


class _Line:
    """One source line being assembled: its text, where it starts in the file, error helpers."""

    def __init__(self, text: str, lineno: int, offset: int, path: str) -> None:
        self.text, self.lineno, self.offset, self.path = text, lineno, offset, path

    def error(self, message: str, pos: int = 0) -> AsmError:
        return AsmError(message, line=self.lineno, col=self.offset + pos + 1, text=self.text, path=self.path)


def _num(s: str) -> int:
    return int(s.replace(" ", "").replace("\t", ""), 0)


class _Match:
    """A regex match with typed, range-checked accessors that raise AsmError at the group's column."""

    def __init__(self, m: re.Match[str], line: _Line, base: int) -> None:
        self.m, self.line, self.base = m, line, base

    def has(self, g: str) -> bool:
        return g in self.m.re.groupindex and self.m.group(g) is not None

    def s(self, g: str) -> str:
        return self.m.group(g)

    def col(self, g: str) -> int:
        return self.base + max(self.m.start(g), 0)

    def err(self, g: str, message: str) -> AsmError:
        return self.line.error(message, self.col(g))

    def reg(self, g: str, width: str | None = None) -> int:
        tok = self.m.group(g)
        n = int(tok[1:])
        if n > 10:
            raise self.err(g, f"invalid register {tok}: registers are r0-r10")
        if width is not None and tok[0] != width:
            raise self.err(g, f"expected a {'32' if width == 'w' else '64'}-bit register ({width}{n}), got {tok}")
        return n

    def int_(self, g: str, lo: int, hi: int, what: str) -> int:
        v = _num(self.m.group(g))
        if not lo <= v <= hi:
            raise self.err(g, f"{what} {self.m.group(g).strip()} out of range [{lo}, {hi}]")
        return v

    def imm32(self, g: str) -> int:
        v = self.int_(g, -(1 << 31), (1 << 32) - 1, "immediate")
        return v - (1 << 32) if v > 0x7FFFFFFF else v

    def off16(self, g: str, *, optional: bool = False) -> int:
        if optional and self.m.group(g) is None:
            return 0
        return self.int_(g, -0x8000, 0x7FFF, "offset")


def _code(cls: InsnClass, *parts: int) -> int:
    code = int(cls)
    for p in parts:
        code |= int(p)
    return code


def _checked(mm: _Match, insn: Insn) -> Insn:
    if insn.code not in OPCODES:
        raise mm.line.error(f"no instruction has opcode {insn.code:#04x}")
    return insn


def _target(mm: _Match, insn: Insn, g: str, field: str = "off") -> Insn | _Pending:
    """A jump target: a number (kernel ``pc+N`` already stripped of ``pc``; LLVM ``+0x..``) or a label."""
    tok = mm.s(g).strip()
    if re.fullmatch(_NUM, tok):
        if field == "off":
            return insn.replace(off=mm.off16(g))
        return insn.replace(imm=mm.imm32(g))
    return _Pending(insn, tok, field, mm.col(g))


def _cls(tok: str, alu: bool) -> InsnClass:
    if alu:
        return InsnClass.ALU if tok[0] == "w" else InsnClass.ALU64
    return InsnClass.JMP32 if tok[0] == "w" else InsnClass.JMP


# -- forms shared by both dialects (their texts coincide) --------------------------------------------

def _f_neg(mm: _Match) -> Insn:
    cls = _cls(mm.s("d"), True)
    if mm.s("d") != mm.s("d2"):
        raise mm.err("d2", "negation must name the same register on both sides")
    return _checked(mm, Insn(_code(cls, AluOp.NEG), mm.reg("d")))


def _f_end(mm: _Match) -> Insn:
    d = mm.reg("d", "r")
    if mm.s("d") != mm.s("d2"):
        raise mm.err("d2", "a byte swap must name the same register on both sides")
    bits = int(mm.s("bits"))
    kind = mm.s("kind")
    if kind == "bswap":
        code = _code(InsnClass.ALU64, AluOp.END, Source.K)
    else:
        code = _code(InsnClass.ALU, AluOp.END, Source.X if kind == "be" else Source.K)
    return Insn(code, d, 0, 0, bits)


def _f_addr_space_cast(mm: _Match) -> Insn:
    dst_as = mm.int_("a", 0, 0xFFFF, "address space")
    src_as = mm.int_("b", 0, 0xFFFF, "address space")
    imm = (dst_as << 16) | src_as
    return Insn(_MOV64_X, mm.reg("d", "r"), mm.reg("s", "r"), 1, imm - (1 << 32) if imm > 0x7FFFFFFF else imm)


def _f_alu_reg(mm: _Match) -> Insn:
    cls = _cls(mm.s("d"), True)
    width = mm.s("d")[0]
    op, off = _ALU_OPS[mm.s("op")]
    if mm.has("cast"):
        if op != AluOp.MOV:
            raise mm.err("cast", "a sign-extending cast is only valid in a move")
        off = _CASTS[mm.s("cast")]
    insn = Insn(_code(cls, op, Source.X), mm.reg("d"), mm.reg("s", width), off)
    if insn.off and insn.info is not None and not insn.info.off.accepts(insn.off):
        raise mm.err("cast", f"{mm.s('cast')} is not a valid cast for a {'32' if width == 'w' else '64'}-bit move")
    return _checked(mm, insn)


def _f_alu_imm(mm: _Match) -> Insn:
    cls = _cls(mm.s("d"), True)
    op, off = _ALU_OPS[mm.s("op")]
    return _checked(mm, Insn(_code(cls, op, Source.K), mm.reg("d"), 0, off, mm.imm32("imm")))


def _f_ldx(mm: _Match) -> Insn:
    size, mode = _TYPES[mm.s("ty")]
    return _checked(mm, Insn(_code(InsnClass.LDX, mode, size), mm.reg("d"), mm.reg("base", "r"),
                             mm.off16("off", optional=True)))


def _f_stx(mm: _Match) -> Insn:
    size, mode = _TYPES[mm.s("ty")]
    if mode != Mode.MEM:
        raise mm.err("ty", "stores take an unsigned type")
    return Insn(_code(InsnClass.STX, mode, size), mm.reg("base", "r"), mm.reg("s"), mm.off16("off", optional=True))


def _f_st(mm: _Match) -> Insn:
    size, mode = _TYPES[mm.s("ty")]
    if mode != Mode.MEM:
        raise mm.err("ty", "stores take an unsigned type")
    return Insn(_code(InsnClass.ST, mode, size), mm.reg("base", "r"), 0, mm.off16("off", optional=True),
                mm.imm32("imm"))


def _f_ld_abs(mm: _Match) -> Insn:
    size, mode = _TYPES[mm.s("ty")]
    if mode != Mode.MEM or size == Size.DW:
        raise mm.err("ty", "packet loads take u8, u16 or u32")
    return Insn(_code(InsnClass.LD, Mode.ABS, size), 0, 0, 0, mm.imm32("imm"))


def _f_ld_ind(mm: _Match) -> Insn:
    size, mode = _TYPES[mm.s("ty")]
    if mode != Mode.MEM or size == Size.DW:
        raise mm.err("ty", "packet loads take u8, u16 or u32")
    imm = mm.imm32("imm") if mm.has("imm") else 0
    return Insn(_code(InsnClass.LD, Mode.IND, size), 0, mm.reg("s", "r"), 0, imm)


def _atomic_size(mm: _Match, g: str) -> Size:
    size, mode = _TYPES[mm.s(g)]
    if mode != Mode.MEM or size not in (Size.W, Size.DW):
        raise mm.err(g, "atomic operations are 32 or 64 bits wide (u32, u64)")
    return size


def _atomic(mm: _Match, size: Size, op: AtomicOp, src_g: str = "s") -> Insn:
    width = "r" if size == Size.DW else None  # LLVM's 32-bit forms name w registers
    return Insn(_code(InsnClass.STX, Mode.ATOMIC, size), mm.reg("base", "r"), mm.reg(src_g, width),
                mm.off16("off", optional=True), int(op))


def _f_jcond(mm: _Match) -> Insn | _Pending:
    cls = _cls(mm.s("d"), False)
    op = _JMP_OPS[mm.s("op")]
    if mm.has("s"):
        insn = Insn(_code(cls, op, Source.X), mm.reg("d"), mm.reg("s", mm.s("d")[0]))
    else:
        insn = Insn(_code(cls, op, Source.K), mm.reg("d"), 0, 0, mm.imm32("imm"))
    return _target(mm, insn, "t")


def _f_ja(mm: _Match) -> Insn | _Pending:
    return _target(mm, Insn(_JA), "t")


def _f_gotol(mm: _Match) -> Insn | _Pending:
    return _target(mm, Insn(_GOTOL), "t", "imm")


def _f_may_goto(mm: _Match) -> Insn | _Pending:
    return _target(mm, Insn(_MAY_GOTO), "t")


def _f_exit(mm: _Match) -> Insn:
    return Insn(_EXIT)


# -- kernel dialect -----------------------------------------------------------------------------------

def _k_lddw(mm: _Match) -> Insn:
    d = mm.reg("d", "r")
    if mm.has("hex"):
        v = mm.int_("hex", 0, (1 << 64) - 1, "64-bit immediate")
        return Insn(LDDW_CODE, d, 0, 0, v - (1 << 64) if v >> 63 else v)
    if mm.has("mapid"):
        mid = mm.int_("mapid", 0, 0xFFFFFFFF, "map id")
        if mm.has("mvoff"):
            off = mm.int_("mvoff", 0, 0xFFFFFFFF, "map value offset")
            return Insn(LDDW_CODE, d, PseudoSrc.MAP_VALUE, 0, sext(mid | off << 32, 64))
        return Insn(LDDW_CODE, d, PseudoSrc.MAP_FD, 0, mid)
    if mm.has("idx"):
        idx = mm.int_("idx", 0, 0xFFFFFFFF, "map index")
        off = mm.int_("ivoff", 0, 0xFFFFFFFF, "map value offset")
        return Insn(LDDW_CODE, d, PseudoSrc.MAP_IDX_VALUE, 0, sext(idx | off << 32, 64))
    sub = mm.int_("sub", -(1 << 31), (1 << 31) - 1, "subprogram offset")
    return Insn(LDDW_CODE, d, PseudoSrc.FUNC, 0, sub & 0xFFFFFFFF if sub >= 0 else sub)


def _k_call(mm: _Match) -> Insn | _Pending:
    if mm.has("pc"):
        target = _target(mm, Insn(CALL_CODE, 0, PseudoCall.CALL), "pc", "imm")
        if mm.has("sym") and isinstance(target, Insn):  # bpftool's "pc+N#bpf_prog_<tag>_<name>"
            return target.with_meta(reference=mm.s("sym"))
        return target
    name = mm.s("name")
    if mm.has("id"):
        imm = mm.imm32("id")
    elif name in _HELPERS_BY_NAME:
        imm = _HELPERS_BY_NAME[name]
    else:  # a label: bpf-to-bpf call
        return _Pending(Insn(CALL_CODE, 0, PseudoCall.CALL), name, "imm", mm.col("name"))
    src = PseudoCall.KFUNC if name == "kernel-function" else PseudoCall.HELPER
    insn = Insn(CALL_CODE, 0, src, 0, imm)
    helper = "bpf_" + HelperId(imm).name if imm in _HELPER_IDS else None
    if name not in ("unknown", "kernel-function", helper):  # e.g. __htab_map_lookup_elem: keep the name
        insn = insn.with_meta(reference=name)
    return insn


def _k_lock(mm: _Match) -> Insn:
    return _atomic(mm, _atomic_size(mm, "ty"), _KERNEL_LOCK_OPS[mm.s("op")])


def _k_fetch(mm: _Match) -> Insn:
    size = _atomic_size(mm, "ty")
    if (mm.s("w") == "64") != (size == Size.DW):
        raise mm.err("ty", "atomic64_* goes with u64, atomic_* with u32")
    if mm.s("s") != mm.s("s2"):
        raise mm.err("s2", "the fetched register and the operand must be the same register")
    fn = mm.s("fn")
    op = AtomicOp.XCHG if fn == "xchg" else _ATOMIC_NAMES[fn[len("fetch_"):]]
    return _atomic(mm, size, op)


def _k_cmpxchg(mm: _Match) -> Insn:
    size = _atomic_size(mm, "ty")
    if (mm.s("w") == "64") != (size == Size.DW):
        raise mm.err("ty", "atomic64_* goes with u64, atomic_* with u32")
    return _atomic(mm, size, AtomicOp.CMPXCHG)


def _k_nospec(mm: _Match) -> Insn:
    return Insn(NOSPEC_CODE)


_Form = tuple[re.Pattern[str], Callable[[_Match], "Insn | _Pending"]]


def _forms(*pairs: tuple[str, Callable[[_Match], Insn | _Pending]]) -> list[_Form]:
    return [(re.compile(p + r"\s*$"), f) for p, f in pairs]


_D, _S = rf"(?P<d>{_REG})", rf"(?P<s>{_REG})"
_KERNEL_FORMS = _forms(
    (rf"{_D}\s*=\s*-\s*(?P<d2>{_REG})", _f_neg),
    (rf"{_D}\s*=\s*(?P<kind>le|be|bswap)(?P<bits>16|32|64)\s+(?P<d2>{_REG})", _f_end),
    (rf"{_D}\s*=\s*addr_space_cast\(\s*{_S}\s*,\s*(?P<a>{_NUM})\s*,\s*(?P<b>{_NUM})\s*\)", _f_addr_space_cast),
    (rf"{_D}\s*=\s*&\(void __percpu \*\)\(\s*{_S}\s*\)",
     lambda mm: Insn(_MOV64_X, mm.reg("d", "r"), mm.reg("s", "r"), -1)),
    (r"(?P<d>r\d+)\s*=\s*(?:(?P<hex>0[xX][0-9a-fA-F]+)|map\[id:(?P<mapid>\d+)\](?:\[0\]\+(?P<mvoff>\d+))?"
     r"|map\[idx:(?P<idx>\d+)\]\+(?P<ivoff>\d+)|subprog\[(?P<sub>[+-]\d+)\])", _k_lddw),
    (rf"{_D}\s*=\s*\*\((?P<ty>{_TYPE_RE})\s*\*\)\s*{_MEM}", _f_ldx),
    (rf"r0\s*=\s*\*\((?P<ty>{_TYPE_RE})\s*\*\)\s*skb\[\s*(?P<imm>{_NUM})\s*\]", _f_ld_abs),
    (rf"r0\s*=\s*\*\((?P<ty>{_TYPE_RE})\s*\*\)\s*skb\[\s*{_S}\s*(?:\+\s*(?P<imm>{_NUM}))?\s*\]", _f_ld_ind),
    (rf"\*\((?P<ty>{_TYPE_RE})\s*\*\)\s*{_MEM}\s*=\s*{_S}", _f_stx),
    (rf"\*\((?P<ty>{_TYPE_RE})\s*\*\)\s*{_MEM}\s*=\s*(?P<imm>{_NUM})", _f_st),
    (rf"lock\s+\*\((?P<ty>{_TYPE_RE})\s*\*\)\s*{_MEM}\s*(?P<op>\+=|\|=|&=|\^=)\s*{_S}", _k_lock),
    (rf"(?P<s>{_REG})\s*=\s*atomic(?P<w>64)?_(?P<fn>fetch_add|fetch_and|fetch_or|fetch_xor|xchg)"
     rf"\(\((?P<ty>{_TYPE_RE})\s*\*\)\s*{_MEM}\s*,\s*(?P<s2>{_REG})\s*\)", _k_fetch),
    (rf"r0\s*=\s*atomic(?P<w>64)?_cmpxchg\(\((?P<ty>{_TYPE_RE})\s*\*\)\s*{_MEM}\s*,\s*r0\s*,\s*{_S}\s*\)",
     _k_cmpxchg),
    (rf"{_D}\s*(?P<op>{_ALU_RE})\s*(?:\((?P<cast>s8|s16|s32)\))?{_S}", _f_alu_reg),
    (rf"{_D}\s*(?P<op>{_ALU_RE})\s*(?P<imm>{_NUM})", _f_alu_imm),
    (rf"if\s+{_D}\s*(?P<op>{_JMP_RE})\s*(?:{_S}|(?P<imm>{_NUM}))\s+goto\s+(?:pc(?P<t>{_NUM})|(?P<tl>{_LABEL}))",
     lambda mm: _jump_or_label(mm, _f_jcond)),
    (rf"goto\s+(?:pc(?P<t>{_NUM})|(?P<tl>{_LABEL}))", lambda mm: _jump_or_label(mm, _f_ja)),
    (rf"gotol\s+(?:pc(?P<t>{_NUM})|(?P<tl>{_LABEL}))", lambda mm: _jump_or_label(mm, _f_gotol)),
    (rf"may_goto\s+(?:pc(?P<t>{_NUM})|(?P<tl>{_LABEL}))", lambda mm: _jump_or_label(mm, _f_may_goto)),
    (rf"call\s+(?:pc(?P<pc>{_NUM})(?:#(?P<sym>\S+))?|(?P<name>[\w.$-]+)(?:#(?P<id>{_NUM}))?)", _k_call),
    (r"exit", _f_exit),
    (r"nospec", _k_nospec),
)


class _LabelMatch(_Match):
    """Presents the label group ``tl`` as the target group ``t``."""

    def s(self, g: str) -> str:
        return self.m.group("tl" if g == "t" else g)

    def col(self, g: str) -> int:
        return self.base + max(self.m.start("tl" if g == "t" else g), 0)


def _label_jump(mm: _Match, f: Callable[[_Match], Insn | _Pending]) -> Insn | _Pending:
    return f(_LabelMatch(mm.m, mm.line, mm.base))


def _jump_or_label(mm: _Match, f: Callable[[_Match], Insn | _Pending]) -> Insn | _Pending:
    return f(mm) if mm.has("t") else _label_jump(mm, f)


# -- LLVM dialect -------------------------------------------------------------------------------------

def _l_lddw(mm: _Match) -> Insn:
    v = mm.int_("imm", -(1 << 63), (1 << 64) - 1, "64-bit immediate")
    return Insn(LDDW_CODE, mm.reg("d", "r"), 0, 0, sext(v, 64))


def _l_ld_pseudo(mm: _Match) -> Insn:
    src = mm.int_("src", 0, 15, "pseudo source")
    imm = mm.int_("imm", -(1 << 31), (1 << 32) - 1, "immediate")
    if src > max(PseudoSrc):
        raise mm.err("src", f"unknown lddw pseudo source {src}")
    return Insn(LDDW_CODE, mm.reg("d", "r"), src, 0, imm & 0xFFFFFFFF if imm >= 0 else imm)


def _l_ldx(mm: _Match) -> Insn:
    size, mode = _TYPES[mm.s("ty")]
    if mm.s("d")[0] == "w" and (mode != Mode.MEM or size == Size.DW):
        raise mm.err("d", "only u8/u16/u32 loads have a 32-bit register form")
    return _f_ldx(mm)


def _l_stx(mm: _Match) -> Insn:
    size, _mode = _TYPES[mm.s("ty")]
    if mm.s("s")[0] == "w" and size == Size.DW:
        raise mm.err("s", "a u64 store takes a 64-bit register")
    return _f_stx(mm)


def _l_lock(mm: _Match) -> Insn:
    size = _atomic_size(mm, "ty")
    op = {"+": AtomicOp.ADD, "|": AtomicOp.OR, "&": AtomicOp.AND, "^": AtomicOp.XOR}[mm.s("op")]
    return _atomic(mm, size, op)


def _l_fetch(mm: _Match) -> Insn:
    size = _atomic_size(mm, "ty")
    if mm.s("s") != mm.s("s2"):
        raise mm.err("s2", "the fetched register and the operand must be the same register")
    return _atomic(mm, size, _ATOMIC_NAMES[mm.s("fn")])


def _l_xchg(mm: _Match) -> Insn:
    size = Size.DW if mm.s("w") == "_64" else Size.W
    if mm.s("s") != mm.s("s2"):
        raise mm.err("s2", "the exchanged register and the operand must be the same register")
    return _atomic(mm, size, AtomicOp.XCHG)


def _l_cmpxchg(mm: _Match) -> Insn:
    size = Size.DW if mm.s("w") == "_64" else Size.W
    return _atomic(mm, size, AtomicOp.CMPXCHG)


def _l_call(mm: _Match) -> Insn | _Pending:
    if mm.has("imm"):
        return Insn(CALL_CODE, 0, PseudoCall.HELPER, 0, mm.imm32("imm"))
    name = mm.s("name")
    if name in _HELPERS_BY_NAME:
        return Insn(CALL_CODE, 0, PseudoCall.HELPER, 0, _HELPERS_BY_NAME[name])
    return _Pending(Insn(CALL_CODE, 0, PseudoCall.CALL), name, "imm", mm.col("name"))


_TARGET = rf"(?:(?P<t>[+-](?:0[xX][0-9a-fA-F]+|\d+))|(?P<tl>{_LABEL}))"
_LLVM_FORMS = _forms(
    (rf"{_D}\s*=\s*-\s*(?P<d2>{_REG})", _f_neg),
    (rf"{_D}\s*=\s*(?P<kind>le|be|bswap)(?P<bits>16|32|64)\s+(?P<d2>{_REG})", _f_end),
    (rf"{_D}\s*=\s*addr_space_cast\(\s*{_S}\s*,\s*(?P<a>{_NUM})\s*,\s*(?P<b>{_NUM})\s*\)", _f_addr_space_cast),
    (rf"{_D}\s*=\s*(?P<imm>{_NUM})\s+ll", _l_lddw),
    (rf"ld_pseudo\s+{_D}\s*,\s*(?P<src>{_NUM})\s*,\s*(?P<imm>{_NUM})", _l_ld_pseudo),
    (rf"{_D}\s*=\s*\*\((?P<ty>{_TYPE_RE})\s*\*\)\s*{_MEM}", _l_ldx),
    (rf"r0\s*=\s*\*\((?P<ty>{_TYPE_RE})\s*\*\)\s*skb\[\s*(?P<imm>{_NUM})\s*\]", _f_ld_abs),
    (rf"r0\s*=\s*\*\((?P<ty>{_TYPE_RE})\s*\*\)\s*skb\[\s*{_S}\s*\]", _f_ld_ind),
    (rf"\*\((?P<ty>{_TYPE_RE})\s*\*\)\s*{_MEM}\s*=\s*{_S}", _l_stx),
    (rf"\*\((?P<ty>{_TYPE_RE})\s*\*\)\s*{_MEM}\s*=\s*(?P<imm>{_NUM})", _f_st),
    (rf"lock\s+\*\((?P<ty>{_TYPE_RE})\s*\*\)\s*{_MEM}\s*(?P<op>[+|&^])=\s*{_S}", _l_lock),
    (rf"{_S}\s*=\s*atomic_fetch_(?P<fn>add|and|or|xor)\(\((?P<ty>{_TYPE_RE})\s*\*\)\s*{_MEM}\s*,"
     rf"\s*(?P<s2>{_REG})\s*\)", _l_fetch),
    (rf"{_S}\s*=\s*xchg(?P<w>_64|32_32)\(\s*(?P<base>{_REG})\s*(?P<off>{_NUM})?\s*,\s*(?P<s2>{_REG})\s*\)",
     _l_xchg),
    (rf"[rw]0\s*=\s*cmpxchg(?P<w>_64|32_32)\(\s*(?P<base>{_REG})\s*(?P<off>{_NUM})?\s*,\s*[rw]0\s*,\s*{_S}\s*\)",
     _l_cmpxchg),
    (rf"{_D}\s*(?P<op>{_ALU_RE})\s*(?:\((?P<cast>s8|s16|s32)\))?{_S}", _f_alu_reg),
    (rf"{_D}\s*(?P<op>{_ALU_RE})\s*(?P<imm>{_NUM})", _f_alu_imm),
    (rf"if\s+{_D}\s*(?P<op>{_JMP_RE})\s*(?:{_S}|(?P<imm>{_NUM}))\s+goto\s+{_TARGET}",
     lambda mm: _jump_or_label(mm, _f_jcond)),
    (rf"goto\s+{_TARGET}", lambda mm: _jump_or_label(mm, _f_ja)),
    (rf"gotol\s+{_TARGET}", lambda mm: _jump_or_label(mm, _f_gotol)),
    (rf"may_goto\s+{_TARGET}", lambda mm: _jump_or_label(mm, _f_may_goto)),
    (rf"call\s+(?:(?P<imm>{_NUM})|(?P<name>{_LABEL}))", _l_call),
    (rf"callx\s+{_D}", lambda mm: Insn(_CALLX, mm.reg("d", "r"))),
    (r"exit", _f_exit),
)

_FORMS: dict[str, list[_Form]] = {"kernel": _KERNEL_FORMS, "llvm": _LLVM_FORMS}

# -- listing decorations both tools print around the instruction text --------------------------------

_KERNEL_PREFIX = re.compile(r"\s*(?:(?P<idx>\d+):\s*)?(?:\((?P<code>[0-9a-fA-F]{2})\)\s*)?")
_LLVM_PREFIX = re.compile(r"\s*(?:(?P<idx>\d+):\s*(?:(?:[0-9a-f]{2} )*[0-9a-f]{2}\t)?)?")
_HEX_LINE = re.compile(r"\s*(?:[0-9a-f]{2}[ \t]+)*[0-9a-f]{2}\s*$")
_LABEL_LINE = re.compile(rf"\s*(?:[0-9a-fA-F]{{16}}\s+<(?P<sym>[^>]+)>|(?P<name>{_LABEL})):\s*$")
_FUNC_HEADER = re.compile(r"\s*(?P<proto>[^;:]*\([^;]*\)):\s*$")
_RELOC_LINE = re.compile(r"\s*[0-9a-f]{16}:\s+(?P<type>R_\w+)\s+(?P<target>\S+)")
_LINFO = re.compile(r"(?P<text>.*?) \[file:(?P<file>.*) line_num:(?P<line>\d+) line_col:(?P<col>\d+)\]$")
_SKIP = re.compile(r"\s*(?:\S+:\s+file format .*|Disassembly of section .*:)\s*$")
_ANNOT = re.compile(r"\s+<[^<>]*>\s*$")


def _strip_comment(text: str) -> str:
    for marker in (";", "//"):
        i = text.find(marker)
        if i >= 0:
            text = text[:i]
    return text


def assemble_insn(text: str, dialect: Dialect = "kernel") -> Insn:
    """One instruction (no labels as targets). ``AsmError`` on anything else."""
    insns = assemble(text, dialect)
    if len(insns) != 1:
        raise AsmError(f"expected one instruction, got {len(insns)}", line=1)
    return insns[0]


def assemble(text: str, dialect: Dialect = "kernel", *, path: str = "") -> Insns:
    """Assemble ``text`` in ``dialect`` (``"kernel"`` or ``"llvm"``) into :class:`Insns`."""
    if dialect not in _FORMS:
        raise AsmError(f"unknown dialect {dialect!r} (kernel or llvm)", line=1, path=path)
    forms = _FORMS[dialect]
    items: list[Insn | _Pending] = []
    metas: list[InsnMeta] = []
    lines: list[_Line] = []
    labels: dict[str, int] = {}
    slot = 0
    pending_meta = InsnMeta()
    for lineno, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not stripped:
            continue
        line = _Line(raw, lineno, 0, path)
        if stripped.startswith(";"):  # bpftool's source-line comment
            if dialect == "kernel":
                pending_meta = pending_meta.with_(source=_source_line(stripped[1:].strip()))
            continue
        if stripped.startswith(("#", "//")) or _SKIP.match(raw):
            continue
        if dialect == "llvm" and (rm := _RELOC_LINE.match(raw)):
            if items:
                metas[-1] = metas[-1].with_(reference=rm.group("target"))
            continue
        if lm := _LABEL_LINE.match(raw):
            name = lm.group("sym") or lm.group("name")
            if name in labels:
                raise line.error(f"label {name!r} defined twice", raw.find(name))
            labels[name] = slot
            if lm.group("sym"):
                pending_meta = pending_meta.with_(symbol=name)
            continue
        if dialect == "kernel" and (fm := _FUNC_HEADER.match(raw)):
            pending_meta = pending_meta.with_(func=fm.group("proto").strip())
            continue
        if dialect == "kernel" and _HEX_LINE.match(raw):  # bpftool's `opcodes` bytes
            continue
        body = _strip_comment(raw)
        prefix = (_KERNEL_PREFIX if dialect == "kernel" else _LLVM_PREFIX).match(body)
        assert prefix is not None
        start = prefix.end()
        body = body[start:]
        if dialect == "llvm":
            body = _ANNOT.sub("", body)
        if body.strip() in ("...", "<unknown>"):
            raise line.error(f"cannot assemble {body.strip()!r}: the listing does not say which bytes", start)
        lead = len(body) - len(body.lstrip())
        item = _parse(forms, body.strip(), line, start + lead)
        if dialect == "kernel" and prefix.group("code") is not None:
            want = int(prefix.group("code"), 16)
            got = (item.insn if isinstance(item, _Pending) else item).code
            if want == _CALLX and isinstance(item, Insn) and got == CALL_CODE:
                # callx (not in Linux) prints as a call; its register is not in the kernel's text
                item = Insn(_CALLX, 0, 0, 0, item.imm)
            elif want != got:
                raise line.error(f"opcode ({want:02x}) does not match the instruction text ({got:02x})",
                                 prefix.start("code") - 1)
        items.append(item)
        metas.append(pending_meta)
        lines.append(line)
        pending_meta = InsnMeta()
        slot += (item.insn if isinstance(item, _Pending) else item).width
    return Insns(_resolve(items, metas, lines, labels))


def _source_line(comment: str) -> SourceLine:
    m = _LINFO.match(comment)
    if m:
        return SourceLine(m.group("file"), int(m.group("line")), int(m.group("col")), m.group("text"))
    return SourceLine("", 0, 0, comment)


def _parse(forms: list[_Form], body: str, line: _Line, col: int) -> Insn | _Pending:
    for rx, build in forms:
        m = rx.match(body)
        if m:
            try:
                return build(_Match(m, line, col))
            except IsaError as e:
                if isinstance(e, AsmError):
                    raise
                raise line.error(e.message, col) from None
    raise line.error(f"unknown instruction: {body!r}", col)


def _resolve(items: list[Insn | _Pending], metas: list[InsnMeta], lines: list[_Line],
             labels: dict[str, int]) -> list[Insn]:
    out: list[Insn] = []
    slot = 0
    for item, meta, line in zip(items, metas, lines, strict=True):
        if isinstance(item, _Pending):
            if item.label not in labels:
                raise line.error(f"unknown label {item.label!r}", item.col)
            rel = labels[item.label] - slot - 1
            if item.field == "off":
                if not -0x8000 <= rel <= 0x7FFF:
                    raise line.error(f"jump to {item.label!r} ({rel:+d}) does not fit in 16 bits; use gotol",
                                     item.col)
                insn = item.insn.replace(off=rel)
            else:
                insn = item.insn.replace(imm=rel)
        else:
            insn = item
        try:
            insn.encode()
        except IsaError as e:
            raise line.error(e.message) from None
        if meta != InsnMeta():
            if insn.meta.reference and not meta.reference:
                meta = meta.with_(reference=insn.meta.reference)
            insn = Insn(insn.code, insn.dst, insn.src, insn.off, insn.imm, meta)
        out.append(insn)
        slot += insn.width
    return out
