"""How the translated tier lays out control flow, checked against the reference interpreter.

Forward conditional jumps whose target is reached only from the block before it become ``if not
cond:`` bodies inside that block ("absorbed" targets), so a loop with an if/else inside needs no
``pc`` dispatch. The cases here are the shapes where that can go wrong: jumps to the next
instruction, several jumps to one target, exits and jumps out of a body, bodies that do not nest,
nesting deeper than the translator allows, and the instruction count on every path."""

from __future__ import annotations

from typing import Any

import pytest

from pybpf.errors import ExecutionError, InstructionLimitExceeded
from pybpf.isa import Insn, Insns
from pybpf.isa.conformance_asm import assemble
from pybpf.vm import AddressSpace, Execution, Interpreter, TranslatedProgram
from pybpf.vm.engine import Engine


def outcome(cls: type[Engine], insns: Insns, *args: int, budget: int | None = None) -> Any:
    ex = Execution(AddressSpace(), budget=budget)
    try:
        return "ok", cls(insns, space=ex.space).run(*args, execution=ex), ex.insn_count
    except InstructionLimitExceeded:
        return ("limit",)
    except ExecutionError as e:
        return type(e).__name__, e.pc, str(e)


def same(prog: str | Insns, *args: int, budget: int | None = None) -> Any:
    insns = assemble(prog) if isinstance(prog, str) else prog
    ref = outcome(Interpreter, insns, *args, budget=budget)
    assert outcome(TranslatedProgram, insns, *args, budget=budget) == ref
    return ref


def dispatch_lines(prog: str) -> list[str]:
    return [ln.strip() for ln in TranslatedProgram(assemble(prog)).source.splitlines() if "pc ==" in ln]


def test_an_if_else_inside_a_loop_needs_no_dispatch() -> None:
    prog = """
        mov %r0, 0
        mov %r1, 0
    loop:
        mov %r2, %r1
        and %r2, 1
        jeq %r2, 0, even
        add %r0, 3
        ja next
    even:
        add %r0, 5
    next:
        add %r1, 1
        jlt %r1, 100, loop
        exit
    """
    assert same(prog) == ("ok", 400, 2 + 100 * 6 + 50 * 1 + 1)
    # `even` (slot 7) is absorbed; `next` (8) is the target of a ja, so it stays a block of the loop
    assert dispatch_lines(prog) == ["if pc == 0:", "if pc == 2:", "if pc == 8:"]


@pytest.mark.parametrize("arg", [0, 1, 2, 3, 15])
def test_several_jumps_to_one_target_with_exits_inside(arg: int) -> None:
    """call_local.data's shape: a chain of checks jumping to one `failed:` label."""
    prog = f"""
        mov %r1, {arg}
        mov %r0, 0
        jeq %r1, 0, failed
        add %r0, 1
        jeq %r1, 1, failed
        add %r0, 1
        jeq %r1, 2, failed
        mov %r0, 100
        exit
    failed:
        add %r0, 50
        exit
    """
    same(prog)
    assert dispatch_lines(prog) == []


def test_a_jump_to_the_next_instruction() -> None:
    assert same("mov %r0, 7\njne %r0, 42, +0\nadd %r0, 1\nexit") == ("ok", 8, 4)


def test_bodies_that_do_not_nest_stay_jumps() -> None:
    """`a` is jumped to from inside the body of the jump to `b` (and b > a): one of them cannot be
    an `if` body; the result must not change."""
    prog = """
        mov %r0, 0
        mov %r1, {x}
        jeq %r1, 1, a
        add %r0, 1
        jeq %r1, 2, b
        add %r0, 2
    a:
        add %r0, 4
        jeq %r1, 3, b
        add %r0, 8
    b:
        add %r0, 16
        exit
    """
    for x in range(5):
        same(prog.format(x=x))


def test_a_jump_out_of_a_body_into_a_later_block() -> None:
    prog = """
        mov %r0, {x}
        jgt %r0, 5, big
        jeq %r0, 1, one
        add %r0, 10
        ja out
    one:
        add %r0, 20
    big:
        add %r0, 100
    out:
        exit
    """
    for x in (0, 1, 7):
        same(prog.format(x=x))


