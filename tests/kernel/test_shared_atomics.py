"""A program's ``lock`` instructions on a pinned map, run by two real processes at once, lose no
update — on the interpreter, the translated tier and the JIT, and mixed (as on two CPUs)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pybpf.kernel import Kernel
from pybpf.loader import LoadOptions, Map, load
from pybpf.toolchain import compile as compile_c

ROOT = Path(__file__).resolve().parents[2]

_WORKER = """
import os, sys, time
from pybpf.loader import Program
prog = Program.from_pinned("/sys/fs/bpf/counter")
engine, runs, go = sys.argv[1], int(sys.argv[2]), sys.argv[3]
prog.run(bytes(64), engine=engine)  # prepare the engine before the start line
print("ready", flush=True)
while not os.path.exists(go):
    time.sleep(0.001)
left = runs - 1
while left:
    step = min(left, 50)
    assert prog.run(bytes(64), repeat=step, engine=engine).retval == 2
    left -= step
print("done", flush=True)
"""


@pytest.mark.parametrize(("first", "second", "runs"), [
    ("interpreter", "interpreter", 1500),
    ("translate", "jit", 4000),
    ("jit", "jit", 200_000),
])
def test_two_processes_counting_on_one_pinned_map(kernel: Kernel, tmp_path: Path, first: str, second: str,
                                                  runs: int) -> None:
    obj = compile_c(ROOT / "examples" / "seed-demo" / "demo.c", tmp_path / "demo.o")
    with load(obj, LoadOptions(kernel=kernel)) as coll:
        coll.programs["xdp_program"].pin("/sys/fs/bpf/counter")
        coll.maps["pkt_counter"].pin("/sys/fs/bpf/pkt_counter")
    env = dict(os.environ, PYBPF_BPFFS=str(kernel.root), PYTHONPATH=str(ROOT / "src"))
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, engine, str(runs), str(go)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for engine in (first, second)]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready", p.stderr and p.stderr.read()
    go.touch()
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
        assert out.strip() == "done"
    counter = Map.from_pinned("/sys/fs/bpf/pkt_counter", kernel=kernel).typed("<I", "<I")
    assert counter[0] == 2 * runs
