"""Every program of tests/hooks/progs through the hooks on the JIT (``engine="jit"``: the JIT engine's
batch runner, one native call per batch) and on the interpreter: the same outcomes frame for frame —
verdicts, frames and metadata after the program, redirect targets, skb fields — the same outputs
and counters, the same map contents. The frames mix sizes (runts of the headroom's worth, a page's
worth, beyond a page: linearised or fragments), devices and rx queues."""

from __future__ import annotations

import platform
import re
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pybpf import loader
from pybpf.hooks.devices import NetDevice
from pybpf.hooks.outputs import CollectSink
from pybpf.hooks.packet import Frame
from pybpf.hooks.runners import JitSkbRunner, JitXdpRunner
from pybpf.hooks.tc import SkbHook
from pybpf.hooks.xdp import XdpHook
from pybpf.kernel import Kernel

from .frames import MAC_A, eth, ipv4_udp, vlan_tagged

pytestmark = [pytest.mark.toolchain,
              pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="the JIT emits x86-64")]

DEVICES = {1: NetDevice(1, "lo", 65536), 2: NetDevice(2, "veth9"), 3: NetDevice(3, "veth10")}
XDP_PROGS = ["ipv4_only", "pop_vlan", "push_head", "trim_tail", "grow_tail", "meta_len", "redirect_byte",
             "redirect_devmap", "redirect_hash", "broadcast_hash", "broadcast", "source_info", "bare_redirect",
             "verdict_byte", "redirect_lo", "ctx_verdict", "redirect_prog_ports", "swap_tx"]
SKB_PROGS = ["mark_ipv4", "skb_info", "redirect_byte", "store_mac", "sock_ipv4_head", "sock_all"]


def _frames() -> list[Frame]:
    arp = eth(b"\xff" * 6, MAC_A, 0x0806, bytes(28))
    datas = [ipv4_udp(), arp, vlan_tagged(ipv4_udp(40), 7), ipv4_udp(1400)[:-1] + b"\x02",
             ipv4_udp(3520 - 42), ipv4_udp(3521 - 42)[:-1] + b"\x01", ipv4_udp(9000 - 42), b"\x03" + ipv4_udp(60)[1:],
             ipv4_udp(100)[:-2] + b"\x01\x03"]
    return [Frame(d, ts_ns=i, ifindex=1 + i % 3, rx_queue=i % 2, number=i + 1) for i, d in enumerate(datas)]


def _fill_maps(coll: Any) -> None:
    tx, hashed, progs = coll.maps["tx_ports"].raw(), coll.maps["hash_ports"].raw(), coll.maps["prog_ports"].raw()
    for key, ifindex in ((0, 1), (1, 2), (2, 3)):
        tx[struct.pack("<I", key)] = struct.pack("<I", ifindex)
    for key in (7, 3):
        hashed[struct.pack("<I", key)] = struct.pack("<I", 2)
    progs[struct.pack("<I", 0)] = struct.pack("<Ii", 2, 0)


def _xdp_outcomes(kernel: Kernel, obj: Path, name: str, engine: str, **hook_kw: Any) -> Any:
    with loader.load(obj, kernel=kernel) as coll:
        _fill_maps(coll)
        sinks = {k: CollectSink() for k in ("pass_", "tx", "redirect", "drop")}
        hook = XdpHook(coll.programs[name], engine=engine, devices=DEVICES, batch_size=4, **hook_kw, **sinks)
        if engine == "jit":
            assert isinstance(hook.runner, JitXdpRunner)
        outs = [(o.number, o.retval, o.action, o.data, o.meta, o.egress, o.error) for o in hook.process(_frames())]
        stats = {k: v for k, v in hook.stats.to_json().items() if k != "run_ns"}
        stats["warnings"] = [re.sub(r"\(id \d+\)", "(id N)", w) for w in stats["warnings"]]  # two loads, two ids
        seen = dict(coll.maps["seen"].raw())
        return outs, {k: [(f.ifindex, f.data) for f in s.frames] for k, s in sinks.items()}, stats, seen


@pytest.mark.parametrize("name", XDP_PROGS)
def test_xdp_programs_agree(kernel: Kernel, compiled: Callable[..., Path], name: str) -> None:
    obj = compiled("xdp_hooks")
    assert _xdp_outcomes(kernel, obj, name, "jit") == _xdp_outcomes(kernel, obj, name, "interpreter")


def test_fragments_of_a_frags_program_agree(kernel: Kernel, compiled: Callable[..., Path], tmp_path: Path) -> None:
    """A ``BPF_F_XDP_HAS_FRAGS`` program sees a 9000-byte frame as a page plus fragments on both."""
    src = tmp_path / "frags.c"
    src.write_text('#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\n'
                   'SEC("xdp.frags") int frags_len(struct xdp_md *ctx)\n'
                   '{ return (ctx->data_end - ctx->data) << 16 | bpf_xdp_get_buff_len(ctx) ; }\n'
                   'char LICENSE[] SEC("license") = "GPL";\n')
    obj = compiled(src)
    got = []
    for engine in ("interpreter", "jit"):
        with loader.load(obj, kernel=kernel) as coll:
            hook = XdpHook(coll.programs["frags_len"], engine=engine, devices=DEVICES)
            got.append([(o.retval, o.data) for o in hook.process(_frames())])
    assert got[0] == got[1]
    assert got[1][6][0] == (3520 << 16 | 9000) & 0xFFFF_FFFF  # one page in the linear part, the rest in fragments


def _skb_outcomes(kernel: Kernel, obj: Path, name: str, engine: str) -> Any:
    with loader.load(obj, kernel=kernel) as coll:
        sinks = {k: CollectSink() for k in ("pass_", "redirect", "redirect_ingress", "drop")}
        hook = SkbHook(coll.programs[name], engine=engine, devices=DEVICES, batch_size=4, mark=5, **sinks)
        if engine == "jit":
            assert isinstance(hook.runner, JitSkbRunner)
        outs = [(o.number, o.retval, o.action, o.data, dict(o.fields), o.egress, o.error)
                for o in hook.process(_frames())]
        stats = {k: v for k, v in hook.stats.to_json().items() if k != "run_ns"}
        return outs, {k: [(f.ifindex, f.data) for f in s.frames] for k, s in sinks.items()}, stats, \
            dict(coll.maps["seen"].raw())


@pytest.mark.parametrize("name", SKB_PROGS)
def test_skb_programs_agree(kernel: Kernel, compiled: Callable[..., Path], name: str) -> None:
    obj = compiled("tc_hooks")
    assert _skb_outcomes(kernel, obj, name, "jit") == _skb_outcomes(kernel, obj, name, "interpreter")
