"""The disassemblers: instructions to text in the kernel's dialect and in LLVM's, character for character.

Kernel dialect (Linux 6.12 ``kernel/bpf/disasm.c``, the verifier log and ``bpftool prog dump
xlated``):

* :func:`kernel_insn_text` — one instruction, ``(b7) r1 = 0``, with :class:`KernelCallbacks` (the
  kernel's ``struct bpf_insn_cbs``) naming calls and lddw immediates;
* :func:`dump_xlated` / :func:`dump_xlated_json` — bpftool's whole listing (function header, ``;``
  source lines, indices, ``opcodes``, ``linum``) with :func:`bpftool_callbacks` (``map[id:N]``...).

LLVM dialect (``llvm-objdump -d`` of LLVM 19):

* :func:`llvm_insn_text` / :func:`llvm_decode` — one instruction, ``r1 = 0x0``, ``<unknown>`` where
  LLVM's decoder refuses the bytes;
* :func:`objdump_listing` — the whole ``llvm-objdump -d -r`` output over plain section data
  (:class:`ObjdumpSection` with :class:`ObjdumpSymbol` and :class:`ObjdumpReloc`).

:func:`disassemble` and :func:`disassemble_records` give either dialect for a bare instruction
stream (what ``pybpf asm disassemble`` prints); :mod:`pybpf.isa.asm` reads all of it back.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from pybpf.isa._kernel_text import CallNamer, ImmPrinter, KernelCallbacks, kernel_insn_text
from pybpf.isa._llvm_text import LlvmInsn, format_hex, llvm_decode
from pybpf.isa._objdump import ObjdumpReloc, ObjdumpSection, ObjdumpSymbol, objdump_listing, objdump_section
from pybpf.isa._xlated import bpftool_callbacks, dump_xlated, dump_xlated_json, linfo_text, verifier_linfo_text
from pybpf.isa.insn import Insn, Insns, decode

__all__ = [
    "CallNamer",
    "Dialect",
    "ImmPrinter",
    "KernelCallbacks",
    "LlvmInsn",
    "ObjdumpReloc",
    "ObjdumpSection",
    "ObjdumpSymbol",
    "bpftool_callbacks",
    "disassemble",
    "disassemble_records",
    "dump_xlated",
    "dump_xlated_json",
    "format_hex",
    "kernel_insn_text",
    "linfo_text",
    "llvm_decode",
    "llvm_insn_text",
    "objdump_listing",
    "objdump_section",
    "verifier_linfo_text",
]

Dialect = Literal["kernel", "llvm"]


def llvm_insn_text(insn: Insn, *, alu32: bool = False) -> str:
    """One instruction as llvm-objdump prints it (``<unknown>`` if LLVM cannot decode it)."""
    decoded = llvm_decode(insn.encode(), alu32=alu32)
    return decoded.text if decoded is not None else "<unknown>"


def _as_insns(code: bytes | bytearray | memoryview | Insns | Iterable[Insn]) -> Insns:
    """Instructions from bytes (decoded leniently: the kernel prints whatever it is given) or insns."""
    if isinstance(code, Insns):
        return code
    if isinstance(code, bytes | bytearray | memoryview):
        return decode(code, strict=False)
    return Insns(code)


def _as_bytes(code: bytes | bytearray | memoryview | Insns | Iterable[Insn]) -> bytes:
    if isinstance(code, bytes | bytearray | memoryview):
        return bytes(code)
    return Insns(code).encode() if not isinstance(code, Insns) else code.encode()


def _llvm_steps(data: bytes, alu32: bool) -> list[tuple[int, bytes, str]]:
    """(byte offset, bytes, text) as llvm-objdump walks a section, zero runs included (``-z``)."""
    out = []
    i = 0
    while i < len(data):
        insn = llvm_decode(data[i:i + 16], alu32=alu32)
        step = insn.size if insn is not None else (8 if len(data) - i >= 8 else 1)
        out.append((i, data[i:i + step], insn.text if insn is not None else "<unknown>"))
        i += step
    return out


def disassemble(
    code: bytes | bytearray | memoryview | Insns | Iterable[Insn],
    dialect: Dialect = "kernel",
    *,
    opcodes: bool = False,
    alu32: bool = False,
    cbs: KernelCallbacks | None = None,
) -> str:
    """A bare instruction stream as text.

    ``kernel``: bpftool's ``dump xlated`` form (``   0: (b7) r1 = 0``; ``opcodes`` adds the byte
    lines). ``llvm``: llvm-objdump's instruction lines (``       0:\\tr1 = 0x0``; ``opcodes`` adds the
    raw bytes column, as without ``--no-show-raw-insn``), every slot shown (no zero-run folding, no
    symbols, hence no branch annotations).
    """
    if dialect == "kernel":
        return dump_xlated(_as_insns(code), opcodes=opcodes, cbs=cbs)
    lines = []
    for off, raw, text in _llvm_steps(_as_bytes(code), alu32):
        hexes = " ".join(f"{b:02x}" for b in raw)
        lines.append(f"{off // 8:8d}:\t{hexes}\t{text}" if opcodes else f"{off // 8:8d}:\t{text}")
    return "\n".join(lines) + "\n" if lines else ""


def disassemble_records(
    code: bytes | bytearray | memoryview | Insns | Iterable[Insn],
    dialect: Dialect = "kernel",
    *,
    opcodes: bool = False,
    alu32: bool = False,
    cbs: KernelCallbacks | None = None,
) -> list[dict[str, Any]]:
    """JSON records, one per instruction: ``pc`` (raw slot), ``code`` (``"0xb7"``), ``text`` (the
    dialect's text; for the kernel dialect without the ``(b7)`` prefix), and with ``opcodes`` the raw
    ``bytes`` (bpftool's ``"0x.."`` strings)."""
    out: list[dict[str, Any]] = []
    if dialect == "kernel":
        callbacks = cbs or bpftool_callbacks()
        for idx, insn in _as_insns(code).items():
            text = kernel_insn_text(insn, callbacks)
            prefix = f"({insn.code & 0xFF:02x}) "
            rec: dict[str, Any] = {"pc": idx, "code": f"{insn.code & 0xFF:#04x}",
                                   "text": text[len(prefix):] if text.startswith(prefix) else text}
            if opcodes:
                rec["bytes"] = [f"{b:#04x}" for b in insn.encode()]
            out.append(rec)
        return out
    for off, raw, text in _llvm_steps(_as_bytes(code), alu32):
        rec = {"pc": off // 8, "code": f"{raw[0]:#04x}", "text": text}
        if opcodes:
            rec["bytes"] = [f"{b:#04x}" for b in raw]
        out.append(rec)
    return out
