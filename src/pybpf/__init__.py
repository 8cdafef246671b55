"""pybpf: the Linux eBPF subsystem rebuilt in Python.

Loader (ELF objects, BTF), a bpf(2)-shaped object model with maps and helpers, a verifier with the
kernel's semantics and words, a reference interpreter, and an x86-64 JIT. See README.md.
"""

from __future__ import annotations

__version__ = "0.1.0"

# The public API, imported on first use (PEP 562) so that importing a low layer such as
# ``pybpf.isa`` does not pull in the whole stack.
_LAZY = {
    "load": "pybpf.loader",
    "Collection": "pybpf.loader",
    "LoadOptions": "pybpf.loader",
    "Map": "pybpf.loader",
    "Program": "pybpf.loader",
    "RunResult": "pybpf.loader",
    "Kernel": "pybpf.kernel.objects",
    "default_kernel": "pybpf.kernel.objects",
    "bpf": "pybpf.kernel.syscall",
    "BpfAttr": "pybpf.kernel.attr",
    "define_program_type": "pybpf.kernel.custom",
    "Helper": "pybpf.kernel.custom",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pybpf' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
