"""Verifier states: stack slots, function frames, whole states (``include/linux/bpf_verifier.h``).

* :class:`StackSlot` — ``struct bpf_stack_state``: 8 per-byte slot types (``STACK_INVALID``,
  ``STACK_SPILL``, ``STACK_MISC``, ``STACK_ZERO``...) and the spilled register. Byte ``j`` of the
  list is the kernel's ``slot_type[j]``: the byte at ``fp - 8*spi - 1 - j``... i.e. index 7 is the
  lowest address of the slot, as in the kernel (printing left to right gives ``mmmm????`` for a
  4-byte write at ``fp-4``).
* :class:`FuncState` — ``struct bpf_func_state``: 11 registers, the stack (slot ``spi`` covers
  ``fp-8*(spi+1) .. fp-8*spi-1``), call-site data, acquired references.
* :class:`VerifierState` — ``struct bpf_verifier_state``: the frames of the call chain plus
  lock/branch bookkeeping used by pruning.

Copies are explicit (:meth:`VerifierState.copy`), the equivalent of ``copy_verifier_state``.
"""

from __future__ import annotations

from dataclasses import dataclass

from pybpf.verifier.regs import MAX_BPF_REG, RegState

__all__ = [
    "STACK_DYNPTR",
    "STACK_INVALID",
    "STACK_ITER",
    "STACK_MISC",
    "STACK_SPILL",
    "STACK_ZERO",
    "FuncState",
    "RefState",
    "StackSlot",
    "VerifierState",
]

STACK_INVALID = 0
STACK_SPILL = 1
STACK_MISC = 2
STACK_ZERO = 3
STACK_DYNPTR = 4
STACK_ITER = 5

BPF_REG_SIZE = 8
MAX_CALL_FRAMES = 8


class StackSlot:
    __slots__ = ("slot_type", "spilled_ptr")

    def __init__(self) -> None:
        self.slot_type: list[int] = [STACK_INVALID] * BPF_REG_SIZE
        self.spilled_ptr = RegState()

    def copy(self) -> StackSlot:
        s = StackSlot.__new__(StackSlot)
        s.slot_type = self.slot_type[:]
        s.spilled_ptr = self.spilled_ptr.copy()
        return s

    def is_spilled_reg(self) -> bool:
        return self.slot_type[BPF_REG_SIZE - 1] == STACK_SPILL

    def is_spilled_scalar_reg(self) -> bool:
        return self.slot_type[BPF_REG_SIZE - 1] == STACK_SPILL and self.spilled_ptr.type == 1


@dataclass(slots=True)
class RefState:
    """``struct bpf_reference_state``: an acquired reference (socket, ringbuf record...)."""

    id: int
    insn_idx: int
    callback_ref: int = 0


class FuncState:
    __slots__ = (
        "async_entry_cnt",
        "callback_depth",
        "callback_ret_range",
        "callsite",
        "frameno",
        "in_async_callback_fn",
        "in_callback_fn",
        "in_exception_callback_fn",
        "refs",
        "regs",
        "stack",
        "subprogno",
    )

    def __init__(self, callsite: int = -1, frameno: int = 0, subprogno: int = 0) -> None:
        self.regs: list[RegState] = [RegState() for _ in range(MAX_BPF_REG)]
        self.callsite = callsite
        self.frameno = frameno
        self.subprogno = subprogno
        self.async_entry_cnt = 0
        self.callback_ret_range = (0, 0)
        self.in_callback_fn = False
        self.in_async_callback_fn = False
        self.in_exception_callback_fn = False
        self.callback_depth = 0
        self.refs: list[RefState] = []
        self.stack: list[StackSlot] = []

    @property
    def allocated_stack(self) -> int:
        return len(self.stack) * BPF_REG_SIZE

    def grow_stack(self, size: int) -> None:
        """``grow_stack_state``: make sure ``size`` bytes (rounded up to slots) are tracked."""
        n = (size + BPF_REG_SIZE - 1) // BPF_REG_SIZE
        while len(self.stack) < n:
            self.stack.append(StackSlot())

    def copy(self) -> FuncState:
        f = FuncState.__new__(FuncState)
        f.regs = [r.copy() for r in self.regs]
        f.callsite = self.callsite
        f.frameno = self.frameno
        f.subprogno = self.subprogno
        f.async_entry_cnt = self.async_entry_cnt
        f.callback_ret_range = self.callback_ret_range
        f.in_callback_fn = self.in_callback_fn
        f.in_async_callback_fn = self.in_async_callback_fn
        f.in_exception_callback_fn = self.in_exception_callback_fn
        f.callback_depth = self.callback_depth
        f.refs = [RefState(r.id, r.insn_idx, r.callback_ref) for r in self.refs]
        f.stack = [s.copy() for s in self.stack]
        return f


class VerifierState:
    __slots__ = (
        "active_lock_id",
        "active_lock_ptr",
        "active_preempt_lock",
        "active_rcu_lock",
        "branches",
        "callback_unroll_depth",
        "curframe",
        "dfs_depth",
        "first_insn_idx",
        "frame",
        "in_sleepable",
        "insn_hist",
        "insn_idx",
        "last_insn_idx",
        "loop_entry",
        "may_goto_depth",
        "parent",
        "speculative",
        "used_as_loop_entry",
    )

    def __init__(self) -> None:
        self.frame: list[FuncState] = []
        self.parent: VerifierState | None = None
        self.branches = 0
        self.insn_idx = 0
        self.curframe = 0
        self.active_lock_ptr: object | None = None
        self.active_lock_id = 0
        self.speculative = False
        self.active_rcu_lock = False
        self.active_preempt_lock = 0
        self.used_as_loop_entry = False
        self.in_sleepable = False
        self.first_insn_idx = 0
        self.last_insn_idx = 0
        self.loop_entry: VerifierState | None = None
        self.insn_hist: list[tuple[int, int, int]] = []
        self.dfs_depth = 0
        self.callback_unroll_depth = 0
        self.may_goto_depth = 0

    @property
    def cur(self) -> FuncState:
        return self.frame[self.curframe]

    def copy(self) -> VerifierState:
        """``copy_verifier_state`` into a fresh object."""
        s = VerifierState.__new__(VerifierState)
        s.frame = [f.copy() for f in self.frame]
        s.parent = self.parent
        s.branches = self.branches
        s.insn_idx = self.insn_idx
        s.curframe = self.curframe
        s.active_lock_ptr = self.active_lock_ptr
        s.active_lock_id = self.active_lock_id
        s.speculative = self.speculative
        s.active_rcu_lock = self.active_rcu_lock
        s.active_preempt_lock = self.active_preempt_lock
        s.used_as_loop_entry = self.used_as_loop_entry
        s.in_sleepable = self.in_sleepable
        s.first_insn_idx = self.first_insn_idx
        s.last_insn_idx = self.last_insn_idx
        s.loop_entry = self.loop_entry
        s.insn_hist = self.insn_hist[:]
        s.dfs_depth = self.dfs_depth
        s.callback_unroll_depth = self.callback_unroll_depth
        s.may_goto_depth = self.may_goto_depth
        return s
