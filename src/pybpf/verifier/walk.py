"""The walk: ``do_check`` over every path, with the branch stack and state pruning.

``push_stack``/``pop_stack`` keep the paths still to explore (``BPF_COMPLEXITY_LIMIT_JMP_SEQ``);
``is_state_visited`` compares the current state with the states already explored at a prune point
(``states_equal`` → ``regsafe``/``stacksafe``/``refsafe`` with id maps) and stops a path that is
covered, detects infinite loops, and records checkpoints (with the liveness parent chains);
``do_check`` dispatches each instruction to its check and counts processed instructions against
the 1,000,000 limit. Logging at levels 1 and 2 follows the kernel's ``do_check`` exactly.
"""

from __future__ import annotations

import errno as E
import time
from dataclasses import dataclass
from typing import Any

from pybpf.isa import Insn
from pybpf.isa.disasm import verifier_linfo_text
from pybpf.progtypes.types import RegType, TypeFlag
from pybpf.verifier.checks.mem import check_atomic, check_load_mem, check_st_mem, check_store_reg
from pybpf.verifier.env import (
    BPF_COMPLEXITY_LIMIT_INSNS,
    BPF_COMPLEXITY_LIMIT_JMP_SEQ,
    BPF_COMPLEXITY_LIMIT_STATES,
    DST_OP,
    SRC_OP,
    Reject,
    VerifierEnv,
)
from pybpf.verifier.log import Msg, format_insn, format_state, insn_state_prefix
from pybpf.verifier.precision import propagate_precision, push_insn_history
from pybpf.verifier.regs import (
    BPF_ADD_CONST,
    REG_LIVE_DONE,
    REG_LIVE_NONE,
    REG_LIVE_READ,
    REG_LIVE_READ64,
    RegState,
    __mark_reg_known,
    mark_reg_known_zero,
    mark_reg_not_init,
    mark_reg_unknown,
)
from pybpf.verifier.state import (
    STACK_INVALID,
    STACK_MISC,
    STACK_SPILL,
    STACK_ZERO,
    FuncState,
    StackSlot,
    VerifierState,
)
from pybpf.verifier.tnum import U64

__all__ = ["do_check_main", "pop_stack", "print_insn_state", "push_stack", "verbose_linfo"]

NOT_EXACT, EXACT, RANGE_WITHIN = 0, 1, 2


@dataclass
class StackElem:
    """One entry of the branch stack (``bpf_verifier_stack_elem``): a state to explore from ``insn_idx``."""
    st: VerifierState
    insn_idx: int
    prev_insn_idx: int
    log_pos: int


@dataclass
class StateListEntry:
    """An explored state kept at a prune point (``bpf_verifier_state_list``) with its hit/miss counts."""
    state: VerifierState
    hit_cnt: int = 0
    miss_cnt: int = 0


# -- logging helpers --------------------------------------------------------------------------------


def verbose_linfo(env: VerifierEnv, insn_idx: int, prefix: str) -> None:
    """``verbose_linfo``: the source line of ``insn_idx`` when it changed since the last one."""
    if not env.log.level:
        return
    linfo = env.linfo_by_idx.get(insn_idx)
    if linfo is None:
        return
    prev = env.prev_linfo
    if prev is not None and prev.file == linfo.file and prev.line == linfo.line:
        return
    env.log.write(prefix + verifier_linfo_text(linfo) + "\n")
    env.prev_linfo = linfo


def print_state(env: VerifierEnv, frame: FuncState, print_all: bool) -> None:
    """``print_verifier_state`` into the log; a partial print (only scratched registers/slots) clears the
    scratch marks."""
    if not env.log.level:
        return
    refs = tuple(r.id for r in frame.refs if r.id)
    env.log.write(format_state(frame, print_all=print_all, scratched_regs=env.scratched_regs,
                               scratched_stack=env.scratched_stack, liveness=env.liveness_marks, refs=refs))
    if not print_all:
        env.mark_verifier_state_clean()


def print_insn_state(env: VerifierEnv, frame: FuncState) -> None:
    """``print_insn_state``: the state after an instruction, on its line when nothing intervened."""
    log = env.log
    if env.prev_log_pos and env.prev_log_pos == log.end_pos:
        log.reset(env.prev_log_pos - 1)
        log.write(insn_state_prefix(env.prev_insn_print_pos))
    else:
        log.write(f"{env.insn_idx}:")
    print_state(env, frame, False)


def _imm64(env: VerifierEnv) -> Any:
    def value(insn: Insn) -> int:
        if insn.src in (1, 5):
            m = env.aux[env.insn_idx].map_ptr
            return 0xFFFF888100000000 + ((getattr(m, "id", 0) or 0) << 12) if m is not None else insn.imm
        if insn.src in (2, 6):
            m = env.aux[env.insn_idx].map_ptr
            base = 0xFFFFC90000000000 + ((getattr(m, "id", 0) or 0) << 16) if m is not None else 0
            return base + env.aux[env.insn_idx].map_off
        return insn.imm & U64
    return value


def _call_name(insn: Insn) -> str | None:
    from pybpf.progtypes import internal

    if insn.src == 0 and internal.is_internal(insn.imm):
        return internal.by_id(insn.imm).name
    return None


# -- states ---------------------------------------------------------------------------------------


def init_func_state(env: VerifierEnv, state: FuncState) -> None:
    """``init_func_state``: a fresh frame (all registers NOT_INIT, R10 the frame pointer); every register counts
    as scratched for the next state print."""
    for reg in state.regs:
        mark_reg_not_init(reg, env.bpf_capable)
        reg.live = REG_LIVE_NONE
        reg.parent = None
        reg.subreg_def = 0
    fp = state.regs[10]
    fp.type = RegType.PTR_TO_STACK
    mark_reg_known_zero(fp)
    fp.frameno = state.frameno
    env.mark_verifier_state_scratched()


