"""The verifier against the running kernel: the same raw programs loaded into Linux with bpf(2)
and into pybpf's verifier must get the same verdict, errno and log.

The live kernel here is newer (6.18) than the one pybpf reproduces (6.12); where they differ 6.12
wins, and the comparison removes what 6.18 alone prints:

* register liveness marks (``R0_w=``): gone in 6.18 — pybpf's ``liveness_marks=False`` prints the
  6.18 style for this comparison (the default prints 6.12's);
* ``mark_read N`` in the statistics line: 6.18's new liveness analysis no longer walks read marks;
* at log level 2, 6.18's liveness pre-pass (``Live regs before insn:`` and its table), its stack
  liveness lines (``(0) frame 0 insn 3 +written -8``, ``live stack update done``) and the loop
  ``SCC enter``/``SCC exit`` markers. Programs with loops are compared at level 1 only (an SCC line
  between an instruction and its state moves the state to a line of its own).

The log buffer through the syscall seam (:func:`pybpf.kernel.syscall.sys_bpf`) is compared byte for
byte with the kernel's on programs whose logs carry no liveness marks, including buffers too small
for the log (ENOSPC, the tail kept, ``log_true_size``).
"""

from __future__ import annotations

import ctypes
import difflib
import errno
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from pybpf.errors import VerifierError
from pybpf.isa import Insns
from pybpf.isa.asm import assemble
from pybpf.uapi import BpfCmd, MapType, ProgType
from pybpf.verifier import verify
from pybpf.verifier.specmaps import SpecMap

pytestmark = pytest.mark.kernel

XDP, SOCKET, CGROUP_SKB = ProgType.XDP, ProgType.SOCKET_FILTER, ProgType.CGROUP_SKB

# the maps every case may use, created in the live kernel (fds substituted for the names)
MAPS = {"arr": (MapType.ARRAY, 4, 8, 4), "hash": (MapType.HASH, 8, 16, 16)}


@dataclass(frozen=True)
class Prog:
    name: str
    text: str | bytes
    prog_type: int = XDP
    loops: bool = False  # compared at log level 1 only
    levels: tuple[int, ...] = (1, 2)
    flags: int = 0
    # (6.18 text, 6.12 text) pairs: messages reworded after 6.12, applied to the kernel's log
    reworded: tuple[tuple[str, str], ...] = ()


def _calls(depth: int) -> str:
    """``depth`` nested bpf-to-bpf calls: main calls f1, f1 calls f2..."""
    return "\n".join(["call pc+1", "exit"] * depth + ["r0 = 0", "exit"])


PKT = "r2 = *(u32 *)(r1 +0)\nr3 = *(u32 *)(r1 +4)\nr4 = r2\nr4 += 14\n"
# a hash map: since 6.13 an array lookup with a constant in-bounds key is not "or_null" any more
LOOKUP = "r1 = 0\n*(u64 *)(r10 -8) = r1\nr2 = r10\nr2 += -8\nr1 = map[id:hash]\ncall bpf_map_lookup_elem#1\n"
# 6.12's check_stack_access_within_bounds says "indirect access to" for helper arguments
INDIRECT = (("invalid read from stack R2", "invalid indirect access to stack R2"),)

