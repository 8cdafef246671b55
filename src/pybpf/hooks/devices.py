"""Network devices as the hooks see them: redirect targets, MTUs, link state.

A redirect names a device by ifindex (``bpf_redirect(ifindex, 0)``, a DEVMAP entry); the kernel
checks that the device exists and is up and that the frame fits its MTU (``xdp_ok_fwd_dev``). The
hooks do the same against a device table: by default this machine's interfaces (``/sys/class/net``,
which is also what DEVMAP updates are checked against), or any table the caller builds — e.g. to
replay a capture taken elsewhere with made-up devices.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["IFF_UP", "NetDevice", "device_name", "system_devices", "xdp_ok_fwd_dev"]

IFF_UP = 0x1
VLAN_HLEN = 4
_SYS_NET = Path("/sys/class/net")


@dataclass(frozen=True, slots=True)
class NetDevice:
    """One device: ``ifindex``, ``name``, ``mtu``, whether it is up, its MAC address."""

    ifindex: int
    name: str
    mtu: int = 1500
    up: bool = True
    mac: bytes = b"\0" * 6
    hard_header_len: int = 14

    def to_json(self) -> dict[str, object]:
        return {"ifindex": self.ifindex, "name": self.name, "mtu": self.mtu, "up": self.up,
                "mac": ":".join(f"{b:02x}" for b in self.mac)}


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def system_devices(root: str | os.PathLike[str] = _SYS_NET) -> dict[int, NetDevice]:
    """The devices of this network namespace, by ifindex (empty where ``/sys`` is unavailable)."""
    out: dict[int, NetDevice] = {}
    base = Path(root)
    try:
        names = sorted(p.name for p in base.iterdir())
    except OSError:
        return out
    for name in names:
        d = base / name
        try:
            ifindex = int(_read(d / "ifindex"))
        except ValueError:
            continue
        try:
            mtu = int(_read(d / "mtu") or 1500)
            flags = int(_read(d / "flags") or "0", 0)
        except ValueError:
            mtu, flags = 1500, IFF_UP
        try:
            mac = bytes.fromhex(_read(d / "address").replace(":", ""))
        except ValueError:
            mac = b""
        out[ifindex] = NetDevice(ifindex, name, mtu, bool(flags & IFF_UP), mac[:6].ljust(6, b"\0"))
    return out


def xdp_ok_fwd_dev(dev: NetDevice, pkt_len: int) -> int:
    """The kernel's ``xdp_ok_fwd_dev``: 0, or ``-ENETDOWN`` / ``-EMSGSIZE``."""
    if not dev.up:
        return -errno.ENETDOWN
    if pkt_len > dev.mtu + dev.hard_header_len + VLAN_HLEN:
        return -errno.EMSGSIZE
    return 0


def device_name(devices: Mapping[int, NetDevice], ifindex: int) -> str:
    """The device's name, or ``if<N>`` for an ifindex the table does not know."""
    dev = devices.get(ifindex)
    return dev.name if dev is not None else f"if{ifindex}"