def push_stack(env: VerifierEnv, insn_idx: int, prev_insn_idx: int, speculative: bool) -> VerifierState:
    """``push_stack``: save a copy of the current state to explore later from ``insn_idx`` (the other side of a
    branch); E2BIG past 8192 pending branches."""
    st = env.cur_state.copy()
    st.speculative |= speculative
    env.head.append(StackElem(st, insn_idx, prev_insn_idx, env.log.end_pos))
    if len(env.head) > BPF_COMPLEXITY_LIMIT_JMP_SEQ:
        raise env.fail(E.E2BIG, Msg.THE_SEQUENCE_OF_JUMPS_IS_TOO.format(len(env.head)))
    if st.parent is not None:
        st.parent.branches += 1
    return st


def pop_stack(env: VerifierEnv, pop_log: bool) -> tuple[int, int] | None:
    """``pop_stack``: continue with the most recently pushed state, or return None when every path is done."""
    if not env.head:
        return None
    elem = env.head.pop()
    env.cur_state = elem.st
    if pop_log:
        env.log.reset(elem.log_pos)
    return elem.insn_idx, elem.prev_insn_idx


def get_loop_entry(st: VerifierState) -> VerifierState | None:
    """The outermost loop header ``st`` belongs to (path-compressing, as the kernel does)."""
    topmost = st.loop_entry
    while topmost is not None and topmost.loop_entry is not None and topmost is not topmost.loop_entry:
        topmost = topmost.loop_entry
    cur: VerifierState | None = st
    while cur is not None and cur.loop_entry is not topmost:
        old = cur.loop_entry
        cur.loop_entry = topmost
        cur = old
    return topmost


def update_loop_entry(cur: VerifierState, hdr: VerifierState) -> None:
    """Record that ``cur`` is inside the loop headed by ``hdr`` when that header is still on the path."""
    cur1 = get_loop_entry(cur) or cur
    hdr1 = get_loop_entry(hdr) or hdr
    if hdr1.branches and hdr1.dfs_depth <= cur1.dfs_depth:
        cur.loop_entry = hdr
        hdr.used_as_loop_entry = True


def update_branch_counts(st: VerifierState | None) -> None:
    """``update_branch_counts``: a finished path releases its parents, whose states become usable for pruning
    once no branch below them is pending."""
    while st is not None:
        st.branches -= 1
        # a finished state hands its loop membership to its parent ("case A" in the kernel's comment)
        if st.branches == 0 and st.parent is not None and st.loop_entry is not None:
            update_loop_entry(st.parent, st.loop_entry)
        if st.branches:
            break
        st = st.parent


class IdMap:
    """``bpf_idmap``: the pairing of ids between an old and a current state that ``regsafe`` builds (ids need
    not be equal, only consistently mapped)."""
    __slots__ = ("map", "tmp_id_gen")

    def __init__(self, tmp_base: int) -> None:
        self.map: dict[int, int] = {}
        self.tmp_id_gen = tmp_base

    def check_ids(self, old_id: int, cur_id: int) -> bool:
        """``check_ids``: ids seen in the old state map to the same ids in the current one."""
        if bool(old_id) != bool(cur_id):
            return False
        if old_id == 0:
            return True
        prev = self.map.get(old_id)
        if prev is not None:
            return prev == cur_id
        if cur_id in self.map.values():
            return False
        self.map[old_id] = cur_id
        return True

    def check_scalar_ids(self, old_id: int, cur_id: int) -> bool:
        """``check_scalar_ids``: like ``check_ids`` for scalar ids, where a fresh id in the current state is
        fine."""
        if not old_id:
            return True
        if not cur_id:
            self.tmp_id_gen += 1
            cur_id = self.tmp_id_gen
        if not self.check_ids(old_id, cur_id):
            return False
        if old_id & BPF_ADD_CONST:
            if not self.check_ids(old_id & ~BPF_ADD_CONST, cur_id & ~BPF_ADD_CONST):
                return False
        return True


def _range_within(old: RegState, cur: RegState) -> bool:
    return (old.umin_value <= cur.umin_value and old.umax_value >= cur.umax_value
            and old.smin_value <= cur.smin_value and old.smax_value >= cur.smax_value
            and old.u32_min_value <= cur.u32_min_value and old.u32_max_value >= cur.u32_max_value
            and old.s32_min_value <= cur.s32_min_value and old.s32_max_value >= cur.s32_max_value)


def _regs_prefix_equal(a: RegState, b: RegState) -> bool:
    """memcmp up to ``var_off``: type, off and the pointer payload."""
    return (a.type == b.type and a.off == b.off and a.map_ptr is b.map_ptr and a.map_uid == b.map_uid
            and a.range == b.range and a.mem_size == b.mem_size and a.btf_struct == b.btf_struct
            and a.subprogno == b.subprogno)


def _regs_exact(old: RegState, cur: RegState, idmap: IdMap) -> bool:
    return (_regs_prefix_equal(old, cur) and old.var_off == cur.var_off
            and old.smin_value == cur.smin_value and old.smax_value == cur.smax_value
            and old.umin_value == cur.umin_value and old.umax_value == cur.umax_value
            and old.s32_min_value == cur.s32_min_value and old.s32_max_value == cur.s32_max_value
            and old.u32_min_value == cur.u32_min_value and old.u32_max_value == cur.u32_max_value
            and idmap.check_ids(old.id, cur.id) and idmap.check_ids(old.ref_obj_id, cur.ref_obj_id))


