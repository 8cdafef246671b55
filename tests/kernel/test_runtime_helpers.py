"""Socket lookups, flow hash, checksum update, MTU and FIB helpers, cgroup storage, XSKMAP and
SK_STORAGE on pybpf alone (no live kernel needed). The expected values are Linux 6.12's answers
for these inputs (tests/kernel/test_runtime_helpers_vs_kernel.py checks the same programs against
the running kernel)."""

from __future__ import annotations

import errno
import os
import socket
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pybpf.btf import BtfSpec
from pybpf.errors import ENOTSUPP, BpfError, HelperError
from pybpf.kernel import Kernel, MapAttrs
from pybpf.kernel.helpers import kernel_helpers, netdev
from pybpf.kernel.helpers.flow import flow_hash, flow_keys
from pybpf.kernel.helpers.netdev import NetDevice, fib_lookup_value
from pybpf.kernel.helpers.sock import sk_lookup_family
from pybpf.kernel.maps.sk_storage import SK_STORAGE_SLOTS
from pybpf.kernel.syscall import sys_bpf
from pybpf.uapi import HelperId, MapType

from . import runtime_progs as rp
from .errno_table import Side, _create

PKT = rp.eth_ipv4_udp()
CURRENT_NETNS = (1 << 64) - 1


@pytest.fixture
def ours(tmp_path: Path) -> Iterator[Side]:
    k = Kernel(tmp_path / "bpffs", ncpus=2)
    side = Side("pybpf", lambda c, a, s: sys_bpf(c, a, s, kernel=k), k.close)
    try:
        yield side
    finally:
        side.cleanup()


def test_helpers_are_registered_under_their_kernel_ids() -> None:
    table = kernel_helpers()
    for hid in ("sk_lookup_tcp", "sk_lookup_udp", "skc_lookup_tcp", "sk_release", "sk_fullsock", "tcp_sock",
                "get_hash_recalc", "set_hash_invalid", "csum_update", "fib_lookup", "check_mtu",
                "get_local_storage", "sk_storage_get", "sk_storage_delete"):
        assert int(getattr(HelperId, hid)) in table, hid
    assert int(HelperId.sk_lookup_tcp) == 84 and int(HelperId.check_mtu) == 163


# -- socket lookups -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("size", "netns", "flags", "family"), [
    (12, CURRENT_NETNS, 0, 2), (36, CURRENT_NETNS, 0, 10), (12, 0, 0, 2), (12, 0x7FFFFFFF, 0, 2),
    (12, 0x80000000, 0, 2),  # negative as an s32: the caller's namespace
    (12, 1 << 32, 0, None),  # neither negative as an s32 nor <= S32_MAX
    (12, CURRENT_NETNS, 1, None), (0, CURRENT_NETNS, 0, None), (13, CURRENT_NETNS, 0, None),
])
def test_sk_lookup_argument_checks(size: int, netns: int, flags: int, family: int | None) -> None:
    assert sk_lookup_family(size, netns, flags) == family


@pytest.mark.parametrize("helper", [rp.SK_LOOKUP_TCP, rp.SK_LOOKUP_UDP, rp.SKC_LOOKUP_TCP])
@pytest.mark.parametrize("size", [12, 36, 0, 13])
def test_sk_lookup_returns_null(ours: Side, helper: int, size: int) -> None:
    assert rp.load_and_run(ours, rp.sk_lookup(helper, size, CURRENT_NETNS, 0), rp.PT_SCHED_CLS, PKT) == (0, 0)


class _Ctx:
    pc = 7
    env = None


def test_socket_helpers_on_null_and_on_unknown_pointers() -> None:
    t = kernel_helpers()
    ctx = _Ctx()
    assert t[HelperId.sk_release](ctx, 0, 0, 0, 0, 0) == 0
    assert t[HelperId.sk_fullsock](ctx, 0, 0, 0, 0, 0) == 0
    assert t[HelperId.tcp_sock](ctx, 0, 0, 0, 0, 0) == 0
    assert t[HelperId.sk_storage_get](ctx, 1 << 33, 0, 0, 1, 0) == 0
    assert t[HelperId.sk_storage_get](ctx, 1 << 33, 1 << 34, 0, 2, 0) == 0  # flags above F_CREATE
    assert t[HelperId.sk_storage_delete](ctx, 1 << 33, 0, 0, 0, 0) == -errno.EINVAL
    with pytest.raises(HelperError) as e:
        t[HelperId.sk_fullsock](ctx, 1 << 34, 0, 0, 0, 0)
    assert e.value.pc == 7


