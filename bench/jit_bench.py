"""JIT figures: compile time of the seed demo, the cost of one call through ctypes, native speed.

    .venv/bin/python bench/jit_bench.py [--out bench/results/jit.txt]

* compile: ``compile_program`` on the seed demo's post-load stream (examples/seed-demo/demo.xlated.txt,
  19 slots), and separately making it executable (mmap, relocations, mprotect) — best and median of
  many runs, in microseconds (issue 6's bar: under 5 ms);
* call: ns per ``JitProgram.run()`` of a program that returns at once (``r0 = 2; exit``, the shape
  of xdp_pass), per raw ctypes call of the same entry (the floor), and per call when the program
  calls one Python helper (a ctypes callback: the price of crossing back into Python);
* native: a counting loop of 10M iterations (3 instructions each), ns per eBPF instruction;
* batch: ns per run through the native batch runner (one ctypes call for many runs) of the seed
  demo's post-load stream (array lookup inlined, atomic add) and of the benchmark programs that use
  no maps (bench/progs: xdp_pass, xdp_fnv_hash, xdp_subprog_calls) on the frames of
  bench/gen_packets.py, each result checked against expected.json. Those go through pybpf's real
  path — ``pybpf.toolchain`` (clang or the ziglang wheel), ``pybpf.load`` (verifier and fixups), the
  program's JIT engine — as ``make bench`` does for every program with the kernel beside it.

Timings are wall-clock on a shared machine: compare with bench/kernel_bench.py run at the same time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pybpf.isa import Insn, Insns
from pybpf.isa.asm import assemble
from pybpf.jit import HelperEntry, JitProgram, NativeBuffer, PythonHelper, compile_program
from pybpf.jit.runtime import BatchRunner
from pybpf.progtypes import descriptor
from pybpf.uapi import ProgType

XDP = descriptor(ProgType.XDP)
HEADROOM = 256

ROOT = Path(__file__).resolve().parent.parent


class _ArrayStandIn:
    """Native memory for the demo's array map (value area at 312, as in the kernel's dump)."""

    def __init__(self) -> None:
        self.buf = NativeBuffer(320)

    def map_address(self, map_id: int) -> int:
        return self.buf.address

    def map_value_address(self, map_id: int, offset: int) -> int:
        return self.buf.address + 312 + offset


def _times(fn: object, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        fn()  # type: ignore[operator]
        out.append((time.perf_counter_ns() - t0) / 1000)
    return out


def bench_compile(lines: list[str]) -> None:
    prog = assemble((ROOT / "examples" / "seed-demo" / "demo.xlated.txt").read_text())
    compile_program(prog, verified=True)  # warm imports and caches
    comp = _times(lambda: compile_program(prog, verified=True), 300)
    image = compile_program(prog, verified=True)
    maps = _ArrayStandIn()

    def load() -> None:
        JitProgram(image, maps=maps).close()

    load_t = _times(load, 300)
    lines.append(f"seed demo ({prog.slot_count} slots, {image.code_size} bytes of x86):")
    lines.append(f"  compile_program        best {min(comp):7.1f} us   median {statistics.median(comp):7.1f} us")
    lines.append(f"  make executable        best {min(load_t):7.1f} us   median {statistics.median(load_t):7.1f} us")
    with JitProgram(image, maps=maps) as p:
        for _ in range(1000):
            p(0)
        count = int.from_bytes(maps.buf.read(312, 4), "little")
    lines.append(f"  1000 runs: counter {count} (each run adds one and returns XDP_PASS)")


def _per_call(fn: object, n: int, rounds: int = 5) -> float:
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        for _ in range(n):
            fn()  # type: ignore[operator]
        best = min(best, (time.perf_counter_ns() - t0) / n)
    return best


def bench_calls(lines: list[str]) -> None:
    ret2 = Insns([Insn(0xB7, 0, imm=2), Insn(0x95)])
    helpers = {1: HelperEntry("noop", PythonHelper(lambda *a: 0))}
    with_helper = Insns([Insn(0x85, imm=1), Insn(0xB7, 0, imm=2), Insn(0x95)])
    n = 50_000
    best = {"run": float("inf"), "raw": float("inf"), "helper": float("inf")}
    with (JitProgram(compile_program(ret2, verified=True)) as p,
          JitProgram(compile_program(with_helper, helpers=helpers, verified=True), helpers=helpers) as ph):
        entry, state = p._entry, p.state_address
        for _ in range(8):  # interleaved rounds: the machine's load hits all three alike
            best["run"] = min(best["run"], _per_call(lambda: p.run(1), n, 1))
            best["raw"] = min(best["raw"], _per_call(lambda: entry(1, 0, state), n, 1))
            best["helper"] = min(best["helper"], _per_call(lambda: ph.run(1), n, 1))
    lines.append("calls (best of 8 interleaved rounds):")
    lines.append(f"  raw ctypes call of the entry point     {best['raw']:7.0f} ns/call")
    lines.append(f"  JitProgram.run(), empty program        {best['run']:7.0f} ns/call")
    lines.append(f"  run() with one Python helper call      {best['helper']:7.0f} ns/call  "
                 f"(one ctypes callback: ~{best['helper'] - best['run']:.0f} ns)")


def bench_native(lines: list[str]) -> None:
    loop = Insns([Insn(0xB7, 0), Insn(0x18, 1, imm=10_000_000), Insn(0x07, 0, imm=3), Insn(0x17, 1, imm=1),
                  Insn(0x55, 1, off=-3), Insn(0x95)])
    with JitProgram(compile_program(loop, verified=True)) as p:
        best = min(_times(lambda: p.run(), 5))
    executed = 10_000_000 * 3
    lines.append(f"native: counting loop, {executed:,} eBPF insns in {best / 1000:.1f} ms = "
                 f"{best * 1000 / executed:.2f} ns/insn")


def _batch_ns(prog: JitProgram, frame: bytes, runs: int = 200_000) -> tuple[int, int]:
    """(verdict, best ns per run over 5 repeats) of ``frame`` through the batch runner."""
    runner = BatchRunner(prog, XDP.runtime)
    buf = NativeBuffer(bytes(HEADROOM) + frame)
    best = None
    verdict = 0
    for _ in range(5):
        res, ns = runner.repeat(buf, HEADROOM, len(frame), runs, headroom=HEADROOM)
        verdict = res.verdicts[0]
        best = ns if best is None else min(best, ns)
    assert best is not None
    return verdict, best


def bench_batch(lines: list[str]) -> None:
    lines.append("batch runner (ns per run, best of 5 x 200,000 runs in one native call each):")
    prog = assemble((ROOT / "examples" / "seed-demo" / "demo.xlated.txt").read_text())
    maps = _ArrayStandIn()
    with JitProgram(compile_program(prog, verified=True), maps=maps) as p:
        verdict, ns = _batch_ns(p, bytes(64))
    lines.append(f"  seed demo (xlated, inlined array lookup)  64 B   verdict {verdict}  {ns:6d} ns/run")
    from pybpf import LoadOptions, load
    from pybpf.errors import ToolchainError
    from pybpf.kernel import Kernel
    from pybpf.toolchain import compile as compile_c

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        subprocess.run([sys.executable, str(ROOT / "bench" / "gen_packets.py"), str(data)], check=True,
                       capture_output=True)
        expected = json.loads((data / "expected.json").read_text())
        kernel = Kernel(Path(tmp) / "bpffs")
        for name in ("xdp_pass", "xdp_fnv_hash", "xdp_subprog_calls"):
            try:
                obj = compile_c(ROOT / "bench" / "progs" / f"{name}.c", Path(tmp) / f"{name}.o")
            except ToolchainError as e:
                lines.append(f"  (no BPF C compiler: bench/progs not measured: {e})")
                return
            with load(obj, LoadOptions(kernel=kernel)) as coll:
                engine = coll.programs[name].kernel_program.runner("jit").impl
                for frame in ("udp64", "vlan_tcp6_128", "tcp1500"):
                    raw = (data / f"{frame}.bin").read_bytes()
                    verdict, ns = _engine_ns(engine, raw)
                    ok = "ok" if verdict == expected[frame][name] else f"WRONG (want {expected[frame][name]})"
                    lines.append(f"  {name:18s} {frame:14s} retval {verdict:10d} {ok:3s} {ns:6d} ns/run")


def _engine_ns(engine: object, frame: bytes, runs: int = 200_000) -> tuple[int, int]:
    """(verdict, best ns per run over 5 repeats) of ``frame`` through a loaded program's JIT engine."""
    best, verdict = None, 0
    for _ in range(5):
        res = engine.run_xdp(engine.xdp_buff(frame), runs)  # type: ignore[attr-defined]
        verdict = res.retval
        best = res.duration if best is None else min(best, res.duration)
    assert best is not None
    return verdict, best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="also write the table to this file")
    args = ap.parse_args()
    lines: list[str] = ["pybpf JIT benchmark"]
    bench_compile(lines)
    bench_calls(lines)
    bench_native(lines)
    bench_batch(lines)
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
