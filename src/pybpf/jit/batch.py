"""The batch driver: native code that runs a JIT'ed packet program over many packets in one call.

Why: one ctypes call costs hundreds of nanoseconds, more than a small XDP program takes to run. The
driver is a System V function ``u64 driver(BatchArgs *args, RunState *state)`` that loops in native
code: for each packet it stores the packet pointers into the program's runtime context (offsets from
the program type's runtime layout, contract 4 — never hard-coded here), calls the program's entry,
and records the verdict and where the packet starts and ends afterwards (``bpf_xdp_adjust_head`` /
``_tail`` move them). It returns how many runs completed; a run that stops the program early (a
helper raised, a checked-mode fault: the run state's status is set) ends the batch there.

Two modes, chosen by ``stride``: 1 = packet ``i`` is entry ``i`` of the offset/length arrays, and the
context is rebuilt before every run (a pcap or a hook's batch); 0 = every run uses entry 0 and the
context is built once, so what one run changes the next one sees (``BPF_PROG_TEST_RUN`` with
``repeat``, which reruns on the same ``xdp_buff`` in the kernel). Scalar context fields (ifindex,
queue, an skb's length and protocol...) are the caller's: it fills them in the context block once,
or — when they differ from packet to packet — gives one context image per packet (``CTX_IN``,
``layout.size`` bytes each) that the driver copies into the block before building that packet's
pointers; ``CTX_OUT`` receives the block after each run (what the program wrote to ``mark``,
``cb``..., and where ``data_meta`` ended up). ``META`` bytes in front of each packet are metadata:
``data_meta = data - META`` (0: no metadata, ``data_meta = data``).

Pure: this module produces bytes; :class:`pybpf.jit.runtime.BatchRunner` makes them executable.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from pybpf.jit.compile import RunStateField
from pybpf.jit.x86 import encoder as x
from pybpf.jit.x86.codebuf import CodeBuffer
from pybpf.jit.x86.encoder import Cond, Mem

__all__ = ["BatchArg", "DriverImage", "PacketContextLayout", "emit_batch_driver"]


class BatchArg(IntEnum):
    """Byte offsets in the ``BatchArgs`` block (every field a u64)."""

    COUNT = 0  # runs to do (the loop ends at index COUNT)
    START = 8  # first run's index (to resume after a run that stopped early)
    STRIDE = 16  # 1: packet i is entry i; 0: every run uses entry 0 (repeat)
    PROG_ENTRY = 24  # the program's entry address (JitProgram.entry_address)
    CTX = 32  # address of the runtime context block (layout.size bytes)
    BASE = 40  # address the packet offsets count from
    HEADROOM = 48  # bytes before each packet's data (data_hard_start = data - HEADROOM)
    OFFSETS = 56  # u32[]: where each packet's data starts, from BASE
    LENGTHS = 64  # u32[]: each packet's length
    VERDICTS = 72  # u32[] out: r0 of each run
    OUT_STARTS = 80  # u32[] out: data - BASE after the run
    OUT_LENGTHS = 88  # u32[] out: data_end - data after the run
    META = 96  # bytes of metadata in front of each packet's data (data_meta = data - META)
    CTX_IN = 104  # 0, or per-packet context images (layout.size bytes each) copied in before each run
    CTX_OUT = 112  # 0, or where the context block is copied after each run (layout.size bytes each)
    SIZE = 120


@dataclass(frozen=True, slots=True)
class PacketContextLayout:
    """Where a runtime context keeps its packet pointers (u64 addresses); ``None``: no such field."""

    name: str
    size: int
    data: int
    data_end: int
    data_meta: int | None = None
    data_hard_start: int | None = None

    @classmethod
    def from_runtime(cls, layout: Any) -> PacketContextLayout:
        """From a progtypes ``RuntimeLayout`` (``.name``, ``.size``, ``.fields[name].offset/size``)."""
        fields = layout.fields

        def off(name: str, required: bool = False) -> int | None:
            f = fields.get(name)
            if f is None:
                if required:
                    raise ValueError(f"runtime layout {layout.name} has no {name} field")
                return None
            if f.size != 8:
                raise ValueError(f"runtime layout {layout.name}: {name} is not a 64-bit pointer")
            return int(f.offset)

        data, data_end = off("data", True), off("data_end", True)
        assert data is not None and data_end is not None
        return cls(layout.name, int(layout.size), data, data_end, off("data_meta"), off("data_hard_start"))


@dataclass(frozen=True, slots=True)
class DriverImage:
    """The driver's code; ``entry`` is its offset (0)."""

    code: bytes
    entry: int
    layout: PacketContextLayout