# -- checksum and flow hash -------------------------------------------------------------------------------

def test_csum_update_is_enotsupp_without_checksum_complete(ours: Side) -> None:
    assert rp.load_and_run(ours, rp.csum_update(5), rp.PT_SCHED_CLS, PKT) == (0, -ENOTSUPP)


@pytest.mark.parametrize("data", [PKT, rp.eth_ipv4_udp(sport=9, dport=7), bytes(64)])
def test_get_hash_recalc_program(ours: Side, data: bytes) -> None:
    assert rp.load_and_run(ours, rp.hash_recalc_twice(), rp.PT_SCHED_CLS, data) == (0, 1)


def test_flow_hash_properties() -> None:
    a = rp.eth_ipv4_udp(bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]), 1234, 80)
    back = rp.eth_ipv4_udp(bytes([10, 0, 0, 2]), bytes([10, 0, 0, 1]), 80, 1234)
    other = rp.eth_ipv4_udp(bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]), 1235, 80)
    keys = flow_keys(a, l2=True, protocol=0)
    assert keys == (0x0800, 17, bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]), 1234, 80)
    assert flow_hash(keys) == flow_hash(flow_keys(back, l2=True, protocol=0))  # both directions
    assert flow_hash(keys) != flow_hash(flow_keys(other, l2=True, protocol=0))
    # the network header alone (socket filters, cgroup skb) gives the same keys
    assert flow_keys(a[14:], l2=False, protocol=0x0800) == keys
    # a fragment (offset != 0) carries no ports
    frag = bytearray(a)
    struct.pack_into("!H", frag, 14 + 6, 0x0010)
    assert flow_keys(bytes(frag), l2=True, protocol=0)[4:] == (0, 0)
    assert all(flow_hash(flow_keys(bytes([i]) * 64, l2=True, protocol=0)) != 0 for i in range(4))


def test_flow_keys_ipv6_and_vlan() -> None:
    src, dst = bytes(15) + b"\x01", bytes(15) + b"\x02"
    ip6 = struct.pack("!IHBB", 0x60000000, 8, 17, 64) + src + dst + struct.pack("!HHHH", 5, 6, 8, 0)
    eth = bytes(12) + b"\x81\x00" + b"\x00\x07" + b"\x86\xdd" + ip6
    assert flow_keys(eth, l2=True, protocol=0) == (0x86DD, 17, src, dst, 5, 6)


# -- MTU and FIB --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("prog_type", [rp.PT_XDP, rp.PT_SCHED_CLS])
def test_check_mtu_program(ours: Side, prog_type: int) -> None:
    lo = netdev.net_device(1)
    assert lo is not None and lo.name == "lo"
    run = rp.load_and_run
    assert run(ours, rp.check_mtu(0, 0, 0, 0), prog_type, PKT) == (0, lo.mtu)
    too_big = lo.mtu + lo.hard_header_len - len(PKT) + 1
    assert run(ours, rp.check_mtu(0, 0, too_big, 0), prog_type, PKT) == (0, 1 << 24 | lo.mtu)
    assert run(ours, rp.check_mtu(0, lo.mtu + 1, 0, 0), prog_type, PKT) == (0, 1 << 24 | lo.mtu)
    assert run(ours, rp.check_mtu(0, 0, 0, 2), prog_type, PKT) == (0, -errno.EINVAL)
    assert run(ours, rp.check_mtu(0x7FFFFFF0, 0, 0, 0), prog_type, PKT) == (0, -errno.ENODEV)
    # BPF_MTU_CHK_SEGS: skb programs only, and not together with a length
    assert run(ours, rp.check_mtu(0, 0, 0, 1), prog_type, PKT) == (0, lo.mtu if prog_type == rp.PT_SCHED_CLS
                                                                      else -errno.EINVAL)
    assert run(ours, rp.check_mtu(0, 4, 0, 1), prog_type, PKT) == (0, -errno.EINVAL)


def _params(family: int, ifindex: int, dst: bytes = b"", src: bytes = b"") -> bytes:
    p = bytearray(64)
    p[0] = family
    p[8:12] = ifindex.to_bytes(4, "little")
    p[16:16 + len(src)] = src
    p[32:32 + len(dst)] = dst
    return bytes(p)


