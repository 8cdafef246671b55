"""The reference interpreter: readable, decode-once, bounds-checked — the oracle the verifier, the
translated tier and the JIT are checked against.

Every raw slot is decoded once into a :class:`_Step` (fields, sign-extended immediate, jump target,
and the handler to run). Handlers are chosen from tables built from ``isa.opcodes.OPCODES`` by
``Kind`` (and ``AluOp`` / ``JmpOp`` / ``AtomicOp`` through :mod:`pybpf.vm.semantics`): there is no
second switch over opcode bits. A handler executes one instruction and returns the next pc (or None
when the outermost frame exits).

Memory goes through :class:`~pybpf.vm.memory.AddressSpace` (precise faults). Calls: helpers by id
from the :class:`~pybpf.vm.helpers.HelperTable`; bpf-to-bpf calls push a frame (caller's r1..r10
saved and restored, callee gets zeroed r0/r6..r9, a fresh frame and r10) up to MAX_CALL_FRAMES = 8
per program; kfunc calls are refused when reached; tail calls replace the current frame's program
(limit 33), which then counts its own 8 frames from there (see :mod:`pybpf.vm.execution`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pybpf.errors import ExecutionError
from pybpf.isa.insn import Insn
from pybpf.isa.opcodes import OPCODES, AtomicOp, InsnClass, Kind, Mode, PseudoCall, Size, Source
from pybpf.vm import execution as X
from pybpf.vm.engine import Engine, ld_abs
from pybpf.vm.execution import BPF_MAX_LOOPS, MAX_TAIL_CALL_CNT, Execution, check_depth
from pybpf.vm.helpers import ProgramExit, TailCall
from pybpf.vm.program import bad_register
from pybpf.vm.semantics import ALU_FUNCS, ATOMIC_FUNCS, COND_FUNCS, M32, M64, bswap, is_percpu_mov, sext, to_be, to_le

__all__ = ["Interpreter"]

_Handler = Callable[["_Machine", "_Step"], "int | None"]


@dataclass(slots=True, eq=False)
class _Step:
    """One decoded instruction and everything its handler needs."""

    pc: int
    insn: Insn
    handler: _Handler
    next: int
    imm64: int = 0  # the immediate sign-extended to 64 bits, as u64 (lddw: unused)
    target: int = 0  # jump / call target slot
    target_error: ExecutionError | None = None  # why the target is invalid (raised if taken)
    bits: int = 64
    mask: int = M64
    size: int = 0
    signed: bool = False
    use_src: bool = False
    fetch: bool = False  # atomics: the old value goes to src
    func: Callable[..., int] | None = None  # the ALU / condition / swap function

    @property
    def dst(self) -> int:
        return self.insn.dst

    @property
    def src(self) -> int:
        return self.insn.src

    @property
    def off(self) -> int:
        return self.insn.off


@dataclass(slots=True, eq=False)
class _Frame:
    depth: int
    engine: Interpreter
    func_start: int
    func_end: int
    return_pc: int = 0
    saved: list[int] = field(default_factory=list)  # caller's r1..r10 and AX
    may_goto: int = BPF_MAX_LOOPS
    base: int = 0  # the depth at which this frame's program started (0, or where a tail call put it)


class _Machine:
    """Registers and the frame stack of one (possibly nested, for callbacks) activation."""

    __slots__ = ("ex", "frames", "pc", "regs")

    def __init__(self, ex: Execution) -> None:
        self.ex = ex
        self.regs = [0] * 12  # r0-r10 and AX (the verifier's scratch register)
        self.frames: list[_Frame] = []
        self.pc = 0

    @property
    def frame(self) -> _Frame:
        return self.frames[-1]

    def enter(
        self, engine: Interpreter, start: int, depth: int, return_pc: int = 0, saved: list[int] | None = None,
        base: int = 0,
    ) -> int:
        """Push a frame for the function at ``start``; returns ``start``."""
        frame = _Frame(depth, engine, start, engine.layout.func_end[start], return_pc, saved or [],
                       self.ex.may_goto_init, base)
        self.frames.append(frame)
        r = self.regs
        r[0] = r[6] = r[7] = r[8] = r[9] = r[11] = 0
        r[10] = _open_frame(self.ex, engine, start, depth)
        return start

    def loop(self) -> int:
        """Execute until the bottom frame of this machine exits; returns r0."""
        ex = self.ex
        while True:
            frame = self.frames[-1]
            s = frame.engine.steps[self.pc]
            if s is None:  # cannot happen: jumps and calls validate their targets
                raise ExecutionError("no instruction at this pc", pc=self.pc)
            if ex.left <= 0:
                raise ex.limit_exceeded(s.pc)
            ex.left -= 1
            nxt = s.handler(self, s)
            if nxt is None:
                return self.regs[0]
            if nxt >= self.frames[-1].func_end and nxt == s.next:
                raise X.err_fallthrough(s.pc)
            self.pc = nxt


def _open_frame(ex: Execution, engine: Interpreter, start: int, depth: int) -> int:
    """Open the frame of a function that uses r10 (see :mod:`pybpf.vm.execution`); returns r10."""
    if engine.layout.uses_frame[start]:
        return ex.enter_frame(depth)[1]
    ex.depth = depth
    return 0  # never read: the function does not touch r10


# -- handlers: one per Kind (and source / pseudo variant), each executes one instruction ------------------


def _alu(m: _Machine, s: _Step) -> int:
    r = m.regs
    b = r[s.src] if s.use_src else s.imm64
    r[s.dst] = s.func(r[s.dst] & s.mask, b & s.mask, s.bits, s.off)  # type: ignore[misc]
    return s.next


def _percpu_mov(m: _Machine, s: _Step) -> int:
    """``dst = &(void __percpu *)(src)``: add the running CPU's per-CPU offset (verifier-emitted)."""
    m.regs[s.dst] = (m.regs[s.src] + m.ex.percpu_offset()) & M64
    return s.next


