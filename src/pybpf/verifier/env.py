"""The verifier's environment (``struct bpf_verifier_env``): the program, per-instruction side data,
options, the log, the current state, id generation — and the small register helpers every check
uses (``check_reg_arg``, ``mark_reg_read``, scratch marks, pointer predicates).

A check that fails writes the kernel's message with :meth:`VerifierEnv.verbose` and raises
:class:`Reject` carrying the errno; the walk turns it into a :class:`pybpf.errors.VerifierError`.
"""

from __future__ import annotations

import errno as E
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from pybpf.isa import Insn
from pybpf.progtypes.context import ProgInfo, ProgTypeDescriptor
from pybpf.progtypes.types import BASE_TYPE_MASK, RegType, TypeFlag
from pybpf.verifier.log import Msg, VerifierLog
from pybpf.verifier.regs import (
    REG_LIVE_DONE,
    REG_LIVE_READ,
    REG_LIVE_READ32,
    REG_LIVE_READ64,
    REG_LIVE_WRITTEN,
    RegState,
    mark_reg_unknown,
)

if TYPE_CHECKING:
    from pybpf.verifier.state import FuncState, VerifierState

__all__ = ["InsnAux", "MapLike", "Reject", "SubprogInfo", "VerifierEnv"]

BPF_REG_FP = 10
MAX_BPF_STACK = 512
BPF_MAX_VAR_OFF = 1 << 29
BPF_COMPLEXITY_LIMIT_INSNS = 1_000_000
BPF_COMPLEXITY_LIMIT_JMP_SEQ = 8192
BPF_COMPLEXITY_LIMIT_STATES = 64
MAX_CALL_FRAMES = 8

SRC_OP = 0
DST_OP = 1
DST_OP_NO_MARK = 2

# register-type groups used by many checks
PKT_TYPES = (RegType.PTR_TO_PACKET, RegType.PTR_TO_PACKET_META)
SK_TYPES = (RegType.PTR_TO_SOCKET, RegType.PTR_TO_SOCK_COMMON, RegType.PTR_TO_TCP_SOCK, RegType.PTR_TO_XDP_SOCK)


class MapLike(Protocol):
    """What the verifier needs to know about a map (contract 3; ``kernel/maps/*`` implement it).

    Optional attributes read with ``getattr``: ``inner_map_meta`` (a MapLike for map-in-map),
    ``frozen``, ``btf_key_type``/``btf_value_type``, ``value_area_offset`` (global data), and
    ``gen_lookup(insns) -> list[Insn] | None`` (the inline ``bpf_map_lookup_elem`` sequence, as
    the kernel's ``map_gen_lookup``; ``None`` when the map has none).
    """

    id: int
    name: str
    map_type: int
    key_size: int
    value_size: int
    max_entries: int
    map_flags: int


class Reject(Exception):
    """A check failed: ``errno`` is what PROG_LOAD returns (the message is already in the log)."""

    def __init__(self, err: int, message: str | None = None) -> None:
        super().__init__(err)
        self.errno = err
        # the headline when the log's last line is not it (e.g. a state dump follows the error)
        self.message = message


@dataclass
class InsnAux:
    """``struct bpf_insn_aux_data``: what the walk learns about one instruction for the fixups."""

    seen: bool = False
    ptr_type: int = -1  # type of the pointer a load/store used (-1: never seen)
    ctx_field_size: int = 0
    map_ptr: Any = None  # map of a helper call's R1, or the lddw's map
    map_ptr_poisoned: bool = False
    map_key_const: int | None = None
    map_key_poisoned: bool = False
    map_index: int = -1  # lddw: index in used_maps
    map_off: int = 0  # lddw of a map value: offset
    helper_proto: Any = None
    call_imm: int = 0
    zext_dst: bool = False
    needs_zext: bool = False
    prune_point: bool = False
    jmp_point: bool = False
    force_checkpoint: bool = False
    calls_callback: bool = False
    is_iter_next: bool = False
    loop_inline_state: Any = None
    alu_state: int = 0
    alu_limit: int = 0
    sanitize_stack_spill: bool = False
    subprogno: int = 0
    dead: bool = False
    orig_idx: int = 0
    nospec: bool = False
    nospec_result: bool = False
    jump_target: bool = False  # the target of a jump or call edge (check_cfg), for bpf_fastcall
    fastcall_pattern: bool = False  # a spill, fill or call of a bpf_fastcall pattern
    fastcall_spills_num: int = 0  # call: spill/fill pairs around it that can go


