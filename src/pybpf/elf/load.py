"""Object file → :class:`ObjectSpec`: libbpf's ``bpf_object__open`` plus ``bpf_object__relocate``.

The steps and their libbpf counterparts:

1. classify sections (``bpf_object__elf_collect``): programs, ``license``, ``version``, ``maps``,
   ``.maps``, ``.BTF``/``.BTF.ext``, global data, ``.struct_ops``, the arena section;
2. functions (``bpf_object__add_programs``): every ``STT_FUNC`` symbol of an executable section;
   global ones outside ``.text`` are entry programs, ``.text`` holds subprograms;
3. externs (``bpf_object__collect_externs``), maps (``bpf_object__init_maps``);
4. relocation records (``bpf_object__collect_relos`` / ``bpf_program__record_reloc``);
5. per entry program, append the subprograms it calls, depth first, fixing call offsets
   (``bpf_object__reloc_code``), carry func/line info along (``adjust_prog_btf_ext_info``), then
   mark map and data references (``bpf_object__relocate_data``) — with placeholders where libbpf
   writes fds;
6. CO-RE relocations (``bpf_object__relocate_core``) against a target BTF.

One deliberate extension: a bpf-to-bpf call into a function of the *same* program section (libbpf
only allows ``.text`` targets and refuses the object) is linked like a ``.text`` call.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TypeVar

from pybpf.btf.core import calc_relo_insn, kind_str, patch_insn
from pybpf.btf.ext import BtfExt, FuncInfo, LineInfo
from pybpf.btf.format import type_signature
from pybpf.btf.spec import BtfSpec, essential_name
from pybpf.btf.types import Datasec, DeclTag, Func, FuncLinkage, Struct, Var, VarLinkage
from pybpf.elf.btf_fixup import fixup_btf
from pybpf.elf.kconfig import VIRTUAL_KCONFIG, KcfgType, kcfg_type
from pybpf.elf.maps import btf_maps, data_map, internal_map_name, legacy_maps, object_name
from pybpf.elf.reader import (
    SHN_LORESERVE,
    SHT_LLVM_ADDRSIG,
    SHT_NOBITS,
    SHT_PROGBITS,
    SHT_REL,
    SHT_STRTAB,
    SHT_SYMTAB,
    STB_LOCAL,
    STB_WEAK,
    STT_FUNC,
    STT_SECTION,
    STV_HIDDEN,
    STV_INTERNAL,
    ElfFile,
    Rel,
    Section,
    Symbol,
)
from pybpf.elf.sections import match_section
from pybpf.elf.spec import (
    CoreRelocation,
    Extern,
    ExternKind,
    MapOrigin,
    MapSpec,
    ObjectSpec,
    PathArg,
    ProgramSpec,
    Relocation,
    RelocKind,
    path_str,
)
from pybpf.errors import BtfError, ElfError, IsaError, RelocationError
from pybpf.isa import PseudoSrc, SourceLine
from pybpf.isa.insn import Insn, InsnMeta, Insns
from pybpf.uapi import BPF_F_LINK, BPF_F_MMAPABLE, BPF_F_RDONLY_PROG, MapType

__all__ = ["UAPI_CORE_TYPES", "apply_core", "load_object", "read_btf"]

UAPI_CORE_TYPES = frozenset(
    {
        "__sk_buff",
        "xdp_md",
        "bpf_sock",
        "bpf_sock_addr",
        "bpf_sock_ops",
        "sk_msg_md",
        "sk_reuseport_md",
        "bpf_sysctl",
        "bpf_sockopt",
        "bpf_sk_lookup",
        "bpf_flow_keys",
        "bpf_tcp_sock",
        "bpf_xdp_sock",
        "bpf_cgroup_dev_ctx",
        "bpf_raw_tracepoint_args",
        "bpf_sock_tuple",
        "bpf_tunnel_key",
        "bpf_xfrm_state",
        "bpf_fib_lookup",
        "bpf_redir_neigh",
        "bpf_perf_event_value",
        "bpf_pidns_info",
        "bpf_spin_lock",
        "bpf_timer",
        "bpf_dynptr",
        "bpf_list_head",
        "bpf_list_node",
        "bpf_rb_root",
        "bpf_rb_node",
        "bpf_refcount",
        "bpf_wq",
        # enums
        "xdp_action",
        "sk_action",
        "bpf_ret_code",
        "bpf_func_id",
        "bpf_map_type",
        "bpf_prog_type",
        "bpf_attach_type",
        "bpf_link_type",
        "bpf_cmd",
        "bpf_adj_room_mode",
        "bpf_hdr_start_off",
        "bpf_lwt_encap_mode",
        "bpf_task_fd_type",
        "bpf_check_mtu_flags",
        "bpf_check_mtu_ret",
        "bpf_core_relo_kind",
        "bpf_stack_build_id_status",
        "tcx_action_base",
    }
)
"""Structs and enums of ``include/uapi/linux/bpf.h``: they are ABI, so a CO-RE relocation against
one of them resolves against the object's own BTF when no target BTF is given."""

_T = TypeVar("_T")
_STRUCT_OPS_SECS = (".struct_ops", ".struct_ops.link", "?.struct_ops", "?.struct_ops.link")
_ARENA_SEC = ".addr_space.1"


@dataclass(slots=True)
class _Func:
    """A function of an executable section: an entry program or a subprogram."""

    name: str
    sec: Section
    sym: Symbol
    insns: Insns
    sec_insn_off: int  # in raw slots
    slot_count: int
    is_entry: bool
    relos: dict[int, _Rel] = field(default_factory=dict)  # function-relative slot -> reloc

    @property
    def key(self) -> tuple[int, int]:
        """Identity of the function: (section index, first slot)."""
        return (self.sec.index, self.sec_insn_off)


@dataclass(slots=True)
class _Rel:
    kind: str  # call | subprog_addr | ld64 | data | extern_call | extern_ld64
    symbol: str
    sym_off: int = 0
    target_sec: int = 0
    map_name: str = ""
    ext: Extern | None = None


def load_object(data: bytes, *, path: str, name: str | None, core_target: BtfSpec | None) -> ObjectSpec:
    """What :meth:`ObjectSpec.from_path` / ``from_bytes`` do: validate the ELF file, then run the
    pipeline of the module docstring. ``name`` defaults to libbpf's object name for ``path``."""
    elf = ElfFile.from_bytes(data, path=path)
    return _Loader(elf, name or object_name(path), core_target).run()


