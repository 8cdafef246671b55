"""Soundness: every program the verifier accepts runs in the reference interpreter without a
memory fault, on random inputs. A fault here is a verifier bug (it accepted an unsafe program).

Programs come from a generator of XDP / socket-filter code that mixes what the verifier reasons
about: packet pointers and ``data_end`` checks (some deliberately off by one), variable offsets
from masked scalars, stack spills and fills, context loads, narrowing, branches.
"""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from pybpf.errors import ExecutionError, InstructionLimitExceeded, VerifierError
from pybpf.isa.asm import assemble
from pybpf.progtypes import SKB_RUNTIME, XDP_RUNTIME
from pybpf.uapi import ProgType
from pybpf.verifier import verify
from pybpf.vm import AddressSpace, HelperTable, Interpreter

SCRATCH = ("r2", "r3", "r4", "r5", "r8")


def gen_xdp(rng: random.Random) -> str:
    lines = ["r9 = r1", "r6 = *(u32 *)(r9 +0)", "r7 = *(u32 *)(r9 +4)", "r2 = 0", "r3 = 0", "r4 = 0", "r5 = 0"]
    checked = 0  # bytes proven in bounds from r6
    for _ in range(rng.randint(2, 10)):
        k = rng.random()
        if k < 0.25:
            n = rng.choice((1, 2, 4, 8, 14, 20, 34, 40))
            lines += ["r8 = r6", f"r8 += {n}", "if r8 > r7 goto out"]
            checked = max(checked, n)
        elif k < 0.5:
            size = rng.choice((1, 2, 4, 8))
            off = rng.randint(0, checked + 2) if checked else rng.randint(0, 4)
            reg = rng.choice(SCRATCH[:4])
            lines.append(f"{reg} = *(u{size * 8} *)(r6 +{off})")
        elif k < 0.65:
            reg = rng.choice(SCRATCH[:4])
            mask = rng.choice((0x3, 0x7, 0xF, 0xFF))
            extra = rng.choice((0, 1, 4, 8))
            lines += [f"{reg} &= {mask}", "r8 = r6", f"r8 += {reg}", "r0 = r8", f"r0 += {extra + 1}",
                      "if r0 > r7 goto out", f"r0 = *(u8 *)(r8 +{rng.randint(0, extra + 1)})"]
        elif k < 0.8:
            slot = rng.choice((8, 16, 24, 32, 12))
            reg = rng.choice(SCRATCH[:4])
            lines += [f"*(u64 *)(r10 -{slot}) = {reg}", f"{rng.choice(SCRATCH[:4])} = *(u64 *)(r10 -{slot})"]
        elif k < 0.9:
            reg = rng.choice(SCRATCH[:4])
            op = rng.choice(("+=", "-=", "&=", "|=", "^=", "*=", ">>=", "<<="))
            imm = rng.randint(0, 63) if op in (">>=", "<<=") else rng.randint(-100, 100)
            lines.append(f"{reg} {op} {imm}")
        else:
            reg = rng.choice(SCRATCH[:4])
            lines += [f"if {reg} > {rng.randint(0, 300)} goto out", f"{reg} = *(u32 *)(r9 +16)"]
    lines += ["out:", "r0 = 2", "exit"]
    return "\n".join(lines)


def gen_skb(rng: random.Random) -> str:
    lines = ["r6 = r1", "r2 = 0", "r3 = 0", "r4 = 0"]
    for _ in range(rng.randint(2, 8)):
        k = rng.random()
        reg = rng.choice(("r2", "r3", "r4"))
        if k < 0.3:
            off = rng.choice((0, 4, 8, 16, 48, 52, 56, 64, 68, 1, 2, 3))
            size = rng.choice((1, 2, 4))
            lines.append(f"{reg} = *(u{size * 8} *)(r6 +{off})")
        elif k < 0.55:
            slot = rng.choice((8, 16, 24, 4))
            lines += [f"*(u32 *)(r10 -{slot}) = {reg}", f"{reg} = *(u32 *)(r10 -{slot})"]
        elif k < 0.75:
            lines += [f"{reg} &= 7", "r5 = r10", "r5 += -16", f"r5 += {reg}", "*(u8 *)(r5 +0) = 1",
                      f"{reg} = *(u8 *)(r5 +{rng.choice((0, 1, 8, 9))})"]
        elif k < 0.9:
            lines.append(f"{reg} {rng.choice(('+=', '^=', '|=', '&='))} {rng.randint(-9, 9)}")
        else:
            lines += [f"if {reg} == {rng.randint(0, 3)} goto out"]
    lines += ["out:", "r0 = r2", "exit"]
    return "\n".join(lines)


