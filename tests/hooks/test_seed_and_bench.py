"""End to end: the seed demo over a capture, and the six benchmark programs over bench/gen_packets.py's
capture agreeing with its expected.json (the reference results computed independently in Python)."""

from __future__ import annotations

import json
import platform
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pybpf.hooks.devices import NetDevice
from pybpf.hooks.outputs import CollectSink
from pybpf.hooks.packet import frames_from_pcap
from pybpf.hooks.pcap import PcapReader, PcapWriter
from pybpf.hooks.xdp import XdpHook, run_pcap

from .frames import ipv4_udp

ENGINES = ["interpreter", "translate"] + (["jit"] if platform.machine() in ("x86_64", "AMD64") else [])

pytestmark = pytest.mark.toolchain

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "examples" / "seed-demo" / "demo.c"
BENCH = ROOT / "bench"
FRAME_ORDER = ("udp64", "tcp1500", "vlan_tcp6_128")  # the order gen_packets.py writes packets.pcap in
LO = {1: NetDevice(1, "lo", 65536)}


@pytest.mark.parametrize("engine", ENGINES)
def test_seed_demo_counts_every_packet(load: Callable[..., Any], tmp_path: Path, engine: str) -> None:
    n = 250
    src = tmp_path / "in.pcapng"
    with PcapWriter(src, format="pcapng") as w:
        for i in range(n):
            w.write(ipv4_udp(18 + i % 200), ts_ns=i)
    coll = load.collection(SEED, "xdp_program")  # type: ignore[attr-defined]
    prog = coll.programs["xdp_program"]  # the loader's Program: hooks take it as well as the kernel's
    stats = run_pcap(prog, src, pass_out=tmp_path / "out.pcap", engine=engine, devices=LO)
    counter = struct.unpack("<I", coll.maps["pkt_counter"].raw()[struct.pack("<I", 0)])[0]
    assert counter == n
    assert stats.packets == n and stats.verdicts["XDP_PASS"] == n and stats.passed == n
    assert sum(stats.verdicts.values()) == n and stats.dropped == 0
    out = list(PcapReader(tmp_path / "out.pcap"))
    assert len(out) == n and out[17].data == ipv4_udp(18 + 17)


@pytest.fixture(scope="module")
def bench_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench-data")
    subprocess.run([sys.executable, str(BENCH / "gen_packets.py"), str(out)], check=True, capture_output=True)
    return out


def _fill_routes(m: Any, keyval: Path) -> None:
    raw = m.raw()
    for line in keyval.read_text().splitlines():
        words = line.split()
        k, v = words.index("key"), words.index("value")
        raw[bytes(int(x, 16) for x in words[k + 2:v])] = bytes(int(x, 16) for x in words[v + 2:])


@pytest.mark.parametrize("name", ["xdp_pass", "xdp_count", "xdp_flow_parse", "xdp_fnv_hash", "xdp_lpm_route",
                                  "xdp_subprog_calls"])
def test_bench_programs_agree_with_expected_json(load: Callable[..., Any], bench_data: Path, name: str) -> None:
    expected = json.loads((bench_data / "expected.json").read_text())
    coll = load.collection(BENCH / "progs" / f"{name}.c", name)  # type: ignore[attr-defined]
    if name == "xdp_lpm_route":
        _fill_routes(coll.maps["routes"], bench_data / "routes.keyval")
    tx = CollectSink()
    hook = XdpHook(coll.programs[name].kernel_program, devices=LO, tx=tx)
    outs = list(hook.process(frames_from_pcap(bench_data / "packets.pcap")))
    assert [o.retval for o in outs] == [expected[f][name] for f in FRAME_ORDER]
    assert [len(o.data) for o in outs] == [expected[f]["len"] for f in FRAME_ORDER]
    if name == "xdp_lpm_route":
        routes = {}
        for line in (bench_data / "routes.txt").read_text().splitlines():
            prefix, _ifindex, dmac, smac = line.split()
            routes[prefix] = (bytes.fromhex(dmac.replace(":", "")), bytes.fromhex(smac.replace(":", "")))
        want = [routes[expected[f]["xdp_lpm_route_nexthop"]["prefix"]] for f in FRAME_ORDER
                if "xdp_lpm_route_nexthop" in expected[f]]
        assert [(e.data[:6], e.data[6:12]) for e in tx.frames] == want
        assert hook.stats.transmitted == len(want) == 2
    if name in ("xdp_fnv_hash", "xdp_subprog_calls"):  # a hash is not an XDP action
        assert hook.stats.invalid == 3 and len(hook.stats.warnings) == 1
