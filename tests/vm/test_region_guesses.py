"""The translated tier's fast memory path (region guesses, grouped bounds checks, typed views) against
the reference interpreter, where a wrong shortcut would show: accesses that straddle the end of a
region, guesses that go stale (a helper resizes a region in the middle of a loop, a pointer moves to
another region), read-only regions, unaligned accesses, and addresses that alias a region's slot."""

from __future__ import annotations

from typing import Any

import pytest

from pybpf.errors import ExecutionError, MemoryFault
from pybpf.isa.conformance_asm import assemble
from pybpf.vm import AddressSpace, Execution, Interpreter, RegionKind, TranslatedProgram
from pybpf.vm.engine import Engine
from pybpf.vm.memory import MAX_REGIONS

ENGINES = [Interpreter, TranslatedProgram]


def outcome(cls: type[Engine], prog: str, memory: bytes, *, writable: bool = True,
            helpers: dict[int, Any] | None = None) -> tuple[Any, bytes]:
    """(r0 and instruction count | fault type, pc, message), and the memory afterwards."""
    space = AddressSpace()
    mem = bytearray(memory)
    region = space.add(mem, RegionKind.PACKET, "pkt", writable=writable)
    space.set_writable(region, writable)
    bound = {k: _with_region(f, region) for k, f in (helpers or {}).items()}
    ex = Execution(space)
    try:
        r0 = cls(assemble(prog), space=space, helpers=bound).run(region.address(), len(mem), execution=ex)
        result: Any = ("ok", r0, ex.insn_count)
    except ExecutionError as e:
        result = (type(e).__name__, e.pc, str(e))
    return result, bytes(mem)


def _with_region(fn: Any, region: Any) -> Any:
    """A helper that also gets the test's region (to resize it)."""
    return lambda ctx, *args: fn(ctx, region, *args)


def same(prog: str, memory: bytes, **kw: Any) -> tuple[Any, bytes]:
    ref, fast = (outcome(cls, prog, memory, **kw) for cls in ENGINES)
    assert fast == ref
    return ref


def test_a_group_that_straddles_the_end_faults_at_the_access_that_leaves() -> None:
    stores = """
        stw [%r1+56], 0x11111111
        stw [%r1+60], 0x22222222
        stw [%r1+64], 0x33333333
        mov %r0, 1
        exit
    """
    result, mem = same(stores, bytes(64))
    assert result[:2] == ("MemoryFault", 2)
    assert mem[56:64] == bytes.fromhex("1111111122222222")  # the ones before the fault happened
    loads = "ldxw %r0, [%r1+60]\nldxw %r2, [%r1+62]\nexit"
    assert same(loads, bytes(64))[0][:2] == ("MemoryFault", 1)
    below = "mov %r3, %r1\nadd %r3, 4\nldxw %r0, [%r3-4]\nldxw %r2, [%r3-6]\nexit"
    assert same(below, bytes(64))[0][:2] == ("MemoryFault", 3)


def test_a_region_shrunk_by_a_helper_inside_a_loop_is_seen_by_the_next_access() -> None:
    """The guess made before the call must not outlive it."""

    def shrink(ctx: Any, region: Any, r1: int, *_: int) -> int:
        if r1 == 3:
            ctx.space.resize(region, end=16)
        return 0

    prog = """
        mov %r6, %r1
        mov %r7, 0
        mov %r8, 0
    loop:
        ldxdw %r0, [%r6+32]
        add %r8, %r0
        mov %r1, %r7
        call 1
        add %r7, 1
        jlt %r7, 6, loop
        mov %r0, %r8
        exit
    """
    result, _ = same(prog, bytes(range(64)), helpers={1: shrink})
    assert result[:2] == ("MemoryFault", 3) and "outside pkt" in result[2]


def test_a_pointer_that_moves_between_regions_in_a_loop() -> None:
    """One pointer register alternates between the stack and the packet: guesses keep missing and
    every result must still be exact."""
    prog = """
        stdw [%r10-8], 7
        mov %r6, %r1
        mov %r7, 0
        mov %r0, 0
    loop:
        mov %r3, %r10
        add %r3, -8
        mov %r4, %r7
        and %r4, 1
        jeq %r4, 0, stack
        mov %r3, %r6
    stack:
        ldxdw %r2, [%r3]
        add %r0, %r2
        stxdw [%r3], %r0
        add %r7, 1
        jlt %r7, 9, loop
        exit
    """
    result, mem = same(prog, bytes(range(8)) + bytes(8))
    assert result[0] == "ok"
    assert int.from_bytes(mem[:8], "little") != int.from_bytes(bytes(range(8)), "little")


