"""Map types: Linux semantics over native storage (creation checks live in the errno table)."""

from __future__ import annotations

import errno
import struct

import pytest

from pybpf.errors import BpfError
from pybpf.isa import Insn
from pybpf.kernel import Kernel, MapAttrs
from pybpf.kernel.maps import key_hash, map_class, supported_map_types
from pybpf.kernel.maps.base import HEADER_SIZE, Header
from pybpf.uapi import MapType

ANY, NOEXIST, EXIST = 0, 1, 2


def u32(v: int) -> bytes:
    return struct.pack("<I", v)


def new(kernel: Kernel, t: MapType, ks: int, vs: int, n: int, flags: int = 0, **kw: object):
    return kernel.create_map(MapAttrs(int(t), ks, vs, n, flags, **kw))  # type: ignore[arg-type]


def keys(m) -> list[bytes]:
    out, k = [], None
    while True:
        try:
            k = m.get_next_key(k)
        except BpfError as e:
            assert e.errno == errno.ENOENT
            return out
        out.append(k)


def test_every_required_type_is_registered() -> None:
    required = {MapType.ARRAY, MapType.PERCPU_ARRAY, MapType.HASH, MapType.PERCPU_HASH, MapType.LRU_HASH,
                MapType.LRU_PERCPU_HASH, MapType.LPM_TRIE, MapType.QUEUE, MapType.STACK, MapType.RINGBUF,
                MapType.PROG_ARRAY, MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS, MapType.DEVMAP,
                MapType.DEVMAP_HASH, MapType.BLOOM_FILTER}
    assert required <= set(supported_map_types())
    assert map_class(MapType.LRU_HASH).lru  # type: ignore[attr-defined]


# -- array -----------------------------------------------------------------------------------------

def test_array_values_are_zeroed_rounded_and_in_one_mapping(kernel: Kernel) -> None:
    m = new(kernel, MapType.ARRAY, 4, 5, 3)
    assert m.elem_size == 8 and m.data_off % 64 == 0
    assert m.lookup_elem_sys(u32(2)) == bytes(5)
    m.update_elem_sys(u32(1), b"hello", ANY)
    assert m.lookup_elem_sys(u32(1)) == b"hello"
    off = m.lookup_elem(u32(1))
    assert off == m.data_off + 8 and bytes(m.storage[off:off + 5]) == b"hello"
    # the header is what other processes and native code read
    h = Header.unpack(m.storage[:HEADER_SIZE])
    assert (h.map_type, h.key_size, h.value_size, h.max_entries, h.data_off) == (2, 4, 5, 3, m.data_off)


def test_array_get_next_key_rules(kernel: Kernel) -> None:
    m = new(kernel, MapType.ARRAY, 4, 4, 3)
    assert keys(m) == [u32(0), u32(1), u32(2)]
    assert m.get_next_key(u32(100)) == u32(0)  # out of range restarts
    with pytest.raises(BpfError) as e:
        m.delete_elem_sys(u32(0))
    assert e.value.errno == errno.EINVAL


def test_array_gen_lookup_matches_the_kernel_shape(kernel: Kernel) -> None:
    m = new(kernel, MapType.ARRAY, 4, 4, 1)
    seq = m.gen_lookup()
    assert seq == [
        Insn(0x07, 1, 0, 0, m.data_off), Insn(0x61, 0, 2, 0, 0), Insn(0x35, 0, 0, 3, 1),
        Insn(0x67, 0, 0, 0, 3), Insn(0x0F, 0, 1, 0, 0), Insn(0x05, 0, 0, 1, 0), Insn(0xB7, 0, 0, 0, 0),
    ]
    odd = new(kernel, MapType.ARRAY, 4, 20, 5)  # 24-byte elements: multiply instead of shift
    assert odd.gen_lookup()[3] == Insn(0x27, 0, 0, 0, 24)
    assert new(kernel, MapType.PERCPU_ARRAY, 4, 4, 1).gen_lookup() is None
    assert m.direct_value_addr(3) == m.data_off + 3
    with pytest.raises(BpfError):
        odd.direct_value_addr(0)  # only single-element arrays: ENOTSUPP


