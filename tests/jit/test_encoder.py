"""Every encoder form checked against two independent references.

* capstone decodes each encoding back into exactly one instruction whose text is the expected
  Intel-syntax text (numbers compared by value);
* GNU ``as`` (where installed) assembles the same texts, and its bytes must equal ours exactly
  (marked ``toolchain``).

The cases cover all 16 registers in every position, the awkward memory bases (rsp/r12 need a SIB
byte, rbp/r13 a displacement), 8/32-bit displacements and the immediate-size boundaries.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from capstone import CS_ARCH_X86, CS_MODE_64, Cs

from pybpf.jit.x86 import encoder as x
from pybpf.jit.x86.encoder import REGS, AluOp, Cond, Mem, Reg, ShiftOp, UnaryOp

WIDTH_NAME = {8: "byte", 16: "word", 32: "dword", 64: "qword"}
DISPS = (0, 8, -8, 127, -128, 128, -129, 0x1234, -0x80000000, 0x7FFFFFFF)
IMMS = (0, 1, -1, 2, 127, -128, 128, -129, 0x1000, 0x7FFFFFFF, -0x80000000)


def mem_text(m: Mem, bits: int | None) -> str:
    prefix = f"{WIDTH_NAME[bits]} ptr " if bits else ""
    if m.base is None:
        return f"{prefix}[rip {'-' if m.disp < 0 else '+'} {abs(m.disp):#x}]"
    inner = m.base.name
    if m.index is not None:
        inner += f" + {m.index.name}" + (f"*{m.scale}" if m.scale != 1 else "")
    if m.disp:
        inner += f" {'-' if m.disp < 0 else '+'} {abs(m.disp):#x}"
    return f"{prefix}[{inner}]"


def mems() -> Iterator[Mem]:
    for base in REGS:
        for disp in DISPS:
            yield Mem(base, disp)
    for base in (x.RAX, x.RSP, x.RBP, x.R12, x.R13):
        for index in (x.RCX, x.R9, x.RBP, x.R13):
            for scale in (1, 8):
                yield Mem(base, 16, index, scale)
    yield Mem(None, 0x10)
    yield Mem(None, -0x40)


def few_regs() -> tuple[Reg, ...]:
    """Registers that exercise each encoding quirk: rax (short forms), rsp/r12 (SIB), rbp/r13
    (disp), sil/dil (REX for bytes), r8/r15 (REX.B/R)."""
    return (x.RAX, x.RCX, x.RSP, x.RBP, x.RSI, x.RDI, x.R8, x.R12, x.R13, x.R15)


Case = tuple[bytes, str]


def cases() -> list[Case]:
    out: list[Case] = []
    add = out.append
    for bits in (64, 32, 16, 8):
        for d in REGS:
            for s in REGS:
                add((x.mov_rr(d, s, bits), f"mov {d.sized(bits)}, {s.sized(bits)}"))
    for r in REGS:
        for imm in (0, 1, 0x7FFFFFFF, 0xFFFFFFFF, 0x80000000):
            add((x.mov_ri(r, imm, 32), f"mov {r.sized(32)}, {imm:#x}"))
        for imm in (0, -1, 0x7FFFFFFF, -0x80000000):
            add((x.mov_ri(r, imm, 64), f"mov {r.name}, {imm}"))
        add((x.mov_ri(r, 0x1234, 16), f"mov {r.sized(16)}, 0x1234"))
        for imm in (0x123456789ABCDEF0, 1 << 63, 5):
            add((x.movabs(r, imm), f"movabs {r.name}, {imm:#x}"))
        add((x.push(r), f"push {r.name}"))
        add((x.pop(r), f"pop {r.name}"))
        add((x.call_r(r), f"call {r.name}"))
        add((x.jmp_r(r), f"jmp {r.name}"))
        for bits in (32, 64):
            add((x.bswap(r, bits), f"bswap {r.sized(bits)}"))
            for op in UnaryOp:
                add((x.unary(op, r, bits), f"{op.name.lower()} {r.sized(bits)}"))
            for op in ShiftOp:
                for imm in (1, 3, 31 if bits == 32 else 63):
                    add((x.shift_ri(op, r, imm, bits), f"{op.name.lower()} {r.sized(bits)}, {imm}"))
                add((x.shift_cl(op, r, bits), f"{op.name.lower()} {r.sized(bits)}, cl"))
            for imm in IMMS:
                for op in AluOp:
                    add((x.alu_ri(op, r, imm, bits), f"{op.name.lower()} {r.sized(bits)}, {imm}"))
                add((x.test_ri(r, imm, bits), f"test {r.sized(bits)}, {imm}"))
                add((x.imul_rri(r, x.RBX, imm, bits), f"imul {r.sized(bits)}, {x.RBX.sized(bits)}, {imm}"))
                add((x.imul_rri(x.R11, r, imm, bits), f"imul {x.R11.sized(bits)}, {r.sized(bits)}, {imm}"))
        add((x.shift_ri(ShiftOp.ROR, r, 8, 16), f"ror {r.sized(16)}, 8"))
        add((x.alu_ri(AluOp.AND, r, 0x1234, 16), f"and {r.sized(16)}, 0x1234"))
    for d in REGS:
        for s in REGS:
            for bits in (64, 32, 8):
                for op in AluOp:
                    add((x.alu_rr(op, d, s, bits), f"{op.name.lower()} {d.sized(bits)}, {s.sized(bits)}"))
                add((x.test_rr(d, s, bits), f"test {d.sized(bits)}, {s.sized(bits)}"))
            for bits in (64, 32):
                add((x.imul_rr(d, s, bits), f"imul {d.sized(bits)}, {s.sized(bits)}"))
            for sb in (8, 16):
                add((x.movzx(d, s, sb, 32), f"movzx {d.sized(32)}, {s.sized(sb)}"))
                add((x.movsx(d, s, sb, 64), f"movsx {d.name}, {s.sized(sb)}"))
                add((x.movsx(d, s, sb, 32), f"movsx {d.sized(32)}, {s.sized(sb)}"))
            add((x.movsx(d, s, 32, 64), f"movsxd {d.name}, {s.sized(32)}"))
    for m in mems():
        for r in few_regs():
            for bits in (64, 32, 16, 8):
                add((x.mov_load(r, m, bits), f"mov {r.sized(bits)}, {mem_text(m, bits)}"))
                add((x.mov_store(m, r, bits), f"mov {mem_text(m, bits)}, {r.sized(bits)}"))
            add((x.lea(r, m), f"lea {r.name}, {mem_text(m, None)}"))
            add((x.lea(r, m, 32), f"lea {r.sized(32)}, {mem_text(m, None)}"))
            for sb in (8, 16):
                add((x.movzx(r, m, sb, 32), f"movzx {r.sized(32)}, {mem_text(m, sb)}"))
                add((x.movzx(r, m, sb, 64), f"movzx {r.name}, {mem_text(m, sb)}"))
                add((x.movsx(r, m, sb, 64), f"movsx {r.name}, {mem_text(m, sb)}"))
            add((x.movsx(r, m, 32, 64), f"movsxd {r.name}, {mem_text(m, 32)}"))
            for bits in (64, 32):
                for op in (AluOp.ADD, AluOp.OR, AluOp.AND, AluOp.XOR):
                    add((x.lock_alu_mr(op, m, r, bits), f"lock {op.name.lower()} {mem_text(m, bits)}, {r.sized(bits)}"))
                add((x.lock_xadd(m, r, bits), f"lock xadd {mem_text(m, bits)}, {r.sized(bits)}"))
                add((x.xchg_mr(m, r, bits), f"xchg {mem_text(m, bits)}, {r.sized(bits)}"))
                add((x.lock_cmpxchg(m, r, bits), f"lock cmpxchg {mem_text(m, bits)}, {r.sized(bits)}"))
                add((x.alu_rr(AluOp.CMP, m, r, bits), f"cmp {mem_text(m, bits)}, {r.sized(bits)}"))
                add((x.alu_rm(AluOp.ADD, r, m, bits), f"add {r.sized(bits)}, {mem_text(m, bits)}"))
                add((x.imul_rr(r, m, bits), f"imul {r.sized(bits)}, {mem_text(m, bits)}"))
        for bits, imm in ((8, 0x7F), (16, 0x1234), (32, 0x12345678), (64, -5), (64, 0x7FFFFFFF)):
            add((x.mov_store_imm(m, imm, bits), f"mov {mem_text(m, bits)}, {imm}"))
        for imm in (0, 1, -1, 0x1000):
            add((x.alu_ri(AluOp.CMP, m, imm, 64), f"cmp {mem_text(m, 64)}, {imm}"))
            add((x.alu_ri(AluOp.SUB, m, imm, 32), f"sub {mem_text(m, 32)}, {imm}"))
        add((x.call_mem(m), f"call {mem_text(m, 64)}"))
        add((x.jmp_mem(m), f"jmp {mem_text(m, 64)}"))
        add((x.unary(UnaryOp.NEG, m, 64), f"neg {mem_text(m, 64)}"))
        add((x.shift_ri(ShiftOp.SHL, m, 3, 32), f"shl {mem_text(m, 32)}, 3"))
    add((x.cqo(), "cqo"))
    add((x.cdq(), "cdq"))
    add((x.ret(), "ret"))
    add((x.int3(), "int3"))
    add((x.ud2(), "ud2"))
    # the forms only the native helpers and the batch driver use
    add((x.pause(), "pause"))
    add((x.rep_movsb(), "rep movsb byte ptr [rdi], byte ptr [rsi]"))
    add((x.rep_stosb(), "rep stosb byte ptr [rdi], al"))
    for d in REGS:
        for s in REGS:
            add((x.bsr(d, s, 64), f"bsr {d.sized(64)}, {s.sized(64)}"))
            add((x.bsr(d, s, 32), f"bsr {d.sized(32)}, {s.sized(32)}"))
        for cc in Cond:
            add((x.setcc(cc, d), f"set{_cc_name(cc)} {d.sized(8)}"))
    return out


def branch_cases() -> list[Case]:
    """Branches, decoded at address 0: capstone prints the absolute target (end + rel)."""
    out: list[Case] = []
    for rel in (0, 5, -2, 127, -128):
        out.append((x.jmp_rel8(rel), f"jmp {2 + rel:#x}"))
        for cc in Cond:
            out.append((x.jcc_rel8(cc, rel), f"j{_cc_name(cc)} {2 + rel:#x}"))
    for rel in (0, 0x1000, 0x7FFFFFF0):
        out.append((x.jmp_rel32(rel), f"jmp {5 + rel:#x}"))
        out.append((x.call_rel32(rel), f"call {5 + rel:#x}"))
        for cc in Cond:
            out.append((x.jcc_rel32(cc, rel), f"j{_cc_name(cc)} {6 + rel:#x}"))
    return out


_CS_CC = {Cond.B: "b", Cond.AE: "ae", Cond.E: "e", Cond.NE: "ne", Cond.BE: "be", Cond.A: "a", Cond.P: "p",
          Cond.NP: "np", Cond.L: "l", Cond.GE: "ge", Cond.LE: "le", Cond.G: "g"}


def _cc_name(cc: Cond) -> str:
    return _CS_CC.get(cc, cc.name.lower())


_NUM = re.compile(r"(?<![a-z0-9])-?(?:0x[0-9a-f]+|\d+)(?![a-z0-9])")


def normalize(text: str) -> str:
    """Whitespace and number spelling aside, the text: ``-1``, ``0xffffffff`` and
    ``0xffffffffffffffff`` are the same 32-bit pattern in a 32-bit operation, so numbers compare by
    their low 32 bits (the byte comparison with GNU as is the exact check)."""
    text = re.sub(r"\s+", " ", text.strip().lower())

    def num(m: re.Match[str]) -> str:
        return str(int(m.group(0), 0) & 0xFFFFFFFF)

    return _NUM.sub(num, text)


@pytest.fixture(scope="module")
def cs() -> Cs:
    return Cs(CS_ARCH_X86, CS_MODE_64)


@pytest.mark.parametrize("source", [cases, branch_cases], ids=["forms", "branches"])
def test_capstone_decodes_every_encoding(cs: Cs, source: Callable[[], list[Case]]) -> None:
    failures = []
    all_cases = source()
    assert len(all_cases) > 100
    for code, text in all_cases:
        decoded = list(cs.disasm(code, 0))
        got = " ".join(f"{i.mnemonic} {i.op_str}" for i in decoded)
        if len(decoded) != 1 or decoded[0].size != len(code) or normalize(got) != normalize(text):
            failures.append(f"{code.hex()}: want {text!r}, capstone says {got!r}")
    assert not failures, f"{len(failures)} mismatches, first: " + "\n".join(failures[:20])


def test_nops_decode_as_nops(cs: Cs) -> None:
    for n in range(1, 20):
        code = x.nop(n)
        assert len(code) == n
        decoded = list(cs.disasm(code, 0))
        assert sum(i.size for i in decoded) == n and all(i.mnemonic == "nop" for i in decoded)


def test_sizes_and_special_bases() -> None:
    # [rbp] and [r13] cannot use mod 00 (that means rip/disp32): they take a zero disp8.
    assert x.mov_load(x.RAX, Mem(x.RBP)) == bytes.fromhex("488b4500")
    assert x.mov_load(x.RAX, Mem(x.R13)) == bytes.fromhex("498b4500")
    # [rsp] and [r12] need a SIB byte.
    assert x.mov_load(x.RAX, Mem(x.RSP)) == bytes.fromhex("488b0424")
    assert x.mov_load(x.RAX, Mem(x.R12, 8)) == bytes.fromhex("498b442408")
    # byte access to sil/dil needs REX (without it, 6/7 mean dh/bh)
    assert x.mov_store(Mem(x.RAX), x.RSI, 8) == bytes.fromhex("408830")
    assert x.mov_store(Mem(x.RAX), x.RBX, 8) == bytes.fromhex("8818")
    assert x.movzx(x.RAX, x.RDI, 8) == bytes.fromhex("400fb6c7")
    # immediate sizing
    assert len(x.alu_ri(AluOp.ADD, x.RBX, 127)) == 4 and len(x.alu_ri(AluOp.ADD, x.RBX, 128)) == 7
    assert x.alu_ri(AluOp.ADD, x.RAX, 128) == bytes.fromhex("4805 80000000")
    assert x.rex(1, 1, 0, 1) == 0x4D and x.modrm(3, 2, 5) == 0xD5 and x.sib(8, 1, 4) == 0xCC


def test_unencodable_operands_raise_encode_error() -> None:
    with pytest.raises(x.EncodeError):
        x.jmp_rel8(128)
    with pytest.raises(x.EncodeError):
        x.alu_ri(AluOp.ADD, x.RAX, 1 << 31)
    with pytest.raises(x.EncodeError):
        Mem(x.RAX, 1 << 31)
    with pytest.raises(x.EncodeError):
        Mem(x.RAX, 0, x.RSP)
    with pytest.raises(x.EncodeError):
        x.movsx(x.RAX, x.RBX, 32, 32)
    with pytest.raises(x.EncodeError):
        x.mov_rr(x.RAX, x.RBX, 12)


def _gnu_as_bytes(texts: list[str], tmp: Path) -> bytes:
    src = tmp / "ref.s"
    src.write_text(".intel_syntax noprefix\n" + "\n".join(texts) + "\n")
    obj, binary = tmp / "ref.o", tmp / "ref.bin"
    subprocess.run(["as", "--64", "-o", str(obj), str(src)], check=True, capture_output=True)
    objcopy = shutil.which("objcopy")
    assert objcopy
    subprocess.run([objcopy, "-O", "binary", "-j", ".text", str(obj), str(binary)], check=True)
    return binary.read_bytes()


@pytest.mark.toolchain
@pytest.mark.skipif(shutil.which("as") is None or shutil.which("objcopy") is None, reason="GNU as not installed")
def test_gnu_as_produces_the_same_bytes(tmp_path: Path) -> None:
    all_cases = cases()
    ref = _gnu_as_bytes([t for _, t in all_cases], tmp_path)
    ours = b"".join(c for c, _ in all_cases)
    if ref == ours:
        return
    # locate the first instruction that differs (our lengths delimit the stream)
    pos = 0
    for code, text in all_cases:
        if ref[pos : pos + len(code)] != code:
            pytest.fail(f"{text!r}: ours {code.hex()}, GNU as {ref[pos:pos + len(code) + 4].hex()}...")
        pos += len(code)
    pytest.fail(f"length differs: ours {len(ours)}, GNU as {len(ref)}")
