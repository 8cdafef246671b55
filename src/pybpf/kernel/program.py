"""A loaded program: its post-verification instructions, metadata, the maps it uses.

A :class:`Program` is what ``BPF_PROG_LOAD`` leaves behind: the instruction stream after the
verifier's rewrites (contract 1 of docs/architecture.md: ``lddw`` map loads hold map *ids*), the
program type and expected attach type, the tag, the license verdict, the maps it references
(``used_maps``, id → :class:`~pybpf.kernel.maps.base.Map`), statistics, and the line/func info the
dumps print. Its storage file (the fd the user gets, and what a pin links to) holds all of this
serialised, so another process can re-open it from a pin and prepare it for its own engine.

Engines are prepared lazily and cached per program (``runner(engine)``): the interpreter resolves
map ids to the map's region in its address space, the JIT to the real address of the map's memory.
"""

from __future__ import annotations

import hashlib
import json
import struct
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pybpf import uapi
from pybpf.isa import Insn, InsnMeta, Insns, SourceLine
from pybpf.isa.opcodes import PseudoSrc
from pybpf.uapi import AttachType, ProgType

if TYPE_CHECKING:
    from pybpf.kernel.maps.base import Map
    from pybpf.kernel.objects import Kernel

__all__ = ["PROG_HEADER", "Program", "ProgramImage", "internal_call_name", "license_is_gpl_compatible", "prog_tag",
           "prog_tag_raw", "zero_map_values"]

PROG_MAGIC = 0x46504250
PROG_KIND_BYTE = 2
PROG_HEADER = struct.Struct("<IHBxIIIIIIQ")  # magic ver kind | type attach id insn_bytes json_len _ | load_time
_PROG_HEADER_SIZE = 64
STATS_OFF = 48
"""run_time_ns (u64) and run_cnt (u64) live at these offsets of a program's storage header."""

_GPL_COMPATIBLE = ("GPL", "GPL v2", "GPL and additional rights", "Dual BSD/GPL", "Dual MIT/GPL", "Dual MPL/GPL")


def license_is_gpl_compatible(license: str) -> bool:
    """The kernel's ``license_is_gpl_compatible`` (include/linux/license.h)."""
    return license in _GPL_COMPATIBLE


def prog_tag(insns: Insns) -> bytes:
    """``bpf_prog_calc_tag``: SHA-1 of the instructions as loaded, map fds/values zeroed; 8 bytes.

    The kernel computes it before its rewrites (in ``resolve_pseudo_ldimm64``), over the raw slots,
    with the immediate of a map-referencing ``lddw`` (both halves) cleared because fds are not
    stable. Python's sha1 pads exactly as the kernel's hand-rolled padding does.
    """
    return prog_tag_raw(bytearray(insns.encode()))


def prog_tag_raw(raw: bytearray) -> bytes:
    """:func:`prog_tag` of raw instruction bytes (modified in place: map ``lddw`` values zeroed)."""
    return hashlib.sha1(bytes(zero_map_values(raw))).digest()[:8]


def zero_map_values(raw: bytearray) -> bytearray:
    """What ``bpf_prog_calc_tag`` hashes: ``raw`` with the values of map ``lddw`` cleared (in place)."""
    i = 0
    n = len(raw) // 8
    while i < n:
        code = raw[i * 8]
        src = raw[i * 8 + 1] >> 4
        if code == 0x18 and src in (PseudoSrc.MAP_FD, PseudoSrc.MAP_VALUE) and i + 1 < n:
            raw[i * 8 + 4:i * 8 + 8] = bytes(4)
            nxt = raw[(i + 1) * 8:(i + 1) * 8 + 4]
            if nxt == bytes(4):
                raw[(i + 1) * 8 + 4:(i + 1) * 8 + 8] = bytes(4)
            i += 2
            continue
        i += 1
    return raw