def test_percpu_array_values_per_cpu(kernel: Kernel) -> None:
    m = new(kernel, MapType.PERCPU_ARRAY, 4, 4, 2)
    assert m.value_size_sys == 16  # 2 CPUs x round_up(4, 8)
    m.update_elem_sys(u32(1), u32(7) + bytes(4) + u32(9) + bytes(4), ANY)
    assert m.lookup_elem_sys(u32(1)) == u32(7) + bytes(4) + u32(9) + bytes(4)
    kernel.cpu = 1
    try:
        assert bytes(m.storage[m.lookup_elem(u32(1)):][:4]) == u32(9)
        assert m.update_elem(u32(1), u32(5), ANY, from_prog=True) == 0
    finally:
        kernel.cpu = 0
    assert m.lookup_elem_sys(u32(1))[8:12] == u32(5)


# -- hash --------------------------------------------------------------------------------------------

def test_hash_update_flags_and_full(kernel: Kernel) -> None:
    m = new(kernel, MapType.HASH, 4, 8, 2)
    m.update_elem_sys(u32(1), b"a" * 8, NOEXIST)
    with pytest.raises(BpfError) as e:
        m.update_elem_sys(u32(1), b"b" * 8, NOEXIST)
    assert e.value.errno == errno.EEXIST
    with pytest.raises(BpfError) as e:
        m.update_elem_sys(u32(2), b"b" * 8, EXIST)
    assert e.value.errno == errno.ENOENT
    m.update_elem_sys(u32(2), b"b" * 8, ANY)
    with pytest.raises(BpfError) as e:
        m.update_elem_sys(u32(3), b"c" * 8, ANY)
    assert e.value.errno == errno.E2BIG
    m.update_elem_sys(u32(2), b"z" * 8, EXIST)  # replacing in a full map works
    assert m.lookup_elem_sys(u32(2)) == b"z" * 8
    m.delete_elem_sys(u32(1))
    m.update_elem_sys(u32(3), b"c" * 8, ANY)  # the freed slot is reused
    assert sorted(keys(m)) == [u32(2), u32(3)]


def test_hash_get_next_key_order_and_missing_key_restarts(kernel: Kernel) -> None:
    m = new(kernel, MapType.HASH, 4, 4, 64)
    for i in range(40):
        m.update_elem_sys(u32(i), u32(i), ANY)
    order = keys(m)
    assert sorted(order) == [u32(i) for i in range(40)]
    # bucket order, then chain order: the order follows the hash of each key
    buckets = [key_hash(k, m.seed) & (m.n_buckets - 1) for k in order]
    assert buckets == sorted(buckets)
    assert m.get_next_key(u32(1000)) == order[0]  # a key not in the map restarts at the first
    assert m.get_next_key(None) == order[0]


def test_hash_delete_during_iteration_visits_every_key_once(kernel: Kernel) -> None:
    m = new(kernel, MapType.HASH, 4, 4, 32)
    for i in range(20):
        m.update_elem_sys(u32(i), u32(i), ANY)
    seen = []
    k = None
    while True:
        try:
            k = m.get_next_key(k)
        except BpfError:
            break
        seen.append(k)
        m.delete_elem_sys(k)  # deleting the current key: the next call restarts from the first
    assert sorted(seen) == [u32(i) for i in range(20)]
    assert keys(m) == []
    assert m.count() == 0


def test_hash_lookup_and_delete(kernel: Kernel) -> None:
    m = new(kernel, MapType.HASH, 4, 4, 4)
    m.update_elem_sys(u32(5), u32(50), ANY)
    assert m.lookup_and_delete_elem_sys(u32(5), 0) == u32(50)
    with pytest.raises(BpfError) as e:
        m.lookup_elem_sys(u32(5))
    assert e.value.errno == errno.ENOENT


