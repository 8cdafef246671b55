"""The assembler: both dialects read back what the disassemblers print; errors point at line and column."""

from __future__ import annotations

import contextlib
import random
from pathlib import Path

import pytest

from pybpf.errors import AsmError
from pybpf.isa import OPCODES, Insn, Insns, Kind, validate
from pybpf.isa.asm import assemble, assemble_insn
from pybpf.isa.disasm import disassemble, dump_xlated, llvm_insn_text, objdump_listing
from pybpf.isa.dsl import R0, R1, call, exit_, ja, jeq_imm, label, mov64_imm, program

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "isa"
SEED = ROOT / "examples" / "seed-demo"


def random_valid(info_code: int, rng: random.Random) -> Insn:
    """A random instruction of this opcode that passes strict validation."""
    info = OPCODES[info_code]
    for _ in range(1000):
        f: dict[str, int] = {}
        for name, rule in (("dst", info.dst), ("src", info.src), ("off", info.off), ("imm", info.imm)):
            if rule.allowed is not None:
                f[name] = rng.choice(sorted(rule.allowed))
            elif name in ("dst", "src"):
                f[name] = rng.randrange(11)
            elif name == "off":
                f[name] = rng.choice([0, 1, -1, 0x7FFF, -0x8000, rng.randrange(-0x8000, 0x8000)])
            else:
                f[name] = rng.choice([0, 1, -1, 0x7FFFFFFF, -0x80000000, rng.randrange(-(1 << 31), 1 << 31)])
        if info.kind is Kind.LDDW:
            f["imm"] = rng.choice([0, -1, -(1 << 63), rng.randrange(-(1 << 63), 1 << 63)])
        insn = Insn(info_code, **f)
        if validate(insn) is None:
            return insn
    raise AssertionError(info.name)


CORPUS = [random_valid(code, random.Random(code * 31 + k)) for code in sorted(OPCODES) for k in range(12)]


def lossless_kernel(i: Insn) -> Insn:
    """What the kernel's text keeps: kfunc calls lose off; lddw of BTF_ID / MAP_IDX print as numbers."""
    if i.code == 0x85 and i.src == 2:
        return i.replace(off=0)
    if i.code == 0x18 and i.src in (3, 5):
        return i.replace(src=0)
    if i.code == 0x18 and i.src == 1:  # map[id:%u]: the low half only
        return i.replace(imm=i.imm & 0xFFFFFFFF)
    if i.code == 0x18 and i.src == 4:  # subprog[%+d]: the low half, signed
        lo = i.imm & 0xFFFFFFFF
        return i.replace(imm=lo - (1 << 32) if lo >> 31 else lo)
    if i.code == 0x8D:
        return Insn(0x8D, 0, 0, 0, i.imm)  # callx is printed as a call: its register is not in the text
    return i


def lossless_llvm(i: Insn) -> Insn:
    """What LLVM's text keeps: calls lose src and off; ld_pseudo keeps the low 32 bits of imm; ld_ind
    shows no imm."""
    if i.code in (0x40, 0x48, 0x50):
        return i.replace(imm=0)
    if i.code == 0x85:
        return Insn(0x85, 0, 0, 0, i.imm)
    if i.code == 0x18 and i.src:
        return i.replace(imm=i.imm & 0xFFFFFFFF)
    return i


@pytest.mark.parametrize("dialect", ["kernel", "llvm"])
def test_text_round_trip_is_identity_for_every_form(dialect: str) -> None:
    text = disassemble(CORPUS, dialect, alu32=True)  # type: ignore[arg-type]
    back = assemble(text, dialect)  # type: ignore[arg-type]
    assert disassemble(back, dialect, alu32=True) == text  # type: ignore[arg-type]
    keep = lossless_kernel if dialect == "kernel" else lossless_llvm
    assert list(back) == [keep(i) for i in CORPUS]


def test_every_opcode_is_in_the_corpus() -> None:
    assert {i.code for i in CORPUS} == set(OPCODES)


@pytest.mark.parametrize("alu32", [False, True])
def test_llvm_listing_of_compiled_objects_assembles_back(alu32: bool) -> None:
    """llvm-objdump text of real programs (slot numbers, bytes, symbols, relocations) -> same bytes."""
    import json

    for spec_path in sorted((DATA / "objects").glob("*_v4.json")):
        spec = json.loads(spec_path.read_text())
        for sec in spec["sections"]:
            data = bytes.fromhex(sec["data"])
            text = disassemble(data, "llvm", opcodes=True, alu32=alu32)
            back = assemble(text, "llvm")
            # LLVM prints a helper call and a bpf-to-bpf call alike ("call -0x1"): compare without src
            assert [lossless_llvm(i) for i in back] == [lossless_llvm(i) for i in Insns.from_bytes(data)]


def test_objdump_listing_symbols_and_relocations_become_metadata() -> None:
    from pybpf.isa.disasm import ObjdumpReloc, ObjdumpSection, ObjdumpSymbol

    code = program(mov64_imm(R1, 0), Insn(0x18, 1, 0, 0, 0), call(1), exit_()).encode()
    listing = objdump_listing("d.o", [ObjdumpSection("xdp", code, [ObjdumpSymbol("prog", 0)],
                                                     [ObjdumpReloc(8, "R_BPF_64_64", "counter")])])
    insns = assemble(listing, "llvm")
    assert insns.encode() == code
    assert insns[0].meta.symbol == "prog"
    assert insns[1].meta.reference == "counter"


