"""The names ``bpftool prog dump xlated`` gives calls in a loaded program, on a JIT-enabled kernel.

bpftool resolves every call of the post-fixup stream through kallsyms (``print_call`` in
tools/bpf/bpftool/xlated_dumper.c):

* a **helper call** holds the offset of the kernel function that implements the helper for this
  program type — the ``.func`` of the ``bpf_func_proto`` that ``get_func_proto`` returned at load
  time — so it prints that function's name: ``call bpf_user_rnd_u32#…`` for
  ``bpf_get_prandom_u32``, ``call bpf_xdp_event_output#…`` for ``bpf_perf_event_output`` in XDP.
  Only ``bpf_tail_call`` keeps its UAPI name (``bpf_insn_prepare_dump`` turns the tail call back
  into ``call 12``). The verifier log, printed before the fixups, keeps UAPI names throughout.
* a **bpf-to-bpf call** of a JIT-compiled program resolves to the callee's JIT image, whose symbol
  is ``bpf_prog_<tag>_<name>`` (``bpf_prog_ksym_set_name``): ``call pc+27#bpf_prog_c4e6…_parse_eth``.
  ``<name>`` is the callee's BTF func-info name, or ``F`` without func info; ``<tag>`` is Linux
  6.12's ``bpf_prog_calc_tag`` (SHA-1, first 8 bytes; 6.18 hashes the same bytes with SHA-256) over
  the callee's own instructions as ``jit_subprogs`` hands them to the JIT: each pseudo call then
  holds ``off = callee's subprogram index, imm = 1``, each pseudo-function ``lddw`` ``off = index``
  and ``MODULES_VADDR`` as value; map ``lddw`` values are zeroed by the tag computation itself.

Where a subprogram's instructions differ from the kernel's (a helper call, whose ``imm`` is a kernel
address offset there and a helper id here; pybpf's own context or map layouts — see
tests/verifier/xlated/README.md), its tag differs too; the name is still right.
"""

from __future__ import annotations

import bisect
import hashlib
import struct
from collections.abc import Callable
from typing import Any

from pybpf.isa import Insn, Insns
from pybpf.isa.opcodes import PseudoCall, PseudoSrc
from pybpf.uapi import HelperId

__all__ = ["MODULES_VADDR", "helper_function_name", "jited_symbols", "subprog_starts", "subprog_tag",
           "subprog_tag_input", "with_call_symbols", "xlated_call_namer", "xlated_dump_inputs"]

MODULES_VADDR = 0xFFFF_FFFF_C000_0000
"""x86-64's ``MODULES_VADDR`` with ``CONFIG_RANDOMIZE_BASE`` (``__START_KERNEL_map`` + 1 GiB): what
``jit_subprogs`` stores in a pseudo-function ``lddw`` before the final JIT pass (a fixed value, not
randomised)."""

_CALL = 0x85  # BPF_JMP | BPF_CALL
_LDDW = 0x18  # BPF_LD | BPF_IMM | BPF_DW
_TAIL_CALL = int(HelperId.tail_call)
_NO_FUNCTION = {"BPF_PTR_POISON", "NULL", ""}
_BPF_F_SLEEPABLE = 1 << 4


def _rel(imm: int) -> int:
    imm &= 0xFFFFFFFF
    return imm - (1 << 32) if imm & 0x80000000 else imm


def subprog_starts(insns: Insns) -> list[int]:
    """Raw slots where the (sub)programs of a post-load stream start, in order: 0, then every target
    of a bpf-to-bpf call or of a pseudo-function ``lddw`` (the kernel's ``add_subprogs``)."""
    starts = {0}
    for idx, insn in insns.items():
        if (insn.code == _CALL and insn.src == PseudoCall.CALL) or \
                (insn.code == _LDDW and insn.src == PseudoSrc.FUNC):
            starts.add(idx + 1 + _rel(insn.imm))
    return sorted(s for s in starts if 0 <= s < insns.slot_count)


def subprog_tag_input(insns: Insns, starts: list[int], index: int) -> bytes:
    """The bytes ``bpf_prog_calc_tag`` hashes for subprogram ``index`` (of ``starts``) when
    ``jit_subprogs`` splits the program: its slots with pseudo calls / pseudo-function ``lddw``
    rewritten as described in the module docstring and map ``lddw`` values cleared."""
    from pybpf.kernel.program import zero_map_values

    begin = starts[index]
    end = starts[index + 1] if index + 1 < len(starts) else insns.slot_count
    raw = bytearray(insns.encode()[begin * 8:end * 8])
    for slot in range(end - begin):
        code, regs = raw[slot * 8], raw[slot * 8 + 1]
        src = regs >> 4
        is_call = code == _CALL and src == PseudoCall.CALL
        is_func = code == _LDDW and src == PseudoSrc.FUNC
        if not (is_call or is_func):
            continue
        imm = struct.unpack_from("<i", raw, slot * 8 + 4)[0]
        callee = bisect.bisect_left(starts, begin + slot + 1 + imm)
        struct.pack_into("<h", raw, slot * 8 + 2, callee)
        if is_call:
            struct.pack_into("<i", raw, slot * 8 + 4, 1)
        elif slot + 1 < end - begin:
            struct.pack_into("<I", raw, slot * 8 + 4, MODULES_VADDR & 0xFFFFFFFF)
            struct.pack_into("<I", raw, (slot + 1) * 8 + 4, MODULES_VADDR >> 32)
    return bytes(zero_map_values(raw))


