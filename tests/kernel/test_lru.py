"""LRU_HASH / LRU_PERCPU_HASH: the kernel's LRU lists (bpf_lru_list.c), replayed against Linux.

A scenario is a list of operations — syscall updates (with flags), lookups and deletes, *program*
lookups (an XDP program run through BPF_PROG_TEST_RUN looks the key up, which sets the ref bit),
and CPU switches — replayed through ``union bpf_attr`` on pybpf and, pinned to one CPU at a time,
on the running kernel. After every step both must report the same result and hold the same keys:
which elements a full map evicts is then exactly Linux's. The unmarked tests pin down the same
behaviour on pybpf alone (the key sets Linux 6.12 leaves, worked out from bpf_lru_list.c and
confirmed on the live kernel).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pybpf.kernel import Kernel, MapAttrs
from pybpf.kernel.attr import BpfAttr, addr_of
from pybpf.kernel.maps.hash import LruHashMap
from pybpf.kernel.maps.lru import ACTIVE, INACTIVE
from pybpf.kernel.objects import possible_cpus
from pybpf.kernel.syscall import live_bpf, sys_bpf
from pybpf.uapi import BpfCmd, MapType

NO_COMMON_LRU = 2
BPF_NOEXIST, BPF_EXIST = 1, 2
LRU, LRU_PERCPU = int(MapType.LRU_HASH), int(MapType.LRU_PERCPU_HASH)


def _prog(map_fd: int) -> bytes:
    """XDP: look up the u32 key at the start of the packet in the map (sets its ref bit); r0 = 2."""
    def ins(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
        return struct.pack("<BBhi", code, dst | src << 4, off, imm)

    return b"".join([
        ins(0x61, 2, 1, 0),  # r2 = *(u32 *)(r1 +0)      data
        ins(0x61, 3, 1, 4),  # r3 = *(u32 *)(r1 +4)      data_end
        ins(0xBF, 4, 2),  # r4 = r2
        ins(0x07, 4, imm=4),  # r4 += 4
        ins(0x2D, 4, 3, 7),  # if r4 > r3 goto +7
        ins(0x61, 5, 2, 0),  # r5 = *(u32 *)(r2 +0)
        ins(0x63, 10, 5, -4),  # *(u32 *)(r10 -4) = r5
        ins(0xBF, 2, 10),  # r2 = r10
        ins(0x07, 2, imm=-4),  # r2 += -4
        ins(0x18, 1, 1, imm=map_fd), ins(0),  # r1 = map[fd]
        ins(0x85, imm=1),  # call bpf_map_lookup_elem
        ins(0xB7, 0, imm=2),  # r0 = XDP_PASS
        ins(0x95),  # exit
    ])


class Side:
    """One bpf(2) (pybpf's or the running kernel's) and a way to run on a given CPU."""

    def __init__(self, call: Callable[[int, BpfAttr | None], int], set_cpu: Callable[[int], None],
                 close: Callable[[int], None]) -> None:
        self.call = call
        self.set_cpu = set_cpu
        self.close = close
        self.fds: list[int] = []

    def _elem(self, cmd: int, fd: int, key: bytes | None, value: bytes | None, flags: int = 0,
              value_len: int = 0) -> tuple[int, bytes]:
        a = BpfAttr()
        a.elem.map_fd = fd
        kb = ctypes.create_string_buffer(key or b"\0", max(len(key or b""), 1))
        vb = ctypes.create_string_buffer(value, len(value)) if value is not None else \
            ctypes.create_string_buffer(max(value_len, 1))
        if key is not None:
            a.elem.key = addr_of(kb)
        a.elem.value = addr_of(vb)
        a.elem.flags = flags
        r = self.call(cmd, a)
        return r, vb.raw

    def create(self, map_type: int, max_entries: int, flags: int) -> int:
        a = BpfAttr()
        m = a.map_create
        m.map_type, m.key_size, m.value_size, m.max_entries, m.map_flags = map_type, 4, 8, max_entries, flags
        fd = self.call(BpfCmd.MAP_CREATE, a)
        assert fd >= 0, fd
        self.fds.append(fd)
        return fd

    def load(self, map_fd: int) -> int:
        a = BpfAttr()
        p = a.prog_load
        code = ctypes.create_string_buffer(_prog(map_fd))
        lic = ctypes.create_string_buffer(b"GPL")
        p.prog_type, p.insn_cnt, p.insns, p.license = 6, len(code.raw) // 8, addr_of(code), addr_of(lic)
        fd = self.call(BpfCmd.PROG_LOAD, a)
        assert fd >= 0, fd
        self.fds.append(fd)
        return fd

    def run(self, prog_fd: int, key: int) -> int:
        a = BpfAttr()
        data = ctypes.create_string_buffer(struct.pack("<I", key) + bytes(60))
        a.test.prog_fd, a.test.data_in, a.test.data_size_in, a.test.repeat = prog_fd, addr_of(data), 64, 1
        r = self.call(BpfCmd.PROG_TEST_RUN, a)
        return r if r < 0 else a.test.retval

    def keys(self, fd: int) -> list[int]:
        out: list[int] = []
        key: bytes | None = None
        for _ in range(1 << 12):
            a = BpfAttr()
            a.elem.map_fd = fd
            kb = ctypes.create_string_buffer(key or b"\0", 4)
            nb = ctypes.create_string_buffer(4)
            if key is not None:
                a.elem.key = addr_of(kb)
            a.elem.next_key = addr_of(nb)
            if self.call(BpfCmd.MAP_GET_NEXT_KEY, a) < 0:
                break
            key = nb.raw
            out.append(struct.unpack("<I", key)[0])
        return sorted(out)

    def cleanup(self) -> None:
        for fd in self.fds:
            with contextlib.suppress(OSError):
                self.close(fd)
        self.fds.clear()


Op = tuple[str, int, int]  # (what, key or cpu, flags)


@dataclass
class Step:
    op: Op
    result: int
    keys: list[int]


def replay(side: Side, map_type: int, max_entries: int, flags: int, ops: list[Op]) -> list[Step]:
    """Run ``ops`` on a fresh map; the result and the map's keys after each (for big maps after
    every 50th operation and the last: listing 600 keys after each step would dominate)."""
    every = 1 if max_entries <= 64 else 50
    out = []
    try:
        side.set_cpu(0)
        fd = side.create(map_type, max_entries, flags)
        prog = side.load(fd)
        for op in ops:
            what, arg, fl = op
            if what == "update":
                r = side._elem(BpfCmd.MAP_UPDATE_ELEM, fd, struct.pack("<I", arg), bytes(8 * 8), fl)[0]
            elif what == "lookup":
                r = side._elem(BpfCmd.MAP_LOOKUP_ELEM, fd, struct.pack("<I", arg), None, value_len=8 * 64)[0]
            elif what == "delete":
                r = side._elem(BpfCmd.MAP_DELETE_ELEM, fd, struct.pack("<I", arg), None)[0]
            elif what == "touch":
                r = side.run(prog, arg)
            elif what == "cpu":
                side.set_cpu(arg)
                r = 0
            else:  # pragma: no cover - scenario typo
                raise ValueError(what)
            last = len(out) == len(ops) - 1
            out.append(Step(op, 0 if r >= 0 else r, side.keys(fd) if last or len(out) % every == 0 else []))
    finally:
        side.cleanup()
        side.set_cpu(0)
    return out


@pytest.fixture
def ours(tmp_path: Path) -> Iterator[Side]:
    k = Kernel(tmp_path / "bpffs", ncpus=possible_cpus())

    def set_cpu(cpu: int) -> None:
        k.cpu = cpu

    yield Side(lambda cmd, attr: sys_bpf(cmd, attr, kernel=k), set_cpu, k.close)


@pytest.fixture
def linux() -> Iterator[Side]:
    from .conftest import live_bpf_available

    if not live_bpf_available():
        pytest.skip("bpf(2) is not available to this process")
    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("cannot pin this process to one CPU")
    saved = os.sched_getaffinity(0)
    allowed = sorted(saved)
    if len(allowed) < possible_cpus():
        pytest.skip("this process may not run on every CPU (the scenarios switch CPUs)")

    def set_cpu(cpu: int) -> None:
        os.sched_setaffinity(0, {allowed[cpu % len(allowed)]})

    try:
        yield Side(lambda cmd, attr: live_bpf(cmd, attr), set_cpu, os.close)
    finally:
        os.sched_setaffinity(0, saved)


def _fill(n: int, start: int = 0) -> list[Op]:
    return [("update", k, 0) for k in range(start, start + n)]


# Scenarios with fixed expectations (Linux 6.12's answer on a 2-CPU machine; checked live below).
SCENARIOS: dict[str, tuple[int, int, int, list[Op]]] = {
    # tests/kernel/test_maps.py's small case: one node per refill (target_free = 1)
    "small_referenced": (LRU, 3, 0, [*_fill(3), ("touch", 0, 0), ("update", 3, 0), ("update", 4, 0)]),
    # 8 entries, 2 CPUs: a CPU takes target_free = 8 / 2 / 2 = 2 free nodes at a time, so once the
    # map is full, the first insertion evicts the two oldest unreferenced keys
    "fill_then_overflow": (LRU, 8, 0, _fill(12)),
    # keys touched by a program (ref bit) survive a shrink: they move to the active list instead
    "referenced_keys_survive": (LRU, 8, 0, [*_fill(8), ("touch", 0, 0), ("touch", 1, 0), *_fill(6, 100)]),
    # a syscall lookup does not set the ref bit (htab_lru_map_lookup_elem_sys)
    "syscall_lookup_does_not_protect": (LRU, 8, 0, [*_fill(8), ("lookup", 0, 0), ("lookup", 1, 0), *_fill(4, 100)]),
    # updating an existing key takes a fresh node first: on a full map it evicts (maybe the key)
    "update_existing_evicts": (LRU, 4, 0, [*_fill(4), ("update", 3, 0), ("update", 3, BPF_EXIST),
                                           ("update", 0, BPF_EXIST), ("update", 9, BPF_NOEXIST)]),
    "update_flags_on_full": (LRU, 4, 0, [*_fill(4), ("update", 77, BPF_EXIST), ("update", 0, BPF_NOEXIST),
                                         ("update", 3, 4)]),
    "delete_then_reuse": (LRU, 4, 0, [*_fill(4), ("delete", 1, 0), ("delete", 1, 0), *_fill(3, 10)]),
    # a second CPU steals the first CPU's pending nodes when nothing else is free
    "two_cpus_steal": (LRU, 4, 0, [*_fill(2), ("cpu", 1, 0), *_fill(3, 10), ("cpu", 0, 0), *_fill(3, 20)]),
    # BPF_F_NO_COMMON_LRU: each CPU has max_entries / ncpus nodes of its own
    "percpu_lru_lists": (LRU, 8, NO_COMMON_LRU, [*_fill(5), ("touch", 1, 0), ("cpu", 1, 0), *_fill(5, 10),
                                                 ("cpu", 0, 0), *_fill(3, 20)]),
    "lru_percpu_hash": (LRU_PERCPU, 6, 0, [*_fill(6), ("touch", 2, 0), ("update", 4, BPF_EXIST), *_fill(4, 30)]),
    "lru_percpu_hash_no_common": (LRU_PERCPU, 6, NO_COMMON_LRU, [*_fill(4), ("cpu", 1, 0), *_fill(4, 40)]),
    # big enough for target_free = 128 and the 128-node scan limits of rotation and shrinking
    "large_rotations": (LRU, 600, 0, [*_fill(600), *[("touch", k, 0) for k in range(0, 450, 3)],
                                      *_fill(300, 1000), *[("touch", k, 0) for k in range(1000, 1100, 2)],
                                      *_fill(400, 2000)]),
    "large_percpu_lru": (LRU, 600, NO_COMMON_LRU, [*_fill(400), ("cpu", 1, 0), *_fill(300, 1000),
                                                   *[("touch", k, 0) for k in range(0, 400, 5)],
                                                   ("cpu", 0, 0), *_fill(300, 2000)]),
}

EXPECTED_KEYS: dict[str, list[int]] = {
    "small_referenced": [0, 3, 4],
    # two nodes come free per shrink (target_free 2): 0,1 go for 8; 2,3 for 10 (8, 9 were pending)
    "fill_then_overflow": [4, 5, 6, 7, 8, 9, 10, 11],
    "referenced_keys_survive": [0, 1, 100, 101, 102, 103, 104, 105],
    "syscall_lookup_does_not_protect": [4, 5, 6, 7, 100, 101, 102, 103],
    "update_existing_evicts": [1, 2, 3, 9],
    "delete_then_reuse": [3, 10, 11, 12],
    "update_flags_on_full": [0, 1, 2, 3],
    "two_cpus_steal": [12, 20, 21, 22],
    "percpu_lru_lists": [4, 14, 20, 21, 22],
    "lru_percpu_hash": [2, 4, 30, 31, 32, 33],
    "lru_percpu_hash_no_common": [3, 43],
}


@pytest.mark.parametrize("name", sorted(EXPECTED_KEYS))
def test_eviction_as_linux(name: str, ours: Side) -> None:
    if possible_cpus() != 2:
        pytest.skip("the expected key sets are worked out for 2 possible CPUs")
    map_type, n, flags, ops = SCENARIOS[name]
    steps = replay(ours, map_type, n, flags, ops)
    assert steps[-1].keys == EXPECTED_KEYS[name]


def test_update_flags_on_a_full_lru(ours: Side) -> None:
    """The node is taken before the flags are checked: a failing BPF_EXIST update on a full map has
    already evicted the oldest key, so a BPF_NOEXIST update of key 0 then succeeds; BPF_F_LOCK (4)
    is no flag for LRU maps."""
    name = "update_flags_on_full"
    steps = replay(ours, *SCENARIOS[name])
    assert [s.result for s in steps[4:]] == [-errno.ENOENT, 0, -errno.EINVAL]
    assert steps[-1].keys == EXPECTED_KEYS[name]


@pytest.mark.kernel
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_same_evictions_as_live_kernel(name: str, ours: Side, linux: Side) -> None:
    map_type, n, flags, ops = SCENARIOS[name]
    theirs = replay(linux, map_type, n, flags, ops)
    mine = replay(ours, map_type, n, flags, ops)
    for a, b in zip(mine, theirs, strict=True):
        assert (a.result, a.keys) == (b.result, b.keys), f"after {a.op}"


ops_strategy = st.lists(st.one_of(
    st.tuples(st.just("update"), st.integers(0, 23), st.sampled_from([0, 0, 0, BPF_NOEXIST, BPF_EXIST])),
    st.tuples(st.just("touch"), st.integers(0, 23), st.just(0)),
    st.tuples(st.just("delete"), st.integers(0, 23), st.just(0)),
    st.tuples(st.just("lookup"), st.integers(0, 23), st.just(0)),
    st.tuples(st.just("cpu"), st.integers(0, 1), st.just(0)),
), min_size=1, max_size=60)


@pytest.mark.kernel
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(map_type=st.sampled_from([LRU, LRU_PERCPU]), n=st.sampled_from([2, 4, 6, 8, 16]),
       flags=st.sampled_from([0, NO_COMMON_LRU]), ops=ops_strategy)
def test_random_sequences_match_live_kernel(map_type: int, n: int, flags: int, ops: list[Op], ours: Side,
                                            linux: Side) -> None:
    theirs = replay(linux, map_type, n, flags, ops)
    mine = replay(ours, map_type, n, flags, ops)
    for a, b in zip(mine, theirs, strict=True):
        assert (a.result, a.keys) == (b.result, b.keys), f"after {a.op}"


def test_lists_stay_consistent(tmp_path: Path) -> None:
    """Whatever happens, every slot is on exactly one list or free, and the counts agree."""
    k = Kernel(tmp_path / "bpffs", ncpus=3)
    for flags in (0, NO_COMMON_LRU):
        m = k.create_map(MapAttrs(LRU, 4, 8, 9, flags))
        assert isinstance(m, LruHashMap)
        lru = m.bpf_lru
        for i in range(200):
            k.cpu = i % 3
            key = struct.pack("<I", (i * 7) % 23)
            if i % 5 == 4:
                m.delete_elem(key)
            else:
                m.update_elem(key, bytes(8), 0)
            if i % 3 == 0:
                m.lookup_elem(struct.pack("<I", (i * 5) % 23), from_prog=True)
            lists = lru.lists()
            on_lists = [n for name, ids in lists.items() if not name.startswith(("free", "local_free"))
                        for n in ids]
            free = sum(ids[0] for name, ids in lists.items() if name.startswith(("free", "local_free")))
            assert len(on_lists) == len(set(on_lists))
            assert len(on_lists) + free == m.max_entries
            assert m.count() <= len(on_lists)
            for li in range(3 if flags else 1):
                assert lru.count(li, ACTIVE) == len(lru.members(lru.head(li, ACTIVE)))
                assert lru.count(li, INACTIVE) == len(lru.members(lru.head(li, INACTIVE)))


_LRU_WORKER = """
import struct, sys, os, time
from pybpf.kernel import Kernel
k = Kernel()
m = k.get_map(k.obj_get("/sys/fs/bpf/lru"))
me, n, go = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
k.cpu = me
print("ready", flush=True)
while not os.path.exists(go):
    time.sleep(0.001)
