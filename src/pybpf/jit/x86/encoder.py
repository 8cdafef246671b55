"""x86-64 machine-code encoder: pure functions from operands to bytes, no I/O, no state.

Why a hand-written encoder: the JIT emits a few dozen instruction forms, each needed in a precise
encoding (the code generator counts on sizes for branch relaxation, and tests compare every form
with GNU ``as``). Each public function encodes one instruction form named after the Intel manual's
mnemonic and returns its bytes; the primitives :func:`rex`, :func:`modrm` and :func:`sib` build the
prefix and operand bytes as the manual defines them.

Where the manual allows two encodings of the same instruction, this module picks the one GNU ``as``
picks for the same Intel-syntax text (``mov rax, rbx`` as ``89 /r``, ``add rax, 0x1000`` as the
short accumulator form ``48 05``, ``shl rax, 1`` as ``d1 /4``), so reference bytes from ``as``
compare exactly.

Operands: :class:`Reg` (a 64-bit general-purpose register; the operand width is a separate ``bits``
argument, 8/16/32/64) and :class:`Mem` (``[base + index*scale + disp]`` or ``[rip + disp]``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

__all__ = [
    "R8",
    "R9",
    "R10",
    "R11",
    "R12",
    "R13",
    "R14",
    "R15",
    "RAX",
    "RBP",
    "RBX",
    "RCX",
    "RDI",
    "RDX",
    "RSI",
    "RSP",
    "REGS",
    "AluOp",
    "Cond",
    "EncodeError",
    "Mem",
    "Reg",
    "ShiftOp",
    "UnaryOp",
    "alu_ri",
    "alu_rm",
    "alu_rr",
    "bsr",
    "bswap",
    "call_mem",
    "call_r",
    "call_rel32",
    "cdq",
    "cqo",
    "fits_i8",
    "fits_i32",
    "imul_rr",
    "imul_rri",
    "int3",
    "jcc_rel8",
    "jcc_rel32",
    "jmp_mem",
    "jmp_r",
    "jmp_rel8",
    "jmp_rel32",
    "lea",
    "lock_alu_mr",
    "lock_cmpxchg",
    "lock_xadd",
    "modrm",
    "mov_load",
    "mov_ri",
    "mov_rr",
    "mov_store",
    "mov_store_imm",
    "movabs",
    "movsx",
    "movzx",
    "nop",
    "pause",
    "pop",
    "push",
    "rep_movsb",
    "rep_stosb",
    "ret",
    "rex",
    "setcc",
    "shift_cl",
    "shift_ri",
    "sib",
    "test_ri",
    "test_rr",
    "ud2",
    "unary",
    "xchg_mr",
]


class EncodeError(ValueError):
    """An operand combination x86-64 cannot encode (a bug in the caller: the code generator
    turns it into a :class:`pybpf.errors.JitError` naming the eBPF instruction)."""


@dataclass(frozen=True, slots=True)
class Reg:
    """A general-purpose register: its 64-bit name and its number 0-15 (bit 3 goes in REX)."""

    name: str
    num: int

    @property
    def low(self) -> int:
        """The three bits that go in ModRM/SIB/opcode."""
        return self.num & 7

    @property
    def ext(self) -> int:
        """The fourth bit, which goes in REX.R/X/B."""
        return self.num >> 3

    def sized(self, bits: int) -> str:
        """The register's name at an operand width (``rax``/``eax``/``ax``/``al``)."""
        return _NAMES[bits][self.num]

    def __str__(self) -> str:
        return self.name


_NAMES = {
    64: ("rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
         "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"),
    32: ("eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi",
         "r8d", "r9d", "r10d", "r11d", "r12d", "r13d", "r14d", "r15d"),
    16: ("ax", "cx", "dx", "bx", "sp", "bp", "si", "di",
         "r8w", "r9w", "r10w", "r11w", "r12w", "r13w", "r14w", "r15w"),
    8: ("al", "cl", "dl", "bl", "spl", "bpl", "sil", "dil",
        "r8b", "r9b", "r10b", "r11b", "r12b", "r13b", "r14b", "r15b"),
}

