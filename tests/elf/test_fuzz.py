"""Fuzz the loader with mutated real objects: only pybpf's own errors may escape, nothing may hang.

``PYBPF_FUZZ_EXAMPLES`` sets the number of inputs per test (default 150; a campaign uses thousands).

Mutations: bit flips anywhere, bit flips inside the .BTF/.BTF.ext/relocation/symbol sections (where
random flips anywhere rarely land), truncation, section-header field edits, relocation edits. Every
input that opens is also printed (``object show`` text and JSON, BTF raw and C dumps), because
those walk the parsed structures too. A CPU-time guard (SIGPROF) turns a hang into a failure.
"""

from __future__ import annotations

import contextlib
import os
import signal
import struct
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pybpf.btf import dump_c, dump_raw
from pybpf.cli.object import object_json, object_text
from pybpf.elf import ObjectSpec, read_btf
from pybpf.errors import PybpfError

sys.path.insert(0, str(Path(__file__).parent))
from elfpatch import SHDR_FIELDS, ElfPatch

OBJ = Path(__file__).resolve().parents[1] / "data" / "objects"
SEEDS = {
    name: (OBJ / f"{name}.o").read_bytes()
    for name in (
        "subprogs",
        "globals",
        "maps_btf",
        "externs",
        "kconfig",
        "core",
        "maps_legacy",
        "maps_iproute2",
        "btf_types",
        "struct_ops",
        "same_section",
        "seed/demo_legacy_zig",
        "bench/xdp_subprog_calls_clang",
    )
}
NAMES = sorted(SEEDS)
FUZZ = settings(
    max_examples=int(os.environ.get("PYBPF_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TIME_LIMIT = 20  # seconds of CPU time for one input: generous (the slowest take ~2 s), a hang is a bug


class Hang(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    """Raise :class:`Hang` once the input has used ``seconds`` of CPU time (a profiling timer, not
    the wall clock: on a machine shared with other jobs an input may wait, but not spin)."""

    def on_timer(signum: int, frame: object) -> None:
        raise Hang(f"no result after {seconds} s of CPU time")

    old = signal.signal(signal.SIGPROF, on_timer)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, old)


def exercise(data: bytes) -> None:
    with time_limit(TIME_LIMIT):
        try:
            spec = ObjectSpec.from_bytes(data, name="fuzz")
        except PybpfError:
            pass
        else:
            object_text(spec)
            object_json(spec)
            for prog in spec.programs.values():
                prog.insns.encode()
                prog.with_map_fds(lambda name: 3)
            with contextlib.suppress(PybpfError):
                spec.check_loadable()
        try:
            btf, _ = read_btf(data, path="fuzz")
        except PybpfError:
            return
        dump_raw(btf)
        with contextlib.suppress(PybpfError):
            dump_c(btf)


def regions(data: bytes) -> list[tuple[int, int]]:
    p = ElfPatch(data)
    out = []
    for s in p.sections():
        if s.name in (".BTF", ".BTF.ext", ".symtab", ".maps", "maps") or (
            s.name.startswith(".rel") and "debug" not in s.name
        ):
            out.append((s.offset, s.size))
    return out


@FUZZ
@given(st.sampled_from(NAMES), st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 7)), min_size=1, max_size=8))
def test_bit_flips_anywhere(name: str, flips: list[tuple[int, int]]) -> None:
    data = bytearray(SEEDS[name])
    for pos, bit in flips:
        data[pos % len(data)] ^= 1 << bit
    exercise(bytes(data))


@FUZZ
@given(st.sampled_from(NAMES), st.data())
def test_bit_flips_in_structured_sections(name: str, draw: st.DataObject) -> None:
    data = bytearray(SEEDS[name])
    spans = regions(SEEDS[name])
    for _ in range(draw.draw(st.integers(1, 6))):
        off, size = draw.draw(st.sampled_from(spans))
        if size == 0:
            continue
        pos = off + draw.draw(st.integers(0, size - 1))
        data[pos] ^= 1 << draw.draw(st.integers(0, 7))
    exercise(bytes(data))


@FUZZ
@given(st.sampled_from(NAMES), st.data())
def test_truncation(name: str, draw: st.DataObject) -> None:
    data = SEEDS[name]
    exercise(data[: draw.draw(st.integers(0, len(data)))])


INTERESTING = [0, 1, 7, 8, 0xFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF]


@FUZZ
@given(st.sampled_from(NAMES), st.data())
def test_section_header_edits(name: str, draw: st.DataObject) -> None:
    p = ElfPatch(SEEDS[name])
    for _ in range(draw.draw(st.integers(1, 3))):
        idx = draw.draw(st.integers(0, p.shnum - 1))
        fieldname = draw.draw(st.sampled_from(sorted(SHDR_FIELDS)))
        limit = 0xFFFFFFFF if SHDR_FIELDS[fieldname][1] == "<I" else 0xFFFFFFFFFFFFFFFF
        value = draw.draw(st.one_of(st.sampled_from(INTERESTING), st.integers(0, 4096), st.integers(0, limit)))
        p.set_shdr(idx, fieldname, value & limit)
    exercise(p.bytes())


@FUZZ
@given(st.sampled_from(["subprogs", "globals", "maps_btf", "externs", "maps_legacy", "struct_ops"]), st.data())
def test_relocation_edits(name: str, draw: st.DataObject) -> None:
    p = ElfPatch(SEEDS[name])
    rel_secs = [
        s.name for s in p.sections() if s.name.startswith(".rel") and "debug" not in s.name and "BTF" not in s.name
    ]
    sec = draw.draw(st.sampled_from(rel_secs))
    rels = p.rels(sec)
    at, off = draw.draw(st.sampled_from(rels))
    mode = draw.draw(st.sampled_from(["offset", "sym", "type"]))
    if mode == "offset":
        p.set_rel(at, offset=draw.draw(st.one_of(st.integers(0, off + 64), st.sampled_from(INTERESTING))))
    elif mode == "sym":
        p.set_rel(at, sym=draw.draw(st.integers(0, 64)))
    else:
        struct.pack_into("<I", p.data, at + 8, draw.draw(st.integers(0, 12)))
    exercise(p.bytes())


@pytest.mark.parametrize("name", NAMES)
def test_seeds_open_cleanly(name: str) -> None:
    """The unmutated inputs work (otherwise the fuzzing above proves little)."""
    spec = ObjectSpec.from_bytes(SEEDS[name], name=name)
    assert spec.programs
    exercise(SEEDS[name])
