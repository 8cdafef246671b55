"""bpf_fastcall: spill/fill pairs around calls that keep r0-r5, removed when the call is inlined.

LLVM's ``bpf_fastcall`` attribute says a function clobbers only r0 (if it returns a value) and the
argument registers its prototype names. Clang allocates registers as if the others survived the
call, then surrounds the call with a spill and a fill of each live one at the lowest stack offsets
of the function, so that a kernel that knows nothing of the contract still runs the program. Linux
6.12 finds these patterns before the walk (:func:`mark_fastcall_patterns`), watches during the walk
that nothing else touches their stack slots (:func:`check_fastcall_stack_contract`), and, where the
verifier inlines the call with code that keeps the registers, removes the pairs and shrinks the
subprogram's stack depth (:func:`remove_fastcall_spills_fills`, before the stack-size check, so a
program may pass 512 bytes only by its fastcall area).

pybpf inlines one such helper, as Linux does on x86-64 with a JIT: ``bpf_get_smp_processor_id``
becomes a read of the CPU number in the per-CPU area (:func:`inline_get_smp_processor_id`), which
every engine runs (the per-CPU address instruction, :data:`pybpf.isa.opcodes.ADDR_PERCPU`). Kfuncs
(``bpf_cast_to_kern_ctx``, ``bpf_rdonly_cast``) are the kernel's other fastcall functions; pybpf
supports no kfuncs, so their calls are never patterns here.
"""

from __future__ import annotations

from dataclasses import replace

from pybpf.isa.insn import Insn
from pybpf.isa.opcodes import ADDR_PERCPU, PERCPU_CPU_NUMBER
from pybpf.progtypes.protos import HelperProto
from pybpf.progtypes.types import RetType
from pybpf.uapi import HelperId
from pybpf.verifier.env import SubprogInfo, VerifierEnv
from pybpf.verifier.state import BPF_REG_SIZE, FuncState

__all__ = [
    "ALL_CALLER_SAVED_REGS",
    "check_fastcall_stack_contract",
    "helper_fastcall_clobber_mask",
    "inline_get_smp_processor_id",
    "mark_fastcall_pattern_for_call",
    "mark_fastcall_patterns",
    "remove_fastcall_spills_fills",
    "verifier_inlines_helper_call",
]

CALLER_SAVED_REGS = 6
ALL_CALLER_SAVED_REGS = (1 << CALLER_SAVED_REGS) - 1
"""r0-r5."""
S16_MIN = -(1 << 15)
"""``fastcall_stack_off`` once a stray access disabled the rewrite: below any stack offset."""
_STX_DW = 0x7B  # BPF_STX | BPF_MEM | BPF_DW
_LDX_DW = 0x79  # BPF_LDX | BPF_MEM | BPF_DW
_CALL = 0x85
NOP = Insn(0x05, 0, 0, 0, 0)
"""``ja +0``: what a removed spill or fill becomes until ``opt_remove_nops`` drops it."""


def helper_fastcall_clobber_mask(fn: HelperProto) -> int:
    """Registers a call of ``fn`` clobbers *as if* it followed the bpf_fastcall contract: r0 unless it
    returns void, and each argument register its prototype describes."""
    mask = 0 if fn.ret_type == RetType.RET_VOID else 1
    for i, arg in enumerate(fn.arg_types):
        if arg:
            mask |= 1 << (i + 1)
    return mask


def verifier_inlines_helper_call(env: VerifierEnv, imm: int) -> bool:
    """Whether the fixups replace calls of helper ``imm`` by code that keeps r1-r5.

    Linux 6.12 on x86-64 with the JIT: only ``bpf_get_smp_processor_id``. pybpf's engines all run the
    per-CPU address instruction, so pybpf inlines it for every program, as a JIT-enabled kernel does.
    """
    del env
    return imm == HelperId.get_smp_processor_id


def inline_get_smp_processor_id() -> list[Insn]:
    """The inlined ``bpf_get_smp_processor_id``: ``w0 = <cpu_number>``, ``r0 = &(void __percpu
    *)(r0)``, ``r0 = *(u32 *)(r0 +0)`` (only r0 is written)."""
    return [
        Insn(0xB4, 0, 0, 0, PERCPU_CPU_NUMBER),
        Insn(0xBF, 0, 0, ADDR_PERCPU, 0),
        Insn(0x61, 0, 0, 0, 0),
    ]


def _subprog_end(env: VerifierEnv, s: int) -> int:
    subs = env.subprog_info
    return subs[s + 1].start if s + 1 < len(subs) else env.insn_cnt