def test_percpu_hash_program_writes_its_cpu_only(kernel: Kernel) -> None:
    m = new(kernel, MapType.PERCPU_HASH, 4, 4, 4)
    kernel.cpu = 1
    try:
        assert m.update_elem(u32(3), u32(42), ANY, from_prog=True) == 0
    finally:
        kernel.cpu = 0
    assert m.lookup_elem_sys(u32(3)) == bytes(8) + u32(42) + bytes(4)


def test_lru_evicts_least_recently_used_unless_referenced(kernel: Kernel) -> None:
    """The kernel's LRU lists (tests/kernel/test_lru.py replays this and more on Linux)."""
    m = new(kernel, MapType.LRU_HASH, 4, 4, 3)
    for i in range(3):
        m.update_elem_sys(u32(i), u32(i), ANY)
    assert m.lookup_elem(u32(0)) is not None  # a program lookup marks key 0 referenced
    m.update_elem_sys(u32(3), u32(3), ANY)  # full: evicts the oldest unreferenced, key 1
    assert sorted(keys(m)) == [u32(0), u32(2), u32(3)]
    m.update_elem_sys(u32(4), u32(4), ANY)
    assert sorted(keys(m)) == [u32(0), u32(3), u32(4)]
    assert m.count() == 3


def test_lru_gen_lookup_sets_the_ref_byte(kernel: Kernel) -> None:
    from pybpf.progtypes.internal import internal_id

    m = new(kernel, MapType.LRU_HASH, 4, 4, 3)
    seq = m.gen_lookup()
    assert seq[0] == Insn(0x85, 0, 0, 0, internal_id("__htab_map_lookup_elem"))
    assert seq[-1] == Insn(0x07, 0, 0, 0, 24 + 8)
    plain = new(kernel, MapType.HASH, 12, 4, 3)
    assert plain.gen_lookup() == [seq[0], Insn(0x15, 0, 0, 1, 0), Insn(0x07, 0, 0, 0, 24 + 16)]
    plain.update_elem_sys(b"k" * 12, u32(77), ANY)
    elem = plain.lookup_elem_raw(b"k" * 12)
    assert bytes(plain.storage[elem + 40:elem + 44]) == u32(77)


# -- LPM trie ---------------------------------------------------------------------------------------

def lpm_key(plen: int, *octets: int) -> bytes:
    return u32(plen) + bytes(octets)


def test_lpm_longest_prefix_and_postorder_iteration(kernel: Kernel) -> None:
    m = new(kernel, MapType.LPM_TRIE, 8, 4, 8, 1)
    m.update_elem_sys(lpm_key(16, 192, 168, 0, 0), b"AAAA", ANY)
    m.update_elem_sys(lpm_key(24, 192, 168, 0, 0), b"BBBB", ANY)
    m.update_elem_sys(lpm_key(24, 192, 168, 1, 0), b"CCCC", ANY)
    m.update_elem_sys(lpm_key(24, 192, 168, 128, 0), b"DDDD", ANY)
    assert m.lookup_elem_sys(lpm_key(32, 192, 168, 1, 77)) == b"CCCC"
    assert m.lookup_elem_sys(lpm_key(32, 192, 168, 200, 1)) == b"AAAA"
    with pytest.raises(BpfError):
        m.lookup_elem_sys(lpm_key(32, 10, 0, 0, 1))
    # the kernel's documented postorder: more specific first
    assert keys(m) == [lpm_key(24, 192, 168, 0, 0), lpm_key(24, 192, 168, 1, 0),
                       lpm_key(24, 192, 168, 128, 0), lpm_key(16, 192, 168, 0, 0)]
    m.delete_elem_sys(lpm_key(16, 192, 168, 0, 0))
    with pytest.raises(BpfError):
        m.lookup_elem_sys(lpm_key(32, 192, 168, 200, 1))
    assert m.lookup_elem_sys(lpm_key(32, 192, 168, 0, 9)) == b"BBBB"
    with pytest.raises(BpfError) as e:
        m.delete_elem_sys(lpm_key(16, 192, 168, 0, 0))
    assert e.value.errno == errno.ENOENT


