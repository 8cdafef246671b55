"""bpf_fastcall (Linux 6.12): pattern recognition, the stack contract, spill/fill removal, stack depths.

Each program is one of tools/testing/selftests/bpf/progs/verifier_bpf_fastcall.c, assembled here,
with the selftest's own expectations: its ``__xlated`` lines matched as the kernel's test_loader
matches them (:mod:`pybpf.verifier.selftests`) and its ``stack depth`` message. The x86-64 variant:
``bpf_get_smp_processor_id`` is inlined as a per-CPU read, so its spills and fills can go.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from pybpf.isa.asm import assemble
from pybpf.isa.insn import Insn
from pybpf.uapi import ProgType
from pybpf.verifier import verify
from pybpf.verifier.api import VerifiedProgram
from pybpf.verifier.fastcall import ALL_CALLER_SAVED_REGS, helper_fastcall_clobber_mask
from pybpf.verifier.selftests import disasm_patterns, match_patterns, xlated_text

SMP = "call bpf_get_smp_processor_id#8"
PERCPU = "r0 = &(void __percpu *)(r0)"


def load(text: str, log_level: int = 4, callback: int | None = None) -> VerifiedProgram:
    """Verify as a raw tracepoint program; ``callback``: the slot of a bpf_loop callback (which
    needs func info)."""
    func_info = None if callback is None else [(0, "main", False), (callback, "cb", False)]
    return verify(assemble(text), prog_type=ProgType.RAW_TRACEPOINT, log_level=log_level, func_info=func_info)


def assert_xlated(v: VerifiedProgram, expected: list[str]) -> None:
    text = xlated_text(v.insns)
    assert match_patterns(text, disasm_patterns(expected)), text


def stack_depth_line(v: VerifiedProgram) -> str:
    return next(line for line in v.log.splitlines() if line.startswith("stack depth "))


# -- the positive cases: spills and fills removed ---------------------------------------------------


def test_simple_removes_all_five_pairs_and_the_stack() -> None:
    v = load(f"""
        r1 = 1
        r2 = 2
        r3 = 3
        r4 = 4
        r5 = 5
        *(u64 *)(r10 - 16) = r1
        *(u64 *)(r10 - 24) = r2
        *(u64 *)(r10 - 32) = r3
        *(u64 *)(r10 - 40) = r4
        *(u64 *)(r10 - 48) = r5
        {SMP}
        r5 = *(u64 *)(r10 - 48)
        r4 = *(u64 *)(r10 - 40)
        r3 = *(u64 *)(r10 - 32)
        r2 = *(u64 *)(r10 - 24)
        r1 = *(u64 *)(r10 - 16)
        exit""")
    assert_xlated(v, ["4: r5 = 5", "5: w0 = ", f"6: {PERCPU}", "7: r0 = *(u32 *)(r0 +0)", "8: exit"])
    # the fastcall area starts at -8 (the lowest spill, -48, plus five slots): depth 8
    assert stack_depth_line(v) == "stack depth 8"
    assert v.stack_depth == [8]


def test_canary_zero_spills() -> None:
    v = load(f"{SMP}\nexit", log_level=2)
    assert_xlated(v, [f"1: {PERCPU}", "...", "3: exit"])


def test_min_stack_offset_two_calls_two_areas() -> None:
    """The second call's pairs are at the lowest offsets: only they are a pattern; the first call's
    are ordinary stack use above the area."""
    v = load(f"""
        r1 = 1
        r2 = 2
        *(u64 *)(r10 - 8) = r1
        *(u64 *)(r10 - 16) = r2
        {SMP}
        r2 = *(u64 *)(r10 - 16)
        r1 = *(u64 *)(r10 - 8)
        *(u64 *)(r10 - 24) = r1
        *(u64 *)(r10 - 32) = r2
        {SMP}
        r2 = *(u64 *)(r10 - 32)
        r1 = *(u64 *)(r10 - 24)
        exit""", log_level=2)
    assert_xlated(v, ["0: r1 = 1", "1: r2 = 2", "2: *(u64 *)(r10 -8) = r1", "3: *(u64 *)(r10 -16) = r2", "...",
                      f"5: {PERCPU}", "...", "7: r2 = *(u64 *)(r10 -16)", "8: r1 = *(u64 *)(r10 -8)", "...",
                      f"10: {PERCPU}", "...", "12: exit"])


def test_helper_call_does_not_prevent_bpf_fastcall() -> None:
    """A pattern around a helper that is not inlined (bpf_get_prandom_u32 keeps r1 only by contract)
    stays, and keeps the stack; the inlined call's pair still goes."""
    v = load(f"""
        r1 = 1
        *(u64 *)(r10 - 8) = r1
        {SMP}
        r1 = *(u64 *)(r10 - 8)
        *(u64 *)(r10 - 8) = r1
        call bpf_get_prandom_u32#7
        r1 = *(u64 *)(r10 - 8)
        exit""")
    assert_xlated(v, [f"2: {PERCPU}"])
    assert stack_depth_line(v) == "stack depth 8"


