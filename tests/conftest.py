"""Shared fixtures and paths for the test suite."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
CONFORMANCE = DATA / "conformance"
SEED_DEMO = ROOT / "examples" / "seed-demo"
BENCH_PROGS = ROOT / "bench" / "progs"

settings.register_profile("default", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("default")


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT
