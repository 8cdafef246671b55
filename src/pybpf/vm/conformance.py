"""The ISA conformance runner: ``.data`` files of bpf_conformance and uBPF against a pluggable engine.

A test file (tests/data/conformance/README.md) is one program (``-- asm`` or ``-- raw``), optional
input memory (``-- mem``) and one expectation: ``-- result`` (r0 at exit, all 64 bits) or ``-- error``
/ ``-- error pattern`` (the program must be rejected). What running one means here:

1. parse the sections (``#`` comments, ``@ FILE`` includes, raw words or byte lists, hexdump memory);
2. build the program: ``raw`` if present, else assemble ``asm``
   (:mod:`pybpf.isa.conformance_asm`); decode strictly (reserved fields must be zero);
3. load-check it as a VM loading unverified code must (:func:`pybpf.vm.loadcheck.check_program`:
   jumps, calls, helper ids against the harness table, at most 65,536 slots as uBPF);
4. run it on the engine with r1 = a writable copy of the memory (NULL if none), r2 = its length, and
   the harness helpers 0-5 (README 5.1; helper 5 is the unwind helper).

``-- result`` passes when r0 matches; ``-- error`` passes when step 1-3 rejects the program, and
``-- error pattern`` (runtime bounds checks) also when running faults. Not ISA tests, reported as
skipped with the reason: ELF-loader tests (``-- pyelf``), VM-API tests (``-- reload``/``-- unload``),
assembler-only files (``asm`` + ``raw``, no expectation; tests/isa/test_conformance_asm.py checks
those). One documented deviation: a test expecting an opcode to be refused as unknown that RFC 9669
defines (uBPF's ``err-unknown-opcode``: 0x06 is ``gotol``) is skipped, because RFC 9669 wins.

An **engine** is a small adapter, ``(insns, memory, helpers) -> r0``, raising a
:class:`~pybpf.errors.PybpfError` on rejection or fault (:data:`ENGINES`; ``jit`` is looked up as
``pybpf.jit.conformance_engine`` with that signature when the JIT package provides it).
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import ClassVar

from pybpf.errors import AsmError, DecodeError, ExecutionError, NotSupportedError, PybpfError
from pybpf.isa.conformance_asm import assemble
from pybpf.isa.insn import Insns, decode
from pybpf.isa.opcodes import OPCODES
from pybpf.vm.engine import Engine
from pybpf.vm.helpers import HelperContext, HelperTable
from pybpf.vm.interp import Interpreter
from pybpf.vm.loadcheck import check_program
from pybpf.vm.memory import AddressSpace, RegionKind
from pybpf.vm.semantics import M64
from pybpf.vm.translate import TranslatedProgram

__all__ = [
    "ENGINES",
    "HARNESS_HELPERS",
    "MAX_PROGRAM_SLOTS",
    "ConformanceEngine",
    "ConformanceTest",
    "Outcome",
    "TestResult",
    "collect",
    "get_engine",
    "load_test",
    "parse_file",
    "run_file",
    "run_paths",
    "summary_line",
]

MAX_PROGRAM_SLOTS = 65536  # uBPF's UBPF_MAX_INSTS: the suites' "too many instructions" limit
RUN_BUDGET = 10_000_000  # instructions per test before it counts as a runaway

ConformanceEngine = Callable[[Insns, bytearray, HelperTable], int]
"""``(insns, memory, helpers) -> r0``; raises a PybpfError when the program is refused or faults."""

_KNOWN_SECTIONS = {
    "asm", "raw", "mem", "result", "error", "error pattern", "no register offset", "c", "description",
    "no jit", "reload", "unload", "pyelf",
}


# -- the harness helpers (README 5.1) ---------------------------------------------------------------------
def _gather_bytes(ctx: HelperContext, a: int, b: int, c: int, d: int, e: int) -> int:
    return ((a & 0xFF) << 32) | ((b & 0xFF) << 24) | ((c & 0xFF) << 16) | ((d & 0xFF) << 8) | (e & 0xFF)


def _memfrob(ctx: HelperContext, ptr: int, n: int, *_: int) -> int:
    data = ctx.read(ptr, n)
    ctx.write(ptr, bytes(x ^ 42 for x in data))
    return ptr


def _no_op(ctx: HelperContext, *_: int) -> int:
    return 0


def _sqrti(ctx: HelperContext, x: int, *_: int) -> int:
    return math.isqrt(x)


def _strcmp_ext(ctx: HelperContext, a: int, b: int, *_: int) -> int:
    sa, sb = ctx.cstring(a), ctx.cstring(b)
    return (sa > sb) - (sa < sb)


def _unwind(ctx: HelperContext, x: int, *_: int) -> int:
    return x


HARNESS_HELPERS = HelperTable(
    {0: _gather_bytes, 1: _memfrob, 2: _no_op, 3: _sqrti, 4: _strcmp_ext, 5: _unwind},
    unwind_id=5,
)
"""Helpers 0-5 of the suites' harnesses; 5 is uBPF's unwind helper (returning 0 stops the program)."""


# -- engines ---------------------------------------------------------------------------------------------
def _vm_engine(cls: type[Engine]) -> ConformanceEngine:
    def run(insns: Insns, memory: bytearray, helpers: HelperTable) -> int:
        space = AddressSpace()
        r1 = 0
        if memory:
            r1 = space.add(memory, RegionKind.MEM, "input").address()
        return cls(insns, space=space, helpers=helpers).run(r1, len(memory), budget=RUN_BUDGET)

    run.__name__ = f"{cls.tier}_engine"
    return run


ENGINES: dict[str, ConformanceEngine] = {
    "interpreter": _vm_engine(Interpreter),
    "translate": _vm_engine(TranslatedProgram),
}


def get_engine(name: str) -> ConformanceEngine:
    """The engine adapter called ``name``; ``jit`` comes from ``pybpf.jit.conformance_engine``."""
    if name in ENGINES:
        return ENGINES[name]
    if name == "jit":
        try:
            module = importlib.import_module("pybpf.jit")
        except ImportError as e:
            raise NotSupportedError(f"engine 'jit' is not available: {e}") from e
        engine = getattr(module, "conformance_engine", None)
        if not callable(engine):
            raise NotSupportedError("engine 'jit' is not available: pybpf.jit has no conformance_engine")
        return engine  # type: ignore[no-any-return]
    raise NotSupportedError(f"unknown engine {name!r} (choose interpreter, translate or jit)")


# -- test files ---------------------------------------------------------------------------------------------
@dataclass(slots=True)
class _Section:
    name: str
    arg: str  # text after '@', or ""
    line: int  # line number of the marker
    body: list[tuple[int, str]] = field(default_factory=list)  # (line number, comment-stripped text)


@dataclass(slots=True)
class ConformanceTest:
    """One parsed ``.data`` file."""

    path: Path
    sections: dict[str, _Section]
    problem: str | None = None  # why the file itself is malformed (unknown or duplicate section...)

    def has(self, name: str) -> bool:
        return name in self.sections

    def last_line(self, name: str) -> str | None:
        sec = self.sections.get(name)
        if sec is None:
            return None
        lines = [t for _, t in sec.body if t.strip()]
        return lines[-1].strip() if lines else ""


def parse_file(path: Path) -> ConformanceTest:
    """Split a ``.data`` file into its sections (README section 2)."""
    sections: dict[str, _Section] = {}
    problem = None
    current: _Section | None = None
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        return ConformanceTest(path, {}, f"cannot read: {e.strerror}")
    for number, raw in enumerate(text.splitlines(), 1):
        if raw.startswith("--"):
            name = raw[2:].split("#", 1)[0].strip()
            arg = ""
            if "@" in name:
                name, arg = (part.strip() for part in name.split("@", 1))
            if name not in _KNOWN_SECTIONS:
                problem = problem or f"unknown section '-- {name}' at line {number}"
            if name in sections:
                problem = problem or f"duplicate section '-- {name}' at line {number}"
            current = _Section(name, arg, number)
            sections.setdefault(name, current)
            continue
        if current is not None:
            current.body.append((number, raw.split("#", 1)[0]))
    return ConformanceTest(path, sections, problem)


class Outcome(Enum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class TestResult:
    """The verdict on one file: outcome, why, and (for result tests) expected vs actual r0."""

    __test__: ClassVar[bool] = False  # not a pytest test class, despite the name

    path: Path
    outcome: Outcome
    reason: str = ""
    expected: int | None = None
    actual: int | None = None

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {"file": str(self.path), "outcome": self.outcome.value, "reason": self.reason}
        if self.expected is not None:
            data["expected"] = f"{self.expected:#x}"
        if self.actual is not None:
            data["actual"] = f"{self.actual:#x}"
        return data


class _Rejected(Exception):
    def __init__(self, stage: str, error: Exception) -> None:
        super().__init__(f"{stage}: {error}")
        self.stage = stage
        self.error = error


def _parse_number(text: str) -> int:
    t = text.strip()
    return int(t, 16) if t.lower().startswith(("0x", "-0x")) else int(t, 10)


def _raw_program(test: ConformanceTest) -> bytes:
    sec = test.sections["raw"]
    tokens = [(n, tok) for n, t in sec.body for tok in t.split()]
    if tokens and all(re.fullmatch(r"[0-9A-Fa-f]{2}", tok) for _, tok in tokens):
        return bytes(int(tok, 16) for _, tok in tokens)  # byte list: memory order
    out = bytearray()
    for number, tok in tokens:
        try:
            word = _parse_number(tok)
        except ValueError:
            raise _Rejected("raw", DecodeError(f"line {number}: not an instruction word: {tok}")) from None
        if not 0 <= word <= M64:
            raise _Rejected("raw", DecodeError(f"line {number}: instruction word out of range: {tok}"))
        out += word.to_bytes(8, "little")
    return bytes(out)


def _memory(test: ConformanceTest) -> bytearray:
    sec = test.sections.get("mem")
    if sec is None:
        return bytearray()
    lines: Iterable[str]
    if sec.arg:
        lines = [ln.rsplit(":", 1)[-1] for ln in (test.path.parent / sec.arg).read_text().splitlines()]
        return bytearray(bytes.fromhex("".join("".join(ln.split()) for ln in lines)))
    lines = [t.rsplit(":", 1)[-1] for _, t in sec.body]  # uBPF allows an "addr:" prefix
    tokens = [tok for ln in lines for tok in ln.split()]
    return bytearray(int(tok, 16) for tok in tokens)


def _program(test: ConformanceTest) -> Insns:
    if test.has("raw"):
        data = _raw_program(test)
    elif test.has("asm"):
        sec = test.sections["asm"]
        try:
            if sec.arg:
                include = test.path.parent / sec.arg
                insns = assemble(include.read_text(), path=str(include))
            else:
                first = sec.line
                # keep source line numbers: pad with the lines before the section
                text = "\n" * first + "\n".join(t for _, t in sec.body)
                insns = assemble(text, path=str(test.path))
        except AsmError as e:
            raise _Rejected("assembler", e) from None
        except OSError as e:
            raise _Rejected("assembler", AsmError(f"cannot read include: {e.strerror}", line=sec.line)) from None
        data = insns.encode()
    else:
        raise _Rejected("load", DecodeError("no program (no -- asm or -- raw section)"))
    try:
        return decode(data, strict=True)
    except DecodeError as e:
        raise _Rejected("decode", e) from None


def load_test(test: ConformanceTest) -> tuple[Insns, bytearray]:
    """The program (strictly decoded) and the input memory of a parsed test; raises the
    :class:`~pybpf.errors.PybpfError` that rejects it (for engines' own differential tests)."""
    try:
        return _program(test), _memory(test)
    except _Rejected as rejected:
        raise rejected.error from None


def _skip_reason(test: ConformanceTest) -> str | None:
    if test.has("pyelf"):
        return "ELF-loader test (-- pyelf): not an ISA test"
    if test.has("reload") or test.has("unload"):
        return "VM-API test (-- reload/-- unload: loading twice into one VM): not an ISA test"
    if test.has("asm") and test.has("raw") and not (test.has("result") or test.has("error")):
        return "assembler-only test (asm + raw, no expectation): checked by tests/isa/test_conformance_asm.py"
    return None


_UNKNOWN_OPCODE = re.compile(r"unknown opcode 0x([0-9a-fA-F]{2})")


def run_file(path: Path, engine: ConformanceEngine, helpers: HelperTable = HARNESS_HELPERS) -> TestResult:
    """Run one ``.data`` file on ``engine`` (see the module docstring for the rules)."""
    test = parse_file(path)
    skip = _skip_reason(test)
    if skip is not None and test.problem is None:
        return TestResult(path, Outcome.SKIPPED, skip)
    expects_error = test.has("error") or test.has("error pattern")
    pattern = test.has("error pattern")
    expected_text = test.last_line("error pattern") if pattern else test.last_line("error")
    expected = None
    if test.has("result") and not expects_error:
        try:
            expected = _parse_number(test.last_line("result") or "") & M64
        except ValueError:
            return TestResult(path, Outcome.FAILED, f"unreadable -- result: {test.last_line('result')!r}")
    if not expects_error and expected is None:
        if not test.sections:
            return TestResult(path, Outcome.FAILED, "empty file: no program and no expectation")
        return TestResult(path, Outcome.FAILED, "no expectation (-- result or -- error)")
    try:
        if test.problem is not None:
            raise _Rejected("parse", DecodeError(test.problem))
        insns = _program(test)
        try:
            check_program(insns, helpers=helpers, max_slots=MAX_PROGRAM_SLOTS)
        except DecodeError as e:
            raise _Rejected("load", e) from None
        memory = _memory(test)
    except _Rejected as rejected:
        if expects_error:
            return TestResult(path, Outcome.PASSED, f"rejected at {rejected}")
        return TestResult(path, Outcome.FAILED, f"expected result {expected:#x}, but rejected at {rejected}",
                          expected=expected)
    except (OSError, ValueError) as e:
        return TestResult(path, Outcome.FAILED, f"unreadable test input: {e}")

    if expects_error and not pattern and expected_text:
        m = _UNKNOWN_OPCODE.search(expected_text)
        if m is not None and int(m.group(1), 16) in OPCODES:
            return TestResult(
                path, Outcome.SKIPPED,
                f"documented deviation: expects opcode 0x{m.group(1)} to be refused as unknown, "
                f"but RFC 9669 defines it ({OPCODES[int(m.group(1), 16)].name}); RFC 9669 wins",
            )
    try:
        r0 = engine(insns, memory, helpers) & M64
    except ExecutionError as e:
        if pattern:
            return TestResult(path, Outcome.PASSED, f"faulted at run time: {e}")
        if expects_error:
            return TestResult(path, Outcome.FAILED, f"expected rejection at load time, but it faulted at run time: {e}")
        return TestResult(path, Outcome.FAILED, f"expected result {expected:#x}, but it faulted: {e}",
                          expected=expected)
    except PybpfError as e:
        if expects_error:
            return TestResult(path, Outcome.PASSED, f"rejected by the engine: {e}")
        return TestResult(path, Outcome.FAILED, f"expected result {expected:#x}, but the engine refused it: {e}",
                          expected=expected)
    if expects_error:
        return TestResult(path, Outcome.FAILED,
                          f"expected an error ({expected_text or 'any'}), but the program ran and returned {r0:#x}",
                          actual=r0)
    assert expected is not None
    if r0 != expected:
        return TestResult(path, Outcome.FAILED, f"expected {expected:#x}, got {r0:#x}", expected=expected, actual=r0)
    return TestResult(path, Outcome.PASSED, f"r0 = {r0:#x}", expected=expected, actual=r0)


def collect(paths: Iterable[Path | str]) -> list[Path]:
    """``.data`` files named directly or found under directories (recursively), in a stable order."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(sorted(p.rglob("*.data")))
        else:
            files.append(p)
    return files


def run_paths(
    paths: Iterable[Path | str], engine: ConformanceEngine | str = "interpreter", helpers: HelperTable = HARNESS_HELPERS
) -> Iterator[TestResult]:
    """Run every test under ``paths`` (files or folders) and yield the results in order."""
    run = get_engine(engine) if isinstance(engine, str) else engine
    for path in collect(paths):
        yield run_file(path, run, helpers)


def summary_line(results: Iterable[TestResult]) -> str:
    """The closing line: ``N passed, M failed, K skipped``."""
    counts = dict.fromkeys(Outcome, 0)
    for r in results:
        counts[r.outcome] += 1
    return f"{counts[Outcome.PASSED]} passed, {counts[Outcome.FAILED]} failed, {counts[Outcome.SKIPPED]} skipped"
