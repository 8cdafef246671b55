"""ns per executed BPF instruction: the reference interpreter vs the translate-to-Python tier.

Loop-heavy programs in the conformance suites' assembler dialect (tests/data/conformance/README.md),
run with the conformance harness's conventions (r1 = input memory, r2 = its length):

* sum_loop      — a one-block loop of ALU instructions (the best case for the translator);
* fnv1a_1500    — FNV-1a over 1500 bytes, the instruction shape clang-19 emits for
                  bench/progs/xdp_fnv_hash.c (pointer compare + byte load per iteration);
* primes        — trial division, nested loops with div/mod (multi-block loops);
* collatz       — data-dependent branches inside nested loops;
* calls         — a loop making a bpf-to-bpf call per iteration (frames, callee-saved registers);
* bubble_sort   — sorting 32 u32 on the stack through computed pointers (loads + stores);
* prime.data    — bpf_conformance's own loop-heavy test (trial division of 67), unchanged;
* seed_demo     — the seed XDP program's 13 instructions with a map-lookup helper: per-run cost.

Instruction counts come from the interpreter (``Execution.insn_count``; the translated tier counts
the same). Each figure is the best of five timed batches after one warm-up, in wall-clock time
(``cpu`` columns: the process's CPU time over the same batches, which other load on the machine
disturbs less). The load average is printed with the table: the machine is shared, so compare
figures taken at similar load. Writes the table to bench/results/interp.txt as well as stdout.
Run: ``.venv/bin/python bench/interp_bench.py``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pybpf.isa import Insn, Insns
from pybpf.isa.conformance_asm import assemble
from pybpf.vm import AddressSpace, Execution, HelperTable, Interpreter, RegionKind, TranslatedProgram
from pybpf.vm.conformance import HARNESS_HELPERS, load_test, parse_file
from pybpf.vm.engine import Engine

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "interp.txt"
PRIME = ROOT / "tests" / "data" / "conformance" / "bpf_conformance" / "tests" / "prime.data"
NOT_LOOP_HEAVY = {"seed_demo"}

SUM_LOOP = """
    mov %r0, 0
    mov %r1, 20000
loop:
    add %r0, %r1
    xor %r0, 0x5a5a
    sub %r1, 1
    jne %r1, 0, loop
    exit
"""

# clang-19 -O2 output of xdp_fnv_hash.c, with data = r1 and data_end = r1 + r2
FNV1A = """
    mov %r3, %r1
    add %r3, %r2
    lddw %r0, 0x811c9dc5
    mov %r2, 0
loop:
    mov %r4, %r1
    add %r4, %r2
    mov %r5, %r4
    add %r5, 1
    jgt %r5, %r3, out
    ldxb %r4, [%r4]
    xor %r0, %r4
    mul %r0, 0x1000193
    add %r2, 1
    jne %r2, 1500, loop
out:
    mov32 %r0, %r0
    exit
"""

PRIMES = """
    mov %r0, 0
    mov %r1, 2
outer:
    jge %r1, 1500, done
    mov %r2, 2
inner:
    mov %r3, %r2
    mul %r3, %r2
    jgt %r3, %r1, prime
    mov %r4, %r1
    mod %r4, %r2
    jeq %r4, 0, next
    add %r2, 1
    ja inner
prime:
    add %r0, 1
next:
    add %r1, 1
    ja outer
done:
    exit
"""

COLLATZ = """
    mov %r0, 0
    mov %r1, 1
outer:
    jgt %r1, 300, done
    mov %r2, %r1
step:
    jeq %r2, 1, next
    add %r0, 1
    mov %r3, %r2
    and %r3, 1
    jeq %r3, 0, even
    mul %r2, 3
    add %r2, 1
    ja step
even:
    rsh %r2, 1
    ja step
next:
    add %r1, 1
    ja outer
done:
    exit
"""

# the mix32 subprogram of bench/progs/xdp_subprog_calls.c (clang-19), called once per iteration
CALLS = """
    mov %r6, 0
    mov %r7, 0x12345
