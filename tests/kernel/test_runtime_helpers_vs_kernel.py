"""Socket lookups, checksum/flow-hash, MTU and FIB helpers, cgroup storage and XSKMAP on pybpf and on
the running kernel: the same raw program and input through ``BPF_PROG_TEST_RUN`` on both sides,
and the same map syscalls; results must agree.

The inputs are chosen so the kernel's answer does not depend on this machine's state beyond what
pybpf reads too (devices, MTUs, forwarding switches): no socket is bound to the zero tuple, the FIB
is never reached because forwarding is off or the family/size/flags are refused first.
"""

from __future__ import annotations

import ctypes
import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pybpf.kernel.attr import BpfAttr, addr_of
from pybpf.kernel.helpers.netdev import net_device
from pybpf.uapi import BpfCmd, MapType

from . import runtime_progs as rp
from .errno_table import Side, _create, both_sides

pytestmark = pytest.mark.kernel

PKT = rp.eth_ipv4_udp()
BPF_F_CURRENT_NETNS = (1 << 64) - 1


@pytest.fixture
def sides(tmp_path: Path, live: bool) -> Iterator[tuple[Side, Side]]:
    # as many "CPUs" as the live kernel, so per-CPU values have the same shape on both sides
    with both_sides(tmp_path / "bpffs", ncpus=os.cpu_count() or 1) as pair:
        yield pair


def _both(sides: tuple[Side, Side], code: bytes, prog_type: int, data: bytes = PKT,
          **kw: object) -> tuple[tuple[int, int], tuple[int, int]]:
    ours, linux = sides
    return rp.load_and_run(ours, code, prog_type, data, **kw), rp.load_and_run(linux, code, prog_type, data, **kw)


@pytest.mark.parametrize("helper", [rp.SK_LOOKUP_TCP, rp.SK_LOOKUP_UDP, rp.SKC_LOOKUP_TCP])
@pytest.mark.parametrize(("size", "netns", "flags"), [
    (12, BPF_F_CURRENT_NETNS, 0), (36, BPF_F_CURRENT_NETNS, 0), (12, 0, 0), (36, 0x7FFFFFFF, 0),
    (12, 0x80000000, 0), (12, 1 << 32, 0), (12, BPF_F_CURRENT_NETNS, 1), (0, BPF_F_CURRENT_NETNS, 0),
    (8, BPF_F_CURRENT_NETNS, 0), (13, BPF_F_CURRENT_NETNS, 0),
])
def test_sk_lookup_finds_no_socket_for_the_zero_tuple(sides: tuple[Side, Side], helper: int, size: int,
                                                      netns: int, flags: int) -> None:
    mine, theirs = _both(sides, rp.sk_lookup(helper, size, netns, flags), rp.PT_SCHED_CLS)
    assert mine == theirs == (0, 0)


@pytest.mark.parametrize("value", [0, 1, 0x12345678, -1])
def test_csum_update_on_a_test_run_skb(sides: tuple[Side, Side], value: int) -> None:
    mine, theirs = _both(sides, rp.csum_update(value), rp.PT_SCHED_CLS)
    assert mine == theirs == (0, -524)  # CHECKSUM_NONE: -ENOTSUPP


@pytest.mark.parametrize("data", [PKT, rp.eth_ipv4_udp(sport=9, dport=7), bytes(64)])
def test_get_hash_recalc_is_stable_nonzero_and_stored(sides: tuple[Side, Side], data: bytes) -> None:
    # (6.12 offers bpf_get_hash_recalc to tc and LWT programs, not to socket filters; 6.18 does)
    mine, theirs = _both(sides, rp.hash_recalc_twice(), rp.PT_SCHED_CLS, data)
    assert mine == theirs == (0, 1)


def _eth0() -> int:
    for i, _name in socket.if_nameindex():
        if i != 1 and net_device(i) is not None:
            return i
    return 1


