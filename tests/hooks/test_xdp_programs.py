"""Real XDP programs (tests/hooks/progs/xdp_hooks.c, loaded through pybpf.loader) on frames: what
each verdict and each packet-modifying helper leaves in the hook's outputs."""

from __future__ import annotations

import platform
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pybpf.errors import ExecutionError
from pybpf.hooks.devices import NetDevice
from pybpf.hooks.outputs import CollectSink
from pybpf.hooks.packet import Frame
from pybpf.hooks.pcap import PcapReader, PcapWriter
from pybpf.hooks.xdp import EBADRQC, XdpHook, run_pcap
from pybpf.isa.asm import assemble
from pybpf.kernel.program import ProgramImage
from pybpf.uapi import ProgType

from .frames import MAC_A, MAC_B, eth, ipv4_udp, vlan_tagged

pytestmark = pytest.mark.toolchain

LO = {1: NetDevice(1, "lo", 65536)}
ENGINES = ["interpreter", "translate"] + (["jit"] if platform.machine() in ("x86_64", "AMD64") else [])


def _run(prog: Any, frames: list[bytes], *, engine: str = "interpreter", ifindex: int = 2,
         devices: dict[int, NetDevice] | None = None,
         **frame_kw: Any) -> tuple[XdpHook, list[Any], dict[str, CollectSink]]:
    sinks = {"pass_": CollectSink(), "tx": CollectSink(), "redirect": CollectSink(), "drop": CollectSink()}
    hook = XdpHook(prog.kernel_program, engine=engine, devices=devices if devices is not None else LO,
                   **sinks)  # type: ignore[arg-type]
    outs = list(hook.process(Frame(f, ts_ns=i, ifindex=ifindex, number=i + 1, **frame_kw)
                             for i, f in enumerate(frames)))
    return hook, outs, sinks


@pytest.mark.parametrize("engine", ENGINES)
def test_mac_swap_tx_writes_the_tx_pcap(load: Callable[..., Any], tmp_path: Path, engine: str) -> None:
    prog = load("xdp_hooks", "swap_tx")
    frames = [ipv4_udp(20), ipv4_udp(300), eth(MAC_B, MAC_A, 0x0806, bytes(28))]
    src = tmp_path / "in.pcap"
    with PcapWriter(src, nanosecond=True) as w:
        for i, f in enumerate(frames):
            w.write(f, ts_ns=1_000 + i)
    stats = run_pcap(prog.kernel_program, src, pass_out=tmp_path / "pass.pcap", tx_out=tmp_path / "tx.pcap",
                     engine=engine, devices=LO)
    assert stats.verdicts["XDP_TX"] == 3 and stats.transmitted == 3 and stats.packets == 3
    tx = list(PcapReader(tmp_path / "tx.pcap"))
    assert [r.data for r in tx] == [f[6:12] + f[0:6] + f[12:] for f in frames]
    assert [r.ts_ns for r in tx] == [1000, 1001, 1002]
    assert list(PcapReader(tmp_path / "pass.pcap")) == []


@pytest.mark.parametrize("engine", ENGINES)
def test_pass_and_drop(load: Callable[..., Any], engine: str) -> None:
    prog = load("xdp_hooks", "ipv4_only")
    arp = eth(b"\xff" * 6, MAC_A, 0x0806, bytes(28))
    hook, outs, sinks = _run(prog, [ipv4_udp(), arp, ipv4_udp(64)], engine=engine)
    assert [o.retval for o in outs] == [2, 1, 2]
    assert sinks["pass_"].data == [ipv4_udp(), ipv4_udp(64)]
    assert sinks["drop"].data == [arp]
    assert hook.stats.verdicts["XDP_DROP"] == 1 and hook.stats.dropped == 1


def test_adjust_head_pops_a_vlan_tag(load: Callable[..., Any]) -> None:
    prog = load("xdp_hooks", "pop_vlan")
    inner = ipv4_udp(40)
    _hook, outs, sinks = _run(prog, [vlan_tagged(inner, 100), inner])
    assert [o.action for o in outs] == ["pass", "pass"]
    assert sinks["pass_"].data == [inner, inner]


def test_adjust_head_pushes_an_outer_header(load: Callable[..., Any]) -> None:
    prog = load("xdp_hooks", "push_head")
    f = ipv4_udp(30)
    _hook, _outs, sinks = _run(prog, [f])
    (out,) = sinks["tx"].data
    assert len(out) == len(f) + 8
    assert out[:12] == f[:12] and out[12:16] == bytes.fromhex("88b5beef")
    assert out[22:] == f[14:]


@pytest.mark.parametrize("engine", ENGINES)
def test_adjust_tail_shrinks(load: Callable[..., Any], engine: str) -> None:
    prog = load("xdp_hooks", "trim_tail")
    long, short = ipv4_udp(200), ipv4_udp(10)
    _hook, _outs, sinks = _run(prog, [long, short], engine=engine)
    assert sinks["pass_"].data == [long[:60], short]


