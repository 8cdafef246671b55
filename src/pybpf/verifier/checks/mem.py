"""Memory accesses: ``check_mem_access`` and everything it dispatches to.

Stack (per-byte slot types, spills and fills), map values and keys, packet data (``range`` from
the ``data_end`` checks), the context (through the program type's ``is_valid_access``), sockets,
generic memory (ringbuf records...), alignment, and the helper-argument variants
(``check_helper_mem_access``, ``check_stack_range_initialized``, ``check_mem_size_reg``).
Messages are the kernel's, word for word.
"""

from __future__ import annotations

import errno as E
from typing import Any

from pybpf.isa import Insn
from pybpf.progtypes.context import AccessAux
from pybpf.progtypes.types import AccessType, RegType, TypeFlag
from pybpf.verifier.env import (
    BPF_MAX_VAR_OFF,
    DST_OP,
    DST_OP_NO_MARK,
    MAX_BPF_STACK,
    SRC_OP,
    Reject,
    VerifierEnv,
    base_type,
    type_may_be_null,
)
from pybpf.verifier.fastcall import check_fastcall_stack_contract
from pybpf.verifier.log import Msg, reg_type_str, tnum_str
from pybpf.verifier.maps import special_fields
from pybpf.verifier.precision import mark_chain_precision, push_insn_history, stack_access_flags
from pybpf.verifier.regs import (
    REG_LIVE_READ64,
    REG_LIVE_WRITTEN,
    S64_MIN,
    RegState,
    __mark_reg_known,
    mark_reg_const_zero,
    mark_reg_known_zero,
    s64,
)
from pybpf.verifier.state import (
    STACK_DYNPTR,
    STACK_INVALID,
    STACK_ITER,
    STACK_MISC,
    STACK_SPILL,
    STACK_ZERO,
    FuncState,
)
from pybpf.verifier.tnum import Tnum
from pybpf.verifier.transfer.alu import (
    coerce_reg_to_size,
    coerce_reg_to_size_sx,
    copy_register_state,
    reg_bounds_sanity_check,
)

__all__ = [
    "check_atomic",
    "check_helper_mem_access",
    "check_load_mem",
    "check_map_access",
    "check_mem_access",
    "check_mem_size_reg",
    "check_packet_access",
    "check_ptr_off_reg",
    "check_st_mem",
    "check_stack_range_initialized",
    "check_store_reg",
]

BPF_REG_SIZE = 8
MAX_PACKET_OFF = 0xFFFF
BPF_MAX_VAR_SIZ = 1 << 29
BPF_F_RDONLY_PROG = 1 << 7
BPF_F_WRONLY_PROG = 1 << 8
_SIZE = {0x00: 4, 0x08: 2, 0x10: 1, 0x18: 8}

_SPILLABLE = frozenset(int(t) for t in (
    RegType.PTR_TO_MAP_VALUE, RegType.PTR_TO_STACK, RegType.PTR_TO_CTX, RegType.PTR_TO_PACKET,
    RegType.PTR_TO_PACKET_META, RegType.PTR_TO_PACKET_END, RegType.PTR_TO_FLOW_KEYS, RegType.CONST_PTR_TO_MAP,
    RegType.PTR_TO_SOCKET, RegType.PTR_TO_SOCK_COMMON, RegType.PTR_TO_TCP_SOCK, RegType.PTR_TO_XDP_SOCK,
    RegType.PTR_TO_BTF_ID, RegType.PTR_TO_BUF, RegType.PTR_TO_MEM, RegType.PTR_TO_FUNC, RegType.PTR_TO_MAP_KEY,
    RegType.PTR_TO_ARENA,
))
_SK = frozenset(int(t) for t in (RegType.PTR_TO_SOCKET, RegType.PTR_TO_SOCK_COMMON, RegType.PTR_TO_TCP_SOCK,
                                 RegType.PTR_TO_XDP_SOCK))


def is_spillable_regtype(t: int) -> bool:
    return base_type(t) in _SPILLABLE


def register_is_null(reg: RegState) -> bool:
    return reg.type == RegType.SCALAR_VALUE and reg.var_off.mask == 0 and reg.var_off.value == 0


def _is_special(stype: list[int]) -> bool:
    return stype[7] in (STACK_SPILL, STACK_DYNPTR, STACK_ITER)


def _scrub_special_slot(state: FuncState, spi: int) -> None:
    slot = state.stack[spi]
    slot.spilled_ptr.type = RegType.NOT_INIT
    if _is_special(slot.slot_type):
        slot.slot_type = [t if t == STACK_INVALID else STACK_MISC for t in slot.slot_type]


def _grow_stack(env: VerifierEnv, state: FuncState, size: int) -> None:
    size = (size + 7) // 8 * 8
    if state.allocated_stack >= size:
        return
    state.grow_stack(size)
    info = env.subprog_info[state.subprogno] if state.subprogno < len(env.subprog_info) else None
    if info is not None and info.stack_depth < size:
        info.stack_depth = size


def save_register_state(env: VerifierEnv, state: FuncState, spi: int, reg: RegState, size: int) -> None:
    slot = state.stack[spi]
    copy_register_state(slot.spilled_ptr, reg)
    if size == BPF_REG_SIZE:
        slot.spilled_ptr.live |= REG_LIVE_WRITTEN
    st = slot.slot_type
    i = BPF_REG_SIZE
    while i > BPF_REG_SIZE - size:
        st[i - 1] = STACK_SPILL
        i -= 1
    while i:
        if st[i - 1] not in (STACK_ZERO, STACK_INVALID):
            st[i - 1] = STACK_MISC
        i -= 1


# -- stack -------------------------------------------------------------------------------------------


