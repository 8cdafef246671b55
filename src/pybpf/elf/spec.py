"""The inert description of an object file: ``ObjectSpec`` → ``ProgramSpec`` + ``MapSpec``.

cilium/ebpf's split: reading an object produces a deterministic description with no side effects
(no fds, no kernel); the bpf(2) layer (:mod:`pybpf.loader`) creates the maps, writes their fds (or
ids) into the instructions the relocations point at, and loads the programs. Specs are mutable
dataclasses so a caller can adjust them before loading (``spec.maps["counter"].max_entries = 1024``);
:meth:`copy` gives an independent copy to patch.

Instruction streams are final except for what needs the kernel: every ``lddw`` that refers to a map
holds ``src = BPF_PSEUDO_MAP_FD`` (``imm = 0``) or ``src = BPF_PSEUDO_MAP_VALUE`` (``imm =
offset << 32``), with ``insn.meta.reference`` naming the :class:`MapSpec` and a :class:`Relocation`
recording it; bpf-to-bpf calls and ``BPF_PSEUDO_FUNC`` loads are already resolved (subprograms
appended the way libbpf does); externs (kfuncs, ksyms) stay pending with their names.
"""

from __future__ import annotations

import copy as _copy
import os
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

from pybpf.btf.ext import CoreRelo, FuncInfo, LineInfo
from pybpf.btf.spec import BtfSpec
from pybpf.errors import RelocationError
from pybpf.isa import Insn, Insns, PseudoCall, PseudoSrc
from pybpf.uapi import AttachType, MapType, ProgType

__all__ = [
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
]


PathArg = str | bytes | os.PathLike[str] | os.PathLike[bytes]
"""What the public API takes for a file name: ``str``, ``bytes`` or any ``os.PathLike`` (``pathlib.Path``)."""


def path_str(path: PathArg) -> str:
    """``path`` as text (``os.fspath``, bytes decoded with the file-system encoding), so that names,
    messages and ``ObjectSpec.path`` are always ``str``. Anything else — an ``int`` in particular,
    which ``open()`` would take for a file descriptor — is a ``TypeError``, as ``open()`` gives."""
    if not isinstance(path, str | bytes | os.PathLike):
        raise TypeError(f"expected a path (str, bytes or os.PathLike), not {type(path).__name__}")
    return os.fsdecode(os.fspath(path))


class MapOrigin(StrEnum):
    """Where a map definition came from (``pybpf object show`` prints the value)."""

    BTF = "btf"  # SEC(".maps") with __uint/__type (libbpf 1.x)
    LEGACY = "legacy"  # SEC("maps") struct bpf_map_def (libbpf < 1.0)
    IPROUTE2 = "iproute2"  # SEC("maps") struct bpf_elf_map (tc/iproute2)
    DATA = "global_data"  # .data / .rodata / .bss (and .data.* ...)
    KCONFIG = "kconfig"  # the .kconfig map holding CONFIG_* externs
    STRUCT_OPS = "struct_ops"  # SEC(".struct_ops") / SEC(".struct_ops.link")


class Pinning(StrEnum):
    """Pinning request of a map: libbpf's ``LIBBPF_PIN_BY_NAME``, iproute2's ``PIN_OBJECT_NS`` and
    ``PIN_GLOBAL_NS`` (``/sys/fs/bpf/tc/globals/<name>``)."""

    NONE = "none"
    BY_NAME = "by_name"
    OBJECT_NS = "object_ns"
    GLOBAL_NS = "global_ns"


