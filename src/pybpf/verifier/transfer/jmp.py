"""Conditional jumps: ``check_cond_jmp_op``.

Branch prediction (``is_branch_taken``: constant folding, a dead branch is not explored), range
refinement on both successors (``reg_set_min_max`` / ``regs_refine_cond_op``), NULL propagation by
id (``mark_ptr_or_null_regs``: every register and spilled slot sharing the id), packet range
propagation (``try_match_pkt_pointers`` / ``find_good_pkt_pointers``) and linked scalars
(``collect_linked_regs`` / ``sync_linked_regs``).
"""

from __future__ import annotations

import errno as E
from collections.abc import Iterator

from pybpf.isa import Insn
from pybpf.progtypes.types import RegType, TypeFlag
from pybpf.verifier.env import BPF_MAX_VAR_OFF, SRC_OP, VerifierEnv, base_type, type_may_be_null
from pybpf.verifier.log import Msg
from pybpf.verifier.maps import special_fields
from pybpf.verifier.regs import (
    BPF_ADD_CONST,
    RegState,
    __mark_reg_known,
    mark_reg_unbounded,
    reg_bounds_sync,
    s32,
    s64,
)
from pybpf.verifier.state import FuncState, VerifierState
from pybpf.verifier.tnum import U32, U64, Tnum
from pybpf.verifier.transfer.alu import (
    copy_register_state,
    reg_bounds_sanity_check,
    scalar32_min_max_add,
    scalar_min_max_add,
)

__all__ = ["check_cond_jmp_op", "for_each_reg", "is_branch_taken", "mark_ptr_not_null_reg"]

JEQ, JGT, JGE, JSET, JNE, JSGT, JSGE, JLT, JLE, JSLT, JSLE = (0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0xA0,
                                                            0xB0, 0xC0, 0xD0)
JSET_X = 0x48
AT_PKT_END = -1
BEYOND_PKT_END = -2
MAX_PACKET_OFF = 0xFFFF

_FLIP = {JEQ: JEQ, JNE: JNE, JSET: JSET, JGE: JLE, JGT: JLT, JLE: JGE, JLT: JGT, JSGE: JSLE, JSGT: JSLT,
         JSLE: JSGE, JSLT: JSGT}
_REV = {JEQ: JNE, JNE: JEQ, JSET: JSET_X, JSET_X: JSET, JGE: JLT, JGT: JLE, JLE: JGT, JLT: JGE, JSGE: JSLT,
        JSGT: JSLE, JSLE: JSGT, JSLT: JSGE}

_PKT = (RegType.PTR_TO_PACKET, RegType.PTR_TO_PACKET_META)
_PKT_ANY = (RegType.PTR_TO_PACKET, RegType.PTR_TO_PACKET_META, RegType.PTR_TO_PACKET_END)
_NOT_NULL_BASES = frozenset(int(t) for t in (
    RegType.PTR_TO_SOCKET, RegType.PTR_TO_TCP_SOCK, RegType.PTR_TO_XDP_SOCK, RegType.PTR_TO_BUF,
    RegType.PTR_TO_MAP_VALUE, RegType.PTR_TO_MAP_KEY, RegType.PTR_TO_SOCK_COMMON, RegType.PTR_TO_MEM,
    RegType.CONST_PTR_TO_MAP))


def for_each_reg(vstate: VerifierState) -> Iterator[tuple[FuncState, RegState]]:
    """``bpf_for_each_reg_in_vstate``: every register and spilled register of every frame."""
    for state in vstate.frame[: vstate.curframe + 1]:
        for reg in state.regs:
            yield state, reg
        for slot in state.stack:
            if slot.slot_type[7] == 1:
                yield state, slot.spilled_ptr


def reg_not_null(reg: RegState) -> bool:
    t = reg.type
    if type_may_be_null(t):
        return False
    if reg.smin_value <= -BPF_MAX_VAR_OFF or reg.smax_value >= BPF_MAX_VAR_OFF:
        return False
    bt = base_type(t)
    if bt == RegType.PTR_TO_BTF_ID:
        return bool(reg.ref_obj_id) or bool(t & TypeFlag.PTR_TRUSTED)
    return bt in _NOT_NULL_BASES


