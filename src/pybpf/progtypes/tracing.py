"""Tracing program types whose context is plain, read-only memory: KPROBE (``struct pt_regs``),
TRACEPOINT (the tracepoint's record), RAW_TRACEPOINT (``u64 args[12]``), PERF_EVENT.

No context conversion: programs read the runtime context exactly as declared (the runtime layout
equals the user-visible one). Rules from ``kernel/trace/bpf_trace.c``: ``kprobe_prog_is_valid_access``,
``tp_prog_is_valid_access`` (the first 8 bytes — the common trace-entry header — are off limits,
records up to ``PERF_MAX_TRACE_SIZE``), ``raw_tp_prog_is_valid_access`` (``bpf_tracing_ctx_access``:
``MAX_BPF_FUNC_ARGS`` u64 arguments), ``pe_prog_is_valid_access``.
"""

from __future__ import annotations

from pybpf.progtypes.context import (
    AccessAux,
    CtxField,
    CtxStruct,
    ProgInfo,
    ProgTypeDescriptor,
    RetvalRange,
    RuntimeField,
    RuntimeLayout,
    narrow_access_ok,
)
from pybpf.progtypes.protos import func_proto_switch
from pybpf.progtypes.types import AccessType, RegType
from pybpf.uapi import AttachType, ProgType

__all__ = ["KPROBE", "MAX_BPF_FUNC_ARGS", "PERF_EVENT", "PERF_MAX_TRACE_SIZE", "PT_REGS", "RAW_TRACEPOINT",
           "RAW_TRACEPOINT_WRITABLE",
           "TRACEPOINT"]

PERF_MAX_TRACE_SIZE = 8192
MAX_BPF_FUNC_ARGS = 12

_PT_REGS_NAMES = ("r15", "r14", "r13", "r12", "bp", "bx", "r11", "r10", "r9", "r8", "ax", "cx", "dx", "si",
                  "di", "orig_ax", "ip", "cs", "flags", "sp", "ss")
PT_REGS = CtxStruct("pt_regs", 8 * len(_PT_REGS_NAMES),
                    tuple(CtxField(n, 8 * i, 8) for i, n in enumerate(_PT_REGS_NAMES)))
"""x86-64 ``struct pt_regs`` (168 bytes): what a kprobe program's R1 points to."""

RAW_TP_ARGS = CtxStruct("bpf_raw_tracepoint_args", 8 * MAX_BPF_FUNC_ARGS,
                        (CtxField("args", 0, 8, MAX_BPF_FUNC_ARGS),))
TRACE_RECORD = CtxStruct("trace_entry_record", PERF_MAX_TRACE_SIZE,
                         (CtxField("common", 0, 8), CtxField("fields", 8, 1, PERF_MAX_TRACE_SIZE - 8)))
PERF_EVENT_DATA = CtxStruct("bpf_perf_event_data", 168 + 16,
                            (CtxField("regs", 0, 168), CtxField("sample_period", 168, 8),
                             CtxField("addr", 176, 8)))


def _plain(ctx: CtxStruct) -> RuntimeLayout:
    return RuntimeLayout(ctx.name, ctx.size, {f.name: RuntimeField(f.name, f.offset, f.size * f.count)
                                              for f in ctx.fields})


def kprobe_prog_is_valid_access(off: int, size: int, type: AccessType, prog: ProgInfo, aux: AccessAux) -> bool:
    if off < 0 or off >= PT_REGS.size:
        return False
    if type != AccessType.READ:
        return False
    if off % size != 0:
        return False
    return off + size <= PT_REGS.size


def tp_prog_is_valid_access(off: int, size: int, type: AccessType, prog: ProgInfo, aux: AccessAux) -> bool:
    if off < 8 or off >= PERF_MAX_TRACE_SIZE:
        return False
    if type != AccessType.READ:
        return False
    return off % size == 0


def raw_tp_prog_is_valid_access(off: int, size: int, type: AccessType, prog: ProgInfo, aux: AccessAux) -> bool:
    if off < 0 or off >= 8 * MAX_BPF_FUNC_ARGS:
        return False
    if type != AccessType.READ:
        return False
    return off % size == 0


def pe_prog_is_valid_access(off: int, size: int, type: AccessType, prog: ProgInfo, aux: AccessAux) -> bool:
    if off < 0 or off >= PERF_EVENT_DATA.size:
        return False
    if type != AccessType.READ:
        return False
    if off % size != 0:
        return False
    if off in (168, 176):
        aux.ctx_field_size = 8
        return narrow_access_ok(off, size, 8)
    return size == 8


def _kprobe_range(prog: ProgInfo) -> RetvalRange | None:
    if prog.expected_attach_type == AttachType.TRACE_KPROBE_SESSION:
        return RetvalRange(0, 1)
    return None


def _raw_tp_range(prog: ProgInfo) -> RetvalRange | None:
    return RetvalRange(0, 0) if prog.attach_btf_id else None


KPROBE = ProgTypeDescriptor(
    prog_type=int(ProgType.KPROBE), name="kprobe", ctx=PT_REGS, runtime=_plain(PT_REGS),
    is_valid_access=kprobe_prog_is_valid_access, func_proto=func_proto_switch("kprobe_prog_func_proto"),
    return_range=_kprobe_range, test_run="", ctx_btf_name="pt_regs", ctx_convert=False,
)
TRACEPOINT = ProgTypeDescriptor(
    prog_type=int(ProgType.TRACEPOINT), name="tracepoint", ctx=TRACE_RECORD, runtime=_plain(TRACE_RECORD),
    is_valid_access=tp_prog_is_valid_access, func_proto=func_proto_switch("tp_prog_func_proto"),
    test_run="", ctx_btf_name="", ctx_convert=False,
)
RAW_TRACEPOINT = ProgTypeDescriptor(
    prog_type=int(ProgType.RAW_TRACEPOINT), name="raw_tracepoint", ctx=RAW_TP_ARGS, runtime=_plain(RAW_TP_ARGS),
    is_valid_access=raw_tp_prog_is_valid_access, func_proto=func_proto_switch("raw_tp_prog_func_proto"),
    return_range=_raw_tp_range, test_run="raw_tp", ctx_btf_name="bpf_raw_tracepoint_args", ctx_convert=False,
)
PERF_EVENT = ProgTypeDescriptor(
    prog_type=int(ProgType.PERF_EVENT), name="perf_event", ctx=PERF_EVENT_DATA, runtime=_plain(PERF_EVENT_DATA),
    is_valid_access=pe_prog_is_valid_access, func_proto=func_proto_switch("pe_prog_func_proto"),
    test_run="", ctx_btf_name="bpf_perf_event_data",
)


def raw_tp_writable_prog_is_valid_access(off: int, size: int, type: AccessType, prog: ProgInfo,
                                         aux: AccessAux) -> bool:
    if off == 0:
        if size != 8 or type != AccessType.READ:
            return False
        aux.reg_type = RegType.PTR_TO_TP_BUFFER
    return raw_tp_prog_is_valid_access(off, size, type, prog, aux)


RAW_TRACEPOINT_WRITABLE = ProgTypeDescriptor(
    prog_type=int(ProgType.RAW_TRACEPOINT_WRITABLE), name="raw_tracepoint_writable", ctx=RAW_TP_ARGS,
    runtime=_plain(RAW_TP_ARGS), is_valid_access=raw_tp_writable_prog_is_valid_access,
    func_proto=func_proto_switch("raw_tp_prog_func_proto"), test_run="",
    ctx_btf_name="bpf_raw_tracepoint_args", ctx_convert=False,
)