@dataclass(slots=True)
class MapSpec:
    """A map to create. Field names follow ``bpf_attr`` for MAP_CREATE where one exists.

    ``values``: initial slots of a prog-array or map-in-map (``{index: program or map name}``);
    ``data``: initial contents of a global-data map's single value (``None`` for ``.bss``: zeros);
    ``frozen``: libbpf freezes the map after writing ``data`` (``.rodata``, ``.kconfig``);
    ``section``/``offset``: where the definition is in the ELF file; ``real_name`` is the
    untruncated name (``.rodata.str1.1``) where ``name`` was shortened for the kernel.
    """

    name: str
    type: MapType | int
    key_size: int
    value_size: int
    max_entries: int
    flags: int = 0
    numa_node: int = 0
    map_extra: int = 0
    pinning: Pinning = Pinning.NONE
    key_type_id: int = 0
    value_type_id: int = 0
    inner_map: MapSpec | None = None
    values: dict[int, str] = field(default_factory=dict)
    data: bytes | None = None
    frozen: bool = False
    origin: MapOrigin = MapOrigin.BTF
    section: str = ""
    offset: int = 0
    real_name: str = ""
    elf_map_id: int = 0  # iproute2 bpf_elf_map.id
    inner_id: int = 0  # iproute2 bpf_elf_map.inner_id
    inner_idx: int = 0  # iproute2 bpf_elf_map.inner_idx
    struct_ops_progs: dict[str, str] = field(default_factory=dict)  # member -> program

    def copy(self) -> MapSpec:
        """A deep copy (``values``, ``data``, the inner map), safe to change."""
        return _copy.deepcopy(self)

    @property
    def is_internal(self) -> bool:
        """A map libbpf creates for global data or kconfig (not declared as a map)."""
        return self.origin in (MapOrigin.DATA, MapOrigin.KCONFIG)

    @property
    def map_type_name(self) -> str:
        """bpftool's name of the type (``array``, ``lpm_trie``), or ``type N`` for an unknown one."""
        from pybpf.uapi import bpftool_name

        try:
            return bpftool_name(MapType(self.type))
        except ValueError:
            return f"type {int(self.type)}"


class RelocKind(StrEnum):
    """What a :class:`Relocation` refers to; the value is what ``pybpf object show -j`` prints."""

    MAP = "map"  # lddw src=BPF_PSEUDO_MAP_FD: the map's fd
    MAP_VALUE = "map_value"  # lddw src=BPF_PSEUDO_MAP_VALUE: map fd + offset into the value
    CALL = "call"  # bpf-to-bpf call to a subprogram (resolved)
    FUNC_ADDR = "func_addr"  # lddw src=BPF_PSEUDO_FUNC: a callback's address (resolved)
    KFUNC = "kfunc"  # call to an extern kernel function (needs the kernel's BTF id)
    KSYM = "ksym"  # lddw of an extern kernel variable (needs its BTF id or address)
    KCONFIG = "kconfig"  # lddw of a CONFIG_* extern: a MAP_VALUE into the .kconfig map


PENDING_KINDS = frozenset({RelocKind.MAP, RelocKind.MAP_VALUE, RelocKind.KFUNC, RelocKind.KSYM, RelocKind.KCONFIG})


@dataclass(frozen=True, slots=True)
class Relocation:
    """One reference in a program's final instruction stream.

    ``insn_idx`` is the raw slot in :attr:`ProgramSpec.insns`; ``target`` the map, subprogram or
    extern name; ``offset`` the byte offset into a map value (MAP_VALUE, KCONFIG); ``symbol`` the ELF
    symbol the relocation named. ``resolved`` is true where the reader finished the job (calls);
    map and extern references wait for the loader.
    """

    insn_idx: int
    kind: RelocKind
    target: str
    offset: int = 0
    symbol: str = ""

    @property
    def resolved(self) -> bool:
        """The reader finished it (calls, callback addresses); the rest waits for the loader."""
        return self.kind not in PENDING_KINDS


@dataclass(frozen=True, slots=True)
class CoreRelocation:
    """A CO-RE relocation at raw slot ``insn_idx`` of the final stream, with its outcome.

    ``status`` is ``"applied"`` (the instruction holds the target's value), ``"poisoned"`` (no
    target matched; libbpf's ``call 0xbad2310`` marker is in place) or ``"pending"`` (needs a target
    BTF, e.g. the kernel's, which the reader did not have; ``reason`` says so).
    """

    insn_idx: int
    relo: CoreRelo
    type_name: str
    status: str
    reason: str = ""


class ExternKind(StrEnum):
    """Where an extern lives: ``.kconfig`` (a value), ``.ksyms`` variable, or kfunc."""

    KCONFIG = "kconfig"
    KSYM = "ksym"
    KFUNC = "kfunc"


