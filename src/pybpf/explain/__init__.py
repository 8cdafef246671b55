"""``pybpf explain``: one program through every stage — object, source, loader, verifier, rewrites,
JIT, and one run — as data (:mod:`.model`) and as text (:mod:`.text`)."""

from __future__ import annotations

from pybpf.explain.model import Explanation, Stage, default_packet, explain
from pybpf.explain.text import render

__all__ = ["Explanation", "Stage", "default_packet", "explain", "render"]
