"""The ELF border: bytes → sections, symbols and relocations, or :class:`~pybpf.errors.ElfError`.

This is the only module that imports ``elftools``. pyelftools parses the file header and the section
header table; everything it raises (``ELFError``, construct's ``StreamError``, ``struct.error``,
``UnicodeDecodeError``, ...) is caught here and turned into an :class:`ElfError` that says what is
wrong. Symbols and relocation entries are decoded here with ``struct`` from the section bytes, after
checking entry sizes and bounds, so the layers above work on plain, validated dataclasses and never
see a foreign exception or an index outside the file.

Checks follow libbpf's ``bpf_object__elf_init``/``elf_collect``: 64-bit, little-endian, ``ET_REL``,
``e_machine`` ``EM_BPF`` (or 0, which old LLVM wrote), exactly one symbol table, relocation sections
with ``sh_entsize == sizeof(Elf64_Rel)``, and section indices in range.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

from pybpf.errors import ElfError

__all__ = [
    "EM_BPF",
    "ElfFile",
    "Rel",
    "Section",
    "Symbol",
]

EM_BPF = 247
SHT_NULL, SHT_PROGBITS, SHT_SYMTAB, SHT_STRTAB, SHT_REL, SHT_NOBITS = 0, 1, 2, 3, 9, 8
SHT_LLVM_ADDRSIG = 0x6FFF4C03
SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR = 0x1, 0x2, 0x4
STB_LOCAL, STB_GLOBAL, STB_WEAK = 0, 1, 2
STT_NOTYPE, STT_OBJECT, STT_FUNC, STT_SECTION, STT_FILE = 0, 1, 2, 3, 4
STV_DEFAULT, STV_INTERNAL, STV_HIDDEN = 0, 1, 2
SHN_UNDEF, SHN_LORESERVE, SHN_ABS, SHN_COMMON = 0, 0xFF00, 0xFFF1, 0xFFF2
# relocation types (llvm/BinaryFormat/ELFRelocs/BPF.def)
R_BPF_NONE, R_BPF_64_64, R_BPF_64_ABS64, R_BPF_64_ABS32, R_BPF_64_NODYLD32, R_BPF_64_32 = 0, 1, 2, 3, 4, 10
RELOC_NAMES = {
    R_BPF_NONE: "R_BPF_NONE",
    R_BPF_64_64: "R_BPF_64_64",
    R_BPF_64_ABS64: "R_BPF_64_ABS64",
    R_BPF_64_ABS32: "R_BPF_64_ABS32",
    R_BPF_64_NODYLD32: "R_BPF_64_NODYLD32",
    R_BPF_64_32: "R_BPF_64_32",
}

_SYM = struct.Struct("<IBBHQQ")  # Elf64_Sym: name, info, other, shndx, value, size
_REL = struct.Struct("<QQ")  # Elf64_Rel: offset, info
_MAX_SECTIONS = 0xFF00


@dataclass(frozen=True, slots=True)
class Section:
    """One section header and its contents (``data`` is empty for ``SHT_NOBITS``; ``size`` is not)."""

    index: int
    name: str
    type: int
    flags: int
    size: int
    link: int
    info: int
    entsize: int
    addralign: int
    data: bytes

    @property
    def is_exec(self) -> bool:
        """Code: ``SHT_PROGBITS`` with ``SHF_EXECINSTR`` (libbpf's test for program sections)."""
        return self.type == SHT_PROGBITS and bool(self.flags & SHF_EXECINSTR)


@dataclass(frozen=True, slots=True)
class Symbol:
    """One ``Elf64_Sym``, decoded: ``type``/``bind``/``visibility`` split out of ``st_info``/``st_other``."""

    index: int
    name: str
    value: int
    size: int
    type: int
    bind: int
    visibility: int
    shndx: int

    @property
    def is_extern(self) -> bool:
        """libbpf's ``sym_is_extern``: undefined, global or weak, no type."""
        return self.shndx == SHN_UNDEF and self.bind in (STB_GLOBAL, STB_WEAK) and self.type == STT_NOTYPE


@dataclass(frozen=True, slots=True)
class Rel:
    """One ``Elf64_Rel`` of a relocation section (``index`` is its position, for messages)."""

    index: int
    offset: int
    sym: int
    type: int


@dataclass(frozen=True, slots=True)
class ElfFile:
    """A validated BPF relocatable object: sections by index, the symbol table, relocations by the
    index of the section they apply to."""

    path: str
    machine: int
    sections: tuple[Section, ...]
    symbols: tuple[Symbol, ...]
    symtab_index: int
    relocations: dict[int, tuple[Rel, ...]]
    rel_sections: dict[int, int]  # target section index -> relocation section index

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview, *, path: str = "<bytes>") -> ElfFile:
        """Validate and decode ``data``; anything malformed is an :class:`ElfError` naming ``path``."""
        raw = bytes(data)
        try:
            return _read(raw, path)
        except ElfError:
            raise
        except Exception as e:  # pyelftools and construct raise many types; this is the border
            raise ElfError(f"malformed ELF file: {type(e).__name__}: {e}", path=path) from None

    def section(self, index: int) -> Section:
        """Section ``index``, or an :class:`ElfError` if there is none (indices come from the file)."""
        if not 0 <= index < len(self.sections):
            raise ElfError(f"section index {index} out of range (0..{len(self.sections) - 1})", path=self.path)
        return self.sections[index]

    def section_by_name(self, name: str) -> Section | None:
        """The first section called ``name``."""
        for s in self.sections:
            if s.name == name:
                return s
        return None

    def symbol(self, index: int) -> Symbol | None:
        """Symbol ``index``, or ``None`` (relocations carry indices from the file)."""
        if 0 <= index < len(self.symbols):
            return self.symbols[index]
        return None


