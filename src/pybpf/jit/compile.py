"""eBPF instructions → x86-64 machine code: the code generator.

:func:`compile_program` turns an instruction stream into an inert :class:`JitImage` — code bytes plus
the tables a loader and a disassembler need (where each eBPF instruction's code starts, function
entries, relocations to patch at load time, helper call sites). Nothing here touches executable
memory; :mod:`pybpf.jit.runtime` does that.

Dispatch: a table built once from :data:`pybpf.isa.opcodes.OPCODES` maps each opcode byte to the
emitter for its :class:`~pybpf.isa.opcodes.Kind`; arithmetic and jumps then look their operation up
in small tables keyed by ``AluOp``/``JmpOp``. There is no second switch over opcode bits.

Frames. Every function (the main program and each bpf-to-bpf subprogram) has the same frame, so a
tail call can jump into another program's body reusing the frame it comes from::

    [return address]
    rbx rbp r12 r13 r14 r15      saved by every function (System V callee-saved; eBPF R6-R10)
    rbp = R10 ─┐
               │ 528 bytes: the eBPF stack (512, and 16 for the verifier's own slots)
    rbp - 536: │ may_goto counter of this frame (programs the verifier did not rewrite)
    rsp ───────┘ 16-byte aligned: helper calls need no fix-up

Run state. r12 holds, for the whole run, the address of a run-state block (:class:`RunStateField`)
supplied by the caller (the entry point is ``u64 entry(u64 r1, u64 r2, RunState *state)``): the
tail-call counter, the main frame's rbp (to unwind from any depth when the "unwind" helper returns 0
or a Python helper raised), an exit status, and in *checked* mode (unverified programs) a back-edge
budget, the call depth and the table of memory regions the program may touch, so that an unverified
program always terminates, never overflows the native stack and never touches memory it was not
given (:meth:`_Codegen._emit_mem_check`).

Layout of an image: the main function (prologue, body, the shared epilogue), each subprogram,
callback entries, out-of-line code (the access check, abort paths, native helper stubs), then the
data: 8-byte helper address slots the loader fills in.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum

from pybpf.errors import JitError
from pybpf.isa.insn import Insn, Insns, validate
from pybpf.isa.opcodes import (
    ADDR_PERCPU,
    OPCODES,
    PERCPU_CPU_NUMBER,
    AluOp,
    AtomicOp,
    InsnClass,
    JmpOp,
    Kind,
    Mode,
    OpInfo,
    PseudoCall,
    PseudoSrc,
)
from pybpf.isa.opcodes import Size as BpfSize
from pybpf.isa.opcodes import Source as BpfSource
from pybpf.jit.helpers import MAX_TAIL_CALL_CNT, HelperEntry, HelperTable, NativeStub, PythonHelper, TailCall
from pybpf.jit.x86 import encoder as x
from pybpf.jit.x86.abi import BPF_REG_AX, BPF_TO_X86, CALLEE_SAVED_PUSH_ORDER, RUN_STATE, SCRATCH
from pybpf.jit.x86.codebuf import CodeBuffer
from pybpf.jit.x86.encoder import Cond, EncodeError, Mem, Reg

__all__ = [
    "BPF_MAX_LOOPS",
    "DEFAULT_LOOP_BUDGET",
    "FRAME_SIZE",
    "MAX_CALL_FRAMES",
    "PACKET_LOADER",
    "STACK_SIZE",
    "JitImage",
    "Reloc",
    "RelocKind",
    "RunStateField",
    "RunStatus",
    "compile_program",
]

STACK_SIZE = 512 + 16
"""Bytes below R10 a program may use: MAX_BPF_STACK plus the verifier's extra slots (may_goto)."""
MAY_GOTO_SLOT = -(STACK_SIZE + 8)
FRAME_SIZE = STACK_SIZE + 8
"""What each function subtracts from rsp after pushing the six callee-saved registers."""
BPF_MAX_LOOPS = 8 * 1024 * 1024
FRAME_STRIDE = 8 + 8 * len(CALLEE_SAVED_PUSH_ORDER) + FRAME_SIZE
"""Distance between the frame pointers of a function and the function it calls."""
CHECKED_STACK = 512
"""Bytes below R10 an unverified program may touch in checked mode (as the interpreter's frames)."""
MAX_CALL_FRAMES = 8
DEFAULT_LOOP_BUDGET = 100_000_000
"""Back-edges an unverified program may take per run (checked mode) before it is stopped."""

assert (8 + 8 * len(CALLEE_SAVED_PUSH_ORDER) + FRAME_SIZE) % 16 == 0, "frames must keep rsp 16-aligned"


class RunStateField(IntEnum):
    """Byte offsets in the run-state block r12 points to (each field 8 bytes)."""

    TAIL_CALL_CNT = 0
    MAIN_RBP = 8
    STATUS = 16  # RunStatus, written by generated code or a helper wrapper
    ERROR_INSN = 24  # raw slot of the instruction that stopped the program
    BUDGET = 32  # checked mode: back-edges left
    DEPTH = 40  # checked mode: bpf-to-bpf call depth
    DETAIL = 48  # what goes with a status: the helper id of a bad callx, r0 of a PROGRAM_EXIT
    CALL_PC = 56  # raw slot of the Python helper call in progress (what the helper sees as ctx.pc)
    REGIONS = 64  # checked mode: address of the memory-region table, (lo, hi, writable) u64 triples
    NREGIONS = 72  # checked mode: number of entries in that table
    FAULT = 80  # checked mode: a memory fault's access, packed as (slot << 8) | (is_store << 4) | size
    BUDGET_INIT = 88  # checked mode: what BUDGET starts at in each run (set by the runtime)
    SIZE = 96


class RunStatus(IntEnum):
    """Why a run stopped early (0: it did not)."""

    OK = 0
    HELPER_RAISED = 1  # a Python helper raised; the runtime re-raises its exception
    UNKNOWN_HELPER = 2  # callx to an id with no helper
    LOOP_BUDGET = 3  # checked mode: too many back-edges
    CALL_DEPTH = 4  # checked mode: more than MAX_CALL_FRAMES frames
    PROGRAM_EXIT = 5  # a Python helper stopped the program; r0 is in DETAIL
    MEMORY_FAULT = 6  # checked mode: an access outside the stack frames and the region table