@dataclass(frozen=True, slots=True)
class Extern:
    """An ``extern`` the object uses: a ``.kconfig`` value, a ``.ksyms`` variable, or a kfunc.

    ``offset``/``size`` place a kconfig extern in the ``.kconfig`` map; ``resolved`` says whether
    the reader could supply its value (libbpf's virtual ``LINUX_*`` externs) — others are up to the
    loader (weak ones default to zero).
    """

    name: str
    kind: ExternKind
    btf_id: int
    is_weak: bool
    type_id: int = 0
    offset: int = 0
    size: int = 0
    resolved: bool = False


@dataclass(slots=True)
class ProgramSpec:
    """One entry-point program: a global function in a program section, with its subprograms
    appended (libbpf's ``bpf_object__relocate``)."""

    name: str
    section: str
    prog_type: ProgType | None
    expected_attach_type: AttachType | None
    insns: Insns
    license: str = ""
    kernel_version: int | None = None
    autoload: bool = True
    attach_to: str | None = None
    prog_flags: int = 0
    sec_def_pattern: str | None = None
    subprograms: tuple[str, ...] = ()
    relocations: tuple[Relocation, ...] = ()
    core_relocations: tuple[CoreRelocation, ...] = ()
    func_info: tuple[FuncInfo, ...] = ()
    line_info: tuple[LineInfo, ...] = ()
    btf: BtfSpec | None = None
    func_btf_id: int = 0
    section_offset: int = 0  # byte offset of the function in its ELF section
    size: int = 0  # bytes of the function itself (without appended subprograms)

    def copy(self) -> ProgramSpec:
        """An independent copy (fields hold immutable values, so a shallow copy suffices)."""
        # Insns, BtfSpec and the record tuples are immutable: a shallow copy is independent
        return replace(self)

    @property
    def maps_used(self) -> tuple[str, ...]:
        """Names of the maps the program refers to, in first-use order."""
        seen: dict[str, None] = {}
        for r in self.relocations:
            if r.kind in (RelocKind.MAP, RelocKind.MAP_VALUE, RelocKind.KCONFIG):
                seen.setdefault(r.target, None)
        return tuple(seen)

    @property
    def pending(self) -> tuple[Relocation, ...]:
        """Relocations the loader still has to resolve (map fds, externs)."""
        return tuple(r for r in self.relocations if not r.resolved)

    def with_map_fds(self, fds: Mapping[str, int] | Callable[[str], int]) -> Insns:
        """The instruction stream with every map reference's ``imm`` set to ``fds[map name]``
        (an fd for PROG_LOAD, or a map id for the post-load stream). Offsets of MAP_VALUE loads are
        kept in the upper half."""
        lookup = fds if callable(fds) else fds.__getitem__
        patched = list(self.insns)
        for r in self.relocations:
            if r.kind not in (RelocKind.MAP, RelocKind.MAP_VALUE, RelocKind.KCONFIG):
                continue
            pos = self.insns.pos_of(r.insn_idx)
            insn = patched[pos]
            try:
                value = int(lookup(r.target)) & 0xFFFFFFFF
            except KeyError:
                raise RelocationError(f"prog '{self.name}': no fd for map '{r.target}'") from None
            src = PseudoSrc.MAP_FD if r.kind == RelocKind.MAP else PseudoSrc.MAP_VALUE
            patched[pos] = insn.replace(src=src, imm=value | (insn.imm_hi << 32))
        return Insns(patched)

    def func_info_bytes(self) -> bytes:
        """``func_info`` as ``BPF_PROG_LOAD`` takes it: ``struct bpf_func_info`` records (8 bytes:
        ``insn_off`` in slots, BTF ``type_id``) — with ``btf.raw`` as the program's BTF,
        byte for byte what libbpf passes."""
        return b"".join(struct.pack("<II", r.insn_off, r.type_id) for r in self.func_info)

    def line_info_bytes(self) -> bytes:
        """``line_info`` as ``BPF_PROG_LOAD`` takes it: ``struct bpf_line_info`` records (16 bytes:
        ``insn_off`` in slots, file name and line text offsets into :attr:`btf`'s strings,
        ``line << 10 | col``)."""
        return b"".join(
            struct.pack("<IIII", r.insn_off, r.file_name_off, r.line_off, r.line_col) for r in self.line_info
        )

    def kfunc_calls(self) -> tuple[tuple[int, str], ...]:
        """``(insn_idx, kfunc name)`` for every call to an extern kernel function."""
        return tuple((r.insn_idx, r.target) for r in self.relocations if r.kind == RelocKind.KFUNC)


