"""The post-verification rewrites: map ids (contract 1), internal calls (contract 2), ctx
conversion, division guards, dead code."""

from __future__ import annotations

import pytest

from pybpf.errors import VerifierError
from pybpf.isa import Insn
from pybpf.isa.asm import assemble
from pybpf.isa.disasm import disassemble
from pybpf.progtypes import SK_BUFF, SKB_RUNTIME, XDP_RUNTIME, internal
from pybpf.uapi import MapType, ProgType
from pybpf.verifier import verify
from pybpf.verifier.specmaps import SpecMap


def xlated(text: str, **kw: object) -> list[str]:
    v = verify(assemble(text), **kw)  # type: ignore[arg-type]
    return [line.split(": ", 1)[1] for line in disassemble(v.insns, "kernel").splitlines()]


def test_map_fd_becomes_map_id() -> None:
    maps = {5: SpecMap(42, "counts", MapType.HASH, 4, 8, 16)}
    v = verify(assemble("r1 = map[id:5]\nr0 = 0\nexit"), maps=maps)
    lddw = v.insns[0]
    assert lddw.code == 0x18 and lddw.src == 1 and lddw.imm == 42
    assert v.used_maps == {42: maps[5]}


def test_map_value_keeps_offset() -> None:
    maps = {5: SpecMap(7, ".data", MapType.ARRAY, 4, 64, 1)}
    v = verify(assemble("r1 = map[id:5][0]+16\nr0 = *(u64 *)(r1 +0)\nexit"), maps=maps)
    lddw = v.insns[0]
    assert lddw.src == 2 and lddw.imm == 7 | (16 << 32)


def test_hash_update_becomes_internal_call() -> None:
    maps = {5: SpecMap(9, "h", MapType.HASH, 4, 4, 8)}
    text = ("r1 = 0\n*(u32 *)(r10 -4) = r1\n*(u32 *)(r10 -8) = r1\nr2 = r10\nr2 += -4\nr3 = r10\nr3 += -8\n"
            "r1 = map[id:5]\nr4 = 0\ncall bpf_map_update_elem#2\nr0 = 0\nexit")
    v = verify(assemble(text), maps=maps)
    calls = [i for i in v.insns if i.code == 0x85]
    assert calls[0].imm == internal.internal_id("htab_map_update_elem") and calls[0].src == 0


def test_xdp_ctx_loads_become_runtime_loads() -> None:
    got = xlated("r2 = *(u32 *)(r1 +0)\nr3 = *(u32 *)(r1 +4)\nr4 = *(u32 *)(r1 +16)\nr0 = 2\nexit",
                 prog_type=ProgType.XDP)
    assert got[:3] == [f"(79) r2 = *(u64 *)(r1 +{XDP_RUNTIME['data'].offset})",
                       f"(79) r3 = *(u64 *)(r1 +{XDP_RUNTIME['data_end'].offset})",
                       f"(61) r4 = *(u32 *)(r1 +{XDP_RUNTIME['rx_queue_index'].offset})"]


def test_narrow_skb_load_is_shifted_and_masked() -> None:
    off = SK_BUFF.offsetof("mark") + 2
    got = xlated(f"r0 = *(u8 *)(r1 +{off})\nexit")
    assert got[:3] == [f"(61) r0 = *(u32 *)(r1 +{SKB_RUNTIME['mark'].offset})", "(74) w0 >>= 16", "(54) w0 &= 255"]


def test_cb_store_keeps_its_width() -> None:
    off = SK_BUFF.offsetof("cb[2]")
    got = xlated(f"r2 = 3\n*(u64 *)(r1 +{off}) = r2\nr0 = 0\nexit", prog_type=ProgType.SCHED_CLS)
    assert got[1] == f"(7b) *(u64 *)(r1 +{SKB_RUNTIME['cb'].offset + 8}) = r2"


def test_division_guards() -> None:
    got = xlated("r0 = *(u32 *)(r1 +0)\nr2 = *(u32 *)(r1 +4)\nr0 /= r2\nw0 %= w2\nexit")
    assert got[2:6] == ["(55) if r2 != 0x0 goto pc+2", "(ac) w0 ^= w0", "(05) goto pc+1", "(3f) r0 /= r2"]
    assert got[6:10] == ["(16) if w2 == 0x0 goto pc+2", "(9c) w0 %= w2", "(05) goto pc+1", "(bc) w0 = w0"]


def test_dead_branch_hard_wired_and_removed() -> None:
    # r1 is 5: the branch is always taken; the fall-through is dead and goes away, the jump too
    got = xlated("r1 = 5\nif r1 > 0x3 goto pc+1\nr0 = 1\nr0 = 2\nexit")
    assert got == ["(b7) r1 = 5", "(b7) r0 = 2", "(95) exit"]


