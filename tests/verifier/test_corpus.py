"""The Linux 6.12 verifier selftests (built by shared/tools/verifier-selftests into $PYBPF_VST,
default /work/vst): a sample of objects must keep their verdict and message agreement. The full
scoreboard is bench/verifier_score.py (make score)."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

CORPUS = Path(os.environ.get("PYBPF_VST", "/work/vst"))
SAMPLE = ("verifier_and.o", "verifier_bounds.o", "verifier_xdp_direct_packet_access.o", "verifier_ref_tracking.o",
          "verifier_spill_fill.o", "verifier_unpriv.o", "verifier_cfg.o", "verifier_value_ptr_arith.o")


def _scorer():  # type: ignore[no-untyped-def]
    path = Path(__file__).resolve().parents[2] / "bench" / "verifier_score.py"
    spec = importlib.util.spec_from_file_location("verifier_score", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
@pytest.mark.parametrize("obj", SAMPLE)
def test_corpus_sample(obj: str) -> None:
    if not (CORPUS / "manifest.json").exists():
        pytest.skip("verifier selftest corpus not built")
    score = _scorer()
    manifest = json.loads((CORPUS / "manifest.json").read_text())
    specs = [s for s in manifest["programs"] if s["object"] == obj and not s["auxiliary"] and s["privileged"]
             and s["prog_type"] in score.MAIN_TYPES]
    results = [score.run_one(str(CORPUS), s) for s in specs]
    assert not [r for r in results if r.error.startswith("CRASH")]
    verdicts = sum(r.verdict_ok for r in results)
    assert verdicts >= 0.95 * len(results), [(r.function, r.expect, r.accepted) for r in results if not r.verdict_ok]
    with_msgs = [r for r in results if r.msgs_expected]
    ok = sum(bool(r.msgs_ok) for r in with_msgs)
    assert ok >= 0.9 * len(with_msgs), [r.function for r in with_msgs if not r.msgs_ok]


@pytest.mark.slow
@pytest.mark.parametrize("obj", ("verifier_unpriv.o", "verifier_value_ptr_arith.o", "verifier_map_ptr_mixing.o",
                                 "verifier_bounds_deduction.o"))
def test_corpus_sample_unprivileged(obj: str) -> None:
    if not (CORPUS / "manifest.json").exists():
        pytest.skip("verifier selftest corpus not built")
    score = _scorer()
    manifest = json.loads((CORPUS / "manifest.json").read_text())
    specs = [s for s in manifest["programs"] if s["object"] == obj and not s["auxiliary"] and s["unprivileged"]]
    results = [score.run_one(str(CORPUS), s, True) for s in specs]
    assert results and not [r for r in results if r.error.startswith("CRASH")]
    verdicts = sum(r.verdict_ok for r in results)
    assert verdicts >= 0.95 * len(results), [(r.function, r.expect, r.accepted) for r in results if not r.verdict_ok]
    with_msgs = [r for r in results if r.msgs_expected]
    ok = sum(bool(r.msgs_ok) for r in with_msgs)
    assert ok >= 0.9 * len(with_msgs), [r.function for r in with_msgs if not r.msgs_ok]
