"""Capture files in and out: classic pcap (micro- or nanosecond timestamps, either byte order, and
the "modified" Kuznetzov variant) and pcapng (several sections and interfaces, EPB/SPB/PB blocks).

Why our own loop around dpkt: dpkt describes the on-disk structures (``dpkt.pcap.FileHdr``,
``PktHdr``, ``dpkt.pcapng.SectionHeaderBlock``, ``InterfaceDescriptionBlock``,
``EnhancedPacketBlock``...) and we use those layouts, but its readers turn timestamps into floats
(nanosecond captures lose precision), read only the first pcapng interface, do not report
truncated records and raise bare ``ValueError``/``struct.error``. Hooks need exact timestamps, the
interface each packet came in on (it becomes ``ingress_ifindex``), streaming over captures of any
size, and a :class:`~pybpf.hooks.errors.PcapError` that says which record at which offset is bad.

Reading streams: one record is in memory at a time, whatever the file size::

    with PcapReader("in.pcapng") as r:
        for rec in r:                      # PcapRecord(data, ts_ns, orig_len, interface, ...)
            ...

Writing::

    with PcapWriter("out.pcap", nanosecond=True) as w:
        w.write(frame, ts_ns=rec.ts_ns)
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import IO, Literal

import dpkt
from dpkt import pcap as _pcap
from dpkt import pcapng as _ng

from pybpf.hooks.errors import PcapError

__all__ = [
    "LINKTYPE_ETHERNET",
    "MAX_SNAPLEN",
    "PcapFormat",
    "PcapInterface",
    "PcapReader",
    "PcapRecord",
    "PcapWriter",
    "read_pcap",
]

LINKTYPE_ETHERNET = _pcap.DLT_EN10MB
"""DLT_EN10MB / LINKTYPE_ETHERNET: frames start with the Ethernet header, no FCS."""

MAX_SNAPLEN = 262144
"""libpcap's MAXIMUM_SNAPLEN: a captured length above this (and above the file's snaplen) is
corruption, not a packet."""

_MAX_BLOCK = 64 << 20  # no sane pcapng block is bigger; a larger length field is corruption
_NS = 1_000_000_000

PcapFormat = Literal["pcap", "pcapng"]

# classic pcap: magic (as read little-endian) -> (file header class, record header class, ns?)
_CLASSIC = {
    _pcap.PMUDPCT_MAGIC: (_pcap.FileHdr, _pcap.PktHdr, False),  # big-endian file, microseconds
    _pcap.PMUDPCT_MAGIC_NANO: (_pcap.FileHdr, _pcap.PktHdr, True),
    _pcap.PACPDOM_MAGIC: (_pcap.FileHdr, _pcap.PktModHdr, False),
    _pcap.TCPDUMP_MAGIC: (_pcap.LEFileHdr, _pcap.LEPktHdr, False),  # little-endian file
    _pcap.TCPDUMP_MAGIC_NANO: (_pcap.LEFileHdr, _pcap.LEPktHdr, True),
    _pcap.MODPCAP_MAGIC: (_pcap.LEFileHdr, _pcap.LEPktModHdr, False),
}
_SHB_TYPE = struct.pack("<I", _ng.PCAPNG_BT_SHB)  # 0x0A0D0D0A reads the same in both orders

# pcapng block and option codes (dpkt names the common ones)
_BT_IDB, _BT_PB, _BT_SPB, _BT_EPB = _ng.PCAPNG_BT_IDB, _ng.PCAPNG_BT_PB, _ng.PCAPNG_BT_SPB, _ng.PCAPNG_BT_EPB
_OPT_IF_NAME, _OPT_IF_TSRESOL = _ng.PCAPNG_OPT_IF_NAME, _ng.PCAPNG_OPT_IF_TSRESOL
_OPT_IF_FCSLEN, _OPT_IF_TSOFFSET = _ng.PCAPNG_OPT_IF_FCSLEN, _ng.PCAPNG_OPT_IF_TSOFFSET
_OPT_SHB_USERAPPL = _ng.PCAPNG_OPT_SHB_USERAPPL


@dataclass(frozen=True, slots=True)
class PcapInterface:
    """One capture interface: classic pcap files have exactly one (id 0), pcapng files one per IDB.

    ``fcs_len`` is the number of Frame Check Sequence bytes each captured frame ends with (0 for
    almost every capture: Linux hands frames up without their FCS). ``tsresol`` is the timestamp
    unit as the file declares it: ``(10, 6)`` is 10^-6 s, ``(2, 10)`` is 2^-10 s.
    """

    id: int
    linktype: int
    snaplen: int
    name: str = ""
    fcs_len: int = 0
    tsresol: tuple[int, int] = (10, 6)
    tsoffset: int = 0

    def ts_ns(self, ticks: int) -> int:
        """A timestamp in this interface's units → nanoseconds since the epoch (exact for 10^-k)."""
        base, exp = self.tsresol
        if base == 10:
            ns = ticks * 10 ** (9 - exp) if exp <= 9 else ticks // 10 ** (exp - 9)
        else:
            ns = (ticks * _NS) >> exp
        return ns + self.tsoffset * _NS


