"""Register state (``struct bpf_reg_state``) and the bounds machinery that keeps it consistent.

A :class:`RegState` is mutable, like the kernel's: the verifier updates registers in place and copies
whole states (:meth:`RegState.copy`) when it forks a branch. Field names are the kernel's
(``var_off``, ``smin_value``, ``u32_max_value``, ``ref_obj_id``...), so this file reads beside
``kernel/bpf/verifier.c``. Number conventions: ``umin_value``/``umax_value``/``u32_*`` and
``var_off`` hold unsigned values; ``smin_value``/``smax_value``/``s32_*`` signed Python ints.

The bounds functions (``__update_reg_bounds``, ``__reg_deduce_bounds``, ``__reg_bound_offset``,
``reg_bounds_sync``...) keep the tnum and the four ranges consistent after every operation.
"""

from __future__ import annotations

from typing import Any

from pybpf.progtypes.types import RegType
from pybpf.verifier.tnum import TNUM_UNKNOWN, U32, U64, Tnum, tnum_range

__all__ = [
    "MAX_BPF_REG",
    "REG_LIVE_DONE",
    "REG_LIVE_NONE",
    "REG_LIVE_READ",
    "REG_LIVE_READ32",
    "REG_LIVE_READ64",
    "REG_LIVE_WRITTEN",
    "S32_MAX",
    "S32_MIN",
    "S64_MAX",
    "S64_MIN",
    "RegState",
    "s32",
    "s64",
]

MAX_BPF_REG = 11
BPF_REG_FP = 10
S64_MIN = -(1 << 63)
S64_MAX = (1 << 63) - 1
S32_MIN = -(1 << 31)
S32_MAX = (1 << 31) - 1

REG_LIVE_NONE = 0
REG_LIVE_READ32 = 0x1
REG_LIVE_READ64 = 0x2
REG_LIVE_READ = REG_LIVE_READ32 | REG_LIVE_READ64
REG_LIVE_WRITTEN = 0x4
REG_LIVE_DONE = 0x8

BPF_ADD_CONST = 1 << 31
NOT_INIT = RegType.NOT_INIT.value
SCALAR_VALUE = RegType.SCALAR_VALUE.value


def s64(v: int) -> int:
    v &= U64
    return v - (1 << 64) if v >> 63 else v


def s32(v: int) -> int:
    v &= U32
    return v - (1 << 32) if v >> 31 else v


