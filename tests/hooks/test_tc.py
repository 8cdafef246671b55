"""skb-style hooks: tc classifier/action verdicts and socket filters, with a fake runner and with real
programs (tests/hooks/progs/tc_hooks.c)."""

from __future__ import annotations

import errno
import platform
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pybpf.hooks.devices import NetDevice
from pybpf.hooks.errors import HookError
from pybpf.hooks.outputs import CollectSink
from pybpf.hooks.packet import Frame
from pybpf.hooks.pcap import PcapReader, PcapWriter
from pybpf.hooks.runners import RedirectTarget, SkbInput, SkbRun
from pybpf.hooks.tc import SkbHook, TcAction, run_pcap
from pybpf.uapi import ProgType

from .frames import MAC_A, eth, ipv4_udp, vlan_tagged

ENGINES = ["interpreter", "translate"] + (["jit"] if platform.machine() in ("x86_64", "AMD64") else [])

DEVICES = {1: NetDevice(1, "lo", 65536), 2: NetDevice(2, "eth0"), 3: NetDevice(3, "down0", up=False)}


@dataclass
class FakeProgram:
    prog_type: int
    name: str = "fake"
    id: int = 1


class FakeRunner:
    def __init__(self, prog_type: int, decide: Callable[[SkbInput], SkbRun]) -> None:
        self.program = FakeProgram(prog_type)
        self.engine = "fake"
        self.decide = decide
        self.inputs: list[SkbInput] = []

    def run_skb(self, inputs: Sequence[SkbInput]) -> list[SkbRun]:
        self.inputs.extend(inputs)
        return [self.decide(i) for i in inputs]


def _hook(prog_type: int, decide: Callable[[SkbInput], SkbRun], **kw: Any) -> tuple[SkbHook, dict[str, CollectSink]]:
    sinks = {n: CollectSink() for n in ("pass_", "redirect", "redirect_ingress", "drop")}
    runner = FakeRunner(prog_type, decide)
    return SkbHook(runner.program, runner=runner, devices=DEVICES, **sinks, **kw), sinks  # type: ignore[arg-type]


def _frames(*datas: bytes) -> list[Frame]:
    return [Frame(d, ts_ns=10 * i, ifindex=2, number=i + 1) for i, d in enumerate(datas)]


@pytest.mark.parametrize(("retval", "action"), [
    (0, "pass"), (2, "drop"), (4, "stolen"), (8, "stolen"), (0xFFFFFFFF, "pass"), (1, "pass"), (3, "pass"),
    (5, "pass"), (99, "pass"),
])
def test_sched_cls_verdicts(retval: int, action: str) -> None:
    hook, sinks = _hook(ProgType.SCHED_CLS, lambda i: SkbRun(retval, i.data))
    (out,) = hook.process(_frames(ipv4_udp()))
    assert out.action == action
    name = {0xFFFFFFFF: "TC_ACT_UNSPEC", 99: "other"}.get(retval) or TcAction(retval).c_name
    assert hook.stats.verdicts[name] == 1
    assert len(sinks["pass_"]) == (action == "pass")
    assert len(sinks["drop"]) == (action == "drop")


@pytest.mark.parametrize(("retval", "action"), [
    (0, "pass"), (3, "pass"), (1, "pass"), (2, "drop"), (0xFFFFFFFF, "pass"), (4, "pass"), (8, "pass"),
])
def test_sched_act_verdicts(retval: int, action: str) -> None:
    """act_bpf: STOLEN/TRAP are not among its results and become UNSPEC (the frame continues)."""
    hook, _ = _hook(ProgType.SCHED_ACT, lambda i: SkbRun(retval, i.data))
    (out,) = hook.process(_frames(ipv4_udp()))
    assert out.action == action


