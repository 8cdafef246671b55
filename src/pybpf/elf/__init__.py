"""BPF object files → inert specs (:class:`ObjectSpec`, :class:`ProgramSpec`, :class:`MapSpec`).

``ObjectSpec.from_path("prog.o")`` reads an ELF object the way libbpf opens and relocates it —
programs by SEC() name, maps in all three definition styles, global data, subprograms linked,
BTF line/func info attached — without touching the kernel. See docs/architecture.md, "elf".
"""

from __future__ import annotations

from pybpf.elf.load import UAPI_CORE_TYPES, apply_core, read_btf
from pybpf.elf.maps import internal_map_name, object_name
from pybpf.elf.sections import SECTION_DEFS, SecDef, SectionMatch, find_sec_def, match_section
from pybpf.elf.spec import (
    CoreRelocation,
    Extern,
    ExternKind,
    MapOrigin,
    MapSpec,
    ObjectSpec,
    Pinning,
    ProgramSpec,
    Relocation,
    RelocKind,
)

__all__ = [
    "SECTION_DEFS",
    "UAPI_CORE_TYPES",
    "CoreRelocation",
    "Extern",
    "ExternKind",
    "MapOrigin",
    "MapSpec",
    "ObjectSpec",
    "Pinning",
    "ProgramSpec",
    "RelocKind",
    "Relocation",
    "SecDef",
    "SectionMatch",
    "apply_core",
    "find_sec_def",
    "internal_map_name",
    "match_section",
    "object_name",
    "read_btf",
]
