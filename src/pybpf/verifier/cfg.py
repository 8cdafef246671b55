"""Control flow, checked before the walk: subprograms (``add_subprog_and_kfunc``,
``check_subprogs``), map references (``resolve_pseudo_ldimm64``), the CFG depth-first search
(``check_cfg``: jumps in range and not into an lddw, no unreachable instructions, back-edges only
when loops are allowed, prune/jump points for the walk) and, after the walk, the combined stack
depth of call chains (``check_max_stack_depth``).
"""

from __future__ import annotations

import errno as E
from typing import Any

from pybpf.isa import OPCODES, Kind
from pybpf.uapi import HelperId, MapType
from pybpf.verifier.env import BPF_MAX_VAR_OFF, MAX_BPF_STACK, MAX_CALL_FRAMES, Reject, SubprogInfo, VerifierEnv
from pybpf.verifier.log import Msg
from pybpf.verifier.maps import special_fields

__all__ = ["add_subprogs", "check_cfg", "check_max_stack_depth", "check_subprogs", "resolve_pseudo_ldimm64"]

DISCOVERED = 0x10
EXPLORED = 0x20
FALLTHROUGH = 1
BRANCH = 2
DONE_EXPLORING = 0
KEEP_EXPLORING = 1
BPF_MAX_SUBPROGS = 256
# bpf_opcode_in_insntable: every opcode of the ISA except register-indirect calls
INSNTABLE = frozenset(code for code, info in OPCODES.items() if info.kind is not Kind.CALLX)

_SYNC_CALLBACK = frozenset((int(HelperId.loop), int(HelperId.for_each_map_elem), int(HelperId.find_vma),
                            int(HelperId.user_ringbuf_drain)))
_CHANGES_PKT = frozenset(int(h) for h in (
    HelperId.clone_redirect, HelperId.l3_csum_replace, HelperId.l4_csum_replace, HelperId.skb_adjust_room,
    HelperId.skb_change_head, HelperId.skb_change_proto, HelperId.skb_change_tail, HelperId.skb_pull_data,
    HelperId.skb_store_bytes, HelperId.skb_vlan_pop, HelperId.skb_vlan_push, HelperId.xdp_adjust_head,
    HelperId.xdp_adjust_meta, HelperId.xdp_adjust_tail, HelperId.tail_call, HelperId.lwt_push_encap,
    HelperId.msg_pull_data, HelperId.msg_push_data, HelperId.msg_pop_data, HelperId.store_hdr_opt))


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >> 31 else v


def _add_subprog(env: VerifierEnv, off: int) -> int:
    if off >= env.insn_cnt or off < 0:
        raise env.fail(E.EINVAL, Msg.CALL_TO_INVALID_DESTINATION)
    for i, info in enumerate(env.subprog_info):
        if info.start == off:
            return i
    if len(env.subprog_info) >= BPF_MAX_SUBPROGS:
        raise env.fail(E.E2BIG, Msg.TOO_MANY_SUBPROGRAMS)
    env.subprog_info.append(SubprogInfo(start=off))
    env.subprog_info.sort(key=lambda s: s.start)
    return next(i for i, s in enumerate(env.subprog_info) if s.start == off)


def add_subprogs(env: VerifierEnv) -> None:
    """``add_subprog_and_kfunc``: every bpf-to-bpf call and ``lddw`` of a function starts a subprogram (sorted
    by start); calls need CAP_BPF."""
    _add_subprog(env, 0)
    for i, insn in enumerate(env.insns):
        if insn is None:
            continue
        pseudo_func = insn.code == 0x18 and insn.src == 4
        pseudo_call = insn.code == 0x85 and insn.src == 1
        kfunc = insn.code == 0x85 and insn.src == 2
        if not (pseudo_func or pseudo_call or kfunc):
            continue
        if not env.bpf_capable:
            raise env.fail(E.EPERM, Msg.LOADING_CALLING_OTHER_BPF_OR_KERNEL)
        if pseudo_func or pseudo_call:
            imm = _s32(insn.imm) if pseudo_call else _s32(insn.imm_lo)
            _add_subprog(env, i + imm + 1)
    if env.log.level & 2:
        for i, s in enumerate(env.subprog_info):
            env.verbose(Msg.FUNC_AT.format(i, s.start))


def _subprog_end(env: VerifierEnv, idx: int) -> int:
    return env.subprog_info[idx + 1].start if idx + 1 < len(env.subprog_info) else env.insn_cnt


