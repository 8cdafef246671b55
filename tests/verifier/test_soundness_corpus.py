"""Soundness over the Linux 6.12 verifier selftests: every corpus program of the supported types
that pybpf's verifier accepts runs in the reference interpreter, through the kernel layer's load
path, on random inputs — XDP and skb packets of 0, 1, 13, 14, 15, 34, 54, 64, 100 and 1500 bytes
with random context fields (and XDP metadata), random plain contexts for kprobe, tracepoint and
raw_tracepoint, array maps filled with random values in half of the runs — without a memory fault.
A fault is a verifier bug: it accepted a program that touches memory it may not.

The three objects whose programs loop for a long time (iterating callbacks, search pruning,
loops1: most of the scoreboard's minutes) are left to ``make score`` (``--soundness``), which runs
the same check over the whole corpus and reports its coverage in bench/results/verifier_score.txt.
"""

from __future__ import annotations

import pytest

from .corpus import corpus_dir, manifest, scorer

HEAVY = ("verifier_iterating_callbacks.o", "verifier_search_pruning.o", "verifier_loops1.o")


@pytest.mark.slow
def test_accepted_corpus_programs_do_not_fault() -> None:
    programs = manifest()["programs"]
    score = scorer()
    types = score.MAIN_TYPES + score.OTHER_TYPES
    specs = [s for s in programs if not s["auxiliary"] and s["privileged"] and s["prog_type"] in types
             and s.get("arch") in (None, "X86_64") and s["object"] not in HEAVY]
    faults: list[str] = []
    ran = runs = accepted = 0
    for spec in specs:
        r = score.run_one(str(corpus_dir()), spec | {"retval": None, "msgs": []}, soundness=True)
        assert not r.error.startswith("CRASH"), r.error
        if not r.accepted:
            continue
        accepted += 1
        ran += bool(r.sound_runs)
        runs += r.sound_runs
        faults += [f"{r.object}:{r.function}: {f}" for f in r.sound_faults]
    print(f"soundness: {ran} of {accepted} accepted programs ran, {runs} runs, {len(faults)} faults")
    assert not faults, faults[:10]
    # the check is only worth something if it covers the corpus: most accepted programs run (the
    # rest need helpers or map types the kernel layer lacks), each on 20 inputs
    assert accepted >= 500, accepted
    assert ran >= 0.9 * accepted, (ran, accepted)
    assert runs >= 15 * ran, (runs, ran)
