"""Native writers follow the kernel layer's lock-word protocol: they wait for a Python holder, give
up with -EBUSY on a holder that never lets go, and stay consistent while Python writes concurrently."""

from __future__ import annotations

import ctypes
import os
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pybpf.jit.native import ENV, ENV_SIZE, EnvField, library
from pybpf.jit.native.layout import Elem, Hdr
from pybpf.jit.runtime import NativeBuffer
from pybpf.kernel import Kernel, native
from pybpf.kernel.maps.base import MapAttrs
from pybpf.uapi import MapType

EBUSY = (-16) & ((1 << 64) - 1)


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[Kernel]:
    yield Kernel(tmp_path / "bpffs", ncpus=2)


@pytest.fixture
def state() -> NativeBuffer:
    s = NativeBuffer(ENV + ENV_SIZE)
    s.write(struct.pack("<I", os.getpid()), ENV + EnvField.OWNER)
    return s


def test_native_update_waits_for_a_python_holder(kernel: Kernel, state: NativeBuffer) -> None:
    m = kernel.create_map(MapAttrs(int(MapType.HASH), 4, 8, 16))
    key, val = NativeBuffer(struct.pack("<I", 5)), NativeBuffer(b"12345678")
    m.lock()
    seen_while_held: list[bool] = []

    def release() -> None:
        time.sleep(0.05)
        seen_while_held.append(m.lookup_elem(struct.pack("<I", 5)) is not None)
        m.unlock()

    t = threading.Thread(target=release)
    t.start()
    rc = library().call("htab_update", state.address, m.address, key.address, val.address, 0)  # spins
    t.join()
    assert rc == 0
    assert seen_while_held == [False]  # nothing was written while Python held the lock
    assert m.lookup_elem_sys(struct.pack("<I", 5)) == b"12345678"
    assert m._u32(Hdr.LOCK) == 0  # released


def test_native_writers_give_up_on_a_lock_that_stays_taken(kernel: Kernel, state: NativeBuffer) -> None:
    m = kernel.create_map(MapAttrs(int(MapType.HASH), 4, 8, 16))
    q = kernel.create_map(MapAttrs(int(MapType.QUEUE), 0, 4, 4))
    for mp in (m, q):
        mp._set_u32(Hdr.LOCK, 0x7FFF_FFF0)  # a holder that never releases (no such pid)
    key, val = NativeBuffer(struct.pack("<I", 1)), NativeBuffer(bytes(8))
    lib = library()
    assert lib.call("htab_update", state.address, m.address, key.address, val.address, 0) == EBUSY
    assert lib.call("htab_delete", state.address, m.address, key.address) == EBUSY
    out = NativeBuffer(b"\xff" * 4)
    assert lib.call("queue_pop", state.address, q.address, out.address) == EBUSY
    assert out.read() == bytes(4)  # the value comes back zeroed, as on an empty queue
    assert m.count() == 0 and m._u32(Hdr.LOCK) == 0x7FFF_FFF0  # untouched
    # the Python side takes a dead holder's lock over; after that native writers work again
    m._set_u32(Hdr.LOCK, 0)
    assert lib.call("htab_update", state.address, m.address, key.address, val.address, 0) == 0


def test_locked_value_copy_waits_for_the_values_spin_lock(kernel: Kernel, state: NativeBuffer) -> None:
    m = kernel.create_map(MapAttrs(int(MapType.ARRAY), 4, 16, 2, spin_lock_off=0))
    key, val = NativeBuffer(struct.pack("<I", 1)), NativeBuffer(b"\xaa" * 16)
    value_addr = m.address + m.value_offset(1)
    native.lock_word(value_addr)
    lib = library()
    assert lib.call("array_update", state.address, m.address, key.address, val.address, 4) == EBUSY  # BPF_F_LOCK
    assert lib.call("array_update", state.address, m.address, key.address, val.address, 0) == 0  # no lock needed
    lock_word = ctypes.c_uint32.from_address(value_addr).value
    assert lock_word == os.getpid()  # a copy never overwrites the value's lock word
    native.unlock_word(value_addr)
    assert lib.call("array_update", state.address, m.address, key.address, val.address, 4) == 0
    assert m.lookup_elem_sys(struct.pack("<I", 1)) == bytes(4) + b"\xaa" * 12  # lock word reads as 0


def _free_list_length(m: object) -> int:
    n = 0
    s = m._u32(Hdr.FREE_HEAD)  # type: ignore[attr-defined]
    while s and n <= m.max_entries:  # type: ignore[attr-defined]
        n += 1
        s = m._u32(m.elem(s - 1) + Elem.NEXT)  # type: ignore[attr-defined]
    return n


@pytest.mark.parametrize("map_type", [MapType.HASH, MapType.LRU_HASH])
def test_concurrent_native_and_python_writers_keep_the_table_consistent(kernel: Kernel, state: NativeBuffer,
                                                                        map_type: MapType) -> None:
    m = kernel.create_map(MapAttrs(int(map_type), 4, 8, 64))
    lib = library()
    rounds = 300
    native_keys = [NativeBuffer(struct.pack("<I", i)) for i in range(32)]
    vals = [NativeBuffer(struct.pack("<Q", i * 1000)) for i in range(32)]
    errors: list[BaseException] = []

    def native_writer() -> None:
        try:
            for r in range(rounds):
                i = r % 32
                lib.call("htab_update", state.address, m.address, native_keys[i].address, vals[i].address, 0)
                if r % 3 == 0:
                    lib.call("htab_delete", state.address, m.address, native_keys[(i + 7) % 32].address)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    t = threading.Thread(target=native_writer)
    t.start()
    for r in range(rounds):
        i = 32 + r % 32
        m.update_elem(struct.pack("<I", i), struct.pack("<Q", i * 1000), 0)
        if r % 4 == 0:
            m.delete_elem(struct.pack("<I", 32 + (i + 5) % 32))
    t.join()
    assert not errors
    items = dict(m.items_raw())
    assert m.count() == len(items)  # every element counted once, none lost from its chain
    for k, e in items.items():
        i = int.from_bytes(k, "little")
        assert bytes(m.mem[e + m.val_off:e + m.val_off + 8]) == struct.pack("<Q", i * 1000)
    assert _free_list_length(m) + m.count() == m._u32(Hdr.BUMP)  # every used slot is in the table or free
    assert m._u32(Hdr.LOCK) == 0
