"""The batch runner: many packets, one native call; contexts built from the progtypes layout."""

from __future__ import annotations

import struct
from typing import Any

import pytest

from pybpf.errors import HelperError
from pybpf.isa import Insn, Insns
from pybpf.jit import HelperEntry, JitProgram, NativeBuffer, NativeStub, PythonHelper, compile_program
from pybpf.jit.batch import PacketContextLayout, emit_batch_driver
from pybpf.jit.runtime import BatchRunner
from pybpf.jit.x86 import encoder as x
from pybpf.progtypes import descriptor
from pybpf.uapi import ProgType

XDP = descriptor(ProgType.XDP).runtime
F = XDP.fields
LAYOUT = PacketContextLayout.from_runtime(XDP)


def first_byte_program() -> Insns:
    """r0 = len < 2 ? 0 : data[0] + (data[1] << 8) + (len << 16)  — reads the runtime context."""
    return Insns([
        Insn(0x79, 2, 1, F["data"].offset),  # r2 = ctx->data
        Insn(0x79, 3, 1, F["data_end"].offset),  # r3 = ctx->data_end
        Insn(0xBF, 4, 2),  # r4 = r2
        Insn(0x07, 4, imm=2),  # r4 += 2
        Insn(0xB7, 0, imm=0),  # r0 = 0
        Insn(0x2D, 4, 3, 7),  # if r4 > r3 goto exit
        Insn(0x71, 0, 2, 0),  # r0 = *(u8 *)(r2 +0)
        Insn(0x71, 5, 2, 1),  # r5 = *(u8 *)(r2 +1)
        Insn(0x67, 5, imm=8),  # r5 <<= 8
        Insn(0x0F, 0, 5),  # r0 += r5
        Insn(0x1F, 3, 2),  # r3 -= r2   (length)
        Insn(0x67, 3, imm=16),  # r3 <<= 16
        Insn(0x0F, 0, 3),  # r0 += r3
        Insn(0x95),
    ])


def packets(sizes: list[int], headroom: int = 256) -> tuple[NativeBuffer, list[int], list[int]]:
    blob = bytearray()
    offsets = []
    for i, n in enumerate(sizes):
        blob += bytes(headroom)
        offsets.append(len(blob))
        blob += bytes((i * 7 + j) & 0xFF for j in range(n))
    return NativeBuffer(bytes(blob)), offsets, sizes


def expected(buf: bytes, off: int, n: int) -> int:
    return 0 if n < 2 else buf[off] + (buf[off + 1] << 8) + (n << 16)


def test_layout_comes_from_progtypes() -> None:
    assert (LAYOUT.data, LAYOUT.data_end, LAYOUT.data_meta, LAYOUT.data_hard_start, LAYOUT.size) == (
        F["data"].offset, F["data_end"].offset, F["data_meta"].offset, F["data_hard_start"].offset, XDP.size)
    assert emit_batch_driver(LAYOUT).code  # pure bytes


def test_one_call_runs_every_packet() -> None:
    sizes = [0, 1, 2, 60, 64, 1500, 9, 2]
    buf, offs, lens = packets(sizes)
    with JitProgram(compile_program(first_byte_program(), verified=True)) as prog:
        runner = BatchRunner(prog, XDP)
        runner.ctx.write(struct.pack("<I", 3), F["ingress_ifindex"].offset)
        res = runner.run(buf, offs, lens, headroom=256)
        data = buf.read()
        assert res.verdicts == [expected(data, o, n) for o, n in zip(offs, lens, strict=True)]
        assert res.starts == offs and res.lengths == lens
        # the context the driver built for the last packet, from the layout
        ctx = runner.ctx.read()
        got = {name: int.from_bytes(ctx[f.offset:f.offset + f.size], "little") for name, f in F.items()}
        assert got["data"] == buf.address + offs[-1] == got["data_meta"]
        assert got["data_end"] == got["data"] + lens[-1]
        assert got["data_hard_start"] == got["data"] - 256
        assert got["ingress_ifindex"] == 3  # scalar fields are the caller's