def _is_const(reg: RegState, jmp32: bool) -> bool:
    return reg.type == RegType.SCALAR_VALUE and (reg.var_off.mask & (U32 if jmp32 else U64)) == 0


def _const(reg: RegState, jmp32: bool) -> int:
    return reg.var_off.value & U32 if jmp32 else reg.var_off.value


def is_scalar_branch_taken(reg1: RegState, reg2: RegState, op: int, jmp32: bool) -> int:
    if jmp32:
        t1, t2 = reg1.var_off.subreg(), reg2.var_off.subreg()
        umin1, umax1, smin1, smax1 = reg1.u32_min_value, reg1.u32_max_value, reg1.s32_min_value, reg1.s32_max_value
        umin2, umax2, smin2, smax2 = reg2.u32_min_value, reg2.u32_max_value, reg2.s32_min_value, reg2.s32_max_value
    else:
        t1, t2 = reg1.var_off, reg2.var_off
        umin1, umax1, smin1, smax1 = reg1.umin_value, reg1.umax_value, reg1.smin_value, reg1.smax_value
        umin2, umax2, smin2, smax2 = reg2.umin_value, reg2.umax_value, reg2.smin_value, reg2.smax_value
    if op in (JEQ, JNE):
        eq = op == JEQ
        if t1.mask == 0 and t2.mask == 0:
            return int((t1.value == t2.value) == eq)
        differ = (
            not t1.overlap(t2) or umin1 > umax2 or umax1 < umin2 or smin1 > smax2 or smax1 < smin2
            or (not jmp32 and (reg1.u32_min_value > reg2.u32_max_value or reg1.u32_max_value < reg2.u32_min_value
                               or reg1.s32_min_value > reg2.s32_max_value
                               or reg1.s32_max_value < reg2.s32_min_value))
        )
        if differ:
            return 0 if eq else 1
        return -1
    if op == JSET:
        if not _is_const(reg2, jmp32):
            reg1, reg2 = reg2, reg1
            t1, t2 = t2, t1
        if not _is_const(reg2, jmp32):
            return -1
        if (~t1.mask & t1.value) & t2.value:
            return 1
        if not ((t1.mask | t1.value) & t2.value):
            return 0
        return -1
    if op == JGT:
        return 1 if umin1 > umax2 else 0 if umax1 <= umin2 else -1
    if op == JSGT:
        return 1 if smin1 > smax2 else 0 if smax1 <= smin2 else -1
    if op == JLT:
        return 1 if umax1 < umin2 else 0 if umin1 >= umax2 else -1
    if op == JSLT:
        return 1 if smax1 < smin2 else 0 if smin1 >= smax2 else -1
    if op == JGE:
        return 1 if umin1 >= umax2 else 0 if umax1 < umin2 else -1
    if op == JSGE:
        return 1 if smin1 >= smax2 else 0 if smax1 < smin2 else -1
    if op == JLE:
        return 1 if umax1 <= umin2 else 0 if umin1 > umax2 else -1
    if op == JSLE:
        return 1 if smax1 <= smin2 else 0 if smin1 > smax2 else -1
    return -1


def is_pkt_ptr_branch_taken(dst: RegState, src: RegState, op: int) -> int:
    if src.type == RegType.PTR_TO_PACKET_END:
        pkt = dst
    elif dst.type == RegType.PTR_TO_PACKET_END:
        pkt = src
        op = _FLIP.get(op, op)
    else:
        return -1
    if pkt.range >= 0:
        return -1
    if op in (JLE, JGT):
        if pkt.range == BEYOND_PKT_END:
            return int(op == JGT)
    elif op in (JLT, JGE) and pkt.range in (BEYOND_PKT_END, AT_PKT_END):
        return int(op == JGE)
    return -1


def is_branch_taken(reg1: RegState, reg2: RegState, op: int, jmp32: bool) -> int:
    if reg1.type in _PKT_ANY and reg2.type in _PKT_ANY and not jmp32:
        return is_pkt_ptr_branch_taken(reg1, reg2, op)
    if reg1.type != RegType.SCALAR_VALUE or reg2.type != RegType.SCALAR_VALUE:
        if jmp32:
            return -1
        if not _is_const(reg2, jmp32):
            op = _FLIP.get(op, op)
            reg1, reg2 = reg2, reg1
        if not _is_const(reg2, jmp32):
            return -1
        if not reg_not_null(reg1):
            return -1
        if _const(reg2, jmp32) != 0:
            return -1
        if op == JEQ:
            return 0
        if op == JNE:
            return 1
        return -1
    return is_scalar_branch_taken(reg1, reg2, op, jmp32)


