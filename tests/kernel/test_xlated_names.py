"""Names of calls in ``prog dump xlated`` (pybpf.kernel.xlated_names), as bpftool prints them for a
JIT-enabled kernel: helpers by the kernel function implementing them for the program's type, the
tail call by its UAPI name, bpf-to-bpf calls by the callee's JIT symbol ``bpf_prog_<tag>_<name>``.
The verifier log keeps the UAPI names (it prints the stream before the fixups)."""

from __future__ import annotations

import ctypes
import hashlib
import os
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from pybpf.isa import Insns
from pybpf.kernel import Kernel, MapAttrs
from pybpf.kernel.attr import BpfAttr, addr_of
from pybpf.kernel.prog_load import LoadAttrs, prog_load
from pybpf.kernel.xlated_names import helper_function_name, jited_symbols, subprog_starts, subprog_tag_input
from pybpf.uapi import BpfCmd, HelperId, MapType, ProgType

XDP, SCHED_CLS = int(ProgType.XDP), int(ProgType.SCHED_CLS)
BPFTOOL = shutil.which("bpftool")


def ins(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, dst | src << 4, off, imm)


def lddw_map(dst: int, fd: int) -> bytes:
    return ins(0x18, dst, 1, imm=fd) + ins(0)


# main: r1 = 1; call sub1; exit / sub1: call sub2; r0 += 1; exit / sub2: r0 = 5; exit
NESTED = (ins(0xB7, 1, imm=1) + ins(0x85, src=1, imm=1) + ins(0x95) + ins(0x85, src=1, imm=2) +
          ins(0x07, 0, imm=1) + ins(0x95) + ins(0xB7, 0, imm=5) + ins(0x95))
# The tags Linux 6.18 printed for NESTED's callees (``bpftool prog dump xlated``): SHA-256 where 6.12
# has SHA-1, over the same bytes.
NESTED_LINUX_618_TAGS = {3: "edcc3bf5ccc852c1", 6: "c1abe8d4fceb5316"}


def helpers_prog(perf_fd: int, jmp_fd: int) -> bytes:
    """prandom, ktime, redirect, perf_event_output and a tail call: names that depend on the type."""
    return (ins(0xBF, 6, 1) + ins(0x85, imm=7) + ins(0x85, imm=5) +
            ins(0xB7, 1, imm=1) + ins(0xB7, 2, imm=0) + ins(0x85, imm=23) +
            ins(0x7A, 10, off=-8, imm=0) + ins(0xBF, 1, 6) + lddw_map(2, perf_fd) + ins(0x18, 3, imm=-1) + ins(0) +
            ins(0xBF, 4, 10) + ins(0x07, 4, imm=-8) + ins(0xB7, 5, imm=8) + ins(0x85, imm=25) +
            ins(0xBF, 1, 6) + lddw_map(2, jmp_fd) + ins(0xB7, 3, imm=0) + ins(0x85, imm=12) +
            ins(0xB7, 0, imm=2) + ins(0x95))


def test_helper_function_names_follow_the_program_type() -> None:
    assert helper_function_name(XDP, int(HelperId.get_prandom_u32)) == "bpf_user_rnd_u32"
    assert helper_function_name(XDP, int(HelperId.ktime_get_ns)) == "bpf_ktime_get_ns"
    assert helper_function_name(XDP, int(HelperId.redirect)) == "bpf_xdp_redirect"
    assert helper_function_name(SCHED_CLS, int(HelperId.redirect)) == "bpf_redirect"
    assert helper_function_name(XDP, int(HelperId.perf_event_output)) == "bpf_xdp_event_output"
    assert helper_function_name(SCHED_CLS, int(HelperId.perf_event_output)) == "bpf_skb_event_output"
    assert helper_function_name(XDP, int(HelperId.tail_call)) is None  # bpftool: bpf_tail_call
    assert helper_function_name(XDP, int(HelperId.skb_load_bytes)) is None  # not an XDP helper
    assert helper_function_name(0x7FFF, 7) is None  # no such program type


def _load_helpers(k: Kernel, prog_type: int) -> tuple[str, str]:
    perf = k.create_map(MapAttrs(int(MapType.PERF_EVENT_ARRAY), 4, 4, 2))
    jmp = k.create_map(MapAttrs(int(MapType.PROG_ARRAY), 4, 4, 2))
    pfd, jfd = k.new_fd(perf), k.new_fd(jmp)
    res = prog_load(k, LoadAttrs(prog_type=prog_type, insns=Insns.from_bytes(helpers_prog(pfd, jfd)), license="GPL",
                                 maps={pfd: perf, jfd: jmp}, log_level=2))
    return res.program.xlated_text(), res.log


@pytest.mark.parametrize(("prog_type", "redirect", "output"), [
    (XDP, "bpf_xdp_redirect", "bpf_xdp_event_output"), (SCHED_CLS, "bpf_redirect", "bpf_skb_event_output")])
def test_xlated_names_helpers_by_their_kernel_function(kernel: Kernel, prog_type: int, redirect: str,
                                                       output: str) -> None:
    xlated, log = _load_helpers(kernel, prog_type)
    calls = re.findall(r"call (\S+)#(\d+)$", xlated, re.M)
    assert calls == [("bpf_user_rnd_u32", "7"), ("bpf_ktime_get_ns", "5"), (redirect, "23"), (output, "25"),
                     ("bpf_tail_call", "12")]
    # the verifier log prints the stream before the fixups, with the UAPI names
    assert "call bpf_get_prandom_u32#7" in log and "call bpf_redirect#23" in log
    assert "bpf_user_rnd_u32" not in log


