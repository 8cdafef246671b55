"""pcap / pcapng reading and writing: round trips, formats written by others, streaming, errors."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import dpkt
import pytest

from pybpf.errors import PybpfError
from pybpf.hooks.errors import PcapError
from pybpf.hooks.pcap import PcapReader, PcapRecord, PcapWriter, read_pcap

from .frames import ipv4_udp

FRAMES = [ipv4_udp(n) for n in (18, 100, 1000, 3)]
TS = [1_700_000_000_123_456_789 + i * 1_000_000_007 for i in range(len(FRAMES))]


def _write(fmt: str, ns: bool) -> bytes:
    buf = io.BytesIO()
    w = PcapWriter(buf, format=fmt, nanosecond=ns)  # type: ignore[arg-type]
    for f, ts in zip(FRAMES, TS, strict=True):
        w.write(f, ts_ns=ts, orig_len=len(f) + 7)
    w.flush()
    return buf.getvalue()


@pytest.mark.parametrize(("fmt", "ns"), [("pcap", False), ("pcap", True), ("pcapng", True)])
def test_round_trip(fmt: str, ns: bool) -> None:
    recs = list(PcapReader(io.BytesIO(_write(fmt, ns))))
    assert [r.data for r in recs] == FRAMES
    assert [r.number for r in recs] == [1, 2, 3, 4]
    assert [r.orig_len for r in recs] == [len(f) + 7 for f in FRAMES]
    want = TS if ns else [t // 1000 * 1000 for t in TS]
    assert [r.ts_ns for r in recs] == want
    assert all(r.truncated for r in recs)


def test_classic_header_fields() -> None:
    data = _write("pcap", True)
    magic, major, minor, _tz, _sig, snap, lt = struct.unpack("<IHHiIII", data[:24])
    assert (magic, major, minor, snap, lt) == (0xA1B23C4D, 2, 4, 262144, 1)
    assert struct.unpack("<I", _write("pcap", False)[:4])[0] == 0xA1B2C3D4


def test_dpkt_reads_what_we_write() -> None:
    classic = dpkt.pcap.Reader(io.BytesIO(_write("pcap", False)))
    assert [bytes(b) for _ts, b in classic] == FRAMES
    ng = dpkt.pcapng.Reader(io.BytesIO(_write("pcapng", True)))
    got = list(ng)
    assert [bytes(b) for _ts, b in got] == FRAMES
    assert got[0][0] == pytest.approx(TS[0] / 1e9)


def test_we_read_what_dpkt_writes() -> None:
    buf = io.BytesIO()
    w = dpkt.pcapng.Writer(buf)
    w.writepkt(FRAMES[0], ts=1_600_000_000.5)
    w.writepkt(FRAMES[1], ts=1_600_000_001.25)
    buf.seek(0)
    recs = list(PcapReader(buf))
    assert [r.data for r in recs] == FRAMES[:2]
    assert [r.ts_ns for r in recs] == [1_600_000_000_500_000_000, 1_600_000_001_250_000_000]


def test_big_endian_classic_file() -> None:
    body = b"".join(struct.pack(">IIII", 10 + i, 5, len(f), len(f)) + f for i, f in enumerate(FRAMES))
    data = struct.pack(">IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1) + body
    recs = list(PcapReader(io.BytesIO(data)))
    assert [r.data for r in recs] == FRAMES
    assert recs[2].ts_ns == 12 * 10**9 + 5000


def test_modified_pcap_carries_ifindex() -> None:
    f = FRAMES[0]
    data = struct.pack("<IHHiIII", 0xA1B2CD34, 2, 4, 0, 0, 65535, 1)
    data += struct.pack("<IIIIIHBB", 1, 2, len(f), len(f), 7, 0x0800, 0, 0) + f
    (rec,) = PcapReader(io.BytesIO(data))
    assert rec.ifindex == 7 and rec.data == f and rec.ts_ns == 10**9 + 2000


def test_fcs_in_link_type_is_stripped_from_frame() -> None:
    f = FRAMES[1] + b"\xde\xad\xbe\xef"
    linktype = 1 | 0x04000000 | (2 << 28)  # LT_FCS_LENGTH_PRESENT, 2 16-bit words
    data = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype)
    data += struct.pack("<IIII", 1, 0, len(f), len(f)) + f
    r = PcapReader(io.BytesIO(data))
    (rec,) = r
    assert r.linktype == 1 and rec.fcs_len == 4
    assert rec.data == f and rec.frame == FRAMES[1]


# -- pcapng written by hand: several interfaces, resolutions, block kinds, both byte orders ------------

def _block(btype: int, body: bytes, e: str = "<") -> bytes:
    body += bytes(-len(body) % 4)
    n = len(body) + 12
    return struct.pack(e + "II", btype, n) + body + struct.pack(e + "I", n)


def _opt(code: int, value: bytes, e: str = "<") -> bytes:
    return struct.pack(e + "HH", code, len(value)) + value + bytes(-len(value) % 4)


def _shb(e: str = "<") -> bytes:
    return _block(0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1), e)


def _idb(linktype: int = 1, snaplen: int = 0, opts: bytes = b"", e: str = "<") -> bytes:
    body = struct.pack(e + "HHI", linktype, 0, snaplen)
    if opts:
        body += opts + _opt(0, b"", e)
    return _block(1, body, e)


def _epb(iface: int, ts: int, data: bytes, orig: int | None = None, e: str = "<") -> bytes:
    body = struct.pack(e + "IIIII", iface, ts >> 32, ts & 0xFFFFFFFF, len(data), orig or len(data)) + data
    return _block(6, body, e)


@pytest.mark.parametrize("e", ["<", ">"])
def test_pcapng_interfaces_and_resolutions(e: str) -> None:
    data = (_shb(e)
            + _idb(opts=_opt(2, b"eth7", e), e=e)                     # default 10^-6
            + _idb(opts=_opt(9, b"\x09", e) + _opt(2, b"veth1\0", e), e=e)  # nanoseconds
            + _idb(opts=_opt(9, b"\x8a", e) + _opt(14, struct.pack(e + "q", 100), e), e=e)  # 2^-10 s, +100 s
            + _block(4, b"\0\0\0\0", e)                                 # name resolution: skipped
            + _epb(0, 1_500_000, FRAMES[0], e=e)
            + _epb(1, 7, FRAMES[1], e=e)
            + _epb(2, 3 * 1024 + 512, FRAMES[2], e=e)
            + _block(3, struct.pack(e + "I", len(FRAMES[3])) + FRAMES[3], e))  # simple packet block
    r = PcapReader(io.BytesIO(data))
    recs = list(r)
    assert r.format == "pcapng"
    assert [i.name for i in r.interfaces] == ["eth7", "veth1", ""]
    assert [x.interface for x in recs] == [0, 1, 2, 0]
    assert [x.data for x in recs] == FRAMES
    assert recs[0].ts_ns == 1_500_000_000
    assert recs[1].ts_ns == 7
    assert recs[2].ts_ns == 103_500_000_000
    assert recs[3].ts_ns == 0 and recs[3].number == 4


def test_pcapng_new_section_resets_interfaces() -> None:
    data = _shb() + _idb() + _epb(0, 0, FRAMES[0]) + _shb(">") + _idb(e=">") + _epb(0, 0, FRAMES[1], e=">")
    assert [x.data for x in PcapReader(io.BytesIO(data))] == FRAMES[:2]
    bad = _shb() + _idb() + _idb() + _shb() + _idb() + _epb(1, 0, FRAMES[0])
    with pytest.raises(PcapError, match="interface 1, but only 1 are defined") as ei:
        list(PcapReader(io.BytesIO(bad)))
    assert ei.value.record == 1


def test_pcapng_writer_several_interfaces_and_snaplen() -> None:
    buf = io.BytesIO()
    with PcapWriter(buf, format="pcapng", interface_name="in0", snaplen=64) as w:
        second = w.add_interface("out1")
        w.write(FRAMES[2], ts_ns=5, interface=0)
        w.write(FRAMES[0], ts_ns=6, interface=second)
        with pytest.raises(PcapError, match="no interface 5"):
            w.write(FRAMES[0], interface=5)
        w.flush()
        raw = buf.getvalue()
    r = PcapReader(io.BytesIO(raw))
    recs = list(r)
    assert [i.name for i in r.interfaces] == ["in0", "out1"]
    assert recs[0].data == FRAMES[2][:64] and recs[0].orig_len == len(FRAMES[2]) and recs[0].truncated
    assert (recs[1].interface, recs[1].ts_ns) == (1, 6)


def test_classic_writer_refuses_second_interface() -> None:
    w = PcapWriter(io.BytesIO())
    with pytest.raises(PcapError, match="single interface"):
        w.add_interface("x")


def test_read_pcap_closes_the_file(tmp_path: Path) -> None:
    p = tmp_path / "a.pcap"
    p.write_bytes(_write("pcap", True))
    assert [r.data for r in read_pcap(p)] == FRAMES


class _CountingReader(io.RawIOBase):
    """A file that records the largest read and how far the reader got."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.max_read = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:  # type: ignore[override]
        n = len(self.data) - self.pos if n < 0 else n
        self.max_read = max(self.max_read, n)
        out = self.data[self.pos:self.pos + n]
        self.pos += len(out)
        return out


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_reading_streams_one_record_at_a_time(fmt: str) -> None:
    buf = io.BytesIO()
    w = PcapWriter(buf, format=fmt)  # type: ignore[arg-type]
    for i in range(2000):
        w.write(FRAMES[i % 3], ts_ns=i)
    w.flush()
    src = _CountingReader(buf.getvalue())
    it = iter(PcapReader(src))
    first = next(it)
    assert first.data == FRAMES[0]
    assert src.pos < 2000  # only the header and the first record were read
    assert sum(1 for _ in it) == 1999
    assert src.max_read <= 1100  # never more than a record at a time


