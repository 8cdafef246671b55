"""ALU instructions: ``check_alu_op`` and the bounds arithmetic behind it.

``adjust_scalar_min_max_vals`` with one ``scalar[32]_min_max_<op>`` per operation,
``adjust_ptr_min_max_vals`` for pointer arithmetic, ``coerce_reg_to_size[_sx]`` for narrowing —
as ``kernel/bpf/verifier.c`` computes them, so bounds (and the log lines printing them) match.
"""

from __future__ import annotations

import errno as E
from typing import Any

from pybpf.isa import Insn
from pybpf.progtypes.types import RegType, TypeFlag
from pybpf.verifier.env import (
    BPF_MAX_VAR_OFF,
    DST_OP,
    DST_OP_NO_MARK,
    MAX_BPF_STACK,
    SRC_OP,
    Reject,
    VerifierEnv,
    base_type,
)
from pybpf.verifier.log import Msg, reg_type_str, tnum_str
from pybpf.verifier.regs import (
    BPF_ADD_CONST,
    REG_LIVE_WRITTEN,
    S32_MAX,
    S32_MIN,
    S64_MAX,
    S64_MIN,
    RegState,
    __mark_reg_known,
    mark_reg32_known,
    mark_reg32_unbounded,
    mark_reg64_unbounded,
    reg_assign_32_into_64,
    reg_bounds_sync,
    reg_bounds_violation,
    s32,
    s64,
    update_reg32_bounds,
    update_reg_bounds,
)
from pybpf.verifier.tnum import TNUM_UNKNOWN, U32, U64, Tnum, tnum_range

__all__ = [
    "adjust_ptr_min_max_vals",
    "adjust_scalar_min_max_vals",
    "check_alu_op",
    "coerce_reg_to_size",
    "coerce_reg_to_size_sx",
    "copy_register_state",
    "zext_32_to_64",
]

ALU_STR = {0x00: "+=", 0x10: "-=", 0x20: "*=", 0x30: "/=", 0x40: "|=", 0x50: "&=", 0x60: "<<=", 0x70: ">>=",
           0x80: "neg", 0x90: "%=", 0xA0: "^=", 0xB0: "=", 0xC0: "s>>=", 0xD0: "endian"}


def copy_register_state(dst: RegState, src: RegState) -> None:
    """``copy_register_state``: ``*dst = *src`` keeping dst's parent and liveness."""
    parent, live = dst.parent, dst.live
    dst.assign(src)
    dst.parent = parent
    dst.live = live


def zext_32_to_64(reg: RegState) -> None:
    reg.var_off = reg.var_off.subreg()
    reg_assign_32_into_64(reg)


def coerce_reg_to_size(reg: RegState, size: int) -> None:
    reg.var_off = reg.var_off.cast(size)
    mask = (1 << (size * 8)) - 1
    if (reg.umin_value & ~mask) == (reg.umax_value & ~mask):
        reg.umin_value &= mask
        reg.umax_value &= mask
    else:
        reg.umin_value = 0
        reg.umax_value = mask
    reg.smin_value = reg.umin_value
    reg.smax_value = reg.umax_value
    if size < 4:
        mark_reg32_unbounded(reg)
    reg_bounds_sync(reg)


def _sext(v: int, size: int) -> int:
    bits = size * 8
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


def _set_sext64_default_val(reg: RegState, size: int) -> None:
    lo, hi = -(1 << (size * 8 - 1)), (1 << (size * 8 - 1)) - 1
    reg.smin_value = reg.s32_min_value = lo
    reg.smax_value = reg.s32_max_value = hi
    reg.umin_value = reg.u32_min_value = 0
    reg.umax_value = U64
    reg.u32_max_value = U32
    reg.var_off = TNUM_UNKNOWN


def coerce_reg_to_size_sx(reg: RegState, size: int) -> None:
    if reg.var_off.mask == 0:
        v = _sext(reg.var_off.value, size) & U64
        reg.var_off = Tnum(v, 0)
        reg.smax_value = reg.smin_value = s64(v)
        reg.umax_value = reg.umin_value = v
        reg.s32_max_value = reg.s32_min_value = s32(v)
        reg.u32_max_value = reg.u32_min_value = v & U32
        return
    nb = size * 8
    top_smax = ((reg.smax_value & U64) >> nb) << nb
    top_smin = ((reg.smin_value & U64) >> nb) << nb
    if top_smax != top_smin:
        _set_sext64_default_val(reg, size)
        return
    init_max = _sext(reg.smax_value, size)
    init_min = _sext(reg.smin_value, size)
    smax = max(init_max, init_min)
    smin = min(init_max, init_min)
    if (smax >= 0) == (smin >= 0):
        reg.s32_min_value = reg.smin_value = smin
        reg.s32_max_value = reg.smax_value = smax
        reg.u32_min_value = smin & U32
        reg.umin_value = smin & U64
        reg.u32_max_value = smax & U32
        reg.umax_value = smax & U64
        reg.var_off = tnum_range(smin, smax)
        return
    _set_sext64_default_val(reg, size)


def _set_sext32_default_val(reg: RegState, size: int) -> None:
    reg.s32_min_value = -(1 << (size * 8 - 1))
    reg.s32_max_value = (1 << (size * 8 - 1)) - 1
    reg.u32_min_value = 0
    reg.u32_max_value = U32
    reg.var_off = TNUM_UNKNOWN.subreg()


