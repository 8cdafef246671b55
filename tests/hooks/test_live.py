"""The live hook for real: veth pairs in a network namespace made (and removed) by the test.

Layout, all inside one fresh namespace (IPv6 off, no addresses: nothing but our frames moves)::

    live_peer.py ── vb ═══ va ── pybpf net attach xdp ... dev va
                                    │ XDP_REDIRECT to vc
    live_peer.py ── vd ═══ vc ◄─────┘

The hook runs as ``pybpf net attach`` in a subprocess inside the namespace, on a program pinned in
this test's bpffs root; ``live_peer.py`` sends frames from the far end and reports what came back.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pybpf.hooks.errors import HookError
from pybpf.hooks.live import PacketSocket

from .frames import eth

pytestmark = [pytest.mark.live, pytest.mark.toolchain]

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


@pytest.fixture
def netns() -> Iterator[dict[str, Any]]:
    """A namespace with two veth pairs (va/vb, vc/vd), up, IPv6 disabled; removed afterwards."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2")
    name = f"pybpf-hooks-{os.getpid()}"
    if _ip("netns", "add", name, check=False).returncode:
        pytest.skip("cannot create network namespaces here")
    try:
        for key in ("all", "default"):
            subprocess.run(["ip", "netns", "exec", name, "sysctl", "-qw", f"net.ipv6.conf.{key}.disable_ipv6=1"],
                           check=False, capture_output=True, timeout=30)
        _ip("-n", name, "link", "add", "va", "type", "veth", "peer", "name", "vb")
        _ip("-n", name, "link", "add", "vc", "type", "veth", "peer", "name", "vd")
        for dev in ("lo", "va", "vb", "vc", "vd"):
            _ip("-n", name, "link", "set", dev, "up")
        links = json.loads(_ip("-n", name, "-j", "link", "show").stdout)
        info = {"name": name, "ifindex": {ln["ifname"]: ln["ifindex"] for ln in links},
                "mac": {ln["ifname"]: bytes.fromhex(ln.get("address", "0" * 12).replace(":", "")) for ln in links}}
        yield info
    finally:
        _ip("netns", "del", name, check=False)


def _env(kernel: Any) -> dict[str, str]:
    env = dict(os.environ)
    env["PYBPF_BPFFS"] = str(kernel.root)
    env["PYTHONPATH"] = str(SRC) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _attach(ns: str, kernel: Any, argv: list[str], kind: str = "xdp") -> subprocess.Popen[str]:
    """Start ``pybpf -j net attach KIND ...`` in the namespace; returns once it is listening."""
    p = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-m", "pybpf.cli.app", "-j", "net", "attach",
                          kind, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(kernel))
    assert p.stderr is not None
    line = p.stderr.readline()
    if "listening on" not in line:
        out, err = p.communicate(timeout=30)
        pytest.fail(f"the hook did not start: {line}{err}{out}")
    return p


def _peer(ns: str, send: str, listen: str, count: int, frames: list[bytes], timeout: float = 15) -> list[bytes]:
    """Send ``frames`` out of ``send``; what ``listen`` receives (up to ``count`` frames)."""
    r = subprocess.run(["ip", "netns", "exec", ns, sys.executable, str(HERE / "live_peer.py"), send, listen,
                        str(count), str(timeout), *(f.hex() for f in frames)], capture_output=True, text=True,
                       check=True, timeout=timeout + 30)
    return [bytes.fromhex(h) for h in json.loads(r.stdout)]


def _finish(p: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    return json.loads(out)  # type: ignore[no-any-return]


def _frames(dst: bytes, n: int, tail: bytes = b"") -> list[bytes]:
    src = bytes.fromhex("02aa00000001")
    return [eth(dst, src, 0x88B5, bytes([i]) * 40 + tail) for i in range(n)]


def test_xdp_tx_goes_back_out_of_the_interface(netns: dict[str, Any], kernel: Any, load: Callable[..., Any],
                                               tmp_path: Path) -> None:
    prog = load("xdp_hooks", "swap_tx")
    prog.pin(str(kernel.root / "swap_tx"))
    ns, n = netns["name"], 5
    hook = _attach(ns, kernel, ["pinned", str(kernel.root / "swap_tx"), "dev", "va", "count", str(n),
                                "timeout", "30"])
    frames = _frames(netns["mac"]["va"], n)
    got = _peer(ns, "vb", "vb", n, frames)
    res = _finish(hook)
    assert got == [f[6:12] + f[:6] + f[12:] for f in frames]
    assert res["received"] == n and res["stopped_by"] == "count"
    assert res["verdicts"]["XDP_TX"] == n and res["transmitted"] == n and res["transmit_errors"] == 0


def test_xdp_redirect_leaves_through_the_target(netns: dict[str, Any], kernel: Any, load: Callable[..., Any],
                                                tmp_path: Path) -> None:
    prog = load("xdp_hooks", "redirect_byte")
    prog.pin(str(kernel.root / "redirect_byte"))
    ns, n = netns["name"], 3
    vc = netns["ifindex"]["vc"]
    hook = _attach(ns, kernel, ["pinned", str(kernel.root / "redirect_byte"), "dev", "va", "count", str(n),
                                "timeout", "30", "out", str(tmp_path / "pass.pcap")])
    frames = _frames(netns["mac"]["va"], n, bytes([vc]))
    got = _peer(ns, "vb", "vd", n, frames)  # in at va, out of vc, so seen on vd
    res = _finish(hook)
    assert got == frames
    assert res["verdicts"]["XDP_REDIRECT"] == n and res["outputs"]["redirect"] == {str(vc): n}
    assert res["transmitted"] == n


def test_tc_redirect_to_egress_is_transmitted(netns: dict[str, Any], kernel: Any, load: Callable[..., Any],
                                              tmp_path: Path) -> None:
    prog = load("tc_hooks", "redirect_byte")
    prog.pin(str(kernel.root / "tc_redirect"))
    ns, n = netns["name"], 3
    vc = netns["ifindex"]["vc"]
    hook = _attach(ns, kernel, ["pinned", str(kernel.root / "tc_redirect"), "dev", "va", "count", str(n),
                                "timeout", "30"], kind="tc")
    frames = _frames(netns["mac"]["va"], n, bytes([0, vc]))
    got = _peer(ns, "vb", "vd", n, frames)
    res = _finish(hook)
    assert got == frames
    assert res["verdicts"]["TC_ACT_REDIRECT"] == n and res["outputs"]["redirect"] == {str(vc): n}


def test_timeout_stops_an_idle_hook(netns: dict[str, Any], kernel: Any, load: Callable[..., Any]) -> None:
    prog = load("xdp_hooks", "ipv4_only")
    prog.pin(str(kernel.root / "ipv4_only"))
    hook = _attach(netns["name"], kernel, ["pinned", str(kernel.root / "ipv4_only"), "dev", "va", "timeout", "0.5"])
    res = _finish(hook)
    assert res["stopped_by"] == "timeout" and res["packets"] == 0


def test_packet_socket_errors() -> None:
    with pytest.raises(HookError, match="no such device"):
        PacketSocket("pybpf-nodev0")