REGS: tuple[Reg, ...] = tuple(Reg(name, i) for i, name in enumerate(_NAMES[64]))
RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8, R9, R10, R11, R12, R13, R14, R15 = REGS


@dataclass(frozen=True, slots=True)
class Mem:
    """A memory operand: ``[base + index*scale + disp]``; ``base=None`` means ``[rip + disp]``."""

    base: Reg | None
    disp: int = 0
    index: Reg | None = None
    scale: int = 1

    def __post_init__(self) -> None:
        if not fits_i32(self.disp):
            raise EncodeError(f"displacement {self.disp} does not fit in 32 bits")
        if self.scale not in (1, 2, 4, 8):
            raise EncodeError(f"scale {self.scale} is not 1, 2, 4 or 8")
        if self.index is not None and (self.index.num == 4 or self.base is None):
            raise EncodeError("rsp cannot be an index; rip-relative operands take no index")


class Cond(IntEnum):
    """Condition codes (the low nibble of ``jcc``/``setcc``/``cmovcc``)."""

    O = 0x0  # noqa: E741 - the manual's name for overflow
    NO = 0x1
    B = 0x2  # unsigned <
    AE = 0x3  # unsigned >=
    E = 0x4
    NE = 0x5
    BE = 0x6  # unsigned <=
    A = 0x7  # unsigned >
    S = 0x8
    NS = 0x9
    P = 0xA
    NP = 0xB
    L = 0xC  # signed <
    GE = 0xD  # signed >=
    LE = 0xE  # signed <=
    G = 0xF  # signed >


class AluOp(IntEnum):
    """The group-1 arithmetic operations: the ``/digit`` of ``81``/``83`` and ``opcode >> 3``."""

    ADD = 0
    OR = 1
    ADC = 2
    SBB = 3
    AND = 4
    SUB = 5
    XOR = 6
    CMP = 7


class ShiftOp(IntEnum):
    """The group-2 shift/rotate operations (``/digit`` of ``c1``/``d1``/``d3``)."""

    ROL = 0
    ROR = 1
    SHL = 4
    SHR = 5
    SAR = 7


class UnaryOp(IntEnum):
    """The group-3 operations on one operand (``/digit`` of ``f7``)."""

    NOT = 2
    NEG = 3
    MUL = 4
    IMUL = 5
    DIV = 6
    IDIV = 7


def fits_i8(v: int) -> bool:
    return -0x80 <= v <= 0x7F


def fits_i32(v: int) -> bool:
    return -0x8000_0000 <= v <= 0x7FFF_FFFF


# -- primitives ------------------------------------------------------------------------------------
def rex(w: bool | int = 0, r: int = 0, x: int = 0, b: int = 0) -> int:
    """The REX prefix byte ``0100WRXB``."""
    return 0x40 | (int(bool(w)) << 3) | ((r & 1) << 2) | ((x & 1) << 1) | (b & 1)


def modrm(mod: int, reg: int, rm: int) -> int:
    """The ModRM byte: ``mod`` (2 bits), ``reg`` (3 bits: register or opcode extension), ``rm``."""
    return ((mod & 3) << 6) | ((reg & 7) << 3) | (rm & 7)


def sib(scale: int, index: int, base: int) -> int:
    """The SIB byte; ``scale`` is the factor (1, 2, 4, 8)."""
    return ({1: 0, 2: 1, 4: 2, 8: 3}[scale] << 6) | ((index & 7) << 3) | (base & 7)


def _i8(v: int) -> bytes:
    return struct.pack("<b", v)


def _i32(v: int) -> bytes:
    if not fits_i32(v):
        raise EncodeError(f"immediate {v} does not fit in 32 bits (signed)")
    return struct.pack("<i", v)


