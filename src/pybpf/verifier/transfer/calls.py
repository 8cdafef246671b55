"""Calls: helpers (``check_helper_call`` with ``check_func_arg`` per argument), bpf-to-bpf calls
(``check_func_call``, ``prepare_func_exit``), callbacks (``bpf_loop``, ``bpf_for_each_map_elem``,
timers), reference tracking (``acquire_reference_state``, ``release_reference``,
``check_reference_leak``) and the return-code check at program exit.
"""

from __future__ import annotations

import errno as E
from dataclasses import dataclass
from typing import Any

from pybpf.isa import Insn
from pybpf.progtypes import internal
from pybpf.progtypes.protos import HelperProto
from pybpf.progtypes.types import AccessType, ArgType, RegType, RetType, TypeFlag
from pybpf.uapi import HelperId, MapType, helper_name
from pybpf.verifier.checks.mem import (
    check_helper_mem_access,
    check_mem_access,
    check_mem_size_reg,
    check_ptr_alignment,
    check_ptr_off_reg,
    register_is_null,
)
from pybpf.verifier.env import DST_OP_NO_MARK, SRC_OP, Reject, VerifierEnv, base_type, type_may_be_null
from pybpf.verifier.log import Msg, format_state, reg_type_str
from pybpf.verifier.maps import special_fields
from pybpf.verifier.regs import (
    S64_MAX,
    S64_MIN,
    RegState,
    mark_reg_known_zero,
    mark_reg_not_init,
    reg_bounds_sync,
)
from pybpf.verifier.state import FuncState, RefState, VerifierState
from pybpf.verifier.transfer.alu import reg_bounds_sanity_check
from pybpf.verifier.transfer.jmp import for_each_reg

__all__ = [
    "check_func_call",
    "check_helper_call",
    "check_reference_leak",
    "check_return_code",
    "prepare_func_exit",
    "release_reference_state",
]

H = HelperId
MAX_ERRNO = 4095
_CHANGES_PKT_DATA = frozenset(int(h) for h in (
    H.clone_redirect, H.l3_csum_replace, H.l4_csum_replace, H.lwt_push_encap, H.lwt_seg6_action,
    H.lwt_seg6_adjust_srh, H.lwt_seg6_store_bytes, H.msg_pop_data, H.msg_pull_data, H.msg_push_data,
    H.skb_adjust_room, H.skb_change_head, H.skb_change_proto, H.skb_change_tail, H.skb_pull_data,
    H.skb_store_bytes, H.skb_vlan_pop, H.skb_vlan_push, H.store_hdr_opt, H.xdp_adjust_head,
    H.xdp_adjust_meta, H.xdp_adjust_tail, H.tail_call))
_PTR_CAST = frozenset(int(h) for h in (
    H.tcp_sock, H.sk_fullsock, H.skc_to_tcp_sock, H.skc_to_tcp6_sock, H.skc_to_udp6_sock, H.skc_to_mptcp_sock,
    H.skc_to_tcp_timewait_sock, H.skc_to_tcp_request_sock))
_RECORD_MAP = frozenset(int(h) for h in (
    H.tail_call, H.map_lookup_elem, H.map_update_elem, H.map_delete_elem, H.map_push_elem, H.map_pop_elem,
    H.map_peek_elem, H.for_each_map_elem, H.redirect_map, H.map_lookup_percpu_elem))
_CALLBACK_CALLING = frozenset(int(h) for h in (
    H.timer_set_callback, H.find_vma, H.loop, H.user_ringbuf_drain, H.for_each_map_elem))

# compatible register types per argument base type (compatible_reg_types)
R = RegType
F = TypeFlag
_MEM_TYPES = (R.PTR_TO_STACK, R.PTR_TO_PACKET, R.PTR_TO_PACKET_META, R.PTR_TO_MAP_KEY, R.PTR_TO_MAP_VALUE,
              R.PTR_TO_MEM, R.PTR_TO_MEM | F.MEM_RINGBUF, R.PTR_TO_BUF, R.PTR_TO_BTF_ID | F.PTR_TRUSTED)
_COMPATIBLE: dict[int, tuple[int, ...]] = {
    ArgType.ARG_PTR_TO_MAP_KEY: _MEM_TYPES,
    ArgType.ARG_PTR_TO_MAP_VALUE: _MEM_TYPES,
    ArgType.ARG_CONST_SIZE: (R.SCALAR_VALUE,),
    ArgType.ARG_CONST_SIZE_OR_ZERO: (R.SCALAR_VALUE,),
    ArgType.ARG_CONST_ALLOC_SIZE_OR_ZERO: (R.SCALAR_VALUE,),
    ArgType.ARG_SCALAR: (R.SCALAR_VALUE,),
    ArgType.ARG_CONST_MAP_PTR: (R.CONST_PTR_TO_MAP,),
    ArgType.ARG_PTR_TO_CTX: (R.PTR_TO_CTX,),
    ArgType.ARG_PTR_TO_SOCK_COMMON: (R.PTR_TO_SOCK_COMMON, R.PTR_TO_SOCKET, R.PTR_TO_TCP_SOCK, R.PTR_TO_XDP_SOCK),
    ArgType.ARG_PTR_TO_BTF_ID_SOCK_COMMON: (R.PTR_TO_SOCK_COMMON, R.PTR_TO_SOCKET, R.PTR_TO_TCP_SOCK,
                                            R.PTR_TO_XDP_SOCK, R.PTR_TO_BTF_ID, R.PTR_TO_BTF_ID | F.PTR_TRUSTED),
    ArgType.ARG_PTR_TO_SOCKET: (R.PTR_TO_SOCKET,),
    ArgType.ARG_PTR_TO_BTF_ID: (R.PTR_TO_BTF_ID, R.PTR_TO_BTF_ID | F.PTR_TRUSTED, R.PTR_TO_BTF_ID | F.MEM_RCU),
    ArgType.ARG_PTR_TO_SPIN_LOCK: (R.PTR_TO_MAP_VALUE, R.PTR_TO_BTF_ID | F.MEM_ALLOC),
    ArgType.ARG_PTR_TO_MEM: _MEM_TYPES,
    ArgType.ARG_PTR_TO_RINGBUF_MEM: (R.PTR_TO_MEM | F.MEM_RINGBUF,),
    ArgType.ARG_PTR_TO_PERCPU_BTF_ID: (R.PTR_TO_BTF_ID | F.MEM_PERCPU, R.PTR_TO_BTF_ID | F.MEM_PERCPU | F.MEM_RCU,
                                       R.PTR_TO_BTF_ID | F.MEM_PERCPU | F.PTR_TRUSTED),
    ArgType.ARG_PTR_TO_FUNC: (R.PTR_TO_FUNC,),
    ArgType.ARG_PTR_TO_STACK: (R.PTR_TO_STACK,),
    ArgType.ARG_PTR_TO_CONST_STR: (R.PTR_TO_MAP_VALUE,),
    ArgType.ARG_PTR_TO_TIMER: (R.PTR_TO_MAP_VALUE,),
    ArgType.ARG_KPTR_XCHG_DEST: (R.PTR_TO_MAP_VALUE, R.PTR_TO_BTF_ID | F.MEM_ALLOC),
    ArgType.ARG_PTR_TO_DYNPTR: (R.PTR_TO_STACK, R.CONST_PTR_TO_DYNPTR),
}
_COMPATIBLE = {int(k): tuple(int(t) for t in v) for k, v in _COMPATIBLE.items()}
_DYNPTR_FLAGS = F.DYNPTR_TYPE_LOCAL | F.DYNPTR_TYPE_RINGBUF | F.DYNPTR_TYPE_SKB | F.DYNPTR_TYPE_XDP
_OFF_OK = frozenset(int(t) for t in (
    R.PTR_TO_STACK, R.PTR_TO_PACKET, R.PTR_TO_PACKET_META, R.PTR_TO_MAP_KEY, R.PTR_TO_MAP_VALUE, R.PTR_TO_MEM,
    R.PTR_TO_MEM | F.MEM_RDONLY, R.PTR_TO_MEM | F.MEM_RINGBUF, R.PTR_TO_BUF, R.PTR_TO_BUF | F.MEM_RDONLY,
    R.PTR_TO_ARENA, R.SCALAR_VALUE))
