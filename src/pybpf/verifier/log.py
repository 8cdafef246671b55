"""Every word the verifier says: the kernel's log format (``kernel/bpf/log.c``, ``disasm.c``).

:class:`VerifierLog` is the kernel's ``bpf_verifier_log``: text appended by ``verbose()``, with the
position bookkeeping the verifier needs (``end_pos``, :meth:`VerifierLog.reset` — at log level 1 a
finished branch's lines are dropped when the next branch is popped, as Linux does).

The formatting functions reproduce the kernel's output byte for byte:

* :func:`format_insn` — ``print_bpf_insn`` (``(61) r1 = *(u32 *)(r1 +16)``);
* :func:`reg_type_str` — ``map_value_or_null``, ``rdonly_mem``, ``ptr_or_null_``...;
* :func:`format_reg` — ``print_reg_state`` (``scalar(smin=0,smax=umax=0xffffffff,var_off=(0x0; 0xffffffff))``,
  ``map_ptr(map=pkt_counter,ks=4,vs=4)``, ``fp-4``, ``P5``);
* :func:`format_state` — ``print_verifier_state`` (`` R1=ctx() R10=fp0 fp-8=mmmm????``);
* :func:`insn_state_prefix` — the alignment of ``print_insn_state`` (``;`` at column 38...).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from pybpf.isa import Insn
from pybpf.progtypes.types import BASE_TYPE_MASK, RegType, TypeFlag
from pybpf.uapi import helper_name
from pybpf.verifier.regs import (
    REG_LIVE_DONE,
    REG_LIVE_READ,
    REG_LIVE_WRITTEN,
    S32_MAX,
    S32_MIN,
    S64_MAX,
    S64_MIN,
    RegState,
)
from pybpf.verifier.tnum import U32, U64, Tnum

if TYPE_CHECKING:
    from pybpf.verifier.state import FuncState

__all__ = [
    "VerifierLog",
    "format_insn",
    "format_reg",
    "format_state",
    "insn_state_prefix",
    "reg_type_str",
    "tnum_str",
]

BPF_LOG_LEVEL1 = 1
BPF_LOG_LEVEL2 = 2
BPF_LOG_STATS = 4
BPF_LOG_ALIGNMENT = 40
BPF_LOG_MIN_ALIGNMENT = 8


class VerifierLog:
    """The verifier log buffer. ``level`` is the user's log_level (bits 1, 2, 4)."""

    __slots__ = ("end_pos", "level", "parts")

    def __init__(self, level: int = 0) -> None:
        self.level = level
        self.parts: list[str] = []
        self.end_pos = 0

    def write(self, text: str) -> None:
        if text:
            self.parts.append(text)
            self.end_pos += len(text)

    def reset(self, pos: int) -> None:
        """``bpf_vlog_reset``: drop everything after ``pos``."""
        while self.end_pos > pos and self.parts:
            last = self.parts.pop()
            self.end_pos -= len(last)
            if self.end_pos < pos:
                keep = last[: pos - self.end_pos]
                self.parts.append(keep)
                self.end_pos += len(keep)

    def text(self) -> str:
        return "".join(self.parts)

    def tail(self, since: int) -> str:
        """The text written after position ``since``."""
        full = self.text()
        return full[since:]


# -- numbers -----------------------------------------------------------------------------------------


def _unum(v: int) -> str:
    return str(v) if v <= 0xFFFF else f"{v:#x}"


def _snum(v: int) -> str:
    if -0x8000 <= v <= 0x7FFF:
        return str(v)
    return f"{v & U64:#x}"


def tnum_str(t: Tnum) -> str:
    """``tnum_strn``."""
    if t.mask == 0:
        return _unum(t.value)
    return f"({t.value:#x}; {t.mask:#x})"


# -- register types ------------------------------------------------------------------------------------