PROGS: tuple[Prog, ...] = (
    # control flow (check_cfg, check_subprogs, check_max_stack_depth)
    Prog("bounded_loop", "r0 = 0\nr0 += 1\nif r0 < 0x10 goto pc-2\nexit", loops=True),
    Prog("infinite_loop", "r0 = 0\ngoto pc-1\nexit"),
    Prog("infinite_loop_cond", "r0 = 0\nr1 = 0\nr1 += 0\nif r0 == 0x0 goto pc-2\nexit", loops=True),
    Prog("unreachable", "r0 = 0\nexit\nr0 = 1\nexit"),
    Prog("jump_over_lddw_into_its_middle", "r0 = 0\ngoto pc+1\nr0 = 0x1\nexit"),
    Prog("jump_into_lddw", "r0 = 0\nif r1 == 0x0 goto pc+1\nr0 = 0x1\nexit"),
    Prog("last_insn_not_exit", "r0 = 0"),
    Prog("last_insn_not_exit_after_exit", "r0 = 0\nexit\nr0 = 1"),
    Prog("jump_out_of_range", "r0 = 0\ngoto pc+5\nexit"),
    Prog("jump_out_of_range_back", "r0 = 0\ngoto pc-5\nexit"),
    Prog("call_depth_8", _calls(7)),
    Prog("call_depth_9", _calls(8)),
    Prog("call_out_of_range", "call pc+5\nr0 = 0\nexit"),
    Prog("combined_stack_too_large",
         "r1 = 0\n*(u64 *)(r10 -256) = r1\ncall pc+2\nr0 = 0\nexit\nr1 = 0\n*(u64 *)(r10 -300) = r1\nr0 = 0\nexit"),
    Prog("combined_stack_512",
         "r1 = 0\n*(u64 *)(r10 -256) = r1\ncall pc+2\nr0 = 0\nexit\nr1 = 0\n*(u64 *)(r10 -256) = r1\nr0 = 0\nexit"),
    Prog("unknown_opcode", bytes.fromhex("8d00000000000000" "9500000000000000")),
    # registers, scalars, stack
    Prog("uninit_r0", "exit"),
    Prog("uninit_src", "r0 = r2\nexit"),
    Prog("write_fp", "r10 = 0\nexit"),
    Prog("stack_spill_fill", "r1 = 7\n*(u64 *)(r10 -8) = r1\n*(u32 *)(r10 -16) = r1\nr0 = *(u64 *)(r10 -8)\nexit"),
    Prog("stack_out_of_bounds", "r0 = 0\n*(u64 *)(r10 -520) = r0\nexit"),
    Prog("stack_misaligned", "r0 = 0\n*(u32 *)(r10 -6) = r0\nexit", flags=1),
    Prog("div_by_zero_imm", "r0 = 1\nr0 /= 0\nexit"),
    Prog("invalid_shift", "r0 = 1\nr0 <<= 64\nexit"),
    Prog("branch_refinement", "r0 = *(u32 *)(r1 +0)\nif r0 > 0x10 goto pc+2\nr0 &= 0xf\nr0 += 1\nexit"),
    Prog("jmp32_bounds", "r0 = *(u32 *)(r1 +0)\nif w0 > 0x7 goto pc+3\nr2 = r10\nr2 += r0\nr0 = 0\nexit\nr0 = 1\n"
         "exit"),
    Prog("pointer_arith_on_ctx", "r1 += 4\nr0 = *(u32 *)(r1 +0)\nexit"),
    Prog("ctx_bad_offset", "r0 = *(u32 *)(r1 +600)\nexit"),
    # packets (XDP)
    Prog("packet_checked", PKT + "if r4 > r3 goto pc+1\nr0 = *(u8 *)(r2 +13)\nr0 = 2\nexit"),
    Prog("packet_one_past", PKT + "if r4 > r3 goto pc+1\nr0 = *(u8 *)(r2 +14)\nr0 = 2\nexit"),
    Prog("packet_unchecked", "r2 = *(u32 *)(r1 +0)\nr0 = *(u8 *)(r2 +0)\nr0 = 2\nexit"),
    Prog("packet_end_arith", "r3 = *(u32 *)(r1 +4)\nr3 += 1\nr0 = 2\nexit"),
    # maps and helpers
    Prog("lookup_no_null_check", LOOKUP + "r0 = *(u64 *)(r0 +0)\nr0 = 0\nexit"),
    Prog("lookup_checked", LOOKUP + "if r0 == 0x0 goto pc+1\nr0 = *(u64 *)(r0 +0)\nr0 = 0\nexit"),
    Prog("lookup_value_oob", LOOKUP + "if r0 == 0x0 goto pc+1\nr0 = *(u64 *)(r0 +16)\nr0 = 0\nexit"),
    Prog("lookup_value_var_off", LOOKUP + "if r0 == 0x0 goto pc+4\nr1 = *(u32 *)(r0 +0)\nr1 &= 0xf\n"
         "r0 += r1\nr0 = *(u8 *)(r0 +0)\nr0 = 0\nexit"),
    Prog("array_update_value_ok", "r1 = 0\n*(u64 *)(r10 -8) = r1\n*(u64 *)(r10 -16) = r1\nr2 = r10\nr2 += -16\n"
         "r3 = r10\nr3 += -8\nr4 = 0\nr1 = map[id:arr]\ncall bpf_map_update_elem#2\nr0 = 0\nexit"),
    Prog("hash_key_too_small", "r2 = r10\nr2 += -4\nr1 = map[id:hash]\ncall bpf_map_lookup_elem#1\nr0 = 0\nexit",
         reworded=INDIRECT),
    Prog("hash_key_uninit", "r2 = r10\nr2 += -8\nr1 = map[id:hash]\ncall bpf_map_lookup_elem#1\nr0 = 0\nexit"),
    Prog("helper_not_for_type", "r1 = r1\ncall bpf_skb_load_bytes#26\nr0 = 0\nexit"),
    Prog("helper_clobbers_r1", "call bpf_ktime_get_ns#5\nr0 = r1\nexit"),
    # return values
    Prog("cgroup_skb_retval_out_of_range", "r0 = 2\nexit", prog_type=CGROUP_SKB),
    Prog("cgroup_skb_retval_unknown", "r0 = *(u32 *)(r1 +0)\nexit", prog_type=CGROUP_SKB),
    # socket filters: LD_ABS
    Prog("ld_abs_ok", "r6 = r1\nr0 = *(u8 *)skb[12]\nexit", prog_type=SOCKET),
    Prog("ld_abs_without_r6_ctx", "r0 = *(u8 *)skb[12]\nexit", prog_type=SOCKET),
)