@pytest.mark.parametrize(("tgt", "flags", "action", "error"), [
    (1, 0, "redirect", 0), (1, 1, "redirect_ingress", 0), (9, 0, "redirect_err", -errno.EINVAL),
    (3, 0, "redirect_err", -errno.ENETDOWN),
])
def test_tc_redirect(tgt: int, flags: int, action: str, error: int) -> None:
    hook, sinks = _hook(ProgType.SCHED_CLS, lambda i: SkbRun(7, i.data, {}, RedirectTarget(tgt, 0, 0, flags)))
    (out,) = hook.process(_frames(ipv4_udp()))
    assert (out.action, out.error) == (action, error)
    if action == "redirect":
        assert [e.ifindex for e in sinks["redirect"].frames] == [1] and hook.stats.redirected == {1: 1}
    elif action == "redirect_ingress":
        assert [e.ifindex for e in sinks["redirect_ingress"].frames] == [1]
        assert hook.stats.redirected_ingress == {1: 1}
    else:
        assert hook.stats.redirect_err == 1 and len(sinks["drop"]) == 1


@pytest.mark.parametrize(("retval", "action", "kept"), [
    (0, "drop", 0), (20, "truncate", 20), (0xFFFFFFFF, "accept", None), (60, "accept", None),
])
def test_socket_filter_keeps_bytes(retval: int, action: str, kept: int | None) -> None:
    f = ipv4_udp(18)  # 60 bytes
    hook, sinks = _hook(ProgType.SOCKET_FILTER, lambda i: SkbRun(retval, i.data))
    (out,) = hook.process(_frames(f))
    assert out.action == action
    assert hook.stats.verdicts[action] == 1
    if kept == 0:
        assert not sinks["pass_"].frames and hook.stats.dropped == 1
    else:
        assert sinks["pass_"].data == [f[:kept] if kept else f]


def test_socket_filter_on_the_network_header_keeps_the_mac_header() -> None:
    f = ipv4_udp(18)
    hook, sinks = _hook(ProgType.SOCKET_FILTER, lambda i: SkbRun(20, i.data), l2=False)
    (out,) = hook.process(_frames(f))
    assert out.action == "truncate" and sinks["pass_"].data == [f[:14 + 20]]
    assert hook.runner.inputs[0].l2 is False  # type: ignore[attr-defined]


def test_skb_context_from_the_frame() -> None:
    hook, _ = _hook(ProgType.SCHED_CLS, lambda i: SkbRun(0, i.data), mark=0x1234, dev_addr=MAC_A)
    inner = ipv4_udp(30)
    list(hook.process([Frame(vlan_tagged(inner, 0x3005), ts_ns=77, ifindex=6, number=1)]))
    (inp,) = hook.runner.inputs  # type: ignore[attr-defined]
    assert inp.data == inner and inp.l2
    f = inp.fields
    assert f["protocol"] == 0x0008  # htons(ETH_P_IP) as the u32 field reads on little-endian
    assert (f["vlan_present"], f["vlan_tci"], f["vlan_proto"]) == (1, 0x3005, 0x0081)
    assert (f["ifindex"], f["ingress_ifindex"], f["mark"], f["tstamp"]) == (6, 6, 0x1234, 77)
    assert f["pkt_type"] == 3  # addressed to MAC_B, the device is MAC_A: PACKET_OTHERHOST


def test_vlan_tag_goes_back_into_output_frames() -> None:
    tagged = vlan_tagged(ipv4_udp(), 42)
    hook, sinks = _hook(ProgType.SCHED_CLS,
                        lambda i: SkbRun(0, i.data, {"vlan_present": 1, "vlan_tci": 42, "vlan_proto": 0x0081}))
    list(hook.process(_frames(tagged)))
    assert sinks["pass_"].data == [tagged]
    hook, sinks = _hook(ProgType.SCHED_CLS, lambda i: SkbRun(0, i.data), vlan_offload=False)
    list(hook.process(_frames(tagged)))
    assert hook.runner.inputs[0].data == tagged  # type: ignore[attr-defined]


def test_runt_frames_and_wrong_program_types() -> None:
    hook, _ = _hook(ProgType.SCHED_CLS, lambda i: SkbRun(0, i.data))
    with pytest.raises(HookError, match="13-byte frame is shorter than an Ethernet header") as ei:
        list(hook.process([Frame(bytes(13), number=4)]))
    assert ei.value.packet == 4
    with pytest.raises(HookError, match="not a tc or socket filter program"):
        SkbHook(FakeProgram(ProgType.XDP), runner=FakeRunner(ProgType.XDP, lambda i: SkbRun(0, i.data)))