def regs_refine_cond_op(reg1: RegState, reg2: RegState, op: int, jmp32: bool) -> None:
    if op in (JGE, JGT, JSGE, JSGT):
        op = _FLIP[op]
        reg1, reg2 = reg2, reg1
    if op == JEQ:
        if jmp32:
            reg1.u32_min_value = max(reg1.u32_min_value, reg2.u32_min_value)
            reg1.u32_max_value = min(reg1.u32_max_value, reg2.u32_max_value)
            reg1.s32_min_value = max(reg1.s32_min_value, reg2.s32_min_value)
            reg1.s32_max_value = min(reg1.s32_max_value, reg2.s32_max_value)
            reg2.u32_min_value, reg2.u32_max_value = reg1.u32_min_value, reg1.u32_max_value
            reg2.s32_min_value, reg2.s32_max_value = reg1.s32_min_value, reg1.s32_max_value
            t = reg1.var_off.subreg().intersect(reg2.var_off.subreg())
            reg1.var_off = reg1.var_off.with_subreg(t)
            reg2.var_off = reg2.var_off.with_subreg(t)
        else:
            reg1.umin_value = max(reg1.umin_value, reg2.umin_value)
            reg1.umax_value = min(reg1.umax_value, reg2.umax_value)
            reg1.smin_value = max(reg1.smin_value, reg2.smin_value)
            reg1.smax_value = min(reg1.smax_value, reg2.smax_value)
            reg2.umin_value, reg2.umax_value = reg1.umin_value, reg1.umax_value
            reg2.smin_value, reg2.smax_value = reg1.smin_value, reg1.smax_value
            reg1.var_off = reg1.var_off.intersect(reg2.var_off)
            reg2.var_off = reg1.var_off
    elif op == JNE:
        if not _is_const(reg2, jmp32):
            reg1, reg2 = reg2, reg1
        if not _is_const(reg2, jmp32):
            return
        val = _const(reg2, jmp32)
        if jmp32:
            if reg1.u32_min_value == val & U32:
                reg1.u32_min_value = (reg1.u32_min_value + 1) & U32
            if reg1.u32_max_value == val & U32:
                reg1.u32_max_value = (reg1.u32_max_value - 1) & U32
            if reg1.s32_min_value == s32(val):
                reg1.s32_min_value = s32(reg1.s32_min_value + 1)
            if reg1.s32_max_value == s32(val):
                reg1.s32_max_value = s32(reg1.s32_max_value - 1)
        else:
            if reg1.umin_value == val:
                reg1.umin_value = (reg1.umin_value + 1) & U64
            if reg1.umax_value == val:
                reg1.umax_value = (reg1.umax_value - 1) & U64
            if reg1.smin_value == s64(val):
                reg1.smin_value = s64(reg1.smin_value + 1)
            if reg1.smax_value == s64(val):
                reg1.smax_value = s64(reg1.smax_value - 1)
    elif op == JSET:
        if not _is_const(reg2, jmp32):
            reg1, reg2 = reg2, reg1
        if not _is_const(reg2, jmp32):
            return
        val = _const(reg2, jmp32)
        if val == 0 or val & (val - 1):
            return
        if jmp32:
            t = reg1.var_off.subreg().or_(Tnum(val, 0))
            reg1.var_off = reg1.var_off.with_subreg(t)
        else:
            reg1.var_off = reg1.var_off.or_(Tnum(val, 0))
    elif op == JSET_X:
        if not _is_const(reg2, jmp32):
            reg1, reg2 = reg2, reg1
        if not _is_const(reg2, jmp32):
            return
        val = _const(reg2, jmp32)
        mark_reg_unbounded(reg1)
        if jmp32:
            t = reg1.var_off.subreg().and_(Tnum(~val & U64, 0))
            reg1.var_off = reg1.var_off.with_subreg(t)
        else:
            reg1.var_off = reg1.var_off.and_(Tnum(~val & U64, 0))
    elif op == JLE:
        if jmp32:
            reg1.u32_max_value = min(reg1.u32_max_value, reg2.u32_max_value)
            reg2.u32_min_value = max(reg1.u32_min_value, reg2.u32_min_value)
        else:
            reg1.umax_value = min(reg1.umax_value, reg2.umax_value)
            reg2.umin_value = max(reg1.umin_value, reg2.umin_value)
    elif op == JLT:
        if jmp32:
            reg1.u32_max_value = min(reg1.u32_max_value, (reg2.u32_max_value - 1) & U32)
            reg2.u32_min_value = max((reg1.u32_min_value + 1) & U32, reg2.u32_min_value)
        else:
            reg1.umax_value = min(reg1.umax_value, (reg2.umax_value - 1) & U64)
            reg2.umin_value = max((reg1.umin_value + 1) & U64, reg2.umin_value)
    elif op == JSLE:
        if jmp32:
            reg1.s32_max_value = min(reg1.s32_max_value, reg2.s32_max_value)
            reg2.s32_min_value = max(reg1.s32_min_value, reg2.s32_min_value)
        else:
            reg1.smax_value = min(reg1.smax_value, reg2.smax_value)
            reg2.smin_value = max(reg1.smin_value, reg2.smin_value)
    elif op == JSLT:
        if jmp32:
            reg1.s32_max_value = min(reg1.s32_max_value, s32(reg2.s32_max_value - 1))
            reg2.s32_min_value = max(s32(reg1.s32_min_value + 1), reg2.s32_min_value)
        else:
            reg1.smax_value = min(reg1.smax_value, s64(reg2.smax_value - 1))
            reg2.smin_value = max(s64(reg1.smin_value + 1), reg2.smin_value)