def test_unpriv_keeps_the_speculatively_walked_branch() -> None:
    # without CAP_PERFMON the never-taken side is still walked (as speculative execution), so it is
    # "seen": nothing is hard-wired or trapped, the program stays as written
    got = xlated("r1 = 5\nif r1 > 0x3 goto pc+1\nr0 = 1\nr0 = 2\nexit", unprivileged=True)
    assert got == ["(b7) r1 = 5", "(25) if r1 > 0x3 goto pc+1", "(b7) r0 = 1", "(b7) r0 = 2", "(95) exit"]


def test_unpriv_speculative_path_is_checked_with_unknown_operands() -> None:
    # the dead fall-through dereferences r1; privileged loads drop it, unprivileged ones must prove
    # it safe with r1 unknown, which fails
    text = "r1 = 5\nif r1 > 0x3 goto pc+1\nr0 = *(u8 *)(r1 +0)\nr0 = 0\nexit"
    assert xlated(text) == ["(b7) r1 = 5", "(b7) r0 = 0", "(95) exit"]
    with pytest.raises(VerifierError) as e:
        verify(assemble(text), prog_type=ProgType.SOCKET_FILTER, unprivileged=True, log_level=2)
    assert e.value.message == "R1 invalid mem access 'scalar'"
    # unprivileged scalars are always precise ("P"), as the kernel marks them
    assert "from 1 to 2 (speculative execution): R1_w=Pscalar() R10=fp0" in e.value.log


def test_jumps_across_patches_are_relinked() -> None:
    # a jump over a context load that grows into 3 instructions must land on the same target
    off = SK_BUFF.offsetof("mark") + 1
    v = verify(assemble(f"r0 = *(u32 *)(r1 +0)\nif r0 == 0x0 goto pc+1\nr0 = *(u8 *)(r1 +{off})\nexit"))
    jump = v.insns[1]
    assert jump.code == 0x15 and jump.off == 3
    assert v.insns[2 + jump.off] == Insn(0x95)


def test_subprogram_call_offsets_follow_patches() -> None:
    v = verify(assemble("r1 = *(u8 *)(r1 +9)\ncall pc+2\nr0 = 0\nexit\nr0 = 1\nexit"))
    calls = [(i, x) for i, x in enumerate(v.insns) if x.code == 0x85]
    (pos, call), = calls
    assert v.insns[pos + 1 + call.imm] == Insn(0xB7, 0, 0, 0, 1)
    assert v.subprog_starts == [0, pos + 1 + call.imm]


# bpf_loop(nr, callback, ctx, flags), the callback (slot 11, 12 with the extra store) at the end
_LOOP = ("r1 = 0\n*(u64 *)(r10 -8) = r1\nr1 = 10\nr2 = subprog[+7]\nr3 = r10\nr3 += -8\nr4 = 0\n"
         "call bpf_loop#181\nr0 = 0\nexit\nr0 = 0\nexit")