def test_read_only_regions_serve_loads_and_refuse_stores() -> None:
    prog = "ldxw %r0, [%r1+4]\nldxw %r2, [%r1+8]\nadd %r0, %r2\nstw [%r1], 1\nexit"
    result, _ = same(prog, bytes(range(16)), writable=False)
    assert result[:2] == ("MemoryFault", 3) and "read-only" in result[2]


@pytest.mark.parametrize("start", [0, 1, 2, 3, 5, 6, 7])
def test_unaligned_accesses_read_and_write_the_same_bytes(start: int) -> None:
    prog = f"""
        mov %r3, %r1
        add %r3, {start}
        ldxdw %r0, [%r3]
        ldxw %r4, [%r3+8]
        ldxh %r5, [%r3+12]
        add %r0, %r4
        add %r0, %r5
        stxdw [%r3+16], %r0
        stxw [%r3+24], %r4
        stxh [%r3+28], %r5
        sth [%r3+30], -1
        exit
    """
    result, mem = same(prog, bytes(range(1, 49)))
    assert result[0] == "ok"
    assert mem[start + 16 : start + 24] == result[1].to_bytes(8, "little")
    assert mem[start + 30 : start + 32] == b"\xff\xff"


def test_signed_loads_through_a_guess() -> None:
    prog = "mov %r3, %r1\nldxsb %r0, [%r3+1]\nldxsh %r2, [%r3+2]\nldxsw %r4, [%r3+4]\nadd %r0, %r2\nadd %r0, %r4\nexit"
    result, _ = same(prog, bytes([0, 0x80, 0xFE, 0xFF, 0, 0, 0, 0x80]))
    assert result[1] == (-128 - 2 - (1 << 31)) & ((1 << 64) - 1)


def test_an_address_in_an_aliased_slot_is_not_the_region() -> None:
    """The fast tables are indexed by ``id & ID_MASK``: an id beyond the table must not hit the
    region whose entry it aliases."""
    prog = f"ldxb %r0, [%r1]\nmov %r2, %r1\nlddw %r3, {MAX_REGIONS << 32:#x}\nadd %r2, %r3\nldxb %r0, [%r2]\nexit"
    result, _ = same(prog, bytes(8))
    assert result[:2] == ("MemoryFault", 5) and "no memory region" in result[2]


def test_atomics_through_a_guess_and_at_the_edge() -> None:
    prog = """
        mov %r2, 5
        lock add [%r1+8], %r2
        lock fetch add [%r1+8], %r2
        lock xchg32 [%r1+4], %r2
        mov %r0, %r2
        lock add [%r1+60], %r2
        exit
    """
    result, mem = same(prog, bytes(64))
    assert result[:2] == ("MemoryFault", 5)
    assert int.from_bytes(mem[8:16], "little") == 10 and int.from_bytes(mem[4:8], "little") == 5


def test_frame_accesses_use_the_frame_and_pointers_into_it_a_guess() -> None:
    prog = """
        lddw %r1, 0x1122334455667788
        stxdw [%r10-8], %r1
        stw [%r10-12], 0x99
        stb [%r10-13], 0x42
        mov %r3, %r10
        add %r3, -16
        ldxdw %r0, [%r3+8]
        ldxw %r2, [%r3+4]
        ldxb %r4, [%r3+3]
        add %r0, %r2
        add %r0, %r4
        ldxw %r5, [%r3+14]
        add %r0, %r5
        exit
    """
    result, _ = same(prog, b"")
    assert result[:2] == ("MemoryFault", 12)  # [r10-2, r10+2): past the top of the frame


def test_the_generated_source_checks_a_group_once() -> None:
    """Two loads through one pointer: one bounds check for both, aligned ones as typed-view items."""
    prog = TranslatedProgram(assemble("mov %r3, %r1\nldxw %r0, [%r3]\nldxw %r2, [%r3+4]\nadd %r0, %r2\nexit"))
    src = prog.source
    assert src.count("o + 8 <=") == 2  # the guess, and the same check after looking the region up
    assert "LOAD(ex, 1," in src and "LOAD(ex, 2," in src  # each access keeps its own exact slow path
    space = prog.space
    mem = space.add(bytearray(b"\x01\x00\x00\x00\x02\x00\x00\x00"), RegionKind.MEM)
    assert prog.run(mem.address()) == 3
    with pytest.raises(MemoryFault):
        prog.run(mem.address() + 1)