def _read(raw: bytes, path: str) -> ElfFile:
    from elftools.common.exceptions import ELFError as _PyElfError
    from elftools.elf.elffile import ELFFile

    if len(raw) < 64:
        raise ElfError(f"file too short for an ELF header ({len(raw)} bytes)", path=path)
    if raw[:4] != b"\x7fELF":
        raise ElfError("not an ELF file (bad magic)", path=path)
    if raw[4] != 2:
        raise ElfError("not a 64-bit ELF file (eBPF objects are ELFCLASS64)", path=path)
    if raw[5] != 1:
        raise ElfError("not a little-endian ELF file (big-endian BPF objects are not supported)", path=path)
    try:
        elf = ELFFile(io.BytesIO(raw))
    except _PyElfError as e:
        raise ElfError(f"malformed ELF header: {e}", path=path) from None
    hdr = elf.header
    machine = hdr["e_machine"]
    machine_no = {"EM_BPF": EM_BPF, "EM_NONE": 0}.get(str(machine), machine if isinstance(machine, int) else -1)
    if hdr["e_type"] != "ET_REL" or machine_no not in (0, EM_BPF):
        raise ElfError(
            f"not a valid eBPF object file (e_type {hdr['e_type']}, e_machine {machine}; expected ET_REL, EM_BPF)",
            path=path,
        )
    shoff, shnum, shentsize = hdr["e_shoff"], hdr["e_shnum"], hdr["e_shentsize"]
    if shnum == 0 and shoff:
        raise ElfError("extended section numbering (e_shnum = 0) is not supported", path=path)
    if shnum > _MAX_SECTIONS:
        raise ElfError(f"too many sections ({shnum})", path=path)
    if shnum and (shentsize != 64 or shoff + shnum * 64 > len(raw)):
        raise ElfError(f"section header table out of bounds (offset {shoff}, {shnum} x {shentsize} bytes)", path=path)
    strndx = hdr["e_shstrndx"]
    if shnum and not 0 < strndx < shnum:
        raise ElfError(f"invalid section name string table index {strndx}", path=path)

    shstr = b""
    if shnum:
        sh = elf._get_section_header(strndx)
        if sh["sh_offset"] + sh["sh_size"] > len(raw):
            raise ElfError("section name string table out of bounds", path=path)
        shstr = raw[sh["sh_offset"] : sh["sh_offset"] + sh["sh_size"]]

    sections: list[Section] = []
    for i in range(shnum):
        sh = elf._get_section_header(i)
        sh_type = _sh_type(sh["sh_type"])
        off, size = sh["sh_offset"], sh["sh_size"]
        name = _cstr(shstr, sh["sh_name"], what=f"section {i} name", path=path) if i else ""
        if sh_type in (SHT_NOBITS, SHT_NULL):
            data = b""
        else:
            if off + size > len(raw):
                raise ElfError(
                    f"section {i} '{name}' out of bounds (offset {off} + size {size} > {len(raw)} bytes)", path=path
                )
            data = raw[off : off + size]
        sections.append(
            Section(
                i,
                name,
                sh_type,
                sh["sh_flags"],
                size,
                sh["sh_link"],
                sh["sh_info"],
                sh["sh_entsize"],
                sh["sh_addralign"],
                data,
            )
        )

    symtabs = [s for s in sections if s.type == SHT_SYMTAB]
    if not symtabs:
        raise ElfError("no symbol table (stripped object file?)", path=path)
    if len(symtabs) > 1:
        raise ElfError("multiple symbol tables", path=path)
    symtab = symtabs[0]
    if symtab.entsize != _SYM.size or symtab.size % _SYM.size:
        raise ElfError(f"symbol table has entry size {symtab.entsize}, expected {_SYM.size}", path=path)
    if not 0 < symtab.link < len(sections) or sections[symtab.link].type != SHT_STRTAB:
        raise ElfError(f"symbol strings section missing or invalid (sh_link {symtab.link})", path=path)
    strtab = sections[symtab.link].data
    symbols = []
    for idx in range(symtab.size // _SYM.size):
        name_off, info, other, shndx, value, size = _SYM.unpack_from(symtab.data, idx * _SYM.size)
        name = _cstr(strtab, name_off, what=f"symbol {idx} name", path=path)
        symbols.append(Symbol(idx, name, value, size, info & 0xF, info >> 4, other & 0x3, shndx))

    relocations: dict[int, tuple[Rel, ...]] = {}
    rel_sections: dict[int, int] = {}
    for s in sections:
        if s.type != SHT_REL:
            continue
        if s.entsize != _REL.size or s.size % _REL.size:
            raise ElfError(f"relocation section '{s.name}' has entry size {s.entsize}, expected {_REL.size}", path=path)
        if not 0 < s.info < len(sections):
            raise ElfError(
                f"relocation section '{s.name}' applies to section {s.info}, which does not exist", path=path
            )
        if s.link != symtab.index:
            raise ElfError(f"relocation section '{s.name}' does not use the symbol table", path=path)
        rels = []
        for i in range(s.size // _REL.size):
            off, info = _REL.unpack_from(s.data, i * _REL.size)
            rels.append(Rel(i, off, info >> 32, info & 0xFFFFFFFF))
        if s.info in relocations:
            raise ElfError(f"section {s.info} has more than one relocation section", path=path)
        relocations[s.info] = tuple(rels)
        rel_sections[s.info] = s.index
    return ElfFile(path, machine_no, tuple(sections), tuple(symbols), symtab.index, relocations, rel_sections)


def _sh_type(value: object) -> int:
    if isinstance(value, int):
        return value
    from elftools.elf.enums import ENUM_SH_TYPE_BASE

    num = ENUM_SH_TYPE_BASE.get(str(value))
    return num if isinstance(num, int) else -1


def _cstr(table: bytes, off: int, *, what: str, path: str) -> str:
    if off == 0 and not table:
        return ""
    if not 0 <= off < len(table):
        raise ElfError(f"{what}: string offset {off} outside the string table ({len(table)} bytes)", path=path)
    end = table.find(b"\0", off)
    if end < 0:
        raise ElfError(f"{what}: string at offset {off} is not NUL-terminated", path=path)
    try:
        return table[off:end].decode()
    except UnicodeDecodeError:
        raise ElfError(f"{what}: not valid UTF-8", path=path) from None