def check_stack_write_fixed_off(env: VerifierEnv, state: FuncState, off: int, size: int, value_regno: int,
                                insn_idx: int) -> None:
    slot = -off - 1
    spi = slot // BPF_REG_SIZE
    insn = env.insns[insn_idx]
    stack = state.stack[spi]
    if (not env.allow_ptr_leaks and stack.is_spilled_reg() and not stack.is_spilled_scalar_reg()
            and size != BPF_REG_SIZE):
        raise env.fail(E.EACCES, Msg.ATTEMPT_TO_CORRUPT_SPILLED_POINTER_ON)
    cur = env.cur_frame
    reg = cur.regs[value_regno] if value_regno >= 0 else None
    insn_flags = stack_access_flags(state.frameno, spi)
    check_fastcall_stack_contract(env, state, insn_idx, off)
    env.mark_stack_slot_scratched(spi)
    is_st = insn is not None and insn.code & 7 == 2 and insn.code & 0xE0 == 0x60
    if reg is not None and off % BPF_REG_SIZE == 0 and reg.type == RegType.SCALAR_VALUE and env.bpf_capable:
        fits = reg.umax_value.bit_length() <= 8 * size
        if fits:
            from pybpf.verifier.transfer.alu import assign_scalar_id_before_mov

            assign_scalar_id_before_mov(env, reg)
        save_register_state(env, state, spi, reg, size)
        if not fits:
            stack.spilled_ptr.id = 0
    elif reg is None and off % BPF_REG_SIZE == 0 and is_st and env.bpf_capable:
        tmp = RegState()
        __mark_reg_known(tmp, insn.imm)  # type: ignore[union-attr]
        tmp.type = RegType.SCALAR_VALUE
        save_register_state(env, state, spi, tmp, size)
    elif reg is not None and is_spillable_regtype(reg.type):
        if size != BPF_REG_SIZE:
            verbose_linfo(env, insn_idx, "; ")
            raise env.fail(E.EACCES, Msg.INVALID_SIZE_OF_REGISTER_SPILL)
        if state is not cur and reg.type == RegType.PTR_TO_STACK:
            raise env.fail(E.EINVAL, Msg.CANNOT_SPILL_POINTERS_TO_STACK_INTO)
        save_register_state(env, state, spi, reg, size)
    else:
        t = STACK_MISC
        _scrub_special_slot(state, spi)
        if size == BPF_REG_SIZE:
            stack.spilled_ptr.live |= REG_LIVE_WRITTEN
        if (reg is not None and register_is_null(reg)) or (reg is None and is_st and insn.imm == 0):  # type: ignore[union-attr]
            if value_regno >= 0:
                mark_chain_precision(env, value_regno)
            t = STACK_ZERO
        st = stack.slot_type
        for i in range(size):
            st[(slot - i) % BPF_REG_SIZE] = t
        insn_flags = 0
    if insn_flags:
        push_insn_history(env, env.cur_state, insn_flags)


def check_stack_write_var_off(env: VerifierEnv, state: FuncState, ptr_regno: int, off: int, size: int,
                              value_regno: int, insn_idx: int) -> None:
    cur = env.cur_frame
    ptr_reg = cur.regs[ptr_regno]
    min_off = ptr_reg.smin_value + off
    max_off = ptr_reg.smax_value + off + size
    value_reg = cur.regs[value_regno] if value_regno >= 0 else None
    insn = env.insns[insn_idx]
    is_st = insn is not None and insn.code & 7 == 2 and insn.code & 0xE0 == 0x60
    zero_used = False
    writing_zero = (value_reg is not None and register_is_null(value_reg)) or (
        value_reg is None and is_st and insn.imm == 0)  # type: ignore[union-attr]
    check_fastcall_stack_contract(env, state, insn_idx, min_off)
    for i in range(min_off, max_off):
        slot = -i - 1
        spi = slot // BPF_REG_SIZE
        stack = state.stack[spi]
        env.mark_stack_slot_scratched(spi)
        stype = stack.slot_type[slot % BPF_REG_SIZE]
        if not env.allow_ptr_leaks and stype not in (STACK_MISC, STACK_ZERO):
            raise env.fail(E.EINVAL, Msg.SPILLED_PTR_IN_RANGE_OF_VAR.format(insn_idx, i))
        if writing_zero and stype == STACK_SPILL and stack.is_spilled_scalar_reg():
            sp = stack.spilled_ptr
            if sp.var_off.mask == 0 and sp.var_off.value == 0:
                zero_used = True
                continue
        _scrub_special_slot(state, spi)
        stype = stack.slot_type[slot % BPF_REG_SIZE]
        new_type = STACK_MISC
        if writing_zero and stype == STACK_ZERO:
            new_type = STACK_ZERO
            zero_used = True
        if stype == STACK_INVALID and not env.allow_uninit_stack:
            raise env.fail(E.EINVAL, Msg.UNINIT_STACK_IN_RANGE_OF_VAR.format(insn_idx, i))
        stack.slot_type[slot % BPF_REG_SIZE] = new_type
    if zero_used and value_regno >= 0:
        mark_chain_precision(env, value_regno)


def mark_reg_stack_read(env: VerifierEnv, ptr_state: FuncState, min_off: int, max_off: int, dst_regno: int) -> None:
    state = env.cur_frame
    zeros = 0
    for i in range(min_off, max_off):
        slot = -i - 1
        spi = slot // BPF_REG_SIZE
        env.mark_stack_slot_scratched(spi)
        if ptr_state.stack[spi].slot_type[slot % BPF_REG_SIZE] != STACK_ZERO:
            break
        zeros += 1
    if zeros == max_off - min_off:
        mark_reg_const_zero(state.regs[dst_regno], env.bpf_capable)
    else:
        env.mark_reg_unknown(state.regs[dst_regno])
    state.regs[dst_regno].live |= REG_LIVE_WRITTEN