def coerce_subreg_to_size_sx(reg: RegState, size: int) -> None:
    if reg.var_off.mask == 0:
        v = _sext(reg.var_off.value, size) & U64
        reg.var_off = Tnum(v, 0)
        reg.s32_min_value = reg.s32_max_value = s32(v)
        reg.u32_min_value = reg.u32_max_value = v & U32
        return
    nb = size * 8
    top_smax = ((reg.s32_max_value & U32) >> nb) << nb
    top_smin = ((reg.s32_min_value & U32) >> nb) << nb
    if top_smax != top_smin:
        _set_sext32_default_val(reg, size)
        return
    init_max = _sext(reg.s32_max_value, size)
    init_min = _sext(reg.s32_min_value, size)
    smax = max(init_max, init_min)
    smin = min(init_max, init_min)
    if (smin >= 0) == (smax >= 0):
        reg.s32_min_value = smin
        reg.s32_max_value = smax
        reg.u32_min_value = smin & U32
        reg.u32_max_value = smax & U32
        reg.var_off = tnum_range(smin, smax).subreg()
        return
    _set_sext32_default_val(reg, size)


# -- scalar operations -------------------------------------------------------------------------------


def _sum_range(a_lo: int, a_hi: int, b_lo: int, b_hi: int, lo: int, hi: int) -> tuple[int, int]:
    """[a_lo, a_hi] + [b_lo, b_hi], or the whole [lo, hi] when either end leaves it — the
    kernel's ``check_add_overflow`` / ``check_sub_overflow`` on both bounds. Subtraction is the
    sum with the negated range (an unsigned ``a_lo - b_hi`` below 0 is the kernel's
    "overflow possible, we know nothing")."""
    r_lo, r_hi = a_lo + b_lo, a_hi + b_hi
    if r_lo < lo or r_hi > hi:
        return lo, hi
    return r_lo, r_hi


def scalar32_min_max_add(dst: RegState, src: RegState) -> None:
    dst.s32_min_value, dst.s32_max_value = _sum_range(dst.s32_min_value, dst.s32_max_value, src.s32_min_value,
                                                      src.s32_max_value, S32_MIN, S32_MAX)
    dst.u32_min_value, dst.u32_max_value = _sum_range(dst.u32_min_value, dst.u32_max_value, src.u32_min_value,
                                                      src.u32_max_value, 0, U32)


def scalar_min_max_add(dst: RegState, src: RegState) -> None:
    dst.smin_value, dst.smax_value = _sum_range(dst.smin_value, dst.smax_value, src.smin_value, src.smax_value,
                                                S64_MIN, S64_MAX)
    dst.umin_value, dst.umax_value = _sum_range(dst.umin_value, dst.umax_value, src.umin_value, src.umax_value,
                                                0, U64)


def scalar32_min_max_sub(dst: RegState, src: RegState) -> None:
    dst.s32_min_value, dst.s32_max_value = _sum_range(dst.s32_min_value, dst.s32_max_value, -src.s32_max_value,
                                                      -src.s32_min_value, S32_MIN, S32_MAX)
    dst.u32_min_value, dst.u32_max_value = _sum_range(dst.u32_min_value, dst.u32_max_value, -src.u32_max_value,
                                                      -src.u32_min_value, 0, U32)


def scalar_min_max_sub(dst: RegState, src: RegState) -> None:
    dst.smin_value, dst.smax_value = _sum_range(dst.smin_value, dst.smax_value, -src.smax_value, -src.smin_value,
                                                S64_MIN, S64_MAX)
    dst.umin_value, dst.umax_value = _sum_range(dst.umin_value, dst.umax_value, -src.umax_value, -src.umin_value,
                                                0, U64)


def scalar32_min_max_mul(dst: RegState, src: RegState) -> None:
    if src.s32_min_value < 0 or dst.s32_min_value < 0:
        mark_reg32_unbounded(dst)
        return
    if src.u32_max_value > 0xFFFF or dst.u32_max_value > 0xFFFF:
        mark_reg32_unbounded(dst)
        return
    dst.u32_min_value = (dst.u32_min_value * src.u32_min_value) & U32
    dst.u32_max_value = (dst.u32_max_value * src.u32_max_value) & U32
    if dst.u32_max_value > S32_MAX:
        dst.s32_min_value, dst.s32_max_value = S32_MIN, S32_MAX
    else:
        dst.s32_min_value, dst.s32_max_value = dst.u32_min_value, dst.u32_max_value


def scalar_min_max_mul(dst: RegState, src: RegState) -> None:
    if src.smin_value < 0 or dst.smin_value < 0:
        mark_reg64_unbounded(dst)
        return
    if src.umax_value > U32 or dst.umax_value > U32:
        mark_reg64_unbounded(dst)
        return
    dst.umin_value = (dst.umin_value * src.umin_value) & U64
    dst.umax_value = (dst.umax_value * src.umax_value) & U64
    if dst.umax_value > S64_MAX:
        dst.smin_value, dst.smax_value = S64_MIN, S64_MAX
    else:
        dst.smin_value, dst.smax_value = dst.umin_value, dst.umax_value


def _signed32_from_u32_range(dst: RegState) -> None:
    if s32(dst.u32_min_value) <= s32(dst.u32_max_value):
        dst.s32_min_value, dst.s32_max_value = s32(dst.u32_min_value), s32(dst.u32_max_value)
    else:
        dst.s32_min_value, dst.s32_max_value = S32_MIN, S32_MAX


def _signed_from_u64_range(dst: RegState) -> None:
    if s64(dst.umin_value) <= s64(dst.umax_value):
        dst.smin_value, dst.smax_value = s64(dst.umin_value), s64(dst.umax_value)
    else:
        dst.smin_value, dst.smax_value = S64_MIN, S64_MAX


def scalar32_min_max_and(dst: RegState, src: RegState) -> None:
    src_known = src.var_off.mask & U32 == 0
    dst_known = dst.var_off.mask & U32 == 0
    v32 = dst.var_off.subreg()
    if src_known and dst_known:
        mark_reg32_known(dst, v32.value)
        return
    dst.u32_min_value = v32.value
    dst.u32_max_value = min(dst.u32_max_value, src.u32_max_value)
    _signed32_from_u32_range(dst)