@dataclass
class SubprogInfo:
    """``struct bpf_subprog_info``."""

    start: int
    stack_depth: int = 0
    has_tail_call: bool = False
    tail_call_reachable: bool = False
    has_ld_abs: bool = False
    is_cb: bool = False
    is_async_cb: bool = False
    is_exception_cb: bool = False
    is_global: bool = False
    name: str = ""
    linkage: int = 0
    changes_pkt_data: bool = False
    arg_cnt: int = 0
    args: list[Any] = field(default_factory=list)  # SubprogArg per argument once prepared
    args_cached: bool = False
    btf_type_id: int = 0  # the BTF FUNC of this function (0: no BTF for it)
    unreliable: bool = False  # its BTF prototype did not match a call: not checked again
    called: bool = False
    fastcall_stack_off: int = 0  # stack offsets below this hold only bpf_fastcall spills/fills
    keep_fastcall_stack: bool = False  # a pattern stays (call not inlined): keep the stack depth


def base_type(t: int) -> int:
    return t & BASE_TYPE_MASK


def type_may_be_null(t: int) -> bool:
    return bool(t & TypeFlag.PTR_MAYBE_NULL)


def reg_type_is_pkt(t: int) -> bool:
    return t == RegType.PTR_TO_PACKET or t == RegType.PTR_TO_PACKET_META