def test_lpm_full_is_enospc_and_noexist(kernel: Kernel) -> None:
    m = new(kernel, MapType.LPM_TRIE, 8, 4, 2, 1)
    m.update_elem_sys(lpm_key(8, 10, 0, 0, 0), u32(1), ANY)
    with pytest.raises(BpfError) as e:
        m.update_elem_sys(lpm_key(8, 10, 0, 0, 0), u32(1), NOEXIST)
    assert e.value.errno == errno.EEXIST
    m.update_elem_sys(lpm_key(8, 11, 0, 0, 0), u32(1), ANY)
    with pytest.raises(BpfError) as e:
        m.update_elem_sys(lpm_key(8, 12, 0, 0, 0), u32(1), ANY)
    assert e.value.errno == errno.ENOSPC


# -- queue / stack ---------------------------------------------------------------------------------

def test_queue_and_stack_order(kernel: Kernel) -> None:
    q = new(kernel, MapType.QUEUE, 0, 4, 3)
    s = new(kernel, MapType.STACK, 0, 4, 3)
    for v in (1, 2, 3):
        q.push_elem_sys(u32(v), ANY)
        s.push_elem_sys(u32(v), ANY)
    assert q.lookup_elem_sys(b"") == u32(1)  # peek
    assert [q.lookup_and_delete_elem_sys(b"", 0) for _ in range(3)] == [u32(1), u32(2), u32(3)]
    assert [s.lookup_and_delete_elem_sys(b"", 0) for _ in range(3)] == [u32(3), u32(2), u32(1)]
    with pytest.raises(BpfError) as e:
        q.lookup_and_delete_elem_sys(b"", 0)
    assert e.value.errno == errno.ENOENT


def test_queue_exist_flag_overwrites_oldest(kernel: Kernel) -> None:
    q = new(kernel, MapType.QUEUE, 0, 4, 2)
    q.push_elem_sys(u32(1), ANY)
    q.push_elem_sys(u32(2), ANY)
    q.push_elem_sys(u32(3), EXIST)
    assert q.items() == [u32(2), u32(3)]


# -- ring buffer ---------------------------------------------------------------------------------

def test_ringbuf_reserve_submit_discard_consume(kernel: Kernel) -> None:
    rb = new(kernel, MapType.RINGBUF, 0, 0, 4096)
    off = rb.reserve(10)
    assert off is not None and off % 8 == 0
    rb.mem[off:off + 10] = b"0123456789"
    second = rb.reserve(4)
    assert rb.consume() == []  # the first record is still busy
    rb.commit(off, discard=False)
    rb.commit(second, discard=True)
    assert rb.consume() == [b"0123456789"]
    assert rb.output(b"abc", 0) == 0
    assert rb.query(1) == 4096
    assert rb.consume() == [b"abc"]
    assert rb.query(0) == 0  # available data drained


def test_ringbuf_full_and_wraparound(kernel: Kernel) -> None:
    rb = new(kernel, MapType.RINGBUF, 0, 0, 4096)
    sizes = []
    while True:
        off = rb.reserve(1000)
        if off is None:
            break
        rb.commit(off, discard=False)
        sizes.append(off)
    assert len(sizes) == 4  # 4 x 1008 bytes fit in 4096, the 5th does not
    assert rb.output(bytes(100), 0) == -errno.EAGAIN  # 64 bytes left
    assert len(rb.consume()) == 4
    # after consuming, records continue past the end of the ring: contiguous, with a filler
    for i in range(6):
        data = bytes([i]) * 1000
        assert rb.output(data, 0) == 0
        assert rb.consume() == [data]


# -- fd maps ---------------------------------------------------------------------------------------