# -- malformed input: PcapError with where, never a foreign exception ---------------------------------

GOOD = _write("pcap", False)
GOOD_NG = _write("pcapng", True)


@pytest.mark.parametrize(("data", "message", "offset", "record"), [
    (b"", "empty file", 0, None),
    (b"\xd4\xc3", "too short", 0, None),
    (b"GIF89a" + bytes(30), "not a pcap or pcapng file", 0, None),
    (GOOD[:20], "truncated pcap file header", 0, None),
    (GOOD[:24 + 10], r"truncated record header \(10 of 16 bytes\)", 24, 1),
    (GOOD[:24 + 16 + 5], "truncated packet data", 24, 1),
    (GOOD[:24] + struct.pack("<IIII", 0, 0, 1 << 30, 64), "invalid packet capture length", 24, 1),
    (struct.pack("<IHHiIII", 0xA1B2C3D4, 3, 0, 0, 0, 65535, 1), "unsupported pcap version 3.0", 0, None),
    (GOOD_NG[:-3], "truncated block", None, None),
    (_shb() + struct.pack("<II", 6, 10) + bytes(2), "invalid block length 10", None, None),
    (_shb() + _idb() + _epb(0, 0, FRAMES[0])[:-4] + b"\0\0\0\0", "length fields do not match", None, None),
    (_shb() + _epb(0, 0, FRAMES[0]), "interface 0, but only 0", None, 1),
    (_shb()[:8] + b"\x00\x00\x00\x00" + _shb()[12:], "byte-order magic", 0, None),
    (_shb() + _idb() + _block(6, struct.pack("<IIIII", 0, 0, 0, 500, 500) + bytes(8)), "overruns the block",
     None, 1),
])
def test_malformed(data: bytes, message: str, offset: int | None, record: int | None) -> None:
    with pytest.raises(PcapError, match=message) as ei:
        list(PcapReader(io.BytesIO(data)))
    err = ei.value
    assert isinstance(err, PybpfError) and isinstance(err, ValueError)
    if offset is not None:
        assert err.offset == offset
    if record is not None:
        assert err.record == record
    assert "offset" in str(err) or err.offset is None