class RegState:
    """``struct bpf_reg_state``. Pointer payloads: ``map_ptr`` (a MapLike) for map pointers,
    ``range`` for packet pointers, ``mem_size`` for PTR_TO_MEM, ``btf_struct`` for PTR_TO_BTF_ID,
    ``subprogno`` for PTR_TO_FUNC."""

    __slots__ = (
        "btf_struct",
        "frameno",
        "id",
        "live",
        "map_ptr",
        "map_uid",
        "mem_size",
        "off",
        "parent",
        "precise",
        "range",
        "ref_obj_id",
        "s32_max_value",
        "s32_min_value",
        "smax_value",
        "smin_value",
        "subprogno",
        "subreg_def",
        "type",
        "u32_max_value",
        "u32_min_value",
        "umax_value",
        "umin_value",
        "var_off",
    )

    type: int
    off: int
    var_off: Tnum
    smin_value: int
    smax_value: int
    umin_value: int
    umax_value: int
    s32_min_value: int
    s32_max_value: int
    u32_min_value: int
    u32_max_value: int
    id: int
    ref_obj_id: int
    frameno: int
    precise: bool
    live: int
    subreg_def: int
    map_ptr: Any
    map_uid: int
    range: int
    mem_size: int
    btf_struct: str | None
    subprogno: int
    parent: RegState | None

    def __init__(self) -> None:
        self.type = NOT_INIT
        self.off = 0
        self.var_off = TNUM_UNKNOWN
        self.smin_value = S64_MIN
        self.smax_value = S64_MAX
        self.umin_value = 0
        self.umax_value = U64
        self.s32_min_value = S32_MIN
        self.s32_max_value = S32_MAX
        self.u32_min_value = 0
        self.u32_max_value = U32
        self.id = 0
        self.ref_obj_id = 0
        self.frameno = 0
        self.precise = False
        self.live = REG_LIVE_NONE
        self.subreg_def = 0
        self.map_ptr = None
        self.map_uid = 0
        self.range = 0
        self.mem_size = 0
        self.btf_struct = None
        self.subprogno = 0
        self.parent = None

    def copy(self) -> RegState:
        r = RegState.__new__(RegState)
        r.type = self.type
        r.off = self.off
        r.var_off = self.var_off
        r.smin_value = self.smin_value
        r.smax_value = self.smax_value
        r.umin_value = self.umin_value
        r.umax_value = self.umax_value
        r.s32_min_value = self.s32_min_value
        r.s32_max_value = self.s32_max_value
        r.u32_min_value = self.u32_min_value
        r.u32_max_value = self.u32_max_value
        r.id = self.id
        r.ref_obj_id = self.ref_obj_id
        r.frameno = self.frameno
        r.precise = self.precise
        r.live = self.live
        r.subreg_def = self.subreg_def
        r.map_ptr = self.map_ptr
        r.map_uid = self.map_uid
        r.range = self.range
        r.mem_size = self.mem_size
        r.btf_struct = self.btf_struct
        r.subprogno = self.subprogno
        r.parent = self.parent
        return r

    def assign(self, src: RegState) -> None:
        """``*dst = *src`` (copies everything, liveness and parent included)."""
        for name in RegState.__slots__:
            setattr(self, name, getattr(src, name))

    def __repr__(self) -> str:
        return (
            f"RegState(type={self.type}, off={self.off}, var_off={self.var_off!r}, "
            f"s64=[{self.smin_value}, {self.smax_value}], u64=[{self.umin_value:#x}, {self.umax_value:#x}], "
            f"s32=[{self.s32_min_value}, {self.s32_max_value}], u32=[{self.u32_min_value:#x}, "
            f"{self.u32_max_value:#x}], id={self.id}, ref_obj_id={self.ref_obj_id})"
        )

    # -- constructors used by tests --------------------------------------------------------------
    @staticmethod
    def unknown_scalar() -> RegState:
        r = RegState()
        r.type = SCALAR_VALUE
        return r

    @staticmethod
    def const(value: int) -> RegState:
        r = RegState()
        r.type = SCALAR_VALUE
        mark_reg_known(r, value)
        return r

    def contains(self, x: int) -> bool:
        """Is the concrete 64-bit value ``x`` allowed by every component? (tests, soundness)"""
        u = x & U64
        sv = s64(u)
        lo = u & U32
        return (
            self.var_off.contains(u)
            and self.umin_value <= u <= self.umax_value
            and self.smin_value <= sv <= self.smax_value
            and self.u32_min_value <= lo <= self.u32_max_value
            and self.s32_min_value <= s32(lo) <= self.s32_max_value
        )


# -- bounds ----------------------------------------------------------------------------------------


def mark_reg_known(reg: RegState, imm: int) -> None:
    """``___mark_reg_known`` (keeps type, pointer payload cleared by the caller)."""
    u = imm & U64
    reg.var_off = Tnum(u, 0)
    reg.smin_value = s64(u)
    reg.smax_value = s64(u)
    reg.umin_value = u
    reg.umax_value = u
    lo = u & U32
    reg.s32_min_value = s32(lo)
    reg.s32_max_value = s32(lo)
    reg.u32_min_value = lo
    reg.u32_max_value = lo


def clear_ptr_payload(reg: RegState) -> None:
    """The kernel's memset of ``off`` and the pointer union + ``id``/``ref_obj_id``."""
    reg.off = 0
    reg.map_ptr = None
    reg.map_uid = 0
    reg.range = 0
    reg.mem_size = 0
    reg.btf_struct = None
    reg.subprogno = 0
    reg.id = 0
    reg.ref_obj_id = 0