def check_stack_read_fixed_off(env: VerifierEnv, reg_state: FuncState, off: int, size: int, dst_regno: int) -> None:
    state = env.cur_frame
    slot = -off - 1
    spi = slot // BPF_REG_SIZE
    stack = reg_state.stack[spi]
    stype = stack.slot_type
    reg = stack.spilled_ptr
    insn_flags = stack_access_flags(reg_state.frameno, spi)
    env.mark_stack_slot_scratched(spi)
    check_fastcall_stack_contract(env, state, env.insn_idx, off)  # the current frame, as Linux
    if stack.is_spilled_reg():
        spill_size = 1
        i = BPF_REG_SIZE - 1
        while i > 0 and stype[i - 1] == STACK_SPILL:
            spill_size += 1
            i -= 1
        if size != BPF_REG_SIZE or spill_size != BPF_REG_SIZE:
            if reg.type != RegType.SCALAR_VALUE:
                verbose_linfo(env, env.insn_idx, "; ")
                raise env.fail(E.EACCES, Msg.INVALID_SIZE_OF_REGISTER_FILL)
            env.mark_reg_read(reg, reg.parent, REG_LIVE_READ64)
            if dst_regno < 0:
                return
            if size <= spill_size and off % BPF_REG_SIZE == 0:
                subreg_def = state.regs[dst_regno].subreg_def
                copy_register_state(state.regs[dst_regno], reg)
                state.regs[dst_regno].subreg_def = subreg_def
                if reg.umax_value.bit_length() > size * 8:
                    state.regs[dst_regno].id = 0
                    state.regs[dst_regno].off = 0
            else:
                spill_cnt = zero_cnt = 0
                for i in range(size):
                    t = stype[(slot - i) % BPF_REG_SIZE]
                    if t == STACK_SPILL:
                        spill_cnt += 1
                        continue
                    if t == STACK_MISC:
                        continue
                    if t == STACK_ZERO:
                        zero_cnt += 1
                        continue
                    if t == STACK_INVALID and env.allow_uninit_stack:
                        continue
                    raise env.fail(E.EACCES, Msg.INVALID_READ_FROM_STACK_OFF_SIZE.format(off, i, size))
                if (spill_cnt == size and reg.var_off.mask == 0 and reg.var_off.value == 0) or zero_cnt == size:
                    mark_reg_const_zero(state.regs[dst_regno], env.bpf_capable)
                else:
                    env.mark_reg_unknown(state.regs[dst_regno])
            state.regs[dst_regno].live |= REG_LIVE_WRITTEN
        elif dst_regno >= 0:
            copy_register_state(state.regs[dst_regno], reg)
            state.regs[dst_regno].live |= REG_LIVE_WRITTEN
        elif not env.allow_ptr_leaks and reg.type != RegType.SCALAR_VALUE:
            raise env.fail(E.EACCES, Msg.LEAKING_POINTER_FROM_STACK_OFF.format(off))
        env.mark_reg_read(reg, reg.parent, REG_LIVE_READ64)
    else:
        for i in range(size):
            t = stype[(slot - i) % BPF_REG_SIZE]
            if t in (STACK_MISC, STACK_ZERO):
                continue
            if t == STACK_INVALID and env.allow_uninit_stack:
                continue
            raise env.fail(E.EACCES, Msg.INVALID_READ_FROM_STACK_OFF_SIZE.format(off, i, size))
        env.mark_reg_read(reg, reg.parent, REG_LIVE_READ64)
        if dst_regno >= 0:
            mark_reg_stack_read(env, reg_state, off, off + size, dst_regno)
        insn_flags = 0
    if insn_flags:
        push_insn_history(env, env.cur_state, insn_flags)


def check_stack_access_within_bounds(env: VerifierEnv, regno: int, off: int, access_size: int, helper: bool,
                                     access: AccessType) -> None:
    reg = env.regs[regno]
    state = env.func(reg)
    if helper:
        extra = Msg.STACK_ACCESS_INDIRECT
    elif access == AccessType.READ:
        extra = Msg.STACK_ACCESS_READ
    else:
        extra = Msg.STACK_ACCESS_WRITE
    if reg.var_off.mask == 0:
        min_off = s64(reg.var_off.value) + off
        max_off = min_off + access_size
    else:
        if reg.smax_value >= BPF_MAX_VAR_OFF or reg.smin_value <= -BPF_MAX_VAR_OFF:
            raise env.fail(E.EACCES, Msg.INVALID_UNBOUNDED_VARIABLE_OFFSET_STACK_R.format(extra, regno))
        min_off = reg.smin_value + off
        max_off = reg.smax_value + off + access_size
    if access == AccessType.WRITE or env.allow_uninit_stack:
        min_valid = -MAX_BPF_STACK
    else:
        min_valid = -state.allocated_stack
    err = 0
    if min_off < min_valid or min_off > -1:
        err = E.EACCES
    elif max_off > 0:
        err = E.EINVAL
    elif access_size < 0:
        err = E.EFAULT
    if err:
        if reg.var_off.mask == 0:
            raise env.fail(err, Msg.INVALID_STACK_R_OFF_SIZE.format(extra, regno, off, access_size))
        raise env.fail(err, Msg.INVALID_VARIABLE_OFFSET_STACK_R_VAR.format(extra, regno, tnum_str(reg.var_off), off,
                                                                           access_size))
    _grow_stack(env, state, -min_off)


def check_stack_read(env: VerifierEnv, ptr_regno: int, off: int, size: int, dst_regno: int) -> None:
    reg = env.regs[ptr_regno]
    state = env.func(reg)
    var_off = reg.var_off.mask != 0
    if dst_regno < 0 and var_off:
        raise env.fail(E.EACCES, Msg.VARIABLE_OFFSET_STACK_POINTER_CANNOT_BE.format(tnum_str(reg.var_off), off, size))
    if not var_off:
        check_stack_read_fixed_off(env, state, off + s64(reg.var_off.value), size, dst_regno)
    else:
        check_stack_range_initialized(env, ptr_regno, off, size, False, False, None)
        min_off = reg.smin_value + off
        max_off = reg.smax_value + off
        mark_reg_stack_read(env, state, min_off, max_off + size, dst_regno)
        check_fastcall_stack_contract(env, state, env.insn_idx, min_off)


def check_stack_write(env: VerifierEnv, ptr_regno: int, off: int, size: int, value_regno: int,
                      insn_idx: int) -> None:
    reg = env.regs[ptr_regno]
    state = env.func(reg)
    if reg.var_off.mask == 0:
        check_stack_write_fixed_off(env, state, off + s64(reg.var_off.value), size, value_regno, insn_idx)
    else:
        check_stack_write_var_off(env, state, ptr_regno, off, size, value_regno, insn_idx)


# -- map values, generic memory, packets -----------------------------------------------------------


def check_map_access_type(env: VerifierEnv, regno: int, off: int, size: int, access: AccessType) -> None:
    m = env.regs[regno].map_ptr
    flags = getattr(m, "map_flags", 0)
    if access == AccessType.WRITE and flags & BPF_F_RDONLY_PROG:
        raise env.fail(E.EACCES, Msg.WRITE_INTO_MAP_FORBIDDEN_VALUE_SIZE.format(m.value_size, off, size))
    if access == AccessType.READ and flags & BPF_F_WRONLY_PROG:
        raise env.fail(E.EACCES, Msg.READ_FROM_MAP_FORBIDDEN_VALUE_SIZE.format(m.value_size, off, size))


