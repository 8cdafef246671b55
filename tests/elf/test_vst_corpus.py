"""The Linux 6.12 verifier-selftest corpus: every object opens, every listed program is found.

The corpus is built by shared/tools/verifier-selftests/build (95 objects, 1,369 programs) and lives
outside the repository; ``$PYBPF_VST`` points at it (default /work/vst). The test skips when absent.

The manifest derives program types with its own prefix table; where that table and libbpf's
SEC() rules disagree, pybpf follows libbpf, and the disagreements are listed here with the reason.
"""

from __future__ import annotations

import json
from collections import defaultdict

import pytest

from pybpf.elf import ObjectSpec
from pybpf.uapi import bpftool_name
from vst_corpus import vst_corpus_dir

VST = vst_corpus_dir()
MANIFEST = VST / "manifest.json"

# (object, program) -> the type libbpf gives it, where the manifest's table differs
MANIFEST_ERRATA = {
    # libbpf: SEC_DEF("raw_tp.w+", RAW_TRACEPOINT_WRITABLE); the manifest has no "raw_tp.w" entry
    # and falls back to the "raw_tp" prefix
    ("verifier_global_subprogs.o", "arg_tag_ctx_raw_tp_writable"): "raw_tracepoint_writable",
    ("verifier_raw_tp_writable.o", "tracepoint_writable_reject_variable_offset"): "raw_tracepoint_writable",
}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not MANIFEST.is_file(), reason=f"verifier-selftest corpus not found at {VST} (set PYBPF_VST)"),
]


def _manifest() -> dict:
    return json.loads(MANIFEST.read_text())


def test_every_object_opens_and_every_program_is_found() -> None:
    m = _manifest()
    by_obj: dict[str, list[dict]] = defaultdict(list)
    for p in m["programs"]:
        by_obj[p["object"]].append(p)
    refused: dict[str, str] = {}
    found = 0
    mismatches = []
    for obj in m["objects"]:
        try:
            spec = ObjectSpec.from_path(str(VST / "obj" / obj))
        except Exception as e:  # recorded, then asserted empty: a refusal must say why
            refused[obj] = f"{type(e).__name__}: {e}"
            continue
        for p in by_obj[obj]:
            prog = spec.programs.get(p["function"])
            if prog is None:
                mismatches.append((obj, p["function"], "not found"))
                continue
            section = ("" if prog.autoload else "?") + prog.section
            ptype = bpftool_name(prog.prog_type) if prog.prog_type is not None else None
            expected_type = MANIFEST_ERRATA.get((obj, p["function"]), p["prog_type"])
            if section != p["section"] or ptype != expected_type:
                mismatches.append((obj, p["function"], section, ptype, p["section"], p["prog_type"]))
                continue
            found += 1
        # nothing more, nothing less: the programs pybpf finds are the manifest's programs
        assert set(spec.programs) == {p["function"] for p in by_obj[obj]}, obj
    assert refused == {}
    assert mismatches == []
    assert found == len(m["programs"]) == 1369
    assert len(m["objects"]) == 95


def test_corpus_relocations_resolve() -> None:
    """Every call is linked and every map reference names a map of its object."""
    m = _manifest()
    calls = maps = pending_core = 0
    for obj in m["objects"]:
        spec = ObjectSpec.from_path(str(VST / "obj" / obj))
        for prog in spec.programs.values():
            for r in prog.relocations:
                if r.kind.value == "call":
                    calls += 1
                    target = prog.insns.jump_target(r.insn_idx)
                    assert prog.insns.at(target).meta.symbol == r.target
                elif r.kind.value in ("map", "map_value", "kconfig"):
                    maps += 1
                    assert r.target in spec.maps
            pending_core += sum(c.status == "pending" for c in prog.core_relocations)
    assert calls > 100 and maps > 500
    # CO-RE against kernel-internal types waits for kernel BTF (task_struct, bpf_map, file, ...)
    assert pending_core > 0
