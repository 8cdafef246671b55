"""Precision tracking: ``mark_chain_precision`` and the instruction history it walks back through.

Linux keeps scalars *imprecise* by default: state pruning treats two imprecise scalars as equal
whatever their ranges. When a scalar's exact value matters (a branch it decided, a size
argument, pointer arithmetic, the return code...), the verifier marks it precise and backtracks
through the instructions of the current path (``backtrack_insn``) to mark the registers and stack
slots it was computed from, in this state and in its parents (the checkpoints pruning compares
against). The instruction history (``push_insn_history``) records the jumps taken and the
spills/fills of the path, which backtracking needs to go backwards.

The log lines at level 2 (``mark_precise: frame0: regs=r1 stack= before 3: (bf) r1 = r0``) are
the kernel's.
"""

from __future__ import annotations

import errno as E
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pybpf.progtypes.types import RegType
from pybpf.verifier.env import Reject, VerifierEnv
from pybpf.verifier.log import Msg, format_insn
from pybpf.verifier.regs import REG_LIVE_READ

if TYPE_CHECKING:
    from pybpf.verifier.state import VerifierState

__all__ = [
    "INSN_F_DST_REG_STACK",
    "INSN_F_SRC_REG_STACK",
    "INSN_F_STACK_ACCESS",
    "mark_chain_precision",
    "propagate_precision",
    "push_insn_history",
    "stack_access_flags",
]

INSN_F_FRAMENO_MASK = 0x7
INSN_F_SPI_MASK = 0x3F
INSN_F_SPI_SHIFT = 3
INSN_F_STACK_ACCESS = 1 << 9
INSN_F_DST_REG_STACK = 1 << 10
INSN_F_SRC_REG_STACK = 1 << 11
REGMASK_ARGS = 0x3E  # r1-r5
MAX_CALL_FRAMES = 8


class _NotSupp(Exception):
    """``-ENOTSUPP`` of backtrack_insn: fall back to marking everything precise."""


def stack_access_flags(frameno: int, spi: int) -> int:
    return INSN_F_STACK_ACCESS | (spi << INSN_F_SPI_SHIFT) | frameno


def push_insn_history(env: VerifierEnv, cur: VerifierState, flags: int, linked: tuple = ()) -> None:  # type: ignore[type-arg]
    """Record the current instruction (or add ``flags`` to its already recorded entry)."""
    ent = env.cur_hist_ent
    if ent is not None:
        ent[2] |= flags
        ent[3] = linked
        return
    ent = [env.insn_idx, env.prev_insn_idx, flags, linked]
    cur.insn_hist.append(ent)  # type: ignore[arg-type]
    env.cur_hist_ent = ent


@dataclass
class Backtrack:
    """``struct backtrack_state``: registers and stack slots still to explain, per frame."""

    frame: int = 0
    reg_masks: list[int] = field(default_factory=lambda: [0] * MAX_CALL_FRAMES)
    stack_masks: list[int] = field(default_factory=lambda: [0] * MAX_CALL_FRAMES)

    def reset(self) -> None:
        self.frame = 0
        self.reg_masks = [0] * MAX_CALL_FRAMES
        self.stack_masks = [0] * MAX_CALL_FRAMES

    def empty(self) -> bool:
        return not any(self.reg_masks[: self.frame + 1]) and not any(self.stack_masks[: self.frame + 1])

    def set_reg(self, r: int, frame: int | None = None) -> None:
        self.reg_masks[self.frame if frame is None else frame] |= 1 << r

    def clear_reg(self, r: int, frame: int | None = None) -> None:
        self.reg_masks[self.frame if frame is None else frame] &= ~(1 << r)

    def is_reg_set(self, r: int, frame: int | None = None) -> bool:
        return bool(self.reg_masks[self.frame if frame is None else frame] >> r & 1)

    def set_slot(self, frame: int, spi: int) -> None:
        self.stack_masks[frame] |= 1 << spi

    def clear_slot(self, frame: int, spi: int) -> None:
        self.stack_masks[frame] &= ~(1 << spi)

    def is_slot_set(self, frame: int, spi: int) -> bool:
        return bool(self.stack_masks[frame] >> spi & 1)

    def subprog_enter(self, env: VerifierEnv) -> None:
        if self.frame == MAX_CALL_FRAMES - 1:
            raise env.fail(E.EFAULT, Msg.BUG_SUBPROG_ENTER_FROM_FRAME.format(self.frame))
        self.frame += 1

    def subprog_exit(self, env: VerifierEnv) -> None:
        if self.frame == 0:
            raise env.fail(E.EFAULT, Msg.BUG_SUBPROG_EXIT_FROM_FRAME_0)
        self.frame -= 1