def _check_mem_access(env: VerifierEnv, regno: int, off: int, size: int, mem_size: int, zero_ok: bool) -> bool:
    size_ok = size > 0 or (size == 0 and zero_ok)
    if off >= 0 and size_ok and off + size <= mem_size:
        return True
    reg = env.regs[regno]
    t = reg.type
    if t == RegType.PTR_TO_MAP_KEY:
        env.verbose(Msg.INVALID_ACCESS_TO_MAP_KEY_KEY.format(mem_size, off, size))
    elif t == RegType.PTR_TO_MAP_VALUE:
        env.verbose(Msg.INVALID_ACCESS_TO_MAP_VALUE_VALUE.format(mem_size, off, size))
    elif t in (RegType.PTR_TO_PACKET, RegType.PTR_TO_PACKET_META, RegType.PTR_TO_PACKET_END):
        env.verbose(Msg.INVALID_ACCESS_TO_PACKET_OFF_SIZE.format(off, size, regno, reg.id, off, mem_size))
    else:
        env.verbose(Msg.INVALID_ACCESS_TO_MEMORY_MEM_SIZE.format(mem_size, off, size))
    return False


def _fits_s32(v: int) -> bool:
    return -(1 << 31) <= v < (1 << 31)


def check_mem_region_access(env: VerifierEnv, regno: int, off: int, size: int, mem_size: int,
                            zero_ok: bool) -> None:
    reg = env.regs[regno]
    if reg.smin_value < 0 and (reg.smin_value == S64_MIN or not _fits_s32(off + reg.smin_value)
                               or reg.smin_value + off < 0):
        raise env.fail(E.EACCES, Msg.R_MIN_NEGATIVE_INDEX.format(regno))
    if not _check_mem_access(env, regno, reg.smin_value + off, size, mem_size, zero_ok):
        raise env.fail(E.EACCES, Msg.R_MIN_VALUE_IS_OUTSIDE_OF.format(regno))
    if reg.umax_value >= BPF_MAX_VAR_OFF:
        raise env.fail(E.EACCES, Msg.R_UNBOUNDED_MEMORY_ACCESS_MAKE_SURE.format(regno))
    if not _check_mem_access(env, regno, reg.umax_value + off, size, mem_size, zero_ok):
        raise env.fail(E.EACCES, Msg.R_MAX_VALUE_IS_OUTSIDE_OF.format(regno))


def check_map_access(env: VerifierEnv, regno: int, off: int, size: int, zero_ok: bool, *, helper: bool = False) -> None:
    reg = env.regs[regno]
    m = reg.map_ptr
    check_mem_region_access(env, regno, off, size, m.value_size, zero_ok)
    for fname, p, fsize in special_fields(m):
        if reg.smin_value + off < p + fsize and p < reg.umax_value + off + size:
            if fname.startswith("kptr"):
                if helper:
                    raise env.fail(E.EACCES, Msg.KPTR_CANNOT_BE_ACCESSED_INDIRECTLY_BY)
                if reg.var_off.mask != 0:
                    raise env.fail(E.EACCES, Msg.KPTR_ACCESS_CANNOT_HAVE_VARIABLE_OFFSET)
                if p != off + reg.var_off.value:
                    raise env.fail(E.EACCES, Msg.KPTR_ACCESS_MISALIGNED_EXPECTED_OFF.format(p, off + reg.var_off.value))
                if size != 8:
                    raise env.fail(E.EACCES, Msg.KPTR_ACCESS_SIZE_MUST_BE_BPF)
            else:
                raise env.fail(E.EACCES, Msg.CANNOT_BE_ACCESSED_DIRECTLY_BY_LOAD.format(fname))


def check_packet_access(env: VerifierEnv, regno: int, off: int, size: int, zero_ok: bool) -> None:
    reg = env.regs[regno]
    if reg.smin_value < 0:
        raise env.fail(E.EACCES, Msg.R_MIN_NEGATIVE_INDEX.format(regno))
    if reg.range < 0 or not _check_mem_access(env, regno, off, size, reg.range, zero_ok):
        raise env.fail(E.EACCES, Msg.R_OFFSET_IS_OUTSIDE_OF_THE.format(regno))
    env.max_pkt_offset = max(env.max_pkt_offset, off + reg.umax_value + size - 1)


def check_ptr_off_reg(env: VerifierEnv, reg: RegState, regno: int, fixed_off_ok: bool = False) -> None:
    if reg.off < 0:
        raise env.fail(E.EACCES, Msg.NEGATIVE_OFFSET_PTR_R_OFF_DISALLOWED.format(reg_type_str(reg.type), regno,
                                                                                 reg.off))
    if not fixed_off_ok and reg.off:
        raise env.fail(E.EACCES, Msg.DEREFERENCE_OF_MODIFIED_PTR_R_OFF.format(reg_type_str(reg.type), regno, reg.off))
    if reg.var_off.mask != 0 or reg.var_off.value:
        raise env.fail(E.EACCES, Msg.VARIABLE_ACCESS_VAR_OFF_DISALLOWED.format(reg_type_str(reg.type),
                                                                               tnum_str(reg.var_off)))


def check_ctx_access(env: VerifierEnv, insn_idx: int, off: int, size: int, access: AccessType,
                     is_ldsx: bool) -> AccessAux:
    aux = AccessAux(is_ldsx=is_ldsx)
    if env.desc.is_valid_access(off, size, access, env.prog, aux):
        if base_type(aux.reg_type) != RegType.PTR_TO_BTF_ID:
            env.aux[insn_idx].ctx_field_size = aux.ctx_field_size
        env.max_ctx_offset = max(env.max_ctx_offset, off + size)
        return aux
    raise env.fail(E.EACCES, Msg.INVALID_BPF_CONTEXT_ACCESS_OFF_SIZE.format(off, size))


