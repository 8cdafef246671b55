"""Plain-text rendering of an :class:`~pybpf.explain.model.Explanation`: a heading per stage, its
facts, then its listing (optionally cut to a number of lines, since a verifier log or a jited dump
of a real program runs to thousands)."""

from __future__ import annotations

from pybpf.explain.model import Explanation

__all__ = ["render"]


def render(ex: Explanation, *, max_lines: int | None = None, stages: tuple[str, ...] = ()) -> str:
    """The explanation as text; ``stages`` keeps only those stage names, ``max_lines`` cuts each
    stage's listing (saying how much was left out)."""
    out = [f"pybpf explain: program {ex.program} of {ex.object}"]
    shown = [s for s in ex.stages if not stages or s.name in stages]
    for number, st in enumerate(ex.stages, 1):
        if st not in shown:
            continue
        out.append("")
        out.append(f"== {number}. {st.name}: {st.title}")
        out.extend(f"   {line}" for line in st.summary)
        body = st.body
        if max_lines is not None and len(body) > max_lines:
            body = [*body[:max_lines], f"... ({len(st.body) - max_lines} more line(s); --lines 0 shows all)"]
        if body:
            out.append("")
            out.extend(f"   {line}" if line else "" for line in body)
    verdict = {True: "accepted, compiled and run", False: "rejected by the verifier", None: "not loaded"}[ex.accepted]
    out += ["", f"== result: {verdict}"]
    return "\n".join(out) + "\n"