def test_missing_file_is_a_pcap_error(tmp_path: Path) -> None:
    with pytest.raises(PcapError, match="cannot open") as ei:
        PcapReader(tmp_path / "nope.pcap")
    assert ei.value.path == str(tmp_path / "nope.pcap")


def test_fuzzed_headers_never_escape_as_foreign_errors() -> None:
    import random

    rng = random.Random(7)
    for base in (GOOD, GOOD_NG):
        for _ in range(300):
            data = bytearray(base)
            for _ in range(rng.randint(1, 6)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            cut = rng.randrange(len(data) + 1)
            try:
                recs = list(PcapReader(io.BytesIO(bytes(data[:cut]))))
            except PcapError:
                continue
            assert all(isinstance(r, PcapRecord) for r in recs)


def test_writer_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(PcapError, match="unknown capture format"):
        PcapWriter(io.BytesIO(), format="erf")  # type: ignore[arg-type]
    with pytest.raises(PcapError, match="invalid snaplen"):
        PcapWriter(io.BytesIO(), snaplen=0)
    w = PcapWriter(io.BytesIO())
    with pytest.raises(PcapError, match="negative timestamp"):
        w.write(b"x" * 20, ts_ns=-1)
    with pytest.raises(PcapError, match="cannot open"):
        PcapWriter(tmp_path / "no" / "such" / "dir.pcap")
