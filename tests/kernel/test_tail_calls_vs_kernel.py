"""Tail calls from subprograms stack frames at run time, as in Linux (``verifier_tailcall_jit.c``).

Linux's verifier bounds each program's call chain statically (8 frames); a tail call made by a
subprogram starts the target in the subprogram's frame, so ``main -> sub -> (tail) main -> sub ->
...`` goes 34 frames deep until the 33-tail-call limit makes the last tail call fall through. Every
engine must run that to the end, as the running kernel does, and give the same result.

Linux refuses tail calls in subprograms without BTF func info ("tail_call is not allowed in subprogs
without BTF"), so the live comparison uses that shape in C (progs/tailcall_frames.c), loaded with BTF
by libbpf (bpftool) and by pybpf's loader; the raw-instruction variants run on pybpf with func info.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from pybpf.isa import Insns
from pybpf.kernel import Kernel, MapAttrs
from pybpf.kernel.prog_load import LoadAttrs, prog_load
from pybpf.kernel.test_run import test_run as run_prog
from pybpf.uapi import MapType, ProgType

ENGINES = ["interpreter", "translate"] + (["jit"] if platform.machine() in ("x86_64", "AMD64") else [])
PT_SCHED_CLS = int(ProgType.SCHED_CLS)


def ins(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, dst | src << 4, off, imm)


def lddw_map(dst: int, fd: int) -> bytes:
    return ins(0x18, dst, 1, imm=fd) + ins(0)


def corpus_shape(fd: int) -> bytes:
    """verifier_tailcall_jit.c: ``main: call sub; r0 = 0; exit`` / ``sub: tail_call(ctx, jmp_table, 0);
    exit`` — Linux returns 0."""
    return ins(0x85, src=1, imm=2) + ins(0xB7, 0) + ins(0x95) + \
        lddw_map(2, fd) + ins(0xB7, 3) + ins(0x85, imm=12) + ins(0x95)


def counting(fd: int) -> bytes:
    """``main: call sub; r0 += 1; exit`` / ``sub: tail_call(ctx, jmp_table, 0); r0 = 100; exit``: 33
    tail calls succeed, the 34th falls through to ``r0 = 100``, and each of the 34 mains stacked on
    the way adds one — 134 (r0 is not read after a failed tail call: Linux's JIT leaves it unspecified)."""
    return ins(0x85, src=1, imm=2) + ins(0x07, 0, imm=1) + ins(0x95) + \
        lddw_map(2, fd) + ins(0xB7, 3) + ins(0x85, imm=12) + ins(0xB7, 0, imm=100) + ins(0x95)


def with_stack(fd: int) -> bytes:
    """As :func:`counting`, but both functions keep a value in their frame across the call (each of
    the 34 stacked frames has its own stack): main returns its slot + sub's result."""
    main = ins(0x7A, 10, off=-8, imm=1) + ins(0x85, src=1, imm=3) + ins(0x79, 1, 10, -8) + ins(0x0F, 0, 1) + \
        ins(0x95)
    sub = ins(0x7A, 10, off=-8, imm=1000) + lddw_map(2, fd) + ins(0xB7, 3) + ins(0x85, imm=12) + \
        ins(0x79, 0, 10, -8) + ins(0x95)
    return main + sub


PROGRAMS = {"corpus_shape": (corpus_shape, 0), "counting": (counting, 134), "with_stack": (with_stack, 1000 + 34)}
SUB_AT = {"corpus_shape": 3, "counting": 3, "with_stack": 5}


def run_ours(tmp_path: Path, name: str, engine: str) -> int:
    k = Kernel(tmp_path / f"bpffs-{engine}")
    arr = k.create_map(MapAttrs(int(MapType.PROG_ARRAY), 4, 4, 1))
    afd = k.new_fd(arr)
    code = PROGRAMS[name][0](afd)
    func_info = [(0, "main", True), (SUB_AT[name], "sub", False)]
    prog = prog_load(k, LoadAttrs(prog_type=PT_SCHED_CLS, insns=Insns.from_bytes(code), license="GPL",
                                  maps={afd: arr}, func_info=func_info)).program
    arr.update_elem_sys(bytes(4), k.new_fd(prog).to_bytes(4, "little"), 0)
    return run_prog(k, prog, bytes(64), engine=engine).retval


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", PROGRAMS)
def test_subprogram_tail_calls_run_to_the_limit(tmp_path: Path, engine: str, name: str) -> None:
    assert run_ours(tmp_path, name, engine) == PROGRAMS[name][1]


SRC = Path(__file__).resolve().parent / "progs" / "tailcall_frames.c"
BPFTOOL = shutil.which("bpftool")


def _compile(out: Path) -> Path:
    from pybpf.errors import ToolchainError
    from pybpf.toolchain import compile as cc

    obj = out / "tailcall_frames.o"
    try:
        cc(SRC, obj)
    except ToolchainError as e:
        pytest.skip(f"no BPF C compiler: {e}")
    return obj


def _live_retval(obj: Path, data: bytes, tmp_path: Path) -> int:
    """``bpftool prog loadall`` (maps pinned too: a prog array whose last user reference goes away is
    emptied, so the maps must outlive bpftool) then ``bpftool prog run``."""
    assert BPFTOOL is not None
    tag = f"pybpf_tailcall_{os.getpid()}"
    progs, maps = Path("/sys/fs/bpf") / tag, Path("/sys/fs/bpf") / f"{tag}_maps"
    pkt = tmp_path / "pkt"
    pkt.write_bytes(data)
    try:
        subprocess.run([BPFTOOL, "prog", "loadall", str(obj), str(progs), "pinmaps", str(maps)], check=True,
                       capture_output=True)
        out = subprocess.run([BPFTOOL, "prog", "run", "pinned", str(progs / "entry"), "data_in", str(pkt),
                              "repeat", "1"], check=True, capture_output=True, text=True).stdout
    finally:
        shutil.rmtree(progs, ignore_errors=True)
        shutil.rmtree(maps, ignore_errors=True)
    m = re.search(r"Return value: (\d+)", out)
    assert m, out
    return int(m.group(1))


@pytest.mark.toolchain
@pytest.mark.parametrize("engine", ENGINES)
def test_the_c_program_on_every_engine(tmp_path: Path, engine: str) -> None:
    """main -> sub -> (tail) main ... through pybpf's loader (BTF, func info, the prog array filled
    from the object's ``.values``): 1000 from the last sub, + 1 from each of the 34 mains."""
    from pybpf.loader import load

    with load(_compile(tmp_path), kernel=Kernel(tmp_path / "bpffs")) as coll:
        assert coll.programs["entry"].run(bytes(64), engine=engine).retval == 1034


@pytest.mark.kernel
@pytest.mark.toolchain
@pytest.mark.skipif(BPFTOOL is None or os.geteuid() != 0 or not Path("/sys/fs/bpf").is_dir(),
                    reason="needs bpftool, root and bpffs")
def test_against_the_live_kernel(tmp_path: Path, live: bool) -> None:
    """The running kernel returns what every engine returns (1034: 34 frames stacked by 33 tail calls)."""
    from pybpf.loader import load

    obj = _compile(tmp_path)
    want = _live_retval(obj, bytes(64), tmp_path)
    assert want == 1034
    with load(obj, kernel=Kernel(tmp_path / "bpffs")) as coll:
        assert {e: coll.programs["entry"].run(bytes(64), engine=e).retval for e in ENGINES} == \
            dict.fromkeys(ENGINES, want)
