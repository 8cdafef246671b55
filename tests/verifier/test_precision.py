"""Precision tracking, pruning on imprecise scalars, loop handling (may_goto widening, infinite
loop detection), linked registers and log level 4."""

from __future__ import annotations

import pytest

from pybpf.errors import VerifierError
from pybpf.isa.asm import assemble
from pybpf.uapi import MapType, ProgType
from pybpf.verifier import verify
from pybpf.verifier.specmaps import SpecMap


def log_of(text: str, **kw: object) -> str:
    kw.setdefault("log_level", 2)
    return verify(assemble(text), **kw).log  # type: ignore[arg-type]


def test_zero_spill_marks_the_source_precise() -> None:
    # the kernel (checked against a live one) backtracks r1 to its constant when a zero is stored
    # through a narrow write, the slot becoming STACK_ZERO
    log = log_of("r1 = 0\n*(u32 *)(r10 -4) = r1\nr0 = 0\nexit")
    assert ("1: (63) *(u32 *)(r10 -4) = r1\n"
            "mark_precise: frame0: last_idx 1 first_idx 0 subseq_idx -1 \n"
            "mark_precise: frame0: regs=r1 stack= before 0: (b7) r1 = 0\n"
            "2: R1_w=0 R10=fp0 fp-8=0000????\n") in log


def test_backtracking_walks_through_alu_and_into_the_parent_state() -> None:
    text = ("r0 = *(u32 *)(r1 +0)\n"      # unknown
            "r6 = 2\n"
            "if r0 > 0x7 goto pc+1\n"     # a jump: a checkpoint may form at its target
            "r6 = 3\n"
            "r6 *= 2\n"
            "r7 = r10\n"
            "r7 += r6\n"                   # pointer arithmetic needs r6's exact value
            "r0 = 0\nexit")
    log = log_of(text, prog_flags=8)  # BPF_F_TEST_STATE_FREQ: checkpoints everywhere
    assert "mark_precise: frame0: regs=r6 stack= before 4: (27) r6 *= 2" in log
    assert "mark_precise: frame0: regs=r6 stack= before 3: (b7) r6 = 3" in log
    assert "mark_precise: frame0: parent state regs=r6 stack=:" in log


def test_imprecise_scalars_do_not_block_pruning() -> None:
    # both sides leave different constants in r2, which nothing needs precisely: the second path
    # is pruned where they meet; once r2 indexes the stack, it is not
    join = "r0 = *(u32 *)(r1 +0)\nif r0 > 0x7 goto pc+2\nr2 = 1\ngoto pc+1\nr2 = 2\n"
    pruned = log_of(join + "r3 = r2\nr0 = 0\nexit", prog_flags=8)
    assert "5: safe" in pruned
    assert "processed 9 insns" in pruned
    precise = log_of(join + "r3 = r10\nr3 += r2\nr3 += -8\nr0 = 0\nexit", prog_flags=8)
    assert "5: safe" not in precise
    assert "regs=r2 stack= before 4: (b7) r2 = 2" in precise


def test_infinite_loop_detected() -> None:
    with pytest.raises(VerifierError) as e:
        verify(assemble("r0 = 0\ngoto pc+0\nif r0 < 4 goto pc-2\nexit"), prog_type=ProgType.TRACEPOINT, log_level=1)
    assert e.value.message == "infinite loop detected at insn 1"
    assert "cur state: R0=0 R1=ctx() R10=fp0" in e.value.log


def test_may_goto_loop_converges_by_widening_its_counter() -> None:
    # r6 counts iterations but feeds nothing precise: widened, the loop converges in a few states
    text = ("r6 = 0\n"
            "may_goto pc+2\n"
            "r6 += 1\n"
            "goto pc-3\n"
            "r0 = 0\nexit")
    v = verify(assemble(text), log_level=1)
    processed = int(v.log.split()[1])
    assert processed < 50


def test_linked_registers_beyond_six_lose_their_id() -> None:
    text = ("call bpf_ktime_get_ns\nr0 &= 255\nr1 = r0\nr2 = r0\nr3 = r0\nr4 = r0\nr5 = r0\nr6 = r0\n"
            "if r0 > 0x7 goto pc+0\nr6 = r6\nr0 = 0\nexit")
    log = log_of(text, prog_flags=8)
    assert "8: (25) if r0 > 0x7 goto pc+0         ; R0=scalar(id=1" in log
    assert "9: (bf) r6 = r6                       ; R6_w=scalar(id=2" in log


def test_log_level_4_prints_only_statistics() -> None:
    v = verify(assemble("r0 = 0\nif r0 > 0x3 goto pc+0\nexit"), log_level=4)
    lines = v.log.splitlines()
    assert lines[0].startswith("verification time ") and lines[1] == "stack depth 0"
    assert lines[2].startswith("processed 3 insns (limit 1000000)") and len(lines) == 3


def test_user_ringbuf_drain_callback_is_verified() -> None:
    # the callback body stores 32 into the context slot; the caller then indexes a 2-byte value
    # with it: the kernel rejects, which requires walking the callback
    rb = SpecMap(3, "rb", MapType.USER_RINGBUF, 0, 0, 4096)
    arr = SpecMap(4, "arr", MapType.ARRAY, 4, 2, 1)
    text = ("r1 = 0\n*(u64 *)(r10 -8) = r1\n"
            "r1 = map[id:3]\nr2 = subprog[+11]\nr3 = r10\nr3 += -8\nr4 = 0\n"
            "call bpf_user_ringbuf_drain\n"
            "r1 = map[id:4][0]+0\n"
            "r2 = *(u64 *)(r10 -8)\nr1 += r2\nr0 = *(u8 *)(r1 +0)\nexit\n"
            "r1 = 32\n*(u64 *)(r2 +0) = r1\nr0 = 0\nexit")
    with pytest.raises(VerifierError) as e:
        verify(assemble(text), prog_type=ProgType.RAW_TRACEPOINT, maps={3: rb, 4: arr}, func_info=[(0, "main", True),
               (16, "cb", False)], log_level=1)
    assert "invalid access to map value, value_size=2 off=32 size=1" in e.value.log