class RelocKind(IntEnum):
    HELPER_SLOT = 1  # 8-byte slot holding a helper's address (``call [rip + slot]``)
    MAP = 2  # imm64 of ``movabs``: address of a map's native memory
    MAP_VALUE = 3  # imm64 of ``movabs``: address in a map's value area (+ addend)
    RUN_STATE = 4  # 8-byte slot holding the run-state address (read by callback entries)


@dataclass(frozen=True, slots=True)
class Reloc:
    """An 8-byte little-endian field at ``offset`` that the loader fills in."""

    offset: int
    kind: RelocKind
    target: int | str  # helper id (or "packet_loader"), or map id
    addend: int = 0


PACKET_LOADER = "packet_loader"


@dataclass(frozen=True)
class JitImage:
    """The compiled program, not yet executable: bytes and the tables that explain them.

    ``code[:code_size]`` is instructions, the rest is data (helper address slots, zero until bound).
    ``insn_offsets`` maps each instruction's raw slot to the offset of its first byte of code;
    ``func_offsets`` each function's first slot to its entry (prologue); ``main_entry`` is where
    :class:`~pybpf.jit.runtime.JitProgram` calls in, ``tail_call_entry`` where a tail call lands.
    """

    code: bytes
    code_size: int
    insn_offsets: Mapping[int, int]
    func_offsets: Mapping[int, int]
    func_ends: Mapping[int, int]
    main_entry: int
    tail_call_entry: int
    epilogue: int
    relocs: tuple[Reloc, ...]
    helper_calls: tuple[tuple[int, int | str], ...]
    helper_names: Mapping[int | str, str]
    helper_kinds: Mapping[int | str, str]
    checked: bool
    insn_count: int
    passes: int = 1
    long_branches: int = 0
    stubs: Mapping[Hashable, int] = field(default_factory=dict)
    callback_entries: Mapping[int, int] = field(default_factory=dict)

    def functions(self) -> list[tuple[int, int, int]]:
        """``(first slot, code start, code end)`` of each function, in code order. The main
        function's range includes the epilogue; what follows the last function (out-of-line stubs)
        up to ``code_size`` belongs to none."""
        return sorted(((idx, off, self.func_ends[idx]) for idx, off in self.func_offsets.items()),
                      key=lambda t: t[1])

    def insn_ranges(self) -> list[tuple[int, int, int]]:
        """``(slot, start, end)``: the code of each eBPF instruction, in code order. A function's
        prologue precedes its first instruction's range; the main epilogue follows its last one."""
        ends = {*self.func_offsets.values(), *self.func_ends.values(), self.epilogue, self.code_size}
        starts = sorted((off, idx) for idx, off in self.insn_offsets.items())
        out = []
        for i, (off, idx) in enumerate(starts):
            nxt = starts[i + 1][0] if i + 1 < len(starts) else self.code_size
            end = min([b for b in ends if b > off] + [nxt])
            out.append((idx, off, max(off, end)))
        return out


_RS = RUN_STATE
_T1, _T2 = SCRATCH  # r9, r11
_RAX, _RDX, _RCX, _RBP = x.RAX, x.RDX, x.RCX, x.RBP
_CALL_REL32 = x.call_rel32(0)[:-4]  # the opcode of ``call rel32``; the code buffer fills in the target

_ALU_OPS = {
    AluOp.ADD: x.AluOp.ADD,
    AluOp.SUB: x.AluOp.SUB,
    AluOp.OR: x.AluOp.OR,
    AluOp.AND: x.AluOp.AND,
    AluOp.XOR: x.AluOp.XOR,
}
_SHIFT_OPS = {AluOp.LSH: x.ShiftOp.SHL, AluOp.RSH: x.ShiftOp.SHR, AluOp.ARSH: x.ShiftOp.SAR}
_JMP_CONDS = {
    JmpOp.JEQ: Cond.E,
    JmpOp.JNE: Cond.NE,
    JmpOp.JGT: Cond.A,
    JmpOp.JGE: Cond.AE,
    JmpOp.JLT: Cond.B,
    JmpOp.JLE: Cond.BE,
    JmpOp.JSGT: Cond.G,
    JmpOp.JSGE: Cond.GE,
    JmpOp.JSLT: Cond.L,
    JmpOp.JSLE: Cond.LE,
    JmpOp.JSET: Cond.NE,
}
_ATOMIC_OPS = {AtomicOp.ADD: x.AluOp.ADD, AtomicOp.OR: x.AluOp.OR, AtomicOp.AND: x.AluOp.AND, AtomicOp.XOR: x.AluOp.XOR}
_BITS = {BpfSize.B: 8, BpfSize.H: 16, BpfSize.W: 32, BpfSize.DW: 64}
_M32 = 0xFFFF_FFFF


def _s32(v: int) -> int:
    v &= _M32
    return v - (1 << 32) if v & 0x8000_0000 else v


def _rs(fld: RunStateField) -> Mem:
    return Mem(_RS, int(fld))


def compile_program(
    insns: Insns,
    *,
    helpers: HelperTable | None = None,
    packet_loader: HelperEntry | None = None,
    verified: bool = False,
    allow_unverified: bool = False,
) -> JitImage:
    """Compile ``insns`` (the post-load instruction stream) to x86-64 machine code.

    ``verified=True`` says the verifier accepted the program (the kernel layer passes it): the code
    then dereferences what it is given, as the kernel's JIT does. Otherwise the JIT refuses with
    :class:`~pybpf.errors.JitError` unless ``allow_unverified=True``, which compiles in *checked*
    mode (the conformance runner and tests use it): strict validation of every instruction, every
    load and store checked against the live stack frames and the caller's region table (a
    :class:`~pybpf.errors.MemoryFault` instead of a crash), a back-edge budget and a call-depth
    limit, so that an unverified program can neither crash the process nor run forever.

    ``helpers`` maps helper ids (and the verifier's internal-function ids) to implementations;
    ``packet_loader`` serves LD_ABS/LD_IND (see :mod:`pybpf.jit.helpers`).
    """
    if not isinstance(insns, Insns):
        raise JitError(f"compile_program takes Insns, not {type(insns).__name__} "
                       "(pybpf.jit.prepare() takes a loaded program with its maps and helpers)")
    if not verified and not allow_unverified:
        raise JitError("refusing to compile an unverified program (pass allow_unverified=True to opt out)")
    return _Codegen(insns, helpers or {}, packet_loader, checked=not verified).run()