@dataclass(slots=True)
class ObjectSpec:
    """Everything an object file describes. Build with :meth:`from_path` / :meth:`from_bytes`.

    ``programs`` are entry points in libbpf's order (section index, then offset); ``maps`` in
    libbpf's order (BTF maps, global data, kconfig, struct_ops; legacy maps in symbol order);
    ``unknown_sections`` lists program sections whose name matches no SEC() definition and
    ``warnings`` everything else the reader noticed but did not refuse.
    """

    name: str
    path: str
    programs: dict[str, ProgramSpec] = field(default_factory=dict)
    maps: dict[str, MapSpec] = field(default_factory=dict)
    license: str = ""
    kernel_version: int | None = None
    btf: BtfSpec | None = None
    externs: tuple[Extern, ...] = ()
    subprograms: tuple[str, ...] = ()
    unknown_sections: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @classmethod
    def from_path(cls, path: PathArg, *, core_target: BtfSpec | None = None, name: str | None = None) -> ObjectSpec:
        """Read an object file (``path``: ``str``, ``bytes`` or ``os.PathLike``; ``.path`` keeps it as
        ``str``). ``core_target`` is the BTF that CO-RE relocations resolve against (e.g. the
        kernel's); without it only relocations against the UAPI context types (``struct
        __sk_buff``...) are applied and the rest stay pending."""
        from pybpf.elf.load import load_object

        path = path_str(path)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            from pybpf.errors import ElfError

            raise ElfError(f"cannot read: {e.strerror}", path=path) from None
        return load_object(data, path=path, name=name, core_target=core_target)

    @classmethod
    def from_bytes(
        cls, data: bytes, *, name: str = "obj", path: PathArg | None = None, core_target: BtfSpec | None = None
    ) -> ObjectSpec:
        """Read an object from memory; ``name`` is the object name (map name prefixes), ``path``
        (any path type, kept as ``str``) only labels messages. ``core_target`` as for :meth:`from_path`."""
        from pybpf.elf.load import load_object

        label = path_str(path) if path is not None else ""
        return load_object(data, path=label or f"<{name}>", name=name, core_target=core_target)

    def copy(self) -> ObjectSpec:
        """An independent copy: programs and maps can be changed without touching this one."""
        return replace(
            self,
            programs={k: v.copy() for k, v in self.programs.items()},
            maps={k: v.copy() for k, v in self.maps.items()},
        )

    def set_kconfig(self, config: str | Mapping[str, str | int | bool]) -> None:
        """Values for the object's ``CONFIG_*`` externs, from Kconfig text (``CONFIG_HZ=250``) or a
        mapping, with libbpf's parsing rules (see :func:`pybpf.elf.kconfig.set_kconfig`)."""
        from pybpf.elf.kconfig import set_kconfig

        set_kconfig(self, config)

    def check_loadable(self, program: str | None = None) -> None:
        """Raise :class:`~pybpf.errors.RelocationError` for what a loader must not hand to the
        kernel: unresolved strong or unknown ``.kconfig`` externs, pending CO-RE relocations of
        ``program`` (of every autoloaded program when ``None``). See
        :func:`pybpf.elf.kconfig.check_loadable`."""
        from pybpf.elf.kconfig import check_loadable

        check_loadable(self, program)

    def program(self, name: str) -> ProgramSpec:
        """Program ``name``, or a :class:`~pybpf.errors.LoaderError` saying it is not there."""
        try:
            return self.programs[name]
        except KeyError:
            from pybpf.errors import LoaderError

            raise LoaderError(f"no program '{name}' in {self.path}") from None

    def map(self, name: str) -> MapSpec:
        """Map ``name``, or a :class:`~pybpf.errors.LoaderError` saying it is not there."""
        try:
            return self.maps[name]
        except KeyError:
            from pybpf.errors import LoaderError

            raise LoaderError(f"no map '{name}' in {self.path}") from None


def call_insn_is_subprog(insn: Insn) -> bool:
    """libbpf's ``insn_is_subprog_call``."""
    return insn.code == 0x85 and insn.src == PseudoCall.CALL and insn.dst == 0 and insn.off == 0
