"""The calling conventions the JIT joins together, as data: System V x86-64 and eBPF's register map.

eBPF's calling convention was designed to sit on top of the System V ABI: R1-R5 carry a call's
arguments and R0 its result, R6-R9 survive calls, R10 is the read-only frame pointer. Mapping R1-R5
onto SysV's first five argument registers and R6-R9 onto callee-saved ones makes every helper call a
plain native ``call`` with nothing to move. The mapping below is the kernel's (arch/x86/net).

Besides the eleven eBPF registers the JIT needs scratch registers of its own:

* ``AX`` (eBPF register number 11, the kernel's ``BPF_REG_AX``) is the hidden register the
  verifier's rewrites use (may_goto counters, division guards); it lives in r10.
* :data:`SCRATCH` (r9, r11) hold temporaries inside the code of one eBPF instruction.
* :data:`RUN_STATE` (r12, callee-saved, so helpers preserve it) points to the run's
  :class:`~pybpf.jit.compile.RunState` block for the whole run: tail-call counter, the main frame's
  frame pointer (for unwinding), the exit status.
"""

from __future__ import annotations

from dataclasses import dataclass

from pybpf.jit.x86.encoder import R8, R9, R10, R11, R12, R13, R14, R15, RAX, RBP, RBX, RCX, RDI, RDX, RSI, Reg

__all__ = [
    "BPF_REG_AX",
    "BPF_TO_X86",
    "CALLEE_SAVED_PUSH_ORDER",
    "RUN_STATE",
    "SCRATCH",
    "SYSTEM_V",
    "Abi",
]


@dataclass(frozen=True, slots=True)
class Abi:
    """A native calling convention: who passes what where, and who must preserve what."""

    name: str
    argument_registers: tuple[Reg, ...]
    return_register: Reg
    callee_saved: tuple[Reg, ...]
    caller_saved: tuple[Reg, ...]
    stack_alignment: int  # rsp % alignment == 0 at every call instruction
    red_zone: int


SYSTEM_V = Abi(
    name="System V AMD64",
    argument_registers=(RDI, RSI, RDX, RCX, R8, R9),
    return_register=RAX,
    callee_saved=(RBX, RBP, R12, R13, R14, R15),
    caller_saved=(RAX, RCX, RDX, RSI, RDI, R8, R9, R10, R11),
    stack_alignment=16,
    red_zone=128,
)

BPF_REG_AX = 11
"""The verifier's hidden scratch register (``MAX_BPF_REG``), used by its rewrites."""

BPF_TO_X86: tuple[Reg, ...] = (
    RAX,  # R0: return value
    RDI,  # R1: argument 1 (the context on entry)
    RSI,  # R2
    RDX,  # R3
    RCX,  # R4
    R8,  # R5: argument 5
    RBX,  # R6: callee-saved
    R13,  # R7
    R14,  # R8
    R15,  # R9
    RBP,  # R10: frame pointer, read-only
    R10,  # AX (11): the verifier's scratch register
)
"""eBPF register number → x86-64 register."""

SCRATCH: tuple[Reg, Reg] = (R9, R11)
RUN_STATE: Reg = R12

CALLEE_SAVED_PUSH_ORDER: tuple[Reg, ...] = (RBX, RBP, R12, R13, R14, R15)
"""What every JIT'ed function pushes on entry (and pops, reversed, on exit). All of them, always:
frames are then identical in every function, so a tail call can reuse the frame it comes from."""


def _check() -> None:
    # eBPF's argument registers are SysV's first five: a helper call moves nothing.
    assert BPF_TO_X86[1:6] == SYSTEM_V.argument_registers[:5]
    assert BPF_TO_X86[0] == SYSTEM_V.return_register
    assert set(BPF_TO_X86[6:11]) <= set(SYSTEM_V.callee_saved)
    assert RUN_STATE in SYSTEM_V.callee_saved and set(SCRATCH) <= set(SYSTEM_V.caller_saved)
    assert len(set(BPF_TO_X86) | set(SCRATCH) | {RUN_STATE}) == len(BPF_TO_X86) + len(SCRATCH) + 1


_check()
