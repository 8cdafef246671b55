"""Compile BPF C programs: clang when installed, else the ``ziglang`` wheel; pybpf's own headers.

``pybpf.toolchain.compile("prog.c", "prog.o", mcpu="v3")`` is ``pybpf cc prog.c -o prog.o``.
"""

from __future__ import annotations

from pybpf.toolchain.compiler import INCLUDE_DIR, Compiler, build_argv, compile, compile_source, find_compiler

__all__ = ["INCLUDE_DIR", "Compiler", "build_argv", "compile", "compile_source", "find_compiler"]
