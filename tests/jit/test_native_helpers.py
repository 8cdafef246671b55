"""Native time, randomness, CPU, XDP adjustment and packet-loader helpers against the kernel layer's
Python helpers (and the vm's LD_ABS semantics)."""

from __future__ import annotations

import ctypes
import os
import struct
import time
from types import SimpleNamespace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pybpf.jit.engine import NativeXdpBuff
from pybpf.jit.native import ENV, ENV_SIZE, NO_OFFSET, EnvField, library, native_helper_table
from pybpf.jit.runtime import NativeBuffer, NativeHelperContext
from pybpf.kernel.helpers import kernel_helpers
from pybpf.kernel.runenv import RedirectInfo
from pybpf.progtypes import XDP_RUNTIME
from pybpf.uapi import HelperId, ProgType
from pybpf.vm import AddressSpace, Execution, SkbView
from pybpf.vm.engine import ld_abs

M64 = (1 << 64) - 1


class State:
    def __init__(self, cpu: int = 0) -> None:
        self.words = (ctypes.c_uint64 * ((ENV + ENV_SIZE) // 8))()
        self.address = ctypes.addressof(self.words)
        self.view = memoryview(self.words).cast("B")
        struct.pack_into("<II", self.view, ENV + EnvField.CPU, cpu, os.getpid())
        struct.pack_into("<QQ", self.view, ENV + EnvField.PRNG0, 0x1234_5678_9ABC_DEF0, 0x0FED_CBA9_8765_4321)

    def call(self, helper: int, *args: int, prog_type: int = ProgType.XDP) -> int:
        entry = native_helper_table(prog_type, [])[helper]
        return library().call(entry.impl.address, self.address, *args)  # type: ignore[union-attr]


def test_clocks_are_read_natively_from_the_same_clocks() -> None:
    s = State()
    for helper, clock in ((HelperId.ktime_get_ns, time.CLOCK_MONOTONIC), (HelperId.ktime_get_boot_ns,
                                                                          time.CLOCK_BOOTTIME)):
        t0 = time.clock_gettime_ns(clock)
        t = s.call(helper)
        t1 = time.clock_gettime_ns(clock)
        assert t0 <= t <= t1
    coarse = 6  # CLOCK_MONOTONIC_COARSE (Python's time module has no name for it)
    t0 = time.clock_gettime_ns(coarse)
    t = s.call(HelperId.ktime_get_coarse_ns)
    assert t0 <= t <= time.clock_gettime_ns(coarse)
    tai = getattr(time, "CLOCK_TAI", None)
    if tai is not None:
        t0 = time.clock_gettime_ns(tai)
        assert t0 <= s.call(HelperId.ktime_get_tai_ns) <= time.clock_gettime_ns(tai)
    j0 = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 4_000_000
    assert j0 <= s.call(HelperId.jiffies64) <= time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 4_000_000


def test_prandom_is_32_bit_and_well_mixed() -> None:
    s = State()
    draws = [s.call(HelperId.get_prandom_u32) for _ in range(4000)]
    assert all(0 <= d < 2**32 for d in draws)
    assert len(set(draws)) > 3990
    for bit in range(32):
        ones = sum((d >> bit) & 1 for d in draws)
        assert 1700 < ones < 2300, bit
    # the state lives in the env block: the same seed gives the same sequence
    t = State()
    assert [t.call(HelperId.get_prandom_u32) for _ in range(5)] == draws[:5]


def test_cpu_and_numa_node() -> None:
    assert State(cpu=1).call(HelperId.get_smp_processor_id) == 1
    assert State(cpu=0).call(HelperId.get_smp_processor_id) == 0
    assert State().call(HelperId.get_numa_node_id) == 0
    py = kernel_helpers()[HelperId.get_smp_processor_id]
    assert py(SimpleNamespace(env=SimpleNamespace(cpu=1))) == State(cpu=1).call(HelperId.get_smp_processor_id)


# -- XDP head / tail / meta --------------------------------------------------------------------------------

def _xdp(ctx: NativeBuffer, frame: bytes, headroom: int, meta: int) -> NativeXdpBuff:
    return NativeXdpBuff(ctx, frame, headroom=headroom, meta_len=meta)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(length=st.integers(14, 300), headroom=st.integers(0, 256), meta=st.sampled_from([0, 4, 8, 32]),
       steps=st.lists(st.tuples(st.sampled_from([HelperId.xdp_adjust_head, HelperId.xdp_adjust_tail,
                                                   HelperId.xdp_adjust_meta]),
                                st.integers(-400, 400)), min_size=1, max_size=8))
def test_xdp_adjustments_match_python(length: int, headroom: int, meta: int,
                                      steps: list[tuple[HelperId, int]]) -> None:
    meta = min(meta, length - 14)
    frame = bytes((i * 7 + 3) & 0xFF for i in range(length))
    ctx = NativeBuffer(XDP_RUNTIME.size)
    x = _xdp(ctx, frame, headroom, meta)
    s = State()
    py = kernel_helpers()
    pctx = NativeHelperContext(s.words)
    pctx.env = SimpleNamespace(xdp=x, ri=RedirectInfo(), prog_type=ProgType.XDP)
    for helper, delta in steps:
        page, ctx_bytes = x.page.read(), ctx.read()
        rn = s.call(helper, ctx.address, delta & M64)
        after_n = (x.page.read(), ctx.read())
        x.page.write(page)
        ctx.write(ctx_bytes)
        rp = int(py[helper](pctx, ctx.address, delta & M64, 0, 0, 0)) & M64
        assert rn == rp, (helper, delta)
        assert (x.page.read(), ctx.read()) == after_n, (helper, delta)
        assert x.data_meta <= x.data <= x.data_end <= x.hard_end


def test_adjust_head_moves_metadata_with_data() -> None:
    ctx = NativeBuffer(XDP_RUNTIME.size)
    x = _xdp(ctx, b"MMMM" + bytes(range(60)), 100, 4)
    s = State()
    assert s.call(HelperId.xdp_adjust_head, ctx.address, 10) == 0
    assert x.packet()[:4] == b"MMMM" and x.data - x.data_meta == 4
    assert x.packet()[4:] == bytes(range(10, 60))
    assert s.call(HelperId.xdp_adjust_head, ctx.address, (-30) & M64) == 0
    assert x.packet()[:4] == b"MMMM" and len(x.packet()) == 4 + 50 + 30


# -- LD_ABS / LD_IND ----------------------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(length=st.integers(0, 80), l2=st.booleans(), size=st.sampled_from([1, 2, 4]),
       offset=st.one_of(st.integers(-0x200010, -0x1FFF00), st.integers(-0x100010, -0xFFF00), st.integers(-8, 90),
                        st.integers(-2**31, 2**31 - 1)))
def test_skb_load_matches_the_vm(length: int, l2: bool, size: int, offset: int) -> None:
    pkt = bytes((i * 13 + 1) & 0xFF for i in range(length))
    # the skb's head: 32 bytes of headroom before data (a socket filter's pulled MAC header lies there)
    buf = bytes(range(0xA0, 0xC0)) + pkt
    space = AddressSpace()
    region = space.add(bytearray(buf), name="pkt", start=32, end=32 + length)
    net, mac = (14, 0) if l2 else (0, -14)
    ex = Execution(space, skb=SkbView(region.address(32), length, network_offset=net, mac_offset=mac))
    want = ld_abs(ex, offset & 0xFFFF_FFFF, size, 0)
    native = NativeBuffer(buf)
    s = State()
    struct.pack_into("<QQqq", s.view, ENV + EnvField.SKB_DATA, native.address + 32, length, net, mac)
    got = library().call("skb_load", s.address, 0, offset & M64, size)
    assert got == (1 << 32 if want is None else want)


def test_skb_load_without_header_offsets() -> None:
    s = State()
    native = NativeBuffer(b"\x01\x02\x03\x04")
    struct.pack_into("<QQqq", s.view, ENV + EnvField.SKB_DATA, native.address, 4, NO_OFFSET, NO_OFFSET)
    lib = library()
    assert lib.call("skb_load", s.address, 0, 1, 2) == 0x0203
    assert lib.call("skb_load", s.address, 0, (-0x100000) & M64, 1) == 1 << 32  # no network header known
    assert lib.call("skb_load", s.address, 0, 3, 2) == 1 << 32  # crosses the end
