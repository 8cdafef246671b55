"""The skb flow hash (net/core/flow_dissector.c): ``bpf_get_hash_recalc``, ``bpf_set_hash_invalid``.

``skb_get_hash`` computes a hash once per skb (kept in ``skb->hash``, what ``__sk_buff.hash``
reads) from the flow keys the flow dissector extracts: the network protocol, the transport
protocol, the addresses and, for port-carrying transports of unfragmented packets, the ports.
Linux makes the keys direction-independent first (``__flow_hash_consistentify``: the lower
address, with its port, goes first) and hashes them with siphash under ``hashrnd``, a key drawn at
random once per boot; a zero result becomes 1.

pybpf does the same with its own random key, drawn once per process (keyed BLAKE2b instead of
siphash): the value cannot equal the kernel's — no one outside the kernel knows ``hashrnd`` —
but it has the properties programs rely on: stable for a flow within the process, equal for both
directions of a connection, different across flows, never 0. The dissector here reads Ethernet
(one 802.1Q/802.1AD tag), IPv4 (with fragments) and IPv6 (fixed header) as the kernel's
does for these; other protocols hash on the network protocol alone.
"""

from __future__ import annotations

import hashlib
import os
import struct
from typing import Any

from pybpf.progtypes import SKB_RUNTIME
from pybpf.uapi import HelperId, ProgType

__all__ = ["HELPERS", "FlowKeys", "flow_hash", "flow_keys"]

ETH_P_IP, ETH_P_IPV6, ETH_P_8021Q, ETH_P_8021AD = 0x0800, 0x86DD, 0x8100, 0x88A8
_PORT_PROTOS = frozenset({6, 17, 33, 132, 136})  # TCP, UDP, DCCP, SCTP, UDP-Lite
_HASHRND = os.urandom(16)

FlowKeys = tuple[int, int, bytes, bytes, int, int]
"""(n_proto, ip_proto, src addr, dst addr, sport, dport) — ports and addresses as on the wire."""


def flow_keys(frame: bytes, *, l2: bool, protocol: int) -> FlowKeys:
    """The flow keys of a packet. ``frame`` starts at the MAC header when ``l2``, else at the
    network header, whose protocol is then ``protocol`` (``skb->protocol``, host order)."""
    off = 0
    proto = protocol
    if l2:
        if len(frame) < 14:
            return (proto, 0, b"", b"", 0, 0)
        proto = int.from_bytes(frame[12:14], "big")
        off = 14
        if proto in (ETH_P_8021Q, ETH_P_8021AD) and len(frame) >= 18:
            proto = int.from_bytes(frame[16:18], "big")
            off = 18
    net = frame[off:]
    if proto == ETH_P_IP and len(net) >= 20 and net[0] >> 4 == 4 and (net[0] & 0xF) >= 5:
        ihl = (net[0] & 0xF) * 4
        ip_proto = net[9]
        frag = int.from_bytes(net[6:8], "big")
        ports = b""
        if not frag & 0x1FFF and not frag & 0x2000 and ip_proto in _PORT_PROTOS:  # not a fragment
            ports = net[ihl:ihl + 4]
        sport, dport = struct.unpack(">HH", ports) if len(ports) == 4 else (0, 0)
        return (proto, ip_proto, net[12:16], net[16:20], sport, dport)
    if proto == ETH_P_IPV6 and len(net) >= 40 and net[0] >> 4 == 6:
        ip_proto = net[6]
        ports = net[40:44] if ip_proto in _PORT_PROTOS else b""
        sport, dport = struct.unpack(">HH", ports) if len(ports) == 4 else (0, 0)
        return (proto, ip_proto, net[8:24], net[24:40], sport, dport)
    return (proto, 0, b"", b"", 0, 0)


def flow_hash(keys: FlowKeys) -> int:
    """``__flow_hash_from_keys`` with pybpf's key: direction-independent, never 0."""
    n_proto, ip_proto, src, dst, sport, dport = keys
    if (dst, dport) < (src, sport):  # __flow_hash_consistentify
        src, dst, sport, dport = dst, src, dport, sport
    data = struct.pack(">HB", n_proto, ip_proto) + src + dst + struct.pack(">HH", sport, dport)
    h = int.from_bytes(hashlib.blake2b(data, digest_size=4, key=_HASHRND).digest(), "little")
    return h or 1


def _skb_frame(ctx: Any) -> tuple[bytes, bool]:
    skb = ctx.env.skb
    if skb is None:
        return b"", False
    ptype = int(getattr(ctx.env, "prog_type", 0))
    return bytes(skb.packet()), ptype in (ProgType.SCHED_CLS, ProgType.SCHED_ACT)


def get_hash_recalc(ctx: Any, r1: int, *_: int) -> int:
    """``bpf_get_hash_recalc(skb)``: ``skb->hash``, computed (and stored) when no valid hash is set."""
    f = SKB_RUNTIME["hash"]
    env = ctx.env
    if getattr(env, "skb_hash_valid", False):
        return int(ctx.load(r1 + f.offset, 4))
    frame, l2 = _skb_frame(ctx)
    pf = SKB_RUNTIME["protocol"]
    raw = int(ctx.load(r1 + pf.offset, 4)) & 0xFFFF  # a big-endian u16 as it sits in memory
    protocol = int.from_bytes(raw.to_bytes(2, "little"), "big")
    h = flow_hash(flow_keys(frame, l2=l2, protocol=protocol))
    ctx.store(r1 + f.offset, 4, h)
    env.skb_hash_valid = True
    return h


def set_hash_invalid(ctx: Any, r1: int, *_: int) -> int:
    """``bpf_set_hash_invalid(skb)``: ``skb_clear_hash``: the next ``bpf_get_hash_recalc`` recomputes."""
    f = SKB_RUNTIME["hash"]
    ctx.store(r1 + f.offset, 4, 0)
    ctx.env.skb_hash_valid = False
    return 0


HELPERS: dict[int, Any] = {
    HelperId.get_hash_recalc: get_hash_recalc,
    HelperId.set_hash_invalid: set_hash_invalid,
}
