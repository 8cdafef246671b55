"""The seed demo: demo_invalid is rejected with the kernel's exact log; demo is accepted and its
xlated program has the kernel's shape (array lookup inlined, map id in the lddw)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pybpf.errors import VerifierError
from pybpf.isa import Insn, SourceLine
from pybpf.isa.asm import assemble
from pybpf.isa.disasm import disassemble
from pybpf.uapi import MapType, ProgType
from pybpf.verifier import verify

SEED = Path(__file__).resolve().parents[2] / "examples" / "seed-demo"
ADDR = re.compile(r"r1 = 0x[0-9a-f]+")


class KernelLikeArray:
    """An array map whose inline lookup has the kernel's shape (value area at 312, 8-byte slots)."""

    def __init__(self, map_id: int, name: str, key_size: int = 4, value_size: int = 4, max_entries: int = 1):
        self.id, self.name = map_id, name
        self.map_type = MapType.ARRAY
        self.key_size, self.value_size, self.max_entries, self.map_flags = key_size, value_size, max_entries, 0

    def gen_lookup(self) -> list[Insn]:
        elem = (self.value_size + 7) // 8 * 8
        return [Insn(0x07, 1, 0, 0, 312), Insn(0x61, 0, 2, 0, 0), Insn(0x35, 0, 0, 3, self.max_entries),
                Insn(0x67, 0, 0, 0, elem.bit_length() - 1), Insn(0x0F, 0, 1, 0, 0), Insn(0x05, 0, 0, 1, 0),
                Insn(0xB7, 0, 0, 0, 0)]


def program_from_log(log: str) -> list[Insn]:
    """The instructions a verifier log walks through, with their source lines (``; text @ f:n``)."""
    insns: list[Insn] = []
    pending: SourceLine | None = None
    for line in log.splitlines():
        if line.startswith("; "):
            text, _, where = line[2:].rpartition(" @ ")
            fname, _, num = where.rpartition(":")
            pending = SourceLine(fname, int(num), 0, text)
            continue
        m = re.match(r"^\d+: \(([0-9a-f]{2})\) (.*?)(?:\s+;.*)?$", line)
        if not m:
            continue
        text = m.group(2)
        if text.startswith("r1 = 0x"):
            text = "r1 = map[id:7]"
        insn = assemble(text)[0]
        if pending is not None:
            insn = insn.with_meta(source=pending)
            pending = None
        insns.append(insn)
    return insns


def expected_invalid_log() -> list[str]:
    text = (SEED / "demo_invalid.verifier-log.txt").read_text()
    body = text.split("-- BEGIN PROG LOAD LOG --\n", 1)[1].split("-- END PROG LOAD LOG --", 1)[0]
    return body.splitlines()


def test_demo_invalid_log_matches_the_kernel_line_for_line() -> None:
    expected = expected_invalid_log()
    insns = program_from_log("\n".join(expected))
    assert len(insns) == 8  # the path up to the failing insn (lddw counts once)
    insns += assemble("r0 = 2\nexit")
    maps = {7: KernelLikeArray(3, "pkt_counter")}
    with pytest.raises(VerifierError) as e:
        verify(insns, prog_type=ProgType.XDP, maps=maps, log_level=1, liveness_marks=False)
    got = e.value.log.splitlines()
    assert len(got) == len(expected)
    for g, w in zip(got, expected, strict=True):
        assert ADDR.sub("r1 = ADDR", g) == ADDR.sub("r1 = ADDR", w)
    assert e.value.errno == 13
    assert e.value.message == "R0 invalid mem access 'map_value_or_null'"
    assert e.value.insn_idx == 8
    assert e.value.source_line == "__sync_fetch_and_add(count, 1); @ demo_invalid.c:14"


def test_demo_invalid_log_in_6_12_style_marks_written_registers() -> None:
    expected = expected_invalid_log()
    insns = program_from_log("\n".join(expected)) + list(assemble("r0 = 2\nexit"))
    with pytest.raises(VerifierError) as e:
        verify(insns, prog_type=ProgType.XDP, maps={7: KernelLikeArray(3, "pkt_counter")}, log_level=1)
    log = e.value.log
    assert "0: (61) r1 = *(u32 *)(r1 +16)         ; R1_w=scalar(smin=0,smax=umax=0xffffffff" in log
    assert "6: (85) call bpf_map_lookup_elem#1    ; R0_w=map_value_or_null(id=1,map=pkt_counter,ks=4,vs=4)" in log
    assert "fp-8=mmmm????" in log


def demo_program() -> list[Insn]:
    text = (SEED / "demo.objdump.txt").read_text()
    insns = list(assemble(text, "llvm"))
    # the relocation names the map; in a PROG_LOAD the lddw carries the map's fd
    return [i.replace(src=1, imm=7) if i.code == 0x18 else i for i in insns]


def test_demo_is_accepted_and_xlated_has_the_kernel_shape() -> None:
    v = verify(demo_program(), prog_type=ProgType.XDP, maps={7: KernelLikeArray(29, "pkt_counter")}, log_level=1)
    ours = [line.split(": ", 1)[1] for line in disassemble(v.insns, "kernel").splitlines()]
    want = [line.split(": ", 1)[1] for line in (SEED / "demo.xlated.txt").read_text().splitlines()
            if re.match(r"^\s+\d+: \(", line)]
    assert ours == want
    assert v.used_maps[29].name == "pkt_counter"
    # the taken branch of the NULL check is pruned at 11: r1 is an imprecise scalar
    assert v.log.startswith("processed 13 insns (limit 1000000)")


@pytest.mark.toolchain
def test_compiled_demo_invalid(tmp_path: Path) -> None:
    clang = shutil.which("clang-19") or shutil.which("clang")
    if clang is None:
        pytest.skip("clang not installed")
    from pybpf.elf import ObjectSpec

    obj = tmp_path / "demo_invalid.o"
    inc = [f"-I{p}" for p in ("/usr/include/x86_64-linux-gnu",) if Path(p).is_dir()]
    r = subprocess.run([clang, "-O2", "-g", "-target", "bpf", *inc, "-c", str(SEED / "demo_invalid.c"), "-o",
                        str(obj)], capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"cannot compile: {r.stderr[:200]}")
    spec = ObjectSpec.from_path(str(obj))
    prog = spec.programs["xdp_program"]
    insns = prog.with_map_fds({"pkt_counter": 7})
    with pytest.raises(VerifierError) as e:
        verify(insns, prog_type=ProgType.XDP, maps={7: KernelLikeArray(3, "pkt_counter")}, log_level=1,
               liveness_marks=False)
    got = [ADDR.sub("r1 = ADDR", x) for x in e.value.log.splitlines()]
    assert got == [ADDR.sub("r1 = ADDR", x) for x in expected_invalid_log()]
