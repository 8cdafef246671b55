"""Comparing pybpf's streams with what libbpf hands to bpf(2) (tools/libbpf_dump.c's output).

Shared by tests/elf/test_libbpf_equivalence.py (committed references) and
tests/elf/test_libbpf_live.py (the system's libbpf, live, with the running kernel's BTF).
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

from pybpf.elf import ObjectSpec, ProgramSpec, RelocKind
from pybpf.uapi import BPF_OBJ_NAME_LEN

ROOT = Path(__file__).resolve().parents[2]
_GEN_SRC = {5: 1, 6: 2}  # BPF_PSEUDO_MAP_IDX[_VALUE] -> BPF_PSEUDO_MAP_FD / _VALUE


def normalise(spec: ObjectSpec, prog: ProgramSpec, ref: dict) -> tuple[bytes, bytes]:
    """``(ours, libbpf's)`` with only the loader's immediates made equal: map fds (after checking
    that the ``lddw`` names the same map), kfunc/ksym BTF ids, and CO-RE relocations pybpf left
    pending. Asserts that both sides reference the same maps at the same slots."""
    ours = bytearray(prog.insns.encode())
    theirs = bytearray(bytes.fromhex(ref["insns"]))
    mapped: set[int] = set()
    for r in prog.relocations:
        o = r.insn_idx * 8
        if r.kind in (RelocKind.MAP, RelocKind.MAP_VALUE, RelocKind.KCONFIG):
            assert o + 16 <= len(theirs), f"map reference at insn {r.insn_idx} outside libbpf's stream"
            want = spec.maps[r.target].name[: BPF_OBJ_NAME_LEN - 1]
            assert ref["maps"].get(str(r.insn_idx)) == want, f"insn {r.insn_idx}: libbpf names another map"
            src = theirs[o + 1] >> 4
            theirs[o + 1] = (theirs[o + 1] & 0x0F) | (_GEN_SRC.get(src, src) << 4)
            ours[o + 4 : o + 8] = theirs[o + 4 : o + 8]
            mapped.add(r.insn_idx)
        elif r.kind in (RelocKind.KFUNC, RelocKind.KSYM):
            for buf in (ours, theirs):  # the kernel BTF id (and fd index) libbpf looked up
                buf[o + 2 : o + 8] = b"\0" * 6
                if r.kind == RelocKind.KSYM:
                    buf[o + 12 : o + 16] = b"\0" * 4
    assert set(map(int, ref["maps"])) == mapped, "libbpf has map references pybpf does not"
    for c in prog.core_relocations:
        if c.status == "pending":
            o = c.insn_idx * 8
            ours[o : o + 8] = theirs[o : o + 8] = b"\0" * 8
    return bytes(ours), bytes(theirs)


def btf_ext_mismatches(spec: ObjectSpec, prog: ProgramSpec, ref: dict) -> list[str]:
    """What differs from libbpf in what comes with the instructions: the BTF blob
    (``BPF_BTF_LOAD``; ``btf`` hex or ``btf_sha256``) and the func/line info records. Nothing is
    compared where libbpf loaded the program without BTF (the kernel refused the object's BTF and
    libbpf, for which BTF is optional, went on without it)."""
    if ref.get("btf") == "":
        return []
    out = []
    ours_btf = spec.btf.raw if spec.btf is not None else b""
    if "btf" in ref and bytes.fromhex(ref["btf"]) != ours_btf:
        out.append("btf")
    if "btf_sha256" in ref and hashlib.sha256(ours_btf).hexdigest() != ref["btf_sha256"]:
        out.append("btf")
    for what, ours in (("func_info", prog.func_info_bytes()), ("line_info", prog.line_info_bytes())):
        if ref.get(what) is not None and bytes.fromhex(ref[what]) != ours:
            out.append(what)
    return out


def differing_slots(ours: bytes, theirs: bytes) -> list[int]:
    """Raw slots where the two streams differ (all of them if the lengths differ)."""
    if len(ours) != len(theirs):
        return list(range(max(len(ours), len(theirs)) // 8))
    return [i // 8 for i in range(0, len(ours), 8) if ours[i : i + 8] != theirs[i : i + 8]]


def build_dumper(out_dir: Path) -> Path | None:
    """tools/libbpf_dump.c built against the system's libbpf (tools/build_testdata.py's
    ``build_libbpf_dump``), or ``None`` where there is no C compiler or no libbpf-dev."""
    spec = importlib.util.spec_from_file_location("build_testdata", ROOT / "tools" / "build_testdata.py")
    assert spec is not None and spec.loader is not None
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    exe: Path | None = tool.build_libbpf_dump(out_dir)
    return exe