def __mark_reg_known(reg: RegState, imm: int) -> None:
    clear_ptr_payload(reg)
    mark_reg_known(reg, imm)


def mark_reg32_known(reg: RegState, imm: int) -> None:
    lo = imm & U32
    reg.var_off = reg.var_off.const_subreg(lo)
    reg.s32_min_value = s32(lo)
    reg.s32_max_value = s32(lo)
    reg.u32_min_value = lo
    reg.u32_max_value = lo


def mark_reg_unbounded(reg: RegState) -> None:
    reg.smin_value = S64_MIN
    reg.smax_value = S64_MAX
    reg.umin_value = 0
    reg.umax_value = U64
    reg.s32_min_value = S32_MIN
    reg.s32_max_value = S32_MAX
    reg.u32_min_value = 0
    reg.u32_max_value = U32


def mark_reg64_unbounded(reg: RegState) -> None:
    reg.smin_value = S64_MIN
    reg.smax_value = S64_MAX
    reg.umin_value = 0
    reg.umax_value = U64


def mark_reg32_unbounded(reg: RegState) -> None:
    reg.s32_min_value = S32_MIN
    reg.s32_max_value = S32_MAX
    reg.u32_min_value = 0
    reg.u32_max_value = U32


def update_reg32_bounds(reg: RegState) -> None:
    v = reg.var_off.value & U32
    m = reg.var_off.mask & U32
    reg.s32_min_value = max(reg.s32_min_value, s32(v | (m & 0x80000000)))
    reg.s32_max_value = min(reg.s32_max_value, s32(v | (m & 0x7FFFFFFF)))
    reg.u32_min_value = max(reg.u32_min_value, v)
    reg.u32_max_value = min(reg.u32_max_value, v | m)


def update_reg64_bounds(reg: RegState) -> None:
    v = reg.var_off.value
    m = reg.var_off.mask
    reg.smin_value = max(reg.smin_value, s64(v | (m & (1 << 63))))
    reg.smax_value = min(reg.smax_value, s64(v | (m & S64_MAX)))
    reg.umin_value = max(reg.umin_value, v)
    reg.umax_value = min(reg.umax_value, v | m)


def update_reg_bounds(reg: RegState) -> None:
    update_reg32_bounds(reg)
    update_reg64_bounds(reg)


def reg32_deduce_bounds(reg: RegState) -> None:
    umin, umax = reg.umin_value, reg.umax_value
    smin, smax = reg.smin_value, reg.smax_value
    if (umin >> 32) == (umax >> 32):
        reg.u32_min_value = max(reg.u32_min_value, umin & U32)
        reg.u32_max_value = min(reg.u32_max_value, umax & U32)
        if s32(umin) <= s32(umax):
            reg.s32_min_value = max(reg.s32_min_value, s32(umin))
            reg.s32_max_value = min(reg.s32_max_value, s32(umax))
    if (smin >> 32) == (smax >> 32):
        if (smin & U32) <= (smax & U32):
            reg.u32_min_value = max(reg.u32_min_value, smin & U32)
            reg.u32_max_value = min(reg.u32_max_value, smax & U32)
        if s32(smin) <= s32(smax):
            reg.s32_min_value = max(reg.s32_min_value, s32(smin))
            reg.s32_max_value = min(reg.s32_max_value, s32(smax))
    if ((umin >> 32) + 1) & U32 == (umax >> 32) & U32 and s32(umin) < 0 and s32(umax) >= 0:
        reg.s32_min_value = max(reg.s32_min_value, s32(umin))
        reg.s32_max_value = min(reg.s32_max_value, s32(umax))
    if (((smin & U64) >> 32) + 1) & U32 == ((smax & U64) >> 32) & U32 and s32(smin) < 0 and s32(smax) >= 0:
        reg.s32_min_value = max(reg.s32_min_value, s32(smin))
        reg.s32_max_value = min(reg.s32_max_value, s32(smax))
    if s32(reg.u32_min_value) <= s32(reg.u32_max_value):
        reg.s32_min_value = max(reg.s32_min_value, s32(reg.u32_min_value))
        reg.s32_max_value = min(reg.s32_max_value, s32(reg.u32_max_value))
    if (reg.s32_min_value & U32) <= (reg.s32_max_value & U32):
        reg.u32_min_value = max(reg.s32_min_value & U32, reg.u32_min_value)
        reg.u32_max_value = min(reg.s32_max_value & U32, reg.u32_max_value)
    else:
        if reg.u32_max_value < (reg.s32_min_value & U32):
            reg.s32_min_value = s32(reg.u32_min_value)
            reg.u32_max_value = min(reg.u32_max_value, reg.s32_max_value & U32)
        elif (reg.s32_max_value & U32) < reg.u32_min_value:
            reg.s32_max_value = s32(reg.u32_max_value)
            reg.u32_min_value = max(reg.u32_min_value, reg.s32_min_value & U32)


