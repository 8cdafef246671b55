"""Same call, same errno: every case of the errno table against pybpf and against the live kernel.

The unmarked test checks pybpf against the errno Linux 6.12 returns (the table's ``expect``); the
``kernel`` test makes each call on the running kernel too, with the very same ``union bpf_attr``
bytes, and requires the same answer.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

import pytest

from pybpf.kernel import Kernel
from pybpf.kernel.syscall import live_bpf, sys_bpf

from .errno_table import CASES, Case, Side

IDS = [c.name for c in CASES]


def _ours(kernel: Kernel) -> Side:
    return Side("pybpf", lambda cmd, attr, size: sys_bpf(cmd, attr, size, kernel=kernel), kernel.close)


def _live() -> Side:
    return Side("linux", live_bpf, os.close)


def _run(side: Side, c: Case, unpin: callable) -> int:  # type: ignore[valid-type]
    try:
        return c.run(side)
    finally:
        side.cleanup()
        for p in side.pins:
            unpin(p)
        side.pins.clear()


def _norm(r: int) -> int:
    return 0 if r >= 0 else -r


def test_table_is_large_and_unique() -> None:
    assert len(CASES) >= 60
    assert len(set(IDS)) == len(IDS)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_pybpf_errno(case: Case, kernel: Kernel) -> None:
    def unpin(p: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(kernel.fs.translate(p))

    got = _norm(_run(_ours(kernel), case, unpin))
    assert got == case.expect, f"{case.name}: pybpf gave {errno.errorcode.get(got, got)}, " \
                               f"Linux 6.12 gives {errno.errorcode.get(case.expect, case.expect)}"


@pytest.mark.kernel
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_same_errno_as_live_kernel(case: Case, kernel: Kernel, live: bool) -> None:
    def unpin_live(p: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(p)

    def unpin_ours(p: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(kernel.fs.translate(p))

    if not Path("/sys/fs/bpf").is_dir() and "pin" in case.name:
        pytest.skip("no bpffs mounted at /sys/fs/bpf")
    theirs = _norm(_run(_live(), case, unpin_live))
    ours = _norm(_run(_ours(kernel), case, unpin_ours))
    want_live = case.live if case.live is not None else case.expect
    assert theirs == want_live, f"live kernel answered {errno.errorcode.get(theirs, theirs)}"
    assert ours == case.expect
