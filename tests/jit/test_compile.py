"""The code generator: what it refuses (with the instruction it refuses), how it lays code out
(branch relaxation, functions, relocations), and the control flow that random differential tests do
not reach (may_goto, callx, unwinding, tail calls, legacy packet loads, checked mode)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from capstone import CS_ARCH_X86, CS_MODE_64, Cs

from pybpf.errors import ExecutionError, HelperError, InstructionLimitExceeded, JitError, MemoryFault
from pybpf.isa import Insn, Insns, decode
from pybpf.isa.asm import assemble
from pybpf.jit.compile import BPF_MAX_LOOPS, RelocKind, compile_program
from pybpf.jit.helpers import MAX_TAIL_CALL_CNT, HelperEntry, NativeStub, PythonHelper, TailCall
from pybpf.jit.runtime import JitProgram, NativeBuffer, read_memory
from pybpf.jit.x86 import encoder as x

SEED_DEMO = Path(__file__).resolve().parents[2] / "examples" / "seed-demo"


def jit_run(prog: Insns, r1: int = 0, r2: int = 0, **kw: object) -> int:
    helpers = kw.pop("helpers", None)
    loader = kw.pop("packet_loader", None)
    image = compile_program(prog, helpers=helpers, packet_loader=loader, allow_unverified=True)  # type: ignore[arg-type]
    with JitProgram(image, helpers=helpers, packet_loader=loader, **kw) as p:  # type: ignore[arg-type]
        return p(r1, r2)


# -- refusals ----------------------------------------------------------------------------------------
def test_unverified_programs_are_refused_without_opt_out() -> None:
    prog = assemble("r0 = 1\nexit")
    with pytest.raises(JitError, match="unverified"):
        compile_program(prog)
    assert compile_program(prog, verified=True).checked is False
    assert compile_program(prog, allow_unverified=True).checked is True


@pytest.mark.parametrize(
    ("insns", "idx", "pattern"),
    [
        ([Insn(0x05, off=5), Insn(0x95)], 0, "out of range"),
        ([Insn(0x05, off=1), Insn(0x18, imm=1), Insn(0x95)], 0, "middle of an lddw"),
        ([Insn(0xB7, 10, imm=1), Insn(0x95)], 0, "read-only frame pointer"),
        ([Insn(0x07, 10, imm=8), Insn(0x95)], 0, "read-only frame pointer"),
        ([Insn(0xDB, 1, 10, 0, 0x01), Insn(0x95)], 0, "read-only frame pointer"),
        ([Insn(0xB7, 0), Insn(0x85, imm=77), Insn(0x95)], 1, "unknown helper 77"),
        ([Insn(0x85, src=2, imm=1234), Insn(0x95)], 0, "kfunc"),
        ([Insn(0xB7, 0)], 0, "last insn is not an exit"),
        ([Insn(0x85, src=1, imm=1), Insn(0xB7, 0), Insn(0x07, 0, imm=1), Insn(0x95)], 1, "falls through"),
        ([Insn(0x18, 1, 3, imm=5), Insn(0x95)], 0, "resolved before JIT"),
        ([Insn(0x30, imm=12), Insn(0x95)], 0, "packet loader"),
        ([Insn(0x07, 0, 0, 3, 1), Insn(0x95)], 0, "offset field"),
    ],
)
def test_bad_programs_raise_jit_error_naming_the_insn(insns: list[Insn], idx: int, pattern: str) -> None:
    with pytest.raises(JitError, match=pattern) as e:
        compile_program(Insns(insns), allow_unverified=True)
    assert e.value.insn_idx == idx
    assert e.value.code == Insns(insns).at(idx).code


def test_unknown_opcode_is_refused() -> None:
    prog = decode(bytes.fromhex("ff00000000000000 9500000000000000"), strict=False)
    with pytest.raises(JitError, match="unknown opcode 0xff") as e:
        compile_program(prog, verified=True)
    assert e.value.insn_idx == 0


def test_empty_program_is_refused() -> None:
    with pytest.raises(JitError, match="empty"):
        compile_program(Insns(), allow_unverified=True)


def test_verified_streams_may_use_the_verifiers_ax_register() -> None:
    # the verifier's rewrites use BPF_REG_AX (11); only verified streams carry it
    prog = Insns([Insn(0xB7, 11, imm=5), Insn(0xBF, 0, 11), Insn(0x07, 0, imm=1), Insn(0x95)])
    with pytest.raises(JitError, match="invalid destination register"):
        compile_program(prog, allow_unverified=True)
    with JitProgram(compile_program(prog, verified=True)) as p:
        assert p() == 6


# -- layout ------------------------------------------------------------------------------------------
def _filler(n: int) -> list[Insn]:
    return [Insn(0x07, 3, imm=0x1000)] * n  # 7 bytes of x86 each: r3 += 0x1000


def test_branch_relaxation_picks_rel8_or_rel32() -> None:
    md = Cs(CS_ARCH_X86, CS_MODE_64)
    for n, long in ((10, False), (30, True)):
        prog = Insns([Insn(0xB7, 0, imm=1), Insn(0x15, 0, off=n + 1, imm=1), *_filler(n), Insn(0xB7, 0, imm=2),
                      Insn(0x95)])
        image = compile_program(prog, allow_unverified=True)
        start = image.insn_offsets[1]
        cmp, jcc = list(md.disasm(image.code[start:], start, 2))
        assert (cmp.mnemonic, jcc.mnemonic) == ("cmp", "je")
        assert jcc.size == (6 if long else 2)
        assert int(jcc.op_str, 16) == image.insn_offsets[n + 3]  # lands on the exit
        assert image.long_branches == int(long)
        with JitProgram(image) as p:
            assert p() == 1  # the jump was taken: r0 stays 1


def test_backward_and_forward_jumps_far_and_near() -> None:
    # r0 counts down from 3 through a loop whose body is long enough to need rel32 back-edges
    prog = assemble("r0 = 0\nr1 = 3\nloop:\n" + "r3 += 4096\n" * 40 + "r0 += 1\nr1 -= 1\nif r1 != 0 goto loop\nexit")
    image = compile_program(prog, allow_unverified=True)
    assert image.long_branches >= 1
    with JitProgram(image) as p:
        assert p() == 3


def test_image_tables() -> None:
    prog = assemble("r1 = 1\ncall f\nexit\nf:\nr0 = r1\nr0 += 41\nexit")
    image = compile_program(prog, allow_unverified=True)
    assert sorted(image.func_offsets) == [0, 3]
    offs = [image.insn_offsets[i] for i in sorted(image.insn_offsets)]
    assert offs == sorted(offs) and len(offs) == len(prog)
    funcs = image.functions()
    assert [f[0] for f in funcs] == [0, 3]
    assert funcs[0][1] == image.main_entry == 0
    assert funcs[0][1] < image.epilogue < funcs[0][2] <= funcs[1][1] < funcs[1][2] <= image.code_size
    ranges = image.insn_ranges()
    assert [r[0] for r in ranges] == [0, 1, 2, 3, 4, 5]
    assert all(start < end for _, start, end in ranges)
    with JitProgram(image) as p:
        assert p() == 42


def test_map_relocations_are_patched_at_load() -> None:
    value = NativeBuffer(16)
    header = NativeBuffer(8)

    class Maps:
        def map_address(self, map_id: int) -> int:
            assert map_id == 7
            return header.address

        def map_value_address(self, map_id: int, offset: int) -> int:
            assert map_id == 7
            return value.address + offset

    prog = Insns([
        Insn(0x18, 1, 1, imm=7),  # r1 = map[id:7]
        Insn(0x18, 2, 2, imm=7 | (8 << 32)),  # r2 = map[id:7][0]+8
        Insn(0x7A, 2, 0, 0, 0x1234),  # *(u64 *)(r2 + 0) = 0x1234
        Insn(0x7A, 1, 0, 0, 0x55),  # *(u64 *)(r1 + 0) = 0x55
        Insn(0xB7, 0, imm=0),
        Insn(0x95),
    ])
    image = compile_program(prog, verified=True)
    kinds = sorted((r.kind, r.target, r.addend) for r in image.relocs)
    assert kinds == [(RelocKind.MAP, 7, 0), (RelocKind.MAP_VALUE, 7, 8)]
    assert all(image.code[r.offset : r.offset + 8] == bytes(8) for r in image.relocs)  # inert image
    with pytest.raises(JitError, match="no map resolver"):
        JitProgram(image)
    with JitProgram(image, maps=Maps()) as p:
        assert p() == 0
    assert struct.unpack("<QQ", value.read()) == (0, 0x1234)
    assert struct.unpack("<Q", header.read()) == (0x55,)


def test_seed_demo_compiles_and_counts_packets() -> None:
    """The seed demo after the verifier's fixups (bpftool's xlated dump): array lookup inlined, then
    an atomic increment of the counter and XDP_PASS."""
    prog = assemble((SEED_DEMO / "demo.xlated.txt").read_text())
    # the kernel's array map: value area at offset 312 of the map; our stand-in uses the same offset
    storage = NativeBuffer(320)

    class Maps:
        def map_address(self, map_id: int) -> int:
            return storage.address

        def map_value_address(self, map_id: int, offset: int) -> int:  # pragma: no cover - not used here
            return storage.address + 312 + offset

    image = compile_program(prog, verified=True)
    with JitProgram(image, maps=Maps()) as p:
        verdicts = {p(0) for _ in range(1000)}
    assert verdicts == {2}
    assert struct.unpack_from("<I", storage.read(), 312)[0] == 1000


# -- control flow --------------------------------------------------------------------------------------
def test_may_goto_runs_out_after_bpf_max_loops() -> None:
    prog = assemble("r0 = 0\nloop:\nmay_goto out\nr0 += 1\ngoto loop\nout:\nexit")
    assert jit_run(prog) == BPF_MAX_LOOPS


def test_may_goto_counter_is_per_frame() -> None:
    # each call gets a fresh counter: two calls of a function that drains it give 2 * BPF_MAX_LOOPS
    prog = assemble("""
        r6 = 0
        call f
        r6 += r0
        call f
        r0 += r6
        exit
    f:
        r0 = 0
    loop:
        may_goto out
        r0 += 1
        goto loop
    out:
        exit
    """)
    assert jit_run(prog) == 2 * BPF_MAX_LOOPS


def _mix(a: int, b: int, c: int, d: int, e: int) -> int:
    return (a << 32) | (b << 24) | (c << 16) | (d << 8) | e


HELPERS = {
    0: HelperEntry("gather", PythonHelper(_mix)),
    5: HelperEntry("unwind", PythonHelper(lambda a, *_: a), unwind_on_zero=True),
}


def test_helper_arguments_arrive_in_order() -> None:
    prog = Insns([*(Insn(0xB7, r, imm=r) for r in range(1, 6)), Insn(0x85, imm=0), Insn(0x95)])
    assert jit_run(prog, helpers=HELPERS) == 0x0102030405


def test_callx_dispatches_on_the_register_value() -> None:
    prog = Insns([Insn(0xB7, 1, imm=7), Insn(0xB7, 2, imm=5), Insn(0x8D, 2), Insn(0x95)])
    assert jit_run(prog, helpers=HELPERS) == 7  # helper 5 returns r1
    bad = Insns([Insn(0xB7, 2, imm=99), Insn(0x8D, 2), Insn(0x95)])
    with pytest.raises(HelperError, match="unknown#99") as e:
        jit_run(bad, helpers=HELPERS)
    assert e.value.pc == 1


def test_unwind_helper_stops_the_whole_program_from_a_subprogram() -> None:
    prog = assemble("""
        r6 = 100
        call f
        r0 = r6
        exit
    f:
        r6 = 7
        r1 = 0
        call bpf_ktime_get_ns#5
        r0 = 33
        exit
    """)
    assert jit_run(prog, helpers=HELPERS) == 0
    # non-zero: the program goes on, r6 restored by the call
    cont = Insns([Insn(0xB7, 1, imm=3), Insn(0x85, imm=5), Insn(0x07, 0, imm=1), Insn(0x95)])
    assert jit_run(cont, helpers=HELPERS) == 4


def test_python_helper_exceptions_propagate_and_stop_the_program() -> None:
    mem = NativeBuffer(8)

    def boom(*_: int) -> int:
        raise ValueError("bad argument")

    helpers = {3: HelperEntry("boom", PythonHelper(boom))}
    prog = Insns([Insn(0xBF, 6, 1), Insn(0x85, imm=3), Insn(0x72, 6, 0, 0, 0x77), Insn(0x95)])
    with pytest.raises(HelperError, match="helper boom raised ValueError: bad argument") as e:
        jit_run(prog, mem.address, helpers=helpers)
    assert isinstance(e.value.__cause__, ValueError)
    assert e.value.pc == 1
    assert mem.read() == bytes(8)  # the store after the call never ran

    class Stop(Exception):
        def __init__(self, value: int) -> None:
            self.value = value

    def stop(*_: int) -> int:
        raise Stop(0x42)

    stopping = {3: HelperEntry("stop", PythonHelper(stop))}
    assert jit_run(prog, mem.address, helpers=stopping, exit_exceptions=(Stop,)) == 0x42
    assert mem.read() == bytes(8)


def test_context_helpers_see_env_pc_and_memory() -> None:
    seen: list[object] = []

    def helper(ctx: object, r1: int, r2: int, *_: int) -> int:
        seen.append((ctx.env, ctx.pc))  # type: ignore[attr-defined]
        ctx.store(r1, 4, 0xDEADBEEF)  # type: ignore[attr-defined]
        return ctx.load(r1, 2) + len(ctx.cstring(r2))  # type: ignore[attr-defined]

    mem = NativeBuffer(b"\0" * 8 + b"hello\0")
    helpers = {9: HelperEntry("ctx", PythonHelper(helper, context=True))}
    prog = Insns([Insn(0xBF, 2, 1), Insn(0x07, 2, imm=8), Insn(0xB7, 0), Insn(0x85, imm=9), Insn(0x95)])
    image = compile_program(prog, helpers=helpers, allow_unverified=True)
    with JitProgram(image, helpers=helpers) as p:
        assert p(mem.address, env="E") == 0xBEEF + 5
    assert seen == [("E", 3)]
    assert mem.read(0, 4) == struct.pack("<I", 0xDEADBEEF)


def test_native_stub_helpers_are_emitted_into_the_image() -> None:
    def emit(buf: object) -> None:  # r0 = r1 * 2 + r2
        buf.emit(x.lea(x.RAX, x.Mem(x.RSI, 0, x.RDI, 2)))  # type: ignore[attr-defined]
        buf.emit(x.ret())  # type: ignore[attr-defined]

    helpers = {40: HelperEntry("twice_plus", NativeStub(emit))}
    prog = Insns([Insn(0xB7, 1, imm=20), Insn(0xB7, 2, imm=2), Insn(0x85, imm=40), Insn(0x95)])
    image = compile_program(prog, helpers=helpers, allow_unverified=True)
    assert 40 in image.stubs and image.stubs[40] < image.code_size
    assert not image.relocs  # no address slot: the call is rel32 into the image
    with JitProgram(image, helpers=helpers) as p:
        assert p() == 42


# -- tail calls ---------------------------------------------------------------------------------------
PROG_ARRAY = TailCall(max_entries_off=0, ptrs_off=8)
TAIL_HELPERS = {12: HelperEntry("bpf_tail_call", PROG_ARRAY)}


class ProgArray:
    """A program array in the layout given by PROG_ARRAY: u32 max_entries, then u64 entry addresses."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.buf = NativeBuffer(8 + 8 * n)
        self.buf.write(struct.pack("<I", n))

    def set(self, i: int, prog: JitProgram | None) -> None:
        self.buf.write(struct.pack("<Q", prog.tail_call_address if prog else 0), 8 + 8 * i)


