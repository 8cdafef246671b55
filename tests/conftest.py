"""Shared fixtures and paths for the test suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
CONFORMANCE = DATA / "conformance"
SEED_DEMO = ROOT / "examples" / "seed-demo"
BENCH_PROGS = ROOT / "bench" / "progs"

settings.register_profile("default", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True)
# CI runs the same examples every time (a red CI must be reproducible from its log); development runs
# explore new random examples on every run. PYBPF_HYPOTHESIS_PROFILE overrides either way.
settings.register_profile("ci", parent=settings.get_profile("default"), derandomize=True)
settings.load_profile(os.environ.get("PYBPF_HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "default"))


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT
