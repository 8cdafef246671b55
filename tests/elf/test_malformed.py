"""Malformed objects raise LoaderError subclasses with messages that say what is wrong."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import pytest

from pybpf.btf import BtfSpec
from pybpf.elf import ObjectSpec
from pybpf.errors import BtfError, ElfError, LoaderError, PybpfError, RelocationError

sys.path.insert(0, str(Path(__file__).parent))
from elfpatch import ElfPatch

OBJ = Path(__file__).resolve().parents[1] / "data" / "objects"


def raw(name: str) -> bytes:
    return (OBJ / f"{name}.o").read_bytes()


def open_bytes(data: bytes) -> ObjectSpec:
    return ObjectSpec.from_bytes(data, name="t")


@pytest.mark.parametrize("cut", [0, 3, 16, 63, 64, 200, 1000, -1000, -100, -1])
def test_truncated(cut: int) -> None:
    data = raw("subprogs")
    with pytest.raises(LoaderError):
        open_bytes(data[:cut])


def test_truncated_header_message() -> None:
    with pytest.raises(ElfError, match="too short"):
        open_bytes(b"\x7fELF\x02\x01")
    with pytest.raises(ElfError, match="not an ELF file"):
        open_bytes(b"MZ" + b"\0" * 100)


def test_section_past_end_of_file() -> None:
    p = ElfPatch(raw("subprogs"))
    tc = p.section("tc")
    p.set_shdr(tc.index, "size", len(p.data))
    with pytest.raises(ElfError, match=r"section .* 'tc' out of bounds"):
        open_bytes(p.bytes())


@pytest.mark.parametrize(
    ("field_offset", "value", "message"),
    [
        (0x12, 62, "not a valid eBPF object file"),  # e_machine = EM_X86_64
        (0x10, 2, "not a valid eBPF object file"),  # e_type = ET_EXEC
        (0x04, 1, "not a 64-bit ELF"),  # EI_CLASS = ELFCLASS32
        (0x05, 2, "not a little-endian"),  # EI_DATA = ELFDATA2MSB
    ],
)
def test_wrong_kind_of_elf(field_offset: int, value: int, message: str) -> None:
    data = bytearray(raw("maps_btf"))
    if field_offset >= 0x10:
        struct.pack_into("<H", data, field_offset, value)
    else:
        data[field_offset] = value
    with pytest.raises(ElfError, match=message):
        open_bytes(bytes(data))


def test_machine_zero_is_accepted() -> None:
    """Old LLVM wrote e_machine 0; libbpf accepts it, so does pybpf."""
    data = bytearray(raw("globals"))
    struct.pack_into("<H", data, 0x12, 0)
    spec = open_bytes(bytes(data))
    assert "read_globals" in spec.programs


def test_bad_section_indices() -> None:
    p = ElfPatch(raw("subprogs"))
    symtab = p.section(".symtab")
    p.set_shdr(symtab.index, "link", 999)
    with pytest.raises(ElfError, match="symbol strings section"):
        open_bytes(p.bytes())

    p = ElfPatch(raw("subprogs"))
    rel = p.section(".reltc")
    p.set_shdr(rel.index, "info", 999)
    with pytest.raises(ElfError, match="applies to section 999"):
        open_bytes(p.bytes())

    p = ElfPatch(raw("subprogs"))
    struct.pack_into("<H", p.data, 0x3E, 999)  # e_shstrndx
    with pytest.raises(ElfError, match="string table index"):
        open_bytes(p.bytes())

    p = ElfPatch(raw("subprogs"))
    rel = p.section(".reltc")
    p.set_shdr(rel.index, "entsize", 24)
    with pytest.raises(ElfError, match="entry size 24"):
        open_bytes(p.bytes())


def test_symbol_pointing_at_missing_section() -> None:
    p = ElfPatch(raw("subprogs"))
    symtab = p.section(".symtab")
    rel_at, _ = p.rels(".reltc")[0]
    sym_idx = struct.unpack_from("<Q", p.data, rel_at + 8)[0] >> 32
    struct.pack_into("<H", p.data, symtab.offset + sym_idx * 24 + 6, 500)  # st_shndx
    with pytest.raises(ElfError, match=r"corrupted symbol .* invalid section #500"):
        open_bytes(p.bytes())


def test_relocation_to_missing_symbol() -> None:
    p = ElfPatch(raw("subprogs"))
    at, _ = p.rels(".reltc")[0]
    p.set_rel(at, sym=4000)
    with pytest.raises(RelocationError, match="symbol #4000 not found for relo #0"):
        open_bytes(p.bytes())


def test_misaligned_relocation() -> None:
    p = ElfPatch(raw("globals"))
    at, off = p.rels(".relsocket")[0]
    p.set_rel(at, offset=off + 4)
    with pytest.raises(RelocationError, match="invalid offset"):
        open_bytes(p.bytes())


def test_relocation_on_second_half_of_lddw() -> None:
    p = ElfPatch(raw("globals"))
    at, off = p.rels(".relsocket")[0]
    p.set_rel(at, offset=off + 8)
    with pytest.raises(RelocationError, match=r"invalid relo against .* for insns\[\d+\]\.code 0x0"):
        open_bytes(p.bytes())


def test_relocation_on_a_non_reference_instruction() -> None:
    p = ElfPatch(raw("globals"))
    at, _ = p.rels(".relsocket")[0]
    p.set_rel(at, offset=0)  # insn 0 is a load
    with pytest.raises(RelocationError, match=r"invalid relo .* insns\[0\]\.code 0x61"):
        open_bytes(p.bytes())


def test_relocation_past_section_end() -> None:
    p = ElfPatch(raw("globals"))
    at, _ = p.rels(".relsocket")[0]
    p.set_rel(at, offset=1 << 20)
    with pytest.raises(RelocationError, match="invalid offset 0x100000"):
        open_bytes(p.bytes())


def test_corrupt_btf_in_object() -> None:
    p = ElfPatch(raw("maps_btf"))
    btf = p.section(".BTF")
    p.data[btf.offset] ^= 0xFF  # magic
    with pytest.raises(BtfError, match="invalid BTF magic"):
        open_bytes(p.bytes())


def test_corrupt_btf_type_reference() -> None:
    p = ElfPatch(raw("maps_btf"))
    btf = p.section(".BTF")
    hdr_len, type_off = struct.unpack_from("<II", p.data, btf.offset + 4)[0], 0
    first = btf.offset + hdr_len + type_off
    # type [1] is a PTR in this object (bpftool: "[1] PTR '(anon)' type_id=3"): point it nowhere
    assert (struct.unpack_from("<I", p.data, first + 4)[0] >> 24) & 0x1F == 2
    struct.pack_into("<I", p.data, first + 8, 99999)
    with pytest.raises(BtfError, match=r"type \[1\] PTR: references type \[99999\]"):
        open_bytes(p.bytes())


def test_map_definition_errors_use_libbpfs_words() -> None:
    from pybpf.btf import Array, Int, Ptr, Struct, Var, VarLinkage
    from pybpf.btf.types import Datasec, Member, VarSecinfo, Void
    from pybpf.elf.maps import parse_btf_map_def

    types = [
        Void(),
        Int("int", 4, 1, 0, 32),  # 1
        Array(1, 1, 2),  # 2: int[2]   -> type = 2 (HASH=1? no: ARRAY) ...
        Ptr(2),  # 3
        Array(1, 1, 4),  # 4: int[4]
        Ptr(4),  # 5: key_size = 4
        Int("long", 8, 1, 0, 64),  # 6
        Ptr(6),  # 7: key = long (8 bytes)
        Struct("", 24, (Member("type", 3, 0), Member("key_size", 5, 64), Member("key", 7, 128))),  # 8
        Var("m", 8, VarLinkage.GLOBAL_ALLOCATED),  # 9
        Datasec(".maps", 24, (VarSecinfo(9, 0, 24),)),  # 10
    ]
    btf = BtfSpec.from_types(types)
    with pytest.raises(BtfError, match=r"map 'm': conflicting key size 4 != 8."):
        parse_btf_map_def(btf, "m", btf.types[8], is_inner=False)  # type: ignore[arg-type]
    types[8] = Struct("", 8, (Member("flavour", 3, 0),))
    btf = BtfSpec.from_types(types)
    with pytest.raises(BtfError, match=r"map 'm': unknown field 'flavour'."):
        parse_btf_map_def(btf, "m", btf.types[8], is_inner=False)  # type: ignore[arg-type]
    types[8] = Struct("", 8, (Member("key_size", 5, 0),))
    btf = BtfSpec.from_types(types)
    with pytest.raises(BtfError, match=r"map 'm': map type isn't specified."):
        parse_btf_map_def(btf, "m", btf.types[8], is_inner=False)  # type: ignore[arg-type]
    types[8] = Struct("", 8, (Member("type", 1, 0),))
    btf = BtfSpec.from_types(types)
    with pytest.raises(BtfError, match=r"map 'm': attr 'type': expected PTR, got INT."):
        parse_btf_map_def(btf, "m", btf.types[8], is_inner=False)  # type: ignore[arg-type]


def test_unreadable_path() -> None:
    with pytest.raises(ElfError, match="cannot read"):
        ObjectSpec.from_path(str(OBJ / "does-not-exist.o"))


def test_all_errors_are_pybpf_errors() -> None:
    assert issubclass(ElfError, LoaderError) and issubclass(LoaderError, PybpfError)
