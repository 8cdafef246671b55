"""Native map helpers against the kernel layer's Python helpers, on the same maps (hypothesis).

Every step of a random operation sequence runs twice from the same storage: once through the native
helper bound for the helper id (the library function ``native_helper_table`` picks), once through
the kernel layer's Python helper for that id (``pybpf.kernel.helpers``), each starting from the bytes
the previous step left. Both must return the same r0, write the same output bytes and leave the map
storage byte for byte the same. The sequence then continues from that common state, so native steps
always continue what Python did and the other way round. Full maps (E2BIG), LRU eviction with its
second chance, per-CPU copies, spin-locked values, empty queues and a wrapping ring buffer are all
reachable from the strategies.
"""

from __future__ import annotations

import ctypes
import os
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pybpf.jit.engine import NativeSpace
from pybpf.jit.native import ENV, ENV_SIZE, EnvField, layout, library, native_helper_table
from pybpf.jit.runtime import NativeBuffer, NativeHelperContext
from pybpf.kernel import Kernel
from pybpf.kernel.helpers import kernel_helpers
from pybpf.kernel.maps.base import MapAttrs
from pybpf.kernel.runenv import RedirectInfo
from pybpf.progtypes.internal import map_op_function
from pybpf.uapi import HelperId, MapType, ProgType
from pybpf.vm import RegionKind

M64 = (1 << 64) - 1
EXAMPLES = int(os.environ.get("PYBPF_NATIVE_EXAMPLES", "100"))  # raise it for a longer search
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NCPUS = 2


@pytest.fixture(scope="module")
def kernel() -> Iterator[Kernel]:
    with tempfile.TemporaryDirectory() as d:
        yield Kernel(Path(d) / "bpffs", ncpus=NCPUS)


