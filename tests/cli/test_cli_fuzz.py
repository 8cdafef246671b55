"""``pybpf prog`` / ``pybpf map`` under random words (hypothesis): every command line ends in output
or a bpftool-style ``Error:`` — never in pybpf's "internal error" (a foreign exception escaping)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pybpf.cli.app import main
from pybpf.kernel import set_default_kernel

WORDS = ["show", "list", "dump", "xlated", "jited", "pin", "load", "loadall", "run", "lookup", "update", "delete",
         "getnext", "create", "freeze", "peek", "pop", "push", "enqueue", "dequeue", "id", "name", "pinned", "tag",
         "key", "value", "hex", "type", "entries", "flags", "data_in", "data_out", "data_size_out", "ctx_in",
         "ctx_out", "ctx_size_out", "repeat", "opcodes", "linum", "file", "visual", "pinmaps", "map", "idx",
         "hash", "array", "queue", "lru_hash", "xdp", "socket", "0", "1", "4", "8", "-1", "0x10", "zz",
         "4294967296", "/sys/fs/bpf/a", "/sys/fs/bpf/q", "/sys/fs/bpf/missing", "/nonexistent", "-", "counter",
         "abcdef0123456789"]


@pytest.fixture(scope="module")
def bpffs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    import os

    root = tmp_path_factory.mktemp("clifuzz") / "bpffs"
    saved = os.environ.get("PYBPF_BPFFS")
    os.environ["PYBPF_BPFFS"] = str(root)
    old = set_default_kernel(None)
    main(["map", "create", "/sys/fs/bpf/a", "type", "array", "key", "4", "value", "4", "entries", "2", "name",
          "counter"])
    main(["map", "create", "/sys/fs/bpf/q", "type", "queue", "key", "0", "value", "4", "entries", "2"])
    try:
        yield root
    finally:
        set_default_kernel(old)
        if saved is None:
            os.environ.pop("PYBPF_BPFFS", None)
        else:
            os.environ["PYBPF_BPFFS"] = saved


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(obj=st.sampled_from(["prog", "map"]), json=st.booleans(),
       words=st.lists(st.sampled_from(WORDS), max_size=9))
def test_random_command_lines_fail_cleanly(bpffs: Path, capsys: pytest.CaptureFixture[str], obj: str, json: bool,
                                           words: list[str]) -> None:
    if "-" in words and ("data_in" in words or "ctx_in" in words):
        return  # would read the test runner's stdin
    argv = (["-j"] if json else []) + [obj, *words]
    code = main(argv)
    out = capsys.readouterr()
    assert "internal error" not in out.err + out.out, argv
    assert isinstance(code, int)
