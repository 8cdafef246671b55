"""One eBPF instruction (``struct bpf_insn``) and the encoding of whole programs.

Wire format, little-endian, 8 bytes per slot::

    byte 0     1           2..3        4..7
    +--------+-----+-----+-----------+-----------------+
    | opcode | src | dst | off (s16) | imm (s32)       |
    +--------+-----+-----+-----------+-----------------+
             hi nibble = src_reg, lo nibble = dst_reg

``lddw`` (opcode 0x18) takes two slots: the second has opcode 0 and carries the upper 32 bits of the
immediate. An :class:`Insn` for lddw holds the whole 64-bit value in ``imm`` and has ``width == 2``.

:class:`Insn` keeps the five raw fields exactly as encoded (never normalised: ``sdiv`` is ``div`` with
``off == 1``) and exposes decoded views as properties. Metadata (source line, symbol, relocation
reference) rides along in ``meta`` and does not take part in equality, so it survives splicing.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import NewType, overload

from pybpf.errors import DecodeError, IsaError
from pybpf.isa.opcodes import (
    CALL_CODE,
    LDDW_CODE,
    OPCODES,
    AluOp,
    AtomicOp,
    InsnClass,
    JmpOp,
    Kind,
    Mode,
    OpInfo,
    PseudoCall,
    PseudoSrc,
    Size,
    Source,
    split_opcode,
)

__all__ = [
    "INSN_SIZE",
    "NO_META",
    "Insn",
    "InsnIdx",
    "InsnMeta",
    "Insns",
    "SourceLine",
    "decode",
    "encode",
    "sext",
    "validate",
]

INSN_SIZE = 8
InsnIdx = NewType("InsnIdx", int)
"""An index in raw 8-byte slots: the kernel's ``insn_idx``, used in every log, dump and error."""

_SLOT = struct.Struct("<BBhi")
_U32 = 0xFFFFFFFF
_U64 = 0xFFFFFFFFFFFFFFFF


def sext(value: int, bits: int) -> int:
    """The low ``bits`` of ``value`` read as a two's-complement signed integer.

    Instruction fields are signed (``off`` 16 bits, ``imm`` 32, an lddw's value 64) while registers
    and raw words are unsigned; every layer converts with this one function.
    """
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


@dataclass(frozen=True, slots=True)
class SourceLine:
    """A BTF line-info record resolved to text: what ``; ... @ file.c:12`` prints."""

    file: str
    line: int
    col: int
    text: str


@dataclass(frozen=True, slots=True)
class InsnMeta:
    """What travels with an instruction but is not part of it.

    ``symbol``: a function name starting here; ``reference``: the symbol a relocation points at (a map,
    a subprogram, a global-data section); ``source``: the BTF line info; ``func``: BTF func info (the
    function's prototype text) for the first instruction of a (sub)program.
    """

    symbol: str | None = None
    reference: str | None = None
    source: SourceLine | None = None
    func: str | None = None

    def with_(self, **changes: object) -> InsnMeta:
        return replace(self, **changes)  # type: ignore[arg-type]


NO_META = InsnMeta()