loop:
    mov %r1, %r7
    mov %r2, %r6
    call local mix32
    mov %r7, %r0
    add %r6, 1
    jne %r6, 2000, loop
    mov %r0, %r7
    exit
mix32:
    mov %r0, %r2
    mul %r0, -0x3361d2af
    lddw %r3, 0xfffe0000
    and %r0, %r3
    rsh %r0, 0x11
    mul %r2, 0x16a88000
    or %r0, %r2
    mul %r0, 0x1b873593
    xor %r0, %r1
    lddw %r1, 0xfff80000
    mov %r2, %r0
    and %r2, %r1
    lsh %r0, 0xd
    rsh %r2, 0x13
    or %r0, %r2
    mul %r0, 0x5
    add %r0, -0x19ab949c
    exit
"""

BUBBLE = """
    mov %r1, %r10
    add %r1, -128
    mov %r2, 0
    mov %r3, 12345
fill:
    mul32 %r3, 1103515245
    add32 %r3, 12345
    mov %r4, %r1
    add %r4, %r2
    stxw [%r4], %r3
    add %r2, 4
    jne %r2, 128, fill
    mov %r5, 124
pass:
    mov %r2, 0
scan:
    mov %r4, %r1
    add %r4, %r2
    ldxw %r6, [%r4]
    ldxw %r7, [%r4+4]
    jle %r6, %r7, ordered
    stxw [%r4], %r7
    stxw [%r4+4], %r6
ordered:
    add %r2, 4
    jlt %r2, %r5, scan
    sub %r5, 4
    jne %r5, 0, pass
    ldxw %r0, [%r10-128]
    ldxw %r2, [%r10-4]
    lsh %r0, 32
    or %r0, %r2
    exit
"""


class _ArrayMap:
    """The seed demo's pkt_counter: one u32, storage with a small header (MapMemory)."""

    def __init__(self) -> None:
        self.id = 29
        self.mem = bytearray(64 + 8)

    def direct_value_addr(self, off: int) -> int:
        return 64 + off


def _seed_demo() -> tuple[Insns, dict[int, Any], dict[int, Callable[..., int]]]:
    counter = _ArrayMap()

    def map_lookup_elem(ctx: Any, map_ptr: int, key_ptr: int, *_: int) -> int:
        return map_ptr + 64 if ctx.load(key_ptr, 4) == 0 else 0

    insns = Insns([
        Insn(0xB7, 1, imm=0), Insn(0x63, 10, 1, -4), Insn(0xBF, 2, 10), Insn(0x07, 2, imm=-4),
        Insn(0x18, 1, 1, imm=29), Insn(0x85, imm=1), Insn(0xB7, 1, imm=1), Insn(0x15, 0, 0, 2),
        Insn(0xC3, 0, 1, 0, 0), Insn(0xB7, 1, imm=2), Insn(0xBF, 0, 1), Insn(0x95),
    ])
    return insns, {29: counter}, {1: map_lookup_elem}


@dataclass
class Case:
    name: str
    insns: Insns
    memory: bytes = b""
    maps: dict[int, Any] | None = None
    helpers: HelperTable | dict[int, Callable[..., int]] | None = None


def cases() -> list[Case]:
    packet = bytes((i * 7 + 3) & 0xFF for i in range(1500))
    insns, maps, helpers = _seed_demo()
    prime, prime_memory = load_test(parse_file(PRIME))
    return [
        Case("sum_loop", assemble(SUM_LOOP)),
        Case("fnv1a_1500", assemble(FNV1A), packet),
        Case("primes", assemble(PRIMES)),
        Case("collatz", assemble(COLLATZ)),
        Case("calls", assemble(CALLS)),
        Case("bubble_sort", assemble(BUBBLE)),
        Case("prime.data", prime, prime_memory, None, HARNESS_HELPERS),
        Case("seed_demo", insns, b"", maps, helpers),
    ]