def test_dead_code_inside_a_body() -> None:
    prog = Insns([
        Insn(0xB7, 0, imm=3),
        Insn(0x15, 0, 0, 3, 0),  # if r0 == 0 goto +3
        Insn(0x07, 0, imm=1),
        Insn(0x95),  # exit
        Insn(0x07, 0, imm=1000),  # dead: after the exit, before the target
        Insn(0x07, 0, imm=2),  # the target
        Insn(0x95),
    ])
    assert same(prog) == ("ok", 4, 4)
    assert same(Insns([Insn(0xB7, 0, imm=0), *prog[1:]])) == ("ok", 2, 4)


def test_nesting_deeper_than_the_translator_allows() -> None:
    checks = "\n".join(f"jeq %r1, {k}, out\nadd %r0, 1" for k in range(60))
    prog = f"mov %r0, 0\nmov %r1, {{x}}\n{checks}\nout:\nexit"
    for x in (0, 17, 59, 99):
        assert same(prog.format(x=x))[1] == min(x, 60)


def test_a_runaway_loop_with_an_if_inside_stops() -> None:
    prog = "mov %r0, 0\nloop:\njset %r0, 1, odd\nadd %r0, 3\nodd:\nadd %r0, 1\nja loop"
    assert same(prog, budget=1000) == ("limit",)


def test_conditions_of_every_kind_as_if_bodies() -> None:
    """Each conditional jump, 64 and 32 bits, immediate and register, as an absorbed `if`."""
    values = [0, 1, 5, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, (1 << 63) + 5, (1 << 64) - 1]
    for op in ("jeq", "jne", "jgt", "jge", "jlt", "jle", "jset", "jsgt", "jsge", "jslt", "jsle"):
        for width in ("", "32"):
            prog = f"""
                mov %r0, 0
                {op}{width} %r1, %r2, skip
                add %r0, 1
            skip:
                {op}{width} %r1, 5, skip2
                add %r0, 2
            skip2:
                exit
            """
            for a in values:
                for b in values[::3]:
                    same(prog, a, b)


FORWARD_EXITS = """
    mov %r0, 0
    mov %r1, 0
loop:
    mov %r2, %r1
    and %r2, 7
    jeq %r2, 5, out          # a forward jump out of the loop: counted through
    add %r0, %r2
    jgt %r0, 1000, out
    add %r1, 1
    jlt %r1, 50, loop
out:
    exit
"""

PLAIN_IF = """
    mov %r0, 0
    mov %r1, 0
    stdw [%r10-8], 0
loop:
    mov %r2, %r1
    and %r2, 3
    jeq %r2, 0, join         # over plain code: what follows the join is counted before the jump
    ldxdw %r3, [%r10-8]
    add %r3, %r1
    stxdw [%r10-8], %r3
join:
    add %r0, 1
    add %r1, 1
    jlt %r1, 40, loop
    ldxdw %r0, [%r10-8]
    exit
"""


@pytest.mark.parametrize("prog", [FORWARD_EXITS, PLAIN_IF], ids=["forward-exits", "plain-if"])
def test_counting_through_jumps_keeps_the_count_and_the_budget_exact(prog: str) -> None:
    """With the whole budget both tiers finish with the same count; one instruction less and both
    stop (a count charged too early would stop the translated tier sooner)."""
    insns = assemble(prog)
    done = same(insns)
    assert done[0] == "ok"
    assert same(insns, budget=done[2]) == done
    assert same(insns, budget=done[2] - 1) == ("limit",)
    assert "n -= " in TranslatedProgram(insns).source or prog is PLAIN_IF


def test_budget_edges_of_the_bench_programs() -> None:
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "bench" / "interp_bench.py"
    spec = importlib.util.spec_from_file_location("interp_bench", path)
    assert spec and spec.loader
    bench = importlib.util.module_from_spec(spec)
    sys.modules["interp_bench"] = bench  # (its dataclasses look their module up)
    spec.loader.exec_module(bench)
    for text in (bench.FNV1A, bench.PRIMES, bench.COLLATZ, bench.BUBBLE, bench.CALLS):
        insns = assemble(text)
        full = outcome(Interpreter, insns, budget=None)
        if full[0] != "ok":  # (fnv1a reads r1: without memory it faults, the same in both tiers)
            assert outcome(TranslatedProgram, insns) == full
            continue
        for budget in (full[2], full[2] - 1, full[2] // 3):
            assert outcome(TranslatedProgram, insns, budget=budget) == outcome(Interpreter, insns, budget=budget)
