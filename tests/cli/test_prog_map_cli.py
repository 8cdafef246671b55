"""``pybpf prog`` / ``pybpf map``: bpftool's grammar and output, end to end through main()."""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pybpf.cli.app import main
from pybpf.cli.grammar import Args, JsonWriter, fprint_hex, parse_bytes
from pybpf.errors import ToolchainError
from pybpf.kernel import set_default_kernel

SEED = Path(__file__).resolve().parents[2] / "examples" / "seed-demo"


@pytest.fixture
def bpffs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = tmp_path / "bpffs"
    monkeypatch.setenv("PYBPF_BPFFS", str(root))
    old = set_default_kernel(None)
    try:
        yield root
    finally:
        set_default_kernel(old)


@pytest.fixture(scope="module")
def demo_o(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pybpf.toolchain import compile

    out = tmp_path_factory.mktemp("cli") / "demo.o"
    try:
        return compile(SEED / "demo.c", out)
    except ToolchainError as e:
        pytest.skip(f"no BPF C compiler: {e}")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


# -- grammar and writers -------------------------------------------------------------------------

def test_parse_bytes_like_bpftool() -> None:
    assert parse_bytes(Args(["0", "0x10", "010", "255"]), "key", 4) == bytes([0, 16, 8, 255])
    assert parse_bytes(Args(["hex", "0a", "ff"]), "value", 2) == b"\x0a\xff"
    from pybpf.cli.grammar import CliError

    with pytest.raises(CliError, match="key expected 4 bytes got 2"):
        parse_bytes(Args(["1", "2"]), "key", 4)
    with pytest.raises(CliError, match="error parsing byte: zz"):
        parse_bytes(Args(["zz"]), "key", 1)


def test_json_writer_reproduces_bpftool_pretty_form() -> None:
    w = JsonWriter(pretty=True)
    w.start_array()
    w.start_object()
    w.field("key", ["0x00", "0x01"])
    w.field("formatted", {"key": 0, "value": 30})
    w.end_object()
    w.end_array()
    assert w.text() == ('[{\n        "key": ["0x00","0x01"\n        ],\n        "formatted": {\n'
                        '            "key": 0,\n            "value": 30\n        }\n    }\n]')
    c = JsonWriter()
    c.value({"retval": 2, "duration": 12})
    assert c.text() == '{"retval":2,"duration":12}'
    assert fprint_hex(bytes(range(18))) == ("00 01 02 03 04 05 06 07  08 09 0a 0b 0c 0d 0e 0f\n10 11")


# -- commands --------------------------------------------------------------------------------------

@pytest.mark.toolchain
def test_load_run_dump_the_seed_demo(bpffs: Path, demo_o: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = run(capsys, "prog", "load", str(demo_o), "/sys/fs/bpf/demo", "pinmaps", "/sys/fs/bpf/maps")
    assert code == 0, err
    assert (bpffs / "demo").exists() and (bpffs / "maps" / "pkt_counter").exists()
    pkt = tmp_path / "pkt"
    pkt.write_bytes(bytes(64))
    code, out, err = run(capsys, "prog", "run", "pinned", "/sys/fs/bpf/demo", "data_in", str(pkt), "repeat", "1000")
    assert code == 0, err
    assert re.fullmatch(r"Return value: 2, duration \(average\): \d+ns\n", out)
    code, out, _ = run(capsys, "map", "dump", "pinned", "/sys/fs/bpf/maps/pkt_counter")
    assert out == '[{\n        "key": 0,\n        "value": 1000\n    }\n]\n'
    code, out, _ = run(capsys, "-j", "map", "dump", "name", "pkt_counter")
    assert json.loads(out) == [{"key": ["0x00"] * 4, "value": ["0xe8", "0x03", "0x00", "0x00"],
                                "formatted": {"key": 0, "value": 1000}}]
    code, out, _ = run(capsys, "-j", "prog", "run", "name", "xdp_program", "data_in", str(pkt))
    assert re.fullmatch(r'\{"retval":2,"duration":\d+\}\n', out)
    code, out, _ = run(capsys, "map", "update", "name", "pkt_counter", "key", "0", "0", "0", "0",
                       "value", "hex", "05", "00", "00", "00")
    assert code == 0 and out == ""
    code, out, _ = run(capsys, "map", "lookup", "name", "pkt_counter", "key", "0", "0", "0", "0")
    assert out == '{\n    "key": 0,\n    "value": 5\n}\n'
    code, out, _ = run(capsys, "map", "getnext", "name", "pkt_counter")
    assert out == "key: None\nnext key:\n00 00 00 00\n"
    code, _out, err = run(capsys, "map", "delete", "name", "pkt_counter", "key", "0", "0", "0", "0")
    assert code == 255 and err == "Error: delete failed: Invalid argument\n"
    code, out, _ = run(capsys, "prog", "show")
    jited = r"jited \d+B" if platform.machine() in ("x86_64", "AMD64") else "not jited"
    assert re.match(r"\d+: xdp  name xdp_program  tag [0-9a-f]{16}  gpl\n"
                    rf"\tloaded_at \S+  uid \d+\n\txlated 152B  {jited}  memlock 4096B  map_ids \d+\n"
                    r"\tbtf_id \d+\n$", out), out
    code, out, _ = run(capsys, "prog", "dump", "xlated", "pinned", "/sys/fs/bpf/demo")
    assert "; count = bpf_map_lookup_elem(&pkt_counter, &index);" in out and "(95) exit" in out


def test_map_commands_without_btf(bpffs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _o, err = run(capsys, "map", "create", "/sys/fs/bpf/h", "type", "hash", "key", "4", "value", "8",
                        "entries", "4", "name", "hmap")
    assert code == 0, err
    run(capsys, "map", "update", "pinned", "/sys/fs/bpf/h", "key", "1", "0", "0", "0", "value", *["7"] * 8)
    code, out, _ = run(capsys, "map", "dump", "name", "hmap")
    assert out == "key: 01 00 00 00  value: 07 07 07 07 07 07 07 07\nFound 1 element\n"
    code, out, _ = run(capsys, "map", "lookup", "name", "hmap", "key", "2", "0", "0", "0")
    assert code == 255 and out == "key:\n02 00 00 00\n\nNot found\n"
    code, out, _ = run(capsys, "map", "show", "name", "hmap")
    assert re.fullmatch(r"\d+: hash  name hmap  flags 0x0\n\tkey 4B  value 8B  max_entries 4  memlock \d+B\n", out)
    code, out, _ = run(capsys, "-j", "map", "show", "name", "hmap")
    d = json.loads(out)
    assert (d["type"], d["name"], d["bytes_key"], d["bytes_value"], d["max_entries"], d["frozen"]) == (
        "hash", "hmap", 4, 8, 4, 0)
    code, out, _ = run(capsys, "map", "freeze", "name", "hmap")
    assert code == 0
    code, out, err = run(capsys, "map", "update", "name", "hmap", "key", "3", "0", "0", "0", "value", *["1"] * 8)
    assert code == 255 and err == "Error: update failed: Operation not permitted\n"
    code, _o, err = run(capsys, "map", "update", "name", "hmap", "key", "3", "0")
    assert err == "Error: key expected 4 bytes got 2\n"
    code, _o, err = run(capsys, "map", "dump", "id", "99999")
    assert err == "Error: get map by id (99999): No such file or directory\n"
    code, out, err = run(capsys, "-j", "map", "dump", "id", "99999")
    assert json.loads(out) == {"error": "get map by id (99999): No such file or directory"}


def test_queue_push_pop_and_percpu_dump(bpffs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "map", "create", "/sys/fs/bpf/q", "type", "queue", "key", "0", "value", "4", "entries", "4",
        "name", "q")
    run(capsys, "map", "push", "name", "q", "value", "1", "2", "3", "4")
    code, out, _ = run(capsys, "map", "pop", "name", "q")
    assert out == "value: 01 02 03 04\n"
    code, out, _ = run(capsys, "map", "pop", "name", "q")
    assert code == 255 and out == "Error: empty map\n"


@pytest.mark.kernel
@pytest.mark.toolchain
def test_output_matches_bpftool_on_the_live_kernel(bpffs: Path, demo_o: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    bpftool = shutil.which("bpftool")
    if bpftool is None or os.geteuid() != 0 or not Path("/sys/fs/bpf").is_dir():
        pytest.skip("needs root, bpftool and a bpffs at /sys/fs/bpf")
    pin = f"/sys/fs/bpf/pybpf-cli-test-{os.getpid()}"
    pkt = tmp_path / "pkt"
    pkt.write_bytes(bytes(64))

    def bt(*args: str) -> str:
        return subprocess.run([bpftool, *args], capture_output=True, text=True, check=True).stdout

    try:
        subprocess.run([bpftool, "prog", "load", str(demo_o), pin, "pinmaps", pin + "_maps"], check=True)
        bt("prog", "run", "pinned", pin, "data_in", str(pkt), "repeat", "25")
        run(capsys, "prog", "load", str(demo_o), pin, "pinmaps", pin + "_maps")
        run(capsys, "prog", "run", "pinned", pin, "data_in", str(pkt), "repeat", "25")
        m = pin + "_maps/pkt_counter"
        for args in (["map", "dump", "pinned", m], ["-j", "map", "dump", "pinned", m],
                     ["-p", "map", "dump", "pinned", m], ["map", "lookup", "pinned", m, "key", "0", "0", "0", "0"],
                     ["map", "getnext", "pinned", m], ["-j", "map", "getnext", "pinned", m]):
            _c, ours, _e = run(capsys, *args)
            assert ours == bt(*args), args
        theirs = bt("-j", "prog", "run", "pinned", pin, "data_in", str(pkt))
        _c, ours, _e = run(capsys, "-j", "prog", "run", "pinned", pin, "data_in", str(pkt))
        assert json.loads(ours).keys() == json.loads(theirs).keys()
        assert json.loads(ours)["retval"] == json.loads(theirs)["retval"] == 2
    finally:
        subprocess.run(["rm", "-rf", pin, pin + "_maps"], check=False)


def test_tracelog_prints_the_trace_pipe(bpffs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pybpf.kernel import default_kernel

    default_kernel().trace.write("hello from a program\n", cpu=1)
    code, out, _ = run(capsys, "prog", "tracelog", "--no-follow")
    assert code == 0
    assert re.fullmatch(r"\s*\S+-\d+ \[001\] \S+ +\d+\.\d{6}: bpf_trace_printk: hello from a program\n", out), out


def test_keyword_prefixes_and_handle_errors(bpffs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "map", "create", "/sys/fs/bpf/a", "type", "array", "key", "4", "value", "4", "entries", "2",
        "name", "arr")
    code, out, _ = run(capsys, "map", "look", "pin", "/sys/fs/bpf/a", "k", "1", "0", "0", "0")
    assert code == 0 and out == "key: 01 00 00 00  value: 00 00 00 00\n"
    code, _o, err = run(capsys, "map", "dump", "bogus", "x")
    assert err == "Error: expected 'id', 'name' or 'pinned', got: 'bogus'?\n"
    code, _o, err = run(capsys, "prog", "show", "pinned", "/sys/fs/bpf/a")
    assert err == "Error: incorrect object type: map\n"
