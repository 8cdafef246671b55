"""The x86-64 JIT: eBPF instructions to native machine code, run from Python.

* :func:`compile_program` (``pybpf.jit.compile``): ``Insns`` → an inert :class:`JitImage` (bytes and
  the tables that explain them); the encoder (``pybpf.jit.x86.encoder``) and the System V / eBPF
  register map (``pybpf.jit.x86.abi``) underneath;
* :class:`JitProgram` (``pybpf.jit.runtime``): the image in W^X executable memory, bound to its
  helpers (:class:`HelperEntry`: Python callables, native functions, native code emitted into the
  image, native tail calls) and maps, called through ctypes;
* ``pybpf.jit.dump``: ``prog dump jited`` text and JSON (imported lazily: it needs capstone);
* :func:`prepare` (``pybpf.jit.program``): a loaded program (``.insns`` + ``.used_maps``) and the
  kernel layer's vm-style helpers → a :class:`JitProgram` (``.run(r1, env=...)``);
* :func:`conformance_engine`: the adapter the ISA conformance runner uses for ``--engine jit``;
* ``pybpf.jit.engine.JitEngine``: the load path — what ``engine="jit"`` test runs (``pybpf prog run
  ... --engine jit``) and hooks run: the native helper library (``pybpf.jit.native``) bound, native
  tail calls, packets and contexts in native memory, every batch of runs one call of the batch
  runner (``pybpf.jit.batch``).
"""

from __future__ import annotations

from typing import Any

from pybpf.jit.compile import JitImage, RunStatus, compile_program
from pybpf.jit.conformance import conformance_engine
from pybpf.jit.helpers import (
    MAX_TAIL_CALL_CNT,
    HelperEntry,
    HelperTable,
    MapResolver,
    NativeHelper,
    NativeStub,
    PythonHelper,
    TailCall,
)
from pybpf.jit.program import UsedMaps, helper_table_from_vm, prepare
from pybpf.jit.runtime import JitProgram, NativeBuffer, NativeHelperContext

__all__ = [
    "MAX_TAIL_CALL_CNT",
    "HelperEntry",
    "HelperTable",
    "JitImage",
    "JitProgram",
    "MapResolver",
    "NativeBuffer",
    "NativeHelper",
    "NativeHelperContext",
    "NativeStub",
    "PythonHelper",
    "RunStatus",
    "TailCall",
    "UsedMaps",
    "compile_program",
    "conformance_engine",
    "dump_jited",
    "dump_jited_json",
    "helper_table_from_vm",
    "prepare",
]


def __getattr__(name: str) -> Any:
    if name in ("dump_jited", "dump_jited_json"):
        from pybpf.jit import dump

        return getattr(dump, name)
    raise AttributeError(f"module 'pybpf.jit' has no attribute {name!r}")
