"""pybpf links and relocates exactly as libbpf does: instruction streams compared with what libbpf
hands to bpf(2).

Every ``NAME.libbpf.json`` under tests/data/objects/ (the fixtures, the seed demo and the bench
programs built with clang and with zig) holds, per program, the ``BPF_PROG_LOAD`` instructions
libbpf (the system's, 1.1) passed to the kernel, captured at the system call by
tools/libbpf_dump.c (``source: "bpf(2)"``), or where no program got that far libbpf's
loader-generation output (``source: "gen"``), and the map each map-referencing ``lddw`` names.
tools/build_testdata.py writes them (see tests/data/objects/README.md).

With the instructions come the program's BTF (``ObjectSpec.btf.raw``, after libbpf's fix-ups) and
its func/line info records: they must be libbpf's byte for byte too.

Only what the loader fills in later is masked: the map fd (after checking that the ``lddw`` names
the same map), kfunc/ksym BTF ids, and CO-RE relocations against kernel types, which pybpf leaves
pending without the kernel's BTF (tests/elf/test_libbpf_live.py compares those against libbpf with
the running kernel's BTF). Everything else must be equal, byte for byte.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from pybpf.elf import ObjectSpec

sys.path.insert(0, str(Path(__file__).parent))
from libbpf_ref import btf_ext_mismatches, differing_slots, normalise

OBJ = Path(__file__).resolve().parents[1] / "data" / "objects"
REFS = sorted(OBJ.rglob("*.libbpf.json"))
CASES = [(ref, name) for ref in REFS for name in json.loads(ref.read_text())["progs"]]


@pytest.mark.parametrize(
    ("ref_path", "prog_name"), CASES, ids=[f"{r.relative_to(OBJ).with_suffix('').stem}:{n}" for r, n in CASES]
)
def test_same_instructions_as_libbpf(ref_path: Path, prog_name: str) -> None:
    ref = json.loads(ref_path.read_text())
    spec = ObjectSpec.from_path(str(ref_path.with_name(ref_path.name.replace(".libbpf.json", ".o"))))
    assert prog_name in spec.programs, "libbpf loaded a program pybpf does not see as one"
    ours, theirs = normalise(spec, spec.programs[prog_name], ref["progs"][prog_name])
    assert len(ours) == len(theirs)
    assert differing_slots(ours, theirs) == []
    # and what comes with them: the fixed-up BTF and the func/line info records
    assert btf_ext_mismatches(spec, spec.programs[prog_name], ref["progs"][prog_name]) == []


def test_references_cover_the_interesting_objects() -> None:
    """The fixtures that exercise relocation, and the seed demo and every bench program with both
    compilers, have a reference captured at bpf(2)."""
    refs = {r.relative_to(OBJ).as_posix().removesuffix(".libbpf.json"): json.loads(r.read_text()) for r in REFS}
    assert {"subprogs", "globals", "maps_btf", "externs", "core", "kconfig"} <= set(refs)
    bench = sorted(p.stem for p in (OBJ.parents[2] / "bench" / "progs").glob("*.c"))
    assert len(bench) == 6
    for cc in ("clang", "zig"):
        assert f"seed/demo_{cc}" in refs
        assert {f"bench/{b}_{cc}" for b in bench} <= set(refs)
    for name in ("subprogs", "globals", "seed/demo_clang", "bench/xdp_subprog_calls_zig"):
        assert {p["source"] for p in refs[name]["progs"].values()} == {"bpf(2)"}, name
        assert all(p["btf_sha256"] and p["line_info"] for p in refs[name]["progs"].values()), name


def test_every_entry_program_has_a_reference() -> None:
    """Where libbpf could open an object, it handed every program pybpf finds to bpf(2)."""
    for ref_path in REFS:
        spec = ObjectSpec.from_path(str(ref_path.with_name(ref_path.name.replace(".libbpf.json", ".o"))))
        assert set(json.loads(ref_path.read_text())["progs"]) == set(spec.programs), ref_path.name
