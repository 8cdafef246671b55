"""Interpreter vs JIT on random valid programs and random memory: identical r0, registers, memory.

The interpreter (pybpf.vm) is the reference; the programs come from :mod:`progen` (see there for
why the two engines must agree bit for bit).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pybpf.isa import OPCODES, Insns
from pybpf.jit.compile import compile_program
from pybpf.jit.helpers import HelperEntry, PythonHelper
from pybpf.jit.runtime import JitProgram, NativeBuffer
from pybpf.vm.interp import Interpreter
from pybpf.vm.memory import RegionKind

from . import progen

memory = st.binary(min_size=progen.MEM_SIZE, max_size=progen.MEM_SIZE)
JIT_HELPERS = {progen.HELPER_ID: HelperEntry("mix", PythonHelper(progen.test_helper))}
VM_HELPERS = {progen.HELPER_ID: lambda ctx, r1, r2, r3, r4, r5: progen.test_helper(r1, r2, r3, r4, r5)}


def run_interpreter(prog: Insns, mem: bytes) -> tuple[int, bytes]:
    engine = Interpreter(prog, helpers=VM_HELPERS)
    buf = bytearray(mem)
    region = engine.space.add(buf, RegionKind.MEM, "mem")
    r0 = engine.run(region.address(), len(buf))
    return r0, bytes(buf)


def run_jit(prog: Insns, mem: bytes, checked: bool = True) -> tuple[int, bytes]:
    """Checked mode (every access checked, as for unverified code) or the verified-program code the
    load path runs (no checks: progen's programs are safe by construction, as verified ones are)."""
    buf = NativeBuffer(mem)
    image = compile_program(prog, helpers=JIT_HELPERS, allow_unverified=True) if checked else \
        compile_program(prog, helpers=JIT_HELPERS, verified=True)
    assert image.checked == checked
    with JitProgram(image, helpers=JIT_HELPERS) as p:
        r0 = p(buf.address, len(mem), regions=[(buf.address, len(mem), True)])
    return r0, buf.read()


def check(prog: Insns, mem: bytes, checked: bool = True) -> None:
    want = run_interpreter(prog, mem)
    got = run_jit(prog, mem, checked)
    assert got[0] == want[0], f"r0: jit {got[0]:#x}, interpreter {want[0]:#x}"
    pairs = enumerate(zip(got[1], want[1], strict=True))
    assert got[1] == want[1], "memory differs:\n" + "\n".join(
        f"  +{i:3d}: jit {a:02x} interpreter {b:02x}" for i, (a, b) in pairs if a != b
    )


@settings(max_examples=300)
@given(progen.programs(branches=False, calls=False), memory)
def test_straight_line_programs(prog: Insns, mem: bytes) -> None:
    check(prog, mem)


@settings(max_examples=300)
@given(progen.programs(), memory)
def test_branching_programs_with_calls(prog: Insns, mem: bytes) -> None:
    check(prog, mem)


@settings(max_examples=300)
@given(progen.programs(), memory)
def test_branching_programs_with_calls_verified_code(prog: Insns, mem: bytes) -> None:
    """The same programs compiled as verified programs are (what ``--engine jit`` runs)."""
    check(prog, mem, checked=False)


@pytest.mark.parametrize("checked", [True, False], ids=["checked", "verified"])
@pytest.mark.parametrize("code", progen.SINGLE_OPCODES, ids=lambda c: OPCODES[c].name)
@settings(max_examples=15)
@given(data=st.data())
def test_every_opcode(code: int, checked: bool, data: st.DataObject) -> None:
    """Each arithmetic, byte-swap, conditional-jump and memory opcode, many times with random operands."""
    prog = data.draw(progen.programs(branches=False, calls=False, opcode=code))
    check(prog, data.draw(memory), checked)
