"""Byte-level editing of ELF64 objects for the malformed-input and fuzz tests (plain ``struct``)."""

from __future__ import annotations

import struct
from dataclasses import dataclass

SHDR_FIELDS = {  # name -> (offset in the 64-byte section header, struct format)
    "name": (0, "<I"),
    "type": (4, "<I"),
    "flags": (8, "<Q"),
    "addr": (16, "<Q"),
    "offset": (24, "<Q"),
    "size": (32, "<Q"),
    "link": (40, "<I"),
    "info": (44, "<I"),
    "addralign": (48, "<Q"),
    "entsize": (56, "<Q"),
}


@dataclass
class Shdr:
    index: int
    name: str
    type: int
    offset: int
    size: int
    link: int
    info: int
    entsize: int
    header_at: int


class ElfPatch:
    def __init__(self, data: bytes) -> None:
        self.data = bytearray(data)

    @property
    def shoff(self) -> int:
        return struct.unpack_from("<Q", self.data, 0x28)[0]

    @property
    def shnum(self) -> int:
        return struct.unpack_from("<H", self.data, 0x3C)[0]

    def sections(self) -> list[Shdr]:
        out = []
        strndx = struct.unpack_from("<H", self.data, 0x3E)[0]
        str_hdr = self.shoff + strndx * 64
        str_off = struct.unpack_from("<Q", self.data, str_hdr + 24)[0]
        for i in range(self.shnum):
            at = self.shoff + i * 64
            name_off, typ = struct.unpack_from("<II", self.data, at)
            off, size = struct.unpack_from("<QQ", self.data, at + 24)
            link, info = struct.unpack_from("<II", self.data, at + 40)
            entsize = struct.unpack_from("<Q", self.data, at + 56)[0]
            end = self.data.index(b"\0", str_off + name_off)
            name = self.data[str_off + name_off : end].decode()
            out.append(Shdr(i, name, typ, off, size, link, info, entsize, at))
        return out

    def section(self, name: str) -> Shdr:
        return next(s for s in self.sections() if s.name == name)

    def set_shdr(self, index: int, field: str, value: int) -> None:
        off, fmt = SHDR_FIELDS[field]
        struct.pack_into(fmt, self.data, self.shoff + index * 64 + off, value)

    def rels(self, rel_section: str) -> list[tuple[int, int]]:
        """(file offset of the Elf64_Rel, r_offset) pairs."""
        s = self.section(rel_section)
        return [
            (s.offset + i * 16, struct.unpack_from("<Q", self.data, s.offset + i * 16)[0]) for i in range(s.size // 16)
        ]

    def set_rel(self, at: int, *, offset: int | None = None, sym: int | None = None) -> None:
        r_off, info = struct.unpack_from("<QQ", self.data, at)
        if offset is not None:
            r_off = offset
        if sym is not None:
            info = (sym << 32) | (info & 0xFFFFFFFF)
        struct.pack_into("<QQ", self.data, at, r_off, info)

    def bytes(self) -> bytes:
        return bytes(self.data)