def test_subprogs_use_independent_offsets() -> None:
    v = load(f"""
        r1 = 1
        *(u64 *)(r10 - 16) = r1
        {SMP}
        r1 = *(u64 *)(r10 - 16)
        call aux
        exit
        aux:
        r1 = 1
        *(u64 *)(r10 - 24) = r1
        {SMP}
        r1 = *(u64 *)(r10 - 24)
        *(u64 *)(r10 - 16) = r1
        exit""", log_level=2)
    assert_xlated(v, ["0: r1 = 1", "...", f"2: {PERCPU}", "...", "4: call pc+1", "5: exit", "6: r1 = 1", "...",
                      f"8: {PERCPU}", "...", "10: *(u64 *)(r10 -16) = r1", "11: exit"])
    # main: its area starts at -8; aux: at -16, and its store at -16 lies above the area
    assert v.stack_depth == [8, 16]


def test_cumulative_stack_depth_fits_once_the_fastcall_area_is_gone() -> None:
    """512 bytes in the caller plus one fastcall slot in the callee: Linux checks the combined size
    after removing the pair, so the program loads (before, "combined stack size ... Too large")."""
    v = load(f"""
        r1 = 42
        *(u64 *)(r10 - 512) = r1
        call sub
        exit
        sub:
        *(u64 *)(r10 - 8) = r1
        {SMP}
        r1 = *(u64 *)(r10 - 8)
        exit""")
    assert stack_depth_line(v) == "stack depth 512+0"
    assert PERCPU in xlated_text(v.insns)


def test_bpf_loop_interaction1_inlined_loop_spills_below_the_shrunk_stack() -> None:
    # as clang compiles the selftest: the callback's address is loaded into r6 before the asm block
    v = load(f"""
        r6 = subprog[+11]
        r1 = 1
        *(u64 *)(r10 - 16) = r1
        {SMP}
        r1 = *(u64 *)(r10 - 16)
        r2 = r6
        r3 = 0
        r4 = 0
        call bpf_loop#181
        r0 = 0
        exit
        r0 = 0
        exit""", callback=12)
    assert_xlated(v, ["2: r1 = 1", "3: w0 =", f"4: {PERCPU}", "5: r0 = *(u32 *)(r0 +0)", "6: r2 =", "7: r3 = 0",
                      "8: r4 = 0", "...", "12: *(u64 *)(r10 -32) = r6", "13: *(u64 *)(r10 -24) = r7",
                      "14: *(u64 *)(r10 -16) = r8", "...", "21: call pc+8", "...", "28: r0 = 0", "29: exit",
                      "30: r0 = 0", "31: exit"])
    assert stack_depth_line(v) == "stack depth 32+0"


def test_bpf_loop_interaction2_kept_pattern_keeps_the_stack() -> None:
    v = load(f"""
        r6 = subprog[+14]
        r1 = 42
        *(u64 *)(r10 - 16) = r1
        {SMP}
        r1 = *(u64 *)(r10 - 16)
        *(u64 *)(r10 - 16) = r1
        call bpf_get_prandom_u32#7
        r1 = *(u64 *)(r10 - 16)
        r2 = r6
        r3 = 0
        r4 = 0
        call bpf_loop#181
        r0 = 0
        exit
        r0 = 0
        exit""", callback=15)
    assert_xlated(v, ["2: r1 = 42", "3: w0 =", f"4: {PERCPU}", "5: r0 = *(u32 *)(r0 +0)",
                      "6: *(u64 *)(r10 -16) = r1", "7: call", "8: r1 = *(u64 *)(r10 -16)", "...",
                      "15: *(u64 *)(r10 -40) = r6", "16: *(u64 *)(r10 -32) = r7", "17: *(u64 *)(r10 -24) = r8"])
    assert stack_depth_line(v) == "stack depth 40+0"