def scalar_min_max_and(dst: RegState, src: RegState) -> None:
    if src.var_off.mask == 0 and dst.var_off.mask == 0:
        __mark_reg_known(dst, dst.var_off.value)
        return
    dst.umin_value = dst.var_off.value
    dst.umax_value = min(dst.umax_value, src.umax_value)
    _signed_from_u64_range(dst)
    update_reg_bounds(dst)


def scalar32_min_max_or(dst: RegState, src: RegState) -> None:
    src_known = src.var_off.mask & U32 == 0
    dst_known = dst.var_off.mask & U32 == 0
    v32 = dst.var_off.subreg()
    if src_known and dst_known:
        mark_reg32_known(dst, v32.value)
        return
    dst.u32_min_value = max(dst.u32_min_value, src.u32_min_value)
    dst.u32_max_value = v32.value | v32.mask
    _signed32_from_u32_range(dst)


def scalar_min_max_or(dst: RegState, src: RegState) -> None:
    if src.var_off.mask == 0 and dst.var_off.mask == 0:
        __mark_reg_known(dst, dst.var_off.value)
        return
    dst.umin_value = max(dst.umin_value, src.umin_value)
    dst.umax_value = dst.var_off.value | dst.var_off.mask
    _signed_from_u64_range(dst)
    update_reg_bounds(dst)


def scalar32_min_max_xor(dst: RegState, src: RegState) -> None:
    src_known = src.var_off.mask & U32 == 0
    dst_known = dst.var_off.mask & U32 == 0
    v32 = dst.var_off.subreg()
    if src_known and dst_known:
        mark_reg32_known(dst, v32.value)
        return
    dst.u32_min_value = v32.value
    dst.u32_max_value = v32.value | v32.mask
    _signed32_from_u32_range(dst)


def scalar_min_max_xor(dst: RegState, src: RegState) -> None:
    if src.var_off.mask == 0 and dst.var_off.mask == 0:
        __mark_reg_known(dst, dst.var_off.value)
        return
    dst.umin_value = dst.var_off.value
    dst.umax_value = dst.var_off.value | dst.var_off.mask
    _signed_from_u64_range(dst)
    update_reg_bounds(dst)


def _scalar32_min_max_lsh(dst: RegState, umin_val: int, umax_val: int) -> None:
    dst.s32_min_value, dst.s32_max_value = S32_MIN, S32_MAX
    if umax_val > 31 or dst.u32_max_value > (1 << (31 - umax_val)):
        dst.u32_min_value, dst.u32_max_value = 0, U32
    else:
        dst.u32_min_value = (dst.u32_min_value << umin_val) & U32
        dst.u32_max_value = (dst.u32_max_value << umax_val) & U32


def scalar32_min_max_lsh(dst: RegState, src: RegState) -> None:
    umax_val, umin_val = src.u32_max_value, src.u32_min_value
    sub = dst.var_off.subreg()
    _scalar32_min_max_lsh(dst, umin_val, umax_val)
    dst.var_off = sub.lshift(umin_val).subreg()
    mark_reg64_unbounded(dst)
    update_reg32_bounds(dst)


def _scalar64_min_max_lsh(dst: RegState, umin_val: int, umax_val: int) -> None:
    if umin_val == 32 and umax_val == 32:
        dst.smax_value = s64(dst.s32_max_value << 32)
        dst.smin_value = s64(dst.s32_min_value << 32)
    else:
        dst.smax_value, dst.smin_value = S64_MAX, S64_MIN
    if umax_val > 63 or dst.umax_value > (1 << (63 - umax_val)):
        dst.umin_value, dst.umax_value = 0, U64
    else:
        dst.umin_value = (dst.umin_value << umin_val) & U64
        dst.umax_value = (dst.umax_value << umax_val) & U64


def scalar_min_max_lsh(dst: RegState, src: RegState) -> None:
    umax_val, umin_val = src.umax_value, src.umin_value
    _scalar64_min_max_lsh(dst, umin_val, umax_val)
    _scalar32_min_max_lsh(dst, umin_val, umax_val)
    dst.var_off = dst.var_off.lshift(umin_val)
    update_reg_bounds(dst)


def scalar32_min_max_rsh(dst: RegState, src: RegState) -> None:
    sub = dst.var_off.subreg()
    umax_val, umin_val = src.u32_max_value, src.u32_min_value
    dst.s32_min_value, dst.s32_max_value = S32_MIN, S32_MAX
    dst.var_off = sub.rshift(umin_val)
    dst.u32_min_value >>= umax_val
    dst.u32_max_value >>= umin_val
    mark_reg64_unbounded(dst)
    update_reg32_bounds(dst)


def scalar_min_max_rsh(dst: RegState, src: RegState) -> None:
    umax_val, umin_val = src.umax_value, src.umin_value
    dst.smin_value, dst.smax_value = S64_MIN, S64_MAX
    dst.var_off = dst.var_off.rshift(umin_val)
    dst.umin_value >>= umax_val
    dst.umax_value >>= umin_val
    mark_reg32_unbounded(dst)
    update_reg_bounds(dst)


def scalar32_min_max_arsh(dst: RegState, src: RegState) -> None:
    umin_val = src.u32_min_value
    dst.s32_min_value = s32(dst.s32_min_value >> umin_val)
    dst.s32_max_value = s32(dst.s32_max_value >> umin_val)
    dst.var_off = dst.var_off.subreg().arshift(umin_val, 32)
    dst.u32_min_value, dst.u32_max_value = 0, U32
    mark_reg64_unbounded(dst)
    update_reg32_bounds(dst)


def scalar_min_max_arsh(dst: RegState, src: RegState) -> None:
    umin_val = src.umin_value
    dst.smin_value >>= umin_val
    dst.smax_value >>= umin_val
    dst.var_off = dst.var_off.arshift(umin_val, 64)
    dst.umin_value, dst.umax_value = 0, U64
    mark_reg32_unbounded(dst)
    update_reg_bounds(dst)


