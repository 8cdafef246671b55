"""One run of a program: the state helpers see, stack frames, the instruction budget, and the error
wording both vm tiers share.

An :class:`Execution` is created per run by an engine's ``run()`` (or by the caller, to read counters
afterwards). It is the ``ctx`` a helper receives (see :mod:`pybpf.vm.helpers`): the address space,
the caller's ``env``, the current pc, memory accessors that fault with that pc, and ``call()`` for BPF
callbacks.

Stack frames: call depth ``d`` owns one 512-byte STACK region of the address space. Entering a
function that uses r10 (program entry, bpf-to-bpf call, tail call, callback) zeroes its frame and
opens the region ``[0, 512)``; a function that never touches r10
has no way to address its frame, so it gets none (that saves the cost where it cannot be seen).
Leaving a function closes the frame of its depth, so a pointer into a returned frame faults (the
strict oracle) and a fresh frame reads as zeros — the same rule in both tiers. ``r10`` is the
frame's end address.

Call depth. Linux's verifier bounds each *program's* call chain statically (MAX_CALL_FRAMES = 8
frames from its main function, callbacks included); a tail call from a subprogram starts another
program in that subprogram's frame, with its own bound, so at run time frames stack up across tail
calls (``verifier_tailcall_jit``: main calls sub, sub tail-calls main, 33 times). The vm checks the
same thing at run time: each frame knows the depth its program started at (``base``: 0, or the depth
of the tail call that started it) and a call that would make ``depth - base`` reach 8 fails with
"the call stack of 9 frames is too deep". Total depth is therefore at most
(MAX_TAIL_CALL_CNT + 1) * MAX_CALL_FRAMES = 272 frames; :data:`MAX_RUNTIME_FRAMES` states that bound
as an explicit guard (the translated tier recurses one Python call per frame and per tail call, well
inside Python's default recursion limit; callbacks nested in every frame could still exceed it, which
``run()`` reports as an ``ExecutionError``).

The instruction budget stops runaway programs with :class:`~pybpf.errors.InstructionLimitExceeded`.
The interpreter counts every instruction; the translated tier counts whole straight-line segments
and checks at backward jumps and calls, so both count the same instructions but may stop at a
different pc.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pybpf.errors import ExecutionError, HelperError, InstructionLimitExceeded
from pybpf.vm.memory import AddressSpace, Region, RegionKind

if TYPE_CHECKING:
    from pybpf.vm.engine import Engine

__all__ = [
    "BPF_MAX_LOOPS",
    "DEFAULT_BUDGET",
    "MAX_CALL_FRAMES",
    "MAX_RUNTIME_FRAMES",
    "MAX_TAIL_CALL_CNT",
    "STACK_SIZE",
    "Execution",
    "SkbView",
]

STACK_SIZE = 512  # MAX_BPF_STACK
MAX_CALL_FRAMES = 8  # include/linux/bpf_verifier.h
MAX_TAIL_CALL_CNT = 33  # include/linux/bpf.h
MAX_RUNTIME_FRAMES = (MAX_TAIL_CALL_CNT + 1) * MAX_CALL_FRAMES
"""The most frames a run can stack: MAX_CALL_FRAMES per program, one program per tail call + main."""
BPF_MAX_LOOPS = 8 * 1024 * 1024  # may_goto's per-frame counter (include/linux/bpf.h)
DEFAULT_BUDGET = 100_000_000
_ZERO_FRAME = bytes(STACK_SIZE)


@dataclass(frozen=True, slots=True)
class SkbView:
    """Where legacy ``LD_ABS`` / ``LD_IND`` read from: the linear part of the socket buffer.

    ``data`` is the vm address of the packet's first byte, ``headlen`` the linear length;
    ``network_offset`` / ``mac_offset`` (relative to ``data``, ``None`` = the skb has no such header)
    serve the kernel's negative offsets SKF_NET_OFF and SKF_LL_OFF. The kernel layer supplies this for
    skb programs; Linux reads through the skb in r6, we read through this view.

    A header may lie before ``data`` (a socket filter's MAC header, pulled by ``eth_type_trans``);
    Linux reads it from the skb's head. The vm reads such bytes from the buffer behind the region
    holding ``data``, so that buffer must start at the skb's head (the kernel layer's ``SkbState``
    buffer does: ``[headroom | frame | tailroom]``); the region itself may cover the packet only.
    """

    data: int
    headlen: int
    network_offset: int | None = None
    mac_offset: int | None = None


class Execution:
    """The state of one run, and the helper context (:class:`pybpf.vm.helpers.HelperContext`)."""

    __slots__ = (
        "_frames", "base", "budget", "depth", "engine", "env", "left", "may_goto_init", "pc", "skb", "space",
        "tail_call_cnt",
    )

    def __init__(
        self,
        space: AddressSpace,
        *,
        env: Any = None,
        budget: int | None = None,
        skb: SkbView | None = None,
    ) -> None:
        self.space = space
        self.env = env
        self.pc = 0
        self.budget = DEFAULT_BUDGET if budget is None else budget
        self.left = self.budget
        self.tail_call_cnt = 0
        self.depth = -1
        self.base = 0
        """The depth at which the program running the current helper call started (0, or where a tail
        call replaced a subprogram): callbacks count their depth from it. Set by the engines before
        each helper call."""
        self.skb = skb
        self.engine: Engine | None = None
        self.may_goto_init = BPF_MAX_LOOPS
        """may_goto's per-frame counter at function entry (Linux: BPF_MAX_LOOPS; tests lower it)."""
        self._frames: list[Region] = []

    @property
    def insn_count(self) -> int:
        """Instructions executed so far (for the translated tier: whole segments entered)."""
        return self.budget - self.left

    # -- memory, for helpers (faults carry the pc of the call) -------------------------------------
    def read(self, address: int, size: int) -> bytes:
        return self.space.read(address, size, pc=self.pc)

    def write(self, address: int, data: bytes | bytearray | memoryview) -> None:
        self.space.write(address, data, pc=self.pc)

    def load(self, address: int, size: int, *, signed: bool = False) -> int:
        return self.space.load(address, size, signed=signed, pc=self.pc)

    def store(self, address: int, size: int, value: int) -> None:
        self.space.store(address, size, value, pc=self.pc)

    def cstring(self, address: int, max_len: int = 4096) -> bytes:
        return self.space.cstring(address, max_len, pc=self.pc)

    def view(self, address: int, size: int, *, write: bool = False) -> memoryview:
        return self.space.view(address, size, write=write, pc=self.pc)

    # -- per-CPU data ----------------------------------------------------------------------------------
    def percpu_offset(self) -> int:
        """This run's per-CPU offset (the per-CPU address instruction adds it): the base of the
        per-CPU area of the CPU the run is on (``env.cpu``, as ``bpf_get_smp_processor_id``)."""
        return self.space.percpu_area(int(getattr(self.env, "cpu", 0))).base

    # -- callbacks -----------------------------------------------------------------------------------
    def call(self, func_ptr: int, r1: int = 0, r2: int = 0, r3: int = 0, r4: int = 0, r5: int = 0) -> int:
        """Run the BPF function at ``func_ptr`` (a FUNC ``lddw`` value) one frame deeper; returns r0."""
        region = self.space.find(func_ptr)
        engine: Engine | None = None
        if region is not None and region.kind is RegionKind.CODE and callable(region.owner):
            engine = region.owner()
        if engine is None:
            raise HelperError(f"{func_ptr:#x} is not a BPF function pointer", pc=self.pc)
        pc, depth, base = self.pc, self.depth, self.base
        try:
            return engine.call_function(self, func_ptr - region.base, (r1, r2, r3, r4, r5), depth + 1)
        finally:
            self.pc, self.depth, self.base = pc, depth, base

    # -- stack frames ----------------------------------------------------------------------------------
    def frame(self, depth: int) -> Region:
        while len(self._frames) <= depth:
            self._frames.append(self.space.stack_frame(len(self._frames), STACK_SIZE))
        return self._frames[depth]

    def enter_frame(self, depth: int) -> tuple[memoryview, int]:
        """Open (and zero) the frame of call depth ``depth``; returns its buffer and r10."""
        region = self._frames[depth] if depth < len(self._frames) else self.frame(depth)
        region.buf[:] = _ZERO_FRAME
        if region.start:
            self.space.resize(region, 0, STACK_SIZE)
        self.depth = depth
        return region.buf, region.base + STACK_SIZE

    def leave_frame(self, depth: int) -> None:
        """Close the frame of ``depth`` if it is open (pointers into it fault from now on)."""
        if depth < len(self._frames):
            region = self._frames[depth]
            if not region.start:
                self.space.resize(region, STACK_SIZE, STACK_SIZE)
        self.depth = depth - 1

    def close_frames(self) -> None:
        """Close every frame (end of a run, also after a fault)."""
        for region in self._frames:
            if not region.start:
                self.space.resize(region, STACK_SIZE, STACK_SIZE)
        self.depth = -1

    # -- shared failures (one wording for both tiers) ---------------------------------------------------
    def limit_exceeded(self, pc: int) -> InstructionLimitExceeded:
        return InstructionLimitExceeded(f"instruction budget of {self.budget} exhausted", pc=pc)