_FIXED_OFF_OK = frozenset(int(t) for t in (
    R.PTR_TO_BTF_ID, R.PTR_TO_BTF_ID | F.MEM_ALLOC, R.PTR_TO_BTF_ID | F.PTR_TRUSTED, R.PTR_TO_BTF_ID | F.MEM_RCU))


@dataclass
class CallArgMeta:
    """``struct bpf_call_arg_meta``."""

    map_ptr: Any = None
    map_uid: int = 0
    raw_mode: int = 0
    pkt_access: bool = False
    release_regno: int = 0
    regno: int = 0
    access_size: int = 0
    mem_size: int = 0
    msize_max_value: int = 0
    ref_obj_id: int = 0
    func_id: int = 0
    subprogno: int = 0


def fname(func_id: int) -> str:
    return helper_name(func_id) if func_id >= 0 else "unknown"


# -- references -----------------------------------------------------------------------------------


def acquire_reference_state(env: VerifierEnv, insn_idx: int) -> int:
    state = env.cur_frame
    rid = env.next_id()
    state.refs.append(RefState(rid, insn_idx, state.frameno if state.in_callback_fn else 0))
    return rid


def release_reference_state(state: FuncState, ptr_id: int) -> bool:
    for i, ref in enumerate(state.refs):
        if ref.id == ptr_id:
            if state.in_callback_fn and ref.callback_ref != state.frameno:
                return False
            last = len(state.refs) - 1
            if last and i != last:
                state.refs[i] = state.refs[last]
            state.refs.pop()
            return True
    return False


def mark_reg_invalid(env: VerifierEnv, reg: RegState) -> None:
    if not env.allow_ptr_leaks:
        mark_reg_not_init(reg, env.bpf_capable)
    else:
        env.mark_reg_unknown(reg)


def release_reference(env: VerifierEnv, ref_obj_id: int) -> bool:
    if not release_reference_state(env.cur_frame, ref_obj_id):
        return False
    for _, reg in for_each_reg(env.cur_state):
        if reg.ref_obj_id == ref_obj_id:
            mark_reg_invalid(env, reg)
    return True


def check_reference_leak(env: VerifierEnv, exception_exit: bool) -> None:
    state = env.cur_frame
    if not exception_exit and state.frameno and not state.in_callback_fn:
        return
    lingering = False
    for ref in state.refs:
        if not exception_exit and state.in_callback_fn and ref.callback_ref != state.frameno:
            continue
        env.verbose(Msg.UNRELEASED_REFERENCE_ID_ALLOC_INSN.format(ref.id, ref.insn_idx))
        lingering = True
    if lingering:
        raise Reject(E.EINVAL)


def clear_all_pkt_pointers(env: VerifierEnv) -> None:
    for _, reg in for_each_reg(env.cur_state):
        if reg.type in (R.PTR_TO_PACKET, R.PTR_TO_PACKET_META, R.PTR_TO_PACKET_END):
            mark_reg_invalid(env, reg)


# -- argument checks ----------------------------------------------------------------------------------


def check_reg_type(env: VerifierEnv, regno: int, arg_type: int, meta: CallArgMeta) -> None:
    reg = env.regs[regno]
    compatible = _COMPATIBLE.get(base_type(arg_type))
    if compatible is None:
        raise env.fail(E.EFAULT, Msg.VERIFIER_INTERNAL_ERROR_UNSUPPORTED_ARG_TYPE.format(arg_type))
    t = reg.type
    if arg_type & F.MEM_RDONLY:
        t &= ~F.MEM_RDONLY
    if arg_type & F.PTR_MAYBE_NULL:
        t &= ~F.PTR_MAYBE_NULL
    if base_type(arg_type) == ArgType.ARG_PTR_TO_MEM:
        t &= ~_DYNPTR_FLAGS
    if t not in compatible:
        env.verbose(Msg.R_TYPE_EXPECTED_PREFIX.format(regno, reg_type_str(reg.type)))
        names = [reg_type_str(c) for c in compatible]
        raise env.fail(E.EACCES, ", ".join(names))
    if base_type(reg.type) != R.PTR_TO_BTF_ID:
        return
    if compatible is _COMPATIBLE[int(ArgType.ARG_PTR_TO_MEM)] and not arg_type & F.MEM_RDONLY:
        raise env.fail(E.EACCES, Msg.MAY_WRITE_INTO_MEMORY_POINTED_BY.format(fname(meta.func_id), regno,
                                                                             reg_type_str(reg.type)))
    if type_may_be_null(reg.type) and (not type_may_be_null(arg_type) or arg_type & F.OBJ_RELEASE):
        raise env.fail(E.EACCES, Msg.POSSIBLY_NULL_POINTER_PASSED_TO_HELPER.format(regno))


def check_func_arg_reg_off(env: VerifierEnv, reg: RegState, regno: int, arg_type: int) -> None:
    t = reg.type
    if arg_type & F.OBJ_RELEASE:
        if base_type(arg_type) == ArgType.ARG_PTR_TO_DYNPTR and t == R.PTR_TO_STACK:
            return
        if reg.off:
            raise env.fail(E.EINVAL, Msg.R_MUST_HAVE_ZERO_OFFSET_WHEN.format(regno))
        check_ptr_off_reg(env, reg, regno, False)
        return
    if t in _OFF_OK:
        return
    check_ptr_off_reg(env, reg, regno, t in _FIXED_OFF_OK)


