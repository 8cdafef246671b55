"""Native helpers: the packet-path helpers as x86-64 machine code emitted from Python.

Programs compiled by the JIT call these with a plain native ``call`` — no crossing into Python per
call. They operate on exactly the kernel layer's map storage (:mod:`pybpf.jit.native.layout`
restates it; a test checks it against the kernel layer) and keep per-run data in an env block after
the run state (r12). :func:`library` is the executable image, :func:`native_helper_table` the
helper ids one program may bind natively.
"""

from __future__ import annotations

from pybpf.jit.native.layout import ENV, ENV_SIZE, NO_OFFSET, EnvField, RiWritten
from pybpf.jit.native.library import INTERNAL_NATIVE, NativeLibrary, build_library, library, native_helper_table

__all__ = [
    "ENV",
    "ENV_SIZE",
    "INTERNAL_NATIVE",
    "NO_OFFSET",
    "EnvField",
    "NativeLibrary",
    "RiWritten",
    "build_library",
    "library",
    "native_helper_table",
]