@dataclass(frozen=True, slots=True)
class PcapRecord:
    """One captured packet.

    ``data`` is what was captured (``caplen`` bytes), ``orig_len`` the length on the wire,
    ``ts_ns`` the timestamp in nanoseconds since the epoch, ``interface`` the pcapng interface id
    (0 in classic pcap), ``number`` the 1-based record number, ``ifindex`` the ifindex a "modified
    pcap" record carries (0 otherwise).
    """

    data: bytes
    ts_ns: int
    orig_len: int
    interface: int = 0
    linktype: int = LINKTYPE_ETHERNET
    number: int = 0
    fcs_len: int = 0
    ifindex: int = 0

    @property
    def truncated(self) -> bool:
        """Whether the capture kept less than the wire length (snaplen cut it)."""
        return len(self.data) < self.orig_len

    @property
    def frame(self) -> bytes:
        """The frame as a NIC hands it to the stack: the captured bytes without a trailing FCS."""
        if self.fcs_len and not self.truncated and len(self.data) >= self.fcs_len:
            return self.data[:len(self.data) - self.fcs_len]
        return self.data


def _open(source: str | os.PathLike[str] | IO[bytes], mode: str) -> tuple[IO[bytes], str, bool]:
    """(file, name for messages, whether we opened it and must close it)."""
    if isinstance(source, str | os.PathLike):
        name = os.fspath(source)
        try:
            return open(name, mode), name, True
        except OSError as e:
            raise PcapError(f"cannot open: {e.strerror or e}", path=name) from None
    return source, str(getattr(source, "name", "<stream>")), False


