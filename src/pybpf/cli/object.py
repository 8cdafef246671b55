"""``pybpf object``: what the loader finds in an object file, without loading anything.

    pybpf object show OBJ [-j|-p]

Programs: name, section, program type (bpftool's names), instruction count, subprograms linked,
relocations applied and pending. Maps: name, type, key/value sizes, max_entries, flags, pinning,
and where the definition came from (BTF ``.maps``, legacy ``bpf_map_def``, iproute2
``bpf_elf_map``, global data, kconfig, struct_ops). JSON field names follow bpftool's
(``name``, ``type``, ``bytes_key``, ``bytes_value``, ``max_entries``, ``flags``...).
"""

from __future__ import annotations

from typing import Any

import click

from pybpf.cli.output import Output, get_output
from pybpf.elf import MapSpec, ObjectSpec, ProgramSpec, RelocKind
from pybpf.uapi import bpftool_name

__all__ = ["cli", "object_json", "object_text"]


@click.group(name="object")
def cli() -> None:
    """Inspect BPF object files (ELF) as the loader sees them."""


def _prog_type(p: ProgramSpec) -> str:
    return bpftool_name(p.prog_type) if p.prog_type is not None else "unknown"


def _attach(p: ProgramSpec) -> str | None:
    return bpftool_name(p.expected_attach_type) if p.expected_attach_type is not None else None


def prog_json(p: ProgramSpec) -> dict[str, Any]:
    """One program of ``object show -j``: bpftool's field names where bpftool has the field."""
    pending = p.pending
    applied = [r for r in p.relocations if r.resolved]
    d: dict[str, Any] = {
        "name": p.name,
        "section": p.section,
        "type": _prog_type(p),
        "expected_attach_type": _attach(p),
        "autoload": p.autoload,
        "insns": p.insns.slot_count,
        "bytes_xlated": p.insns.slot_count * 8,
        "subprograms": list(p.subprograms),
        "relocations": {
            "applied": len(applied),
            "pending": len(pending),
            "list": [
                {
                    "insn": r.insn_idx,
                    "kind": r.kind.value,
                    "target": r.target,
                    "offset": r.offset,
                    "resolved": r.resolved,
                }
                for r in p.relocations
            ],
        },
        "core_relocations": [
            {
                "insn": c.insn_idx,
                "kind": c.relo.kind.name,
                "type": c.type_name,
                "access": c.relo.access_str,
                "status": c.status,
                **({"reason": c.reason} if c.reason else {}),
            }
            for c in p.core_relocations
        ],
        "maps": list(p.maps_used),
        "gpl_compatible": p.license in _GPL_COMPATIBLE,
        "prog_flags": p.prog_flags,
    }
    if p.attach_to:
        d["attach_to"] = p.attach_to
    return d


# the kernel's license_is_gpl_compatible()
_GPL_COMPATIBLE = {"GPL", "GPL v2", "GPL and additional rights", "Dual BSD/GPL", "Dual MIT/GPL", "Dual MPL/GPL"}


def map_json(m: MapSpec) -> dict[str, Any]:
    """One map of ``object show -j`` (``bytes_key``/``bytes_value`` as in ``bpftool map show``)."""
    d: dict[str, Any] = {
        "name": m.name,
        "type": m.map_type_name,
        "flags": m.flags,
        "bytes_key": m.key_size,
        "bytes_value": m.value_size,
        "max_entries": m.max_entries,
        "pinning": m.pinning.value,
        "origin": m.origin.value,
        "section": m.section,
        "frozen": m.frozen,
    }
    if m.real_name and m.real_name != m.name:
        d["real_name"] = m.real_name
    if m.key_type_id or m.value_type_id:
        d["btf_key_type_id"] = m.key_type_id
        d["btf_value_type_id"] = m.value_type_id
    if m.inner_map is not None:
        d["inner_map"] = map_json(m.inner_map)
    if m.values:
        d["values"] = {str(k): v for k, v in sorted(m.values.items())}
    if m.struct_ops_progs:
        d["struct_ops"] = dict(m.struct_ops_progs)
    if m.numa_node:
        d["numa_node"] = m.numa_node
    if m.map_extra:
        d["map_extra"] = m.map_extra
    return d


