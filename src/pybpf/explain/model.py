"""One program through every stage pybpf has, as data: what ``pybpf explain`` shows.

A BPF program changes form several times between the C file and the packet verdict, and each
change is somebody's decision: the compiler's instructions, the loader's relocations and linked
subprograms, the verifier's proof and its rewrites (map addresses, inlined lookups, context
conversion), the JIT's machine code, and finally what one run does to a packet and to the maps.
:func:`explain` records each stage of one program of an object file as a :class:`Stage` — facts
(``summary``), the listing of that stage (``body``) and the same as JSON-able ``data`` — so that a
reader can follow one instruction from source line to x86-64 bytes.

The stages stop where the program stops: a program the verifier rejects has no rewrites, no machine
code and no run, and its verifier stage carries the kernel's log.
"""

from __future__ import annotations

import difflib
import os
import struct
import time
from dataclasses import dataclass, field
from typing import Any

from pybpf import uapi
from pybpf.elf import ObjectSpec
from pybpf.errors import BpfError, PybpfError, VerifierError
from pybpf.isa import Insns
from pybpf.isa.disasm import bpftool_callbacks, kernel_insn_text, llvm_insn_text
from pybpf.loader import Collection, LoadOptions, Program
from pybpf.progtypes import descriptor

__all__ = ["Explanation", "Stage", "default_packet", "explain"]

_XDP_ACTIONS = {a.value: f"XDP_{a.name}" for a in uapi.XdpAction}
_TC_ACTIONS = {-1: "TC_ACT_UNSPEC", 0: "TC_ACT_OK", 1: "TC_ACT_RECLASSIFY", 2: "TC_ACT_SHOT", 3: "TC_ACT_PIPE",
               4: "TC_ACT_STOLEN", 5: "TC_ACT_QUEUED", 6: "TC_ACT_REPEAT", 7: "TC_ACT_REDIRECT"}
_MAX_MAP_ENTRIES_SHOWN = 64


@dataclass(slots=True)
class Stage:
    """One stage: ``name`` (stable key), ``title``, facts, the listing, and JSON data."""

    name: str
    title: str
    summary: list[str] = field(default_factory=list)
    body: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"stage": self.name, "title": self.title, "summary": self.summary, **self.data}


@dataclass(slots=True)
class Explanation:
    """The stages of one program, in order, and whether it made it to the end."""

    object: str
    program: str
    stages: list[Stage] = field(default_factory=list)
    accepted: bool | None = None

    def stage(self, name: str) -> Stage | None:
        return next((s for s in self.stages if s.name == name), None)

    def to_json(self) -> dict[str, Any]:
        return {"object": self.object, "program": self.program, "accepted": self.accepted,
                "stages": [s.to_json() for s in self.stages]}


def default_packet() -> bytes:
    """A 64-byte Ethernet/IPv4/UDP frame (10.0.0.1:1234 -> 10.0.0.2:80), the run stage's default input."""
    payload = bytes(range(64 - 42))
    udp = struct.pack("!HHHH", 1234, 80, 8 + len(payload), 0) + payload
    ip_hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                         bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
    csum = sum(struct.unpack("!10H", ip_hdr))
    while csum >> 16:
        csum = (csum & 0xFFFF) + (csum >> 16)
    ip_hdr = ip_hdr[:10] + struct.pack("!H", ~csum & 0xFFFF) + ip_hdr[12:]
    eth = bytes.fromhex("020000000002" "020000000001" "0800")
    return eth + ip_hdr + udp