def test_seed_demo_listings() -> None:
    insns = assemble((SEED / "demo.objdump.txt").read_text(), "llvm")
    assert insns.slot_count == 13
    assert llvm_insn_text(insns.at(8)) == "if r0 == 0x0 goto +0x2"
    xl = assemble((SEED / "demo.xlated.txt").read_text(), "kernel")
    assert xl.at(4) == Insn(0x18, 1, 1, 0, 29)
    assert dump_xlated(xl) == (SEED / "demo.xlated.txt").read_text()


def test_labels_and_hand_written_conveniences() -> None:
    text = """
    # count to three
    start:
        r0 = 0
    loop:
        r0 += 1            ; comment
        if r0 < 3 goto loop
        call bpf_get_prandom_u32
        call helper_fn      // a bpf-to-bpf call by label
        goto end
    helper_fn:
        r0 = 7
        exit
    end:
        exit
    """
    insns = assemble(text)
    assert insns == program(
        mov64_imm(R0, 0),
        label("loop"),
        Insn(0x07, 0, 0, 0, 1),
        Insn(0xA5, 0, 0, 0, 3).replace(off=-2),
        call(7),
        Insn(0x85, 0, 1, 0, 1),
        ja("end"),
        mov64_imm(R0, 7),
        exit_(),
        label("end"),
        exit_(),
    )
    llvm = assemble("r1 = 5\nif r1 == 0x5 goto out\nr1 = 0x10 ll\nout:\nexit\n", "llvm")
    assert llvm == program(mov64_imm(R1, 5), jeq_imm(R1, 5, "o"), Insn(0x18, 1, 0, 0, 16), label("o"), exit_())
    assert assemble_insn("w2 = (s16)w1") == Insn(0xBC, 2, 1, 16, 0)
    assert assemble_insn("r2 = 0x5", "llvm") == Insn(0xB7, 2, 0, 0, 5)
    assert assemble_insn("r2 = 0x5") == Insn(0x18, 2, 0, 0, 5)  # the kernel prints lddw values in hex
    assert assemble_insn("lock *(u64 *)(r1 + 8) += r2") == Insn(0xDB, 1, 2, 8, 0)
    assert isinstance(assemble(""), Insns) and len(assemble("")) == 0


@pytest.mark.parametrize(
    ("dialect", "text", "line", "col", "needle"),
    [
        ("kernel", "r0 = 0\nr12 = 1\n", 2, 1, "invalid register r12"),
        ("kernel", "r0 = 0\n  r1 += w2\n", 2, 9, "expected a 64-bit register"),
        ("kernel", "exit\nr1 = *(u32 *)(r2 +70000)", 2, 18, "offset +70000 out of range"),
        ("kernel", "r1 = 4294967296", 1, 6, "immediate 4294967296 out of range"),
        ("kernel", "goto nowhere", 1, 6, "unknown label 'nowhere'"),
        ("kernel", "frobnicate r1", 1, 1, "unknown instruction"),
        ("kernel", "   4: (07) r1 = 0", 1, 7, "opcode (07) does not match"),
        ("kernel", "a:\na:\nexit", 2, 1, "label 'a' defined twice"),
        ("kernel", "r1 = (s32)r2\nw1 = (s32)w2", 2, 7, "not a valid cast"),
        ("llvm", "r1 = 0x0 ll\n\tw1 = 0x1 ll", 2, 2, "expected a 64-bit register"),
        ("llvm", "       0:\tb7 01 00 00 00 00 00 00\t<unknown>", 1, 35, "cannot assemble '<unknown>'"),
        ("llvm", "r0 = atomic_fetch_add((u64 *)(r1 + 0x0), r2)", 1, 42, "must be the same register"),
        ("llvm", "lock *(u16 *)(r1 + 0x0) += r2", 1, 8, "atomic operations are 32 or 64 bits"),
    ],
)
def test_errors_point_at_line_and_column(dialect: str, text: str, line: int, col: int, needle: str) -> None:
    with pytest.raises(AsmError) as ei:
        assemble(text, dialect, path="prog.s")  # type: ignore[arg-type]
    e = ei.value
    assert needle in e.message
    assert (e.line, e.col) == (line, col), str(e)
    assert str(e).startswith(f"prog.s:{line}:{col}: ")


def test_unknown_dialect() -> None:
    with pytest.raises(AsmError, match="unknown dialect"):
        assemble("exit", "gnu")  # type: ignore[arg-type]


def test_garbage_never_escapes_as_a_foreign_exception() -> None:
    rng = random.Random(5)
    alphabet = "rw0123456789 =+-*/()[]<>&|^%:#;,xlockifgotopcmapid.sabu\t\n"
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 40)))
        for dialect in ("kernel", "llvm"):
            with contextlib.suppress(AsmError):
                assemble(text, dialect)  # type: ignore[arg-type]