def check_sock_access(env: VerifierEnv, insn_idx: int, regno: int, off: int, size: int, access: AccessType) -> None:
    from pybpf.progtypes.sock import sock_is_valid_access

    reg = env.regs[regno]
    if reg.smin_value < 0:
        raise env.fail(E.EACCES, Msg.R_MIN_NEGATIVE_INDEX.format(regno))
    aux = AccessAux()
    if sock_is_valid_access(reg.type, off, size, access, aux):
        env.aux[insn_idx].ctx_field_size = aux.ctx_field_size
        return
    raise env.fail(E.EACCES, Msg.R_INVALID_ACCESS_OFF_SIZE.format(regno, reg_type_str(reg.type), off, size))


# -- alignment ---------------------------------------------------------------------------------------

_PTR_DESC = {
    RegType.PTR_TO_FLOW_KEYS: "flow keys ",
    RegType.PTR_TO_MAP_KEY: "key ",
    RegType.PTR_TO_MAP_VALUE: "value ",
    RegType.PTR_TO_CTX: "context ",
    RegType.PTR_TO_STACK: "stack ",
    RegType.PTR_TO_SOCKET: "sock ",
    RegType.PTR_TO_SOCK_COMMON: "sock_common ",
    RegType.PTR_TO_TCP_SOCK: "tcp_sock ",
    RegType.PTR_TO_XDP_SOCK: "xdp_sock ",
}


def check_ptr_alignment(env: VerifierEnv, reg: RegState, off: int, size: int, strict_once: bool) -> None:
    strict = env.strict_alignment or strict_once
    t = reg.type
    if t in (RegType.PTR_TO_PACKET, RegType.PTR_TO_PACKET_META):
        if not strict or size == 1:
            return
        ip_align = 2
        reg_off = reg.var_off.add(Tnum(ip_align + reg.off + off, 0))
        if not reg_off.is_aligned(size):
            raise env.fail(E.EACCES, Msg.MISALIGNED_PACKET_ACCESS_OFF_SIZE.format(ip_align, tnum_str(reg.var_off),
                                                                                  reg.off, off, size))
        return
    if t == RegType.PTR_TO_ARENA:
        return
    desc = _PTR_DESC.get(t, "")  # type: ignore[call-overload]
    if t == RegType.PTR_TO_STACK:
        strict = True
    if not strict or size == 1:
        return
    reg_off = reg.var_off.add(Tnum(reg.off + off, 0))
    if not reg_off.is_aligned(size):
        raise env.fail(E.EACCES, Msg.MISALIGNED_ACCESS_OFF_SIZE.format(desc, tnum_str(reg.var_off), reg.off, off, size))


# -- the dispatcher --------------------------------------------------------------------------------


def check_mem_access(env: VerifierEnv, insn_idx: int, regno: int, off: int, size: int, access: AccessType,
                     value_regno: int, strict_once: bool, is_ldsx: bool) -> None:
    regs = env.regs
    reg = regs[regno]
    check_ptr_alignment(env, reg, off, size, strict_once)
    off += reg.off
    t = reg.type
    bt = base_type(t)
    if t == RegType.PTR_TO_MAP_KEY:
        if access == AccessType.WRITE:
            raise env.fail(E.EACCES, Msg.WRITE_TO_CHANGE_KEY_R_NOT.format(regno))
        check_mem_region_access(env, regno, off, size, reg.map_ptr.key_size, False)
        if value_regno >= 0:
            env.mark_reg_unknown(regs[value_regno])
    elif t == RegType.PTR_TO_MAP_VALUE:
        if access == AccessType.WRITE and value_regno >= 0 and env.is_pointer_value(value_regno):
            raise env.fail(E.EACCES, Msg.R_LEAKS_ADDR_INTO_MAP.format(value_regno))
        check_map_access_type(env, regno, off, size, access)
        check_map_access(env, regno, off, size, False)
        if access == AccessType.READ and value_regno >= 0:
            m = reg.map_ptr
            val = None
            if reg.var_off.mask == 0 and _map_is_rdonly(m):
                val = _map_direct_read(env, m, off + reg.var_off.value, size, is_ldsx)
            if val is not None:
                regs[value_regno].type = RegType.SCALAR_VALUE
                __mark_reg_known(regs[value_regno], val)
            else:
                env.mark_reg_unknown(regs[value_regno])
    elif bt == RegType.PTR_TO_MEM:
        rdonly = bool(t & TypeFlag.MEM_RDONLY)
        if type_may_be_null(t):
            raise env.fail(E.EACCES, Msg.R_INVALID_MEM_ACCESS.format(regno, reg_type_str(t)))
        if access == AccessType.WRITE and rdonly:
            raise env.fail(E.EACCES, Msg.R_CANNOT_WRITE_INTO.format(regno, reg_type_str(t)))
        if access == AccessType.WRITE and value_regno >= 0 and env.is_pointer_value(value_regno):
            raise env.fail(E.EACCES, Msg.R_LEAKS_ADDR_INTO_MEM.format(value_regno))
        check_mem_region_access(env, regno, off, size, reg.mem_size, False)
        if value_regno >= 0 and (access == AccessType.READ or rdonly):
            env.mark_reg_unknown(regs[value_regno])
    elif t == RegType.PTR_TO_CTX:
        if access == AccessType.WRITE and value_regno >= 0 and env.is_pointer_value(value_regno):
            raise env.fail(E.EACCES, Msg.R_LEAKS_ADDR_INTO_CTX.format(value_regno))
        check_ptr_off_reg(env, reg, regno)
        try:
            aux = check_ctx_access(env, insn_idx, off, size, access, is_ldsx)
        except Reject:
            verbose_linfo(env, insn_idx, "; ")
            raise
        if access == AccessType.READ and value_regno >= 0:
            dst = regs[value_regno]
            if aux.reg_type == RegType.SCALAR_VALUE:
                env.mark_reg_unknown(dst)
            else:
                mark_reg_known_zero(dst)
                if type_may_be_null(aux.reg_type):
                    dst.id = env.next_id()
                dst.subreg_def = 0
                if base_type(aux.reg_type) == RegType.PTR_TO_BTF_ID:
                    dst.btf_struct = aux.btf_struct
            dst.type = int(aux.reg_type)
    elif t == RegType.PTR_TO_STACK:
        check_stack_access_within_bounds(env, regno, off, size, False, access)
        if access == AccessType.READ:
            check_stack_read(env, regno, off, size, value_regno)
        else:
            check_stack_write(env, regno, off, size, value_regno, insn_idx)
    elif t in (RegType.PTR_TO_PACKET, RegType.PTR_TO_PACKET_META):
        if access == AccessType.WRITE and not env.desc.may_access_direct_pkt_data(AccessType.WRITE):
            raise env.fail(E.EACCES, Msg.CANNOT_WRITE_INTO_PACKET)
        if access == AccessType.WRITE and value_regno >= 0 and env.is_pointer_value(value_regno):
            raise env.fail(E.EACCES, Msg.R_LEAKS_ADDR_INTO_PACKET.format(value_regno))
        if access == AccessType.WRITE:
            env.seen_direct_write = True
        check_packet_access(env, regno, off, size, False)
        if access == AccessType.READ and value_regno >= 0:
            env.mark_reg_unknown(regs[value_regno])
    elif t == RegType.PTR_TO_FLOW_KEYS:
        if access == AccessType.WRITE and value_regno >= 0 and env.is_pointer_value(value_regno):
            raise env.fail(E.EACCES, Msg.R_LEAKS_ADDR_INTO_FLOW_KEYS.format(value_regno))
        if size < 0 or off < 0 or off + size > 56:
            raise env.fail(E.EACCES, Msg.INVALID_ACCESS_TO_FLOW_KEYS_OFF.format(off, size))
        if access == AccessType.READ and value_regno >= 0:
            env.mark_reg_unknown(regs[value_regno])
    elif t in _SK:
        if access == AccessType.WRITE:
            raise env.fail(E.EACCES, Msg.R_CANNOT_WRITE_INTO.format(regno, reg_type_str(t)))
        check_sock_access(env, insn_idx, regno, off, size, access)
        if value_regno >= 0:
            env.mark_reg_unknown(regs[value_regno])
    elif t == RegType.PTR_TO_TP_BUFFER:
        if off < 0:
            raise env.fail(E.EACCES, Msg.R_INVALID_TRACEPOINT_BUFFER_ACCESS_OFF.format(regno, off, size))
        if reg.var_off.mask != 0 or reg.var_off.value:
            raise env.fail(E.EACCES, Msg.R_INVALID_VARIABLE_BUFFER_OFFSET_OFF.format(regno, off, tnum_str(reg.var_off)))
        if access == AccessType.READ and value_regno >= 0:
            env.mark_reg_unknown(regs[value_regno])
    elif bt == RegType.PTR_TO_BTF_ID and not type_may_be_null(t):
        check_ptr_to_btf_access(env, regno, off, size, access, value_regno)
    elif t == RegType.CONST_PTR_TO_MAP:
        check_ptr_to_map_access(env, regno, off, size, access, value_regno)
    elif t == RegType.PTR_TO_ARENA:
        if access == AccessType.READ and value_regno >= 0:
            env.mark_reg_unknown(regs[value_regno])
    else:
        raise env.fail(E.EACCES, Msg.R_INVALID_MEM_ACCESS.format(regno, reg_type_str(t)))
    if size < BPF_REG_SIZE and value_regno >= 0 and access == AccessType.READ \
            and regs[value_regno].type == RegType.SCALAR_VALUE:
        if not is_ldsx:
            coerce_reg_to_size(regs[value_regno], size)
        else:
            coerce_reg_to_size_sx(regs[value_regno], size)