def explain(
    path: str | os.PathLike[str],
    *,
    program: str | None = None,
    data_in: bytes | None = None,
    engine: str = "interpreter",
    log_level: int = 2,
) -> Explanation:
    """Carry program ``program`` (default: the object's first) of the object at ``path`` through
    every stage and record each. Errors of reading the object are raised (nothing to explain);
    a verifier rejection is recorded in the verifier stage."""
    spec = ObjectSpec.from_path(os.fspath(path))
    if not spec.programs:
        raise PybpfError(f"{os.fspath(path)}: the object has no programs")
    name = program or next(iter(spec.programs))
    if name not in spec.programs:
        raise PybpfError(f"{os.fspath(path)}: no program named {name!r} (has: {', '.join(spec.programs)})")
    ps = spec.programs[name]
    ex = Explanation(object=os.fspath(path), program=name)
    ex.stages.append(_object_stage(spec, ps))
    ex.stages.append(_source_stage(ps))
    ex.stages.append(_loader_stage(ps))

    started = time.perf_counter()
    try:
        coll = Collection.from_spec(spec, LoadOptions(log_level=log_level, programs=[name], engine=engine))
    except VerifierError as e:
        ex.accepted = False
        ex.stages.append(_rejected_stage(e, time.perf_counter() - started))
        return ex
    load_s = time.perf_counter() - started
    with coll:
        prog = coll.programs[name]
        ex.accepted = True
        ex.stages.append(_verifier_stage(prog, load_s))
        ex.stages.append(_rewrites_stage(ps, prog, coll))
        ex.stages.append(_jit_stage(prog))
        run = _run_stage(prog, coll, data_in, engine)
        if run is not None:
            ex.stages.append(run)
    return ex


# -- the stages ------------------------------------------------------------------------------------


def _type_name(t: Any) -> str:
    return uapi.bpftool_name(t) if t is not None else "unknown"


def _object_stage(spec: ObjectSpec, ps: Any) -> Stage:
    used = sorted({r.target for r in ps.relocations if getattr(r, "target", None) in spec.maps})
    st = Stage("object", "the object file (ELF, as the loader reads it)")
    st.summary = [
        f"program {ps.name}: section {ps.section!r} -> program type {_type_name(ps.prog_type)}"
        + (f", expected attach type {_type_name(ps.expected_attach_type)}" if ps.expected_attach_type else ""),
        f"license {spec.license!r}" + (f", kernel version {spec.kernel_version:#x}" if spec.kernel_version else ""),
        f"{len(spec.programs)} program(s) in the object, {len(spec.maps)} map(s)",
    ]
    maps = []
    for m in spec.maps.values():
        row = {"name": m.name, "type": _type_name(m.type), "bytes_key": m.key_size, "bytes_value": m.value_size,
               "max_entries": m.max_entries, "flags": m.flags, "origin": str(m.origin), "used": m.name in used}
        maps.append(row)
        st.body.append(f"map {m.name}: {row['type']} key {m.key_size}B value {m.value_size}B "
                       f"max_entries {m.max_entries} flags {m.flags:#x} (defined by {row['origin']})"
                       + ("" if row["used"] else "  [not used by this program]"))
    st.data = {"section": ps.section, "type": _type_name(ps.prog_type), "license": spec.license, "maps": maps}
    return st


def _source_stage(ps: Any) -> Stage:
    st = Stage("source", "the C source, from BTF line info")
    lines: list[dict[str, Any]] = []
    last = None
    for idx, insn in ps.insns.items():
        src = insn.meta.source
        if src is None or (src.file, src.line) == last:
            continue
        last = (src.file, src.line)
        lines.append({"insn": idx, "file": os.path.basename(src.file), "line": src.line, "text": src.text.strip()})
    if not lines:
        st.summary = ["no line info in the object (compile with -g to see the C source here)"]
    else:
        st.summary = [f"{len(lines)} source line(s) from {lines[0]['file']}"]
        st.body = [f"{r['file']}:{r['line']:<5} {r['text']}    (from insn {r['insn']})" for r in lines]
    st.data = {"lines": lines}
    return st