_TYPE_STR = {
    RegType.NOT_INIT: "?",
    RegType.SCALAR_VALUE: "scalar",
    RegType.PTR_TO_CTX: "ctx",
    RegType.CONST_PTR_TO_MAP: "map_ptr",
    RegType.PTR_TO_MAP_VALUE: "map_value",
    RegType.PTR_TO_STACK: "fp",
    RegType.PTR_TO_PACKET: "pkt",
    RegType.PTR_TO_PACKET_META: "pkt_meta",
    RegType.PTR_TO_PACKET_END: "pkt_end",
    RegType.PTR_TO_FLOW_KEYS: "flow_keys",
    RegType.PTR_TO_SOCKET: "sock",
    RegType.PTR_TO_SOCK_COMMON: "sock_common",
    RegType.PTR_TO_TCP_SOCK: "tcp_sock",
    RegType.PTR_TO_TP_BUFFER: "tp_buffer",
    RegType.PTR_TO_XDP_SOCK: "xdp_sock",
    RegType.PTR_TO_BTF_ID: "ptr_",
    RegType.PTR_TO_MEM: "mem",
    RegType.PTR_TO_ARENA: "arena",
    RegType.PTR_TO_BUF: "buf",
    RegType.PTR_TO_FUNC: "func",
    RegType.PTR_TO_MAP_KEY: "map_key",
    RegType.CONST_PTR_TO_DYNPTR: "dynptr_ptr",
}
_TYPE_STR_INT = {int(k): v for k, v in _TYPE_STR.items()}


def reg_type_str(t: int) -> str:
    """``reg_type_str``: the name of a register type with its flag prefixes/suffixes."""
    base = t & BASE_TYPE_MASK
    postfix = ""
    if t & TypeFlag.PTR_MAYBE_NULL:
        postfix = "or_null_" if base == RegType.PTR_TO_BTF_ID else "_or_null"
    prefix = ""
    if t & TypeFlag.MEM_RDONLY:
        prefix += "rdonly_"
    if t & TypeFlag.MEM_RINGBUF:
        prefix += "ringbuf_"
    if t & TypeFlag.MEM_USER:
        prefix += "user_"
    if t & TypeFlag.MEM_PERCPU:
        prefix += "percpu_"
    if t & TypeFlag.MEM_RCU:
        prefix += "rcu_"
    if t & TypeFlag.PTR_UNTRUSTED:
        prefix += "untrusted_"
    if t & TypeFlag.PTR_TRUSTED:
        prefix += "trusted_"
    return prefix + _TYPE_STR_INT.get(base, "?") + postfix


# -- registers and states ------------------------------------------------------------------------------

_PKT = (RegType.PTR_TO_PACKET, RegType.PTR_TO_PACKET_META)
_MAPLIKE = (RegType.CONST_PTR_TO_MAP, RegType.PTR_TO_MAP_KEY, RegType.PTR_TO_MAP_VALUE)


def _scalar_ranges(reg: RegState, out: list[str]) -> None:
    """``print_scalar_ranges``: merged ``smin=umin=...`` fields, omitting the unbounded ones."""
    def s32v(v: int) -> int:
        return v if -0x8000 <= v <= 0x7FFF else v & U32

    items = [
        ["smin", reg.smin_value, reg.smin_value == S64_MIN],
        ["smax", reg.smax_value, reg.smax_value == S64_MAX],
        ["umin", reg.umin_value, reg.umin_value == 0],
        ["umax", reg.umax_value, reg.umax_value == U64],
        ["smin32", s32v(reg.s32_min_value), reg.s32_min_value == S32_MIN],
        ["smax32", s32v(reg.s32_max_value), reg.s32_max_value == S32_MAX],
        ["umin32", reg.u32_min_value, reg.u32_min_value == 0],
        ["umax32", reg.u32_max_value, reg.u32_max_value == U32],
    ]
    for i, m1 in enumerate(items):
        if m1[2]:
            continue
        name1: str = m1[0]  # type: ignore[assignment]
        v1: int = m1[1]  # type: ignore[assignment]
        neg1 = name1[0] == "s" and v1 < 0
        text = name1 + "="
        for m2 in items[i + 2 :: 2]:
            v2: int = m2[1]  # type: ignore[assignment]
            if m2[2] or (v2 & U64) != (v1 & U64):
                continue
            neg2 = m2[0][0] == "s" and v2 < 0  # type: ignore[index]
            if neg2 != neg1:
                continue
            m2[2] = True
            text += f"{m2[0]}="
        text += _snum(v1) if name1[0] == "s" else _unum(v1)
        out.append(text)