@dataclass(slots=True)
class ProgramImage:
    """Everything a program is made of, independent of any process: what the storage file holds."""

    prog_type: int
    insns: Insns
    name: str = ""
    expected_attach_type: int = 0
    license: str = ""
    gpl_compatible: bool = False
    tag: bytes = b"\0" * 8
    used_map_ids: tuple[int, ...] = ()
    prog_flags: int = 0
    load_time: int = 0
    created_by_uid: int = 0
    verified_insns: int = 0
    btf_id: int = 0
    attach_btf_id: int = 0
    custom_type: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def serialize(self, prog_id: int) -> bytes:
        meta = {
            "name": self.name,
            "license": self.license,
            "gpl_compatible": self.gpl_compatible,
            "tag": self.tag.hex(),
            "used_maps": list(self.used_map_ids),
            "prog_flags": self.prog_flags,
            "created_by_uid": self.created_by_uid,
            "verified_insns": self.verified_insns,
            "btf_id": self.btf_id,
            "attach_btf_id": self.attach_btf_id,
            "custom_type": self.custom_type,
            "lines": _lines_of(self.insns),
            "funcs": _funcs_of(self.insns),
            "extra": self.extra,
        }
        blob = json.dumps(meta, separators=(",", ":")).encode()
        code = self.insns.encode()
        head = PROG_HEADER.pack(PROG_MAGIC, 1, PROG_KIND_BYTE, self.prog_type, self.expected_attach_type,
                                prog_id, len(code), len(blob), 0, self.load_time)
        return head.ljust(_PROG_HEADER_SIZE, b"\0") + code + blob

    @classmethod
    def deserialize(cls, data: bytes | memoryview) -> tuple[int, ProgramImage]:
        """(prog id, image); ValueError if ``data`` is not a program's storage."""
        if len(data) < _PROG_HEADER_SIZE:
            raise ValueError("short program header")
        magic, _ver, kind, ptype, attach, pid, ncode, nblob, _r, load_time = PROG_HEADER.unpack_from(data, 0)
        if magic != PROG_MAGIC or kind != PROG_KIND_BYTE:
            raise ValueError("not a pybpf program")
        code = bytes(data[_PROG_HEADER_SIZE:_PROG_HEADER_SIZE + ncode])
        blob = bytes(data[_PROG_HEADER_SIZE + ncode:_PROG_HEADER_SIZE + ncode + nblob])
        meta = json.loads(blob.decode())
        insns = _attach_meta(Insns.from_bytes(code, strict=False), meta.get("lines", []), meta.get("funcs", []))
        img = cls(
            prog_type=ptype,
            insns=insns,
            name=meta.get("name", ""),
            expected_attach_type=attach,
            license=meta.get("license", ""),
            gpl_compatible=bool(meta.get("gpl_compatible")),
            tag=bytes.fromhex(meta.get("tag", "00" * 8)),
            used_map_ids=tuple(meta.get("used_maps", ())),
            prog_flags=meta.get("prog_flags", 0),
            load_time=load_time,
            created_by_uid=meta.get("created_by_uid", 0),
            verified_insns=meta.get("verified_insns", 0),
            btf_id=meta.get("btf_id", 0),
            attach_btf_id=meta.get("attach_btf_id", 0),
            custom_type=meta.get("custom_type", ""),
            extra=meta.get("extra", {}),
        )
        return pid, img

    @property
    def size(self) -> int:
        return len(self.serialize(0))


def _lines_of(insns: Insns) -> list[list[Any]]:
    out: list[list[Any]] = []
    for idx, insn in insns.items():
        src = insn.meta.source
        if src is not None:
            out.append([int(idx), src.file, src.line, src.col, src.text])
    return out


def _funcs_of(insns: Insns) -> list[list[Any]]:
    out: list[list[Any]] = []
    for idx, insn in insns.items():
        if insn.meta.symbol is not None or insn.meta.func is not None:
            out.append([int(idx), insn.meta.symbol, insn.meta.func])
    return out


def _attach_meta(insns: Insns, lines: list[list[Any]], funcs: list[list[Any]]) -> Insns:
    if not lines and not funcs:
        return insns
    by_idx: dict[int, dict[str, Any]] = {}
    for idx, file, line, col, text in lines:
        by_idx.setdefault(idx, {})["source"] = SourceLine(file, line, col, text)
    for idx, symbol, func in funcs:
        d = by_idx.setdefault(idx, {})
        d["symbol"] = symbol
        d["func"] = func
    out: list[Insn] = []
    for idx, insn in insns.items():
        changes = by_idx.get(int(idx))
        if changes:
            insn = Insn(insn.code, insn.dst, insn.src, insn.off, insn.imm, InsnMeta(**changes))
        out.append(insn)
    return Insns(out)


