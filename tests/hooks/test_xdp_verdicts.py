"""The XDP hook's verdict logic, driven by a fake runner: what generic XDP does with each verdict."""

from __future__ import annotations

import errno
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from pybpf.errors import BpfError
from pybpf.hooks.devices import NetDevice
from pybpf.hooks.errors import HookError
from pybpf.hooks.outputs import CollectSink
from pybpf.hooks.packet import Frame
from pybpf.hooks.runners import INT_MAX, RedirectTarget, XdpRun
from pybpf.hooks.xdp import XdpHook, warn_invalid_xdp_action
from pybpf.uapi import MapType, ProgType

from .frames import ipv4_udp

DEVICES = {
    1: NetDevice(1, "lo", 65536),
    2: NetDevice(2, "eth0", 1500),
    3: NetDevice(3, "down0", 1500, up=False),
    4: NetDevice(4, "small0", 100),
}


@dataclass
class FakeProgram:
    prog_type: int = ProgType.XDP
    name: str = "fake"
    id: int = 42
    used_maps: dict[int, Any] = field(default_factory=dict)


class FakeRunner:
    """Answers each frame with ``decide(frame)``; records the batch sizes it was given."""

    def __init__(self, decide: Callable[[Frame], XdpRun]) -> None:
        self.program = FakeProgram()
        self.engine = "fake"
        self.decide = decide
        self.batches: list[int] = []

    def run_xdp(self, frames: Sequence[Frame], *, egress_ifindex: int = 0) -> list[XdpRun]:
        self.batches.append(len(frames))
        return [self.decide(f) for f in frames]


class FakeDevmap:
    """Just enough of a DEVMAP for the hook: (ifindex, prog id) by key, keys in order."""

    map_type = MapType.DEVMAP

    def __init__(self, entries: dict[int, tuple[int, int]]) -> None:
        self.entries = entries

    def lookup_elem_sys(self, key: bytes) -> bytes:
        k = int.from_bytes(key, "little")
        if k not in self.entries:
            raise BpfError(errno.ENOENT)
        ifindex, prog = self.entries[k]
        return ifindex.to_bytes(4, "little") + prog.to_bytes(4, "little")

    def get_next_key(self, key: bytes | None) -> bytes:
        keys = sorted(self.entries)
        after = -1 if key is None else int.from_bytes(key, "little")
        for k in keys:
            if k > after:
                return k.to_bytes(4, "little")
        raise BpfError(errno.ENOENT)


def _hook(decide: Callable[[Frame], XdpRun], **kw: Any) -> tuple[XdpHook, dict[str, CollectSink]]:
    sinks = {name: CollectSink() for name in ("pass_", "tx", "redirect", "drop")}
    runner = FakeRunner(decide)
    hook = XdpHook(runner.program, runner=runner, devices=DEVICES, **sinks, **kw)  # type: ignore[arg-type]
    return hook, sinks


def _frames(n: int, ifindex: int = 2) -> list[Frame]:
    return [Frame(ipv4_udp(10 + i), ts_ns=100 + i, ifindex=ifindex, number=i + 1) for i in range(n)]


def test_pass_tx_drop_aborted_route_frames() -> None:
    verdicts = {1: 2, 2: 3, 3: 1, 4: 0, 5: 2}

    def decide(f: Frame) -> XdpRun:
        return XdpRun(verdicts[f.number], f.data[::-1] if f.number == 2 else f.data)

    hook, sinks = _hook(decide)
    frames = _frames(5)
    outcomes = list(hook.process(frames))
    assert [o.action for o in outcomes] == ["pass", "tx", "drop", "aborted", "pass"]
    st = hook.stats
    assert st.verdicts == {"XDP_ABORTED": 1, "XDP_DROP": 1, "XDP_PASS": 2, "XDP_TX": 1, "XDP_REDIRECT": 0}
    assert (st.packets, st.passed, st.transmitted, st.dropped, st.exceptions) == (5, 2, 1, 2, 1)
    assert st.bytes == sum(len(f.data) for f in frames)
    assert sinks["pass_"].data == [frames[0].data, frames[4].data]
    assert sinks["tx"].data == [frames[1].data[::-1]]  # the frame as the program left it
    assert [e.ifindex for e in sinks["tx"].frames] == [2]
    assert sinks["tx"].frames[0].ts_ns == 101
    assert len(sinks["drop"]) == 2 and len(sinks["redirect"]) == 0


def test_invalid_action_warns_once_and_counts_as_exception() -> None:
    hook, sinks = _hook(lambda f: XdpRun(7 if f.number < 3 else 0xDEADBEEF, f.data))
    outcomes = list(hook.process(_frames(4)))
    assert [o.action for o in outcomes] == ["invalid"] * 4
    st = hook.stats
    assert st.invalid == 4 and st.exceptions == 4 and st.dropped == 4
    assert sum(st.verdicts.values()) == 0
    assert st.warnings == ["Illegal XDP return value 7 on prog fake (id 42) dev eth0, expect packet loss!"]
    assert len(sinks["drop"]) == 4


def test_warning_text_matches_the_kernel() -> None:
    assert warn_invalid_xdp_action(4, "p", 3, None) == \
        "Driver unsupported XDP return value 4 on prog p (id 3) dev N/A, expect packet loss!"
    assert warn_invalid_xdp_action(5, "p", 3, "eth0").startswith("Illegal XDP return value 5")


def _redir(target: RedirectTarget, data: bytes | None = None) -> Callable[[Frame], XdpRun]:
    return lambda f: XdpRun(4, data if data is not None else f.data, b"", target)


