"""Garbage in, structured errors out: random bytes through both tiers, random text through the
assembler, malformed test files through the runner."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pybpf.errors import AsmError, DecodeError, PybpfError
from pybpf.isa import decode
from pybpf.isa.conformance_asm import assemble
from pybpf.vm import AddressSpace, Interpreter, RegionKind, TranslatedProgram
from pybpf.vm.conformance import HARNESS_HELPERS, Outcome, get_engine, run_file
from pybpf.vm.loadcheck import check_program


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(min_size=8, max_size=8 * 24).map(lambda b: b[: len(b) // 8 * 8]))
def test_random_bytes_never_escape_as_foreign_exceptions(raw: bytes) -> None:
    try:
        insns = decode(raw, strict=False)
    except DecodeError:
        return
    outcomes = []
    for cls in (Interpreter, TranslatedProgram):
        space = AddressSpace()
        mem = space.add(bytearray(32), RegionKind.MEM)
        try:
            outcomes.append(("ok", cls(insns, space=space, helpers=HARNESS_HELPERS).run(mem.address(), 32,
                                                                                        budget=500)))
        except PybpfError as e:
            outcomes.append((type(e).__name__,))
    assert outcomes[0] == outcomes[1]


@settings(max_examples=300)
@given(st.text(alphabet="movaddjeqlxbhwd %r0123456789[]+-,:#\nxlockfetchcall", max_size=120))
def test_the_assembler_only_raises_asm_errors(text: str) -> None:
    try:
        assemble(text)
    except AsmError as e:
        assert e.line >= 1 and e.col >= 1


@settings(max_examples=200)
@given(st.binary(max_size=8 * 16).map(lambda b: b[: len(b) // 8 * 8]))
def test_the_load_check_only_raises_decode_errors(raw: bytes) -> None:
    try:
        check_program(decode(raw, strict=False), helpers=HARNESS_HELPERS, max_slots=100)
    except DecodeError as e:
        assert e.insn_idx is not None


def test_malformed_test_files_fail_with_a_reason(tmp_path: Path) -> None:
    cases = {
        "garbage-raw.data": "-- raw\nnot-a-number\n-- result\n0\n",
        "bad-mem.data": "-- asm\nexit\n-- mem\nzz yy\n-- result\n0\n",
        "bad-result.data": "-- asm\nexit\n-- result\nseven\n",
        "missing-include.data": "-- asm @ nowhere.asm\n-- result\n0\n",
        "binary.data": "\x00\xff-- asm\n\x01\n",
    }
    for name, text in cases.items():
        (tmp_path / name).write_text(text, errors="surrogateescape")
        r = run_file(tmp_path / name, get_engine("interpreter"))
        assert r.outcome is Outcome.FAILED and r.reason, name
