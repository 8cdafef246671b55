"""``.BTF.ext``: per-section func info, line info and CO-RE relocation records.

Layout (``tools/lib/bpf/libbpf_internal.h``): a header (magic, version, flags, hdr_len, then offset/
length pairs for func info, line info and — when ``hdr_len`` allows — CO-RE relocations), and per
kind a ``rec_size`` followed by ``{sec_name_off, num_info, records[num_info]}`` groups. Section names
and line texts are offsets into the ``.BTF`` string table, so parsing needs the :class:`BtfSpec`.

Instruction offsets stay in **bytes from the start of the ELF section** as clang writes them. The
ELF layer re-bases func and line info onto each program, and then ``insn_off`` is what
``BPF_PROG_LOAD`` takes: the raw slot in the program (:attr:`pybpf.elf.ProgramSpec.func_info`).
Only CO-RE records, which stay in section bytes, have an ``insn_idx``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from pybpf.btf.spec import BTF_MAGIC, BtfSpec
from pybpf.errors import BtfError
from pybpf.uapi import CoreReloKind

__all__ = ["BtfExt", "CoreRelo", "FuncInfo", "LineInfo"]


@dataclass(frozen=True, slots=True)
class FuncInfo:
    """``struct bpf_func_info``: a function (BTF FUNC ``type_id``) starts at ``insn_off`` — bytes
    from the section start in ``.BTF.ext``, the raw slot in a program's rebased records."""

    insn_off: int
    type_id: int


@dataclass(frozen=True, slots=True)
class LineInfo:
    """``struct bpf_line_info`` with its strings resolved: ``file``:``line``:``col`` is ``text``.
    ``insn_off`` as in :class:`FuncInfo`: section bytes in ``.BTF.ext``, slots once rebased."""

    insn_off: int
    file_name_off: int
    line_off: int
    line: int
    col: int
    file: str
    text: str

    @property
    def line_col(self) -> int:
        """The record's packed ``line_col`` field (line << 10 | column), as PROG_LOAD takes it."""
        return (self.line << 10) | self.col


@dataclass(frozen=True, slots=True)
class CoreRelo:
    """``struct bpf_core_relo``: at ``insn_off``, relocate ``kind`` of ``type_id`` along ``access_str``
    (``"0:1:2"``: member/array indices from the root type)."""

    insn_off: int
    type_id: int
    access_str_off: int
    access_str: str
    kind: CoreReloKind

    @property
    def insn_idx(self) -> int:
        """``insn_off`` in raw 8-byte slots of the ELF section."""
        return self.insn_off // 8