def test_fib_lookup_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    devs = {1: NetDevice(1, "lo", 65536, 14, False, False), 2: NetDevice(2, "fwd0", 1500, 14, True, True)}
    monkeypatch.setattr(netdev, "net_device", devs.get)
    g6 = bytes([0x20, 1]) + bytes(13) + b"\x01"
    assert fib_lookup_value(_params(2, 1), 63, 0) == -errno.EINVAL
    assert fib_lookup_value(_params(2, 1), 64, 0x40) == -errno.EINVAL
    assert fib_lookup_value(_params(0, 1), 64, 0) == -errno.EAFNOSUPPORT
    assert fib_lookup_value(_params(2, 9), 64, 0) == -errno.ENODEV
    assert fib_lookup_value(_params(2, 1), 64, 0) == 5  # BPF_FIB_LKUP_RET_FWD_DISABLED
    assert fib_lookup_value(_params(2, 2), 64, 0) == 4  # BPF_FIB_LKUP_RET_NOT_FWDED: no route
    assert fib_lookup_value(_params(10, 2, g6), 64, 0) == 4
    assert fib_lookup_value(_params(10, 1, g6), 64, 0) == 5
    # link-local / multicast / loopback IPv6 are never forwarded, before the device is even looked at
    assert fib_lookup_value(_params(10, 9, bytes([0xFE, 0x80]) + bytes(14)), 64, 0) == 4
    assert fib_lookup_value(_params(10, 9, g6, bytes([0xFF, 2]) + bytes(14)), 64, 0) == 4
    assert fib_lookup_value(_params(10, 9, g6), 64, 0) == -errno.ENODEV


# -- cgroup storage ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("map_type", [MapType.CGROUP_STORAGE, MapType.PERCPU_CGROUP_STORAGE])
def test_cgroup_storage_fresh_per_test_run(ours: Side, map_type: int) -> None:
    fd = _create(ours, map_type, 16, 8, 0)
    assert fd >= 0
    run = rp.load_and_run
    assert run(ours, rp.local_storage_counter(fd, 3), rp.PT_CGROUP_SKB, PKT, repeat=3) == (0, 1)
    assert run(ours, rp.local_storage_counter(fd, 1), rp.PT_CGROUP_SKB, PKT) == (0, 1)
    assert run(ours, rp.local_storage_counter(fd, 2), rp.PT_CGROUP_SKB, PKT) == (0, 0)


@pytest.mark.parametrize(("map_type", "key", "value", "entries", "flags", "err"), [
    (MapType.CGROUP_STORAGE, 8, 65407, 0, 0, 0), (MapType.CGROUP_STORAGE, 8, 65408, 0, 0, errno.E2BIG),
    (MapType.CGROUP_STORAGE, 12, 8, 0, 0, errno.EINVAL), (MapType.CGROUP_STORAGE, 8, 0, 0, 0, errno.EINVAL),
    (MapType.CGROUP_STORAGE, 8, 8, 1, 0, errno.EINVAL), (MapType.CGROUP_STORAGE, 8, 8, 0, 1, errno.EINVAL),
    (MapType.CGROUP_STORAGE, 8, 8, 0, 0x18, errno.EINVAL), (MapType.PERCPU_CGROUP_STORAGE, 8, 32768, 0, 0, 0),
    (MapType.PERCPU_CGROUP_STORAGE, 8, 32769, 0, 0, errno.E2BIG), (MapType.XSKMAP, 4, 4, 1, 0, 0),
    (MapType.XSKMAP, 4, 8, 1, 0, errno.EINVAL), (MapType.XSKMAP, 4, 4, 0, 0, errno.EINVAL),
    (MapType.XSKMAP, 4, 4, 4, 0x80, errno.EINVAL), (MapType.XSKMAP, 4, 4, 4, 8, 0),
    (MapType.SK_STORAGE, 4, 8, 0, 1, errno.EINVAL),  # no BTF
])
def test_create_checks(ours: Side, map_type: int, key: int, value: int, entries: int, flags: int, err: int) -> None:
    assert min(_create(ours, map_type, key, value, entries, flags), 0) == -err


def test_cgroup_storage_is_empty_from_user_space(tmp_path: Path) -> None:
    k = Kernel(tmp_path / "fs", ncpus=2)
    m = k.create_map(MapAttrs(MapType.CGROUP_STORAGE, 16, 8, 0))
    p = k.create_map(MapAttrs(MapType.PERCPU_CGROUP_STORAGE, 8, 8, 0))
    for mm in (m, p):
        with pytest.raises(BpfError) as e:
            mm.lookup_elem_sys(bytes(mm.key_size))
        assert e.value.errno == errno.ENOENT
        with pytest.raises(BpfError) as e:
            mm.get_next_key(None)
        assert e.value.errno == errno.ENOENT
        assert mm.delete_elem(bytes(mm.key_size)) == -errno.EINVAL
    assert p.value_size_sys == 16  # per-CPU: round_up(value_size, 8) * ncpus
    for mm, flags, want in ((m, 0, errno.ENOENT), (m, 2, errno.ENOENT), (m, 1, errno.EINVAL), (m, 4, errno.EINVAL),
                            (p, 2, errno.ENOENT), (p, 1, errno.EINVAL), (p, 4, errno.EINVAL)):
        with pytest.raises(BpfError) as e:
            mm.update_elem_sys(bytes(mm.key_size), bytes(mm.value_size_sys), flags)
        assert e.value.errno == want, (mm, flags)