def reg64_deduce_bounds(reg: RegState) -> None:
    if s64(reg.umin_value) <= s64(reg.umax_value):
        reg.smin_value = max(reg.smin_value, s64(reg.umin_value))
        reg.smax_value = min(reg.smax_value, s64(reg.umax_value))
    if (reg.smin_value & U64) <= (reg.smax_value & U64):
        reg.umin_value = max(reg.smin_value & U64, reg.umin_value)
        reg.umax_value = min(reg.smax_value & U64, reg.umax_value)
    else:
        if reg.umax_value < (reg.smin_value & U64):
            reg.smin_value = s64(reg.umin_value)
            reg.umax_value = min(reg.umax_value, reg.smax_value & U64)
        elif (reg.smax_value & U64) < reg.umin_value:
            reg.smax_value = s64(reg.umax_value)
            reg.umin_value = max(reg.umin_value, reg.smin_value & U64)


_HI = U64 & ~U32


def reg_deduce_mixed_bounds(reg: RegState) -> None:
    new_umin = (reg.umin_value & _HI) | reg.u32_min_value
    new_umax = (reg.umax_value & _HI) | reg.u32_max_value
    reg.umin_value = max(reg.umin_value, new_umin)
    reg.umax_value = min(reg.umax_value, new_umax)
    new_smin = s64((reg.smin_value & _HI) | reg.u32_min_value)
    new_smax = s64((reg.smax_value & _HI) | reg.u32_max_value)
    reg.smin_value = max(reg.smin_value, new_smin)
    reg.smax_value = min(reg.smax_value, new_smax)
    if (reg.s32_min_value & U32) <= (reg.s32_max_value & U32):
        new_umin = (reg.umin_value & _HI) | (reg.s32_min_value & U32)
        new_umax = (reg.umax_value & _HI) | (reg.s32_max_value & U32)
        reg.umin_value = max(reg.umin_value, new_umin)
        reg.umax_value = min(reg.umax_value, new_umax)
        new_smin = s64((reg.smin_value & _HI) | (reg.s32_min_value & U32))
        new_smax = s64((reg.smax_value & _HI) | (reg.s32_max_value & U32))
        reg.smin_value = max(reg.smin_value, new_smin)
        reg.smax_value = min(reg.smax_value, new_smax)
    if reg.s32_min_value >= 0 and reg.smin_value >= S32_MIN and reg.smax_value <= S32_MAX:
        reg.smin_value = reg.s32_min_value
        reg.smax_value = reg.s32_max_value
        reg.umin_value = reg.s32_min_value
        reg.umax_value = reg.s32_max_value
        reg.var_off = reg.var_off.intersect(tnum_range(reg.smin_value, reg.smax_value))


def reg_deduce_bounds(reg: RegState) -> None:
    reg32_deduce_bounds(reg)
    reg64_deduce_bounds(reg)
    reg_deduce_mixed_bounds(reg)


def reg_bound_offset(reg: RegState) -> None:
    var64 = reg.var_off.intersect(tnum_range(reg.umin_value, reg.umax_value))
    var32 = var64.subreg().intersect(tnum_range(reg.u32_min_value, reg.u32_max_value))
    reg.var_off = var64.clear_subreg().or_(var32)


