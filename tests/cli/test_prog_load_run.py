"""``pybpf prog load OBJ PATH [type T] [pinmaps DIR]`` and ``pybpf prog run (pinned PATH | OBJ [name
NAME]) data_in FILE [data_out FILE] [repeat N] [--engine E]``: the forms of issue 4, bpftool's words."""

from __future__ import annotations

import json
import platform
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from pybpf.cli.app import main
from pybpf.errors import ToolchainError
from pybpf.kernel import default_kernel, set_default_kernel

SEED = Path(__file__).resolve().parents[2] / "examples" / "seed-demo"
X86 = platform.machine().lower() in ("x86_64", "amd64")
pytestmark = pytest.mark.toolchain


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

    out = tmp_path_factory.mktemp("loadrun") / "demo.o"
    try:
        return compile(SEED / "demo.c", out)
    except ToolchainError as e:
        pytest.skip(f"no BPF C compiler: {e}")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize(("word", "shown"), [("xdp", "xdp"), ("socket", "socket_filter"), ("tc", "sched_cls"),
                                             ("classifier", "sched_cls"), ("xdp.frags", "xdp"),
                                             ("raw_tp", "raw_tracepoint")])
def test_type_words_are_libbpf_section_names(bpffs: Path, demo_o: Path, capsys: pytest.CaptureFixture[str],
                                             word: str, shown: str) -> None:
    code, _o, err = run(capsys, "prog", "load", str(demo_o), "/sys/fs/bpf/p", "type", word)
    assert code == 0, err
    _c, out, _e = run(capsys, "prog", "show", "pinned", "/sys/fs/bpf/p")
    assert re.match(rf"\d+: {shown}  name xdp_program  ", out), out


def test_type_errors_are_bpftools(bpffs: Path, demo_o: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "prog", "load", str(demo_o), "/sys/fs/bpf/p", "type", "bogus")
    assert code == 255 and out == ""
    lines = err.splitlines()
    assert lines[0] == "libbpf: failed to guess program type from ELF section 'bogus/'"
    assert lines[1].startswith("libbpf: supported section(type) names are: socket sk_reuseport/migrate ")
    code, _o, err = run(capsys, "prog", "load", str(demo_o), "/sys/fs/bpf/p", "type", "xdp", "type", "xdp")
    assert code == 255 and err == "Error: program type already specified\n"


def test_load_pins_program_and_maps(bpffs: Path, demo_o: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "prog", "load", str(demo_o), "/sys/fs/bpf/demo", "pinmaps", "/sys/fs/bpf/maps")
    assert (code, out, err) == (0, "", "")
    assert (bpffs / "demo").is_file() and (bpffs / "maps" / "pkt_counter").is_file()
    code, out, _e = run(capsys, "-j", "prog", "load", str(demo_o), "/sys/fs/bpf/demo2")
    assert (code, out) == (0, "null\n")


@pytest.mark.parametrize("engine", ["interpreter", "translate", "jit"])
def test_run_an_object_file_by_name_on_each_engine(bpffs: Path, demo_o: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str], engine: str) -> None:
    if engine == "jit" and not X86:
        pytest.skip("the JIT emits x86-64 code")
    pkt, out_f = tmp_path / "pkt", tmp_path / "out"
    pkt.write_bytes(bytes(range(64)))
    code, out, err = run(capsys, "prog", "run", str(demo_o), "name", "xdp_program", "data_in", str(pkt),
                         "data_out", str(out_f), "repeat", "100", "--engine", engine)
    assert code == 0, err
    assert re.fullmatch(r"Return value: 2, duration \(average\): \d+ns\n", out), out
    assert out_f.read_bytes() == pkt.read_bytes()
    code, out, _e = run(capsys, "prog", "run", str(demo_o), "data_in", str(pkt), "--engine", engine)
    assert re.fullmatch(r"Return value: 2, duration: \d+ns\n", out), out  # no "(average)" for one run
    code, out, _e = run(capsys, "-j", "prog", "run", str(demo_o), "data_in", str(pkt), "data_out", "-",
                        "--engine", engine)
    d = json.loads(out)
    assert list(d) == ["data_out", "retval", "duration"] and d["retval"] == 2
    assert d["data_out"] == [f"{b:#04x}" for b in range(64)]


def test_run_pinned_counts_in_the_pinned_map(bpffs: Path, demo_o: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "prog", "load", str(demo_o), "/sys/fs/bpf/demo", "pinmaps", "/sys/fs/bpf/maps")
    pkt = tmp_path / "pkt"
    pkt.write_bytes(bytes(14))
    for engine in ("interpreter", "jit") if X86 else ("interpreter",):
        code, _o, err = run(capsys, "prog", "run", "pinned", "/sys/fs/bpf/demo", "data_in", str(pkt), "repeat", "250",
                            "--engine", engine)
        assert code == 0, err
    _c, out, _e = run(capsys, "-j", "map", "dump", "pinned", "/sys/fs/bpf/maps/pkt_counter")
    n = 500 if X86 else 250
    assert json.loads(out)[0]["formatted"] == {"key": 0, "value": n}
    code, _o, err = run(capsys, "prog", "run", "pinned", "/sys/fs/bpf/demo", "data_in", str(tmp_path / "missing"))
    assert code == 255 and err.startswith("Error: failed to open ")
    pkt.write_bytes(bytes(13))
    code, _o, err = run(capsys, "prog", "run", "pinned", "/sys/fs/bpf/demo", "data_in", str(pkt))
    assert code == 234 and err == "Error: failed to run program: Invalid argument\n"  # bpftool exits -EINVAL
    assert default_kernel() is not None


def test_short_output_buffers_fail_as_bpftool(bpffs: Path, demo_o: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """bpftool hands the kernel data_size_out / ctx_size_out buffers; too small ones make the run fail
    with ENOSPC, and bpftool exits with -ENOSPC (228) without printing any result."""
    run(capsys, "prog", "load", str(demo_o), "/sys/fs/bpf/demo")
    pkt, ctx, out_f = tmp_path / "pkt", tmp_path / "ctx", tmp_path / "out"
    pkt.write_bytes(bytes(64))
    ctx.write_bytes(bytes(24))
    code, out, err = run(capsys, "prog", "run", "pinned", "/sys/fs/bpf/demo", "data_in", str(pkt), "data_out",
                         str(out_f), "data_size_out", "10")
    assert (code, out, err) == (228, "", "Error: failed to run program: No space left on device\n")
    assert not out_f.exists()
    code, out, _e = run(capsys, "-j", "prog", "run", "pinned", "/sys/fs/bpf/demo", "data_in", str(pkt),
                        "ctx_in", str(ctx), "ctx_out", str(out_f), "ctx_size_out", "8")
    assert (code, out) == (228, '{"error":"failed to run program: No space left on device"}\n')
    code, out, _e = run(capsys, "prog", "run", "pinned", "/sys/fs/bpf/demo", "data_in", str(pkt), "data_size_out",
                        "64", "ctx_in", str(ctx), "ctx_out", str(out_f))
    assert code == 0 and out_f.read_bytes() == bytes(24)  # data_end 0: the whole frame is a fragment
