#!/usr/bin/env python3
"""The seed demo end to end: an XDP packet counter carried through every stage pybpf has.

1. compile ``examples/seed-demo/demo.c`` (and its iproute2-style twin ``demo_legacy.c``) with clang
   or, without clang, the ``ziglang`` wheel;
2. read the object (programs, the ``pkt_counter`` map) and load it: the maps are created, the
   ``lddw`` gets the map, the verifier proves the program safe and rewrites it (the xlated dump
   below has the kernel's shape: the array lookup inlined);
3. run it 1000 times through BPF_PROG_TEST_RUN with the interpreter, then 1000 more with the
   x86-64 JIT: every run returns XDP_PASS and ``pkt_counter[0]`` counts them;
4. load ``demo_invalid.c`` (no NULL check): rejected with the kernel's log,
   ``R0 invalid mem access 'map_value_or_null'``.

Exit status 0 only if every check holds.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

import pybpf
from pybpf.errors import PybpfError, VerifierError
from pybpf.toolchain import compile as compile_c
from pybpf.toolchain.compiler import find_compiler

HERE = Path(__file__).resolve().parent / "seed-demo"
XDP_PASS = 2


def step(title: str) -> None:
    print(f"\n== {title}")


def check(ok: bool, what: str) -> bool:
    print(f"   [{'ok' if ok else 'FAILED'}] {what}")
    return ok


def xlated_shape(text: str) -> list[str]:
    """An xlated dump without the two numbers that are each kernel's own: the map id and the
    offset of the value area inside the array map's memory (Linux: 312; pybpf's layout: its own)."""
    text = re.sub(r"map\[id:\d+\]", "map[id:N]", text)
    text = re.sub(r"\(07\) r1 \+= \d+", "(07) r1 += OFF", text)
    return [ln.rstrip() for ln in text.strip().splitlines()]


def kernel_log_lines(text: str) -> list[str]:
    """The log's lines, normalised for what legitimately differs from the seed's log.

    The seed log was printed by Linux 6.18; pybpf follows 6.12, which also prints register
    liveness marks (``R1_w=`` for "written") that 6.18 no longer prints. And the raw map address
    in ``r1 = 0xffff...`` is each kernel's own.
    """
    out = []
    for line in text.splitlines():
        if line.startswith("--"):
            continue
        if "(18)" in line:
            line = re.sub(r"r1 = 0x[0-9a-f]+ *", "r1 = <map address> ", line)
        line = re.sub(r"\b(R\d+|fp-?\d+)_[rwD]+=", r"\1=", line)
        out.append(line.rstrip())
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1000)
    args = ap.parse_args()
    ok = True
    with tempfile.TemporaryDirectory(prefix="pybpf-demo-") as tmp:
        out = Path(tmp)
        compiler = find_compiler()
        step(f"compile with {compiler.describe()}")
        objects = {}
        for name in ("demo", "demo_legacy", "demo_invalid"):
            obj = compile_c(HERE / f"{name}.c", out / f"{name}.o", debug=True, compiler=compiler)
            objects[name] = obj
            print(f"   {name}.c -> {obj.name} ({obj.stat().st_size} bytes)")

        for name in ("demo", "demo_legacy"):
            step(f"load {name}.o")
            with pybpf.load(objects[name], log_level=1) as coll:
                prog = coll.programs["xdp_program"]
                # demo.c's map has BTF (u32 -> u32); the iproute2 form has none: say the types.
                counter = coll.maps["pkt_counter"].typed("<I", "<I")
                print(f"   program {prog.name}: type {pybpf.uapi.bpftool_name(prog.type)}, "
                      f"{len(prog.insns)} instructions after the verifier, tag {prog.tag}")
                print(f"   map pkt_counter: {counter!r}")
                last = prog.verifier_log.strip().splitlines()[-1:] or [""]
                print(f"   verifier: {last[0]}")
                if name == "demo":
                    step("bpftool prog dump xlated")
                    xlated = prog.xlated()
                    print("\n".join("   " + ln for ln in xlated.splitlines()))
                    seed = (HERE / "demo.xlated.txt").read_text()
                    ok &= check(xlated_shape(xlated) == xlated_shape(seed),
                                "same shape as the kernel's examples/seed-demo/demo.xlated.txt "
                                "(map id and value-area offset aside)")
                total = 0
                for engine in ("interpreter", "jit"):
                    step(f"{name}: {args.runs} runs, engine {engine}")
                    packet = bytes(64)
                    verdicts = {prog.run(packet, engine=engine).retval for _ in range(args.runs // 10)}
                    rest = prog.run(packet, repeat=args.runs - args.runs // 10, engine=engine)
                    verdicts.add(rest.retval)
                    total += args.runs
                    print(f"   Return value: {rest.retval}, duration (average): {rest.duration}ns")
                    ok &= check(verdicts == {XDP_PASS}, f"every run returned XDP_PASS ({sorted(verdicts)})")
                    ok &= check(counter[0] == total, f"pkt_counter[0] == {counter[0]} (expected {total})")

        step("load demo_invalid.o (no NULL check)")
        try:
            pybpf.load(objects["demo_invalid"], log_level=1).close()
            ok &= check(False, "the verifier rejects the program")
        except VerifierError as e:
            print("\n".join("   " + ln for ln in e.log.rstrip().splitlines()))
            ok &= check("R0 invalid mem access 'map_value_or_null'" in e.log, "rejected with the kernel's message")
            expected = kernel_log_lines((HERE / "demo_invalid.verifier-log.txt").read_text())
            got = kernel_log_lines(e.log)
            ok &= check(got == expected, "the log matches examples/seed-demo/demo_invalid.verifier-log.txt "
                        "line for line (map address aside)")
    print("\nseed demo:", "all checks passed" if ok else "SOME CHECKS FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except PybpfError as err:
        print(f"Error: {err}", file=sys.stderr)
        sys.exit(255)