_STRIP_618 = re.compile(
    r"^(Live regs before insn:|SCC (enter|exit) \(\d+\)|\(\d+(,\d+)?\) (frame \d+ insn \d+ [+-]|live stack update)"
    r"|\s*\d*\s+\d+: [0-9.]{10} ).*\n",
    re.M,
)


def _normalize(log: str, level: int) -> str:
    if level & 2:
        log = _STRIP_618.sub("", log)
    log = re.sub(r"(\(18\) r\d+ = )0x[0-9a-f]{16}", r"\1MAP_ADDRESS", log)  # a map's kernel address
    return re.sub(r"mark_read \d+", "mark_read N", log)


@dataclass
class Live:
    fds: dict[str, int]


@pytest.fixture(scope="module")
def live() -> Iterator[Live]:
    from pybpf.kernel.attr import BpfAttr
    from pybpf.kernel.syscall import live_bpf

    if os.geteuid() != 0:
        pytest.skip("loading into the running kernel needs root")
    fds: dict[str, int] = {}
    for name, (mtype, ks, vs, n) in MAPS.items():
        a = BpfAttr()
        m = a.map_create
        m.map_type, m.key_size, m.value_size, m.max_entries = mtype, ks, vs, n
        m.map_name = name.encode()
        fd = live_bpf(BpfCmd.MAP_CREATE, a)
        if fd < 0:
            for f in fds.values():
                os.close(f)
            pytest.skip(f"bpf(2) is not available to this process ({errno.errorcode.get(-fd, fd)})")
        fds[name] = fd
    yield Live(fds)
    for f in fds.values():
        os.close(f)


def _code(p: Prog, fds: dict[str, int]) -> bytes:
    if isinstance(p.text, bytes):
        return p.text
    text = p.text
    for name, fd in fds.items():
        text = text.replace(f"map[id:{name}]", f"map[id:{fd}]")
    return assemble(text).encode()


def load_live(code: bytes, prog_type: int, level: int, log_size: int, flags: int = 0,
              side: object = None) -> tuple[int, bytes, int]:
    """PROG_LOAD through ``side`` (default: the running kernel): (fd or -errno, log buffer up to its
    NUL, log_true_size)."""
    from pybpf.kernel.attr import BpfAttr
    from pybpf.kernel.syscall import live_bpf

    call = side or live_bpf
    a = BpfAttr()
    p = a.prog_load
    ib = ctypes.create_string_buffer(code, len(code))
    lic = ctypes.create_string_buffer(b"GPL")
    log = ctypes.create_string_buffer(max(log_size, 1))
    p.prog_type, p.insn_cnt = prog_type, len(code) // 8
    p.insns, p.license = ctypes.addressof(ib), ctypes.addressof(lic)
    p.log_level, p.log_size, p.log_buf = level, log_size, ctypes.addressof(log) if log_size else 0
    p.prog_flags = flags
    fd = call(BpfCmd.PROG_LOAD, a)  # type: ignore[operator]
    if fd >= 0:
        os.close(fd) if side is None else None
    return fd, log.raw[:log_size].split(b"\0")[0], a.prog_load.log_true_size