def is_safe_to_compute_dst_reg_range(insn: Insn, src: RegState) -> bool:
    op = insn.code & 0xF0
    if op in (0x00, 0x10, 0x50, 0xA0, 0x40, 0x20):
        return True
    if op in (0x60, 0x70, 0xC0):
        bits = 64 if insn.code & 7 == 7 else 32
        if bits == 32:
            const = (src.var_off.mask & U32 == 0 and src.s32_min_value == src.s32_max_value
                     and src.u32_min_value == src.u32_max_value)
        else:
            const = src.var_off.mask == 0 and src.smin_value == src.smax_value and src.umin_value == src.umax_value
        return const and src.umax_value < bits
    return False


def maybe_fork_scalars(env: VerifierEnv, insn: Insn, dst: RegState) -> None:
    if dst.smin_value == -1 and dst.smax_value == 0:
        alu32 = False
    elif dst.s32_min_value == -1 and dst.s32_max_value == 0:
        alu32 = True
    else:
        return
    from pybpf.verifier.walk import push_stack

    branch = push_stack(env, env.insn_idx, env.insn_idx, False)
    bregs = branch.frame[branch.curframe].regs
    if alu32:
        mark_reg32_known(bregs[insn.dst], 0)
        mark_reg32_known(dst, U64)
    else:
        __mark_reg_known(bregs[insn.dst], 0)
        __mark_reg_known(dst, U64)


def adjust_scalar_min_max_vals(env: VerifierEnv, insn: Insn, dst: RegState, src: RegState) -> None:
    op = insn.code & 0xF0
    alu32 = insn.code & 7 != 7
    if not is_safe_to_compute_dst_reg_range(insn, src):
        env.mark_reg_unknown(dst)
        return
    if op in (0x00, 0x10):
        _sanitize_val_alu(env, insn)
    if op == 0x00:
        scalar32_min_max_add(dst, src)
        scalar_min_max_add(dst, src)
        dst.var_off = dst.var_off.add(src.var_off)
    elif op == 0x10:
        scalar32_min_max_sub(dst, src)
        scalar_min_max_sub(dst, src)
        dst.var_off = dst.var_off.sub(src.var_off)
    elif op == 0x20:
        dst.var_off = dst.var_off.mul(src.var_off)
        scalar32_min_max_mul(dst, src)
        scalar_min_max_mul(dst, src)
    elif op == 0x50:
        if src.var_off.mask == 0:
            maybe_fork_scalars(env, insn, dst)
        dst.var_off = dst.var_off.and_(src.var_off)
        scalar32_min_max_and(dst, src)
        scalar_min_max_and(dst, src)
    elif op == 0x40:
        if src.var_off.mask == 0:
            maybe_fork_scalars(env, insn, dst)
        dst.var_off = dst.var_off.or_(src.var_off)
        scalar32_min_max_or(dst, src)
        scalar_min_max_or(dst, src)
    elif op == 0xA0:
        dst.var_off = dst.var_off.xor(src.var_off)
        scalar32_min_max_xor(dst, src)
        scalar_min_max_xor(dst, src)
    elif op == 0x60:
        if alu32:
            scalar32_min_max_lsh(dst, src)
        else:
            scalar_min_max_lsh(dst, src)
    elif op == 0x70:
        if alu32:
            scalar32_min_max_rsh(dst, src)
        else:
            scalar_min_max_rsh(dst, src)
    elif op == 0xC0:
        if alu32:
            scalar32_min_max_arsh(dst, src)
        else:
            scalar_min_max_arsh(dst, src)
    if alu32:
        zext_32_to_64(dst)
    reg_bounds_sync(dst)


# -- pointer arithmetic -----------------------------------------------------------------------------


def check_reg_sane_offset(env: VerifierEnv, reg: RegState, t: int) -> bool:
    known = reg.var_off.mask == 0
    val = s64(reg.var_off.value)
    smin = reg.smin_value
    if known and (val >= BPF_MAX_VAR_OFF or val <= -BPF_MAX_VAR_OFF):
        env.verbose(Msg.MATH_BETWEEN_POINTER_AND_IS_NOT.format(reg_type_str(t), val))
        return False
    if reg.off >= BPF_MAX_VAR_OFF or reg.off <= -BPF_MAX_VAR_OFF:
        env.verbose(Msg.POINTER_OFFSET_IS_NOT_ALLOWED.format(reg_type_str(t), reg.off))
        return False
    if smin == S64_MIN:
        env.verbose(Msg.MATH_BETWEEN_POINTER_AND_REGISTER_WITH.format(reg_type_str(t)))
        return False
    if smin >= BPF_MAX_VAR_OFF or smin <= -BPF_MAX_VAR_OFF:
        env.verbose(Msg.VALUE_MAKES_POINTER_BE_OUT_OF.format(smin, reg_type_str(t)))
        return False
    return True


def _fits_s32(v: int) -> bool:
    return S32_MIN <= v <= S32_MAX


def _check_stack_access_for_ptr_arithmetic(env: VerifierEnv, regno: int, reg: RegState, off: int) -> None:
    if reg.var_off.mask != 0:
        raise env.fail(E.EACCES, Msg.R_VARIABLE_STACK_ACCESS_PROHIBITED_FOR.format(regno, tnum_str(reg.var_off), off))
    if off >= 0 or off < -MAX_BPF_STACK:
        raise env.fail(E.EACCES, Msg.R_STACK_POINTER_ARITHMETIC_GOES_OUT.format(regno, off))


def _sanitize_check_bounds(env: VerifierEnv, insn: Insn, dst: RegState) -> None:
    if env.bypass_spec_v1:
        return
    if dst.type == RegType.PTR_TO_STACK:
        _check_stack_access_for_ptr_arithmetic(env, insn.dst, dst, dst.off + s64(dst.var_off.value))
    elif dst.type == RegType.PTR_TO_MAP_VALUE:
        from pybpf.verifier.checks.mem import check_map_access

        try:
            check_map_access(env, insn.dst, dst.off, 1, False, helper=True)
        except Exception:
            raise env.fail(E.EACCES, Msg.R_POINTER_ARITHMETIC_OF_MAP_VALUE.format(insn.dst)) from None


