"""Which helpers each program type of issue 4 may call, against the running kernel.

For XDP, SOCKET_FILTER, SCHED_CLS and SCHED_ACT and every helper id of Linux 6.12, a program that
calls the helper with scalar arguments is loaded on both sides with a verifier log: the load's
errno and the log's verdict line must be the same — "program of this type cannot use helper
bpf_X#N" where the type may not call it, the first argument check where it may.
"""

from __future__ import annotations

import ctypes
import os
import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from pybpf.kernel import Kernel
from pybpf.kernel.attr import BpfAttr, addr_of
from pybpf.kernel.syscall import live_bpf, sys_bpf
from pybpf.uapi import BpfCmd, HelperId

TYPES = {"xdp": 6, "socket_filter": 1, "sched_cls": 3, "sched_act": 4}
LAST_612_HELPER = max(int(h) for h in HelperId)
# Linux 6.13+ lets every program type with CAP_PERFMON call these (bpf_base_func_proto grew) and
# gave tc/socket programs bpf_get_netns_cookie / bpf_get_cgroup_classid; 6.12 refuses them.
NEWER_THAN_612 = {15, 16, 17, 22, 37, 55, 109, 117, 122, 141, 148, 156, 157, 176, 180, 191}


def _ins(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, dst | src << 4, off, imm)


def _load(call: Callable[[int, BpfAttr], int], close: Callable[[int], None], prog_type: int,
          helper: int) -> tuple[int, str]:
    """(errno or 0, the log's last line that is not an instruction, a source line or statistics)."""
    code = ctypes.create_string_buffer(b"".join(
        [*(_ins(0xB7, r) for r in range(1, 6)), _ins(0x85, imm=helper), _ins(0xB7, 0), _ins(0x95)]))
    lic = ctypes.create_string_buffer(b"GPL")
    log = ctypes.create_string_buffer(1 << 16)
    a = BpfAttr()
    p = a.prog_load
    p.prog_type, p.insn_cnt, p.insns, p.license = prog_type, 8, addr_of(code), addr_of(lic)
    p.log_level, p.log_size, p.log_buf = 1, 1 << 16, addr_of(log)
    fd = call(BpfCmd.PROG_LOAD, a)
    if fd >= 0:
        close(fd)
    lines = [line for line in log.value.decode(errors="replace").splitlines()
             if line and not line[0].isdigit() and not line.startswith((";", "processed"))]
    return (0 if fd >= 0 else -fd), (lines[-1] if lines else "")


@pytest.mark.kernel
@pytest.mark.parametrize("type_name", sorted(TYPES))
def test_allowed_helpers_match_linux(type_name: str, tmp_path: Path, live: bool) -> None:
    k = Kernel(tmp_path / "bpffs", ncpus=2)

    def ours(cmd: int, attr: BpfAttr) -> int:
        return sys_bpf(cmd, attr, kernel=k)

    def theirs(cmd: int, attr: BpfAttr) -> int:
        return live_bpf(cmd, attr)

    prog_type = TYPES[type_name]
    allowed = 0
    for helper in range(1, LAST_612_HELPER + 1):
        mine = _load(ours, k.close, prog_type, helper)
        linux = _load(theirs, os.close, prog_type, helper)
        if mine != linux and helper in NEWER_THAN_612:
            assert "cannot use helper" in mine[1], (helper, mine)  # refused, as by 6.12
            continue
        assert mine == linux, f"helper {helper}"
        allowed += "cannot use helper" not in mine[1]
    assert allowed > 50  # the check is not vacuous: many helpers reach their argument checks