def check_ptr_to_btf_access(env: VerifierEnv, regno: int, off: int, size: int, access: AccessType,
                            value_regno: int) -> None:
    """PTR_TO_BTF_ID loads. pybpf has no vmlinux BTF: reads yield unknown scalars; writes are refused
    as the kernel does for structs without a btf_struct_access callback."""
    reg = env.regs[regno]
    if off < 0:
        raise env.fail(E.EACCES, Msg.R_IS_PTR_INVALID_NEGATIVE_ACCESS.format(regno, reg.btf_struct, off))
    if access == AccessType.WRITE:
        raise env.fail(E.EACCES, Msg.ONLY_READ_IS_SUPPORTED)
    if value_regno >= 0:
        env.mark_reg_unknown(env.regs[value_regno])


def check_ptr_to_map_access(env: VerifierEnv, regno: int, off: int, size: int, access: AccessType,
                            value_regno: int) -> None:
    from pybpf.verifier.maps import map_btf_struct_access

    reg = env.regs[regno]
    tname = "bpf_map"
    kind = map_btf_struct_access(reg.map_ptr)
    if kind is None:
        raise env.fail(524, Msg.MAP_PTR_ACCESS_NOT_SUPPORTED_FOR.format(reg.map_ptr.map_type))
    tname = kind
    if not env.allow_ptr_leaks:
        raise env.fail(E.EPERM, Msg.STRUCT_ACCESS_IS_ALLOWED_ONLY_TO.format(tname))
    if off < 0:
        raise env.fail(E.EACCES, Msg.R_IS_INVALID_NEGATIVE_ACCESS_OFF.format(regno, tname, off))
    if access != AccessType.READ:
        raise env.fail(E.EACCES, Msg.ONLY_READ_FROM_IS_SUPPORTED.format(tname))
    from pybpf.verifier.maps import bpf_map_struct_field

    field = bpf_map_struct_field(off, size)
    if field is not None and isinstance(field, str):
        raise env.fail(E.EACCES, field)
    if value_regno >= 0:
        env.mark_reg_unknown(env.regs[value_regno])


def _map_is_rdonly(m: Any) -> bool:
    return bool(getattr(m, "map_flags", 0) & BPF_F_RDONLY_PROG) and bool(getattr(m, "frozen", False))


def _map_direct_read(env: VerifierEnv, m: Any, off: int, size: int, is_ldsx: bool) -> int | None:
    from pybpf.verifier.maps import direct_read

    data = direct_read(m, off, size)
    if data is None:
        return None
    val = int.from_bytes(bytes(data), "little")
    if is_ldsx and val >> (size * 8 - 1):
        val -= 1 << (size * 8)
    return val


# -- instruction-level wrappers -----------------------------------------------------------------------