def regsafe(env: VerifierEnv, rold: RegState, rcur: RegState, idmap: IdMap, exact: int) -> bool:
    """``regsafe``: is the old register at least as general as the current one (so what was proven for it covers
    this path)?"""
    if exact == EXACT:
        return _regs_exact(rold, rcur, idmap)
    if not rold.live & REG_LIVE_READ and exact == NOT_EXACT:
        return True
    if rold.type == RegType.NOT_INIT and (exact == NOT_EXACT or rcur.type == RegType.NOT_INIT):
        return True
    if rold.type != rcur.type:
        return False
    bt = rold.type & 0xFF
    if bt == RegType.SCALAR_VALUE:
        if env.explore_alu_limits:
            # unprivileged pointer arithmetic with unknown offsets was seen: scalars must match
            # exactly so every masking limit gets explored
            return (_regs_prefix_equal(rold, rcur) and rold.var_off == rcur.var_off
                    and _range_within(rold, rcur) and _range_within(rcur, rold)
                    and idmap.check_scalar_ids(rold.id, rcur.id))
        if not env.precise_pruning(rold) and exact == NOT_EXACT:
            return True
        if rold.id & BPF_ADD_CONST and not rcur.id & BPF_ADD_CONST:
            return False
        if rold.id and not rold.id & BPF_ADD_CONST and rcur.id & BPF_ADD_CONST:
            return False
        if rold.id & BPF_ADD_CONST and rold.off != rcur.off:
            return False
        if not idmap.check_scalar_ids(rold.id, rcur.id):
            return False
        return _range_within(rold, rcur) and rold.var_off.in_(rcur.var_off)
    if bt in (RegType.PTR_TO_MAP_KEY, RegType.PTR_TO_MAP_VALUE, RegType.PTR_TO_MEM, RegType.PTR_TO_BUF,
              RegType.PTR_TO_TP_BUFFER):
        return (_regs_prefix_equal(rold, rcur) and _range_within(rold, rcur) and rold.var_off.in_(rcur.var_off)
                and idmap.check_ids(rold.id, rcur.id) and idmap.check_ids(rold.ref_obj_id, rcur.ref_obj_id))
    if bt in (RegType.PTR_TO_PACKET_META, RegType.PTR_TO_PACKET):
        if rold.range < 0 or rcur.range < 0:
            if rold.range != rcur.range:
                return False
        elif rold.range > rcur.range:
            return False
        if rold.off != rcur.off:
            return False
        if not idmap.check_ids(rold.id, rcur.id):
            return False
        return _range_within(rold, rcur) and rold.var_off.in_(rcur.var_off)
    if bt == RegType.PTR_TO_STACK:
        return _regs_exact(rold, rcur, idmap) and rold.frameno == rcur.frameno
    if bt == RegType.PTR_TO_ARENA:
        return True
    return _regs_exact(rold, rcur, idmap)


_UNBOUND = RegState()
_UNBOUND.type = RegType.SCALAR_VALUE
_UNBOUND.live = REG_LIVE_READ


def _scalar_reg_for_stack(env: VerifierEnv, slot: StackSlot) -> RegState | None:
    if all(t == STACK_SPILL for t in slot.slot_type) and slot.spilled_ptr.type == RegType.SCALAR_VALUE:
        return slot.spilled_ptr
    if all(t == STACK_MISC or (t == STACK_INVALID and env.allow_uninit_stack) for t in slot.slot_type):
        return _UNBOUND
    return None


def stacksafe(env: VerifierEnv, old: FuncState, cur: FuncState, idmap: IdMap, exact: int) -> bool:
    """``stacksafe``: the same for every stack slot the old state had read."""
    old_alloc = old.allocated_stack
    cur_alloc = cur.allocated_stack
    i = 0
    while i < old_alloc:
        spi = i // 8
        j = i % 8
        oslot = old.stack[spi]
        otype = oslot.slot_type[j]
        if exact != NOT_EXACT and (i >= cur_alloc or otype != cur.stack[spi].slot_type[j]):
            return False
        if not oslot.spilled_ptr.live & REG_LIVE_READ and exact == NOT_EXACT:
            i += 8 - j
            continue
        if otype == STACK_INVALID:
            i += 1
            continue
        if env.allow_uninit_stack and otype == STACK_MISC:
            i += 1
            continue
        if i >= cur_alloc:
            return False
        cslot = cur.stack[spi]
        old_reg = _scalar_reg_for_stack(env, oslot)
        cur_reg = _scalar_reg_for_stack(env, cslot)
        if old_reg is not None and cur_reg is not None:
            if not regsafe(env, old_reg, cur_reg, idmap, exact):
                return False
            i += 8 - j
            continue
        ctype = cslot.slot_type[j]
        if otype == STACK_MISC and ctype == STACK_ZERO:
            i += 1
            continue
        if otype != ctype:
            return False
        if j != 7:
            i += 1
            continue
        last = oslot.slot_type[7]
        if last == STACK_SPILL:
            if not regsafe(env, oslot.spilled_ptr, cslot.spilled_ptr, idmap, exact):
                return False
        elif last not in (STACK_MISC, STACK_ZERO, STACK_INVALID):
            return False
        i += 1
    return True


def refsafe(old: FuncState, cur: FuncState, idmap: IdMap) -> bool:
    """``refsafe``: the same acquired references (and lock state) on both sides."""
    if len(old.refs) != len(cur.refs):
        return False
    return all(idmap.check_ids(o.id, c.id) for o, c in zip(old.refs, cur.refs, strict=True))


def func_states_equal(env: VerifierEnv, old: FuncState, cur: FuncState, idmap: IdMap, exact: int) -> bool:
    """``func_states_equal``: one frame of the old state covers the same frame of the current one."""
    if old.callback_depth > cur.callback_depth:
        return False
    for i in range(11):
        if not regsafe(env, old.regs[i], cur.regs[i], idmap, exact):
            return False
    if not stacksafe(env, old, cur, idmap, exact):
        return False
    return refsafe(old, cur, idmap)