# -- the generator ---------------------------------------------------------------------------------
_Emitter = Callable[["_Codegen", int, Insn, OpInfo], None]


class _Codegen:
    def __init__(self, insns: Insns, helpers: HelperTable, packet_loader: HelperEntry | None, checked: bool) -> None:
        self.insns = insns
        self.helpers = helpers
        self.packet_loader = packet_loader
        self.checked = checked
        self.buf = CodeBuffer()
        self.slots: dict[int | str, HelperEntry] = {}
        self.stub_impls: dict[int | str, NativeStub] = {}
        self.aborts: dict[tuple[RunStatus, int], Hashable] = {}
        self.func_starts: list[int] = []
        self.main_end = 0
        self.may_goto_funcs: set[int] = set()
        self.uses_mem_check = False
        self.callbacks: set[int] = set()

    # -- entry ------------------------------------------------------------------------------------
    def run(self) -> JitImage:
        insns = self.insns
        if len(insns) == 0:
            raise JitError("empty program")
        self._scan()
        buf = self.buf
        starts = set(self.func_starts)
        for pos, insn in enumerate(insns):
            idx = insns.slot_of(pos)
            if idx in starts:
                if idx:
                    buf.label(("func_end", self._func_before(idx)))
                self._prologue(idx)
            buf.label(("insn", idx))
            info = OPCODES[insn.code]
            try:
                _DISPATCH[info.kind](self, idx, insn, info)
            except EncodeError as e:  # an operand the encoder refuses: always a JIT bug
                raise JitError(str(e), insn_idx=idx, code=insn.code) from None
            if insns.slot_of(pos) + insn.width == self.main_end:
                self._epilogue()  # the main function's code ends with the shared epilogue
        buf.label(("func_end", self.func_starts[-1]))
        for target in sorted(self.callbacks):
            self._callback_entry(target)
        if self.uses_mem_check:
            self._emit_mem_check()
        for (status, idx), label in self.aborts.items():
            buf.label(label)
            buf.emit(x.mov_store_imm(_rs(RunStateField.ERROR_INSN), idx, 64))
            buf.emit(x.mov_store_imm(_rs(RunStateField.STATUS), int(status), 64))
            buf.emit(x.alu_rr(x.AluOp.XOR, _RAX, _RAX, 32))
            buf.jmp("bail")
        for key, stub in self.stub_impls.items():
            buf.align(16)
            buf.label(("stub", key))
            stub.emit(buf)
        buf.label("code_end")
        buf.align(8)
        for key in self.slots:
            buf.label(("slot", key))
            buf.emit(bytes(8))
            buf.mark(8, ("slot", key))
        if self.callbacks:
            buf.label(("slot", "run_state"))
            buf.emit(bytes(8))
            buf.mark(8, ("run_state",))
        try:
            asm = buf.assemble()
        except EncodeError as e:
            raise JitError(str(e)) from None
        labels = asm.labels
        relocs: list[Reloc] = []
        calls: list[tuple[int, int | str]] = []
        for off, payload in asm.marks:
            tag = payload[0]  # type: ignore[index]
            if tag == "slot":
                relocs.append(Reloc(off, RelocKind.HELPER_SLOT, payload[1]))  # type: ignore[index]
            elif tag == "map":
                relocs.append(Reloc(off, RelocKind.MAP, payload[1]))  # type: ignore[index]
            elif tag == "map_value":
                relocs.append(Reloc(off, RelocKind.MAP_VALUE, payload[1], payload[2]))  # type: ignore[index]
            elif tag == "run_state":
                relocs.append(Reloc(off, RelocKind.RUN_STATE, "run_state"))
            elif tag == "call":
                calls.append((off, payload[1]))  # type: ignore[index]
        names: dict[int | str, str] = {}
        kinds: dict[int | str, str] = {}
        for key, entry in (*self.slots.items(), *((k, self._entry_for(k)) for k in self.stub_impls)):
            names[key] = entry.name
            kinds[key] = type(entry.impl).__name__
        for _off, key in calls:
            if key not in names:
                entry = self._entry_for(key)
                names[key] = entry.name
                kinds[key] = type(entry.impl).__name__
        return JitImage(
            code=asm.code,
            code_size=labels["code_end"],
            insn_offsets={k[1]: v for k, v in labels.items() if isinstance(k, tuple) and k[0] == "insn"},
            func_offsets={k[1]: v for k, v in labels.items() if isinstance(k, tuple) and k[0] == "func"},
            func_ends={k[1]: v for k, v in labels.items() if isinstance(k, tuple) and k[0] == "func_end"},
            main_entry=labels[("func", 0)],
            tail_call_entry=labels["tail_entry"],
            epilogue=labels["epilogue"],
            relocs=tuple(relocs),
            helper_calls=tuple(calls),
            helper_names=names,
            helper_kinds=kinds,
            checked=self.checked,
            insn_count=insns.slot_count,
            passes=asm.passes,
            long_branches=asm.long_branches,
            stubs={k[1]: v for k, v in labels.items() if isinstance(k, tuple) and k[0] == "stub"},
            callback_entries={k[1]: v for k, v in labels.items() if isinstance(k, tuple) and k[0] == "cb"},
        )

    def _func_before(self, start: int) -> int:
        return self.func_starts[self.func_starts.index(start) - 1]

    def _entry_for(self, key: int | str) -> HelperEntry:
        if key == PACKET_LOADER:
            assert self.packet_loader is not None
            return self.packet_loader
        return self.helpers[key]  # type: ignore[index]

    # -- checks before emitting -------------------------------------------------------------------
    def _scan(self) -> None:
        """Validate the stream and find the functions (the kernel's check_subprogs, in small)."""
        insns = self.insns
        n = insns.slot_count
        starts = {0}
        for pos, insn in enumerate(insns):
            idx = insns.slot_of(pos)
            info = OPCODES.get(insn.code)
            if info is None:
                raise JitError(f"unknown opcode {insn.code:#04x}", insn_idx=idx, code=insn.code)
            if self.checked:
                why = validate(insn)
                if why is not None:
                    raise JitError(why, insn_idx=idx, code=insn.code)
            elif insn.dst > BPF_REG_AX or (insn.src > BPF_REG_AX and info.kind is not Kind.LDDW):
                raise JitError("invalid register", insn_idx=idx, code=insn.code)
            if _writes_r10(insn, info):
                raise JitError("writes the read-only frame pointer r10", insn_idx=idx, code=insn.code)
            target: int | None = None
            if info.kind is Kind.JA:  # JMP32 ja is gotol: the offset is in imm
                target = idx + 1 + (_s32(insn.imm) if info.cls == InsnClass.JMP32 else insn.off)
            elif info.kind in (Kind.JCOND, Kind.MAY_GOTO):
                target = idx + 1 + insn.off
            elif (info.kind is Kind.CALL and insn.src == PseudoCall.CALL) or (
                info.kind is Kind.LDDW and insn.src == PseudoSrc.FUNC
            ):  # a bpf-to-bpf call or a callback's address: a function starts at the target
                target = idx + 1 + _s32(insn.imm)
                starts.add(target)
            if target is not None and not (0 <= target < n and insns.is_insn_start(target)):
                what = "into the middle of an lddw" if 0 <= target < n else "out of range"
                raise JitError(f"jump {what} (target {target})", insn_idx=idx, code=insn.code)
        self.func_starts = sorted(starts)
        self.main_end = self.func_starts[1] if len(self.func_starts) > 1 else n
        last = insns[-1]
        if OPCODES[last.code].kind not in (Kind.EXIT, Kind.JA):
            raise JitError("last insn is not an exit or jmp", insn_idx=insns.slot_of(len(insns) - 1), code=last.code)
        # every function must end in exit or an unconditional jump: never fall into the next prologue
        for start in self.func_starts[1:]:
            prev = insns.at(_prev_slot(insns, start))
            if OPCODES[prev.code].kind not in (Kind.EXIT, Kind.JA):
                raise JitError("falls through into the next subprogram", insn_idx=_prev_slot(insns, start),
                               code=prev.code)
        bounds = [*self.func_starts, n]
        for pos, insn in enumerate(insns):
            if OPCODES[insn.code].kind is Kind.MAY_GOTO:
                idx = insns.slot_of(pos)
                self.may_goto_funcs.add(max(s for s in bounds[:-1] if s <= idx))

    # -- frames -----------------------------------------------------------------------------------
    def _frame(self) -> None:
        """A System V frame: the callee-saved registers pushed, rbp = the eBPF frame pointer (R10),
        the eBPF stack (and the hidden slots) below it."""
        for r in CALLEE_SAVED_PUSH_ORDER:
            self.buf.emit(x.push(r))
        self.buf.emit(x.mov_rr(_RBP, x.RSP))
        self.buf.emit(x.alu_ri(x.AluOp.SUB, x.RSP, FRAME_SIZE))

    def _prologue(self, idx: int) -> None:
        buf = self.buf
        if idx:
            buf.align(16)
        buf.label(("func", idx))
        self._frame()
        if idx == 0:
            # main program: the caller passed the run state as the third argument (rdx)
            buf.emit(x.mov_rr(_RS, _RDX))
            buf.emit(x.mov_store(_rs(RunStateField.MAIN_RBP), _RBP))
            buf.emit(x.mov_store_imm(_rs(RunStateField.TAIL_CALL_CNT), 0, 64))
            buf.emit(x.mov_store_imm(_rs(RunStateField.STATUS), 0, 64))
            if self.checked:
                buf.emit(x.mov_store_imm(_rs(RunStateField.DEPTH), 0, 64))
                buf.emit(x.mov_load(_T2, _rs(RunStateField.BUDGET_INIT)))
                buf.emit(x.mov_store(_rs(RunStateField.BUDGET), _T2))
            buf.label("tail_entry")
        if idx in self.may_goto_funcs:
            buf.emit(x.mov_store_imm(Mem(_RBP, MAY_GOTO_SLOT), BPF_MAX_LOOPS, 64))

    def _callback_entry(self, target: int) -> None:
        """Where native code (a helper such as bpf_loop) calls a BPF function given by address.

        r12 is whatever the native caller left there, so the entry takes the run-state address from
        a slot the loader fills in, and makes its own frame the one to unwind to: a helper that
        raises inside the callback, or an abort, returns from this entry (to the native caller),
        which restores the outer MAIN_RBP and DEPTH and passes the stop on. In checked mode only the
        callback's own frames are valid stack memory.
        """
        buf = self.buf
        buf.align(16)
        buf.label(("cb", target))
        self._frame()
        buf.rip_ref(x.mov_load(_RS, Mem(None, 0))[:-4], ("slot", "run_state"))
        buf.emit(x.mov_store(_rs(RunStateField.MAIN_RBP), _RBP))
        if self.checked:
            buf.emit(x.mov_store_imm(_rs(RunStateField.DEPTH), 1, 64))
        buf.rip_ref(_CALL_REL32, ("func", target))
        buf.jmp("epilogue")

    def _epilogue(self) -> None:
        buf = self.buf
        buf.label("epilogue")
        buf.emit(x.mov_rr(x.RSP, _RBP))
        for r in reversed(CALLEE_SAVED_PUSH_ORDER):
            buf.emit(x.pop(r))
        buf.emit(x.ret())
        # unwinding to the main frame from any depth: r0 is already set
        buf.label("bail")
        buf.emit(x.mov_load(_RBP, _rs(RunStateField.MAIN_RBP)))
        buf.jmp("epilogue")

    def _abort(self, status: RunStatus, idx: int) -> Hashable:
        key = (status, idx)
        if key not in self.aborts:
            self.aborts[key] = ("abort", int(status), idx)
        return self.aborts[key]

    def _backedge_check(self, idx: int) -> None:
        """Checked mode: count one back-edge; stop the program when the budget runs out."""
        self.buf.emit(x.alu_ri(x.AluOp.SUB, _rs(RunStateField.BUDGET), 1, 64))
        self.buf.jcc(Cond.E, self._abort(RunStatus.LOOP_BUDGET, idx))

    # -- registers --------------------------------------------------------------------------------
    @staticmethod
    def _reg(n: int) -> Reg:
        return BPF_TO_X86[n]

    # -- arithmetic -------------------------------------------------------------------------------
    def _alu(self, idx: int, insn: Insn, info: OpInfo) -> None:
        e = self.buf.emit
        bits = 64 if info.cls == InsnClass.ALU64 else 32
        op = info.alu_op
        assert op is not None
        dst = self._reg(insn.dst)
        is_x = info.source == BpfSource.X
        src = self._reg(insn.src) if is_x else None
        imm = _s32(insn.imm)
        if op == AluOp.MOV:
            if src is not None and bits == 64 and insn.off == ADDR_PERCPU:
                # the verifier's per-CPU address: this run's per-CPU area is the env block after the
                # run state, whose first u32 is the CPU (EnvField.CPU, PERCPU_CPU_NUMBER)
                e(x.lea(dst, Mem(src, int(RunStateField.SIZE) - PERCPU_CPU_NUMBER, RUN_STATE, 1)))
            elif src is not None and insn.off in (8, 16, 32):  # movsx
                e(x.movsx(dst, src, insn.off, bits))
            elif src is not None:
                if src != dst or bits == 32:  # w1 = w1 still zero-extends
                    e(x.mov_rr(dst, src, bits))
            else:
                self._load_imm(dst, imm if bits == 64 else imm & _M32)
        elif op in _ALU_OPS:
            xop = _ALU_OPS[op]
            e(x.alu_rr(xop, dst, src, bits) if src is not None else x.alu_ri(xop, dst, imm, bits))
        elif op == AluOp.MUL:
            e(x.imul_rr(dst, src, bits) if src is not None else x.imul_rri(dst, dst, imm, bits))
        elif op in _SHIFT_OPS:
            self._shift(_SHIFT_OPS[op], dst, src, imm, bits)
        elif op == AluOp.NEG:
            e(x.unary(x.UnaryOp.NEG, dst, bits))
        elif op in (AluOp.DIV, AluOp.MOD):
            self._divmod(dst, src, imm, bits, is_mod=op == AluOp.MOD, signed=insn.off == 1)
        else:  # pragma: no cover - the table has no other ALU kinds
            raise JitError(f"no code for ALU operation {op!r}", insn_idx=idx, code=insn.code)

    def _load_imm(self, dst: Reg, value: int) -> None:
        """dst = a 64-bit constant, in the shortest form."""
        e = self.buf.emit
        value &= (1 << 64) - 1
        if value == 0:
            e(x.alu_rr(x.AluOp.XOR, dst, dst, 32))
        elif value <= _M32:
            e(x.mov_ri(dst, value, 32))
        elif value >= (1 << 64) - (1 << 31):
            e(x.mov_ri(dst, value - (1 << 64), 64))
        else:
            e(x.movabs(dst, value))

    def _shift(self, op: x.ShiftOp, dst: Reg, src: Reg | None, imm: int, bits: int) -> None:
        e = self.buf.emit
        if src is None:
            count = imm & (bits - 1)
            if count:
                e(x.shift_ri(op, dst, count, bits))
            elif bits == 32:
                e(x.mov_rr(dst, dst, 32))
            return
        if src == _RCX:
            e(x.shift_cl(op, dst, bits))
            return
        e(x.mov_rr(_T2, _RCX))  # keep R4
        e(x.mov_rr(_RCX, src, 32))
        if dst == _RCX:
            e(x.shift_cl(op, _T2, bits))
        else:
            e(x.shift_cl(op, dst, bits))
        e(x.mov_rr(_RCX, _T2))

    def _divmod(self, dst: Reg, src: Reg | None, imm: int, bits: int, *, is_mod: bool, signed: bool) -> None:
        """Division and remainder with eBPF's answers where x86 would trap: x / 0 = 0, x % 0 = x,
        and (signed) x / -1 = -x, x % -1 = 0 (INT_MIN / -1 overflows in ``idiv``)."""
        buf = self.buf
        e = buf.emit

        def by_zero() -> None:
            if not is_mod:
                e(x.alu_rr(x.AluOp.XOR, dst, dst, 32))
            elif bits == 32:
                e(x.mov_rr(dst, dst, 32))

        def by_minus_one() -> None:
            if is_mod:
                e(x.alu_rr(x.AluOp.XOR, dst, dst, 32))
            else:
                e(x.unary(x.UnaryOp.NEG, dst, bits))

        done = buf.new_label()
        if src is None:
            divisor = imm & _M32 if bits == 32 else imm
            if divisor == 0:
                by_zero()
                return
            if signed and imm == -1:
                by_minus_one()
                return
            e(x.mov_ri(_T2, divisor, bits))
        else:
            nonzero = buf.new_label()
            e(x.test_rr(src, src, bits))
            buf.jcc(Cond.NE, nonzero)
            by_zero()
            buf.jmp(done)
            buf.label(nonzero)
            if signed:
                normal = buf.new_label()
                e(x.alu_ri(x.AluOp.CMP, src, -1, bits))
                buf.jcc(Cond.NE, normal)
                by_minus_one()
                buf.jmp(done)
                buf.label(normal)
            e(x.mov_rr(_T2, src))
        # rdx:rax / r11; rax and rdx hold R0 and R3, so keep whichever is not the destination
        if dst != _RAX:
            e(x.mov_rr(_T1, _RAX))
        if dst != _RDX:
            e(x.push(_RDX))
        if dst != _RAX:
            e(x.mov_rr(_RAX, dst))
        if signed:
            e(x.cqo() if bits == 64 else x.cdq())
        else:
            e(x.alu_rr(x.AluOp.XOR, _RDX, _RDX, 32))
        e(x.unary(x.UnaryOp.IDIV if signed else x.UnaryOp.DIV, _T2, bits))
        result = _RDX if is_mod else _RAX
        if dst != result or bits == 32:
            e(x.mov_rr(dst, result, bits))
        if dst != _RDX:
            e(x.pop(_RDX))
        if dst != _RAX:
            e(x.mov_rr(_RAX, _T1))
        buf.label(done)

    def _end(self, idx: int, insn: Insn, info: OpInfo) -> None:
        e = self.buf.emit
        dst = self._reg(insn.dst)
        width = insn.imm
        to_le = info.cls == InsnClass.ALU and info.source == BpfSource.K
        if to_le:  # little-endian host: only truncate
            if width == 16:
                e(x.movzx(dst, dst, 16, 32))
            elif width == 32:
                e(x.mov_rr(dst, dst, 32))
            return
        if width == 16:
            e(x.shift_ri(x.ShiftOp.ROR, dst, 8, 16))
            e(x.movzx(dst, dst, 16, 32))
        else:
            e(x.bswap(dst, width))

    # -- jumps ------------------------------------------------------------------------------------
    def _ja(self, idx: int, insn: Insn, info: OpInfo) -> None:
        target = idx + 1 + (_s32(insn.imm) if info.cls == InsnClass.JMP32 else insn.off)
        if self.checked and target <= idx:
            self._backedge_check(idx)
        self.buf.jmp(("insn", target))

    def _jcond(self, idx: int, insn: Insn, info: OpInfo) -> None:
        buf = self.buf
        e = buf.emit
        bits = 64 if info.cls == InsnClass.JMP else 32
        op = info.jmp_op
        assert op is not None
        dst = self._reg(insn.dst)
        if info.source == BpfSource.X:
            src = self._reg(insn.src)
            e(x.test_rr(dst, src, bits) if op == JmpOp.JSET else x.alu_rr(x.AluOp.CMP, dst, src, bits))
        else:
            imm = _s32(insn.imm)
            if op == JmpOp.JSET:
                e(x.test_ri(dst, imm if bits == 64 else imm & _M32, bits))
            elif imm == 0 and op in (JmpOp.JEQ, JmpOp.JNE):
                e(x.test_rr(dst, dst, bits))
            else:
                e(x.alu_ri(x.AluOp.CMP, dst, imm, bits))
        cond = _JMP_CONDS[op]
        target = idx + 1 + insn.off
        if self.checked and target <= idx:
            skip = buf.new_label()
            buf.jcc(Cond(cond ^ 1), skip)
            self._backedge_check(idx)
            buf.jmp(("insn", target))
            buf.label(skip)
        else:
            buf.jcc(cond, ("insn", target))

    def _may_goto(self, idx: int, insn: Insn, info: OpInfo) -> None:
        """Linux's semantics (as its verifier rewrites it): a per-frame counter starting at
        BPF_MAX_LOOPS; the jump is taken once it has run down to 0."""
        buf = self.buf
        slot = Mem(_RBP, MAY_GOTO_SLOT)
        target = idx + 1 + insn.off
        buf.emit(x.alu_ri(x.AluOp.CMP, slot, 0, 64))
        buf.jcc(Cond.E, ("insn", target))
        buf.emit(x.alu_ri(x.AluOp.SUB, slot, 1, 64))  # the counter itself bounds loops: no budget check

    def _exit(self, idx: int, insn: Insn, info: OpInfo) -> None:
        if idx + 1 != self.main_end:
            self.buf.jmp("epilogue")
        # else: the epilogue follows immediately

    # -- calls ------------------------------------------------------------------------------------
    def _call(self, idx: int, insn: Insn, info: OpInfo) -> None:
        if insn.src == PseudoCall.CALL:
            self._local_call(idx, idx + 1 + _s32(insn.imm))
        elif insn.src == PseudoCall.HELPER:
            entry = self.helpers.get(insn.imm)
            if entry is None:
                raise JitError(f"call to unknown helper {insn.imm}", insn_idx=idx, code=insn.code)
            self._helper_call(idx, insn.imm, entry)
        else:
            raise JitError("kfunc calls are not supported by the JIT", insn_idx=idx, code=insn.code)

    def _local_call(self, idx: int, target: int) -> None:
        buf = self.buf
        if self.checked:
            depth = _rs(RunStateField.DEPTH)
            buf.emit(x.alu_ri(x.AluOp.ADD, depth, 1, 64))
            buf.emit(x.alu_ri(x.AluOp.CMP, depth, MAX_CALL_FRAMES - 1, 64))
            buf.jcc(Cond.A, self._abort(RunStatus.CALL_DEPTH, idx))
        buf.rip_ref(_CALL_REL32, ("func", target))
        if self.checked:
            buf.emit(x.alu_ri(x.AluOp.SUB, _rs(RunStateField.DEPTH), 1, 64))

    def _helper_call(self, idx: int, key: int | str, entry: HelperEntry) -> None:
        buf = self.buf
        impl = entry.impl
        if isinstance(impl, TailCall):
            self._tail_call(impl)
            return
        if isinstance(impl, PythonHelper):
            buf.emit(x.mov_store_imm(_rs(RunStateField.CALL_PC), idx, 64))
        buf.mark(0, ("call", key))
        if isinstance(impl, NativeStub):
            self.stub_impls[key] = impl
            buf.rip_ref(_CALL_REL32, ("stub", key))
        else:
            self.slots[key] = entry
            buf.rip_ref(x.call_mem(Mem(None, 0))[:-4], ("slot", key))
        if isinstance(impl, PythonHelper):
            buf.emit(x.alu_ri(x.AluOp.CMP, _rs(RunStateField.STATUS), 0, 64))
            buf.jcc(Cond.NE, "bail")
        if entry.unwind_on_zero:
            buf.emit(x.test_rr(_RAX, _RAX))
            buf.jcc(Cond.E, "bail")

    def _tail_call(self, impl: TailCall) -> None:
        """bpf_tail_call(ctx=R1, array=R2, index=R3), in the kernel's order: bounds, counter, slot."""
        buf = self.buf
        e = buf.emit
        out = buf.new_label()
        rsi, rdx = x.RSI, x.RDX
        e(x.alu_rm(x.AluOp.CMP, rdx, Mem(rsi, impl.max_entries_off), 32))
        buf.jcc(Cond.AE, out)
        cnt = _rs(RunStateField.TAIL_CALL_CNT)
        e(x.alu_ri(x.AluOp.CMP, cnt, MAX_TAIL_CALL_CNT, 64))
        buf.jcc(Cond.AE, out)
        e(x.alu_ri(x.AluOp.ADD, cnt, 1, 64))
        e(x.mov_rr(_T2, rdx, 32))  # the index is a u32
        e(x.mov_load(_T1, Mem(rsi, impl.ptrs_off, _T2, 8)))
        e(x.test_rr(_T1, _T1))
        buf.jcc(Cond.E, out)
        e(x.jmp_r(_T1))
        buf.label(out)

    def _callx(self, idx: int, insn: Insn, info: OpInfo) -> None:
        """``call rN`` (not in Linux; uBPF and the conformance suite have it): dispatch on the
        helper id held in a register, by comparing with every id in the table."""
        buf = self.buf
        e = buf.emit
        done = buf.new_label()
        e(x.mov_rr(_T2, self._reg(insn.dst)))
        for key, entry in sorted(self.helpers.items()):
            if isinstance(entry.impl, TailCall):
                continue
            nxt = buf.new_label()
            if x.fits_i32(key):
                e(x.alu_ri(x.AluOp.CMP, _T2, key, 64))
            else:  # pragma: no cover - helper ids are small
                continue
            buf.jcc(Cond.NE, nxt)
            self._helper_call(idx, key, entry)
            buf.jmp(done)
            buf.label(nxt)
        e(x.mov_store(_rs(RunStateField.DETAIL), _T2))
        buf.jmp(self._abort(RunStatus.UNKNOWN_HELPER, idx))
        buf.label(done)

    # -- loads and stores -------------------------------------------------------------------------
    def _lddw(self, idx: int, insn: Insn, info: OpInfo) -> None:
        buf = self.buf
        dst = self._reg(insn.dst)
        src = insn.src
        if src == PseudoSrc.NONE:
            self._load_imm(dst, insn.imm)
        elif src == PseudoSrc.MAP_FD:
            buf.emit(x.movabs(dst, 0))
            buf.mark(8, ("map", insn.imm_lo))
        elif src == PseudoSrc.MAP_VALUE:
            buf.emit(x.movabs(dst, 0))
            buf.mark(8, ("map_value", insn.imm_lo, insn.imm_hi))
        elif src == PseudoSrc.FUNC:  # a callback's address: its entry from native code (see _callback_entry)
            target = idx + 1 + _s32(insn.imm)
            self.callbacks.add(target)
            head = x.lea(dst, Mem(None, 0))[:-4]
            buf.rip_ref(head, ("cb", target))
        else:
            raise JitError(f"lddw with src {src} must be resolved before JIT (contract 1)", insn_idx=idx,
                           code=insn.code)

    def _ld_packet(self, idx: int, insn: Insn, info: OpInfo) -> None:
        """LD_ABS/LD_IND: R0 = big-endian packet bytes at (R6 is the context) imm [+ src]; out of the
        packet, the current function returns 0. R1-R5 are clobbered, as for a helper call."""
        if self.packet_loader is None or isinstance(self.packet_loader.impl, TailCall):
            raise JitError("LD_ABS/LD_IND need a packet loader (compile_program(packet_loader=...))",
                           insn_idx=idx, code=insn.code)
        buf = self.buf
        e = buf.emit
        imm = _s32(insn.imm)
        if info.mode == Mode.IND:
            e(x.mov_rr(x.RSI, self._reg(insn.src)))
            if imm:
                e(x.alu_ri(x.AluOp.ADD, x.RSI, imm, 64))
            e(x.movsx(x.RSI, x.RSI, 32, 64))  # the kernel's helper takes an int offset
        else:
            e(x.mov_ri(x.RSI, imm, 64))
        e(x.mov_rr(x.RDI, self._reg(6)))
        assert info.size is not None
        e(x.mov_ri(x.RDX, info.size.bytes, 32))
        self._helper_call(idx, PACKET_LOADER, self.packet_loader)
        ok = buf.new_label()
        e(x.mov_rr(_T2, _RAX))
        e(x.shift_ri(x.ShiftOp.SHR, _T2, 32, 64))
        buf.jcc(Cond.E, ok)
        e(x.alu_rr(x.AluOp.XOR, _RAX, _RAX, 32))
        buf.jmp("epilogue")
        buf.label(ok)

    def _check_access(self, idx: int, base: int, off: int, size: int, store: bool) -> None:
        """Checked mode: validate ``[base + off, +size)`` before the access (see _emit_mem_check)."""
        if not self.checked:
            return
        self.uses_mem_check = True
        e = self.buf.emit
        e(x.lea(_T2, Mem(self._reg(base), off)))
        e(x.mov_ri(_T1, (idx << 8) | (int(store) << 4) | size, 32))
        self.buf.rip_ref(_CALL_REL32, "mem_check")

    def _emit_mem_check(self) -> None:
        """The checked-mode access check, called with r11 = address and r9 = (slot << 8) |
        (is_store << 4) | size; preserves every register but the flags.

        An access is valid inside the live part of a stack frame — ``[fp - 512, fp)`` of the frame at
        each depth 0..current (frames are FRAME_STRIDE bytes apart) — or inside an entry of the
        region table ``(lo, hi, writable)`` the runtime put in the run state (stores only into
        writable ones). Anything else, and any access that wraps around the address space, records a
        MEMORY_FAULT and unwinds to the main frame.
        """
        buf = self.buf
        e = buf.emit
        rax, rcx, rdx, rsi = _RAX, _RCX, _RDX, x.RSI
        ok, fault, sloop, snext, rloop, rnext = (buf.new_label() for _ in range(6))
        buf.align(16)
        buf.label("mem_check")
        for r in (rax, rcx, rdx, rsi):
            e(x.push(r))
        e(x.mov_rr(rax, _T1, 32))
        e(x.alu_ri(x.AluOp.AND, rax, 0xF, 32))
        e(x.lea(rcx, Mem(_T2, 0, rax)))  # end = address + size
        e(x.alu_rr(x.AluOp.CMP, rcx, _T2))
        buf.jcc(Cond.B, fault)  # wrapped around
        e(x.mov_load(rdx, _rs(RunStateField.MAIN_RBP)))
        e(x.mov_load(rsi, _rs(RunStateField.DEPTH)))
        buf.label(sloop)
        e(x.alu_rr(x.AluOp.CMP, rcx, rdx))
        buf.jcc(Cond.A, snext)
        e(x.lea(rax, Mem(rdx, -CHECKED_STACK)))
        e(x.alu_rr(x.AluOp.CMP, _T2, rax))
        buf.jcc(Cond.AE, ok)
        buf.label(snext)
        e(x.alu_ri(x.AluOp.SUB, rdx, FRAME_STRIDE))
        e(x.alu_ri(x.AluOp.SUB, rsi, 1))
        buf.jcc(Cond.NS, sloop)
        e(x.mov_load(rdx, _rs(RunStateField.REGIONS)))
        e(x.mov_load(rsi, _rs(RunStateField.NREGIONS)))
        buf.label(rloop)
        e(x.test_rr(rsi, rsi))
        buf.jcc(Cond.E, fault)
        e(x.alu_rm(x.AluOp.CMP, _T2, Mem(rdx, 0)))
        buf.jcc(Cond.B, rnext)
        e(x.alu_rm(x.AluOp.CMP, rcx, Mem(rdx, 8)))
        buf.jcc(Cond.A, rnext)
        e(x.test_ri(_T1, 0x10, 32))
        buf.jcc(Cond.E, ok)  # a load
        e(x.alu_ri(x.AluOp.CMP, Mem(rdx, 16), 0))
        buf.jcc(Cond.NE, ok)  # a store into a writable region
        buf.label(rnext)
        e(x.alu_ri(x.AluOp.ADD, rdx, 24))
        e(x.alu_ri(x.AluOp.SUB, rsi, 1))
        buf.jmp(rloop)
        buf.label(ok)
        for r in (rsi, rdx, rcx, rax):
            e(x.pop(r))
        e(x.ret())
        buf.label(fault)
        e(x.mov_store(_rs(RunStateField.DETAIL), _T2))
        e(x.mov_store(_rs(RunStateField.FAULT), _T1))
        e(x.shift_ri(x.ShiftOp.SHR, _T1, 8))
        e(x.mov_store(_rs(RunStateField.ERROR_INSN), _T1))
        e(x.mov_store_imm(_rs(RunStateField.STATUS), int(RunStatus.MEMORY_FAULT), 64))
        e(x.alu_rr(x.AluOp.XOR, rax, rax, 32))
        buf.jmp("bail")

    def _ldx(self, idx: int, insn: Insn, info: OpInfo) -> None:
        e = self.buf.emit
        dst = self._reg(insn.dst)
        m = Mem(self._reg(insn.src), insn.off)
        assert info.size is not None
        bits = _BITS[info.size]
        self._check_access(idx, insn.src, insn.off, bits // 8, store=False)
        if info.mode == Mode.MEMSX:
            e(x.movsx(dst, m, bits, 64))
        elif bits <= 16:
            e(x.movzx(dst, m, bits, 32))
        else:
            e(x.mov_load(dst, m, bits))

    def _st(self, idx: int, insn: Insn, info: OpInfo) -> None:
        assert info.size is not None
        bits = _BITS[info.size]
        self._check_access(idx, insn.dst, insn.off, bits // 8, store=True)
        imm = _s32(insn.imm)
        self.buf.emit(x.mov_store_imm(Mem(self._reg(insn.dst), insn.off), imm if bits == 64 else imm & _M32, bits))

    def _stx(self, idx: int, insn: Insn, info: OpInfo) -> None:
        assert info.size is not None
        self._check_access(idx, insn.dst, insn.off, _BITS[info.size] // 8, store=True)
        self.buf.emit(x.mov_store(Mem(self._reg(insn.dst), insn.off), self._reg(insn.src), _BITS[info.size]))

    def _atomic(self, idx: int, insn: Insn, info: OpInfo) -> None:
        buf = self.buf
        e = buf.emit
        assert info.size is not None
        bits = _BITS[info.size]
        base = self._reg(insn.dst)
        val = self._reg(insn.src)
        m = Mem(base, insn.off)
        try:
            op = AtomicOp(insn.imm)
        except ValueError:
            raise JitError(f"unknown atomic operation {insn.imm:#x}", insn_idx=idx, code=insn.code) from None
        self._check_access(idx, insn.dst, insn.off, bits // 8, store=True)
        if op in _ATOMIC_OPS:
            e(x.lock_alu_mr(_ATOMIC_OPS[op], m, val, bits))
        elif op == AtomicOp.FETCH_ADD:
            e(x.lock_xadd(m, val, bits))
        elif op == AtomicOp.XCHG:
            e(x.xchg_mr(m, val, bits))
        elif op == AtomicOp.CMPXCHG:
            e(x.lock_cmpxchg(m, val, bits))
            if bits == 32:
                e(x.mov_rr(_RAX, _RAX, 32))  # r0 = the old value, zero-extended, also on success
        else:  # fetch and/or/xor: a compare-and-exchange loop (rax is R0: keep it in r9)
            xop = _ATOMIC_OPS[op.base]
            e(x.mov_rr(_T1, _RAX))
            if base == _RAX:
                m = Mem(_T1, insn.off)
            operand = _T1 if val == _RAX else val
            e(x.mov_load(_RAX, m, bits))
            loop = buf.new_label()
            buf.label(loop)
            e(x.mov_rr(_T2, _RAX, bits))
            e(x.alu_rr(xop, _T2, operand, bits))
            e(x.lock_cmpxchg(m, _T2, bits))
            buf.jcc(Cond.NE, loop)
            if val != _RAX:
                e(x.mov_rr(val, _RAX, bits))
                e(x.mov_rr(_RAX, _T1))


def _prev_slot(insns: Insns, idx: int) -> int:
    prev = idx - 1
    if not insns.is_insn_start(prev):
        prev -= 1
    return prev


def _writes_r10(insn: Insn, info: OpInfo) -> bool:
    if info.kind in (Kind.ALU, Kind.END, Kind.LDDW, Kind.LDX):
        return insn.dst == 10
    if info.kind is Kind.ATOMIC:
        return insn.src == 10 and (insn.imm & 0x01) == 1  # fetch forms write src
    return False


def _build_dispatch() -> dict[Kind, _Emitter]:
    by_kind: dict[Kind, _Emitter] = {
        Kind.ALU: _Codegen._alu,
        Kind.END: _Codegen._end,
        Kind.JA: _Codegen._ja,
        Kind.JCOND: _Codegen._jcond,
        Kind.MAY_GOTO: _Codegen._may_goto,
        Kind.CALL: _Codegen._call,
        Kind.CALLX: _Codegen._callx,
        Kind.EXIT: _Codegen._exit,
        Kind.LDDW: _Codegen._lddw,
        Kind.LD_ABS: _Codegen._ld_packet,
        Kind.LD_IND: _Codegen._ld_packet,
        Kind.LDX: _Codegen._ldx,
        Kind.ST: _Codegen._st,
        Kind.STX: _Codegen._stx,
        Kind.ATOMIC: _Codegen._atomic,
    }
    missing = {info.kind for info in OPCODES.values()} - set(by_kind)
    assert not missing, f"no JIT emitter for {missing}"
    return by_kind


_DISPATCH = _build_dispatch()