def _prandom(ctx: object, *args: int) -> int:
    return 4


HELPERS = HelperTable({7: _prandom})


def run_xdp(insns: object, pkt_len: int, rng: random.Random) -> None:
    """One run with a ``pkt_len``-byte packet: the packet region holds exactly [data, data_end), so a
    read past ``data_end`` is a fault."""
    space = AddressSpace()
    buf = bytearray(rng.randbytes(pkt_len + 1))
    pkt = space.add(buf, name="packet", start=0, end=pkt_len)
    data = pkt.address()
    ctx = space.add(XDP_RUNTIME.pack({"data": data, "data_end": data + pkt_len, "data_meta": data,
                                      "data_hard_start": data, "rx_queue_index": rng.randrange(4)}), name="ctx")
    Interpreter(insns, space=space, helpers=HELPERS).run(ctx.address(), budget=100_000)  # type: ignore[arg-type]


def run_skb(insns: object, rng: random.Random) -> None:
    space = AddressSpace()
    ctx = space.add(SKB_RUNTIME.pack({"len": rng.randrange(100), "mark": rng.randrange(1 << 32)}), name="ctx")
    Interpreter(insns, space=space, helpers=HELPERS).run(ctx.address(), budget=100_000)  # type: ignore[arg-type]


@given(st.integers(0, 2**32 - 1))
@settings(max_examples=250, deadline=None)
def test_accepted_xdp_programs_do_not_fault(seed: int) -> None:
    rng = random.Random(seed)
    text = gen_xdp(rng)
    try:
        v = verify(assemble(text), prog_type=ProgType.XDP)
    except VerifierError:
        return
    for pkt_len in (0, 1, 13, 14, 33, 60, rng.randrange(100)):
        try:
            run_xdp(v.insns, pkt_len, rng)
        except InstructionLimitExceeded:
            pass
        except ExecutionError as e:  # pragma: no cover - this is the bug the test looks for
            raise AssertionError(f"accepted program faulted ({e}) on a {pkt_len}-byte packet:\n{text}") from e


@given(st.integers(0, 2**32 - 1), st.booleans())
@settings(max_examples=250, deadline=None)
def test_accepted_socket_filters_do_not_fault(seed: int, unpriv: bool) -> None:
    rng = random.Random(seed)
    text = gen_skb(rng)
    try:
        v = verify(assemble(text), prog_type=ProgType.SOCKET_FILTER, unprivileged=unpriv)
    except VerifierError:
        return
    for _ in range(3):
        try:
            run_skb(v.insns, rng)
        except ExecutionError as e:  # pragma: no cover
            raise AssertionError(f"accepted program faulted ({e}):\n{text}") from e


def test_generators_produce_both_verdicts() -> None:
    """The generators are useful only if they produce accepted and rejected programs."""
    outcomes = {True: 0, False: 0}
    for seed in range(60):
        rng = random.Random(seed)
        for text, pt in ((gen_xdp(rng), ProgType.XDP), (gen_skb(rng), ProgType.SOCKET_FILTER)):
            try:
                verify(assemble(text), prog_type=pt)
                outcomes[True] += 1
            except VerifierError:
                outcomes[False] += 1
    assert outcomes[True] >= 10 and outcomes[False] >= 10, outcomes


def test_harness_detects_faults() -> None:
    """The run harness really faults on a read past data_end (else the soundness test proves nothing)."""
    import pytest

    unsafe = assemble(f"r2 = *(u64 *)(r1 +{XDP_RUNTIME['data'].offset})\nr0 = *(u8 *)(r2 +0)\nexit")
    with pytest.raises(ExecutionError):
        run_xdp(unsafe, 0, random.Random(1))
    v = verify(assemble("r2 = *(u32 *)(r1 +0)\nr3 = *(u32 *)(r1 +4)\nr4 = r2\nr4 += 1\nif r4 > r3 goto pc+1\n"
                        "r0 = *(u8 *)(r2 +0)\nr0 = 2\nexit"), prog_type=ProgType.XDP)
    run_xdp(v.insns, 0, random.Random(1))
    run_xdp(v.insns, 1, random.Random(1))