def check_subprogs(env: VerifierEnv) -> None:
    """``check_subprogs``: jumps stay inside their subprogram and each subprogram ends with ``exit`` or a jump;
    notes which ones tail-call or use LD_ABS."""
    cur = 0
    start = env.subprog_info[0].start
    end = _subprog_end(env, 0)
    for i in range(env.insn_cnt):
        insn = env.insns[i]
        code = insn.code if insn is not None else 0
        if insn is not None:
            if code == 0x85 and insn.src == 0 and insn.imm == HelperId.tail_call:
                env.subprog_info[cur].has_tail_call = True
                env.subprog_info[cur].tail_call_reachable = True
            if code & 7 == 0 and code & 0xE0 in (0x20, 0x40):
                env.subprog_info[cur].has_ld_abs = True
            if code & 7 in (5, 6) and code & 0xF0 not in (0x90, 0x80):
                off = i + (_s32(insn.imm) if code == 0x06 else insn.off) + 1
                if off < start or off >= end:
                    raise env.fail(E.EINVAL, Msg.JUMP_OUT_OF_RANGE_FROM_INSN.format(i, off))
        if i == end - 1:
            if code not in (0x95, 0x06, 0x05):
                raise env.fail(E.EINVAL, Msg.LAST_INSN_IS_NOT_AN_EXIT)
            start = end
            cur += 1
            if cur < len(env.subprog_info):
                end = _subprog_end(env, cur)


def resolve_pseudo_ldimm64(env: VerifierEnv) -> None:
    """``resolve_pseudo_ldimm64``: reserved fields, known opcodes, and every map ``lddw`` resolved to its map
    (``used_maps``, the map's compatibility with the program type, direct value offsets)."""
    used: dict[int, int] = {}
    for i, insn in enumerate(env.insns):
        if insn is None:
            continue
        if insn.code & 7 == 1 and (insn.code & 0xE0 not in (0x60, 0x80) or insn.imm != 0):
            raise env.fail(E.EINVAL, Msg.BPF_LDX_USES_RESERVED_FIELDS)
        if insn.code != 0x18:
            if insn.code not in INSNTABLE:
                raise env.fail(E.EINVAL, Msg.UNKNOWN_OPCODE.format(insn.code))
            continue
        src = insn.src
        if src == 0:
            continue
        if src in (3, 4):
            continue
        hi = insn.imm_hi
        if (src in (1, 5) and hi != 0) or src not in (1, 2, 5, 6):
            raise env.fail(E.EINVAL, Msg.UNRECOGNIZED_BPF_LD_IMM64_INSN)
        fd = insn.imm_lo
        if src in (5, 6):
            fd_array = getattr(env, "fd_array", None)
            if fd_array is None:
                raise env.fail(E.EPROTO, Msg.FD_IDX_WITHOUT_FD_ARRAY_IS)
            fd = fd_array[fd]
        m = env.maps.get(fd)
        if m is None:
            raise env.fail(E.EBADF, Msg.FD_IS_NOT_POINTING_TO_VALID.format(_s32(fd)))
        aux = env.aux[i]
        if id(m) not in used:
            used[id(m)] = len(env.used_maps)
            env.used_maps.append(m)
        aux.map_index = used[id(m)]
        aux.map_ptr = m
        _check_map_prog_compatibility(env, m)
        if src in (2, 6):
            off = hi
            if off >= BPF_MAX_VAR_OFF:
                raise env.fail(E.EINVAL, Msg.DIRECT_VALUE_OFFSET_OF_IS_NOT.format(off))
            if m.map_type != MapType.ARRAY and getattr(m, "value_area_offset", None) is None:
                raise env.fail(E.EINVAL, Msg.NO_DIRECT_VALUE_ACCESS_SUPPORT_FOR)
            if m.map_type == MapType.ARRAY and (m.max_entries != 1 or off >= m.value_size):
                raise env.fail(E.EINVAL if m.max_entries == 1 else 524,
                               Msg.INVALID_ACCESS_TO_MAP_VALUE_POINTER.format(m.value_size, off))
            aux.map_off = off


_TRACING = frozenset((2, 5, 7, 17, 26, 24))  # kprobe, tracepoint, perf_event, raw_tp, tracing, raw_tp_writable


def _check_map_prog_compatibility(env: VerifierEnv, m: Any) -> None:
    fields = {f[0] for f in special_fields(m)}
    pt = env.prog.prog_type
    if "bpf_spin_lock" in fields:
        if pt == 1:
            raise env.fail(E.EINVAL, Msg.SOCKET_FILTER_PROGS_CANNOT_USE_BPF)
        if pt in _TRACING:
            raise env.fail(E.EINVAL, Msg.TRACING_PROGS_CANNOT_USE_BPF_SPIN)
    if "bpf_timer" in fields and pt in _TRACING:
        raise env.fail(E.EINVAL, Msg.TRACING_PROGS_CANNOT_USE_BPF_TIMER)
    if m.map_type == MapType.STRUCT_OPS:
        raise env.fail(E.EINVAL, Msg.BPF_STRUCT_OPS_MAP_CANNOT_BE)


