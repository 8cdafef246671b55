"""LPM_TRIE lookups (``kernel/maps/lpm_trie.py``, the kernel's ``trie_lookup_elem``) in machine code.

The key is ``{u32 prefixlen; u8 data[data_size]}``; the walk starts at the root (``head``), at each
node counts the leading bits the node's prefix shares with the key (8 bytes at a time: byte-swap to
big-endian, xor, ``bsr``), stops on a full match or a node the key leaves, remembers the last real
(non-intermediate) node it passed, and descends by the key's next bit — the kernel layer's Python
walk, step for step. Keys of up to 8 data bytes (IPv4, /64 IPv6 prefixes) keep their data in one
register for the whole walk. Updates and deletes stay with the kernel layer's Python code (they
reshape the trie under the map lock).

Function (System V): ``trie_lookup(map, key)`` — the value address or 0.
"""

from __future__ import annotations

from pybpf.jit.native.asm import Asm, bsr
from pybpf.jit.native.common import round8
from pybpf.jit.native.layout import LPM_FL_IM, Hdr, Lpm
from pybpf.jit.x86 import encoder as x
from pybpf.jit.x86.encoder import (
    R8,
    R9,
    R10,
    R11,
    R13,
    R14,
    R15,
    RAX,
    RBP,
    RBX,
    RCX,
    RDI,
    RDX,
    RSI,
    Cond,
    Mem,
)

__all__ = ["emit_lpm"]

A = x.AluOp
SAVED = (RBX, RBP, R13, R14, R15)


def emit_lpm(a: Asm) -> None:
    _match(a)
    _lookup(a)


def _match(a: Asm) -> None:
    """``lpm_match``: eax = leading bits shared by the key data at [rbp] and the node data at
    [r13 + DATA], at most ecx (``longest_prefix_match`` with the limit). r9d = data size. Clobbers
    rax, rcx, rsi, rdi; keeps every other register."""
    a.func("lpm_match")
    loop, partial, have, limit, done = (a.new() for _ in range(5))
    a.push(RDX, R9, R10, R11)
    a(x.mov_rr(R11, RCX))  # the limit
    a.zero(RDX)  # byte offset
    a.at(loop)
    a(x.mov_rr(RAX, RDX, 32))
    a(x.shift_ri(x.ShiftOp.SHL, RAX, 3, 32), x.alu_rr(A.CMP, RAX, R11, 32))
    a.jcc(Cond.AE, limit)
    a(x.mov_rr(RAX, R9, 32), x.alu_rr(A.SUB, RAX, RDX, 32), x.alu_ri(A.CMP, RAX, 8, 32))
    a.jcc(Cond.B, partial)
    a(x.mov_load(RAX, Mem(RBP, 0, RDX)))
    a.jmp(have)
    a.at(partial)
    a(x.lea(RSI, Mem(RBP, 0, RDX)), x.push(R9), x.mov_rr(R9, RAX, 32))
    a.call("load_partial")  # clobbers rax, rcx, r10
    a(x.pop(R9))
    a.at(have)
    a(x.mov_load(RDI, Mem(R13, Lpm.DATA, RDX)))
    a(x.bswap(RAX), x.bswap(RDI), x.alu_rr(A.XOR, RDI, RAX))
    nonzero = a.new()
    a.jcc(Cond.NE, nonzero)
    a(x.alu_ri(A.ADD, RDX, 8, 32))
    a.jmp(loop)
    a.at(nonzero)
    a(bsr(RDI, RDI))
    a(x.mov_rr(RAX, RDX, 32), x.shift_ri(x.ShiftOp.SHL, RAX, 3, 32), x.alu_ri(A.ADD, RAX, 63, 32))
    a(x.alu_rr(A.SUB, RAX, RDI, 32))
    a(x.alu_rr(A.CMP, RAX, R11, 32))
    a.jcc(Cond.BE, done)
    a.at(limit)
    a(x.mov_rr(RAX, R11, 32))
    a.at(done)
    a.pop(R11, R10, R9, RDX)
    a(x.ret())