def _imm(v: int, bits: int) -> bytes:
    """An immediate of an operand width; values may be given signed or unsigned."""
    if bits == 8:
        return struct.pack("<B", v & 0xFF)
    if bits == 16:
        return struct.pack("<H", v & 0xFFFF)
    if bits == 32:
        if not -0x8000_0000 <= v <= 0xFFFF_FFFF:
            raise EncodeError(f"immediate {v} does not fit in 32 bits")
        return struct.pack("<I", v & 0xFFFF_FFFF)
    return _i32(v)  # 64-bit operations take a sign-extended imm32


def _operand(reg_field: int, rm: Reg | Mem) -> tuple[int, int, int, bytes]:
    """ModRM (+SIB, +displacement) for ``rm``; returns (REX.R, REX.X, REX.B, bytes)."""
    if isinstance(rm, Reg):
        return reg_field >> 3, 0, rm.ext, bytes((modrm(3, reg_field, rm.low),))
    if rm.base is None:  # rip-relative: mod 00, rm 101, disp32
        return reg_field >> 3, 0, 0, bytes((modrm(0, reg_field, 5),)) + _i32(rm.disp)
    base = rm.base
    disp = rm.disp
    if disp == 0 and base.low != 5:  # [rbp]/[r13] have no mod-00 form: they take disp8 = 0
        mod, tail = 0, b""
    elif fits_i8(disp):
        mod, tail = 1, _i8(disp)
    else:
        mod, tail = 2, _i32(disp)
    if rm.index is not None:
        index = rm.index
        return (reg_field >> 3, index.ext, base.ext,
                bytes((modrm(mod, reg_field, 4), sib(rm.scale, index.low, base.low))) + tail)
    if base.low == 4:  # rsp/r12 as base need a SIB byte with no index
        return reg_field >> 3, 0, base.ext, bytes((modrm(mod, reg_field, 4), sib(1, 4, 4))) + tail
    return reg_field >> 3, 0, base.ext, bytes((modrm(mod, reg_field, base.low),)) + tail


def _enc(
    opcode: bytes,
    reg_field: int,
    rm: Reg | Mem,
    bits: int,
    *,
    byte_regs: tuple[Reg | None, ...] = (),
    lock: bool = False,
    force_w: bool | None = None,
) -> bytes:
    """Prefixes + REX + opcode + ModRM/SIB/disp for a two-operand (or /digit) instruction.

    ``byte_regs`` are the registers used as 8-bit operands: spl/bpl/sil/dil need a REX prefix
    (without one, numbers 4-7 mean ah/ch/dh/bh).
    """
    r, x, b, tail = _operand(reg_field, rm)
    w = bits == 64 if force_w is None else force_w
    need = w or r or x or b or any(reg is not None and 4 <= reg.num <= 7 for reg in byte_regs)
    out = bytearray()
    if lock:
        out.append(0xF0)
    if bits == 16:
        out.append(0x66)
    if need:
        out.append(rex(w, r, x, b))
    out += opcode
    out += tail
    return bytes(out)


def _check_bits(bits: int, allowed: tuple[int, ...] = (8, 16, 32, 64)) -> None:
    if bits not in allowed:
        raise EncodeError(f"operand width {bits} not one of {allowed}")


# -- moves -----------------------------------------------------------------------------------------
def mov_rr(dst: Reg, src: Reg, bits: int = 64) -> bytes:
    """``mov dst, src`` (``89 /r``: rm = dst, reg = src). 32-bit moves zero the upper half."""
    _check_bits(bits)
    op = b"\x88" if bits == 8 else b"\x89"
    return _enc(op, src.num, dst, bits, byte_regs=(dst, src) if bits == 8 else ())


def mov_ri(dst: Reg, imm: int, bits: int = 32) -> bytes:
    """``mov dst, imm``: ``b8+r id`` for 32 bits (zero-extends); ``c7 /0 id`` for 64 bits, whose
    immediate is sign-extended (use :func:`movabs` for other 64-bit values)."""
    if bits == 32:
        return _enc_opreg(0xB8, dst, 32) + _imm(imm, 32)
    if bits == 64:
        return _enc(b"\xc7", 0, dst, 64) + _i32(imm)
    if bits == 16:
        return b"\x66" + _enc_opreg(0xB8, dst, 16) + _imm(imm, 16)
    _check_bits(bits, (8,))
    return _enc_opreg(0xB0, dst, 8) + _imm(imm, 8)