@pytest.mark.parametrize("prog_type", [rp.PT_XDP, rp.PT_SCHED_CLS])
@pytest.mark.parametrize(("ifindex", "mtu_len", "len_diff", "flags"), [
    (0, 0, 0, 0), (1, 0, 0, 0), (0, 1500, 0, 0), (0, 65536, 0, 0), (0, 65536, 1, 0), (0, 0, 65536 - 50, 0),
    (0, 0, 70000, 0), (0, 0, -10, 0), (9999, 0, 0, 0), (0, 0, 0, 1), (0, 0, 0, 2), (0, 0, 4, 1), (0, 4, 0, 1),
    (-1, 1400, 0, 0), (-1, 1401, 0, 0),
])
def test_check_mtu(sides: tuple[Side, Side], prog_type: int, ifindex: int, mtu_len: int, len_diff: int,
                   flags: int) -> None:
    if ifindex == -1:
        ifindex = _eth0()
    mine, theirs = _both(sides, rp.check_mtu(ifindex, mtu_len, len_diff, flags), prog_type)
    assert mine == theirs


LINK_LOCAL6 = bytes([0xFE, 0x80]) + bytes(13) + b"\x01"
GLOBAL6 = bytes([0x20, 0x01, 0x0D, 0xB8]) + bytes(11) + b"\x01"


@pytest.mark.parametrize("prog_type", [rp.PT_XDP, rp.PT_SCHED_CLS])
@pytest.mark.parametrize(("family", "ifindex", "flags", "dst", "plen"), [
    (2, 1, 0, bytes([10, 0, 0, 1]), 64), (2, 9999, 0, b"", 64), (10, 1, 0, GLOBAL6, 64), (10, 1, 0, LINK_LOCAL6, 64),
    (10, 9999, 0, GLOBAL6, 64), (0, 1, 0, b"", 64), (17, 1, 0, b"", 64), (2, 1, 0x40, b"", 64),
    (2, 1, 1, b"", 64), (2, 1, 0, b"", 63),
])
def test_fib_lookup(sides: tuple[Side, Side], prog_type: int, family: int, ifindex: int, flags: int, dst: bytes,
                    plen: int) -> None:
    dev = net_device(1)
    assert dev is not None
    if family in (2, 10) and ifindex == 1 and (dev.ipv4_forwarding if family == 2 else dev.ipv6_forwarding):
        pytest.skip("forwarding is on for lo: the kernel would consult its real FIB")
    mine, theirs = _both(sides, rp.fib_lookup(family, ifindex, flags, dst, plen), prog_type)
    assert mine == theirs


@pytest.mark.parametrize("map_type", [MapType.CGROUP_STORAGE, MapType.PERCPU_CGROUP_STORAGE])
def test_cgroup_storage_is_fresh_per_test_run(sides: tuple[Side, Side], map_type: int) -> None:
    results = []
    for side in sides:
        fd = _create(side, map_type, 8, 8, 0)
        assert fd >= 0, side.name
        got = [rp.load_and_run(side, rp.local_storage_counter(fd, want), rp.PT_CGROUP_SKB, PKT, repeat=repeat)
               for want, repeat in ((3, 3), (1, 1), (1, 1), (2, 1), (5, 4))]
        results.append(got)
    assert results[0] == results[1] == [(0, 1), (0, 1), (0, 1), (0, 0), (0, 0)]


def _errnos(side: Side, map_type: int, key_size: int) -> list[int]:
    fd = _create(side, map_type, key_size, 8, 0)
    assert fd >= 0
    key = bytes(key_size)
    return [side.lookup(fd, key), side.update(fd, key, bytes(8)), side.update(fd, key, bytes(8), 1),
            side.update(fd, key, bytes(8), 4), side.delete(fd, key), side.bpf(BpfCmd.MAP_GET_NEXT_KEY, _next(fd))]


def _next(fd: int) -> BpfAttr:
    """MAP_GET_NEXT_KEY's attr for the first key (no key given)."""
    a = BpfAttr()
    a.elem.map_fd = fd
    a.elem.next_key = addr_of(_NEXT)
    return a


_NEXT = ctypes.create_string_buffer(16)


@pytest.mark.parametrize("map_type", [MapType.CGROUP_STORAGE, MapType.PERCPU_CGROUP_STORAGE])
@pytest.mark.parametrize("key_size", [8, 16])
def test_cgroup_storage_syscalls(sides: tuple[Side, Side], map_type: int, key_size: int) -> None:
    mine, theirs = (_errnos(s, map_type, key_size) for s in sides)
    assert mine == theirs


