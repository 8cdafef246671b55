"""A thin writing aid over the code buffer for hand-written native helpers (the few x86 forms they
need that the eBPF code generator never emits — ``pause``, ``bsr``, ``rep movsb``... — are encoded
in :mod:`pybpf.jit.x86.encoder` with the others and re-exported here).

Helpers are System V functions written instruction by instruction; :class:`Asm` only shortens the
spelling (``a(x.mov_load(...))``, labels, calls between library functions by name) and keeps the
library's naming scheme in one place: function ``name`` is the label ``("native", name)``.
"""

from __future__ import annotations

from collections.abc import Hashable

from pybpf.jit.x86 import encoder as x
from pybpf.jit.x86.codebuf import CodeBuffer
from pybpf.jit.x86.encoder import Cond, Mem, Reg, bsr, pause, rep_movsb, rep_stosb, setcc

__all__ = ["Asm", "bsr", "fn_label", "pause", "rep_movsb", "rep_stosb", "setcc"]


def fn_label(name: str) -> Hashable:
    """The code-buffer label of library function ``name``."""
    return ("native", name)


class Asm:
    """Emits into ``buf``; ``a(code, ...)`` appends encoded instructions."""

    __slots__ = ("buf",)

    def __init__(self, buf: CodeBuffer) -> None:
        self.buf = buf

    def __call__(self, *codes: bytes) -> None:
        for c in codes:
            self.buf.emit(c)

    # -- labels and jumps -------------------------------------------------------------------------
    def new(self) -> Hashable:
        return self.buf.new_label()

    def at(self, label: Hashable) -> None:
        self.buf.label(label)

    def jmp(self, label: Hashable) -> None:
        self.buf.jmp(label)

    def jcc(self, cond: Cond, label: Hashable) -> None:
        self.buf.jcc(cond, label)

    def call(self, name: str) -> None:
        """``call name`` (another function of the library)."""
        self.buf.rip_ref(b"\xe8", fn_label(name))

    def tail(self, name: str) -> None:
        """``jmp name``: continue in another library function (its ``ret`` returns to our caller)."""
        self.buf.jmp(fn_label(name))

    def func(self, name: str) -> None:
        """Start library function ``name`` (16-byte aligned)."""
        self.buf.align(16)
        self.buf.label(fn_label(name))

    # -- short forms of frequent instructions -----------------------------------------------------
    def ld32(self, dst: Reg, base: Reg, disp: int = 0, index: Reg | None = None, scale: int = 1) -> None:
        self.buf.emit(x.mov_load(dst, Mem(base, disp, index, scale), 32))

    def ld64(self, dst: Reg, base: Reg, disp: int = 0, index: Reg | None = None, scale: int = 1) -> None:
        self.buf.emit(x.mov_load(dst, Mem(base, disp, index, scale), 64))

    def st32(self, base: Reg, disp: int, src: Reg) -> None:
        self.buf.emit(x.mov_store(Mem(base, disp), src, 32))

    def st64(self, base: Reg, disp: int, src: Reg) -> None:
        self.buf.emit(x.mov_store(Mem(base, disp), src, 64))

    def zero(self, r: Reg) -> None:
        """``xor r32, r32``: r = 0 (and ZF set)."""
        self.buf.emit(x.alu_rr(x.AluOp.XOR, r, r, 32))

    def ret_imm(self, value: int) -> None:
        """``mov eax/rax, value; ret``."""
        if value == 0:
            self.zero(x.RAX)
        elif 0 <= value <= 0xFFFF_FFFF:
            self.buf.emit(x.mov_ri(x.RAX, value, 32))
        else:
            self.buf.emit(x.mov_ri(x.RAX, value, 64))
        self.buf.emit(x.ret())

    def push(self, *regs: Reg) -> None:
        for r in regs:
            self.buf.emit(x.push(r))

    def pop(self, *regs: Reg) -> None:
        for r in regs:
            self.buf.emit(x.pop(r))