def _process_spin_lock(env: VerifierEnv, regno: int, is_lock: bool) -> None:
    reg = env.regs[regno]
    cur = env.cur_state
    if reg.var_off.mask != 0:
        raise env.fail(E.EINVAL, Msg.SPIN_LOCK_NOT_CONSTANT_OFFSET.format(regno))
    m = reg.map_ptr if reg.type == R.PTR_TO_MAP_VALUE else None
    if m is not None and not getattr(m, "has_btf", True):
        raise env.fail(E.EINVAL, Msg.MAP_HAS_TO_HAVE_BTF_IN.format(m.name))
    fields = special_fields(m)
    lock_off = next((off for name, off, _ in fields if name == "bpf_spin_lock"), None)
    if lock_off is None:
        raise env.fail(E.EINVAL, Msg.HAS_NO_VALID_BPF_SPIN_LOCK.format('map' if m is not None else 'local',
                                                                       m.name if m is not None else 'kptr'))
    val = reg.var_off.value + reg.off
    if lock_off != val:
        raise env.fail(E.EINVAL, Msg.OFF_NOT_SPIN_LOCK.format(val, lock_off))
    if is_lock:
        if cur.active_lock_ptr is not None:
            raise env.fail(E.EINVAL, Msg.LOCKING_TWO_BPF_SPIN_LOCKS_ARE)
        cur.active_lock_ptr = m
        cur.active_lock_id = reg.id
    else:
        if cur.active_lock_ptr is None:
            raise env.fail(E.EINVAL, Msg.BPF_SPIN_UNLOCK_WITHOUT_TAKING_A)
        if cur.active_lock_ptr is not m or cur.active_lock_id != reg.id:
            raise env.fail(E.EINVAL, Msg.BPF_SPIN_UNLOCK_OF_DIFFERENT_LOCK)
        cur.active_lock_ptr = None
        cur.active_lock_id = 0


def _map_is_rdonly(m: Any) -> bool:
    return bool(getattr(m, "map_flags", 0) & (1 << 7)) and bool(getattr(m, "frozen", False))


def check_func_arg(env: VerifierEnv, arg: int, meta: CallArgMeta, fn: HelperProto, insn_idx: int) -> None:
    from pybpf.verifier.precision import mark_chain_precision

    regno = arg + 1
    regs = env.regs
    reg = regs[regno]
    arg_type = fn.arg_types[arg]
    if arg_type == ArgType.ARG_DONTCARE:
        return
    env.check_reg_arg(regno, SRC_OP)
    if arg_type == ArgType.ARG_ANYTHING:
        if env.is_pointer_value(regno):
            raise env.fail(E.EACCES, Msg.R_LEAKS_ADDR_INTO_HELPER_FUNCTION.format(regno))
        return
    if reg.type in (R.PTR_TO_PACKET, R.PTR_TO_PACKET_META):
        if not env.desc.packet_access or not meta.pkt_access:
            raise env.fail(E.EACCES, Msg.HELPER_ACCESS_TO_THE_PACKET_IS)
    if base_type(arg_type) == ArgType.ARG_PTR_TO_MAP_VALUE:
        if meta.map_ptr is None:
            raise env.fail(E.EACCES, Msg.INVALID_MAP_PTR_TYPE)
        mt = meta.map_ptr.map_type
        if mt in (MapType.SOCKMAP, MapType.SOCKHASH):
            if arg_type == ArgType.ARG_PTR_TO_MAP_VALUE:
                arg_type = ArgType.ARG_PTR_TO_BTF_ID_SOCK_COMMON
            else:
                raise env.fail(E.EINVAL, Msg.INVALID_ARG_TYPE_FOR_SOCKMAP_SOCKHASH)
        elif mt == MapType.BLOOM_FILTER and meta.func_id == H.map_peek_elem:
            arg_type = ArgType.ARG_PTR_TO_MAP_VALUE
    skip_type_check = False
    if register_is_null(reg) and type_may_be_null(arg_type):
        mark_chain_precision(env, regno)
        skip_type_check = True
    if not skip_type_check:
        check_reg_type(env, regno, arg_type, meta)
        check_func_arg_reg_off(env, reg, regno, arg_type)
    if arg_type & F.OBJ_RELEASE:
        if base_type(arg_type) == ArgType.ARG_PTR_TO_DYNPTR:
            raise env.fail(E.EINVAL, Msg.ARG_IS_AN_UNACQUIRED_REFERENCE.format(regno))
        if not reg.ref_obj_id and not register_is_null(reg):
            raise env.fail(E.EINVAL, Msg.R_MUST_BE_REFERENCED_WHEN_PASSED.format(regno))
        meta.release_regno = regno
    if reg.ref_obj_id and base_type(arg_type) != ArgType.ARG_KPTR_XCHG_DEST:
        if meta.ref_obj_id:
            raise env.fail(E.EFAULT, Msg.VERIFIER_INTERNAL_ERROR_MORE_THAN_ONE.format(regno, reg.ref_obj_id,
                                                                                      meta.ref_obj_id))
        meta.ref_obj_id = reg.ref_obj_id
    bt = base_type(arg_type)
    if bt == ArgType.ARG_CONST_MAP_PTR:
        if meta.map_ptr is not None and (meta.map_ptr is not reg.map_ptr or meta.map_uid != reg.map_uid):
            raise env.fail(E.EINVAL, Msg.TIMER_POINTER_IN_R1_MAP_UID.format(meta.map_uid, reg.map_uid))
        meta.map_ptr = reg.map_ptr
        meta.map_uid = reg.map_uid
    elif bt == ArgType.ARG_PTR_TO_MAP_KEY:
        if meta.map_ptr is None:
            raise env.fail(E.EACCES, Msg.INVALID_MAP_PTR_KEY)
        from pybpf.progtypes.types import AccessType

        check_helper_mem_access(env, regno, meta.map_ptr.key_size, AccessType.READ, False, None)
    elif bt == ArgType.ARG_PTR_TO_MAP_VALUE:
        if type_may_be_null(arg_type) and register_is_null(reg):
            return
        if meta.map_ptr is None:
            raise env.fail(E.EACCES, Msg.INVALID_MAP_PTR_VALUE)
        from pybpf.progtypes.types import AccessType

        meta.raw_mode = arg_type & F.MEM_UNINIT
        check_helper_mem_access(env, regno, meta.map_ptr.value_size,
                                AccessType.WRITE if arg_type & F.MEM_WRITE else AccessType.READ, False, meta)
    elif bt == ArgType.ARG_PTR_TO_SPIN_LOCK:
        if meta.func_id == H.spin_lock:
            _process_spin_lock(env, regno, True)
        elif meta.func_id == H.spin_unlock:
            _process_spin_lock(env, regno, False)
        else:
            raise env.fail(E.EFAULT, Msg.VERIFIER_INTERNAL_ERROR)
    elif bt == ArgType.ARG_PTR_TO_TIMER:
        _process_timer(env, regno, meta)
    elif bt == ArgType.ARG_PTR_TO_FUNC:
        meta.subprogno = reg.subprogno
    elif bt == ArgType.ARG_PTR_TO_MEM:
        from pybpf.progtypes.types import AccessType

        meta.raw_mode = arg_type & F.MEM_UNINIT
        if arg_type & F.MEM_FIXED_SIZE:
            size = fn.arg_sizes[arg] or 0
            check_helper_mem_access(env, regno, size, AccessType.WRITE if arg_type & F.MEM_WRITE else AccessType.READ,
                                    False, meta)
            if arg_type & F.MEM_ALIGNED:
                check_ptr_alignment(env, reg, 0, size, True)
    elif bt in (ArgType.ARG_CONST_SIZE, ArgType.ARG_CONST_SIZE_OR_ZERO):
        from pybpf.progtypes.types import AccessType

        prev = fn.arg_types[arg - 1]
        check_mem_size_reg(env, reg, regno, AccessType.WRITE if prev & F.MEM_WRITE else AccessType.READ,
                           bt == ArgType.ARG_CONST_SIZE_OR_ZERO, meta)
    elif bt == ArgType.ARG_CONST_ALLOC_SIZE_OR_ZERO:
        if reg.var_off.mask != 0:
            raise env.fail(E.EACCES, Msg.R_IS_NOT_A_KNOWN_CONSTANT.format(regno))
        meta.mem_size = reg.var_off.value
        mark_chain_precision(env, regno)
    elif bt == ArgType.ARG_PTR_TO_CONST_STR:
        if reg.type != R.PTR_TO_MAP_VALUE:
            raise Reject(E.EINVAL)
        m = reg.map_ptr
        if not _map_is_rdonly(m):
            raise env.fail(E.EACCES, Msg.R_DOES_NOT_POINT_TO_A.format(regno))
        if reg.var_off.mask != 0:
            raise env.fail(E.EACCES, Msg.R_IS_NOT_A_CONSTANT_ADDRESS.format(regno))
        from pybpf.verifier.maps import direct_read

        off = reg.off + reg.var_off.value
        data = direct_read(m, off, m.value_size - off)
        if data is not None and 0 not in data:
            raise env.fail(E.EINVAL, Msg.STRING_IS_NOT_ZERO_TERMINATED)
    elif bt == ArgType.ARG_PTR_TO_DYNPTR:
        raise env.fail(E.EINVAL, Msg.DYNPTR_ARGUMENTS_ARE_NOT_SUPPORTED_BY)