def subprog_tag(insns: Insns, starts: list[int], index: int) -> bytes:
    """The tag of subprogram ``index``: Linux 6.12's ``bpf_prog_calc_tag``, the first 8 bytes of the
    SHA-1 of :func:`subprog_tag_input` (later kernels hash the same bytes with SHA-256)."""
    return hashlib.sha1(subprog_tag_input(insns, starts, index)).digest()[:8]


def jited_symbols(insns: Insns) -> dict[int, str]:
    """``{start slot: "bpf_prog_<tag>_<name>"}`` for every (sub)program: the kernel symbols of its
    JIT images (``<name>``: the BTF func-info name, or ``F`` when the program has no func info)."""
    starts = subprog_starts(insns)
    has_func_info = any(insn.meta.func is not None for insn in insns)
    out: dict[int, str] = {}
    for i, start in enumerate(starts):
        meta = insns.at(start).meta
        name = (meta.symbol or _name_of_prototype(meta.func)) if has_func_info else "F"
        out[start] = f"bpf_prog_{subprog_tag(insns, starts, i).hex()}_{name or 'F'}"
    return out


def _name_of_prototype(proto: str | None) -> str:
    """``int parse_eth(void * data, void * data_end)`` -> ``parse_eth``."""
    if not proto or "(" not in proto:
        return ""
    head = proto.split("(", 1)[0].rstrip()
    return head.rsplit(" ", 1)[-1].lstrip("*")


def helper_function_name(prog_type: int, helper_id: int, *, expected_attach_type: int = 0,
                         prog_flags: int = 0, attach_btf_id: int = 0) -> str | None:
    """The kernel function a call of ``helper_id`` reaches in a program of ``prog_type`` after the
    fixups (the ``.func`` of the prototype ``get_func_proto`` returns), or None where bpftool shows
    the UAPI name (``bpf_tail_call``, helpers the type does not offer, types pybpf does not model)."""
    if helper_id == _TAIL_CALL:
        return None
    from pybpf.errors import BpfError
    from pybpf.progtypes import PRIVILEGED, ProgInfo, descriptor

    try:
        desc = descriptor(prog_type)
    except BpfError:
        return None
    info = ProgInfo(prog_type, expected_attach_type, PRIVILEGED, bool(prog_flags & _BPF_F_SLEEPABLE),
                    attach_btf_id)
    proto = desc.get_func_proto(helper_id, info)
    if proto is None or proto.func in _NO_FUNCTION:
        return None
    return proto.func


def with_call_symbols(insns: Insns) -> Insns:
    """The stream with every bpf-to-bpf call's ``meta.reference`` set to its callee's JIT symbol, so
    that bpftool's callbacks print ``call pc+N#bpf_prog_<tag>_<name>`` (``print_call_pcrel``)."""
    symbols: dict[int, str] | None = None
    out: list[Insn] = []
    changed = False
    for idx, insn in insns.items():
        if insn.code == _CALL and insn.src == PseudoCall.CALL:
            if symbols is None:
                symbols = jited_symbols(insns)
            sym = symbols.get(int(idx) + 1 + _rel(insn.imm))
            if sym is not None:
                insn = Insn(insn.code, insn.dst, insn.src, insn.off, insn.imm, insn.meta.with_(reference=sym))
                changed = True
        out.append(insn)
    return Insns(out) if changed else insns


def xlated_call_namer(prog_type: int, *, expected_attach_type: int = 0, prog_flags: int = 0,
                      attach_btf_id: int = 0) -> Callable[[Insn], str | None]:
    """The ``call`` callback of a loaded program's xlated dump (use with ``calls_resolved=True``):
    internal functions by their registry name, helpers by their implementing function; anything else
    keeps the default (bpf-to-bpf calls: the symbol :func:`with_call_symbols` put in the stream)."""
    from pybpf.progtypes.internal import by_id, is_internal

    helper_names: dict[int, str | None] = {}

    def call(insn: Insn) -> str | None:
        if insn.code != _CALL or insn.src != PseudoCall.HELPER:
            return None
        imm = insn.imm & 0xFFFFFFFF
        if is_internal(imm):
            return by_id(imm).name
        if imm not in helper_names:
            helper_names[imm] = helper_function_name(prog_type, imm, expected_attach_type=expected_attach_type,
                                                     prog_flags=prog_flags, attach_btf_id=attach_btf_id)
        return helper_names[imm]

    return call


def xlated_dump_inputs(image: Any) -> tuple[Insns, Callable[[Insn], str | None]]:
    """What a kernel-layer ``ProgramImage``'s xlated dump prints: the stream with the subprogram
    symbols, and the call namer for its program type."""
    namer = xlated_call_namer(int(image.prog_type), expected_attach_type=int(image.expected_attach_type),
                              prog_flags=int(image.prog_flags), attach_btf_id=int(image.attach_btf_id))
    return with_call_symbols(image.insns), namer