def reg_set_min_max(env: VerifierEnv, true1: RegState, true2: RegState, false1: RegState, false2: RegState,
                    op: int, jmp32: bool) -> None:
    if false1.type != RegType.SCALAR_VALUE or false2.type != RegType.SCALAR_VALUE:
        return
    regs_refine_cond_op(false1, false2, _REV[op], jmp32)
    reg_bounds_sync(false1)
    reg_bounds_sync(false2)
    regs_refine_cond_op(true1, true2, op, jmp32)
    reg_bounds_sync(true1)
    reg_bounds_sync(true2)
    reg_bounds_sanity_check(env, true1, "true_reg1")
    reg_bounds_sanity_check(env, true2, "true_reg2")
    reg_bounds_sanity_check(env, false1, "false_reg1")
    reg_bounds_sanity_check(env, false2, "false_reg2")


def mark_ptr_not_null_reg(reg: RegState) -> None:
    if base_type(reg.type) == RegType.PTR_TO_MAP_VALUE:
        m = reg.map_ptr
        inner = getattr(m, "inner_map_meta", None)
        mt = getattr(m, "map_type", 0)
        if inner is not None:
            reg.type = RegType.CONST_PTR_TO_MAP
            reg.map_ptr = inner
        elif mt == 17:  # XSKMAP
            reg.type = RegType.PTR_TO_XDP_SOCK
        elif mt in (15, 18):  # SOCKMAP, SOCKHASH
            reg.type = RegType.PTR_TO_SOCKET
        else:
            reg.type = RegType.PTR_TO_MAP_VALUE
        return
    reg.type &= ~TypeFlag.PTR_MAYBE_NULL


def _may_point_to_spin_lock(reg: RegState) -> bool:
    if reg.type != RegType.PTR_TO_MAP_VALUE:
        return False
    return any(f[0] == "bpf_spin_lock" for f in special_fields(reg.map_ptr))


def mark_ptr_or_null_reg(reg: RegState, rid: int, is_null: bool) -> None:
    if type_may_be_null(reg.type) and reg.id == rid and reg.id:
        if reg.smin_value or reg.smax_value or reg.var_off.mask or reg.var_off.value:
            return
        if is_null:
            reg.type = RegType.SCALAR_VALUE
            reg.id = 0
            reg.ref_obj_id = 0
            return
        mark_ptr_not_null_reg(reg)
        if not _may_point_to_spin_lock(reg):
            reg.id = 0