def err_jump_range(src: int, dst: int) -> ExecutionError:
    return ExecutionError(f"jump out of range from insn {src} to {dst}", pc=src)


def err_jump_lddw(src: int, dst: int) -> ExecutionError:
    return ExecutionError(f"jump into the middle of ldimm64 insn {dst - 1}", pc=src)


def err_fallthrough(pc: int) -> ExecutionError:
    return ExecutionError(
        f"execution fell through the end of the function (last insn is not an exit or jmp) at insn {pc}", pc=pc
    )


def err_call_target(pc: int, target: int) -> ExecutionError:
    return ExecutionError(f"call to invalid destination {target}", pc=pc)


def err_too_deep(pc: int) -> ExecutionError:
    return ExecutionError(f"the call stack of {MAX_CALL_FRAMES + 1} frames is too deep", pc=pc)


def err_runtime_too_deep(pc: int) -> ExecutionError:
    return ExecutionError(f"the call stack of {MAX_RUNTIME_FRAMES + 1} frames is too deep", pc=pc)


def check_depth(pc: int, depth: int, base: int) -> None:
    """Refuse entering a function at ``depth`` by a program that started at ``base`` (see above)."""
    if depth - base >= MAX_CALL_FRAMES:
        raise err_too_deep(pc)
    if depth >= MAX_RUNTIME_FRAMES:
        raise err_runtime_too_deep(pc)


def err_unknown_opcode(pc: int, code: int) -> ExecutionError:
    return ExecutionError(f"unknown opcode {code:02x}", pc=pc)


def err_bad_register(pc: int, reg: int) -> ExecutionError:
    return ExecutionError(f"invalid register r{reg}", pc=pc)


def err_unknown_helper(pc: int, helper_id: int) -> HelperError:
    return HelperError(f"invalid func unknown#{helper_id}", pc=pc)


def err_kfunc(pc: int, btf_id: int) -> HelperError:
    return HelperError(f"kernel function calls (kfunc, BTF id {btf_id}) cannot run in the vm", pc=pc)


def err_bad_endian(pc: int, width: int) -> ExecutionError:
    return ExecutionError(f"invalid byte swap width {width}", pc=pc)


def err_bad_atomic(pc: int, imm: int) -> ExecutionError:
    return ExecutionError(f"invalid atomic operation {imm:#x}", pc=pc)


def err_no_skb(pc: int) -> HelperError:
    return HelperError("LD_ABS/LD_IND need a socket buffer (run with skb=SkbView(...))", pc=pc)
