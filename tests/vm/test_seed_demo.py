"""The temporary `make demo` script: the seed program, by hand, 1000 runs in the interpreter."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("seed_demo", ROOT / "examples" / "seed_demo.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["seed_demo"] = module
    spec.loader.exec_module(module)
    return module


def test_the_hand_copied_bytes_are_the_objdump_listing() -> None:
    demo = load_demo()
    listing = (ROOT / "examples" / "seed-demo" / "demo.objdump.txt").read_text()
    raw = "".join(m.group(1).replace(" ", "") for m in re.finditer(r"^\s+\d+:\t([0-9a-f ]+)\t", listing, re.M))
    assert raw == "".join(demo.DEMO_OBJDUMP.split())
    assert "R_BPF_64_64\tpkt_counter" in listing and "0000000000000020:" in listing  # slot 4 = byte 0x20


def test_demo_counts_1000_packets_and_passes_them_all(capsys: pytest.CaptureFixture[str]) -> None:
    demo = load_demo()
    assert demo.main() == 0
    out = capsys.readouterr().out
    assert "pkt_counter[0] = 1000" in out
    assert "verdict 2 (XDP_PASS): 1000 times" in out
    assert "   4: (18) r1 = map[id:29]" in out