def _tail(src: str) -> JitProgram:
    prog = assemble(src)
    return JitProgram(compile_program(prog, helpers=TAIL_HELPERS, verified=True), helpers=TAIL_HELPERS)


def test_tail_call_replaces_the_program_and_keeps_the_context() -> None:
    array = ProgArray(4)
    target = _tail("r0 = *(u64 *)(r1 +0)\nr0 += 1000\nexit")
    prog = _tail("""
        r6 = r1
        r2 = *(u64 *)(r1 +8)
        r3 = *(u64 *)(r1 +16)
        call bpf_tail_call#12
        r0 = 1
        exit
    """)
    with target, prog:
        ctx = NativeBuffer(struct.pack("<QQQ", 5, array.buf.address, 1))
        assert prog(ctx.address) == 1  # empty slot: falls through
        array.set(1, target)
        assert prog(ctx.address) == 1005  # the target ran with the same r1
        ctx.write(struct.pack("<Q", 4), 16)
        assert prog(ctx.address) == 1  # index >= max_entries: falls through
        ctx.write(struct.pack("<Q", 1 << 32 | 1), 16)
        assert prog(ctx.address) == 1005  # the index is a u32


def test_tail_call_chain_stops_after_33() -> None:
    """A program that tail-calls itself: it runs 1 + MAX_TAIL_CALL_CNT times, as in the kernel."""
    array = ProgArray(1)
    prog = _tail("""
        r2 = *(u64 *)(r1 +8)
        r3 = *(u64 *)(r1 +0)
        r3 += 1
        *(u64 *)(r1 +0) = r3
        r3 = 0
        call bpf_tail_call#12
        r0 = 7
        exit
    """)
    with prog:
        array.set(0, prog)
        ctx = NativeBuffer(struct.pack("<QQ", 0, array.buf.address))
        assert prog(ctx.address) == 7
        assert struct.unpack_from("<Q", ctx.read())[0] == MAX_TAIL_CALL_CNT + 1
        ctx.write(struct.pack("<Q", 0))
        assert prog(ctx.address) == 7  # the counter restarts with every run
        assert struct.unpack_from("<Q", ctx.read())[0] == MAX_TAIL_CALL_CNT + 1