class Harness:
    """A run state + env block for native calls, and a helper context for the Python helpers."""

    def __init__(self, kernel: Kernel, prog_type: int = ProgType.XDP) -> None:
        self.kernel = kernel
        self.prog_type = prog_type
        self.lib = library()
        self.state = (ctypes.c_uint64 * ((ENV + ENV_SIZE) // 8))()
        self.address = ctypes.addressof(self.state)
        self.view = memoryview(self.state).cast("B")
        struct.pack_into("<I", self.view, ENV + EnvField.OWNER, os.getpid())
        self.ctx = NativeHelperContext(self.state)
        self.ctx.space = NativeSpace(map_kind=RegionKind.MAP, scratch_kind=RegionKind.MEM)
        self.ctx.env = SimpleNamespace(cpu=0, ri=RedirectInfo(), prog_type=prog_type, xdp=None, skb=None)
        self.python = kernel_helpers()
        self.keep: list[NativeBuffer] = []
        self.set_cpu(0)

    def set_cpu(self, cpu: int) -> None:
        self.kernel.cpu = cpu
        self.ctx.env.cpu = cpu
        struct.pack_into("<I", self.view, ENV + EnvField.CPU, cpu)

    def mem(self, data: bytes | int) -> NativeBuffer:
        b = NativeBuffer(data)
        self.keep.append(b)
        return b

    def native(self, hid: int, m: Any, *args: int) -> int:
        self.ctx.space.add_map(m)  # (for the Python helper that may follow)
        entry = native_helper_table(self.prog_type, [int(m.map_type)])[hid]
        return self.lib.call(entry.impl.address, self.address, *args)  # type: ignore[union-attr]

    def py(self, hid: int, *args: int) -> int:
        regs = [a & M64 for a in args] + [0] * (5 - len(args))
        return int(self.python[hid](self.ctx, *regs)) & M64

    def both(self, hid: int, m: Any, *args: int, outs: tuple[NativeBuffer, ...] = ()) -> int:
        """The differential step (see the module docstring); returns the common r0."""
        self.ctx.space.add_map(m)
        snap, out_snap = bytes(m.mem), [o.read() for o in outs]
        rn = self.native(hid, m, *args)
        after_n, outs_n = bytes(m.mem), [o.read() for o in outs]
        m.mem[:] = snap
        for o, s in zip(outs, out_snap, strict=True):
            o.write(s)
        rp = self.py(hid, *args)
        after_p, outs_p = bytes(m.mem), [o.read() for o in outs]
        assert rn == rp, f"helper {hid}: native r0 {rn:#x}, Python r0 {rp:#x}"
        assert outs_n == outs_p, f"helper {hid}: output buffers differ"
        if after_n != after_p:
            diff = next(i for i, (a, b) in enumerate(zip(after_n, after_p, strict=True)) if a != b)
            raise AssertionError(f"helper {hid}: storage differs first at byte {diff}")
        return rp


def key_bytes(index: int, size: int) -> bytes:
    return bytes((index * 37 + j * 11 + 1) & 0xFF for j in range(size))


def op_id(generic: HelperId, map_type: int, internal: bool) -> int:
    """The generic helper id, or the internal function the verifier would call instead."""
    if internal:
        f = map_op_function(map_type, generic)
        if f is not None:
            return f.id
    return int(generic)


# -- hash tables ----------------------------------------------------------------------------------------

HASH_TYPES = [MapType.HASH, MapType.PERCPU_HASH, MapType.LRU_HASH, MapType.LRU_PERCPU_HASH]
FLAGS = [0, 0, 0, 1, 2, 3, 4, 5, 6, 8]
hash_ops = st.lists(st.tuples(
    st.sampled_from(["update", "update", "lookup", "raw", "delete", "percpu", "cpu"]),
    st.integers(0, 9),  # key index
    st.integers(0, 255),  # value seed
    st.sampled_from(FLAGS),
    st.booleans(),  # internal function instead of the generic helper
), max_size=40)


@SETTINGS
@given(mt=st.sampled_from(HASH_TYPES), ks=st.sampled_from([1, 3, 4, 8, 12, 40]), vs=st.sampled_from([4, 8, 12]),
       max_entries=st.integers(1, 6), spin=st.booleans(), no_common_lru=st.booleans(), ops=hash_ops)
def test_hash_maps_match_python(kernel: Kernel, mt: MapType, ks: int, vs: int, max_entries: int, spin: bool,
                                no_common_lru: bool, ops: list[tuple[str, int, int, int, bool]]) -> None:
    from pybpf.uapi import BPF_F_NO_COMMON_LRU

    percpu = mt in (MapType.PERCPU_HASH, MapType.LRU_PERCPU_HASH)
    lru = mt in (MapType.LRU_HASH, MapType.LRU_PERCPU_HASH)
    spin_off = (4 if vs >= 8 else 0) if spin and not percpu else None
    flags = BPF_F_NO_COMMON_LRU if lru and no_common_lru else 0
    m = kernel.create_map(MapAttrs(int(mt), ks, vs, max_entries + (NCPUS if flags else 0), map_flags=flags,
                                   spin_lock_off=spin_off))
    max_entries = m.max_entries
    h = Harness(kernel)
    keys = [h.mem(key_bytes(i, ks)) for i in range(10)]
    out = h.mem(vs)
    for kind, ki, seed, flags, internal in ops:
        key = keys[ki].address
        if kind == "update":
            value = h.mem(bytes((seed + j) & 0xFF for j in range(vs)))
            h.both(op_id(HelperId.map_update_elem, mt, internal), m, m.address, key, value.address, flags)
        elif kind == "lookup":
            h.both(op_id(HelperId.map_lookup_elem, mt, internal), m, m.address, key)
        elif kind == "raw" and mt in (MapType.HASH, MapType.LRU_HASH):
            from pybpf.progtypes.internal import internal_id

            h.both(internal_id("__htab_map_lookup_elem"), m, m.address, key)
        elif kind == "delete":
            h.both(op_id(HelperId.map_delete_elem, mt, internal), m, m.address, key)
        elif kind == "percpu" and percpu:
            h.both(op_id(HelperId.map_lookup_percpu_elem, mt, internal), m, m.address, key, seed % 4 | (seed << 32))
        elif kind == "cpu":
            h.set_cpu(seed % NCPUS)
    _ = out
    assert m.count() <= max_entries


@pytest.mark.parametrize("flags", [0, 2])  # the common LRU, and BPF_F_NO_COMMON_LRU (per-CPU lists)
@pytest.mark.parametrize("map_type", [MapType.LRU_HASH, MapType.LRU_PERCPU_HASH])
def test_lru_evictions_match_python(kernel: Kernel, map_type: MapType, flags: int) -> None:
    """Fill an LRU map, reference some keys, overflow it on both CPUs: native code and Python evict
    the same elements and leave the same lists (the kernel layer's port of bpf_lru_list.c)."""
    results = []
    for native in (True, False):
        from pybpf.uapi import BPF_F_ZERO_SEED

        m = kernel.create_map(MapAttrs(int(map_type), 4, 8, 8, map_flags=flags | BPF_F_ZERO_SEED))
        h = Harness(kernel)
        h.ctx.space.add_map(m)
        keys = [h.mem(struct.pack("<I", i)) for i in range(40)]
        val = h.mem(bytes(8))
        call = (lambda hid, *a, h=h, m=m: h.native(hid, m, *a)) if native else h.py
        for i in range(40):
            h.set_cpu(i % NCPUS)
            assert call(HelperId.map_update_elem, m.address, keys[i].address, val.address, 0) == 0
            if i % 3 == 0:  # referenced: a second chance on the next rotation
                call(HelperId.map_lookup_elem, m.address, keys[i // 2].address)
            if i % 7 == 0:
                call(HelperId.map_delete_elem, m.address, keys[i].address)
        survivors = sorted(int.from_bytes(k, "little") for k, _ in m.items_raw())
        results.append((survivors, m.bpf_lru.lists(), bytes(m.mem[m.data_off:])))
    assert results[0] == results[1]
    assert 0 < len(results[0][0]) <= 8 and results[0][0] != list(range(len(results[0][0])))  # evictions happened


def test_full_hash_map_is_e2big_both_ways(kernel: Kernel) -> None:
    m = kernel.create_map(MapAttrs(int(MapType.HASH), 4, 4, 2))
    h = Harness(kernel)
    keys = [h.mem(struct.pack("<I", i)) for i in range(3)]
    val = h.mem(b"abcd")
    assert h.native(HelperId.map_update_elem, m, m.address, keys[0].address, val.address, 0) == 0
    assert h.py(HelperId.map_update_elem, m.address, keys[1].address, val.address, 0) == 0
    e2big = (-7) & M64
    assert h.native(HelperId.map_update_elem, m, m.address, keys[2].address, val.address, 0) == e2big
    assert h.py(HelperId.map_update_elem, m.address, keys[2].address, val.address, 0) == e2big
    assert h.native(HelperId.map_delete_elem, m, m.address, keys[1].address) == 0
    assert h.py(HelperId.map_update_elem, m.address, keys[2].address, val.address, 0) == 0  # reuses the free slot
    assert m.lookup_elem_sys(struct.pack("<I", 2)) == b"abcd" and m.count() == 2


# -- arrays -------------------------------------------------------------------------------------------

array_ops = st.lists(st.tuples(
    st.sampled_from(["update", "update", "lookup", "delete", "percpu", "cpu"]),
    st.integers(0, 7), st.integers(0, 255), st.sampled_from(FLAGS), st.booleans(),
), max_size=30)


@SETTINGS
@given(mt=st.sampled_from([MapType.ARRAY, MapType.PERCPU_ARRAY]), vs=st.sampled_from([1, 4, 8, 13]),
       max_entries=st.integers(1, 5), spin=st.booleans(), ops=array_ops)
def test_arrays_match_python(kernel: Kernel, mt: MapType, vs: int, max_entries: int, spin: bool,
                             ops: list[tuple[str, int, int, int, bool]]) -> None:
    spin_off = 0 if spin and mt == MapType.ARRAY and vs >= 4 else None
    m = kernel.create_map(MapAttrs(int(mt), 4, vs, max_entries, spin_lock_off=spin_off))
    h = Harness(kernel)
    keys = [h.mem(struct.pack("<I", i if i < 6 else 0xFFFF_FFF0 + i)) for i in range(8)]
    for kind, ki, seed, flags, internal in ops:
        key = keys[ki].address
        if kind == "update":
            value = h.mem(bytes((seed * 3 + j) & 0xFF for j in range(vs)))
            h.both(op_id(HelperId.map_update_elem, mt, internal), m, m.address, key, value.address, flags)
        elif kind == "lookup":
            h.both(op_id(HelperId.map_lookup_elem, mt, internal), m, m.address, key)
        elif kind == "delete":
            h.both(op_id(HelperId.map_delete_elem, mt, internal), m, m.address, key)
        elif kind == "percpu" and mt == MapType.PERCPU_ARRAY:
            h.both(op_id(HelperId.map_lookup_percpu_elem, mt, internal), m, m.address, key, seed % 3)
        elif kind == "cpu":
            h.set_cpu(seed % NCPUS)


# -- queues and stacks ----------------------------------------------------------------------------------

qs_ops = st.lists(st.tuples(st.sampled_from(["push", "push", "pop", "peek"]), st.integers(0, 255),
                            st.sampled_from([0, 0, 1, 2, 3, 4]), st.booleans()), max_size=30)


@SETTINGS
@given(mt=st.sampled_from([MapType.QUEUE, MapType.STACK]), vs=st.sampled_from([1, 4, 8, 12]),
       max_entries=st.integers(1, 4), ops=qs_ops)
def test_queues_and_stacks_match_python(kernel: Kernel, mt: MapType, vs: int, max_entries: int,
                                        ops: list[tuple[str, int, int, bool]]) -> None:
    m = kernel.create_map(MapAttrs(int(mt), 0, vs, max_entries))
    h = Harness(kernel)
    out = h.mem(vs)
    for kind, seed, flags, internal in ops:
        if kind == "push":
            value = h.mem(bytes((seed + 5 * j) & 0xFF for j in range(vs)))
            h.both(op_id(HelperId.map_push_elem, mt, internal), m, m.address, value.address, flags)
        else:
            out.write(b"\xee" * vs)
            generic = HelperId.map_pop_elem if kind == "pop" else HelperId.map_peek_elem
            h.both(op_id(generic, mt, internal), m, m.address, out.address, outs=(out,))


# -- ring buffers ---------------------------------------------------------------------------------------

rb_ops = st.lists(st.tuples(
    st.sampled_from(["reserve", "reserve", "output", "submit", "discard", "query", "consume"]),
    st.sampled_from([0, 1, 4, 8, 13, 100, 1000, 2000, 4088, 5000]),
    st.sampled_from([0, 0, 0, 1, 2, 4]),
), max_size=40)


@SETTINGS
@given(ops=rb_ops)
def test_ring_buffer_matches_python(kernel: Kernel, ops: list[tuple[str, int, int]]) -> None:
    m = kernel.create_map(MapAttrs(int(MapType.RINGBUF), 0, 0, 4096))
    h = Harness(kernel)
    data = h.mem(bytes(range(256)) * 20)
    pending: list[int] = []
    for kind, size, flags in ops:
        if kind == "reserve":
            p = h.both(HelperId.ringbuf_reserve, m, m.address, size, flags)
            if p:
                pending.append(p)
        elif kind == "output":
            h.both(HelperId.ringbuf_output, m, m.address, data.address, size, flags)
        elif kind in ("submit", "discard") and pending:
            sample = pending.pop(size % len(pending))
            hid = HelperId.ringbuf_submit if kind == "submit" else HelperId.ringbuf_discard
            h.both(hid, m, sample, 0)
        elif kind == "query":
            h.both(HelperId.ringbuf_query, m, m.address, flags % 5)
        elif kind == "consume":
            m.consume()


def test_ring_buffer_records_read_back(kernel: Kernel) -> None:
    m = kernel.create_map(MapAttrs(int(MapType.RINGBUF), 0, 0, 4096))
    h = Harness(kernel)
    msg = h.mem(b"native!")
    assert h.native(HelperId.ringbuf_output, m, m.address, msg.address, 7, 0) == 0
    p = h.native(HelperId.ringbuf_reserve, m, m.address, 4, 0)
    ctypes.memmove(p, b"resv", 4)
    assert h.native(HelperId.ringbuf_submit, m, p, 0) == 0
    q = h.native(HelperId.ringbuf_reserve, m, m.address, 4, 0)
    assert h.native(HelperId.ringbuf_discard, m, q, 0) == 0
    assert m.consume() == [b"native!", b"resv"]


# -- LPM tries -------------------------------------------------------------------------------------------

@SETTINGS
@given(ds=st.sampled_from([1, 2, 4, 8, 16]),
       routes=st.lists(st.tuples(st.integers(0, 2**128 - 1), st.integers(0, 128)), max_size=24),
       deletes=st.lists(st.integers(0, 23), max_size=6),
       probes=st.lists(st.tuples(st.integers(0, 2**128 - 1), st.integers(0, 130), st.booleans()), min_size=1,
                       max_size=24))
def test_lpm_lookups_match_python(kernel: Kernel, ds: int, routes: list[tuple[int, int]], deletes: list[int],
                                  probes: list[tuple[int, int, bool]]) -> None:
    from pybpf.uapi import BPF_F_NO_PREALLOC

    m = kernel.create_map(MapAttrs(int(MapType.LPM_TRIE), 4 + ds, 8, 32, map_flags=BPF_F_NO_PREALLOC))
    bits = 8 * ds
    installed = []
    for i, (addr, plen) in enumerate(routes):
        key = struct.pack("<I", plen % (bits + 1)) + (addr >> (128 - bits)).to_bytes(ds, "big")
        m.update_elem_sys(key, struct.pack("<Q", i), 0)
        installed.append(key)
    for d in deletes:
        if d < len(installed):
            m.delete_elem(installed[d])
    h = Harness(kernel)
    for addr, plen, internal in probes:
        key = h.mem(struct.pack("<I", plen if plen <= bits + 1 else bits) + (addr >> (128 - bits)).to_bytes(ds, "big"))
        h.both(op_id(HelperId.map_lookup_elem, MapType.LPM_TRIE, internal), m, m.address, key.address)


def test_lpm_longest_match_wins(kernel: Kernel) -> None:
    from pybpf.uapi import BPF_F_NO_PREALLOC

    m = kernel.create_map(MapAttrs(int(MapType.LPM_TRIE), 8, 4, 16, map_flags=BPF_F_NO_PREALLOC))
    for prefix, plen, nh in (("10.0.0.0", 8, 1), ("10.1.0.0", 16, 2), ("10.1.2.0", 24, 3), ("0.0.0.0", 0, 9)):
        m.update_elem_sys(struct.pack("<I", plen) + bytes(int(b) for b in prefix.split(".")), struct.pack("<I", nh), 0)
    h = Harness(kernel)
    for ip, want in (("10.1.2.3", 3), ("10.1.9.9", 2), ("10.200.0.1", 1), ("192.0.2.1", 9)):
        key = h.mem(struct.pack("<I", 32) + bytes(int(b) for b in ip.split(".")))
        v = h.native(HelperId.map_lookup_elem, m, m.address, key.address)
        assert v and struct.unpack("<I", ctypes.string_at(v, 4))[0] == want


# -- device maps and the generic dispatch -----------------------------------------------------------------

def test_devmap_lookups_match_python(kernel: Kernel) -> None:
    dm = kernel.create_map(MapAttrs(int(MapType.DEVMAP), 4, 4, 4))
    dm.update_elem_sys(struct.pack("<I", 2), struct.pack("<I", 1), 0)  # slot 2 -> lo
    dh = kernel.create_map(MapAttrs(int(MapType.DEVMAP_HASH), 4, 4, 4))
    dh.update_elem_sys(struct.pack("<I", 7), struct.pack("<I", 1), 0)
    h = Harness(kernel)
    for m in (dm, dh):
        for k in (0, 2, 3, 7, 9):
            key = h.mem(struct.pack("<I", k))
            h.both(HelperId.map_lookup_elem, m, m.address, key.address)


def test_generic_helpers_stay_python_for_maps_without_native_ops() -> None:
    hof = native_helper_table(ProgType.XDP, [MapType.HASH_OF_MAPS, MapType.HASH])
    assert HelperId.map_lookup_elem not in hof  # a map-in-map lookup needs the Python helper
    assert HelperId.map_update_elem in hof and HelperId.map_delete_elem in hof
    mixed = native_helper_table(ProgType.XDP, [MapType.RINGBUF, MapType.HASH, MapType.PROG_ARRAY])
    assert HelperId.map_lookup_elem in mixed  # ring buffers and program arrays never reach it
    bloom = native_helper_table(ProgType.XDP, [MapType.BLOOM_FILTER, MapType.QUEUE])
    assert HelperId.map_push_elem not in bloom and HelperId.map_pop_elem in bloom
    tc = native_helper_table(ProgType.SCHED_CLS, [])
    assert HelperId.xdp_adjust_head not in tc and tc[HelperId.redirect].name == "redirect"
    assert HelperId.xdp_adjust_tail not in native_helper_table(ProgType.XDP, [], xdp_frags=True)


lpm_ops = st.lists(st.tuples(
    st.sampled_from(["update", "update", "update", "delete", "delete", "lookup"]),
    st.integers(0, 5),  # which base address
    st.integers(0, 140),  # prefix length (clamped below; some beyond the data: EINVAL)
    st.sampled_from([0, 0, 1, 2, 3]),
    st.booleans(),
), max_size=50)


@SETTINGS
@given(ds=st.sampled_from([1, 2, 4, 5, 8, 16]), max_entries=st.integers(1, 8),
       bases=st.lists(st.integers(0, 2**128 - 1), min_size=6, max_size=6), ops=lpm_ops)
def test_lpm_updates_and_deletes_match_python(kernel: Kernel, ds: int, max_entries: int, bases: list[int],
                                              ops: list[tuple[str, int, int, int, bool]]) -> None:
    from pybpf.uapi import BPF_F_NO_PREALLOC

    m = kernel.create_map(MapAttrs(int(MapType.LPM_TRIE), 4 + ds, 12, max_entries, map_flags=BPF_F_NO_PREALLOC))
    bits = 8 * ds
    h = Harness(kernel)
    for n, (kind, base, plen, flags, internal) in enumerate(ops):
        plen = plen % (bits + 2)  # bits + 1: longer than the data
        key = h.mem(struct.pack("<I", plen) + (bases[base] >> (128 - bits)).to_bytes(ds, "big"))
        if kind == "update":
            value = h.mem(struct.pack("<III", n, base, plen))
            h.both(op_id(HelperId.map_update_elem, MapType.LPM_TRIE, internal), m, m.address, key.address,
                   value.address, flags)
        elif kind == "delete":
            h.both(op_id(HelperId.map_delete_elem, MapType.LPM_TRIE, internal), m, m.address, key.address)
        else:
            h.both(op_id(HelperId.map_lookup_elem, MapType.LPM_TRIE, internal), m, m.address, key.address)
    assert m.count() <= max_entries


def test_lpm_route_table_built_natively_is_byte_identical(kernel: Kernel) -> None:
    """The benchmark's ~1k routes inserted by native code and by Python, then half deleted: the two
    tries' storage is the same, byte for byte (header identity fields aside)."""
    import importlib.util

    from pybpf.uapi import BPF_F_NO_PREALLOC

    root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location("gen_packets", root / "bench" / "gen_packets.py")
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    maps = [kernel.create_map(MapAttrs(int(MapType.LPM_TRIE), 8, 16, 4096, map_flags=BPF_F_NO_PREALLOC))
            for _ in range(2)]
    h = Harness(kernel)
    keys = [h.mem(struct.pack("<I", plen) + addr.to_bytes(4, "big")) for addr, plen, *_ in gen.ROUTES]
    values = [h.mem(struct.pack("<I", ifindex) + dmac + smac) for _, _, ifindex, dmac, smac in gen.ROUTES]
    for m, native in zip(maps, (True, False), strict=True):
        h.ctx.space.add_map(m)
        call = (lambda hid, *a, m=m: h.native(hid, m, *a)) if native else h.py
        for k, v in zip(keys, values, strict=True):
            assert call(HelperId.map_update_elem, m.address, k.address, v.address, 0) == 0
        for k in keys[::2]:
            assert call(HelperId.map_delete_elem, m.address, k.address) == 0
    a, b = (bytes(m.mem) for m in maps)
    start = maps[0].data_off
    assert maps[0].count() == maps[1].count() == len(keys) - len(keys[::2])
    assert a[start:] == b[start:]
    for off in (layout.Hdr.HEAD, layout.Hdr.FREE_HEAD, layout.Hdr.BUMP, layout.Hdr.COUNT):
        assert a[off:off + 4] == b[off:off + 4]
