"""The fast tier: BPF translated into Python source, one Python function per BPF function.

Same semantics and same faults as the reference interpreter (:mod:`pybpf.vm.interp`), which the
differential tests check on random programs and on the conformance suites. What makes it fast:

* registers are Python locals (``r0``..``r10``) holding unsigned 64-bit ints; results are masked only
  where an operation can leave the range (``&``/``|``/``^``/``>>`` of masked values need no mask);
* control flow is recovered once per function: basic blocks become ``if pc == N:`` items of a
  ``while True:`` dispatch loop, and every loop (the slots from the target of a backward jump to the
  end of the block holding its last backward jump, properly nested) gets its own nested
  ``while True:`` guarded by ``if start <= pc < end:``, so a back edge only re-dispatches among the
  loop's own blocks — and a loop that is one basic block needs no dispatch at all;
* memory accesses inline the address space's fast tables (``rtab``/``wtab``, see
  :mod:`pybpf.vm.memory`): one shift, one index, one bounds check, one ``struct`` call; anything odd
  goes to the slow path, which raises the interpreter's exact :class:`~pybpf.errors.MemoryFault`;
  accesses ``[r10 + const]`` in functions that never write r10 index the frame buffer directly,
  with the bounds checked at translation time;
* the instruction budget is kept in a local counter charged once per straight-line segment and
  checked at backward jumps, calls and exits.

The generated source is kept (``TranslatedProgram.source``) and registered with ``linecache``, so a
traceback through translated code shows the Python that ran.
"""

from __future__ import annotations

import itertools
import linecache
import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pybpf.errors import ExecutionError
from pybpf.isa.insn import Insn
from pybpf.isa.opcodes import OPCODES, AluOp, AtomicOp, InsnClass, JmpOp, Kind, Mode, OpInfo, PseudoCall, Source
from pybpf.vm import execution as X
from pybpf.vm.engine import Engine, ld_abs
from pybpf.vm.execution import MAX_CALL_FRAMES, MAX_TAIL_CALL_CNT, STACK_SIZE, Execution
from pybpf.vm.helpers import ProgramExit, TailCall
from pybpf.vm.memory import ID_MASK
from pybpf.vm.program import written_registers
from pybpf.vm.semantics import ALU_FUNCS, M32, M64, bswap, sdiv, sext, smod

__all__ = ["TranslatedProgram"]

_MAX_LOOP_NESTING = 10  # CPython allows 20 statically nested blocks (loops, try); keep well below
_MAX_IF_NESTING = 32  # if/else branches made from forward jumps, per block (the parser nests them)
_S64 = 1 << 63
_S32 = 1 << 31
_M = f"{M64:#x}"
_W = f"{M32:#x}"
_SEGMENT_ENDS = {Kind.JA, Kind.JCOND, Kind.MAY_GOTO, Kind.EXIT, Kind.CALL, Kind.CALLX, Kind.LD_ABS, Kind.LD_IND}
_COUNTER = itertools.count()
_RECENT_SOURCES: deque[str] = deque()

# Python operator for each conditional jump; signed ones compare values biased by the sign bit.
_COND_OPS: dict[JmpOp, tuple[str, bool]] = {
    JmpOp.JEQ: ("==", False),
    JmpOp.JNE: ("!=", False),
    JmpOp.JGT: (">", False),
    JmpOp.JGE: (">=", False),
    JmpOp.JLT: ("<", False),
    JmpOp.JLE: ("<=", False),
    JmpOp.JSGT: (">", True),
    JmpOp.JSGE: (">=", True),
    JmpOp.JSLT: ("<", True),
    JmpOp.JSLE: ("<=", True),
}
_STRUCT_CODES = {1: "B", 2: "H", 4: "I", 8: "Q"}


@dataclass(eq=False)
class _Block:
    start: int
    end: int


@dataclass(eq=False)
class _Level:
    """The function itself or a loop region ``[start, end)``: a dispatch level with its items."""

    start: int
    end: int
    parent: _Level | None = None
    items: list[_Block | _Level] = field(default_factory=list)
    depth: int = 0

    @property
    def simple(self) -> bool:
        """One block and nothing else: no ``pc`` dispatch needed inside."""
        return len(self.items) == 1 and isinstance(self.items[0], _Block)

    def contains(self, slot: int) -> bool:
        return self.start <= slot < self.end


def _u64(v: int) -> str:
    return f"{v & M64:#x}"