def states_equal(env: VerifierEnv, old: VerifierState, cur: VerifierState, exact: int) -> bool:
    """``states_equal``: every frame covers its counterpart (same call sites); ``exact`` for loop detection and
    iterator convergence."""
    if old.curframe != cur.curframe:
        return False
    idmap = IdMap(env.id_gen)
    if old.speculative and not cur.speculative:
        return False
    if old.active_lock_ptr is not cur.active_lock_ptr:
        return False
    if bool(old.active_lock_id) != bool(cur.active_lock_id):
        return False
    if old.active_lock_id and not idmap.check_ids(old.active_lock_id, cur.active_lock_id):
        return False
    if old.active_rcu_lock != cur.active_rcu_lock or old.active_preempt_lock != cur.active_preempt_lock:
        return False
    if old.in_sleepable != cur.in_sleepable:
        return False
    for i in range(old.curframe + 1):
        if old.frame[i].callsite != cur.frame[i].callsite:
            return False
        if not func_states_equal(env, old.frame[i], cur.frame[i], idmap, exact):
            return False
    return True


def _states_maybe_looping(old: VerifierState, cur: VerifierState) -> bool:
    # the kernel memcmp()s each register up to ``parent``: frameno, liveness and precision are not compared
    fr = cur.curframe
    if old.curframe != fr:
        return False
    for a, b in zip(old.frame[fr].regs, cur.frame[fr].regs, strict=True):
        if a.umin_value != b.umin_value or a.umax_value != b.umax_value or a.type != b.type:
            return False  # the usual difference between loop iterations, checked first
        if not (_regs_prefix_equal(a, b) and a.var_off == b.var_off and a.smin_value == b.smin_value
                and a.smax_value == b.smax_value and a.umin_value == b.umin_value and a.umax_value == b.umax_value
                and a.s32_min_value == b.s32_min_value and a.s32_max_value == b.s32_max_value
                and a.u32_min_value == b.u32_min_value and a.u32_max_value == b.u32_max_value
                and a.id == b.id and a.ref_obj_id == b.ref_obj_id):
            return False
    return True


def _clean_func_state(env: VerifierEnv, st: FuncState) -> None:
    for i in range(10):
        reg = st.regs[i]
        live = reg.live
        reg.live |= REG_LIVE_DONE
        if not live & REG_LIVE_READ:
            mark_reg_not_init(reg, env.bpf_capable)
    for slot in st.stack:
        live = slot.spilled_ptr.live
        slot.spilled_ptr.live |= REG_LIVE_DONE
        if not live & REG_LIVE_READ:
            mark_reg_not_init(slot.spilled_ptr, env.bpf_capable)
            slot.slot_type = [STACK_INVALID] * 8


def _same_callsites(a: VerifierState, b: VerifierState) -> bool:
    if a.curframe != b.curframe:
        return False
    return all(a.frame[i].callsite == b.frame[i].callsite for i in range(a.curframe, -1, -1))


def find_prev_entry(env: VerifierEnv, cur: VerifierState | None, insn_idx: int) -> VerifierState | None:
    """The checkpoint at ``insn_idx`` that is still on the current path (a loop back to it)."""
    if cur is None:
        return None
    for sl in env.explored.get(insn_idx, ()):
        st = sl.state
        if st.insn_idx == insn_idx and st.branches and _same_callsites(st, cur) and st.dfs_depth < cur.dfs_depth:
            return st
    return None


def _maybe_widen_reg(env: VerifierEnv, rold: RegState, rcur: RegState, idmap: IdMap) -> None:
    if rold.type != RegType.SCALAR_VALUE or rcur.type != rold.type:
        return
    if rold.precise or rcur.precise or _regs_exact(rold, rcur, idmap):
        return
    env.mark_reg_unknown(rcur)


def widen_imprecise_scalars(env: VerifierEnv, old: VerifierState, cur: VerifierState) -> None:
    """Forget the exact values of scalars nobody needed precisely, so a loop's states converge.

    Used when a may_goto or a callback loops back to a checkpoint still on the path: counters
    that only feed imprecise uses stop making every iteration a new state.
    """
    idmap = IdMap(env.id_gen)
    for fr in range(old.curframe, -1, -1):
        fold, fcur = old.frame[fr], cur.frame[fr]
        for a, b in zip(fold.regs, fcur.regs, strict=True):
            _maybe_widen_reg(env, a, b, idmap)
        for i in range(min(len(fold.stack), len(fcur.stack))):
            if fold.stack[i].is_spilled_reg() and fcur.stack[i].is_spilled_reg():
                _maybe_widen_reg(env, fold.stack[i].spilled_ptr, fcur.stack[i].spilled_ptr, idmap)


def _clean_live_states(env: VerifierEnv, insn: int, cur: VerifierState) -> None:
    for sl in env.explored.get(insn, ()):
        st = sl.state
        if st.branches:
            continue
        if st.insn_idx != insn or not _same_callsites(st, cur):
            continue
        if st.frame[0].regs[0].live & REG_LIVE_DONE:
            continue
        for f in st.frame[: st.curframe + 1]:
            _clean_func_state(env, f)


def _propagate_liveness_reg(env: VerifierEnv, reg: RegState, parent: RegState) -> None:
    pflag = parent.live & REG_LIVE_READ
    flag = reg.live & REG_LIVE_READ
    if pflag in (REG_LIVE_READ64, flag) or not flag:
        return
    env.mark_reg_read(reg, parent, flag)