def _process_timer(env: VerifierEnv, regno: int, meta: CallArgMeta) -> None:
    reg = env.regs[regno]
    if reg.var_off.mask != 0:
        raise env.fail(E.EINVAL, Msg.TIMER_NOT_CONSTANT_OFFSET.format(regno))
    m = reg.map_ptr
    fields = special_fields(m)
    timer_off = next((off for name, off, _ in fields if name == "bpf_timer"), None)
    if timer_off is None:
        raise env.fail(E.EINVAL, Msg.MAP_HAS_NO_VALID_BPF_TIMER.format(m.name))
    if timer_off != reg.var_off.value + reg.off:
        raise env.fail(E.EINVAL, Msg.OFF_NOT_TIMER.format(reg.var_off.value + reg.off, timer_off))
    if meta.map_ptr is not None:
        raise env.fail(E.EFAULT, Msg.VERIFIER_BUG_TWO_MAP_POINTERS_IN)
    meta.map_uid = reg.map_uid
    meta.map_ptr = m


def check_map_func_compatibility(env: VerifierEnv, m: Any, func_id: int) -> None:
    if m is None:
        return
    mt = m.map_type
    M = MapType
    ok = True
    allowed_by_map: dict[int, tuple[int, ...]] = {
        M.PROG_ARRAY: (H.tail_call,),
        M.PERF_EVENT_ARRAY: (H.perf_event_read, H.perf_event_output, H.skb_output, H.perf_event_read_value,
                             H.xdp_output),
        M.RINGBUF: (H.ringbuf_output, H.ringbuf_reserve, H.ringbuf_query, H.ringbuf_reserve_dynptr,
                    H.ringbuf_submit_dynptr, H.ringbuf_discard_dynptr),
        M.USER_RINGBUF: (H.user_ringbuf_drain,),
        M.STACK_TRACE: (H.get_stackid,),
        M.CGROUP_ARRAY: (H.skb_under_cgroup, H.current_task_under_cgroup),
        M.CGROUP_STORAGE: (H.get_local_storage,),
        M.PERCPU_CGROUP_STORAGE: (H.get_local_storage,),
        M.DEVMAP: (H.redirect_map, H.map_lookup_elem),
        M.DEVMAP_HASH: (H.redirect_map, H.map_lookup_elem),
        M.CPUMAP: (H.redirect_map,),
        M.XSKMAP: (H.redirect_map, H.map_lookup_elem),
        M.ARRAY_OF_MAPS: (H.map_lookup_elem,),
        M.HASH_OF_MAPS: (H.map_lookup_elem,),
        M.REUSEPORT_SOCKARRAY: (H.sk_select_reuseport,),
        M.QUEUE: (H.map_peek_elem, H.map_pop_elem, H.map_push_elem),
        M.STACK: (H.map_peek_elem, H.map_pop_elem, H.map_push_elem),
        M.SK_STORAGE: (H.sk_storage_get, H.sk_storage_delete, H.kptr_xchg),
        M.INODE_STORAGE: (H.inode_storage_get, H.inode_storage_delete, H.kptr_xchg),
        M.TASK_STORAGE: (H.task_storage_get, H.task_storage_delete, H.kptr_xchg),
        M.CGRP_STORAGE: (H.cgrp_storage_get, H.cgrp_storage_delete, H.kptr_xchg),
        M.BLOOM_FILTER: (H.map_peek_elem, H.map_push_elem),
    }
    if mt in allowed_by_map:
        ok = func_id in allowed_by_map[mt]
    elif mt in (M.SOCKMAP, M.SOCKHASH):
        extra = (H.sk_redirect_map, H.sock_map_update, H.msg_redirect_map) if mt == M.SOCKMAP else (
            H.sk_redirect_hash, H.sock_hash_update, H.msg_redirect_hash)
        ok = func_id in (*extra, H.sk_select_reuseport, H.map_lookup_elem) or _may_update_sockmap(env, func_id)
    if ok:
        need: dict[int, tuple[int, ...]] = {
            H.tail_call: (M.PROG_ARRAY,),
            H.perf_event_read: (M.PERF_EVENT_ARRAY,), H.perf_event_output: (M.PERF_EVENT_ARRAY,),
            H.perf_event_read_value: (M.PERF_EVENT_ARRAY,), H.skb_output: (M.PERF_EVENT_ARRAY,),
            H.xdp_output: (M.PERF_EVENT_ARRAY,),
            H.ringbuf_output: (M.RINGBUF,), H.ringbuf_reserve: (M.RINGBUF,), H.ringbuf_query: (M.RINGBUF,),
            H.ringbuf_reserve_dynptr: (M.RINGBUF,), H.ringbuf_submit_dynptr: (M.RINGBUF,),
            H.ringbuf_discard_dynptr: (M.RINGBUF,),
            H.user_ringbuf_drain: (M.USER_RINGBUF,),
            H.get_stackid: (M.STACK_TRACE,),
            H.current_task_under_cgroup: (M.CGROUP_ARRAY,), H.skb_under_cgroup: (M.CGROUP_ARRAY,),
            H.redirect_map: (M.DEVMAP, M.DEVMAP_HASH, M.CPUMAP, M.XSKMAP),
            H.sk_redirect_map: (M.SOCKMAP,), H.msg_redirect_map: (M.SOCKMAP,), H.sock_map_update: (M.SOCKMAP,),
            H.sk_redirect_hash: (M.SOCKHASH,), H.msg_redirect_hash: (M.SOCKHASH,),
            H.sock_hash_update: (M.SOCKHASH,),
            H.get_local_storage: (M.CGROUP_STORAGE, M.PERCPU_CGROUP_STORAGE),
            H.sk_select_reuseport: (M.REUSEPORT_SOCKARRAY, M.SOCKMAP, M.SOCKHASH),
            H.map_pop_elem: (M.QUEUE, M.STACK),
            H.map_peek_elem: (M.QUEUE, M.STACK, M.BLOOM_FILTER), H.map_push_elem: (M.QUEUE, M.STACK, M.BLOOM_FILTER),
            H.map_lookup_percpu_elem: (M.PERCPU_ARRAY, M.PERCPU_HASH, M.LRU_PERCPU_HASH),
            H.sk_storage_get: (M.SK_STORAGE,), H.sk_storage_delete: (M.SK_STORAGE,),
            H.inode_storage_get: (M.INODE_STORAGE,), H.inode_storage_delete: (M.INODE_STORAGE,),
            H.task_storage_get: (M.TASK_STORAGE,), H.task_storage_delete: (M.TASK_STORAGE,),
            H.cgrp_storage_get: (M.CGRP_STORAGE,), H.cgrp_storage_delete: (M.CGRP_STORAGE,),
        }
        if func_id in need:
            ok = mt in need[func_id]
            if ok and func_id == H.tail_call and len(env.subprog_info) > 1 and not _jit_subprog_tailcalls():
                raise env.fail(E.EINVAL, Msg.TAIL_CALLS_ARE_NOT_ALLOWED_IN)
    if not ok:
        raise env.fail(E.EINVAL, Msg.CANNOT_PASS_MAP_TYPE_INTO_FUNC.format(mt, fname(func_id), func_id))


