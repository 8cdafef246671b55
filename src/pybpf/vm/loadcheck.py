"""Load-time structural checks for programs that no verifier has seen (the conformance suites).

The engines run anything and report problems when an instruction executes (the oracle's job). A VM
that loads unverified code — uBPF, the conformance harness — instead refuses a malformed program at
load time; :func:`check_program` is that gate. It checks structure, not safety: every field valid
(strict :func:`pybpf.isa.validate`), jumps inside their function and never into the middle of an
``lddw``, no jump to itself, every function ends with ``exit`` or an unconditional jump, call
targets exist, helper ids are registered, ``lddw`` pseudo sources resolvable, r10 never written, and
the program not larger than ``max_slots``. Wording follows the kernel's verifier where it has the
same check. Failures are :class:`~pybpf.errors.DecodeError` naming the raw slot.
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from typing import Any

from pybpf.errors import DecodeError
from pybpf.isa.insn import Insn, Insns, validate
from pybpf.isa.opcodes import OPCODES, InsnClass, Kind, PseudoCall, PseudoSrc
from pybpf.vm.program import written_registers
from pybpf.vm.semantics import sext

__all__ = ["check_program"]


def _jump_target(idx: int, insn: Insn) -> int:
    info = OPCODES[insn.code]
    if info.kind is Kind.JA and info.cls == InsnClass.JMP32:
        return idx + 1 + sext(insn.imm, 32)
    return idx + 1 + insn.off


def check_program(
    insns: Insns,
    *,
    helpers: Container[int] | None = None,
    maps: Mapping[int, Any] | None = None,
    max_slots: int | None = None,
) -> None:
    """Raise :class:`DecodeError` if ``insns`` is not a well-formed program (see the module docstring).

    ``helpers``: the registered helper ids (None: do not check); ``maps``: the ids a MAP_FD /
    MAP_VALUE ``lddw`` may name.
    """
    n = insns.slot_count
    if n == 0:
        raise DecodeError("no instructions", insn_idx=0)
    if max_slots is not None and n > max_slots:
        raise DecodeError(f"program is too large: {n} instructions (max {max_slots})", insn_idx=max_slots)
    starts = {0}
    for idx, insn in insns.items():
        why = validate(insn)
        if why is not None:
            raise DecodeError(why, insn_idx=idx)
        if 10 in written_registers(insn):
            raise DecodeError("frame pointer is read only", insn_idx=idx)
        info = OPCODES[insn.code]
        if (info.kind is Kind.CALL and insn.src == PseudoCall.CALL) or (
            info.kind is Kind.LDDW and insn.src == PseudoSrc.FUNC
        ):
            target = idx + 1 + sext(insn.imm, 32)
            if not insns.is_insn_start(target):
                raise DecodeError("call to invalid destination", insn_idx=idx)
            starts.add(target)
    bounds = [*sorted(starts), n]
    for i, start in enumerate(bounds[:-1]):
        end = bounds[i + 1]
        last = None
        for idx in range(start, end):
            if not insns.is_insn_start(idx):
                continue
            insn = insns.at(idx)
            last = insn
            _check_insn(idx, insn, start, end, insns, helpers, maps)
        assert last is not None
        last_info = OPCODES[last.code]
        if last_info.kind not in (Kind.EXIT, Kind.JA):
            raise DecodeError("last insn is not an exit or jmp", insn_idx=end - last.width)


def _check_insn(
    idx: int,
    insn: Insn,
    start: int,
    end: int,
    insns: Insns,
    helpers: Container[int] | None,
    maps: Mapping[int, Any] | None,
) -> None:
    info = OPCODES[insn.code]
    kind = info.kind
    if kind in (Kind.JA, Kind.JCOND, Kind.MAY_GOTO):
        target = _jump_target(idx, insn)
        if not start <= target < end:
            raise DecodeError(f"jump out of range from insn {idx} to {target}", insn_idx=idx)
        if not insns.is_insn_start(target):
            raise DecodeError(f"jump into the middle of ldimm64 insn {target - 1}", insn_idx=idx)
        if target == idx and kind is Kind.JA:
            raise DecodeError(f"infinite loop detected at insn {idx}", insn_idx=idx)
    elif kind is Kind.CALL:
        if insn.src == PseudoCall.HELPER and helpers is not None and (insn.imm & 0xFFFFFFFF) not in helpers:
            raise DecodeError(f"invalid func unknown#{insn.imm & 0xFFFFFFFF}", insn_idx=idx)
        if insn.src == PseudoCall.KFUNC:
            raise DecodeError("kernel function calls (kfunc) are not supported here", insn_idx=idx)
    elif kind is Kind.LDDW:
        src = insn.src
        if src in (PseudoSrc.MAP_FD, PseudoSrc.MAP_VALUE):
            if maps is None or (insn.imm & 0xFFFFFFFF) not in maps:
                raise DecodeError(f"lddw: no map with id {insn.imm & 0xFFFFFFFF}", insn_idx=idx)
        elif src != PseudoSrc.NONE and src != PseudoSrc.FUNC:
            raise DecodeError(f"unrecognized bpf_ld_imm64 insn (src_reg {src})", insn_idx=idx)