def movabs(dst: Reg, imm: int) -> bytes:
    """``movabs dst, imm64`` (``REX.W b8+r io``): the only form with a full 64-bit immediate; the
    code generator also uses it for values patched at load time (map addresses)."""
    if not -(1 << 63) <= imm < (1 << 64):
        raise EncodeError(f"immediate {imm} does not fit in 64 bits")
    return bytes((rex(1, 0, 0, dst.ext), 0xB8 + dst.low)) + struct.pack("<Q", imm & (2**64 - 1))


def _enc_opreg(base: int, reg: Reg, bits: int) -> bytes:
    """``opcode + r`` forms (mov imm, push, pop, bswap): the register lives in the opcode byte."""
    need_rex = reg.ext or bits == 64 or (bits == 8 and 4 <= reg.num <= 7)
    prefix = bytes((rex(bits == 64, 0, 0, reg.ext),)) if need_rex else b""
    return prefix + bytes((base + reg.low,))


def mov_load(dst: Reg, src: Mem, bits: int = 64) -> bytes:
    """``mov dst, [mem]`` (``8b /r``); 8/16-bit loads merge into dst, so the JIT uses
    :func:`movzx` for those."""
    _check_bits(bits)
    op = b"\x8a" if bits == 8 else b"\x8b"
    return _enc(op, dst.num, src, bits, byte_regs=(dst,) if bits == 8 else ())


def mov_store(dst: Mem, src: Reg, bits: int = 64) -> bytes:
    """``mov [mem], src`` (``89 /r``, ``88 /r`` for bytes)."""
    _check_bits(bits)
    op = b"\x88" if bits == 8 else b"\x89"
    return _enc(op, src.num, dst, bits, byte_regs=(src,) if bits == 8 else ())


def mov_store_imm(dst: Mem | Reg, imm: int, bits: int) -> bytes:
    """``mov [mem], imm`` (``c6 /0 ib``, ``66 c7 /0 iw``, ``c7 /0 id``; 64 bits: sign-extended id)."""
    _check_bits(bits)
    if bits == 8:
        return _enc(b"\xc6", 0, dst, 8) + _imm(imm, 8)
    return _enc(b"\xc7", 0, dst, bits) + _imm(imm, bits)


def movzx(dst: Reg, src: Reg | Mem, src_bits: int, dst_bits: int = 32) -> bytes:
    """``movzx dst, src8/src16`` (``0f b6``/``0f b7``)."""
    _check_bits(src_bits, (8, 16))
    _check_bits(dst_bits, (16, 32, 64))
    op = b"\x0f\xb6" if src_bits == 8 else b"\x0f\xb7"
    byte_regs = (src,) if src_bits == 8 and isinstance(src, Reg) else ()
    return _enc(op, dst.num, src, dst_bits, byte_regs=byte_regs)


def movsx(dst: Reg, src: Reg | Mem, src_bits: int, dst_bits: int = 64) -> bytes:
    """``movsx dst, src8/src16`` (``0f be``/``0f bf``) or ``movsxd dst, src32`` (``REX.W 63``)."""
    _check_bits(src_bits, (8, 16, 32))
    _check_bits(dst_bits, (16, 32, 64))
    if src_bits == 32:
        if dst_bits != 64:
            raise EncodeError("movsxd extends to 64 bits only")
        return _enc(b"\x63", dst.num, src, 64)
    op = b"\x0f\xbe" if src_bits == 8 else b"\x0f\xbf"
    byte_regs = (src,) if src_bits == 8 and isinstance(src, Reg) else ()
    return _enc(op, dst.num, src, dst_bits, byte_regs=byte_regs)


def lea(dst: Reg, src: Mem, bits: int = 64) -> bytes:
    """``lea dst, [mem]`` (``8d /r``)."""
    _check_bits(bits, (32, 64))
    return _enc(b"\x8d", dst.num, src, bits)


