"""Linux 6.12's eBPF verifier: the safety proof, its log in the kernel's words, and its rewrites.

Entry point: :func:`verify` (see :mod:`pybpf.verifier.api`). ``MapLike`` is the protocol maps
satisfy (contract 3).
"""

from __future__ import annotations

from pybpf.verifier.api import VerifiedProgram, verify
from pybpf.verifier.env import MapLike

__all__ = ["MapLike", "VerifiedProgram", "verify"]
