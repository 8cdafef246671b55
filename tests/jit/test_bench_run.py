"""A smoke test of ``make bench`` (bench/run.py) with tiny repeat counts: the whole path runs, every
engine's result is checked, the table and the JSON are written. No timing is asserted."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from pybpf.errors import ToolchainError

ROOT = Path(__file__).resolve().parents[2]


def _bench_run() -> Any:
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_run"] = mod  # dataclasses look their module up while the class is built
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.toolchain
def test_bench_run_quick(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pybpf.toolchain import find_compiler

    try:
        find_compiler()
    except ToolchainError as e:
        pytest.skip(f"no BPF C compiler: {e}")
    bench = _bench_run()
    out = tmp_path / "bench.txt"
    rc = bench.main(["--quick", "--no-kernel", "--rows", "table", "--progs", "xdp_count,xdp_lpm_route",
                     "--out", str(out)])
    assert rc == 0
    text = out.read_text()
    assert "xdp_count*" in text and "xdp_lpm_route*" in text
    assert "results vs expected.json: all ok" in text
    assert "kernel: " in text and "skipped: disabled (--no-kernel)" in text
    assert "seed demo (" in text and "compile_program" in text
    report = json.loads(out.with_suffix(".json").read_text())
    rows = {(r["prog"], r["frame"]): r for r in report["rows"]}
    assert set(rows) == {("xdp_count", "udp64"), ("xdp_lpm_route", "udp64")}  # the README table's rows only
    for r in rows.values():
        assert r["path"] == "verifier"  # the real load path, no fallback
        assert r["wrong"] == []
        assert r["results"]["jit"] == r["results"]["interpreter"] == r["results"]["translate"] == r["expected"]
        assert r["jit_ns"] > 0 and r["jit_batch_ns"] > 0 and r["interp_ns"] > 0 and r["kernel_ns"] is None
    assert rows[("xdp_lpm_route", "udp64")]["expected"] == 3  # XDP_TX: a route matched, MACs checked
    assert report["seed_demo"]["slots"] > 0 and report["seed_demo"]["compile_us_best"] > 0
    assert "xdp_count*" in capsys.readouterr().out  # the table goes to stdout as well


def test_bench_row_bookkeeping() -> None:
    bench = _bench_run()
    row = bench.Row("xdp_pass", "udp64", 64, True, 2, jit_ns=3.0, kernel_ns=6.0)
    assert row.jit_ratio == 0.5
    assert bench.Row("xdp_pass", "udp64", 64, True, 2, jit_ns=3.0, kernel_ns=-1.0).jit_ratio is None
    report = {"rows": [{**vars(row), "jit_ratio": row.jit_ratio}], "seed_demo": {
        "slots": 19, "compile_us_best": 100.0, "compile_us_median": 110.0, "engine_us_best": 300.0,
        "engine_us_median": 310.0}, "machine": {"cpu": "x", "nproc": 2, "kernel": "6.18", "python": "3.11"},
        "compiler": "clang", "kernel_baseline": "measured", "notes": [], "quick": False}
    text = bench.render(report)
    assert "README rows PASS" in text and "0.50x" in text and "target < 5 ms: PASS" in text
    slow = bench.Row("xdp_pass", "udp64", 64, True, 2, jit_ns=9.5, kernel_ns=6.0)
    report["rows"] = [{**vars(slow), "jit_ratio": slow.jit_ratio}]
    assert "README rows FAIL" in bench.render(report)
