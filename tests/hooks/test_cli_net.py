"""``pybpf net``: the command line over capture files (and its errors)."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pybpf.cli.app import main
from pybpf.hooks.pcap import PcapReader, PcapWriter

from .frames import MAC_A, eth, ipv4_udp

ROOT = Path(__file__).resolve().parents[2]


def _pcap(path: Path, frames: list[bytes], fmt: str = "pcap") -> Path:
    with PcapWriter(path, format=fmt) as w:  # type: ignore[arg-type]
        for i, f in enumerate(frames):
            w.write(f, ts_ns=1_000_000 + i)
    return path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.toolchain
def test_run_xdp_object_with_outputs(kernel: Any, compiled: Callable[..., Path], tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    arp = eth(b"\xff" * 6, MAC_A, 0x0806, bytes(28))
    src = _pcap(tmp_path / "in.pcapng", [ipv4_udp(), arp, ipv4_udp(200)], "pcapng")
    rc, out, err = _run(capsys, "net", "run", "xdp", compiled("xdp_hooks"), "name", "ipv4_only", "pcap", src,
                        "out", tmp_path / "out.pcap", "-j")
    assert rc == 0, err
    data = json.loads(out)
    assert data["program"]["name"] == "ipv4_only" and data["program"]["type"] == "xdp"
    assert data["packets"] == 3 and data["verdicts"]["XDP_PASS"] == 2 and data["verdicts"]["XDP_DROP"] == 1
    assert data["outputs"]["pass"] == 2 and data["dropped"] == 1
    assert [r.data for r in PcapReader(tmp_path / "out.pcap")] == [ipv4_udp(), ipv4_udp(200)]


@pytest.mark.toolchain
def test_run_xdp_text_tx_and_packet_lines(kernel: Any, compiled: Callable[..., Path], tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    src = _pcap(tmp_path / "in.pcap", [ipv4_udp(), ipv4_udp(30)])
    rc, out, err = _run(capsys, "net", "run", "xdp", compiled("xdp_hooks"), "n", "swap_tx", "pcap", src,
                        "tx", tmp_path / "tx.pcap", "--packets", "--engine", "translate")
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[:2] == ["1: retval 3 tx len 60", "2: retval 3 tx len 72"]
    assert "XDP_TX        2" in lines
    tx = [r.data for r in PcapReader(tmp_path / "tx.pcap")]
    assert [t[:12] for t in tx] == [f[6:12] + f[:6] for f in (ipv4_udp(), ipv4_udp(30))]


@pytest.mark.toolchain
def test_run_xdp_redirect_dir(kernel: Any, compiled: Callable[..., Path], tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    frames = [ipv4_udp(20)[:-1] + b"\x01", ipv4_udp(20)[:-1] + b"\xfd"]
    src = _pcap(tmp_path / "in.pcap", frames)
    rc, out, err = _run(capsys, "-j", "net", "run", "xdp", compiled("xdp_hooks"), "name", "redirect_byte",
                        "pcap", src, "redirect", tmp_path / "redir")
    assert rc == 0, err
    data = json.loads(out)
    assert data["verdicts"]["XDP_REDIRECT"] == 2 and data["redirect_err"] == 1
    assert data["outputs"]["redirect"] == {"1": 1}
    assert [r.data for r in PcapReader(tmp_path / "redir" / "lo.pcap")] == frames[:1]


@pytest.mark.toolchain
def test_run_pinned_program_keeps_its_maps(kernel: Any, load: Callable[..., Any], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    coll = load.collection(ROOT / "examples/seed-demo/demo.c", "xdp_program")  # type: ignore[attr-defined]
    coll.programs["xdp_program"].pin(str(tmp_path / "bpffs" / "demo"))
    src = _pcap(tmp_path / "in.pcap", [ipv4_udp()] * 5)
    for _ in range(2):
        rc, out, err = _run(capsys, "net", "run", "xdp", "pinned", tmp_path / "bpffs" / "demo", "pcap", src, "-j")
        assert rc == 0, err
        assert json.loads(out)["verdicts"]["XDP_PASS"] == 5
    assert struct.unpack("<I", coll.maps["pkt_counter"].raw()[bytes(4)])[0] == 10


@pytest.mark.toolchain
def test_run_tc_and_socket(kernel: Any, compiled: Callable[..., Path], tmp_path: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    arp = eth(b"\xff" * 6, MAC_A, 0x0806, bytes(28))
    src = _pcap(tmp_path / "in.pcap", [ipv4_udp(), arp])
    rc, out, err = _run(capsys, "net", "run", "tc", compiled("tc_hooks"), "name", "mark_ipv4", "pcap", src,
                        "out", tmp_path / "tc.pcap", "-j")
    assert rc == 0, err
    data = json.loads(out)
    assert data["verdicts"]["TC_ACT_OK"] == 1 and data["verdicts"]["TC_ACT_SHOT"] == 1
    assert data["outputs"]["pass"] == 1
    rc, out, err = _run(capsys, "net", "run", "socket", compiled("tc_hooks"), "name", "sock_ipv4_head", "pcap",
                        src, "out", tmp_path / "sock.pcap")
    assert rc == 0, err
    assert "truncate          1" in out and "drop              1" in out
    assert [r.data for r in PcapReader(tmp_path / "sock.pcap")] == [ipv4_udp()[:20]]


@pytest.mark.toolchain
def test_cli_errors_are_one_line(kernel: Any, compiled: Callable[..., Path], tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    good = _pcap(tmp_path / "in.pcap", [ipv4_udp()])
    obj = compiled("xdp_hooks")
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(good.read_bytes()[:-7])
    runt = _pcap(tmp_path / "runt.pcap", [ipv4_udp(), b""])
    cases = [
        (["net", "run", "xdp", obj, "name", "ipv4_only", "pcap", bad], "truncated packet data"),
        (["net", "run", "xdp", obj, "name", "ipv4_only", "pcap", runt],
         "packet 2: a 0-byte frame is shorter than an Ethernet header (14 bytes)"),
        (["net", "run", "xdp", obj, "pcap", good], "has several xdp programs"),
        (["net", "run", "tc", obj, "pcap", good], "no tc program in"),
        (["net", "run", "xdp", obj, "name", "nope", "pcap", good], "no program named nope"),
        (["net", "run", "xdp", obj, "name", "ipv4_only"], "expected 'pcap IN'"),
        (["net", "run", "xdp", obj, "name", "ipv4_only", "pcap", good, "bogus", "1"], "unknown keyword 'bogus'"),
        (["net", "run", "xdp", tmp_path / "missing.o", "pcap", good], "not found"),
        (["net", "run", "xdp", obj, "name", "ipv4_only", "pcap", tmp_path / "none.pcap"], "cannot open"),
        (["net", "run", "frob", obj], "invalid program kind 'frob'"),
        (["net", "run", "xdp", "pinned", tmp_path / "bpffs" / "nothing", "pcap", good], "bpf obj get"),
        (["net", "attach", "xdp", obj, "name", "ipv4_only", "dev", "nosuchdev0"], "no such device 'nosuchdev0'"),
        (["net", "attach", "xdp", obj, "name", "ipv4_only"], "expected 'dev IFNAME'"),
    ]
    for argv, message in cases:
        rc, out, err = _run(capsys, *argv)
        assert rc == 255, (argv, out, err)
        assert err.startswith("Error: ") and message in err, (argv, err)
        assert "Traceback" not in err
    rc, out, err = _run(capsys, "-j", "net", "run", "xdp", obj, "name", "ipv4_only", "pcap", bad)
    assert rc == 255 and "truncated packet data" in json.loads(out)["error"]


@pytest.mark.toolchain
def test_run_with_a_tc_program_for_xdp_is_refused(kernel: Any, load: Callable[..., Any], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    load("tc_hooks", "mark_ipv4").pin(str(tmp_path / "bpffs" / "tcprog"))
    rc, _out, err = _run(capsys, "net", "run", "xdp", "pinned", tmp_path / "bpffs" / "tcprog", "pcap",
                        _pcap(tmp_path / "in.pcap", [ipv4_udp()]))
    assert rc == 255 and "is of type sched_cls, not a xdp program" in err