def test_adjust_tail_grows(load: Callable[..., Any]) -> None:
    prog = load("xdp_hooks", "grow_tail")
    f = ipv4_udp(50)
    _hook, outs, sinks = _run(prog, [f])
    assert outs[0].action == "pass"
    assert sinks["pass_"].data == [f + b"\xab" * 16]


@pytest.mark.parametrize("engine", ENGINES)
def test_adjust_meta_is_reported_but_not_part_of_the_frame(load: Callable[..., Any], engine: str) -> None:
    prog = load("xdp_hooks", "meta_len")
    f = ipv4_udp(33)
    _hook, outs, sinks = _run(prog, [f], engine=engine)
    assert outs[0].meta == struct.pack("<I", len(f))
    assert sinks["pass_"].data == [f]


def test_bpf_redirect_to_a_device(load: Callable[..., Any]) -> None:
    prog = load("xdp_hooks", "redirect_byte")
    to_lo, to_nowhere = ipv4_udp(20)[:-1] + b"\x01", ipv4_udp(20)[:-1] + b"\xfe"
    hook, outs, sinks = _run(prog, [to_lo, to_nowhere])
    assert [o.action for o in outs] == ["redirect", "redirect_err"]
    assert [(e.ifindex, e.data) for e in sinks["redirect"].frames] == [(1, to_lo)]
    assert hook.stats.redirected == {1: 1} and hook.stats.redirect_err == 1
    assert hook.stats.verdicts["XDP_REDIRECT"] == 2


def test_redirect_map_devmap(load: Callable[..., Any]) -> None:
    coll = load.collection("xdp_hooks", "redirect_devmap")  # type: ignore[attr-defined]
    prog, ports = coll.programs["redirect_devmap"], coll.maps["tx_ports"].raw()
    _, outs, _ = _run(prog, [ipv4_udp()])
    assert outs[0].retval == 1 and outs[0].action == "drop"  # empty entry: the flags' action
    ports[struct.pack("<I", 0)] = struct.pack("<I", 1)
    _hook, outs, sinks = _run(prog, [ipv4_udp(), ipv4_udp(9)])
    assert [o.action for o in outs] == ["redirect", "redirect"]
    assert [e.ifindex for e in sinks["redirect"].frames] == [1, 1]


def test_redirect_map_broadcast(load: Callable[..., Any]) -> None:
    coll = load.collection("xdp_hooks", "broadcast")  # type: ignore[attr-defined]
    prog, ports = coll.programs["broadcast"], coll.maps["tx_ports"].raw()
    for k in (0, 2):
        ports[struct.pack("<I", k)] = struct.pack("<I", 1)
    hook, outs, sinks = _run(prog, [ipv4_udp()], ifindex=2)
    assert outs[0].egress == (1, 1) and hook.stats.redirected == {1: 2}
    hook, outs, sinks = _run(prog, [ipv4_udp()], ifindex=1)  # the ingress device is excluded
    assert outs[0].action == "redirect" and outs[0].egress == () and not sinks["redirect"].frames


def test_redirect_map_devmap_hash(kernel: Any, compiled: Callable[..., Path]) -> None:
    from pybpf import loader

    coll = loader.load(compiled("xdp_hooks"), programs=["redirect_hash", "broadcast_hash"], kernel=kernel)
    try:
        ports = coll.maps["hash_ports"].raw()
        one, every = coll.programs["redirect_hash"], coll.programs["broadcast_hash"]
        _, outs, _ = _run(one, [ipv4_udp()])
        assert (outs[0].retval, outs[0].action) == (2, "pass")  # no entry 7: the flags' action
        for key in (7, 3, 11):
            ports[struct.pack("<I", key)] = struct.pack("<I", 1)
        hook, outs, sinks = _run(one, [ipv4_udp()])
        assert outs[0].action == "redirect" and [e.ifindex for e in sinks["redirect"].frames] == [1]
        hook, outs, sinks = _run(every, [ipv4_udp()])
        assert outs[0].egress == (1, 1, 1) and hook.stats.redirected == {1: 3}
    finally:
        coll.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_devmap_entry_program_runs_on_the_frame(kernel: Any, compiled: Callable[..., Path], engine: str) -> None:
    from pybpf import loader

    coll = loader.load(compiled("xdp_hooks"), programs=["redirect_prog_ports", "devmap_mark"], kernel=kernel)
    try:
        ports = coll.maps["prog_ports"].raw()
        mark = coll.programs["devmap_mark"]
        ports[struct.pack("<I", 0)] = struct.pack("<Ii", 1, mark.fd)  # loopback, with devmap_mark
        ports[struct.pack("<I", 1)] = struct.pack("<Ii", 1, 0)        # loopback, no program
        prog = coll.programs["redirect_prog_ports"]
        arp = eth(b"\xff" * 6, MAC_A, 0x0806, bytes(28))
        hook, outs, sinks = _run(prog, [ipv4_udp(), arp], rx_queue=0, engine=engine)
        assert [o.action for o in outs] == ["redirect", "redirect"]
        assert outs[1].egress == ()  # dropped by the entry's program: the redirect itself succeeded
        assert sinks["redirect"].data == [b"\x01" + ipv4_udp()[1:]]
        assert hook.stats.redirected == {1: 1} and hook.stats.dropped == 1 and hook.stats.exceptions == 0
        hook, outs, sinks = _run(prog, [ipv4_udp()], rx_queue=1, engine=engine)
        assert sinks["redirect"].data == [ipv4_udp()]
        hook, outs, sinks = _run(prog, [ipv4_udp()], rx_queue=2, engine=engine)
        assert outs[0].retval == 0 and outs[0].action == "aborted"  # no entry: the flags' action
    finally:
        coll.close()


