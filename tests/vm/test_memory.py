"""The address space: regions, the address encoding, bounds, faults, and buffers shared without copies."""

from __future__ import annotations

import mmap
import sys

import pytest

from pybpf.errors import MemoryFault
from pybpf.vm.memory import ID_MASK, MAX_REGIONS, NO_ACCESS, AddressSpace, RegionKind


def test_addresses_are_region_id_and_offset() -> None:
    space = AddressSpace()
    a = space.add(bytearray(16), RegionKind.MEM, "a")
    b = space.add(bytearray(16), RegionKind.CTX, "b")
    assert a.id == 1 and b.id == 2
    assert a.address() == 1 << 32 and b.address(4) == (2 << 32) + 4
    assert space.find(b.address(3)) is b
    assert space.find(0x10) is None  # the NULL slot
    assert space.load(a.address(), 1) == 0


def test_loads_and_stores_are_little_endian_and_write_through() -> None:
    space = AddressSpace()
    buf = bytearray(range(16))
    r = space.add(buf)
    assert space.load(r.address(), 4) == 0x03020100
    assert space.load(r.address(8), 1, signed=True) == 8
    space.store(r.address(4), 2, -2)
    assert buf[4:6] == b"\xfe\xff"
    assert space.load(r.address(4), 2, signed=True) == -2
    space.write(r.address(10), b"xy")
    assert buf[10:12] == b"xy" and space.read(r.address(10), 2) == b"xy"


@pytest.mark.parametrize(
    ("address", "size", "reason"),
    [
        (0, 1, "NULL pointer dereference"),
        (0xFFF, 8, "NULL pointer dereference"),
        ((77 << 32), 1, "no memory region"),
        ((1 << 64) - 1, 1, "no memory region"),
        ((1 << 32) + 15, 2, "outside mem"),
        ((1 << 32) - 1, 2, "NULL pointer"),
    ],
)
def test_faults_carry_pc_address_size_and_reason(address: int, size: int, reason: str) -> None:
    space = AddressSpace()
    space.add(bytearray(16))
    with pytest.raises(MemoryFault) as e:
        space.load(address, size, pc=42)
    assert e.value.pc == 42 and e.value.address == address and e.value.size == size
    assert e.value.kind == "load" and reason in e.value.reason
    assert str(e.value).startswith(f"out of bounds memory load at PC 42, addr {address:#x}, size {size}")


def test_read_only_regions_refuse_stores() -> None:
    space = AddressSpace()
    ro = space.add(b"constant", name="rodata")
    assert space.read(ro.address(), 8) == b"constant"
    with pytest.raises(MemoryFault, match="rodata is read-only") as e:
        space.store(ro.address(), 1, 0, pc=3)
    assert e.value.kind == "store"
    rw = space.add(bytearray(4), name="flip")
    space.set_writable(rw, False)
    with pytest.raises(MemoryFault):
        space.write(rw.address(), b"x")
    with pytest.raises(ValueError, match="read-only"):
        space.add(b"abc", writable=True)


def test_resize_moves_the_valid_window_without_moving_bytes() -> None:
    """XDP adjust_head: data moves, every byte keeps its address."""
    space = AddressSpace()
    buf = bytearray(b"H" * 4 + b"packet")
    pkt = space.add(buf, RegionKind.PACKET, "pkt", start=4)
    first = pkt.address()
    assert space.read(first, 6) == b"packet"
    with pytest.raises(MemoryFault):
        space.read(first - 1, 1)  # the headroom is not part of the packet yet
    space.resize(pkt, start=2)
    assert pkt.address() == first - 2 and space.read(first, 6) == b"packet"
    space.resize(pkt, end=8)
    with pytest.raises(MemoryFault):
        space.read(first, 6)
    with pytest.raises(ValueError):
        space.resize(pkt, end=11)


def test_the_fast_table_follows_the_regions() -> None:
    space = AddressSpace()
    r = space.add(bytearray(10), writable=True)
    assert space.table[r.id][5:] == (None, None, None)  # typed views: only for the translated tier
    space.enable_typed_views()
    buf, base, start, end, wend, u16, u32, u64 = space.table[r.id & ID_MASK]
    assert buf.obj is r.buf.obj and (base + start, base + end) == (r.address(), r.end_address) and wend == end
    if sys.byteorder == "little":  # typed views of the same bytes, as long as whole items fit
        u32[1] = 0x11223344
        assert r.buf[4:8] == b"\x44\x33\x22\x11" and (len(u16), len(u32), len(u64)) == (5, 2, 1)
    space.resize(r, start=2, end=6)
    assert space.table[r.id][1:5] == (r.base, 2, 6, 6)
    space.set_writable(r, False)
    assert space.table[r.id][3:5] == (6, 0)  # loads still fit, no store does
    space.remove(r)
    assert space.table[r.id] is NO_ACCESS and not r.live
    with pytest.raises(MemoryFault):
        space.load(r.address(), 1)