def mark_ptr_or_null_regs(env: VerifierEnv, vstate: VerifierState, regno: int, is_null: bool) -> None:
    state = vstate.frame[vstate.curframe]
    regs = state.regs
    ref_obj_id = regs[regno].ref_obj_id
    rid = regs[regno].id
    if ref_obj_id and ref_obj_id == rid and is_null:
        from pybpf.verifier.transfer.calls import release_reference_state

        release_reference_state(state, rid)
    for _, reg in for_each_reg(vstate):
        mark_ptr_or_null_reg(reg, rid, is_null)


def find_good_pkt_pointers(vstate: VerifierState, dst: RegState, t: int, range_right_open: bool) -> None:
    if dst.off < 0 or (dst.off == 0 and range_right_open):
        return
    if dst.umax_value > MAX_PACKET_OFF or dst.umax_value + dst.off > MAX_PACKET_OFF:
        return
    new_range = dst.off + (1 if range_right_open else 0)
    did = dst.id
    for _, reg in for_each_reg(vstate):
        if reg.type == t and reg.id == did:
            reg.range = max(reg.range, new_range)


def _mark_pkt_end(vstate: VerifierState, regn: int, range_open: bool) -> None:
    reg = vstate.frame[vstate.curframe].regs[regn]
    if reg.type != RegType.PTR_TO_PACKET:
        return
    reg.range = BEYOND_PKT_END if range_open else AT_PKT_END


def _is_init_pkt(reg: RegState, which: int) -> bool:
    return reg.type == which and reg.id == 0 and reg.off == 0 and reg.var_off.mask == 0 and reg.var_off.value == 0


def try_match_pkt_pointers(insn: Insn, dst: RegState, src: RegState, this: VerifierState,
                           other: VerifierState) -> bool:
    """``try_match_pkt_pointers``: a comparison of a packet pointer with ``pkt_end`` (or of
    ``pkt_meta`` with ``pkt``) proves a range on one branch and marks ``pkt_end`` on the other.

    For ``pkt > pkt_end`` / ``pkt >= pkt_end`` the fall-through branch (``this``) is where the
    pointer is in range; for ``<`` / ``<=`` it is the jump target (``other``); with the operands
    swapped (``pkt_end < pkt``...) the branches swap too. The range is right-open (the pointer may
    equal ``pkt_end``) for ``<`` and ``>=`` with the pointer on the left, and for ``>`` and ``<=``
    with it on the right; ``pkt_end`` is marked with the opposite."""
    if not insn.code & 8 or insn.code & 7 == 6:
        return False
    op = insn.code & 0xF0
    if op not in (JGT, JLT, JGE, JLE):
        return False
    P, PM, PE = RegType.PTR_TO_PACKET, RegType.PTR_TO_PACKET_META, RegType.PTR_TO_PACKET_END
    greater = op in (JGT, JGE)
    range_open = op in (JLT, JGE)
    if (dst.type == P and src.type == PE) or (dst.type == PM and _is_init_pkt(src, P)):
        good, end, ptr, regno = (this, other, dst, insn.dst) if greater else (other, this, dst, insn.dst)
    elif (dst.type == PE and src.type == P) or (_is_init_pkt(dst, P) and src.type == PM):
        good, end, ptr, regno = (other, this, src, insn.src) if greater else (this, other, src, insn.src)
        range_open = not range_open
    else:
        return False
    find_good_pkt_pointers(good, ptr, ptr.type, range_open)
    _mark_pkt_end(end, regno, not range_open)
    return True


LINKED_REGS_MAX = 6


def collect_linked_regs(vstate: VerifierState, rid: int, out: list[tuple[int, bool, int]]) -> None:
    """Append the scalars sharing ``rid`` to ``out`` as (frame, is_reg, regno or spi).

    The kernel's set holds six entries; scalars beyond that lose their id (they are no longer
    linked), which is what the kernel does and what its log shows.
    """
    rid &= ~BPF_ADD_CONST
    for i in range(vstate.curframe, -1, -1):
        f = vstate.frame[i]
        for j in range(10):
            reg = f.regs[j]
            if reg.type == RegType.SCALAR_VALUE and (reg.id & ~BPF_ADD_CONST) == rid:
                if len(out) < LINKED_REGS_MAX:
                    out.append((i, True, j))
                else:
                    reg.id = 0
        for j, slot in enumerate(f.stack):
            if slot.slot_type[7] != 1:
                continue
            reg = slot.spilled_ptr
            if reg.type == RegType.SCALAR_VALUE and (reg.id & ~BPF_ADD_CONST) == rid:
                if len(out) < LINKED_REGS_MAX:
                    out.append((i, False, j))
                else:
                    reg.id = 0


