"""``pybpf.jit.prepare``: a loaded program with its maps and the kernel layer's vm-style helpers,
run natively — sharing map memory with the interpreter."""

from __future__ import annotations

import ctypes
import struct
from dataclasses import dataclass, field
from typing import Any

import pytest

from pybpf.errors import JitError
from pybpf.isa import Insn, Insns
from pybpf.isa.asm import assemble
from pybpf.jit import JitProgram, NativeBuffer, prepare
from pybpf.vm import Interpreter
from pybpf.vm.helpers import ProgramExit

VALUE_AREA = 312


class ArrayStandIn:
    """A one-element u32 array map in native memory, shaped like the kernel's (values at 312)."""

    def __init__(self) -> None:
        self.native = NativeBuffer(VALUE_AREA + 8)
        self.mem = (ctypes.c_char * self.native.size).from_address(self.native.address)  # the vm's view
        self.name = "pkt_counter"

    @property
    def address(self) -> int:
        return self.native.address

    def direct_value_addr(self, off: int) -> int:
        return VALUE_AREA + off

    def counter(self) -> int:
        return struct.unpack_from("<I", self.native.read(), VALUE_AREA)[0]


def lookup(ctx: Any, map_ptr: int, key_ptr: int, *_: int) -> int:
    """bpf_map_lookup_elem for the stand-in, written once for both engines."""
    key = ctx.load(key_ptr, 4)
    return map_ptr + VALUE_AREA + 4 * key if key < 1 else 0


@dataclass
class LoadedProgram:
    insns: Insns
    used_maps: dict[int, Any] = field(default_factory=dict)


DEMO = """
    r1 = 0
    *(u32 *)(r10 -4) = r1
    r2 = r10
    r2 += -4
    r1 = map[id:1]
    call bpf_map_lookup_elem#1
    r1 = 1
    if r0 == 0x0 goto pc+2
    lock *(u32 *)(r0 +0) += r1
    r1 = 2
    r0 = r1
    exit
"""


def test_seed_demo_before_inlining_counts_in_shared_map_memory() -> None:
    counter = ArrayStandIn()
    prog = LoadedProgram(assemble(DEMO), {1: counter})
    with prepare(prog, helpers={1: lookup}) as jit:
        assert {jit.run(0, env="env") for _ in range(10)} == {2}
    assert counter.counter() == 10
    interp = Interpreter(prog.insns, maps=prog.used_maps, helpers={1: lookup})
    assert {interp.run(0) for _ in range(5)} == {2}
    assert counter.counter() == 15  # the very same bytes


def test_map_value_loads_resolve_through_direct_value_addr() -> None:
    counter = ArrayStandIn()
    prog = LoadedProgram(Insns([Insn(0x18, 1, 2, imm=1 | (0 << 32)), Insn(0x62, 1, 0, 0, 77), Insn(0xB7, 0),
                                Insn(0x95)]), {1: counter})
    with prepare(prog) as jit:
        jit.run()
    assert counter.counter() == 77


def test_vm_program_exit_stops_the_program() -> None:
    def stop(ctx: Any, *_: int) -> int:
        raise ProgramExit(9)

    prog = assemble("call bpf_map_lookup_elem#1\nr0 = 1\nexit")
    with prepare(prog, helpers={1: stop}, exit_exceptions=(ProgramExit,)) as jit:
        assert isinstance(jit, JitProgram)
        assert jit.run() == 9


def test_unknown_maps_are_reported() -> None:
    prog = LoadedProgram(assemble("r1 = map[id:4]\nr0 = 0\nexit"))
    with pytest.raises(JitError, match="no map with id 4"):
        prepare(prog)

    class NoStorage:
        address = None

    with pytest.raises(JitError, match="no native storage"):
        prepare(LoadedProgram(prog.insns, {4: NoStorage()}))


def bpf_loop(ctx: Any, nr_loops: int, callback: int, cb_ctx: int, flags: int, _: int) -> int:
    """bpf_loop written once against the vm's interface: ``ctx.call`` runs the BPF callback."""
    for i in range(nr_loops):
        if ctx.call(callback, i, cb_ctx):
            return i + 1
    return nr_loops


def loop_program() -> Insns:
    """sum = 0; loops = bpf_loop(5, cb, &sum, 0); return sum * 100 + loops — cb adds i to *ctx
    (a pointer into the caller's stack)."""
    return Insns([
        Insn(0x7A, 10, 0, -8, 0),  # 0: *(u64 *)(r10 -8) = 0
        Insn(0xB7, 1, imm=5),  # 1: r1 = 5
        Insn(0x18, 2, 4, imm=12 - 3),  # 2: r2 = &cb (insn 12), lddw BPF_PSEUDO_FUNC
        Insn(0xBF, 3, 10),  # 4: r3 = r10
        Insn(0x07, 3, imm=-8),  # 5: r3 += -8
        Insn(0xB7, 4, imm=0),  # 6: r4 = 0
        Insn(0x85, imm=181),  # 7: call bpf_loop
        Insn(0x79, 1, 10, -8),  # 8: r1 = *(u64 *)(r10 -8)
        Insn(0x27, 1, imm=100),  # 9: r1 *= 100
        Insn(0x0F, 0, 1),  # 10: r0 += r1
        Insn(0x95),  # 11: exit
        # 12: cb(i = r1, ctx = r2)
        Insn(0x79, 0, 2, 0),  # r0 = *(u64 *)(r2 +0)
        Insn(0x0F, 0, 1),  # r0 += r1
        Insn(0x7B, 2, 0, 0),  # *(u64 *)(r2 +0) = r0
        Insn(0xB7, 0, imm=0),  # r0 = 0
        Insn(0x95),
    ])


def test_callbacks_run_from_a_python_helper_in_both_engines() -> None:
    prog = loop_program()
    with prepare(prog, helpers={181: bpf_loop}) as jit:
        assert jit.image.callback_entries.keys() == {12}
        assert jit.run() == 1005
    assert Interpreter(prog, helpers={181: bpf_loop}).run() == 1005


def test_a_stop_inside_a_callback_stops_the_whole_program() -> None:
    def boom(ctx: Any, *_: int) -> int:
        raise ValueError("inside the callback")

    prog = loop_program()
    body = list(prog)
    body[-2] = Insn(0x85, imm=9)  # the callback calls helper 9 (raises) instead of r0 = 0
    with prepare(Insns(body), helpers={181: bpf_loop, 9: boom}) as jit:
        with pytest.raises(Exception, match="inside the callback"):
            jit.run()
        with pytest.raises(Exception, match="inside the callback"):
            jit.run()  # and the program is still usable afterwards