class _FunctionWriter:
    """Source for one BPF function ``[start, end)``."""

    def __init__(self, tr: _Translator, start: int, end: int) -> None:
        self.tr = tr
        self.layout = tr.layout
        self.start = start
        self.end = end
        self.lines: list[str] = []
        self.slots = [(i, ins) for i in range(start, end) if (ins := self.layout.slots[i]) is not None]
        self.pos_of = {pc: i for i, (pc, _) in enumerate(self.slots)}
        self.writes_r10 = any(10 in written_registers(ins) for _, ins in self.slots)
        self.uses_r10 = self.layout.uses_frame[start]
        self.has_may_goto = any(ins.code == 0xE5 for _, ins in self.slots)
        # (base register, "r"/"w") whose region-table entry is in locals b<N><t>, l<N><t>, h<N><t> on
        # the current straight-line path; reset at every block start and after every call
        self.cached: set[tuple[int, str]] = set()

    # -- control-flow structure ---------------------------------------------------------------------
    def _target(self, pc: int, insn: Insn, info: OpInfo) -> int:
        if info.kind is Kind.JA and info.cls == InsnClass.JMP32:
            return pc + 1 + sext(insn.imm, 32)
        return pc + 1 + insn.off

    def _valid_target(self, t: int) -> bool:
        return self.start <= t < self.end and self.layout.slots[t] is not None

    def structure(self) -> _Level:
        edges: list[tuple[int, int]] = []
        leaders = {self.start}
        for pc, insn in self.slots:
            info = OPCODES.get(insn.code)
            if info is not None and info.kind in (Kind.JA, Kind.JCOND, Kind.MAY_GOTO):
                t = self._target(pc, insn, info)
                if self._valid_target(t):
                    leaders.add(t)
                    edges.append((pc, t))
        order = sorted(leaders)
        blocks = [_Block(s, order[i + 1] if i + 1 < len(order) else self.end) for i, s in enumerate(order)]
        block_end = {b.start: b.end for b in blocks}

        def end_of_block(slot: int) -> int:
            return min(e for s, e in block_end.items() if s <= slot < e)

        candidates: list[tuple[int, int]] = []
        for h in order:
            back = [p for p, t in edges if t == h and p >= h]
            if not back:
                continue
            candidates.append((h, end_of_block(max(back))))
        root = _Level(self.start, self.end)
        accepted: list[_Level] = []
        for h, e in sorted(candidates, key=lambda c: (c[0], -c[1])):
            parent = root
            ok = True
            for a in accepted:
                if a.start <= h and e <= a.end:
                    if a.depth >= parent.depth:
                        parent = a
                elif not (e <= a.start or a.end <= h):
                    ok = False
                    break
            if ok and parent.depth < _MAX_LOOP_NESTING:
                level = _Level(h, e, parent, depth=parent.depth + 1)
                parent.items.append(level)
                accepted.append(level)
        for b in blocks:
            owner = root
            for a in accepted:
                if a.contains(b.start) and a.depth > owner.depth:
                    owner = a
            owner.items.append(b)
        for lv in [root, *accepted]:
            lv.items.sort(key=lambda it: it.start)
        return root

    # -- emission -------------------------------------------------------------------------------------
    def emit(self, indent: int, text: str) -> None:
        self.lines.append("    " * indent + text)

    def write(self) -> list[str]:
        name = f"F{self.start}"
        self.emit(0, f"def {name}(ex, depth, r1=0, r2=0, r3=0, r4=0, r5=0, r0=0, r6=0, r7=0, r8=0, r9=0):")
        if self.uses_r10:
            self.emit(1, "stk, r10 = ex.enter_frame(depth)")
        else:
            self.emit(1, "ex.depth = depth")
        self.emit(1, "left = ex.left")
        self.emit(1, "n = 0")
        if self.has_may_goto:
            self.emit(1, "mg = ex.may_goto_init")
        root = self.structure()
        if not root.simple:
            self.emit(1, f"pc = {self.start}")
        if len(root.items) == 1:
            self.emit_item(root.items[0], root, 1)  # no dispatch at function level
        else:
            self.emit_level_body(root, 1)
        return self.lines

    def emit_level_body(self, lv: _Level, indent: int) -> None:
        """``while True:`` with a guard per item (or none for a one-block loop)."""
        self.emit(indent, "while True:")
        if lv.simple:
            self.emit_block(lv.items[0], lv, indent + 1)  # type: ignore[arg-type]
            return
        for item in lv.items:
            if isinstance(item, _Level):  # a loop may be entered at any of its blocks
                self.emit(indent + 1, f"if {item.start} <= pc < {item.end}:")
            else:
                self.emit(indent + 1, f"if pc == {item.start}:")
            self.emit_item(item, lv, indent + 2)
        if lv.parent is not None:
            self.emit(indent + 1, f"if pc < {lv.start} or pc >= {lv.end}:")
            self.emit(indent + 2, "break")

    def emit_item(self, item: _Block | _Level, lv: _Level, indent: int) -> None:
        if isinstance(item, _Level):
            self.emit_level_body(item, indent)
        else:
            self.emit_block(item, lv, indent)

    def goto(self, t: int, p: int, lv: _Level, indent: int, *, escaping: bool) -> None:
        """Transfer control from the instruction at ``p`` to ``t``."""
        if not self._valid_target(t):
            err = X.err_jump_range(p, t) if not self.start <= t < self.end else X.err_jump_lddw(p, t)
            self.emit(indent, f"raise {self.tr.error(err)}()")
            return
        if t <= p:
            self.emit(indent, f"if n > left: raise ex.limit_exceeded({p})")
        if lv.contains(t):
            if lv.simple:
                self.emit(indent, "continue")  # the only leader of a one-block loop is its header
            elif escaping or t <= p:
                self.emit(indent, f"pc = {t}")
                self.emit(indent, "continue")
            else:
                self.emit(indent, f"pc = {t}")  # later guards of this level pick it up
        else:
            self.emit(indent, f"pc = {t}")
            self.emit(indent, "break")

    def fall(self, p: int, nxt: int, lv: _Level, indent: int) -> None:
        """Sequential flow from the instruction at ``p`` into the next block at ``nxt``."""
        if nxt >= self.end:
            self.emit(indent, f"raise {self.tr.error(X.err_fallthrough(p))}()")
        else:
            self.goto(nxt, p, lv, indent, escaping=False)

    def segment_size(self, pos: int, end: int) -> int:
        count = 0
        for i in range(pos, len(self.slots)):
            pc, insn = self.slots[i]
            if pc >= end:
                break
            count += 1
            info = OPCODES.get(insn.code)
            if info is None or info.kind in _SEGMENT_ENDS:
                break
        return count

    def emit_block(self, block: _Block, lv: _Level, indent: int) -> None:
        pos = self.pos_of[block.start]
        segment = True
        nested = 0
        self.cached = set()
        last_pc = block.start
        skip = False
        for i in range(pos, len(self.slots)):
            pc, insn = self.slots[i]
            if pc >= block.end:
                break
            last_pc = pc
            if skip:  # the second half of a folded pair
                skip = False
                self.cached -= {(insn.dst, "r"), (insn.dst, "w")}
                continue
            if segment:
                self.emit(indent, f"n += {self.segment_size(i, block.end)}")
                segment = False
            nxt = pc + insn.width
            info = OPCODES.get(insn.code)
            if info is None:
                self.emit(indent, f"raise {self.tr.error(X.err_unknown_opcode(pc, insn.code))}()")
                return
            bad = self.tr.bad_register(pc, insn, info)
            if bad is not None:
                self.emit(indent, f"raise {self.tr.error(bad)}()")
                return
            kind = info.kind
            if kind is Kind.JA:
                # nothing of this block follows a ja, so the later guards of the level may take over
                self.goto(self._target(pc, insn, info), pc, lv, indent, escaping=False)
                return
            if kind is Kind.EXIT:
                self.emit_exit(pc, indent)
                return
            if kind is Kind.JCOND:
                t = self._target(pc, insn, info)
                cond = self.tr.condition(insn, info)
                if nxt == block.end and self._both_forward(pc, t, nxt, lv):
                    self.emit(indent, f"pc = {t} if {cond} else {nxt}")
                    return
                if t == block.end and self._both_forward(pc, t, t, lv) and nested < _MAX_IF_NESTING:
                    # `if cond goto <end of this block>`: the rest of the block becomes the else branch
                    self.emit(indent, f"if {cond}:")
                    self.emit(indent + 1, f"pc = {t}")
                    self.emit(indent, "else:")
                    indent += 1
                    nested += 1
                    segment = True
                    continue
                self.emit(indent, f"if {cond}:")
                self.goto(t, pc, lv, indent + 1, escaping=True)
                segment = True
                continue
            if kind is Kind.MAY_GOTO:
                self.emit(indent, "if not mg:")
                self.goto(self._target(pc, insn, info), pc, lv, indent + 1, escaping=True)
                self.emit(indent, "mg -= 1")
                segment = True
                continue
            if kind in (Kind.CALL, Kind.CALLX):
                if not self.emit_call(pc, insn, info, indent):
                    return
                segment = True
                self.cached = set()  # a helper or callee may have changed the regions
                continue
            if kind in (Kind.LD_ABS, Kind.LD_IND):
                self.emit_ld_abs(pc, insn, info, indent)
                segment = True
                self.cached = set()
                continue
            if i + 1 < len(self.slots) and self.slots[i + 1][0] < block.end:
                folded = _fold_mov(insn, self.slots[i + 1][1])
                if folded is not None:  # `rX = rY; rX op= z` as one statement: `rX = rY op z`
                    self.emit(indent, folded)
                    skip = True
                    continue
            self.tr.emit_simple(self, pc, insn, info, indent)
            for reg in written_registers(insn):
                self.cached -= {(reg, "r"), (reg, "w")}
        # sequential flow off the end of the block
        last = self.layout.slots[last_pc]
        assert last is not None
        self.fall(last_pc, last_pc + last.width, lv, indent)

    def _both_forward(self, p: int, t: int, nxt: int, lv: _Level) -> bool:
        return (
            not lv.simple
            and self._valid_target(t)
            and t > p
            and lv.contains(t)
            and nxt < self.end
            and lv.contains(nxt)
        )

    def emit_exit(self, pc: int, indent: int) -> None:
        self.emit(indent, f"if n > left: raise ex.limit_exceeded({pc})")
        self.emit(indent, "ex.left = left - n")
        self.emit(indent, "ex.leave_frame(depth)")
        self.emit(indent, "return r0")

    def emit_call(self, pc: int, insn: Insn, info: OpInfo, indent: int) -> bool:
        """A helper, bpf-to-bpf or kfunc call; returns False if control cannot continue after it."""
        tr = self.tr
        if info.kind is Kind.CALL and insn.src == PseudoCall.KFUNC:
            self.emit(indent, f"raise {tr.error(X.err_kfunc(pc, insn.imm))}()")
            return False
        if info.kind is Kind.CALL and insn.src not in (PseudoCall.HELPER, PseudoCall.CALL):
            self.emit(indent, f"raise {tr.error(ExecutionError(f'call with invalid src_reg {insn.src}', pc=pc))}()")
            return False
        if info.kind is Kind.CALL and insn.src == PseudoCall.CALL:
            target = pc + 1 + sext(insn.imm, 32)
            if target not in self.layout.func_end:
                self.emit(indent, f"raise {tr.error(X.err_call_target(pc, target))}()")
                return False
            self.emit(indent, f"if n > left: raise ex.limit_exceeded({pc})")
            self.emit(indent, f"if depth >= {MAX_CALL_FRAMES - 1}: raise {tr.error(X.err_too_deep(pc))}()")
            self.emit(indent, "ex.left = left - n")
            self.emit(indent, f"r0 = F{target}(ex, depth + 1, r1, r2, r3, r4, r5)")
        else:
            if info.kind is Kind.CALL:
                helper_id = insn.imm & 0xFFFFFFFF
                if helper_id not in tr.helpers:
                    self.emit(indent, f"raise {tr.error(X.err_unknown_helper(pc, helper_id))}()")
                    return False
                call = f"r0 = ({tr.helper_name(helper_id)}(ex, r1, r2, r3, r4, r5) or 0) & {_M}"
                unwind = helper_id == tr.helpers.unwind_id
            else:
                call = f"r0 = CALLX(ex, r{insn.dst}, r1, r2, r3, r4, r5)"
                unwind = False
            self.emit(indent, f"if n > left: raise ex.limit_exceeded({pc})")
            self.emit(indent, f"ex.pc = {pc}")
            self.emit(indent, "ex.left = left - n")
            self.emit(indent, "try:")
            self.emit(indent + 1, call)
            self.emit(indent, "except TailCall as t:")
            self.emit(indent + 1, "f = TAIL(ex, t)")
            self.emit(indent + 1, "if f is not None:")
            self.emit(indent + 2, "return f(ex, depth, r1, r2, r3, r4, r5, r0, r6, r7, r8, r9)")
            if unwind:
                self.emit(indent, "else:")
                self.emit(indent + 1, "if r0 == 0: raise ProgramExit(0)")
        self.emit(indent, "left = ex.left")
        self.emit(indent, "n = 0")
        return True

    def emit_ld_abs(self, pc: int, insn: Insn, info: OpInfo, indent: int) -> None:
        size = info.size.bytes  # type: ignore[union-attr]
        imm = sext(insn.imm, 32) & M64
        offset = f"(r{insn.src} + {_u64(imm)}) & {_M}" if info.kind is Kind.LD_IND else _u64(imm)
        self.emit(indent, f"r2 = {offset}")  # before r1 changes: the offset register may be r1
        self.emit(indent, "r1 = r6")
        self.emit(indent, f"v = LDABS(ex, r2, {size}, {pc})")
        self.emit(indent, "if v is None:")
        self.emit(indent + 1, "r0 = 0")
        self.emit_exit(pc, indent + 1)
        self.emit(indent, "r0 = v")


