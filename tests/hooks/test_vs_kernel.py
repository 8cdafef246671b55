"""The live kernel as the oracle: every test program, run by the hooks, returns what Linux's
BPF_PROG_TEST_RUN returns (through bpftool) and leaves the same bytes in the packet."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pybpf.elf import ObjectSpec
from pybpf.hooks.devices import NetDevice
from pybpf.hooks.packet import Frame
from pybpf.hooks.tc import SkbHook
from pybpf.hooks.xdp import XdpHook

from .frames import MAC_A, MAC_B, eth, ipv4_udp, vlan_tagged

pytestmark = [pytest.mark.kernel, pytest.mark.toolchain]

FRAMES = [
    ipv4_udp(18),
    ipv4_udp(1000),
    eth(b"\xff" * 6, MAC_A, 0x0806, bytes(28)),
    vlan_tagged(ipv4_udp(40), 100),
    ipv4_udp(20)[:-2] + b"\x00\x01",
    b"\x07" + ipv4_udp(30)[1:],
    eth(MAC_B, MAC_A, 0x86DD, bytes(60)),
]
LO = {1: NetDevice(1, "lo", 65536)}


def _bpftool() -> str:
    tool = shutil.which("bpftool")
    if tool is None or os.geteuid() != 0 or not os.path.ismount("/sys/fs/bpf"):
        pytest.skip("needs root, bpftool and a mounted bpffs")
    return tool


@pytest.fixture(scope="module")
def kernel_progs(compiled: Callable[..., Path]) -> Iterator[Callable[[str, str], Path]]:
    """``pinned(obj, name)``: the program loaded into the live kernel with ``bpftool prog loadall``."""
    tool = _bpftool()
    pins: dict[str, Path] = {}

    def pinned(obj: str, name: str) -> Path:
        if obj not in pins:
            d = Path(f"/sys/fs/bpf/pybpf_hooks_test_{os.getpid()}_{obj}")
            r = subprocess.run([tool, "prog", "loadall", str(compiled(obj)), str(d)], capture_output=True,
                               text=True, check=False)
            if r.returncode:
                pytest.skip(f"the kernel refused {obj}: {r.stderr[-300:]}")
            pins[obj] = d
        return pins[obj] / name

    yield pinned
    for d in pins.values():
        shutil.rmtree(d, ignore_errors=True)


def _kernel_run(pin: Path, frame: bytes, tmp: Path) -> tuple[int, bytes]:
    src, dst = tmp / "in.bin", tmp / "out.bin"
    src.write_bytes(frame)
    if dst.exists():
        dst.unlink()
    r = subprocess.run([_bpftool(), "prog", "run", "pinned", str(pin), "data_in", str(src), "data_out", str(dst)],
                       capture_output=True, text=True, check=False)
    m = re.search(r"Return value: (\d+)", r.stdout)
    assert m, r.stdout + r.stderr
    return int(m.group(1)), dst.read_bytes() if dst.exists() else b""


def _names(compiled: Callable[..., Path], obj: str, section: str) -> list[str]:
    spec = ObjectSpec.from_path(str(compiled(obj)))
    return [n for n, p in spec.programs.items() if p.section == section]


XDP_PROGS = ["swap_tx", "ipv4_only", "pop_vlan", "push_head", "trim_tail", "grow_tail", "meta_len", "redirect_byte",
             "redirect_devmap", "broadcast", "source_info", "bare_redirect", "verdict_byte", "redirect_lo",
             "ctx_verdict", "redirect_prog_ports", "redirect_hash", "broadcast_hash"]


def test_every_xdp_test_program_is_covered(compiled: Callable[..., Path]) -> None:
    assert sorted(_names(compiled, "xdp_hooks", "xdp")) == sorted(XDP_PROGS)


@pytest.mark.parametrize("name", XDP_PROGS)
def test_xdp_matches_kernel_test_run(name: str, load: Callable[..., Any], kernel_progs: Callable[[str, str], Path],
                                     tmp_path: Path) -> None:
    prog = load("xdp_hooks", name).kernel_program
    hook = XdpHook(prog, devices=LO)
    ours = list(hook.process(Frame(f, ifindex=1, number=i + 1) for i, f in enumerate(FRAMES)))
    for frame, out in zip(FRAMES, ours, strict=True):
        retval, data_out = _kernel_run(kernel_progs("xdp_hooks", name), frame, tmp_path)
        assert out.retval == retval, f"{name} on frame {out.number}"
        assert out.meta + out.data == data_out, f"{name} on frame {out.number}"  # test_run: data_meta..data_end


TC_PROGS = ["mark_ipv4", "skb_info", "redirect_byte", "store_mac"]


@pytest.mark.parametrize("name", TC_PROGS)
def test_tc_matches_kernel_test_run(name: str, load: Callable[..., Any], kernel_progs: Callable[[str, str], Path],
                                    tmp_path: Path) -> None:
    prog = load("tc_hooks", name).kernel_program
    # test_run keeps VLAN tags in the frame and runs on the loopback device (all-zero MAC)
    hook = SkbHook(prog, devices=LO, vlan_offload=False, dev_addr=bytes(6))
    ours = list(hook.process(Frame(f, ifindex=1, number=i + 1) for i, f in enumerate(FRAMES)))
    for frame, out in zip(FRAMES, ours, strict=True):
        retval, data_out = _kernel_run(kernel_progs("tc_hooks", name), frame, tmp_path)
        assert out.retval == retval - (1 << 32 if retval >= 1 << 31 else 0), f"{name} on frame {out.number}"
        assert out.data == data_out, f"{name} on frame {out.number}"


@pytest.mark.parametrize("name", ["sock_ipv4_head", "sock_all"])
def test_socket_filter_matches_kernel_test_run(name: str, load: Callable[..., Any],
                                               kernel_progs: Callable[[str, str], Path], tmp_path: Path) -> None:
    prog = load("tc_hooks", name).kernel_program
    # test_run starts a socket filter's skb at the network header, as on a datagram socket
    hook = SkbHook(prog, devices=LO, vlan_offload=False, dev_addr=bytes(6), l2=False)
    ours = list(hook.process(Frame(f, ifindex=1, number=i + 1) for i, f in enumerate(FRAMES)))
    for frame, out in zip(FRAMES, ours, strict=True):
        retval, _ = _kernel_run(kernel_progs("tc_hooks", name), frame, tmp_path)
        assert out.retval == retval, f"{name} on frame {out.number}"
