"""Issue 6: "a memory fault in JIT code must never be reachable from a verified program".

Every program of the Linux 6.12 verifier-selftest corpus (XDP, socket filter, tc) that pybpf's
verifier accepts runs under the JIT on a few packets — zeros and random frames of 14 to 1500 bytes —
through ``BPF_PROG_TEST_RUN`` (``engine="jit"``), in a subprocess (``corpus_runs.py``) so that a crash
is this test failing with the program's name rather than the test runner dying; its return value and
packet out must equal the interpreter's (the driver documents the few programs whose results depend
on addresses, on memory they never wrote, on the clock or randomness). Skips when no corpus is built
($PYBPF_VST, ~/.cache/pybpf/vst or /work/vst; ``make score`` builds it).
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.mark.slow
@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="the JIT emits x86-64")
def test_accepted_corpus_programs_run_under_the_jit() -> None:
    proc = subprocess.run([sys.executable, str(HERE / "corpus_runs.py")], capture_output=True, text=True,
                          timeout=1800)
    last = [line for line in proc.stderr.splitlines() if line.startswith("RUN ")][-1:]
    assert proc.returncode == 0, f"the process died ({proc.returncode}) running {last}: {proc.stderr[-2000:]}"
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    if "skip" in summary:
        pytest.skip(summary["skip"])
    assert summary["unsound"] == []  # the interpreter never faulted on an accepted program
    assert summary["mismatches"] == []
    assert summary["loaded"] > 400 and summary["jit_runs"] > 4 * 400
    assert summary["agree"] > 0.75 * summary["jit_runs"], summary
