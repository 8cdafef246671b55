"""RINGBUF producers (``kernel/maps/ringbuf.py``) in machine code.

Records start with the kernel's 8-byte header (``u32 len`` with the busy and discard bits, ``u32``
offset); ``producer_pos`` / ``pending_pos`` / ``consumer_pos`` are u64 header words. Reserving is
done under the map lock word and, like the kernel layer's Python code, first advances
``pending_pos`` past committed records, puts a discarded filler record in front of a record that
would wrap, and refuses what would overrun the consumer. Committing flips the header bits with
``lock cmpxchg``; no lock needed.

Functions (System V): ``ringbuf_reserve(map, size, flags)``, ``ringbuf_submit(sample, flags)``,
``ringbuf_discard(sample, flags)``, ``ringbuf_output(map, data, size, flags)``,
``ringbuf_query(map, flags)``.
"""

from __future__ import annotations

from pybpf.jit.native.asm import Asm
from pybpf.jit.native.common import memcpy
from pybpf.jit.native.layout import ERRNO, Hdr, Ring
from pybpf.jit.x86 import encoder as x
from pybpf.jit.x86.encoder import R8, R9, R10, R11, RAX, RBX, RCX, RDI, RDX, RSI, RSP, Cond, Mem
from pybpf.uapi import MapType

__all__ = ["emit_ringbuf"]

A = x.AluOp
RINGBUF = int(MapType.RINGBUF)
RB_NO_WAKEUP, RB_FORCE_WAKEUP = 1, 2


def emit_ringbuf(a: Asm) -> None:
    _reserve(a)
    _commit(a, "ringbuf_submit", discard=False)
    _commit(a, "ringbuf_discard", discard=True)
    _output(a)
    _query(a)


def _reserve(a: Asm) -> None:
    """``bpf_ringbuf_reserve``: the sample's address, or 0 (bad flags, not a ring buffer, too big,
    no room, lock not taken)."""
    a.func("ringbuf_reserve")
    refused = a.new()
    a(x.test_rr(RDX, RDX))
    a.jcc(Cond.NE, refused)
    a(x.alu_ri(A.CMP, Mem(RDI, Hdr.MAP_TYPE), RINGBUF, 32))
    a.jcc(Cond.NE, refused)
    a(x.alu_ri(A.CMP, RSI, int(Ring.MAX_RECORD_SZ)))
    a.jcc(Cond.A, refused)
    a.tail("ringbuf_reserve_checked")
    a.at(refused)
    a.ret_imm(0)

    # ringbuf_reserve_checked(map=rdi, size=rsi), the argument checks done (``RingbufMap.reserve``)
    a.func("ringbuf_reserve_checked")
    none, none_unlock, scan, scanned, no_filler, filler, no_fill = (a.new() for _ in range(7))
    a.push(RBX)
    a(x.mov_rr(R8, RDI), x.mov_rr(R9, RSI))  # map, size
    a(x.lea(RBX, Mem(RSI, Ring.HDR_SZ + 7)), x.alu_ri(A.AND, RBX, -8))  # length
    a.ld32(RAX, R8, Hdr.MAX_ENTRIES)
    a(x.alu_rr(A.CMP, RBX, RAX))
    a.jcc(Cond.A, none)
    a(x.lea(RDI, Mem(R8, Hdr.LOCK)))
    a.call("lock")
    a(x.test_rr(RAX, RAX, 32))
    a.jcc(Cond.NE, none)
    # rdx = data area, rcx = mask, r10 = pending, r11 = producer
    a.ld64(RDX, R8, Hdr.DATA_OFF)
    a(x.alu_rr(A.ADD, RDX, R8))
    a.ld32(RCX, R8, Hdr.MAX_ENTRIES)
    a(x.alu_ri(A.SUB, RCX, 1))
    a.ld64(R10, R8, Hdr.PENDING_POS)
    a.ld64(R11, R8, Hdr.PRODUCER_POS)
    a.at(scan)  # pending_pos past the records already committed
    a(x.alu_rr(A.CMP, R11, R10))
    a.jcc(Cond.BE, scanned)
    a(x.mov_rr(RAX, R10), x.alu_rr(A.AND, RAX, RCX))
    a(x.mov_load(RAX, Mem(RDX, 0, RAX), 32))
    a(x.test_ri(RAX, int(Ring.BUSY_BIT), 32))
    a.jcc(Cond.NE, scanned)
    a(x.alu_ri(A.AND, RAX, ~int(Ring.DISCARD_BIT) & 0xFFFF_FFFF, 32))
    a(x.alu_ri(A.ADD, RAX, Ring.HDR_SZ + 7), x.alu_ri(A.AND, RAX, -8))
    a(x.alu_rr(A.ADD, R10, RAX))
    a.jmp(scan)
    a.at(scanned)
    a.st64(R8, Hdr.PENDING_POS, R10)
    # rsi = pos, rdi = filler (the rest of the ring when the record would cross its end)
    a(x.mov_rr(RSI, R11), x.alu_rr(A.AND, RSI, RCX))
    a(x.lea(RAX, Mem(RSI, 0, RBX)))
    a.ld32(RDI, R8, Hdr.MAX_ENTRIES)
    a(x.alu_rr(A.CMP, RAX, RDI))
    a.jcc(Cond.A, filler)
    a.zero(RDI)
    a.jmp(no_filler)
    a.at(filler)
    a(x.alu_rr(A.SUB, RDI, RSI))
    a.at(no_filler)
    # rax = new producer position = prod + filler + length, within mask of consumer and pending
    a(x.lea(RAX, Mem(R11, 0, RDI)), x.alu_rr(A.ADD, RAX, RBX))
    a(x.mov_rr(R11, RAX), x.alu_rm(A.SUB, R11, Mem(R8, Hdr.CONSUMER_POS)), x.alu_rr(A.CMP, R11, RCX))
    a.jcc(Cond.A, none_unlock)
    a(x.mov_rr(R11, RAX), x.alu_rr(A.SUB, R11, R10), x.alu_rr(A.CMP, R11, RCX))
    a.jcc(Cond.A, none_unlock)
    a(x.test_rr(RDI, RDI))
    a.jcc(Cond.E, no_fill)
    a(x.lea(RCX, Mem(RDI, -Ring.HDR_SZ)), x.alu_ri(A.OR, RCX, int(Ring.DISCARD_BIT), 32))
    a(x.mov_store(Mem(RDX, 0, RSI), RCX, 32), x.mov_store(Mem(RDX, 4, RSI), RSI, 32))
    a.zero(RSI)
    a.at(no_fill)
    a(x.mov_rr(RCX, R9, 32), x.alu_ri(A.OR, RCX, int(Ring.BUSY_BIT), 32))
    a(x.mov_store(Mem(RDX, 0, RSI), RCX, 32), x.mov_store(Mem(RDX, 4, RSI), RSI, 32))
    a.st64(R8, Hdr.PRODUCER_POS, RAX)
    a(x.lea(RAX, Mem(RDX, Ring.HDR_SZ, RSI)))
    a(x.mov_store_imm(Mem(R8, Hdr.LOCK), 0, 32))
    a.pop(RBX)
    a(x.ret())
    a.at(none_unlock)
    a(x.mov_store_imm(Mem(R8, Hdr.LOCK), 0, 32))
    a.at(none)
    a.pop(RBX)
    a.ret_imm(0)


