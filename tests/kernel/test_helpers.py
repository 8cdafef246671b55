"""Helper implementations called directly (as the vm calls them), and through the interpreter."""

from __future__ import annotations

import errno
import struct

import pytest

from pybpf.isa import Insn, Insns
from pybpf.kernel import Kernel, MapAttrs
from pybpf.kernel.engines import kernel_space
from pybpf.kernel.helpers import helper_table, kernel_helpers
from pybpf.kernel.helpers.packet import csum_fold
from pybpf.kernel.helpers.trace import _FormatError, bprintf
from pybpf.kernel.runenv import RunEnv, XdpState
from pybpf.uapi import HelperId, MapType
from pybpf.vm import Execution, Interpreter, RegionKind


@pytest.fixture
def ex(kernel: Kernel) -> Execution:
    space = kernel_space(kernel)
    return Execution(space, env=RunEnv(kernel, None))


def mem(ex: Execution, data: bytes | int) -> int:
    buf = bytearray(data if isinstance(data, bytes) else bytes(data))
    return ex.space.add(buf, RegionKind.MEM, "test").address()


def call(ex: Execution, helper: int, *args: int) -> int:
    fn = kernel_helpers()[int(helper)]
    r = list(args) + [0] * (5 - len(args))
    return fn(ex, *r) & ((1 << 64) - 1)


def s64(v: int) -> int:
    return v - (1 << 64) if v >> 63 else v


def test_helper_table_covers_the_required_helpers() -> None:
    need = {"map_lookup_elem", "map_update_elem", "map_delete_elem", "map_push_elem", "map_pop_elem",
            "map_peek_elem", "ktime_get_ns", "ktime_get_boot_ns", "get_prandom_u32", "get_smp_processor_id",
            "trace_printk", "tail_call", "redirect", "redirect_map", "xdp_adjust_head", "xdp_adjust_tail",
            "xdp_adjust_meta", "csum_diff", "l3_csum_replace", "l4_csum_replace", "skb_load_bytes",
            "skb_store_bytes", "perf_event_output", "ringbuf_output", "ringbuf_reserve", "ringbuf_submit",
            "ringbuf_discard", "ringbuf_query", "spin_lock", "spin_unlock", "loop", "for_each_map_elem",
            "get_current_pid_tgid", "get_current_uid_gid", "get_current_comm", "snprintf", "strtol", "strtoul"}
    have = {HelperId(i).name for i in kernel_helpers() if i < 0x10000}
    assert need <= have
    from pybpf.progtypes.internal import INTERNAL_FUNCTIONS

    assert {f.id for f in INTERNAL_FUNCTIONS} <= set(kernel_helpers())  # contract 2: every internal id runs


@pytest.mark.parametrize(("fmt", "args", "out"), [
    (b"%d %u %x %X", [(1 << 32) - 5, (1 << 32) - 5, 255, 255], b"-5 4294967291 ff FF"),
    (b"%lld|%llu|%llx", [(1 << 64) - 1, 7, 0xABC], b"-1|7|abc"),
    (b"[%5d][%-4u][%05x]", [42, 7, 0x1F], b"[   42][7   ][0001f]"),
    (b"%c%c 100%%", [ord("o"), ord("k")], b"ok 100%"),
])
def test_bprintf_conversions(ex: Execution, fmt: bytes, args: list[int], out: bytes) -> None:
    assert bprintf(ex, fmt, args) == out


def test_bprintf_strings_and_addresses(ex: Execution) -> None:
    s = mem(ex, b"name\0")
    ip4 = mem(ex, bytes([192, 168, 1, 20]))
    ip6 = mem(ex, bytes.fromhex("20010db8000000000000000000000001"))
    assert bprintf(ex, b"%s %pI4 %pi4", [s, ip4, ip4]) == b"name 192.168.1.20 192.168.001.020"
    assert bprintf(ex, b"%pI6", [ip6]) == b"2001:0db8:0000:0000:0000:0000:0000:0001"
    assert bprintf(ex, b"%px", [0x1234]) == b"0000000000001234"
    hashed = bprintf(ex, b"%p", [0x1234])
    assert len(hashed) == 16 and hashed != b"0000000000001234"  # plain %p never shows the pointer


@pytest.mark.parametrize(("fmt", "nargs"), [(b"%z", 1), (b"%d %d", 1), (b"%sx", 1), (b"%pZ", 1), (b"\x01", 0)])
def test_bprintf_refuses_what_the_kernel_refuses(ex: Execution, fmt: bytes, nargs: int) -> None:
    with pytest.raises(_FormatError) as e:
        bprintf(ex, fmt, [0] * nargs)
    assert e.value.err == errno.EINVAL


def test_snprintf_and_trace_printk(ex: Execution, kernel: Kernel) -> None:
    fmt = mem(ex, b"v=%d\0")
    args = mem(ex, struct.pack("<Q", 1234))
    out = mem(ex, 5)
    assert call(ex, HelperId.snprintf, out, 5, fmt, args, 8) == len("v=1234") + 1
    assert ex.read(out, 5) == b"v=12\0"
    assert s64(call(ex, HelperId.snprintf, out, 5, fmt, args, 3)) == -errno.EINVAL  # data_len % 8
    f2 = mem(ex, b"hello %s\0")
    assert call(ex, HelperId.trace_printk, f2, 9, mem(ex, b"world\0")) == len("hello world")
    assert ex.env.trace == ["hello world"]
    assert s64(call(ex, HelperId.trace_printk, mem(ex, b"no nul"), 6)) == -errno.EINVAL