def _jit_subprog_tailcalls() -> bool:
    return True  # x86-64 JITs support tail calls from subprograms


def _may_update_sockmap(env: VerifierEnv, func_id: int) -> bool:
    from pybpf.uapi import ProgType

    if func_id not in (H.map_update_elem, H.map_delete_elem):
        return False
    if env.prog.prog_type in (ProgType.SOCKET_FILTER, ProgType.SCHED_CLS, ProgType.SCHED_ACT, ProgType.XDP,
                              ProgType.SK_REUSEPORT, ProgType.FLOW_DISSECTOR, ProgType.SK_LOOKUP):
        return True
    if env.prog.prog_type == ProgType.SOCK_OPS and func_id == H.map_delete_elem:
        return True
    env.verbose(Msg.CANNOT_UPDATE_SOCKMAP_IN_THIS_CONTEXT)
    return False


def _record_func_map(env: VerifierEnv, meta: CallArgMeta, func_id: int, insn_idx: int) -> None:
    if func_id not in _RECORD_MAP:
        return
    m = meta.map_ptr
    if m is None:
        raise env.fail(E.EINVAL, Msg.KERNEL_SUBSYSTEM_MISCONFIGURED_VERIFIER)
    if getattr(m, "map_flags", 0) & (1 << 7) and func_id in (H.map_delete_elem, H.map_update_elem,
                                                             H.map_push_elem, H.map_pop_elem):
        raise env.fail(E.EACCES, Msg.WRITE_INTO_MAP_FORBIDDEN)
    aux = env.aux[insn_idx]
    if aux.map_ptr is None:
        aux.map_ptr = m
    elif aux.map_ptr is not m:
        aux.map_ptr = m
        aux.map_ptr_poisoned = True


def _record_func_key(env: VerifierEnv, meta: CallArgMeta, func_id: int, insn_idx: int) -> None:
    from pybpf.verifier.precision import mark_chain_precision

    if func_id != H.tail_call:
        return
    m = meta.map_ptr
    if m is None or m.map_type != MapType.PROG_ARRAY:
        raise env.fail(E.EINVAL, Msg.KERNEL_SUBSYSTEM_MISCONFIGURED_VERIFIER)
    reg = env.regs[3]
    aux = env.aux[insn_idx]
    if not (reg.type == R.SCALAR_VALUE and reg.var_off.mask == 0 and reg.var_off.value < m.max_entries):
        aux.map_key_poisoned = True
        return
    mark_chain_precision(env, 3)
    if aux.map_key_const is None and not aux.map_key_poisoned:
        aux.map_key_const = reg.var_off.value
    elif not aux.map_key_poisoned and aux.map_key_const != reg.var_off.value:
        aux.map_key_poisoned = True


def get_helper_proto(env: VerifierEnv, func_id: int) -> HelperProto | None:
    return env.desc.get_func_proto(func_id, env.prog)