@dataclass(frozen=True, slots=True)
class BtfExt:
    """Records by ELF section name, each list in the order clang emitted it (ascending offsets)."""

    func_info: dict[str, tuple[FuncInfo, ...]] = field(default_factory=dict)
    line_info: dict[str, tuple[LineInfo, ...]] = field(default_factory=dict)
    core_relos: dict[str, tuple[CoreRelo, ...]] = field(default_factory=dict)
    func_info_rec_size: int = 8
    line_info_rec_size: int = 16
    core_relo_rec_size: int = 16

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview, btf: BtfSpec) -> BtfExt:
        """Parse a ``.BTF.ext`` section; names and line texts are looked up in ``btf``. Every
        malformation (bounds, record sizes, type ids, string offsets) is a :class:`BtfError`."""
        raw = bytes(data)
        if len(raw) < 8:
            raise BtfError(f"BTF.ext too short: {len(raw)} bytes")
        magic, version, _flags, hdr_len = struct.unpack_from("<HBBI", raw, 0)
        if magic != BTF_MAGIC:
            raise BtfError(f"invalid BTF.ext magic {magic:#06x}")
        if version != 1:
            raise BtfError(f"unsupported BTF.ext version {version}")
        if hdr_len < 24 or hdr_len > len(raw):
            raise BtfError(f"invalid BTF.ext header length {hdr_len} ({len(raw)} bytes)")
        fi_off, fi_len, li_off, li_len = struct.unpack_from("<IIII", raw, 8)
        cr_off = cr_len = 0
        if hdr_len >= 32:
            cr_off, cr_len = struct.unpack_from("<II", raw, 24)
        body = raw[hdr_len:]

        def parse_info(what: str, off: int, length: int, min_rec: int) -> tuple[int, list[tuple[str, list[bytes]]]]:
            if length == 0:
                return min_rec, []
            if off + length > len(body):
                raise BtfError(f"BTF.ext {what} out of bounds ({off}+{length} > {len(body)})")
            sec = body[off : off + length]
            if len(sec) < 4:
                raise BtfError(f"BTF.ext {what}: no record size")
            (rec_size,) = struct.unpack_from("<I", sec, 0)
            if rec_size < min_rec or rec_size % 4 or rec_size > 1024:
                raise BtfError(f"BTF.ext {what}: invalid record size {rec_size}")
            pos = 4
            groups: list[tuple[str, list[bytes]]] = []
            while pos < len(sec):
                if pos + 8 > len(sec):
                    raise BtfError(f"BTF.ext {what}: truncated section header at byte {pos}")
                name_off, num = struct.unpack_from("<II", sec, pos)
                pos += 8
                try:
                    name = btf.string_at(name_off)
                except BtfError as e:
                    raise BtfError(f"BTF.ext {what}: invalid section name: {e.message}") from None
                if num == 0:
                    raise BtfError(f"BTF.ext {what}: section '{name}' has no records")
                if pos + num * rec_size > len(sec):
                    raise BtfError(f"BTF.ext {what}: section '{name}' has {num} records past the end")
                recs = [sec[pos + i * rec_size : pos + (i + 1) * rec_size] for i in range(num)]
                pos += num * rec_size
                groups.append((name, recs))
            return rec_size, groups

        def s(off: int, what: str) -> str:
            try:
                return btf.string_at(off)
            except BtfError as e:
                raise BtfError(f"BTF.ext {what}: {e.message}") from None

        fi_size, fi_groups = parse_info("func info", fi_off, fi_len, 8)
        li_size, li_groups = parse_info("line info", li_off, li_len, 16)
        cr_size, cr_groups = parse_info("CO-RE relocations", cr_off, cr_len, 16)
        func_info: dict[str, tuple[FuncInfo, ...]] = {}
        for name, recs in fi_groups:
            items = []
            for r in recs:
                off_, tid = struct.unpack_from("<II", r)
                if tid >= len(btf):
                    raise BtfError(f"BTF.ext func info in '{name}': type id {tid} out of range")
                items.append(FuncInfo(off_, tid))
            func_info[name] = func_info.get(name, ()) + tuple(items)
        line_info: dict[str, tuple[LineInfo, ...]] = {}
        for name, recs in li_groups:
            litems = []
            for r in recs:
                off_, file_off, line_off, line_col = struct.unpack_from("<IIII", r)
                litems.append(
                    LineInfo(
                        off_,
                        file_off,
                        line_off,
                        line_col >> 10,
                        line_col & 0x3FF,
                        s(file_off, f"line info in '{name}'"),
                        s(line_off, f"line info in '{name}'"),
                    )
                )
            line_info[name] = line_info.get(name, ()) + tuple(litems)
        core: dict[str, tuple[CoreRelo, ...]] = {}
        for name, recs in cr_groups:
            citems = []
            for r in recs:
                off_, tid, acc_off, kind = struct.unpack_from("<IIII", r)
                try:
                    k = CoreReloKind(kind)
                except ValueError:
                    raise BtfError(f"BTF.ext CO-RE relocation in '{name}': unknown kind {kind}") from None
                if tid >= len(btf):
                    raise BtfError(f"BTF.ext CO-RE relocation in '{name}': type id {tid} out of range")
                citems.append(CoreRelo(off_, tid, acc_off, s(acc_off, f"CO-RE relocation in '{name}'"), k))
            core[name] = core.get(name, ()) + tuple(citems)
        return cls(func_info, line_info, core, fi_size, li_size, cr_size)