def test_tail_call_from_a_subprogram_returns_to_its_caller() -> None:
    array = ProgArray(1)
    target = _tail("r0 = 40\nexit")
    prog = _tail("""
        r6 = r1
        call f
        r0 += 2
        exit
    f:
        r2 = *(u64 *)(r1 +0)
        r3 = 0
        call bpf_tail_call#12
        r0 = 0
        exit
    """)
    with target, prog:
        array.set(0, target)
        ctx = NativeBuffer(struct.pack("<Q", array.buf.address))
        assert prog(ctx.address) == 42


# -- legacy packet loads ---------------------------------------------------------------------------------
def test_ld_abs_and_ld_ind_through_the_packet_loader() -> None:
    packet = bytes(range(0x10, 0x30))
    pkt = NativeBuffer(packet)
    ctx = NativeBuffer(struct.pack("<QQ", pkt.address, len(packet)))

    def load(ctx_addr: int, offset: int, size: int, *_: int) -> int:
        data, length = struct.unpack("<QQ", read_memory(ctx_addr, 16))
        off = offset & 0xFFFFFFFF
        off = off - (1 << 32) if off & 0x80000000 else off
        if off < 0 or off + size > length:
            return (1 << 64) - 1
        return int.from_bytes(read_memory(data + off, size), "big")

    loader = HelperEntry("skb_load", PythonHelper(load))
    prog = assemble("""
        r6 = r1
        r7 = 4
        r0 = *(u8 *)skb[1]
        r8 = r0
        r0 = *(u16 *)skb[r7 + 2]
        r8 <<= 16
        r8 |= r0
        r0 = *(u32 *)skb[28]
        r8 <<= 32
        r0 |= r8
        exit
    """)
    assert jit_run(prog, ctx.address, packet_loader=loader) == 0x11_1617_0000_0000 | 0x2C2D2E2F
    out_of_range = assemble("r6 = r1\nr0 = 5\nr0 = *(u32 *)skb[30]\nr0 = 9\nexit")
    assert jit_run(out_of_range, ctx.address, packet_loader=loader) == 0
    negative = assemble("r6 = r1\nr2 = -8\nr0 = *(u8 *)skb[r2 + 4]\nr0 = 9\nexit")
    assert jit_run(negative, ctx.address, packet_loader=loader) == 0


