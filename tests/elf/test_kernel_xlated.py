"""The live kernel keeps, instruction for instruction, the stream pybpf's reader produces.

bpftool (libbpf) loads the fixture; ``bpftool prog dump xlated ... file`` gives the instructions the
kernel kept after verification. They must be pybpf's stream except where the verifier rewrites:
context loads (``ctx->data`` becomes a 64-bit load at the kernel's offset), map references (the
loader's fd becomes the map's id), bpf-to-bpf calls (the kernel moves the relative offset into
``off`` and puts the subprogram's index into ``imm``). kernel_check.c is written so that these are
the only rewrites. Needs root, bpftool and a bpffs at /sys/fs/bpf.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pybpf.elf import ObjectSpec, RelocKind
from pybpf.isa import Insn, Insns, PseudoCall

OBJ = Path(__file__).resolve().parents[1] / "data" / "objects"
BPFFS = Path("/sys/fs/bpf")

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(shutil.which("bpftool") is None, reason="bpftool not installed"),
    pytest.mark.skipif(os.geteuid() != 0, reason="loading programs needs root"),
    pytest.mark.skipif(not BPFFS.is_dir(), reason="no bpffs at /sys/fs/bpf"),
]


def bpftool_xlated(obj: Path, prog: str, *extra: str) -> bytes:
    """``bpftool prog dump xlated`` of ``prog`` after ``bpftool prog loadall obj`` (pins removed)."""
    pin = BPFFS / f"pybpf_elf_test_{os.getpid()}"
    try:
        r = subprocess.run(["bpftool", "prog", "loadall", str(obj), str(pin)], capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"the kernel refused the object: {r.stderr.strip()[-300:]}")
        return subprocess.run(
            ["bpftool", "prog", "dump", "xlated", "pinned", str(pin / prog), *extra],
            check=True,
            capture_output=True,
        ).stdout
    finally:
        if pin.exists():
            shutil.rmtree(pin, ignore_errors=True)


def kernel_xlated(obj: Path, prog: str, tmp_path: Path) -> Insns:
    out = tmp_path / "xlated.bin"
    bpftool_xlated(obj, prog, "file", str(out))
    return Insns.from_bytes(out.read_bytes(), strict=False)


def test_kernel_keeps_our_stream(tmp_path: Path) -> None:
    obj = OBJ / "kernel_check.o"
    prog = ObjectSpec.from_path(str(obj)).programs["kernel_check"]
    theirs = kernel_xlated(obj, "kernel_check", tmp_path)
    ours = prog.insns
    assert ours.slot_count == theirs.slot_count
    map_refs = {r.insn_idx: r for r in prog.relocations if r.kind == RelocKind.MAP_VALUE}
    rewritten = {"ctx": 0, "map": 0, "call": 0}
    for (slot, a), (_, b) in zip(ours.items(), theirs.items(), strict=True):
        if a == b:
            continue
        if a.code == b.code == 0x85 and a.src == b.src == PseudoCall.CALL:
            assert b.off == a.imm, f"call at {slot}"  # relative target kept, moved to off
            rewritten["call"] += 1
        elif slot in map_refs:
            assert (b.code, b.src, b.dst, b.imm_hi) == (a.code, a.src, a.dst, a.imm_hi), f"lddw at {slot}"
            rewritten["map"] += 1
        elif a.cls == b.cls and a.cls.name == "LDX" and (a.dst, a.src) == (b.dst, b.src):
            assert slot in (0, 1), f"only the two context loads may change, not {slot}: {a} vs {b}"
            rewritten["ctx"] += 1
        else:
            pytest.fail(f"insn {slot}: ours {a}, kernel's {b}")
    assert rewritten == {"ctx": 2, "map": 2, "call": 2}


def test_kernel_xlated_of_the_seed_demo(tmp_path: Path) -> None:
    """The demo's array lookup is inlined by the verifier; everything before it is ours as is."""
    obj = OBJ / "seed" / "demo_clang.o"
    prog = ObjectSpec.from_path(str(obj)).programs["xdp_program"]
    theirs = kernel_xlated(obj, "xdp_program", tmp_path)
    (rel,) = prog.relocations
    assert list(theirs)[: prog.insns.pos_of(rel.insn_idx)] == list(prog.insns)[: prog.insns.pos_of(rel.insn_idx)]
    lddw: Insn = theirs.at(rel.insn_idx)
    assert (lddw.code, lddw.src) == (0x18, 1)
    assert theirs[-1].code == 0x95


def source_lines(text: str) -> list[tuple[int, str]]:
    """``[(insn index, source text)]``: the ``; ...`` lines of an xlated dump and the instruction
    each one annotates."""
    out: list[tuple[int, str]] = []
    pending: list[str] = []
    for line in text.splitlines():
        if line.startswith("; "):
            pending.append(line[2:])
        elif (m := re.match(r"\s*(\d+): ", line)) is not None:
            out.extend((int(m.group(1)), p) for p in pending)
            pending = []
    return out


EXAMPLES = sorted(
    p for sub in ("seed", "bench") for p in (OBJ / sub).glob("*.o") if "legacy" not in p.name
)  # libbpf 1.x (bpftool) cannot open the legacy maps section


@pytest.mark.parametrize("obj", EXAMPLES, ids=[f"{p.parent.name}/{p.stem}" for p in EXAMPLES])
def test_line_info_gives_bpftools_source_lines(obj: Path) -> None:
    """pybpf's line info (``insn.meta.source``) is what ``bpftool prog dump xlated`` prints as
    ``; source`` lines: the same texts in the same order and, where the verifier did not change the
    program's length (no inlined map lookups), on the same instructions."""
    spec = ObjectSpec.from_path(str(obj))
    (name,) = spec.programs
    prog = spec.programs[name]
    text = bpftool_xlated(obj, name).decode()
    theirs = source_lines(text)
    ours = [(slot, i.meta.source.text.lstrip()) for slot, i in prog.insns.items() if i.meta.source is not None]
    assert len(ours) == len(prog.line_info) > 0
    assert [t for _, t in ours] == [t for _, t in theirs]
    last = int(re.findall(r"^\s*(\d+): ", text, re.M)[-1])
    kernel_slots = last + (2 if re.search(rf"^\s*{last}: \(18\)", text, re.M) else 1)
    if kernel_slots == prog.insns.slot_count:
        assert ours == theirs