def _fmt_regs(mask: int) -> str:
    return ",".join(f"r{i}" for i in range(32) if mask >> i & 1)


def _fmt_stack(mask: int) -> str:
    return ",".join(str(-(i + 1) * 8) for i in range(64) if mask >> i & 1)


def _sync_linked(bt: Backtrack, hist: list | None) -> None:  # type: ignore[type-arg]
    if not hist or not hist[3]:
        return
    linked = hist[3]
    some = any((is_reg and bt.is_reg_set(idx, fr)) or (not is_reg and bt.is_slot_set(fr, idx))
               for fr, is_reg, idx in linked)
    if not some:
        return
    for fr, is_reg, idx in linked:
        if is_reg:
            bt.set_reg(idx, fr)
        else:
            bt.set_slot(fr, idx)


def _is_atomic_fetch(code: int, imm: int) -> bool:
    return code & 7 == 3 and code & 0xE0 == 0xC0 and bool(imm & 1)


def backtrack_insn(env: VerifierEnv, idx: int, subseq_idx: int, hist: list | None, bt: Backtrack) -> None:  # type: ignore[type-arg]
    insn = env.insns[idx]
    if insn is None:
        return
    code = insn.code
    cls = code & 7
    op = code & 0xF0
    mode = code & 0xE0
    dreg, sreg = insn.dst, insn.src
    if env.log.level & 2:
        env.log.write(Msg.MARK_PRECISE_BEFORE.format(bt.frame, _fmt_regs(bt.reg_masks[bt.frame]),
                                                     _fmt_stack(bt.stack_masks[bt.frame]), idx)
                      + format_insn(insn, allow_ptr_leaks=env.allow_ptr_leaks))
    _sync_linked(bt, hist)
    if cls in (4, 7):
        if not bt.is_reg_set(dreg):
            return
        if op in (0xD0, 0x80):
            return
        if op == 0xB0:
            bt.clear_reg(dreg)
            if code & 8 and sreg != 10:
                bt.set_reg(sreg)
        elif code & 8 and sreg != 10:
            bt.set_reg(sreg)
    elif cls == 1 or _is_atomic_fetch(code, insn.imm):
        load_reg = dreg
        if _is_atomic_fetch(code, insn.imm):
            load_reg = 0 if insn.imm & 0xFF == 0xF1 else sreg
        if not bt.is_reg_set(load_reg):
            return
        bt.clear_reg(load_reg)
        if not hist or not hist[2] & INSN_F_STACK_ACCESS:
            return
        spi = (hist[2] >> INSN_F_SPI_SHIFT) & INSN_F_SPI_MASK
        fr = hist[2] & INSN_F_FRAMENO_MASK
        bt.set_slot(fr, spi)
    elif cls in (2, 3):
        if bt.is_reg_set(dreg):
            raise _NotSupp
        if not hist or not hist[2] & INSN_F_STACK_ACCESS:
            return
        spi = (hist[2] >> INSN_F_SPI_SHIFT) & INSN_F_SPI_MASK
        fr = hist[2] & INSN_F_FRAMENO_MASK
        if not bt.is_slot_set(fr, spi):
            return
        bt.clear_slot(fr, spi)
        if cls == 3:
            bt.set_reg(sreg)
    elif cls in (5, 6):
        if code == 0x85 and insn.src == 1:
            target = idx + insn.imm + 1
            subprog = env.find_subprog(target)
            if subprog < 0:
                raise Reject(E.EFAULT)
            if env.subprog_info[subprog].is_global:
                if bt.reg_masks[bt.frame] & REGMASK_ARGS:
                    raise env.fail(E.EFAULT, Msg.BUG_REGS_MASK.format(bt.reg_masks[bt.frame]))
                bt.clear_reg(0)
                return
            if bt.reg_masks[bt.frame] & ~REGMASK_ARGS:
                raise env.fail(E.EFAULT, Msg.BUG_REGS_MASK.format(bt.reg_masks[bt.frame]))
            if bt.stack_masks[bt.frame]:
                raise env.fail(E.EFAULT, Msg.BUG_STACK_SLOTS_MASK.format(bt.stack_masks[bt.frame]))
            for i in range(1, 6):
                if bt.is_reg_set(i):
                    bt.clear_reg(i)
                    bt.set_reg(i, bt.frame - 1)
            bt.subprog_exit(env)
            return
        if code == 0x85 and insn.src == 0 and env.aux[idx].calls_callback and idx != subseq_idx - 1:
            if bt.reg_masks[bt.frame] & ~REGMASK_ARGS:
                raise env.fail(E.EFAULT, Msg.BUG_REGS_MASK.format(bt.reg_masks[bt.frame]))
            if bt.stack_masks[bt.frame]:
                raise env.fail(E.EFAULT, Msg.BUG_STACK_SLOTS_MASK.format(bt.stack_masks[bt.frame]))
            for i in range(1, 6):
                bt.clear_reg(i)
            bt.subprog_exit(env)
            return
        if op == 0x80:
            if insn.src == 2 and insn.imm == 0:
                raise _NotSupp
            bt.clear_reg(0)
            if bt.reg_masks[bt.frame] & REGMASK_ARGS:
                raise env.fail(E.EFAULT, Msg.BUG_REGS_MASK.format(bt.reg_masks[bt.frame]))
        elif op == 0x90:
            prev = env.insns[subseq_idx - 1] if subseq_idx - 1 >= 0 else None
            from_subprog_call = prev is not None and prev.code == 0x85 and prev.src == 1
            r0_precise = from_subprog_call and bt.is_reg_set(0)
            if from_subprog_call and bt.reg_masks[bt.frame] & REGMASK_ARGS:
                raise env.fail(E.EFAULT, Msg.BUG_REGS_MASK.format(bt.reg_masks[bt.frame]))
            bt.clear_reg(0)
            bt.subprog_enter(env)
            if r0_precise:
                bt.set_reg(0)
            return
        elif code & 8:
            if not bt.is_reg_set(dreg) and not bt.is_reg_set(sreg):
                return
            if not hist or not hist[2] & INSN_F_SRC_REG_STACK:
                bt.set_reg(sreg)
            if not hist or not hist[2] & INSN_F_DST_REG_STACK:
                bt.set_reg(dreg)
    elif cls == 0:
        if mode == 0x00:
            bt.clear_reg(dreg)
            return
        if mode in (0x20, 0x40):
            if bt.is_reg_set(dreg):
                raise _NotSupp
            for i in range(6):
                bt.clear_reg(i)
            if bt.reg_masks[bt.frame] & REGMASK_ARGS:
                raise env.fail(E.EFAULT, Msg.BUG_REGS_MASK.format(bt.reg_masks[bt.frame]))
            if subseq_idx != idx + 1:
                bt.subprog_enter(env)
            return
    _sync_linked(bt, hist)


