"""Frames from captures, and the receive path's Ethernet decoding."""

from __future__ import annotations

import io

import pytest

from pybpf.hooks.errors import HookError
from pybpf.hooks.packet import (
    PACKET_BROADCAST,
    PACKET_HOST,
    PACKET_MULTICAST,
    PACKET_OTHERHOST,
    Frame,
    eth_type_trans,
    frames_from_pcap,
    vlan_insert,
    vlan_untag,
)
from pybpf.hooks.pcap import PcapWriter

from .frames import MAC_A, MAC_B, eth, ipv4_udp, vlan_tagged


def test_eth_type_trans_pkt_type_and_protocol() -> None:
    f = ipv4_udp()
    assert eth_type_trans(f) == eth_type_trans(f, MAC_B)
    info = eth_type_trans(f)
    assert (info.protocol, info.pkt_type) == (0x0800, PACKET_HOST)
    assert eth_type_trans(f, MAC_A).pkt_type == PACKET_OTHERHOST
    assert eth_type_trans(eth(b"\xff" * 6, MAC_A, 0x0806)).pkt_type == PACKET_BROADCAST
    assert eth_type_trans(eth(bytes.fromhex("01005e000001"), MAC_A, 0x0800)).pkt_type == PACKET_MULTICAST
    # 802.3 length field: LLC, or raw IPX
    assert eth_type_trans(eth(MAC_B, MAC_A, 46, b"\xaa\xaa\x03" + bytes(43))).protocol == 0x0004
    assert eth_type_trans(eth(MAC_B, MAC_A, 46, b"\xff\xff" + bytes(44))).protocol == 0x0001


def test_vlan_untag_and_insert_round_trip() -> None:
    inner = ipv4_udp()
    tagged = vlan_tagged(inner, 0x2064)
    data, info = vlan_untag(tagged)
    assert data == inner
    assert (info.protocol, info.vlan_present, info.vlan_tci, info.vlan_proto) == (0x0800, True, 0x2064, 0x8100)
    assert vlan_insert(data, info.vlan_tci, info.vlan_proto) == tagged
    qinq = vlan_tagged(vlan_tagged(inner, 5), 7, 0x88A8)
    data, info = vlan_untag(qinq)  # only the outer tag leaves the frame
    assert info.vlan_proto == 0x88A8 and info.vlan_tci == 7 and info.protocol == 0x8100
    assert data == vlan_tagged(inner, 5)
    untagged, info = vlan_untag(inner)
    assert untagged == inner and not info.vlan_present


def _capture(frames: list[bytes], linktype: int = 1) -> io.BytesIO:
    buf = io.BytesIO()
    w = PcapWriter(buf, linktype=linktype, nanosecond=True)
    for i, f in enumerate(frames):
        w.write(f, ts_ns=1000 + i)
    w.flush()
    buf.seek(0)
    return buf


def test_frames_from_pcap() -> None:
    frames = list(frames_from_pcap(_capture([ipv4_udp(), ipv4_udp(40)]), ifindex=5, rx_queue=2))
    assert [f.number for f in frames] == [1, 2]
    assert all(f.ifindex == 5 and f.rx_queue == 2 for f in frames)
    assert frames[1].ts_ns == 1001 and frames[1].data == ipv4_udp(40)
    assert frames[0].length == len(ipv4_udp())


def test_frames_from_pcapng_map_interfaces() -> None:
    buf = io.BytesIO()
    w = PcapWriter(buf, format="pcapng")
    w.add_interface("second")
    w.write(ipv4_udp(), ts_ns=1, interface=0)
    w.write(ipv4_udp(), ts_ns=2, interface=1)
    w.flush()
    buf.seek(0)
    frames = list(frames_from_pcap(buf, ifindex=3, ifindexes={1: 9}))
    assert [f.ifindex for f in frames] == [3, 9]


def test_non_ethernet_capture_is_refused() -> None:
    with pytest.raises(HookError, match="link type 101 is not Ethernet") as ei:
        list(frames_from_pcap(_capture([bytes(40)], linktype=101)))
    assert ei.value.packet == 1


def test_frame_length_uses_wire_length() -> None:
    assert Frame(b"x" * 20, wire_len=1500).length == 1500
    assert Frame(b"x" * 20).length == 20
