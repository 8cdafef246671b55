"""The architecture's one-way data flow, enforced: each package imports only the layers below it.

    cli → explain → hooks → loader → kernel → verifier | vm | jit | elf → progtypes
        → btf | toolchain → isa → uapi | errors

Siblings (verifier, vm, jit, elf) do not import each other; lower layers reach higher ones only
through Protocols they define (docs/architecture.md). Only ``elf/reader.py`` imports elftools and
only ``cli`` imports click/rich.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "pybpf"

RANK = {
    "errors": 0, "uapi": 0,
    "isa": 1,
    "btf": 2, "toolchain": 2,
    "progtypes": 3,
    "elf": 4, "vm": 4, "verifier": 4, "jit": 4,
    "kernel": 5,
    "loader": 6,
    "hooks": 7,
    "explain": 8,
    "cli": 9,
}


def _imports(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            out.extend((node.lineno, a.name) for a in node.names)
    return out


def _package(path: Path) -> str:
    return path.relative_to(SRC).parts[0].removesuffix(".py")


FILES = sorted(p for p in SRC.rglob("*.py") if _package(p) != "__init__")


def test_every_package_has_a_rank() -> None:
    assert {_package(p) for p in FILES} <= set(RANK)


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(SRC)))
def test_imports_go_down_only(path: Path) -> None:
    me = _package(path)
    bad = []
    for line, module in _imports(path):
        if module.startswith("pybpf."):
            target = module.split(".")[1]
            if target != me and RANK.get(target, -1) >= RANK[me]:
                bad.append(f"line {line}: {module} ({target} is not below {me})")
        root = module.split(".")[0]
        if root == "elftools" and path.relative_to(SRC).as_posix() != "elf/reader.py":
            bad.append(f"line {line}: only elf/reader.py may import elftools")
        if root in ("click", "rich") and me != "cli":
            bad.append(f"line {line}: only cli may import {root}")
    assert not bad, "\n".join(bad)