def test_may_goto_counter_goes_below_the_shrunk_stack() -> None:
    v = load(f"""
        r1 = 1
        *(u64 *)(r10 - 16) = r1
        {SMP}
        r1 = *(u64 *)(r10 - 16)
        may_goto pc+1
        *(u64 *)(r10 - 8) = r1
        exit""")
    assert_xlated(v, ["0: *(u64 *)(r10 -16) =", "1: r1 = 1", "...", f"3: {PERCPU}", "...",
                      "5: r11 = *(u64 *)(r10 -16)", "6: if r11 == 0x0 goto pc+3", "7: r11 -= 1",
                      "8: *(u64 *)(r10 -16) = r11", "9: *(u64 *)(r10 -8) = r1", "10: exit"])
    assert stack_depth_line(v) == "stack depth 16"


# -- the negative cases: no pattern, or the pattern stays ------------------------------------------

KEPT = [
    # the fill loads another register than the spill stored
    ("wrong_reg_in_pattern1", f"r1 = 1\n*(u64 *)(r10 - 16) = r1\n{SMP}\nr2 = *(u64 *)(r10 - 16)\nexit",
     ["1: *(u64 *)(r10 -16) = r1", "...", f"3: {PERCPU}", "...", "5: r2 = *(u64 *)(r10 -16)"]),
    # r6 is callee-saved: never part of a pattern
    ("wrong_reg_in_pattern2", f"r6 = 1\n*(u64 *)(r10 - 16) = r6\n{SMP}\nr6 = *(u64 *)(r10 - 16)\nexit",
     ["1: *(u64 *)(r10 -16) = r6", "...", f"3: {PERCPU}", "...", "5: r6 = *(u64 *)(r10 -16)"]),
    # r0 is the helper's result: clobbered
    ("wrong_reg_in_pattern3", f"r0 = 1\n*(u64 *)(r10 - 16) = r0\n{SMP}\nr0 = *(u64 *)(r10 - 16)\nexit",
     ["1: *(u64 *)(r10 -16) = r0", "...", f"3: {PERCPU}", "...", "5: r0 = *(u64 *)(r10 -16)"]),
    # the spill is not through r10
    ("wrong_base_in_pattern", f"r1 = 1\nr2 = r10\n*(u64 *)(r2 - 16) = r1\n{SMP}\nr1 = *(u64 *)(r10 - 16)\nexit",
     ["2: *(u64 *)(r2 -16) = r1", "...", f"4: {PERCPU}", "...", "6: r1 = *(u64 *)(r10 -16)"]),
    # something else right after the call
    ("wrong_insn_in_pattern", f"r1 = 1\n*(u64 *)(r10 - 16) = r1\n{SMP}\nr2 = 1\nr1 = *(u64 *)(r10 - 16)\nexit",
     ["1: *(u64 *)(r10 -16) = r1", "...", f"3: {PERCPU}", "...", "5: r2 = 1"]),
    # the pair is not at the lowest offset of the function
    ("wrong_off_in_pattern1",
     f"r1 = 1\n*(u64 *)(r10 - 8) = r1\n*(u64 *)(r10 - 16) = r1\n{SMP}\nr1 = *(u64 *)(r10 - 8)\nexit",
     ["2: *(u64 *)(r10 -16) = r1", "...", f"4: {PERCPU}", "...", "6: r1 = *(u64 *)(r10 -8)"]),
    # not 64-bit (and not 8-aligned)
    ("wrong_off_in_pattern2", f"r1 = 1\n*(u32 *)(r10 - 4) = r1\n{SMP}\nr1 = *(u32 *)(r10 - 4)\nexit",
     ["1: *(u32 *)(r10 -4) = r1", "...", f"3: {PERCPU}", "...", "5: r1 = *(u32 *)(r10 -4)"]),
    ("wrong_size_in_pattern", f"r1 = 1\n*(u32 *)(r10 - 16) = r1\n{SMP}\nr1 = *(u32 *)(r10 - 16)\nexit",
     ["1: *(u32 *)(r10 -16) = r1", "...", f"3: {PERCPU}", "...", "5: r1 = *(u32 *)(r10 -16)"]),
    # the 64-bit pair at the lowest offset is a pattern, the 32-bit one above it is not
    ("partial_pattern", f"r1 = 1\nr2 = 2\n*(u32 *)(r10 - 8) = r1\n*(u64 *)(r10 - 16) = r2\n{SMP}\n"
                        "r2 = *(u64 *)(r10 - 16)\nr1 = *(u32 *)(r10 - 8)\nexit",
     ["2: *(u32 *)(r10 -8) = r1", "...", f"4: {PERCPU}", "...", "6: r1 = *(u32 *)(r10 -8)"]),
]