def test_array_of_maps_checks_inner_and_holds_references(kernel: Kernel) -> None:
    inner = new(kernel, MapType.ARRAY, 4, 4, 1)
    outer = new(kernel, MapType.ARRAY_OF_MAPS, 4, 4, 2, inner_map=inner)
    assert outer.inner_map_meta is not None and outer.inner_map_meta.matches(inner)
    other = new(kernel, MapType.ARRAY, 4, 4, 1)
    fd = kernel.new_fd(other)
    outer.update_elem_sys(u32(1), u32(fd), ANY)
    assert outer.lookup_elem_sys(u32(1)) == u32(other.id)
    assert outer.inner_lookup(u32(1)) is other
    ref = kernel.fs.refdir / f"map-{outer.id}.1"
    assert ref.exists() and ref.stat().st_ino == other.path.stat().st_ino
    outer.delete_elem_sys(u32(1))
    assert not ref.exists()
    bad = new(kernel, MapType.HASH, 4, 4, 1)
    with pytest.raises(BpfError) as e:
        outer.update_elem_sys(u32(0), u32(kernel.new_fd(bad)), ANY)
    assert e.value.errno == errno.EINVAL


def test_hash_of_maps(kernel: Kernel) -> None:
    inner = new(kernel, MapType.HASH, 4, 4, 1)
    outer = new(kernel, MapType.HASH_OF_MAPS, 8, 4, 4, inner_map=inner)
    fd = kernel.new_fd(inner)
    outer.update_elem_sys(b"somekey!", u32(fd), ANY)
    assert outer.lookup_elem_sys(b"somekey!") == u32(inner.id)
    assert outer.inner_lookup(b"somekey!") is inner
    outer.delete_elem_sys(b"somekey!")
    assert outer.inner_lookup(b"somekey!") is None


def test_devmap_requires_an_existing_device(kernel: Kernel) -> None:
    d = new(kernel, MapType.DEVMAP, 4, 4, 4)
    assert d.map_flags & 0x80  # BPF_F_RDONLY_PROG forced on
    d.update_elem_sys(u32(0), u32(1), ANY)  # lo
    assert d.ifindex_at(0) == 1 and d.ifindex_at(1) is None
    with pytest.raises(BpfError) as e:
        d.update_elem_sys(u32(1), u32(0x7FFF0000), ANY)
    assert e.value.errno == errno.EINVAL
    h = new(kernel, MapType.DEVMAP_HASH, 4, 8, 4)
    h.update_elem_sys(u32(77), u32(1) + u32(0), ANY)
    assert h.ifindex_at(77) == 1


def test_bloom_filter_no_false_negatives(kernel: Kernel) -> None:
    b = new(kernel, MapType.BLOOM_FILTER, 0, 8, 100, map_extra=3)
    assert b.nr_hash_funcs == 3
    for i in range(100):
        b.push_elem_sys(struct.pack("<Q", i), ANY)
    assert all(b.peek_elem(struct.pack("<Q", i))[0] == 0 for i in range(100))
    misses = sum(b.peek_elem(struct.pack("<Q", i))[0] == -errno.ENOENT for i in range(1000, 2000))
    assert misses > 900  # false positives are rare


def test_perf_event_array_slots(kernel: Kernel) -> None:
    p = new(kernel, MapType.PERF_EVENT_ARRAY, 4, 4, 2)
    assert p.output(0, b"x") == -errno.ENOENT
    assert p.output(5, b"x") == -errno.E2BIG
    p.enable()
    assert p.output(1, b"hello") == 0 and p.output(1, b"!") == 0
    assert p.read(1) == [b"hello", b"!"] and p.read(1) == []


def test_frozen_map_refuses_syscall_writes_but_freezing_twice_is_ebusy(kernel: Kernel) -> None:
    m = new(kernel, MapType.ARRAY, 4, 4, 1)
    m.freeze()
    assert m.frozen
    with pytest.raises(BpfError) as e:
        m.freeze()
    assert e.value.errno == errno.EBUSY