BPF_ALU_SANITIZE_SRC, BPF_ALU_SANITIZE_DST, BPF_ALU_NEG_VALUE = 1, 2, 4
BPF_ALU_NON_POINTER, BPF_ALU_IMMEDIATE = 8, 16
REASON_BOUNDS, REASON_TYPE, REASON_PATHS, REASON_LIMIT, REASON_STACK = 1, 2, 3, 4, 5


def _can_skip_alu_sanitation(env: VerifierEnv, insn: Insn) -> bool:
    return env.bypass_spec_v1 or insn.code & 8 == 0 or env.aux[env.insn_idx].nospec


def _update_alu_sanitation_state(aux: Any, alu_state: int, alu_limit: int) -> int:
    """Every path through one instruction must need the same masking; 0 or REASON_PATHS."""
    if aux.alu_state and (aux.alu_state != alu_state or aux.alu_limit != alu_limit):
        return REASON_PATHS
    aux.alu_state = alu_state
    aux.alu_limit = alu_limit
    return 0


def _retrieve_ptr_limit(ptr: RegState, mask_to_left: bool) -> tuple[int, int]:
    """(0, limit) or (reason, 0): how far the pointer may move before leaving its object."""
    if ptr.type == RegType.PTR_TO_STACK:
        bound = MAX_BPF_STACK + int(mask_to_left)
        limit = -(s64(ptr.var_off.value) + ptr.off)
    elif ptr.type == RegType.PTR_TO_MAP_VALUE:
        bound = ptr.map_ptr.value_size
        limit = (ptr.smin_value if mask_to_left else ptr.umax_value) + ptr.off
    else:
        return REASON_TYPE, 0
    limit &= 0xFFFFFFFF
    if limit >= bound:
        return REASON_LIMIT, 0
    return 0, limit


class _SanitizeInfo:
    """``struct bpf_sanitize_info``: the first (simulation) pass's verdict for the commit pass."""

    __slots__ = ("alu_limit", "alu_state", "mask_to_left")

    def __init__(self) -> None:
        self.alu_state = 0
        self.alu_limit = 0
        self.mask_to_left = False


def _sanitize_ptr_alu(env: VerifierEnv, insn: Insn, ptr: RegState, off_reg: RegState, dst: RegState,
                      info: _SanitizeInfo, commit: bool, ptr_is_dst: bool) -> int:
    """``sanitize_ptr_alu``: the unprivileged (Spectre v1) rules for pointer +/- register.

    The kernel then masks the offset at run time (a rewrite using its scratch register); pybpf's
    engines do not speculate, so only the verification side is kept: the same rejections, and the
    same extra speculative path with the offset truncated to 0.
    """
    from pybpf.verifier.walk import push_stack

    if _can_skip_alu_sanitation(env, insn):
        return 0
    op = insn.code & 0xF0
    off_is_imm = off_reg.var_off.mask == 0
    off_is_neg = off_reg.smin_value < 0
    if not env.cur_state.speculative:
        if not commit:
            if not off_is_imm and (off_reg.smin_value < 0) != (off_reg.smax_value < 0):
                return REASON_BOUNDS
            info.mask_to_left = (op == 0x00 and off_is_neg) or (op == 0x10 and not off_is_neg)
        err, limit = _retrieve_ptr_limit(ptr, info.mask_to_left)
        if err:
            return err
        if commit:
            alu_state = info.alu_state
            limit = abs(info.alu_limit - limit)
            err = _update_alu_sanitation_state(env.aux[env.insn_idx], alu_state, limit)
        else:
            alu_state = (BPF_ALU_NEG_VALUE if off_is_neg else 0) | (BPF_ALU_IMMEDIATE if off_is_imm else 0)
            alu_state |= BPF_ALU_SANITIZE_SRC if ptr_is_dst else BPF_ALU_SANITIZE_DST
            if not off_is_imm:
                env.explore_alu_limits = True
            err = _update_alu_sanitation_state(info, alu_state, limit)
        if err:
            return err
    if commit or off_is_imm:
        return 0
    # the speculative path where the masked offset became 0: dst holds the bare pointer
    saved = None if ptr_is_dst else dst.copy()
    if saved is not None:
        dst.assign(ptr)
    push_stack(env, env.insn_idx + 1, env.insn_idx, True)
    if saved is not None:
        dst.assign(saved)
    return 0


def _sanitize_err(env: VerifierEnv, insn: Insn, reason: int, off_is_dst: bool) -> Reject:
    err = Msg.SANITIZE_PROHIBITED_FOR_UNPRIV
    op = "add" if insn.code & 0xF0 == 0 else "sub"
    if reason == REASON_BOUNDS:
        return env.fail(E.EACCES, Msg.R_HAS_UNKNOWN_SCALAR_WITH_MIXED.format(insn.dst if off_is_dst else insn.src, err))
    if reason == REASON_TYPE:
        return env.fail(E.EACCES, Msg.R_HAS_POINTER_WITH_UNSUPPORTED_ALU.format(insn.src if off_is_dst else insn.dst,
                                                                                err))
    if reason == REASON_PATHS:
        return env.fail(E.EACCES, Msg.R_TRIED_TO_FROM_DIFFERENT_MAPS.format(insn.dst, op, err))
    if reason == REASON_LIMIT:
        return env.fail(E.EACCES, Msg.R_TRIED_TO_BEYOND_POINTER_BOUNDS.format(insn.dst, op, err))
    if reason == REASON_STACK:
        return env.fail(E.EACCES, Msg.R_COULD_NOT_BE_PUSHED_FOR.format(insn.dst, err))
    return env.fail(E.EFAULT, Msg.VERIFIER_INTERNAL_ERROR_UNKNOWN_REASON.format(reason))