def check_helper_call(env: VerifierEnv, insn: Insn, insn_idx: int) -> None:
    from pybpf.verifier.precision import mark_chain_precision
    from pybpf.verifier.walk import push_callback_call

    func_id = insn.imm
    max_id = max(int(h) for h in HelperId) + 1
    if func_id < 0 or func_id >= max_id:
        if func_id in env.desc.extra_helpers:
            fn = env.desc.extra_helpers[func_id]
        else:
            raise env.fail(E.EINVAL, Msg.INVALID_FUNC.format(fname(func_id), func_id))
    else:
        fn = get_helper_proto(env, func_id)  # type: ignore[assignment]
    if fn is None:
        raise env.fail(E.EINVAL, Msg.PROGRAM_OF_THIS_TYPE_CANNOT_USE.format(fname(func_id), func_id))
    if not env.gpl and fn.gpl_only:
        raise env.fail(E.EINVAL, Msg.CANNOT_CALL_GPL_RESTRICTED_FUNCTION_FROM)
    if fn.might_sleep and not env.prog.sleepable:
        raise env.fail(E.EINVAL, Msg.HELPER_CALL_MIGHT_SLEEP_IN_A)
    changes_data = func_id in _CHANGES_PKT_DATA
    meta = CallArgMeta(pkt_access=fn.pkt_access, func_id=func_id)
    for i in range(5):
        check_func_arg(env, i, meta, fn, insn_idx)
    _record_func_map(env, meta, func_id, insn_idx)
    _record_func_key(env, meta, func_id, insn_idx)
    env.aux[insn_idx].helper_proto = fn
    from pybpf.progtypes.types import AccessType

    for i in range(meta.access_size):
        check_mem_access(env, insn_idx, meta.regno, i, 1, AccessType.WRITE, -1, False, False)
    regs = env.regs
    if meta.release_regno:
        ok = False
        if meta.ref_obj_id:
            ok = release_reference(env, meta.ref_obj_id)
        elif register_is_null(regs[meta.release_regno]):
            ok = True
        if not ok:
            raise env.fail(E.EINVAL, Msg.FUNC_REFERENCE_HAS_NOT_BEEN_ACQUIRED.format(fname(func_id), func_id))
    if func_id == H.tail_call:
        if env.cur_state.active_lock_ptr is not None:
            raise env.fail(E.EINVAL, Msg.TAIL_CALL_CANNOT_BE_USED_INSIDE)
        try:
            check_reference_leak(env, False)
        except Reject:
            env.verbose(Msg.TAIL_CALL_WOULD_LEAD_TO_REFERENCE)
            raise
        env.has_tail_call = True
    elif func_id == H.get_local_storage:
        if not register_is_null(regs[2]):
            raise env.fail(E.EINVAL, Msg.GET_LOCAL_STORAGE_DOESN_T_SUPPORT)
        mark_chain_precision(env, 2)
    elif func_id == H.for_each_map_elem:
        push_callback_call(env, insn, insn_idx, meta.subprogno, set_map_elem_callback_state)
    elif func_id == H.timer_set_callback:
        push_callback_call(env, insn, insn_idx, meta.subprogno, set_timer_callback_state)
    elif func_id == H.find_vma:
        push_callback_call(env, insn, insn_idx, meta.subprogno, set_find_vma_callback_state)
    elif func_id == H.user_ringbuf_drain:
        push_callback_call(env, insn, insn_idx, meta.subprogno, set_user_ringbuf_callback_state)
    elif func_id == H.loop:
        _update_loop_inline_state(env, insn_idx, meta.subprogno)
        mark_chain_precision(env, 1)
        cur = env.cur_frame
        if cur.callback_depth < regs[1].umax_value:
            push_callback_call(env, insn, insn_idx, meta.subprogno, set_loop_callback_state)
        else:
            cur.callback_depth = 0
            if env.log.level & 2:
                env.verbose(Msg.FRAME_BPF_LOOP_ITERATION_LIMIT_REACHED.format(env.cur_state.curframe))
    for i in range(6):
        mark_reg_not_init(regs[i], env.bpf_capable)
        env.check_reg_arg(i, DST_OP_NO_MARK)
    r0 = regs[0]
    r0.subreg_def = 0
    ret = fn.ret_type
    rbase = base_type(ret)
    rflag = ret & ~0xFF
    if rbase == RetType.RET_INTEGER:
        env.mark_reg_unknown(r0)
    elif rbase == RetType.RET_VOID:
        r0.type = R.NOT_INIT
    elif rbase == RetType.RET_PTR_TO_MAP_VALUE:
        mark_reg_known_zero(r0)
        if meta.map_ptr is None:
            raise env.fail(E.EINVAL, Msg.KERNEL_SUBSYSTEM_MISCONFIGURED_VERIFIER)
        r0.map_ptr = meta.map_ptr
        r0.map_uid = meta.map_uid
        r0.type = R.PTR_TO_MAP_VALUE | rflag
        if not type_may_be_null(ret) and any(f[0] == "bpf_spin_lock"
                                             for f in special_fields(meta.map_ptr)):
            r0.id = env.next_id()
    elif rbase == RetType.RET_PTR_TO_SOCKET:
        mark_reg_known_zero(r0)
        r0.type = R.PTR_TO_SOCKET | rflag
    elif rbase == RetType.RET_PTR_TO_SOCK_COMMON:
        mark_reg_known_zero(r0)
        r0.type = R.PTR_TO_SOCK_COMMON | rflag
    elif rbase == RetType.RET_PTR_TO_TCP_SOCK:
        mark_reg_known_zero(r0)
        r0.type = R.PTR_TO_TCP_SOCK | rflag
    elif rbase == RetType.RET_PTR_TO_MEM:
        mark_reg_known_zero(r0)
        r0.type = R.PTR_TO_MEM | rflag
        r0.mem_size = meta.mem_size
    elif rbase == RetType.RET_PTR_TO_MEM_OR_BTF_ID:
        mark_reg_known_zero(r0)
        r0.type = R.PTR_TO_BTF_ID | (rflag & ~F.MEM_RDONLY)
        r0.btf_struct = "percpu"
    elif rbase == RetType.RET_PTR_TO_BTF_ID:
        mark_reg_known_zero(r0)
        r0.type = R.PTR_TO_BTF_ID | rflag
        r0.btf_struct = fn.ret_btf_id
    else:
        raise env.fail(E.EINVAL, Msg.UNKNOWN_RETURN_TYPE_OF_FUNC.format(rbase, fname(func_id), func_id))
    if type_may_be_null(r0.type):
        r0.id = env.next_id()
    if func_id in _PTR_CAST:
        r0.ref_obj_id = meta.ref_obj_id
    elif _is_acquire_function(func_id, meta.map_ptr):
        rid = acquire_reference_state(env, insn_idx)
        r0.id = rid
        r0.ref_obj_id = rid
    if ret == RetType.RET_INTEGER:
        if func_id in (H.get_stack, H.get_task_stack, H.probe_read_str, H.probe_read_kernel_str,
                       H.probe_read_user_str):
            r0.smax_value = meta.msize_max_value
            r0.s32_max_value = meta.msize_max_value & 0xFFFFFFFF
            if r0.s32_max_value >= 1 << 31:
                r0.s32_max_value -= 1 << 32
            r0.smin_value = -MAX_ERRNO
            r0.s32_min_value = -MAX_ERRNO
            reg_bounds_sync(r0)
        elif func_id == H.get_smp_processor_id:
            ncpu = getattr(env, "nr_cpu_ids", 64)
            r0.umax_value = r0.u32_max_value = r0.smax_value = r0.s32_max_value = ncpu - 1
            r0.umin_value = r0.u32_min_value = r0.smin_value = r0.s32_min_value = 0
            reg_bounds_sync(r0)
        reg_bounds_sanity_check(env, r0, "retval")
    check_map_func_compatibility(env, meta.map_ptr, func_id)
    if changes_data:
        env.changes_pkt_data = True
        clear_all_pkt_pointers(env)


def _loop_flag_is_zero(env: VerifierEnv) -> bool:
    from pybpf.verifier.precision import mark_chain_precision

    if register_is_null(env.regs[4]):
        mark_chain_precision(env, 4)
        return True
    return False


def _update_loop_inline_state(env: VerifierEnv, insn_idx: int, subprogno: int) -> None:
    """``update_loop_inline_state``: whether every visit of this bpf_loop call could be inlined
    (flags always zero, always the same callback); the fixups inline those calls
    (``fixups._optimize_bpf_loop``). A zero flags register is made precise, as in the kernel."""
    aux = env.aux[insn_idx]
    state = aux.loop_inline_state
    if state is None:
        aux.loop_inline_state = [_loop_flag_is_zero(env), subprogno]
        return
    if not state[0]:
        return
    state[0] = _loop_flag_is_zero(env) and state[1] == subprogno


def _is_acquire_function(func_id: int, m: Any) -> bool:
    if func_id in (H.sk_lookup_tcp, H.sk_lookup_udp, H.skc_lookup_tcp, H.ringbuf_reserve, H.kptr_xchg):
        return True
    return func_id == H.map_lookup_elem and m is not None and m.map_type in (MapType.SOCKMAP, MapType.SOCKHASH)


# -- callee state setup ------------------------------------------------------------------------------


def set_callee_state(env: VerifierEnv, caller: FuncState, callee: FuncState, insn_idx: int) -> None:
    for i in range(1, 6):
        callee.regs[i] = caller.regs[i].copy()


def set_loop_callback_state(env: VerifierEnv, caller: FuncState, callee: FuncState, insn_idx: int) -> None:
    callee.regs[1].type = R.SCALAR_VALUE
    callee.regs[2] = caller.regs[3].copy()
    for i in (3, 4, 5):
        mark_reg_not_init(callee.regs[i], env.bpf_capable)
    callee.in_callback_fn = True
    callee.callback_ret_range = (0, 1)


def set_map_elem_callback_state(env: VerifierEnv, caller: FuncState, callee: FuncState, insn_idx: int) -> None:
    m = env.aux[insn_idx].map_ptr
    if m is None or m.map_type not in (MapType.ARRAY, MapType.PERCPU_ARRAY, MapType.HASH, MapType.PERCPU_HASH,
                                        MapType.LRU_HASH, MapType.LRU_PERCPU_HASH):
        raise env.fail(524, Msg.CALLBACK_FUNCTION_NOT_ALLOWED_FOR_MAP)
    callee.regs[1] = caller.regs[1].copy()
    for regno, t in ((2, R.PTR_TO_MAP_KEY), (3, R.PTR_TO_MAP_VALUE)):
        r = callee.regs[regno]
        r.type = t
        mark_reg_known_zero(r)
        r.map_ptr = caller.regs[1].map_ptr
        r.map_uid = caller.regs[1].map_uid
    callee.regs[4] = caller.regs[3].copy()
    mark_reg_not_init(callee.regs[5], env.bpf_capable)
    callee.in_callback_fn = True
    callee.callback_ret_range = (0, 1)


