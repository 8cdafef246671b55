"""The syscall seam under random input (hypothesis): any command number, any attribute bytes, any
size — pybpf's ``bpf()`` returns a result or raises :class:`~pybpf.errors.BpfError` with an errno,
never another exception, never a crash.

Pointer-sized words of the attribute block are drawn from: garbage, small integers, an unmapped
address, or addresses inside one large buffer this test owns (so whatever pybpf writes through
them lands in memory that may be scribbled on). A few real objects (maps of several types, a
program) exist so that fds in the attributes sometimes name something.
"""

from __future__ import annotations

import ctypes
import errno
import struct
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pybpf.errors import BpfError
from pybpf.kernel import Kernel
from pybpf.kernel.attr import ATTR_SIZE, LAST_FIELD_END, BpfAttr, addr_of
from pybpf.kernel.syscall import bpf
from pybpf.uapi import BpfCmd, MapType

SCRATCH = 8 << 20  # every pointer into owned memory points into the first 64 KiB of this
UNMAPPED = 0x7FFF_DEAD_0000  # an address no process here maps
_scratch = ctypes.create_string_buffer(SCRATCH)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Kernel, list[int]]]:
    k = Kernel(tmp_path_factory.mktemp("fuzz") / "bpffs", ncpus=2)
    fds: list[int] = []
    for mt, ks, vs, n in ((MapType.ARRAY, 4, 8, 4), (MapType.HASH, 4, 8, 4), (MapType.LRU_HASH, 8, 4, 3),
                          (MapType.QUEUE, 0, 4, 2), (MapType.RINGBUF, 0, 0, 4096), (MapType.PERCPU_ARRAY, 4, 4, 2),
                          (MapType.LPM_TRIE, 8, 4, 4)):
        a = BpfAttr()
        m = a.map_create
        m.map_type, m.key_size, m.value_size, m.max_entries = int(mt), ks, vs, n
        if mt == MapType.LPM_TRIE:
            m.map_flags = 1  # BPF_F_NO_PREALLOC
        fds.append(bpf(BpfCmd.MAP_CREATE, a, kernel=k))
    a = BpfAttr()
    code = ctypes.create_string_buffer(bytes.fromhex("b700000002000000" "9500000000000000"))
    lic = ctypes.create_string_buffer(b"GPL")
    a.prog_load.prog_type, a.prog_load.insn_cnt = 6, 2
    a.prog_load.insns, a.prog_load.license = addr_of(code), addr_of(lic)
    fds.append(bpf(BpfCmd.PROG_LOAD, a, kernel=k))
    yield k, fds
    for fd in fds:
        k.close(fd)


def _word(fds: list[int]) -> st.SearchStrategy[int]:
    base = ctypes.addressof(_scratch)
    return st.one_of(
        st.integers(0, (1 << 64) - 1),
        st.integers(0, 64),
        st.sampled_from(fds),
        st.just(UNMAPPED),
        st.integers(0, 65536).map(lambda off: base + off),
        st.integers(0, 255).map(lambda fd: fd | 1 << 32),  # an fd in the low half, flags above
    )


@st.composite
def attrs(draw: st.DrawFn, fds: list[int]) -> tuple[int, bytearray, int]:
    cmd = draw(st.one_of(st.sampled_from([int(c) for c in BpfCmd]), st.integers(0, 64), st.integers(-5, 1 << 32)))
    if draw(st.booleans()) and cmd in LAST_FIELD_END:
        # a well-formed block: random fields up to the command's last one, zeros after it (so the
        # call gets past CHECK_ATTR into the command itself)
        end = LAST_FIELD_END[cmd]
        words = draw(st.lists(_word(fds), min_size=(end + 7) // 8, max_size=(end + 7) // 8))
        raw = bytearray(b"".join(struct.pack("<Q", w) for w in words))[:end].ljust(ATTR_SIZE, b"\0")
        return cmd, raw, ATTR_SIZE
    words = draw(st.lists(_word(fds), min_size=0, max_size=ATTR_SIZE // 8 + 2))
    raw = bytearray(b"".join(struct.pack("<Q", w) for w in words))
    size = draw(st.one_of(st.just(len(raw)), st.integers(0, len(raw))))
    # the scratch memory the pointers reach holds garbage too (paths, instructions, keys...)
    blob = draw(st.binary(max_size=256))
    _scratch[:len(blob)] = blob
    return cmd, raw, size


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(data=st.data())
def test_random_calls_only_raise_bpf_errors(world: tuple[Kernel, list[int]], data: st.DataObject) -> None:
    k, fds = world
    cmd, raw, size = data.draw(attrs(fds))
    before = set(k.fds())
    try:
        r = bpf(cmd, raw if raw else None, size, kernel=k)
    except BpfError as e:
        assert isinstance(e.errno, int) and e.errno > 0, repr(e)
        return
    assert isinstance(r, int) and r >= 0
    for fd in set(k.fds()) - before:  # a call that made a new object: let it go again
        k.close(fd)


@pytest.mark.parametrize("cmd", [int(c) for c in BpfCmd])
def test_every_command_with_zeroed_and_short_attrs(world: tuple[Kernel, list[int]], cmd: int) -> None:
    k, _fds = world
    for raw, size in ((bytearray(ATTR_SIZE), ATTR_SIZE), (bytearray(4), 4), (None, 0), (bytearray(8192), 8192)):
        before = set(k.fds())
        try:
            r = bpf(cmd, raw, size, kernel=k)
        except BpfError as e:
            assert e.errno and e.errno != errno.ENOTTY, (cmd, size, e)
            continue
        assert r >= 0
        for fd in set(k.fds()) - before:
            k.close(fd)