# -- arithmetic ------------------------------------------------------------------------------------
def alu_rr(op: AluOp, dst: Reg | Mem, src: Reg, bits: int = 64) -> bytes:
    """``op dst, src`` for add/or/adc/sbb/and/sub/xor/cmp, the ``r/m, reg`` form (``01``, ``09``...)."""
    _check_bits(bits)
    opcode = op * 8 + (0 if bits == 8 else 1)
    regs = (src, dst if isinstance(dst, Reg) else None) if bits == 8 else ()
    return _enc(bytes((opcode,)), src.num, dst, bits, byte_regs=regs)


def alu_rm(op: AluOp, dst: Reg, src: Mem, bits: int = 64) -> bytes:
    """``op dst, [mem]`` (the ``reg, r/m`` form: ``03``, ``0b``, ``3b``...)."""
    _check_bits(bits, (16, 32, 64))
    return _enc(bytes((op * 8 + 3,)), dst.num, src, bits)


def alu_ri(op: AluOp, dst: Reg | Mem, imm: int, bits: int = 64) -> bytes:
    """``op dst, imm``: ``83 /op ib`` when the immediate fits in a signed byte, the short accumulator
    form ``op*8+5`` for rax/eax, else ``81 /op id``. 64-bit forms sign-extend the imm32."""
    _check_bits(bits, (16, 32, 64))
    if bits == 32 and not -0x8000_0000 <= imm <= 0xFFFF_FFFF:
        raise EncodeError(f"immediate {imm} does not fit in 32 bits")
    signed = imm - (1 << 32) if bits == 32 and imm > 0x7FFF_FFFF else imm
    if bits == 16:
        signed = ((imm & 0xFFFF) ^ 0x8000) - 0x8000
    if fits_i8(signed):
        return _enc(b"\x83", op, dst, bits) + _i8(signed)
    if isinstance(dst, Reg) and dst.num == 0:
        prefix = b"\x66" if bits == 16 else (b"\x48" if bits == 64 else b"")
        return prefix + bytes((op * 8 + 5,)) + _imm(signed, bits)
    return _enc(b"\x81", op, dst, bits) + _imm(signed, bits)


def test_rr(a: Reg | Mem, b: Reg, bits: int = 64) -> bytes:
    """``test a, b`` (``85 /r``)."""
    _check_bits(bits)
    op = b"\x84" if bits == 8 else b"\x85"
    return _enc(op, b.num, a, bits, byte_regs=(a if isinstance(a, Reg) else None, b) if bits == 8 else ())


def test_ri(a: Reg | Mem, imm: int, bits: int = 64) -> bytes:
    """``test a, imm`` (``a9 id`` for rax/eax, else ``f7 /0 id``; 64-bit sign-extends the imm)."""
    _check_bits(bits, (32, 64))
    if isinstance(a, Reg) and a.num == 0:
        return (b"\x48" if bits == 64 else b"") + b"\xa9" + _imm(imm, bits)
    return _enc(b"\xf7", 0, a, bits) + _imm(imm, bits)


def imul_rr(dst: Reg, src: Reg | Mem, bits: int = 64) -> bytes:
    """``imul dst, src`` (``0f af /r``): the low half of the product, the same signed or unsigned."""
    _check_bits(bits, (16, 32, 64))
    return _enc(b"\x0f\xaf", dst.num, src, bits)


def imul_rri(dst: Reg, src: Reg | Mem, imm: int, bits: int = 64) -> bytes:
    """``imul dst, src, imm`` (``6b /r ib`` or ``69 /r id``)."""
    _check_bits(bits, (32, 64))
    signed = imm - (1 << 32) if bits == 32 and imm > 0x7FFF_FFFF else imm
    if fits_i8(signed):
        return _enc(b"\x6b", dst.num, src, bits) + _i8(signed)
    return _enc(b"\x69", dst.num, src, bits) + _imm(signed, bits)


