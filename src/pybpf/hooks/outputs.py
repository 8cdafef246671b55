"""Where frames go after a verdict: capture files, in-memory lists, one file per egress device.

A hook has one output per destination the kernel would deliver to — the stack (XDP_PASS, tc OK),
the wire of the ingress device (XDP_TX), the wire of another device (redirects) — and each is a
:class:`FrameSink`. The live hook adds sinks that transmit on AF_PACKET sockets
(:mod:`pybpf.hooks.live`); everything else is here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

from pybpf.hooks.devices import NetDevice, device_name
from pybpf.hooks.errors import HookError
from pybpf.hooks.pcap import PcapFormat, PcapWriter

__all__ = ["CollectSink", "Emitted", "FrameSink", "PcapSink", "PerDeviceSink", "as_sink", "redirect_dir_sink"]


class FrameSink(Protocol):
    """Receives the frames of one output. ``ifindex`` is the device the frame leaves on (the
    ingress device for XDP_PASS/XDP_TX, the target for redirects)."""

    def emit(self, data: bytes, *, ts_ns: int, ifindex: int) -> None:
        """Deliver one frame (with its timestamp and the interface it leaves or arrived on)."""

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Emitted:
    """A frame an output received."""

    data: bytes
    ts_ns: int
    ifindex: int


@dataclass(slots=True)
class CollectSink:
    """Keeps every frame in a list (for the Python API and tests)."""

    frames: list[Emitted] = field(default_factory=list)

    def emit(self, data: bytes, *, ts_ns: int, ifindex: int) -> None:
        """Keep the frame in memory."""
        self.frames.append(Emitted(bytes(data), ts_ns, ifindex))

    def close(self) -> None:
        pass

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def data(self) -> list[bytes]:
        """The collected frames' bytes, in order."""
        return [f.data for f in self.frames]


class PcapSink:
    """Writes the frames of one output to a capture file (streamed, flushed on close)."""

    def __init__(self, dest: str | os.PathLike[str] | IO[bytes] | PcapWriter, *, format: PcapFormat = "pcap",
                 nanosecond: bool = True) -> None:
        self.writer = dest if isinstance(dest, PcapWriter) else PcapWriter(dest, format=format, nanosecond=nanosecond)
        self.count = 0

    @property
    def path(self) -> str:
        """The capture file written."""
        return self.writer.path

    def emit(self, data: bytes, *, ts_ns: int, ifindex: int) -> None:
        """Append the frame to the capture file."""
        self.writer.write(data, ts_ns=ts_ns)
        self.count += 1

    def close(self) -> None:
        self.writer.close()


class PerDeviceSink:
    """Routes each frame to a sink of its egress device, made on first use by ``factory(ifindex)``."""

    def __init__(self, factory: Callable[[int], FrameSink]) -> None:
        self.factory = factory
        self.sinks: dict[int, FrameSink] = {}

    def emit(self, data: bytes, *, ts_ns: int, ifindex: int) -> None:
        """Append the frame to the capture file of interface ``ifindex``."""
        sink = self.sinks.get(ifindex)
        if sink is None:
            sink = self.sinks[ifindex] = self.factory(ifindex)
        sink.emit(data, ts_ns=ts_ns, ifindex=ifindex)

    def close(self) -> None:
        for sink in self.sinks.values():
            sink.close()


_UNSAFE = re.compile(r"[^A-Za-z0-9_.@-]")


def redirect_dir_sink(directory: str | os.PathLike[str], devices: Mapping[int, NetDevice], *, suffix: str = "",
                      format: PcapFormat = "pcap", nanosecond: bool = True) -> PerDeviceSink:
    """One capture per egress device in ``directory``: ``<device name><suffix>.pcap`` (``if<N>``
    for a device the table does not name)."""
    d = Path(directory)
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise HookError(f"cannot create redirect directory {d}: {e.strerror or e}") from None
    ext = "pcapng" if format == "pcapng" else "pcap"

    def factory(ifindex: int) -> FrameSink:
        name = _UNSAFE.sub("_", device_name(devices, ifindex))
        return PcapSink(d / f"{name}{suffix}.{ext}", format=format, nanosecond=nanosecond)

    return PerDeviceSink(factory)


def as_sink(dest: str | os.PathLike[str] | FrameSink | None, format: PcapFormat = "pcap") -> FrameSink | None:
    """An output given as a path becomes a capture file; a sink (or ``None``: discard) stays as it is."""
    if isinstance(dest, str | os.PathLike):
        return PcapSink(dest, format=format)
    return dest
