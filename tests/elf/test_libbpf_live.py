"""The system's libbpf, live: what it hands to bpf(2) equals pybpf's stream, CO-RE included.

tools/libbpf_dump.c is built against the installed libbpf and run as ``each``: every program of an
object is loaded on its own (only it autoloaded) and its ``BPF_PROG_LOAD`` input is captured at the
system call, with the BTF blob and func/line info records it came with. pybpf reads the same object
with the running kernel's BTF as CO-RE target (as libbpf resolves CO-RE against it), so only map
fds and kfunc/ksym BTF ids are masked.

Covered: every committed object libbpf can open (the fixtures, the seed demo and the six bench
programs built with clang and with zig), and — marked slow — the Linux 6.12 verifier-selftest
corpus (``$PYBPF_VST``, default /work/vst). Needs root, bpf(2), a bpffs, cc and libbpf-dev;
skips cleanly otherwise.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pybpf.btf import BtfSpec
from pybpf.elf import ObjectSpec
from vst_corpus import vst_corpus_dir

sys.path.insert(0, str(Path(__file__).parent))
from libbpf_ref import btf_ext_mismatches, build_dumper, differing_slots, normalise

OBJ = Path(__file__).resolve().parents[1] / "data" / "objects"
VMLINUX = Path("/sys/kernel/btf/vmlinux")
VST = vst_corpus_dir()

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(os.geteuid() != 0, reason="loading programs needs root"),
    pytest.mark.skipif(not Path("/sys/fs/bpf").is_dir(), reason="no bpffs at /sys/fs/bpf"),
    pytest.mark.skipif(not VMLINUX.is_file(), reason="the kernel exposes no BTF"),
]


@pytest.fixture(scope="module")
def dumper(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    exe = build_dumper(tmp_path_factory.mktemp("libbpf_dump"))
    if exe is None:
        pytest.skip("no C compiler or no libbpf-dev to build tools/libbpf_dump.c")
    yield exe


@pytest.fixture(scope="module")
def kernel_btf() -> BtfSpec:
    return BtfSpec.from_bytes(VMLINUX.read_bytes())


def compare_object(dumper: Path, path: Path, kernel_btf: BtfSpec) -> dict[str, str]:
    """``{program: "ok" | why not}`` for one object; ``{}`` if libbpf cannot open it."""
    r = subprocess.run([str(dumper), "each", str(path)], capture_output=True, text=True, timeout=600, check=False)
    assert r.returncode == 0, f"libbpf_dump failed on {path.name}: {r.stderr[-500:]}"
    ref = json.loads(r.stdout)
    if ref["open_error"]:
        return {}
    spec = ObjectSpec.from_path(str(path), core_target=kernel_btf)
    out = {}
    for name, p in ref["progs"].items():
        if name not in spec.programs:
            out[name] = "libbpf loads it, pybpf does not see it as a program"
        elif p["insns"] is None:
            out[name] = f"libbpf did not reach bpf(2) ({p['load_error']})"
        else:
            try:
                diff = differing_slots(*normalise(spec, spec.programs[name], p))
            except AssertionError as e:
                out[name] = f"maps differ: {e}"
                continue
            ext = btf_ext_mismatches(spec, spec.programs[name], p)
            if diff or ext:
                out[name] = f"instructions differ at {diff[:10]}, {ext} differ"
            else:
                out[name] = "ok" if p["btf"] or spec.btf is None else "ok (libbpf dropped the BTF)"
    return out


COMMITTED = sorted(p.with_name(p.name.replace(".libbpf.json", ".o")) for p in OBJ.rglob("*.libbpf.json"))


@pytest.mark.parametrize("path", COMMITTED, ids=[p.relative_to(OBJ).with_suffix("").as_posix() for p in COMMITTED])
def test_committed_objects(dumper: Path, kernel_btf: BtfSpec, path: Path) -> None:
    result = compare_object(dumper, path, kernel_btf)
    assert result, "libbpf could open this object when its reference was made"
    assert set(result) == set(ObjectSpec.from_path(str(path)).programs)
    assert {k: v for k, v in result.items() if v != "ok"} == {}  # BTF and line info compared too


@pytest.mark.slow
@pytest.mark.skipif(not (VST / "manifest.json").is_file(), reason=f"verifier-selftest corpus not found at {VST}")
def test_verifier_selftest_corpus(dumper: Path, kernel_btf: BtfSpec) -> None:
    """Every corpus program libbpf hands to bpf(2) is pybpf's stream; the objects libbpf cannot
    open at all are the ones using features newer than it (arena maps need libbpf >= 1.4)."""
    manifest = json.loads((VST / "manifest.json").read_text())
    compared = 0
    unopened, bad = [], {}
    for obj in manifest["objects"]:
        result = compare_object(dumper, VST / "obj" / obj, kernel_btf)
        if not result:
            unopened.append(obj)
        compared += sum(v.startswith("ok") for v in result.values())
        bad.update({f"{obj}:{k}": v for k, v in result.items() if not v.startswith("ok")})
    assert bad == {}
    assert all("arena" in o for o in unopened), unopened
    assert compared + sum(
        len(ObjectSpec.from_path(str(VST / "obj" / o)).programs) for o in unopened
    ) == len(manifest["programs"])