def unary(op: UnaryOp, r: Reg | Mem, bits: int = 64) -> bytes:
    """``not``/``neg``/``mul``/``imul``/``div``/``idiv r`` (``f7 /op``; div/idiv divide rdx:rax)."""
    _check_bits(bits, (16, 32, 64))
    return _enc(b"\xf7", op, r, bits)


def cqo() -> bytes:
    """``cqo``: sign-extend rax into rdx:rax (before a 64-bit ``idiv``)."""
    return b"\x48\x99"


def cdq() -> bytes:
    """``cdq``: sign-extend eax into edx:eax (before a 32-bit ``idiv``)."""
    return b"\x99"


def shift_ri(op: ShiftOp, r: Reg | Mem, imm: int, bits: int = 64) -> bytes:
    """``shl/shr/sar/rol/ror r, imm`` (``d1 /op`` for a count of 1, as GNU as; else ``c1 /op ib``)."""
    _check_bits(bits, (16, 32, 64))
    if imm == 1:
        return _enc(b"\xd1", op, r, bits)
    return _enc(b"\xc1", op, r, bits) + bytes((imm & 0xFF,))


def shift_cl(op: ShiftOp, r: Reg | Mem, bits: int = 64) -> bytes:
    """``shl/shr/sar/rol/ror r, cl`` (``d3 /op``); the CPU masks cl to 5 or 6 bits, as eBPF does."""
    _check_bits(bits, (16, 32, 64))
    return _enc(b"\xd3", op, r, bits)


def bswap(r: Reg, bits: int = 64) -> bytes:
    """``bswap r32/r64`` (``0f c8+r``); a 32-bit swap zero-extends like every 32-bit write."""
    _check_bits(bits, (32, 64))
    prefix = bytes((rex(bits == 64, 0, 0, r.ext),)) if (bits == 64 or r.ext) else b""
    return prefix + bytes((0x0F, 0xC8 + r.low))


# -- atomics ---------------------------------------------------------------------------------------
def lock_alu_mr(op: AluOp, dst: Mem, src: Reg, bits: int = 64) -> bytes:
    """``lock add/or/and/xor [mem], src``: a read-modify-write the whole machine sees as one."""
    _check_bits(bits, (32, 64))
    return _enc(bytes((op * 8 + 1,)), src.num, dst, bits, lock=True)


def lock_xadd(dst: Mem, src: Reg, bits: int = 64) -> bytes:
    """``lock xadd [mem], src`` (``f0 0f c1 /r``): adds, and leaves the old value in src."""
    _check_bits(bits, (32, 64))
    return _enc(b"\x0f\xc1", src.num, dst, bits, lock=True)


def xchg_mr(dst: Mem, src: Reg, bits: int = 64) -> bytes:
    """``xchg [mem], src`` (``87 /r``); with a memory operand the CPU locks it implicitly."""
    _check_bits(bits, (32, 64))
    return _enc(b"\x87", src.num, dst, bits)


def lock_cmpxchg(dst: Mem, src: Reg, bits: int = 64) -> bytes:
    """``lock cmpxchg [mem], src`` (``f0 0f b1 /r``): compares rax/eax with [mem]; stores src if equal,
    else loads [mem] into rax/eax. ZF says which."""
    _check_bits(bits, (32, 64))
    return _enc(b"\x0f\xb1", src.num, dst, bits, lock=True)


# -- stack and control flow ------------------------------------------------------------------------
def push(r: Reg) -> bytes:
    """``push r`` (``50+r``)."""
    return _enc_opreg(0x50, r, 32)


def pop(r: Reg) -> bytes:
    """``pop r`` (``58+r``)."""
    return _enc_opreg(0x58, r, 32)


def call_rel32(rel: int) -> bytes:
    """``call rel32`` (``e8``): ``rel`` counts from the end of this 5-byte instruction."""
    return b"\xe8" + _i32(rel)


def call_mem(m: Mem) -> bytes:
    """``call qword ptr [mem]`` (``ff /2``): an indirect call through a table slot."""
    return _enc(b"\xff", 2, m, 32)


