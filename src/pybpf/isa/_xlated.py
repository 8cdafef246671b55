"""``bpftool prog dump xlated``: the whole listing as text or as bpftool's JSON records (6.12 bpftool).

A pure function of the post-load instruction stream and its metadata, so the kernel layer (``prog
dump xlated``), the verifier and the CLI share it. What bpftool takes from the kernel's program info
comes from :class:`InsnMeta` here: ``func`` is the BTF func-info prototype text printed as a header
line (``int xdp_program(struct xdp_md * ctx):``), ``source`` the BTF line info printed as a ``; ``
comment before the instruction it starts at.

bpftool's callbacks (``print_call`` / ``print_imm`` of tools/bpf/bpftool/xlated_dumper.c) are
reproduced by :func:`bpftool_callbacks` over contract 1's stream: an lddw with ``src =
BPF_PSEUDO_MAP_FD`` holds the map id and prints ``map[id:N]``; ``BPF_PSEUDO_MAP_VALUE`` holds ``id |
off << 32`` and prints ``map[id:N][0]+off``.

One documented difference: for a bpf-to-bpf call of an interpreted program bpftool prints the
instruction's ``off`` field, where the kernel's interpreter fixup has stored the callee's relative
offset; pybpf's stream keeps that offset in ``imm`` (as before the fixup), so the default prints
``imm`` and yields the same ``call pc+N``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pybpf.isa._kernel_text import CallNamer, KernelCallbacks, kernel_insn_text
from pybpf.isa.insn import Insn, InsnIdx, Insns, SourceLine
from pybpf.isa.opcodes import PseudoCall, PseudoSrc

__all__ = [
    "bpftool_callbacks",
    "dump_xlated",
    "dump_xlated_json",
    "linfo_text",
    "verifier_linfo_text",
]


def _bpftool_imm(insn: Insn, full_imm: int) -> str:
    lo, hi = insn.imm & 0xFFFFFFFF, (insn.imm >> 32) & 0xFFFFFFFF
    if insn.src == PseudoSrc.MAP_FD:
        return f"map[id:{lo}]"
    if insn.src == PseudoSrc.MAP_VALUE:
        return f"map[id:{lo}][0]+{hi}"
    if insn.src == PseudoSrc.MAP_IDX_VALUE:
        return f"map[idx:{lo}]+{hi}"
    if insn.src == PseudoSrc.FUNC:
        lo_s = lo - (1 << 32) if lo & 0x80000000 else lo
        return f"subprog[{lo_s:+d}]"
    return f"{full_imm:#x}"


def bpftool_callbacks(call_name: CallNamer | None = None, *, calls_resolved: bool = False) -> KernelCallbacks:
    """The callbacks bpftool hands to the kernel's printer.

    ``call_name`` names calls the helper table does not know: internal functions the verifier
    patched in (``__htab_map_lookup_elem``, from progtypes' registry), kfuncs (their BTF name), or a
    JITed subprogram's symbol. It may return ``None`` to keep the default: the instruction's
    ``meta.reference`` if it has one (``call pc+N#name`` for bpf-to-bpf calls), else ``pc+N`` /
    ``kernel-function`` / ``unknown`` as the kernel prints.

    ``calls_resolved=True`` (a loaded program's xlated stream): ``call_name`` is asked about helper
    calls too, before the helper table — bpftool names them by the kernel function the call reaches
    (see :class:`~pybpf.isa._kernel_text.KernelCallbacks`).
    """

    def call(insn: Insn) -> str | None:
        if call_name is not None:
            res = call_name(insn)
            if res is not None:
                return res
        ref = insn.meta.reference  # the callee's name, when the stream was read from a listing
        if insn.src == PseudoCall.CALL:
            imm = insn.imm & 0xFFFFFFFF
            rel = f"{imm - (1 << 32) if imm & 0x80000000 else imm:+d}"
            return f"{rel}#{ref}" if ref else rel
        return ref

    return KernelCallbacks(call=call, imm=_bpftool_imm, calls_resolved=calls_resolved)


def linfo_text(source: SourceLine, *, linum: bool = False) -> str:
    """bpftool's line-info comment body (after ``; ``): the source text with leading blanks trimmed,
    plus `` [file:F line_num:N line_col:C]`` with ``linum``."""
    text = source.text.lstrip(" \t\n\v\f\r")
    if linum:
        return f"{text} [file:{source.file} line_num:{source.line} line_col:{source.col}]"
    return text


def verifier_linfo_text(source: SourceLine) -> str:
    """The verifier log's line-info form (``verbose_linfo``): ``text @ file.c:12``, the file's base
    name only, no column."""
    text = source.text.lstrip(" \t\n\v\f\r")
    return f"{text} @ {source.file.rsplit('/', 1)[-1]}:{source.line}"


def _hex(data: bytes) -> str:
    """bpftool's ``fprint_hex`` with separator " " (a double space every 8 bytes, a newline every 16)."""
    out = []
    for i, b in enumerate(data):
        if i == 0:
            pfx = ""
        elif i % 16 == 0:
            pfx = "\n"
        elif i % 8 == 0:
            pfx = "  "
        else:
            pfx = " "
        out.append(f"{pfx}{b:02x}")
    return "".join(out)


def _items(insns: Insns | Iterable[Insn]) -> Iterable[tuple[InsnIdx, Insn]]:
    stream = insns if isinstance(insns, Insns) else Insns(insns)
    return stream.items()


def dump_xlated(
    insns: Insns | Iterable[Insn],
    *,
    opcodes: bool = False,
    linum: bool = False,
    cbs: KernelCallbacks | None = None,
) -> str:
    """The text of ``bpftool prog dump xlated [opcodes] [linum]`` (ends with a newline).

    ``cbs`` defaults to :func:`bpftool_callbacks` (``map[id:N]``, ``call pc+N``...).
    """
    cbs = cbs or bpftool_callbacks()
    lines: list[str] = []
    for idx, insn in _items(insns):
        meta = insn.meta
        if meta.func:
            lines.append(f"{meta.func}:")
        if meta.source is not None:
            lines.append("; " + linfo_text(meta.source, linum=linum))
        lines.append(f"{idx:4d}: {kernel_insn_text(insn, cbs)}")
        if opcodes:
            raw = insn.encode()
            text = _hex(raw[:8])
            if len(raw) > 8:
                text += " " + _hex(raw[8:])
            lines.append("       " + text)
    return "\n".join(lines) + "\n" if lines else ""


def _hex_json(data: bytes) -> list[str]:
    return [f"{b:#04x}" for b in data]


def dump_xlated_json(
    insns: Insns | Iterable[Insn],
    *,
    opcodes: bool = False,
    linum: bool = False,
    cbs: KernelCallbacks | None = None,
) -> list[dict[str, Any]]:
    """``bpftool -j prog dump xlated``: one record per instruction, keys in bpftool's order
    (``proto``, ``src``, ``file``/``line_num``/``line_col`` with ``linum``, ``disasm``, ``opcodes``)."""
    cbs = cbs or bpftool_callbacks()
    out: list[dict[str, Any]] = []
    for _idx, insn in _items(insns):
        rec: dict[str, Any] = {}
        meta = insn.meta
        if meta.func:
            rec["proto"] = meta.func
        if meta.source is not None:
            rec["src"] = meta.source.text.lstrip(" \t\n\v\f\r")
            if linum:
                rec["file"] = meta.source.file
                if meta.source.line:
                    rec["line_num"] = meta.source.line
                if meta.source.col:
                    rec["line_col"] = meta.source.col
        rec["disasm"] = kernel_insn_text(insn, cbs)
        if opcodes:
            raw = insn.encode()
            rec["opcodes"] = {
                "code": f"{raw[0]:#04x}",
                "src_reg": f"{raw[1] >> 4:#x}",
                "dst_reg": f"{raw[1] & 0xF:#x}",
                "off": _hex_json(raw[2:4]),
                "imm": _hex_json(raw[4:16] if len(raw) > 8 else raw[4:8]),
            }
        out.append(rec)
    return out