def _sanitize_val_alu(env: VerifierEnv, insn: Insn) -> None:
    if _can_skip_alu_sanitation(env, insn):
        return
    if _update_alu_sanitation_state(env.aux[env.insn_idx], BPF_ALU_NON_POINTER, 0):
        raise _sanitize_err(env, insn, REASON_PATHS, False)


def adjust_ptr_min_max_vals(env: VerifierEnv, insn: Insn, ptr_reg: RegState, off_reg: RegState) -> None:
    regs = env.regs
    dst = insn.dst
    dst_reg = regs[dst]
    known = off_reg.var_off.mask == 0
    smin_val, smax_val = off_reg.smin_value, off_reg.smax_value
    umin_val, umax_val = off_reg.umin_value, off_reg.umax_value
    smin_ptr, smax_ptr = ptr_reg.smin_value, ptr_reg.smax_value
    umin_ptr, umax_ptr = ptr_reg.umin_value, ptr_reg.umax_value
    op = insn.code & 0xF0
    if (known and (smin_val != smax_val or umin_val != umax_val)) or smin_val > smax_val or umin_val > umax_val:
        env.mark_reg_unknown(dst_reg)
        return
    if insn.code & 7 != 7:
        if op == 0x10 and env.allow_ptr_leaks:
            env.mark_reg_unknown(dst_reg)
            return
        raise env.fail(E.EACCES, Msg.R_32_BIT_POINTER_ARITHMETIC_PROHIBITED.format(dst))
    if ptr_reg.type & TypeFlag.PTR_MAYBE_NULL:
        raise env.fail(E.EACCES, Msg.R_POINTER_ARITHMETIC_ON_PROHIBITED_NULL.format(dst, reg_type_str(ptr_reg.type)))
    bt = base_type(ptr_reg.type)
    allowed = bt in (RegType.PTR_TO_CTX, RegType.PTR_TO_MAP_VALUE, RegType.PTR_TO_MAP_KEY, RegType.PTR_TO_STACK,
                     RegType.PTR_TO_PACKET_META, RegType.PTR_TO_PACKET, RegType.PTR_TO_TP_BUFFER,
                     RegType.PTR_TO_BTF_ID, RegType.PTR_TO_MEM, RegType.PTR_TO_BUF, RegType.PTR_TO_FUNC,
                     RegType.CONST_PTR_TO_DYNPTR)
    if not allowed:
        flow_or_map = (RegType.PTR_TO_FLOW_KEYS, RegType.CONST_PTR_TO_MAP)
        if (bt == RegType.PTR_TO_FLOW_KEYS and known) or (bt in flow_or_map and known and smin_val == 0 and op == 0):
            allowed = True
    if not allowed:
        raise env.fail(E.EACCES, Msg.R_POINTER_ARITHMETIC_ON_PROHIBITED.format(dst, reg_type_str(ptr_reg.type)))
    dst_is_ptr = dst_reg is ptr_reg
    ptr_reg = ptr_reg.copy()
    if not dst_is_ptr:
        dst_reg.assign(ptr_reg)
    if not check_reg_sane_offset(env, off_reg, ptr_reg.type) or not check_reg_sane_offset(env, ptr_reg, ptr_reg.type):
        raise Reject(E.EINVAL)
    sinfo = _SanitizeInfo()
    if op in (0x00, 0x10):
        reason = _sanitize_ptr_alu(env, insn, ptr_reg, off_reg, dst_reg, sinfo, False, dst_is_ptr)
        if reason:
            raise _sanitize_err(env, insn, reason, not dst_is_ptr)
    mark_reg32_unbounded(dst_reg)
    if op == 0x00:
        if known and _fits_s32(ptr_reg.off + smin_val):
            dst_reg.smin_value, dst_reg.smax_value = smin_ptr, smax_ptr
            dst_reg.umin_value, dst_reg.umax_value = umin_ptr, umax_ptr
            dst_reg.var_off = ptr_reg.var_off
            dst_reg.off = ptr_reg.off + smin_val
            dst_reg.range = ptr_reg.range
        else:
            smin, smax = smin_ptr + smin_val, smax_ptr + smax_val
            if not (S64_MIN <= smin <= S64_MAX and S64_MIN <= smax <= S64_MAX):
                smin, smax = S64_MIN, S64_MAX
            dst_reg.smin_value, dst_reg.smax_value = smin, smax
            umin, umax = umin_ptr + umin_val, umax_ptr + umax_val
            if umin > U64 or umax > U64:
                umin, umax = 0, U64
            dst_reg.umin_value, dst_reg.umax_value = umin, umax
            dst_reg.var_off = ptr_reg.var_off.add(off_reg.var_off)
            dst_reg.off = ptr_reg.off
            dst_reg.range = ptr_reg.range
            if ptr_reg.type in (RegType.PTR_TO_PACKET, RegType.PTR_TO_PACKET_META):
                dst_reg.id = env.next_id()
                dst_reg.range = 0
    elif op == 0x10:
        if not dst_is_ptr:
            raise env.fail(E.EACCES, Msg.R_TRIED_TO_SUBTRACT_POINTER_FROM.format(dst))
        if ptr_reg.type == RegType.PTR_TO_STACK:
            raise env.fail(E.EACCES, Msg.R_SUBTRACTION_FROM_STACK_POINTER_PROHIBITED.format(dst))
        if known and _fits_s32(ptr_reg.off - smin_val):
            dst_reg.smin_value, dst_reg.smax_value = smin_ptr, smax_ptr
            dst_reg.umin_value, dst_reg.umax_value = umin_ptr, umax_ptr
            dst_reg.var_off = ptr_reg.var_off
            dst_reg.id = ptr_reg.id
            dst_reg.off = ptr_reg.off - smin_val
            dst_reg.range = ptr_reg.range
        else:
            smin, smax = smin_ptr - smax_val, smax_ptr - smin_val
            if not (S64_MIN <= smin <= S64_MAX and S64_MIN <= smax <= S64_MAX):
                smin, smax = S64_MIN, S64_MAX
            dst_reg.smin_value, dst_reg.smax_value = smin, smax
            if umin_ptr < umax_val:
                dst_reg.umin_value, dst_reg.umax_value = 0, U64
            else:
                dst_reg.umin_value, dst_reg.umax_value = umin_ptr - umax_val, umax_ptr - umin_val
            dst_reg.var_off = ptr_reg.var_off.sub(off_reg.var_off)
            dst_reg.off = ptr_reg.off
            dst_reg.range = ptr_reg.range
            if ptr_reg.type in (RegType.PTR_TO_PACKET, RegType.PTR_TO_PACKET_META):
                dst_reg.id = env.next_id()
                if smin_val < 0:
                    dst_reg.range = 0
    elif op in (0x50, 0x40, 0xA0):
        raise env.fail(E.EACCES, Msg.R_BITWISE_OPERATOR_ON_POINTER_PROHIBITED.format(dst, ALU_STR[op]))
    else:
        raise env.fail(E.EACCES, Msg.R_POINTER_ARITHMETIC_WITH_OPERATOR_PROHIBITED.format(dst, ALU_STR[op]))
    if not check_reg_sane_offset(env, dst_reg, ptr_reg.type):
        raise Reject(E.EINVAL)
    reg_bounds_sync(dst_reg)
    _sanitize_check_bounds(env, insn, dst_reg)
    if op in (0x00, 0x10):
        reason = _sanitize_ptr_alu(env, insn, dst_reg, off_reg, dst_reg, sinfo, True, True)
        if reason:
            raise _sanitize_err(env, insn, reason, not dst_is_ptr)