@pytest.mark.parametrize(("map_type", "key", "value", "entries", "flags"), [
    (MapType.CGROUP_STORAGE, 8, 65407, 0, 0), (MapType.CGROUP_STORAGE, 8, 65408, 0, 0),
    (MapType.CGROUP_STORAGE, 12, 8, 0, 0), (MapType.CGROUP_STORAGE, 4, 8, 0, 0), (MapType.CGROUP_STORAGE, 8, 0, 0, 0),
    (MapType.CGROUP_STORAGE, 8, 8, 1, 0), (MapType.CGROUP_STORAGE, 8, 8, 0, 1),
    (MapType.CGROUP_STORAGE, 8, 8, 0, 0x18), (MapType.PERCPU_CGROUP_STORAGE, 8, 32768, 0, 0),
    (MapType.PERCPU_CGROUP_STORAGE, 8, 32769, 0, 0), (MapType.XSKMAP, 4, 4, 1, 0), (MapType.XSKMAP, 4, 8, 1, 0),
    (MapType.XSKMAP, 8, 4, 1, 0), (MapType.XSKMAP, 4, 4, 0, 0), (MapType.XSKMAP, 4, 4, 4, 0x80),
    (MapType.XSKMAP, 4, 4, 4, 8), (MapType.SK_STORAGE, 4, 8, 0, 1),
])
def test_create_errnos(sides: tuple[Side, Side], map_type: int, key: int, value: int, entries: int,
                       flags: int) -> None:
    mine, theirs = (min(_create(s, map_type, key, value, entries, flags), 0) for s in sides)
    assert mine == theirs


def test_xskmap_syscalls_and_program_view(sides: tuple[Side, Side]) -> None:
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with udp, tempfile.TemporaryFile() as f:
        results = []
        for side in sides:
            fd = _create(side, MapType.XSKMAP, 4, 4, 4)
            assert fd >= 0
            got = [side.lookup(fd, bytes(4)), side.update(fd, bytes(4), f.fileno().to_bytes(4, "little")),
                   side.update(fd, bytes(4), udp.fileno().to_bytes(4, "little")),
                   side.update(fd, bytes(4), (1 << 20).to_bytes(4, "little")),
                   side.update(fd, (4).to_bytes(4, "little"), udp.fileno().to_bytes(4, "little")),
                   side.update(fd, bytes(4), udp.fileno().to_bytes(4, "little"), 3),
                   side.delete(fd, (3).to_bytes(4, "little")), side.delete(fd, (4).to_bytes(4, "little"))]
            got += [rp.load_and_run(side, rp.xsk_lookup_and_redirect(fd, key, act), rp.PT_XDP, PKT)
                    for key, act in ((0, 2), (3, 1), (7, 0))]
            results.append(got)
        assert results[0] == results[1]
        assert results[0][-3:] == [(0, 2), (0, 1), (0, 0)]


@pytest.mark.parametrize(("src", "size", "helper"), [
    ("stack", 8, rp.PROBE_READ_KERNEL), ("null", 8, rp.PROBE_READ_KERNEL), ("stack", 0, rp.PROBE_READ_KERNEL),
    ("stack", 8, rp.PROBE_READ_KERNEL_STR), ("null", 8, rp.PROBE_READ_KERNEL_STR),
    ("stack", 2, rp.PROBE_READ_KERNEL_STR), ("stack", 1, rp.PROBE_READ_KERNEL_STR),
    ("stack", 0, rp.PROBE_READ_KERNEL_STR),
])
def test_probe_read_kernel(sides: tuple[Side, Side], src: str, size: int, helper: int) -> None:
    mine, theirs = (rp.load_and_run_raw(s, rp.probe_read(src, size, helper)) for s in sides)
    assert mine == theirs


@pytest.mark.parametrize(("size", "flags"), [(12, 0), (16, 1 << 9), (16, 1 << 11), (40, (1 << 8) | (1 << 11))])
def test_get_stack_argument_checks(sides: tuple[Side, Side], size: int, flags: int) -> None:
    # only the refusals compare: the kernel walks a real call chain where pybpf has none
    mine, theirs = (rp.load_and_run_raw(s, rp.get_stack(size, flags)) for s in sides)
    assert mine == theirs == (0, -22)
