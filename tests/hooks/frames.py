"""Frame builders for the hooks' tests."""

from __future__ import annotations

import struct

MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")


def eth(dst: bytes, src: bytes, ethertype: int, payload: bytes = b"") -> bytes:
    return dst + src + struct.pack("!H", ethertype) + payload


def ipv4_udp(payload_len: int = 18, *, dst: bytes = MAC_B, src: bytes = MAC_A, ttl: int = 64) -> bytes:
    """An Ethernet/IPv4/UDP frame (checksums not filled in: no program here checks them)."""
    udp = struct.pack("!HHHH", 1234, 5678, 8 + payload_len, 0) + bytes(i & 0xFF for i in range(payload_len))
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, ttl, 17, 0, bytes([10, 0, 0, 1]),
                     bytes([10, 0, 0, 2]))
    return eth(dst, src, 0x0800, ip + udp)


def vlan_tagged(frame: bytes, vid: int, proto: int = 0x8100) -> bytes:
    return frame[:12] + struct.pack("!HH", proto, vid) + frame[12:]
