"""The Linux 6.12 verifier selftests (built by tools/verifier-selftests/build; found where
``bench/verifier_score.py`` looks: $PYBPF_VST, else ~/.cache/pybpf/vst, else /work/vst when it
exists): a sample of objects must keep their verdict and message agreement. The tests skip when no
corpus is built. The full scoreboard is bench/verifier_score.py (make score)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .corpus import corpus_dir, manifest, scorer

SAMPLE = ("verifier_and.o", "verifier_bounds.o", "verifier_xdp_direct_packet_access.o", "verifier_ref_tracking.o",
          "verifier_spill_fill.o", "verifier_unpriv.o", "verifier_cfg.o", "verifier_value_ptr_arith.o")


@pytest.mark.slow
@pytest.mark.parametrize("obj", SAMPLE)
def test_corpus_sample(obj: str) -> None:
    programs = manifest()["programs"]
    score = scorer()
    specs = [s for s in programs if s["object"] == obj and not s["auxiliary"] and s["privileged"]
             and s["prog_type"] in score.MAIN_TYPES]
    results = [score.run_one(str(corpus_dir()), s) for s in specs]
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
    programs = manifest()["programs"]
    score = scorer()
    specs = [s for s in programs if s["object"] == obj and not s["auxiliary"] and s["unprivileged"]]
    results = [score.run_one(str(corpus_dir()), s, True) for s in specs]
    assert results and not [r for r in results if r.error.startswith("CRASH")]
    verdicts = sum(r.verdict_ok for r in results)
    assert verdicts >= 0.95 * len(results), [(r.function, r.expect, r.accepted) for r in results if not r.verdict_ok]
    with_msgs = [r for r in results if r.msgs_expected]
    ok = sum(bool(r.msgs_ok) for r in with_msgs)
    assert ok >= 0.9 * len(with_msgs), [r.function for r in with_msgs if not r.msgs_ok]


def test_default_corpus_location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """$PYBPF_VST first; else the cache directory when it holds a corpus; else the development
    copy when it exists; else the cache directory, where ``make score`` builds one."""
    score = scorer()
    cache = tmp_path / "xdg" / "pybpf" / "vst"
    dev = tmp_path / "dev"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(score, "DEV_CORPUS", dev)
    monkeypatch.delenv("PYBPF_VST", raising=False)
    assert score.default_corpus() == cache
    dev.mkdir()
    (dev / "manifest.json").write_text("{}")
    assert score.default_corpus() == dev
    cache.mkdir(parents=True)
    (cache / "manifest.json").write_text("{}")
    assert score.default_corpus() == cache
    monkeypatch.setenv("PYBPF_VST", str(tmp_path / "elsewhere"))
    assert score.default_corpus() == tmp_path / "elsewhere"


def test_build_script_is_vendored() -> None:
    """The corpus builder ships with the repository (tools/verifier-selftests), executable."""
    import os

    tools = Path(__file__).resolve().parents[2] / "tools" / "verifier-selftests"
    for name in ("build", "kernel-oracle", "manifest.py", "README.md"):
        assert (tools / name).is_file(), name
    assert os.access(tools / "build", os.X_OK)
    assert tools / "build" == scorer().BUILD_SCRIPT
