"""Issue 6: helpers on the packet path never cross back into Python under the JIT.

The kernel layer's Python implementations of those helpers are replaced by tripwires (any call
raises) in the table the JIT engine is built from, and programs that use them run through the real
paths — ``BPF_PROG_TEST_RUN`` with ``engine="jit"`` (what ``pybpf prog run ... --engine jit``
does) and the XDP hook's JIT runner. If one of those helpers ran as a ctypes callback into Python,
the tripwire would stop the run with a HelperError. A control shows the tripwire does fire for a
helper the JIT leaves in Python.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pybpf.errors import HelperError, ToolchainError
from pybpf.isa import Insn, Insns
from pybpf.kernel import Kernel
from pybpf.kernel.prog_load import LoadAttrs, prog_load
from pybpf.kernel.test_run import test_run
from pybpf.loader import load
from pybpf.progtypes.internal import INTERNAL_FUNCTIONS
from pybpf.uapi import HelperId, MapType, ProgType

pytestmark = pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="the JIT emits x86-64")

ROOT = Path(__file__).resolve().parents[2]
_NATIVE_MAP_TYPES = {MapType.ARRAY, MapType.PERCPU_ARRAY, MapType.HASH, MapType.PERCPU_HASH, MapType.LRU_HASH,
                     MapType.LRU_PERCPU_HASH, MapType.LPM_TRIE, MapType.QUEUE, MapType.STACK, MapType.RINGBUF,
                     MapType.DEVMAP, MapType.DEVMAP_HASH, MapType.PROG_ARRAY}
PACKET_PATH = {int(h) for h in (
    HelperId.map_lookup_elem, HelperId.map_update_elem, HelperId.map_delete_elem, HelperId.map_push_elem,
    HelperId.map_pop_elem, HelperId.map_peek_elem, HelperId.ringbuf_output, HelperId.ringbuf_reserve,
    HelperId.ringbuf_submit, HelperId.ringbuf_discard, HelperId.ringbuf_query, HelperId.ktime_get_ns,
    HelperId.ktime_get_boot_ns, HelperId.ktime_get_coarse_ns, HelperId.get_prandom_u32,
    HelperId.get_smp_processor_id, HelperId.redirect, HelperId.redirect_map, HelperId.xdp_adjust_head,
    HelperId.xdp_adjust_tail, HelperId.xdp_adjust_meta, HelperId.tail_call)}
PACKET_PATH |= {f.id for f in INTERNAL_FUNCTIONS
                if int(f.replaces) in PACKET_PATH and set(f.map_types) & _NATIVE_MAP_TYPES}
"""The issue's list: array/hash/LRU/LPM lookups and updates, queue/stack, ring buffer, ktime,
prandom, redirect, adjust_head/tail (and meta), plus the internal functions the verifier patches
in for those maps (contract 2) and tail calls."""


def _tripwire(hid: int) -> Any:
    def fire(ctx: Any, *regs: int) -> int:
        raise AssertionError(f"helper {hid} ran in Python under the JIT")

    return fire


@pytest.fixture
def tripwired(monkeypatch: pytest.MonkeyPatch) -> Iterator[set[int]]:
    """The JIT engines built from now on get tripwires instead of the packet-path Python helpers;
    yields the ids (add to it to trip more)."""
    import pybpf.kernel.engines as engines

    ids = set(PACKET_PATH)
    real = engines._jit

    def jit(program: Any, helpers: Any) -> Any:
        return real(program, helpers.with_helpers({i: _tripwire(i) for i in ids}))

    monkeypatch.setattr(engines, "_jit", jit)
    yield ids


@pytest.fixture
def kernel(tmp_path: Path) -> Kernel:
    return Kernel(tmp_path / "bpffs", ncpus=2)


def _compile(src: Path, out: Path) -> Path:
    from pybpf.toolchain import compile

    try:
        return compile(src, out)
    except ToolchainError as e:
        pytest.skip(f"no BPF C compiler: {e}")


@pytest.fixture(scope="module")
def bench_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench-data")
    subprocess.run([sys.executable, str(ROOT / "bench" / "gen_packets.py"), str(out)], check=True,
                   capture_output=True)
    return out


BENCH = ["xdp_pass", "xdp_count", "xdp_flow_parse", "xdp_fnv_hash", "xdp_lpm_route", "xdp_subprog_calls"]
FRAMES = ["udp64", "vlan_tcp6_128", "tcp1500"]


@pytest.mark.toolchain
@pytest.mark.parametrize("name", BENCH)
def test_bench_programs_never_call_python(kernel: Kernel, tmp_path: Path, bench_data: Path, tripwired: set[int],
                                          name: str) -> None:
    from pybpf.hooks.devices import NetDevice
    from pybpf.hooks.packet import frames_from_pcap
    from pybpf.hooks.runners import JitXdpRunner
    from pybpf.hooks.xdp import XdpHook

    expected = json.loads((bench_data / "expected.json").read_text())
    obj = _compile(ROOT / "bench" / "progs" / f"{name}.c", tmp_path / f"{name}.o")
    with load(obj, kernel=kernel) as coll:
        if name == "xdp_lpm_route":
            routes = coll.maps["routes"].raw()
            for line in (bench_data / "routes.keyval").read_text().splitlines():
                if line.strip():  # "key hex 08 00 ... value hex 02 00 ..."
                    key, value = line.replace("key hex", "").split("value hex")
                    routes[bytes.fromhex(key)] = bytes.fromhex(value)
        prog = coll.programs[name].kernel_program
        for frame in FRAMES:
            data = (bench_data / f"{frame}.bin").read_bytes()
            r = test_run(kernel, prog, data, repeat=100, engine="jit")
            assert r.retval == expected[frame][name], frame
        hook = XdpHook(prog, engine="jit", devices={1: NetDevice(1, "lo", 65536)})
        assert isinstance(hook.runner, JitXdpRunner)
        got = [o.retval for o in hook.process(frames_from_pcap(bench_data / "packets.pcap"))]
        assert got == [expected[f][name] for f in ("udp64", "tcp1500", "vlan_tcp6_128")]
        eng = prog.runner("jit").impl
        assert eng.native_ids <= tripwired  # what it calls is on the packet path, and native
        assert "PythonHelper" not in eng.image.helper_kinds.values()  # no ctypes callback bound at all
        if name in ("xdp_pass", "xdp_count"):  # xdp_count's array lookup is inlined: no call at all
            assert not eng.image.helper_kinds


RUNS = ["xdp_pop_eth", "xdp_grow_front", "xdp_trim", "xdp_extend", "xdp_meta", "xdp_redirect", "xdp_redirect_miss",
        "xdp_helpers", "xdp_ringbuf", "xdp_queue", "xdp_tail_caller"]


@pytest.mark.toolchain
def test_packet_helpers_of_the_kernel_test_programs_stay_native(kernel: Kernel, tmp_path: Path,
                                                                tripwired: set[int]) -> None:
    """adjust_head/tail/meta, redirects, ktime, prandom, CPU id, ring buffer, queue, tail calls."""
    obj = _compile(ROOT / "tests" / "kernel" / "progs" / "runs.c", tmp_path / "runs.o")
    pkt = bytes(range(64))
    with load(obj, kernel=kernel) as coll:
        coll.maps["jumps"][1] = coll.programs["xdp_tail_target"]
        for name in RUNS:
            prog = coll.programs[name].kernel_program
            r = test_run(kernel, prog, pkt, repeat=3, engine="jit")
            ref = test_run(kernel, prog, pkt, repeat=3, engine="interpreter")
            if name not in ("xdp_helpers", "xdp_queue"):  # clocks and randomness / a queue that fills up
                assert (r.retval, r.data_out) == (ref.retval, ref.data_out), name
        assert coll.maps["events"].consume()  # the ring buffer received records from native code


def test_the_tripwire_fires_for_a_python_helper(kernel: Kernel, tripwired: set[int]) -> None:
    """Control: bpf_csum_diff is not native; tripwired, its call stops the run."""
    tripwired.add(int(HelperId.csum_diff))
    insns = [*(Insn(0xB7, r, imm=0) for r in (1, 2, 3, 4)), Insn(0xB7, 5, imm=7), Insn(0x85, imm=28), Insn(0x95)]
    prog = prog_load(kernel, LoadAttrs(prog_type=int(ProgType.XDP), insns=Insns(insns), license="GPL")).program
    with pytest.raises(HelperError, match="ran in Python under the JIT"):
        test_run(kernel, prog, bytes(64), repeat=3, engine="jit")