def object_json(spec: ObjectSpec) -> dict[str, Any]:
    """``pybpf -j object show``: the object, its programs, maps, externs and warnings."""
    return {
        "name": spec.name,
        "file": spec.path,
        "license": spec.license,
        "kernel_version": spec.kernel_version,
        "programs": [prog_json(p) for p in spec.programs.values()],
        "maps": [map_json(m) for m in spec.maps.values()],
        "externs": [
            {"name": e.name, "kind": e.kind.value, "weak": e.is_weak, "resolved": e.resolved} for e in spec.externs
        ],
        "unknown_sections": list(spec.unknown_sections),
        "warnings": list(spec.warnings),
    }


def object_text(spec: ObjectSpec) -> str:
    """``pybpf object show``: one header line per program and map, details indented below."""
    lines = [f"object {spec.name}  file {spec.path}  license {spec.license or '(none)'}"]
    if spec.kernel_version is not None:
        lines[0] += f"  kernel_version {spec.kernel_version:#x}"
    for p in spec.programs.values():
        head = f"prog {p.name}  section {'?' if not p.autoload else ''}{p.section}  type {_prog_type(p)}"
        if _attach(p):
            head += f"  attach_type {_attach(p)}"
        lines.append(head)
        applied = sum(1 for r in p.relocations if r.resolved)
        kinds: dict[str, int] = {}
        for r in p.relocations:
            kinds[r.kind.value] = kinds.get(r.kind.value, 0) + 1
        detail = ", ".join(f"{n} {k}" for k, n in kinds.items()) or "none"
        lines.append(
            f"\tinsns {p.insns.slot_count}  subprogs {','.join(p.subprograms) or '-'}  "
            f"relocations {applied} applied, {len(p.pending)} pending ({detail})"
        )
        maps = p.maps_used
        if maps:
            lines.append(f"\tmaps {','.join(maps)}")
        if p.core_relocations:
            st: dict[str, int] = {}
            for c in p.core_relocations:
                st[c.status] = st.get(c.status, 0) + 1
            lines.append("\tco-re " + ", ".join(f"{n} {s}" for s, n in st.items()))
        kf = [r.target for r in p.relocations if r.kind == RelocKind.KFUNC]
        if kf:
            lines.append(f"\tkfuncs {','.join(dict.fromkeys(kf))}")
    for m in spec.maps.values():
        lines.append(f"map {m.name}  type {m.map_type_name}  origin {m.origin.value}  flags {m.flags:#x}")
        extra = f"\tkey {m.key_size}B  value {m.value_size}B  max_entries {m.max_entries}  pinning {m.pinning.value}"
        if m.frozen:
            extra += "  frozen"
        lines.append(extra)
        if m.inner_map is not None:
            im = m.inner_map
            lines.append(
                f"\tinner {im.map_type_name}  key {im.key_size}B  value {im.value_size}B  max_entries {im.max_entries}"
            )
        if m.values:
            lines.append("\tvalues " + ", ".join(f"[{k}]={v}" for k, v in sorted(m.values.items())))
        if m.struct_ops_progs:
            lines.append("\tstruct_ops " + ", ".join(f"{k}={v}" for k, v in m.struct_ops_progs.items()))
    lines.extend(
        f"extern {e.name}  kind {e.kind.value}{'  weak' if e.is_weak else ''}{'  resolved' if e.resolved else ''}"
        for e in spec.externs
    )
    lines.extend(f"unknown section {s}" for s in spec.unknown_sections)
    lines.extend(f"warning: {w}" for w in spec.warnings)
    return "\n".join(lines)


@cli.command(name="show")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("-j", "--json", "json_", is_flag=True, help="JSON output.")
@click.option("-p", "--pretty", is_flag=True, help="Pretty JSON output.")
def show(path: str, json_: bool, pretty: bool) -> None:
    """Programs and maps of object file PATH."""
    out = get_output()
    if json_ or pretty:
        out = Output(json=True, pretty=pretty or out.pretty, debug=out.debug)
    spec = ObjectSpec.from_path(path)
    out.emit(object_json(spec), object_text(spec))
