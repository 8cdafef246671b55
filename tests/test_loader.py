"""The load path (ObjectSpec → maps → PROG_LOAD → Collection) and the Pythonic API over it."""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from pybpf.errors import BpfError, ToolchainError, VerifierError
from pybpf.kernel import Kernel, set_default_kernel
from pybpf.loader import Collection, LoadOptions, Map, Program, load
from pybpf.uapi import MapType

SEED = Path(__file__).resolve().parent.parent / "examples" / "seed-demo"


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[Kernel]:
    k = Kernel(tmp_path / "bpffs", ncpus=2)
    old = set_default_kernel(k)
    try:
        yield k
    finally:
        set_default_kernel(old)


def _compile(src: Path, out: Path) -> Path:
    from pybpf.toolchain import compile

    try:
        return compile(src, out)
    except ToolchainError as e:
        pytest.skip(f"no BPF C compiler: {e}")


@pytest.fixture(scope="module")
def demo_o(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _compile(SEED / "demo.c", tmp_path_factory.mktemp("demo") / "demo.o")


# -- the seed demo ------------------------------------------------------------------------------

@pytest.mark.toolchain
@pytest.mark.parametrize("engine", ["interpreter", "translate", "jit"])
def test_seed_demo_counts_1000_packets_and_passes_each(kernel: Kernel, demo_o: Path, engine: str) -> None:
    if engine == "jit" and platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("the JIT emits x86-64 code")
    with load(demo_o, engine=engine) as coll:
        counter = coll.maps["pkt_counter"]
        prog = coll.programs["xdp_program"]
        assert counter[0] == 0  # typed from BTF: u32 key, u32 value
        assert all(prog.run(bytes(64)).retval == 2 for _ in range(1000))  # XDP_PASS every time
        assert counter[0] == 1000
        res = prog.run(bytes(64), repeat=1000)  # one test run, the program run 1000 times
        assert res.retval == 2 and res.repeat == 1000
        assert counter[0] == 2000
        assert dict(counter) == {0: 2000}


@pytest.mark.toolchain
def test_seed_demo_xlated_has_the_kernels_shape(kernel: Kernel, demo_o: Path) -> None:
    with load(demo_o) as coll:
        prog = coll.programs["xdp_program"]
        m = coll.maps["pkt_counter"]
        text = prog.xlated()
        off = m.kernel_map.data_off
        for line in (f"(18) r1 = map[id:{m.id}]", f"(07) r1 += {off}", "(61) r0 = *(u32 *)(r2 +0)",
                     "(35) if r0 >= 0x1 goto pc+3", "(67) r0 <<= 3", "(0f) r0 += r1",
                     "(c3) lock *(u32 *)(r0 +0) += r1", "(95) exit"):
            assert line in text, line
        expected = (SEED / "demo.xlated.txt").read_text().splitlines()
        assert len(text.splitlines()) == len(expected)  # same number of lines as the kernel's dump


@pytest.mark.toolchain
def test_seed_demo_tag_is_the_kernels_sha1_formula(kernel: Kernel, demo_o: Path) -> None:
    import hashlib

    from pybpf.elf import ObjectSpec

    spec = ObjectSpec.from_path(str(demo_o)).programs["xdp_program"]
    raw = bytearray(spec.insns.encode())
    raw[4 * 8 + 1] = (raw[4 * 8 + 1] & 0x0F) | 0x10  # libbpf sets src=BPF_PSEUDO_MAP_FD; imm zeroed
    with load(demo_o) as coll:
        assert coll.programs["xdp_program"].tag == hashlib.sha1(bytes(raw)).hexdigest()[:16]


@pytest.mark.toolchain
def test_legacy_iproute2_demo_loads_and_counts(kernel: Kernel, tmp_path: Path) -> None:
    obj = _compile(SEED / "demo_legacy.c", tmp_path / "legacy.o")
    with load(obj) as coll:
        assert coll.programs["xdp_program"].run(bytes(64), repeat=5).retval == 2
        assert coll.maps["pkt_counter"].raw()[0] == struct.pack("<I", 5)


@pytest.mark.toolchain
def test_invalid_demo_is_rejected_with_the_kernels_words(kernel: Kernel, tmp_path: Path) -> None:
    obj = _compile(SEED / "demo_invalid.c", tmp_path / "invalid.o")
    with pytest.raises(VerifierError) as e:
        load(obj, log_level=1)
    assert e.value.errno == errno.EACCES
    assert "R0 invalid mem access 'map_value_or_null'" in e.value.log
    assert e.value.program == "xdp_program"
    assert not list(kernel.fs.objdir.glob("prog-*"))  # nothing half-loaded stays behind


@pytest.mark.toolchain
def test_collection_closes_its_fds(kernel: Kernel, demo_o: Path) -> None:
    with load(demo_o) as coll:
        fds = [coll.maps["pkt_counter"].fd, coll.programs["xdp_program"].fd]
        assert all(fd is not None for fd in fds)
        for fd in fds:
            os.fstat(fd)  # open
    for fd in fds:
        with pytest.raises(OSError):
            os.fstat(fd)  # type: ignore[arg-type]


@pytest.mark.toolchain
def test_pinmaps_and_reopen_from_another_kernel_view(kernel: Kernel, demo_o: Path) -> None:
    with load(demo_o, LoadOptions(kernel=kernel, pin_maps="/sys/fs/bpf/demo")) as coll:
        coll.programs["xdp_program"].run(bytes(64), repeat=7)
        coll.programs["xdp_program"].pin("/sys/fs/bpf/demo_prog")
    other = Kernel(kernel.root, ncpus=2)
    with Map.from_pinned("/sys/fs/bpf/demo/pkt_counter", kernel=other) as m:
        assert m[0] == 7  # BTF travelled with the map: still typed
        with Program.from_pinned("/sys/fs/bpf/demo_prog", kernel=other) as p:
            assert p.run(bytes(64), repeat=3).retval == 2
        assert m[0] == 10


# -- Map API without an object file --------------------------------------------------------------

def test_map_dict_protocol_and_typed_views(kernel: Kernel) -> None:
    with Map.create("hash", 4, 8, 16, name="h") as m:
        m[1] = b"abcdefgh"  # untyped: bytes values, int keys encoded little-endian
        m[struct.pack("<I", 2)] = struct.pack("<Q", 99)
        assert m[1] == b"abcdefgh" and len(m) == 2 and 2 in m and 3 not in m
        with pytest.raises(KeyError):
            m[3]
        t = m.typed(key=ctypes.c_uint32, value="<Q")
        assert t[2] == 99
        t[5] = 12345
        assert sorted(t) == [1, 2, 5]
        assert dict(t.items())[5] == 12345
        del t[5]
        assert 5 not in m
        with pytest.raises(BpfError) as e:
            m.update(1, b"x" * 8, flags=1)  # BPF_NOEXIST
        assert e.value.errno == errno.EEXIST
        assert m.lookup_and_delete(1) == b"abcdefgh" and 1 not in m


def test_percpu_map_values_are_lists(kernel: Kernel) -> None:
    with Map.create(MapType.PERCPU_ARRAY, 4, 4, 2, value="<I") as m:
        m[1] = [10, 20]
        assert m[1] == [10, 20]
        m[0] = 7  # one value for all CPUs
        assert m[0] == [7, 7]


def test_queue_and_stack_api(kernel: Kernel) -> None:
    with Map.create("queue", 0, 4, 4, value="<I") as q:
        for v in (1, 2, 3):
            q.push(v)
        assert q.peek() == 1
        assert [q.pop(), q.pop()] == [1, 2]


def test_map_in_map_and_program_values(kernel: Kernel) -> None:
    inner = Map.create("array", 4, 4, 1)
    outer = Map.create("array_of_maps", 4, 4, 2, inner_map=inner)
    outer[0] = inner
    assert outer[0] == struct.pack("<I", inner.id)  # lookups give the inner map's id
    inner.close()
    outer.close()


def test_struct_values_with_ctypes(kernel: Kernel) -> None:
    class Stats(ctypes.Structure):
        _fields_ = [("packets", ctypes.c_uint64), ("bytes", ctypes.c_uint64)]

    with Map.create("array", 4, 16, 2, key=ctypes.c_uint32, value=Stats) as m:
        m[1] = Stats(3, 300)
        got = m[1]
        assert (got.packets, got.bytes) == (3, 300)
        with pytest.raises(ValueError):
            Map.create("array", 4, 8, 1, value=Stats)  # 16-byte struct for an 8-byte value


def test_typed_view_checks_sizes(kernel: Kernel) -> None:
    with Map.create("array", 4, 4, 1) as m, pytest.raises(ValueError):
        m.typed(value="<Q")


def test_load_errors_are_structured(kernel: Kernel, tmp_path: Path) -> None:
    from pybpf.errors import ElfError

    bad = tmp_path / "bad.o"
    bad.write_bytes(b"not an elf at all")
    with pytest.raises(ElfError):
        load(bad)
    with pytest.raises(ElfError):
        load(str(tmp_path / "missing.o"))


def test_collection_from_spec_builds_maps_and_programs(kernel: Kernel) -> None:
    from pybpf.elf import MapSpec, ObjectSpec, ProgramSpec, Relocation, RelocKind
    from pybpf.isa.asm import assemble
    from pybpf.uapi import ProgType

    insns = assemble("""
        r1 = 0
        *(u32 *)(r10 -4) = r1
        r2 = r10
        r2 += -4
        r1 = map[id:0]
        call bpf_map_lookup_elem#1
        if r0 == 0x0 goto pc+2
        r1 = 1
        lock *(u32 *)(r0 +0) += r1
        r0 = 2
        exit
    """)
    prog = ProgramSpec("count", "xdp", ProgType.XDP, None, insns, license="GPL",
                       relocations=(Relocation(4, RelocKind.MAP, "hits"),))
    spec = ObjectSpec("synthetic", "<synthetic>", programs={"count": prog},
                      maps={"hits": MapSpec("hits", MapType.ARRAY, 4, 4, 1)})
    with Collection.from_spec(spec) as coll:
        assert coll.programs["count"].run(bytes(64), repeat=4).retval == 2
        assert coll.maps["hits"].raw()[0] == struct.pack("<I", 4)