CONTRACT_BROKEN = [
    # the fastcall slot read by an instruction outside the pattern
    ("bad_fixed_read", f"r1 = 1\n*(u64 *)(r10 - 8) = r1\n{SMP}\nr1 = *(u64 *)(r10 - 8)\nr1 = r10\nr1 += -8\n"
                       "r1 = *(u64 *)(r1 - 0)\nexit",
     ["1: *(u64 *)(r10 -8) = r1", "...", f"3: {PERCPU}", "...", "5: r1 = *(u64 *)(r10 -8)"]),
    ("bad_fixed_write", f"r1 = 1\n*(u64 *)(r10 - 8) = r1\n{SMP}\nr1 = *(u64 *)(r10 - 8)\nr1 = r10\nr1 += -8\n"
                        "*(u64 *)(r1 - 0) = r1\nexit",
     ["1: *(u64 *)(r10 -8) = r1", "...", f"3: {PERCPU}", "...", "5: r1 = *(u64 *)(r10 -8)"]),
    # a variable-offset access that may reach the slot
    ("bad_varying_read", "r6 = *(u64 *)(r1 + 0)\nr6 &= 0x7\nr6 += 0x2\nr7 = 0\nr7 -= r6\nr1 = 1\n"
                         f"*(u64 *)(r10 - 16) = r1\n{SMP}\nr1 = *(u64 *)(r10 - 16)\nr1 = r10\nr1 += r7\n"
                         "r1 = *(u8 *)(r1 - 0)\nexit",
     ["6: *(u64 *)(r10 -16) = r1", "...", f"8: {PERCPU}", "...", "10: r1 = *(u64 *)(r10 -16)"]),
    ("bad_varying_write", "r6 = *(u64 *)(r1 + 0)\nr6 &= 0x7\nr6 += 0x2\nr7 = 0\nr7 -= r6\nr1 = 1\n"
                          f"*(u64 *)(r10 - 16) = r1\n{SMP}\nr1 = *(u64 *)(r10 - 16)\nr1 = r10\nr1 += r7\n"
                          "*(u8 *)(r1 - 0) = r7\nexit",
     ["6: *(u64 *)(r10 -16) = r1", "...", f"8: {PERCPU}", "...", "10: r1 = *(u64 *)(r10 -16)"]),
    # a callee writes the caller's slot through a pointer
    ("bad_write_in_subprog", f"r1 = 1\n*(u64 *)(r10 - 8) = r1\n{SMP}\nr1 = *(u64 *)(r10 - 8)\nr1 = r10\n"
                             "r1 += -8\ncall aux\nexit\naux:\nr0 = 1\n*(u64 *)(r1 - 0) = r0\nexit",
     ["1: *(u64 *)(r10 -8) = r1", "...", f"3: {PERCPU}", "...", "5: r1 = *(u64 *)(r10 -8)"]),
    # a helper writes the slot (bpf_probe_read_kernel's destination)
    ("bad_helper_write", f"r1 = 1\n*(u64 *)(r10 - 8) = r1\n{SMP}\nr1 = *(u64 *)(r10 - 8)\nr1 = r10\nr1 += -8\n"
                         "r2 = 1\nr3 = 42\ncall bpf_probe_read_kernel#113\nexit",
     ["1: *(u64 *)(r10 -8) = r1", "...", f"3: {PERCPU}", "...", "5: r1 = *(u64 *)(r10 -8)"]),
    # only the subprogram whose contract broke keeps its pairs
    ("invalidate_one_subprog", f"r1 = 1\n*(u64 *)(r10 - 8) = r1\n{SMP}\nr1 = *(u64 *)(r10 - 8)\nr1 = r10\n"
                               f"r1 += -8\nr1 = *(u64 *)(r1 - 0)\ncall aux\nexit\naux:\nr1 = 1\n"
                               f"*(u64 *)(r10 - 8) = r1\n{SMP}\nr1 = *(u64 *)(r10 - 8)\nexit",
     ["1: *(u64 *)(r10 -8) = r1", "...", f"3: {PERCPU}", "...", "5: r1 = *(u64 *)(r10 -8)", "...", "9: call pc+1",
      "...", "10: exit", "11: r1 = 1", "...", f"13: {PERCPU}", "...", "15: exit"]),
]


