"""``pybpf verify``: verdicts, logs, JSON, exit status, options."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
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


def test_prog_creates_the_maps_as_a_load_does(maps_obj: Path) -> None:
    """``--prog``: the object's maps become the kernel layer's map objects (what a load creates:
    map-in-map with its inner template, a prog array...), in a throwaway kernel."""
    import contextlib

    from pybpf.cli.verify import _created_maps
    from pybpf.elf import ObjectSpec
    from pybpf.kernel.maps.base import Map as KernelMap
    from pybpf.uapi import MapType

    obj = ObjectSpec.from_path(str(maps_obj))
    with contextlib.ExitStack() as stack:
        fds, by_fd = _created_maps(obj, stack)
        assert set(fds) == set(obj.maps)
        assert all(isinstance(m, KernelMap) for m in by_fd.values())
        outer = by_fd[fds["outer"]]
        assert outer.map_type == MapType.ARRAY_OF_MAPS and outer.inner_map_meta is not None


def test_prog_verifies_only_that_program(maps_obj: Path) -> None:
    code, out = run("verify", str(maps_obj), "--prog", "tail_target", "-j")
    assert code == 0, out
    assert [r["program"] for r in json.loads(out)] == ["tail_target"]


def test_prog_with_global_data_sees_the_initial_values() -> None:
    path = OBJS / "globals.o"
    if not path.exists():
        pytest.skip("test object not present")
    code, out = run("verify", str(path), "--prog", "read_globals", "-j")
    assert code == 0, out
    code_all, out_all = run("verify", str(path), "-j")
    assert code_all == 0
    # the same verdict and work whether the maps are described or created
    assert json.loads(out)[0]["insns_processed"] == json.loads(out_all)[0]["insns_processed"]


@pytest.fixture
def bpffs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private bpffs root as the process's default kernel (what the prog commands use)."""
    from pybpf.kernel import set_default_kernel

    root = tmp_path / "bpffs"
    monkeypatch.setenv("PYBPF_BPFFS", str(root))
    old = set_default_kernel(None)
    try:
        yield root
    finally:
        set_default_kernel(old)


def test_prog_dump_xlated_of_an_object(bpffs: Path) -> None:
    """``pybpf prog dump xlated OBJ [name NAME]``: the object's programs after the verifier's rewrites,
    every program with bpftool's header, or the one named."""
    path = OBJS / "subprogs.o"
    if not path.exists():
        pytest.skip("test object not present")
    code, out = run("prog", "dump", "xlated", str(path))
    assert code == 0, out
    headers = re.findall(r"^\d+: \w+  name (\w+)  tag [0-9a-f]{16}", out, re.M)
    assert headers == ["main_a", "main_b"]
    code, one = run("prog", "dump", "xlated", str(path), "name", "main_b")
    assert code == 0, one
    assert not re.search(r"name main_a", one) and re.search(r"^\s+0: \(", one, re.M)
    def ids(text: str) -> str:
        return re.sub(r"map\[id:\d+\]", "map[id:N]", text)

    assert ids(one.strip()) in ids(out)  # the same listing as in the dump of every program
    code, out = run("prog", "dump", "xlated", str(path), "name", "nope")
    assert code != 0


@pytest.mark.toolchain
def test_prog_dump_xlated_of_the_seed_demo_is_the_kernels(bpffs: Path) -> None:
    """The seed demo's listing equals the kernel's (examples/seed-demo/demo.xlated.txt) but for the
    map id and the offset of the array's values in pybpf's map layout."""
    from pybpf.errors import ToolchainError
    from pybpf.toolchain import compile

    from .test_xlated_vs_kernel import normalize

    seed = Path(__file__).resolve().parents[2] / "examples" / "seed-demo"
    try:
        obj = compile(seed / "demo.c", bpffs.parent / "demo.o")
    except ToolchainError as e:
        pytest.skip(f"no BPF compiler: {e}")
    code, out = run("prog", "dump", "xlated", str(obj))
    assert code == 0, out
    assert normalize(out) == normalize((seed / "demo.xlated.txt").read_text())
