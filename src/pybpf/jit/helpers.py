"""What a helper id points at, for the JIT: a Python function, a native address, or native code.

A JIT'ed program calls helper ``N`` with a plain native ``call``; what sits at the other end is
decided per id by a :data:`HelperTable` (``{id: HelperEntry}``) given to both
:func:`pybpf.jit.compile.compile_program` (which needs each entry's *kind*: it emits different code
for each) and :class:`pybpf.jit.runtime.JitProgram` (which binds the addresses):

* :class:`PythonHelper` — a Python callable ``fn(r1, r2, r3, r4, r5) -> r0`` over raw 64-bit values
  (pointers are real addresses), or ``fn(ctx, r1, ..., r5)`` with the vm's helper context. The
  runtime wraps it in a ctypes callback (about a microsecond per call) and patches the callback's
  address into the image's helper slot. An exception in the callable stops the program; the runtime
  re-raises it after the native code has unwound (an exception listed in the program's
  ``exit_exceptions`` instead stops it with r0 = the exception's ``value``).
* :class:`NativeHelper` — the address of a System V function (from a shared library, another image,
  ...). No per-call cost beyond the ``call``.
* :class:`NativeStub` — machine code the JIT emits into the image itself, out of line, called
  with ``call rel32``; its ``emit`` callback writes it into the code buffer (the packet-path helpers
  of stage 2: map lookups, ktime, ...). Its calling convention is System V.
* :class:`TailCall` — ``bpf_tail_call``: not a call at all, the JIT emits the jump into the next
  program inline, reading the program array through the native layout given here.

``unwind_on_zero`` marks uBPF's "unwind" helper (conformance suites): when it returns 0 the whole
program stops at once with r0 = 0.

The legacy packet loads ``LD_ABS``/``LD_IND`` also call out, to a *packet loader* given as a
:class:`HelperEntry` (``compile_program(..., packet_loader=...)``): a function
``u64 load(u64 ctx, s64 offset, u64 size)`` returning the big-endian value (size 1, 2 or 4), or any
value >= 2**32 when ``[offset, offset+size)`` is outside the packet, in which case the program
returns 0 (what the kernel's ``bpf_gen_ld_abs`` code does).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from pybpf.jit.x86.codebuf import CodeBuffer

__all__ = [
    "MAX_TAIL_CALL_CNT",
    "HelperEntry",
    "HelperImpl",
    "HelperTable",
    "MapResolver",
    "NativeHelper",
    "NativeStub",
    "PythonHelper",
    "TailCall",
]

MAX_TAIL_CALL_CNT = 33
"""Linux's limit on chained tail calls (include/linux/bpf.h)."""

@dataclass(frozen=True, slots=True)
class PythonHelper:
    """A helper written in Python, called through a ctypes callback.

    ``fn(r1, r2, r3, r4, r5) -> r0``; with ``context=True`` it is ``fn(ctx, r1, ..., r5)`` as in the
    vm's helper interface (:mod:`pybpf.vm.helpers`), ``ctx`` being a
    :class:`pybpf.jit.runtime.NativeHelperContext` (``env``, ``pc``, ``read``/``write``/``load``/
    ``store``/``cstring`` over native memory), so one helper implementation serves both engines.
    """

    fn: Callable[..., int]
    context: bool = False


@dataclass(frozen=True, slots=True)
class NativeHelper:
    """A native System V function at ``address``; ``keepalive`` holds whatever owns that code."""

    address: int
    keepalive: object = None


@dataclass(frozen=True, slots=True)
class NativeStub:
    """Native code emitted into the image. ``emit(buf)`` writes a System V function body (ending in
    ``ret``) at the current position of ``buf``; it may use only caller-saved registers."""

    emit: Callable[[CodeBuffer], None]


@dataclass(frozen=True, slots=True)
class TailCall:
    """``bpf_tail_call(ctx, prog_array, index)`` done natively.

    The program array's native memory (what R2 points at) holds a u32 ``max_entries`` at
    ``max_entries_off`` and, from ``ptrs_off``, ``max_entries`` u64 slots, each 0 or the
    tail-call entry address of a JIT'ed program (:attr:`pybpf.jit.runtime.JitProgram.tail_call_address`).
    The layout is the map owner's; the JIT only reads it.
    """

    max_entries_off: int
    ptrs_off: int


HelperImpl = PythonHelper | NativeHelper | NativeStub | TailCall


@dataclass(frozen=True, slots=True)
class HelperEntry:
    """One helper id's implementation and how the JIT must treat its result."""

    name: str
    impl: HelperImpl
    unwind_on_zero: bool = False


HelperTable = Mapping[int, HelperEntry]


class MapResolver(Protocol):
    """Turns the map ids of the post-load instruction stream into native addresses (contract 1)."""

    def map_address(self, map_id: int) -> int:
        """Address of the map's native memory (what ``r1 = map[id:N]`` loads)."""
        ...

    def map_value_address(self, map_id: int, offset: int) -> int:
        """Address of byte ``offset`` of the map's value area (``map[id:N][0]+off``)."""
        ...