class PcapReader:
    """A streaming reader of classic pcap and pcapng captures (see the module docstring).

    ``format`` is ``"pcap"`` or ``"pcapng"``; ``nanosecond`` tells whether a classic file has
    nanosecond timestamps; ``interfaces`` the interfaces seen so far (pcapng files may define more
    as they go). Every malformation raises :class:`~pybpf.hooks.errors.PcapError`.
    """

    def __init__(self, source: str | os.PathLike[str] | IO[bytes]) -> None:
        self._f, self.path, self._owned = _open(source, "rb")
        self._pos = 0
        self._count = 0
        self.interfaces: list[PcapInterface] = []
        self.nanosecond = False
        self.snaplen = 0
        try:
            head = self._read(4)
            if len(head) < 4:
                raise self._err("empty file" if not head else "file too short for a capture header", 0)
            if head == _SHB_TYPE:
                self.format: PcapFormat = "pcapng"
                self._le = True
                self._pending_shb = head
            else:
                self.format = "pcap"
                self._classic_header(head)
        except BaseException:
            self.close()
            raise

    # -- plumbing ---------------------------------------------------------------------------------
    def _read(self, n: int) -> bytes:
        try:
            data = self._f.read(n)
        except OSError as e:
            raise self._err(f"read error: {e.strerror or e}", self._pos) from None
        self._pos += len(data)
        return data

    def _err(self, message: str, offset: int | None, record: int | None = None) -> PcapError:
        return PcapError(message, path=self.path, offset=offset, record=record)

    @property
    def linktype(self) -> int:
        """The link type of the first interface (the file's, for classic pcap)."""
        return self.interfaces[0].linktype if self.interfaces else LINKTYPE_ETHERNET

    @property
    def records_read(self) -> int:
        return self._count

    # -- classic pcap -------------------------------------------------------------------------------
    def _classic_header(self, magic_bytes: bytes) -> None:
        magic = int.from_bytes(magic_bytes, "little")
        kinds = _CLASSIC.get(magic)
        if kinds is None:
            raise self._err(f"not a pcap or pcapng file (magic 0x{magic_bytes.hex()})", 0)
        file_cls, rec_cls, self.nanosecond = kinds
        rest = self._read(file_cls.__hdr_len__ - 4)
        if len(rest) < file_cls.__hdr_len__ - 4:
            raise self._err("truncated pcap file header", 0)
        fh = file_cls(magic_bytes + rest)
        if fh.v_major != _pcap.PCAP_VERSION_MAJOR:
            raise self._err(f"unsupported pcap version {fh.v_major}.{fh.v_minor}", 0)
        raw_lt = fh.linktype
        fcs = ((raw_lt & 0xF0000000) >> 28) * 2 if raw_lt & 0x04000000 else 0  # libpcap LT_FCS_LENGTH
        self.snaplen = fh.snaplen
        self.interfaces.append(PcapInterface(0, raw_lt & 0xFFFF, fh.snaplen, "", fcs,
                                             (10, 9 if self.nanosecond else 6)))
        self._rec = struct.Struct(rec_cls.__hdr_fmt__)
        self._modified = issubclass(rec_cls, _pcap.PktModHdr)

    def _iter_classic(self) -> Iterator[PcapRecord]:
        iface = self.interfaces[0]
        rec, size = self._rec, self._rec.size
        limit = max(MAX_SNAPLEN, min(self.snaplen, 1 << 24))
        mult = 1 if self.nanosecond else 1000
        while True:
            off = self._pos
            head = self._read(size)
            if not head:
                return
            number = self._count + 1
            if len(head) < size:
                raise self._err(f"truncated record header ({len(head)} of {size} bytes)", off, number)
            fields = rec.unpack(head)
            sec, frac, caplen, orig = fields[:4]
            ifindex = fields[4] if self._modified else 0
            if caplen > limit:
                raise self._err(f"invalid packet capture length {caplen}, bigger than maximum of {limit}",
                                off, number)
            data = self._read(caplen)
            if len(data) < caplen:
                raise self._err(f"truncated packet data ({len(data)} of {caplen} bytes)", off, number)
            self._count = number
            yield PcapRecord(data, sec * _NS + frac * mult, max(orig, caplen), 0, iface.linktype, number,
                             iface.fcs_len, ifindex)

    # -- pcapng ---------------------------------------------------------------------------------------
    def _iter_ng(self) -> Iterator[PcapRecord]:
        first = True
        while True:
            off = self._pos - (4 if first else 0)
            if first:
                btype_raw = self._pending_shb
                first = False
            else:
                btype_raw = self._read(4)
                if not btype_raw:
                    return
                if len(btype_raw) < 4:
                    raise self._err("truncated block header", off)
            if btype_raw == _SHB_TYPE:
                self._section_header(off)
                continue
            blen_raw = self._read(4)
            if len(blen_raw) < 4:
                raise self._err("truncated block header", off)
            e = "<" if self._le else ">"
            (btype,) = struct.unpack(e + "I", btype_raw)
            (blen,) = struct.unpack(e + "I", blen_raw)
            if blen < 12 or blen % 4 or blen > _MAX_BLOCK:
                raise self._err(f"invalid block length {blen} (block type {btype:#x})", off)
            body = self._read(blen - 8)
            if len(body) < blen - 8:
                raise self._err(f"truncated block (type {btype:#x}: {len(body) + 8} of {blen} bytes)", off)
            (trailer,) = struct.unpack(e + "I", body[-4:])
            if trailer != blen:
                raise self._err(f"block length fields do not match ({blen} and {trailer})", off)
            block = btype_raw + blen_raw + body
            if btype == _BT_IDB:
                self._interface(block, off)
            elif btype in (_BT_EPB, _BT_PB, _BT_SPB):
                number = self._count + 1
                rec = self._packet(btype, block, off, number)
                self._count = number
                yield rec
            # other blocks (name resolution, statistics, secrets, custom) carry nothing a hook uses

    def _section_header(self, off: int) -> None:
        rest = self._read(8)  # block length + byte-order magic
        if len(rest) < 8:
            raise self._err("truncated section header block", off)
        bom = rest[4:8]
        if bom == struct.pack("<I", _ng.BYTE_ORDER_MAGIC):
            self._le = True
        elif bom == struct.pack(">I", _ng.BYTE_ORDER_MAGIC):
            self._le = False
        else:
            raise self._err(f"not a pcapng section header (byte-order magic 0x{bom.hex()})", off)
        e = "<" if self._le else ">"
        (blen,) = struct.unpack(e + "I", rest[:4])
        cls = _ng.SectionHeaderBlockLE if self._le else _ng.SectionHeaderBlock
        if blen < cls.__hdr_len__ or blen % 4 or blen > _MAX_BLOCK:
            raise self._err(f"invalid section header length {blen}", off)
        body = self._read(blen - 12)
        if len(body) < blen - 12:
            raise self._err("truncated section header block", off)
        block = _SHB_TYPE + rest + body
        shb = self._unpack_fixed(cls, block, off)
        if shb.v_major != _ng.PCAPNG_VERSION_MAJOR:
            raise self._err(f"unsupported pcapng version {shb.v_major}.{shb.v_minor}", off)
        (trailer,) = struct.unpack(e + "I", block[-4:])
        if trailer != blen:
            raise self._err(f"block length fields do not match ({blen} and {trailer})", off)
        self.interfaces = []  # interface ids are per section

    def _unpack_fixed(self, cls: type[dpkt.Packet], block: bytes, off: int) -> dpkt.Packet:
        """Decode a block's fixed fields with dpkt's layout (options are walked separately)."""
        try:
            obj = cls.__new__(cls)
            dpkt.Packet.unpack(obj, block)
        except (dpkt.UnpackError, struct.error) as e:
            raise self._err(f"malformed {cls.__name__}: {e}", off) from None
        return obj

    def _options(self, block: bytes, start: int, off: int) -> Iterator[tuple[int, bytes]]:
        """(code, value) of each option between ``start`` and the trailing length."""
        e = "<" if self._le else ">"
        pos, end = start, len(block) - 4
        while pos + 4 <= end:
            code, length = struct.unpack_from(e + "HH", block, pos)
            if code == _ng.PCAPNG_OPT_ENDOFOPT:
                return
            value = block[pos + 4:pos + 4 + length]
            if len(value) < length:
                raise self._err(f"option {code} overruns its block", off)
            yield code, value
            pos += 4 + length + (-length % 4)

    def _interface(self, block: bytes, off: int) -> None:
        cls = _ng.InterfaceDescriptionBlockLE if self._le else _ng.InterfaceDescriptionBlock
        if len(block) < cls.__hdr_len__:
            raise self._err("truncated interface description block", off)
        idb = self._unpack_fixed(cls, block, off)
        e = "<" if self._le else ">"
        name, fcs, tsresol, tsoffset = "", 0, (10, 6), 0
        for code, value in self._options(block, cls.__hdr_len__ - 4, off):
            if code == _OPT_IF_NAME:
                name = value.split(b"\0", 1)[0].decode("utf-8", "replace")
            elif code == _OPT_IF_TSRESOL and value:
                v = value[0]
                tsresol = (2, v & 0x7F) if v & 0x80 else (10, v)
                if tsresol[0] == 10 and tsresol[1] > 18:
                    raise self._err(f"unsupported timestamp resolution 10^-{tsresol[1]}", off)
            elif code == _OPT_IF_FCSLEN and value:
                fcs = value[0] // 8  # the option counts bits
            elif code == _OPT_IF_TSOFFSET and len(value) >= 8:
                (tsoffset,) = struct.unpack(e + "q", value[:8])
        self.interfaces.append(PcapInterface(len(self.interfaces), idb.linktype, idb.snaplen, name, fcs,
                                             tsresol, tsoffset))
        if len(self.interfaces) == 1:
            self.snaplen = idb.snaplen

    def _iface(self, iface_id: int, off: int, number: int) -> PcapInterface:
        if iface_id >= len(self.interfaces):
            raise self._err(f"packet refers to interface {iface_id}, but only {len(self.interfaces)} "
                            "are defined", off, number)
        return self.interfaces[iface_id]

    def _packet(self, btype: int, block: bytes, off: int, number: int) -> PcapRecord:
        e = "<" if self._le else ">"
        if btype == _BT_SPB:
            if len(block) < 16:
                raise self._err("truncated simple packet block", off, number)
            iface = self._iface(0, off, number)
            (orig,) = struct.unpack_from(e + "I", block, 8)
            room = len(block) - 16
            caplen = min(orig, room, iface.snaplen) if iface.snaplen else min(orig, room)
            return PcapRecord(block[12:12 + caplen], 0, orig, 0, iface.linktype, number, iface.fcs_len)
        cls = (_ng.EnhancedPacketBlockLE if self._le else _ng.EnhancedPacketBlock) if btype == _BT_EPB else \
            (_ng.PacketBlockLE if self._le else _ng.PacketBlock)
        fixed = cls.__hdr_len__ - 4
        if len(block) < cls.__hdr_len__:
            raise self._err(f"truncated {'enhanced ' if btype == _BT_EPB else ''}packet block", off, number)
        hdr = self._unpack_fixed(cls, block, off)
        iface = self._iface(hdr.iface_id, off, number)
        if fixed + hdr.caplen > len(block) - 4:
            raise self._err(f"captured length {hdr.caplen} overruns the block ({len(block)} bytes)", off, number)
        data = block[fixed:fixed + hdr.caplen]
        ts = iface.ts_ns((hdr.ts_high << 32) | hdr.ts_low)
        return PcapRecord(data, ts, max(hdr.pkt_len, hdr.caplen), hdr.iface_id, iface.linktype, number,
                          iface.fcs_len)

    # -- iteration, lifetime ----------------------------------------------------------------------
    def __iter__(self) -> Iterator[PcapRecord]:
        """The records, streamed; a file the reader opened itself is closed when they end."""
        try:
            yield from self._iter_ng() if self.format == "pcapng" else self._iter_classic()
        finally:
            self.close()

    def close(self) -> None:
        if self._owned:
            self._f.close()

    def __enter__(self) -> PcapReader:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def read_pcap(source: str | os.PathLike[str] | IO[bytes]) -> Iterator[PcapRecord]:
    """Every record of a capture, streamed; the file is closed when the iteration ends."""
    with PcapReader(source) as r:
        yield from r


