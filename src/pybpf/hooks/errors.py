"""The errors of the packet hooks: bad captures, unusable interfaces, packets a hook cannot carry.

They live here rather than in :mod:`pybpf.errors` because only the hooks raise them; both derive
from :class:`~pybpf.errors.PybpfError`, so ``except PybpfError`` and the CLI's ``Error: ...`` line
cover them like every other pybpf error.

    PybpfError
    └── HookError            (``packet``: which packet, 1-based, when one is to blame)
        └── PcapError        (also a ValueError: ``path``, ``offset`` into the file, ``record``)
"""

from __future__ import annotations

__all__ = ["HookError", "PcapError"]

from pybpf.errors import PybpfError


class HookError(PybpfError):
    """A hook cannot do what was asked: no such interface, no permission for a raw socket, a packet
    too large for an XDP frame, a link type that is not Ethernet.

    ``packet`` is the 1-based number of the packet concerned (as Wireshark counts), when one is.
    """

    def __init__(self, message: str, *, packet: int | None = None) -> None:
        self.message = message
        self.packet = packet
        super().__init__(f"packet {packet}: {message}" if packet is not None else message)


class PcapError(HookError, ValueError):
    """A capture file that cannot be read or written: bad magic, truncated record, bad block.

    ``path`` names the file, ``offset`` is the byte offset of the header or block at fault and
    ``record`` the 1-based number of the packet record being read, when known.
    """

    def __init__(self, message: str, *, path: str | None = None, offset: int | None = None,
                 record: int | None = None) -> None:
        self.path = path
        self.offset = offset
        self.record = record
        where = f"{path}: " if path else ""
        if record is not None:
            where += f"record {record}: "
        if offset is not None:
            where += f"offset {offset}: "
        HookError.__init__(self, message)
        self.args = (where + message,)

    def __str__(self) -> str:
        return str(self.args[0])
