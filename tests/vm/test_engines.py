"""Behaviour of both vm tiers beyond single instructions: calls and frames, helpers, tail calls,
maps, callbacks, may_goto, legacy packet loads, the budget, and failures of unverified code."""

from __future__ import annotations

import gc
from typing import Any

import pytest

from pybpf.errors import ExecutionError, HelperError, InstructionLimitExceeded, MemoryFault
from pybpf.isa import Insn, Insns
from pybpf.isa.conformance_asm import assemble
from pybpf.vm import (
    AddressSpace,
    Engine,
    Execution,
    HelperTable,
    Interpreter,
    ProgramExit,
    RegionKind,
    SkbView,
    TailCall,
    TranslatedProgram,
)
from pybpf.vm.engine import SKF_NET_OFF

M64 = (1 << 64) - 1


@pytest.fixture(params=[Interpreter, TranslatedProgram], ids=["interpreter", "translate"])
def engine(request: pytest.FixtureRequest) -> type[Engine]:
    return request.param  # type: ignore[no-any-return]


def run(engine: type[Engine], text: str | Insns, *args: int, **kw: Any) -> int:
    insns = assemble(text) if isinstance(text, str) else text
    helpers = kw.pop("helpers", None)
    space = kw.pop("space", None)
    return engine(insns, helpers=helpers, space=space).run(*args, **kw)


# -- calls and frames --------------------------------------------------------------------------------
def test_bpf_to_bpf_calls_preserve_r6_to_r9_and_get_their_own_frame(engine: type[Engine]) -> None:
    prog = """
        mov %r6, 6
        stdw [%r10-8], 0x11
        mov %r1, 5
        call local f
        ldxdw %r2, [%r10-8]
        add %r0, %r2
        add %r0, %r6
        exit
    f:
        stdw [%r10-8], 0x22   # the callee's own frame
        mov %r6, 100
        mov %r0, %r1
        exit
    """
    assert run(engine, prog) == 5 + 0x11 + 6


def test_callee_writes_through_a_pointer_to_the_callers_frame(engine: type[Engine]) -> None:
    prog = """
        stdw [%r10-8], 1
        mov %r1, %r10
        add %r1, -8
        call local f
        ldxdw %r0, [%r10-8]
        exit
    f:
        stdw [%r1], 42
        exit
    """
    assert run(engine, prog) == 42


def test_a_pointer_into_a_returned_frame_faults(engine: type[Engine]) -> None:
    prog = """
        call local f
        ldxdw %r0, [%r0]
        exit
    f:
        stdw [%r10-8], 7
        mov %r0, %r10
        add %r0, -8
        exit
    """
    with pytest.raises(MemoryFault) as e:
        run(engine, prog)
    assert e.value.pc == 1 and "stack[1]" in e.value.reason


def test_call_depth_is_limited_to_eight_frames(engine: type[Engine]) -> None:
    with pytest.raises(ExecutionError, match="the call stack of 9 frames is too deep") as e:
        run(engine, "f:\ncall local f\nexit")
    assert e.value.pc == 0
    # seven nested calls (8 frames) are fine
    chain = "\n".join(f"f{i}:\ncall local f{i + 1}\nexit" for i in range(7)) + "\nf7:\nmov %r0, 8\nexit"
    assert run(engine, chain) == 8


def test_stack_bounds(engine: type[Engine]) -> None:
    assert run(engine, "stb [%r10-512], 1\nldxb %r0, [%r10-512]\nexit") == 1
    with pytest.raises(MemoryFault) as e:
        run(engine, "mov %r0, 0\nstb [%r10-513], 1\nexit")
    assert e.value.pc == 1 and e.value.kind == "store" and e.value.address & 0xFFFFFFFF == 0xFFFFFFFF
    with pytest.raises(MemoryFault):
        run(engine, "ldxw %r0, [%r10-2]\nexit")


def test_fresh_frames_read_as_zero(engine: type[Engine]) -> None:
    e = engine(assemble("ldxdw %r0, [%r10-8]\nstdw [%r10-8], 9\nexit"))
    assert e.run() == 0 and e.run() == 0


