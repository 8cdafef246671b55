"""The conformance suites' assembler dialect (tests/data/conformance/README.md, section 3)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pybpf.errors import AsmError
from pybpf.isa import Insn, decode
from pybpf.isa.conformance_asm import assemble, parse_int

DATA = Path(__file__).resolve().parents[1] / "data" / "conformance"
INDEX = json.loads((DATA / "index.json").read_text())


def sections(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    current = None
    for line in path.read_text().splitlines():
        if line.startswith("--"):
            current, _, include = (part.strip() for part in line[2:].partition("@"))
            out[current] = (path.parent / include).read_text().splitlines() if include else []
        elif current is not None:
            out[current].append(line)
    return out


def raw_words(lines: list[str]) -> bytes:
    words = [tok for line in lines for tok in line.split("#", 1)[0].split()]
    return b"".join(int(w, 16).to_bytes(8, "little") for w in words)


ASM_AND_RAW = [DATA / e["path"] for e in INDEX if "asm" in e["sections"] and "raw" in e["sections"]]


@pytest.mark.parametrize("path", ASM_AND_RAW, ids=lambda p: p.name)
def test_assembling_gives_exactly_the_raw_section(path: Path) -> None:
    """The six uBPF assembler tests plus bpf_conformance's lddw.data."""
    sec = sections(path)
    assert assemble("\n".join(sec["asm"])).encode() == raw_words(sec["raw"])


ASM_FILES = [DATA / e["path"] for e in INDEX if "asm" in e["sections"] and not e["asm_error"]]


def test_every_suite_program_assembles_and_decodes_strictly_or_is_a_negative_test() -> None:
    assert len(ASM_FILES) > 380
    for path in ASM_FILES:
        sec = sections(path)
        text = "\n".join(sec["asm"])
        insns = assemble(text, path=str(path))
        strict_ok = True
        try:
            decode(insns.encode(), strict=True)
        except Exception:
            strict_ok = False
        # only uBPF's invalid-register tests assemble into something a strict decoder refuses
        assert strict_ok or path.name.startswith("err-invalid-reg"), path


@pytest.mark.parametrize(
    ("text", "insn"),
    [
        ("add32 %r0, -3", Insn(0x04, 0, imm=-3)),
        ("add %r9, 0xffffffff", Insn(0x07, 9, imm=-1)),  # hex is a bit pattern
        ("add64 %r1, %r2", Insn(0x0F, 1, 2)),
        ("sdiv32 %r0, %r1", Insn(0x3C, 0, 1, 1)),
        ("smod %r0, 3", Insn(0x97, 0, 0, 1, 3)),
        ("neg32 %r4", Insn(0x84, 4)),
        ("movsx832 %r0, %r1", Insn(0xBC, 0, 1, 8)),
        ("movsx3264 %r6, %r5", Insn(0xBF, 6, 5, 32)),
        ("be16 %r0", Insn(0xDC, 0, imm=16)),
        ("le64 %r3", Insn(0xD4, 3, imm=64)),
        ("bswap32 %r0", Insn(0xD7, 0, imm=32)),
        ("swap64 %r0", Insn(0xD7, 0, imm=64)),
        ("lddw %r0, 0x1122334455667788", Insn(0x18, 0, imm=0x1122334455667788)),
        ("lddw %r1, -1", Insn(0x18, 1, imm=-1)),
        ("ldxsh %r0, [%r10-2]", Insn(0x89, 0, 10, -2)),
        ("ldxdw %r0, [%r1]", Insn(0x79, 0, 1, 0)),
        ("stb [%r10-1], 0x80", Insn(0x72, 10, 0, -1, 0x80)),
        ("stxw [%r1+0x10], %r2", Insn(0x63, 1, 2, 16)),
        ("lock add32 [%r10-4], %r1", Insn(0xC3, 10, 1, -4, 0x00)),
        ("lock fetch xor [%r10-8], %r3", Insn(0xDB, 10, 3, -8, 0xA1)),
        ("lock xchg32 [%r10-8], %r1", Insn(0xC3, 10, 1, -8, 0xE1)),
        ("lock cmpxchg [%r10-8], %r1", Insn(0xDB, 10, 1, -8, 0xF1)),
        ("jsle32 %r4, -1, +3", Insn(0xD6, 4, 0, 3, -1)),
        ("jset %r1, %r2, -4", Insn(0x4D, 1, 2, -4)),
        ("ja32 -2", Insn(0x06, imm=-2)),
        ("call 5", Insn(0x85, imm=5)),
        ("call helper 0x7", Insn(0x85, imm=7)),
        ("call %r2", Insn(0x8D, 2)),
        ("call runtime 12", Insn(0x85, 0, 2, imm=12)),
        ("exit", Insn(0x95)),
    ],
)
def test_encodings(text: str, insn: Insn) -> None:
    assert list(assemble(text)) == [insn]


