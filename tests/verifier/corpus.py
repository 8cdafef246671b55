"""Access to the Linux 6.12 verifier-selftest corpus for the tests: the scoreboard module
(bench/verifier_score.py, loaded once) and the corpus it would use (:func:`default_corpus`:
$PYBPF_VST, else ~/.cache/pybpf/vst, else /work/vst when it exists). Tests that need the corpus
call :func:`manifest`, which skips them when no corpus is built (``make score`` builds one)."""

from __future__ import annotations

import importlib.util
import json
import sys
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

__all__ = ["corpus_dir", "manifest", "scorer"]


@cache
def scorer() -> ModuleType:
    """bench/verifier_score.py as a module (its ``run_one``, ``MAIN_TYPES``, ``default_corpus``...)."""
    path = Path(__file__).resolve().parents[2] / "bench" / "verifier_score.py"
    spec = importlib.util.spec_from_file_location("verifier_score", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def corpus_dir() -> Path:
    return Path(scorer().default_corpus())


@cache
def _manifest(path: Path) -> dict[str, Any]:
    return json.loads((path / "manifest.json").read_text())


def manifest() -> dict[str, Any]:
    """The corpus manifest, or skip the calling test when there is no corpus."""
    path = corpus_dir()
    if not (path / "manifest.json").exists():
        pytest.skip(f"verifier selftest corpus not built ({path}; make score builds it)")
    return _manifest(path)