def _get_prev_insn_idx(st: VerifierState, insn_idx: int, hist: list, end: int) -> tuple[int, int]:  # type: ignore[type-arg]
    """(previous instruction on the path, new history end); -1 when the state's start is reached."""
    cnt = end
    if insn_idx == st.first_insn_idx:
        if cnt == 0:
            return -1, end
        if cnt == 1 and hist[0][0] == insn_idx:
            return -1, end
    if cnt and hist[end - 1][0] == insn_idx:
        return hist[end - 1][1], end - 1
    return insn_idx - 1, end


def mark_all_scalars_precise(env: VerifierEnv, st: VerifierState) -> None:
    if env.log.level & 2:
        env.log.write(Msg.MARK_PRECISE_FALLBACK.format(st.curframe))
    s = st.parent
    while s is not None:
        for i in range(s.curframe + 1):
            func = s.frame[i]
            for j in range(10):
                reg = func.regs[j]
                if reg.type != RegType.SCALAR_VALUE or reg.precise:
                    continue
                reg.precise = True
                if env.log.level & 2:
                    env.log.write(Msg.FORCE_PRECISE_REG.format(i, j))
            for j, slot in enumerate(func.stack):
                if slot.slot_type[7] != 1:
                    continue
                reg = slot.spilled_ptr
                if reg.type != RegType.SCALAR_VALUE or reg.precise:
                    continue
                reg.precise = True
                if env.log.level & 2:
                    env.log.write(Msg.FORCE_PRECISE_SLOT.format(i, -(j + 1) * 8))
        s = s.parent