def test_repeat_reuses_one_context_and_sees_its_own_changes() -> None:
    """A native adjust_head stand-in moves ctx->data by r2: in repeat mode the moves accumulate, in
    batch mode every packet starts fresh."""

    def emit(buf: Any) -> None:  # ctx->data += delta; return 0
        buf.emit(x.alu_rm(x.AluOp.ADD, x.RSI, x.Mem(x.RDI, LAYOUT.data)))
        buf.emit(x.mov_store(x.Mem(x.RDI, LAYOUT.data), x.RSI))
        buf.emit(x.alu_rr(x.AluOp.XOR, x.RAX, x.RAX, 32))
        buf.emit(x.ret())

    helpers = {44: HelperEntry("adjust_head", NativeStub(emit))}
    prog_insns = Insns([Insn(0xBF, 6, 1), Insn(0xB7, 2, imm=2), Insn(0x85, imm=44),
                        Insn(0x79, 0, 6, F["data"].offset), Insn(0x79, 1, 6, F["data_end"].offset),
                        Insn(0x1F, 1, 0), Insn(0xBF, 0, 1), Insn(0x95)])  # r0 = data_end - data
    buf, offs, lens = packets([100, 100])
    with JitProgram(compile_program(prog_insns, helpers=helpers, verified=True), helpers=helpers) as prog:
        runner = BatchRunner(prog, XDP)
        res, ns = runner.repeat(buf, offs[0], 100, 10, headroom=256)
        assert res.verdicts == [80] and res.starts == [offs[0] + 20] and res.lengths == [80]
        assert ns > 0
        res = runner.run(buf, offs, lens, headroom=256)
        assert res.verdicts == [98, 98] and res.starts == [o + 2 for o in offs]


def test_a_raising_helper_stops_the_batch_with_its_error() -> None:
    calls = []

    def helper(*args: int) -> int:
        calls.append(args)
        if len(calls) == 3:
            raise ValueError("third packet")
        return 0

    helpers = {5: HelperEntry("h", PythonHelper(helper))}
    prog = Insns([Insn(0x85, imm=5), Insn(0xB7, 0, imm=2), Insn(0x95)])
    buf, offs, lens = packets([10] * 5)
    with (JitProgram(compile_program(prog, helpers=helpers, verified=True), helpers=helpers) as p,
          pytest.raises(HelperError, match="third packet")):
        BatchRunner(p, XDP).run(buf, offs, lens)
    assert len(calls) == 3


def test_program_exit_gives_a_verdict_and_the_batch_goes_on() -> None:
    class Stop(Exception):
        def __init__(self, value: int) -> None:
            self.value = value

    n = [0]

    def helper(*_: int) -> int:
        n[0] += 1
        if n[0] == 2:
            raise Stop(7)
        return 0

    helpers = {5: HelperEntry("h", PythonHelper(helper))}
    prog = Insns([Insn(0x85, imm=5), Insn(0xB7, 0, imm=2), Insn(0x95)])
    buf, offs, lens = packets([10] * 4)
    image = compile_program(prog, helpers=helpers, verified=True)
    with JitProgram(image, helpers=helpers, exit_exceptions=(Stop,)) as p:
        res = BatchRunner(p, XDP).run(buf, offs, lens)
    assert res.verdicts == [2, 7, 2, 2] and res.lengths == lens


def test_packets_outside_the_buffer_are_refused() -> None:
    buf, offs, _ = packets([10])
    with JitProgram(compile_program(first_byte_program(), verified=True)) as prog:
        runner = BatchRunner(prog, XDP)
        with pytest.raises(ValueError, match="outside the buffer"):
            runner.run(buf, [offs[0]], [buf.size])
        with pytest.raises(ValueError, match="outside the buffer"):
            runner.repeat(buf, 0, 10, 5, headroom=256)
        assert runner.run(buf, [], []).verdicts == []