for i in range(n):
    key = struct.pack("<I", (i * 7 + me * 3) % 97)
    if i % 5 == 4:
        m.delete_elem(key)
    else:
        m.update_elem(key, struct.pack("<Q", me), 0)
    m.lookup_elem(struct.pack("<I", i % 97), from_prog=True)
print("done")
"""


@pytest.mark.parametrize("flags", [0, NO_COMMON_LRU])
def test_two_processes_churning_one_pinned_lru_keep_it_consistent(tmp_path: Path, flags: int) -> None:
    """Both "CPUs" of a pinned LRU map busy in two real processes at once: the lists, counts and
    buckets stay consistent (the map lock serialises every list operation)."""
    import subprocess
    import sys

    k = Kernel(tmp_path / "bpffs", ncpus=2)
    m = k.create_map(MapAttrs(LRU, 4, 8, 32, flags))
    k.pin(m, "/sys/fs/bpf/lru")
    env = dict(os.environ, PYBPF_BPFFS=str(k.root),
               PYTHONPATH=str(Path(__file__).resolve().parents[2] / "src"))
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", _LRU_WORKER, str(me), "1500", str(go)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for me in (0, 1)]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    go.touch()
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0 and out.strip() == "done", err
    assert isinstance(m, LruHashMap)
    lru = m.bpf_lru
    lists = lru.lists()
    on_lists = [n for name, ids in lists.items() if not name.startswith(("free", "local_free")) for n in ids]
    free = sum(ids[0] for name, ids in lists.items() if name.startswith(("free", "local_free")))
    assert len(on_lists) == len(set(on_lists)) and len(on_lists) + free == m.max_entries
    keys = [k for k, _e in m.items_raw()]
    assert len(keys) == len(set(keys)) == m.count() <= len(on_lists)