def set_timer_callback_state(env: VerifierEnv, caller: FuncState, callee: FuncState, insn_idx: int) -> None:
    m = caller.regs[1].map_ptr
    uid = caller.regs[1].map_uid
    for regno, t in ((1, R.CONST_PTR_TO_MAP), (2, R.PTR_TO_MAP_KEY), (3, R.PTR_TO_MAP_VALUE)):
        r = callee.regs[regno]
        r.type = t
        mark_reg_known_zero(r)
        r.map_ptr = m
        r.map_uid = uid
    mark_reg_not_init(callee.regs[4], env.bpf_capable)
    mark_reg_not_init(callee.regs[5], env.bpf_capable)
    callee.in_async_callback_fn = True
    callee.callback_ret_range = (0, 1)


def set_find_vma_callback_state(env: VerifierEnv, caller: FuncState, callee: FuncState, insn_idx: int) -> None:
    callee.regs[1] = caller.regs[1].copy()
    r = callee.regs[2]
    r.type = R.PTR_TO_BTF_ID
    mark_reg_known_zero(r)
    r.btf_struct = "vm_area_struct"
    callee.regs[3] = caller.regs[4].copy()
    mark_reg_not_init(callee.regs[4], env.bpf_capable)
    mark_reg_not_init(callee.regs[5], env.bpf_capable)
    callee.in_callback_fn = True
    callee.callback_ret_range = (0, 1)


def set_user_ringbuf_callback_state(env: VerifierEnv, caller: FuncState, callee: FuncState,
                                    insn_idx: int) -> None:
    """``callback_fn(const struct bpf_dynptr *dynptr, void *ctx)`` for ``bpf_user_ringbuf_drain``."""
    mark_reg_not_init(callee.regs[0], env.bpf_capable)
    r = callee.regs[1]
    mark_reg_known_zero(r)
    r.type = R.CONST_PTR_TO_DYNPTR
    r.id = env.next_id()
    callee.regs[2] = caller.regs[3].copy()
    for i in (3, 4, 5):
        mark_reg_not_init(callee.regs[i], env.bpf_capable)
    callee.in_callback_fn = True
    callee.callback_ret_range = (0, 1)


def setup_func_entry(env: VerifierEnv, subprog: int, callsite: int, set_cb: Any, state: VerifierState) -> None:
    from pybpf.verifier.walk import init_func_state

    if state.curframe + 1 >= 8:
        raise env.fail(E.E2BIG, Msg.CALL_STACK_TOO_DEEP.format(state.curframe + 2))
    caller = state.frame[state.curframe]
    callee = FuncState(callsite, state.curframe + 1, subprog)
    init_func_state(env, callee)
    callee.refs = [RefState(r.id, r.insn_idx, r.callback_ref) for r in caller.refs]
    state.frame.append(callee)
    try:
        set_cb(env, caller, callee, callsite)
    except Reject:
        state.frame.pop()
        raise
    state.curframe += 1


def clear_caller_saved_regs(env: VerifierEnv, regs: list[RegState]) -> None:
    for i in range(6):
        mark_reg_not_init(regs[i], env.bpf_capable)
        env.check_reg_arg_on(regs, i, DST_OP_NO_MARK)


def prepare_subprog_args(env: VerifierEnv, subprog: int) -> None:
    """``btf_prepare_func_args``: fill ``args`` of a subprogram from its BTF prototype (cached on
    success). Raises Reject, with the kernel's message logged, when the prototype is unusable."""
    from pybpf.verifier.funcargs import FuncArgsError, SubprogArg, prepare_func_args

    info = env.subprog_info[subprog]
    if info.args_cached:
        return
    if env.btf is None or not info.btf_type_id:
        if not info.is_global:
            raise Reject(E.EINVAL)
        # no BTF was handed in: a global function's arguments are taken to be five scalars
        info.args = [SubprogArg("scalar")] * 5
    else:
        try:
            info.args = prepare_func_args(env.btf, info.btf_type_id, name=info.name, is_global=info.is_global,
                                          prog_type=env.prog.prog_type)
        except FuncArgsError as e:
            if e.message:
                env.verbose(e.message + "\n")
            raise Reject(e.errno) from None
    info.arg_cnt = len(info.args)
    info.args_cached = True


def _check_mem_reg(env: VerifierEnv, reg: RegState, regno: int, size: int) -> None:
    from pybpf.verifier.checks.mem import check_helper_mem_access
    from pybpf.verifier.transfer.jmp import mark_ptr_not_null_reg

    if register_is_null(reg):
        return
    saved = reg.copy() if type_may_be_null(reg.type) else None
    if saved is not None:
        mark_ptr_not_null_reg(reg)
    try:
        check_helper_mem_access(env, regno, size, AccessType.READ, True, None)
        check_helper_mem_access(env, regno, size, AccessType.WRITE, True, None)
    finally:
        if saved is not None:
            reg.assign(saved)


def btf_check_subprog_call(env: VerifierEnv, subprog: int, regs: list[RegState]) -> int:
    """Match the caller's R1-R5 against the callee's prototype; 0 or the errno of the mismatch
    (logged). A mismatch marks the prototype unreliable, so it is not checked again."""
    info = env.subprog_info[subprog]
    if not env.has_func_info or info.unreliable:
        return E.EINVAL
    try:
        prepare_subprog_args(env, subprog)
        for i, arg in enumerate(info.args):
            regno = i + 1
            reg = regs[regno]
            if arg.kind == "scalar":
                if reg.type != R.SCALAR_VALUE:
                    raise env.fail(E.EINVAL, Msg.R_IS_NOT_A_SCALAR.format(regno))
            elif arg.kind == "ctx":
                check_func_arg_reg_off(env, reg, regno, ArgType.ARG_DONTCARE)
                if reg.type != R.PTR_TO_CTX:
                    raise env.fail(E.EINVAL, Msg.ARG_EXPECTS_POINTER_TO_CTX.format(i))
            elif arg.kind == "mem":
                check_func_arg_reg_off(env, reg, regno, ArgType.ARG_DONTCARE)
                try:
                    _check_mem_reg(env, reg, regno, arg.mem_size)
                except Reject:
                    raise Reject(E.EINVAL) from None
                if not arg.nullable and type_may_be_null(reg.type):
                    raise env.fail(E.EINVAL, Msg.ARG_IS_EXPECTED_TO_BE_NON.format(i))
            elif arg.kind == "arena":
                if reg.type not in (R.PTR_TO_ARENA, R.SCALAR_VALUE):
                    raise env.fail(E.EINVAL, Msg.R_IS_NOT_A_POINTER_TO.format(regno))
            elif arg.kind == "dynptr":
                if base_type(reg.type) not in (R.PTR_TO_STACK, R.CONST_PTR_TO_DYNPTR):
                    raise env.fail(E.EINVAL, Msg.ARG_EXPECTED_POINTER_TO_STACK_OR.format(i))
            elif arg.kind == "btf_id":
                if register_is_null(reg) and arg.nullable:
                    continue
                if base_type(reg.type) != R.PTR_TO_BTF_ID or (arg.btf_struct and reg.btf_struct != arg.btf_struct):
                    raise env.fail(E.EACCES, Msg.R_TYPE_EXPECTED_PTR_TRUSTED_PTR.format(regno, reg_type_str(reg.type)))
    except Reject as r:
        info.unreliable = True
        return r.errno
    return 0


