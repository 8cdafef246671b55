"""Fixtures for the kernel layer: an isolated Kernel per test (its own bpffs root)."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pybpf.kernel import Kernel, set_default_kernel
from pybpf.kernel.attr import BpfAttr
from pybpf.uapi import BpfCmd

from .errno_table import Side, both_sides


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[Kernel]:
    """A Kernel with a private bpffs root and 2 "CPUs"; also the process default during the test."""
    k = Kernel(tmp_path / "bpffs", ncpus=2)
    old = set_default_kernel(k)
    try:
        yield k
    finally:
        for fd in list(k.fds()):
            with contextlib.suppress(OSError):
                k.close(fd)
        set_default_kernel(old)


def live_bpf_available() -> bool:
    """Whether this process may call the running kernel's bpf(2) (root, Linux, x86-64/arm64)."""
    from pybpf.kernel.syscall import live_bpf

    attr = BpfAttr()
    attr.map_create.map_type = 2
    attr.map_create.key_size = 4
    attr.map_create.value_size = 4
    attr.map_create.max_entries = 1
    fd = live_bpf(BpfCmd.MAP_CREATE, attr)
    if fd >= 0:
        os.close(fd)
        return True
    return fd not in (-errno.ENOSYS, -errno.EPERM)


@pytest.fixture(scope="session")
def live() -> bool:
    if not live_bpf_available():
        pytest.skip("bpf(2) is not available to this process")
    return True


@pytest.fixture
def sides(tmp_path: Path, live: bool) -> Iterator[tuple[Side, Side]]:
    """:func:`both_sides` with 2 "CPUs" (skips without bpf(2))."""
    with both_sides(tmp_path / "bpffs") as pair:
        yield pair


def cstr(s: str | bytes) -> ctypes.Array[ctypes.c_char]:
    return ctypes.create_string_buffer(s.encode() if isinstance(s, str) else s)
