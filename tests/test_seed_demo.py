"""`make demo` end to end: the seed XDP counter compiled, loaded, verified, run, and rejected."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_seed_demo_script_passes_every_check() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "seed_demo.py"), "--runs", "200"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "seed demo: all checks passed" in out
    assert out.count("[ok]") == 11 and "FAILED" not in out
    assert "R0 invalid mem access 'map_value_or_null'" in out
    assert "Return value: 2, duration (average):" in out