def _end(m: _Machine, s: _Step) -> int:
    m.regs[s.dst] = s.func(m.regs[s.dst], s.insn.imm)  # type: ignore[misc]
    return s.next


def _ja(m: _Machine, s: _Step) -> int:
    if s.target_error is not None:
        raise s.target_error
    return s.target


def _jcond(m: _Machine, s: _Step) -> int:
    r = m.regs
    b = r[s.src] if s.use_src else s.imm64
    if s.func(r[s.dst] & s.mask, b & s.mask, s.bits):  # type: ignore[misc]
        if s.target_error is not None:
            raise s.target_error
        return s.target
    return s.next


def _may_goto(m: _Machine, s: _Step) -> int:
    frame = m.frame
    if frame.may_goto == 0:
        if s.target_error is not None:
            raise s.target_error
        return s.target
    frame.may_goto -= 1
    return s.next


def _call_helper_id(m: _Machine, s: _Step, helper_id: int) -> int:
    ex = m.ex
    engine = m.frame.engine
    fn = engine.helpers.get(helper_id)
    if fn is None:
        raise X.err_unknown_helper(s.pc, helper_id)
    r = m.regs
    ex.pc = s.pc
    ex.base = m.frames[-1].base
    try:
        rv = fn(ex, r[1], r[2], r[3], r[4], r[5])
    except TailCall as t:
        return _tail_call(m, s, t)
    r[0] = (rv or 0) & M64
    if helper_id == engine.helpers.unwind_id and r[0] == 0:
        raise ProgramExit(0)
    return s.next


def _call_helper(m: _Machine, s: _Step) -> int:
    return _call_helper_id(m, s, s.insn.imm & 0xFFFFFFFF)


def _callx(m: _Machine, s: _Step) -> int:
    return _call_helper_id(m, s, m.regs[s.dst])


def _tail_call(m: _Machine, s: _Step, t: TailCall) -> int:
    ex = m.ex
    if ex.tail_call_cnt >= MAX_TAIL_CALL_CNT:
        return s.next  # the kernel falls through; r0 is left as it was
    ex.tail_call_cnt += 1
    assert ex.engine is not None
    target = ex.engine.tail_target(t.program)
    assert isinstance(target, Interpreter)
    frame = m.frame
    frame.engine = target
    frame.func_start, frame.func_end = 0, target.layout.func_end[0]
    frame.may_goto = ex.may_goto_init
    frame.base = frame.depth  # a new program: its own call chain starts in this frame
    m.regs[10] = _open_frame(ex, target, 0, frame.depth)
    return 0


def _call_local(m: _Machine, s: _Step) -> int:
    if s.target_error is not None:
        raise s.target_error
    frame = m.frame
    check_depth(s.pc, frame.depth + 1, frame.base)
    return m.enter(frame.engine, s.target, frame.depth + 1, s.next, m.regs[1:12], frame.base)


def _call_kfunc(m: _Machine, s: _Step) -> int:
    raise X.err_kfunc(s.pc, s.insn.imm)


def _exit(m: _Machine, s: _Step) -> int | None:
    frame = m.frames.pop()
    m.ex.leave_frame(frame.depth)
    if not m.frames:
        return None
    r = m.regs
    r[1:12] = frame.saved
    if frame.return_pc >= m.frame.func_end:
        raise X.err_fallthrough(frame.return_pc - 1)
    return frame.return_pc


def _lddw(m: _Machine, s: _Step) -> int:
    value = m.frame.engine.layout.lddw[s.pc]
    if value.error is not None:
        raise ExecutionError(value.error, pc=s.pc)
    m.regs[s.dst] = value.value
    return s.next


def _ld_packet(m: _Machine, s: _Step) -> int | None:
    r = m.regs
    offset = (r[s.src] + s.imm64) & M64 if s.use_src else s.imm64
    r[1], r[2] = r[6], offset  # what Linux's rewrite (bpf_gen_ld_abs) leaves behind
    value = ld_abs(m.ex, offset, s.size, s.pc)
    if value is None:
        r[0] = 0
        return _exit(m, s)
    r[0] = value
    return s.next


def _ldx(m: _Machine, s: _Step) -> int:
    r = m.regs
    value = m.ex.space.load((r[s.src] + s.off) & M64, s.size, signed=s.signed, pc=s.pc)
    r[s.dst] = value & M64
    return s.next


def _st(m: _Machine, s: _Step) -> int:
    m.ex.space.store((m.regs[s.dst] + s.off) & M64, s.size, s.imm64, pc=s.pc)
    return s.next


def _stx(m: _Machine, s: _Step) -> int:
    r = m.regs
    m.ex.space.store((r[s.dst] + s.off) & M64, s.size, r[s.src], pc=s.pc)
    return s.next


def _atomic(m: _Machine, s: _Step) -> int:
    r = m.regs
    addr = (r[s.dst] + s.off) & M64
    operand = r[s.src] & s.mask
    if s.insn.imm == AtomicOp.CMPXCHG:
        expected = r[0] & s.mask
        r[0] = m.ex.space.atomic(addr, s.size, lambda v: operand if v == expected else None, pc=s.pc)
        return s.next
    func, mask = s.func, s.mask
    old = m.ex.space.atomic(addr, s.size, lambda v: func(v, operand, mask), pc=s.pc)  # type: ignore[misc]
    if s.fetch:  # the fetch variants and xchg
        r[s.src] = old
    return s.next


def _raise(error: ExecutionError) -> _Handler:
    def handler(m: _Machine, s: _Step) -> int:
        raise error

    return handler


_KIND_HANDLERS: dict[Kind, _Handler] = {
    Kind.ALU: _alu,
    Kind.END: _end,
    Kind.JA: _ja,
    Kind.JCOND: _jcond,
    Kind.MAY_GOTO: _may_goto,
    Kind.CALLX: _callx,
    Kind.EXIT: _exit,
    Kind.LDDW: _lddw,
    Kind.LD_ABS: _ld_packet,
    Kind.LD_IND: _ld_packet,
    Kind.LDX: _ldx,
    Kind.ST: _st,
    Kind.STX: _stx,
    Kind.ATOMIC: _atomic,
}
_CALL_HANDLERS: dict[int, _Handler] = {
    PseudoCall.HELPER: _call_helper,
    PseudoCall.CALL: _call_local,
    PseudoCall.KFUNC: _call_kfunc,
}
_SWAPS = {(InsnClass.ALU, Source.K): to_le, (InsnClass.ALU, Source.X): to_be, (InsnClass.ALU64, Source.K): bswap}