class Program:
    """A live program (see the module docstring)."""

    kind = "prog"

    def __init__(self, kernel: Kernel, prog_id: int, image: ProgramImage, used_maps: dict[int, Map],
                 mapping: Any, path: Any) -> None:
        self.kernel = kernel
        self.id = prog_id
        self.image = image
        self.used_maps = used_maps
        self.mapping = mapping
        self.path = path
        self._runners: dict[str, Any] = {}
        self._jit_image: tuple[Any, int] | None = None
        self.verifier_log = ""

    # -- attributes in the kernel's words ---------------------------------------------------
    @property
    def prog_type(self) -> ProgType | int:
        try:
            return ProgType(self.image.prog_type)
        except ValueError:
            return self.image.prog_type

    @property
    def expected_attach_type(self) -> AttachType | int:
        try:
            return AttachType(self.image.expected_attach_type)
        except ValueError:
            return self.image.expected_attach_type

    @property
    def name(self) -> str:
        return self.image.name

    @property
    def insns(self) -> Insns:
        return self.image.insns

    @property
    def tag(self) -> bytes:
        return self.image.tag

    @property
    def gpl_compatible(self) -> bool:
        return self.image.gpl_compatible

    @property
    def load_time(self) -> int:
        return self.image.load_time

    @property
    def xlated_len(self) -> int:
        return self.image.insns.slot_count * 8

    def type_name(self) -> str:
        if self.image.custom_type:
            return self.image.custom_type
        return uapi.bpftool_name(self.prog_type) if isinstance(self.prog_type, ProgType) else str(self.prog_type)

    # -- dumps -----------------------------------------------------------------------------------
    def xlated_text(self, *, opcodes: bool = False, linum: bool = False) -> str:
        """``bpftool prog dump xlated`` as on a JIT-enabled kernel: kernel-dialect text with
        ``map[id:N]``, calls named by the kernel function they reach (internal functions the
        verifier patched in, helpers by their implementation) and bpf-to-bpf calls by the callee's
        JIT symbol (:mod:`pybpf.kernel.xlated_names`)."""
        from pybpf.isa.disasm import bpftool_callbacks, dump_xlated
        from pybpf.kernel.xlated_names import xlated_dump_inputs

        insns, namer = xlated_dump_inputs(self.image)
        return dump_xlated(insns, opcodes=opcodes, linum=linum, cbs=bpftool_callbacks(namer, calls_resolved=True))

    def xlated_json(self, *, opcodes: bool = False, linum: bool = False) -> list[dict[str, Any]]:
        from pybpf.isa.disasm import bpftool_callbacks, dump_xlated_json
        from pybpf.kernel.xlated_names import xlated_dump_inputs

        insns, namer = xlated_dump_inputs(self.image)
        return dump_xlated_json(insns, opcodes=opcodes, linum=linum,
                                cbs=bpftool_callbacks(namer, calls_resolved=True))

    # -- execution ---------------------------------------------------------------------------
    def runner(self, engine: str = "interpreter") -> Any:
        """The program prepared for ``engine`` (cached)."""
        r = self._runners.get(engine)
        if r is None:
            from pybpf.kernel.engines import prepare

            r = prepare(self, engine)
            self._runners[engine] = r
        return r

    def jit_image(self) -> tuple[Any, int] | None:
        """(JIT image, address it is mapped at or 0) — see :func:`pybpf.kernel.engines.jit_image`;
        compiled once per program object."""
        if self._jit_image is None or ("jit" in self._runners and self._jit_image[1] == 0):
            from pybpf.kernel.engines import jit_image

            got = jit_image(self)
            self._jit_image = got if got is not None else (None, 0)
        return None if self._jit_image[0] is None else self._jit_image

    @property
    def jited_len(self) -> int:
        """``jited_prog_len``: bytes of machine code (0 where the JIT cannot compile the program)."""
        got = self.jit_image()
        return int(got[0].code_size) if got is not None else 0

    # -- statistics (``bpf_prog_stats``), kept in the shared storage header -------------------------
    @property
    def run_time_ns(self) -> int:
        return int.from_bytes(self.mapping.view[STATS_OFF:STATS_OFF + 8], "little") if self.mapping else 0

    @property
    def run_cnt(self) -> int:
        return int.from_bytes(self.mapping.view[STATS_OFF + 8:STATS_OFF + 16], "little") if self.mapping else 0

    def account(self, ns: int, runs: int) -> None:
        """Add one test run's time and count, when statistics are enabled (as Linux counts only
        under ``kernel.bpf_stats_enabled``): atomically, other processes may run it too."""
        if not self.kernel.stats_enabled or not self.mapping:
            return
        from pybpf.kernel import native

        native.atomic_add64(self.mapping.address + STATS_OFF, ns)
        native.atomic_add64(self.mapping.address + STATS_OFF + 8, runs)

    def __repr__(self) -> str:
        return f"<Program id={self.id} name={self.name!r} type={self.type_name()} insns={len(self.insns)}>"


def internal_call_name(insn: Insn) -> str | None:
    """The name of the internal function (contract 2) a ``call`` instruction targets, else None:
    what dumps print where the verifier patched a helper call into a direct call."""
    if insn.code != 0x85 or insn.src != 0:
        return None
    from pybpf.progtypes.internal import by_id, is_internal

    imm = insn.imm & 0xFFFFFFFF
    return by_id(imm).name if is_internal(imm) else None


def boottime_ns() -> int:
    """``ktime_get_boottime_ns``."""
    return time.clock_gettime_ns(time.CLOCK_BOOTTIME)