_MISMATCH_NOT_OK = frozenset(int(t) for t in (
    RegType.PTR_TO_CTX, RegType.PTR_TO_SOCKET, RegType.PTR_TO_SOCK_COMMON, RegType.PTR_TO_TCP_SOCK,
    RegType.PTR_TO_XDP_SOCK, RegType.PTR_TO_BTF_ID, RegType.PTR_TO_ARENA))


def _reg_type_mismatch(src: int, prev: int) -> bool:
    return src != prev and (base_type(src) in _MISMATCH_NOT_OK or base_type(prev) in _MISMATCH_NOT_OK)


def save_aux_ptr_type(env: VerifierEnv, t: int, allow_trust_mismatch: bool) -> None:
    """Remember the pointer type an instruction used; the same load/store may not see a context
    pointer on one path and another pointer on another (the rewrite differs)."""
    aux = env.aux[env.insn_idx]
    prev = aux.ptr_type
    if prev in (-1, RegType.NOT_INIT):
        aux.ptr_type = t
    elif _reg_type_mismatch(t, prev):
        if allow_trust_mismatch and base_type(t) == RegType.PTR_TO_BTF_ID and base_type(prev) == RegType.PTR_TO_BTF_ID:
            aux.ptr_type = RegType.PTR_TO_BTF_ID | TypeFlag.PTR_UNTRUSTED
        else:
            raise env.fail(E.EINVAL, Msg.SAME_INSN_CANNOT_BE_USED_WITH)


def check_load_mem(env: VerifierEnv, insn: Insn, strict_once: bool, is_ldsx: bool, ctx: str) -> None:
    env.check_reg_arg(insn.src, SRC_OP)
    env.check_reg_arg(insn.dst, DST_OP_NO_MARK)
    src_type = env.regs[insn.src].type
    check_mem_access(env, env.insn_idx, insn.src, insn.off, _SIZE[insn.code & 0x18], AccessType.READ, insn.dst,
                     strict_once, is_ldsx)
    save_aux_ptr_type(env, src_type, True)
    reg_bounds_sanity_check(env, env.regs[insn.dst], ctx)


def check_store_reg(env: VerifierEnv, insn: Insn, strict_once: bool) -> None:
    env.check_reg_arg(insn.src, SRC_OP)
    env.check_reg_arg(insn.dst, SRC_OP)
    dst_type = env.regs[insn.dst].type
    check_mem_access(env, env.insn_idx, insn.dst, insn.off, _SIZE[insn.code & 0x18], AccessType.WRITE, insn.src,
                     strict_once, False)
    save_aux_ptr_type(env, dst_type, False)


def check_st_mem(env: VerifierEnv, insn: Insn) -> None:
    if insn.code & 0xE0 != 0x60 or insn.src != 0:
        raise env.fail(E.EINVAL, Msg.BPF_ST_USES_RESERVED_FIELDS)
    env.check_reg_arg(insn.dst, SRC_OP)
    dst_type = env.regs[insn.dst].type
    check_mem_access(env, env.insn_idx, insn.dst, insn.off, _SIZE[insn.code & 0x18], AccessType.WRITE, -1,
                     False, False)
    save_aux_ptr_type(env, dst_type, False)


_ATOMIC_OK = frozenset((0x00, 0x01, 0x50, 0x51, 0x40, 0x41, 0xA0, 0xA1, 0xE1, 0xF1))


def check_atomic(env: VerifierEnv, insn: Insn) -> None:
    imm = insn.imm & 0xFFFFFFFF
    if imm not in _ATOMIC_OK:
        raise env.fail(E.EINVAL, Msg.BPF_ATOMIC_USES_INVALID_ATOMIC_OPCODE.format(imm))
    size = insn.code & 0x18
    if size not in (0x00, 0x18):
        raise env.fail(E.EINVAL, Msg.INVALID_ATOMIC_OPERAND_SIZE)
    env.check_reg_arg(insn.src, SRC_OP)
    env.check_reg_arg(insn.dst, SRC_OP)
    if imm == 0xF1:
        env.check_reg_arg(0, SRC_OP)
        if env.is_pointer_value(0):
            raise env.fail(E.EACCES, Msg.R0_LEAKS_ADDR_INTO_MEM)
    if env.is_pointer_value(insn.src):
        raise env.fail(E.EACCES, Msg.R_LEAKS_ADDR_INTO_MEM.format(insn.src))
    dreg = env.regs[insn.dst]
    if dreg.type in (RegType.PTR_TO_CTX, RegType.PTR_TO_PACKET, RegType.PTR_TO_PACKET_META,
                     RegType.PTR_TO_FLOW_KEYS) or dreg.type in _SK:
        raise env.fail(E.EACCES, Msg.BPF_ATOMIC_STORES_INTO_R_IS.format(insn.dst, reg_type_str(dreg.type)))
    load_reg = -1
    if imm & 1:
        load_reg = 0 if imm == 0xF1 else insn.src
        env.check_reg_arg(load_reg, DST_OP)
    nbytes = _SIZE[size]
    check_mem_access(env, env.insn_idx, insn.dst, insn.off, nbytes, AccessType.READ, -1, True, False)
    if load_reg >= 0:
        check_mem_access(env, env.insn_idx, insn.dst, insn.off, nbytes, AccessType.READ, load_reg, True, False)
    save_aux_ptr_type(env, env.regs[insn.dst].type, False)
    check_mem_access(env, env.insn_idx, insn.dst, insn.off, nbytes, AccessType.WRITE, -1, True, False)


# -- helper arguments ---------------------------------------------------------------------------------


