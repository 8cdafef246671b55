"""`pybpf explain`: one program through every stage, on the seed demo and a packet-rewriting program."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from pybpf.cli.app import app, main
from pybpf.explain import default_packet, explain, render
from pybpf.toolchain import compile as compile_c

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "examples" / "seed-demo"


@pytest.fixture(scope="module")
def objs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("explain")
    return {name: compile_c(SEED / f"{name}.c", out / f"{name}.o") for name in ("demo", "demo_invalid")}


def test_the_seed_demo_goes_through_every_stage(objs: dict[str, Path]) -> None:
    ex = explain(objs["demo"], engine="interpreter")
    assert ex.accepted is True
    assert [s.name for s in ex.stages] == ["object", "source", "loader", "verifier", "rewrites", "jit", "run"]
    assert any("pkt_counter" in line for line in ex.stage("object").body)
    assert any("bpf_map_lookup_elem(&pkt_counter, &index)" in line for line in ex.stage("source").body)
    loader = ex.stage("loader")
    assert any("relocation: map -> pkt_counter" in line for line in loader.body)
    assert any("call 0x1" in line for line in loader.body)
    verifier = ex.stage("verifier")
    assert any(line.startswith("processed 13 insns") for line in verifier.summary)
    assert any("R0_w=map_value_or_null(id=1,map=pkt_counter,ks=4,vs=4)" in line for line in verifier.body)
    rewrites = ex.stage("rewrites")
    assert "-(85) call bpf_map_lookup_elem#1" in rewrites.body  # the helper call is gone ...
    assert "+(35) if r0 >= 0x1 goto pc+3" in rewrites.body  # ... inlined as the kernel does
    jit = ex.stage("jit")
    assert jit.data["bytes_jited"] > 0 and any("lock addl" in line for line in jit.body)
    run = ex.stage("run")
    assert run.data["retval"] == 2 and run.data["verdict"] == "XDP_PASS"
    assert run.data["map_changes"] == [{"map": "pkt_counter", "key": "00 00 00 00", "old": "00 00 00 00",
                                        "new": "01 00 00 00"}]


def test_a_rejected_program_stops_at_the_verifier_with_the_kernels_log(objs: dict[str, Path]) -> None:
    ex = explain(objs["demo_invalid"], log_level=1)
    assert ex.accepted is False
    assert [s.name for s in ex.stages][-1] == "verifier"
    v = ex.stage("verifier")
    assert v.data["errno"] == 13 and v.data["insn"] == 8
    assert "R0 invalid mem access 'map_value_or_null'" in v.body
    assert "rejected by the verifier" in render(ex)


def test_the_jit_engine_runs_the_same_stage(objs: dict[str, Path]) -> None:
    ex = explain(objs["demo"], engine="jit")
    assert ex.stage("run").data["verdict"] == "XDP_PASS"


def test_cli_text_json_and_errors(objs: dict[str, Path], tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["explain", str(objs["demo"]), "--stage", "run", "--lines", "0"])
    assert res.exit_code == 0, res.output
    assert "== 7. run:" in res.output and "== 1. object" not in res.output
    res = runner.invoke(app, ["-j", "explain", str(objs["demo"]), "name", "xdp_program"])
    data = json.loads(res.output)
    assert data["accepted"] is True and data["program"] == "xdp_program"
    assert [s["stage"] for s in data["stages"]][-1] == "run"
    pkt = tmp_path / "pkt.bin"
    pkt.write_bytes(default_packet()[:20])
    res = runner.invoke(app, ["explain", str(objs["demo"]), "data_in", str(pkt), "--stage", "run"])
    assert "input: 20-byte packet" in res.output
    assert main(["explain", str(objs["demo"]), "name", "nope"]) == 255
    garbage = tmp_path / "garbage.o"
    garbage.write_bytes(b"\x7fELF" + bytes(60))
    assert main(["explain", str(garbage)]) == 255
