"""BtfSpec: parsing, the graph questions (size, alignment, modifiers), encoding, corrupt input."""

from __future__ import annotations

import contextlib
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pybpf.btf import (
    Array,
    BtfExt,
    BtfKind,
    BtfSpec,
    Const,
    Enum,
    EnumValue,
    Float,
    Func,
    FuncLinkage,
    FuncProto,
    Fwd,
    Int,
    IntEncoding,
    Member,
    Param,
    Ptr,
    StringTable,
    Struct,
    Typedef,
    Union,
    Void,
    Volatile,
    encode_btf,
    essential_name,
)
from pybpf.elf import read_btf
from pybpf.errors import BtfError

OBJ = Path(__file__).resolve().parents[1] / "data" / "objects"
VMLINUX = Path("/sys/kernel/btf/vmlinux")


def btf_of(name: str) -> BtfSpec:
    return read_btf((OBJ / f"{name}.o").read_bytes())[0]


def test_parse_fixture_types() -> None:
    btf = btf_of("btf_types")
    ev = btf.types[btf.find_one("everything", BtfKind.STRUCT)]  # type: ignore[index]
    assert isinstance(ev, Struct)
    assert [m.name for m in ev.members][:3] == ["cv", "point", ""]
    bits = btf.types[btf.find_one("bits", BtfKind.STRUCT)]  # type: ignore[index]
    assert isinstance(bits, Struct) and bits.kflag
    assert [(m.name, m.bits_offset, m.bitfield_size) for m in bits.members][:4] == [
        ("a", 0, 3),
        ("b", 3, 5),
        ("c", 8, 12),
        ("d", 20, 40),
    ]
    neg = btf.types[btf.find_one("neg_e", BtfKind.ENUM)]  # type: ignore[index]
    assert isinstance(neg, Enum) and neg.signed and neg.values == (EnumValue("NEG_A", -5), EnumValue("NEG_B", 7))
    big = btf.types[btf.find_one("big_e")]  # type: ignore[index]
    assert big.kind == BtfKind.ENUM64 and big.values[1].value == 1 << 32  # type: ignore[union-attr]
    small = btf.types[btf.find_one("small_e")]  # type: ignore[index]
    assert small.size == 1  # type: ignore[union-attr]
    assert btf.types[btf.find_one("fwd_only")].kind == BtfKind.FWD  # type: ignore[index]


def test_sizes_and_alignment_like_libbpf() -> None:
    btf = btf_of("btf_types")
    sid = btf.find_one("everything", BtfKind.STRUCT)
    assert sid is not None
    assert btf.resolve_size(sid) == 136  # the map value size clang/libbpf agree on (see maps)
    packed = btf.find_one("packed_s", BtfKind.STRUCT)
    assert packed is not None
    assert btf.align_of(packed) == 1 and btf.resolve_size(packed) == 7
    assert btf.find_one("padded", BtfKind.FWD) is not None  # only used through a pointer
    manual = BtfSpec.from_types(
        [
            Void(),
            Int("char", 1, IntEncoding.SIGNED, 0, 8),
            Int("long long", 8, IntEncoding.SIGNED, 0, 64),
            Struct("padded", 24, (Member("c", 1, 0), Member("l", 2, 64), Member("s", 1, 128))),
            Struct("odd", 9, (Member("c", 1, 0), Member("l", 2, 8))),  # misaligned member: packed
        ]
    )
    assert manual.align_of(3) == 8 and manual.resolve_size(3) == 24
    assert manual.align_of(4) == 1
    arr = next(i for i, t in btf if isinstance(t, Array) and t.nelems == 2)
    assert btf.resolve_size(arr) == 2 * btf.resolve_size(btf.types[arr].type)  # type: ignore[union-attr]
    with pytest.raises(BtfError, match="cannot determine"):
        btf.resolve_size(0)