def test_labels_and_the_predefined_exit_label() -> None:
    prog = assemble(
        """
        mov %r0, 0
        lddw %r1, 1          # two slots
        jeq %r0, 0, done
        ja exit
    done:
        call local f
        exit
    f:  exit
        """
    )
    assert prog[2] == Insn(0x15, 0, 0, 1, 0)  # done is slot 5, the jump is at slot 3
    assert prog[3] == Insn(0x05, off=1)  # `exit` = the first exit (slot 6)
    assert prog[4] == Insn(0x85, 0, 1, imm=1)  # call local f: slot 7 from slot 5


@pytest.mark.parametrize(
    ("text", "message", "line", "col"),
    [
        ("mov %r0, 1\nor %r0, %r50", "Invalid register: %r50", 2, 9),
        ("ldxq %r0, %r1", "Invalid mnemonic: ldxq", 1, 1),
        ("  ldxb %r0, %r1", "Failed to decode register and offset: %r1", 1, 13),
        ("ldxb %r0, [%r1+0x10000]", "Offset out of range", 1, 11),
        ("mov32 %r0, 2147483648", "Immediate out of range: 2147483648", 1, 12),
        ("mov32 %r0, 0x100000000", "Immediate out of range: 0x100000000", 1, 12),
        ("lddw %r0", "Invalid number of operands for mnemonic: lddw", 1, 1),
        ("lock or [%r10-8]", "Invalid number of operands for lock", 1, 1),
        ("lock", "Invalid number of operands for lock", 1, 1),
        ("exit\nja NOT_A_LABEL\nexit", "Invalid label: NOT_A_LABEL", 2, 4),
        ("a:\nexit\na:\nexit", "Duplicate label (a)", 3, 1),
        ("call magic 3", "Invalid call mode: magic", 1, 6),
        ("ja 5", "Invalid label: 5", 1, 4),
        ("lock fetch xchg [%r1], %r2", "Invalid mnemonic: lock fetch xchg", 1, 12),
    ],
)
def test_errors_point_at_line_and_column(text: str, message: str, line: int, col: int) -> None:
    with pytest.raises(AsmError) as e:
        assemble(text, path="t.s")
    assert message in e.value.message
    assert (e.value.line, e.value.col) == (line, col)
    assert str(e.value).startswith(f"t.s:{line}:{col}: ")


def test_numbers() -> None:
    assert parse_int("0xffff", 16) == -1 and parse_int("-0x8000", 16) == -0x8000
    assert parse_int("32767", 16) == 32767
    with pytest.raises(ValueError, match="out of range"):
        parse_int("32768", 16)
    with pytest.raises(ValueError, match="out of range"):
        parse_int("0x1ffff", 16)
    assert parse_int("0xffffffffffffffff", 64) == -1 and parse_int("-9223372036854775808", 64) == -(1 << 63)
    with pytest.raises(ValueError):
        parse_int("12abc", 32)
