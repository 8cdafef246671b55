"""The translated tier against the reference interpreter on random programs: same r0, same memory,
same instruction count, or the same failure (type, pc, message)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pybpf.errors import ExecutionError, InstructionLimitExceeded
from pybpf.isa import Insns
from pybpf.vm import AddressSpace, Execution, Interpreter, RegionKind, SkbView, TranslatedProgram
from pybpf.vm.conformance import HARNESS_HELPERS
from pybpf.vm.engine import Engine

from .progen import MEM_SIZE, alu_programs, programs

BUDGET = 3000


def run(cls: type[Engine], insns: Insns, memory: bytes, args: tuple[int, ...] = ()) -> tuple[Any, bytes]:
    space = AddressSpace()
    mem = bytearray(memory)
    region = space.add(mem, RegionKind.MEM, "input")
    engine = cls(insns, space=space, helpers=HARNESS_HELPERS)
    ex = Execution(space, budget=BUDGET, skb=SkbView(region.address(), len(mem), network_offset=14))
    try:
        r0 = engine.run(region.address(), len(mem), *args, execution=ex)
        outcome: Any = ("ok", r0, ex.insn_count)
    except InstructionLimitExceeded:
        outcome = ("limit",)
    except ExecutionError as e:
        outcome = ("error", type(e).__name__, e.pc, str(e))
    return outcome, bytes(mem)


def check_same(insns: Insns, memory: bytes) -> tuple[Any, bytes]:
    ref = run(Interpreter, insns, memory)
    fast = run(TranslatedProgram, insns, memory)
    if ref[0] == ("limit",):
        assert fast[0] == ("limit",), (ref, fast)
        return ref
    assert fast == ref, (ref[0], fast[0])
    return ref


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(programs(), st.binary(min_size=MEM_SIZE, max_size=MEM_SIZE))
def test_translated_tier_matches_the_interpreter(insns: Insns, memory: bytes) -> None:
    check_same(insns, memory)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(alu_programs())
def test_arithmetic_matches(insns: Insns) -> None:
    outcome = check_same(insns, bytes(MEM_SIZE))[0]
    assert outcome[0] == "ok", outcome


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(programs(max_len=60), st.binary(min_size=MEM_SIZE, max_size=MEM_SIZE))
def test_longer_programs_match(insns: Insns, memory: bytes) -> None:
    check_same(insns, memory)


def test_generator_reaches_every_outcome() -> None:
    """The generator is only useful if it produces successes, faults and runaways alike."""
    seen: set[str] = set()

    @settings(max_examples=300, database=None)
    @given(programs(), st.binary(min_size=MEM_SIZE, max_size=MEM_SIZE))
    def probe(insns: Insns, memory: bytes) -> None:
        outcome = run(Interpreter, insns, memory)[0]
        seen.add(outcome[0] if outcome[0] != "error" else outcome[1])

    probe()
    assert {"ok", "limit", "MemoryFault"} <= seen, seen
