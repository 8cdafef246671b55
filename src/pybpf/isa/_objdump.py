"""The whole ``llvm-objdump -d [-r]`` listing of a BPF object (LLVM 19), over plain data.

The ELF reader supplies, per executable section, its name, bytes, the symbols defined in it and its
relocations; this module lays them out as llvm-objdump does:

* a ``<symbol>:`` block for every address that has symbols (the last name in (address, name)
  order wins when several share one, and a dummy symbol named after the section is added when
  nothing starts at offset 0);
* one line per instruction: slot number (byte offset / 8, right-aligned in 8 columns), the raw bytes,
  the text, and for branches `` <symbol+0xdisp>`` naming the last symbol at or before the target
  (addresses wrap at 2**64, as in LLVM);
* ``\\t\\t...`` for runs of at least 8 zero bytes (skipped in multiples of 4, never past a pending
  relocation), which is why a zeroed slot after a bad ``lddw`` reads ``...``;
* after each instruction the relocations that fall within it: ``\\t\\t%016x:  TYPE\\tTARGET``.

A byte sequence LLVM cannot decode prints ``<unknown>`` for 8 bytes, or for 1 byte when fewer than
8 (16 for a truncated lddw) remain, exactly as llvm-objdump advances.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from pybpf.isa._llvm_text import llvm_decode

__all__ = ["ObjdumpReloc", "ObjdumpSection", "ObjdumpSymbol", "objdump_listing", "objdump_section"]

_U64 = (1 << 64) - 1


@dataclass(frozen=True, slots=True)
class ObjdumpSymbol:
    """A symbol defined in the section (functions, labels, objects; not section or file symbols)."""

    name: str
    offset: int


@dataclass(frozen=True, slots=True)
class ObjdumpReloc:
    """A relocation: byte offset in the section, LLVM's type name (``R_BPF_64_64``) and the target as
    llvm-objdump prints it (the symbol name, or the section name for a section symbol)."""

    offset: int
    type: str
    target: str


@dataclass(frozen=True, slots=True)
class ObjdumpSection:
    """One executable section to disassemble."""

    name: str
    data: bytes
    symbols: Sequence[ObjdumpSymbol] = field(default_factory=tuple)
    relocs: Sequence[ObjdumpReloc] = field(default_factory=tuple)


def _skippable_zeroes(data: bytes, start: int, limit: int) -> int:
    """llvm-objdump's ``countSkippableZeroBytes``: leading zeroes, if at least 8, rounded down to 4."""
    n = 0
    while start + n < limit and data[start + n] == 0:
        n += 1
    return 0 if n < 8 else n & ~3


def objdump_section(section: ObjdumpSection, *, relocs: bool = True, alu32: bool = False) -> list[str]:
    """The lines of one section's disassembly, starting with ``Disassembly of section NAME:``."""
    data = bytes(section.data)
    size = len(data)
    syms = sorted((s.offset, s.name) for s in section.symbols if 0 <= s.offset < size)
    if not syms or syms[0][0] != 0:
        syms.insert(0, (0, section.name))
    pending = sorted(section.relocs, key=lambda r: r.offset) if relocs else []
    rel_i = 0
    lines = ["", f"Disassembly of section {section.name}:"]
    starts = sorted({addr for addr, _ in syms})
    for k, start in enumerate(starts):
        end = starts[k + 1] if k + 1 < len(starts) else size
        name = [n for a, n in syms if a == start][-1]
        lines += ["", f"{start:016x} <{name}>:"]
        index = start
        while index < end:
            max_off = end - index
            if rel_i < len(pending) and pending[rel_i].offset >= index:
                max_off = min(max_off, pending[rel_i].offset - index)
            n = _skippable_zeroes(data, index, index + max_off)
            if n:
                lines.append("\t\t...")
                index += n
                continue
            insn = llvm_decode(data[index:index + 16], alu32=alu32)
            step = insn.size if insn is not None else (8 if size - index >= 8 else 1)
            raw = " ".join(f"{b:02x}" for b in data[index:index + step])
            line = f"{index // 8:8d}:\t{raw}\t"
            if insn is None:
                line += "<unknown>"
            else:
                line += insn.text
                if insn.branch is not None:
                    line += _target(syms, (index + 8 + insn.branch * 8) & _U64)
            lines.append(line)
            index += step
            while rel_i < len(pending) and pending[rel_i].offset < index:
                r = pending[rel_i]
                lines.append(f"\t\t{r.offset:016x}:  {r.type}\t{r.target}")
                rel_i += 1
    return lines


def _target(syms: list[tuple[int, str]], target: int) -> str:
    best: tuple[int, str] | None = None
    for addr, name in syms:  # sorted: the last one at or below the target
        if addr <= target:
            best = (addr, name)
    if best is None:
        return ""
    disp = (target - best[0]) & _U64
    return f" <{best[1]}+{disp:#x}>" if disp else f" <{best[1]}>"


def objdump_listing(
    file_name: str, sections: Iterable[ObjdumpSection], *, relocs: bool = True, alu32: bool = False
) -> str:
    """``llvm-objdump -d [-r] FILE`` text: the file header and every non-empty section, in order.

    ``relocs=False`` is ``-d`` without ``-r``; ``alu32`` is ``--mattr=+alu32``.
    """
    lines = ["", f"{file_name}:\tfile format elf64-bpf"]
    for sec in sections:
        if len(sec.data):
            lines += objdump_section(sec, relocs=relocs, alu32=alu32)
    return "\n".join(lines) + "\n"
