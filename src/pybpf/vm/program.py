"""Preparing a post-load instruction stream for execution: the analysis both vm tiers share.

:func:`prepare` decodes nothing twice: it indexes the instructions by raw slot, finds the functions
(slot 0, every bpf-to-bpf call target, every ``lddw`` FUNC target), and resolves every ``lddw`` to
the 64-bit value the program will see (contract 1 of docs/architecture.md): a MAP_FD map id becomes
the base address of the map's storage region in the :class:`~pybpf.vm.memory.AddressSpace`, a
MAP_VALUE id/offset pair becomes ``base + map.direct_value_addr(offset)``, a FUNC offset becomes an address
in the program's CODE region (so helpers can call it back).

Preparation never rejects a program for what an instruction *says*: a jump out of range, an unknown
map id, an unsupported pseudo source are all reported when (and only if) the instruction executes,
identically in both tiers. Rejecting at load time is the verifier's job, or
:func:`pybpf.vm.loadcheck.check_program`'s for unverified programs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from pybpf.errors import ExecutionError, PybpfError
from pybpf.isa.insn import Insn, Insns
from pybpf.isa.opcodes import AtomicOp, Kind, OpInfo, PseudoSrc, Source
from pybpf.vm.execution import err_bad_register
from pybpf.vm.memory import AddressSpace, Region, RegionKind
from pybpf.vm.semantics import M64, sext

__all__ = [
    "Layout",
    "MapMemory",
    "ProgramLike",
    "bad_register",
    "prepare",
    "reads_frame_pointer",
    "uses_src_register",
    "written_registers",
]


@runtime_checkable
class MapMemory(Protocol):
    """What the vm needs from a map (the kernel layer's ``kernel.maps.base.Map`` satisfies it).

    ``mem`` is the map's storage — its native memory, any writable buffer (mmap, bytearray,
    memoryview) — registered with the address space once, without copying; a map pointer is the
    region's base. ``direct_value_addr(off)`` is the kernel's ``map_direct_value_addr``: the offset in
    ``mem`` of byte ``off`` of the map's (single) value, for ``lddw`` MAP_VALUE (global data); it may
    raise (a :class:`~pybpf.errors.PybpfError`) for map types without direct value access.
    """

    @property
    def id(self) -> int: ...

    @property
    def mem(self) -> Any: ...

    def direct_value_addr(self, off: int) -> int: ...


@runtime_checkable
class ProgramLike(Protocol):
    """A loaded program as engines take it (and as a tail call names its target)."""

    @property
    def insns(self) -> Insns: ...

    @property
    def used_maps(self) -> Mapping[int, MapMemory]: ...


@dataclass(frozen=True, slots=True)
class LddwValue:
    """The resolved value of one ``lddw``, or why it cannot run (reported when executed)."""

    value: int = 0
    error: str | None = None


@dataclass(slots=True)
class Layout:
    """The shared, engine-neutral view of one program, indexed by raw slot."""

    insns: Insns
    slots: list[Insn | None]
    """Instruction starting at each raw slot; None for the second half of an lddw."""
    n_slots: int
    func_starts: list[int]
    func_end: dict[int, int]
    """Function start slot -> one past its last slot (the next function's start or the end)."""
    uses_frame: dict[int, bool]
    """Function start slot -> whether it touches r10 (only such functions get a frame: see
    :mod:`pybpf.vm.execution`)."""
    lddw: dict[int, LddwValue]
    code_region: Region | None
    """The CODE region that FUNC ``lddw`` addresses point into (only when the program has one);
    its owner is a weak reference to the engine, so a dropped engine frees it."""
    space: AddressSpace
    maps: Mapping[int, Any] = field(default_factory=dict)

    def func_of(self, slot: int) -> int:
        """Start of the function that contains ``slot``."""
        start = 0
        for s in self.func_starts:
            if s > slot:
                break
            start = s
        return start

    def is_insn_start(self, slot: int) -> bool:
        return 0 <= slot < self.n_slots and self.slots[slot] is not None

    def func_pointer(self, slot: int) -> int:
        """The address a FUNC ``lddw`` yields for the function at ``slot``."""
        if self.code_region is None:
            raise ValueError("the program takes no function addresses")
        return self.code_region.base + slot


_FETCHING = frozenset(int(op) for op in AtomicOp if op.fetch and op is not AtomicOp.CMPXCHG)


def written_registers(insn: Insn) -> tuple[int, ...]:
    """Registers an instruction writes (for the "frame pointer is read only" rule and the translator)."""
    info = insn.info
    if info is None:
        return ()
    kind = info.kind
    if kind in (Kind.ALU, Kind.END, Kind.LDX, Kind.LDDW):
        return (insn.dst,)
    if kind is Kind.ATOMIC:
        if insn.imm == AtomicOp.CMPXCHG:  # the old value to r0
            return (0,)
        if insn.imm in _FETCHING:  # fetch variants and xchg: the old value to src
            return (insn.src,)
        return ()
    if kind in (Kind.LD_ABS, Kind.LD_IND):  # Linux's rewrite leaves r1 = r6 and r2 = the offset
        return (0, 1, 2)
    if kind in (Kind.CALL, Kind.CALLX):
        return (0,)
    return ()


# Kinds whose dst / src fields name a register (elsewhere the fields are ignored, or say something else:
# a call's src is its kind, an lddw's src its pseudo kind).
_DST_IS_REGISTER = frozenset({Kind.ALU, Kind.END, Kind.JCOND, Kind.CALLX, Kind.LDDW, Kind.LDX, Kind.ST, Kind.STX,
                              Kind.ATOMIC})
_SRC_IS_REGISTER = frozenset({Kind.LDX, Kind.STX, Kind.ATOMIC, Kind.LD_IND})


def uses_src_register(info: OpInfo) -> bool:
    """Whether instructions of this opcode read the register named by ``src``."""
    return (info.source is Source.X and info.kind in (Kind.ALU, Kind.JCOND)) or info.kind in _SRC_IS_REGISTER


BPF_REG_AX = 11
"""The kernel's hidden scratch register: the verifier's rewrites use it (signed division guards),
so engines give it a slot; the strict decoder (:func:`pybpf.vm.loadcheck.check_program`) still
refuses it in a program as loaded."""


def bad_register(pc: int, insn: Insn, info: OpInfo) -> ExecutionError | None:
    """The error both tiers raise when an instruction names a register beyond AX (an unverified
    program may), or None."""
    if insn.dst > BPF_REG_AX and info.kind in _DST_IS_REGISTER:
        return err_bad_register(pc, insn.dst)
    if insn.src > BPF_REG_AX and uses_src_register(info):
        return err_bad_register(pc, insn.src)
    return None


def reads_frame_pointer(insn: Insn) -> bool:
    """Whether an instruction reads r10 (as an operand or as a memory base)."""
    info = insn.info
    if info is None:
        return False
    kind = info.kind
    if insn.dst == 10 and kind in (Kind.ALU, Kind.END, Kind.JCOND, Kind.ST, Kind.STX, Kind.ATOMIC, Kind.CALLX):
        return True
    return uses_src_register(info) and insn.src == 10


def _functions(slots: list[Insn | None], n: int) -> list[int]:
    starts = {0}
    for idx, insn in enumerate(slots):
        if insn is None:
            continue
        if insn.is_pseudo_call or insn.pseudo is PseudoSrc.FUNC:
            target = idx + 1 + sext(insn.imm, 32)
            if 0 <= target < n and slots[target] is not None:
                starts.add(target)
    return sorted(starts)


def prepare(insns: Insns, space: AddressSpace, maps: Mapping[int, Any] | None = None, *, name: str = "") -> Layout:
    """Index ``insns`` and resolve its ``lddw`` values against ``space`` (registering map storage)."""
    maps = dict(maps or {})
    n = insns.slot_count
    slots: list[Insn | None] = [None] * n
    for idx, insn in insns.items():
        slots[idx] = insn
    starts = _functions(slots, n)
    func_end = {s: (starts[i + 1] if i + 1 < len(starts) else n) for i, s in enumerate(starts)}
    takes_addresses = any(i is not None and i.pseudo is PseudoSrc.FUNC for i in slots)
    code = space.add(b"", RegionKind.CODE, f"code {name}".strip(), writable=False) if takes_addresses else None
    lddw: dict[int, LddwValue] = {}
    for idx, insn in enumerate(slots):
        if insn is not None and insn.is_wide:
            lddw[idx] = _resolve_lddw(idx, insn, slots, n, space, maps, code)
    uses_frame = {
        s: any(
            (ins := slots[i]) is not None and (reads_frame_pointer(ins) or 10 in written_registers(ins))
            for i in range(s, func_end[s])
        )
        for s in starts
    }
    return Layout(insns, slots, n, starts, func_end, uses_frame, lddw, code, space, maps)


def _resolve_lddw(
    idx: int,
    insn: Insn,
    slots: list[Insn | None],
    n: int,
    space: AddressSpace,
    maps: Mapping[int, Any],
    code: Region | None,
) -> LddwValue:
    src = insn.src
    if src == PseudoSrc.NONE:
        return LddwValue(insn.imm & M64)
    if src in (PseudoSrc.MAP_FD, PseudoSrc.MAP_VALUE):
        map_id = insn.imm & 0xFFFFFFFF
        m = maps.get(map_id)
        if m is None:
            return LddwValue(error=f"lddw: map id {map_id} is not among the program's used maps")
        storage = getattr(m, "mem", None)
        if storage is None:
            return LddwValue(error=f"lddw: map id {map_id} has no storage the vm can address")
        region = space.map_region(map_id, storage, m, getattr(m, "name", "") or f"map[id:{map_id}]")
        if src == PseudoSrc.MAP_FD:
            return LddwValue(region.base)
        off = (insn.imm >> 32) & 0xFFFFFFFF
        try:
            value_at = m.direct_value_addr(off)
        except (PybpfError, AttributeError) as e:
            return LddwValue(error=f"lddw: map id {map_id} does not support direct value access ({e})")
        return LddwValue(region.base + value_at)
    if src == PseudoSrc.FUNC:
        target = idx + 1 + sext(insn.imm, 32)
        if not (0 <= target < n and slots[target] is not None) or code is None:
            return LddwValue(error=f"lddw: function pointer to invalid destination {target}")
        return LddwValue(code.base + target)
    try:
        what = PseudoSrc(src).name
    except ValueError:
        what = str(src)
    return LddwValue(error=f"lddw with src_reg={src} ({what}) is a pre-load form or a kernel symbol; it cannot run")