class _Loader:
    """One object's trip through the pipeline; the steps share what earlier ones collected."""

    def __init__(self, elf: ElfFile, obj_name: str, core_target: BtfSpec | None) -> None:
        self.elf = elf
        self.path = elf.path
        self.obj_name = obj_name
        self.core_target = core_target
        self.license = ""
        self.kversion: int | None = None
        self.btf: BtfSpec | None = None
        self.ext: BtfExt | None = None
        self.exec_secs: list[Section] = []
        self.text: Section | None = None
        self.legacy_maps_sec: Section | None = None
        self.btf_maps_sec: Section | None = None
        self.data_secs: dict[int, tuple[Section, str]] = {}  # index -> (section, data|rodata|bss)
        self.st_ops_secs: list[Section] = []
        self.arena_sec: Section | None = None
        self.funcs: dict[int, list[_Func]] = {}  # section index -> functions sorted by offset
        self.maps: dict[str, MapSpec] = {}
        self.externs: list[Extern] = []
        self.ext_by_sym: dict[int, Extern] = {}
        self.kconfig_map: str | None = None
        self._kconfig_size = 0
        self.warnings: list[str] = []
        self.unknown: list[str] = []

    def err(self, msg: str) -> ElfError:
        """An :class:`ElfError` about this object (the caller raises it)."""
        return ElfError(msg, path=self.path)

    # -- 1. sections ---------------------------------------------------------------------------
    def collect_sections(self) -> None:
        """Sort the sections by role (libbpf's ``bpf_object__elf_collect``); parse BTF and BTF.ext."""
        btf_sec = ext_sec = None
        for sec in self.elf.sections[1:]:
            name = sec.name
            if sec.type in (SHT_STRTAB, SHT_LLVM_ADDRSIG) or name.startswith(".debug_"):
                continue
            if sec.type == SHT_PROGBITS and sec.size == 0 and name == ".text":
                continue
            if name.startswith(".rel") and (name[4:].startswith(".debug_") or name[4:] in (".BTF", ".BTF.ext")):
                continue
            if name == "license":
                raw = sec.data[: min(sec.size, 63)]
                self.license = raw.split(b"\0", 1)[0].decode(errors="replace")
            elif name == "version":
                if sec.size != 4:
                    raise self.err(f"invalid kver section ({sec.size} bytes, expected 4)")
                (self.kversion,) = struct.unpack("<I", sec.data)
            elif name == "maps":
                self.legacy_maps_sec = sec
            elif name == ".maps":
                self.btf_maps_sec = sec
            elif name == ".BTF":
                if sec.type != SHT_PROGBITS:
                    raise self.err("section .BTF is not PROGBITS")
                btf_sec = sec
            elif name == ".BTF.ext":
                if sec.type != SHT_PROGBITS:
                    raise self.err("section .BTF.ext is not PROGBITS")
                ext_sec = sec
            elif sec.type == SHT_SYMTAB or sec.type == SHT_REL:
                continue
            elif sec.type == SHT_PROGBITS and sec.size > 0:
                if sec.is_exec:
                    if name == ".text":
                        self.text = sec
                    self.exec_secs.append(sec)
                elif name == ".data" or name.startswith(".data."):
                    self.data_secs[sec.index] = (sec, "data")
                elif name == ".rodata" or name.startswith(".rodata."):
                    self.data_secs[sec.index] = (sec, "rodata")
                elif name in _STRUCT_OPS_SECS:
                    self.st_ops_secs.append(sec)
                elif name == _ARENA_SEC:
                    self.arena_sec = sec
                else:
                    self.warnings.append(f"skipping unrecognized data section({sec.index}) {name}")
            elif sec.type == SHT_NOBITS and (name == ".bss" or name.startswith(".bss.")):
                if sec.size:
                    self.data_secs[sec.index] = (sec, "bss")
        if btf_sec is not None:
            self.btf = _with_path(lambda: BtfSpec.from_bytes(btf_sec.data), self.path)
        if ext_sec is not None:
            if self.btf is None:
                self.warnings.append(".BTF.ext without .BTF: ignored")
            else:
                btf = self.btf
                self.ext = _with_path(lambda: BtfExt.from_bytes(ext_sec.data, btf), self.path)

    # -- 2. functions -------------------------------------------------------------------------
    def collect_functions(self) -> None:
        """Every ``STT_FUNC`` of an executable section, checked to lie inside it and not to overlap
        (libbpf's ``bpf_object__add_programs``); global ones outside ``.text`` are entry points."""
        exec_idx = {s.index: s for s in self.exec_secs}
        text_idx = self.text.index if self.text else -1
        for sym in self.elf.symbols:
            if sym.type != STT_FUNC or sym.shndx not in exec_idx:
                continue
            sec = exec_idx[sym.shndx]
            off, size = sym.value, sym.size
            if size == 0 or size % 8 or off % 8:
                raise self.err(f"sec '{sec.name}': corrupted program '{sym.name}', offset {off}, size {size}")
            if off + size > sec.size:
                raise self.err(f"sec '{sec.name}': program at offset {off} crosses section boundary")
            try:
                insns = Insns.from_bytes(sec.data[off : off + size], strict=False)
            except IsaError as e:
                raise self.err(f"sec '{sec.name}': program '{sym.name}': {e}") from None
            is_entry = sec.index != text_idx and sym.bind != STB_LOCAL
            if sec.index != text_idx and sym.bind == STB_LOCAL:
                self.warnings.append(
                    f"sec '{sec.name}': static function '{sym.name}' is not an entry program (libbpf refuses it)"
                )
            self.funcs.setdefault(sec.index, []).append(_Func(sym.name, sec, sym, insns, off // 8, size // 8, is_entry))
        for fl in self.funcs.values():
            fl.sort(key=lambda f: (f.sec_insn_off, f.sym.index))
            for a, b in itertools.pairwise(fl):
                if b.sec_insn_off < a.sec_insn_off + a.slot_count:
                    raise self.err(f"sec '{a.sec.name}': functions '{a.name}' and '{b.name}' overlap")

    def find_func(self, sec_idx: int, insn_idx: int) -> _Func | None:
        """The function of section ``sec_idx`` containing raw slot ``insn_idx``, if any."""
        for f in self.funcs.get(sec_idx, ()):
            if f.sec_insn_off <= insn_idx < f.sec_insn_off + f.slot_count:
                return f
        return None

    # -- 3. externs -----------------------------------------------------------------------------
    def collect_externs(self) -> None:
        """Undefined global symbols → :class:`Extern` via their BTF (``.kconfig`` VAR, ``.ksyms`` VAR
        or FUNC), and the ``.kconfig`` layout (libbpf's ``bpf_object__collect_externs``)."""
        btf = self.btf
        for sym in self.elf.symbols:
            if not sym.is_extern or not sym.name:
                continue
            if btf is None:
                raise RelocationError(
                    f"failed to find BTF for extern '{sym.name}': the object has no .BTF", path=self.path
                )
            tid = None
            for cand in btf.find(sym.name):
                t = btf.types[cand]
                if isinstance(t, Var | Func):
                    if (isinstance(t, Var) and t.linkage != VarLinkage.GLOBAL_EXTERN) or (
                        isinstance(t, Func) and t.linkage != FuncLinkage.EXTERN
                    ):
                        raise RelocationError(f"failed to find BTF for extern '{sym.name}': not extern", path=self.path)
                    tid = cand
                    break
            if tid is None:
                raise RelocationError(f"failed to find BTF for extern '{sym.name}'", path=self.path)
            sec_name = None
            for _, t in btf:
                if isinstance(t, Datasec) and any(v.type == tid for v in t.vars):
                    sec_name = t.name
                    break
            if sec_name is None:
                raise RelocationError(f"failed to find BTF for extern '{sym.name}' [{tid}] section", path=self.path)
            t = btf.types[tid]
            weak = sym.bind == STB_WEAK
            if sec_name == ".kconfig":
                if isinstance(t, Func):
                    raise RelocationError(
                        f"extern function {sym.name} is unsupported under .kconfig section", path=self.path
                    )
                size = btf.resolve_size(t.type)
                align = btf.align_of(t.type)
                if size <= 0 or align <= 0:
                    raise RelocationError(f"failed to resolve size of extern (kcfg) '{sym.name}'", path=self.path)
                if kcfg_type(btf, t.type)[0] == KcfgType.UNKNOWN:
                    raise RelocationError(f"extern (kcfg) '{sym.name}': type is unsupported", path=self.path)
                ext = Extern(sym.name, ExternKind.KCONFIG, tid, weak, t.type, 0, size, False)
                ext = replace(ext, offset=align)  # alignment parked here until layout below
            elif sec_name == ".ksyms":
                if isinstance(t, Func):
                    ext = Extern(sym.name, ExternKind.KFUNC, tid, weak, t.type)
                else:
                    ext = Extern(sym.name, ExternKind.KSYM, tid, weak, btf.skip_mods_and_typedefs(t.type))
            else:
                raise RelocationError(f"unrecognized extern section '{sec_name}' (extern '{sym.name}')", path=self.path)
            self.externs.append(ext)
            self.ext_by_sym[sym.index] = ext
        # .kconfig layout: descending alignment, ascending size, then name (libbpf's cmp_externs)
        kcfg = sorted(
            (e for e in self.externs if e.kind == ExternKind.KCONFIG), key=lambda e: (-e.offset, e.size, e.name)
        )
        off = 0
        placed: dict[str, Extern] = {}
        for e in kcfg:
            align = e.offset
            start = (off + align - 1) // align * align
            placed[e.name] = replace(e, offset=start, resolved=e.name in VIRTUAL_KCONFIG)
            off = start + e.size
        if placed:
            self.externs = [placed.get(e.name, e) if e.kind == ExternKind.KCONFIG else e for e in self.externs]
            self.ext_by_sym = {
                k: placed.get(v.name, v) if v.kind == ExternKind.KCONFIG else v for k, v in self.ext_by_sym.items()
            }
            self._kconfig_size = off
        self.externs.sort(key=lambda e: (list(ExternKind).index(e.kind), e.name))

    # -- 4. maps --------------------------------------------------------------------------------
    def add_map(self, m: MapSpec) -> None:
        """Record a map; names must be unique across all definition styles, as in libbpf."""
        if m.name in self.maps:
            raise self.err(f"map '{m.name}' is defined twice")
        self.maps[m.name] = m

    def collect_maps(self) -> None:
        """All maps in libbpf's order: legacy ``maps``, BTF ``.maps``, global data, ``.kconfig``,
        struct_ops (libbpf's ``bpf_object__init_maps``), and the arena's initial data."""
        if self.legacy_maps_sec is not None:
            for m in legacy_maps(self.elf, self.legacy_maps_sec):
                self.add_map(m)
        if self.btf_maps_sec is not None:
            for m in btf_maps(self.elf, self.btf_maps_sec, self.btf):
                self.add_map(m)
        arenas = [m for m in self.maps.values() if m.type == MapType.ARENA]
        if len(arenas) > 1:
            raise self.err(
                f"map '{arenas[1].name}': only single ARENA map is supported (map '{arenas[0].name}' is also ARENA)"
            )
        if self.arena_sec is not None:
            if not arenas:
                raise self.err(
                    f"elf: sec '{_ARENA_SEC}': to use global __arena variables the ARENA map should be explicitly "
                    'declared in SEC(".maps")'
                )
            arenas[0].data = self.arena_sec.data
        for idx in sorted(self.data_secs):
            sec, kind = self.data_secs[idx]
            self.add_map(data_map(self.obj_name, sec, self.btf, kind=kind))
        kcfg = [e for e in self.externs if e.kind == ExternKind.KCONFIG]
        if kcfg:
            size = self._kconfig_size
            data = bytearray(size)
            for e in kcfg:
                if e.name in VIRTUAL_KCONFIG:
                    val = VIRTUAL_KCONFIG[e.name]
                    data[e.offset : e.offset + e.size] = val.to_bytes(8, "little")[: e.size]
            name = internal_map_name(self.obj_name, ".kconfig")
            value_type = self.btf.find_one(".kconfig") if self.btf else None
            self.add_map(
                MapSpec(
                    name=name,
                    type=MapType.ARRAY,
                    key_size=4,
                    value_size=size,
                    max_entries=1,
                    flags=BPF_F_RDONLY_PROG | BPF_F_MMAPABLE,
                    value_type_id=value_type or 0,
                    data=bytes(data),
                    frozen=True,
                    origin=MapOrigin.KCONFIG,
                    section=".kconfig",
                    real_name=".kconfig",
                )
            )
            self.kconfig_map = name
        for sec in self.st_ops_secs:
            self.struct_ops_maps(sec)

    def struct_ops_maps(self, sec: Section) -> None:
        """One STRUCT_OPS map per variable of a ``.struct_ops[.link]`` section (its DATASEC)."""
        btf = self.btf
        if btf is None:
            raise BtfError(f"section {sec.name} needs BTF", path=self.path)
        dname = sec.name.lstrip("?")
        dsec_id = btf.find_one(sec.name) or btf.find_one(dname)
        dsec = btf.types[dsec_id] if dsec_id is not None else None
        if not isinstance(dsec, Datasec):
            raise BtfError(f"struct_ops init: DATASEC {sec.name} not found", path=self.path)
        for v in dsec.vars:
            var = btf.types[v.type]
            if not isinstance(var, Var):
                continue
            if v.offset + v.size > sec.size:
                raise BtfError(f"struct_ops init: var {var.name} out of section bounds", path=self.path)
            vtype = btf.skip_mods_and_typedefs(var.type)
            self.add_map(
                MapSpec(
                    name=var.name,
                    type=MapType.STRUCT_OPS,
                    key_size=4,
                    value_size=v.size,
                    max_entries=1,
                    flags=BPF_F_LINK if dname == ".struct_ops.link" else 0,
                    value_type_id=vtype,
                    data=sec.data[v.offset : v.offset + v.size],
                    origin=MapOrigin.STRUCT_OPS,
                    section=sec.name,
                    offset=v.offset,
                    real_name=var.name,
                )
            )

    # -- 5. relocation records ----------------------------------------------------------------
    def sym_name(self, sym: Symbol) -> str:
        """The name messages use: a section symbol is named after its section."""
        if sym.type == STT_SECTION and sym.name == "":
            sec = self.elf.sections[sym.shndx] if 0 <= sym.shndx < len(self.elf.sections) else None
            return sec.name if sec else "<?"
        return sym.name or "<?"

    def collect_relos(self) -> None:
        """Walk every relocation section: program relocations become per-function records, ``.maps``
        ones initial map slots, struct_ops ones member → program (``bpf_object__collect_relos``)."""
        exec_idx = {s.index for s in self.exec_secs}
        st_ops_idx = {s.index for s in self.st_ops_secs}
        nsec = len(self.elf.sections)
        for target, rels in sorted(self.elf.relocations.items()):
            tsec = self.elf.sections[target]
            relo_name = self.elf.sections[self.elf.rel_sections[target]].name
            if target in exec_idx:
                for rel in rels:
                    sym = self.elf.symbol(rel.sym)
                    if sym is None:
                        raise RelocationError(
                            f"sec '{relo_name}': symbol #{rel.sym} not found for relo #{rel.index}", path=self.path
                        )
                    if sym.shndx >= nsec:
                        raise self.err(
                            f"sec '{relo_name}': corrupted symbol #{rel.sym} pointing to invalid section "
                            f"#{sym.shndx} for relo #{rel.index}"
                        )
                    if rel.offset % 8 or rel.offset >= tsec.size:
                        raise RelocationError(
                            f"sec '{relo_name}': invalid offset {rel.offset:#x} for relo #{rel.index}", path=self.path
                        )
                    insn_idx = rel.offset // 8
                    fn = self.find_func(target, insn_idx)
                    if fn is None:
                        self.warnings.append(
                            f"sec '{relo_name}': relo #{rel.index}: no function in '{tsec.name}' "
                            f"for insn #{insn_idx}, skipped"
                        )
                        continue
                    self.record_reloc(fn, insn_idx - fn.sec_insn_off, self.sym_name(sym), sym, rel)
            elif self.btf_maps_sec is not None and target == self.btf_maps_sec.index:
                self.collect_map_relos(rels)
            elif target in st_ops_idx:
                self.collect_st_ops_relos(tsec, rels)

    def record_reloc(self, fn: _Func, slot: int, sym_name: str, sym: Symbol, rel: Rel) -> None:
        """libbpf's ``bpf_program__record_reloc``."""
        byte = fn.sec.data[(fn.sec_insn_off + slot) * 8]
        if not fn.insns.is_insn_start(slot) or byte not in (0x85, 0x18):
            raise RelocationError(
                f"prog '{fn.name}': invalid relo against '{sym_name}' for insns[{slot}].code {byte:#x}", path=self.path
            )
        insn = fn.insns.at(slot)
        is_call = insn.code == 0x85
        if sym.is_extern:
            ext = self.ext_by_sym.get(sym.index)
            if ext is None:
                raise RelocationError(
                    f"prog '{fn.name}': extern relo failed to find extern for '{sym_name}' ({sym.index})",
                    path=self.path,
                )
            fn.relos[slot] = _Rel("extern_call" if is_call else "extern_ld64", ext.name, ext=ext)
            return
        if is_call:
            if insn.src != 1:
                raise RelocationError(f"prog '{fn.name}': incorrect bpf_call opcode", path=self.path)
            target = self.elf.sections[sym.shndx] if sym.shndx else None
            if target is None or not target.is_exec or target.index not in self.funcs:
                tname = target.name if target else "(none)"
                raise RelocationError(
                    f"prog '{fn.name}': bad call relo against '{sym_name}' in section '{tname}'", path=self.path
                )
            if target.index != fn.sec.index and (self.text is None or target.index != self.text.index):
                raise RelocationError(
                    f"prog '{fn.name}': bad call relo against '{sym_name}' in section '{target.name}'", path=self.path
                )
            if sym.value % 8:
                raise RelocationError(
                    f"prog '{fn.name}': bad call relo against '{sym_name}' at offset {sym.value}", path=self.path
                )
            fn.relos[slot] = _Rel("call", sym_name, sym.value, target.index)
            return
        if not sym.shndx or sym.shndx >= SHN_LORESERVE:
            raise RelocationError(
                f"prog '{fn.name}': invalid relo against '{sym_name}' in special section {sym.shndx:#x}; "
                "forgot to initialize global var?..",
                path=self.path,
            )
        tsec = self.elf.sections[sym.shndx]
        if tsec.is_exec and (sym.type == STT_FUNC or (sym.type == STT_SECTION and sym.bind == STB_LOCAL)):
            if sym.value % 8 or (insn.imm & 0xFFFFFFFF) % 8:
                raise RelocationError(
                    f"prog '{fn.name}': bad subprog addr relo against '{sym_name}' at offset {sym.value}+{insn.imm_lo}",
                    path=self.path,
                )
            fn.relos[slot] = _Rel("subprog_addr", sym_name, sym.value, tsec.index)
            return
        if self.arena_sec is not None and sym.shndx == self.arena_sec.index:
            arena = next((m for m in self.maps.values() if m.type == MapType.ARENA), None)
            if arena is None:
                raise RelocationError(
                    f"prog '{fn.name}': bad arena data relocation at insn {slot}, no arena maps defined", path=self.path
                )
            fn.relos[slot] = _Rel("data", sym_name, sym.value, map_name=arena.name)
            return
        if sym.shndx in self.data_secs:
            m = next((m for m in self.maps.values() if m.origin == MapOrigin.DATA and m.section == tsec.name), None)
            if m is None:
                raise RelocationError(
                    f"prog '{fn.name}': data relo failed to find map for section '{tsec.name}'", path=self.path
                )
            fn.relos[slot] = _Rel("data", sym_name, sym.value, map_name=m.name)
            return
        is_maps = (self.btf_maps_sec is not None and sym.shndx == self.btf_maps_sec.index) or (
            self.legacy_maps_sec is not None and sym.shndx == self.legacy_maps_sec.index
        )
        if is_maps:
            for m in self.maps.values():
                if (
                    m.section == tsec.name
                    and m.offset == sym.value
                    and m.origin in (MapOrigin.BTF, MapOrigin.LEGACY, MapOrigin.IPROUTE2)
                ):
                    fn.relos[slot] = _Rel("ld64", sym_name, map_name=m.name)
                    return
            raise RelocationError(
                f"prog '{fn.name}': map relo failed to find map for section '{tsec.name}', off {sym.value}",
                path=self.path,
            )
        raise RelocationError(
            f"prog '{fn.name}': bad map relo against '{sym_name}' in section '{tsec.name}'", path=self.path
        )

    def collect_map_relos(self, rels: tuple[Rel, ...]) -> None:
        """``.rel.maps``: initial slots of prog arrays and maps of maps (``bpf_object__collect_map_relos``)."""
        btf = self.btf
        assert btf is not None and self.btf_maps_sec is not None
        sec_name = self.btf_maps_sec.name
        btf_maps_list = [m for m in self.maps.values() if m.origin == MapOrigin.BTF]
        dsec_id = btf.find_one(sec_name)
        dsec = btf.types[dsec_id] if dsec_id is not None else None
        assert isinstance(dsec, Datasec)
        sizes = {btf.types[v.type].name: v for v in dsec.vars}
        for rel in rels:
            sym = self.elf.symbol(rel.sym)
            if sym is None:
                raise RelocationError(f".maps relo #{rel.index}: symbol {rel.sym:x} not found", path=self.path)
            name = sym.name or "<?>"
            owner = None
            for m in btf_maps_list:
                vi = sizes.get(m.name)
                if vi is not None and vi.offset <= rel.offset and rel.offset + 8 <= vi.offset + vi.size:
                    owner = m
                    break
            if owner is None:
                raise RelocationError(
                    f".maps relo #{rel.index}: cannot find map '{name}' at rel->r_offset {rel.offset}", path=self.path
                )
            if owner.type in (MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS):
                if sym.shndx != self.btf_maps_sec.index:
                    raise RelocationError(f".maps relo #{rel.index}: '{name}' isn't a BTF-defined map", path=self.path)
                if owner.type == MapType.HASH_OF_MAPS and owner.key_size != 4:
                    raise RelocationError(
                        f".maps relo #{rel.index}: hash-of-maps '{owner.name}' should have key size 4.", path=self.path
                    )
                if name not in self.maps:
                    raise RelocationError(
                        f".maps relo #{rel.index}: '{name}' isn't a valid map reference", path=self.path
                    )
            elif owner.type == MapType.PROG_ARRAY:
                fn = next((f for fl in self.funcs.values() for f in fl if f.name == name and f.is_entry), None)
                if fn is None:
                    raise RelocationError(
                        f".maps relo #{rel.index}: '{name}' isn't a valid program reference", path=self.path
                    )
                if fn.sec.index != sym.shndx or fn.sec_insn_off * 8 != sym.value:
                    raise RelocationError(
                        f".maps relo #{rel.index}: '{name}' isn't an entry-point program", path=self.path
                    )
            else:
                raise RelocationError(
                    f".maps relo #{rel.index}: map '{owner.name}' can't hold references ('{name}')", path=self.path
                )
            var = btf.typed(sizes[owner.name].type, Var)
            def_t = btf.typed(btf.skip_mods_and_typedefs(var.type), Struct)  # checked by btf_maps()
            last = def_t.members[-1]
            if last.name != "values":
                raise RelocationError(
                    f".maps relo #{rel.index}: map '{owner.name}' has no 'values' member", path=self.path
                )
            moff = rel.offset - sizes[owner.name].offset - last.bits_offset // 8
            if moff < 0 or moff % 8:
                raise RelocationError(f".maps relo #{rel.index}: misaligned slot in map '{owner.name}'", path=self.path)
            owner.values[moff // 8] = name

    def collect_st_ops_relos(self, sec: Section, rels: tuple[Rel, ...]) -> None:
        """Function pointers of a struct_ops variable: which program each member points at."""
        btf = self.btf
        assert btf is not None
        st_maps = [m for m in self.maps.values() if m.origin == MapOrigin.STRUCT_OPS and m.section == sec.name]
        for rel in rels:
            sym = self.elf.symbol(rel.sym)
            if sym is None:
                raise RelocationError(f"struct_ops reloc: symbol {rel.sym:x} not found", path=self.path)
            owner = next((m for m in st_maps if m.offset <= rel.offset < m.offset + m.value_size), None)
            if owner is None:
                raise RelocationError(
                    f"struct_ops reloc: cannot find map at rel->r_offset {rel.offset}", path=self.path
                )
            moff = (rel.offset - owner.offset) * 8
            t = btf.types[owner.value_type_id]
            member = next((m for m in getattr(t, "members", ()) if m.bits_offset == moff), None)
            if member is None:
                raise RelocationError(
                    f"struct_ops reloc {owner.name}: cannot find member at moff {moff // 8}", path=self.path
                )
            prog = self.find_func(sym.shndx, sym.value // 8) if sym.type in (STT_FUNC, STT_SECTION) else None
            if prog is None:
                raise RelocationError(
                    f"struct_ops reloc {owner.name}: cannot find prog at shdr_idx {sym.shndx} to relocate func ptr "
                    f"{member.name}",
                    path=self.path,
                )
            owner.struct_ops_progs[member.name] = prog.name

    # -- 6. linking -----------------------------------------------------------------------------
    def link(self, main: _Func) -> ProgramSpec:
        """One entry program as libbpf hands it to bpf(2): subprograms appended depth first with
        their func/line info rebased (``bpf_object__reloc_code``), call and ``BPF_PSEUDO_FUNC``
        offsets fixed, map/data/extern references marked (``bpf_object__relocate_data``), metadata
        attached, then CO-RE applied to every copy of every function."""
        insns: list[Insn] = list(main.insns)
        slots = main.slot_count
        placed: dict[tuple[int, int], int] = {main.key: 0}
        order: list[_Func] = [main]
        rels: list[tuple[int, _Rel]] = [(s, r) for s, r in sorted(main.relos.items())]
        calls: list[tuple[int, _Func, str]] = []  # (final slot, callee, kind)
        fi: list[FuncInfo] = []
        li: list[LineInfo] = []
        ext = self.ext
        want_fi = bool(ext and self._records(ext.func_info, main))
        want_li = bool(ext and self._records(ext.line_info, main))

        starts: dict[int, int] = {}
        for p, s in enumerate(main.insns.items()):
            starts[s[0]] = p

        def append(fn: _Func) -> int:
            """Copy ``fn`` to the end of the stream; its base slot."""
            nonlocal slots
            base = slots
            placed[fn.key] = base
            order.append(fn)
            for rel_slot, ins in fn.insns.items():
                starts[base + rel_slot] = len(insns)
                insns.append(ins)
            slots += fn.slot_count
            rels.extend((base + s, r) for s, r in sorted(fn.relos.items()))
            return base

        def reloc_code(fn: _Func, base: int, depth: int) -> None:
            """libbpf's ``bpf_object__reloc_code`` for the copy of ``fn`` at ``base``: its BTF.ext
            records, and every call / callback address it makes, appending callees first seen."""
            if depth > 256:
                raise RelocationError(f"prog '{main.name}': subprogram calls nested too deep", path=self.path)
            if ext is not None:
                off_adj = base - fn.sec_insn_off
                if want_fi:
                    recs = self._records(ext.func_info, fn)
                    if not recs:
                        raise BtfError(f"prog '{fn.name}': missing .BTF.ext function info.", path=self.path)
                    fi.extend(FuncInfo(r.insn_off // 8 + off_adj, r.type_id) for r in recs)
                if want_li:
                    lrecs = self._records(ext.line_info, fn)
                    if not lrecs:
                        raise BtfError(f"prog '{fn.name}': missing .BTF.ext line info.", path=self.path)
                    li.extend(replace(r, insn_off=r.insn_off // 8 + off_adj) for r in lrecs)
            for rel_slot, ins0 in fn.insns.items():
                is_call = ins0.code == 0x85 and ins0.src == 1 and ins0.dst == 0 and ins0.off == 0
                relo = fn.relos.get(rel_slot)
                is_func_addr = ins0.code == 0x18 and (relo is not None and relo.kind == "subprog_addr")
                if ins0.code == 0x18 and ins0.src == PseudoSrc.FUNC and not is_func_addr:
                    raise RelocationError(
                        f"prog '{fn.name}': missing subprog addr relo for insn #{rel_slot}", path=self.path
                    )
                if not is_call and not is_func_addr:
                    continue
                if relo is not None and relo.kind == "extern_call":
                    continue
                if relo is not None and relo.kind not in ("call", "subprog_addr"):
                    raise RelocationError(
                        f"prog '{fn.name}': unexpected relo for insn #{rel_slot}, type {relo.kind}", path=self.path
                    )
                imm = _s32(ins0.imm_lo)
                if relo is not None and relo.kind == "call":
                    tsec, sub_idx = relo.target_sec, relo.sym_off // 8 + imm + 1
                elif relo is not None:
                    tsec, sub_idx = relo.target_sec, (relo.sym_off + imm) // 8
                else:
                    tsec, sub_idx = fn.sec.index, fn.sec_insn_off + rel_slot + imm + 1
                callee = self.find_func(tsec, sub_idx)
                if callee is None:
                    sname = self.elf.sections[tsec].name
                    raise RelocationError(
                        f"prog '{fn.name}': call at insn #{rel_slot} targets insn #{sub_idx} of section '{sname}', "
                        "where no function is",
                        path=self.path,
                    )
                if callee.key not in placed:
                    cbase = append(callee)
                    reloc_code(callee, cbase, depth + 1)
                target_slot = placed[callee.key]
                here = base + rel_slot
                p = starts[here]
                new_imm = target_slot - here - 1
                if is_call:
                    insns[p] = insns[p].replace(imm=new_imm)
                else:
                    insns[p] = insns[p].replace(
                        src=PseudoSrc.FUNC, imm=_s64((new_imm & 0xFFFFFFFF) | (insns[p].imm_hi << 32))
                    )
                calls.append((here, callee, "call" if is_call else "func_addr"))

        reloc_code(main, 0, 0)
        exc = self.exception_callback(main)
        if exc is not None and exc.key not in placed:
            reloc_code(exc, append(exc), 1)

        relocations: list[Relocation] = []
        for here, callee, kind in calls:
            relocations.append(Relocation(here, RelocKind.CALL if kind == "call" else RelocKind.FUNC_ADDR, callee.name))
        for here, relo in rels:
            p = starts[here]
            ins = insns[p]
            if relo.kind == "ld64":
                insns[p] = ins.replace(src=PseudoSrc.MAP_FD, imm=0).with_meta(reference=relo.map_name)
                relocations.append(Relocation(here, RelocKind.MAP, relo.map_name, 0, relo.symbol))
            elif relo.kind == "data":
                off = (_s32(ins.imm_lo) + relo.sym_off) & 0xFFFFFFFF
                insns[p] = ins.replace(src=PseudoSrc.MAP_VALUE, imm=_s64(off << 32)).with_meta(reference=relo.map_name)
                relocations.append(Relocation(here, RelocKind.MAP_VALUE, relo.map_name, off, relo.symbol))
            elif relo.kind == "extern_ld64":
                ext_ = relo.ext
                assert ext_ is not None
                if ext_.kind == ExternKind.KCONFIG:
                    assert self.kconfig_map is not None
                    insns[p] = ins.replace(src=PseudoSrc.MAP_VALUE, imm=_s64(ext_.offset << 32)).with_meta(
                        reference=self.kconfig_map
                    )
                    relocations.append(Relocation(here, RelocKind.KCONFIG, self.kconfig_map, ext_.offset, ext_.name))
                else:
                    src = PseudoSrc.BTF_ID if ext_.type_id else PseudoSrc.NONE
                    insns[p] = ins.replace(src=src, imm=0).with_meta(reference=ext_.name)
                    relocations.append(Relocation(here, RelocKind.KSYM, ext_.name, 0, ext_.name))
            elif relo.kind == "extern_call":
                ext_ = relo.ext
                assert ext_ is not None
                insns[p] = ins.replace(src=2, imm=0, off=0).with_meta(reference=ext_.name)
                relocations.append(Relocation(here, RelocKind.KFUNC, ext_.name, 0, ext_.name))
            elif relo.kind == "subprog_addr" and insns[p].src != PseudoSrc.FUNC:
                raise RelocationError(f"prog '{main.name}': relo at insn #{here}: bad insn", path=self.path)
        relocations.sort(key=lambda r: (r.insn_idx, r.kind))

        # metadata: function names, relocation targets, source lines, prototypes
        for fn in order:
            p = starts[placed[fn.key]]
            insns[p] = insns[p].with_meta(symbol=fn.name)
        for here, callee, _ in calls:
            p = starts[here]
            insns[p] = insns[p].with_meta(reference=callee.name)
        if self.btf is not None:
            for rec in li:
                if rec.insn_off in starts:
                    p = starts[rec.insn_off]
                    insns[p] = insns[p].with_meta(source=SourceLine(rec.file, rec.line, rec.col, rec.text))
            for frec in fi:
                if frec.insn_off in starts:
                    p = starts[frec.insn_off]
                    insns[p] = insns[p].with_meta(func=type_signature(self.btf, frec.type_id))
        final = Insns(insns)

        # CO-RE, on every copy of every function in this program
        core: list[CoreRelocation] = []
        if ext is not None and self.btf is not None:
            final, core = self.apply_core_records(main, final, order, placed)

        m = match_section(main.sec.name)
        func_btf_id = 0
        if self.btf is not None:
            fid = next((i for i in self.btf.find(main.name) if isinstance(self.btf.types[i], Func)), None)
            func_btf_id = fid or 0
        return ProgramSpec(
            name=main.name,
            section=m.section,
            prog_type=m.prog_type,
            expected_attach_type=m.expected_attach_type,
            insns=final,
            license=self.license,
            kernel_version=self.kversion,
            autoload=m.autoload,
            attach_to=m.attach_to,
            prog_flags=m.sec_def.prog_flags if m.sec_def else 0,
            sec_def_pattern=m.sec_def.pattern if m.sec_def else None,
            subprograms=tuple(f.name for f in order[1:]),
            relocations=tuple(relocations),
            core_relocations=tuple(core),
            func_info=tuple(fi),
            line_info=tuple(li),
            btf=self.btf,
            func_btf_id=func_btf_id,
            section_offset=main.sec_insn_off * 8,
            size=main.slot_count * 8,
        )

    def _records(self, table: dict[str, tuple], fn: _Func) -> list:
        recs = table.get(fn.sec.name, ())
        lo, hi = fn.sec_insn_off, fn.sec_insn_off + fn.slot_count
        return [r for r in recs if lo <= r.insn_off // 8 < hi]

    def exception_callback(self, main: _Func) -> _Func | None:
        """libbpf's ``bpf_prog_assign_exc_cb``: a ``exception_callback:<name>`` decl tag on ``main``."""
        btf = self.btf
        if btf is None:
            return None
        pfx = "exception_callback:"
        found: _Func | None = None
        for _, t in btf:
            if not isinstance(t, DeclTag) or t.component_idx != -1 or not t.name.startswith(pfx):
                continue
            ft = btf.types[t.type]
            if not isinstance(ft, Func) or ft.linkage != FuncLinkage.GLOBAL:
                raise RelocationError(
                    f"prog '{main.name}': exception_callback:<value> decl tag not applied to the main program",
                    path=self.path,
                )
            if ft.name != main.name:
                continue
            if found is not None:
                return None  # several callbacks: the verifier complains, libbpf appends none
            cb = t.name[len(pfx) :]
            if not cb:
                raise RelocationError(
                    f"prog '{main.name}': exception_callback:<value> decl tag contains empty value", path=self.path
                )
            text = self.funcs.get(self.text.index, []) if self.text else []
            found = next((f for f in text if f.name == cb), None)
            if found is None:
                raise RelocationError(f"prog '{main.name}': cannot find exception callback '{cb}'", path=self.path)
            if found.sym.bind == STB_LOCAL or found.sym.visibility in (STV_HIDDEN, STV_INTERNAL):
                raise RelocationError(
                    f"prog '{main.name}': exception callback {cb} must be a global non-hidden function", path=self.path
                )
        return found

    def apply_core_records(
        self, main: _Func, final: Insns, order: list[_Func], placed: dict[tuple[int, int], int]
    ) -> tuple[Insns, list[CoreRelocation]]:
        """The ``.BTF.ext`` CO-RE records of every function copy in ``final``, resolved by
        :func:`apply_core` (UAPI types against the object's own BTF, others against ``core_target``)."""
        assert self.ext is not None and self.btf is not None
        records: list[CoreRelocation] = []
        for fn in order:
            base = placed[fn.key]
            for relo in self._records(self.ext.core_relos, fn):
                here = base + relo.insn_off // 8 - fn.sec_insn_off
                tname = self.btf.types[relo.type_id].name if relo.type_id < len(self.btf) else "?"
                records.append(CoreRelocation(here, relo, tname, "pending"))
        if not records:
            return final, []
        records.sort(key=lambda r: r.insn_idx)
        prog = _stub_program(main.name, final, records)
        prog = apply_core(prog, self.core_target, self.btf, path=self.path)
        return prog.insns, list(prog.core_relocations)

    # -- 7. assemble ----------------------------------------------------------------------------
    def run(self) -> ObjectSpec:
        """All steps, in libbpf's order; the :class:`ObjectSpec` they add up to."""
        self.collect_sections()
        self.collect_functions()
        self.collect_externs()
        if self.btf is not None:
            text_idx = self.text.index if self.text else -1
            hidden = {
                f.name
                for f in self.funcs.get(text_idx, [])
                if f.sym.bind != STB_LOCAL and f.sym.visibility in (STV_HIDDEN, STV_INTERNAL)
            }
            self.btf = fixup_btf(self.btf, self.elf, self.externs, hidden)
        self.collect_maps()
        self.collect_relos()
        programs: dict[str, ProgramSpec] = {}
        unknown: list[str] = []
        entries = sorted((f for fl in self.funcs.values() for f in fl if f.is_entry), key=lambda f: f.key)
        for fn in entries:
            if fn.name in programs:
                raise self.err(f"program '{fn.name}' is defined twice")
            prog = self.link(fn)
            programs[fn.name] = prog
            if prog.prog_type is None and fn.sec.name not in unknown:
                unknown.append(fn.sec.name)
        for sec in unknown:
            self.warnings.append(f"unrecognized ELF section name '{sec}': program type unknown")
        text_funcs = self.funcs.get(self.text.index, []) if self.text else []
        return ObjectSpec(
            name=self.obj_name,
            path=self.path,
            programs=programs,
            maps=self.maps,
            license=self.license,
            kernel_version=self.kversion,
            btf=self.btf,
            externs=tuple(self.externs),
            subprograms=tuple(f.name for f in text_funcs),
            unknown_sections=tuple(unknown),
            warnings=tuple(self.warnings),
        )


def _s32(v: int) -> int:
    """The low 32-bit immediate as the signed value clang encoded (call offsets, data offsets)."""
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >> 31 else v


def _s64(v: int) -> int:
    """A 64-bit lddw immediate in the signed form :func:`pybpf.isa.decode` produces."""
    v &= 0xFFFFFFFFFFFFFFFF
    return v - (1 << 64) if v >> 63 else v


def _with_path(fn: Callable[[], _T], path: str) -> _T:
    """``fn()``, its :class:`BtfError` labelled with the object's path (the BTF parsers do not
    know which file their bytes came from)."""
    try:
        return fn()
    except BtfError as e:
        if e.path:
            raise
        raise BtfError(e.message, path=path) from None


def _stub_program(name: str, insns: Insns, records: list[CoreRelocation]) -> ProgramSpec:
    return ProgramSpec(name, "", None, None, insns, core_relocations=tuple(records))


def apply_core(
    prog: ProgramSpec, target: BtfSpec | None, local: BtfSpec | None = None, *, path: str | None = None
) -> ProgramSpec:
    """Resolve the program's pending CO-RE relocations against ``target`` (the kernel's BTF, or any
    BTF that describes the types). With ``target=None`` only relocations whose root type is a UAPI
    struct (:data:`UAPI_CORE_TYPES`) are resolved — against the object's own BTF."""
    local = local or prog.btf
    if local is None:
        return prog
    patched: dict[int, list[Insn]] = {}  # list position in prog.insns -> replacement
    out: list[CoreRelocation] = []
    for rec in prog.core_relocations:
        if rec.status != "pending":
            out.append(rec)
            continue
        tgt = target
        if tgt is None:
            if essential_name(rec.type_name) in UAPI_CORE_TYPES:
                tgt = local
            else:
                name = rec.type_name or "<anon>"
                out.append(
                    replace(
                        rec,
                        reason=f"CO-RE relocation <{kind_str(rec.relo.kind)}> against '{name}' "
                        f"(access {rec.relo.access_str}) needs the kernel's BTF",
                    )
                )
                continue
        try:
            res = calc_relo_insn(local, rec.relo, tgt, exact_names=tgt is local)
            pos = prog.insns.pos_of(rec.insn_idx)
            current = patched[pos][0] if pos in patched else prog.insns[pos]
            new = patch_insn(current, res, insn_idx=rec.insn_idx)
        except (BtfError, KeyError) as e:
            msg = e.message if isinstance(e, BtfError) else f"insn #{rec.insn_idx} is not an instruction start"
            raise RelocationError(
                f"prog '{prog.name}': CO-RE relocation #{len(out)} against '{rec.type_name}': {msg}", path=path
            ) from None
        # keep the metadata (source line, symbol...) on the first slot; a poisoned lddw becomes two calls
        patched[pos] = [new[0].with_meta(**_meta_dict(current.meta)), *new[1:]]
        out.append(replace(rec, status="poisoned" if res.poison else "applied", reason=""))
    if not patched:
        return replace(prog, core_relocations=tuple(out))
    insns: list[Insn] = []
    for pos, insn in enumerate(prog.insns):
        insns.extend(patched.get(pos, (insn,)))
    return replace(prog, insns=Insns(insns), core_relocations=tuple(out))


def _meta_dict(meta: InsnMeta) -> dict[str, object]:
    return {"symbol": meta.symbol, "reference": meta.reference, "source": meta.source, "func": meta.func}


def read_btf(data: bytes, *, path: PathArg = "<bytes>") -> tuple[BtfSpec, BtfExt | None]:
    """The ``.BTF`` (and ``.BTF.ext``) of an ELF object as written — no libbpf fix-ups — or, when
    ``data`` is not ELF, ``data`` itself as raw BTF (``/sys/kernel/btf/vmlinux``). This is what
    ``bpftool btf dump file`` shows. ``path`` (any path type) only labels messages."""
    path = path_str(path)
    if data[:4] != b"\x7fELF":
        return _with_path(lambda: BtfSpec.from_bytes(data), path), None
    elf = ElfFile.from_bytes(data, path=path)
    sec = elf.section_by_name(".BTF")
    if sec is None or sec.type != SHT_PROGBITS:
        raise BtfError("failed to find '.BTF' ELF section", path=path)
    btf = _with_path(lambda: BtfSpec.from_bytes(sec.data), path)
    ext_sec = elf.section_by_name(".BTF.ext")
    ext = _with_path(lambda: BtfExt.from_bytes(ext_sec.data, btf), path) if ext_sec is not None else None
    return btf, ext
