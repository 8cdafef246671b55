"""The exception hierarchy: every error pybpf raises on bad input is one of these.

Why one module: callers (the CLI, tools built on pybpf, tests) need one place to learn what can go
wrong and which fields an error carries. Errors carry structure, not just text: the errno the kernel
would return, the instruction index (the 8-byte slot, as in every log and dump), the source line,
and for loads the complete verifier log.

    PybpfError
    ├── IsaError ─── DecodeError, AsmError
    ├── LoaderError ─── ElfError, BtfError, RelocationError, ToolchainError
    ├── BpfError (also an OSError: ``.errno`` is the kernel's errno)
    │   ├── VerifierError
    │   └── NotSupportedError
    ├── ExecutionError ─── MemoryFault, InstructionLimitExceeded, HelperError
    └── JitError

Note: ``BpfError`` subclasses ``OSError`` but is never one of OSError's errno subclasses (an EPERM
error is not a ``PermissionError``); match on ``.errno``.
"""

from __future__ import annotations

import errno as _errno
import os
from typing import ClassVar

__all__ = [
    "AsmError",
    "BpfError",
    "BtfError",
    "DecodeError",
    "ElfError",
    "ExecutionError",
    "HelperError",
    "InstructionLimitExceeded",
    "IsaError",
    "JitError",
    "LoaderError",
    "MemoryFault",
    "NotSupportedError",
    "PybpfError",
    "RelocationError",
    "ToolchainError",
    "VerifierError",
]

# Linux returns ENOTSUPP (524), which is not in Python's errno module (it is kernel-internal).
ENOTSUPP = 524


class PybpfError(Exception):
    """Base of all pybpf errors. ``exit_code`` is what the CLI exits with (bpftool exits 255 = -1)."""

    exit_code: ClassVar[int] = 255


class IsaError(PybpfError):
    """An instruction that cannot be encoded or decoded. ``insn_idx`` is the raw 8-byte slot."""

    def __init__(self, message: str, *, insn_idx: int | None = None) -> None:
        self.message = message
        self.insn_idx = insn_idx
        super().__init__(f"insn {insn_idx}: {message}" if insn_idx is not None else message)


class DecodeError(IsaError):
    """Bytes that are not a valid instruction stream (bad opcode, reserved field set, truncated lddw)."""


class AsmError(IsaError):
    """Assembler input that cannot be assembled; ``line`` and ``col`` are 1-based."""

    def __init__(self, message: str, *, line: int, col: int = 1, text: str = "", path: str = "") -> None:
        self.line = line
        self.col = col
        self.text = text
        self.path = path
        where = f"{path}:" if path else ""
        IsaError.__init__(self, message)
        self.args = (f"{where}{line}:{col}: {message}",)

    def __str__(self) -> str:
        return str(self.args[0])


class LoaderError(PybpfError):
    """An object file or its description cannot be turned into programs and maps."""

    def __init__(self, message: str, *, path: str | None = None, section: str | None = None) -> None:
        self.message = message
        self.path = path
        self.section = section
        where = ""
        if path:
            where += f"{path}: "
        if section:
            where += f"section {section}: "
        super().__init__(where + message)


class ElfError(LoaderError):
    """Malformed ELF: truncated file, wrong machine, bad section or symbol indices."""


class BtfError(LoaderError):
    """Malformed or unsupported BTF / BTF.ext data."""


class RelocationError(LoaderError):
    """A relocation that cannot be applied (missing symbol, misaligned offset, wrong instruction)."""


class ToolchainError(LoaderError):
    """Compiling C to BPF failed, or no compiler is available; ``output`` is the compiler's stderr."""

    def __init__(self, message: str, *, output: str = "", path: str | None = None) -> None:
        self.output = output
        super().__init__(message, path=path)


class BpfError(PybpfError, OSError):
    """A failed bpf(2) call, with the errno Linux returns for the same call."""

    def __init__(self, err: int, message: str | None = None) -> None:
        text = message or os.strerror(err) if err != ENOTSUPP else (message or "Operation not supported")
        OSError.__init__(self, err, text)
        self.message = text

    def __str__(self) -> str:
        name = _errno.errorcode.get(self.errno or 0, "ENOTSUPP" if self.errno == ENOTSUPP else "?")
        return f"{self.message} ({name})"


class VerifierError(BpfError):
    """PROG_LOAD rejected by the verifier: errno (EACCES or EINVAL, as Linux), the log, where it failed.

    ``str(e)`` is a summary (the message and the failing instruction), like cilium/ebpf's
    VerifierError; ``e.log`` is the complete log and ``format_log(head, tail)`` a part of it.
    """

    def __init__(
        self,
        err: int,
        message: str,
        *,
        log: str = "",
        insn_idx: int | None = None,
        source_line: str | None = None,
        program: str | None = None,
    ) -> None:
        super().__init__(err, message)
        self.log = log
        self.insn_idx = insn_idx
        self.source_line = source_line
        self.program = program

    def format_log(self, head: int | None = None, tail: int | None = None) -> str:
        lines = self.log.splitlines()
        if head is not None:
            lines = lines[:head]
        if tail is not None:
            lines = lines[-tail:] if tail else []
        return "\n".join(lines)

    def __str__(self) -> str:
        prefix = f"program {self.program}: " if self.program else ""
        where = f" (insn {self.insn_idx})" if self.insn_idx is not None else ""
        omitted = max(0, len(self.log.splitlines()) - 1)
        tail = f" ({omitted} line(s) of log omitted)" if omitted else ""
        return f"{prefix}{self.message}{where}{tail}"


class NotSupportedError(BpfError):
    """The kernel has it, pybpf does not (yet): carries the errno the kernel would use for absence."""

    def __init__(self, message: str, err: int = ENOTSUPP) -> None:
        super().__init__(err, message)


class ExecutionError(PybpfError):
    """A program stopped abnormally while running; ``pc`` is the raw instruction slot."""

    def __init__(self, message: str, *, pc: int | None = None) -> None:
        self.message = message
        self.pc = pc
        super().__init__(message if pc is None else f"{message} at PC {pc}")


class MemoryFault(ExecutionError):
    """A load or store outside every memory region the program may touch."""

    def __init__(self, kind: str, *, pc: int, address: int, size: int, reason: str = "") -> None:
        self.kind = kind  # "load" or "store"
        self.address = address
        self.size = size
        self.reason = reason  # why, e.g. "NULL pointer dereference", "stack[0] is read-only" (optional)
        ExecutionError.__init__(self, f"out of bounds memory {kind}", pc=pc)
        why = f" ({reason})" if reason else ""
        self.args = (f"out of bounds memory {kind} at PC {pc}, addr {address:#x}, size {size}{why}",)

    def __str__(self) -> str:
        return str(self.args[0])


class InstructionLimitExceeded(ExecutionError):
    """The instruction budget ran out: a runaway program."""


class HelperError(ExecutionError):
    """A helper call that cannot be executed (unknown helper, kfunc at run time, bad argument)."""


class JitError(PybpfError):
    """The JIT could not compile an instruction (always names it) or refused an unverified program."""

    def __init__(self, message: str, *, insn_idx: int | None = None, code: int | None = None) -> None:
        self.insn_idx = insn_idx
        self.code = code
        where = f"insn {insn_idx}" if insn_idx is not None else ""
        if code is not None:
            where += f" (opcode {code:#04x})"
        super().__init__(f"{where}: {message}" if where else message)
