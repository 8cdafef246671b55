"""Programs on a live interface through AF_PACKET raw sockets: "generic XDP" in userspace.

:func:`attach_xdp` opens a raw packet socket on an interface, and for every frame the interface
receives runs the XDP program (:class:`~pybpf.hooks.xdp.XdpHook`), then acts on the verdict:

* ``XDP_TX`` — the frame, as the program left it, is transmitted back out of the same interface;
* ``XDP_REDIRECT`` — transmitted out of the target interface (a socket per target, opened on first
  use; DEVMAP entries and ``bpf_redirect`` ifindexes are checked against this namespace's devices);
* ``XDP_PASS`` — nothing to do: the kernel has already handed the frame to its stack. The frame
  can be recorded (``pass_out``);
* ``XDP_DROP`` / ``XDP_ABORTED`` — counted, and nothing more.

**What userspace cannot do.** A packet socket is a tap: the kernel delivers each frame to its own
stack *and* to the socket, so the stack sees every frame whatever the verdict — a userspace hook
cannot drop, and a frame it transmits (TX, redirect) is a copy, the original still goes up the
stack. For a real drop, load the program into the kernel. The hook is exact for what it can see:
verdicts, rewritten frames, counters, and what leaves on the wire.

:func:`attach_skb` does the same for tc and socket-filter programs (``TC_ACT_REDIRECT`` to a
device's egress transmits there; ``BPF_F_INGRESS`` redirects can only be counted).

Frames the host itself sends on the interface (``PACKET_OUTGOING``, including our own
transmissions) are not run. A VLAN tag the kernel took out of a frame (reported through
``PACKET_AUXDATA``) is put back first, so XDP sees the frame as it was on the wire. Raw sockets need
``CAP_NET_RAW``; without it :class:`~pybpf.hooks.errors.HookError` says so.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import struct
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pybpf.hooks.devices import NetDevice, system_devices
from pybpf.hooks.errors import HookError
from pybpf.hooks.outputs import FrameSink, PcapSink
from pybpf.hooks.packet import ETH_P_8021Q, Frame, vlan_insert
from pybpf.hooks.tc import SkbHook, SkbStats
from pybpf.hooks.xdp import XdpHook, XdpStats

__all__ = ["LiveResult", "PacketSocket", "SocketSink", "attach_skb", "attach_xdp"]

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_AUXDATA = 8
PACKET_MR_PROMISC = 1
PACKET_OUTGOING = 4
TP_STATUS_VLAN_VALID = 1 << 4
TP_STATUS_VLAN_TPID_VALID = 1 << 6
_AUXDATA = struct.Struct("IIIHHHH")  # struct tpacket_auxdata
_RECV_SIZE = 1 << 18


def _sock_error(e: OSError, what: str, ifname: str) -> HookError:
    if e.errno in (errno.EPERM, errno.EACCES):
        return HookError(f"{what} on {ifname}: raw packet sockets need CAP_NET_RAW (run as root)")
    if e.errno in (errno.ENODEV, errno.ENXIO):
        return HookError(f"{what}: no such device {ifname!r}")
    return HookError(f"{what} on {ifname}: {e.strerror or e}")


class PacketSocket:
    """An AF_PACKET ``SOCK_RAW`` socket bound to one interface, receiving every protocol — or, with
    ``receive=False``, none (a socket that only transmits keeps no receive queue)."""

    def __init__(self, ifname: str, *, promisc: bool = False, receive: bool = True) -> None:
        self.ifname = ifname
        try:
            self.ifindex = socket.if_nametoindex(ifname)
        except OSError:
            raise HookError(f"no such device {ifname!r}") from None
        proto = ETH_P_ALL if receive else 0
        try:
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(proto))
        except OSError as e:
            raise _sock_error(e, "cannot open a packet socket", ifname) from None
        try:
            self.sock.bind((ifname, proto))
            self.sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
            if promisc:
                mreq = struct.pack("iHH8s", self.ifindex, PACKET_MR_PROMISC, 0, b"")
                self.sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
            self.sock.setblocking(False)
        except OSError as e:
            self.sock.close()
            raise _sock_error(e, "cannot bind a packet socket", ifname) from None
        self.received = 0
        self.sent = 0
        self.send_errors = 0

    def fileno(self) -> int:
        """The socket's fd (for select/poll)."""
        return self.sock.fileno()

    def recv_ready(self, limit: int) -> list[Frame]:
        """Every frame waiting (up to ``limit``), without blocking; outgoing frames are skipped."""
        out: list[Frame] = []
        while len(out) < limit:
            try:
                data, ancdata, flags, addr = self.sock.recvmsg(_RECV_SIZE, socket.CMSG_SPACE(_AUXDATA.size))
            except (BlockingIOError, InterruptedError):
                break
            except OSError as e:
                if e.errno == errno.ENETDOWN:
                    break
                raise _sock_error(e, "receive failed", self.ifname) from None
            if addr[2] == PACKET_OUTGOING or addr[0] != self.ifname:
                continue
            wire = 0
            for level, kind, blob in ancdata:
                if level == SOL_PACKET and kind == PACKET_AUXDATA and len(blob) >= _AUXDATA.size:
                    status, tp_len, _snap, _mac, _net, tci, tpid = _AUXDATA.unpack_from(blob)
                    if status & TP_STATUS_VLAN_VALID or tci:
                        proto = tpid if status & TP_STATUS_VLAN_TPID_VALID and tpid else ETH_P_8021Q
                        data = vlan_insert(data, tci, proto)
                    if flags & socket.MSG_TRUNC:
                        wire = tp_len
            self.received += 1
            out.append(Frame(data, time.time_ns(), self.ifindex, 0, wire, self.received))
        return out

    def send(self, data: bytes) -> bool:
        """Transmit a frame out of this interface; False (counted) if the device refused it."""
        try:
            self.sock.send(data)
        except OSError:
            self.send_errors += 1
            return False
        self.sent += 1
        return True

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> PacketSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SocketSink:
    """A :class:`~pybpf.hooks.outputs.FrameSink` that transmits each frame out of its ``ifindex``,
    opening a packet socket per device on first use (``sockets`` may hold ones already open)."""

    def __init__(self, devices: Mapping[int, NetDevice], sockets: dict[int, PacketSocket] | None = None) -> None:
        self.devices = devices
        self.sockets: dict[int, PacketSocket] = sockets if sockets is not None else {}
        self._owned: list[PacketSocket] = []
        self.count = 0
        self.errors = 0

    def _socket(self, ifindex: int) -> PacketSocket | None:
        s = self.sockets.get(ifindex)
        if s is None:
            dev = self.devices.get(ifindex)
            try:
                name = dev.name if dev is not None else socket.if_indextoname(ifindex)
                s = PacketSocket(name, receive=False)
            except (OSError, HookError):
                return None
            self.sockets[ifindex] = s
            self._owned.append(s)
        return s

    def emit(self, data: bytes, *, ts_ns: int, ifindex: int) -> None:
        """Transmit the frame on the socket of interface ``ifindex`` (counted; a send failure is counted, not
        raised)."""
        s = self._socket(ifindex)
        if s is not None and s.send(data):
            self.count += 1
        else:
            self.errors += 1

    def close(self) -> None:
        for s in self._owned:
            s.close()
        self._owned.clear()


