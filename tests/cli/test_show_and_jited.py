"""``prog show`` / ``map show`` field sets against bpftool, and ``prog dump jited``."""

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
from pybpf.errors import ToolchainError
from pybpf.kernel import set_default_kernel

SEED = Path(__file__).resolve().parents[2] / "examples" / "seed-demo"
X86 = platform.machine().lower() in ("x86_64", "amd64")


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

    out = tmp_path_factory.mktemp("show") / "demo.o"
    try:
        return compile(SEED / "demo.c", out)
    except ToolchainError as e:
        pytest.skip(f"no BPF C compiler: {e}")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def _shape(text: str) -> str:
    """A show listing with the values that differ between two kernels (ids, sizes, tags, dates,
    paths) replaced, so that only its layout and field names remain."""
    text = re.sub(r"loaded_at \S+", "loaded_at D", text)
    text = re.sub(r"tag [0-9a-f]{16}", "tag T", text)
    text = re.sub(r"pinned \S+", "pinned P", text)
    return re.sub(r"\d+", "N", text)


@pytest.mark.toolchain
@pytest.mark.skipif(not X86, reason="the JIT emits x86-64 code")
def test_prog_show_reports_the_jit_image(bpffs: Path, demo_o: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _o, err = run(capsys, "prog", "load", str(demo_o), "/sys/fs/bpf/demo")
    assert code == 0, err
    from pybpf.kernel import default_kernel

    prog = next(iter(default_kernel().iter_progs()))
    image, _base = prog.jit_image()  # type: ignore[misc]
    _c, out, _e = run(capsys, "prog", "show", "pinned", "/sys/fs/bpf/demo")
    assert f"  jited {image.code_size}B  " in out
    _c, out, _e = run(capsys, "-j", "prog", "show", "pinned", "/sys/fs/bpf/demo")
    d = json.loads(out)
    assert d["jited"] is True and d["bytes_jited"] == image.code_size


@pytest.mark.toolchain
@pytest.mark.skipif(not X86, reason="the JIT emits x86-64 code")
def test_prog_dump_jited_text_json_and_file(bpffs: Path, demo_o: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "prog", "load", str(demo_o), "/sys/fs/bpf/demo")
    code, out, err = run(capsys, "prog", "dump", "jited", "pinned", "/sys/fs/bpf/demo")
    assert code == 0, err
    lines = out.splitlines()
    # bpftool's layout: the BTF prototype, the ksym name, "; source" lines, "%4x:\t" + AT&T text
    assert lines[0] == "int xdp_program(struct xdp_md * ctx):"
    assert re.fullmatch(r"bpf_prog_[0-9a-f]{16}_xdp_program:", lines[1])
    assert "; count = bpf_map_lookup_elem(&pkt_counter, &index);" in lines
    assert re.fullmatch(r"   0:\t\w+\t.*", lines[3])
    assert not any(line.startswith("; 0:") for line in lines)  # no pybpf eBPF interleaving
    assert out.endswith("\n\n")
    _c, with_ops, _e = run(capsys, "prog", "dump", "jited", "pinned", "/sys/fs/bpf/demo", "opcodes", "linum")
    assert re.search(r"\n\t([0-9a-f]{2} )+\n", with_ops)
    assert re.search(r"; int xdp_program\(struct xdp_md \*ctx\) \{ \[file:\S+demo\.c line_num:11 line_col:0\]",
                     with_ops)
    _c, out, _e = run(capsys, "-j", "prog", "dump", "jited", "pinned", "/sys/fs/bpf/demo", "opcodes")
    funcs = json.loads(out)
    assert [f["name"] for f in funcs] == [lines[1].rstrip(":")]
    assert funcs[0]["proto"] == "int xdp_program(struct xdp_md * ctx)"
    first = funcs[0]["insns"][0]
    assert first["pc"] == "0x0" and first["opcodes"]
    assert all(re.fullmatch(r"0x[0-9a-f]{2}", b) for b in first["opcodes"])
    raw = tmp_path / "img.bin"
    code, out, _e = run(capsys, "prog", "dump", "jited", "pinned", "/sys/fs/bpf/demo", "file", str(raw))
    assert code == 0 and out == ""
    from pybpf.kernel import default_kernel

    prog = next(iter(default_kernel().iter_progs()))
    image, _b = prog.jit_image()  # type: ignore[misc]
    assert raw.read_bytes() == image.code[:image.code_size]
    code, _o, err = run(capsys, "prog", "dump", "jited", "pinned", "/sys/fs/bpf/demo", "file", str(raw), "opcodes")
    assert code == 255 and err == "Error: 'file' is not compatible with 'opcodes', 'visual', or 'linum'\n"


@pytest.mark.toolchain
def test_dump_of_several_programs_prints_a_header_each(bpffs: Path, demo_o: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "prog", "load", str(demo_o), "/sys/fs/bpf/a")
    run(capsys, "prog", "load", str(demo_o), "/sys/fs/bpf/b")
    _c, out, _e = run(capsys, "prog", "dump", "xlated", "name", "xdp_program")
    heads = re.findall(r"^\d+: xdp  name xdp_program  tag [0-9a-f]{16}  gpl$", out, re.M)
    assert len(heads) == 2 and "\n\n" in out
    _c, out, _e = run(capsys, "-j", "prog", "dump", "xlated", "name", "xdp_program")
    d = json.loads(out)
    assert len(d) == 2 and all(set(p) == {"id", "type", "name", "tag", "gpl_compatible", "insns"} for p in d)


@pytest.mark.kernel
@pytest.mark.toolchain
def test_show_fields_match_bpftool(bpffs: Path, demo_o: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bpftool = shutil.which("bpftool")
    if bpftool is None or os.geteuid() != 0 or not Path("/sys/fs/bpf").is_dir():
        pytest.skip("needs root, bpftool and a bpffs at /sys/fs/bpf")
    pin = f"/sys/fs/bpf/pybpf-show-test-{os.getpid()}"
    hmap = pin + "_hash"

    def bt(*args: str) -> str:
        return subprocess.run([bpftool, *args], capture_output=True, text=True, check=True).stdout

    def both(*args: str) -> tuple[str, str]:
        code, ours, err = run(capsys, *args)
        assert code == 0, err
        return ours, bt(*args)

    try:
        for tool in ("bpftool", "pybpf"):
            argv = ["prog", "load", str(demo_o), pin, "pinmaps", pin + "_maps"]
            create = ["map", "create", hmap, "type", "hash", "key", "4", "value", "8", "entries", "4", "name", "h"]
            if tool == "bpftool":
                bt(*argv)
                bt(*create)
                bt("map", "freeze", "pinned", hmap)
            else:
                assert run(capsys, *argv)[0] == 0
                assert run(capsys, *create)[0] == 0
                assert run(capsys, "map", "freeze", "pinned", hmap)[0] == 0
        for what in (["prog", "show", "pinned", pin], ["map", "show", "pinned", pin + "_maps/pkt_counter"],
                     ["map", "show", "pinned", hmap]):
            ours, theirs = both("-j", *what)
            keys = list(json.loads(theirs))
            # bpftool 6.12 always prints "orphaned" for programs; older bpftools (v7.1) did not yet
            assert [k for k in json.loads(ours) if k in keys or k != "orphaned"] == keys, what
            ours, theirs = both(*what)
            assert _shape(ours) == _shape(theirs), what
            ours, theirs = both("-f", *what)
            assert _shape(ours) == _shape(theirs), what
    finally:
        subprocess.run(["rm", "-rf", pin, pin + "_maps", hmap], check=False)
