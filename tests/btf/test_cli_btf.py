"""``pybpf btf dump file X [format raw|c] [unsorted]``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pybpf.cli.app import main

OBJ = Path(__file__).resolve().parents[1] / "data" / "objects"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    rc = main(list(args))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_raw_is_the_default(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "btf", "dump", "file", str(OBJ / "globals.o"))
    assert rc == 0 and out == (OBJ / "globals.bpftool-raw.txt").read_text()
    rc, out2, _ = run(capsys, "btf", "dump", "file", str(OBJ / "globals.o"), "format", "raw")
    assert out2 == out


def test_c_format_sorted_and_unsorted(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "btf", "dump", "file", str(OBJ / "maps_btf.o"), "format", "c")
    assert rc == 0 and out.startswith("#ifndef __VMLINUX_H__") and out.endswith("#endif /* __VMLINUX_H__ */\n")
    assert out.replace("(void)", "()") == (OBJ / "maps_btf.sorted-c.h").read_text().replace("(void)", "()")
    rc, out2, _ = run(capsys, "btf", "dump", "f", str(OBJ / "maps_btf.o"), "format", "c", "unsorted")
    assert rc == 0 and out2 != out and sorted(out2.splitlines()) == sorted(out.splitlines())


def test_json_raw(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "-j", "btf", "dump", "file", str(OBJ / "globals.o"))
    assert rc == 0
    types = json.loads(out)["types"]
    assert types[0]["id"] == 1 and {"kind", "name"} <= set(types[0])


def test_errors(capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = run(capsys, "btf", "dump", "file", str(OBJ / "globals.o"), "format", "xml")
    assert rc == 255 and "unrecognized format specifier: 'xml', possible values: raw, c" in err
    rc, _, err = run(capsys, "btf", "dump", "file", "/nonexistent")
    assert rc == 255 and "failed to load BTF from /nonexistent" in err
    rc, out, _ = run(capsys, "-j", "btf", "dump", "file", str(OBJ / "globals.o"), "format", "c")
    assert rc == 255 and json.loads(out)["error"] == "JSON output for C-syntax dump is not supported"
    rc, _, err = run(capsys, "btf", "dump", "sideways", "x")
    assert rc == 255 and "unrecognized BTF source specifier: 'sideways'" in err