class VerifierEnv:
    """One verification run. Options are plain attributes (the kernel's env fields)."""

    def __init__(
        self,
        insns: list[Insn],
        *,
        desc: ProgTypeDescriptor,
        prog: ProgInfo,
        log_level: int = 0,
        prog_flags: int = 0,
        maps: dict[int, Any] | None = None,
        unprivileged: bool = False,
        liveness_marks: bool = True,
        gpl: bool = True,
    ) -> None:
        # raw slots: insns_by_slot[i] is the instruction starting at slot i (None for lddw halves)
        self.prog_insns = insns
        self.insns: list[Insn | None] = []
        for insn in insns:
            self.insns.append(insn)
            if insn.code == 0x18:
                self.insns.append(None)
        self.insn_cnt = len(self.insns)
        self.aux = [InsnAux(orig_idx=i) for i in range(self.insn_cnt)]
        self.desc = desc
        self.prog = prog
        self.log = VerifierLog(log_level)
        self.liveness_marks = liveness_marks
        self.prog_flags = prog_flags
        self.maps = maps or {}
        self.used_maps: list[Any] = []
        self.gpl = gpl
        # bpf_capable: CAP_BPF; the rest follow CAP_PERFMON (bpf_allow_ptr_leaks & co.)
        self.bpf_capable = "CAP_BPF" in prog.caps and not unprivileged
        perfmon = "CAP_PERFMON" in prog.caps and not unprivileged
        self.allow_ptr_leaks = perfmon
        self.allow_uninit_stack = perfmon
        self.bypass_spec_v1 = perfmon
        self.bypass_spec_v4 = perfmon
        self.strict_alignment = bool(prog_flags & 1)
        if prog_flags & 2:
            self.strict_alignment = False
        self.test_state_freq = bool(prog_flags & 8)
        self.test_reg_invariants = bool(prog_flags & 128)
        self.cur_state: VerifierState = None  # type: ignore[assignment]
        self.insn_idx = 0
        self.prev_insn_idx = -1
        self.id_gen = 0
        self.scratched_regs = 0
        self.scratched_stack = 0
        self.subprog_info: list[SubprogInfo] = []
        self.insn_processed = 0
        self.prev_insn_processed = 0
        self.jmps_processed = 0
        self.prev_jmps_processed = 0
        self.total_states = 0
        self.peak_states = 0
        self.max_states_per_insn = 0
        self.longest_mark_read_walk = 0
        self.explored: dict[int, list[Any]] = {}
        self.head: list[Any] = []  # branch stack (push_stack/pop_stack), top = last
        self.prev_log_pos = 0
        self.prev_insn_print_pos = 0
        self.prev_linfo: Any = None
        self.linfo_by_idx: dict[int, Any] = {}
        self.seen_direct_write = False
        self.has_tail_call = False
        self.changes_pkt_data = False
        self.pass_cnt = 0
        self.msg_mark = 0
        self.recent: list[str] = []
        self.fake_reg = RegState()
        self.cfg_insn_state: list[int] = []
        self.exception_callback_subprog = 0
        self.max_ctx_offset = 0
        self.max_pkt_offset = 0
        self.callback_subprogs: set[int] = set()
        self.seen_exception = False
        self.deadline: float | None = None
        from pybpf.verifier.precision import Backtrack

        self.bt = Backtrack()
        self.cur_hist_ent: list[Any] | None = None

    # -- log ------------------------------------------------------------------------------------
    def verbose(self, text: str) -> None:
        """``verbose(env, ...)``: append to the log when logging; always keep it for the error."""
        self.recent.append(text)
        if self.log.level:
            self.log.write(text)

    def fail(self, err: int, text: str) -> Reject:
        """Log ``text`` (a kernel message, newline added) and return the Reject to raise."""
        self.verbose(text + "\n")
        return Reject(err)

    # -- state access ---------------------------------------------------------------------------
    @property
    def cur_frame(self) -> FuncState:
        st = self.cur_state
        return st.frame[st.curframe]

    @property
    def regs(self) -> list[RegState]:
        st = self.cur_state
        return st.frame[st.curframe].regs

    def func(self, reg: RegState) -> FuncState:
        """``func(env, reg)``: the frame a stack pointer points into."""
        return self.cur_state.frame[reg.frameno]

    def mark_reg_scratched(self, regno: int) -> None:
        self.scratched_regs |= 1 << regno

    def mark_stack_slot_scratched(self, spi: int) -> None:
        self.scratched_stack |= 1 << spi

    def mark_verifier_state_scratched(self) -> None:
        self.scratched_regs = (1 << 11) - 1
        self.scratched_stack = -1

    def mark_verifier_state_clean(self) -> None:
        self.scratched_regs = 0
        self.scratched_stack = 0

    def state_scratched(self) -> bool:
        return bool(self.scratched_regs or self.scratched_stack)

    # -- registers -------------------------------------------------------------------------------
    def mark_reg_unknown(self, reg: RegState) -> None:
        mark_reg_unknown(reg, self.bpf_capable)

    def mark_reg_read(self, state: RegState, parent: RegState | None, flag: int) -> None:
        """Propagate a read mark up the parent chain (liveness for state pruning)."""
        writes = parent is state.parent
        cnt = 0
        while parent is not None:
            if writes and state.live & REG_LIVE_WRITTEN:
                break
            if parent.live & REG_LIVE_DONE:
                raise self.fail(E.EFAULT, Msg.VERIFIER_BUG_TYPE_VAR_OFF_OFF.format(parent.type, parent.var_off.value,
                                                                                   parent.off))
            if (parent.live & REG_LIVE_READ) == flag or parent.live & REG_LIVE_READ64:
                break
            parent.live |= flag
            if flag == REG_LIVE_READ64:
                parent.live &= ~REG_LIVE_READ32
            state = parent
            parent = state.parent
            writes = True
            cnt += 1
        if self.longest_mark_read_walk < cnt:
            self.longest_mark_read_walk = cnt

    def is_reg64(self, insn: Insn, regno: int, reg: RegState, t: int) -> bool:
        """``is_reg64``: does the instruction read/write all 64 bits of ``regno``?"""
        code = insn.code
        cls = code & 7
        op = code & 0xF0
        if cls == 5:
            if op == 0x90:
                return True
            if op == 0x80:
                if insn.src == 1:
                    return False
                return t == SRC_OP
        if cls == 7 and op == 0xD0 and insn.imm in (16, 32):
            return False
        if cls in (7, 5) or (cls == 4 and op == 0xD0 and insn.imm == 64):
            return True
        if cls in (4, 6):
            return False
        if cls == 1:
            if t != SRC_OP:
                return (code & 0x18) == 0x18 or (code & 0xE0) == 0x80
            return True
        if cls == 3:
            if t == SRC_OP and reg.type != RegType.SCALAR_VALUE:
                return True
            return (code & 0x18) == 0x18
        if cls == 0:
            if (code & 0xE0) == 0:
                return True
            return t == SRC_OP
        return True

    def check_reg_arg(self, regno: int, t: int) -> None:
        """``check_reg_arg``: R<regno> may be read (``SRC_OP``) / written (``DST_OP``...)."""
        regs = self.regs
        if regno >= 11:
            raise self.fail(E.EINVAL, Msg.R_IS_INVALID.format(regno))
        self.scratched_regs |= 1 << regno
        reg = regs[regno]
        insn = self.insns[self.insn_idx]
        if t == SRC_OP:
            if reg.type == RegType.NOT_INIT:
                raise self.fail(E.EACCES, Msg.R_NOT_READ_OK.format(regno))
            if regno == BPF_REG_FP:
                return
            rw64 = self.is_reg64(insn, regno, reg, t) if insn is not None else True
            self.mark_reg_read(reg, reg.parent, REG_LIVE_READ64 if rw64 else REG_LIVE_READ32)
        else:
            if regno == BPF_REG_FP:
                raise self.fail(E.EACCES, Msg.FRAME_POINTER_IS_READ_ONLY)
            reg.live |= REG_LIVE_WRITTEN
            rw64 = self.is_reg64(insn, regno, reg, t) if insn is not None else True
            reg.subreg_def = 0 if rw64 else self.insn_idx + 1
            if t == DST_OP:
                mark_reg_unknown(reg, self.bpf_capable)

    def is_pointer_value(self, regno: int) -> bool:
        if self.allow_ptr_leaks:
            return False
        return self.regs[regno].type != RegType.SCALAR_VALUE

    def next_id(self) -> int:
        self.id_gen += 1
        return self.id_gen

    # -- subprograms ------------------------------------------------------------------------------
    def find_subprog(self, off: int) -> int:
        for i, s in enumerate(self.subprog_info):
            if s.start == off:
                return i
        return -1

    def check_reg_arg_on(self, regs: list[RegState], regno: int, t: int) -> None:
        """``__check_reg_arg`` on an explicit register file (the caller's, after a call)."""
        self.scratched_regs |= 1 << regno
        reg = regs[regno]
        if t != SRC_OP:
            reg.live |= REG_LIVE_WRITTEN
            insn = self.insns[self.insn_idx]
            rw64 = self.is_reg64(insn, regno, reg, t) if insn is not None else True
            reg.subreg_def = 0 if rw64 else self.insn_idx + 1
            if t == DST_OP:
                mark_reg_unknown(reg, self.bpf_capable)

    def precise_pruning(self, reg: RegState) -> bool:
        """Whether state pruning compares this scalar's range: only precise ones (see
        :mod:`pybpf.verifier.precision`)."""
        return reg.precise

    has_func_info = False
    explore_alu_limits = False  # set by unprivileged pointer arithmetic with an unknown offset
    btf: Any = None  # the program's BTF (a BtfSpec), for subprogram prototypes
    nr_cpu_ids = 64