# -- checked mode ------------------------------------------------------------------------------------------
def test_checked_mode_stops_runaway_loops() -> None:
    prog = Insns([Insn(0xB7, 0), Insn(0x07, 0, imm=1), Insn(0x05, off=-2), Insn(0x95)])
    with pytest.raises(InstructionLimitExceeded) as e:
        jit_run(prog, loop_budget=1000)
    assert e.value.pc == 2
    # the conditional form
    cond = Insns([Insn(0xB7, 0), Insn(0x07, 0, imm=1), Insn(0x55, 0, off=-2, imm=0), Insn(0x95)])
    with pytest.raises(InstructionLimitExceeded):
        jit_run(cond, loop_budget=1000)
    # a loop within budget is fine
    ok = Insns([Insn(0xB7, 0), Insn(0x07, 0, imm=1), Insn(0x55, 0, off=-2, imm=500), Insn(0x95)])
    assert jit_run(ok, loop_budget=1000) == 500


def test_checked_mode_limits_call_depth() -> None:
    recurse = assemble("call f\nexit\nf:\ncall f\nexit")
    with pytest.raises(ExecutionError, match="9 frames is too deep") as e:
        jit_run(recurse)
    assert e.value.pc == 2
    depth7 = assemble("r0 = 0\ncall f1\nexit\n" + "".join(
        f"f{i}:\nr0 += 1\ncall f{i + 1}\nexit\n" for i in range(1, 7)) + "f7:\nr0 += 1\nexit")
    assert jit_run(depth7) == 7