def load_pybpf(code: bytes, p: Prog, level: int, fds: dict[str, int]) -> tuple[int, str]:
    maps = {fd: SpecMap(fd, name, *MAPS[name], has_btf=False) for name, fd in fds.items()}
    try:
        v = verify(Insns.from_bytes(code), prog_type=p.prog_type, maps=maps, log_level=level,
                   prog_flags=p.flags, liveness_marks=False)
    except VerifierError as e:
        return -e.errno, e.log
    return 0, v.log


CASES = [(p, lvl) for p in PROGS for lvl in p.levels if not (p.loops and lvl == 2)]


@pytest.mark.parametrize(("prog", "level"), CASES, ids=[f"{p.name}-L{lvl}" for p, lvl in CASES])
def test_same_verdict_errno_and_log_as_the_kernel(live: Live, prog: Prog, level: int) -> None:
    code = _code(prog, live.fds)
    fd, raw, _ = load_live(code, prog.prog_type, level, 1 << 22, prog.flags)
    ours, log = load_pybpf(code, prog, level, live.fds)
    assert (fd >= 0) == (ours == 0), (fd, ours, raw.decode())
    if fd < 0:
        assert ours == fd
    text = raw.decode()
    for new, old in prog.reworded:
        text = text.replace(new, old)
    want, got = _normalize(text, level), _normalize(log, level)
    assert got == want, "".join(difflib.unified_diff(want.splitlines(True), got.splitlines(True), "linux", "pybpf"))


# programs whose level-1 logs print no register state with liveness marks: the whole PROG_LOAD,
# log buffer included, can be compared through the syscall seam
SEAM = ("uninit_r0", "infinite_loop", "unreachable", "last_insn_not_exit", "jump_out_of_range", "unknown_opcode",
        "call_out_of_range", "jump_into_lddw")


@pytest.mark.parametrize("name", SEAM)
@pytest.mark.parametrize("log_size", [1 << 16, 64, 17, 2])
def test_log_buffer_through_the_syscall_seam(live: Live, tmp_path: object, name: str, log_size: int) -> None:
    from pybpf.kernel import Kernel
    from pybpf.kernel.syscall import sys_bpf

    prog = next(p for p in PROGS if p.name == name)
    code = _code(prog, live.fds)
    kernel = Kernel(str(tmp_path))

    def ours(cmd: int, attr: object) -> int:
        return sys_bpf(cmd, attr, kernel=kernel)  # type: ignore[arg-type]

    want = load_live(code, prog.prog_type, 1, log_size)
    got = load_live(code, prog.prog_type, 1, log_size, side=ours)
    assert got[0] == want[0]
    assert got[1] == want[1]  # the tail of the log that fits (rotating log), NUL-terminated
    assert got[2] == want[2]  # log_true_size: what the whole log needs
    if log_size < 64:
        assert got[0] == -errno.ENOSPC


def test_enospc_for_an_accepted_program_with_a_short_log(live: Live, tmp_path: object) -> None:
    """Linux 6.12 fails PROG_LOAD with ENOSPC when the log did not fit, even for a safe program."""
    from pybpf.kernel import Kernel
    from pybpf.kernel.syscall import sys_bpf

    kernel = Kernel(str(tmp_path))
    code = assemble("r0 = 2\nexit").encode()
    want = load_live(code, XDP, 1, 40)
    got = load_live(code, XDP, 1, 40, side=lambda c, a: sys_bpf(c, a, kernel=kernel))
    assert want[0] == got[0] == -errno.ENOSPC
    assert got[1:] == want[1:]


@pytest.mark.slow
def test_complexity_limit_as_the_kernel(live: Live) -> None:
    """A loop the verifier walks iteration by iteration hits the 1,000,000-instruction limit: E2BIG,
    ``BPF program is too large. Processed 1000001 insn``, and the same last 4 KiB of log (the
    kernel's rotating log keeps the tail; the truncation turns E2BIG into ENOSPC there)."""
    code = assemble("r0 = 0\nr0 += 1\nif r0 < 0x7fffffff goto pc-2\nexit").encode()
    fd, tail, true_size = load_live(code, XDP, 1, 4096)
    assert fd == -errno.ENOSPC
    with pytest.raises(VerifierError) as e:
        verify(Insns.from_bytes(code), prog_type=XDP, log_level=1, liveness_marks=False)
    assert e.value.errno == errno.E2BIG
    log = e.value.log
    assert len(log) + 1 == true_size
    assert _normalize(log[-(len(tail)):], 1) == _normalize(tail.decode(), 1)
    assert "BPF program is too large. Processed 1000001 insn\n" in log