def test_skip_mods_and_member_offsets() -> None:
    types = [
        Void(),
        Int("int", 4, IntEncoding.SIGNED, 0, 32),  # 1
        Const(1),  # 2
        Volatile(2),  # 3
        Typedef("cvint", 3),  # 4
        Struct("inner", 8, (Member("a", 1, 0), Member("b", 4, 32))),  # 5
        Struct("outer", 12, (Member("x", 1, 0), Member("", 5, 32))),  # 6: anonymous member
    ]
    btf = BtfSpec.from_types(types)
    assert btf.skip_mods_and_typedefs(4) == 1
    assert btf.skip_mods(3) == 1
    off, m = btf.member_offset(6, "b")
    assert (off, m.name) == (64, "b")
    with pytest.raises(BtfError, match="no member 'zz'"):
        btf.member_offset(6, "zz")


def test_modifier_cycle_is_an_error_not_a_hang() -> None:
    btf = BtfSpec.from_types([Void(), Const(2), Volatile(1)])
    with pytest.raises(BtfError, match="chain longer"):
        btf.skip_mods_and_typedefs(1)
    with pytest.raises(BtfError):
        btf.resolve_size(1)


@pytest.mark.parametrize("name", sorted(p.stem for p in OBJ.glob("*.o")))
def test_encode_round_trip(name: str) -> None:
    btf = btf_of(name)
    again = BtfSpec.from_bytes(encode_btf(btf.types))
    assert again.types == btf.types


@pytest.mark.parametrize("name", sorted(p.stem for p in OBJ.glob("*.o")))
def test_encode_with_the_original_strings_is_byte_identical(name: str) -> None:
    """Seeded with the blob's own string table, the encoder reproduces clang's blob exactly: every
    string keeps its offset (line info refers to file names and source text by offset)."""
    btf = btf_of(name)
    assert encode_btf(btf.types, strings=StringTable(btf.strings)) == btf.raw
    assert BtfSpec.from_types(btf.types, strings=btf.strings).raw == btf.raw


def test_seeded_string_table_appends_new_strings() -> None:
    st = StringTable(b"\0int\0foo\0")
    assert (st.add(""), st.add("int"), st.add("foo"), st.add("bar"), st.add("int")) == (0, 1, 5, 9, 1)
    assert st.bytes() == b"\0int\0foo\0bar\0"
    with pytest.raises(BtfError, match="starts and ends with a NUL"):
        StringTable(b"int\0")


def test_every_kind_round_trips() -> None:
    from pybpf.btf import Datasec, DeclTag, Enum64, Restrict, TypeTag, Var, VarLinkage, VarSecinfo

    types = [
        Void(),
        Int("u8", 1, IntEncoding.NONE, 0, 8),
        Ptr(1),
        Array(1, 1, 3),
        Struct("s", 4, (Member("f", 1, 0, 4),), True),
        Union("u", 1, (Member("a", 1, 0),)),
        Enum("e", 4, (EnumValue("E0", 0),)),
        Fwd("f", True),
        Typedef("t", 1),
        Volatile(1),
        Const(1),
        Restrict(2),
        FuncProto(1, (Param("x", 1), Param("", 0))),
        Func("fn", 12, FuncLinkage.GLOBAL),
        Var("v", 1, VarLinkage.GLOBAL_ALLOCATED),
        Datasec(".data", 1, (VarSecinfo(14, 0, 1),)),
        Float("float", 4),
        DeclTag("tag", 13, -1),
        TypeTag("tt", 1),
        Enum64("e64", 8, (EnumValue("BIG", -(1 << 40)),), True),
    ]
    btf = BtfSpec.from_types(types)
    assert btf.types == tuple(types)
    assert {t.kind for t in btf.types[1:]} == set(BtfKind) - {BtfKind.UNKN}