def check_stack_range_initialized(env: VerifierEnv, regno: int, off: int, access_size: int, zero_ok: bool,
                                  helper: bool, meta: Any) -> None:
    reg = env.regs[regno]
    state = env.func(reg)
    extra = Msg.INDIRECT if helper else ""
    if access_size == 0 and not zero_ok:
        raise env.fail(E.EACCES, Msg.INVALID_ZERO_SIZED_READ)
    clobber = helper
    check_stack_access_within_bounds(env, regno, off, access_size, helper,
                                     AccessType.WRITE if helper else AccessType.READ)
    if reg.var_off.mask == 0:
        min_off = max_off = s64(reg.var_off.value) + off
    else:
        if not env.bypass_spec_v1:
            raise env.fail(E.EACCES, Msg.R_VARIABLE_OFFSET_STACK_ACCESS_PROHIBITED.format(regno, extra,
                                                                                          tnum_str(reg.var_off)))
        if meta is not None and meta.raw_mode:
            meta = None
        min_off = reg.smin_value + off
        max_off = reg.smax_value + off
    if meta is not None and meta.raw_mode:
        for i in range(min_off, max_off + access_size):
            stack_off = -i - 1
            if state.allocated_stack <= stack_off:
                continue
            if state.stack[stack_off // 8].slot_type[stack_off % 8] == STACK_DYNPTR:
                raise env.fail(E.EACCES, Msg.POTENTIAL_WRITE_TO_DYNPTR_AT_OFF.format(i))
        meta.access_size = access_size
        meta.regno = regno
        return
    for i in range(min_off, max_off + access_size):
        slot = -i - 1
        spi = slot // BPF_REG_SIZE
        if state.allocated_stack <= slot:
            raise env.fail(E.EFAULT, Msg.VERIFIER_BUG_ALLOCATED_STACK_TOO_SMALL)
        stack = state.stack[spi]
        stype = stack.slot_type[slot % BPF_REG_SIZE]
        ok = False
        if stype == STACK_MISC:
            ok = True
        elif stype == STACK_ZERO or (stype == STACK_INVALID and env.allow_uninit_stack):
            if clobber:
                stack.slot_type[slot % BPF_REG_SIZE] = STACK_MISC
            ok = True
        elif stack.is_spilled_reg() and (stack.spilled_ptr.type == RegType.SCALAR_VALUE or env.allow_ptr_leaks):
            if clobber:
                env.mark_reg_unknown(stack.spilled_ptr)
                stack.slot_type = [t if t == STACK_INVALID else STACK_MISC for t in stack.slot_type]
            ok = True
        if not ok:
            if reg.var_off.mask == 0:
                raise env.fail(E.EACCES, Msg.INVALID_READ_FROM_STACK_R_OFF.format(extra, regno, min_off, i - min_off,
                                                                                  access_size))
            raise env.fail(E.EACCES, Msg.INVALID_READ_FROM_STACK_R_VAR.format(extra, regno, tnum_str(reg.var_off),
                                                                              i - min_off, access_size))
        env.mark_reg_read(stack.spilled_ptr, stack.spilled_ptr.parent, REG_LIVE_READ64)


def check_helper_mem_access(env: VerifierEnv, regno: int, access_size: int, access: AccessType, zero_ok: bool,
                            meta: Any) -> None:
    reg = env.regs[regno]
    bt = base_type(reg.type)
    if bt in (RegType.PTR_TO_PACKET, RegType.PTR_TO_PACKET_META):
        check_packet_access(env, regno, reg.off, access_size, zero_ok)
        return
    if bt == RegType.PTR_TO_MAP_KEY:
        if access == AccessType.WRITE:
            raise env.fail(E.EACCES, Msg.R_CANNOT_WRITE_INTO.format(regno, reg_type_str(reg.type)))
        check_mem_region_access(env, regno, reg.off, access_size, reg.map_ptr.key_size, False)
        return
    if bt == RegType.PTR_TO_MAP_VALUE:
        check_map_access_type(env, regno, reg.off, access_size, access)
        check_map_access(env, regno, reg.off, access_size, zero_ok, helper=True)
        return
    if bt == RegType.PTR_TO_MEM:
        if reg.type & TypeFlag.MEM_RDONLY and access == AccessType.WRITE:
            raise env.fail(E.EACCES, Msg.R_CANNOT_WRITE_INTO.format(regno, reg_type_str(reg.type)))
        check_mem_region_access(env, regno, reg.off, access_size, reg.mem_size, zero_ok)
        return
    if bt == RegType.PTR_TO_BUF:
        if reg.type & TypeFlag.MEM_RDONLY and access == AccessType.WRITE:
            raise env.fail(E.EACCES, Msg.R_CANNOT_WRITE_INTO.format(regno, reg_type_str(reg.type)))
        return
    if bt == RegType.PTR_TO_STACK:
        check_stack_range_initialized(env, regno, reg.off, access_size, zero_ok, True, meta)
        return
    if bt == RegType.PTR_TO_BTF_ID:
        check_ptr_to_btf_access(env, regno, reg.off, access_size, AccessType.READ, -1)
        return
    if bt == RegType.PTR_TO_CTX and not env.desc.ctx_convert:
        # no context rewriting for this type: check the last byte of the range as a plain access
        if access_size == 0:
            if zero_ok:
                return
            raise Reject(E.EACCES)
        check_mem_access(env, env.insn_idx, regno, access_size - 1, 1, access, -1, False, False)
        return
    if zero_ok and access_size == 0 and register_is_null(reg):
        return
    env.verbose(Msg.R_TYPE_PREFIX.format(regno, reg_type_str(reg.type)))
    raise env.fail(E.EACCES, Msg.EXPECTED_TYPES.format(reg_type_str(RegType.PTR_TO_STACK)))


def check_mem_size_reg(env: VerifierEnv, reg: RegState, regno: int, access: AccessType, zero_ok: bool,
                       meta: Any) -> None:
    from pybpf.verifier.precision import mark_chain_precision

    if meta is not None:
        meta.msize_max_value = reg.umax_value
    if reg.var_off.mask != 0:
        meta = None
    if reg.smin_value < 0:
        raise env.fail(E.EACCES, Msg.R_MIN_NEGATIVE_VAR_AND.format(regno))
    if reg.umin_value == 0 and not zero_ok:
        raise env.fail(E.EACCES, Msg.R_INVALID_ZERO_SIZED_READ_U64.format(regno, s64(reg.umin_value),
                                                                          s64(reg.umax_value)))
    if reg.umax_value >= BPF_MAX_VAR_SIZ:
        raise env.fail(E.EACCES, Msg.R_UNBOUNDED_MEMORY_ACCESS_USE_VAR.format(regno))
    check_helper_mem_access(env, regno - 1, reg.umax_value, access, zero_ok, meta)
    mark_chain_precision(env, regno)


def verbose_linfo(env: VerifierEnv, insn_idx: int, prefix: str) -> None:
    from pybpf.verifier.walk import verbose_linfo as _v

    _v(env, insn_idx, prefix)