def _loader_stage(ps: Any) -> Stage:
    st = Stage("loader", "the loader's instruction stream (what libbpf hands to bpf(2)), LLVM dialect")
    relocs = {r.insn_idx: r for r in ps.relocations}
    rows = []
    for idx, insn in ps.insns.items():
        if insn.meta.symbol:
            st.body.append(f"<{insn.meta.symbol}>:")
        text = llvm_insn_text(insn)
        note = ""
        r = relocs.get(idx)
        if r is not None:
            note = f"    ; relocation: {r.kind.value if hasattr(r.kind, 'value') else r.kind} -> {r.target}"
        elif insn.meta.reference:
            note = f"    ; -> {insn.meta.reference}"
        st.body.append(f"{idx:6d}:  {text}{note}")
        rows.append({"pc": idx, "text": text, "relocation": r.target if r is not None else None})
    subs = list(getattr(ps, "subprograms", []) or [])
    st.summary = [f"{len(ps.insns)} instructions ({ps.insns.slot_count} slots), {len(relocs)} relocation(s)"
                  + (f", subprograms linked: {', '.join(map(str, subs))}" if subs else "")]
    st.data = {"insns": rows, "subprograms": [str(s) for s in subs]}
    return st


def _rejected_stage(e: VerifierError, seconds: float) -> Stage:
    st = Stage("verifier", "the verifier: REJECTED")
    st.summary = [f"rejected with errno {e.errno} ({os.strerror(e.errno or 0)}): {e.message}"]
    if e.insn_idx is not None:
        st.summary.append(f"at insn {e.insn_idx}" + (f" ({e.source_line})" if e.source_line else ""))
    st.summary.append(f"verification took {seconds * 1e3:.1f} ms")
    st.body = e.log.rstrip("\n").splitlines()
    st.data = {"accepted": False, "errno": e.errno, "message": e.message, "insn": e.insn_idx, "log": e.log}
    return st


def _verifier_stage(prog: Program, seconds: float) -> Stage:
    st = Stage("verifier", "the verifier: accepted")
    log = prog.verifier_log.rstrip("\n")
    stats = next((ln for ln in reversed(log.splitlines()) if ln.startswith("processed ")), "")
    st.summary = ["accepted: every path proved safe", stats, f"load + verification took {seconds * 1e3:.1f} ms"]
    st.summary = [s for s in st.summary if s]
    st.body = log.splitlines()
    st.data = {"accepted": True, "stats": stats, "log": log}
    return st


def _kernel_lines(insns: Insns, call_name: Any) -> list[str]:
    cbs = bpftool_callbacks(call_name)
    return [kernel_insn_text(i, cbs) for i in insns]


def _rewrites_stage(ps: Any, prog: Program, coll: Collection) -> Stage:
    from pybpf.kernel.program import internal_call_name

    st = Stage("rewrites", "the verifier's rewrites: bpftool prog dump xlated")
    ids = {name: m.id for name, m in coll.maps.items()}
    before = _kernel_lines(ps.with_map_fds(lambda n: ids.get(n, 0)), internal_call_name)
    after = _kernel_lines(prog.insns, internal_call_name)
    diff = list(difflib.unified_diff(before, after, "loader", "xlated", n=1, lineterm=""))
    added = sum(1 for ln in diff if ln.startswith("+") and not ln.startswith("+++"))
    removed = sum(1 for ln in diff if ln.startswith("-") and not ln.startswith("---"))
    st.summary = [f"{len(ps.insns)} -> {len(prog.insns)} instructions: {removed} rewritten or removed, "
                  f"{added} written (map fds became map[id:N], inlined lookups, context conversions, guards)"]
    st.body = prog.xlated().rstrip("\n").splitlines()
    if diff:
        st.body += ["", "what changed (loader stream -> xlated, kernel dialect):", *diff[2:]]
    st.data = {"xlated": prog.xlated(), "diff": diff}
    return st


def _jit_stage(prog: Program) -> Stage:
    from pybpf.kernel.program import internal_call_name

    st = Stage("jit", "the x86-64 JIT: machine code per eBPF instruction")
    got = prog.kernel_program.jit_image()
    if got is None:
        st.summary = ["the JIT did not compile this program"]
        return st
    image, base = got
    from pybpf.jit import compile_program
    from pybpf.jit.dump import dump_jited

    started = time.perf_counter()
    try:
        compile_program(prog.insns, verified=True)
        compile_ms: float | None = (time.perf_counter() - started) * 1e3
    except PybpfError:
        compile_ms = None
    text = dump_jited(image, prog.insns, name=prog.name, tag=prog.kernel_program.tag.hex(), base_address=base,
                      show_insns=True, call_name=internal_call_name)
    st.summary = [f"{image.code_size} bytes of x86-64 for {len(prog.insns)} eBPF instructions"
                  + (f", compiled in {compile_ms:.2f} ms" if compile_ms is not None else "")]
    st.body = text.rstrip("\n").splitlines()
    st.data = {"bytes_jited": image.code_size, "compile_ms": compile_ms, "dump": text}
    return st


