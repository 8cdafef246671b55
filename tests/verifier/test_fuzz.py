"""The verifier never crashes: random and mutated programs end in a verdict or a VerifierError."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pybpf.errors import VerifierError
from pybpf.isa import OPCODES, Insn
from pybpf.isa.asm import assemble
from pybpf.uapi import MapType, ProgType
from pybpf.verifier import verify
from pybpf.verifier.specmaps import SpecMap

from .cases import CASES

CODES = sorted(OPCODES)
MAPS = {5: SpecMap(5, "arr", MapType.ARRAY, 4, 8, 4), 6: SpecMap(6, "hash", MapType.HASH, 8, 16, 16)}
TYPES = (ProgType.SOCKET_FILTER, ProgType.XDP, ProgType.SCHED_CLS, ProgType.CGROUP_SKB, ProgType.KPROBE,
         ProgType.TRACEPOINT, ProgType.RAW_TRACEPOINT)


def _random_insn(rng: random.Random) -> Insn:
    code = rng.choice(CODES) if rng.random() < 0.95 else rng.randrange(256)
    dst = rng.choice((0, 1, 2, 3, 4, 5, 6, 10, rng.randrange(16)))
    src = rng.choice((0, 1, 2, 10, rng.randrange(16)))
    off = rng.choice((0, 1, -1, 2, -8, -4, 8, 16, rng.randrange(-0x8000, 0x8000)))
    if code == 0x18:
        src = rng.choice((0, 0, 1, 2, 4, 5, rng.randrange(16)))
        imm = rng.choice((5, 6, 0, rng.randrange(-(1 << 63), 1 << 63)))
    elif code == 0x85:
        src = rng.choice((0, 0, 1, 2))
        imm = rng.choice((1, 2, 3, 7, 12, 25, 131, 132, 181, rng.randrange(-5, 300)))
    else:
        imm = rng.choice((0, 1, -1, 4, 8, 32, 64, rng.randrange(-(1 << 31), 1 << 31)))
    return Insn(code, dst & 0xF, src & 0xF, off, imm)


def _check(insns: list[Insn], prog_type: int, level: int, unpriv: bool) -> None:
    try:
        verify(insns, prog_type=prog_type, maps=MAPS, log_level=level, unprivileged=unpriv)
    except VerifierError as e:
        assert isinstance(e.errno, int) and e.errno > 0
        assert e.message


@given(st.integers(0, 2**32 - 1), st.integers(1, 24), st.sampled_from(TYPES), st.sampled_from([0, 1, 2]))
@settings(max_examples=150, deadline=None)
def test_random_programs_never_crash(seed: int, n: int, prog_type: int, level: int) -> None:
    rng = random.Random(seed)
    insns = [_random_insn(rng) for _ in range(n)]
    if rng.random() < 0.7:
        insns.append(Insn(0xB7, 0, 0, 0, 0))
        insns.append(Insn(0x95))
    _check(insns, prog_type, level, unpriv=prog_type == ProgType.SOCKET_FILTER and rng.random() < 0.3)


@given(st.integers(0, 2**32 - 1), st.sampled_from(range(len(CASES))))
@settings(max_examples=150, deadline=None)
def test_mutated_programs_never_crash(seed: int, which: int) -> None:
    rng = random.Random(seed)
    case = CASES[which]
    insns = list(assemble(case.text))
    for _ in range(rng.randint(1, 3)):
        kind = rng.random()
        pos = rng.randrange(len(insns))
        if kind < 0.4:
            old = insns[pos]
            field = rng.choice(("dst", "src", "off", "imm", "code"))
            if field == "code":
                insns[pos] = old.replace(code=rng.choice(CODES))
            elif field in ("dst", "src"):
                insns[pos] = old.replace(**{field: rng.randrange(16)})
            elif field == "off":
                insns[pos] = old.replace(off=rng.randrange(-600, 600))
            else:
                insns[pos] = old.replace(imm=rng.randrange(-(1 << 31), 1 << 31) if old.code != 0x18 else
                                         rng.randrange(-(1 << 63), 1 << 63))
        elif kind < 0.7:
            insns.insert(pos, _random_insn(rng))
        elif len(insns) > 1:
            del insns[pos]
    _check(insns, case.prog_type, rng.choice((0, 1, 2)), case.unprivileged)


@pytest.mark.parametrize("data", [b"", b"\x18\x01\x00\x00\x00\x00\x00\x00", b"\x95" + b"\0" * 6, bytes(range(64))])
def test_raw_bytes_never_crash(data: bytes) -> None:
    try:
        verify(data)
    except VerifierError as e:
        assert e.errno
