"""Where the Linux 6.12 verifier-selftest corpus is, for the tests of every layer: the same rule as
``bench/verifier_score.py`` (``make score``): $PYBPF_VST, else ~/.cache/pybpf/vst (where
``.ci/run`` and ``make score`` build it), else the development copy /work/vst when it exists."""

from __future__ import annotations

import os
from pathlib import Path

DEV_CORPUS = Path("/work/vst")


def vst_corpus_dir() -> Path:
    env = os.environ.get("PYBPF_VST")
    if env:
        return Path(env)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pybpf" / "vst"
    if (cache / "manifest.json").exists() or not (DEV_CORPUS / "manifest.json").exists():
        return cache
    return DEV_CORPUS