def format_reg(reg: RegState, frameno: int = 0) -> str:
    """``print_reg_state``: the text after ``R1=``."""
    t = reg.type
    pre = ""
    if t == RegType.SCALAR_VALUE and reg.precise:
        pre = "P"
    if t == RegType.SCALAR_VALUE and reg.var_off.mask == 0:
        v = reg.var_off.value
        return pre + _snum(v - (1 << 64) if v >> 63 else v)
    text = pre + reg_type_str(t)
    base = t & BASE_TYPE_MASK
    if base == RegType.PTR_TO_ARENA:
        return text
    if t == RegType.PTR_TO_STACK:
        if frameno != reg.frameno:
            text += f"[{reg.frameno}]"
        if reg.var_off.mask == 0:
            v = reg.var_off.value
            v = v - (1 << 64) if v >> 63 else v
            return text + _snum(v + reg.off)
    if base == RegType.PTR_TO_BTF_ID:
        text += reg.btf_struct or ""
    parts: list[str] = []
    if reg.id:
        parts.append(f"id={reg.id & ~(1 << 31)}")
    if reg.id & (1 << 31):
        idpart = parts.pop() if parts else ""
        parts.append(f"{idpart}{reg.off:+d}")
    if reg.ref_obj_id:
        parts.append(f"ref_obj_id={reg.ref_obj_id}")
    if t & TypeFlag.NON_OWN_REF:
        parts.append("non_own_ref")
    if base in _MAPLIKE and reg.map_ptr is not None:
        m = reg.map_ptr
        if getattr(m, "name", ""):
            parts.append(f"map={m.name}")
        parts.append(f"ks={m.key_size},vs={m.value_size}")
    if t != RegType.SCALAR_VALUE and reg.off:
        parts.append("off=" + _snum(reg.off))
    if t in _PKT:
        parts.append("r=" + _unum(reg.range))
    if base == RegType.PTR_TO_MEM:
        parts.append("sz=" + _unum(reg.mem_size))
    if reg.var_off.mask == 0:
        if reg.var_off.value:
            v = reg.var_off.value
            parts.append("imm=" + _snum(v - (1 << 64) if v >> 63 else v))
    else:
        _scalar_ranges(reg, parts)
        if reg.var_off.mask != U64:
            parts.append("var_off=" + tnum_str(reg.var_off))
    return f"{text}({','.join(parts)})"


def _liveness(live: int, enabled: bool) -> str:
    if not enabled or not live & (REG_LIVE_READ | REG_LIVE_WRITTEN | REG_LIVE_DONE):
        return ""
    s = "_"
    if live & REG_LIVE_READ:
        s += "r"
    if live & REG_LIVE_WRITTEN:
        s += "w"
    if live & REG_LIVE_DONE:
        s += "D"
    return s


_SLOT_CHAR = "?rm0di"


def format_state(
    state: FuncState,
    *,
    print_all: bool,
    scratched_regs: int = -1,
    scratched_stack: int = -1,
    liveness: bool = True,
    refs: tuple[int, ...] = (),
) -> str:
    """``print_verifier_state``: `` frame1: R1=... fp-8=...`` plus ``\\n``."""
    out: list[str] = []
    if state.frameno:
        out.append(f" frame{state.frameno}:")
    for i, reg in enumerate(state.regs):
        if reg.type == RegType.NOT_INIT:
            continue
        if not print_all and not (scratched_regs >> i) & 1:
            continue
        out.append(f" R{i}{_liveness(reg.live, liveness)}={format_reg(reg, state.frameno)}")
    for i, slot in enumerate(state.stack):
        if not print_all and not (scratched_stack >> i) & 1:
            continue
        types = slot.slot_type
        if all(t == 0 for t in types):
            continue
        buf = "".join(_SLOT_CHAR[t] for t in types)
        reg = slot.spilled_ptr
        off = (-i - 1) * 8
        last = types[7]
        if last == 1:  # STACK_SPILL
            j = 0
            while j < 8 and types[j] != 1:
                j += 1
            out.append(f" fp{off}{_liveness(reg.live, liveness)}={buf[:j]}{format_reg(reg, state.frameno)}")
        elif last == 5:  # STACK_ITER
            continue
        else:
            out.append(f" fp{off}{_liveness(reg.live, liveness)}={buf}")
    if refs:
        out.append(" refs=" + ",".join(str(r) for r in refs))
    if state.in_callback_fn:
        out.append(" cb")
    if state.in_async_callback_fn:
        out.append(" async_cb")
    out.append("\n")
    return "".join(out)