def test_context_carries_the_frame_source(load: Callable[..., Any]) -> None:
    coll = load.collection("xdp_hooks", "source_info")  # type: ignore[attr-defined]
    prog, seen = coll.programs["source_info"], coll.maps["seen"].raw()
    f = ipv4_udp(77)
    _run(prog, [f], ifindex=5, rx_queue=3)
    got = [struct.unpack("<I", seen[struct.pack("<I", k)])[0] for k in range(3)]
    assert got == [5, 3, len(f)]


def test_redirect_without_a_helper_fails(load: Callable[..., Any]) -> None:
    """The redirect info starts zeroed (map_id 0, not bpf_redirect's INT_MAX): xdp_do_generic_redirect
    then finds no map type and fails with -EBADRQC, as Linux."""
    prog = load("xdp_hooks", "bare_redirect")
    hook, outs, _sinks = _run(prog, [ipv4_udp()])
    assert outs[0].action == "redirect_err" and outs[0].error == -EBADRQC
    assert hook.stats.dropped == 1


def test_invalid_verdict_warning_names_the_program(load: Callable[..., Any]) -> None:
    prog = load("xdp_hooks", "verdict_byte")
    f = b"\x07" + ipv4_udp()[1:]
    hook, outs, _sinks = _run(prog, [f, f], devices={2: NetDevice(2, "veth9")})
    kp = prog.kernel_program
    assert [o.action for o in outs] == ["invalid", "invalid"]
    assert hook.stats.warnings == [f"Illegal XDP return value 7 on prog verdict_byte (id {kp.id}) dev veth9, "
                                   "expect packet loss!"]


@pytest.mark.parametrize("engine", ENGINES)
def test_frames_larger_than_a_page(load: Callable[..., Any], engine: str) -> None:
    big = ipv4_udp(9000 - 42)
    sinks = _run(load("xdp_hooks", "ipv4_only"), [big], engine=engine)[2]
    assert sinks["pass_"].data == [big]
    sinks = _run(load("xdp_hooks", "trim_tail"), [big], engine=engine)[2]
    assert sinks["pass_"].data == [big[:60]]
    sinks = _run(load("xdp_hooks", "grow_tail"), [big], engine=engine)[2]
    assert sinks["pass_"].data == [big + b"\xab" * 16]


def test_counters_persist_in_maps_across_frames(load: Callable[..., Any], compiled: Callable[..., Path]) -> None:
    """A map the program updates is shared across the frames of a run (and with userspace)."""
    coll = load.collection(Path(__file__).resolve().parents[2] / "examples/seed-demo/demo.c",  # type: ignore[attr-defined]
                           "xdp_program")
    _hook, _outs, _sinks = _run(coll.programs["xdp_program"], [ipv4_udp()] * 7)
    assert struct.unpack("<I", coll.maps["pkt_counter"].raw()[struct.pack("<I", 0)])[0] == 7


def test_execution_faults_name_the_packet(kernel: Any) -> None:
    """An unverified program that faults: a structured ExecutionError noting the packet, not a crash."""
    bad = assemble("r2 = *(u64 *)(r1 +0)\nr0 = *(u8 *)(r2 +100)\nr0 = 2\nexit")
    prog = kernel.create_program(ProgramImage(prog_type=ProgType.XDP, insns=bad, name="oob"), {})
    hook = XdpHook(prog, devices=LO)
    with pytest.raises(ExecutionError) as ei:
        list(hook.process([Frame(ipv4_udp(200), number=1), Frame(ipv4_udp(10), number=2)]))
    assert any("while running oob on packet 2" in n for n in ei.value.__notes__)
    assert hook.stats.packets == 0  # the batch died before any verdict
