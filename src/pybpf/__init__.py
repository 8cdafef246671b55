"""pybpf: the Linux eBPF subsystem rebuilt in Python.

Loader (ELF objects, BTF), a bpf(2)-shaped object model with maps and helpers, a verifier with the
kernel's semantics and words, a reference interpreter, and an x86-64 JIT. See README.md.
"""

from __future__ import annotations

__version__ = "0.1.0"
