"""The assembler dialect of the ISA conformance suites (bpf_conformance / uBPF ``-- asm`` sections).

One instruction or label per line (tests/data/conformance/README.md, section 3)::

    mov32 %r0, 0              # '#' starts a comment anywhere
    ldxh %r0, [%r1+2]
    jne %r1, 0x80000000, exit # label, or a slot offset +N / -N from the next slot
    lock fetch add32 [%r10-4], %r1
    call local func1          # bpf-to-bpf; `call 5` / `call helper 5` = helper; `call %r2` = callx
    func1:

Numbers are decimal (optionally signed) or ``0x`` hex; hex is an unsigned bit pattern, so a 32-bit
immediate may be written ``0xffffffff`` (= -1) but not ``0x100000000``, and a decimal one must fit
in a signed 32-bit int. ``exit`` is a predefined label: the first ``exit`` of the program. Registers
``%r0``..``%r15`` are accepted (r11..r15 only encode; a strict decoder rejects them, which is what
the suites' negative tests check).

Errors are :class:`~pybpf.errors.AsmError` with 1-based line and column; messages follow the
bpf_conformance assembler's (``Invalid register: %r50``, ``Invalid mnemonic: ldxq``,
``Invalid number of operands for lock``...).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pybpf.errors import AsmError
from pybpf.isa.insn import Insn, Insns
from pybpf.isa.opcodes import (
    OPCODES,
    AluOp,
    AtomicOp,
    InsnClass,
    JmpOp,
    Mode,
    PseudoCall,
    Size,
    Source,
)

__all__ = ["assemble", "parse_int"]

_TOKEN = re.compile(r"\[[^\]]*\]|[^\s,]+")
_LABEL = re.compile(r"^[A-Za-z_.$][\w.$]*$")
_REG = re.compile(r"^%r(\d+)$")
_NUMBER = re.compile(r"^([+-]?)(0[xX][0-9A-Fa-f]+|\d+)$")

_ALU = {op.name.lower(): op for op in AluOp if op is not AluOp.END}
_JMP = {
    "jeq": JmpOp.JEQ, "jgt": JmpOp.JGT, "jge": JmpOp.JGE, "jset": JmpOp.JSET, "jne": JmpOp.JNE,
    "jsgt": JmpOp.JSGT, "jsge": JmpOp.JSGE, "jlt": JmpOp.JLT, "jle": JmpOp.JLE, "jslt": JmpOp.JSLT,
    "jsle": JmpOp.JSLE,
}
_SIZES = {"b": Size.B, "h": Size.H, "w": Size.W, "dw": Size.DW}
_ATOMIC = {"add": AtomicOp.ADD, "or": AtomicOp.OR, "and": AtomicOp.AND, "xor": AtomicOp.XOR,
           "xchg": AtomicOp.XCHG, "cmpxchg": AtomicOp.CMPXCHG}
_MOVSX = {"movsx864": (InsnClass.ALU64, 8), "movsx1664": (InsnClass.ALU64, 16), "movsx3264": (InsnClass.ALU64, 32),
          "movsx832": (InsnClass.ALU, 8), "movsx1632": (InsnClass.ALU, 16)}


def _opcode(name: str) -> int:
    """The opcode byte of the OPCODES entry called ``name`` (the table stays the one definition)."""
    return _BY_NAME[name]


_BY_NAME = {info.name: code for code, info in OPCODES.items()}


def parse_int(text: str, bits: int, *, what: str = "Immediate") -> int:
    """``text`` as a ``bits``-wide field value, returned signed (two's complement).

    Hex without a sign is an unsigned bit pattern (``0xffffffff`` fits 32 bits and means -1);
    decimal and signed values must fit the signed range. Raises ValueError with the message.
    """
    m = _NUMBER.match(text)
    if m is None:
        raise ValueError(f"Invalid {what.lower()}: {text}")
    sign, digits = m.groups()
    is_hex = digits[:2].lower() == "0x"
    value = int(digits, 16 if is_hex else 10)
    if sign == "-":
        value = -value
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if is_hex and sign != "-":
        hi = (1 << bits) - 1
    if not lo <= value <= hi:
        raise ValueError(f"{what} out of range: {text}")
    if value > (1 << (bits - 1)) - 1:
        value -= 1 << bits
    return value


@dataclass(slots=True)
class _Tok:
    text: str
    col: int


@dataclass(slots=True)
class _Pending:
    """An instruction whose jump/call target is a label, resolved after the last line."""

    index: int  # position in the output list
    slot: int
    label: _Tok
    line: int
    text: str
    field: str  # "off" or "imm"
    bits: int


class _Assembler:
    def __init__(self, text: str, path: str) -> None:
        self.text = text
        self.path = path
        self.out: list[Insn] = []
        self.slot = 0
        self.labels: dict[str, int] = {}
        self.label_lines: dict[str, int] = {}
        self.first_exit: int | None = None
        self.pending: list[_Pending] = []
        self.line_no = 0
        self.line_text = ""

    def error(self, message: str, col: int = 1) -> AsmError:
        return AsmError(message, line=self.line_no, col=col, text=self.line_text, path=self.path)

    # -- operands ----------------------------------------------------------------------------------
    def reg(self, tok: _Tok) -> int:
        m = _REG.match(tok.text)
        if m is None or int(m.group(1)) > 15:
            raise self.error(f"Invalid register: {tok.text}", tok.col)
        return int(m.group(1))

    def number(self, tok: _Tok, bits: int, what: str = "Immediate") -> int:
        try:
            return parse_int(tok.text, bits, what=what)
        except ValueError as e:
            raise self.error(str(e), tok.col) from None

    def mem(self, tok: _Tok) -> tuple[int, int]:
        """``[%rN]``, ``[%rN+off]`` or ``[%rN-off]`` -> (register, offset)."""
        text = tok.text
        if not (text.startswith("[") and text.endswith("]")):
            raise self.error(f"Failed to decode register and offset: {text}", tok.col)
        inner = text[1:-1].replace(" ", "")
        m = re.match(r"^(%r\d+)(?:([+-])(.+))?$", inner)
        if m is None:
            raise self.error(f"Failed to decode register and offset: {text}", tok.col)
        reg = self.reg(_Tok(m.group(1), tok.col + 1))
        off = 0
        if m.group(2):
            off = self.number(_Tok(m.group(2) + m.group(3), tok.col), 16, "Offset")
        return reg, off

    def target(self, tok: _Tok, field: str, bits: int, index: int) -> int:
        """A relative slot offset ``+N``/``-N`` now, or 0 and a pending label fix-up."""
        if tok.text[:1] in "+-":
            return self.number(tok, bits, "Offset")
        if not _LABEL.match(tok.text):
            raise self.error(f"Invalid label: {tok.text}", tok.col)
        self.pending.append(_Pending(index, self.slot, tok, self.line_no, self.line_text, field, bits))
        return 0

    def expect(self, mnemonic: str, ops: list[_Tok], count: int, col: int) -> None:
        if len(ops) != count:
            raise self.error(f"Invalid number of operands for mnemonic: {mnemonic}", col)

    # -- instructions ---------------------------------------------------------------------------------
    def add(self, insn: Insn) -> None:
        self.out.append(insn)
        self.slot += insn.width

    def line(self, mnemonic: _Tok, ops: list[_Tok]) -> None:
        name = mnemonic.text.lower()
        col = mnemonic.col
        index = len(self.out)
        if name == "exit":
            self.expect(name, ops, 0, col)
            if self.first_exit is None:
                self.first_exit = self.slot
            self.add(Insn(_opcode("exit")))
        elif name == "lock":
            self.atomic(ops, col)
        elif name == "call":
            self.call(ops, col, index)
        elif name in ("ja", "ja32"):
            self.expect(name, ops, 1, col)
            if name == "ja":
                self.add(Insn(_opcode("ja"), off=self.target(ops[0], "off", 16, index)))
            else:
                self.add(Insn(_opcode("gotol"), imm=self.target(ops[0], "imm", 32, index)))
        elif (base := name.removesuffix("32")) in _JMP:
            self.jump(name, base, ops, col, index)
        elif name == "lddw":
            self.expect(name, ops, 2, col)
            self.add(Insn(_opcode("lddw"), self.reg(ops[0]), imm=self.number(ops[1], 64)))
        elif name in _MOVSX:
            self.expect(name, ops, 2, col)
            cls, off = _MOVSX[name]
            code = AluOp.MOV | Source.X | cls
            self.add(Insn(code, self.reg(ops[0]), self.reg(ops[1]), off))
        elif (m := re.match(r"^(le|be|bswap|swap)(16|32|64)$", name)) is not None:
            self.expect(name, ops, 1, col)
            kind, width = m.group(1), int(m.group(2))
            code = {"le": _opcode("le"), "be": _opcode("be")}.get(kind, _opcode("bswap"))
            self.add(Insn(code, self.reg(ops[0]), imm=width))
        elif (m := re.match(r"^ldx(s?)(b|h|w|dw)$", name)) is not None and not (m.group(1) and m.group(2) == "dw"):
            self.expect(name, ops, 2, col)
            mode = Mode.MEMSX if m.group(1) else Mode.MEM
            dst = self.reg(ops[0])
            src, off = self.mem(ops[1])
            self.add(Insn(mode | _SIZES[m.group(2)] | InsnClass.LDX, dst, src, off))
        elif (m := re.match(r"^st(x?)(b|h|w|dw)$", name)) is not None:
            self.expect(name, ops, 2, col)
            dst, off = self.mem(ops[0])
            if m.group(1):
                self.add(Insn(Mode.MEM | _SIZES[m.group(2)] | InsnClass.STX, dst, self.reg(ops[1]), off))
            else:
                self.add(Insn(Mode.MEM | _SIZES[m.group(2)] | InsnClass.ST, dst, 0, off, self.number(ops[1], 32)))
        else:
            self.alu(name, ops, col)

    def alu(self, name: str, ops: list[_Tok], col: int) -> None:
        signed = name.startswith(("sdiv", "smod"))
        core = name[1:] if signed else name
        if core.endswith("32"):
            cls, base = InsnClass.ALU, core[:-2]
        else:
            cls, base = InsnClass.ALU64, core.removesuffix("64")
        op = _ALU.get(base)
        if op is None or (signed and op not in (AluOp.DIV, AluOp.MOD)):
            raise self.error(f"Invalid mnemonic: {name}", col)
        if op is AluOp.NEG:
            self.expect(name, ops, 1, col)
            self.add(Insn(op | Source.K | cls, self.reg(ops[0])))
            return
        self.expect(name, ops, 2, col)
        dst = self.reg(ops[0])
        off = 1 if signed else 0
        if ops[1].text.startswith("%"):
            self.add(Insn(op | Source.X | cls, dst, self.reg(ops[1]), off))
        else:
            self.add(Insn(op | Source.K | cls, dst, 0, off, self.number(ops[1], 32)))

    def jump(self, name: str, base: str, ops: list[_Tok], col: int, index: int) -> None:
        self.expect(name, ops, 3, col)
        cls = InsnClass.JMP32 if name.endswith("32") else InsnClass.JMP
        op = _JMP[base]
        dst = self.reg(ops[0])
        if ops[1].text.startswith("%"):
            code, src, imm = op | Source.X | cls, self.reg(ops[1]), 0
        else:
            code, src, imm = op | Source.K | cls, 0, self.number(ops[1], 32)
        self.add(Insn(code, dst, src, self.target(ops[2], "off", 16, index), imm))

    def call(self, ops: list[_Tok], col: int, index: int) -> None:
        if len(ops) == 1:
            ops = [_Tok("helper", col), *ops]
        if len(ops) != 2:
            raise self.error("Invalid number of operands for mnemonic: call", col)
        mode, arg = ops[0].text.lower(), ops[1]
        if mode == "helper":
            if arg.text.startswith("%"):
                self.add(Insn(_opcode("callx"), self.reg(arg)))
            else:
                self.add(Insn(_opcode("call"), src=PseudoCall.HELPER, imm=self.number(arg, 32)))
        elif mode == "local":
            self.add(Insn(_opcode("call"), src=PseudoCall.CALL, imm=self.target(arg, "imm", 32, index)))
        elif mode == "runtime":
            self.add(Insn(_opcode("call"), src=PseudoCall.KFUNC, imm=self.number(arg, 32)))
        else:
            raise self.error(f"Invalid call mode: {ops[0].text}", ops[0].col)

    def atomic(self, ops: list[_Tok], col: int) -> None:
        words = list(ops)
        fetch = bool(words) and words[0].text.lower() == "fetch"
        if fetch:
            words = words[1:]
        if len(words) != 3:
            raise self.error("Invalid number of operands for lock", col)
        op_tok = words[0]
        op_name = op_tok.text.lower()
        size = Size.DW
        if op_name.endswith("32"):
            size, op_name = Size.W, op_name[:-2]
        elif op_name.endswith("64"):
            op_name = op_name[:-2]
        op = _ATOMIC.get(op_name)
        if op is None:
            raise self.error(f"Invalid mnemonic: lock {op_tok.text}", op_tok.col)
        if fetch:
            if op in (AtomicOp.XCHG, AtomicOp.CMPXCHG):
                raise self.error(f"Invalid mnemonic: lock fetch {op_tok.text}", op_tok.col)
            op = next(f for f in AtomicOp if f.fetch and f.base is op)
        dst, off = self.mem(words[1])
        self.add(Insn(Mode.ATOMIC | size | InsnClass.STX, dst, self.reg(words[2]), off, int(op)))

    # -- driver ------------------------------------------------------------------------------------------
    def run(self) -> Insns:
        for line_no, raw in enumerate(self.text.splitlines(), 1):
            self.line_no, self.line_text = line_no, raw
            code = raw.split("#", 1)[0]
            toks = [_Tok(m.group(), m.start() + 1) for m in _TOKEN.finditer(code)]
            if not toks:
                continue
            while toks and toks[0].text.endswith(":"):
                label = toks[0].text[:-1]
                if not _LABEL.match(label):
                    raise self.error(f"Invalid label: {label}", toks[0].col)
                if label in self.labels:
                    raise self.error(
                        f"Duplicate label ({label}) (previous declaration at line {self.label_lines[label]})",
                        toks[0].col,
                    )
                self.labels[label] = self.slot
                self.label_lines[label] = self.line_no
                toks = toks[1:]
            if toks:
                self.line(toks[0], toks[1:])
        if self.first_exit is not None:
            self.labels.setdefault("exit", self.first_exit)
        for p in self.pending:
            self.line_no, self.line_text = p.line, p.text
            where = self.labels.get(p.label.text)
            if where is None:
                raise self.error(f"Invalid label: {p.label.text}", p.label.col)
            delta = where - (p.slot + 1)
            if not -(1 << (p.bits - 1)) <= delta < (1 << (p.bits - 1)):
                raise self.error(f"Offset out of range: label {p.label.text} is {delta} slots away", p.label.col)
            self.out[p.index] = self.out[p.index].replace(**{p.field: delta})
        return Insns(self.out)


def assemble(text: str, *, path: str = "") -> Insns:
    """Assemble conformance-suite assembly; errors are :class:`AsmError` with line and column."""
    return _Assembler(text, path).run()