def _propagate_liveness(env: VerifierEnv, vstate: VerifierState, vparent: VerifierState) -> None:
    for frame in range(vstate.curframe + 1):
        parent = vparent.frame[frame]
        state = vstate.frame[frame]
        for i in range(6 if frame < vstate.curframe else 0, 10):
            _propagate_liveness_reg(env, state.regs[i], parent.regs[i])
        for i in range(min(len(state.stack), len(parent.stack))):
            _propagate_liveness_reg(env, state.stack[i].spilled_ptr, parent.stack[i].spilled_ptr)


def is_state_visited(env: VerifierEnv, insn_idx: int) -> bool:
    """``is_state_visited``: at a prune point, stop the path when an explored state covers it, detect infinite
    loops, and remember a checkpoint when useful."""
    cur = env.cur_state
    aux = env.aux[insn_idx]
    # a long instruction history (precision backtracking walks it) also forces a checkpoint
    force_new = env.test_state_freq or aux.force_checkpoint or len(cur.insn_hist) > 40
    add_new = force_new
    if env.jmps_processed - env.prev_jmps_processed >= 2 and env.insn_processed - env.prev_insn_processed >= 8:
        add_new = True
    lst = env.explored.setdefault(insn_idx, [])
    _clean_live_states(env, insn_idx, cur)
    states_cnt = 0
    keep: list[StateListEntry] = []
    hit: StateListEntry | None = None
    idx = 0
    while idx < len(lst):
        sl = lst[idx]
        idx += 1
        states_cnt += 1
        st = sl.state
        if st.insn_idx != insn_idx:
            keep.append(sl)
            continue
        if st.branches:
            frame = st.frame[st.curframe]
            skip = frame.in_async_callback_fn and frame.async_entry_cnt != cur.frame[cur.curframe].async_entry_cnt
            if not skip:
                if env.insns[insn_idx] is not None and env.insns[insn_idx].code == 0xE5:  # type: ignore[union-attr]
                    if st.may_goto_depth != cur.may_goto_depth and states_equal(env, st, cur, RANGE_WITHIN):
                        update_loop_entry(cur, st)
                        hit = sl
                        keep.append(sl)
                        keep.extend(lst[idx:])
                        break
                if aux.calls_callback:
                    if states_equal(env, st, cur, RANGE_WITHIN):
                        hit = sl
                        keep.append(sl)
                        keep.extend(lst[idx:])
                        break
                    skip = True
            if not skip and _states_maybe_looping(st, cur) and states_equal(env, st, cur, EXACT) \
                    and st.may_goto_depth == cur.may_goto_depth \
                    and st.callback_unroll_depth == cur.callback_unroll_depth:
                verbose_linfo(env, insn_idx, "; ")
                env.verbose(Msg.INFINITE_LOOP_DETECTED.format(insn_idx))
                env.verbose(Msg.CUR_STATE)
                print_state(env, cur.frame[cur.curframe], True)
                env.verbose(Msg.OLD_STATE)
                print_state(env, st.frame[cur.curframe], True)
                raise Reject(E.EINVAL, Msg.INFINITE_LOOP_HEADLINE.format(insn_idx))
            if not force_new and env.jmps_processed - env.prev_jmps_processed < 20 \
                    and env.insn_processed - env.prev_insn_processed < 100:
                add_new = False
        else:
            # a state inside a loop whose header is still being explored is compared exactly:
            # its read and precision marks are not final yet
            loop_entry = get_loop_entry(st)
            force_exact = loop_entry is not None and loop_entry.branches > 0
            if states_equal(env, st, cur, RANGE_WITHIN if force_exact else NOT_EXACT):
                if force_exact:
                    update_loop_entry(cur, loop_entry)  # type: ignore[arg-type]
                hit = sl
                keep.append(sl)
                keep.extend(lst[idx:])
                break
        if add_new:
            sl.miss_cnt += 1
        n = 64 if aux.force_checkpoint and st.branches > 0 else 3
        if sl.miss_cnt > sl.hit_cnt * n + n:
            # evicted; a finished state no loop refers to is freed at once (peak_states drops)
            if st.frame[0].regs[0].live & REG_LIVE_DONE and not st.used_as_loop_entry:
                env.peak_states -= 1
            continue
        keep.append(sl)
    lst[:] = keep
    if hit is not None:
        hit.hit_cnt += 1
        _propagate_liveness(env, hit.state, cur)
        if aux.jmp_point:
            push_insn_history(env, cur, 0)
        propagate_precision(env, hit.state)
        return True
    if env.max_states_per_insn < states_cnt:
        env.max_states_per_insn = states_cnt
    if not env.bpf_capable and states_cnt > BPF_COMPLEXITY_LIMIT_STATES:
        return False
    if not add_new:
        return False
    env.total_states += 1
    env.peak_states += 1
    env.prev_jmps_processed = env.jmps_processed
    env.prev_insn_processed = env.insn_processed
    if env.bpf_capable:
        for f in cur.frame[: cur.curframe + 1]:
            for reg in f.regs:
                if reg.type == RegType.SCALAR_VALUE:
                    reg.precise = False
            for slot in f.stack:
                if slot.slot_type[7] == STACK_SPILL and slot.spilled_ptr.type == RegType.SCALAR_VALUE:
                    slot.spilled_ptr.precise = False
    new = cur.copy()
    new.insn_idx = insn_idx
    cur.parent = new
    cur.first_insn_idx = insn_idx
    cur.insn_hist = []
    cur.dfs_depth = new.dfs_depth + 1
    lst.insert(0, StateListEntry(new))
    for j in range(cur.curframe + 1):
        cf, nf = cur.frame[j], new.frame[j]
        for i in range(6 if j < cur.curframe else 0, 10):
            cf.regs[i].parent = nf.regs[i]
        for i in range(10):
            cf.regs[i].live = REG_LIVE_NONE
    for j in range(cur.curframe + 1):
        cf, nf = cur.frame[j], new.frame[j]
        for i, slot in enumerate(cf.stack):
            slot.spilled_ptr.live = REG_LIVE_NONE
            slot.spilled_ptr.parent = nf.stack[i].spilled_ptr
    return False