def adjust_reg_min_max_vals(env: VerifierEnv, insn: Insn) -> None:
    from pybpf.verifier.precision import mark_chain_precision

    regs = env.regs
    dst_reg = regs[insn.dst]
    op = insn.code & 0xF0
    alu32 = insn.code & 7 != 7
    src_reg: RegState | None = regs[insn.src] if insn.code & 8 else None
    if dst_reg.type == RegType.PTR_TO_ARENA or (src_reg is not None and src_reg.type == RegType.PTR_TO_ARENA):
        if dst_reg.type != RegType.PTR_TO_ARENA:
            env.mark_reg_unknown(dst_reg)
        dst_reg.type = RegType.PTR_TO_ARENA
        dst_reg.subreg_def = env.insn_idx + 1
        return
    ptr_reg = dst_reg if dst_reg.type != RegType.SCALAR_VALUE else None
    if src_reg is not None:
        if src_reg.type != RegType.SCALAR_VALUE:
            if dst_reg.type != RegType.SCALAR_VALUE:
                if op == 0x10 and env.allow_ptr_leaks:
                    env.mark_reg_unknown(dst_reg)
                    return
                raise env.fail(E.EACCES, Msg.R_POINTER_POINTER_PROHIBITED.format(insn.dst, ALU_STR[op]))
            mark_chain_precision(env, insn.dst)
            off_reg = dst_reg.copy()
            adjust_ptr_min_max_vals(env, insn, src_reg, off_reg)
            return
        if ptr_reg is not None:
            mark_chain_precision(env, insn.src)
            adjust_ptr_min_max_vals(env, insn, dst_reg, src_reg)
            return
        if dst_reg.precise:
            mark_chain_precision(env, insn.src)
        src = src_reg.copy()
    else:
        src = RegState()
        src.type = RegType.SCALAR_VALUE
        __mark_reg_known(src, insn.imm)
        if ptr_reg is not None:
            adjust_ptr_min_max_vals(env, insn, ptr_reg, src)
            return
    adjust_scalar_min_max_vals(env, insn, dst_reg, src)
    if (env.bpf_capable and op == 0x00 and not alu32 and dst_reg.id and src.type == RegType.SCALAR_VALUE
            and src.var_off.mask == 0 and not (insn.code & 8 and insn.src == insn.dst)):
        val = src.var_off.value
        if dst_reg.id & BPF_ADD_CONST or val > S32_MAX:
            dst_reg.id = 0
            dst_reg.off = 0
        else:
            dst_reg.id |= BPF_ADD_CONST
            dst_reg.off = val
    else:
        dst_reg.id = 0
        dst_reg.off = 0


def assign_scalar_id_before_mov(env: VerifierEnv, src: RegState) -> None:
    if src.type != RegType.SCALAR_VALUE:
        return
    if src.id & BPF_ADD_CONST:
        src.id = 0
        src.off = 0
    if not src.id and src.var_off.mask != 0:
        src.id = env.next_id()


def _reg_width(reg: RegState) -> int:
    return reg.umax_value.bit_length()


