"""``prog dump jited``: the machine code of a JIT image, disassembled, as bpftool prints it.

bpftool (with its LLVM disassembler) prints, per JIT'ed function: the BTF prototype, the symbol
``bpf_prog_<tag>_<name>:``, then one line per x86 instruction, ``%4x:`` pc relative to the function
and the AT&T text, with ``; <source line>`` before the instruction where each line-info record lands
(``linum`` adds ``[file:F line_num:N line_col:C]``; ``opcodes`` adds the bytes on the next line), and a
blank line after each function. We disassemble with capstone in AT&T syntax.

pybpf adds what bpftool cannot know: before the code of each eBPF instruction, the instruction
itself in the kernel's dialect (``; 4: (18) r1 = map[id:29]``; ``show_insns=False`` turns this
off for bpftool's exact layout), and helper names after calls (``# bpf_map_lookup_elem``).

Pure: a :class:`~pybpf.jit.compile.JitImage` and the instruction stream in, text (or bpftool's JSON
structure) out. ``base_address`` is where the image is mapped, so branch targets print as absolute
addresses the way bpftool prints them (0 for an image that is not loaded).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from capstone import CS_ARCH_X86, CS_MODE_64, CS_OPT_SYNTAX_ATT, Cs

from pybpf.isa.disasm import bpftool_callbacks, kernel_insn_text, linfo_text
from pybpf.isa.insn import Insn, Insns
from pybpf.jit.compile import JitImage

__all__ = ["dump_jited", "dump_jited_json", "jited_functions"]

_SPLIT = re.compile(r"[ \t,()]+")


def _disassembler() -> Cs:
    md = Cs(CS_ARCH_X86, CS_MODE_64)
    md.syntax = CS_OPT_SYNTAX_ATT
    return md


def _func_name(insn: Insn, default: str) -> str:
    """A function's name: its symbol, else the name in its BTF prototype, else ``default``."""
    if insn.meta.symbol:
        return insn.meta.symbol
    if insn.meta.func:
        m = re.search(r"(\w+)\s*\(", insn.meta.func)
        if m:
            return m.group(1)
    return default


def jited_functions(image: JitImage, insns: Insns, *, name: str = "", tag: str = "") -> list[dict[str, Any]]:
    """One record per JIT'ed function, in code order: ``start`` slot, code ``begin``/``end``, ``proto``
    (BTF prototype text or None) and ``sym`` (``bpf_prog_<tag>_<name>``, the kernel's ksym name).
    Out-of-line code after the last function (stubs), if any, is a last record with ``start=None``."""
    prefix = f"bpf_prog_{tag}" if tag else "bpf_prog"
    out = []
    for start, begin, end in image.functions():
        first = insns.at(start)
        fname = _func_name(first, name)
        out.append({"start": start, "begin": begin, "end": end, "proto": first.meta.func,
                    "sym": f"{prefix}_{fname}" if fname else prefix})
    last_end = max((f["end"] for f in out), default=0)
    if last_end < image.code_size:
        out.append({"start": None, "begin": last_end, "end": image.code_size, "proto": None,
                    "sym": f"{prefix}_{name}__stubs" if name else f"{prefix}__stubs"})
    return out


def _annotations(image: JitImage, insns: Insns, show_insns: bool, call_name: Callable[[Insn], str | None] | None,
                 linum: bool) -> tuple[dict[int, list[tuple[str, str]]], dict[int, str]]:
    """``(kind, text)`` comments to print before the instruction at each code offset (kind "src" for
    line info, "bpf" for an eBPF instruction), and helper names by call offset."""
    before: dict[int, list[tuple[str, str]]] = {}
    cbs = bpftool_callbacks(call_name)
    func_starts = set(image.func_offsets)
    last_source = None
    for idx, insn in insns.items():
        if idx in func_starts:
            last_source = None
        off = image.insn_offsets.get(idx)
        if off is None:  # pragma: no cover - every instruction has code
            continue
        src = insn.meta.source
        if src is not None and src != last_source:
            # the function's first line lands at the function's entry, like the kernel's jited_linfo
            at = image.func_offsets[idx] if idx in func_starts else off
            before.setdefault(at, []).append(("src", linfo_text(src, linum=linum)))
            last_source = src
        if show_insns:
            before.setdefault(off, []).append(("bpf", f"{idx}: {kernel_insn_text(insn, cbs)}"))
    calls = {off: image.helper_names.get(key, str(key)) for off, key in image.helper_calls}
    return before, calls