# -- callbacks -----------------------------------------------------------------------------------


def push_callback_call(env: VerifierEnv, insn: Insn, insn_idx: int, subprog: int, set_cb: Any) -> None:
    """``push_callback_call``: a synchronous callback (bpf_loop, for_each_map_elem...) explored as a branch:
    once called, once skipped."""
    from pybpf.verifier.transfer.calls import btf_check_subprog_call, setup_func_entry

    if btf_check_subprog_call(env, subprog, env.cur_frame.regs) == E.EFAULT:
        raise Reject(E.EFAULT)
    info = env.subprog_info[subprog]
    info.is_cb = True
    if insn.imm == 170:  # timer_set_callback: async
        info.is_async_cb = True
        caller = env.cur_frame
        st = VerifierState()
        st.branches = 1
        st.insn_idx = info.start
        callee = FuncState(insn_idx, 0, subprog)
        init_func_state(env, callee)
        callee.async_entry_cnt = caller.async_entry_cnt + 1
        st.frame = [callee]
        env.head.append(StackElem(st, info.start, insn_idx, env.log.end_pos))
        set_cb(env, caller, callee, insn_idx)
        return
    callback_state = push_stack(env, info.start, insn_idx, False)
    setup_func_entry(env, subprog, insn_idx, set_cb, callback_state)
    callback_state.callback_unroll_depth += 1
    callback_state.frame[callback_state.curframe - 1].callback_depth += 1
    env.cur_frame.callback_depth = 0


# -- the main loop --------------------------------------------------------------------------------


def check_ld_imm(env: VerifierEnv, insn: Insn) -> None:
    """``check_ld_imm``: the register an ``lddw`` sets (scalar, map pointer, map value, function)."""
    aux = env.aux[env.insn_idx]
    if insn.code & 0x18 != 0x18:
        raise env.fail(E.EINVAL, Msg.INVALID_BPF_LD_IMM_INSN)
    if insn.off != 0:
        raise env.fail(E.EINVAL, Msg.BPF_LD_IMM64_USES_RESERVED_FIELDS)
    env.check_reg_arg(insn.dst, DST_OP)
    regs = env.regs
    dst = regs[insn.dst]
    if insn.src == 0:
        dst.type = RegType.SCALAR_VALUE
        __mark_reg_known(dst, insn.imm)
        return
    mark_reg_known_zero(dst)
    if insn.src == 4:  # BPF_PSEUDO_FUNC
        rel = insn.imm_lo if insn.imm_lo < 1 << 31 else insn.imm_lo - (1 << 32)
        subprogno = env.find_subprog(env.insn_idx + rel + 1)
        if not env.has_func_info:
            raise env.fail(E.EINVAL, Msg.MISSING_BTF_FUNC_INFO)
        if subprogno > 0 and env.subprog_info[subprogno].is_global:
            raise env.fail(E.EINVAL, Msg.CALLBACK_FUNCTION_NOT_STATIC)
        if subprogno == 0:
            raise env.fail(E.EINVAL, Msg.CALLBACK_FUNCTION_CANNOT_BE_THE_MAIN)
        dst.type = RegType.PTR_TO_FUNC
        dst.subprogno = subprogno
        return
    if insn.src == 3:
        raise env.fail(E.EINVAL, Msg.BPF_VERIFIER_IS_MISCONFIGURED)
    m = aux.map_ptr
    dst.map_ptr = m
    if insn.src in (2, 6):
        dst.type = RegType.PTR_TO_MAP_VALUE
        dst.off = aux.map_off
    elif insn.src in (1, 5):
        dst.type = RegType.CONST_PTR_TO_MAP
    else:
        raise env.fail(E.EINVAL, Msg.BPF_VERIFIER_IS_MISCONFIGURED)


def check_ld_abs(env: VerifierEnv, insn: Insn) -> None:
    """``check_ld_abs``: legacy packet loads need R6 = ctx of a type that allows them, clobber R1-R5 and set R0."""
    from pybpf.verifier.checks.mem import check_ptr_off_reg
    from pybpf.verifier.transfer.calls import check_reference_leak, prepare_func_exit

    state = env.cur_state
    if not env.desc.ld_abs:
        raise env.fail(E.EINVAL, Msg.BPF_LD_ABS_IND_INSTRUCTIONS_NOT)
    for i in range(state.curframe, 0, -1):
        if state.frame[i].in_callback_fn:
            raise env.fail(E.EINVAL, Msg.CANNOT_USE_BPF_LD_ABS_IND)
    mode = insn.code & 0xE0
    if insn.dst != 0 or insn.off != 0 or insn.code & 0x18 == 0x18 or (mode == 0x20 and insn.src != 0):
        raise env.fail(E.EINVAL, Msg.BPF_LD_ABS_IND_USES_RESERVED)
    env.check_reg_arg(6, SRC_OP)
    try:
        check_reference_leak(env, False)
    except Reject:
        env.verbose(Msg.LD_ABS_WITH_SOCKET_REFS)
        raise
    if state.active_lock_ptr is not None:
        raise env.fail(E.EINVAL, Msg.LD_ABS_IN_SPIN_LOCK)
    regs = env.regs
    if regs[6].type != RegType.PTR_TO_CTX:
        raise env.fail(E.EINVAL, Msg.AT_THE_TIME_OF_BPF_LD)
    if mode == 0x40:
        env.check_reg_arg(insn.src, SRC_OP)
    check_ptr_off_reg(env, regs[6], 6)
    for i in range(6):
        mark_reg_not_init(regs[i], env.bpf_capable)
        env.check_reg_arg(i, 2)
    mark_reg_unknown(regs[0], env.bpf_capable)
    regs[0].subreg_def = env.insn_idx + 1
    if state.curframe:
        env.mark_reg_scratched(0)
        push_stack(env, env.insn_idx + 1, env.insn_idx, False)
        mark_reg_known_zero(regs[0])
        env.insn_idx = prepare_func_exit(env) - 1