# -- XSKMAP -----------------------------------------------------------------------------------------------

def test_xskmap(ours: Side) -> None:
    fd = _create(ours, MapType.XSKMAP, 4, 4, 4)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with udp, tempfile.TemporaryFile() as f:
        assert ours.lookup(fd, bytes(4)) == -errno.EOPNOTSUPP
        assert ours.update(fd, bytes(4), f.fileno().to_bytes(4, "little")) == -errno.ENOTSOCK
        assert ours.update(fd, bytes(4), udp.fileno().to_bytes(4, "little")) == -errno.EOPNOTSUPP
        assert ours.update(fd, bytes(4), (1 << 20).to_bytes(4, "little")) == -errno.EBADF
        assert ours.update(fd, (4).to_bytes(4, "little"), udp.fileno().to_bytes(4, "little")) == -errno.E2BIG
        assert ours.update(fd, bytes(4), udp.fileno().to_bytes(4, "little"), 3) == -errno.EINVAL
        assert ours.delete(fd, (3).to_bytes(4, "little")) == 0
        assert ours.delete(fd, (4).to_bytes(4, "little")) == -errno.EINVAL
    for key, act in ((0, 2), (3, 1), (9, 0)):
        assert rp.load_and_run(ours, rp.xsk_lookup_and_redirect(fd, key, act), rp.PT_XDP, PKT) == (0, act)


# -- SK_STORAGE -------------------------------------------------------------------------------------------

def _int_btf() -> BtfSpec:
    """A BTF blob with one type: [1] INT 'int' size 4, signed."""
    strings = b"\0int\0"
    types = struct.pack("<IIII", 1, 1 << 24, 4, (1 << 24) | 32)
    header = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strings))
    return BtfSpec.from_bytes(header + types + strings)


def test_sk_storage_by_socket(tmp_path: Path) -> None:
    k = Kernel(tmp_path / "fs", ncpus=2)
    btf = _int_btf()
    with pytest.raises(BpfError) as e:
        k.create_map(MapAttrs(MapType.SK_STORAGE, 4, 4, 0, 1))
    assert e.value.errno == errno.EINVAL
    with pytest.raises(BpfError) as e:
        k.create_map(MapAttrs(MapType.SK_STORAGE, 4, 4, 0, 0, btf=btf, btf_key_type_id=1, btf_value_type_id=1))
    assert e.value.errno == errno.EINVAL  # BPF_F_NO_PREALLOC is required
    m = k.create_map(MapAttrs(MapType.SK_STORAGE, 4, 4, 0, 1, btf=btf, btf_key_type_id=1, btf_value_type_id=1))
    a, b = socket.socketpair()
    with a, b, tempfile.TemporaryFile() as f:
        ka, kb = a.fileno().to_bytes(4, "little"), b.fileno().to_bytes(4, "little")
        for key, want in ((ka, errno.ENOENT), (f.fileno().to_bytes(4, "little"), errno.ENOTSOCK),
                          ((1 << 20).to_bytes(4, "little"), errno.EBADF)):
            with pytest.raises(BpfError) as e:
                m.lookup_elem_sys(key)
            assert e.value.errno == want
        with pytest.raises(BpfError) as e:
            m.update_elem_sys(ka, b"\1\0\0\0", 2)  # BPF_EXIST on a socket without storage
        assert e.value.errno == errno.ENOENT
        m.update_elem_sys(ka, b"\1\0\0\0", 0)
        m.update_elem_sys(kb, b"\2\0\0\0", 1)
        with pytest.raises(BpfError) as e:
            m.update_elem_sys(ka, b"\3\0\0\0", 1)
        assert e.value.errno == errno.EEXIST
        dup = os.dup(a.fileno())  # the same socket through another descriptor
        try:
            assert m.lookup_elem_sys(dup.to_bytes(4, "little")) == b"\1\0\0\0"
        finally:
            os.close(dup)
        assert m.lookup_elem_sys(kb) == b"\2\0\0\0"
        m.delete_elem_sys(ka)
        with pytest.raises(BpfError) as e:
            m.delete_elem_sys(ka)
        assert e.value.errno == errno.ENOENT
        with pytest.raises(BpfError) as e:
            m.get_next_key(None)
        assert e.value.errno == ENOTSUPP
    assert SK_STORAGE_SLOTS >= 64