def check_func_call(env: VerifierEnv, insn: Insn, insn_idx: int) -> int:
    """A bpf-to-bpf call; returns the instruction index to continue at."""
    from pybpf.verifier.walk import print_state

    target = insn_idx + insn.imm + 1
    subprog = env.find_subprog(target)
    if subprog < 0:
        raise env.fail(E.EFAULT, Msg.VERIFIER_BUG_NO_PROGRAM_STARTS_AT.format(target))
    state = env.cur_state
    caller = state.frame[state.curframe]
    info = env.subprog_info[subprog]
    err = btf_check_subprog_call(env, subprog, caller.regs)
    if err == E.EFAULT:
        raise Reject(err)
    if info.is_global:
        if state.active_lock_ptr is not None:
            raise env.fail(E.EINVAL, Msg.GLOBAL_FUNCTION_CALLS_ARE_NOT_ALLOWED)
        if err:
            env.verbose(Msg.CALLER_PASSES_INVALID_ARGS_INTO_FUNC.format(subprog, info.name))
            raise Reject(err)
        env.verbose(Msg.FUNC_IS_GLOBAL_AND_ASSUMED_VALID.format(subprog, info.name))
        if info.changes_pkt_data:
            clear_all_pkt_pointers(env)
        info.called = True
        clear_caller_saved_regs(env, caller.regs)
        env.mark_reg_unknown(caller.regs[0])
        caller.regs[0].subreg_def = 0
        return insn_idx + 1
    setup_func_entry(env, subprog, insn_idx, set_callee_state, state)
    clear_caller_saved_regs(env, caller.regs)
    if env.log.level & 3:
        env.verbose(Msg.CALLER)
        print_state(env, caller, True)
        env.verbose(Msg.CALLEE)
        print_state(env, state.frame[state.curframe], True)
    return info.start


def retval_range_within(lo: int, hi: int, reg: RegState, ret32: bool) -> bool:
    if ret32:
        return lo <= reg.s32_min_value and reg.s32_max_value <= hi
    return lo <= reg.smin_value and reg.smax_value <= hi


def verbose_invalid_scalar(env: VerifierEnv, reg: RegState, lo: int, hi: int, ctx: str, reg_name: str) -> None:
    text = Msg.RETVAL_THE_REGISTER_HAS.format(ctx, reg_name)
    if reg.smin_value > S64_MIN:
        text += Msg.RETVAL_SMIN.format(reg.smin_value)
    if reg.smax_value < S64_MAX:
        text += Msg.RETVAL_SMAX.format(reg.smax_value)
    if reg.smin_value <= S64_MIN and reg.smax_value >= S64_MAX:
        text += Msg.RETVAL_UNKNOWN
    env.verbose(text + Msg.RETVAL_SHOULD_BE_IN.format(lo, hi))


def prepare_func_exit(env: VerifierEnv) -> int:
    """Return from a subprogram or callback; returns the instruction index to continue at."""
    from pybpf.verifier.precision import mark_chain_precision
    from pybpf.verifier.regs import REG_LIVE_READ64
    from pybpf.verifier.walk import find_prev_entry, print_state, widen_imprecise_scalars

    state = env.cur_state
    callee = state.frame[state.curframe]
    r0 = callee.regs[0]
    if r0.type == R.PTR_TO_STACK:
        raise env.fail(E.EINVAL, Msg.CANNOT_RETURN_STACK_POINTER_TO_THE)
    caller = state.frame[state.curframe - 1]
    if callee.in_callback_fn:
        if r0.type != R.SCALAR_VALUE:
            raise env.fail(E.EACCES, Msg.R0_NOT_A_SCALAR_VALUE)
        env.mark_reg_read(r0, r0.parent, REG_LIVE_READ64)
        mark_chain_precision(env, 0)
        lo, hi = callee.callback_ret_range
        if not retval_range_within(lo, hi, r0, False):
            verbose_invalid_scalar(env, r0, lo, hi, Msg.AT_CALLBACK_RETURN, "R0")
            raise Reject(E.EINVAL)
    else:
        parent, live = caller.regs[0].parent, caller.regs[0].live
        caller.regs[0] = r0.copy()
        del parent, live
    if not callee.in_callback_fn:
        caller.refs = [RefState(r.id, r.insn_idx, r.callback_ref) for r in callee.refs]
    nxt = callee.callsite if callee.in_callback_fn else callee.callsite + 1
    if env.log.level & 3:
        env.verbose(Msg.RETURNING_FROM_CALLEE)
        print_state(env, callee, True)
        env.verbose(Msg.TO_CALLER_AT.format(nxt))
        print_state(env, caller, True)
    state.frame.pop()
    state.curframe -= 1
    if callee.in_callback_fn:
        prev_st = find_prev_entry(env, state, nxt)
        if prev_st is not None:
            widen_imprecise_scalars(env, prev_st, state)
    return nxt


def check_return_code(env: VerifierEnv, regno: int, reg_name: str) -> None:
    from pybpf.verifier.precision import mark_chain_precision

    frame = env.cur_state.frame[0]
    is_subprog = frame.subprogno != 0
    env.check_reg_arg(regno, SRC_OP)
    if env.is_pointer_value(regno):
        raise env.fail(E.EACCES, Msg.R_LEAKS_ADDR_AS_RETURN_VALUE.format(regno))
    reg = env.regs[regno]
    exit_ctx = Msg.AT_PROGRAM_EXIT
    if frame.in_async_callback_fn:
        exit_ctx = Msg.AT_ASYNC_CALLBACK_RETURN
        rng: tuple[int, int] | None = (0, 0)
    elif is_subprog and not frame.in_exception_callback_fn:
        if reg.type != R.SCALAR_VALUE:
            raise env.fail(E.EINVAL, Msg.AT_SUBPROGRAM_EXIT_THE_REGISTER_R.format(regno, reg_type_str(reg.type)))
        return
    else:
        rr = env.desc.return_range(env.prog)
        if rr is None:
            return
        rng = (rr.minval, rr.maxval)
    if reg.type != R.SCALAR_VALUE:
        raise env.fail(E.EINVAL, Msg.THE_REGISTER_R_IS_NOT_A.format(exit_ctx, regno, reg_type_str(reg.type)))
    mark_chain_precision(env, regno)
    assert rng is not None
    if not retval_range_within(rng[0], rng[1], reg, False):
        verbose_invalid_scalar(env, reg, rng[0], rng[1], exit_ctx, reg_name)
        raise Reject(E.EINVAL)


def state_summary(frame: FuncState) -> str:
    return format_state(frame, print_all=True)


__all__ += ["CallArgMeta", "internal"]