def insn_state_prefix(insn_print_len: int) -> str:
    """``print_insn_state``'s padding after an instruction line of ``insn_print_len`` characters
    (newline included): ``%*c;``."""
    pos = insn_print_len
    width = -(-max(pos + BPF_LOG_MIN_ALIGNMENT // 2, BPF_LOG_ALIGNMENT) // BPF_LOG_MIN_ALIGNMENT)
    width = width * BPF_LOG_MIN_ALIGNMENT - pos - 1
    return " " * max(width, 1) + ";"


# -- instructions --------------------------------------------------------------------------------------

_ALU = {0x00: "+=", 0x10: "-=", 0x20: "*=", 0x30: "/=", 0x40: "|=", 0x50: "&=", 0x60: "<<=", 0x70: ">>=",
        0x80: "neg", 0x90: "%=", 0xA0: "^=", 0xB0: "=", 0xC0: "s>>=", 0xD0: "endian"}
_ALU_SIGN = {0x30: "s/=", 0x90: "s%="}
_MOVSX = {8: "(s8)", 16: "(s16)", 32: "(s32)"}
_ATOMIC_ALU = {0x00: "add", 0x50: "and", 0x40: "or", 0xA0: "xor"}
_LDST = {0x00: "u32", 0x08: "u16", 0x10: "u8", 0x18: "u64"}
_LDSX = {0x00: "s32", 0x08: "s16", 0x10: "s8"}
_JMP = {0x00: "jmp", 0x10: "==", 0x20: ">", 0xA0: "<", 0x30: ">=", 0xB0: "<=", 0x40: "&", 0x50: "!=",
        0x60: "s>", 0xC0: "s<", 0x70: "s>=", 0xD0: "s<=", 0x80: "call", 0x90: "exit"}
_CLASS = ("ld", "ldx", "st", "stx", "alu", "jmp", "jmp32", "alu64")


def _s32(v: int) -> int:
    v &= U32
    return v - (1 << 32) if v >> 31 else v


def format_insn(
    insn: Insn,
    *,
    allow_ptr_leaks: bool = True,
    imm64: Callable[[Insn], int] | None = None,
    call_name: Callable[[Insn], str | None] | None = None,
) -> str:
    """``print_bpf_insn``: one instruction in the kernel's dialect, with a trailing newline.

    ``imm64`` gives the value an lddw prints (the kernel prints the map's address there);
    ``call_name`` names calls the helper table does not know (internal functions, kfuncs).
    """
    code = insn.code
    cls = code & 7
    op = code & 0xF0
    dst, src, off = insn.dst, insn.src, insn.off
    imm = _s32(insn.imm) if code != 0x18 else insn.imm
    if cls in (4, 7):
        r = "w" if cls == 4 else "r"
        if op == 0xD0:
            if cls == 7:
                return f"({code:02x}) r{dst} = bswap{imm} r{dst}\n"
            return f"({code:02x}) r{dst} = {'be' if code & 8 else 'le'}{imm} r{dst}\n"
        if op == 0x80:
            return f"({code:02x}) {r}{dst} = -{r}{dst}\n"
        if code == 0xBF and off == 1:
            return f"({code:02x}) r{dst} = addr_space_cast(r{src}, {(imm & U32) >> 16}, {imm & 0xFFFF})\n"
        if code == 0xBF and off == -1:
            return f"({code:02x}) r{dst} = &(void __percpu *)(r{src})\n"
        opstr = _ALU_SIGN[op] if op in (0x30, 0x90) and off == 1 else _ALU.get(op, "?")
        if code & 8:
            sx = _MOVSX.get(off, "") if op == 0xB0 else ""
            return f"({code:02x}) {r}{dst} {opstr} {sx}{r}{src}\n"
        return f"({code:02x}) {r}{dst} {opstr} {imm}\n"
    if cls == 3:
        mode = code & 0xE0
        size = _LDST.get(code & 0x18, "?")
        if mode == 0x60:
            return f"({code:02x}) *({size} *)(r{dst} {off:+d}) = r{src}\n"
        if mode == 0xC0:
            aop = imm & 0xFF if imm >= 0 else imm
            if imm in (0x00, 0x50, 0x40, 0xA0):
                return f"({code:02x}) lock *({size} *)(r{dst} {off:+d}) {_ALU[imm]} r{src}\n"
            if imm in (0x01, 0x51, 0x41, 0xA1):
                bits = "64" if code & 0x18 == 0x18 else ""
                return (f"({code:02x}) r{src} = atomic{bits}_fetch_{_ATOMIC_ALU[imm & 0xF0]}"
                        f"(({size} *)(r{dst} {off:+d}), r{src})\n")
            if imm == 0xF1:
                bits = "64" if code & 0x18 == 0x18 else ""
                return f"({code:02x}) r0 = atomic{bits}_cmpxchg(({size} *)(r{dst} {off:+d}), r0, r{src})\n"
            if imm == 0xE1:
                bits = "64" if code & 0x18 == 0x18 else ""
                return f"({code:02x}) r{src} = atomic{bits}_xchg(({size} *)(r{dst} {off:+d}), r{src})\n"
            del aop
        return f"BUG_{code:02x}\n"
    if cls == 2:
        mode = code & 0xE0
        if mode == 0x60:
            return f"({code:02x}) *({_LDST.get(code & 0x18, '?')} *)(r{dst} {off:+d}) = {imm}\n"
        if mode == 0xC0:
            return f"({code:02x}) nospec\n"
        return f"BUG_st_{code:02x}\n"
    if cls == 1:
        mode = code & 0xE0
        if mode not in (0x60, 0x80):
            return f"BUG_ldx_{code:02x}\n"
        size = _LDST.get(code & 0x18, "?") if mode == 0x60 else _LDSX.get(code & 0x18, "?")
        return f"({code:02x}) r{dst} = *({size} *)(r{src} {off:+d})\n"
    if cls == 0:
        mode = code & 0xE0
        if mode == 0x20:
            return f"({code:02x}) r0 = *({_LDST.get(code & 0x18, '?')} *)skb[{imm}]\n"
        if mode == 0x40:
            return f"({code:02x}) r0 = *({_LDST.get(code & 0x18, '?')} *)skb[r{src} + {imm}]\n"
        if code == 0x18:
            value = imm64(insn) if imm64 is not None else insn.imm & U64
            if src in (1, 2, 3, 5, 6) and not allow_ptr_leaks:
                value = 0
            return f"({code:02x}) r{dst} = {value & U64:#x}\n" if value else f"({code:02x}) r{dst} = 0x0\n"
        return f"BUG_ld_{code:02x}\n"
    # JMP / JMP32
    if op == 0x80:
        if src == 1:
            return f"({code:02x}) call pc{imm:+d}\n"
        name = None
        if src == 0 and imm >= 0:
            n = helper_name(imm)
            name = n if n != "unknown" else None
        if name is None and call_name is not None:
            name = call_name(insn)
        if name is None:
            name = "kernel-function" if src == 2 else "unknown"
        return f"({code:02x}) call {name}#{imm}\n"
    if code == 0x05:
        return f"({code:02x}) goto pc{off:+d}\n"
    if code == 0xE5 and src == 0:
        return f"({code:02x}) may_goto pc{off:+d}\n"
    if code == 0x06:
        return f"({code:02x}) gotol pc{imm:+d}\n"
    if code == 0x95:
        return f"({code:02x}) exit\n"
    r = "w" if cls == 6 else "r"
    if code & 8:
        return f"({code:02x}) if {r}{dst} {_JMP.get(op, '?')} {r}{src} goto pc{off:+d}\n"
    if op in _JMP:
        return f"({code:02x}) if {r}{dst} {_JMP[op]} {imm & U32:#x} goto pc{off:+d}\n"
    return f"({code:02x}) {_CLASS[cls]}\n"