@pytest.mark.parametrize("engine", ["interpreter", "translate", "jit"])
def test_engines_agree(tmp_path: Path, engine: str) -> None:
    import platform

    from pybpf.isa.insn import decode
    from pybpf.kernel.prog_load import LoadAttrs, prog_load
    from pybpf.kernel.test_run import test_run

    if engine == "jit" and platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("the JIT emits x86-64 code")
    k = Kernel(tmp_path / "fs", ncpus=2)
    cg = k.create_map(MapAttrs(MapType.PERCPU_CGROUP_STORAGE, 8, 8, 0))
    xsk = k.create_map(MapAttrs(MapType.XSKMAP, 4, 4, 4))
    cfd, xfd = k.new_fd(cg), k.new_fd(xsk)
    lo = netdev.net_device(1)
    assert lo is not None
    cases = [(rp.PT_SCHED_CLS, rp.hash_recalc_twice(), 1), (rp.PT_SCHED_CLS, rp.check_mtu(0, 0, 0, 0), lo.mtu),
             (rp.PT_XDP, rp.check_mtu(0, 0, 0, 0), lo.mtu), (rp.PT_SCHED_CLS, rp.csum_update(3), -ENOTSUPP),
             (rp.PT_SCHED_CLS, rp.sk_lookup(rp.SK_LOOKUP_TCP, 12, CURRENT_NETNS, 0), 0),
             (rp.PT_CGROUP_SKB, rp.local_storage_counter(cfd, 3), 1),
             (rp.PT_XDP, rp.xsk_lookup_and_redirect(xfd, 0, 2), 2)]
    for prog_type, code, want in cases:
        p = prog_load(k, LoadAttrs(prog_type=prog_type, insns=decode(code), license="GPL",
                                   maps={cfd: cg, xfd: xsk})).program
        assert test_run(k, p, PKT, repeat=3, engine=engine).retval == want & 0xFFFFFFFF, (prog_type, engine)


@pytest.mark.parametrize(("src", "size", "helper", "want"), [
    ("stack", 8, rp.PROBE_READ_KERNEL, 1), ("null", 8, rp.PROBE_READ_KERNEL, -errno.ERANGE),
    ("stack", 8, rp.PROBE_READ_KERNEL_STR, 3 << 16 | 0x61 << 8 | 0x62),
    ("stack", 2, rp.PROBE_READ_KERNEL_STR, 2 << 16 | 0x61 << 8), ("null", 8, rp.PROBE_READ_KERNEL_STR, -errno.ERANGE),
])
def test_probe_read_kernel(ours: Side, src: str, size: int, helper: int, want: int) -> None:
    assert rp.load_and_run_raw(ours, rp.probe_read(src, size, helper)) == (0, want)


@pytest.mark.parametrize(("size", "flags", "want"), [
    (16, 0, 0), (12, 0, -errno.EINVAL), (16, 1 << 11, -errno.EINVAL), (16, 1 << 9, -errno.EINVAL),
    (16, 2, -errno.EFAULT), (64, (1 << 8) | (1 << 11), 0), (40, (1 << 8) | (1 << 11), -errno.EINVAL),
])
def test_get_stack_of_an_empty_call_chain(ours: Side, size: int, flags: int, want: int) -> None:
    assert rp.load_and_run_raw(ours, rp.get_stack(size, flags)) == (0, want)


def test_kernel_read_refuses_unmapped_and_low_addresses() -> None:
    from pybpf.kernel.helpers.probe import kernel_read
    from pybpf.vm import AddressSpace, RegionKind

    space = AddressSpace()
    region = space.add(bytearray(b"hello"), RegionKind.MEM, "buf")

    class Ctx:
        pc = 0

        def __init__(self) -> None:
            self.space = space

        def read(self, address: int, size: int) -> bytes:
            return space.read(address, size, pc=0)

    ctx = Ctx()
    assert kernel_read(ctx, region.base, 5) == b"hello"
    assert kernel_read(ctx, region.base + 3, 5) == -errno.EFAULT
    assert kernel_read(ctx, 16, 4) == -errno.ERANGE
    assert kernel_read(ctx, (region.base | 0xFFFF) << 8, 4) == -errno.EFAULT
