"""pybpf links and relocates exactly as libbpf does: instruction streams compared with libbpf's own.

``tests/data/objects/NAME.libbpf.json`` holds what libbpf (1.1, the distribution's) produced for
each fixture after ``bpf_object__relocate``: ``bpf_program__insns()`` per program, in ``load`` mode
(maps really created; map references carry fds, listed in ``fds``) or ``gen`` mode (libbpf's
loader generation: map references carry the map's index, ``BPF_PSEUDO_MAP_IDX[_VALUE]``). The
references are produced by tools/build_testdata.py (see tests/data/objects/README.md).

Where libbpf needs the kernel and pybpf leaves the job to the loader, the comparison masks only
the immediate the loader will write: map fds/indices, kfunc/ksym BTF ids, and CO-RE relocations
against kernel types (still pending here) or that gen mode leaves unapplied.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from pybpf.elf import ObjectSpec, ProgramSpec, RelocKind

OBJ = Path(__file__).resolve().parents[1] / "data" / "objects"
REFS = sorted(OBJ.glob("*.libbpf.json"))


def normalise(prog: ProgramSpec, ref: dict) -> tuple[bytes, bytes]:
    ours = bytearray(prog.insns.encode())
    theirs = bytearray(bytes.fromhex(ref["progs"][prog.name]))
    names = ref["maps"]
    index = {n: i for i, n in enumerate(names)}
    index.update({n[:15]: i for i, n in enumerate(names)})  # libbpf 1.1 kept long section names
    gen = ref["mode"] == "gen"
    for r in prog.relocations:
        o = r.insn_idx * 8
        if r.kind in (RelocKind.MAP, RelocKind.MAP_VALUE, RelocKind.KCONFIG):
            i = index[r.target]
            if gen:
                ours[o + 1] = (ours[o + 1] & 0x0F) | ((5 if r.kind == RelocKind.MAP else 6) << 4)
                ours[o + 4 : o + 8] = struct.pack("<i", i)
            else:
                ours[o + 4 : o + 8] = struct.pack("<i", ref["fds"][i])
        elif r.kind in (RelocKind.KFUNC, RelocKind.KSYM):
            for buf in (ours, theirs):  # the kernel BTF id (and fd index) libbpf looked up
                buf[o + 2 : o + 8] = b"\0" * 6
                if r.kind == RelocKind.KSYM:
                    buf[o + 12 : o + 16] = b"\0" * 4
    for c in prog.core_relocations:
        if c.status == "pending" or gen:
            o = c.insn_idx * 8
            ours[o : o + 8] = theirs[o : o + 8] = b"\0" * 8
    return bytes(ours), bytes(theirs)


CASES = [(ref, name) for ref in REFS for name in json.loads(ref.read_text())["progs"]]


@pytest.mark.parametrize(("ref_path", "prog_name"), CASES, ids=[f"{r.stem.split('.')[0]}:{n}" for r, n in CASES])
def test_same_instructions_as_libbpf(ref_path: Path, prog_name: str) -> None:
    ref = json.loads(ref_path.read_text())
    spec = ObjectSpec.from_path(str(ref_path.with_name(ref_path.name.replace(".libbpf.json", ".o"))))
    if prog_name not in spec.programs:
        # libbpf lists .text functions as (non-loadable) programs too
        assert prog_name in spec.subprograms
        return
    ours, theirs = normalise(spec.programs[prog_name], ref)
    assert len(ours) == len(theirs)
    diff = [i // 8 for i in range(0, len(ours), 8) if ours[i : i + 8] != theirs[i : i + 8]]
    assert diff == [], f"instructions differ at {diff}"


def test_references_cover_the_interesting_fixtures() -> None:
    stems = {r.name.split(".")[0] for r in REFS}
    assert {"subprogs", "globals", "maps_btf", "externs", "core"} <= stems
