"""Run the data-driven cases of ``cases.py`` through :func:`pybpf.verifier.verify`."""

from __future__ import annotations

import re

import pytest

from pybpf.errors import VerifierError
from pybpf.isa.asm import assemble
from pybpf.verifier import verify
from pybpf.verifier.specmaps import SpecMap

from .cases import CASES, Case


def in_order(log: str, expected: tuple[str, ...]) -> bool:
    pos = 0
    for item in expected:
        at = log.find(item, pos)
        if at < 0:
            return False
        pos = at + len(item)
    return True


def run_case(case: Case, **kw: object) -> tuple[bool, int, str]:
    insns = assemble(case.text)
    maps = {fd: SpecMap(fd, f"m{fd}", *spec) for fd, spec in case.maps.items()}
    try:
        v = verify(insns, prog_type=case.prog_type, maps=maps, prog_flags=case.flags, log_level=case.log_level,
                   unprivileged=case.unprivileged, expected_attach_type=case.attach, **kw)  # type: ignore[arg-type]
    except VerifierError as e:
        return False, e.errno or 0, e.log
    return True, 0, v.log


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(case: Case) -> None:
    accepted, err, log = run_case(case)
    assert accepted == case.accept, log
    if not case.accept:
        assert err == case.errno, log
    assert in_order(log, case.log), log
    # every log, accepted or not, ends with the statistics line
    assert re.search(r"processed \d+ insns \(limit 1000000\) max_states_per_insn \d+ total_states \d+ "
                     r"peak_states \d+ mark_read \d+\n$", log), log


def test_log_level_zero_keeps_the_message() -> None:
    with pytest.raises(VerifierError) as e:
        verify(assemble("r0 = r5\nexit"), log_level=0)
    assert e.value.log == ""
    assert e.value.message == "R5 !read_ok"
    assert e.value.insn_idx == 0
    assert e.value.errno == 13


def test_error_carries_source_line() -> None:
    from pybpf.isa import SourceLine

    insns = list(assemble("r0 = r5\nexit"))
    insns[0] = insns[0].with_meta(source=SourceLine("dir/x.c", 7, 3, "  return y;"))
    with pytest.raises(VerifierError) as e:
        verify(insns, log_level=1)
    assert e.value.source_line == "return y; @ x.c:7"
    assert "; return y; @ x.c:7\n0: (bf) r0 = r5\nR5 !read_ok" in e.value.log


def test_complexity_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    import pybpf.verifier.walk as walk

    monkeypatch.setattr(walk, "BPF_COMPLEXITY_LIMIT_INSNS", 500)
    with pytest.raises(VerifierError) as e:
        verify(assemble("r0 = 0\nr1 = 0\nr1 += 1\nif r1 < 0x100000 goto pc-2\nexit"), log_level=1)
    assert e.value.errno == 7
    assert "BPF program is too large. Processed 501 insn" in e.value.log


def test_unprivileged_type_refused() -> None:
    from pybpf.uapi import ProgType

    with pytest.raises(VerifierError) as e:
        verify(assemble("r0 = 2\nexit"), prog_type=ProgType.XDP, unprivileged=True)
    assert e.value.errno == 1


def test_bad_flags_and_empty_program() -> None:
    with pytest.raises(VerifierError):
        verify(assemble("r0 = 0\nexit"), prog_flags=1 << 20)
    with pytest.raises(VerifierError):
        verify([])
