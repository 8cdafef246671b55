"""``pybpf asm``: assemble instruction text to raw bytes, disassemble raw bytes to text.

    pybpf asm assemble FILE [-o OUT] [--dialect kernel|llvm]
    pybpf asm disassemble FILE [--dialect kernel|llvm] [--opcodes] [--alu32]
    pybpf -j asm disassemble FILE        # [{"pc": 0, "code": "0xb7", "text": "r1 = 0"}, ...]

Raw bytes are the kernel's ``struct bpf_insn`` array (8 bytes a slot, little-endian), what
``BPF_PROG_LOAD`` takes. ``FILE`` may be ``-`` for standard input.
"""

from __future__ import annotations

import sys

import click

from pybpf.cli.output import get_output
from pybpf.errors import AsmError
from pybpf.isa.asm import assemble
from pybpf.isa.disasm import disassemble, disassemble_records

__all__ = ["cli"]

_DIALECT = click.option(
    "--dialect",
    type=click.Choice(["kernel", "llvm"]),
    default="kernel",
    show_default=True,
    help="kernel: verifier log / bpftool xlated text; llvm: llvm-objdump text.",
)


@click.group(name="asm")
def cli() -> None:
    """Assemble and disassemble eBPF instructions (kernel or LLVM dialect)."""


@cli.command(name="assemble")
@click.argument("file", type=click.File("r"))
@click.option("-o", "--output", "out", type=click.File("wb"), default=None,
              help="Write the bytes here (default: standard output).")
@_DIALECT
def assemble_cmd(file: click.utils.LazyFile, out: click.utils.LazyFile | None, dialect: str) -> None:
    """Assemble FILE (instruction text) into raw instruction bytes."""
    path = getattr(file, "name", "<stdin>")
    try:
        text = file.read()
    except UnicodeDecodeError as e:
        raise AsmError(f"not a text file ({e.reason})", line=1, path=path) from None
    insns = assemble(text, dialect, path=path)  # type: ignore[arg-type]
    data = insns.encode()
    if out is None:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        out.write(data)
    output = get_output()
    if output.json and out is not None:
        output.emit({"insns": insns.slot_count, "bytes": len(data)})


@cli.command(name="disassemble")
@click.argument("file", type=click.File("rb"))
@_DIALECT
@click.option("--opcodes", is_flag=True, help="Also show the raw bytes of each instruction.")
@click.option("--alu32", is_flag=True, help="LLVM dialect: decode as llvm-objdump --mattr=+alu32 does.")
def disassemble_cmd(file: click.utils.LazyFile, dialect: str, opcodes: bool, alu32: bool) -> None:
    """Disassemble FILE (raw instruction bytes) into text."""
    data = file.read()
    output = get_output()
    if output.json:
        output.emit(disassemble_records(data, dialect, opcodes=opcodes, alu32=alu32))  # type: ignore[arg-type]
        return
    text = disassemble(data, dialect, opcodes=opcodes, alu32=alu32)  # type: ignore[arg-type]
    click.echo(text, nl=False)