def _bounds_key(reg: RegState) -> tuple[int, ...]:
    return (reg.smin_value, reg.smax_value, reg.umin_value, reg.umax_value, reg.s32_min_value,
            reg.s32_max_value, reg.u32_min_value, reg.u32_max_value, reg.var_off.value, reg.var_off.mask)


def reg_bounds_sync(reg: RegState) -> None:
    update_reg_bounds(reg)
    vo = reg.var_off
    if not vo.mask:
        v = vo.value
        if (reg.umin_value == v == reg.umax_value and reg.smin_value == reg.smax_value == s64(v)
                and reg.u32_min_value == reg.u32_max_value == v & U32
                and reg.s32_min_value == reg.s32_max_value == s32(v)):
            return  # a consistent constant: every deduction below is the identity
    # the kernel runs the deduction three times; each round is a pure function of the bounds, so
    # once a round changes nothing the remaining ones cannot either (this is the verifier's
    # hottest path: skipping them halves its cost without changing any result)
    key = _bounds_key(reg)
    for _ in range(3):
        reg_deduce_bounds(reg)
        nkey = _bounds_key(reg)
        if nkey == key:
            break
        key = nkey
    reg_bound_offset(reg)
    update_reg_bounds(reg)


def reg_bounds_violation(reg: RegState) -> str | None:
    """``reg_bounds_sanity_check``'s verdict: the message, or ``None`` when consistent."""
    if (
        reg.umin_value > reg.umax_value
        or reg.smin_value > reg.smax_value
        or reg.u32_min_value > reg.u32_max_value
        or reg.s32_min_value > reg.s32_max_value
    ):
        return _msg().RANGE_BOUNDS_VIOLATION
    if reg.var_off.mask == 0:
        u = reg.var_off.value
        if reg.umin_value != u or reg.umax_value != u or reg.smin_value != s64(u) or reg.smax_value != s64(u):
            return _msg().CONST_TNUM_OUT_OF_SYNC
    if reg.var_off.mask & U32 == 0:
        u = reg.var_off.value & U32
        if (reg.u32_min_value != u or reg.u32_max_value != u or reg.s32_min_value != s32(u)
                or reg.s32_max_value != s32(u)):
            return _msg().CONST_SUBREG_TNUM_OUT_OF_SYNC
    return None


def reg_assign_32_into_64(reg: RegState) -> None:
    reg.umin_value = reg.u32_min_value
    reg.umax_value = reg.u32_max_value
    if 0 <= reg.s32_min_value <= S32_MAX and 0 <= reg.s32_max_value <= S32_MAX:
        reg.smin_value = reg.s32_min_value
        reg.smax_value = reg.s32_max_value
    else:
        reg.smin_value = 0
        reg.smax_value = U32


def mark_reg_unknown_imprecise(reg: RegState) -> None:
    clear_ptr_payload(reg)
    reg.type = SCALAR_VALUE
    reg.var_off = TNUM_UNKNOWN
    reg.frameno = 0
    reg.precise = False
    mark_reg_unbounded(reg)


def mark_reg_unknown(reg: RegState, bpf_capable: bool) -> None:
    mark_reg_unknown_imprecise(reg)
    reg.precise = not bpf_capable


def mark_reg_not_init(reg: RegState, bpf_capable: bool) -> None:
    mark_reg_unknown(reg, bpf_capable)
    reg.type = NOT_INIT


def mark_reg_known_zero(reg: RegState) -> None:
    __mark_reg_known(reg, 0)


def mark_reg_const_zero(reg: RegState, bpf_capable: bool) -> None:
    __mark_reg_known(reg, 0)
    reg.type = SCALAR_VALUE
    reg.precise = not bpf_capable


def reg_is_const(reg: RegState) -> bool:
    return reg.var_off.mask == 0


def tnum_subreg_is_const(t: Tnum) -> bool:
    return t.mask & U32 == 0


def _msg() -> type:
    """The message catalog (``log`` imports this module, so it is looked up when needed)."""
    from pybpf.verifier.log import Msg

    return Msg