@dataclass(slots=True)
class LiveResult:
    """How a live attachment ended: the hook's counters, frames received, frames transmitted (TX and
    redirects) and transmit failures, the wall time, and why it stopped (``"count"``,
    ``"timeout"``, ``"interrupted"``)."""

    stats: XdpStats | SkbStats
    received: int
    transmitted: int
    transmit_errors: int
    seconds: float
    stopped_by: str

    def to_json(self) -> dict[str, Any]:
        return {**self.stats.to_json(), "received": self.received, "transmitted": self.transmitted,
                "transmit_errors": self.transmit_errors, "seconds": round(self.seconds, 3),
                "stopped_by": self.stopped_by}

    def format(self) -> str:
        return (self.stats.format() + f"\nreceived {self.received}, transmitted {self.transmitted} "
                f"({self.transmit_errors} failed) in {self.seconds:.3f}s; stopped by {self.stopped_by}")


def _loop(sock: PacketSocket, run_batch: Callable[[list[Frame]], list[Any]], *, count: int | None,
          timeout: float | None, batch_size: int, on_ready: Callable[[], None] | None) -> tuple[int, str]:
    """Receive and run until ``count`` frames were processed or ``timeout`` seconds passed."""
    if count is not None and count < 0:
        raise HookError(f"invalid count {count}")
    if timeout is not None and timeout < 0:
        raise HookError(f"invalid timeout {timeout}")
    deadline = None if timeout is None else time.monotonic() + timeout
    done = 0
    if on_ready is not None:
        on_ready()
    try:
        while count is None or done < count:
            wait = None if deadline is None else deadline - time.monotonic()
            if wait is not None and wait <= 0:
                return done, "timeout"
            try:
                ready, _, _ = select.select([sock], [], [], wait)
            except InterruptedError:
                continue
            if not ready:
                continue
            limit = batch_size if count is None else min(batch_size, count - done)
            frames = sock.recv_ready(limit)
            if frames:
                run_batch(frames)
                done += len(frames)
    except KeyboardInterrupt:
        return done, "interrupted"
    return done, "count"