def _snapshot(coll: Collection) -> dict[str, dict[bytes, bytes]]:
    out: dict[str, dict[bytes, bytes]] = {}
    for name, m in coll.maps.items():
        try:
            if m.max_entries > _MAX_MAP_ENTRIES_SHOWN and not name.endswith((".data", ".bss")):
                continue
            out[name] = dict(m.raw().items_raw())
        except (PybpfError, TypeError):
            continue  # maps without a key/value view (ring buffers, queues, prog arrays...)
    return out


def _verdict(prog_type: int, retval: int) -> str:
    if prog_type == uapi.ProgType.XDP:
        return _XDP_ACTIONS.get(retval, f"{retval} (not an XDP action)")
    if prog_type in (uapi.ProgType.SCHED_CLS, uapi.ProgType.SCHED_ACT):
        signed = retval - (1 << 32) if retval & 0x80000000 else retval
        return _TC_ACTIONS.get(signed, str(signed))
    if prog_type == uapi.ProgType.SOCKET_FILTER:
        return f"keep {retval} byte(s)" if retval else "drop"
    return str(retval)


def _run_stage(prog: Program, coll: Collection, data_in: bytes | None, engine: str) -> Stage | None:
    try:
        kind = descriptor(int(prog.type)).test_run
    except BpfError:
        return None
    if kind not in ("xdp", "skb"):
        return None
    packet = default_packet() if data_in is None else data_in
    st = Stage("run", f"one run (BPF_PROG_TEST_RUN, engine {engine})")
    before = _snapshot(coll)
    try:
        res = prog.run(packet, engine=engine)
    except PybpfError as e:
        st.summary = [f"the run failed: {e}"]
        st.data = {"error": str(e)}
        return st
    after = _snapshot(coll)
    verdict = _verdict(int(prog.type), res.retval)
    st.summary = [f"input: {len(packet)}-byte packet; return value {res.retval} = {verdict}"]
    out = bytes(res.data_out or b"")
    if out != packet:
        changed = sum(a != b for a, b in zip(out, packet, strict=False)) + abs(len(out) - len(packet))
        st.summary.append(f"the program changed the packet: {changed} byte(s) differ, length {len(packet)} -> "
                          f"{len(out)}")
        st.body += ["data_out:", *_hexdump(out)]
    else:
        st.summary.append("the packet came out unchanged")
    changes = []
    for name, entries in after.items():
        old = before.get(name, {})
        for key, value in entries.items():
            if old.get(key) != value:
                changes.append({"map": name, "key": key.hex(" "), "old": (old.get(key) or b"").hex(" ") or None,
                                "new": value.hex(" ")})
        changes.extend({"map": name, "key": key.hex(" "), "old": old[key].hex(" "), "new": None}
                       for key in old.keys() - entries.keys())
    if changes:
        st.summary.append(f"{len(changes)} map entr{'y' if len(changes) == 1 else 'ies'} changed")
        for c in changes:
            st.body.append(f"map {c['map']}: key {c['key']}: {c['old'] or '(absent)'} -> {c['new'] or '(deleted)'}")
    else:
        st.summary.append("no map entry changed")
    if res.trace:
        st.body += ["trace_printk:", *str(res.trace).rstrip("\n").splitlines()]
    st.data = {"retval": res.retval, "verdict": verdict, "data_out_len": len(out), "map_changes": changes}
    return st


def _hexdump(data: bytes) -> list[str]:
    return [f"  {off:04x}: {data[off:off + 16].hex(' ')}" for off in range(0, len(data), 16)]