def _func_info(text: str) -> list[tuple[int, str, bool]]:
    return [(0, "main", True), (len(assemble(text).encode()) // 8 - 2, "cb", False)]


def test_bpf_loop_with_zero_flags_is_inlined() -> None:
    """``optimize_bpf_loop``: the helper's loop as instructions, r6-r8 spilled below the stack
    (which grows by 24 bytes), the callback called pc-relative."""
    v = verify(assemble(_LOOP), func_info=_func_info(_LOOP))
    got = [line.split(": ", 1)[1] for line in disassemble(v.insns, "kernel").splitlines()]
    assert got[7:11] == ["(b5) if r1 <= 0x800000 goto pc+2", "(b4) w0 = -7", "(05) goto pc+16",
                         "(7b) *(u64 *)(r10 -32) = r6"]
    assert got[19] == "(85) call pc+8"  # slot 20 (the lddw takes two): the callee is at slot 29
    assert v.subprog_starts == [0, 29] and got[28:] == ["(b7) r0 = 0", "(95) exit"]
    assert v.stack_depth == [32, 0]
    assert got[25] == "(79) r8 = *(u64 *)(r10 -16)"


def test_bpf_loop_with_unknown_flags_stays_a_call() -> None:
    text = "r6 = *(u32 *)(r1 +0)\n" + _LOOP.replace("r4 = 0", "r4 = r6")
    v = verify(assemble(text), func_info=_func_info(text))
    assert any(i.code == 0x85 and i.src == 0 and i.imm == 181 for i in v.insns)
    assert v.stack_depth == [8, 0]


def test_bpf_loop_not_inlined_past_512_bytes_of_stack() -> None:
    text = _LOOP.replace("r1 = 10\n", "r1 = 10\n*(u64 *)(r10 -496) = r1\n")
    v = verify(assemble(text), func_info=_func_info(text))
    assert any(i.code == 0x85 and i.src == 0 and i.imm == 181 for i in v.insns)
    assert v.stack_depth == [496, 0]


def test_sixteen_bit_skb_fields_store_their_low_half() -> None:
    """tc_index, tc_classid and queue_mapping are u16 in struct sk_buff: a store writes two bytes
    (the runtime u32 keeps a zero upper half), and queue_mapping ignores NO_QUEUE_MAPPING (0xffff)
    as the kernel's conversion does — with a run-time check for a register, no store for an
    immediate."""
    off = {n: SKB_RUNTIME[n].offset for n in ("tc_index", "tc_classid", "queue_mapping")}
    text = ("r2 = 5\n*(u32 *)(r1 +44) = r2\n*(u32 *)(r1 +72) = r2\n*(u32 *)(r1 +12) = r2\n"
            "*(u32 *)(r1 +12) = 65535\n*(u32 *)(r1 +12) = 3\nr0 = *(u32 *)(r1 +44)\nr0 = 0\nexit")
    got = xlated(text, prog_type=ProgType.SCHED_CLS)
    assert got[1:8] == [f"(6b) *(u16 *)(r1 +{off['tc_index']}) = r2", f"(6b) *(u16 *)(r1 +{off['tc_classid']}) = r2",
                        "(35) if r2 >= 0xffff goto pc+1", f"(6b) *(u16 *)(r1 +{off['queue_mapping']}) = r2",
                        "(05) goto pc+0", f"(6a) *(u16 *)(r1 +{off['queue_mapping']}) = 3",
                        f"(61) r0 = *(u32 *)(r1 +{off['tc_index']})"]


def test_signed_division_guards_use_ax_as_linux() -> None:
    """verifier_sdiv.c's sdiv64_rr_divisor_neg_1 and smod32_rr_divisor_neg_1, xlated as Linux 6.12."""
    from pybpf.verifier.selftests import disasm_patterns, match_patterns, xlated_text

    v = verify(assemble("r2 = 5\nr3 = -1\nr2 s/= r3\nr0 = r2\nexit"))
    assert match_patterns(xlated_text(v.insns), disasm_patterns([
        "0: r2 = 5", "1: r3 = -1", "2: r11 = r3", "3: r11 += 1", "4: if r11 > 0x1 goto pc+4",
        "5: if r11 == 0x0 goto pc+1", "6: r2 = 0", "7: r2 = -r2", "8: goto pc+1", "9: r2 s/= r3", "10: r0 = r2",
        "11: exit"])), xlated_text(v.insns)
    v = verify(assemble("w2 = -5\nw3 = -1\nw4 = w2\nw2 s%= w3\nr0 = r2\nexit"))
    assert match_patterns(xlated_text(v.insns), disasm_patterns([
        "0: w2 = -5", "1: w3 = -1", "2: w4 = w2", "3: r11 = r3", "4: w11 += 1", "5: if w11 > 0x1 goto pc+3",
        "6: if w11 == 0x1 goto pc+4", "7: w2 = 0", "8: goto pc+1", "9: w2 s%= w3", "10: goto pc+1", "11: w2 = w2",
        "12: r0 = r2", "13: exit"])), xlated_text(v.insns)


@pytest.mark.parametrize("op", ["s/=", "s%="])
@pytest.mark.parametrize("bits", [64, 32])
def test_signed_division_guards_run_alike_in_every_engine(op: str, bits: int) -> None:
    """The AX guards give x/0 = 0, x%0 = x, MIN/-1 = MIN, x%-1 = 0 in the interpreter, the
    translator and the JIT, as the vm's definition of the instruction says."""
    from types import SimpleNamespace

    from pybpf.isa.opcodes import AluOp
    from pybpf.jit import prepare
    from pybpf.vm.helpers import HelperTable
    from pybpf.vm.interp import Interpreter
    from pybpf.vm.memory import AddressSpace
    from pybpf.vm.semantics import alu
    from pybpf.vm.translate import TranslatedProgram

    m64 = (1 << 64) - 1
    r = "r" if bits == 64 else "w"
    values = [0, 1, -1, 7, -7, -(1 << 63), (1 << 63) - 1, -(1 << 31), 3 << 40]
    for a in values:
        for b in values:
            v = verify(assemble(f"r2 = {a & m64:#x}\nr3 = {b & m64:#x}\n{r}2 {op} {r}3\nr0 = r2\nexit"))
            assert any(i.dst == 11 for i in v.insns)
            want = alu(AluOp.DIV if op == "s/=" else AluOp.MOD, a & m64, b & m64, is64=bits == 64, off=1)
            for engine in (Interpreter, TranslatedProgram):
                assert engine(v.insns, helpers=HelperTable({}), space=AddressSpace()).run(0) == want, (a, b, engine)
            jit = prepare(SimpleNamespace(insns=v.insns, used_maps={}), helpers=HelperTable({}))
            assert jit.run(0) == want, (a, b, "jit")