def attach_xdp(program: Any, ifname: str, *, engine: str = "interpreter", count: int | None = None,
               timeout: float | None = None, pass_out: str | os.PathLike[str] | FrameSink | None = None,
               devices: Mapping[int, NetDevice] | None = None, promisc: bool = False, batch_size: int = 64,
               on_ready: Callable[[], None] | None = None) -> LiveResult:
    """Run an XDP program on the frames ``ifname`` receives (see the module docstring) until
    ``count`` frames were processed, ``timeout`` seconds passed, or Ctrl-C. ``on_ready`` is called
    once the socket is listening."""
    def make(devs: dict[int, NetDevice], wire: SocketSink, pass_sink: FrameSink | None) -> XdpHook:
        return XdpHook(program, engine=engine, devices=devs, pass_=pass_sink, tx=wire, redirect=wire,
                       batch_size=batch_size)

    return _serve(ifname, make, devices=devices, promisc=promisc, pass_out=pass_out, count=count, timeout=timeout,
                  batch_size=batch_size, on_ready=on_ready)


def attach_skb(program: Any, ifname: str, *, engine: str = "interpreter", count: int | None = None,
               timeout: float | None = None, pass_out: str | os.PathLike[str] | FrameSink | None = None,
               devices: Mapping[int, NetDevice] | None = None, promisc: bool = False, mark: int = 0,
               batch_size: int = 64, on_ready: Callable[[], None] | None = None) -> LiveResult:
    """Run a tc or socket-filter program on the frames ``ifname`` receives: egress redirects are
    transmitted, accepted/passed frames can be recorded (``pass_out``)."""
    def make(devs: dict[int, NetDevice], wire: SocketSink, pass_sink: FrameSink | None) -> SkbHook:
        return SkbHook(program, engine=engine, devices=devs, pass_=pass_sink, redirect=wire, mark=mark,
                       batch_size=batch_size)

    return _serve(ifname, make, devices=devices, promisc=promisc, pass_out=pass_out, count=count, timeout=timeout,
                  batch_size=batch_size, on_ready=on_ready)


def _serve(ifname: str, make_hook: Callable[[dict[int, NetDevice], SocketSink, FrameSink | None], XdpHook | SkbHook],
           *, devices: Mapping[int, NetDevice] | None, promisc: bool,
           pass_out: str | os.PathLike[str] | FrameSink | None, count: int | None, timeout: float | None,
           batch_size: int, on_ready: Callable[[], None] | None) -> LiveResult:
    """What both attach functions do around their hook: open the interface's socket, make the hook
    with the socket as the wire for transmitted frames, feed it until done, close it, count."""
    devs = dict(devices) if devices is not None else system_devices()
    with PacketSocket(ifname, promisc=promisc) as sock:
        wire = SocketSink(devs, {sock.ifindex: sock})
        pass_sink = PcapSink(pass_out) if isinstance(pass_out, str | os.PathLike) else pass_out
        hook = make_hook(devs, wire, pass_sink)
        t0 = time.monotonic()
        try:
            done, why = _loop(sock, hook.run_batch, count=count, timeout=timeout, batch_size=batch_size,
                              on_ready=on_ready)
        finally:
            hook.close()
        return LiveResult(hook.stats, done, wire.count, wire.errors, time.monotonic() - t0, why)
