"""``pybpf cc``: a compiler-style command line over pybpf.toolchain."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from pybpf.cli.app import main
from pybpf.elf import ObjectSpec

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(importlib.util.find_spec("ziglang") is None, reason="ziglang not installed")


def test_cc_with_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "p.c"
    src.write_text(
        "#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\n"
        'SEC("xdp") int p(struct xdp_md *c) { return VAL; }\nchar LICENSE[] SEC("license") = "GPL";\n'
    )
    out = tmp_path / "p.o"
    rc = main(
        ["cc", str(src), "-o", str(out), "-O2", "-g", "-mcpu=v3", "-DVAL=3", f"-I{tmp_path}", "--compiler", "zig", "-v"]
    )
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "bpfel-freestanding-none" in err and "-mcpu=v3" in err and "-DVAL=3" in err
    assert ObjectSpec.from_path(str(out)).programs["p"].insns[0].imm == 3


def test_cc_default_output_name(tmp_path: Path) -> None:
    src = tmp_path / "demo.c"
    src.write_text((ROOT / "examples/seed-demo/demo.c").read_text())
    assert main(["cc", str(src), "--compiler=zig"]) == 0
    assert (tmp_path / "demo.o").is_file()


def test_cc_reports_compiler_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "bad.c"
    src.write_text("int x = ;\n")
    rc = main(["cc", str(src), "-o", str(tmp_path / "bad.o"), "--compiler", "zig"])
    err = capsys.readouterr().err
    assert rc == 255 and "expected expression" in err and err.count("Error: ") == 1


def test_cc_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cc"]) == 255
    assert "expected exactly one source file" in capsys.readouterr().err
    assert main(["cc", "a.c", "--compiler", "gcc"]) == 255
    assert "unknown compiler 'gcc'" in capsys.readouterr().err