@dataclass
class Timing:
    wall: float  # seconds per run, best batch
    cpu: float  # CPU seconds per run, best batch
    r0: int
    insns: int  # executed per run
    prepare: float  # seconds to prepare (translate) the program


def measure(cls: type[Engine], case: Case, min_time: float, repeat: int = 5) -> Timing:
    """Best of several timed batches after a warm-up."""
    space = AddressSpace()
    r1 = space.add(bytearray(case.memory), RegionKind.MEM).address() if case.memory else 0
    t0 = time.perf_counter()
    engine = cls(case.insns, space=space, maps=case.maps, helpers=case.helpers)
    prepare = time.perf_counter() - t0
    ex = Execution(space)
    r0 = engine.run(r1, len(case.memory), execution=ex)  # warm-up, and the instruction count
    insns = ex.insn_count
    best = float("inf")
    batch = 1
    while True:
        start = time.perf_counter()
        for _ in range(batch):
            engine.run(r1, len(case.memory))
        elapsed = time.perf_counter() - start
        if elapsed > min_time / 4 or batch > 1 << 20:
            break
        batch *= 4
    best_cpu = float("inf")
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        for _ in range(batch):
            engine.run(r1, len(case.memory))
        best = min(best, (time.perf_counter() - start) / batch)
        best_cpu = min(best_cpu, (time.process_time() - start_cpu) / batch)
    return Timing(best, best_cpu, r0, insns, prepare)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter timing batches")
    parser.add_argument("--no-write", action="store_true", help=f"do not write {RESULTS}")
    args = parser.parse_args(argv)
    min_time = 0.1 if args.quick else 0.25
    header = (f"{'program':<13} {'insns/run':>10} {'interp ns/insn':>15} {'M insns/s':>10} "
              f"{'translate ns/insn':>18} {'(cpu)':>6} {'speed-up':>9} {'us/run':>8} {'compile ms':>11}")
    lines = [
        "pybpf vm: ns per executed BPF instruction (best of 5 batches after a warm-up)",
        f"python {platform.python_version()} on {platform.machine()}, {time.strftime('%Y-%m-%d %H:%M')}, "
        f"load average {_load()} at the start",
        "",
        header,
        "-" * len(header),
    ]
    print("\n".join(lines), flush=True)
    loop_heavy: list[float] = []
    worst = ""
    for case in cases():
        slow = measure(Interpreter, case, min_time)
        fast = measure(TranslatedProgram, case, min_time)
        if (slow.r0, slow.insns) != (fast.r0, fast.insns):
            print(f"MISMATCH on {case.name}: interpreter r0={slow.r0:#x}/{slow.insns} insns, "
                  f"translate {fast.r0:#x}/{fast.insns}")
            return 1
        n = slow.insns
        ns_i, ns_t, cpu_t = slow.wall / n * 1e9, fast.wall / n * 1e9, fast.cpu / n * 1e9
        if case.name not in NOT_LOOP_HEAVY:
            loop_heavy.append(ns_t)
            if not worst or ns_t > max(loop_heavy[:-1], default=0.0):
                worst = case.name
        line = (f"{case.name:<13} {n:>10} {ns_i:>15.1f} {1e3 / ns_i:>10.2f} {ns_t:>18.1f} {cpu_t:>6.1f} "
                f"{ns_i / ns_t:>8.1f}x {fast.wall * 1e6:>8.1f} {fast.prepare * 1e3:>11.2f}")
        lines.append(line)
        print(line, flush=True)
    geo = 1.0
    for v in loop_heavy:
        geo *= v
    geo **= 1 / len(loop_heavy)
    tail = [
        "",
        f"loop-heavy programs, translated tier: at most {max(loop_heavy):.1f} ns/insn ({worst}), "
        f"geometric mean {geo:.1f} (target <= 40)",
        "seed_demo is dominated by the per-run cost (Execution, frame, helper call), not by instructions.",
        f"load average {_load()} at the end",
    ]
    lines += tail
    print("\n".join(tail))
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text("\n".join(lines) + "\n")
    return 0


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


if __name__ == "__main__":
    sys.exit(main())
