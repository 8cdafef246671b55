"""The ISA conformance suites under the JIT: the same verdict as the interpreter on every file.

bpf_conformance/tests and uBPF's ISA tests must all pass (skips are the runner's non-ISA files);
bpf_conformance/negative holds runner self-tests, some of which must FAIL — there the JIT must fail
exactly where the interpreter does.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pybpf.jit import conformance_engine
from pybpf.vm.conformance import ENGINES, Outcome, collect, get_engine, run_file

SUITES = Path(__file__).resolve().parents[1] / "data" / "conformance"
FILES = collect([SUITES / "bpf_conformance" / "tests", SUITES / "bpf_conformance" / "negative", SUITES / "ubpf"])


def test_the_runner_finds_the_jit_engine() -> None:
    assert get_engine("jit") is conformance_engine
    assert len(FILES) == 477


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(SUITES)))
def test_jit_agrees_with_the_interpreter(path: Path) -> None:
    jit = run_file(path, conformance_engine)
    ref = run_file(path, ENGINES["interpreter"])
    assert jit.outcome is ref.outcome, f"jit: {jit.reason} / interpreter: {ref.reason}"
    if path.name != "error.data":  # that one returns r10: a stack address, different in every engine
        assert jit.actual == ref.actual, f"jit: {jit.reason} / interpreter: {ref.reason}"
    if "negative" not in path.parts:
        assert jit.outcome is not Outcome.FAILED, jit.reason
