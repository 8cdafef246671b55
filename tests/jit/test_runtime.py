"""Executable memory: W^X, freeing, binding; native buffers."""

from __future__ import annotations

import ctypes
import gc
from pathlib import Path

import pytest

from pybpf.errors import JitError
from pybpf.isa import Insn, Insns
from pybpf.jit.compile import compile_program
from pybpf.jit.helpers import HelperEntry, NativeHelper, PythonHelper
from pybpf.jit.runtime import ExecutableMemory, JitProgram, NativeBuffer

PROG = Insns([Insn(0xBF, 0, 1), Insn(0x0F, 0, 2), Insn(0x95)])  # r0 = r1 + r2


def mapping_of(address: int) -> str | None:
    """The permission string of the mapping holding ``address`` in /proc/self/maps, or None."""
    for line in Path("/proc/self/maps").read_text().splitlines():
        span, perms = line.split()[:2]
        lo, hi = (int(v, 16) for v in span.split("-"))
        if lo <= address < hi:
            return perms
    return None


def writable_executable() -> set[str]:
    return {line for line in Path("/proc/self/maps").read_text().splitlines() if "wx" in line.split()[1]}


def test_code_pages_are_read_execute_never_writable() -> None:
    # (ctypes' own callback trampolines, from libffi, may live in rwx pages: not ours, so compare)
    before = writable_executable()
    with JitProgram(compile_program(PROG, allow_unverified=True)) as p:
        assert mapping_of(p.entry_address) == "r-xp"
        assert writable_executable() == before
        assert p(40, 2) == 42
        assert p((1 << 64) - 1, 2) == 1  # wraps at 64 bits, returned unsigned


def test_close_unmaps_and_refuses_further_runs() -> None:
    p = JitProgram(compile_program(PROG, allow_unverified=True))
    addr = p.entry_address
    assert mapping_of(addr) is not None
    p.close()
    assert p.closed and mapping_of(addr) != "r-xp"
    with pytest.raises(JitError, match="closed"):
        p(1, 2)
    p.close()  # idempotent


def test_collected_programs_free_their_memory() -> None:
    p = JitProgram(compile_program(PROG, allow_unverified=True))
    addr = p.entry_address
    del p
    gc.collect()
    assert mapping_of(addr) != "r-xp"


def test_executable_memory_holds_the_code_exactly() -> None:
    code = bytes(range(256)) * 20  # spans two pages
    mem = ExecutableMemory(code)
    assert mem.size == 8192
    assert mem.read()[: len(code)] == code
    mem.close()
    with pytest.raises(JitError):
        mem.read()


def test_binding_checks_helpers_against_the_compiled_kinds() -> None:
    prog = Insns([Insn(0x85, imm=1), Insn(0x95)])
    py = {1: HelperEntry("one", PythonHelper(lambda *a: 1))}
    image = compile_program(prog, helpers=py, allow_unverified=True)
    with pytest.raises(JitError, match="no helper 1"):
        JitProgram(image)
    with pytest.raises(JitError, match="compiled as PythonHelper, bound as NativeHelper"):
        JitProgram(image, helpers={1: HelperEntry("one", NativeHelper(0x1000))})
    with JitProgram(image, helpers=py) as p:
        assert p() == 1


def test_native_helpers_are_called_directly() -> None:
    # a native helper: libc's labs(long), a System V function like any native helper
    labs = ctypes.CDLL(None).labs
    address = ctypes.cast(labs, ctypes.c_void_p).value
    assert address
    helpers = {2: HelperEntry("labs", NativeHelper(address, keepalive=labs))}
    caller = Insns([Insn(0xB7, 1, imm=-42), Insn(0x85, imm=2), Insn(0x95)])
    image = compile_program(caller, helpers=helpers, allow_unverified=True)
    with JitProgram(image, helpers=helpers) as p:
        assert p() == 42


def test_native_buffer_bounds() -> None:
    buf = NativeBuffer(b"abcd")
    assert bytes(buf) == b"abcd" and buf.read(1, 2) == b"bc"
    buf.write(b"XY", 2)
    assert buf.read() == b"abXY"
    for bad in ((3, 2), (-1, 1), (0, 5)):
        with pytest.raises(ValueError):
            buf.read(*bad)
    with pytest.raises(ValueError):
        buf.write(b"12345")
    assert NativeBuffer(16).read() == bytes(16)
