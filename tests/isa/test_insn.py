"""Encoding and decoding of single instructions and whole programs."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pybpf.errors import DecodeError, IsaError
from pybpf.isa import OPCODES, Insn, Insns, Kind, PseudoSrc, decode, encode, validate

CONFORMANCE = Path(__file__).resolve().parents[1] / "data" / "conformance"


def test_demo_program_roundtrips() -> None:
    raw = bytes.fromhex(
        "b701000000000000 631afcff00000000 bfa2000000000000 07020000fcffffff"
        "18010000000000000000000000000000 8500000001000000 b701000001000000"
        "1500020000000000 c310000000000000 b701000002000000 bf10000000000000 9500000000000000"
    )
    prog = decode(raw)
    assert prog.encode() == raw
    assert len(prog) == 12 and prog.slot_count == 13
    assert prog.at(4).is_wide and prog.at(4).pseudo is PseudoSrc.NONE
    assert prog.pos_of(6) == 5 and prog.slot_of(5) == 6
    with pytest.raises(KeyError):
        prog.pos_of(5)  # the middle of the lddw
    assert prog.at(6).is_helper_call and prog.at(6).imm == 1
    assert prog.jump_target(8) == 11


def test_lddw_holds_the_full_64_bit_immediate() -> None:
    insn = Insn(0x18, dst=1, src=PseudoSrc.MAP_VALUE, imm=(8 << 32) | 3)
    raw = insn.encode()
    assert len(raw) == 16
    assert struct.unpack("<BBhiBBhi", raw) == (0x18, 0x21, 0, 3, 0, 0, 0, 8)
    back = decode(raw)[0]
    assert back == insn and back.imm_lo == 3 and back.imm_hi == 8
    neg = Insn(0x18, dst=0, imm=-2)
    assert decode(neg.encode())[0].imm == -2


def test_metadata_is_not_part_of_equality() -> None:
    a = Insn(0xB7, dst=0, imm=1)
    assert a.with_meta(symbol="f") == a
    assert a.with_meta(symbol="f").meta.symbol == "f"


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"\xff" * 8, "unknown opcode 0xff"),
        (bytes([0x18, 0, 0, 0, 0, 0, 0, 0]), "incomplete lddw"),
        (bytes([0x18, 0, 0, 0, 0, 0, 0, 0, 0x07, 0, 0, 0, 0, 0, 0, 0]), "reserved fields"),
        (b"\x95\x00\x00\x00\x00\x00\x00", "not a multiple of 8"),
        (bytes([0xB7, 0x0B, 0, 0, 0, 0, 0, 0]), "invalid destination register r11"),
        (bytes([0xDC, 0, 0, 0, 24, 0, 0, 0]), "immediate field must be one of 16, 32, 64"),
    ],
)
def test_garbage_is_a_decode_error_naming_the_slot(raw: bytes, why: str) -> None:
    with pytest.raises(DecodeError, match=why) as info:
        decode(raw)
    assert info.value.insn_idx is not None


def test_lenient_decoding_keeps_unknown_opcodes() -> None:
    prog = decode(b"\xff" * 8 + bytes([0x95]) + bytes(7), strict=False)
    assert prog[0].code == 0xFF and prog[0].info is None and prog[1].kind is Kind.EXIT


@given(st.binary(max_size=256))
def test_decoding_random_bytes_only_raises_decode_error(data: bytes) -> None:
    try:
        prog = decode(data)
    except DecodeError:
        return
    assert prog.encode() == data


@st.composite
def valid_insns(draw: st.DrawFn) -> Insn:
    info = draw(st.sampled_from(sorted(OPCODES.values(), key=lambda i: i.code)))

    def pick(rule: object, lo: int, hi: int) -> int:
        allowed = getattr(rule, "allowed", None)
        return draw(st.sampled_from(sorted(allowed))) if allowed is not None else draw(st.integers(lo, hi))

    imm_lo, imm_hi = (-(1 << 63), (1 << 63) - 1) if info.kind is Kind.LDDW else (-(1 << 31), (1 << 31) - 1)
    insn = Insn(info.code, pick(info.dst, 0, 10), pick(info.src, 0, 10), pick(info.off, -(1 << 15), (1 << 15) - 1),
                pick(info.imm, imm_lo, imm_hi))
    if info.kind is Kind.CALL and insn.src != 2:
        insn = insn.replace(off=0)
    return insn


@given(st.lists(valid_insns(), max_size=40))
def test_encode_decode_roundtrip(insns: list[Insn]) -> None:
    for insn in insns:
        assert validate(insn) is None, insn
    raw = encode(insns)
    back = decode(raw)
    assert list(back) == insns
    assert back.slot_count * 8 == len(raw)


def test_encode_rejects_out_of_range_fields() -> None:
    with pytest.raises(IsaError):
        Insn(0xB7, off=1 << 15).encode()
    with pytest.raises(IsaError):
        Insn(0xB7, imm=1 << 32).encode()
    with pytest.raises(IsaError):
        Insn(0x1B7).encode()


def _unused_field_cases() -> list[Path]:
    return sorted((CONFORMANCE / "bpf_conformance" / "negative").glob("unused-*.data"))


@pytest.mark.parametrize("path", _unused_field_cases(), ids=lambda p: p.stem)
def test_reserved_fields_are_rejected(path: Path) -> None:
    """The conformance suite's negative "unused field must be zero" programs: strict decode refuses."""
    lines = [ln.split("#")[0].strip() for ln in path.read_text().splitlines()]
    start = lines.index("-- raw") + 1
    raw = bytearray()
    for ln in lines[start:]:
        if ln.startswith("--"):
            break
        raw += bytes(int(tok, 16) for tok in ln.split())
    with pytest.raises(DecodeError):
        decode(bytes(raw))


def test_table_covers_the_isa() -> None:
    names = {i.name for i in OPCODES.values()}
    for expected in ("add64_imm", "div32_reg", "neg64", "le", "be", "bswap", "gotol",
                     "call", "callx", "exit", "lddw", "ldabsw", "ldindb", "ldxsw", "stdw", "stxb", "atomicw",
                     "atomicdw", "may_goto", "jsle32_reg"):
        assert expected in names, expected
    assert len(Insns([Insn(0x95)])) == 1
