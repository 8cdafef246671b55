"""QUEUE and STACK (``kernel/maps/queue_stack.py``) in machine code.

A ring of ``size = max_entries + 1`` slots of ``round_up(value_size, 8)`` bytes; ``head`` is the next
write, ``tail`` the oldest element; the map lock word serialises every operation. An empty map gives
``-ENOENT`` and a zeroed value, as the kernel layer's helper does.

Functions (System V): ``qs_push(map, value, flags)``, and ``queue_pop`` / ``queue_peek`` /
``stack_pop`` / ``stack_peek`` ``(map, value_out)``.
"""

from __future__ import annotations

from pybpf.jit.native.asm import Asm
from pybpf.jit.native.common import memcpy, memset0
from pybpf.jit.native.layout import ERRNO, Hdr
from pybpf.jit.x86 import encoder as x
from pybpf.jit.x86.encoder import R8, R9, R10, RAX, RCX, RDI, RDX, RSI, RSP, Cond, Mem

__all__ = ["emit_queue_stack"]

A = x.AluOp
NOEXIST, EXIST = 1, 2


def emit_queue_stack(a: Asm) -> None:
    _push(a)
    for stack in (False, True):
        for delete in (True, False):
            _get(a, stack=stack, delete=delete)


def _wrap(a: Asm, reg: x.Reg, limit: x.Reg) -> None:
    """reg = reg + 1, back to 0 at ``limit``."""
    ok = a.new()
    a(x.alu_ri(A.ADD, reg, 1, 32), x.alu_rr(A.CMP, reg, limit, 32))
    a.jcc(Cond.B, ok)
    a.zero(reg)
    a.at(ok)


def _slot_addr(a: Asm, dst: x.Reg, index: x.Reg) -> None:
    """dst = address of ring slot ``index`` of the map at r8 (clobbers rax, rcx)."""
    a(x.mov_rr(RAX, index, 32))
    a.ld32(RCX, R8, Hdr.ELEM_SIZE)
    a(x.imul_rr(RAX, RCX))
    a(x.alu_rm(A.ADD, RAX, Mem(R8, Hdr.DATA_OFF)), x.alu_rr(A.ADD, RAX, R8))
    if dst != RAX:
        a(x.mov_rr(dst, RAX))


def _lock_r8(a: Asm, busy: object) -> None:
    a(x.lea(RDI, Mem(R8, Hdr.LOCK)))
    a.call("lock")
    a(x.test_rr(RAX, RAX, 32))
    a.jcc(Cond.NE, busy)


def _push(a: Asm) -> None:
    """``push_elem``: with BPF_EXIST a full map drops its oldest element."""
    a.func("qs_push")
    einval, e2big, busy, room, out = (a.new() for _ in range(5))
    a(x.test_ri(RDX, NOEXIST, 32))
    a.jcc(Cond.NE, einval)
    a(x.alu_ri(A.CMP, RDX, EXIST))
    a.jcc(Cond.A, einval)
    a(x.mov_rr(R8, RDI), x.mov_rr(R9, RSI), x.mov_rr(RSI, RDX))  # map, value, flags (lock keeps rsi)
    a(x.alu_ri(A.SUB, RSP, 8))
    _lock_r8(a, busy)
    a.ld32(R10, R8, Hdr.N_BUCKETS)  # ring size
    a.ld32(RDX, R8, Hdr.HEAD)
    _wrap(a, RDX, R10)
    a(x.alu_rm(A.CMP, RDX, Mem(R8, Hdr.TAIL), 32))
    a.jcc(Cond.NE, room)
    a(x.test_ri(RSI, EXIST, 32))
    a.jcc(Cond.E, e2big)
    a.ld32(RDX, R8, Hdr.TAIL)
    _wrap(a, RDX, R10)
    a.st32(R8, Hdr.TAIL, RDX)
    a.at(room)
    a.ld32(RDX, R8, Hdr.HEAD)
    _slot_addr(a, RDI, RDX)
    a(x.mov_rr(RSI, R9))
    a.ld32(RCX, R8, Hdr.VALUE_SIZE)
    memcpy(a)
    _wrap(a, RDX, R10)
    a.st32(R8, Hdr.HEAD, RDX)
    a.zero(RAX)
    a.at(out)
    a(x.mov_store_imm(Mem(R8, Hdr.LOCK), 0, 32))
    a(x.alu_ri(A.ADD, RSP, 8), x.ret())
    a.at(e2big)
    a(x.mov_ri(RAX, -int(ERRNO.E2BIG), 64))
    a.jmp(out)
    a.at(busy)
    a(x.alu_ri(A.ADD, RSP, 8))
    a.ret_imm(-int(ERRNO.EBUSY))
    a.at(einval)
    a.ret_imm(-int(ERRNO.EINVAL))


def _get(a: Asm, *, stack: bool, delete: bool) -> None:
    """pop / peek: copy the next value out (zeros and -ENOENT when empty)."""
    a.func(f"{'stack' if stack else 'queue'}_{'pop' if delete else 'peek'}")
    empty, busy, out = a.new(), a.new(), a.new()
    a(x.mov_rr(R8, RDI), x.mov_rr(R9, RSI))
    a(x.alu_ri(A.SUB, RSP, 8))
    _lock_r8(a, busy)
    a.ld32(RDX, R8, Hdr.HEAD)
    a(x.alu_rm(A.CMP, RDX, Mem(R8, Hdr.TAIL), 32))
    a.jcc(Cond.E, empty)
    a.ld32(R10, R8, Hdr.N_BUCKETS)
    if stack:  # index = head - 1, or the last slot when head is 0
        in_range = a.new()
        a(x.alu_ri(A.SUB, RDX, 1, 32), x.alu_rr(A.CMP, RDX, R10, 32))
        a.jcc(Cond.B, in_range)
        a(x.lea(RDX, Mem(R10, -1)), x.mov_rr(RDX, RDX, 32))
        a.at(in_range)
    else:
        a.ld32(RDX, R8, Hdr.TAIL)
    _slot_addr(a, RSI, RDX)
    a(x.mov_rr(RDI, R9))
    a.ld32(RCX, R8, Hdr.VALUE_SIZE)
    memcpy(a)
    if delete:
        if stack:
            a.st32(R8, Hdr.HEAD, RDX)
        else:
            _wrap(a, RDX, R10)
            a.st32(R8, Hdr.TAIL, RDX)
    a.zero(RAX)
    a.at(out)
    a(x.mov_store_imm(Mem(R8, Hdr.LOCK), 0, 32))
    a(x.alu_ri(A.ADD, RSP, 8), x.ret())
    a.at(empty)
    a(x.mov_rr(RDI, R9))
    a.ld32(RCX, R8, Hdr.VALUE_SIZE)
    memset0(a)
    a(x.mov_ri(RAX, -int(ERRNO.ENOENT), 64))
    a.jmp(out)
    a.at(busy)  # could not take the lock: still a zeroed value
    a(x.mov_rr(RDI, R9))
    a.ld32(RCX, R8, Hdr.VALUE_SIZE)
    memset0(a)
    a(x.alu_ri(A.ADD, RSP, 8))
    a.ret_imm(-int(ERRNO.EBUSY))
