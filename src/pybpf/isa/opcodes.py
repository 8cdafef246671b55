"""The eBPF opcode byte, its parts, and the one table of every valid opcode (RFC 9669 + Linux 6.12).

The opcode byte has two layouts, chosen by its three low bits (the class)::

    arithmetic and jumps            loads and stores
    +-------+---+-------+           +-----+-----+-------+
    |  op   | S | class |           | mode| size| class |
    +-------+---+-------+           +-----+-----+-------+
     7     4  3  2     0             7   5 4   3 2     0

``S`` is the source: 0 = the 32-bit immediate (K), 1 = the source register (X). For ``END`` (byte
swaps) the same bit chooses big-endian (``to_be``) over little-endian.

:data:`OPCODES` maps each valid opcode byte to an :class:`OpInfo` that says what the instruction is
and which of its other fields (dst, src, off, imm) may hold what. The decoder's validation, the
assembler, both disassemblers, the interpreter, the translator and the JIT all read this table, so an
instruction is defined in one place (ubpf's ``ubpf_inst_filter`` idea; never a second opcode switch).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, IntEnum
from typing import NamedTuple

__all__ = [
    "ADDR_PERCPU",
    "CALL_CODE",
    "LDDW_CODE",
    "NOSPEC_CODE",
    "OPCODES",
    "AluOp",
    "AtomicOp",
    "FieldRule",
    "InsnClass",
    "JmpOp",
    "Kind",
    "Mode",
    "OpInfo",
    "OpcodeFields",
    "PERCPU_AREA_SIZE",
    "PERCPU_CPU_NUMBER",
    "PseudoCall",
    "PseudoSrc",
    "Size",
    "Source",
    "split_opcode",
]


class InsnClass(IntEnum):
    """The three low bits of the opcode."""

    LD = 0x00  # non-standard loads: lddw (64-bit immediate), legacy packet loads LD_ABS / LD_IND
    LDX = 0x01  # load from memory into a register
    ST = 0x02  # store an immediate
    STX = 0x03  # store a register; also the atomics
    ALU = 0x04  # 32-bit arithmetic (results zero-extended to 64 bits)
    JMP = 0x05  # 64-bit jumps, call, exit
    JMP32 = 0x06  # 32-bit jumps (compare the low halves)
    ALU64 = 0x07  # 64-bit arithmetic

    @property
    def is_alu(self) -> bool:
        return self in (InsnClass.ALU, InsnClass.ALU64)

    @property
    def is_jmp(self) -> bool:
        return self in (InsnClass.JMP, InsnClass.JMP32)

    @property
    def is_load_store(self) -> bool:
        return self <= InsnClass.STX


class Source(IntEnum):
    """Bit 3 of arithmetic/jump opcodes."""

    K = 0x00  # the immediate
    X = 0x08  # the source register


class AluOp(IntEnum):
    """The four high bits of ALU / ALU64 opcodes."""

    ADD = 0x00
    SUB = 0x10
    MUL = 0x20
    DIV = 0x30  # off = 1: signed (sdiv)
    OR = 0x40
    AND = 0x50
    LSH = 0x60
    RSH = 0x70
    NEG = 0x80
    MOD = 0x90  # off = 1: signed (smod)
    XOR = 0xA0
    MOV = 0xB0  # off = 8/16/32 with X: sign-extending move (movsx)
    ARSH = 0xC0
    END = 0xD0  # byte swap; imm = 16/32/64


class JmpOp(IntEnum):
    """The four high bits of JMP / JMP32 opcodes."""

    JA = 0x00
    JEQ = 0x10
    JGT = 0x20
    JGE = 0x30
    JSET = 0x40
    JNE = 0x50
    JSGT = 0x60
    JSGE = 0x70
    CALL = 0x80
    EXIT = 0x90
    JLT = 0xA0
    JLE = 0xB0
    JSLT = 0xC0
    JSLE = 0xD0
    JCOND = 0xE0  # Linux: may_goto (src = BPF_MAY_GOTO = 0), a bounded-loop escape


class Size(IntEnum):
    """Bits 3-4 of load/store opcodes."""

    W = 0x00
    H = 0x08
    B = 0x10
    DW = 0x18

    @property
    def bytes(self) -> int:
        return _SIZE_BYTES[self]

    @classmethod
    def from_bytes(cls, n: int) -> Size:
        return {1: cls.B, 2: cls.H, 4: cls.W, 8: cls.DW}[n]


_SIZE_BYTES = {Size.W: 4, Size.H: 2, Size.B: 1, Size.DW: 8}


class OpcodeFields(NamedTuple):
    """The bit fields of any opcode byte, valid or not, as raw numbers (compare with the enums).

    Engines never need this: they dispatch on :data:`OPCODES`. It is for the places that must say
    something about bytes outside the table — the kernel's printer shows an invalid opcode by its
    class and operation bits (``BUG_ld_38``, ``(null)``) — so that the bit layout is written down
    here only.
    """

    cls: int  # bits 0-2
    op: int  # bits 4-7 of arithmetic and jumps (AluOp / JmpOp)
    source: int  # bit 3 of arithmetic and jumps (Source)
    size: Size  # bits 3-4 of loads and stores
    mode: int  # bits 5-7 of loads and stores (Mode)


def split_opcode(code: int) -> OpcodeFields:
    """The fields of opcode byte ``code``."""
    return OpcodeFields(code & 0x07, code & 0xF0, code & 0x08, Size(code & 0x18), code & 0xE0)


class Mode(IntEnum):
    """Bits 5-7 of load/store opcodes."""

    IMM = 0x00  # lddw (with size DW)
    ABS = 0x20  # legacy packet load, absolute offset
    IND = 0x40  # legacy packet load, offset in src register
    MEM = 0x60
    MEMSX = 0x80  # sign-extending load
    ATOMIC = 0xC0


class AtomicOp(IntEnum):
    """The ``imm`` field of an atomic instruction (``STX | ATOMIC``)."""

    ADD = 0x00
    OR = 0x40
    AND = 0x50
    XOR = 0xA0
    FETCH_ADD = 0x01
    FETCH_OR = 0x41
    FETCH_AND = 0x51
    FETCH_XOR = 0xA1
    XCHG = 0xE1  # always fetches
    CMPXCHG = 0xF1  # compares with r0; the old value lands in r0

    @property
    def fetch(self) -> bool:
        return bool(self & 0x01)

    @property
    def base(self) -> AtomicOp:
        """The operation without FETCH (XCHG and CMPXCHG are their own base)."""
        return self if self in (AtomicOp.XCHG, AtomicOp.CMPXCHG) else AtomicOp(self & ~0x01)


class PseudoSrc(IntEnum):
    """``src_reg`` of ``lddw``: what the 64-bit immediate means (``BPF_PSEUDO_*``)."""

    NONE = 0  # a plain 64-bit constant
    MAP_FD = 1  # imm = map fd -> the map's address
    MAP_VALUE = 2  # imm = map fd, next imm = offset -> address of the map's value + offset
    BTF_ID = 3  # imm = BTF id of a kernel variable
    FUNC = 4  # imm = instruction offset of a subprogram -> its address
    MAP_IDX = 5  # imm = index into fd_array
    MAP_IDX_VALUE = 6  # imm = index into fd_array, next imm = offset


class PseudoCall(IntEnum):
    """``src_reg`` of ``call``."""

    HELPER = 0  # imm = helper id
    CALL = 1  # bpf-to-bpf: imm = offset of the callee, relative to the next instruction
    KFUNC = 2  # imm = BTF id of a kernel function


class Kind(Enum):
    """What an opcode does, at the granularity every engine dispatches on."""

    ALU = "alu"  # binary or unary arithmetic (incl. neg, mov, movsx, sdiv/smod)
    END = "end"  # byte swap: le/be (ALU class) or bswap (ALU64 class)
    JA = "ja"  # unconditional jump (JMP: off; JMP32: imm = gotol)
    JCOND = "jcond"  # conditional jump
    MAY_GOTO = "may_goto"
    CALL = "call"  # helper, bpf-to-bpf, kfunc (by src)
    CALLX = "callx"  # call through a register (not in Linux; some VMs)
    EXIT = "exit"
    LDDW = "lddw"
    LD_ABS = "ld_abs"
    LD_IND = "ld_ind"
    LDX = "ldx"  # includes sign-extending loads (MEMSX)
    ST = "st"
    STX = "stx"
    ATOMIC = "atomic"


@dataclass(frozen=True, slots=True)
class FieldRule:
    """The values a field may take: a set, or ``None`` for "any value of the field's width"."""

    allowed: frozenset[int] | None = frozenset({0})

    def accepts(self, value: int) -> bool:
        return self.allowed is None or value in self.allowed

    @staticmethod
    def any() -> FieldRule:
        return _ANY


_ANY = FieldRule(None)
_ZERO = FieldRule()
_REG_ANY = FieldRule(frozenset(range(11)))


def _only(*values: int) -> FieldRule:
    return FieldRule(frozenset(values))


@dataclass(frozen=True, slots=True)
class OpInfo:
    """One valid opcode byte.

    ``dst``/``src``/``off``/``imm`` say which values are legal (register numbers are checked against
    0-10 by the decoder; writes to r10 are a verifier matter). ``version`` is the ISA version that
    introduced it (bpf_conformance's v1-v4 groups), ``name`` a stable identifier for tables and
    errors (``"add64_imm"``, ``"ldxw"``, ``"jeq32_reg"``).
    """

    code: int
    kind: Kind
    name: str
    cls: InsnClass
    dst: FieldRule
    src: FieldRule
    off: FieldRule
    imm: FieldRule
    version: int = 1
    alu_op: AluOp | None = None
    jmp_op: JmpOp | None = None
    size: Size | None = None
    mode: Mode | None = None
    source: Source | None = None

    @property
    def is64(self) -> bool:
        """Operates on 64 bits: ALU64 / JMP class, or a DW access."""
        if self.cls in (InsnClass.ALU, InsnClass.JMP32):
            return False
        if self.cls in (InsnClass.ALU64, InsnClass.JMP):
            return True
        return self.size == Size.DW

    @property
    def width(self) -> int:
        """Raw 8-byte slots occupied: 2 for lddw, else 1."""
        return 2 if self.kind is Kind.LDDW else 1


_ALU_NAMES = {
    AluOp.ADD: "add",
    AluOp.SUB: "sub",
    AluOp.MUL: "mul",
    AluOp.DIV: "div",
    AluOp.OR: "or",
    AluOp.AND: "and",
    AluOp.LSH: "lsh",
    AluOp.RSH: "rsh",
    AluOp.NEG: "neg",
    AluOp.MOD: "mod",
    AluOp.XOR: "xor",
    AluOp.MOV: "mov",
    AluOp.ARSH: "arsh",
}
_JMP_NAMES = {
    JmpOp.JEQ: "jeq",
    JmpOp.JGT: "jgt",
    JmpOp.JGE: "jge",
    JmpOp.JSET: "jset",
    JmpOp.JNE: "jne",
    JmpOp.JSGT: "jsgt",
    JmpOp.JSGE: "jsge",
    JmpOp.JLT: "jlt",
    JmpOp.JLE: "jle",
    JmpOp.JSLT: "jslt",
    JmpOp.JSLE: "jsle",
}
_V2_JMPS = {JmpOp.JLT, JmpOp.JLE, JmpOp.JSLT, JmpOp.JSLE}
_SIZE_SUFFIX = {Size.B: "b", Size.H: "h", Size.W: "w", Size.DW: "dw"}
ATOMIC_IMMS = frozenset(int(op) for op in AtomicOp)


def _build() -> dict[int, OpInfo]:
    table: dict[int, OpInfo] = {}

    def add(info: OpInfo) -> None:
        assert info.code not in table, hex(info.code)
        table[info.code] = info

    # Arithmetic.
    for cls, bits in ((InsnClass.ALU, "32"), (InsnClass.ALU64, "64")):
        for op, base in _ALU_NAMES.items():
            for source in Source:
                code = op | source | cls
                if op == AluOp.NEG:
                    if source == Source.X:
                        continue  # neg has no register form
                    add(OpInfo(code, Kind.ALU, f"neg{bits}", cls, _REG_ANY, _ZERO, _ZERO, _ZERO, alu_op=op,
                               source=source))
                    continue
                suffix = "imm" if source == Source.K else "reg"
                off = _ZERO
                version = 1
                if op in (AluOp.DIV, AluOp.MOD):
                    off = _only(0, 1)  # 1 = signed (v4)
                elif op == AluOp.MOV and source == Source.X:
                    # 64-bit: movsx from 8/16/32; 32-bit: from 8/16. ALU64 mov with off = 1 is
                    # Linux's addr_space_cast (imm = dst/src address spaces), arena only.
                    off = _only(0, 8, 16, 32) if cls == InsnClass.ALU64 else _only(0, 8, 16)
                if source == Source.K:
                    add(OpInfo(code, Kind.ALU, f"{base}{bits}_{suffix}", cls, _REG_ANY, _ZERO, off, _ANY,
                               version, alu_op=op, source=source))
                else:
                    imm = _ZERO
                    add(OpInfo(code, Kind.ALU, f"{base}{bits}_{suffix}", cls, _REG_ANY, _REG_ANY, off, imm,
                               version, alu_op=op, source=source))
        # Byte swaps: ALU class = le/be conversions (S bit: 1 = to big-endian); ALU64|K = bswap (v4).
        widths = _only(16, 32, 64)
        if cls == InsnClass.ALU:
            add(OpInfo(AluOp.END | Source.K | cls, Kind.END, "le", cls, _REG_ANY, _ZERO, _ZERO, widths,
                       alu_op=AluOp.END, source=Source.K))
            add(OpInfo(AluOp.END | Source.X | cls, Kind.END, "be", cls, _REG_ANY, _ZERO, _ZERO, widths,
                       alu_op=AluOp.END, source=Source.X))
        else:
            add(OpInfo(AluOp.END | Source.K | cls, Kind.END, "bswap", cls, _REG_ANY, _ZERO, _ZERO, widths, 4,
                       alu_op=AluOp.END, source=Source.K))

    # Jumps.
    for cls, bits in ((InsnClass.JMP, ""), (InsnClass.JMP32, "32")):
        version = 1 if cls == InsnClass.JMP else 3
        for op, base in _JMP_NAMES.items():
            v = max(version, 2 if op in _V2_JMPS else 1)
            add(OpInfo(op | Source.K | cls, Kind.JCOND, f"{base}{bits}_imm", cls, _REG_ANY, _ZERO, _ANY, _ANY, v,
                       jmp_op=op, source=Source.K))
            add(OpInfo(op | Source.X | cls, Kind.JCOND, f"{base}{bits}_reg", cls, _REG_ANY, _REG_ANY, _ANY, _ZERO,
                       v, jmp_op=op, source=Source.X))
    add(OpInfo(JmpOp.JA | InsnClass.JMP, Kind.JA, "ja", InsnClass.JMP, _ZERO, _ZERO, _ANY, _ZERO,
               jmp_op=JmpOp.JA, source=Source.K))
    add(OpInfo(JmpOp.JA | InsnClass.JMP32, Kind.JA, "gotol", InsnClass.JMP32, _ZERO, _ZERO, _ZERO, _ANY, 4,
               jmp_op=JmpOp.JA, source=Source.K))
    add(OpInfo(JmpOp.CALL | InsnClass.JMP, Kind.CALL, "call", InsnClass.JMP, _ZERO, _only(0, 1, 2), _ANY, _ANY,
               jmp_op=JmpOp.CALL, source=Source.K))
    add(OpInfo(JmpOp.CALL | Source.X | InsnClass.JMP, Kind.CALLX, "callx", InsnClass.JMP, _REG_ANY, _ZERO,
               _ZERO, _ZERO, jmp_op=JmpOp.CALL, source=Source.X))
    add(OpInfo(JmpOp.EXIT | InsnClass.JMP, Kind.EXIT, "exit", InsnClass.JMP, _ZERO, _ZERO, _ZERO, _ZERO,
               jmp_op=JmpOp.EXIT, source=Source.K))
    add(OpInfo(JmpOp.JCOND | InsnClass.JMP, Kind.MAY_GOTO, "may_goto", InsnClass.JMP, _ZERO, _ZERO, _ANY,
               _ZERO, 4, jmp_op=JmpOp.JCOND, source=Source.K))

    # Loads and stores.
    add(OpInfo(Mode.IMM | Size.DW | InsnClass.LD, Kind.LDDW, "lddw", InsnClass.LD, _REG_ANY,
               _only(*range(7)), _ZERO, _ANY, size=Size.DW, mode=Mode.IMM))
    for size, sfx in _SIZE_SUFFIX.items():
        if size != Size.DW:
            add(OpInfo(Mode.ABS | size | InsnClass.LD, Kind.LD_ABS, f"ldabs{sfx}", InsnClass.LD, _ZERO, _ZERO,
                       _ZERO, _ANY, size=size, mode=Mode.ABS))
            add(OpInfo(Mode.IND | size | InsnClass.LD, Kind.LD_IND, f"ldind{sfx}", InsnClass.LD, _ZERO, _REG_ANY,
                       _ZERO, _ANY, size=size, mode=Mode.IND))
        add(OpInfo(Mode.MEM | size | InsnClass.LDX, Kind.LDX, f"ldx{sfx}", InsnClass.LDX, _REG_ANY, _REG_ANY,
                   _ANY, _ZERO, size=size, mode=Mode.MEM))
        if size != Size.DW:
            add(OpInfo(Mode.MEMSX | size | InsnClass.LDX, Kind.LDX, f"ldxs{sfx}", InsnClass.LDX, _REG_ANY,
                       _REG_ANY, _ANY, _ZERO, 4, size=size, mode=Mode.MEMSX))
        add(OpInfo(Mode.MEM | size | InsnClass.ST, Kind.ST, f"st{sfx}", InsnClass.ST, _REG_ANY, _ZERO, _ANY, _ANY,
                   size=size, mode=Mode.MEM))
        add(OpInfo(Mode.MEM | size | InsnClass.STX, Kind.STX, f"stx{sfx}", InsnClass.STX, _REG_ANY, _REG_ANY,
                   _ANY, _ZERO, size=size, mode=Mode.MEM))
    for size in (Size.W, Size.DW):
        add(OpInfo(Mode.ATOMIC | size | InsnClass.STX, Kind.ATOMIC, f"atomic{_SIZE_SUFFIX[size]}",
                   InsnClass.STX, _REG_ANY, _REG_ANY, _ANY, FieldRule(ATOMIC_IMMS), 3, size=size,
                   mode=Mode.ATOMIC))
    return table


OPCODES: dict[int, OpInfo] = _build()
"""Every valid opcode byte. A byte not in this table is an unknown opcode."""

LDDW_CODE = Mode.IMM | Size.DW | InsnClass.LD
"""0x18, the one instruction that takes two slots (the decoder must know it before the table)."""
CALL_CODE = JmpOp.CALL | InsnClass.JMP
"""0x85: helper, bpf-to-bpf and kfunc calls, told apart by ``src``."""
NOSPEC_CODE = InsnClass.ST | 0xC0
"""0xc2 (``BPF_ST | BPF_NOSPEC``): the speculation barrier the verifier inserts. Internal to the
kernel, so not in :data:`OPCODES` (never valid input), but its printer and bpftool show it."""
ADDR_PERCPU = -1
"""``off`` of an ALU64 ``mov`` X that the verifier emits as ``dst = src + this CPU's per-CPU offset``
(Linux's ``BPF_MOV64_PERCPU_REG``, printed ``r0 = &(void __percpu *)(r0)``). Internal: the strict
decoder refuses it as input, as the kernel does ("BPF_MOV uses reserved fields"); every engine runs
it by adding the base of the running CPU's per-CPU area."""
PERCPU_CPU_NUMBER = 0
"""Offset in pybpf's per-CPU area of the u32 CPU number (Linux's ``pcpu_hot.cpu_number``): the
``w0 = imm`` of the inlined ``bpf_get_smp_processor_id``. The area is this field and nothing else."""
PERCPU_AREA_SIZE = 8
"""Bytes of pybpf's per-CPU area (what an engine maps for each CPU)."""
