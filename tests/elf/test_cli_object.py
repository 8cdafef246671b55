"""``pybpf object show``: text and JSON (bpftool's field names)."""

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


def test_show_text(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "object", "show", str(OBJ / "subprogs.o"))
    assert rc == 0
    assert "prog main_a  section tc  type sched_cls" in out
    assert "\tinsns 32  subprogs loop_cb,sub_a,sub_b,global_helper  relocations 4 applied, 0 pending" in out
    assert "map hits  type array  origin btf  flags 0x0" in out
    assert "\tkey 4B  value 8B  max_entries 1  pinning none" in out


@pytest.mark.parametrize("flag_first", [True, False])
def test_show_json(capsys: pytest.CaptureFixture[str], flag_first: bool) -> None:
    path = str(OBJ / "maps_iproute2.o")
    args = ["-j", "object", "show", path] if flag_first else ["object", "show", path, "-j"]
    rc, out, _ = run(capsys, *args)
    assert rc == 0
    d = json.loads(out)
    (prog,) = d["programs"]
    assert (prog["name"], prog["section"], prog["type"], prog["insns"]) == ("cls", "classifier", "sched_cls", 20)
    assert prog["relocations"]["pending"] == 2 and prog["maps"] == ["acc", "other"]
    acc = d["maps"][0]
    assert {
        k: acc[k] for k in ("name", "type", "bytes_key", "bytes_value", "max_entries", "flags", "pinning", "origin")
    } == {
        "name": "acc",
        "type": "array",
        "bytes_key": 4,
        "bytes_value": 4,
        "max_entries": 2,
        "flags": 0,
        "pinning": "global_ns",
        "origin": "iproute2",
    }


def test_show_reports_unknown_sections_and_core(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "object", "show", str(OBJ / "sections.o"))
    assert rc == 0 and "prog mystery  section not_a_known_section  type unknown" in out
    assert "unknown section not_a_known_section" in out
    rc, out, _ = run(capsys, "-p", "object", "show", str(OBJ / "core.o"))
    d = json.loads(out)
    statuses = {c["status"] for p in d["programs"] for c in p["core_relocations"]}
    assert statuses == {"applied", "poisoned", "pending"}


def test_show_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.o"
    bad.write_bytes(b"\x7fELF" + b"\0" * 10)
    rc, out, err = run(capsys, "object", "show", str(bad))
    assert rc == 255 and err.startswith("Error: ") and "too short" in err
    rc, out, _ = run(capsys, "-j", "object", "show", str(bad))
    assert rc == 255 and "too short" in json.loads(out)["error"]


def test_externs_say_whether_they_have_a_value(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-j", "object", "show", str(OBJ / "externs.o")]) == 0
    ext = {e["name"]: e for e in json.loads(capsys.readouterr().out)["externs"]}
    virtual = {"name": "LINUX_KERNEL_VERSION", "kind": "kconfig", "weak": False, "resolved": True}
    assert ext["LINUX_KERNEL_VERSION"] == virtual
    assert (ext["CONFIG_HZ"]["weak"], ext["CONFIG_HZ"]["resolved"]) == (True, False)
    assert (ext["bpf_rdonly_cast"]["kind"], ext["bpf_rdonly_cast"]["resolved"]) == ("kfunc", False)
    assert main(["object", "show", str(OBJ / "externs.o")]) == 0
    text = capsys.readouterr().out
    assert "extern LINUX_KERNEL_VERSION  kind kconfig  resolved\n" in text
    assert "extern CONFIG_HZ  kind kconfig  weak\n" in text