def check_alu_op(env: VerifierEnv, insn: Insn) -> None:
    regs = env.regs
    code = insn.code
    op = code & 0xF0
    cls = code & 7
    src_x = bool(code & 8)
    if op in (0xD0, 0x80):
        if op == 0x80:
            if src_x or insn.src != 0 or insn.off != 0 or insn.imm != 0:
                raise env.fail(E.EINVAL, Msg.BPF_NEG_USES_RESERVED_FIELDS)
        elif insn.src != 0 or insn.off != 0 or insn.imm not in (16, 32, 64) or (cls == 7 and src_x):
            raise env.fail(E.EINVAL, Msg.BPF_END_USES_RESERVED_FIELDS)
        env.check_reg_arg(insn.dst, SRC_OP)
        if env.is_pointer_value(insn.dst):
            raise env.fail(E.EACCES, Msg.R_POINTER_ARITHMETIC_PROHIBITED.format(insn.dst))
        env.check_reg_arg(insn.dst, DST_OP)
    elif op == 0xB0:
        if src_x:
            if cls == 4:
                if insn.off not in (0, 8, 16) or insn.imm:
                    raise env.fail(E.EINVAL, Msg.BPF_MOV_USES_RESERVED_FIELDS)
            elif insn.off == 1:
                if insn.imm not in (1, 1 << 16):
                    raise env.fail(E.EINVAL, Msg.ADDR_SPACE_CAST_AS)
                raise env.fail(E.EINVAL, Msg.ADDR_SPACE_CAST_WITHOUT_ARENA)
            elif insn.off not in (0, 8, 16, 32) or insn.imm:
                raise env.fail(E.EINVAL, Msg.BPF_MOV_USES_RESERVED_FIELDS)
            env.check_reg_arg(insn.src, SRC_OP)
        elif insn.src != 0 or insn.off != 0:
            raise env.fail(E.EINVAL, Msg.BPF_MOV_USES_RESERVED_FIELDS)
        env.check_reg_arg(insn.dst, DST_OP_NO_MARK)
        dst_reg = regs[insn.dst]
        if src_x:
            src_reg = regs[insn.src]
            if cls == 7:
                if insn.off == 0:
                    assign_scalar_id_before_mov(env, src_reg)
                    copy_register_state(dst_reg, src_reg)
                    dst_reg.live |= REG_LIVE_WRITTEN
                    dst_reg.subreg_def = 0
                elif env.is_pointer_value(insn.src):
                    raise env.fail(E.EACCES, Msg.R_SIGN_EXTENSION_PART_OF_POINTER.format(insn.src))
                elif src_reg.type == RegType.SCALAR_VALUE:
                    no_sext = src_reg.umax_value < (1 << (insn.off - 1))
                    if no_sext:
                        assign_scalar_id_before_mov(env, src_reg)
                    copy_register_state(dst_reg, src_reg)
                    if not no_sext:
                        dst_reg.id = 0
                        dst_reg.off = 0
                    coerce_reg_to_size_sx(dst_reg, insn.off >> 3)
                    dst_reg.live |= REG_LIVE_WRITTEN
                    dst_reg.subreg_def = 0
                else:
                    env.mark_reg_unknown(dst_reg)
            else:
                if env.is_pointer_value(insn.src):
                    raise env.fail(E.EACCES, Msg.R_PARTIAL_COPY_OF_POINTER.format(insn.src))
                if src_reg.type == RegType.SCALAR_VALUE:
                    if insn.off == 0:
                        is_u32 = _reg_width(src_reg) <= 32
                        if is_u32:
                            assign_scalar_id_before_mov(env, src_reg)
                        copy_register_state(dst_reg, src_reg)
                        if not is_u32:
                            dst_reg.id = 0
                            dst_reg.off = 0
                        dst_reg.live |= REG_LIVE_WRITTEN
                        dst_reg.subreg_def = env.insn_idx + 1
                    else:
                        no_sext = src_reg.umax_value < (1 << (insn.off - 1))
                        if no_sext:
                            assign_scalar_id_before_mov(env, src_reg)
                        copy_register_state(dst_reg, src_reg)
                        if not no_sext:
                            dst_reg.id = 0
                            dst_reg.off = 0
                        dst_reg.live |= REG_LIVE_WRITTEN
                        dst_reg.subreg_def = env.insn_idx + 1
                        coerce_subreg_to_size_sx(dst_reg, insn.off >> 3)
                else:
                    env.mark_reg_unknown(dst_reg)
                zext_32_to_64(dst_reg)
                reg_bounds_sync(dst_reg)
        else:
            env.mark_reg_unknown(dst_reg)
            dst_reg.type = RegType.SCALAR_VALUE
            if cls == 7:
                __mark_reg_known(dst_reg, insn.imm)
            else:
                __mark_reg_known(dst_reg, insn.imm & U32)
    elif op > 0xD0:
        raise env.fail(E.EINVAL, Msg.INVALID_BPF_ALU_OPCODE.format(op))
    else:
        if src_x:
            if insn.imm != 0 or insn.off not in (0, 1) or (insn.off == 1 and op not in (0x90, 0x30)):
                raise env.fail(E.EINVAL, Msg.BPF_ALU_USES_RESERVED_FIELDS)
            env.check_reg_arg(insn.src, SRC_OP)
        elif insn.src != 0 or insn.off not in (0, 1) or (insn.off == 1 and op not in (0x90, 0x30)):
            raise env.fail(E.EINVAL, Msg.BPF_ALU_USES_RESERVED_FIELDS)
        env.check_reg_arg(insn.dst, SRC_OP)
        imm = s32(insn.imm)
        if op in (0x90, 0x30) and not src_x and imm == 0:
            raise env.fail(E.EINVAL, Msg.DIV_BY_ZERO)
        if op in (0x60, 0x70, 0xC0) and not src_x:
            size = 64 if cls == 7 else 32
            if imm < 0 or imm >= size:
                raise env.fail(E.EINVAL, Msg.INVALID_SHIFT.format(imm))
        env.check_reg_arg(insn.dst, DST_OP_NO_MARK)
        adjust_reg_min_max_vals(env, insn)
    reg_bounds_sanity_check(env, regs[insn.dst], "alu")


def reg_bounds_sanity_check(env: VerifierEnv, reg: RegState, ctx: str) -> None:
    msg = reg_bounds_violation(reg)
    if msg is None:
        return
    env.verbose(
        Msg.REG_INVARIANTS_VIOLATION_U64_S64_U32.format(ctx, msg, reg.umin_value, reg.umax_value,
                                                        reg.smin_value & U64, reg.smax_value & U64,
                                                        reg.u32_min_value, reg.u32_max_value,
                                                        reg.s32_min_value & U32, reg.s32_max_value & U32,
                                                        reg.var_off.value, reg.var_off.mask)
    )
    if env.test_reg_invariants:
        raise Reject(E.EFAULT)
    from pybpf.verifier.regs import mark_reg_unbounded

    mark_reg_unbounded(reg)