def mark_fastcall_pattern_for_call(env: VerifierEnv, s: int, insn_idx: int, lowest_off: int) -> None:
    """Mark the spill/fill pairs around the call at ``insn_idx`` (in subprogram ``s``).

    Pair ``i`` is ``*(u64 *)(r10 + off_i) = rX`` at ``insn_idx - i`` and ``rX = *(u64 *)(r10 +
    off_i)`` at ``insn_idx + i`` with ``off_i = lowest_off + 8 * (i - 1)``, for a register the call
    keeps, each register once; the pattern stops at the first instruction that does not fit, and is
    never grown past a jump target (a pattern must run as a unit). Only a call the verifier inlines
    gets ``fastcall_spills_num`` (the pairs can go); the others keep the stack as it is.
    """
    insns = env.insns
    call = insns[insn_idx]
    subprog: SubprogInfo = env.subprog_info[s]
    aux = env.aux
    if call is None or call.src != 0:
        return  # bpf-to-bpf calls clobber every caller-saved register; kfuncs are not supported
    from pybpf.verifier.transfer.calls import get_helper_proto

    try:
        fn = get_helper_proto(env, call.imm)
    except (KeyError, ValueError):
        fn = None
    if fn is None:
        return  # the walk reports it
    clobbered = helper_fastcall_clobber_mask(fn)
    can_be_inlined = fn.allow_fastcall and verifier_inlines_helper_call(env, call.imm)
    if clobbered == ALL_CALLER_SAVED_REGS:
        return
    expected = ~clobbered & ALL_CALLER_SAVED_REGS
    n = env.insn_cnt
    i = 1
    off = lowest_off
    while i <= CALLER_SAVED_REGS:
        if insn_idx - i < 0 or insn_idx + i >= n:
            break
        if aux[insn_idx - i + 1].jump_target or aux[insn_idx + i].jump_target:
            break
        stx, ldx = insns[insn_idx - i], insns[insn_idx + i]
        if stx is None or ldx is None:
            break
        if stx.code != _STX_DW or ldx.code != _LDX_DW or stx.dst != 10 or ldx.src != 10:
            break
        if stx.src != ldx.dst or not (1 << stx.src) & expected:
            break
        if stx.off != off or ldx.off != off:
            break
        expected &= ~(1 << stx.src)
        aux[insn_idx - i].fastcall_pattern = True
        aux[insn_idx + i].fastcall_pattern = True
        i += 1
        off += BPF_REG_SIZE
    if i == 1:
        return
    # a call this kernel does not inline keeps its pairs (and the stack depth), without disabling
    # the rewrite of the others: their slots are still used by patterns only
    if can_be_inlined:
        aux[insn_idx].fastcall_spills_num = i - 1
    else:
        subprog.keep_fastcall_stack = True
    subprog.fastcall_stack_off = min(subprog.fastcall_stack_off, off)


def mark_fastcall_patterns(env: VerifierEnv) -> None:
    """``mark_fastcall_patterns``: per subprogram, the lowest offset of a 64-bit spill through r10
    is where patterns may start; look for one around every helper call."""
    for s, sub in enumerate(env.subprog_info):
        end = _subprog_end(env, s)
        lowest_off = 0
        for i in range(sub.start, end):
            insn = env.insns[i]
            if insn is not None and insn.code == _STX_DW and insn.dst == 10:
                lowest_off = min(lowest_off, insn.off)
        for i in range(sub.start, end):
            insn = env.insns[i]
            if insn is not None and insn.code == _CALL:
                mark_fastcall_pattern_for_call(env, s, i, lowest_off)


def check_fastcall_stack_contract(env: VerifierEnv, state: FuncState, insn_idx: int, off: int) -> None:
    """A stack access at ``off`` of ``state``'s frame: one below the fastcall area that is not part of a
    pattern disables the rewrite for the whole subprogram (once)."""
    s = state.subprogno
    if s >= len(env.subprog_info):
        return
    subprog = env.subprog_info[s]
    if subprog.fastcall_stack_off <= off or env.aux[insn_idx].fastcall_pattern:
        return
    subprog.fastcall_stack_off = S16_MIN
    for i in range(subprog.start, _subprog_end(env, s)):
        env.aux[i].fastcall_spills_num = 0
        env.aux[i].fastcall_pattern = False


def remove_fastcall_spills_fills(env: VerifierEnv) -> None:
    """``remove_fastcall_spills_fills``: the pairs of inlined calls become NOPs (``opt_remove_nops``
    drops them), and a subprogram that lost some and keeps no other pattern gets the stack depth of
    what lies above its fastcall area."""
    subs = env.subprog_info
    for s, sub in enumerate(subs):
        modified = False
        for i in range(sub.start, _subprog_end(env, s)):
            num = env.aux[i].fastcall_spills_num
            if num <= 0:
                continue
            for j in range(1, num + 1):
                for k in (i - j, i + j):
                    old = env.insns[k]
                    env.insns[k] = replace(NOP, meta=old.meta) if old is not None else NOP
            modified = True
        if modified and not sub.keep_fastcall_stack:
            sub.stack_depth = -sub.fastcall_stack_off