@dataclass(frozen=True, slots=True)
class Insn:
    """One instruction, raw fields as encoded. ``imm`` is the full signed 64-bit value for lddw."""

    code: int
    dst: int = 0
    src: int = 0
    off: int = 0
    imm: int = 0
    meta: InsnMeta = field(default=NO_META, compare=False, repr=False)

    # -- decoded views ------------------------------------------------------------------
    @property
    def info(self) -> OpInfo | None:
        """The opcode's table entry, or ``None`` for an unknown opcode."""
        return OPCODES.get(self.code)

    @property
    def cls(self) -> InsnClass:
        return InsnClass(split_opcode(self.code).cls)

    @property
    def kind(self) -> Kind | None:
        info = OPCODES.get(self.code)
        return info.kind if info else None

    @property
    def alu_op(self) -> AluOp:
        return AluOp(split_opcode(self.code).op)

    @property
    def jmp_op(self) -> JmpOp:
        return JmpOp(split_opcode(self.code).op)

    @property
    def source(self) -> Source:
        return Source(split_opcode(self.code).source)

    @property
    def size(self) -> Size:
        return split_opcode(self.code).size

    @property
    def mode(self) -> Mode:
        return Mode(split_opcode(self.code).mode)

    @property
    def atomic_op(self) -> AtomicOp:
        return AtomicOp(self.imm)

    @property
    def is_wide(self) -> bool:
        """lddw: two slots."""
        return self.code == LDDW_CODE

    @property
    def width(self) -> int:
        return 2 if self.code == LDDW_CODE else 1

    @property
    def imm_lo(self) -> int:
        """Low 32 bits of the immediate, unsigned (for lddw: the fd / index / BTF id part)."""
        return self.imm & _U32

    @property
    def imm_hi(self) -> int:
        """lddw only: the second slot's immediate, unsigned (the offset of MAP_VALUE pseudo loads)."""
        return (self.imm >> 32) & _U32

    @property
    def pseudo(self) -> PseudoSrc | None:
        """For lddw, what the immediate means."""
        if self.code != LDDW_CODE:
            return None
        try:
            return PseudoSrc(self.src)
        except ValueError:
            return None

    @property
    def is_helper_call(self) -> bool:
        return self.code == CALL_CODE and self.src == PseudoCall.HELPER

    @property
    def is_pseudo_call(self) -> bool:
        """A bpf-to-bpf call (``call pc+imm``)."""
        return self.code == CALL_CODE and self.src == PseudoCall.CALL

    @property
    def is_kfunc_call(self) -> bool:
        return self.code == CALL_CODE and self.src == PseudoCall.KFUNC

    @property
    def is_jump(self) -> bool:
        """Any instruction with a pc-relative target (ja/gotol, conditional, may_goto)."""
        info = OPCODES.get(self.code)
        return info is not None and info.kind in (Kind.JA, Kind.JCOND, Kind.MAY_GOTO)

    def jump_offset(self) -> int:
        """The pc-relative offset in slots: ``imm`` for gotol (JMP32 ja), ``off`` otherwise."""
        info = OPCODES.get(self.code)
        return self.imm if info is not None and info.kind is Kind.JA and info.cls == InsnClass.JMP32 else self.off

    def with_meta(self, **changes: object) -> Insn:
        return replace(self, meta=self.meta.with_(**changes))

    def replace(self, **changes: int) -> Insn:
        return replace(self, **changes)  # type: ignore[arg-type]

    # -- encoding -------------------------------------------------------------------------
    def encode(self) -> bytes:
        """The 8 (or 16, for lddw) bytes of this instruction."""
        if not (0 <= self.code <= 0xFF and 0 <= self.dst <= 0xF and 0 <= self.src <= 0xF):
            raise IsaError(f"field out of range in {self!r}")
        if not -0x8000 <= self.off <= 0x7FFF:
            raise IsaError(f"offset {self.off} does not fit in 16 bits")
        regs = (self.src << 4) | self.dst
        if self.code == LDDW_CODE:
            if not -(1 << 63) <= self.imm <= _U64:
                raise IsaError(f"immediate {self.imm} does not fit in 64 bits")
            lo, hi = sext(self.imm, 32), sext(self.imm >> 32, 32)
            return _SLOT.pack(self.code, regs, self.off, lo) + _SLOT.pack(0, 0, 0, hi)
        if not -(1 << 31) <= self.imm <= _U32:
            raise IsaError(f"immediate {self.imm} does not fit in 32 bits")
        return _SLOT.pack(self.code, regs, self.off, sext(self.imm, 32))


def validate(insn: Insn) -> str | None:
    """Why ``insn`` is not a valid instruction by RFC 9669 and Linux 6.12, or ``None`` if it is.

    Checks the opcode against :data:`OPCODES` and every other field against the opcode's rules
    (the conformance suite's "unused field must be zero" cases). This is the decoder's strict mode;
    the verifier decodes leniently and reports the kernel's own messages instead.
    """
    info = OPCODES.get(insn.code)
    if info is None:
        return f"unknown opcode {insn.code:#04x}"
    if insn.dst > 10:
        return f"invalid destination register r{insn.dst}"
    if insn.src > 10 and info.src.allowed is not None and max(info.src.allowed) <= 10:
        return f"invalid source register r{insn.src}"
    for name, rule, value in (
        ("destination register", info.dst, insn.dst),
        ("source register", info.src, insn.src),
        ("offset", info.off, insn.off),
    ):
        if not rule.accepts(value):
            return f"{info.name}: {name} field must be {_expect(rule)}, is {value}"
    imm = insn.imm if info.kind is Kind.LDDW else sext(insn.imm, 32)
    if info.kind is not Kind.LDDW and not info.imm.accepts(imm) and not info.imm.accepts(imm & _U32):
        return f"{info.name}: immediate field must be {_expect(info.imm)}, is {imm:#x}"
    if info.kind is Kind.CALL and insn.src != PseudoCall.KFUNC and insn.off != 0:
        return f"call: offset field must be 0, is {insn.off}"
    return None


def _expect(rule: object) -> str:
    allowed = getattr(rule, "allowed", None)
    if allowed is None:
        return "anything"
    vals = sorted(allowed)
    return "0" if vals == [0] else "one of " + ", ".join(str(v) for v in vals)


