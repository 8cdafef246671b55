"""The helper-call interface: how BPF code reaches Python functions, and how those functions reach back.

A **helper** is a plain Python callable::

    def helper(ctx: HelperContext, r1: int, r2: int, r3: int, r4: int, r5: int) -> int

``r1``..``r5`` are the argument registers as unsigned 64-bit ints; the return value becomes r0 (it is
masked to 64 bits, so ``-errno`` is fine; ``None`` counts as 0). ``ctx`` is the running execution
(:class:`pybpf.vm.execution.Execution` in the interpreter tiers; the JIT supplies an object with the
same methods over native memory). It offers:

* ``ctx.env`` — the opaque object whoever started the run passed in (the kernel layer puts the
  program, its maps, the packet / xdp_buff state, the CPU number there);
* ``ctx.pc`` — the raw slot of the call instruction (for messages);
* ``ctx.read(addr, n)`` / ``ctx.write(addr, data)`` — bytes at a program address;
* ``ctx.load(addr, size, signed=False)`` / ``ctx.store(addr, size, value)`` — little-endian ints;
* ``ctx.cstring(addr, max_len)`` — a NUL-terminated string;

each raising :class:`~pybpf.errors.MemoryFault` (with the call's pc) on a bad pointer, exactly as a
load/store instruction would. Interpreter-tier extras: ``ctx.space`` (the
:class:`~pybpf.vm.memory.AddressSpace`: regions, ``map_at(ptr)`` to turn a map pointer into the map
object, ``add``/``remove``/``resize`` for ring-buffer records and packet moves), ``ctx.view(addr, n,
write=True)`` (zero-copy), and ``ctx.call(func_ptr, r1, ...)`` to run a BPF callback (bpf_loop,
for_each_map_elem).

Control flow from a helper:

* ``raise TailCall(program)`` — ``bpf_tail_call`` succeeded: the current function is replaced by
  ``program`` (anything with ``.insns`` and ``.used_maps``), same context registers, same stack
  frame; the vm enforces Linux's limit of 33 (MAX_TAIL_CALL_CNT) and, past it, continues after the
  call with r0 unchanged, as the kernel does;
* ``raise ProgramExit(value)`` — stop the whole program now with r0 = value;
* raise :class:`~pybpf.errors.HelperError` (or any :class:`~pybpf.errors.PybpfError`) for a bad call.

A :class:`HelperTable` maps ids to helpers: kernel helper ids (``pybpf.uapi.HelperId``), the
verifier's internal-function ids (>= 0x10000, contract 2) and whatever an embedding application
registers. One id may be marked as uBPF's *unwind* helper: when it returns 0 the program stops with
r0 = 0 (used by the conformance suites).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "Helper",
    "HelperContext",
    "HelperTable",
    "ProgramExit",
    "TailCall",
]


@runtime_checkable
class HelperContext(Protocol):
    """What a helper may use while it runs (see the module docstring)."""

    env: Any
    pc: int

    def read(self, address: int, size: int) -> bytes: ...

    def write(self, address: int, data: bytes | bytearray | memoryview) -> None: ...

    def load(self, address: int, size: int, *, signed: bool = False) -> int: ...

    def store(self, address: int, size: int, value: int) -> None: ...

    def cstring(self, address: int, max_len: int = 4096) -> bytes: ...


Helper = Callable[..., Any]
"""``(ctx, r1, r2, r3, r4, r5) -> int`` — see the module docstring."""


class TailCall(Exception):  # a control-flow signal, not an error
    """Raised by a helper (``bpf_tail_call``) to continue in ``program`` with the same context.

    ``program`` needs ``.insns`` (the post-load :class:`~pybpf.isa.Insns`) and ``.used_maps``
    (map id -> map); engines prepare and cache it on first use.
    """

    def __init__(self, program: Any) -> None:
        super().__init__(program)
        self.program = program


class ProgramExit(Exception):  # a control-flow signal, not an error
    """Raised by a helper to stop the program immediately with r0 = ``value``."""

    def __init__(self, value: int = 0) -> None:
        super().__init__(value)
        self.value = value


class HelperTable(Mapping[int, Helper]):
    """Helper id -> callable, plus the optional unwind helper id. Immutable once given to an engine
    (engines bake the functions into prepared code); build a new table to change it."""

    __slots__ = ("_helpers", "unwind_id")

    def __init__(self, helpers: Mapping[int, Helper] | None = None, *, unwind_id: int | None = None) -> None:
        self._helpers: dict[int, Helper] = dict(helpers or {})
        self.unwind_id = unwind_id
        if unwind_id is not None and unwind_id not in self._helpers:
            raise ValueError(f"unwind helper {unwind_id} is not in the table")

    @classmethod
    def of(cls, helpers: HelperTable | Mapping[int, Helper] | None) -> HelperTable:
        """``helpers`` as a table (a table is returned as is)."""
        return helpers if isinstance(helpers, HelperTable) else cls(helpers)

    def with_helpers(self, helpers: Mapping[int, Helper], *, unwind_id: int | None = None) -> HelperTable:
        """A new table with ``helpers`` added (replacing same ids); an embedding application's way to
        extend the kernel's table."""
        merged = dict(self._helpers)
        merged.update(helpers)
        return HelperTable(merged, unwind_id=self.unwind_id if unwind_id is None else unwind_id)

    def __getitem__(self, helper_id: int) -> Helper:
        return self._helpers[helper_id]

    def __iter__(self) -> Iterator[int]:
        return iter(self._helpers)

    def __len__(self) -> int:
        return len(self._helpers)

    def __repr__(self) -> str:
        unwind = f", unwind_id={self.unwind_id}" if self.unwind_id is not None else ""
        return f"HelperTable({sorted(self._helpers)}{unwind})"