def test_removing_a_region_releases_every_view_so_the_mmap_can_close() -> None:
    m = mmap.mmap(-1, 4096)
    space = AddressSpace()
    space.enable_typed_views()
    region = space.add(m, RegionKind.MAP, "map")
    space.store(region.address(8), 8, 0x0102030405060708)
    with pytest.raises(BufferError):
        m.close()  # still exported to the region (and its typed views)
    space.remove(region)
    m.close()


def test_regions_share_mmap_buffers_without_copying() -> None:
    with mmap.mmap(-1, 4096) as m:
        space = AddressSpace()
        region = space.add(m, RegionKind.MAP, "map")
        space.store(region.address(100), 4, 0xDEADBEEF)
        assert m[100:104] == b"\xef\xbe\xad\xde"
        m[200] = 7
        assert space.load(region.address(200), 1) == 7
        space.remove(region)  # releases the view: the mmap can be closed


def test_map_regions_are_registered_once() -> None:
    space = AddressSpace()
    owner = object()
    storage = bytearray(64)
    first = space.map_region(7, storage, owner)
    assert space.map_region(7, storage, owner) is first
    assert space.map_at(first.base) is owner and space.map_at(first.base + 8) is None
    other = object()
    replaced = space.map_region(7, bytearray(64), other)  # a new map object with the same id
    assert replaced is not first and not first.live and space.map_at(replaced.base) is other


def test_cstring() -> None:
    space = AddressSpace()
    r = space.add(bytearray(b"abc\x00def"))
    assert space.cstring(r.address()) == b"abc"
    assert space.cstring(r.address(3)) == b""
    with pytest.raises(MemoryFault, match="unterminated"):
        space.cstring(r.address(4))


def test_region_ids_are_recycled_oldest_first_when_exhausted() -> None:
    space = AddressSpace()
    regions = [space.add(bytearray(1)) for _ in range(MAX_REGIONS - 1)]
    with pytest.raises(MemoryError):
        space.add(bytearray(1))
    space.remove(regions[10])
    space.remove(regions[3])
    assert space.add(bytearray(1)).id == regions[10].id
    assert space.add(bytearray(1)).id == regions[3].id


def test_bad_buffers_are_refused() -> None:
    space = AddressSpace()
    with pytest.raises(ValueError, match="needs a buffer"):
        space.add(12345)
    with pytest.raises(ValueError, match="outside"):
        space.add(bytearray(4), start=2, end=8)


def test_atomics_on_shared_map_memory_go_through_the_owner() -> None:
    """A map owner that shares its memory (``SharedMemoryOwner``) performs the read-modify-write;
    plain regions are updated in place."""
    from pybpf.vm.memory import AddressSpace, RegionKind, SharedMemoryOwner

    class Owner:
        def __init__(self, buf: bytearray) -> None:
            self.buf = buf
            self.calls: list[tuple[int, int]] = []

        def atomic_rmw(self, offset: int, size: int, update):  # type: ignore[no-untyped-def]
            self.calls.append((offset, size))
            old = int.from_bytes(self.buf[offset:offset + size], "little")
            new = update(old)
            if new is not None:
                self.buf[offset:offset + size] = new.to_bytes(size, "little")
            return old

    space = AddressSpace()
    storage = bytearray(16)
    owner = Owner(storage)
    assert isinstance(owner, SharedMemoryOwner)
    region = space.map_region(7, storage, owner, "m")
    assert space.atomic(region.base + 8, 4, lambda v: v + 5) == 0
    assert space.atomic(region.base + 8, 4, lambda v: None) == 5  # a failed cmpxchg writes nothing
    assert owner.calls == [(8, 4), (8, 4)] and storage[8] == 5
    stack = space.add(bytearray(8), RegionKind.STACK, "s")
    assert space.atomic(stack.base, 8, lambda v: v | 3) == 0 and space.load(stack.base, 8) == 3