def _decode_iter(data: bytes | bytearray | memoryview, strict: bool) -> Iterator[Insn]:
    view = memoryview(data).cast("B")
    n = len(view)
    if n % INSN_SIZE:
        raise DecodeError(
            f"program length {n} is not a multiple of {INSN_SIZE} bytes", insn_idx=n // INSN_SIZE
        )
    idx = 0
    count = n // INSN_SIZE
    while idx < count:
        code, regs, off, imm = _SLOT.unpack_from(view, idx * INSN_SIZE)
        dst, src = regs & 0xF, regs >> 4
        if code == LDDW_CODE:
            if idx + 1 >= count:
                raise DecodeError("incomplete lddw: the second half is missing", insn_idx=idx)
            code2, regs2, off2, imm2 = _SLOT.unpack_from(view, (idx + 1) * INSN_SIZE)
            if strict and (code2 or regs2 or off2):
                raise DecodeError("invalid lddw: reserved fields of the second half are set", insn_idx=idx)
            insn = Insn(code, dst, src, off, sext((imm2 << 32) | (imm & _U32), 64))
        else:
            insn = Insn(code, dst, src, off, imm)
        if strict:
            why = validate(insn)
            if why is not None:
                raise DecodeError(why, insn_idx=idx)
        yield insn
        idx += insn.width


def decode(data: bytes | bytearray | memoryview, *, strict: bool = True) -> Insns:
    """Bytes to instructions. ``strict`` rejects unknown opcodes and reserved fields that are set.

    Errors are :class:`DecodeError` naming the raw slot; never an IndexError.
    """
    return Insns(_decode_iter(data, strict))


def encode(insns: Iterable[Insn]) -> bytes:
    """Instructions to bytes."""
    return b"".join(i.encode() for i in insns)


class Insns(Sequence[Insn]):
    """An instruction stream: a list of :class:`Insn` addressed by list position *or* raw slot.

    ``insns[i]`` is the i-th instruction (list position); ``insns.at(idx)`` is the instruction at raw
    slot ``idx`` (the kernel's numbering, where an lddw counts twice). ``slot_of(pos)`` and
    ``pos_of(idx)`` convert. Immutable: splicing returns a new stream.
    """

    __slots__ = ("_insns", "_pos_of", "_slots")

    def __init__(self, insns: Iterable[Insn] = ()) -> None:
        self._insns: tuple[Insn, ...] = tuple(insns)
        slots: list[int] = []
        pos_of: dict[int, int] = {}
        idx = 0
        for pos, insn in enumerate(self._insns):
            slots.append(idx)
            pos_of[idx] = pos
            idx += insn.width
        self._slots = slots
        self._pos_of = pos_of
        self._slots.append(idx)  # one past the end: the slot count

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview, *, strict: bool = True) -> Insns:
        return decode(data, strict=strict)

    def encode(self) -> bytes:
        return encode(self._insns)

    @overload
    def __getitem__(self, pos: int) -> Insn: ...
    @overload
    def __getitem__(self, pos: slice) -> Insns: ...
    def __getitem__(self, pos: int | slice) -> Insn | Insns:
        if isinstance(pos, slice):
            return Insns(self._insns[pos])
        return self._insns[pos]

    def __len__(self) -> int:
        return len(self._insns)

    def __iter__(self) -> Iterator[Insn]:
        return iter(self._insns)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Insns):
            return self._insns == other._insns
        if isinstance(other, (list, tuple)):
            return list(self._insns) == list(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._insns)

    def __repr__(self) -> str:
        return f"Insns({list(self._insns)!r})"

    @property
    def slot_count(self) -> int:
        """Length in raw 8-byte slots (``len(encode()) // 8``)."""
        return self._slots[-1]

    def slot_of(self, pos: int) -> InsnIdx:
        """Raw slot of the instruction at list position ``pos``."""
        return InsnIdx(self._slots[pos])

    def pos_of(self, idx: int) -> int:
        """List position of the instruction starting at raw slot ``idx``; KeyError for the middle of
        an lddw or a slot outside the program."""
        return self._pos_of[idx]

    def at(self, idx: int) -> Insn:
        """The instruction that starts at raw slot ``idx``."""
        return self._insns[self._pos_of[idx]]

    def is_insn_start(self, idx: int) -> bool:
        return idx in self._pos_of

    def items(self) -> Iterator[tuple[InsnIdx, Insn]]:
        """``(raw slot, insn)`` pairs."""
        for pos, insn in enumerate(self._insns):
            yield InsnIdx(self._slots[pos]), insn

    def jump_target(self, idx: int) -> int:
        """Raw slot a jump or bpf-to-bpf call at slot ``idx`` goes to."""
        insn = self.at(idx)
        if insn.is_pseudo_call:
            return idx + 1 + insn.imm
        return idx + 1 + insn.jump_offset()

    def with_insns(self, insns: Iterable[Insn]) -> Insns:
        return Insns(insns)
