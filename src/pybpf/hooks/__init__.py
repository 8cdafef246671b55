"""Packet hooks: loaded XDP, tc and socket-filter programs run on frames from capture files and
live interfaces, with the kernel's verdict semantics.

* :mod:`pybpf.hooks.pcap` — streaming pcap / pcapng reader and writer;
* :mod:`pybpf.hooks.packet` — :class:`Frame` (one received frame) and the receive path's Ethernet
  decoding (``eth_type_trans``, VLAN untagging);
* :mod:`pybpf.hooks.xdp` — :class:`XdpHook`: XDP_PASS / DROP / TX / REDIRECT / ABORTED as generic
  XDP honours them, per-verdict counters, per-output streams;
* :mod:`pybpf.hooks.tc` — :class:`SkbHook`: SCHED_CLS / SCHED_ACT verdicts and socket filters;
* :mod:`pybpf.hooks.live` — AF_PACKET sockets: programs on a live interface ("generic XDP" in
  userspace);
* :mod:`pybpf.hooks.runners` — how frames are executed (kernel layer + interpreter, or the JIT's
  batch runner); :mod:`pybpf.hooks.outputs` and :mod:`pybpf.hooks.devices` — outputs and the
  device table redirects are checked against.

    from pybpf.hooks import xdp
    stats = xdp.run_pcap(prog, "in.pcap", pass_out="out.pcap", tx_out="tx.pcap")
"""

from __future__ import annotations

from pybpf.hooks.devices import NetDevice, system_devices
from pybpf.hooks.errors import HookError, PcapError
from pybpf.hooks.outputs import CollectSink, FrameSink, PcapSink
from pybpf.hooks.packet import Frame, frames_from_pcap
from pybpf.hooks.pcap import PcapReader, PcapRecord, PcapWriter, read_pcap
from pybpf.hooks.tc import SkbHook, SkbOutcome, SkbStats, TcAction
from pybpf.hooks.xdp import XdpAction, XdpHook, XdpOutcome, XdpStats

__all__ = [
    "CollectSink",
    "Frame",
    "FrameSink",
    "HookError",
    "NetDevice",
    "PcapError",
    "PcapReader",
    "PcapRecord",
    "PcapSink",
    "PcapWriter",
    "SkbHook",
    "SkbOutcome",
    "SkbStats",
    "TcAction",
    "XdpAction",
    "XdpHook",
    "XdpOutcome",
    "XdpStats",
    "frames_from_pcap",
    "read_pcap",
    "system_devices",
]
