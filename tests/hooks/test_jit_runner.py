"""XDP frames through the JIT's batch runner: same results as the interpreter, many frames per call."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pybpf.errors import NotSupportedError
from pybpf.hooks.devices import NetDevice
from pybpf.hooks.outputs import CollectSink
from pybpf.hooks.packet import Frame, frames_from_pcap
from pybpf.hooks.runners import JitXdpRunner
from pybpf.hooks.xdp import XdpHook
from pybpf.uapi import HelperId

from .frames import ipv4_udp

pytestmark = pytest.mark.toolchain

ROOT = Path(__file__).resolve().parents[2]
LO = {1: NetDevice(1, "lo", 65536)}


def _jit_or_skip(prog: Any) -> JitXdpRunner:
    try:
        return JitXdpRunner(prog)
    except NotSupportedError as e:  # pragma: no cover - depends on what the JIT offers
        pytest.skip(f"JIT batch runner unavailable: {e}")


def test_seed_demo_under_the_jit(load: Callable[..., Any]) -> None:
    coll = load.collection(ROOT / "examples/seed-demo/demo.c", "xdp_program")  # type: ignore[attr-defined]
    prog = coll.programs["xdp_program"].kernel_program
    runner = _jit_or_skip(prog)
    hook = XdpHook(prog, runner=runner, devices=LO, batch_size=100)
    n = 1000
    stats = hook.run(Frame(ipv4_udp(18 + i % 300), number=i + 1) for i in range(n))
    assert stats.verdicts["XDP_PASS"] == n and stats.packets == n
    assert struct.unpack("<I", coll.maps["pkt_counter"].raw()[bytes(4)])[0] == n


def test_engine_jit_picks_the_batch_runner(load: Callable[..., Any]) -> None:
    prog = load("xdp_hooks", "swap_tx").kernel_program
    _jit_or_skip(prog)
    hook = XdpHook(prog, engine="jit", devices=LO)
    assert isinstance(hook.runner, JitXdpRunner)


def test_jit_and_interpreter_agree_on_mixed_sources(load: Callable[..., Any]) -> None:
    """Frames from different devices and queues in one batch: each sees its own context."""
    prog = load("xdp_hooks", "ctx_verdict").kernel_program
    runner = _jit_or_skip(prog)
    frames = [Frame(ipv4_udp(10 * i), ifindex=1 + i % 3, rx_queue=i % 2, number=i + 1) for i in range(20)]
    jit = [r.retval for r in runner.run_xdp(frames)]
    interp = [o.retval for o in XdpHook(prog, devices=LO).process(frames)]
    assert jit == interp
    assert jit[4] == (2 | 0 << 8 | len(frames[4].data) << 16)


def test_jit_packet_writes_and_tx(load: Callable[..., Any]) -> None:
    prog = load("xdp_hooks", "swap_tx").kernel_program
    runner = _jit_or_skip(prog)
    tx = CollectSink()
    frames = [ipv4_udp(n) for n in (18, 500, 1400)]
    XdpHook(prog, runner=runner, devices=LO, tx=tx).run(Frame(f, number=i + 1) for i, f in enumerate(frames))
    assert tx.data == [f[6:12] + f[:6] + f[12:] for f in frames]


def test_jit_redirect_info_is_per_frame(load: Callable[..., Any]) -> None:
    prog = load("xdp_hooks", "redirect_lo").kernel_program
    runner = _jit_or_skip(prog)
    redirect = CollectSink()
    hook = XdpHook(prog, runner=runner, devices=LO, redirect=redirect)
    outs = list(hook.process(Frame(ipv4_udp(), number=i + 1) for i in range(3)))
    assert [o.action for o in outs] == ["redirect"] * 3
    assert [e.ifindex for e in redirect.frames] == [1, 1, 1]


def test_programs_with_packet_helpers_run_natively(load: Callable[..., Any]) -> None:
    """bpf_xdp_adjust_tail (once a reason to refuse the batch runner) is native code now: the frames
    are cut as on the interpreter, in one native call."""
    prog = load("xdp_hooks", "trim_tail").kernel_program
    runner = _jit_or_skip(prog)
    assert {int(HelperId.xdp_adjust_tail)} <= set(runner._eng.native_ids)
    frames = [Frame(ipv4_udp(n), number=i + 1) for i, n in enumerate((18, 500, 1400))]
    got = runner.run_xdp(frames)
    assert [r.data for r in got] == [f.data[:60] for f in frames]
    assert got == XdpHook(prog, devices=LO).runner.run_xdp(frames)  # the interpreter's KernelXdpRunner


@pytest.fixture(scope="module")
def bench_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench-data")
    subprocess.run([sys.executable, str(ROOT / "bench" / "gen_packets.py"), str(out)], check=True,
                   capture_output=True)
    return out


@pytest.mark.parametrize("name", ["xdp_pass", "xdp_count", "xdp_fnv_hash", "xdp_subprog_calls"])
def test_bench_programs_under_the_jit(load: Callable[..., Any], bench_data: Path, name: str) -> None:
    expected = json.loads((bench_data / "expected.json").read_text())
    prog = load(ROOT / "bench" / "progs" / f"{name}.c", name).kernel_program
    runner = _jit_or_skip(prog)
    got = [r.retval for r in runner.run_xdp(list(frames_from_pcap(bench_data / "packets.pcap")))]
    assert got == [expected[f][name] for f in ("udp64", "tcp1500", "vlan_tcp6_128")]