def _commit(a: Asm, name: str, *, discard: bool) -> None:
    """``bpf_ringbuf_commit``: clear the busy bit (and set the discard bit) of the sample's header."""
    a.func(name)
    retry, not_busy = a.new(), a.new()
    a.at(retry)
    a.ld32(RAX, RDI, -Ring.HDR_SZ)
    a(x.mov_rr(RDX, RAX, 32))
    a(x.test_ri(RDX, int(Ring.BUSY_BIT), 32))
    a.jcc(Cond.E, not_busy)
    a(x.alu_ri(A.XOR, RDX, int(Ring.BUSY_BIT), 32))
    a.at(not_busy)
    if discard:
        a(x.alu_ri(A.OR, RDX, int(Ring.DISCARD_BIT), 32))
    a(x.lock_cmpxchg(Mem(RDI, -Ring.HDR_SZ), RDX, 32))
    a.jcc(Cond.NE, retry)
    a.ret_imm(0)


def _output(a: Asm) -> None:
    """``bpf_ringbuf_output(map, data, size, flags)``: reserve, copy, commit."""
    a.func("ringbuf_output")
    einval, eagain = a.new(), a.new()
    a(x.test_ri(RCX, ~(RB_NO_WAKEUP | RB_FORCE_WAKEUP)))
    a.jcc(Cond.NE, einval)
    a(x.alu_ri(A.CMP, Mem(RDI, Hdr.MAP_TYPE), RINGBUF, 32))
    a.jcc(Cond.NE, einval)
    a(x.alu_ri(A.CMP, RDX, int(Ring.MAX_RECORD_SZ)))
    a.jcc(Cond.A, eagain)
    a.push(RSI, RDX)
    a(x.alu_ri(A.SUB, RSP, 8))
    a(x.mov_rr(RSI, RDX))
    a.call("ringbuf_reserve_checked")
    a(x.alu_ri(A.ADD, RSP, 8))
    a.pop(RCX, RSI)
    a(x.test_rr(RAX, RAX))
    a.jcc(Cond.E, eagain)
    a(x.mov_rr(RDI, RAX), x.mov_rr(RDX, RAX))
    memcpy(a)
    a(x.mov_rr(RDI, RDX))
    a.tail("ringbuf_submit")
    a.at(einval)
    a.ret_imm(-int(ERRNO.EINVAL))
    a.at(eagain)
    a.ret_imm(-int(ERRNO.EAGAIN))


def _query(a: Asm) -> None:
    """``bpf_ringbuf_query``: available data, ring size, consumer or producer position."""
    a.func("ringbuf_query")
    zero = a.new()
    a(x.alu_ri(A.CMP, Mem(RDI, Hdr.MAP_TYPE), RINGBUF, 32))
    a.jcc(Cond.NE, zero)
    cases = [a.new() for _ in range(4)]
    for i, label in enumerate(cases):
        a(x.alu_ri(A.CMP, RSI, i))
        a.jcc(Cond.E, label)
    a.jmp(zero)
    a.at(cases[0])
    a.ld64(RAX, RDI, Hdr.PRODUCER_POS)
    a(x.alu_rm(A.SUB, RAX, Mem(RDI, Hdr.CONSUMER_POS)), x.ret())
    a.at(cases[1])
    a.ld32(RAX, RDI, Hdr.MAX_ENTRIES)
    a(x.ret())
    a.at(cases[2])
    a.ld64(RAX, RDI, Hdr.CONSUMER_POS)
    a(x.ret())
    a.at(cases[3])
    a.ld64(RAX, RDI, Hdr.PRODUCER_POS)
    a(x.ret())
    a.at(zero)
    a.ret_imm(0)