@pytest.mark.parametrize(("tgt", "action", "error"), [
    (1, "redirect", 0),
    (99, "redirect_err", -errno.EINVAL),     # no such device
    (3, "redirect_err", -errno.ENETDOWN),    # device down
    (4, "redirect_err", -errno.EMSGSIZE),    # frame above mtu + 14 + 4
])
def test_redirect_to_ifindex(tgt: int, action: str, error: int) -> None:
    hook, sinks = _hook(_redir(RedirectTarget(tgt, INT_MAX, 0)))
    frame = Frame(ipv4_udp(200), ifindex=2, number=1)
    (out,) = hook.process([frame])
    assert (out.action, out.error) == (action, error)
    st = hook.stats
    assert st.verdicts["XDP_REDIRECT"] == 1
    if error:
        assert st.redirect_err == 1 and st.dropped == 1 and not sinks["redirect"].frames
    else:
        assert out.egress == (tgt,) and st.redirected == {tgt: 1}
        assert [(e.ifindex, e.data) for e in sinks["redirect"].frames] == [(tgt, frame.data)]


def test_redirect_without_helper_is_ebadrqc() -> None:
    hook, _ = _hook(_redir(RedirectTarget(0, 0, 0)))
    (out,) = hook.process(_frames(1))
    assert (out.action, out.error) == ("redirect_err", -56)


def test_redirect_to_cpumap_is_not_supported() -> None:
    hook, _ = _hook(_redir(RedirectTarget(0, 5, MapType.CPUMAP)))
    (out,) = hook.process(_frames(1))
    assert out.error == -errno.EOPNOTSUPP and hook.stats.redirect_err == 1


def test_redirect_through_devmap() -> None:
    m = FakeDevmap({0: (1, 0), 1: (4, 0)})
    hook, sinks = _hook(lambda f: XdpRun(4, f.data, b"", RedirectTarget(f.number - 1, 9, MapType.DEVMAP, 0, m)))
    big = Frame(ipv4_udp(200), ifindex=2, number=2)
    outs = list(hook.process([Frame(ipv4_udp(), ifindex=2, number=1), big, Frame(ipv4_udp(), ifindex=2, number=3)]))
    assert [o.action for o in outs] == ["redirect", "redirect_err", "redirect_err"]
    assert outs[1].error == -errno.EMSGSIZE  # entry 1 is the 100-byte-MTU device
    assert outs[2].error == -errno.EINVAL  # no entry 2
    assert [e.ifindex for e in sinks["redirect"].frames] == [1]


def test_devmap_found_by_id_through_used_maps() -> None:
    m = FakeDevmap({0: (1, 0)})
    hook, _sinks = _hook(_redir(RedirectTarget(0, 9, MapType.DEVMAP_HASH)))
    hook.program.used_maps[9] = m
    (out,) = hook.process(_frames(1))
    assert out.action == "redirect" and out.egress == (1,)


def test_broadcast_excludes_ingress_and_keeps_map_order() -> None:
    m = FakeDevmap({0: (2, 0), 1: (1, 0), 3: (2, 0), 5: (1, 0)})
    flags = (1 << 3) | (1 << 4)  # BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS
    hook, _sinks = _hook(_redir(RedirectTarget(0, 9, MapType.DEVMAP, flags, m)))
    (out,) = hook.process(_frames(1, ifindex=2))
    assert out.action == "redirect" and out.egress == (1, 1)
    assert hook.stats.redirected == {1: 2}
    hook2, _sinks2 = _hook(_redir(RedirectTarget(0, 9, MapType.DEVMAP, 1 << 3, m)))
    (out2,) = hook2.process(_frames(1, ifindex=2))
    assert out2.egress == (2, 1, 2, 1)


def test_broadcast_stops_at_first_failure() -> None:
    m = FakeDevmap({0: (1, 0), 1: (3, 0), 2: (2, 0)})
    hook, sinks = _hook(_redir(RedirectTarget(0, 9, MapType.DEVMAP, 1 << 3, m)))
    (out,) = hook.process(_frames(1, ifindex=7))
    assert out.action == "redirect_err" and out.error == -errno.ENETDOWN
    assert [e.ifindex for e in sinks["redirect"].frames] == [1]  # the copy before the failure left


def test_frames_reach_the_runner_in_batches() -> None:
    hook, _ = _hook(lambda f: XdpRun(2, f.data), batch_size=4)
    list(hook.process(_frames(10)))
    assert hook.runner.batches == [4, 4, 2]  # type: ignore[attr-defined]


def test_runt_frames_are_an_error() -> None:
    hook, _ = _hook(lambda f: XdpRun(2, f.data))
    with pytest.raises(HookError, match="0-byte frame is shorter than an Ethernet header") as ei:
        list(hook.process([Frame(b"", number=3)]))
    assert ei.value.packet == 3


def test_runner_returning_wrong_count_is_an_error() -> None:
    hook, _ = _hook(lambda f: XdpRun(2, f.data))
    hook.runner = type("R", (), {"run_xdp": lambda self, frames, egress_ifindex=0: []})()  # type: ignore[assignment]
    with pytest.raises(HookError, match="returned 0 results for 1 frames"):
        list(hook.process(_frames(1)))


def test_not_an_xdp_program() -> None:
    with pytest.raises(HookError, match="is not an XDP program"):
        XdpHook(FakeProgram(prog_type=ProgType.SCHED_CLS), runner=FakeRunner(lambda f: XdpRun(2, f.data)))


def test_stats_json_and_text() -> None:
    hook, _ = _hook(_redir(RedirectTarget(1, INT_MAX, 0)))
    hook.run(_frames(2))
    j = hook.stats.to_json()
    assert j["verdicts"]["XDP_REDIRECT"] == 2
    assert j["outputs"] == {"pass": 0, "tx": 0, "redirect": {"1": 2}}
    text = hook.stats.format()
    assert "XDP_REDIRECT  2" in text and "redirect {1: 2}" in text