def _mark_chain_precision(env: VerifierEnv, regno: int) -> None:
    bt: Backtrack = env.bt
    st = env.cur_state
    first_idx = st.first_insn_idx
    last_idx = env.insn_idx
    subseq_idx = -1
    skip_first = True
    if not env.bpf_capable:
        return
    bt.frame = st.curframe
    func = st.frame[bt.frame]
    if regno >= 0:
        if func.regs[regno].type != RegType.SCALAR_VALUE:
            raise env.fail(E.EFAULT, Msg.BACKTRACING_MISUSE)
        bt.set_reg(regno)
    if bt.empty():
        return
    level2 = bool(env.log.level & 2)
    while True:
        hist = st.insn_hist
        end = len(hist)
        if level2:
            env.log.write(Msg.MARK_PRECISE_RANGE.format(bt.frame, last_idx, first_idx, subseq_idx))
        if last_idx < 0:
            if (st.curframe == 0 and st.frame[0].subprogno > 0 and st.frame[0].callsite == -1
                    and bt.stack_masks[bt.frame] == 0 and bt.reg_masks[bt.frame] & ~REGMASK_ARGS == 0):
                for i in range(32):
                    if bt.reg_masks[bt.frame] >> i & 1:
                        reg = st.frame[0].regs[i]
                        bt.clear_reg(i)
                        if reg.type == RegType.SCALAR_VALUE:
                            reg.precise = True
                return
            raise env.fail(E.EFAULT, Msg.BUG_BACKTRACKING_FUNC_ENTRY_SUBPROG_REG.format(st.frame[0].subprogno,
                                                                                        bt.reg_masks[bt.frame],
                                                                                        bt.stack_masks[bt.frame]))
        i = last_idx
        while True:
            if skip_first:
                skip_first = False
            else:
                ent = hist[end - 1] if end > 0 and hist[end - 1][0] == i else None
                try:
                    backtrack_insn(env, i, subseq_idx, ent, bt)
                except _NotSupp:
                    mark_all_scalars_precise(env, env.cur_state)
                    bt.reset()
                    return
            if bt.empty():
                return
            subseq_idx = i
            i, end = _get_prev_insn_idx(st, i, hist, end)
            if i == -1:
                break
            if i >= env.insn_cnt:
                raise env.fail(E.EFAULT, Msg.BUG_BACKTRACKING_IDX.format(i))
        parent = st.parent
        if parent is None:
            break
        st = parent
        for fr in range(bt.frame, -1, -1):
            func = st.frame[fr]
            for i in range(32):
                if not bt.reg_masks[fr] >> i & 1:
                    continue
                reg = func.regs[i]
                if reg.type != RegType.SCALAR_VALUE:
                    bt.clear_reg(i, fr)
                    continue
                if reg.precise:
                    bt.clear_reg(i, fr)
                else:
                    reg.precise = True
            for i in range(64):
                if not bt.stack_masks[fr] >> i & 1:
                    continue
                if i >= len(func.stack):
                    raise env.fail(E.EFAULT, Msg.BUG_BACKTRACKING_STACK_SLOT_TOTAL_SLOTS.format(i, len(func.stack)))
                slot = func.stack[i]
                if not (slot.slot_type[7] == 1 and slot.spilled_ptr.type == RegType.SCALAR_VALUE):
                    bt.clear_slot(fr, i)
                    continue
                reg = slot.spilled_ptr
                if reg.precise:
                    bt.clear_slot(fr, i)
                else:
                    reg.precise = True
            if level2:
                from pybpf.verifier.log import format_state

                env.log.write(Msg.MARK_PRECISE_PARENT.format(fr, _fmt_regs(bt.reg_masks[fr]),
                                                             _fmt_stack(bt.stack_masks[fr])))
                env.log.write(format_state(func, print_all=True, liveness=env.liveness_marks))
        if bt.empty():
            return
        subseq_idx = first_idx
        last_idx = st.last_insn_idx
        first_idx = st.first_insn_idx
    if not bt.empty():
        mark_all_scalars_precise(env, env.cur_state)
        bt.reset()


def mark_chain_precision(env: VerifierEnv, regno: int) -> None:
    """Mark R<regno> precise in the current path and in every state it depends on."""
    try:
        _mark_chain_precision(env, regno)
    finally:
        env.bt.reset()


def mark_chain_precision_batch(env: VerifierEnv) -> None:
    try:
        _mark_chain_precision(env, -1)
    finally:
        env.bt.reset()


def propagate_precision(env: VerifierEnv, old: VerifierState) -> None:
    """On a prune hit: what was precise in the old state must be precise on this path too."""
    bt: Backtrack = env.bt
    for fr in range(old.curframe, -1, -1):
        state = old.frame[fr]
        first = True
        parts: list[str] = []
        for i in range(10):
            reg = state.regs[i]
            if reg.type != RegType.SCALAR_VALUE or not reg.precise or not reg.live & REG_LIVE_READ:
                continue
            parts.append(Msg.PROPAGATING_FIRST.format(fr, f"r{i}") if first else f",r{i}")
            bt.set_reg(i, fr)
            first = False
        for i, slot in enumerate(state.stack):
            if slot.slot_type[7] != 1:
                continue
            reg = slot.spilled_ptr
            if reg.type != RegType.SCALAR_VALUE or not reg.precise or not reg.live & REG_LIVE_READ:
                continue
            parts.append(Msg.PROPAGATING_FIRST.format(fr, f"fp{(-i - 1) * 8}") if first else f",fp{(-i - 1) * 8}")
            bt.set_slot(fr, i)
            first = False
        if not first and env.log.level:
            # the kernel prints the list at level 2 but the newline at any level
            env.log.write(("".join(parts) if env.log.level & 2 else "") + "\n")
    mark_chain_precision_batch(env)
