"""``pybpf verify``: verdicts, logs, JSON, exit status, options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from pybpf.cli.app import app

OBJS = Path(__file__).resolve().parents[1] / "data" / "objects"


def run(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, list(args))
    return res.exit_code, res.output


@pytest.fixture
def maps_obj() -> Path:
    path = OBJS / "maps_btf.o"
    if not path.exists():
        pytest.skip("test object not present")
    return path


def test_accepted_program(maps_obj: Path) -> None:
    code, out = run("verify", str(maps_obj))
    assert code == 0
    assert "use_maps (xdp, xdp): accepted," in out


def test_json_output(maps_obj: Path) -> None:
    code, out = run("verify", str(maps_obj), "-j")
    assert code == 0
    recs = json.loads(out)
    rec = next(r for r in recs if r["program"] == "use_maps")
    assert set(rec) == {"program", "section", "type", "accepted", "errno", "log", "insns_processed"}
    assert rec["accepted"] is True and rec["type"] == "xdp" and rec["insns_processed"] > 0


def test_log_level_prints_log(maps_obj: Path) -> None:
    code, out = run("verify", str(maps_obj), "--log-level", "2")
    assert code == 0
    assert "0: R1=ctx() R10=fp0" in out and "processed " in out


def test_rejected_program_exits_1_and_shows_log() -> None:
    path = OBJS / "externs.o"
    if not path.exists():
        pytest.skip("test object not present")
    code, out = run("verify", str(path))
    assert code == 1
    assert "use_externs (tc, sched_cls): rejected (EINVAL)" in out
    assert "0: R1=ctx() R10=fp0" in out  # the log of a rejection is shown even at level 0


def test_prog_and_type_and_flags(maps_obj: Path) -> None:
    code, out = run("verify", str(maps_obj), "--prog", "use_maps", "--type", "xdp", "--flag", "BPF_F_ANY_ALIGNMENT",
                    "--flag", "strict_alignment")
    assert code == 0, out
    code, out = run("verify", str(maps_obj), "--flag", "BPF_F_NOPE")
    assert code != 0 and "unknown program flag" in out


def test_unpriv_refuses_xdp(maps_obj: Path) -> None:
    code, out = run("verify", str(maps_obj), "--unpriv")
    assert code == 1 and "rejected (EPERM)" in out


def test_missing_program(maps_obj: Path) -> None:
    code, _out = run("verify", str(maps_obj), "--prog", "nope")
    assert code != 0