def _records(image: JitImage, insns: Insns, *, name: str, tag: str, base_address: int, show_insns: bool,
             linum: bool, call_name: Callable[[Insn], str | None] | None) -> list[dict[str, Any]]:
    md = _disassembler()
    before, calls = _annotations(image, insns, show_insns, call_name, linum)
    funcs = jited_functions(image, insns, name=name, tag=tag)
    for f in funcs:
        begin, end = f["begin"], f["end"]
        rows = []
        pos = begin
        for ins in md.disasm(image.code[begin:end], base_address + begin):
            off = ins.address - base_address
            rows.append({"pc": off - begin, "off": off, "comments": before.get(off, []),
                         "mnemonic": ins.mnemonic, "op_str": ins.op_str, "bytes": bytes(ins.bytes),
                         "call": calls.get(off)})
            pos = off + ins.size
        if pos < end:  # bytes capstone cannot decode: show them, never drop them
            rows.append({"pc": pos - begin, "off": pos, "comments": before.get(pos, []), "mnemonic": "(bad)",
                         "op_str": "", "bytes": image.code[pos:end], "call": None})
        f["rows"] = rows
    return funcs


def dump_jited(
    image: JitImage,
    insns: Insns,
    *,
    name: str = "",
    tag: str = "",
    base_address: int = 0,
    opcodes: bool = False,
    linum: bool = False,
    show_insns: bool = True,
    call_name: Callable[[Insn], str | None] | None = None,
) -> str:
    """The plain-text listing (see the module docstring). ``name``/``tag`` make the symbol names;
    ``call_name`` names calls the helper table does not (as for ``dump xlated``)."""
    lines: list[str] = []
    for f in _records(image, insns, name=name, tag=tag, base_address=base_address, show_insns=show_insns,
                      linum=linum, call_name=call_name):
        if f["proto"]:
            lines.append(f"{f['proto']}:")
        lines.append(f"{f['sym']}:")
        for row in f["rows"]:
            lines.extend(f"; {text}" for _, text in row["comments"])
            text = f"{row['pc']:4x}:\t{row['mnemonic']}\t{row['op_str']}".rstrip()
            if row["call"]:
                text += f"\t# {row['call']}"
            lines.append(text)
            if opcodes:
                lines.append("\t" + " ".join(f"{b:02x}" for b in row["bytes"]) + " ")
        lines.append("")
    return "\n".join(lines) + ("\n" if lines else "")


def dump_jited_json(
    image: JitImage,
    insns: Insns,
    *,
    name: str = "",
    tag: str = "",
    base_address: int = 0,
    opcodes: bool = False,
    linum: bool = False,
    show_insns: bool = True,
    call_name: Callable[[Insn], str | None] | None = None,
) -> list[dict[str, Any]]:
    """bpftool's ``-j prog dump jited`` structure: ``[{"proto", "name", "insns": [{"src", "pc",
    "operation", "operands", "opcodes"}]}]``; pybpf adds ``"bpf"`` (the eBPF instruction lines)
    and ``"call"`` (a helper's name) where they apply."""
    out = []
    for f in _records(image, insns, name=name, tag=tag, base_address=base_address, show_insns=show_insns,
                      linum=linum, call_name=call_name):
        rows = []
        for row in f["rows"]:
            rec: dict[str, Any] = {}
            src = [text for kind, text in row["comments"] if kind == "src"]
            if src:
                rec["src"] = src[0]
            bpf = [text for kind, text in row["comments"] if kind == "bpf"]
            if bpf:
                rec["bpf"] = bpf
            rec["pc"] = f"{row['pc']:#x}"
            rec["operation"] = row["mnemonic"]
            operands = [t for t in _SPLIT.split(row["op_str"]) if t]
            rec["operands"] = operands or None
            if opcodes:
                rec["opcodes"] = [f"{b:#04x}" for b in row["bytes"]]
            if row["call"]:
                rec["call"] = row["call"]
            rows.append(rec)
        entry: dict[str, Any] = {}
        if f["proto"]:
            entry["proto"] = f["proto"]
        entry["name"] = f["sym"]
        entry["insns"] = rows
        out.append(entry)
    return out

