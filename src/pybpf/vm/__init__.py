"""Executing eBPF without a JIT: the address space, the reference interpreter, the translate-to-Python
tier, and the ISA conformance runner.

    from pybpf.vm import Interpreter, TranslatedProgram, AddressSpace, HelperTable
    space = AddressSpace()
    mem = space.add(bytearray(64), name="input")
    r0 = Interpreter(insns, space=space, helpers=HelperTable({...})).run(mem.address(), 64)

See docs/architecture.md, section "vm: address space and helper calls", for the contracts.
"""

from __future__ import annotations

from pybpf.vm.engine import Engine
from pybpf.vm.execution import (
    BPF_MAX_LOOPS,
    DEFAULT_BUDGET,
    MAX_CALL_FRAMES,
    MAX_RUNTIME_FRAMES,
    MAX_TAIL_CALL_CNT,
    STACK_SIZE,
    Execution,
    SkbView,
)
from pybpf.vm.helpers import Helper, HelperContext, HelperTable, ProgramExit, TailCall
from pybpf.vm.interp import Interpreter
from pybpf.vm.memory import AddressSpace, Region, RegionKind
from pybpf.vm.program import MapMemory, ProgramLike
from pybpf.vm.translate import TranslatedProgram

__all__ = [
    "BPF_MAX_LOOPS",
    "DEFAULT_BUDGET",
    "MAX_CALL_FRAMES",
    "MAX_RUNTIME_FRAMES",
    "MAX_TAIL_CALL_CNT",
    "STACK_SIZE",
    "AddressSpace",
    "Engine",
    "Execution",
    "Helper",
    "HelperContext",
    "HelperTable",
    "Interpreter",
    "MapMemory",
    "ProgramExit",
    "ProgramLike",
    "Region",
    "RegionKind",
    "SkbView",
    "TailCall",
    "TranslatedProgram",
]
