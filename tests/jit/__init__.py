"""Tests of the x86-64 JIT (pybpf.jit)."""