def _lookup(a: Asm) -> None:
    a.func("trie_lookup")
    out, none, loop, end, full_match, skip, wide, fast_key, key_done = (a.new() for _ in range(9))
    a.push(*SAVED)
    a.ld32(R9, RDI, Hdr.KEY_SIZE)
    a(x.alu_ri(A.SUB, R9, 4, 32))  # data size
    a(x.lea(RBP, Mem(RSI, 4)))  # key data
    # the key's first 8 data bytes, big-endian, in rbp when they are all of it
    a(x.alu_ri(A.CMP, R9, 8, 32))
    a.jcc(Cond.A, wide)
    a.jcc(Cond.E, fast_key)
    a(x.push(RSI), x.mov_rr(RSI, RBP))
    a.call("load_partial")
    a(x.pop(RSI))
    a.jmp(key_done)
    a.at(fast_key)
    a.ld64(RAX, RBP)
    a.at(key_done)
    a(x.bswap(RAX), x.mov_rr(RBP, RAX))
    a.at(wide)
    a.ld32(R8, RSI)  # prefixlen
    a(x.mov_rr(R10, R9, 32))
    a(x.shift_ri(x.ShiftOp.SHL, R10, 3, 32))  # max_prefixlen
    a(x.alu_rr(A.CMP, R8, R10, 32))
    a.jcc(Cond.A, none)
    a.zero(R11)  # found
    a.ld32(RDX, RDI, Hdr.HEAD)
    a.ld32(RBX, RDI, Hdr.MAX_ENTRIES)
    a(x.lea(RBX, Mem(RBX, 1, RBX)))  # steps: the pool (2 * max_entries) + 1
    a.ld64(R14, RDI, Hdr.DATA_OFF)
    a(x.alu_rr(A.ADD, R14, RDI))
    a.ld32(R15, RDI, Hdr.ELEM_SIZE)
    a.push(RDI)  # the map, for the value offset at the end
    a.at(loop)
    a(x.test_rr(RDX, RDX, 32))
    a.jcc(Cond.E, end)
    a(x.test_rr(RBX, RBX))
    a.jcc(Cond.E, end)
    a(x.alu_ri(A.SUB, RBX, 1))
    a(x.lea(RAX, Mem(RDX, -1)), x.mov_rr(RAX, RAX, 32), x.imul_rr(RAX, R15))
    a(x.lea(R13, Mem(R14, 0, RAX)))  # the node
    a.ld32(RAX, R13, Lpm.PREFIXLEN)
    a(x.mov_rr(RCX, RAX, 32), x.alu_rr(A.CMP, RCX, R8, 32))
    lim_ok = a.new()
    a.jcc(Cond.BE, lim_ok)
    a(x.mov_rr(RCX, R8, 32))
    a.at(lim_ok)  # ecx = min(node prefixlen, key prefixlen)
    slow, matched = a.new(), a.new()
    a(x.alu_ri(A.CMP, R9, 8, 32))
    a.jcc(Cond.A, slow)
    a.ld64(RDI, R13, Lpm.DATA)
    a(x.bswap(RDI), x.alu_rr(A.XOR, RDI, RBP))
    a(x.mov_ri(RSI, 64, 32))
    some = a.new()
    a.jcc(Cond.E, some)
    a(bsr(RDI, RDI), x.mov_ri(RSI, 63, 32), x.alu_rr(A.SUB, RSI, RDI, 32))
    a.at(some)
    a(x.alu_rr(A.CMP, RSI, RCX, 32))
    capped = a.new()
    a.jcc(Cond.BE, capped)
    a(x.mov_rr(RSI, RCX, 32))
    a.at(capped)
    a.jmp(matched)
    a.at(slow)
    a(x.push(RAX))
    a.call("lpm_match")
    a(x.mov_rr(RSI, RAX, 32), x.pop(RAX))
    a.at(matched)  # esi = bits matched, eax = the node's prefixlen
    a(x.alu_rr(A.CMP, RSI, R10, 32))
    a.jcc(Cond.E, full_match)
    a(x.alu_rr(A.CMP, RSI, RAX, 32))
    a.jcc(Cond.B, end)
    a(x.test_ri(Mem(R13, Lpm.FLAGS), LPM_FL_IM, 32))
    a.jcc(Cond.NE, skip)
    a(x.mov_rr(R11, RDX, 32))
    a.at(skip)
    # next = child[bit prefixlen of the key]
    a(x.alu_ri(A.CMP, R9, 8, 32))
    wide_bit, have_bit = a.new(), a.new()
    a.jcc(Cond.A, wide_bit)
    a(x.mov_ri(RCX, 63, 32), x.alu_rr(A.SUB, RCX, RAX, 32))
    a(x.mov_rr(RDI, RBP), x.shift_cl(x.ShiftOp.SHR, RDI), x.alu_ri(A.AND, RDI, 1, 32))
    a.jmp(have_bit)
    a.at(wide_bit)
    a(x.mov_rr(RDI, RAX, 32), x.shift_ri(x.ShiftOp.SHR, RDI, 3, 32))
    a(x.movzx(RDI, Mem(RBP, 0, RDI), 8, 32))
    a(x.mov_rr(RCX, RAX, 32), x.alu_ri(A.AND, RCX, 7, 32), x.alu_ri(A.XOR, RCX, 7, 32))
    a(x.shift_cl(x.ShiftOp.SHR, RDI, 32), x.alu_ri(A.AND, RDI, 1, 32))
    a.at(have_bit)
    a.ld32(RDX, R13, Lpm.CHILD0, RDI, 4)
    a.jmp(loop)
    a.at(full_match)
    a(x.mov_rr(R11, RDX, 32))
    a.at(end)
    a(x.pop(RDI))
    a(x.test_rr(R11, R11, 32))
    a.jcc(Cond.E, none)
    a(x.lea(RAX, Mem(R11, -1)), x.mov_rr(RAX, RAX, 32), x.imul_rr(RAX, R15))
    a(x.alu_rr(A.ADD, RAX, R14))
    a(x.mov_rr(RCX, R9, 32))
    round8(a, RCX)
    a(x.lea(RAX, Mem(RAX, Lpm.DATA, RCX)))
    a.jmp(out)
    a.at(none)
    a.zero(RAX)
    a.at(out)
    a.pop(*reversed(SAVED))
    a(x.ret())