def emit_batch_driver(layout: PacketContextLayout) -> DriverImage:
    """The driver for programs whose context has ``layout`` (see the module docstring)."""
    buf = CodeBuffer()
    e = buf.emit
    args, state, i, ctx, k = x.R15, x.R14, x.R13, x.R12, x.RBX
    rax, rcx, rdx = x.RAX, x.RCX, x.RDX

    def arg(a: BatchArg) -> Mem:
        return Mem(args, int(a))

    def copy_ctx(field: BatchArg, into_block: bool) -> None:
        """Copy entry k's context image (``field``: CTX_IN / CTX_OUT) into / out of the block."""
        skip = buf.new_label()
        e(x.mov_load(rax, arg(field)))
        e(x.test_rr(rax, rax))
        buf.jcc(Cond.E, skip)
        e(x.imul_rri(rcx, k, layout.size))
        e(x.alu_rr(x.AluOp.ADD, rax, rcx))
        e(x.mov_rr(x.RSI, rax) if into_block else x.mov_rr(x.RSI, ctx))
        e(x.mov_rr(x.RDI, ctx) if into_block else x.mov_rr(x.RDI, rax))
        e(x.mov_ri(rcx, layout.size))
        e(x.rep_movsb())
        buf.label(skip)

    def build_ctx() -> None:
        """ctx pointers of entry k (rbx)."""
        e(x.mov_load(rax, arg(BatchArg.OFFSETS)))
        e(x.mov_load(rax, Mem(rax, 0, k, 4), 32))  # zero-extends
        e(x.alu_rm(x.AluOp.ADD, rax, arg(BatchArg.BASE)))
        e(x.mov_store(Mem(ctx, layout.data), rax))
        if layout.data_meta is not None:
            e(x.mov_rr(rcx, rax))
            e(x.alu_rm(x.AluOp.SUB, rcx, arg(BatchArg.META)))
            e(x.mov_store(Mem(ctx, layout.data_meta), rcx))
        if layout.data_hard_start is not None:
            e(x.mov_rr(rcx, rax))
            e(x.alu_rm(x.AluOp.SUB, rcx, arg(BatchArg.HEADROOM)))
            e(x.mov_store(Mem(ctx, layout.data_hard_start), rcx))
        e(x.mov_load(rcx, arg(BatchArg.LENGTHS)))
        e(x.mov_load(rcx, Mem(rcx, 0, k, 4), 32))
        e(x.alu_rr(x.AluOp.ADD, rcx, rax))
        e(x.mov_store(Mem(ctx, layout.data_end), rcx))

    loop, built, done = buf.new_label(), buf.new_label(), buf.new_label()
    for r in (x.RBX, x.RBP, x.R12, x.R13, x.R14, x.R15):
        e(x.push(r))
    e(x.alu_ri(x.AluOp.SUB, x.RSP, 8))  # 16-byte alignment at the calls
    e(x.mov_rr(args, x.RDI))
    e(x.mov_rr(state, x.RSI))
    e(x.mov_load(i, arg(BatchArg.START)))
    e(x.mov_load(ctx, arg(BatchArg.CTX)))
    e(x.alu_ri(x.AluOp.CMP, arg(BatchArg.STRIDE), 0))
    buf.jcc(Cond.NE, loop)
    e(x.alu_rr(x.AluOp.XOR, k, k, 32))  # repeat mode: build the context once, from entry 0
    build_ctx()
    buf.label(loop)
    e(x.alu_rm(x.AluOp.CMP, i, arg(BatchArg.COUNT)))
    buf.jcc(Cond.AE, done)
    e(x.mov_rr(k, i))
    e(x.imul_rr(k, arg(BatchArg.STRIDE)))  # k = i * stride: the array entry of this run
    e(x.alu_ri(x.AluOp.CMP, arg(BatchArg.STRIDE), 0))
    buf.jcc(Cond.E, built)
    copy_ctx(BatchArg.CTX_IN, True)
    build_ctx()
    buf.label(built)
    e(x.mov_rr(x.RDI, ctx))
    e(x.alu_rr(x.AluOp.XOR, x.RSI, x.RSI, 32))
    e(x.mov_rr(rdx, state))
    e(x.call_mem(arg(BatchArg.PROG_ENTRY)))
    e(x.mov_load(rcx, arg(BatchArg.VERDICTS)))
    e(x.mov_store(Mem(rcx, 0, k, 4), rax, 32))
    e(x.alu_ri(x.AluOp.CMP, Mem(state, int(RunStateField.STATUS)), 0))
    buf.jcc(Cond.NE, done)  # the run stopped early: report it as not completed
    e(x.mov_load(rax, Mem(ctx, layout.data)))
    e(x.mov_load(rcx, Mem(ctx, layout.data_end)))
    e(x.alu_rr(x.AluOp.SUB, rcx, rax))
    e(x.alu_rm(x.AluOp.SUB, rax, arg(BatchArg.BASE)))
    e(x.mov_load(rdx, arg(BatchArg.OUT_STARTS)))
    e(x.mov_store(Mem(rdx, 0, k, 4), rax, 32))
    e(x.mov_load(rdx, arg(BatchArg.OUT_LENGTHS)))
    e(x.mov_store(Mem(rdx, 0, k, 4), rcx, 32))
    copy_ctx(BatchArg.CTX_OUT, False)
    e(x.alu_ri(x.AluOp.ADD, i, 1))
    buf.jmp(loop)
    buf.label(done)
    e(x.mov_rr(rax, i))
    e(x.alu_ri(x.AluOp.ADD, x.RSP, 8))
    for r in (x.R15, x.R14, x.R13, x.R12, x.RBP, x.RBX):
        e(x.pop(r))
    e(x.ret())
    return DriverImage(buf.assemble().code, 0, layout)