class _Translator:
    """Builds the module source for a whole program and the namespace it runs in."""

    def __init__(self, engine: TranslatedProgram) -> None:
        self.engine = engine
        self.layout = engine.layout
        self.helpers = engine.helpers
        self.errors: list[Callable[[], Exception]] = []
        self.consts: dict[str, Any] = {}

    # -- names in the generated module --------------------------------------------------------------
    def error(self, exc: Exception) -> str:
        """A global that builds ``exc`` afresh (a template copied per raise)."""
        cls, args, state = type(exc), exc.args, dict(vars(exc))

        def make() -> Exception:
            e = cls.__new__(cls)
            e.args = args
            e.__dict__.update(state)
            return e

        self.errors.append(make)
        return f"E{len(self.errors) - 1}"

    def helper_name(self, helper_id: int) -> str:
        name = f"H{helper_id}"
        self.consts[name] = self.helpers[helper_id]
        return name

    def bad_register(self, pc: int, insn: Insn, info: OpInfo) -> ExecutionError | None:
        kind = info.kind
        uses_src = (info.source is Source.X and kind in (Kind.ALU, Kind.JCOND)) or kind in (
            Kind.LDX, Kind.STX, Kind.ATOMIC, Kind.LD_IND)
        uses_dst = kind in (Kind.ALU, Kind.END, Kind.JCOND, Kind.CALLX, Kind.LDDW, Kind.LDX, Kind.ST, Kind.STX,
                            Kind.ATOMIC)
        if insn.dst > 10 and uses_dst:
            return X.err_bad_register(pc, insn.dst)
        if insn.src > 10 and uses_src:
            return X.err_bad_register(pc, insn.src)
        return None

    # -- expressions ------------------------------------------------------------------------------------
    def condition(self, insn: Insn, info: OpInfo) -> str:
        is64 = info.cls == InsnClass.JMP
        d = f"r{insn.dst}" if is64 else f"(r{insn.dst} & {_W})"
        if info.source is Source.X:
            s = f"r{insn.src}" if is64 else f"(r{insn.src} & {_W})"
            const = None
        else:
            const = sext(insn.imm, 32) & (M64 if is64 else M32)
            s = f"{const:#x}"
        op = info.jmp_op
        if op is JmpOp.JSET:
            return f"{d} & {s}"
        sym, signed = _COND_OPS[op]  # type: ignore[index]
        if not signed:
            return f"{d} {sym} {s}"
        bias = _S64 if is64 else _S32
        rhs = f"{const ^ bias:#x}" if const is not None else f"({s} ^ {bias:#x})"
        return f"({d} ^ {bias:#x}) {sym} {rhs}"

    # -- straight-line instructions ----------------------------------------------------------------------
    def emit_simple(self, fw: _FunctionWriter, pc: int, insn: Insn, info: OpInfo, indent: int) -> None:
        kind = info.kind
        if kind is Kind.ALU:
            for line in self.alu(insn, info):
                fw.emit(indent, line)
        elif kind is Kind.END:
            fw.emit(indent, self.end(pc, insn, info))
        elif kind is Kind.LDDW:
            value = self.layout.lddw[pc]
            if value.error is not None:
                fw.emit(indent, f"raise {self.error(ExecutionError(value.error, pc=pc))}()")
            else:
                fw.emit(indent, f"r{insn.dst} = {value.value:#x}")
        elif kind in (Kind.LDX, Kind.ST, Kind.STX, Kind.ATOMIC):
            for line in self.memory(fw, pc, insn, info):
                fw.emit(indent, line)
        else:  # pragma: no cover - every other kind is handled by the function writer
            raise AssertionError(kind)

    def alu(self, insn: Insn, info: OpInfo) -> list[str]:
        is64 = info.cls == InsnClass.ALU64
        mask = _M if is64 else _W
        bits = 64 if is64 else 32
        d = f"r{insn.dst}"
        op = info.alu_op
        off = insn.off
        if info.source is Source.X:
            s = f"r{insn.src}"
            imm = None
        else:
            imm = sext(insn.imm, 32) & (M64 if is64 else M32)
            s = f"{imm:#x}"
        standard_off = (
            off == 0
            or (op in (AluOp.DIV, AluOp.MOD) and off == 1)
            or (op is AluOp.MOV and imm is None and off in ((8, 16, 32) if is64 else (8, 16)))
        )
        if not standard_off:  # fields a strict decoder rejects: defer to the interpreter's definition
            name = f"ALU_{op.name}"  # type: ignore[union-attr]
            self.consts[name] = ALU_FUNCS[op]  # type: ignore[index]
            return [f"{d} = {name}({d} & {mask}, {s} & {mask}, {bits}, {off})"]
        sm = s if (is64 or imm is not None) else f"({s} & {_W})"  # src truncated to the width
        dm = d if is64 else f"({d} & {_W})"
        if op in (AluOp.ADD, AluOp.SUB):
            sym = "+" if op is AluOp.ADD else "-"
            if imm is not None and sext(insn.imm, 32) < 0:  # small constants keep Python ints small
                sym, s = ("-" if sym == "+" else "+"), f"{-sext(insn.imm, 32):#x}"
            return [f"{d} = ({d} {sym} {s}) & {mask}"]
        if op is AluOp.MUL:
            return [f"{d} = ({d} * {s}) & {mask}"]
        if op is AluOp.OR:
            return [f"{d} |= {s}"] if is64 else [f"{d} = ({d} | {s}) & {_W}"]
        if op is AluOp.AND:
            return [f"{d} &= {s}"] if is64 else [f"{d} &= {sm}" if imm is not None else f"{d} &= {s} & {_W}"]
        if op is AluOp.XOR:
            return [f"{d} ^= {s}"] if is64 else [f"{d} = ({d} ^ {s}) & {_W}"]
        if op is AluOp.LSH:
            amount = f"{imm & (bits - 1)}" if imm is not None else f"({s} & {bits - 1})"
            return [f"{d} = ({d} << {amount}) & {mask}"]
        if op is AluOp.RSH:
            amount = f"{imm & (bits - 1)}" if imm is not None else f"({s} & {bits - 1})"
            return [f"{d} = {dm} >> {amount}"]
        if op is AluOp.ARSH:
            amount = f"{imm & (bits - 1)}" if imm is not None else f"({s} & {bits - 1})"
            bias = _S64 if is64 else _S32
            return [f"{d} = ((({dm} ^ {bias:#x}) - {bias:#x}) >> {amount}) & {mask}"]
        if op is AluOp.NEG:
            return [f"{d} = -{d} & {mask}"]
        if op is AluOp.MOV:
            if off:
                sign = 1 << (off - 1)
                return [f"{d} = ((({s} & {(1 << off) - 1:#x}) ^ {sign:#x}) - {sign:#x}) & {mask}"]
            return [f"{d} = {sm}"]
        if op is AluOp.DIV:
            if off == 1:
                self.consts["SDIV"] = sdiv
                return [f"{d} = SDIV({d}, {s}, {bits})"]
            if imm is not None:
                return [f"{d} = 0"] if imm == 0 else [f"{d} = {dm} // {s}"]
            return [f"t = {sm}", f"{d} = {dm} // t if t else 0"]
        if op is AluOp.MOD:
            if off == 1:
                self.consts["SMOD"] = smod
                return [f"{d} = SMOD({d}, {s}, {bits})"]
            if imm is not None:
                return [f"{d} = {dm}"] if imm == 0 else [f"{d} = {dm} % {s}"]
            return [f"t = {sm}", f"{d} = {dm} % t if t else {dm}"]
        raise AssertionError(op)  # pragma: no cover

    def end(self, pc: int, insn: Insn, info: OpInfo) -> str:
        d = f"r{insn.dst}"
        width = insn.imm
        if width not in (16, 32, 64):
            return f"raise {self.error(X.err_bad_endian(pc, width))}()"
        if info.cls == InsnClass.ALU and info.source is Source.K:  # le: truncate
            return f"{d} &= {(1 << width) - 1:#x}" if width < 64 else "pass"
        if width == 16:
            return f"{d} = (({d} & 0xff) << 8) | (({d} >> 8) & 0xff)"
        self.consts["BSWAP"] = bswap
        return f"{d} = BSWAP({d}, {width})"

    def memory(self, fw: _FunctionWriter, pc: int, insn: Insn, info: OpInfo) -> list[str]:
        size = info.size.bytes  # type: ignore[union-attr]
        code = _STRUCT_CODES[size]
        kind = info.kind
        base = insn.src if kind is Kind.LDX else insn.dst
        off = insn.off
        write = kind is not Kind.LDX
        value = ""
        if kind is Kind.ST:
            value = f"{sext(insn.imm, 32) & ((1 << (8 * size)) - 1):#x}"
        elif kind is Kind.STX:
            value = f"r{insn.src}" if size == 8 else f"r{insn.src} & {(1 << (8 * size)) - 1:#x}"
        signed = info.mode is Mode.MEMSX
        unpack = f"{'S' if signed else 'U'}{code}"
        self.consts[unpack] = struct.Struct("<" + (code.lower() if signed else code)).unpack_from
        self.consts[f"P{code}"] = struct.Struct("<" + code).pack_into
        self.consts[f"U{code}"] = struct.Struct("<" + code).unpack_from
        load_value = f"{unpack}({{buf}}, {{idx}})[0]" + (f" & {_M}" if signed else "")

        if kind is not Kind.ATOMIC and base == 10 and not fw.writes_r10 and off >= -STACK_SIZE and off + size <= 0:
            idx = f"{STACK_SIZE + off}"
            if kind is Kind.LDX:
                return [f"r{insn.dst} = " + load_value.format(buf="stk", idx=idx)]
            return [f"P{code}(stk, {idx}, {value})"]

        # The region of the base register, looked up once per straight-line path (see fw.cached).
        t = "w" if write else "r"
        b, lo, hi = f"b{base}{t}", f"l{base}{t}", f"h{base}{t}"
        lines = []
        if (base, t) not in fw.cached:
            lines.append(f"{b}, {lo}, {hi} = {'WT' if write else 'RT'}[r{base} >> 32 & {ID_MASK:#x}]")
            fw.cached.add((base, t))
        if off:
            sign = "+" if off > 0 else "-"
            lines.append(f"a = (r{base} {sign} {abs(off):#x}) & {_M}")
            a = "a"
        else:
            a = f"r{base}"
        fits = f"{lo} <= {a} and {a} + {size} <= {hi}"
        if kind is Kind.LDX:
            fast = load_value.format(buf=b, idx=f"{a} & {_W}")
            lines.append(f"r{insn.dst} = {fast} if {fits} else LOAD(ex, {pc}, {a}, {size}, {int(signed)})")
            return lines
        if kind in (Kind.ST, Kind.STX):
            lines.append(f"P{code}({b}, {a} & {_W}, {value}) if {fits} else STORE(ex, {pc}, {a}, {size}, {value})")
            return lines
        # atomics: a read-modify-write of one checked location
        try:
            op = AtomicOp(insn.imm)
        except ValueError:
            return [f"raise {self.error(X.err_bad_atomic(pc, insn.imm))}()"]
        width_mask = f"{(1 << (8 * size)) - 1:#x}"
        s = f"r{insn.src}"
        lines += [f"b, o = ({b}, {a} & {_W}) if {fits} else RESOLVE(ex, {pc}, {a}, {size})", f"v = U{code}(b, o)[0]"]
        if op is AtomicOp.CMPXCHG:
            lines += [f"if v == r0 & {width_mask}: P{code}(b, o, {s} & {width_mask})", "r0 = v"]
            return lines
        new = {
            AtomicOp.ADD: f"(v + {s}) & {width_mask}",
            AtomicOp.OR: f"v | ({s} & {width_mask})",
            AtomicOp.AND: f"v & {s}",
            AtomicOp.XOR: f"v ^ ({s} & {width_mask})",
            AtomicOp.XCHG: f"{s} & {width_mask}",
        }[op.base]
        lines.append(f"P{code}(b, o, {new})")
        if op.fetch:
            lines.append(f"{s} = v")
        return lines

    # -- the module ------------------------------------------------------------------------------------
    def build(self) -> tuple[str, dict[str, Any]]:
        layout = self.layout
        chunks: list[str] = []
        for start in layout.func_starts:
            chunks.extend(_FunctionWriter(self, start, layout.func_end[start]).write())
            chunks.append("")
        source = "\n".join(chunks) + "\n"
        space = self.engine.space
        ns: dict[str, Any] = {
            "__name__": "pybpf.vm.translated",
            "RT": space.rtab,
            "WT": space.wtab,
            "LOAD": _load,
            "STORE": _store,
            "RESOLVE": _resolve,
            "TAIL": _tail,
            "LDABS": ld_abs,
            "CALLX": self._callx,
            "TailCall": TailCall,
            "ProgramExit": ProgramExit,
        }
        ns.update(self.consts)
        for i, make in enumerate(self.errors):
            ns[f"E{i}"] = make
        return source, ns

    def _callx(self, ex: Execution, helper_id: int, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
        fn = self.helpers.get(helper_id)
        if fn is None:
            raise X.err_unknown_helper(ex.pc, helper_id)
        r0 = (fn(ex, r1, r2, r3, r4, r5) or 0) & M64
        if r0 == 0 and helper_id == self.helpers.unwind_id:
            raise ProgramExit(0)
        return r0


_FOLDABLE = {0x0F: "+", 0x1F: "-", 0x2F: "*", 0x4F: "|", 0x5F: "&", 0xAF: "^",
             0x07: "+", 0x17: "-", 0x27: "*", 0x47: "|", 0x57: "&", 0xA7: "^", 0x67: "<<", 0x77: ">>"}


def _fold_mov(mov: Insn, nxt: Insn) -> str | None:
    """``rX = rY`` followed by a 64-bit ``rX op= z``, as one Python statement (or None)."""
    if mov.code != 0xBF or mov.off or mov.dst > 9 or mov.src > 10 or nxt.dst != mov.dst or nxt.off:
        return None
    sym = _FOLDABLE.get(nxt.code)
    if sym is None or (nxt.code & 0x08 and nxt.src > 10):
        return None
    x, y = f"r{mov.dst}", f"r{mov.src}"
    if nxt.code & 0x08:  # register source (which may be rX itself, i.e. still rY)
        z = y if nxt.src == mov.dst else f"r{nxt.src}"
    else:
        imm = sext(nxt.imm, 32)
        if sym in ("<<", ">>"):
            z = str(imm & 63)
        elif sym in ("+", "-") and imm < 0:
            sym, z = ("-" if sym == "+" else "+"), f"{-imm:#x}"
        else:
            z = f"{imm & M64:#x}"
    if sym in ("<<", ">>") and nxt.code & 0x08:
        z = f"({z} & 63)"
    if sym in ("|", "&", "^", ">>"):
        return f"{x} = {y} {sym} {z}"
    return f"{x} = ({y} {sym} {z}) & {_M}"


def _load(ex: Execution, pc: int, address: int, size: int, signed: int) -> int:
    """The slow path of an inline load: another region than the cached one, or a fault."""
    return ex.space.load(address, size, signed=bool(signed), pc=pc) & M64


def _store(ex: Execution, pc: int, address: int, size: int, value: int) -> None:
    ex.space.store(address, size, value, pc=pc)


def _resolve(ex: Execution, pc: int, address: int, size: int) -> tuple[memoryview, int]:
    return ex.space.resolve(address, size, True, pc)


def _tail(ex: Execution, t: TailCall) -> Callable[..., int] | None:
    """The target's main function for a tail call, or None once the limit of 33 is reached."""
    if ex.tail_call_cnt >= MAX_TAIL_CALL_CNT:
        return None
    ex.tail_call_cnt += 1
    assert ex.engine is not None
    target = ex.engine.tail_target(t.program)
    assert isinstance(target, TranslatedProgram)
    return target.main


class TranslatedProgram(Engine):
    """A program translated to Python; construct and ``run()`` as any :class:`~pybpf.vm.engine.Engine`."""

    tier = "translate"
    source: str
    functions: dict[int, Callable[..., int]]
    main: Callable[..., int]

    def _setup(self) -> None:
        source, ns = _Translator(self).build()
        filename = f"<bpf-translate {self.name or 'prog'} #{next(_COUNTER)}>"
        try:
            code = compile(source, filename, "exec")
        except (SyntaxError, RecursionError, MemoryError) as e:  # pragma: no cover - a translator bug
            raise ExecutionError(f"translated program does not compile: {e}") from e
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        _RECENT_SOURCES.append(filename)
        while len(_RECENT_SOURCES) > 64:  # keep tracebacks readable without growing forever
            linecache.cache.pop(_RECENT_SOURCES.popleft(), None)
        exec(code, ns)
        self.source = source
        self.functions = {start: ns[f"F{start}"] for start in self.layout.func_starts}
        self.main = self.functions[0]

    def _run(self, ex: Execution, args: tuple[int, int, int, int, int]) -> int:
        return self.main(ex, 0, *args)

    def call_function(self, ex: Execution, slot: int, args: tuple[int, ...], depth: int) -> int:
        fn = self.functions.get(slot)
        if fn is None:
            raise X.err_call_target(ex.pc, slot)
        if depth >= MAX_CALL_FRAMES:
            raise X.err_too_deep(ex.pc)
        return fn(ex, depth, *[a & M64 for a in args])