@pytest.mark.parametrize(("name", "text", "expected"), KEPT + CONTRACT_BROKEN,
                         ids=[c[0] for c in KEPT + CONTRACT_BROKEN])
def test_pairs_stay(name: str, text: str, expected: list[str]) -> None:
    v = load(text, log_level=2)
    assert_xlated(v, expected)


def test_wrong_reg_in_pattern1_keeps_its_stack_depth() -> None:
    v = load(KEPT[0][1])
    assert stack_depth_line(v) == "stack depth 16"


def test_a_jump_into_the_pattern_stops_it() -> None:
    """A pattern runs as a unit: one whose fill is a jump target is not grown past it."""
    v = load(f"""
        r0 = 0
        r1 = 1
        *(u64 *)(r10 - 8) = r1
        if r1 > 0 goto fill
        {SMP}
        fill:
        r1 = *(u64 *)(r10 - 8)
        exit""", log_level=2)
    assert "*(u64 *)(r10 -8) = r1" in xlated_text(v.insns)


def test_the_last_spill_may_be_jumped_to() -> None:
    """A jump to the first spill enters the pattern at its start: the pattern stays whole."""
    v = load(f"""
        r1 = 1
        if r1 > 0 goto spill
        r1 = 2
        spill:
        *(u64 *)(r10 - 8) = r1
        {SMP}
        r1 = *(u64 *)(r10 - 8)
        r0 = r1
        exit""")
    assert "(r10 -8)" not in xlated_text(v.insns)
    assert stack_depth_line(v) == "stack depth 0"


# -- the pieces ----------------------------------------------------------------------------------------


def test_clobber_mask_follows_the_prototype() -> None:
    from pybpf.progtypes.protos import proto_by_name

    smp = proto_by_name("bpf_get_smp_processor_id_proto")
    assert smp.allow_fastcall and helper_fastcall_clobber_mask(smp) == 0b000001
    probe = proto_by_name("bpf_probe_read_kernel_proto")
    assert not probe.allow_fastcall and helper_fastcall_clobber_mask(probe) == 0b001111
    assert ALL_CALLER_SAVED_REGS == 0b111111


@pytest.mark.parametrize("cpu", [0, 3])
def test_inlined_cpu_read_runs_in_every_engine(cpu: int) -> None:
    """``r0 = &(void __percpu *)(r0)`` adds the run's per-CPU area, whose first u32 is its CPU; the
    fastcall pair is gone, so r1 must come through untouched."""
    from pybpf.jit import prepare
    from pybpf.vm.helpers import HelperTable
    from pybpf.vm.interp import Interpreter
    from pybpf.vm.memory import AddressSpace
    from pybpf.vm.translate import TranslatedProgram

    v = load(f"r1 = 100\n*(u64 *)(r10 - 8) = r1\n{SMP}\nr1 = *(u64 *)(r10 - 8)\nr0 += r1\nexit")
    assert not any(i.code == 0x85 for i in v.insns) and v.stack_depth == [0]
    env = SimpleNamespace(cpu=cpu)
    for engine in (Interpreter, TranslatedProgram):
        assert engine(v.insns, helpers=HelperTable({}), space=AddressSpace()).run(0, env=env) == 100 + cpu
    jit = prepare(SimpleNamespace(insns=v.insns, used_maps={}), helpers=HelperTable({}))
    assert jit.run(0) == 100  # a JIT program without an env block runs on CPU 0


def test_percpu_instruction_is_internal() -> None:
    """The per-CPU mov (off -1) is the verifier's; a program may not contain it."""
    from pybpf.errors import VerifierError
    from pybpf.isa.insn import validate

    percpu = Insn(0xBF, 0, 0, -1, 0)
    assert validate(percpu) is not None
    with pytest.raises(VerifierError):
        verify([Insn(0xB4, 0, 0, 0, 0), percpu, Insn(0x95)], prog_type=ProgType.RAW_TRACEPOINT)
