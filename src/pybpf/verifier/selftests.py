"""The conventions of the kernel's verifier selftests (``tools/testing/selftests/bpf/test_loader.c``).

The selftests state expectations as ``__msg`` (verifier log) and ``__xlated`` (the program after the
verifier's rewrites) patterns. The scoreboard (``bench/verifier_score.py``) and the tests hold pybpf to
them, so both need the test loader's own view of a program and its way of matching:

* :func:`xlated_text` prints a post-fixup stream as ``disasm_helpers.c`` does: ``N: text`` per
  instruction (``N`` = raw slot), the kernel's ``print_bpf_insn`` text without its ``(xx)`` opcode
  prefix, calls cut at ``#`` (``call bpf_foo``), bpf-to-bpf calls as ``call pc+N``. Helper calls in a
  kernel's xlated stream hold the address of the implementing function, not a helper id, so the
  kernel's printer names them ``unknown``; pybpf's stream keeps the id, and this printer says
  ``unknown`` the same way.
* :func:`match_patterns` is ``validate_msgs``: each pattern is searched after the previous match
  (a substring, or a regex where ``{{...}}`` encloses POSIX extended syntax); for ``__xlated`` a
  pattern not preceded by ``...`` must match on the line right after the previous match.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pybpf.isa.disasm import KernelCallbacks, kernel_insn_text
from pybpf.isa.insn import Insn, Insns, sext
from pybpf.isa.opcodes import CALL_CODE, LDDW_CODE, PseudoCall

__all__ = ["Pattern", "disasm_patterns", "match_patterns", "message_patterns", "xlated_text"]

_TAIL_CALL = 12  # do_misc_fixups turns bpf_tail_call into the internal BPF_TAIL_CALL instruction


def _call_name(insn: Insn) -> str:
    if insn.src == PseudoCall.CALL:
        return f"{sext(insn.imm, 32):+d}"  # jit_subprogs keeps the offset in .off; cb_call prints it
    return "unknown"


_CALLBACKS = KernelCallbacks(call=_call_name, calls_resolved=True)


def xlated_text(insns: Insns | Iterable[Insn]) -> str:
    """``get_xlated_program_text``: one ``N: text`` line per instruction of a post-fixup stream."""
    lines: list[str] = []
    slot = 0
    for insn in insns:
        if insn.code == CALL_CODE and insn.src == 0 and insn.imm == _TAIL_CALL:
            text = "tail_call"
        else:
            text = kernel_insn_text(insn, _CALLBACKS)
            if text.startswith("(") and text[3:5] == ") ":
                text = text[5:]
            if text.startswith("call ") and "#" in text:
                text = text[: text.rindex("#")]
        lines.append(f"{slot}: {text}\n")
        slot += 2 if insn.code == LDDW_CODE else 1
    return "".join(lines)


@dataclass(frozen=True)
class Pattern:
    """One expectation: its text, whether it must match on the line after the previous match."""

    text: str
    on_next_line: bool = False

    def regex(self) -> re.Pattern[str]:
        """Verbatim text with ``{{regex}}`` parts, as ``compile_regex`` builds it."""
        parts = re.split(r"\{\{|\}\}", self.text)
        return re.compile("".join(re.escape(p) if i % 2 == 0 else p for i, p in enumerate(parts)), re.M)


def message_patterns(msgs: Sequence[str]) -> list[Pattern]:
    """``__msg`` expectations: in order, anywhere after the previous one."""
    return [Pattern(m) for m in msgs]


def disasm_patterns(lines: Sequence[str]) -> list[Pattern]:
    """``__xlated`` / ``__jited`` expectations (``push_disasm_msg``): ``...`` is not a pattern but
    lets the next one match further down; every other pattern must follow on the next line."""
    out: list[Pattern] = []
    next_line = True
    for line in lines:
        if line == "...":
            next_line = False
            continue
        out.append(Pattern(line, next_line))
        next_line = True
    return out


def match_patterns(text: str, patterns: Sequence[Pattern]) -> bool:
    """``validate_msgs``: whether every pattern matches, in order, each after the previous match."""
    pos = 0
    prev_line = -1
    for p in patterns:
        m = p.regex().search(text, pos)
        if m is None:
            return False
        line = text.count("\n", 0, m.start())
        if p.on_next_line and prev_line >= 0 and prev_line + 1 != line:
            return False
        pos = m.end()
        prev_line = line
    return True
