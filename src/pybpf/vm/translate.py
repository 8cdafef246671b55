"""The fast tier: BPF translated into Python source, one Python function per BPF function.

Same semantics and same faults as the reference interpreter (:mod:`pybpf.vm.interp`), which the
differential tests check on random programs and on the conformance suites. What makes it fast:

* registers are Python locals (``r0``..``r10``) holding unsigned 64-bit ints; results are masked only
  where an operation can leave the range (``&``/``|``/``^``/``>>`` of in-range values need nothing, a
  64-bit sum or difference wraps at most once, so a comparison replaces the mask);
* control flow is recovered once per function: basic blocks become ``if pc == N:`` items of a
  ``while True:`` dispatch loop, and every loop (the slots from the target of a backward jump to the
  end of the block holding its last backward jump, properly nested) gets its own nested
  ``while True:`` guarded by ``if start <= pc < end:``, so a back edge only re-dispatches among the
  loop's own blocks; a forward conditional jump whose target is only reached from the block before
  it becomes an ``if not cond:`` around the code it skips (the target is *absorbed*), so an if/else
  inside a loop needs no dispatch, and a loop that is one block needs none at all;
* memory accesses go through *region guesses* (:meth:`_FunctionWriter.emit_memory`): per pointer
  (named after the register it was derived from in its block, ``r4 = r1; r4 += r2`` -> r1) the
  function keeps the address space's table entry of the last region it touched in locals — base,
  window, store window, the byte buffer and its u16/u32/u64 views. A run of loads or stores through
  one base register is one check of its whole extent against the guess, then plain indexing (typed
  views when aligned); a miss looks the region up once and checks again; what still does not fit
  takes the exact slow path, access by access, raising the interpreter's fault at the right pc.
  Calls forget every guess, since a helper may resize or remove regions. ``[r10 + const]`` in a
  function that never writes r10 indexes the frame directly, checked at translation time;
* the instruction budget is kept in a local counter charged once per straight-line segment and
  checked at backward jumps, calls and exits.

The generated source is kept (``TranslatedProgram.source``) and registered with ``linecache``, so a
traceback through translated code shows the Python that ran.
"""

from __future__ import annotations

import itertools
import linecache
import struct
import sys
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pybpf.errors import ExecutionError
from pybpf.isa.insn import Insn
from pybpf.isa.opcodes import OPCODES, AluOp, AtomicOp, InsnClass, JmpOp, Kind, Mode, OpInfo, PseudoCall, Source
from pybpf.vm import execution as X
from pybpf.vm.engine import Engine, ld_abs
from pybpf.vm.execution import MAX_CALL_FRAMES, MAX_RUNTIME_FRAMES, MAX_TAIL_CALL_CNT, STACK_SIZE, Execution
from pybpf.vm.helpers import ProgramExit, TailCall
from pybpf.vm.memory import ID_MASK
from pybpf.vm.program import bad_register, written_registers
from pybpf.vm.semantics import ALU_FUNCS, M32, M64, bswap, is_percpu_mov, sdiv, sext, smod

__all__ = ["TranslatedProgram"]

_MAX_LOOP_NESTING = 10  # CPython allows 20 statically nested blocks (loops, try); keep well below
# Nested `if`s made from forward jumps, per block: absorbed targets' bodies, and else branches of
# jumps to the block's end. With 10 loop levels (3 indents each) the deepest line stays well under
# the parser's 100 levels of indentation.
_MAX_IF_NESTING = 16
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
_TYPED_VIEWS = sys.byteorder == "little"  # memory.Region.views exist (native order = BPF's)
_PROLOGUE = "# prologue"  # placeholders filled once a function's body is written
_FORGET_GUESSES = "# forget the region guesses"
_NO_WINDOW = 1 << 80  # a guess's start beyond every offset an access can compute: it never fits


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


@dataclass(frozen=True, slots=True)
class _Access:
    """One load, store or atomic, as the memory code generator needs it."""

    pc: int
    insn: Insn
    base: int
    off: int
    size: int
    write: bool
    signed: bool
    atomic: bool

    @classmethod
    def of(cls, pc: int, insn: Insn) -> _Access:
        info = insn.info
        assert info is not None and info.size is not None
        kind = info.kind
        return cls(pc, insn, insn.src if kind is Kind.LDX else insn.dst, insn.off, info.size.bytes,
                   kind is not Kind.LDX, info.mode is Mode.MEMSX, kind is Kind.ATOMIC)


_VIEW_NAMES = {2: "h", 4: "i", 8: "q"}  # the u16/u32/u64 views of a region guess (memory.TableEntry)
_MAX_GROUP = 8


def _typed_view_ok(a: _Access) -> bool:
    """Whether an access can use a typed view once its base offset is aligned to its size."""
    return _TYPED_VIEWS and a.size > 1 and not a.signed and a.off % a.size == 0


def _guess_names(g: str) -> str:
    """The locals of region guess ``g``, in :data:`pybpf.vm.memory.TableEntry` order."""
    return f"b{g}, G{g}, s{g}, e{g}, w{g}, h{g}, i{g}, q{g}"


