"""PROG_TEST_RUN and the helpers, through programs compiled from tests/kernel/progs/runs.c."""

from __future__ import annotations

import errno
import os
import platform
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from pybpf.errors import BpfError, ToolchainError
from pybpf.kernel import Kernel
from pybpf.loader import Collection, load

SRC = Path(__file__).resolve().parent / "progs" / "runs.c"
pytestmark = pytest.mark.toolchain


@pytest.fixture(scope="module")
def runs_o(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pybpf.toolchain import compile

    out = tmp_path_factory.mktemp("runs") / "runs.o"
    try:
        compile(SRC, out)
    except ToolchainError as e:
        pytest.skip(f"no BPF C compiler: {e}")
    return out


@pytest.fixture
def coll(kernel: Kernel, runs_o: Path) -> Iterator[Collection]:
    with load(runs_o, kernel=kernel) as c:
        yield c


X86 = platform.machine() in ("x86_64", "AMD64")
PKT = bytes(range(64))


def results(c: Collection) -> dict[int, int]:
    return dict(c.maps["results"])


# -- XDP ---------------------------------------------------------------------------------------------

def test_xdp_context_and_data_out(coll: Collection) -> None:
    r = coll.programs["xdp_len"].run(PKT, repeat=3)
    assert (r.retval, r.data_out, r.repeat) == (2, PKT, 3)
    assert r.duration > 0
    res = results(coll)
    assert (res[0], res[1], res[2]) == (64, 1, 0)  # length, ingress_ifindex (lo), rx queue


def test_xdp_adjust_head_tail_meta_show_in_data_out(coll: Collection) -> None:
    p = coll.programs
    r = p["xdp_pop_eth"].run(PKT)
    assert (r.retval, r.data_out) == (3, PKT[14:])
    r = p["xdp_grow_front"].run(PKT)
    assert r.data_out == b"\xde\xad\xbe\xef" + PKT
    assert p["xdp_trim"].run(PKT).data_out == PKT[:-10]
    assert p["xdp_extend"].run(PKT).data_out == PKT + bytes(6)
    r = p["xdp_meta"].run(PKT)
    assert r.data_out == struct.pack("<Q", 0x1122334455667788) + PKT  # data_out starts at data_meta


def test_xdp_repeat_runs_on_the_same_buffer(coll: Collection) -> None:
    # like the kernel's bpf_test_run, repeats do not reset the frame: three pops of 14 bytes
    r = coll.programs["xdp_pop_eth"].run(PKT, repeat=3)
    assert r.data_out == PKT[42:]


def test_xdp_ctx_in_carves_metadata_and_reports_ctx_out(kernel: Kernel, coll: Collection) -> None:
    from pybpf.kernel.test_run import test_run

    prog = coll.programs["xdp_read_meta"].kernel_program
    ctx = struct.pack("<6I", 4, 64, 0, 0, 0, 0)  # data=4: the first 4 bytes are metadata
    r = test_run(kernel, prog, b"\x07\x00\x00\x00" + PKT[:60], ctx_in=ctx)
    assert r.retval == 7
    assert r.ctx_out is not None and struct.unpack("<6I", r.ctx_out)[:2] == (4, 64)


@pytest.mark.parametrize(("ctx", "data", "err"), [
    (None, bytes(13), errno.EINVAL),  # shorter than an Ethernet header
    (struct.pack("<6I", 0, 64, 4, 0, 0, 0), PKT, errno.EINVAL),  # data_meta must be 0
    (struct.pack("<6I", 0, 65, 0, 0, 0, 0), PKT, errno.EINVAL),  # data_end beyond data_in
    (struct.pack("<6I", 2, 64, 0, 0, 0, 0), PKT, errno.EINVAL),  # metadata not a multiple of 4
    (struct.pack("<6I", 0, 64, 0, 0, 0, 5), PKT, errno.EINVAL),  # egress_ifindex
    (struct.pack("<6I", 0, 64, 0, 0x7FFF0000, 0, 0), PKT, errno.ENODEV),  # no such device
    (struct.pack("<6I", 0, 64, 0, 0, 0, 0) + b"\x01", PKT, errno.E2BIG),  # non-zero tail
])
def test_xdp_input_checks(kernel: Kernel, coll: Collection, ctx: bytes | None, data: bytes, err: int) -> None:
    from pybpf.kernel.test_run import test_run

    with pytest.raises(BpfError) as e:
        test_run(kernel, coll.programs["xdp_len"].kernel_program, data, ctx_in=ctx)
    assert e.value.errno == err


def test_xdp_redirects(coll: Collection) -> None:
    r = coll.programs["xdp_redirect"].run(PKT)
    assert (r.retval, r.redirect.tgt_index) == (4, 1)
    r = coll.programs["xdp_redirect_miss"].run(PKT)
    assert r.retval == 1  # no entry for key 3: the fallback verdict in the flags (XDP_DROP)
    coll.maps["ports"][3] = 1
    r = coll.programs["xdp_redirect_miss"].run(PKT)
    assert (r.retval, r.redirect.tgt_index, r.redirect.map_id) == (4, 3, coll.maps["ports"].id)


# -- helpers ------------------------------------------------------------------------------------------

def test_time_random_cpu(kernel: Kernel, coll: Collection) -> None:
    import time

    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    coll.programs["xdp_helpers"].run(PKT, cpu=1)
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    res = results(coll)
    assert res[0] == 1  # bpf_get_smp_processor_id: the run's CPU
    assert before <= res[3] <= after
    assert res[5] >= res[3]  # boot time includes suspend: never behind monotonic
    values = set()
    for _ in range(4):
        coll.programs["xdp_helpers"].run(PKT)
        values.add(results(coll)[4])
    assert len(values) > 1


@pytest.mark.parametrize("engine", ["interpreter"] + (["jit"] if X86 else []))
def test_current_task_is_this_process(coll: Collection, engine: str) -> None:
    coll.programs["task_info"].run(b"", engine=engine)  # a raw tracepoint: its arguments in native memory on the JIT
    res = results(coll)
    assert res[1] >> 32 == os.getpid()
    assert res[2] == (os.getgid() << 32) | os.getuid()
    comm = Path("/proc/self/comm").read_bytes().strip()[:8]
    assert struct.pack("<Q", res[6]).rstrip(b"\0") == comm.ljust(8, b"\0")[:8].rstrip(b"\0")


def test_trace_printk_output_and_trace_pipe(kernel: Kernel, coll: Collection) -> None:
    r = coll.programs["xdp_printk"].run(PKT)
    assert r.trace == ["len=42 x=ff s=str"]
    lines, _ = kernel.trace.read_from(0)
    assert lines and lines[-1].rstrip("\n").endswith(": bpf_trace_printk: len=42 x=ff s=str")
    assert f"-{os.getpid()}" in lines[-1]


def test_loop_strtol_csum_queue(coll: Collection) -> None:
    coll.programs["xdp_loop"].run(PKT)
    assert results(coll)[0] == sum(range(10)) and results(coll)[1] == 10
    coll.programs["xdp_strtol"].run(PKT)
    assert struct.unpack("<q", struct.pack("<Q", results(coll)[0]))[0] == -1234 and results(coll)[1] == 5
    coll.programs["xdp_csum"].run(PKT)
    words = struct.unpack("<2I", bytes.fromhex("45000054") + bytes.fromhex("00004000"))
    assert results(coll)[0] == sum(words)
    assert coll.programs["xdp_queue"].run(PKT).retval == 11


def test_ringbuf_from_a_program(coll: Collection) -> None:
    coll.programs["xdp_ringbuf"].run(PKT)
    assert coll.maps["events"].consume() == [struct.pack("<I", 0xABCD), struct.pack("<Q", 5)]


def test_tail_call_through_a_program_array(coll: Collection) -> None:
    caller = coll.programs["xdp_tail_caller"]
    assert caller.run(PKT).retval == 7  # empty slot: falls through
    coll.maps["jumps"][1] = coll.programs["xdp_tail_target"]
    assert coll.maps["jumps"].raw()[1] == struct.pack("<I", coll.programs["xdp_tail_target"].id)
    assert caller.run(PKT).retval == 42


# -- skb -----------------------------------------------------------------------------------------------

ETH_IP = bytes(6) + bytes(range(1, 7)) + b"\x08\x00"
IP_HDR = bytes.fromhex("4500001c0000400040110000c0a80001c0a80002")


def test_socket_filter_sees_the_network_header_and_gets_a_zeroed_mac_back(coll: Collection) -> None:
    frame = ETH_IP + IP_HDR + bytes(8)
    r = coll.programs["sock_len"].run(frame)
    assert r.retval == len(frame) - 14
    assert r.data_out == bytes(14) + frame[14:]


def test_tc_sees_the_mac_header_and_skb_fields(kernel: Kernel, coll: Collection) -> None:
    from pybpf.kernel.test_run import test_run
    from pybpf.progtypes import SK_BUFF

    frame = ETH_IP + IP_HDR + bytes(8)
    ctx = bytearray(SK_BUFF.size)
    ctx[SK_BUFF.offsetof("mark"):SK_BUFF.offsetof("mark") + 4] = struct.pack("<I", 7)
    r = test_run(kernel, coll.programs["tc_proto"].kernel_program, frame, ctx_in=bytes(ctx))
    assert r.retval == len(frame)  # data_end - data: the whole frame
    assert r.data_out == frame
    res = results(coll)
    assert res[0] == 0x0008  # skb->protocol: htons(ETH_P_IP) as the program reads it
    assert (res[1], res[2], res[3], res[4]) == (len(frame), 7, 0, 1)  # PACKET_HOST on lo
    assert r.ctx_out is not None
    assert struct.unpack_from("<I", r.ctx_out, SK_BUFF.offsetof("mark"))[0] == 0x55
    assert struct.unpack_from("<I", r.ctx_out, SK_BUFF.offsetof("cb") + 4)[0] == 9
    bad = bytearray(SK_BUFF.size)
    bad[SK_BUFF.offsetof("len")] = 1  # only mark/priority/ifindex/cb/tstamp... may be set
    with pytest.raises(BpfError) as e:
        test_run(kernel, coll.programs["tc_proto"].kernel_program, frame, ctx_in=bytes(bad))
    assert e.value.errno == errno.EINVAL


def test_skb_store_load_and_l3_csum_replace(coll: Collection) -> None:
    frame = ETH_IP + IP_HDR + bytes(8)
    r = coll.programs["tc_rewrite"].run(frame)
    assert r.retval == 0 and r.data_out[:2] == b"\xca\xfe" and results(coll)[0] == 0x0800

    def checksum(hdr: bytes) -> int:
        s = sum(struct.unpack("!10H", hdr))
        while s >> 16:
            s = (s & 0xFFFF) + (s >> 16)
        return ~s & 0xFFFF

    hdr = bytearray(IP_HDR)
    hdr[10:12] = struct.pack("!H", checksum(bytes(hdr)))
    r = coll.programs["tc_csum"].run(ETH_IP + bytes(hdr) + bytes(8))
    out = r.data_out[14:34]
    assert r.retval == 0 and out[8] == 0x3F  # TTL rewritten
    assert checksum(out[:10] + b"\0\0" + out[12:]) == struct.unpack("!H", out[10:12])[0]


def test_skb_too_short(kernel: Kernel, coll: Collection) -> None:
    with pytest.raises(BpfError) as e:
        coll.programs["sock_len"].run(bytes(10))
    assert e.value.errno == errno.EINVAL


@pytest.mark.parametrize("name", ["xdp_len", "xdp_pop_eth", "xdp_grow_front", "xdp_trim", "xdp_extend", "xdp_meta",
                                  "xdp_redirect", "xdp_strtol", "xdp_csum", "xdp_loop", "tc_proto", "sock_len"])
def test_every_engine_gives_the_same_result(coll: Collection, name: str) -> None:
    import platform

    frame = ETH_IP + IP_HDR + bytes(8)
    data = PKT if name.startswith("xdp") else frame
    ref = coll.programs[name].run(data)
    engines = ["translate"] + (["jit"] if platform.machine() in ("x86_64", "AMD64") else [])
    for engine in engines:
        got = coll.programs[name].run(data, engine=engine)
        assert (got.retval, got.data_out) == (ref.retval, ref.data_out), engine
