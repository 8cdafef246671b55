"""``pybpf asm assemble`` / ``pybpf asm disassemble`` through click's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from pybpf.cli.app import app, main
from pybpf.isa.asm import assemble

ROOT = Path(__file__).resolve().parents[2]
SEED_XLATED = ROOT / "examples" / "seed-demo" / "demo.xlated.txt"

SRC = """r1 = 0
*(u32 *)(r10 -4) = r1
r2 = map[id:3]
call bpf_map_lookup_elem#1
if r0 == 0x0 goto out
lock *(u32 *)(r0 +0) += r1
out:
exit
"""


def test_assemble_then_disassemble_kernel(tmp_path: Path) -> None:
    src = tmp_path / "p.s"
    src.write_text(SRC)
    out = tmp_path / "p.bin"
    r = CliRunner().invoke(app, ["asm", "assemble", str(src), "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert out.read_bytes() == assemble(SRC).encode()
    r = CliRunner().invoke(app, ["asm", "disassemble", str(out)])
    assert r.exit_code == 0, r.output
    assert r.output.splitlines() == [
        "   0: (b7) r1 = 0",
        "   1: (63) *(u32 *)(r10 -4) = r1",
        "   2: (18) r2 = map[id:3]",
        "   4: (85) call bpf_map_lookup_elem#1",
        "   5: (15) if r0 == 0x0 goto pc+1",
        "   6: (c3) lock *(u32 *)(r0 +0) += r1",
        "   7: (95) exit",
    ]
    r = CliRunner().invoke(app, ["asm", "disassemble", str(out), "--opcodes"])
    assert r.output.splitlines()[1] == "       b7 01 00 00 00 00 00 00"


def test_llvm_dialect_and_json(tmp_path: Path) -> None:
    src = tmp_path / "p.s"
    src.write_text("r1 = 0x0\n*(u32 *)(r10 - 0x4) = r1\nr1 = 0x0 ll\ncall 0x1\nexit\n")
    out = tmp_path / "p.bin"
    assert CliRunner().invoke(app, ["asm", "assemble", "--dialect", "llvm", str(src), "-o", str(out)]).exit_code == 0
    r = CliRunner().invoke(app, ["asm", "disassemble", "--dialect", "llvm", str(out)])
    assert r.output == "       0:\tr1 = 0x0\n       1:\t*(u32 *)(r10 - 0x4) = r1\n       2:\tr1 = 0x0 ll\n" \
                       "       4:\tcall 0x1\n       5:\texit\n"
    r = CliRunner().invoke(app, ["-j", "asm", "disassemble", str(out)])
    recs = json.loads(r.output)
    assert recs[0] == {"pc": 0, "code": "0xb7", "text": "r1 = 0"}
    assert recs[2] == {"pc": 2, "code": "0x18", "text": "r1 = 0x0"}
    r = CliRunner().invoke(app, ["-j", "asm", "disassemble", "--dialect", "llvm", "--opcodes", str(out)])
    recs = json.loads(r.output)
    assert recs[1]["text"] == "*(u32 *)(r10 - 0x4) = r1"
    assert recs[2]["bytes"][0] == "0x18" and len(recs[2]["bytes"]) == 16


def test_assemble_to_stdout_and_from_stdin() -> None:
    r = CliRunner().invoke(app, ["asm", "assemble", "-"], input="exit\n")
    assert r.exit_code == 0
    assert r.stdout_bytes == bytes.fromhex("9500000000000000")


def test_whole_xlated_listing_round_trips(tmp_path: Path) -> None:
    out = tmp_path / "seed.bin"
    assert CliRunner().invoke(app, ["asm", "assemble", str(SEED_XLATED), "-o", str(out)]).exit_code == 0
    r = CliRunner().invoke(app, ["asm", "disassemble", str(out)])
    want = [ln for ln in SEED_XLATED.read_text().splitlines() if not ln.startswith(";") and not ln.endswith(":")]
    assert r.output.splitlines() == want


def test_errors_are_bpftool_style(tmp_path: Path, capsys: object) -> None:
    src = tmp_path / "bad.s"
    src.write_text("r0 = 0\nr1 = *(u32 *)(r2 +0\n")
    rc = main(["asm", "assemble", str(src), "-o", str(tmp_path / "x.bin")])
    err = capsys.readouterr().err  # type: ignore[attr-defined]
    assert rc == 255
    assert err.startswith(f"Error: {src}:2:1: unknown instruction")
    bad = tmp_path / "odd.bin"
    bad.write_bytes(b"\x18\x01\x00\x00\x00\x00\x00\x00")  # lddw without its second half
    rc = main(["asm", "disassemble", str(bad)])
    assert rc == 255
    assert "incomplete lddw" in capsys.readouterr().err  # type: ignore[attr-defined]
    rc = main(["-j", "asm", "disassemble", str(bad)])
    assert rc == 255
    assert json.loads(capsys.readouterr().out)["error"].startswith("insn 0: incomplete lddw")  # type: ignore[attr-defined]
