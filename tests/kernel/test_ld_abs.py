"""Legacy packet loads (LD_ABS / LD_IND) with SKF_NET_OFF / SKF_LL_OFF offsets, on every engine.

Linux 6.12 converts a negative offset (``bpf_skb_load_helper_convert_offset``) to one relative to
``skb->data``: from the network header for ``[SKF_NET_OFF, 0)``, from the MAC header for
``[SKF_LL_OFF, SKF_NET_OFF)``; then only the end of the read is checked against the linear length.
A socket filter's skb has its MAC header pulled (``eth_type_trans``), so SKF_LL_OFF reads bytes
*before* ``data``; a tc program's ``data`` is the MAC header itself.

The program is ``r6 = r1; r0 = LD_{ABS,IND} size [..]; r0 += 1; exit``: 0 means "out of range" (the
rewritten load returns 0 from the program), anything else is the value read plus one.
"""

from __future__ import annotations

import ctypes
import os
import platform
import struct

import pytest

from pybpf.isa import Insns
from pybpf.kernel import Kernel
from pybpf.kernel.attr import BpfAttr, addr_of
from pybpf.kernel.prog_load import LoadAttrs, prog_load
from pybpf.kernel.test_run import test_run as run_prog
from pybpf.uapi import BpfCmd

PT_SOCKET_FILTER, PT_SCHED_CLS = 1, 3
SKF_NET_OFF, SKF_LL_OFF = -0x100000, -0x200000
ETH_HLEN = 14
ENGINES = ["interpreter", "translate"] + (["jit"] if platform.machine() in ("x86_64", "AMD64") else [])
SIZE_BITS = {1: 0x10, 2: 0x08, 4: 0x00}  # BPF_B, BPF_H, BPF_W
FRAME = bytes((i * 37 + 11) & 0xFF for i in range(64))  # no 4-byte run reads as 0xffffffff


def ins(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, dst | src << 4, off, imm)


def ld_prog(mode: str, size: int, base: int, idx: int) -> bytes:
    """LD_ABS of ``base + idx``, or LD_IND of ``[r7 + base]`` with ``r7 = idx``."""
    if mode == "abs":
        load = ins(0x20 | SIZE_BITS[size], imm=base + idx)
    else:
        load = ins(0xB7, 7, imm=idx) + ins(0x40 | SIZE_BITS[size], 0, 7, imm=base)
    return ins(0xBF, 6, 1) + load + ins(0x07, 0, imm=1) + ins(0x95)


def expected(size: int, base: int, idx: int) -> int:
    """What the program returns on FRAME, from where the headers are in the frame (MAC header at 0,
    network header after it, whatever ``data`` is) — not from any engine."""
    start = (ETH_HLEN if base == SKF_NET_OFF else 0) + idx
    if idx < 0 or start + size > len(FRAME):
        return 0
    return int.from_bytes(FRAME[start:start + size], "big") + 1


def run_ours(k: Kernel, code: bytes, prog_type: int, engine: str, data: bytes = FRAME) -> int:
    prog = prog_load(k, LoadAttrs(prog_type=prog_type, insns=Insns.from_bytes(code), license="GPL")).program
    return run_prog(k, prog, data, engine=engine).retval


@pytest.fixture
def k(kernel: Kernel) -> Kernel:
    return kernel


CASES = [(pt, mode, size, base, idx)
         for pt in (PT_SOCKET_FILTER, PT_SCHED_CLS)
         for mode in ("abs", "ind")
         for size in (1, 2, 4)
         for base in (SKF_NET_OFF, SKF_LL_OFF)
         for idx in (0, 1, 13, 14, 49, 50, 60, 63, 64, 0xFFFFF, -1)]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("prog_type", "size"), [(pt, s) for pt in (PT_SOCKET_FILTER, PT_SCHED_CLS) for s in (1, 2, 4)])