def check_cfg(env: VerifierEnv) -> None:
    """``check_cfg``: the depth-first search over the control-flow graph that refuses out-of-range jumps,
    unreachable instructions, jumps into an lddw and (without CAP_BPF) back-edges, and marks the prune and jump
    points the walk uses."""
    from pybpf.verifier.walk import verbose_linfo

    n = env.insn_cnt
    insn_state = [0] * n
    stack: list[int] = [0]
    insn_state[0] = DISCOVERED
    aux = env.aux

    def push_insn(t: int, w: int, e: int) -> int:
        if e == FALLTHROUGH and insn_state[t] >= (DISCOVERED | FALLTHROUGH):
            return DONE_EXPLORING
        if e == BRANCH and insn_state[t] >= (DISCOVERED | BRANCH):
            return DONE_EXPLORING
        if w < 0 or w >= n:
            verbose_linfo(env, t, f"{t}: ")
            raise env.fail(E.EINVAL, Msg.JUMP_OUT_OF_RANGE_FROM_INSN.format(t, w))
        if e == BRANCH:
            aux[w].prune_point = True
            aux[w].jmp_point = True
            aux[w].jump_target = True
        if insn_state[w] == 0:
            insn_state[t] = DISCOVERED | e
            insn_state[w] = DISCOVERED
            stack.append(w)
            return KEEP_EXPLORING
        if insn_state[w] & 0xF0 == DISCOVERED:
            if env.bpf_capable:
                return DONE_EXPLORING
            verbose_linfo(env, t, f"{t}: ")
            verbose_linfo(env, w, f"{w}: ")
            raise env.fail(E.EINVAL, Msg.BACK_EDGE_FROM_INSN_TO.format(t, w))
        if insn_state[w] == EXPLORED:
            insn_state[t] = DISCOVERED | e
            return DONE_EXPLORING
        raise env.fail(E.EFAULT, Msg.INSN_STATE_INTERNAL_BUG)

    def visit_call(t: int, visit_callee: bool) -> int:
        insn = env.insns[t]
        sz = 2 if insn.code == 0x18 else 1  # type: ignore[union-attr]
        ret = push_insn(t, t + sz, FALLTHROUGH)
        if ret:
            return ret
        if t + sz < n:
            aux[t + sz].prune_point = True
            aux[t + sz].jmp_point = True
        if visit_callee:
            imm = insn.imm if insn.code == 0x85 else insn.imm_lo  # type: ignore[union-attr]
            w = t + _s32(imm) + 1
            aux[t].prune_point = True
            # merge_callee_effects: the DFS reaches here again once the callee is explored, so a
            # caller inherits "changes packet data" from every (transitively) called function
            if 0 <= w < n:
                caller = env.subprog_info[_find_containing_subprog(env, t)]
                caller.changes_pkt_data |= env.subprog_info[_find_containing_subprog(env, w)].changes_pkt_data
            return push_insn(t, w, BRANCH)
        return ret

    def visit_insn(t: int) -> int:
        insn = env.insns[t]
        if insn is None:
            # the second half of an lddw (code 0, class LD): one fall-through edge; a jump here is
            # reported after the search, as "unreachable insn" or "jump into the middle of ldimm64"
            return push_insn(t, t + 1, FALLTHROUGH)
        code = insn.code
        if code == 0x18 and insn.src == 4:
            return visit_call(t, True)
        cls = code & 7
        if cls not in (5, 6):
            return push_insn(t, t + (2 if code == 0x18 else 1), FALLTHROUGH)
        op = code & 0xF0
        if op == 0x90:
            return DONE_EXPLORING
        if op == 0x80:
            if insn.src == 0 and insn.imm == HelperId.timer_set_callback:
                aux[t].prune_point = True
            if insn.src == 0 and insn.imm in _SYNC_CALLBACK:
                aux[t].calls_callback = True
                aux[t].force_checkpoint = True
                aux[t].prune_point = True
                aux[t].jmp_point = True
            if insn.src == 0 and insn.imm in _CHANGES_PKT:
                idx = _find_containing_subprog(env, t)
                env.subprog_info[idx].changes_pkt_data = True
            return visit_call(t, insn.src == 1)
        if op == 0x00:
            if code & 8:
                raise Reject(E.EINVAL)  # the kernel refuses a BPF_X ja without a message
            off = insn.off if cls == 5 else _s32(insn.imm)
            ret = push_insn(t, t + off + 1, FALLTHROUGH)
            if ret:
                return ret
            aux[t + off + 1].prune_point = True
            aux[t + off + 1].jmp_point = True
            aux[t + off + 1].jump_target = True
            return ret
        aux[t].prune_point = True
        if code == 0xE5:
            aux[t].force_checkpoint = True
        ret = push_insn(t, t + 1, FALLTHROUGH)
        if ret:
            return ret
        return push_insn(t, t + insn.off + 1, BRANCH)

    while stack:
        t = stack[-1]
        ret = visit_insn(t)
        if ret == DONE_EXPLORING:
            insn_state[t] = EXPLORED
            stack.pop()
    i = 0
    while i < n:
        if insn_state[i] != EXPLORED:
            raise env.fail(E.EINVAL, Msg.UNREACHABLE_INSN.format(i))
        insn = env.insns[i]
        if insn is not None and insn.code == 0x18:
            if i + 1 < n and insn_state[i + 1] != 0:
                raise env.fail(E.EINVAL, Msg.JUMP_INTO_THE_MIDDLE_OF_LDIMM64.format(i))
            i += 1
        i += 1