def test_bpf_to_bpf_calls_name_the_callee_jit_symbol(kernel: Kernel) -> None:
    """Without BTF func info the callee's name is ``F``; the tag is SHA-1 (6.12) of the callee as
    jit_subprogs leaves it — the bytes Linux 6.18 hashes with SHA-256 to the tags it printed."""
    prog = prog_load(kernel, LoadAttrs(prog_type=XDP, insns=Insns.from_bytes(NESTED), license="GPL")).program
    insns = prog.insns
    starts = subprog_starts(insns)
    assert starts == [0, 3, 6]
    sha1 = {s: hashlib.sha1(subprog_tag_input(insns, starts, i)).hexdigest()[:16] for i, s in enumerate(starts)}
    sha256 = {s: hashlib.sha256(subprog_tag_input(insns, starts, i)).hexdigest()[:16] for i, s in enumerate(starts)}
    assert {s: sha256[s] for s in (3, 6)} == NESTED_LINUX_618_TAGS
    assert jited_symbols(insns) == {s: f"bpf_prog_{t}_F" for s, t in sha1.items()}
    lines = [re.sub(r"^ *\d+: ", "", line) for line in prog.xlated_text().splitlines()]
    assert lines[1] == f"(85) call pc+1#bpf_prog_{sha1[3]}_F"
    assert lines[3] == f"(85) call pc+2#bpf_prog_{sha1[6]}_F"
    # sub1's own call, as its tag covers it: off = the callee's subprogram index, imm = 1
    assert struct.unpack_from("<hi", subprog_tag_input(insns, starts, 1), 2) == (2, 1)


def test_xlated_json_uses_the_same_names(kernel: Kernel) -> None:
    prog = prog_load(kernel, LoadAttrs(prog_type=XDP, insns=Insns.from_bytes(NESTED), license="GPL")).program
    text = [i["disasm"] for i in prog.xlated_json()]
    assert any(d.startswith("(85) call pc+1#bpf_prog_") and d.endswith("_F") for d in text)


# -- the live kernel --------------------------------------------------------------------------------------

def _bpf(cmd: BpfCmd, a: BpfAttr) -> int:
    from pybpf.kernel.syscall import live_bpf

    return live_bpf(cmd, a)


def _live_map(map_type: MapType, n: int, fds: list[int]) -> int:
    a = BpfAttr()
    a.map_create.map_type, a.map_create.key_size, a.map_create.value_size, a.map_create.max_entries = (
        int(map_type), 4, 4, n)
    fd = _bpf(BpfCmd.MAP_CREATE, a)
    assert fd >= 0, fd
    fds.append(fd)
    return fd


def _live_xlated(code: bytes, prog_type: int, fds: list[int]) -> str:
    a = BpfAttr()
    p = a.prog_load
    ib, lb = ctypes.create_string_buffer(code, len(code)), ctypes.create_string_buffer(b"GPL")
    p.prog_type, p.insn_cnt, p.insns, p.license = prog_type, len(code) // 8, addr_of(ib), addr_of(lb)
    fd = _bpf(BpfCmd.PROG_LOAD, a)
    assert fd >= 0, fd
    fds.append(fd)
    pin = f"/sys/fs/bpf/pybpf_xlated_names_{os.getpid()}"
    pb = ctypes.create_string_buffer(pin.encode())
    a = BpfAttr()
    a.obj.pathname, a.obj.bpf_fd = addr_of(pb), fd
    assert _bpf(BpfCmd.OBJ_PIN, a) == 0
    try:
        assert BPFTOOL is not None
        return subprocess.run([BPFTOOL, "prog", "dump", "xlated", "pinned", pin], check=True, capture_output=True,
                              text=True).stdout
    finally:
        os.unlink(pin)


def _normalize(listing: str) -> list[str]:
    """Map ids, helper-call suffixes (a kernel address offset in Linux, the helper id in pybpf) and
    subprogram tags (SHA-256 in 6.18, SHA-1 in 6.12: checked above) aside."""
    out = []
    for line in listing.splitlines():
        line = re.sub(r"map\[id:\d+\]", "map[id:M]", line)
        line = re.sub(r"(call [a-z_0-9]+)#-?\d+$", r"\1#H", line)
        out.append(re.sub(r"#bpf_prog_[0-9a-f]{16}_", "#bpf_prog_TAG_", line))
    return out


@pytest.mark.kernel
@pytest.mark.skipif(BPFTOOL is None or os.geteuid() != 0 or not Path("/sys/fs/bpf").is_dir(),
                    reason="needs bpftool, root and bpffs")
@pytest.mark.parametrize("prog_type", [XDP, SCHED_CLS])
def test_same_listing_as_bpftool(kernel: Kernel, live: bool, prog_type: int) -> None:
    fds: list[int] = []
    try:
        perf, jmp = _live_map(MapType.PERF_EVENT_ARRAY, 2, fds), _live_map(MapType.PROG_ARRAY, 2, fds)
        linux = _live_xlated(helpers_prog(perf, jmp), prog_type, fds)
        ours, _ = _load_helpers(kernel, prog_type)
        assert _normalize(ours) == _normalize(linux), f"--- linux\n{linux}--- pybpf\n{ours}"
        linux = _live_xlated(NESTED, prog_type, fds)
        ours = prog_load(kernel, LoadAttrs(prog_type=prog_type, insns=Insns.from_bytes(NESTED),
                                           license="GPL")).program.xlated_text()
        assert _normalize(ours) == _normalize(linux)
        tags = re.findall(r"#bpf_prog_([0-9a-f]{16})_F$", linux, re.M)
        assert tags == [NESTED_LINUX_618_TAGS[3], NESTED_LINUX_618_TAGS[6]] or all(
            t in ours for t in tags)  # a 6.18 kernel (SHA-256), or a 6.12 one printing pybpf's own tags
    finally:
        for fd in reversed(fds):
            os.close(fd)