def test_negative_offsets_read_the_headers(k: Kernel, engine: str, prog_type: int, size: int) -> None:
    """SKF_LL_OFF + i reads frame byte i and SKF_NET_OFF + i frame byte 14 + i for both skb kinds —
    for a socket filter the MAC header lies before ``data`` and is still readable."""
    for mode in ("abs", "ind"):
        for base in (SKF_NET_OFF, SKF_LL_OFF):
            for idx in (0, 1, 13, 46, 49, 50, 63, 64, -1):
                got = run_ours(k, ld_prog(mode, size, base, idx), prog_type, engine)
                assert got == expected(size, base, idx), (mode, hex(base), idx)


@pytest.mark.parametrize("engine", ENGINES)
def test_below_skf_ll_off_and_plain_offsets(k: Kernel, engine: str) -> None:
    """Offsets below SKF_LL_OFF are out of range; plain offsets count from ``data`` (the network header
    of a socket filter, the MAC header of a tc program)."""
    below = ld_prog("abs", 1, SKF_LL_OFF, -1)
    assert run_ours(k, below, PT_SOCKET_FILTER, engine) == 0
    plain = ld_prog("abs", 2, 0, 0)
    assert run_ours(k, plain, PT_SOCKET_FILTER, engine) == int.from_bytes(FRAME[14:16], "big") + 1
    assert run_ours(k, plain, PT_SCHED_CLS, engine) == int.from_bytes(FRAME[0:2], "big") + 1


def test_the_follow_up_reproduction(k: Kernel) -> None:
    """``r7 = 1; r0 = *(u32 *)skb[r7 + SKF_LL_OFF]; r0 = r7; exit`` on a 64-byte socket-filter packet
    returns 1 in Linux (the read of the pulled MAC header succeeds)."""
    code = ins(0xBF, 6, 1) + ins(0xB7, 7, imm=1) + ins(0x40, 0, 7, imm=SKF_LL_OFF) + ins(0xBF, 0, 7) + ins(0x95)
    for engine in ENGINES:
        assert run_ours(k, code, PT_SOCKET_FILTER, engine, bytes(64)) == 1, engine


# -- the live kernel --------------------------------------------------------------------------------

def _live_retval(code: bytes, prog_type: int, data: bytes) -> int:
    from pybpf.kernel.syscall import live_bpf

    a = BpfAttr()
    p = a.prog_load
    ib = ctypes.create_string_buffer(code, len(code))
    lb = ctypes.create_string_buffer(b"GPL")
    p.prog_type, p.insn_cnt, p.insns, p.license = prog_type, len(code) // 8, addr_of(ib), addr_of(lb)
    fd = live_bpf(BpfCmd.PROG_LOAD, a)
    assert fd >= 0, f"the live kernel refused the program: {fd}"
    try:
        t = BpfAttr()
        db = ctypes.create_string_buffer(data, len(data))
        t.test.prog_fd, t.test.data_in, t.test.data_size_in, t.test.repeat = fd, addr_of(db), len(data), 1
        r = live_bpf(BpfCmd.PROG_TEST_RUN, t)
        assert r == 0, f"live PROG_TEST_RUN failed: {r}"
        return int(t.test.retval)
    finally:
        os.close(fd)


@pytest.mark.kernel
def test_against_the_live_kernel(k: Kernel, live: bool) -> None:
    """Socket filter and tc, LD_ABS and LD_IND, sizes 1/2/4, SKF_NET_OFF and SKF_LL_OFF, in and out of
    range (before, at and past the end; below SKF_LL_OFF; far past the header): every engine returns
    what BPF_PROG_TEST_RUN returns in the running kernel."""
    mismatches = []
    for pt, mode, size, base, idx in CASES:
        code = ld_prog(mode, size, base, idx)
        want = _live_retval(code, pt, FRAME)
        got = {e: run_ours(k, code, pt, e) for e in ENGINES}
        if any(v != want for v in got.values()):
            mismatches.append((pt, mode, size, hex(base), idx, want, got))
    assert not mismatches, mismatches[:10]
    # the reference model above agrees with Linux on the in-range cases it claims
    assert _live_retval(ld_prog("abs", 4, SKF_LL_OFF, 1), PT_SOCKET_FILTER, FRAME) == \
        expected(4, SKF_LL_OFF, 1)