# -- helpers ---------------------------------------------------------------------------------------------
def test_helpers_see_env_pc_registers_and_memory(engine: type[Engine]) -> None:
    seen: dict[str, Any] = {}

    def helper(ctx: Any, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
        seen.update(env=ctx.env, pc=ctx.pc, args=(r1, r2, r3, r4, r5), data=ctx.read(r1, 4))
        ctx.write(r1, b"\xaa\xbb")
        return -1  # -EPERM style results are masked to 64 bits

    prog = """
        stw [%r10-4], 0x04030201
        mov %r1, %r10
        add %r1, -4
        mov %r2, 2
        mov %r3, 3
        mov %r4, 4
        mov %r5, 5
        call 77
        ldxh %r1, [%r10-4]
        lsh %r1, 32
        xor %r0, %r1
        exit
    """
    r0 = run(engine, prog, helpers={77: helper}, env="ENV")
    assert seen["env"] == "ENV" and seen["pc"] == 7 and seen["data"] == b"\x01\x02\x03\x04"
    assert seen["args"][1:] == (2, 3, 4, 5)
    assert r0 == M64 ^ (0xBBAA << 32)


def test_a_bad_pointer_in_a_helper_faults_with_the_call_pc(engine: type[Engine]) -> None:
    def helper(ctx: Any, r1: int, *_: int) -> int:
        return ctx.load(r1, 8)

    with pytest.raises(MemoryFault) as e:
        run(engine, "mov %r1, 16\ncall 1\nexit", helpers={1: helper})
    assert e.value.pc == 1 and e.value.address == 16


def test_unknown_helpers_and_kfuncs_are_refused_when_reached(engine: type[Engine]) -> None:
    with pytest.raises(HelperError, match="invalid func unknown#9") as e:
        run(engine, "mov %r0, 1\ncall 9\nexit")
    assert e.value.pc == 1
    kfunc = "mov %r0, 1\n{} %r0, 1, +1\ncall runtime 3\nexit"
    with pytest.raises(HelperError, match="kfunc") as e:
        run(engine, kfunc.format("jne"))
    assert e.value.pc == 2
    assert run(engine, kfunc.format("jeq")) == 1  # a kfunc that is never reached does not matter


def test_callx_calls_the_helper_whose_id_is_in_the_register(engine: type[Engine]) -> None:
    helpers = {3: lambda ctx, r1, *_: r1 * 2}
    assert run(engine, "mov %r1, 21\nmov %r4, 3\ncall %r4\nexit", helpers=helpers) == 42
    with pytest.raises(HelperError):
        run(engine, "mov %r4, 4\ncall %r4\nexit", helpers=helpers)


def test_program_exit_and_unwind(engine: type[Engine]) -> None:
    def stop(ctx: Any, r1: int, *_: int) -> int:
        raise ProgramExit(r1 + 1)

    assert run(engine, "mov %r1, 41\ncall 1\nmov %r0, 0\nexit", helpers={1: stop}) == 42
    unwinding = HelperTable({5: lambda ctx, r1, *_: r1}, unwind_id=5)
    prog = "mov %r0, 7\nmov %r1, {}\ncall 5\nmov %r0, 2\nexit"
    assert run(engine, prog.format(0), helpers=unwinding) == 0
    assert run(engine, prog.format(1), helpers=unwinding) == 2
    # from a nested function, unwinding stops the whole program
    nested = "call local f\nmov %r0, 3\nexit\nf:\nmov %r1, 0\ncall 5\nmov %r0, 9\nexit"
    assert run(engine, nested, helpers=unwinding) == 0


def test_a_python_error_in_a_helper_becomes_an_execution_error(engine: type[Engine]) -> None:
    def broken(ctx: Any, *_: int) -> int:
        return 1 // 0

    with pytest.raises(ExecutionError, match="ZeroDivisionError") as e:
        run(engine, "mov %r0, 0\ncall 1\nexit", helpers={1: broken})
    assert isinstance(e.value.__cause__, ZeroDivisionError) and e.value.pc == 1


# -- tail calls ---------------------------------------------------------------------------------------
class Prog:
    def __init__(self, text: str) -> None:
        self.insns = assemble(text)
        self.used_maps: dict[int, Any] = {}


def test_tail_calls_replace_the_program_and_keep_the_context(engine: type[Engine]) -> None:
    target = Prog("mov %r0, %r1\nadd %r0, 1000\nexit")

    def tail_call(ctx: Any, r1: int, r2: int, r3: int, *_: int) -> int:
        raise TailCall(target)

    main = "mov %r6, 5\ncall 12\nmov %r0, 1\nexit"  # never returns to `mov r0, 1`
    assert run(engine, main, 7, helpers={12: tail_call}) == 1007


def test_tail_calls_stop_after_33(engine: type[Engine]) -> None:
    """A program that tail-calls itself: 33 succeed, the 34th falls through with r0 unchanged."""
    me = Prog("add %r1, 1\nmov %r0, %r1\ncall 12\nexit")
    helpers = {12: lambda ctx, *_: (_ for _ in ()).throw(TailCall(me))}
    space = AddressSpace()
    eng = engine(me.insns, helpers=helpers, space=space)
    ex = Execution(space)
    assert eng.run(0, execution=ex) == 34
    assert ex.tail_call_cnt == 33


def test_tail_calls_from_a_subprogram_stack_frames_as_in_linux(engine: type[Engine]) -> None:
    """verifier_tailcall_jit's shape: main calls sub, sub tail-calls main. Each tail call starts main
    in sub's frame, one deeper each time: 33 succeed (34 frames stacked, far past 8), the 34th falls
    through, and every main adds 1 on the way back."""
    me = Prog("call local sub\nadd %r0, 1\nexit\nsub:\ncall 12\nmov %r0, 100\nexit")
    depths: list[int] = []

    def tail_call(ctx: Any, *_: int) -> int:
        depths.append(ctx.depth)
        raise TailCall(me)

    space = AddressSpace()
    ex = Execution(space)
    assert engine(me.insns, helpers={12: tail_call}, space=space).run(execution=ex) == 100 + 34
    assert ex.tail_call_cnt == 33
    assert depths == list(range(1, 35))  # sub runs one frame deeper each time


def test_each_tail_called_program_has_its_own_eight_frames(engine: type[Engine]) -> None:
    """After a tail call from a subprogram at depth 3, the target may nest 8 frames of its own (depth
    3..10), not one more; the bound is per program, as the verifier's."""
    def chain(frames: int) -> Prog:
        body = "\n".join(f"f{i}:\ncall local f{i + 1}\nexit" for i in range(frames - 1))
        return Prog(f"{body}\nf{frames - 1}:\nmov %r0, {frames}\nexit")

    caller = "call local a\nexit\na:\ncall local b\nexit\nb:\ncall local c\nexit\nc:\ncall 12\nexit"
    for frames, ok in ((8, True), (9, False)):
        target = chain(frames)

        def tail_call(ctx: Any, *_: int, t: Prog = target) -> int:
            raise TailCall(t)

        if ok:
            assert run(engine, caller, helpers={12: tail_call}) == frames
        else:
            with pytest.raises(ExecutionError, match="the call stack of 9 frames is too deep") as e:
                run(engine, caller, helpers={12: tail_call})
            assert e.value.pc == 2 * (frames - 2)  # f7's call, which would open the target's 9th frame


def test_callbacks_count_their_depth_from_the_running_program(engine: type[Engine]) -> None:
    """A callback called by a helper in a tail-called program nests from that program's start: a
    callback at (global) depth 9 is fine there."""
    cb_prog = Insns([
        Insn(0x18, 2, 4, imm=4),  # r2 = &cb (slot 0 + 1 + 4 = 5)
        Insn(0x85, imm=181),  # r0 = call the callback once
        Insn(0x95),
        Insn(0x95),  # padding
        Insn(0xB7, 0, imm=77), Insn(0x95),  # cb: return 77
    ])
    target = Prog("")
    target.insns = cb_prog

    def once(ctx: Any, r1: int, callback: int, *_: int) -> int:
        return ctx.call(callback)

    def tail_call(ctx: Any, *_: int) -> int:
        raise TailCall(target)

    deep = "\n".join(f"f{i}:\ncall local f{i + 1}\nexit" for i in range(7)) + "\nf7:\ncall 12\nexit"
    assert run(engine, deep, helpers={12: tail_call, 181: once}) == 77


def test_the_runtime_frame_guard(engine: type[Engine]) -> None:
    """No run can stack more than MAX_RUNTIME_FRAMES frames (33 tail calls, 8 frames per program):
    entering a function beyond it fails even when its program's own chain is short."""
    from pybpf.vm import MAX_RUNTIME_FRAMES

    space = AddressSpace()
    eng = engine(assemble("mov %r0, 5\nexit"), space=space)
    ex = Execution(space)
    ex.engine = eng
    ex.base = MAX_RUNTIME_FRAMES - 2
    assert eng.call_function(ex, 0, (), MAX_RUNTIME_FRAMES - 1) == 5
    with pytest.raises(ExecutionError, match=f"the call stack of {MAX_RUNTIME_FRAMES + 1} frames is too deep"):
        eng.call_function(ex, 0, (), MAX_RUNTIME_FRAMES)
    ex.base = 0
    with pytest.raises(ExecutionError, match="the call stack of 9 frames is too deep"):
        eng.call_function(ex, 0, (), 8)


# -- maps, global data, callbacks ---------------------------------------------------------------------------
class FakeArrayMap:
    """Just what the vm needs (MapMemory): id, mem, direct_value_addr."""

    def __init__(self, map_id: int, value_size: int, entries: int) -> None:
        self.id = map_id
        self.name = "counters"
        self.value_size = value_size
        self.mem = bytearray(64 + value_size * entries)

    def direct_value_addr(self, off: int) -> int:
        return 64 + off


def test_map_pointers_values_and_a_lookup_helper(engine: type[Engine]) -> None:
    counters = FakeArrayMap(29, 8, 4)

    def lookup(ctx: Any, map_ptr: int, key_ptr: int, *_: int) -> int:
        m = ctx.space.map_at(map_ptr)
        key = ctx.load(key_ptr, 4)
        if m is None or key >= 4:
            return 0
        return map_ptr + 64 + key * m.value_size

    prog = Insns([
        Insn(0x62, 10, 0, -4, 2),  # *(u32 *)(r10 -4) = 2
        Insn(0xBF, 2, 10), Insn(0x07, 2, imm=-4),
        Insn(0x18, 1, 1, imm=29),  # r1 = map[id:29]
        Insn(0x85, imm=1),  # call lookup
        Insn(0x15, 0, 0, 2, 0),  # if r0 == 0 goto out
        Insn(0xB7, 1, imm=5), Insn(0xDB, 0, 1, 0, 0x00),  # lock *(u64 *)(r0 +0) += r1
        Insn(0x18, 3, 2, imm=29 | (8 << 32)),  # r3 = map[id:29][0]+8 (direct value access)
        Insn(0x7A, 3, 0, 0, 99),  # *(u64 *)(r3 +0) = 99
        Insn(0xB7, 0, imm=1), Insn(0x95),
    ])
    space = AddressSpace()
    eng = engine(prog, maps={29: counters}, helpers={1: lookup}, space=space)
    for _ in range(3):
        assert eng.run() == 1
    assert int.from_bytes(counters.mem[64 + 16 : 64 + 24], "little") == 15  # the same bytes, no copy
    assert int.from_bytes(counters.mem[64 + 8 : 64 + 16], "little") == 99
    assert engine(prog, maps={29: counters}, helpers={1: lookup}, space=space).layout.lddw[3].value == \
        eng.layout.lddw[3].value  # registered once per space


def test_unknown_map_ids_fail_when_executed(engine: type[Engine]) -> None:
    prog = Insns([Insn(0xB7, 0, imm=0), Insn(0x15, 0, 0, 2, 0), Insn(0x18, 1, 1, imm=5), Insn(0x95)])
    assert engine(prog).run() == 0  # skipped: fine
    prog = Insns([Insn(0x18, 1, 1, imm=5), Insn(0x95)])
    with pytest.raises(ExecutionError, match="map id 5"):
        engine(prog).run()


def test_function_pointers_and_callbacks(engine: type[Engine]) -> None:
    """bpf_loop-style: a helper calls a BPF function back through a FUNC lddw pointer."""

    def loop(ctx: Any, n: int, callback: int, data: int, *_: int) -> int:
        for i in range(n):
            if ctx.call(callback, i, data):
                return i + 1
        return n

    prog = Insns([
        Insn(0x7A, 10, 0, -8, 0),  # *(u64 *)(r10 -8) = 0
        Insn(0xB7, 1, imm=10),
        Insn(0x18, 2, 4, imm=9),  # r2 = &cb (slot 2 + 1 + 9 = 12)
        Insn(0xBF, 3, 10), Insn(0x07, 3, imm=-8),
        Insn(0x85, imm=181),  # call loop
        Insn(0x79, 1, 10, -8),  # r1 = sum
        Insn(0x27, 0, imm=1000), Insn(0x0F, 0, 1),  # r0 = iterations * 1000 + sum
        Insn(0x95),
        Insn(0x95),  # padding: an unreachable exit
        # cb(i, data): *data += i; return i == 4
        Insn(0x79, 3, 2, 0), Insn(0x0F, 3, 1), Insn(0x7B, 2, 3, 0),
        Insn(0xB7, 0, imm=0), Insn(0x55, 1, 0, 1, 4), Insn(0xB7, 0, imm=1), Insn(0x95),
    ])
    assert engine(prog, helpers={181: loop}).run() == 5 * 1000 + (0 + 1 + 2 + 3 + 4)


def test_may_goto_takes_the_jump_when_the_frame_counter_runs_out(engine: type[Engine]) -> None:
    prog = Insns([
        Insn(0xB7, 0, imm=0),
        Insn(0xE5, off=2),  # may_goto +2 -> exit
        Insn(0x07, 0, imm=1),
        Insn(0x05, off=-3),  # ja back to may_goto
        Insn(0x95),
    ])
    space = AddressSpace()
    ex = Execution(space)
    ex.may_goto_init = 25
    assert engine(prog, space=space).run(execution=ex) == 25


# -- legacy packet loads -----------------------------------------------------------------------------------
def test_ld_abs_and_ld_ind_read_big_endian_from_the_skb(engine: type[Engine]) -> None:
    space = AddressSpace()
    pkt = space.add(bytearray(bytes(range(0x10, 0x50))), RegionKind.PACKET, "pkt")
    skb = SkbView(pkt.address(), 64, network_offset=14)
    ld_abs_h = Insns([Insn(0x28, imm=12), Insn(0x95)])  # r0 = ntohs(*(u16 *)(skb->data + 12))
    assert engine(ld_abs_h, space=space).run(skb=skb) == 0x1C1D
    ld_ind_w = Insns([Insn(0xB7, 7, imm=2), Insn(0x40, 0, 7, 0, 4), Insn(0x95)])
    assert engine(ld_ind_w, space=space).run(skb=skb) == 0x16171819
    net = Insns([Insn(0x30, imm=SKF_NET_OFF + 1), Insn(0x95)])  # byte 1 of the network header
    assert engine(net, space=space).run(skb=skb) == 0x10 + 15
    # out of range: the program returns 0 at once
    out = Insns([Insn(0xB7, 0, imm=5), Insn(0x20, imm=62), Insn(0xB7, 0, imm=9), Insn(0x95)])
    assert engine(out, space=space).run(skb=skb) == 0
    with pytest.raises(HelperError, match="socket buffer"):
        engine(ld_abs_h, space=space).run()


def test_skf_ll_off_reads_a_mac_header_before_data(engine: type[Engine]) -> None:
    """A socket filter's skb: ``data`` is the network header, the MAC header (pulled) lies 14 bytes
    before it in the skb's head. SKF_LL_OFF reads it there as Linux does; nothing before the buffer's
    start is readable, and the end is still checked."""
    space = AddressSpace()
    frame = bytes(range(0x40, 0x80))
    buf = bytearray(32) + bytearray(frame)  # 32 bytes of headroom, then the frame
    pkt = space.add(buf, RegionKind.PACKET, "pkt", start=32 + 14, end=len(buf))  # the region: data..end
    skb = SkbView(pkt.address(32 + 14), len(frame) - 14, network_offset=0, mac_offset=-14)
    ll = -0x200000
    for off, size, code in ((0, 4, 0x20), (1, 2, 0x28), (13, 1, 0x30), (14, 4, 0x20)):
        prog = Insns([Insn(code, imm=ll + off), Insn(0x95)])
        assert engine(prog, space=space).run(skb=skb) == int.from_bytes(frame[off:off + size], "big"), off
    past_end = Insns([Insn(0xB7, 0, imm=5), Insn(0x20, imm=ll + len(frame) - 3), Insn(0x95)])
    assert engine(past_end, space=space).run(skb=skb) == 0
    # a header claimed before the buffer's start: out of range, not a fault
    bogus = SkbView(skb.data, skb.headlen, network_offset=0, mac_offset=-100)
    assert engine(Insns([Insn(0xB7, 0, imm=5), Insn(0x30, imm=ll), Insn(0x95)]), space=space).run(skb=bogus) == 0
    # no MAC header at all
    none = SkbView(skb.data, skb.headlen, network_offset=0, mac_offset=None)
    assert engine(Insns([Insn(0x30, imm=ll), Insn(0x95)]), space=space).run(skb=none) == 0


# -- budget and unverified code ---------------------------------------------------------------------------------
def test_the_instruction_budget_stops_runaway_programs(engine: type[Engine]) -> None:
    with pytest.raises(InstructionLimitExceeded) as e:
        run(engine, "mov %r0, 0\nloop:\nadd %r0, 1\nja loop\nexit", budget=1000)
    assert e.value.pc in (1, 2)
    space = AddressSpace()
    ex = Execution(space, budget=1000)
    assert engine(assemble("mov %r0, 3\nloop:\nsub %r0, 1\njne %r0, 0, loop\nexit"), space=space).run(
        execution=ex) == 0
    assert ex.insn_count == 1 + 3 * 2 + 1


@pytest.mark.parametrize(
    ("insns", "message", "pc"),
    [
        ([Insn(0x05, off=5), Insn(0x95)], "jump out of range from insn 0 to 6", 0),
        ([Insn(0x05, off=1), Insn(0x18, imm=1), Insn(0x95)], "jump into the middle of ldimm64 insn 1", 0),
        ([Insn(0xB7, 0, imm=1)], "fell through the end of the function", 0),
        ([Insn(0x85, src=1, imm=1), Insn(0x95), Insn(0xB7, 0, imm=1)], "fell through", 2),
        ([Insn(0x85, src=1, imm=7), Insn(0x95)], "call to invalid destination 8", 0),
        ([Insn(0x8F, 1, 0), Insn(0x95)], "unknown opcode 8f", 0),
        ([Insn(0xB7, 12, imm=1), Insn(0x95)], "invalid register r12", 0),
    ],
)
def test_malformed_programs_fail_identically_when_executed(
    engine: type[Engine], insns: list[Insn], message: str, pc: int
) -> None:
    with pytest.raises(ExecutionError, match=message) as e:
        engine(Insns(insns)).run()
    assert e.value.pc == pc


def test_regions_changed_by_a_helper_are_seen_at_once(engine: type[Engine]) -> None:
    """adjust_tail shrinks the packet: the next access past the new end faults (both tiers read the
    address space's live tables)."""
    space = AddressSpace()
    pkt = space.add(bytearray(64), RegionKind.PACKET, "pkt")

    def shrink(ctx: Any, *_: int) -> int:
        ctx.space.resize(pkt, end=16)
        return 0

    prog = assemble("ldxb %r0, [%r1+40]\ncall 1\nldxb %r0, [%r1+40]\nexit")
    with pytest.raises(MemoryFault) as e:
        engine(prog, space=space, helpers={1: shrink}).run(pkt.address())
    assert e.value.pc == 2 and "pkt" in e.value.reason


def test_engines_do_not_leak_regions(engine: type[Engine]) -> None:
    """Preparing many programs on one space (the kernel layer's situation) must not use up ids."""
    space = AddressSpace()
    with_callback = Insns([Insn(0x18, 1, 4, imm=2), Insn(0x95), Insn(0x95)])  # takes a function's address
    for _ in range(50):
        engine(with_callback, space=space).run()
        engine(assemble("mov %r0, 1\nexit"), space=space).run()
    gc.collect()
    assert len(space) <= 2  # at most the stack frame and one live code region