class Interpreter(Engine):
    """The reference interpreter (see the module docstring); construct and ``run()`` as any
    :class:`~pybpf.vm.engine.Engine`."""

    tier = "interpreter"
    steps: list[_Step | None]

    def _setup(self) -> None:
        layout = self.layout
        self.steps = [None] * layout.n_slots
        for idx, insn in enumerate(layout.slots):
            if insn is not None:
                self.steps[idx] = self._decode(idx, insn)

    def _decode(self, pc: int, insn: Insn) -> _Step:
        layout = self.layout
        info = OPCODES.get(insn.code)
        step = _Step(pc, insn, _raise(X.err_unknown_opcode(pc, insn.code)), pc + insn.width)
        if info is None:
            return step
        kind = info.kind
        step.imm64 = sext(insn.imm, 32) & M64 if kind is not Kind.LDDW else 0
        step.use_src = (info.source is Source.X and kind in (Kind.ALU, Kind.JCOND)) or kind is Kind.LD_IND
        bad = bad_register(pc, insn, info)
        if bad is not None:
            step.handler = _raise(bad)
            return step
        if kind is Kind.CALL:
            invalid = _raise(ExecutionError(f"call with invalid src_reg {insn.src}", pc=pc))
            step.handler = _CALL_HANDLERS.get(insn.src, invalid)
        else:
            step.handler = _KIND_HANDLERS[kind]
        if info.cls in (InsnClass.ALU, InsnClass.JMP32) or info.size == Size.W:
            step.bits, step.mask = 32, M32
        if kind is Kind.ALU:
            step.func = ALU_FUNCS[info.alu_op]  # type: ignore[index]
            if is_percpu_mov(insn, info):
                step.handler = _percpu_mov
        elif kind is Kind.END:
            step.func = _SWAPS[info.cls, info.source]  # type: ignore[index]
            if insn.imm not in (16, 32, 64):
                step.handler = _raise(X.err_bad_endian(pc, insn.imm))
        elif kind is Kind.JCOND:
            step.func = COND_FUNCS[info.jmp_op]  # type: ignore[index]
        elif kind is Kind.ATOMIC:
            try:
                op = AtomicOp(insn.imm)
            except ValueError:
                step.handler = _raise(X.err_bad_atomic(pc, insn.imm))
                return step
            step.func = ATOMIC_FUNCS.get(op.base)
            step.fetch = op.fetch
        if info.size is not None:
            step.size = info.size.bytes
            step.signed = info.mode is Mode.MEMSX
        if kind in (Kind.JA, Kind.JCOND, Kind.MAY_GOTO):
            step.target = pc + 1 + (sext(insn.imm, 32) if info.cls == InsnClass.JMP32 and kind is Kind.JA else insn.off)
            start = layout.func_of(pc)
            if not start <= step.target < layout.func_end[start]:
                step.target_error = X.err_jump_range(pc, step.target)
            elif layout.slots[step.target] is None:
                step.target_error = X.err_jump_lddw(pc, step.target)
        elif kind is Kind.CALL and insn.src == PseudoCall.CALL:
            step.target = pc + 1 + sext(insn.imm, 32)
            if step.target not in layout.func_end:
                step.target_error = X.err_call_target(pc, step.target)
        return step

    def _run(self, ex: Execution, args: tuple[int, int, int, int, int]) -> int:
        m = _Machine(ex)
        m.pc = m.enter(self, 0, 0)
        m.regs[1:6] = args
        return m.loop()

    def call_function(self, ex: Execution, slot: int, args: tuple[int, ...], depth: int) -> int:
        if slot not in self.layout.func_end:
            raise X.err_call_target(ex.pc, slot)
        check_depth(ex.pc, depth, ex.base)
        m = _Machine(ex)
        m.pc = m.enter(self, slot, depth, base=ex.base)
        m.regs[1 : 1 + len(args)] = [a & M64 for a in args]
        return m.loop()