# -- real programs ------------------------------------------------------------------------------------

@pytest.mark.toolchain
@pytest.mark.parametrize("engine", ENGINES)
def test_mark_and_shot(load: Callable[..., Any], engine: str) -> None:
    prog = load("tc_hooks", "mark_ipv4").kernel_program
    arp = eth(b"\xff" * 6, MAC_A, 0x0806, bytes(28))
    sinks = {"pass_": CollectSink(), "drop": CollectSink()}
    hook = SkbHook(prog, engine=engine, devices=DEVICES, **sinks)  # type: ignore[arg-type]
    outs = list(hook.process(_frames(ipv4_udp(), arp)))
    assert [(o.retval, o.action) for o in outs] == [(0, "pass"), (2, "drop")]
    assert outs[0].fields["mark"] == 0x42 and outs[1].fields["mark"] == 0
    assert hook.stats.verdicts["TC_ACT_OK"] == 1 and hook.stats.verdicts["TC_ACT_SHOT"] == 1
    assert sinks["pass_"].data == [ipv4_udp()] and sinks["drop"].data == [arp]


@pytest.mark.toolchain
def test_program_sees_the_skb_fields(load: Callable[..., Any]) -> None:
    coll = load.collection("tc_hooks", "skb_info")  # type: ignore[attr-defined]
    prog, seen = coll.programs["skb_info"].kernel_program, coll.maps["seen"].raw()
    inner = ipv4_udp(30)
    hook = SkbHook(prog, devices=DEVICES, mark=7)
    list(hook.process([Frame(vlan_tagged(inner, 0x0123), ifindex=4, number=1)]))
    got = [struct.unpack("<I", seen[struct.pack("<I", k)])[0] for k in range(8)]
    assert got == [len(inner), 0x0008, 1, 0x0123, 4, 0, 7, 4]


@pytest.mark.toolchain
def test_redirect_from_a_real_program(load: Callable[..., Any]) -> None:
    prog = load("tc_hooks", "redirect_byte").kernel_program
    egress, ingress, nowhere = (ipv4_udp(20)[:-2] + bytes([a, b]) for a, b in ((0, 1), (1, 1), (0, 200)))
    sinks = {"redirect": CollectSink(), "redirect_ingress": CollectSink()}
    hook = SkbHook(prog, devices=DEVICES, **sinks)  # type: ignore[arg-type]
    outs = list(hook.process(_frames(egress, ingress, nowhere)))
    assert [o.action for o in outs] == ["redirect", "redirect_ingress", "redirect_err"]
    assert sinks["redirect"].data == [egress] and sinks["redirect_ingress"].data == [ingress]


@pytest.mark.toolchain
def test_store_bytes_changes_the_output_frame(load: Callable[..., Any]) -> None:
    prog = load("tc_hooks", "store_mac").kernel_program
    sink = CollectSink()
    hook = SkbHook(prog, devices=DEVICES, pass_=sink)
    f = ipv4_udp()
    list(hook.process(_frames(f)))
    assert sink.data == [b"\xee" + f[1:]]


@pytest.mark.toolchain
def test_socket_filter_over_a_capture(load: Callable[..., Any], tmp_path: Path) -> None:
    prog = load("tc_hooks", "sock_ipv4_head").kernel_program
    arp = eth(b"\xff" * 6, MAC_A, 0x0806, bytes(28))
    src = tmp_path / "in.pcap"
    with PcapWriter(src) as w:
        for f in (ipv4_udp(), arp, ipv4_udp(100)):
            w.write(f, ts_ns=5)
    stats = run_pcap(prog, src, pass_out=tmp_path / "out.pcap", devices=DEVICES)
    assert stats.verdicts == {"accept": 0, "truncate": 2, "drop": 1}
    out = list(PcapReader(tmp_path / "out.pcap"))
    assert [r.data for r in out] == [ipv4_udp()[:20], ipv4_udp(100)[:20]]
    everything = load("tc_hooks", "sock_all").kernel_program
    stats = run_pcap(everything, src, devices=DEVICES)
    assert stats.verdicts["accept"] == 3