def do_check(env: VerifierEnv) -> None:
    """``do_check``: walk instructions from the current state, branching at conditional jumps and calls, until
    every path has exited or been pruned."""
    from pybpf.verifier.transfer.alu import check_alu_op
    from pybpf.verifier.transfer.calls import (
        check_func_call,
        check_helper_call,
        check_reference_leak,
        check_return_code,
        prepare_func_exit,
    )
    from pybpf.verifier.transfer.jmp import check_cond_jmp_op

    level = env.log.level
    pop_log = not level & 2
    state = env.cur_state
    insns = env.insns
    insn_cnt = env.insn_cnt
    do_print_state = False
    prev_insn_idx = -1
    imm64 = _imm64(env)
    while True:
        env.recent = []
        env.cur_hist_ent = None
        env.prev_insn_idx = prev_insn_idx
        idx = env.insn_idx
        if idx >= insn_cnt or insns[idx] is None:
            raise env.fail(E.EFAULT, Msg.INVALID_INSN_IDX_INSN_CNT.format(idx, insn_cnt))
        insn: Insn = insns[idx]  # type: ignore[assignment]
        cls = insn.code & 7
        env.insn_processed += 1
        if env.insn_processed > BPF_COMPLEXITY_LIMIT_INSNS:
            raise env.fail(E.E2BIG, Msg.BPF_PROGRAM_IS_TOO_LARGE_PROCESSED.format(env.insn_processed))
        if not env.insn_processed & 0x3FF and env.deadline is not None and time.monotonic() > env.deadline:
            raise env.fail(E.ETIME, Msg.VERIFICATION_TIME_LIMIT_EXCEEDED_PYBPF)
        state = env.cur_state
        state.last_insn_idx = env.prev_insn_idx
        pruned = False
        if env.aux[idx].prune_point:
            if is_state_visited(env, idx):
                if level & 3:
                    if do_print_state:
                        spec = Msg.SPECULATIVE if env.cur_state.speculative else ""
                        env.log.write(Msg.FROM_TO_SAFE.format(env.prev_insn_idx, idx, spec))
                    else:
                        env.log.write(Msg.INSN_SAFE.format(idx))
                pruned = True
        if not pruned and env.aux[idx].jmp_point:
            push_insn_history(env, state, 0)
        if not pruned:
            if level & 2 and do_print_state:
                spec = Msg.SPECULATIVE if state.speculative else ""
                env.log.write(Msg.FROM_TO.format(env.prev_insn_idx, idx, spec))
                print_state(env, state.frame[state.curframe], True)
                do_print_state = False
            if level & 3:
                if env.state_scratched():
                    print_insn_state(env, state.frame[state.curframe])
                verbose_linfo(env, idx, "; ")
                env.prev_log_pos = env.log.end_pos
                line = f"{idx}: " + format_insn(insn, allow_ptr_leaks=env.allow_ptr_leaks, imm64=imm64,
                                                call_name=_call_name)
                env.log.write(line)
                env.prev_insn_print_pos = len(line)
                env.prev_log_pos = env.log.end_pos
            env.aux[idx].seen = True
            prev_insn_idx = idx
            exit_now = False
            if cls in (4, 7):
                check_alu_op(env, insn)
            elif cls == 1:
                mode = insn.code & 0xE0
                if mode not in (0x60, 0x80) or insn.imm != 0:
                    raise env.fail(E.EINVAL, Msg.BPF_LDX_USES_RESERVED_FIELDS)
                check_load_mem(env, insn, False, mode == 0x80, "ldx")
            elif cls == 3:
                mode = insn.code & 0xE0
                if mode == 0xC0:
                    check_atomic(env, insn)
                    env.insn_idx += 1
                    continue
                if mode != 0x60 or insn.imm != 0:
                    raise env.fail(E.EINVAL, Msg.BPF_STX_USES_RESERVED_FIELDS)
                check_store_reg(env, insn, False)
            elif cls == 2:
                check_st_mem(env, insn)
            elif cls in (5, 6):
                op = insn.code & 0xF0
                env.jmps_processed += 1
                if op == 0x80:
                    if (insn.code & 8 or (insn.src != 2 and insn.off != 0) or insn.src not in (0, 1, 2)
                            or insn.dst != 0 or cls == 6):
                        raise env.fail(E.EINVAL, Msg.BPF_CALL_USES_RESERVED_FIELDS)
                    if state.active_lock_ptr is not None and ((insn.src == 0 and insn.imm != 94) or insn.src == 2):
                        raise env.fail(E.EINVAL, Msg.FUNCTION_CALLS_ARE_NOT_ALLOWED_WHILE)
                    if insn.src == 1:
                        env.insn_idx = check_func_call(env, insn, idx)
                        env.mark_reg_scratched(0)
                        continue
                    if insn.src == 2:
                        raise env.fail(E.EINVAL, Msg.KFUNCS_NOT_SUPPORTED)
                    check_helper_call(env, insn, idx)
                    env.mark_reg_scratched(0)
                elif op == 0x00:
                    if insn.code & 8 or insn.src != 0 or insn.dst != 0 or (cls == 5 and insn.imm != 0) or (
                            cls == 6 and insn.off != 0):
                        raise env.fail(E.EINVAL, Msg.BPF_JA_USES_RESERVED_FIELDS)
                    env.insn_idx += (insn.off if cls == 5 else insn.imm) + 1
                    continue
                elif op == 0x90:
                    if insn.code & 8 or insn.imm != 0 or insn.src != 0 or insn.dst != 0 or cls == 6:
                        raise env.fail(E.EINVAL, Msg.BPF_EXIT_USES_RESERVED_FIELDS)
                    if state.active_lock_ptr is not None and not state.curframe:
                        raise env.fail(E.EINVAL, Msg.BPF_SPIN_UNLOCK_IS_MISSING)
                    check_reference_leak(env, False)
                    if state.curframe:
                        env.insn_idx = prepare_func_exit(env)
                        do_print_state = True
                        continue
                    check_return_code(env, 0, "R0")
                    exit_now = True
                else:
                    check_cond_jmp_op(env, insn)
                    continue
            elif cls == 0:
                mode = insn.code & 0xE0
                if mode in (0x20, 0x40):
                    check_ld_abs(env, insn)
                elif mode == 0x00:
                    check_ld_imm(env, insn)
                    env.insn_idx += 1
                    env.aux[env.insn_idx].seen = True
                else:
                    raise env.fail(E.EINVAL, Msg.INVALID_BPF_LD_MODE)
            else:
                raise env.fail(E.EINVAL, Msg.UNKNOWN_INSN_CLASS.format(cls))
            if not exit_now:
                env.insn_idx += 1
                continue
        # process_bpf_exit
        env.mark_verifier_state_scratched()
        update_branch_counts(env.cur_state)
        nxt = pop_stack(env, pop_log)
        if nxt is None:
            break
        env.insn_idx, prev_insn_idx = nxt
        do_print_state = True


