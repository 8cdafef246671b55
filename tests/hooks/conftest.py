"""Fixtures for the hooks: an isolated Kernel, the test programs compiled once, frame builders."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pybpf.errors import ToolchainError
from pybpf.kernel import Kernel, set_default_kernel

HERE = Path(__file__).resolve().parent
PROGS = HERE / "progs"
ROOT = HERE.parent.parent

@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[Kernel]:
    """A Kernel with a private bpffs root; the process default while the test runs."""
    k = Kernel(tmp_path / "bpffs", ncpus=2)
    old = set_default_kernel(k)
    try:
        yield k
    finally:
        for fd in list(k.fds()):
            with contextlib.suppress(OSError):
                k.close(fd)
        set_default_kernel(old)


@pytest.fixture(scope="session")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str | Path], Path]:
    """``compiled(name_or_path)``: the object file of ``progs/<name>.c`` (or of a C file), built once
    per session; skips the test when no BPF C compiler is available."""
    from pybpf import toolchain

    out = tmp_path_factory.mktemp("objs")
    cache: dict[Path, Path] = {}

    def build(src: str | Path) -> Path:
        path = Path(src) if isinstance(src, Path) or "/" in str(src) else PROGS / f"{src}.c"
        if path not in cache:
            try:
                cache[path] = toolchain.compile(path, out / f"{path.stem}.o")
            except ToolchainError as e:
                if "no BPF C compiler" in str(e) or "not installed" in str(e):
                    pytest.skip(f"no BPF C compiler: {e}")
                raise
        return cache[path]

    return build


@pytest.fixture
def load(kernel: Kernel, compiled: Callable[[str | Path], Path]) -> Iterator[Callable[..., Any]]:
    """``load(source, name)``: the loaded program ``name`` of a test object (a ``pybpf.loader.Program``);
    its collection stays open until the test ends. ``load.collection(source, name)`` gives the
    collection (maps included)."""
    from pybpf import loader

    opened: list[Any] = []

    def collection(source: str | Path, name: str) -> Any:
        coll = loader.load(compiled(source), programs=[name], kernel=kernel)
        opened.append(coll)
        return coll

    def load_one(source: str | Path, name: str) -> Any:
        return collection(source, name).programs[name]

    load_one.collection = collection  # type: ignore[attr-defined]
    yield load_one
    for c in opened:
        c.close()