def sync_linked_regs(vstate: VerifierState, known: RegState, linked: list[tuple[int, bool, int]]) -> None:
    for frameno, is_reg, idx in linked:
        f = vstate.frame[frameno]
        reg = f.regs[idx] if is_reg else f.stack[idx].spilled_ptr
        if reg.type != RegType.SCALAR_VALUE or reg is known:
            continue
        if (reg.id & ~BPF_ADD_CONST) != (known.id & ~BPF_ADD_CONST):
            continue
        if (not reg.id & BPF_ADD_CONST and not known.id & BPF_ADD_CONST) or reg.off == known.off:
            sd = reg.subreg_def
            copy_register_state(reg, known)
            reg.subreg_def = sd
        else:
            sd, so, sid = reg.subreg_def, reg.off, reg.id
            fake = RegState()
            fake.type = RegType.SCALAR_VALUE
            __mark_reg_known(fake, s32(reg.off) - s32(known.off))
            copy_register_state(reg, known)
            reg.off, reg.id, reg.subreg_def = so, sid, sd
            scalar32_min_max_add(reg, fake)
            scalar_min_max_add(reg, fake)
            reg.var_off = reg.var_off.add(fake.var_off)


def _sanitize_speculative_path(env: VerifierEnv, insn: Insn, next_idx: int) -> None:
    """Queue the branch a CPU may still run speculatively, with the compared registers unknown.

    Unprivileged programs are checked on the never-taken side too, so a Spectre v1 gadget behind a
    constant-folded condition is still caught (``sanitize_speculative_path``).
    """
    from pybpf.verifier.walk import push_stack

    branch = push_stack(env, next_idx, env.insn_idx, True)
    regs = branch.frame[branch.curframe].regs
    env.mark_reg_unknown(regs[insn.dst])
    if insn.code & 8:
        env.mark_reg_unknown(regs[insn.src])


