"""A loaded program (instructions + the maps it uses) and vm-style helpers → a runnable JitProgram.

The kernel layer keeps one implementation of each helper, written against the vm's interface
(``fn(ctx, r1, ..., r5)``, :mod:`pybpf.vm.helpers`); :func:`prepare` wraps those as ctypes callbacks
with a native :class:`~pybpf.jit.runtime.NativeHelperContext` and lets native implementations
(``native_helpers``: :class:`~pybpf.jit.helpers.NativeHelper`, :class:`~pybpf.jit.helpers.NativeStub`,
:class:`~pybpf.jit.helpers.TailCall`) replace them id by id. Map ids of the post-load stream
(contract 1) resolve through the program's ``used_maps``: a map object's ``address`` is its native
storage, and ``direct_value_addr(off)`` the storage offset of byte ``off`` of its value.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pybpf.errors import JitError
from pybpf.isa.insn import Insns
from pybpf.jit.compile import DEFAULT_LOOP_BUDGET, compile_program
from pybpf.jit.helpers import HelperEntry, PythonHelper
from pybpf.jit.runtime import JitProgram

__all__ = ["UsedMaps", "helper_table_from_vm", "prepare"]


def helper_table_from_vm(helpers: Mapping[int, Callable[..., Any]]) -> dict[int, HelperEntry]:
    """The JIT's table for helpers written against the vm's interface (``fn(ctx, r1, ..., r5)``);
    the table's ``unwind_id`` (if any) becomes ``unwind_on_zero``."""
    unwind = getattr(helpers, "unwind_id", None)
    return {
        hid: HelperEntry(getattr(fn, "__name__", f"helper_{hid}").lstrip("_"), PythonHelper(fn, context=True),
                         unwind_on_zero=hid == unwind)
        for hid, fn in helpers.items()
    }


class UsedMaps:
    """:class:`~pybpf.jit.helpers.MapResolver` over a program's ``used_maps`` (id → map object)."""

    def __init__(self, used_maps: Mapping[int, Any]) -> None:
        self._maps = dict(used_maps)

    def _map(self, map_id: int) -> Any:
        m = self._maps.get(map_id)
        if m is None:
            raise JitError(f"lddw: no map with id {map_id} in the program's used maps")
        if getattr(m, "address", None) is None:
            raise JitError(f"map id {map_id} has no native storage the JIT can address")
        return m

    def map_address(self, map_id: int) -> int:
        return int(self._map(map_id).address)

    def map_value_address(self, map_id: int, offset: int) -> int:
        m = self._map(map_id)
        return int(m.address) + int(m.direct_value_addr(offset))


def prepare(
    program: Insns | Any,
    *,
    helpers: Mapping[int, Callable[..., Any]] | None = None,
    native_helpers: Mapping[int, HelperEntry] | None = None,
    maps: Mapping[int, Any] | None = None,
    packet_loader: HelperEntry | None = None,
    verified: bool = True,
    allow_unverified: bool = False,
    exit_exceptions: tuple[type[BaseException], ...] = (),
    loop_budget: int = DEFAULT_LOOP_BUDGET,
) -> JitProgram:
    """Compile and load ``program`` (an :class:`~pybpf.isa.Insns`, or anything with ``.insns`` and
    ``.used_maps``, such as a kernel-layer Program). ``verified=True`` is the caller's statement that
    the verifier accepted these instructions. ``exit_exceptions``: the vm's ``ProgramExit`` (helpers
    raise it to stop the program). Returns the :class:`JitProgram`; ``.run(r1, env=...)`` runs it."""
    insns = program if isinstance(program, Insns) else program.insns
    used = maps if maps is not None else getattr(program, "used_maps", None) or {}
    table = helper_table_from_vm(helpers or {})
    table.update(native_helpers or {})
    image = compile_program(insns, helpers=table, packet_loader=packet_loader, verified=verified,
                            allow_unverified=allow_unverified)
    return JitProgram(image, helpers=table, packet_loader=packet_loader, maps=UsedMaps(used),
                      exit_exceptions=exit_exceptions, loop_budget=loop_budget)
