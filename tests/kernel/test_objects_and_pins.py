"""fds, ids, lifetimes, pinning — within one process and across real processes."""

from __future__ import annotations

import ctypes
import errno
import os
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pybpf.errors import BpfError
from pybpf.kernel import Kernel, MapAttrs
from pybpf.kernel.attr import BpfAttr, BpfMapInfo, addr_of
from pybpf.kernel.syscall import bpf
from pybpf.uapi import BpfCmd, MapType

ROOT = Path(__file__).resolve().parents[2]


def u32(v: int) -> bytes:
    return struct.pack("<I", v)


def array(kernel: Kernel, n: int = 1, name: str = "") -> int:
    return kernel.map_create(MapAttrs(int(MapType.ARRAY), 4, 4, n, name=name))


def run_py(root: Path, code: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYBPF_BPFFS=str(root), PYTHONPATH=str(ROOT / "src"))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


def test_fds_are_the_lowest_free_numbers(kernel: Kernel) -> None:
    probe = os.open("/dev/null", os.O_RDONLY)
    os.close(probe)
    fd1 = array(kernel)
    assert fd1 == probe
    fd2 = array(kernel)
    assert fd2 == probe + 1
    kernel.close(fd1)
    fd3 = array(kernel)
    assert fd3 == fd1  # reused, as the kernel's fd allocator would
    assert os.fstat(fd3)  # a real fd of this process


def test_ids_are_global_and_increasing(kernel: Kernel, tmp_path: Path) -> None:
    a = kernel.get_map(array(kernel)).id
    other = Kernel(kernel.root, ncpus=2)  # a second "process view" of the same root
    b = other.get_map(array(other)).id
    c = kernel.get_map(array(kernel)).id
    assert a < b < c


def test_bad_fds(kernel: Kernel) -> None:
    with pytest.raises(BpfError) as e:
        kernel.get_map(9999)
    assert e.value.errno == errno.EBADF
    fd = os.open("/dev/null", os.O_RDONLY)
    try:
        with pytest.raises(BpfError) as e:
            kernel.get_map(fd)
        assert e.value.errno == errno.EINVAL
    finally:
        os.close(fd)


def test_a_map_outlives_its_fd_while_referenced(kernel: Kernel) -> None:
    fd = array(kernel)
    m = kernel.get_map(fd)
    m.update_elem_sys(u32(0), u32(5), 0)
    kernel.close(fd)
    assert m.lookup_elem_sys(u32(0)) == u32(5)
    assert m.id in kernel.fs.live_ids("map")  # we still hold it (mapped, flock held)


def test_next_id_and_fd_by_id(kernel: Kernel) -> None:
    ids = [kernel.get_map(array(kernel)).id for _ in range(3)]
    got, cur = [], 0
    while True:
        try:
            cur = kernel.get_next_id("map", cur)
        except BpfError as e:
            assert e.errno == errno.ENOENT
            break
        got.append(cur)
    assert got == ids
    fd = kernel.map_get_fd_by_id(ids[1])
    assert kernel.get_map(fd).id == ids[1]
    with pytest.raises(BpfError) as e:
        kernel.map_get_fd_by_id(ids[-1] + 100)
    assert e.value.errno == errno.ENOENT


def test_info_by_fd_through_the_syscall(kernel: Kernel) -> None:
    fd = kernel.map_create(MapAttrs(int(MapType.HASH), 8, 16, 32, name="infomap"))
    info = BpfMapInfo()
    a = BpfAttr()
    a.info.bpf_fd, a.info.info_len, a.info.info = fd, ctypes.sizeof(info), addr_of(info)
    assert bpf(BpfCmd.OBJ_GET_INFO_BY_FD, a, kernel=kernel) == 0
    assert (info.type, info.id, info.key_size, info.value_size, info.max_entries, info.name) == (
        MapType.HASH, kernel.get_map(fd).id, 8, 16, 32, b"infomap")
    a.info.info_len = 16  # a shorter struct: only its prefix is written, info_len says how much
    info2 = BpfMapInfo()
    a.info.info = addr_of(info2)
    bpf(BpfCmd.OBJ_GET_INFO_BY_FD, a, kernel=kernel)
    assert a.info.info_len == 16 and info2.key_size == 8 and info2.max_entries == 0


def test_pin_get_and_unpin(kernel: Kernel) -> None:
    fd = array(kernel)
    m = kernel.get_map(fd)
    m.update_elem_sys(u32(0), u32(99), 0)
    kernel.obj_pin(fd, "/sys/fs/bpf/counter")
    assert (kernel.root / "counter").exists()
    fd2 = kernel.obj_get("/sys/fs/bpf/counter")
    assert fd2 != fd and kernel.get_map(fd2) is m
    with pytest.raises(BpfError) as e:
        kernel.obj_pin(fd, str(kernel.root / "counter"))
    assert e.value.errno == errno.EEXIST
    # an fd opened any other way on the pinned file is the map too (bpffs semantics)
    raw = os.open(kernel.root / "counter", os.O_RDWR)
    try:
        assert kernel.get_map(raw) is m
    finally:
        kernel.close(raw)
    os.unlink(kernel.root / "counter")  # rm unpins
    with pytest.raises(BpfError) as e:
        kernel.obj_get("/sys/fs/bpf/counter")
    assert e.value.errno == errno.ENOENT


def test_rdonly_fd_from_obj_get(kernel: Kernel) -> None:
    fd = array(kernel)
    kernel.obj_pin(fd, "/sys/fs/bpf/ro")
    ro = kernel.obj_get("/sys/fs/bpf/ro", 8)  # BPF_F_RDONLY
    assert kernel.map_perms(ro, kernel.get_map(ro)) == (True, False)