@pytest.mark.parametrize(("text", "flags", "ret", "value"), [
    (b"  0x1f!", 0, 6, 31), (b"0755", 0, 4, 0o755), (b"42", 16, 2, 0x42), (b"-3", 10, -errno.EINVAL, 0),
    (b"99999999999999999999999", 10, -errno.ERANGE, 0), (b"12", 7, -errno.EINVAL, 0), (b"zz", 0, -errno.EINVAL, 0),
])
def test_strtoul(ex: Execution, text: bytes, flags: int, ret: int, value: int) -> None:
    res = mem(ex, 8)
    got = s64(call(ex, HelperId.strtoul, mem(ex, text), len(text), flags, res))
    assert got == ret
    assert ex.load(res, 8) == value


def test_strtol_negative_and_range(ex: Execution) -> None:
    res = mem(ex, 8)
    assert call(ex, HelperId.strtol, mem(ex, b"-42"), 3, 0, res) == 3 and s64(ex.load(res, 8)) == -42
    assert s64(call(ex, HelperId.strtol, mem(ex, b"9223372036854775808"), 19, 10, res)) == -errno.ERANGE


def test_spin_lock_uses_the_lock_word_in_map_memory(kernel: Kernel, ex: Execution) -> None:
    m = kernel.create_map(MapAttrs(int(MapType.ARRAY), 4, 8, 1, spin_lock_off=0))
    base = ex.space.map_region(m.id, m.storage, m).base
    addr = base + m.data_off
    call(ex, HelperId.spin_lock, addr)
    assert m._u32(m.data_off) != 0 and ex.env.locked
    call(ex, HelperId.spin_unlock, addr)
    assert m._u32(m.data_off) == 0 and not ex.env.locked
    # BPF_F_LOCK from user space: the lock word itself is never copied
    m.update_elem_sys(struct.pack("<I", 0), struct.pack("<II", 0xFFFFFFFF, 5), 4)
    assert m.lookup_elem_sys(struct.pack("<I", 0), 4) == struct.pack("<II", 0, 5)


def test_perf_event_output_with_packet_bytes(kernel: Kernel, ex: Execution) -> None:
    m = kernel.create_map(MapAttrs(int(MapType.PERF_EVENT_ARRAY), 4, 4, 2))
    m.enable()
    ptr = ex.space.map_region(m.id, m.storage, m).base
    ex.env.xdp = XdpState(ex.space, bytes(range(32)))
    ex.env.cpu = 1
    data = mem(ex, b"\x01\x02")
    flags = (4 << 32) | 0xFFFFFFFF  # 4 packet bytes, current CPU
    assert call(ex, HelperId.perf_event_output, 0, ptr, flags, data, 2) == 0
    assert m.read(1) == [b"\x01\x02" + bytes(range(4))]
    assert s64(call(ex, HelperId.perf_event_output, 0, ptr, 99 << 32, data, 2)) == -errno.EFAULT
    ex.env.xdp.close()


def test_l4_csum_replace_with_pseudo_header(kernel: Kernel, ex: Execution) -> None:
    from pybpf.kernel.runenv import SkbState

    udp = bytearray(8)
    struct.pack_into("!HHHH", udp, 0, 1000, 53, 8, 0x1234)
    frame = bytes(12) + b"\x08\x00" + bytes(20) + bytes(udp)
    ex.env.skb = SkbState(ex.space, frame, l2=True, fields={})
    old, new = struct.unpack("<I", bytes([10, 0, 0, 1]))[0], struct.unpack("<I", bytes([10, 0, 0, 2]))[0]
    assert call(ex, HelperId.l4_csum_replace, 0, 34 + 6, old, new, 4 | (1 << 4)) == 0
    got = struct.unpack("!H", ex.env.skb.buf[64 + 40:64 + 42])[0]
    # one's complement arithmetic: new = ~(~old_csum + ~old + new)
    s = (~0x1234 & 0xFFFF) + (~0x0001 & 0xFFFF) + 0x0002
    s = (s & 0xFFFF) + (s >> 16)
    assert got == (~s & 0xFFFF)
    assert csum_fold(0x0000FFFF) == 0xFFFF - 0xFFFF  # ~(0xffff) folded: 0
    ex.env.skb.close()


def test_for_each_map_elem_and_loop_run_bpf_callbacks(kernel: Kernel) -> None:
    m = kernel.create_map(MapAttrs(int(MapType.HASH), 4, 4, 8))
    for i in range(1, 6):
        m.update_elem_sys(struct.pack("<I", i), struct.pack("<I", i * 10), 0)
    main = [
        Insn(0x18, 1, 1, 0, m.id),                 # r1 = map
        Insn(0x18, 2, 4, 0, 0),                    # r2 = callback (patched below)
        Insn(0x7A, 10, 0, -8, 0),                  # *(u64 *)(r10 -8) = 0
        Insn(0xBF, 3, 10), Insn(0x07, 3, 0, 0, -8),  # r3 = &total
        Insn(0xB7, 4, 0, 0, 0),
        Insn(0x85, 0, 0, 0, int(HelperId.for_each_map_elem)),
        Insn(0x79, 0, 10, -8, 0),                  # r0 = total
        Insn(0x95),
    ]
    cb = [
        Insn(0x61, 5, 3, 0, 0),                    # r5 = *(u32 *)value
        Insn(0x79, 6, 4, 0, 0), Insn(0x0F, 6, 5), Insn(0x7B, 4, 6, 0, 0),  # *ctx += r5
        Insn(0xB7, 0, 0, 0, 0), Insn(0x95),
    ]
    slots = sum(i.width for i in main)
    main[1] = Insn(0x18, 2, 4, 0, slots - 3)  # relative to the lddw's next slot (slot 3)
    prog = Insns(main + cb)
    space = kernel_space(kernel)
    engine = Interpreter(prog, maps={m.id: m}, helpers=helper_table(), space=space)
    assert engine.run(env=RunEnv(kernel, None)) == 150

