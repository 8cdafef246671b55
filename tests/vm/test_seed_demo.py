"""The seed XDP counter (examples/seed-demo) on both vm tiers, from clang's listing alone.

`make demo` (examples/seed_demo.py, the lead's) carries the demo through the whole stack; this test
keeps the vm's part of it independent of the loader and the verifier: the instruction bytes of
demo.objdump.txt, the one relocation applied as PROG_LOAD leaves it (contract 1: ``lddw
src=MAP_FD imm=map id``), a stand-in array map and lookup helper, 1000 runs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from pybpf.isa import Insns, PseudoSrc, decode
from pybpf.isa.asm import assemble
from pybpf.isa.disasm import dump_xlated
from pybpf.uapi import XdpAction
from pybpf.vm import AddressSpace, Execution, Interpreter, RegionKind, TranslatedProgram
from pybpf.vm.engine import Engine

SEED = Path(__file__).resolve().parents[2] / "examples" / "seed-demo"
MAP_ID = 29


class ArrayMap:
    """``pkt_counter``: one u32 value after a small header, as the kernel layer's storage has."""

    VALUES = 16

    def __init__(self) -> None:
        self.id = MAP_ID
        self.name = "pkt_counter"
        self.mem = bytearray(self.VALUES + 4)

    def direct_value_addr(self, off: int) -> int:
        return self.VALUES + off


def map_lookup_elem(ctx: Any, map_ptr: int, key_ptr: int, *_: int) -> int:
    array = ctx.space.map_at(map_ptr)
    return map_ptr + ArrayMap.VALUES if isinstance(array, ArrayMap) and ctx.load(key_ptr, 4) == 0 else 0


def loaded_program() -> Insns:
    """The listing's bytes, with the relocation of slot 4 applied as PROG_LOAD leaves it."""
    listing = (SEED / "demo.objdump.txt").read_text()
    raw = bytes.fromhex("".join(m.group(1) for m in re.finditer(r"^\s+\d+:\t([0-9a-f ]+)\t", listing, re.M)))
    insns = decode(raw)
    assert assemble(listing, "llvm").encode() == raw  # the listing's text says the same as its bytes
    assert "0000000000000020:  R_BPF_64_64\tpkt_counter" in listing  # byte 0x20 = slot 4
    return Insns([i.replace(src=PseudoSrc.MAP_FD, imm=MAP_ID) if i.is_wide else i for i in insns])


@pytest.mark.parametrize("tier", [Interpreter, TranslatedProgram], ids=["interpreter", "translate"])
def test_the_seed_demo_counts_1000_packets_and_passes_them_all(tier: type[Engine]) -> None:
    counter = ArrayMap()
    space = AddressSpace()
    engine = tier(loaded_program(), maps={MAP_ID: counter}, helpers={1: map_lookup_elem}, space=space)
    ctx = space.add(bytearray(32), RegionKind.CTX, "xdp_md")
    verdicts = set()
    ex = Execution(space)
    for _ in range(1000):
        verdicts.add(engine.run(ctx.address(), execution=ex))
    assert verdicts == {XdpAction.PASS}
    assert int.from_bytes(counter.mem[ArrayMap.VALUES :], "little") == 1000
    assert ex.insn_count == 1000 * 12  # every run takes the non-NULL path: 12 instructions


def test_the_post_load_program_prints_as_bpftool_does() -> None:
    xlated = dump_xlated(loaded_program()).splitlines()
    assert xlated[4] == "   4: (18) r1 = map[id:29]"
    assert xlated[6] == "   7: (b7) r1 = 1"  # (slot 5 is the lddw's second half)