def _plus(expr: str, k: int) -> str:
    return expr if k == 0 else f"{expr} + {k}" if k > 0 else f"{expr} - {-k}"


def _address(a: _Access) -> str:
    """The access's address as the interpreter computes it (wrapping at 2**64)."""
    return f"r{a.base}" if a.off == 0 else f"({_plus(f'r{a.base}', a.off)}) & {_M}"


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
        self.has_may_goto = any(ins.info is not None and ins.info.kind is Kind.MAY_GOTO for _, ins in self.slots)
        self.guesses: set[str] = set()
        """Region guesses the function's accesses use (``"1"``: through pointers derived from r1);
        see :meth:`emit_memory`."""
        # Straight-line facts, valid from one instruction to the next inside a block:
        self.o_for: tuple[int, str] | None = None
        """(base register, guess) for which the local ``o`` holds ``base - G<guess>``."""
        self.shifted: tuple[int, int, int, bool, frozenset[int]] | None = None
        """What the last group through ``o`` left in ``o1``/``o2``/``o3`` (``o >> k``): its alignment,
        extent ``[lo, hi)``, whether it stored, and the shifts — valid wherever a group's own checks
        imply that group's (see :meth:`emit_in_bounds`)."""
        self.widths: dict[int, int] = {}
        """Registers known to hold fewer than ``8 * width`` significant bits (stores need no mask)."""
        self.uses_frame_views = False
        self.absorbed: set[int] = set()
        """Jump targets emitted inside the block before them (see :meth:`structure`)."""
        self.simple_ifs: dict[int, int] = {}
        """Jumps to an absorbed target (its only in-edge) over plain code: the code after the target is
        counted with the code before the jump (see :meth:`segment_size`)."""

    # -- control-flow structure ---------------------------------------------------------------------
    def _target(self, pc: int, insn: Insn, info: OpInfo) -> int:
        if info.kind is Kind.JA and info.cls == InsnClass.JMP32:
            return pc + 1 + sext(insn.imm, 32)
        return pc + 1 + insn.off

    def _valid_target(self, t: int) -> bool:
        return self.start <= t < self.end and self.layout.slots[t] is not None

    def structure(self) -> _Level:
        """Blocks and loop levels of the function (see the module docstring).

        A jump target whose only in-edges are forward conditional jumps from the block just before it
        (and the fall-through) is not made a block of its own but *absorbed*: each such jump opens an
        ``if not cond:`` around the code up to the target, so the loop it belongs to needs no ``pc``
        dispatch for it (:attr:`absorbed`).
        """
        edges: list[tuple[int, int, Kind]] = []
        leaders = {self.start}
        for pc, insn in self.slots:
            info = OPCODES.get(insn.code)
            if info is not None and info.kind in (Kind.JA, Kind.JCOND, Kind.MAY_GOTO):
                t = self._target(pc, insn, info)
                if self._valid_target(t):
                    leaders.add(t)
                    edges.append((pc, t, info.kind))
        order = sorted(leaders)
        ends = {s: (order[i + 1] if i + 1 < len(order) else self.end) for i, s in enumerate(order)}

        def end_of_block(slot: int) -> int:
            return min(e for s, e in ends.items() if s <= slot < e)

        candidates: list[tuple[int, int]] = []
        for h in order:
            back = [p for p, t, _ in edges if t == h and p >= h]
            if back:
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

        def owner_of(slot: int) -> _Level:
            owner = root
            for a in accepted:
                if a.contains(slot) and a.depth > owner.depth:
                    owner = a
            return owner

        self.absorbed = self._absorbable(order, edges, {b for lv in accepted for b in (lv.start, lv.end)}, owner_of)
        self.simple_ifs = {}
        for t in self.absorbed:
            preds = [p for p, target, _ in edges if target == t]
            if len(preds) == 1 and all(self._is_plain(self.slots[k]) for k in range(self.pos_of[preds[0]] + 1,
                                                                                   self.pos_of[t])):
                self.simple_ifs[preds[0]] = t
        starts = [s for s in order if s not in self.absorbed]
        for i, s in enumerate(starts):
            owner_of(s).items.append(_Block(s, starts[i + 1] if i + 1 < len(starts) else self.end))
        for lv in [root, *accepted]:
            lv.items.sort(key=lambda it: it.start)
        return root

    def _absorbable(
        self, order: list[int], edges: list[tuple[int, int, Kind]], bounds: set[int], owner_of: Callable[[int], _Level]
    ) -> set[int]:
        """The jump targets that can live inside the block before them as ``if`` bodies' ends."""
        preds: dict[int, list[tuple[int, Kind]]] = {}
        for p, t, kind in edges:
            preds.setdefault(t, []).append((p, kind))
        refused: set[int] = set()
        while True:
            absorbed: set[int] = set()
            block_start = order[0]
            for t in order[1:]:
                if t not in bounds and t not in refused and owner_of(t) is owner_of(block_start) and all(
                    kind is Kind.JCOND and block_start <= p < t for p, kind in preds[t]
                ):
                    absorbed.add(t)
                else:
                    block_start = t
            # Each `if` must close inside the ones opened before it; refuse targets that would not.
            bad = self._improperly_nested(absorbed)
            if bad is None:
                return absorbed
            refused.add(bad)

    def _improperly_nested(self, absorbed: set[int]) -> int | None:
        """An absorbed target whose ``if`` would not nest (or nest too deep), else None."""
        open_targets: list[int] = []  # in-edges all come from the block before, so these close in it
        for pc, insn in self.slots:
            while open_targets and open_targets[-1] == pc:
                open_targets.pop()
            info = insn.info
            if info is not None and info.kind is Kind.JCOND:
                t = self._target(pc, insn, info)
                if t in absorbed:
                    if (open_targets and open_targets[-1] < t) or len(open_targets) >= _MAX_IF_NESTING:
                        return t
                    open_targets.append(t)
        return None

    # -- emission -------------------------------------------------------------------------------------
    def emit(self, indent: int, text: str) -> None:
        self.lines.append("    " * indent + text)

    def write(self) -> list[str]:
        """The Python source of the function: ``def F<start>(ex, depth, base, r1..r5, ...)`` returning
        r0 (``base``: the depth at which the running program started, see :mod:`pybpf.vm.execution`)."""
        name = f"F{self.start}"
        self.emit(0, f"def {name}(ex, depth, base, r1=0, r2=0, r3=0, r4=0, r5=0, r0=0, r6=0, r7=0, r8=0, r9=0, r11=0):")
        if self.uses_r10:
            self.emit(1, "stk, r10 = ex.enter_frame(depth)")
        else:
            self.emit(1, "ex.depth = depth")
        self.emit(1, _PROLOGUE)
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
        return self.fill_placeholders()

    def fill_placeholders(self) -> list[str]:
        """Put in the statements only known once the body is written: which region guesses exist."""
        guesses = sorted(self.guesses)
        prologue: list[str] = []
        if self.uses_frame_views:
            prologue.append(f"_, _, _, _, _, S2, S4, S8 = TAB[r10 >> 32 & {ID_MASK:#x}]")
        forget = ""
        if guesses:
            # a window starting beyond every offset: the next access through each guess looks its
            # region up (and the first test of the check fails before e/w are read)
            forget = " = ".join(f"s{g}" for g in guesses) + f" = {_NO_WINDOW:#x}"
            prologue.append(" = ".join(f"G{g}" for g in guesses) + " = 0; " + forget)
        out = []
        for line in self.lines:
            stripped = line.lstrip()
            if stripped in (_PROLOGUE, _FORGET_GUESSES):
                lead = line[: len(line) - len(stripped)]
                out.extend(lead + text for text in (prologue if stripped == _PROLOGUE else [forget] if forget else []))
            else:
                out.append(line)
        return out

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
        """A block, or a nested loop level, as one item of level ``lv``."""
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

    def segment_size(self, pos: int, end: int, lv: _Level, *, continuing: bool = False) -> int:
        """How many instructions run when the straight-line code at ``self.slots[pos]`` is entered
        (budget accounting): up to the next jump, call or exit, the end of the block, or where an
        absorbed ``if`` joins (``continuing``: already at the first instruction).

        Two shapes are counted through, so a loop body pays for fewer segments: a forward jump out of
        the block (the jump pays back what it skips, ``n -= k``), and an ``if`` over plain code whose
        target has no other in-edge (the body is counted by itself, what follows with the code
        before: every path through the body reaches the target, and no budget check can run in
        between, so no check sees the difference)."""
        count = 0
        joined = -1
        i = pos
        while i < len(self.slots):
            pc, insn = self.slots[i]
            if pc >= end or (pc in self.absorbed and pc != joined and (count or continuing)):
                break
            count += 1
            info = insn.info
            if info is not None and info.kind is Kind.JCOND:
                t = self.simple_ifs.get(pc)
                if t is not None:
                    i, joined = self.pos_of[t], t
                    continue
                if self._passes_through(pc, insn, info, end, lv):
                    i += 1
                    continue
            if info is None or info.kind in _SEGMENT_ENDS:
                break
            i += 1
        return count

    def _passes_through(self, pc: int, insn: Insn, info: OpInfo, end: int, lv: _Level) -> bool:
        """A conditional jump forward that :meth:`emit_block` writes as ``if cond: <leave>`` (not an
        absorbed ``if``, nor one of its forms that end the block), so the code after it can be
        counted before it."""
        t = self._target(pc, insn, info)
        nxt = pc + insn.width
        if t <= pc or t in self.absorbed:
            return False
        return not ((nxt == end and self._both_forward(pc, t, nxt, lv))
                    or (t == end and self._both_forward(pc, t, t, lv)))

    @staticmethod
    def _is_plain(slot: tuple[int, Insn]) -> bool:
        """Straight-line code that cannot leave the function's control flow: arithmetic, loads, stores."""
        pc, insn = slot
        info = insn.info
        return (info is not None and info.kind in (Kind.ALU, Kind.LDX, Kind.ST, Kind.STX)
                and bad_register(pc, insn, info) is None)

    def emit_block(self, block: _Block, lv: _Level, indent: int) -> None:
        """One block (with its absorbed targets) as straight-line Python, ending in a transfer of control.

        Instructions are emitted in order, each segment of them charged to the budget counter ``n``
        once; the block ends where control leaves it (a jump, an exit, a fault the instruction
        always raises) or falls into the next block of its level."""
        pos = self.pos_of[block.start]
        segment = True
        nested = 0
        last_pc = block.start
        skip = 0
        # the `if not cond:` bodies open here: (absorbed target that closes it, indent outside, first line,
        # whether what follows the target was counted before the `if`)
        open_ifs: list[tuple[int, int, int, bool]] = []
        dead = False  # control left this path (jump, exit, error): skip to where an open `if` closes
        self.forget_o()
        self.widths = {}
        for i in range(pos, len(self.slots)):
            pc, insn = self.slots[i]
            if pc >= block.end:
                break
            if open_ifs and open_ifs[-1][0] == pc:
                counted = False
                while open_ifs and open_ifs[-1][0] == pc:
                    _, outside, body_start, counted = open_ifs.pop()
                    if len(self.lines) == body_start:  # a jump to the next instruction
                        self.emit(outside + 1, "pass")
                    indent = outside
                segment, dead = not counted, False  # the paths join: count from here (unless counted)
                self.forget_o()  # (the facts of one path only)
                self.widths = {}
            if dead:
                continue
            last_pc = pc
            if skip:  # the rest of a folded pair or of a group of memory accesses
                skip -= 1
                continue
            if segment:
                self.emit(indent, f"n += {self.segment_size(i, block.end, lv)}")
                segment = False
            nxt = pc + insn.width
            info = OPCODES.get(insn.code)
            bad = X.err_unknown_opcode(pc, insn.code) if info is None else bad_register(pc, insn, info)
            if bad is not None or info is None:
                self.emit(indent, f"raise {self.tr.error(bad)}()")
                dead = True
                continue
            kind = info.kind
            if kind is Kind.JA:
                # nothing of this block follows a ja, so the later guards of the level may take over
                self.goto(self._target(pc, insn, info), pc, lv, indent, escaping=bool(open_ifs))
                dead = True
                continue
            if kind is Kind.EXIT:
                self.emit_exit(pc, indent)
                dead = True
                continue
            if kind is Kind.JCOND:
                t = self._target(pc, insn, info)
                cond = self.tr.condition(insn, info)
                if t in self.absorbed and pc < t < block.end:  # the code up to t runs unless cond
                    self.emit(indent, f"if not ({cond}):")
                    open_ifs.append((t, indent, len(self.lines), pc in self.simple_ifs))
                    indent += 1
                    segment = True
                    continue
                if nxt == block.end and not open_ifs and self._both_forward(pc, t, nxt, lv):
                    self.emit(indent, f"pc = {t} if {cond} else {nxt}")
                    dead = True
                    continue
                if (t == block.end and not open_ifs and self._both_forward(pc, t, t, lv)
                        and nested < _MAX_IF_NESTING):
                    # `if cond goto <end of this block>`: the rest of the block becomes the else branch
                    self.emit(indent, f"if {cond}:")
                    self.emit(indent + 1, f"pc = {t}")
                    self.emit(indent, "else:")
                    indent += 1
                    nested += 1
                    segment = True
                    continue
                self.emit(indent, f"if {cond}:")
                passes = self._passes_through(pc, insn, info, block.end, lv)
                if passes:  # what follows was counted with what came before: the jump pays it back
                    rest = self.segment_size(i + 1, block.end, lv, continuing=True)
                    if rest:
                        self.emit(indent + 1, f"n -= {rest}")
                self.goto(t, pc, lv, indent + 1, escaping=True)
                segment = not passes
                continue
            if kind is Kind.MAY_GOTO:
                self.emit(indent, "if not mg:")
                self.goto(self._target(pc, insn, info), pc, lv, indent + 1, escaping=True)
                self.emit(indent, "mg -= 1")
                segment = True
                continue
            if kind in (Kind.CALL, Kind.CALLX):
                if not self.emit_call(pc, insn, info, indent):
                    dead = True
                    continue
                segment = True
                self.emit(indent, _FORGET_GUESSES)  # a helper or callee may have changed the regions
                self.forget_o()
                self.note_writes(insn, info)
                continue
            if kind in (Kind.LD_ABS, Kind.LD_IND):
                self.emit_ld_abs(pc, insn, info, indent)
                segment = True
                self.note_writes(insn, info)
                continue
            if kind in (Kind.LDX, Kind.ST, Kind.STX, Kind.ATOMIC):
                group = self.access_group(i, block)
                self.emit_memory(group, self.guess_of(i, block, group[0].base), indent)
                for a in group:
                    self.note_writes(a.insn, a.insn.info)  # type: ignore[arg-type]
                skip = len(group) - 1
                continue
            following = self.slots[i + 1][0] if i + 1 < len(self.slots) else block.end
            if following < block.end and following not in self.absorbed:
                folded = _fold_mov(insn, self.slots[i + 1][1])
                if folded is not None:  # `rX = rY; rX op= z` as one: `rX = rY op z`
                    for line in folded:
                        self.emit(indent, line)
                    self.note_writes(insn, info)
                    self.widths.pop(insn.dst, None)
                    skip = 1
                    continue
            self.tr.emit_simple(self, pc, insn, info, indent)
            self.note_writes(insn, info)
        if dead:
            return
        assert not open_ifs  # each closes at its target, inside the block
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

    def forget_o(self) -> None:
        """``o`` (and what was shifted from it) no longer describes any base register."""
        self.o_for = None
        self.shifted = None

    def note_writes(self, insn: Insn, info: OpInfo) -> None:
        """Update the straight-line facts (:attr:`o_for`, :attr:`widths`) after ``insn``."""
        widths = self.widths
        for reg in written_registers(insn):
            widths.pop(reg, None)
            if self.o_for is not None and self.o_for[0] == reg:
                self.forget_o()
        kind, d = info.kind, insn.dst
        if kind is Kind.LDX and info.mode is Mode.MEM:
            widths[d] = info.size.bytes  # type: ignore[union-attr]
        elif kind is Kind.END and insn.imm in (16, 32, 64):
            widths[d] = insn.imm // 8
        elif kind is Kind.ALU and info.cls == InsnClass.ALU:
            widths[d] = 4  # 32-bit results are zero-extended
        elif kind is Kind.ALU and not insn.off and info.source is Source.K and insn.imm >= 0:
            if info.alu_op in (AluOp.MOV, AluOp.AND):
                widths[d] = max(1, (insn.imm.bit_length() + 7) // 8)
        elif kind is Kind.ALU and not insn.off and info.alu_op is AluOp.MOV and info.source is Source.X:
            if insn.src in widths:
                widths[d] = widths[insn.src]

    # -- memory ---------------------------------------------------------------------------------------
    def access_group(self, i: int, block: _Block) -> list[_Access]:
        """The memory access at ``self.slots[i]`` and the ones right after it that can share one
        bounds check: all loads or all stores (atomics stand alone), through the same base register,
        which none but the last of them overwrites."""
        first = _Access.of(*self.slots[i])
        if first.atomic or self.is_frame_access(first):
            return [first]
        group = [first]
        kinds = (Kind.LDX,) if not first.write else (Kind.ST, Kind.STX)
        for j in range(i + 1, min(i + _MAX_GROUP, len(self.slots))):
            pc, insn = self.slots[j]
            info = insn.info
            if pc >= block.end or pc in self.absorbed or info is None or info.kind not in kinds:
                break
            if bad_register(pc, insn, info):
                break
            if not first.write and group[-1].insn.dst == first.base:
                break  # the base register changed
            access = _Access.of(pc, insn)
            if access.base != first.base:
                break
            group.append(access)
        return group

    def is_frame_access(self, a: _Access) -> bool:
        """``[r10 + const]`` in a function that never moves r10: the frame, checked now, not at run time."""
        return a.base == 10 and not a.atomic and not self.writes_r10 and a.off >= -STACK_SIZE and a.off + a.size <= 0

    def guess_of(self, i: int, block: _Block, base: int) -> str:
        """The region guess an access through ``base`` at ``self.slots[i]`` uses: named after the register
        the pointer was derived from in this block (``r4 = r1; r4 += r2`` -> r1), so the accesses of a
        loop through one pointer share one guess. A guess is only a guess: every access checks it."""
        reg = base
        for j in range(i - 1, self.pos_of[block.start] - 1, -1):
            insn = self.slots[j][1]
            if reg not in written_registers(insn):
                continue
            info = insn.info
            assert info is not None
            if info.kind is not Kind.ALU or info.cls != InsnClass.ALU64 or insn.off:
                break
            if info.alu_op is AluOp.MOV and info.source is Source.X and insn.src <= 10:
                reg = insn.src  # a copy: the pointer came from there
            elif info.alu_op not in (AluOp.ADD, AluOp.SUB):
                break  # pointer arithmetic keeps the region; anything else makes a new value
        return str(reg)

    def emit_memory(self, group: list[_Access], guess: str, indent: int) -> None:
        """Loads or stores through one region guess (see :func:`guess_of`).

        The guess is a table entry kept in locals (``b``/``G``/``s``/``e`` + typed views, see
        :mod:`pybpf.vm.memory`): when the group's whole extent ``[base + lo, base + hi)`` lies in its
        window, the accesses are plain indexing (aligned ones into the ``H``/``I``/``Q`` views);
        otherwise the guess is replaced by the entry of the base register's region and checked again;
        what still does not fit takes the exact slow path, access by access, which raises the
        interpreter's fault at the right pc. Helper calls forget every guess (they may move regions).
        """
        first = group[0]
        if self.is_frame_access(first):
            self.emit(indent, self.frame_access(first))
            return
        g = guess
        self.guesses.add(g)
        base = f"r{first.base}"
        if first.atomic:
            self.emit_atomic(first, g, indent)
            self.forget_o()
            return
        lo = min(a.off for a in group)
        hi = max(a.off + a.size for a in group)
        fits = f"s{g} <= {_plus('o', lo)} and o + {hi} <= {'w' if first.write else 'e'}{g}"
        typed = [a for a in group if _typed_view_ok(a)]
        align = max((a.size for a in typed), default=1)
        shifts = frozenset(a.size.bit_length() - 1 for a in typed)
        known: frozenset[int] = frozenset()
        if self.o_for != (first.base, g):
            self.emit(indent, f"o = {base} - G{g}")
            self.shifted = None
        elif self.shifted is not None:
            # o >> k left by the last group holds here if passing this group's checks implies
            # passing that group's (and so its aligned branch ran on this very o): at least its
            # alignment, an extent covering its, a window no wider (stores' is the narrower)
            a0, lo0, hi0, stored0, shifts0 = self.shifted
            if a0 <= align and lo <= lo0 and hi0 <= hi and (first.write or not stored0):
                known = shifts0
        self.emit(indent, f"if {fits}:")
        self.emit_in_bounds(group, g, indent + 1, known)
        self.emit(indent, "else:")
        self.emit(indent + 1, f"{_guess_names(g)} = TAB[{base} >> 32 & {ID_MASK:#x}]")
        self.emit(indent + 1, f"o = {base} - G{g}")
        self.emit(indent + 1, f"if {fits}:")
        self.emit_in_bounds(group, g, indent + 2)
        self.emit(indent + 1, "else:")
        for a in group:
            self.emit(indent + 2, self.slow_access(a))
        # both branches leave o = base - G<g> (unless a load replaced the base)
        if first.write or group[-1].insn.dst != first.base:
            self.o_for = (first.base, g)
            self.shifted = (align, lo, hi, first.write, shifts) if shifts else None
        else:
            self.forget_o()

    def emit_in_bounds(self, group: list[_Access], g: str, indent: int, known: frozenset[int] = frozenset()) -> None:
        """The accesses of a group known to be inside guess ``g``'s window, at offset ``o`` of its base
        (``known``: the ``o >> k`` an earlier group already left in ``o<k>``)."""
        typed = [a for a in group if _typed_view_ok(a)]
        if not typed:
            for a in group:
                self.emit(indent, self.byte_access(a, g))
            return
        self.emit(indent, f"if not o & {max(a.size for a in typed) - 1}:")
        for shift in sorted({a.size.bit_length() - 1 for a in typed} - known):
            self.emit(indent + 1, f"o{shift} = o >> {shift}")
        for a in group:
            if _typed_view_ok(a):
                shift = a.size.bit_length() - 1
                item = f"{_VIEW_NAMES[a.size]}{g}[{_plus(f'o{shift}', a.off // a.size)}]"
                self.emit(indent + 1, f"r{a.insn.dst} = {item}" if not a.write else f"{item} = {self.stored(a)}")
            else:
                self.emit(indent + 1, self.byte_access(a, g))
        self.emit(indent, "else:")
        for a in group:
            self.emit(indent + 1, self.byte_access(a, g))

    def byte_access(self, a: _Access, g: str) -> str:
        """One access at byte offset ``o + off`` of guess ``g``'s buffer (bounds already checked)."""
        return self.buffer_access(a, f"b{g}", _plus("o", a.off))

    def buffer_access(self, a: _Access, buf: str, idx: str) -> str:
        """One access at index ``idx`` of byte buffer ``buf`` (known to be in bounds)."""
        tr = self.tr
        if a.write:
            if a.size == 1:
                return f"{buf}[{idx}] = {self.stored(a)}"
            return f"{tr.packer(a.size)}({buf}, {idx}, {self.stored(a)})"
        if a.size == 1 and not a.signed:
            return f"r{a.insn.dst} = {buf}[{idx}]"
        value = f"{tr.unpacker(a.size, a.signed)}({buf}, {idx})[0]"
        return f"r{a.insn.dst} = {value} & {_M}" if a.signed else f"r{a.insn.dst} = {value}"

    def frame_access(self, a: _Access) -> str:
        """``[r10 + const]``: an index into this function's frame, bounds checked at translation."""
        idx = STACK_SIZE + a.off
        if _typed_view_ok(a) and idx % a.size == 0:
            self.uses_frame_views = True
            item = f"S{a.size}[{idx // a.size}]"
            return f"r{a.insn.dst} = {item}" if not a.write else f"{item} = {self.stored(a)}"
        return self.buffer_access(a, "stk", str(idx))

    def slow_access(self, a: _Access) -> str:
        """The exact path (any region, or the interpreter's fault)."""
        addr = _address(a)
        if a.write:
            return f"STORE(ex, {a.pc}, {addr}, {a.size}, {self.stored(a)})"
        return f"r{a.insn.dst} = LOAD(ex, {a.pc}, {addr}, {a.size}, {int(a.signed)})"

    def stored(self, a: _Access) -> str:
        """The value a store writes, already cut to its size."""
        mask = (1 << (8 * a.size)) - 1
        if a.insn.info is not None and a.insn.info.kind is Kind.ST:
            return f"{sext(a.insn.imm, 32) & mask:#x}"
        if self.widths.get(a.insn.src, 8) <= a.size:
            return f"r{a.insn.src}"
        return f"r{a.insn.src} & {mask:#x}"

    def emit_atomic(self, a: _Access, g: str, indent: int) -> None:
        """A read-modify-write through :meth:`AddressSpace.atomic` (the owner of shared map memory
        makes it atomic across processes), never through the guesses: it is not a hot path."""
        insn, pc, size = a.insn, a.pc, a.size
        try:
            op = AtomicOp(insn.imm)
        except ValueError:
            self.emit(indent, f"raise {self.tr.error(X.err_bad_atomic(pc, insn.imm))}()")
            return
        width_mask = f"{(1 << (8 * size)) - 1:#x}"
        s = f"r{insn.src}"
        operand = f"s={s} & {width_mask}"
        if op is AtomicOp.CMPXCHG:
            update = f"lambda v, {operand}, e=r0 & {width_mask}: s if v == e else None"
            self.emit(indent, f"r0 = ATOMIC(ex, {pc}, {_address(a)}, {size}, {update})")
            return
        new = {
            AtomicOp.ADD: f"(v + s) & {width_mask}",
            AtomicOp.OR: "v | s",
            AtomicOp.AND: "v & s",
            AtomicOp.XOR: "v ^ s",
            AtomicOp.XCHG: "s",
        }[op.base]
        target = s if op.fetch else "v"
        self.emit(indent, f"{target} = ATOMIC(ex, {pc}, {_address(a)}, {size}, lambda v, {operand}: {new})")

    def emit_exit(self, pc: int, indent: int) -> None:
        """``exit``: settle the budget, close the frame, return r0 to the caller (Python's own return)."""
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
            self.emit(indent, f"if depth - base >= {MAX_CALL_FRAMES - 1} or depth >= {MAX_RUNTIME_FRAMES - 1}:")
            self.emit(indent + 1, f"CHECKDEPTH({pc}, depth + 1, base)")
            self.emit(indent, "ex.left = left - n")
            self.emit(indent, f"r0 = F{target}(ex, depth + 1, base, r1, r2, r3, r4, r5)")
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
            self.emit(indent, "ex.base = base")
            self.emit(indent, "ex.left = left - n")
            self.emit(indent, "try:")
            self.emit(indent + 1, call)
            self.emit(indent, "except TailCall as t:")
            self.emit(indent + 1, "f = TAIL(ex, t)")
            self.emit(indent + 1, "if f is not None:")
            # the target's main replaces this function in its frame and starts its own call chain there
            self.emit(indent + 2, "return f(ex, depth, depth, r1, r2, r3, r4, r5, r0, r6, r7, r8, r9, r11)")
            if unwind:
                self.emit(indent, "else:")
                self.emit(indent + 1, "if r0 == 0: raise ProgramExit(0)")
        self.emit(indent, "left = ex.left")
        self.emit(indent, "n = 0")
        return True

    def emit_ld_abs(self, pc: int, insn: Insn, info: OpInfo, indent: int) -> None:
        """Legacy packet load, as Linux rewrites it: out of range, the program returns 0 at once."""
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

    # -- expressions ------------------------------------------------------------------------------------
    def condition(self, insn: Insn, info: OpInfo) -> str:
        """A conditional jump's test as a Python expression over the register locals (signed
        comparisons compare values biased by the sign bit, which orders them as signed)."""
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
        """An instruction that cannot change control flow or touch memory: ALU, byte swap, lddw."""
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
        else:  # pragma: no cover - every other kind is handled by the function writer
            raise AssertionError(kind)

    def alu(self, insn: Insn, info: OpInfo) -> list[str]:
        """Statements for an arithmetic instruction, inlined for the standard forms."""
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
        if is_percpu_mov(insn, info):  # verifier-emitted: add the running CPU's per-CPU offset
            return [f"{d} = ({s} + ex.percpu_offset()) & {mask}"]
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
            if is64:
                return _wrapping(d, f"{d} {sym} {s}", sym)
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
        if op in (AluOp.DIV, AluOp.MOD):
            # by zero: div gives 0, mod leaves dst (truncated to the width); off 1 = signed
            name, signed_fn, sym, by_zero = ("SDIV", sdiv, "//", "0") if op is AluOp.DIV else ("SMOD", smod, "%", dm)
            if off == 1:
                self.consts[name] = signed_fn
                return [f"{d} = {name}({d}, {s}, {bits})"]
            if imm is not None:
                return [f"{d} = {by_zero}"] if imm == 0 else [f"{d} = {dm} {sym} {s}"]
            return [f"t = {sm}", f"{d} = {dm} {sym} t if t else {by_zero}"]
        raise AssertionError(op)  # pragma: no cover

    def end(self, pc: int, insn: Insn, info: OpInfo) -> str:
        """A byte swap; the 16-bit one inlined, the others through :func:`pybpf.vm.semantics.bswap`."""
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

    def unpacker(self, size: int, signed: bool) -> str:
        """The name of the ``struct`` unpacker of a little-endian integer of ``size`` bytes."""
        code = _STRUCT_CODES[size]
        name = f"{'S' if signed else 'U'}{code}"
        self.consts[name] = struct.Struct("<" + (code.lower() if signed else code)).unpack_from
        return name

    def packer(self, size: int) -> str:
        code = _STRUCT_CODES[size]
        self.consts[f"P{code}"] = struct.Struct("<" + code).pack_into
        return f"P{code}"

    # -- the module ------------------------------------------------------------------------------------
    def build(self) -> tuple[str, dict[str, Any]]:
        """The module source (every function of the program) and the globals it runs with: the
        address space's table, the slow paths, helpers, constants and error templates."""
        layout = self.layout
        chunks: list[str] = []
        for start in layout.func_starts:
            chunks.extend(_FunctionWriter(self, start, layout.func_end[start]).write())
            chunks.append("")
        source = "\n".join(chunks) + "\n"
        space = self.engine.space
        ns: dict[str, Any] = {
            "__name__": "pybpf.vm.translated",
            "TAB": space.table,
            "LOAD": _load,
            "STORE": _store,
            "RESOLVE": _resolve,
            "ATOMIC": _atomic,
            "TAIL": _tail,
            "LDABS": ld_abs,
            "CALLX": self._callx,
            "TailCall": TailCall,
            "CHECKDEPTH": X.check_depth,
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


_FOLD_SYMBOLS = {AluOp.ADD: "+", AluOp.SUB: "-", AluOp.MUL: "*", AluOp.OR: "|", AluOp.AND: "&", AluOp.XOR: "^",
                 AluOp.LSH: "<<", AluOp.RSH: ">>"}


def _is_alu64(info: OpInfo | None, insn: Insn) -> bool:
    """A plain 64-bit arithmetic instruction (no movsx / sdiv variants, registers within r0-r10)."""
    return (info is not None and info.kind is Kind.ALU and info.cls == InsnClass.ALU64 and insn.off == 0
            and insn.dst <= 10 and (info.source is Source.K or insn.src <= 10))


def _fold_mov(mov: Insn, nxt: Insn) -> list[str] | None:
    """``rX = rY`` followed by a 64-bit ``rX op= z``, as ``rX = rY op z`` (or None)."""
    mi, ni = mov.info, nxt.info
    if not (_is_alu64(mi, mov) and mi.alu_op is AluOp.MOV and mi.source is Source.X and mov.dst <= 9):  # type: ignore[union-attr]
        return None
    if not _is_alu64(ni, nxt) or nxt.dst != mov.dst:
        return None
    assert ni is not None
    sym = _FOLD_SYMBOLS.get(ni.alu_op)  # type: ignore[arg-type]
    register = ni.source is Source.X
    if sym is None or (register and sym in ("<<", ">>")):
        return None
    x, y = f"r{mov.dst}", f"r{mov.src}"
    if register:  # (the source may be rX itself, i.e. still rY)
        z = y if nxt.src == mov.dst else f"r{nxt.src}"
    else:
        imm = sext(nxt.imm, 32)
        if sym in ("<<", ">>"):
            z = str(imm & 63)
        elif sym in ("+", "-") and imm < 0:
            sym, z = ("-" if sym == "+" else "+"), f"{-imm:#x}"
        else:
            z = f"{imm & M64:#x}"
    if sym in ("|", "&", "^", ">>"):
        return [f"{x} = {y} {sym} {z}"]
    if sym in ("+", "-"):
        return _wrapping(x, f"{y} {sym} {z}", sym)
    return [f"{x} = ({y} {sym} {z}) & {_M}"]


def _wrapping(dst: str, expr: str, sym: str) -> list[str]:
    """``dst = expr`` modulo 2**64 for a sum or difference of two u64 values: it can only leave the
    range by one wrap, so a comparison is enough (cheaper than masking every result)."""
    if sym == "+":
        return [f"{dst} = {expr}", f"if {dst} > {_M}: {dst} &= {_M}"]
    return [f"{dst} = {expr}", f"if {dst} < 0: {dst} &= {_M}"]


def _load(ex: Execution, pc: int, address: int, size: int, signed: int) -> int:
    """The slow path of an inline load: another region than the cached one, or a fault."""
    return ex.space.load(address, size, signed=bool(signed), pc=pc) & M64


def _store(ex: Execution, pc: int, address: int, size: int, value: int) -> None:
    ex.space.store(address, size, value, pc=pc)


def _resolve(ex: Execution, pc: int, address: int, size: int) -> tuple[memoryview, int]:
    return ex.space.resolve(address, size, True, pc)


def _atomic(ex: Execution, pc: int, address: int, size: int, update: Callable[[int], int | None]) -> int:
    return ex.space.atomic(address, size, update, pc=pc)


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
        self.space.enable_typed_views()
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
        return self.main(ex, 0, 0, *args)

    def call_function(self, ex: Execution, slot: int, args: tuple[int, ...], depth: int) -> int:
        fn = self.functions.get(slot)
        if fn is None:
            raise X.err_call_target(ex.pc, slot)
        X.check_depth(ex.pc, depth, ex.base)
        return fn(ex, depth, ex.base, *[a & M64 for a in args])
