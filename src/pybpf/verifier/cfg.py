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
from pybpf.verifier.env import BPF_MAX_VAR_OFF, MAX_BPF_STACK, MAX_CALL_FRAMES, SubprogInfo, VerifierEnv
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
        raise env.fail(E.EINVAL, "call to invalid destination")
    for i, info in enumerate(env.subprog_info):
        if info.start == off:
            return i
    if len(env.subprog_info) >= BPF_MAX_SUBPROGS:
        raise env.fail(E.E2BIG, "too many subprograms")
    env.subprog_info.append(SubprogInfo(start=off))
    env.subprog_info.sort(key=lambda s: s.start)
    return next(i for i, s in enumerate(env.subprog_info) if s.start == off)


def add_subprogs(env: VerifierEnv) -> None:
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
            raise env.fail(E.EPERM, "loading/calling other bpf or kernel functions are allowed for CAP_BPF and "
                           "CAP_SYS_ADMIN")
        if pseudo_func or pseudo_call:
            imm = _s32(insn.imm) if pseudo_call else _s32(insn.imm_lo)
            _add_subprog(env, i + imm + 1)
    if env.log.level & 2:
        for i, s in enumerate(env.subprog_info):
            env.verbose(f"func#{i} @{s.start}\n")


def _subprog_end(env: VerifierEnv, idx: int) -> int:
    return env.subprog_info[idx + 1].start if idx + 1 < len(env.subprog_info) else env.insn_cnt


def check_subprogs(env: VerifierEnv) -> None:
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
                    raise env.fail(E.EINVAL, f"jump out of range from insn {i} to {off}")
        if i == end - 1:
            if code not in (0x95, 0x06, 0x05):
                raise env.fail(E.EINVAL, "last insn is not an exit or jmp")
            start = end
            cur += 1
            if cur < len(env.subprog_info):
                end = _subprog_end(env, cur)


def resolve_pseudo_ldimm64(env: VerifierEnv) -> None:
    used: dict[int, int] = {}
    for i, insn in enumerate(env.insns):
        if insn is None:
            continue
        if insn.code & 7 == 1 and (insn.code & 0xE0 not in (0x60, 0x80) or insn.imm != 0):
            raise env.fail(E.EINVAL, "BPF_LDX uses reserved fields")
        if insn.code != 0x18:
            if insn.code not in INSNTABLE:
                raise env.fail(E.EINVAL, f"unknown opcode {insn.code:02x}")
            continue
        src = insn.src
        if src == 0:
            continue
        if src in (3, 4):
            continue
        hi = insn.imm_hi
        if (src in (1, 5) and hi != 0) or src not in (1, 2, 5, 6):
            raise env.fail(E.EINVAL, "unrecognized bpf_ld_imm64 insn")
        fd = insn.imm_lo
        if src in (5, 6):
            fd_array = getattr(env, "fd_array", None)
            if fd_array is None:
                raise env.fail(E.EPROTO, "fd_idx without fd_array is invalid")
            fd = fd_array[fd]
        m = env.maps.get(fd)
        if m is None:
            raise env.fail(E.EBADF, f"fd {_s32(fd)} is not pointing to valid bpf_map")
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
                raise env.fail(E.EINVAL, f"direct value offset of {off} is not allowed")
            if m.map_type != MapType.ARRAY and getattr(m, "value_area_offset", None) is None:
                raise env.fail(E.EINVAL, "no direct value access support for this map type")
            if m.map_type == MapType.ARRAY and (m.max_entries != 1 or off >= m.value_size):
                raise env.fail(E.EINVAL if m.max_entries == 1 else 524, f"invalid access to map value pointer, "
                               f"value_size={m.value_size} off={off}")
            aux.map_off = off


_TRACING = frozenset((2, 5, 7, 17, 26, 24))  # kprobe, tracepoint, perf_event, raw_tp, tracing, raw_tp_writable


def _check_map_prog_compatibility(env: VerifierEnv, m: Any) -> None:
    fields = {f[0] for f in special_fields(m)}
    pt = env.prog.prog_type
    if "bpf_spin_lock" in fields:
        if pt == 1:
            raise env.fail(E.EINVAL, "socket filter progs cannot use bpf_spin_lock yet")
        if pt in _TRACING:
            raise env.fail(E.EINVAL, "tracing progs cannot use bpf_spin_lock yet")
    if "bpf_timer" in fields and pt in _TRACING:
        raise env.fail(E.EINVAL, "tracing progs cannot use bpf_timer yet")
    if m.map_type == MapType.STRUCT_OPS:
        raise env.fail(E.EINVAL, "bpf_struct_ops map cannot be used in prog")


def check_cfg(env: VerifierEnv) -> None:
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
            raise env.fail(E.EINVAL, f"jump out of range from insn {t} to {w}")
        if e == BRANCH:
            aux[w].prune_point = True
            aux[w].jmp_point = True
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
            raise env.fail(E.EINVAL, f"back-edge from insn {t} to {w}")
        if insn_state[w] == EXPLORED:
            insn_state[t] = DISCOVERED | e
            return DONE_EXPLORING
        raise env.fail(E.EFAULT, "insn state internal bug")

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
            raise env.fail(E.EINVAL, f"jump into the middle of ldimm64 insn {t - 1}")
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
                raise Exception("bad ja")
            off = insn.off if cls == 5 else _s32(insn.imm)
            ret = push_insn(t, t + off + 1, FALLTHROUGH)
            if ret:
                return ret
            aux[t + off + 1].prune_point = True
            aux[t + off + 1].jmp_point = True
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
            raise env.fail(E.EINVAL, f"unreachable insn {i}")
        insn = env.insns[i]
        if insn is not None and insn.code == 0x18:
            if i + 1 < n and insn_state[i + 1] != 0:
                raise env.fail(E.EINVAL, f"jump into the middle of ldimm64 insn {i}")
            i += 1
        i += 1


def _find_containing_subprog(env: VerifierEnv, off: int) -> int:
    idx = 0
    for i, s in enumerate(env.subprog_info):
        if s.start <= off:
            idx = i
    return idx


def check_max_stack_depth(env: VerifierEnv) -> None:
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
                    raise env.fail(E.EINVAL, "cannot use BPF_LD_[ABS|IND] within callback")
            if idx and subs[idx].has_tail_call and depth >= 256:
                raise env.fail(E.EACCES, f"tail_calls are not allowed when call stack of previous frames is "
                               f"{depth} bytes. Too large")
            depth += rnd(subs[idx].stack_depth)
            if depth > MAX_BPF_STACK:
                raise env.fail(E.EACCES, f"combined stack size of {frame + 1} calls is {depth}. Too large")
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
                            raise env.fail(E.EFAULT, f"verifier bug. No program starts at insn {nxt}")
                        if subs[sidx].is_async_cb and insn.code != 0x85:
                            i += 1
                            continue
                        i = nxt
                        idx = sidx
                        if subs[idx].has_tail_call:
                            tail_call_reachable = True
                        frame += 1
                        if frame >= MAX_CALL_FRAMES:
                            raise env.fail(E.E2BIG, f"the call stack of {frame} frames is too deep !")
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