def call_r(r: Reg) -> bytes:
    """``call r`` (``ff /2``)."""
    return _enc(b"\xff", 2, r, 32)


def jmp_r(r: Reg) -> bytes:
    """``jmp r`` (``ff /4``)."""
    return _enc(b"\xff", 4, r, 32)


def jmp_mem(m: Mem) -> bytes:
    """``jmp qword ptr [mem]`` (``ff /4``)."""
    return _enc(b"\xff", 4, m, 32)


def jmp_rel8(rel: int) -> bytes:
    """``jmp rel8`` (``eb``); ``rel`` counts from the end of the instruction."""
    if not fits_i8(rel):
        raise EncodeError(f"jump displacement {rel} does not fit in 8 bits")
    return b"\xeb" + _i8(rel)


def jmp_rel32(rel: int) -> bytes:
    """``jmp rel32`` (``e9``)."""
    return b"\xe9" + _i32(rel)


def jcc_rel8(cc: Cond, rel: int) -> bytes:
    """``jcc rel8`` (``70+cc``)."""
    if not fits_i8(rel):
        raise EncodeError(f"jump displacement {rel} does not fit in 8 bits")
    return bytes((0x70 + cc,)) + _i8(rel)


def jcc_rel32(cc: Cond, rel: int) -> bytes:
    """``jcc rel32`` (``0f 80+cc``)."""
    return bytes((0x0F, 0x80 + cc)) + _i32(rel)


def ret() -> bytes:
    return b"\xc3"


def int3() -> bytes:
    return b"\xcc"


def ud2() -> bytes:
    return b"\x0f\x0b"


_NOPS = (
    b"",
    b"\x90",
    b"\x66\x90",
    b"\x0f\x1f\x00",
    b"\x0f\x1f\x40\x00",
    b"\x0f\x1f\x44\x00\x00",
    b"\x66\x0f\x1f\x44\x00\x00",
    b"\x0f\x1f\x80\x00\x00\x00\x00",
    b"\x0f\x1f\x84\x00\x00\x00\x00\x00",
)


def nop(length: int = 1) -> bytes:
    """``length`` bytes of the recommended multi-byte NOPs (padding that decodes cleanly)."""
    out = b""
    while length > 0:
        n = min(length, 8)
        out += _NOPS[n]
        length -= n
    return out


# -- forms only the native helpers and the batch driver use ------------------------------------------------

def pause() -> bytes:
    """``pause`` (``f3 90``): the spin-wait hint inside lock loops."""
    return b"\xf3\x90"


def rep_movsb() -> bytes:
    """``rep movsb`` (``f3 a4``): copy rcx bytes from [rsi] to [rdi] (both advance; rcx ends 0)."""
    return b"\xf3\xa4"


def rep_stosb() -> bytes:
    """``rep stosb`` (``f3 aa``): store al into rcx bytes from [rdi]."""
    return b"\xf3\xaa"


def bsr(dst: Reg, src: Reg, bits: int = 64) -> bytes:
    """``bsr dst, src`` (``0f bd /r``): index of the highest set bit (ZF set, dst undefined, when
    src is 0). Used instead of ``lzcnt``, which older CPUs decode as ``bsr`` with other results."""
    if bits not in (32, 64):
        raise EncodeError("bsr takes 32- or 64-bit operands")
    need = bits == 64 or dst.ext or src.ext
    prefix = bytes((rex(bits == 64, dst.ext, 0, src.ext),)) if need else b""
    return prefix + b"\x0f\xbd" + bytes((modrm(3, dst.low, src.low),))


def setcc(cond: Cond, dst: Reg) -> bytes:
    """``setcc dst8`` (``0f 90+cc``); a REX prefix keeps sil/dil/spl/bpl from meaning dh/bh..."""
    prefix = bytes((rex(0, 0, 0, dst.ext),)) if dst.ext or 4 <= dst.num <= 7 else b""
    return prefix + bytes((0x0F, 0x90 + cond, modrm(3, 0, dst.low)))
