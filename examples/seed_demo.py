"""`make demo` for now: the seed XDP packet counter, run 1000 times in the reference interpreter.

Until the loader and the verifier exist, this script does by hand what they will do: it takes the
13 instruction slots of examples/seed-demo/demo.objdump.txt (clang-19's output for demo.c), applies
the one relocation (the ``lddw`` at slot 4 becomes ``r1 = map[id:N]`` for ``pkt_counter``, as
PROG_LOAD leaves it), gives the program a stand-in array map (one u32 in a plain buffer registered
as a memory region) and a small ``bpf_map_lookup_elem`` helper, and runs it once per "packet".

Expected: ``pkt_counter[0] == 1000`` and verdict XDP_PASS (2) every time.
"""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any

from pybpf.isa import Insns, PseudoSrc, decode
from pybpf.isa.disasm import disassemble
from pybpf.uapi import HelperId, XdpAction
from pybpf.vm import AddressSpace, HelperTable, Interpreter, RegionKind

# llvm-objdump -d demo.o (examples/seed-demo/demo.objdump.txt), slot by slot
DEMO_OBJDUMP = """
    b7 01 00 00 00 00 00 00
    63 1a fc ff 00 00 00 00
    bf a2 00 00 00 00 00 00
    07 02 00 00 fc ff ff ff
    18 01 00 00 00 00 00 00 00 00 00 00 00 00 00 00
    85 00 00 00 01 00 00 00
    b7 01 00 00 01 00 00 00
    15 00 02 00 00 00 00 00
    c3 10 00 00 00 00 00 00
    b7 01 00 00 02 00 00 00
    bf 10 00 00 00 00 00 00
    95 00 00 00 00 00 00 00
"""
PKT_COUNTER_RELOC_SLOT = 4  # R_BPF_64_64 pkt_counter at byte offset 0x20
RUNS = 1000


class StandInArrayMap:
    """``pkt_counter``: BPF_MAP_TYPE_ARRAY, key u32, value u32, max_entries 1 — just enough of a
    map for the vm (an id, storage bytes, the offset of the values in them)."""

    VALUES = 16  # a small header before the values, as real map storage has

    def __init__(self, map_id: int, value_size: int = 4, max_entries: int = 1) -> None:
        self.id = map_id
        self.name = "pkt_counter"
        self.value_size = value_size
        self.max_entries = max_entries
        self.mem = bytearray(self.VALUES + value_size * max_entries)

    def direct_value_addr(self, off: int) -> int:
        return self.VALUES + off

    def value(self, key: int) -> int:
        at = self.VALUES + key * self.value_size
        return int.from_bytes(self.mem[at : at + self.value_size], "little")


def map_lookup_elem(ctx: Any, map_ptr: int, key_ptr: int, *_: int) -> int:
    """``bpf_map_lookup_elem`` for array maps: a pointer to the value, or NULL (0)."""
    array = ctx.space.map_at(map_ptr)
    key = ctx.load(key_ptr, 4)
    if array is None or key >= array.max_entries:
        return 0
    return int(map_ptr + array.VALUES + key * array.value_size)


def load_program(map_id: int) -> Insns:
    insns = list(decode(bytes.fromhex("".join(DEMO_OBJDUMP.split()))))
    pos = 4  # list position of slot 4 (no lddw before it)
    insns[pos] = insns[pos].replace(src=PseudoSrc.MAP_FD, imm=map_id)
    return Insns(insns)


def main() -> int:
    pkt_counter = StandInArrayMap(map_id=29)
    program = load_program(pkt_counter.id)
    print("xdp_program, after load (bpftool prog dump xlated style, without the verifier's rewrites):")
    print(disassemble(program, "kernel"), end="")

    space = AddressSpace()
    ctx = space.add(bytearray(24), RegionKind.CTX, "xdp_md")  # the program never reads it
    helpers = HelperTable({HelperId.map_lookup_elem: map_lookup_elem})
    engine = Interpreter(program, maps={pkt_counter.id: pkt_counter}, helpers=helpers, space=space)
    verdicts = Counter(engine.run(ctx.address()) for _ in range(RUNS))

    print(f"\nran {RUNS} times in the reference interpreter")
    print(f"pkt_counter[0] = {pkt_counter.value(0)}")
    for verdict, count in sorted(verdicts.items()):
        name = XdpAction(verdict).name if verdict in set(XdpAction) else "?"
        print(f"verdict {verdict} ({name}): {count} times")
    ok = pkt_counter.value(0) == RUNS and verdicts == Counter({XdpAction.XDP_PASS: RUNS})
    print("OK" if ok else "UNEXPECTED RESULT")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