def do_check_common(env: VerifierEnv, subprog: int) -> None:
    """``do_check_common``: verify one function (main or global) from its entry state; R1 is the context, or the
    arguments of its BTF prototype."""
    info = env.subprog_info[subprog]
    env.prev_linfo = None
    env.pass_cnt += 1
    state = VerifierState()
    state.branches = 1
    frame = FuncState(-1, 0, subprog)
    init_func_state(env, frame)
    state.frame = [frame]
    state.first_insn_idx = info.start
    state.last_insn_idx = -1
    env.cur_state = state
    regs = frame.regs
    if subprog:
        from pybpf.verifier.transfer.calls import prepare_subprog_args

        env.verbose(Msg.VALIDATING_FUNC.format(info.name, subprog))
        prepare_subprog_args(env, subprog)
        for i, arg in enumerate(info.args, start=1):
            _set_arg_entry_state(env, regs[i], arg)
    else:
        if env.has_func_info and env.btf is not None and info.btf_type_id:
            # the main program's prototype is checked too; a mismatch only makes it unreliable
            from pybpf.verifier.transfer.calls import prepare_subprog_args

            try:
                prepare_subprog_args(env, 0)
                if info.arg_cnt != 1 or info.args[0].kind != "ctx":
                    info.unreliable = True
            except Reject:
                info.unreliable = True
        regs[1].type = RegType.PTR_TO_CTX
        mark_reg_known_zero(regs[1])
    env.insn_idx = info.start
    env.mark_verifier_state_scratched()
    env.head = []
    env.explored = {}
    try:
        do_check(env)
    finally:
        env.head = []
    if not env.log.level & 2:
        env.log.reset(0)


def _set_arg_entry_state(env: VerifierEnv, reg: RegState, arg: Any) -> None:
    """A global function's argument register on entry, from its prototype."""
    kind = arg.kind
    if kind == "ctx":
        reg.type = RegType.PTR_TO_CTX
        mark_reg_known_zero(reg)
    elif kind == "scalar":
        reg.type = RegType.SCALAR_VALUE
        mark_reg_unknown(reg, env.bpf_capable)
    elif kind == "dynptr":
        mark_reg_known_zero(reg)
        reg.type = RegType.CONST_PTR_TO_DYNPTR
        reg.id = env.next_id()
    elif kind == "mem":
        reg.type = RegType.PTR_TO_MEM | (TypeFlag.PTR_MAYBE_NULL if arg.nullable else 0)
        mark_reg_known_zero(reg)
        reg.mem_size = arg.mem_size
        reg.id = env.next_id()
    elif kind == "btf_id":
        reg.type = RegType.PTR_TO_BTF_ID | TypeFlag.PTR_TRUSTED | (TypeFlag.PTR_MAYBE_NULL if arg.nullable else 0)
        mark_reg_known_zero(reg)
        reg.btf_struct = arg.btf_struct
        reg.id = env.next_id()
    else:  # arena: the caller passes a PTR_TO_ARENA or a scalar
        mark_reg_unknown(reg, env.bpf_capable)


def do_check_main(env: VerifierEnv) -> None:
    """Verify the main program (subprogram 0)."""
    env.insn_idx = 0
    do_check_common(env, 0)


def do_check_subprogs(env: VerifierEnv) -> None:
    """Verify global functions on their own (``do_check_subprogs``)."""
    new = True
    while new:
        new = False
        for i in range(1, len(env.subprog_info)):
            info = env.subprog_info[i]
            if not info.is_global or not info.called or getattr(info, "verified", False):
                continue
            env.insn_idx = info.start
            do_check_common(env, i)
            info.verified = True  # type: ignore[attr-defined]
            new = True
            env.verbose(Msg.FUNC_IS_SAFE_FOR_ANY_ARGS.format(i, info.name))