def check_cond_jmp_op(env: VerifierEnv, insn: Insn) -> None:
    """Check a conditional jump and set ``env.insn_idx`` to where the current path continues."""
    from pybpf.verifier.precision import (
        INSN_F_DST_REG_STACK,
        INSN_F_SRC_REG_STACK,
        mark_chain_precision,
        push_insn_history,
    )
    from pybpf.verifier.walk import find_prev_entry, print_insn_state, push_stack, widen_imprecise_scalars

    this = env.cur_state
    insn_flags = 0
    regs = this.frame[this.curframe].regs
    op = insn.code & 0xF0
    if op == 0x00 or op > 0xE0:
        raise env.fail(E.EINVAL, Msg.INVALID_BPF_JMP_JMP32_OPCODE.format(op))
    if op == 0xE0:
        if insn.code != 0xE5 or insn.src != 0 or insn.dst or insn.imm or insn.off == 0:
            raise env.fail(E.EINVAL, Msg.INVALID_MAY_GOTO_OFF_IMM.format(insn.off, insn.imm))
        prev_st = find_prev_entry(env, this.parent, env.insn_idx)
        queued = push_stack(env, env.insn_idx + 1, env.insn_idx, False)
        queued.may_goto_depth += 1
        if prev_st is not None:
            widen_imprecise_scalars(env, prev_st, queued)
        env.insn_idx += insn.off + 1
        return
    env.check_reg_arg(insn.dst, SRC_OP)
    dst_reg = regs[insn.dst]
    if insn.code & 8:
        if insn.imm != 0:
            raise env.fail(E.EINVAL, Msg.BPF_JMP_JMP32_USES_RESERVED_FIELDS)
        env.check_reg_arg(insn.src, SRC_OP)
        src_reg = regs[insn.src]
        if not (dst_reg.type in _PKT_ANY and src_reg.type in _PKT_ANY) and env.is_pointer_value(insn.src):
            raise env.fail(E.EACCES, Msg.R_POINTER_COMPARISON_PROHIBITED.format(insn.src))
        if src_reg.type == RegType.PTR_TO_STACK:
            insn_flags |= INSN_F_SRC_REG_STACK
    else:
        if insn.src != 0:
            raise env.fail(E.EINVAL, Msg.BPF_JMP_JMP32_USES_RESERVED_FIELDS)
        src_reg = RegState()
        src_reg.type = RegType.SCALAR_VALUE
        __mark_reg_known(src_reg, insn.imm)
    if dst_reg.type == RegType.PTR_TO_STACK:
        insn_flags |= INSN_F_DST_REG_STACK
    if insn_flags:
        push_insn_history(env, this, insn_flags)
    jmp32 = insn.code & 7 == 6
    pred = is_branch_taken(dst_reg, src_reg, op, jmp32)
    if pred >= 0:
        if dst_reg.type == RegType.SCALAR_VALUE:
            mark_chain_precision(env, insn.dst)
        if insn.code & 8 and src_reg.type == RegType.SCALAR_VALUE:
            mark_chain_precision(env, insn.src)
    if pred == 1:
        if not env.bypass_spec_v1:
            _sanitize_speculative_path(env, insn, env.insn_idx + 1)
        if env.log.level & 3:
            print_insn_state(env, this.frame[this.curframe])
        env.insn_idx += insn.off + 1
        return
    if pred == 0:
        if not env.bypass_spec_v1:
            _sanitize_speculative_path(env, insn, env.insn_idx + insn.off + 1)
        if env.log.level & 3:
            print_insn_state(env, this.frame[this.curframe])
        env.insn_idx += 1
        return
    linked: list[tuple[int, bool, int]] = []
    if insn.code & 8 and src_reg.type == RegType.SCALAR_VALUE and src_reg.id:
        collect_linked_regs(this, src_reg.id, linked)
    if dst_reg.type == RegType.SCALAR_VALUE and dst_reg.id:
        collect_linked_regs(this, dst_reg.id, linked)
    if len(linked) > 1:
        # recorded before the other branch is pushed so that both share it once a checkpoint forms
        push_insn_history(env, this, 0, tuple(linked))
    other = push_stack(env, env.insn_idx + insn.off + 1, env.insn_idx, False)
    oregs = other.frame[other.curframe].regs
    if insn.code & 8:
        reg_set_min_max(env, oregs[insn.dst], oregs[insn.src], dst_reg, src_reg, op, jmp32)
    else:
        fake1 = src_reg.copy()
        reg_set_min_max(env, oregs[insn.dst], src_reg, dst_reg, fake1, op, jmp32)
    if insn.code & 8 and src_reg.type == RegType.SCALAR_VALUE and src_reg.id and src_reg.id == oregs[insn.src].id:
        sync_linked_regs(this, src_reg, linked)
        sync_linked_regs(other, oregs[insn.src], linked)
    if dst_reg.type == RegType.SCALAR_VALUE and dst_reg.id and dst_reg.id == oregs[insn.dst].id:
        sync_linked_regs(this, dst_reg, linked)
        sync_linked_regs(other, oregs[insn.dst], linked)
    if (not jmp32 and insn.code & 8 and src_reg.type != RegType.SCALAR_VALUE
            and dst_reg.type != RegType.SCALAR_VALUE and base_type(src_reg.type) != RegType.PTR_TO_BTF_ID
            and base_type(dst_reg.type) != RegType.PTR_TO_BTF_ID):
        eq_regs = oregs if op == JEQ else regs if op == JNE else None
        if eq_regs is not None:
            if reg_not_null(dst_reg) and type_may_be_null(src_reg.type):
                mark_ptr_not_null_reg(eq_regs[insn.src])
            if reg_not_null(src_reg) and type_may_be_null(dst_reg.type):
                mark_ptr_not_null_reg(eq_regs[insn.dst])
    if (not jmp32 and not insn.code & 8 and insn.imm == 0 and op in (JEQ, JNE)
            and type_may_be_null(dst_reg.type)):
        mark_ptr_or_null_regs(env, this, insn.dst, op == JNE)
        mark_ptr_or_null_regs(env, other, insn.dst, op == JEQ)
    elif not try_match_pkt_pointers(insn, dst_reg, regs[insn.src], this, other) and env.is_pointer_value(insn.dst):
        raise env.fail(E.EACCES, Msg.R_POINTER_COMPARISON_PROHIBITED.format(insn.dst))
    if env.log.level & 3:
        print_insn_state(env, this.frame[this.curframe])
    env.insn_idx += 1
