"""BPF_PROG_TEST_RUN against the running kernel: edge sizes, fragments, ctx_in/ctx_out, and the XDP
head/tail/meta helpers, through the very same ``union bpf_attr`` on both sides.

For each case both sides get the same program (raw instructions) and the same input; the syscall's
result, ``retval``, ``data_size_out``, the bytes written to ``data_out`` and ``ctx_out`` must agree.
"""

from __future__ import annotations

import ctypes
import random
import struct

import pytest

from pybpf.kernel.attr import BpfAttr, addr_of
from pybpf.uapi import BpfCmd

from .errno_table import Side, _load

PT_SOCKET_FILTER, PT_SCHED_CLS, PT_XDP = 1, 3, 6
ADJUST_HEAD, ADJUST_META, ADJUST_TAIL, GET_BUFF_LEN = 44, 54, 65, 188


def ins(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, dst | src << 4, off, imm)


RET2 = ins(0xB7, 0, imm=2) + ins(0x95)


def call_helper(helper: int, imm: int) -> bytes:
    """``r2 = imm; call helper; exit``: the helper's result is the return value."""
    return ins(0xB7, 2, imm=imm) + ins(0x85, imm=helper) + ins(0x95)


def grow_and_read(imm: int) -> bytes:
    """adjust_tail(imm), then return bpf_xdp_get_buff_len."""
    return ins(0xBF, 6, 1) + ins(0xB7, 2, imm=imm) + ins(0x85, imm=ADJUST_TAIL) + ins(0xBF, 1, 6) + \
        ins(0x85, imm=GET_BUFF_LEN) + ins(0x95)


def prog_test_run(side: Side, fd: int, data: bytes, out_size: int, ctx: bytes | None = None,
             ctx_out: int = 0) -> tuple[int, int, int, bytes, bytes]:
    a = BpfAttr()
    t = a.test
    db = ctypes.create_string_buffer(data, max(len(data), 1))
    # data_size_out 0 means "unknown size": both kernels then write the whole packet, so the buffer
    # is always big enough for any packet
    room = max(out_size, 1 << 18)
    ob = ctypes.create_string_buffer(b"\xaa" * room, room)
    side.keep += [db, ob]
    t.prog_fd, t.data_in, t.data_size_in, t.repeat = fd, addr_of(db) if data else 0, len(data), 1
    t.data_out, t.data_size_out = addr_of(ob), out_size
    co = None
    if ctx is not None:
        cb = ctypes.create_string_buffer(ctx, max(len(ctx), 1))
        side.keep.append(cb)
        t.ctx_in, t.ctx_size_in = addr_of(cb), len(ctx)
    if ctx_out:
        co = ctypes.create_string_buffer(b"\xaa" * ctx_out, ctx_out)
        side.keep.append(co)
        t.ctx_out, t.ctx_size_out = addr_of(co), ctx_out
    r = side.bpf(BpfCmd.PROG_TEST_RUN, a, None)
    return (r if r < 0 else 0, t.retval, t.data_size_out, ob.raw[:max(out_size, t.data_size_out)],
            co.raw if co is not None else b"")


def _payload(n: int, seed: int = 0) -> bytes:
    rnd = random.Random(n * 7919 + seed)
    return bytes(rnd.getrandbits(8) for _ in range(n))


SIZES = [0, 1, 13, 14, 15, 64, 3519, 3520, 3521, 4000, 3520 + 4096, 3520 + 2 * 4096 + 5, 65535, 3520 + 17 * 4096,
         3520 + 17 * 4096 + 1, 1 << 17]


def _compare(ours: Side, linux: Side, prog_type: int, code: bytes, cases: list[tuple[bytes, int, bytes | None, int]]
             ) -> None:
    fds = {s.name: _load(s, code, prog_type) for s in (ours, linux)}
    assert fds["pybpf"] >= 0 and fds["linux"] >= 0, fds
    for data, out_size, ctx, ctx_out in cases:
        mine = prog_test_run(ours, fds["pybpf"], data, out_size, ctx, ctx_out)
        theirs = prog_test_run(linux, fds["linux"], data, out_size, ctx, ctx_out)
        assert mine == theirs, (f"size {len(data)} out {out_size} ctx {ctx!r}: pybpf {mine[:3]} linux {theirs[:3]}"
                                f" data equal {mine[3] == theirs[3]} ctx_out equal {mine[4] == theirs[4]}")


