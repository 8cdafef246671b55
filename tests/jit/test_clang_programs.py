"""Real compiler output through the JIT: the map-free benchmark programs (bench/progs), compiled by
clang, loaded by pybpf.elf, their context loads converted with progtypes' convert_ctx_access (the
verifier's fixup, done by hand here), run over the benchmark frames by the batch runner — every
result equal to bench/gen_packets.py's expected.json."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pybpf.elf import ObjectSpec
from pybpf.isa import Insn, Insns
from pybpf.jit import JitProgram, NativeBuffer, compile_program
from pybpf.jit.runtime import BatchRunner
from pybpf.progtypes import descriptor
from pybpf.uapi import ProgType

ROOT = Path(__file__).resolve().parents[2]
XDP = descriptor(ProgType.XDP)
CLANG = shutil.which("clang-19")
pytestmark = [pytest.mark.toolchain, pytest.mark.skipif(CLANG is None, reason="clang-19 not installed")]


def convert_ctx(insns: Insns) -> Insns:
    """Context loads through r1 before r1 is first overwritten (how clang emits these programs)."""
    out: list[Insn] = []
    live = True
    for insn in insns:
        info = insn.info
        if live and info is not None and info.kind.value == "ldx" and insn.src == 1:
            out.extend(XDP.convert_ctx_access(insn, insn.size.bytes) or [insn])
        else:
            out.append(insn)
        if insn.code == 0x85 or (insn.dst == 1 and info is not None and info.kind.value in ("alu", "ldx", "lddw")):
            live = False
    return Insns(out)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench-data")
    subprocess.run([sys.executable, str(ROOT / "bench" / "gen_packets.py"), str(out)], check=True, capture_output=True)
    return out


@pytest.mark.parametrize("name", ["xdp_pass", "xdp_fnv_hash", "xdp_subprog_calls"])
def test_benchmark_program_results(name: str, data: Path, tmp_path: Path) -> None:
    obj = tmp_path / f"{name}.o"
    assert CLANG is not None
    subprocess.run([CLANG, "-O2", "-g", "-target", "bpf", "-I/usr/include/x86_64-linux-gnu", "-c",
                    str(ROOT / "bench" / "progs" / f"{name}.c"), "-o", str(obj)], check=True, capture_output=True)
    insns = convert_ctx(ObjectSpec.from_path(str(obj)).programs[name].insns)
    expected = json.loads((data / "expected.json").read_text())
    frames = [(f, (data / f"{f}.bin").read_bytes()) for f in ("udp64", "vlan_tcp6_128", "tcp1500")]
    blob = b"".join(bytes(256) + raw for _, raw in frames)
    offsets, pos = [], 0
    for _, raw in frames:
        offsets.append(pos + 256)
        pos += 256 + len(raw)
    with JitProgram(compile_program(insns, verified=True)) as prog:
        res = BatchRunner(prog, XDP.runtime).run(NativeBuffer(blob), offsets, [len(r) for _, r in frames],
                                                 headroom=256)
    assert res.verdicts == [expected[f][name] & 0xFFFFFFFF for f, _ in frames]
