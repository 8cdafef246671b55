"""The unit of traffic a hook processes, where it comes from, and the bits of Ethernet the receive
path decodes before a program runs.

A :class:`Frame` is one received Ethernet frame plus what the receiving device knows about it: the
ingress ifindex and rx queue (they become ``xdp_md.ingress_ifindex`` / ``rx_queue_index`` and
``__sk_buff.ifindex``), the arrival time, the length on the wire. Captures become frames through
:func:`frames_from_pcap`; live sockets make them in :mod:`pybpf.hooks.live`.

The Ethernet helpers mirror what Linux does to an skb before tc or a packet socket sees it:
``eth_type_trans`` (``skb->protocol`` and ``skb->pkt_type``) and ``skb_vlan_untag`` (the outer VLAN
tag moves from the frame into ``vlan_tci``/``vlan_proto``). XDP runs before both and sees the frame
exactly as received.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO

from pybpf.hooks.errors import HookError
from pybpf.hooks.pcap import LINKTYPE_ETHERNET, PcapReader

__all__ = [
    "batched",
    "ETH_HLEN",
    "PACKET_BROADCAST",
    "PACKET_HOST",
    "PACKET_MULTICAST",
    "PACKET_OTHERHOST",
    "VLAN_HLEN",
    "EthInfo",
    "Frame",
    "eth_type_trans",
    "frames_from_pcap",
    "vlan_insert",
    "vlan_untag",
]

ETH_HLEN = 14
VLAN_HLEN = 4
ETH_P_8021Q = 0x8100
ETH_P_8021AD = 0x88A8
ETH_P_802_3 = 0x0001
ETH_P_802_2 = 0x0004
ETH_P_802_3_MIN = 0x0600
PACKET_HOST, PACKET_BROADCAST, PACKET_MULTICAST, PACKET_OTHERHOST = 0, 1, 2, 3


@dataclass(slots=True)
class Frame:
    """One received frame (see the module docstring).

    ``number`` is its 1-based position in its source (the pcap record number), ``wire_len`` the
    length on the wire when the capture cut it short (0: same as ``len(data)``).
    """

    data: bytes
    ts_ns: int = 0
    ifindex: int = 1
    rx_queue: int = 0
    wire_len: int = 0
    number: int = 0

    @property
    def length(self) -> int:
        """The frame's length on the wire (``wire_len`` when the capture truncated it)."""
        return self.wire_len or len(self.data)


def frames_from_pcap(source: str | os.PathLike[str] | IO[bytes] | PcapReader, *, ifindex: int = 1,
                     ifindexes: Mapping[int, int] | None = None, rx_queue: int = 0) -> Iterator[Frame]:
    """Stream the frames of an Ethernet capture.

    Every frame arrives on ``ifindex`` (default 1, the loopback device, as ``BPF_PROG_TEST_RUN``
    uses when no context is given) unless ``ifindexes`` maps its pcapng interface id to another.
    A trailing FCS the capture declares is removed (drivers strip it before XDP sees a frame).
    Captures of other link types raise :class:`~pybpf.hooks.errors.HookError`.
    """
    reader = source if isinstance(source, PcapReader) else PcapReader(source)
    try:
        for rec in reader:
            if rec.linktype != LINKTYPE_ETHERNET:
                raise HookError(f"link type {rec.linktype} is not Ethernet (DLT_EN10MB = 1); XDP and tc "
                                "programs need Ethernet frames", packet=rec.number)
            dev = ifindexes.get(rec.interface, ifindex) if ifindexes else ifindex
            data = rec.frame
            yield Frame(data, rec.ts_ns, dev, rx_queue, rec.orig_len if rec.truncated else 0, rec.number)
    finally:
        if reader is not source:
            reader.close()


@dataclass(frozen=True, slots=True)
class EthInfo:
    """What ``eth_type_trans`` and ``skb_vlan_untag`` leave in the skb."""

    protocol: int  # network byte order value as a host integer, e.g. 0x0800 for IPv4
    pkt_type: int
    vlan_present: bool = False
    vlan_tci: int = 0
    vlan_proto: int = 0


def eth_type_trans(frame: bytes, dev_addr: bytes | None = None) -> EthInfo:
    """``skb->protocol`` and ``skb->pkt_type`` for a frame received on a device with ``dev_addr``.

    ``dev_addr=None`` takes every unicast frame as addressed to this host (``PACKET_HOST``), as a
    capture taken on the receiving machine would be; give the device's MAC to get
    ``PACKET_OTHERHOST`` for frames to someone else, as Linux does.
    """
    if len(frame) < ETH_HLEN:
        return EthInfo(0, PACKET_HOST)
    dst = frame[:6]
    if dst[0] & 1:
        pkt_type = PACKET_BROADCAST if dst == b"\xff" * 6 else PACKET_MULTICAST
    elif dev_addr is not None and dst != dev_addr:
        pkt_type = PACKET_OTHERHOST
    else:
        pkt_type = PACKET_HOST
    proto = int.from_bytes(frame[12:14], "big")
    if proto >= ETH_P_802_3_MIN:
        return EthInfo(proto, pkt_type)
    # 802.3 length field: raw IPX ("Novell") frames start 0xFFFF, the rest are 802.2 LLC
    if frame[14:16] == b"\xff\xff":
        return EthInfo(ETH_P_802_3, pkt_type)
    return EthInfo(ETH_P_802_2, pkt_type)


def vlan_untag(frame: bytes, dev_addr: bytes | None = None) -> tuple[bytes, EthInfo]:
    """``eth_type_trans`` then ``skb_vlan_untag``: an outer 802.1Q/802.1ad tag is taken out of the
    frame into ``vlan_tci``/``vlan_proto`` and ``protocol`` becomes the encapsulated type."""
    info = eth_type_trans(frame, dev_addr)
    if info.protocol not in (ETH_P_8021Q, ETH_P_8021AD) or len(frame) < ETH_HLEN + VLAN_HLEN:
        return frame, info
    tci = int.from_bytes(frame[14:16], "big")
    inner = frame[:12] + frame[16:]
    proto = int.from_bytes(inner[12:14], "big")
    if proto < ETH_P_802_3_MIN:
        proto = ETH_P_802_3 if inner[14:16] == b"\xff\xff" else ETH_P_802_2
    return inner, EthInfo(proto, info.pkt_type, True, tci, info.protocol)


def vlan_insert(frame: bytes, tci: int, proto: int = ETH_P_8021Q) -> bytes:
    """Put a VLAN tag back into a frame (what a capture of an accelerated-tag skb shows)."""
    if len(frame) < 12:
        return frame
    return frame[:12] + proto.to_bytes(2, "big") + (tci & 0xFFFF).to_bytes(2, "big") + frame[12:]


def batched(frames: Iterable[Frame], size: int) -> Iterator[list[Frame]]:
    """``frames`` in lists of ``size`` (the last one shorter), lazily: what a hook hands its runner
    at a time."""
    batch: list[Frame] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