@pytest.mark.kernel
@pytest.mark.parametrize("prog_type", [PT_XDP, PT_SOCKET_FILTER, PT_SCHED_CLS])
def test_sizes_and_short_buffers(sides: tuple[Side, Side], prog_type: int) -> None:
    """0 bytes, less than an Ethernet header, a page and more (XDP fragments, up to MAX_SKB_FRAGS),
    and data_out buffers too small — including XDP's rule that fragments always come whole."""
    cases = [(_payload(n), out, None, 0) for n in SIZES for out in (1 << 18, 10, 0, 3600)]
    _compare(*sides, prog_type, RET2, cases)


@pytest.mark.kernel
@pytest.mark.parametrize(("helper", "imm"), [
    *((ADJUST_TAIL, i) for i in (-1, -50, -100, -3506, -3507, -5000, 0, 1, 10, 100, 200, 4096, 5000)),
    *((ADJUST_HEAD, i) for i in (-256, -216, -215, -200, -1, 0, 1, 50, 3506, 3507)),
    *((ADJUST_META, i) for i in (-4, -32, -36, -3, 4, 0)),
])
def test_xdp_adjust_helpers(sides: tuple[Side, Side], helper: int, imm: int) -> None:
    cases = [(_payload(n), 1 << 18, None, 0) for n in (14, 60, 3520, 3600, 3520 + 4096 + 7, 3520 + 3 * 4096)]
    _compare(*sides, PT_XDP, call_helper(helper, imm), cases)


@pytest.mark.kernel
@pytest.mark.parametrize("imm", [-4096 - 7, -8000, -20, 5, 4089, 4090, 4096])
def test_xdp_fragments_grow_and_shrink(sides: tuple[Side, Side], imm: int) -> None:
    cases = [(_payload(n), 1 << 18, None, 0) for n in (3520 + 7, 3520 + 4096 + 7, 3520 + 2 * 4096)]
    _compare(*sides, PT_XDP, grow_and_read(imm), cases)


def _xdp_md(data: int = 0, data_end: int = 0, data_meta: int = 0, ingress: int = 0, rxq: int = 0,
            egress: int = 0) -> bytes:
    return struct.pack("<6I", data, data_end, data_meta, ingress, rxq, egress)


@pytest.mark.kernel
def test_xdp_ctx_in_and_out(sides: tuple[Side, Side]) -> None:
    n = 100
    ctxs = [_xdp_md(0, n), _xdp_md(8, n), _xdp_md(32, n), _xdp_md(36, n), _xdp_md(3, n), _xdp_md(8, 50),
            _xdp_md(8, n + 1), _xdp_md(60, 50), _xdp_md(0, n, data_meta=4), _xdp_md(0, n, ingress=1),
            _xdp_md(0, n, ingress=1, rxq=1), _xdp_md(0, n, rxq=1), _xdp_md(0, n, egress=1),
            _xdp_md(0, n, ingress=999999), _xdp_md(0, n) + bytes(8), _xdp_md(0, n) + b"\x01", _xdp_md(0, n)[:12],
            _xdp_md(0, 20)]
    cases = [(_payload(n), 1 << 12, c, co) for c in ctxs for co in (24, 8, 0)]
    _compare(*sides, PT_XDP, RET2, cases)
    _compare(*sides, PT_XDP, call_helper(ADJUST_META, -8), [(_payload(n), 1 << 12, c, 24) for c in ctxs[:3]])


@pytest.mark.kernel
@pytest.mark.parametrize("prog_type", [PT_SOCKET_FILTER, PT_SCHED_CLS])
def test_skb_ctx_in_and_out(sides: tuple[Side, Side], prog_type: int) -> None:
    skb = bytearray(192)
    struct.pack_into("<I", skb, 8, 0x1234)  # mark
    struct.pack_into("<I", skb, 32, 7)  # priority
    bad = bytearray(skb)
    struct.pack_into("<I", bad, 0, 5)  # len may not be set
    cb = bytearray(skb)
    cb[48:68] = bytes(range(1, 21))  # cb[]
    frame = bytes(6) + bytes(range(1, 7)) + b"\x08\x00" + _payload(60)
    ctxs = [bytes(skb), bytes(bad), bytes(cb), bytes(skb) + bytes(4), bytes(skb) + b"\x01", bytes(skb[:40])]
    cases = [(frame, 1 << 12, c, co) for c in ctxs for co in (192, 16, 0)]
    _compare(*sides, prog_type, RET2, cases)