def good_blob() -> bytes:
    return encode_btf([Void(), Int("int", 4, IntEncoding.SIGNED, 0, 32), Ptr(1)])


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b[:10], "too short"),
        (lambda b: b"\x00\x00" + b[2:], "invalid BTF magic"),
        (lambda b: b[:2] + b"\x02" + b[3:], "unsupported BTF version"),
        (lambda b: b[:4] + struct.pack("<I", 9999) + b[8:], "invalid BTF header length"),
        (lambda b: b[:12] + struct.pack("<I", 9999) + b[16:], "out of bounds"),  # type_len
        (lambda b: b[:-1] + b"x", "must start and end with a NUL"),
        (lambda b: b[: 24 + 4] + struct.pack("<I", 0x1F << 24) + b[24 + 8 :], "unknown kind 31"),
        (lambda b: b[:24] + struct.pack("<I", 5000) + b[28:], "string offset 5000 outside"),
        (
            lambda b: b[: 24 + 16 + 8] + struct.pack("<I", 77) + b[24 + 16 + 12 :],
            r"type \[2\] PTR: references type \[77\]",
        ),
    ],
)
def test_corrupt_blobs(mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(BtfError, match=message):
        BtfSpec.from_bytes(mutate(good_blob()))


def test_truncated_type_records() -> None:
    blob = bytearray(
        encode_btf(
            [Void(), Int("int", 4, IntEncoding.SIGNED, 0, 32), Struct("s", 8, (Member("a", 1, 0), Member("b", 1, 32)))]
        )
    )
    # shrink the type section so the struct's second member is cut off
    type_len = struct.unpack_from("<I", blob, 12)[0]
    struct.pack_into("<I", blob, 12, type_len - 4)
    struct.pack_into("<I", blob, 16, type_len - 4)  # str_off moves with it (strings now overlap: still bounded)
    with pytest.raises(BtfError):
        BtfSpec.from_bytes(bytes(blob))


def test_btf_ext_of_fixture() -> None:
    btf, ext = read_btf((OBJ / "subprogs.o").read_bytes())
    assert ext is not None
    assert set(ext.func_info) == {"tc", ".text"}
    assert ext.func_info_rec_size == 8 and ext.line_info_rec_size == 16
    li = ext.line_info["tc"][0]
    assert li.file == "./subprogs.c" and li.line > 0 and li.insn_off % 8 == 0
    for fi in ext.func_info[".text"]:
        assert isinstance(btf.types[fi.type_id], Func)


def test_btf_ext_errors() -> None:
    btf, _ = read_btf((OBJ / "subprogs.o").read_bytes())
    with pytest.raises(BtfError, match="too short"):
        BtfExt.from_bytes(b"\x9f\xeb", btf)
    hdr = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, 12, 0, 0)
    body = struct.pack("<III", 8, 99999, 1)  # rec_size 8, section name offset out of range
    with pytest.raises(BtfError, match="invalid section name"):
        BtfExt.from_bytes(hdr + body, btf)
    body = struct.pack("<III", 3, 0, 1)  # record size 3
    with pytest.raises(BtfError, match="invalid record size 3"):
        BtfExt.from_bytes(hdr + body, btf)


def test_essential_names() -> None:
    assert essential_name("task_struct___v2") == "task_struct"
    assert essential_name("task_struct") == "task_struct"
    assert essential_name("a____b") == "a____b"  # four underscores: not a flavor
    assert essential_name("__sk_buff___mine") == "__sk_buff"


@pytest.mark.skipif(not VMLINUX.is_file(), reason="no /sys/kernel/btf/vmlinux")
def test_parse_kernel_btf() -> None:
    btf = BtfSpec.from_bytes(VMLINUX.read_bytes())
    assert len(btf) > 10_000
    ts = btf.find_one("task_struct", BtfKind.STRUCT)
    assert ts is not None and btf.resolve_size(ts) > 1000
    sk = btf.find_one("__sk_buff", BtfKind.STRUCT)
    assert sk is not None and btf.resolve_size(sk) == 192


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=0, max_size=64), st.integers(0, 2000))
def test_random_bytes_in_a_real_blob(noise: bytes, at: int) -> None:
    """Only BtfError escapes, whatever lands where; a parsed result can be printed."""
    from pybpf.btf import dump_c, dump_raw, type_signature

    blob = bytearray(read_btf((OBJ / "btf_types.o").read_bytes())[0].raw)
    at %= len(blob)
    blob[at : at + len(noise)] = noise
    try:
        btf = BtfSpec.from_bytes(bytes(blob))
    except BtfError:
        return
    dump_raw(btf)
    for tid in range(len(btf)):
        type_signature(btf, tid)
        try:
            btf.resolve_size(tid)
            btf.align_of(tid)
        except BtfError:
            pass
    with contextlib.suppress(BtfError):
        dump_c(btf)
