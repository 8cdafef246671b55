"""The helpers of issue 4 whose results are deterministic, on pybpf and on the running kernel.

tests/kernel/progs/helpers_vs_kernel.c has one program per family (hash and queue/stack maps, ring
buffers, checksums, bpf_loop / for_each_map_elem, strtol/strtoul/snprintf, spin locks, skb loads,
stores and checksum replacement); each writes what its helpers returned into the ``out`` array.
The object is loaded by bpftool into the kernel and by pybpf, every program runs once on the same
packet in the same order, and after each run the ``out`` maps (and the packets that came back) must
be equal.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pybpf.errors import ToolchainError
from pybpf.kernel import Kernel
from pybpf.loader import Collection, load

SRC = Path(__file__).resolve().parent / "progs" / "helpers_vs_kernel.c"
PROGS = ["hash_ops", "queue_ops", "ringbuf_ops", "csum_ops", "loop_ops", "string_ops", "lock_ops", "skb_ops"]
pytestmark = [pytest.mark.toolchain, pytest.mark.kernel]


def _csum(data: bytes) -> int:
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def _packet() -> bytes:
    payload = bytes(range(32))
    udp = struct.pack("!HHHH", 1234, 80, 8 + len(payload), 0x5A5A) + payload
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                               bytes([10, 0, 0, 1]), bytes([10, 0, 0, 9])))
    struct.pack_into("!H", ip, 10, _csum(bytes(ip)))
    return bytes(6) + bytes(range(1, 7)) + b"\x08\x00" + bytes(ip) + udp


@pytest.fixture(scope="module")
def obj(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pybpf.toolchain import compile

    out = tmp_path_factory.mktemp("helpers") / "helpers.o"
    try:
        compile(SRC, out)
    except ToolchainError as e:
        pytest.skip(f"no BPF C compiler: {e}")
    return out


class Live:
    """The object loaded into the running kernel with bpftool (programs and maps pinned)."""

    def __init__(self, obj: Path, tmp: Path) -> None:
        bpftool = shutil.which("bpftool")
        if bpftool is None or os.geteuid() != 0 or not Path("/sys/fs/bpf").is_dir():
            pytest.skip("needs root, bpftool and a bpffs at /sys/fs/bpf")
        self.bpftool = bpftool
        self.root = f"/sys/fs/bpf/pybpf-helpers-{os.getpid()}"
        self.tmp = tmp
        self._bt("prog", "loadall", str(obj), self.root, "pinmaps", self.root + "/maps")

    def _bt(self, *args: str) -> str:
        r = subprocess.run([self.bpftool, *args], capture_output=True, text=True, check=False)
        assert r.returncode == 0, r.stderr
        return r.stdout

    def run(self, name: str, data: bytes) -> tuple[int, bytes]:
        src, dst = self.tmp / "in.bin", self.tmp / "out.bin"
        src.write_bytes(data)
        got = json.loads(self._bt("-j", "prog", "run", "pinned", f"{self.root}/{name}", "data_in", str(src),
                                  "data_out", str(dst)))
        return got["retval"], dst.read_bytes()

    def out(self) -> dict[int, int]:
        dump = json.loads(self._bt("-j", "map", "dump", "pinned", self.root + "/maps/out"))
        return {e["formatted"]["key"]: e["formatted"]["value"] for e in dump}

    def close(self) -> None:
        subprocess.run(["rm", "-rf", self.root], check=False)


@pytest.fixture
def both(obj: Path, tmp_path: Path, kernel: Kernel, live: bool) -> Iterator[tuple[Collection, Live]]:
    linux = Live(obj, tmp_path)
    try:
        with load(obj, kernel=kernel) as coll:
            yield coll, linux
    finally:
        linux.close()


def _csum_diff_612(frm: list[int], to: list[int], seed: int) -> int:
    """Linux 6.12's bpf_csum_diff on x86-64: csum_partial over ~from + to (32-bit words, end-around
    carry), unfolded. (Linux 6.13 changed the helper: it folds to 16 bits and takes any size.)"""
    s = seed + sum(~w & 0xFFFFFFFF for w in frm) + sum(to)
    while s >> 32:
        s = (s & 0xFFFFFFFF) + (s >> 32)
    return s


A, B = [0x01020304, 0x05060708, 0xFFFF0000, 0x12345678], [0xDEADBEEF, 0x0BADF00D]
CSUM_612 = {0: _csum_diff_612(A, B, 0), 1: _csum_diff_612([], B, 0x1234), 2: _csum_diff_612(A[:2], [], 0),
            3: -22, 4: _csum_diff_612(A, B, 0xFFFFFFFF)}
LINUX_618_DIFFERS = {"csum_ops": CSUM_612}
"""Programs whose results the running kernel (newer than 6.12) computes differently, with what
Linux 6.12 returns in those slots."""


def test_helpers_return_what_linux_returns(both: tuple[Collection, Live]) -> None:
    coll, linux = both
    pkt = _packet()
    kernel = coll.programs[PROGS[0]].kernel_program.kernel
    saved = os.sched_getaffinity(0)
    cpu = min(saved)
    os.sched_setaffinity(0, {cpu})  # bpf_get_smp_processor_id: the same CPU on both sides
    kernel.cpu = cpu
    try:
        _run_all(coll, linux, pkt, cpu)
    finally:
        os.sched_setaffinity(0, saved)


def _run_all(coll: Collection, linux: Live, pkt: bytes, cpu: int) -> None:
    for name in PROGS:
        theirs_ret, theirs_data = linux.run(name, pkt)
        res = coll.programs[name].run(pkt, cpu=cpu) if name == "lock_ops" else coll.programs[name].run(pkt)
        ours = dict(coll.maps["out"].items())
        theirs = linux.out()
        assert (res.retval, res.data_out) == (theirs_ret, theirs_data), name
        for slot, value in LINUX_618_DIFFERS.get(name, {}).items():
            assert ours[slot] == value, f"{name} slot {slot}: 6.12 gives {value}"
            theirs[slot] = value
        assert ours == theirs, name