class PcapWriter:
    """Write a capture: classic pcap (``nanosecond=True`` for the 0xa1b23c4d flavour) or pcapng.

    Files are written little-endian, as libpcap does on x86. A pcapng file gets one interface per
    :meth:`add_interface` (the first is added from ``linktype``/``snaplen``/``interface_name``)
    with ``if_tsresol`` set to nanoseconds, so timestamps survive exactly.
    """

    def __init__(self, dest: str | os.PathLike[str] | IO[bytes], *, format: PcapFormat = "pcap",
                 nanosecond: bool = False, linktype: int = LINKTYPE_ETHERNET, snaplen: int = MAX_SNAPLEN,
                 interface_name: str = "") -> None:
        if format not in ("pcap", "pcapng"):
            raise PcapError(f"unknown capture format {format!r} (pcap or pcapng)")
        if not 0 < snaplen <= 0x7FFFFFFF:
            raise PcapError(f"invalid snaplen {snaplen}")
        self.format = format
        self.nanosecond = nanosecond or format == "pcapng"
        self.snaplen = snaplen
        self.count = 0
        self._interfaces: list[tuple[int, int]] = []
        self._f, self.path, self._owned = _open(dest, "wb")
        if format == "pcap":
            magic = _pcap.TCPDUMP_MAGIC_NANO if nanosecond else _pcap.TCPDUMP_MAGIC
            self._put(bytes(_pcap.LEFileHdr(magic=magic, snaplen=snaplen, linktype=linktype)))
            self._pack_rec = _pcap.LEPktHdr()._pack_hdr
            self._interfaces.append((linktype, snaplen))
        else:
            shb = _ng.SectionHeaderBlockLE(opts=[
                _ng.PcapngOptionLE(code=_OPT_SHB_USERAPPL, data=b"pybpf"),
                _ng.PcapngOptionLE(code=_ng.PCAPNG_OPT_ENDOFOPT),
            ])
            self._put(bytes(shb))
            self._pack_epb = _ng.EnhancedPacketBlockLE()._pack_hdr
            self.add_interface(interface_name, linktype=linktype, snaplen=snaplen)

    def _put(self, data: bytes) -> None:
        try:
            self._f.write(data)
        except OSError as e:
            raise PcapError(f"write error: {e.strerror or e}", path=self.path) from None

    def add_interface(self, name: str = "", *, linktype: int = LINKTYPE_ETHERNET, snaplen: int | None = None) -> int:
        """Describe another capture interface (pcapng only); returns its id for :meth:`write`."""
        if self.format != "pcapng":
            raise PcapError("classic pcap files have a single interface; use format='pcapng'", path=self.path)
        opts = []
        if name:
            opts.append(_ng.PcapngOptionLE(code=_OPT_IF_NAME, data=name.encode()))
        opts.append(_ng.PcapngOptionLE(code=_OPT_IF_TSRESOL, data=b"\x09"))  # 10^-9 s
        opts.append(_ng.PcapngOptionLE(code=_ng.PCAPNG_OPT_ENDOFOPT))
        snap = self.snaplen if snaplen is None else snaplen
        self._put(bytes(_ng.InterfaceDescriptionBlockLE(linktype=linktype, snaplen=snap, opts=opts)))
        self._interfaces.append((linktype, snap))
        return len(self._interfaces) - 1

    def write(self, data: bytes | bytearray | memoryview, *, ts_ns: int | None = None, orig_len: int | None = None,
              interface: int = 0) -> None:
        """Append one packet (cut to the snaplen; ``orig_len`` defaults to its full length)."""
        if not 0 <= interface < len(self._interfaces):
            raise PcapError(f"no interface {interface} in this capture", path=self.path)
        if ts_ns is None:
            ts_ns = time.time_ns()
        if ts_ns < 0:
            raise PcapError(f"negative timestamp {ts_ns}", path=self.path)
        snap = self._interfaces[interface][1]
        full = len(data)
        data = bytes(data[:snap])
        caplen = len(data)
        wire = max(orig_len if orig_len is not None else full, caplen)
        if self.format == "pcap":
            sec, ns = divmod(ts_ns, _NS)
            if sec > 0xFFFFFFFF:
                raise PcapError(f"timestamp {ts_ns} ns does not fit a pcap record", path=self.path)
            frac = ns if self.nanosecond else ns // 1000
            self._put(self._pack_rec(sec, frac, caplen, wire) + data)
        else:
            n = 32 + caplen + (-caplen % 4)
            head = self._pack_epb(_BT_EPB, n, interface, (ts_ns >> 32) & 0xFFFFFFFF, ts_ns & 0xFFFFFFFF,
                                  caplen, wire, n)
            self._put(head[:-4] + data + bytes(-caplen % 4) + head[-4:])
        self.count += 1

    def write_record(self, rec: PcapRecord) -> None:
        """Copy a record from a reader (timestamp and wire length kept)."""
        self.write(rec.data, ts_ns=rec.ts_ns, orig_len=rec.orig_len,
                   interface=rec.interface if rec.interface < len(self._interfaces) else 0)

    def flush(self) -> None:
        try:
            self._f.flush()
        except OSError as e:
            raise PcapError(f"write error: {e.strerror or e}", path=self.path) from None

    def close(self) -> None:
        if self._f.closed:
            return
        self.flush()
        if self._owned:
            self._f.close()

    def __enter__(self) -> PcapWriter:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