def test_checked_mode_memory_checks() -> None:
    mem = NativeBuffer(16)
    ro = NativeBuffer(b"abcdefgh")
    regions = [(mem.address, 16, True), (ro.address, 8, False)]

    def run(src: str) -> int:
        image = compile_program(assemble(src), allow_unverified=True)
        with JitProgram(image) as p:
            return p(mem.address, ro.address, regions=regions)

    # in bounds: the whole input memory, the 512 bytes of the frame, reads of read-only memory
    assert run("*(u64 *)(r1 +8) = 7\nr0 = *(u64 *)(r1 +8)\nexit") == 7
    assert run("*(u8 *)(r10 -512) = 5\nr0 = *(u8 *)(r10 -512)\nexit") == 5
    assert run("r0 = *(u8 *)(r2 +7)\nexit") == ord("h")
    for src, kind, where, size in (
        ("r0 = *(u64 *)(r1 +9)\nexit", "load", mem.address + 9, 8),  # crosses the end
        ("*(u8 *)(r10 +0) = 1\nexit", "store", None, 1),  # at the frame pointer: saved registers
        ("*(u8 *)(r10 -513) = 1\nexit", "store", None, 1),  # below the frame
        ("*(u8 *)(r2 +0) = 1\nexit", "store", ro.address, 1),  # read-only region
        ("r3 = 0\nr0 = *(u32 *)(r3 +0)\nexit", "load", 0, 4),  # NULL
        ("r3 = -1\nlock *(u64 *)(r3 +0) += r1\nexit", "store", (1 << 64) - 1, 8),  # wraps around
    ):
        with pytest.raises(MemoryFault) as e:
            run(src)
        assert (e.value.kind, e.value.size) == (kind, size)
        if where is not None:
            assert e.value.address == where
    assert mem.read(0, 8) == bytes(8) and ro.read() == b"abcdefgh"  # faulting stores never happen


def test_checked_mode_stack_pointers_across_calls() -> None:
    """A callee may use a pointer into its caller's frame (live); the caller may not use a pointer
    into a callee's frame after it returned."""
    ok = assemble("""
        *(u64 *)(r10 -8) = 40
        r1 = r10
        r1 += -8
        call f
        r0 = *(u64 *)(r10 -8)
        exit
    f:
        r0 = *(u64 *)(r1 +0)
        r0 += 2
        *(u64 *)(r1 +0) = r0
        *(u64 *)(r10 -16) = r0
        exit
    """)
    assert jit_run(ok) == 42
    dangling = assemble("""
        call f
        r0 = *(u64 *)(r0 +0)
        exit
    f:
        *(u64 *)(r10 -8) = 1
        r0 = r10
        r0 += -8
        exit
    """)
    with pytest.raises(MemoryFault) as e:
        jit_run(dangling)
    assert e.value.pc == 1 and e.value.kind == "load"