def _find_containing_subprog(env: VerifierEnv, off: int) -> int:
    idx = 0
    for i, s in enumerate(env.subprog_info):
        if s.start <= off:
            idx = i
    return idx


def check_max_stack_depth(env: VerifierEnv) -> None:
    """``check_max_stack_depth``: along every call chain (from the main program and each async callback) the
    frames' rounded stack sizes stay within 512 bytes and 8 frames; a tail call needs the caller frames below
    256 bytes."""
    subs = env.subprog_info

    def rnd(d: int) -> int:
        return (d + 15) // 16 * 16

    def walk(start_idx: int) -> None:
        depth = 0
        frame = 0
        ret_insn = [0] * MAX_CALL_FRAMES
        ret_prog = [0] * MAX_CALL_FRAMES
        idx = start_idx
        i = subs[idx].start
        tail_call_reachable = False
        while True:
            # process_func
            if subs[idx].has_ld_abs:
                in_cb = subs[idx].is_cb or any(subs[ret_prog[j]].is_cb for j in range(frame))
                if in_cb:
                    raise env.fail(E.EINVAL, Msg.CANNOT_USE_BPF_LD_ABS_IND)
            if idx and subs[idx].has_tail_call and depth >= 256:
                raise env.fail(E.EACCES, Msg.TAIL_CALLS_ARE_NOT_ALLOWED_WHEN.format(depth))
            depth += rnd(subs[idx].stack_depth)
            if depth > MAX_BPF_STACK:
                raise env.fail(E.EACCES, Msg.COMBINED_STACK_SIZE_OF_CALLS_IS.format(frame + 1, depth))
            while True:
                # continue_func
                end = _subprog_end(env, idx)
                called = False
                while i < end:
                    insn = env.insns[i]
                    if insn is not None and ((insn.code == 0x85 and insn.src == 1) or (insn.code == 0x18
                                                                                      and insn.src == 4)):
                        ret_insn[frame] = i + 1
                        ret_prog[frame] = idx
                        imm = insn.imm if insn.code == 0x85 else insn.imm_lo
                        nxt = i + _s32(imm) + 1
                        sidx = next((k for k, s in enumerate(subs) if s.start == nxt), -1)
                        if sidx < 0:
                            raise env.fail(E.EFAULT, Msg.VERIFIER_BUG_NO_PROGRAM_STARTS_AT.format(nxt))
                        if subs[sidx].is_async_cb and insn.code != 0x85:
                            i += 1
                            continue
                        i = nxt
                        idx = sidx
                        if subs[idx].has_tail_call:
                            tail_call_reachable = True
                        frame += 1
                        if frame >= MAX_CALL_FRAMES:
                            raise env.fail(E.E2BIG, Msg.CALL_STACK_TOO_DEEP_TOTAL.format(frame))
                        called = True
                        break
                    i += 1
                if called:
                    break
                if tail_call_reachable:
                    for j in range(frame):
                        subs[ret_prog[j]].tail_call_reachable = True
                if frame == 0:
                    return
                depth -= rnd(subs[idx].stack_depth)
                frame -= 1
                i = ret_insn[frame]
                idx = ret_prog[frame]

    for k in range(len(subs) - 1, -1, -1):
        if k == 0 or subs[k].is_async_cb:
            walk(k)