def test_unpinned_objects_of_a_dead_process_disappear(tmp_path: Path) -> None:
    root = tmp_path / "fs"
    res = run_py(root, """
        from pybpf.kernel import Kernel, MapAttrs
        k = Kernel()
        a = k.get_map(k.map_create(MapAttrs(2, 4, 4, 1, name="gone"))).id
        b_fd = k.map_create(MapAttrs(2, 4, 4, 1, name="kept"))
        k.obj_pin(b_fd, "/sys/fs/bpf/kept")
        print(a, k.get_map(b_fd).id)
    """)
    assert res.returncode == 0, res.stderr
    gone, kept = map(int, res.stdout.split())
    k = Kernel(root)
    live = k.fs.live_ids("map")
    assert kept in live and gone not in live
    m = k.map_by_id(kept)
    assert m is not None and m.name == "kept"
    assert k.map_by_id(gone) is None


def test_pinned_map_is_the_same_memory_in_another_process(kernel: Kernel) -> None:
    fd = array(kernel, 4, name="shared")
    m = kernel.get_map(fd)
    kernel.obj_pin(fd, "/sys/fs/bpf/shared")
    res = run_py(kernel.root, """
        import struct
        from pybpf.kernel import Kernel
        k = Kernel()
        m = k.get_map(k.obj_get("/sys/fs/bpf/shared"))
        m.update_elem_sys(struct.pack("<I", 2), struct.pack("<I", 4242), 0)
        print(m.id, struct.unpack("<I", m.lookup_elem_sys(struct.pack("<I", 1)))[0])
    """.replace("\n        ", "\n"))
    m.update_elem_sys(u32(1), u32(17), 0)  # written after the child started: may or may not be seen
    assert res.returncode == 0, res.stderr
    child_id, _seen = map(int, res.stdout.split())
    assert child_id == m.id
    assert m.lookup_elem_sys(u32(2)) == u32(4242)  # the child's write, in our memory


_WORKER = """
import struct, sys
from pybpf.kernel import Kernel
k = Kernel()
m = k.get_map(k.obj_get("/sys/fs/bpf/table"))
me, n, go = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
print("ready", flush=True)
import os, time
while not os.path.exists(go):  # start together: maximum contention
    time.sleep(0.001)
for i in range(n):
    key = 2 * i + me
    m.update_elem_sys(struct.pack("<I", key), struct.pack("<Q", key * 3), 0)
    # churn a shared set of keys: delete and re-insert under contention
    shared = struct.pack("<I", 1_000_000 + i % 16)
    m.update_elem_sys(shared, struct.pack("<Q", me), 0)
    if i % 3 == 0:
        try:
            m.delete_elem_sys(shared)
        except OSError:
            pass
        m.update_elem_sys(shared, struct.pack("<Q", me), 0)
print("done")
"""


def test_two_processes_updating_one_pinned_hash_lose_nothing(kernel: Kernel) -> None:
    n = 3000
    fd = kernel.map_create(MapAttrs(int(MapType.HASH), 4, 8, 2 * n + 16, name="table"))
    kernel.obj_pin(fd, "/sys/fs/bpf/table")
    env = dict(os.environ, PYBPF_BPFFS=str(kernel.root), PYTHONPATH=str(ROOT / "src"))
    go = kernel.root.parent / "go"
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, str(me), str(n), str(go)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for me in (0, 1)]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    go.touch()
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
        assert out.strip() == "done"
    m = kernel.get_map(fd)
    got = {}
    k = None
    while True:
        try:
            k = m.get_next_key(k)
        except BpfError:
            break
        assert k not in got, "a key appeared twice: a corrupted chain"
        got[k] = m.lookup_elem_sys(k)
    for key in range(2 * n):
        assert got.get(u32(key)) == struct.pack("<Q", key * 3), f"lost update of key {key}"
    shared = [k for k in got if struct.unpack("<I", k)[0] >= 1_000_000]
    assert len(shared) == 16
    assert len(got) == 2 * n + 16 == m.count()


def test_pinned_program_runs_in_another_process(kernel: Kernel) -> None:
    from pybpf.isa import Insn, Insns
    from pybpf.kernel.prog_load import LoadAttrs, prog_load
    from pybpf.uapi import ProgType

    mfd = array(kernel, 1, name="hits")
    insns = Insns([
        Insn(0xB7, 1, 0, 0, 0), Insn(0x63, 10, 1, -4, 0), Insn(0xBF, 2, 10), Insn(0x07, 2, 0, 0, -4),
        Insn(0x18, 1, 1, 0, mfd), Insn(0x85, 0, 0, 0, 1), Insn(0x15, 0, 0, 2, 0), Insn(0xB7, 1, 0, 0, 1),
        Insn(0xC3, 0, 1, 0, 0), Insn(0xB7, 0, 0, 0, 2), Insn(0x95),
    ])
    p = prog_load(kernel, LoadAttrs(int(ProgType.XDP), insns, name="count")).program
    kernel.pin(p, "/sys/fs/bpf/count_prog")
    res = run_py(kernel.root, """
        from pybpf.kernel import Kernel
        from pybpf.kernel.test_run import test_run
        k = Kernel()
        p = k.get_prog(k.obj_get("/sys/fs/bpf/count_prog"))
        r = test_run(k, p, bytes(64), repeat=50)
        print(p.id, r.retval, p.insns[4].imm)
    """)
    assert res.returncode == 0, res.stderr
    pid, retval, map_id = map(int, res.stdout.split())
    assert (pid, retval, map_id) == (p.id, 2, kernel.get_map(mfd).id)
    assert kernel.get_map(mfd).lookup_elem_sys(u32(0)) == u32(50)
