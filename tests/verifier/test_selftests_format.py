"""test_loader's view of a program (``N: text``) and its matching of ``__msg`` / ``__xlated`` patterns."""

from __future__ import annotations

from pybpf.isa.asm import assemble
from pybpf.isa.insn import Insn
from pybpf.verifier.selftests import Pattern, disasm_patterns, match_patterns, message_patterns, xlated_text


def test_xlated_text_numbers_slots_and_drops_opcodes_and_call_suffixes() -> None:
    insns = assemble("r2 = 0x8000000000000000\ncall bpf_get_prandom_u32#7\ncall f\nexit\nf:\nr0 = 0\nexit")
    assert xlated_text(insns).splitlines() == [
        "0: r2 = 0x8000000000000000",  # lddw: two slots
        "2: call unknown",  # a kernel's xlated helper call holds an address, not a helper id
        "3: call pc+1",
        "4: exit",
        "5: r0 = 0",
        "6: exit",
    ]
    assert xlated_text([Insn(0x85, 0, 0, 0, 12)]) == "0: tail_call\n"


def test_dots_release_the_next_line_rule() -> None:
    text = "0: r1 = 1\n1: r2 = 2\n2: r3 = 3\n"
    assert match_patterns(text, disasm_patterns(["0: r1 = 1", "1: r2 = 2"]))
    assert not match_patterns(text, disasm_patterns(["0: r1 = 1", "2: r3 = 3"]))
    assert match_patterns(text, disasm_patterns(["0: r1 = 1", "...", "2: r3 = 3"]))
    assert disasm_patterns(["a", "...", "b", "c"]) == [Pattern("a", True), Pattern("b", False), Pattern("c", True)]


def test_patterns_match_in_order_as_substrings_or_regex() -> None:
    log = "stack depth 8+0\nprocessed 5 insns\n"
    assert match_patterns(log, message_patterns(["stack depth 8", "processed"]))
    assert not match_patterns(log, message_patterns(["processed", "stack depth"]))
    assert match_patterns(log, message_patterns(["processed {{[0-9]+}} insns"]))
    assert not match_patterns(log, message_patterns(["processed {{[a-z]+}} insns"]))
    assert match_patterns("r0 = &(void __percpu *)(r0)", message_patterns(["&(void __percpu *)(r0)"]))
