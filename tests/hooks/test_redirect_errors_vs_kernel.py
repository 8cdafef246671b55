"""The error an XDP redirect ends in, against the running kernel.

Linux reports a failed XDP redirect through the ``xdp:xdp_redirect_err`` tracepoint (``err`` is its
fourth argument). A raw-tracepoint program records that ``err`` in a map while an XDP program runs
through ``BPF_PROG_TEST_RUN`` in live-frame mode (``BPF_F_TEST_XDP_LIVE_FRAMES``, where XDP_REDIRECT
really is carried out); the same XDP program on pybpf's hook must fail its redirect with the same
errno. A bare ``return XDP_REDIRECT`` finds the redirect info zeroed — map id 0, not the INT_MAX
``bpf_redirect`` leaves — and gets ``-EBADRQC``.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct

import pytest

from pybpf.hooks.devices import NetDevice
from pybpf.hooks.packet import Frame
from pybpf.hooks.xdp import XdpHook
from pybpf.isa import Insns
from pybpf.kernel import Kernel
from pybpf.kernel.attr import BpfAttr, addr_of
from pybpf.kernel.prog_load import LoadAttrs, prog_load
from pybpf.kernel.syscall import live_bpf
from pybpf.uapi import BpfCmd, ProgType

BPF_F_TEST_XDP_LIVE_FRAMES = 2


def _ins(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, dst | src << 4, off, imm)


BARE_REDIRECT = _ins(0xB7, 0, imm=4) + _ins(0x95)  # r0 = XDP_REDIRECT; exit
REDIRECT_NOWHERE = _ins(0xB7, 1, imm=99999) + _ins(0xB7, 2) + _ins(0x85, imm=23) + _ins(0x95)  # bpf_redirect


def _record_err(map_fd: int) -> bytes:
    """raw_tp: map[0] = args[3] (the tracepoint's ``err``)."""
    return b"".join([
        _ins(0x79, 6, 1, 24),  # r6 = *(u64 *)(r1 +24)
        _ins(0xB7, 1, imm=0), _ins(0x63, 10, 1, -4),  # *(u32 *)(r10 -4) = 0
        _ins(0xBF, 2, 10), _ins(0x07, 2, imm=-4),
        _ins(0x18, 1, 1, imm=map_fd), _ins(0),
        _ins(0x85, imm=1),  # bpf_map_lookup_elem
        _ins(0x15, 0, off=1), _ins(0x7B, 0, 6, 0),  # if r0: *(u64 *)(r0 +0) = r6
        _ins(0xB7, 0, imm=0), _ins(0x95),
    ])


class LiveProbe:
    """The tracepoint program and its map in the running kernel."""

    def __init__(self) -> None:
        self.fds: list[int] = []
        a = BpfAttr()
        a.map_create.map_type, a.map_create.key_size, a.map_create.value_size, a.map_create.max_entries = 2, 4, 8, 1
        self.map_fd = self._fd(live_bpf(BpfCmd.MAP_CREATE, a))
        prog = self._load(_record_err(self.map_fd), int(ProgType.RAW_TRACEPOINT))
        name = ctypes.create_string_buffer(b"xdp_redirect_err")
        raw = bytearray(ctypes.sizeof(BpfAttr))  # attr.raw_tracepoint: u64 name, u32 prog_fd
        struct.pack_into("<QI", raw, 0, addr_of(name), prog)
        self._keep = name
        self.link = self._fd(live_bpf(BpfCmd.RAW_TRACEPOINT_OPEN, raw))

    def _fd(self, fd: int) -> int:
        if fd < 0:
            self.close()
            pytest.skip(f"the running kernel refused the tracepoint probe (errno {-fd})")
        self.fds.append(fd)
        return fd

    def _load(self, code: bytes, prog_type: int) -> int:
        buf = ctypes.create_string_buffer(code, len(code))
        lic = ctypes.create_string_buffer(b"GPL")
        a = BpfAttr()
        p = a.prog_load
        p.prog_type, p.insn_cnt, p.insns, p.license = prog_type, len(code) // 8, addr_of(buf), addr_of(lic)
        return self._fd(live_bpf(BpfCmd.PROG_LOAD, a))

    def err_of(self, xdp_code: bytes) -> int:
        """Run ``xdp_code`` once on a live frame; the err the redirect failed with (0 = none)."""
        key, zero = ctypes.create_string_buffer(4), ctypes.create_string_buffer(8)
        a = BpfAttr()
        a.elem.map_fd, a.elem.key, a.elem.value = self.map_fd, addr_of(key), addr_of(zero)
        assert live_bpf(BpfCmd.MAP_UPDATE_ELEM, a) == 0
        prog = self._load(xdp_code, int(ProgType.XDP))
        data = ctypes.create_string_buffer(bytes(range(64)), 64)
        t = BpfAttr()
        t.test.prog_fd, t.test.data_in, t.test.data_size_in = prog, addr_of(data), 64
        t.test.repeat, t.test.flags = 1, BPF_F_TEST_XDP_LIVE_FRAMES
        r = live_bpf(BpfCmd.PROG_TEST_RUN, t)
        if r < 0:
            pytest.skip(f"live-frame test runs are not available here (errno {-r})")
        out = ctypes.create_string_buffer(8)
        a.elem.value = addr_of(out)
        assert live_bpf(BpfCmd.MAP_LOOKUP_ELEM, a) == 0
        return struct.unpack("<i", out.raw[:4])[0]  # the tracepoint's err is an int

    def close(self) -> None:
        for fd in reversed(self.fds):
            os.close(fd)
        self.fds.clear()


def _ours(kernel: Kernel, code: bytes) -> int:
    prog = prog_load(kernel, LoadAttrs(int(ProgType.XDP), Insns.from_bytes(code), name="redir")).program
    hook = XdpHook(prog, devices={1: NetDevice(1, "lo", mtu=65536)})
    out = next(iter(hook.process([Frame(bytes(range(64)), ifindex=1, number=1)])))
    return int(out.error or 0)


@pytest.mark.kernel
@pytest.mark.parametrize("code", [BARE_REDIRECT, REDIRECT_NOWHERE], ids=["bare", "to_missing_ifindex"])
def test_redirect_errors_are_linuxs(kernel: Kernel, code: bytes) -> None:
    if os.geteuid() != 0 or live_bpf(BpfCmd.MAP_CREATE, None) == -errno.ENOSYS:
        pytest.skip("needs root and the running kernel's bpf(2)")
    probe = LiveProbe()
    try:
        theirs = probe.err_of(code)
    finally:
        probe.close()
    assert theirs < 0
    assert _ours(kernel, code) == theirs
