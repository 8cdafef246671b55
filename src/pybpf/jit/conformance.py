"""The JIT as an engine of the ISA conformance runner (:mod:`pybpf.vm.conformance`).

The runner calls ``engine(insns, memory, helpers) -> r0`` with the suites' harness helpers written
against the vm's helper interface (``fn(ctx, r1, ..., r5)``, an ``unwind_id`` on the table). The
programs are unverified, so they are compiled in checked mode: every load and store is checked
against the stack frames and the input memory (the suites' runtime-fault tests then fault here as
in the interpreter), loops are bounded by a back-edge budget and calls by the frame limit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pybpf.isa.insn import Insns
from pybpf.jit.compile import compile_program
from pybpf.jit.program import helper_table_from_vm
from pybpf.jit.runtime import JitProgram, NativeBuffer

__all__ = ["RUN_BUDGET", "conformance_engine"]

RUN_BUDGET = 10_000_000
"""Back-edges a conformance program may take before it counts as a runaway (the interpreter's runner
allows 10M instructions)."""


def conformance_engine(insns: Insns, memory: bytearray, helpers: Mapping[int, Callable[..., Any]]) -> int:
    """Compile ``insns`` (checked mode), run once with r1 = a native copy of ``memory`` (0 if empty)
    and r2 = its length, copy the memory back, return r0. Raises a PybpfError on refusal or fault."""
    table = helper_table_from_vm(helpers)
    image = compile_program(insns, helpers=table, allow_unverified=True)
    buf = NativeBuffer(bytes(memory)) if memory else None
    with JitProgram(image, helpers=table, loop_budget=RUN_BUDGET) as prog:
        if buf is None:
            return prog.run(0, 0)
        try:
            return prog.run(buf.address, len(memory), regions=[(buf.address, len(memory), True)])
        finally:
            memory[:] = buf.read()
