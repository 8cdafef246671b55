"""Subroutines the map helpers share: the lock word, the key hash, key comparison, value copies.

These are internal library functions with their own register contracts (documented on each); the
helpers a program calls are System V functions built on them. Everything follows the kernel layer's
Python code step for step, so native and Python operations on one map interleave freely:

* **lock words** — a u32 that is 0 when free and holds the owner's tgid when taken, taken with
  ``lock cmpxchg`` (``kernel/native.py``: ``lock_word``). Native code spins with ``pause``; after
  :data:`SPIN_LIMIT` rounds it gives up and the helper returns ``-EBUSY`` (the Python side takes over
  a word whose holder died; native code cannot ask the OS, so a dead holder surfaces as EBUSY instead
  of a hang);
* **key_hash** — the storage's hash (``kernel/maps/base.py``), a multiply per 8-byte key word;
* **copy_map_value** — a value's spin-lock word is never overwritten by a copy; with
  ``BPF_F_LOCK`` the copy happens holding that word.
"""

from __future__ import annotations

from pybpf.jit.native.asm import Asm, pause, rep_movsb, rep_stosb
from pybpf.jit.native.layout import ENV, KEY_HASH_MUL, NO_SPIN_LOCK, EnvField, Hdr
from pybpf.jit.x86 import encoder as x
from pybpf.jit.x86.encoder import R8, R9, R10, R11, R12, RAX, RBX, RCX, RDI, RDX, RSI, RSP, Cond, Mem

__all__ = ["SPIN_LIMIT", "emit_common", "emit_percpu_value_write", "emit_slot_address", "memcpy", "memset0",
           "round8"]

SPIN_LIMIT = 1 << 24
"""``pause`` rounds before a lock attempt gives up (about a second)."""

A = x.AluOp


def memcpy(a: Asm) -> None:
    """rcx bytes from [rsi] to [rdi] (clobbers rdi, rsi, rcx)."""
    a(rep_movsb())


def memset0(a: Asm) -> None:
    """Zero rcx bytes at [rdi] (clobbers rdi, rcx, rax)."""
    a.zero(RAX)
    a(rep_stosb())


def round8(a: Asm, r: x.Reg) -> None:
    """r = round_up(r, 8) (32-bit)."""
    a(x.alu_ri(A.ADD, r, 7, 32), x.alu_ri(A.AND, r, -8 & 0xFFFF_FFFF, 32))


def emit_slot_address(a: Asm, name: str) -> None:
    """Function ``name``: rax = address of slot eax (slot + 1, as links in storage are) of the
    ``elem_size``-byte slots at ``data_off`` of the map at rbx — hash elements and trie nodes alike.
    Clobbers rcx."""
    a.func(name)
    a(x.alu_ri(A.SUB, RAX, 1, 32))
    a.ld32(RCX, RBX, Hdr.ELEM_SIZE)
    a(x.imul_rr(RAX, RCX), x.alu_rm(A.ADD, RAX, Mem(RBX, Hdr.DATA_OFF)), x.alu_rr(A.ADD, RAX, RBX))
    a(x.ret())


def emit_percpu_value_write(a: Asm, *, new: bool, value_slot: int) -> None:
    """A program's update of a per-CPU hash element (``pcpu_copy_value`` from a program): rdi = the
    element's value area (``ncpus`` copies of ``round_up(value_size, 8)`` bytes) of the map at rbx;
    this CPU's copy (the env block's CPU, r12) gets the ``value_size`` bytes the pointer at
    ``[rsp + value_slot]`` points to; a ``new`` element's other copies are zeroed first. Clobbers
    rax, rcx, rdx, rsi, rdi, r8."""
    a.ld32(R8, RBX, Hdr.VALUE_SIZE)
    round8(a, R8)  # r8 = stride
    if new:
        a(x.mov_rr(RCX, R8, 32))
        a.ld32(RAX, RBX, Hdr.NCPUS)
        a(x.imul_rr(RCX, RAX), x.mov_rr(RDX, RDI))
        memset0(a)
        a(x.mov_rr(RDI, RDX))
    a.ld32(RAX, R12, ENV + EnvField.CPU)
    a(x.imul_rr(RAX, R8), x.alu_rr(A.ADD, RDI, RAX))
    a.ld64(RSI, RSP, value_slot)
    a.ld32(RCX, RBX, Hdr.VALUE_SIZE)
    memcpy(a)


def emit_common(a: Asm) -> None:
    _lock(a)
    _load_partial(a)
    _key_hash(a)
    _key_eq(a)
    _copy_value(a)


def _lock(a: Asm) -> None:
    """``lock``: take the lock word at [rdi]. Returns eax = 0 (taken) or 1 (gave up). Clobbers
    rax, r10, r11; rdi is kept."""
    a.func("lock")
    retry, spin, taken, gave_up = a.new(), a.new(), a.new(), a.new()
    a.ld32(R10, R12, ENV + EnvField.OWNER)
    a(x.mov_ri(R11, SPIN_LIMIT, 32))
    a.at(retry)
    a.zero(RAX)
    a(x.lock_cmpxchg(Mem(RDI, 0), R10, 32))
    a.jcc(Cond.E, taken)
    a.at(spin)
    a(pause())
    a(x.alu_ri(A.SUB, R11, 1, 32))
    a.jcc(Cond.E, gave_up)
    a(x.alu_ri(A.CMP, Mem(RDI, 0), 0, 32))
    a.jcc(Cond.NE, spin)
    a.jmp(retry)
    a.at(taken)
    a.ret_imm(0)
    a.at(gave_up)
    a.ret_imm(1)


def _load_partial(a: Asm) -> None:
    """``load_partial``: rax = the r9d (1..7) bytes at [rsi], little-endian, zero-extended — without
    reading a byte past them (a key may end at the end of a mapping). Clobbers rax, rcx, r10."""
    a.func("load_partial")
    no4, no2, done = a.new(), a.new(), a.new()
    a.zero(RAX)
    a.zero(RCX)  # ecx: bytes loaded so far
    a(x.test_ri(R9, 4, 32))
    a.jcc(Cond.E, no4)
    a.ld32(RAX, RSI)
    a(x.mov_ri(RCX, 4, 32))
    a.at(no4)
    a(x.test_ri(R9, 2, 32))
    a.jcc(Cond.E, no2)
    a(x.movzx(R10, Mem(RSI, 0, RCX), 16, 32))
    a(x.shift_ri(x.ShiftOp.SHL, RCX, 3, 32))
    a(x.shift_cl(x.ShiftOp.SHL, R10, 64))
    a(x.shift_ri(x.ShiftOp.SHR, RCX, 3, 32))
    a(x.alu_rr(A.OR, RAX, R10))
    a(x.alu_ri(A.ADD, RCX, 2, 32))
    a.at(no2)
    a(x.test_ri(R9, 1, 32))
    a.jcc(Cond.E, done)
    a(x.movzx(R10, Mem(RSI, 0, RCX), 8, 32))
    a(x.shift_ri(x.ShiftOp.SHL, RCX, 3, 32))
    a(x.shift_cl(x.ShiftOp.SHL, R10, 64))
    a(x.alu_rr(A.OR, RAX, R10))
    a.at(done)
    a(x.ret())


def _key_hash(a: Asm) -> None:
    """``key_hash``: eax = key_hash(key at [rsi], seed) for the map at rdi (key_size and seed from its
    header). Clobbers rax, rcx, rsi, r8, r9, r10, r11; keeps rdi, rdx."""
    a.func("key_hash")
    loop, tail, done = a.new(), a.new(), a.new()
    a.ld32(R9, RDI, Hdr.KEY_SIZE)
    a.ld32(R11, RDI, Hdr.SEED)
    a(x.movabs(R8, KEY_HASH_MUL))
    a.at(loop)
    a(x.alu_ri(A.CMP, R9, 8, 32))
    a.jcc(Cond.B, tail)
    a(x.alu_rm(A.XOR, R11, Mem(RSI, 0)))
    a(x.imul_rr(R11, R8))
    a(x.alu_ri(A.ADD, RSI, 8))
    a(x.alu_ri(A.SUB, R9, 8, 32))
    a.jmp(loop)
    a.at(tail)
    a(x.test_rr(R9, R9, 32))
    a.jcc(Cond.E, done)
    a.call("load_partial")
    a(x.alu_rr(A.XOR, R11, RAX))
    a(x.imul_rr(R11, R8))
    a.at(done)
    a(x.mov_rr(RAX, R11))
    a(x.shift_ri(x.ShiftOp.SHR, RAX, 32))
    a(x.alu_rr(A.XOR, RAX, R11, 32))
    a(x.ret())


def _key_eq(a: Asm) -> None:
    """``key_eq``: ZF = the r9d bytes at [rsi] equal the stored key at [rdi] (zero-padded to 8 bytes,
    as the storage keeps keys). Clobbers rax, rcx, rsi, rdi, r9, r10."""
    a.func("key_eq")
    loop, tail, equal, differ = a.new(), a.new(), a.new(), a.new()
    a.at(loop)
    a(x.alu_ri(A.CMP, R9, 8, 32))
    a.jcc(Cond.B, tail)
    a.ld64(RAX, RSI)
    a(x.alu_rm(A.CMP, RAX, Mem(RDI, 0)))
    a.jcc(Cond.NE, differ)
    a(x.alu_ri(A.ADD, RSI, 8))
    a(x.alu_ri(A.ADD, RDI, 8))
    a(x.alu_ri(A.SUB, R9, 8, 32))
    a.jmp(loop)
    a.at(tail)
    a(x.test_rr(R9, R9, 32))
    a.jcc(Cond.E, equal)
    a.call("load_partial")
    a(x.alu_rm(A.CMP, RAX, Mem(RDI, 0)))
    a.at(differ)
    a(x.ret())
    a.at(equal)
    a.zero(RAX)
    a(x.ret())


def _copy_value(a: Asm) -> None:
    """``copy_value``: ``copy_map_value`` (r9d = 0) / ``copy_map_value_locked`` (r9d != 0) of
    value_size bytes from [rsi] into the value at rdi of the map at r8: the value's spin-lock word,
    if it has one, is never written. Returns eax = 0, or 1 when its lock could not be taken.
    Clobbers every caller-saved register."""
    a.func("copy_value")
    has_lock, unlocked, failed = a.new(), a.new(), a.new()
    a.ld32(RCX, R8, Hdr.VALUE_SIZE)
    a.ld32(RAX, R8, Hdr.SPIN_LOCK_OFF)
    a(x.alu_ri(A.CMP, RAX, NO_SPIN_LOCK, 32))
    a.jcc(Cond.NE, has_lock)
    memcpy(a)
    a.ret_imm(0)
    a.at(has_lock)
    a(x.mov_rr(RDX, RDI))  # rdx = value, r8 = lock offset, r9 = value size from here on
    a(x.mov_rr(R8, RAX, 32))
    a(x.test_rr(R9, R9, 32))
    a(x.mov_rr(R9, RCX, 32))
    a.jcc(Cond.E, unlocked)
    a(x.lea(RDI, Mem(RDX, 0, R8)))
    a.call("lock")
    a(x.test_rr(RAX, RAX, 32))
    a.jcc(Cond.NE, failed)
    a.call("copy_around_lock")
    a(x.mov_store_imm(Mem(RDX, 0, R8), 0, 32))  # release the value's lock
    a.ret_imm(0)
    a.at(unlocked)
    a.call("copy_around_lock")
    a.ret_imm(0)
    a.at(failed)
    a.ret_imm(1)
    # copy_around_lock: [rdx, +r8) and [rdx + r8 + 4, rdx + r9) from the same places of [rsi]
    a.func("copy_around_lock")
    a(x.mov_rr(RDI, RDX), x.mov_rr(RCX, R8, 32), x.push(RSI))
    memcpy(a)
    a(x.pop(RSI))
    a(x.lea(RDI, Mem(RDX, 4, R8)), x.lea(RSI, Mem(RSI, 4, R8)))
    a(x.mov_rr(RCX, R9, 32), x.alu_rr(A.SUB, RCX, R8, 32), x.alu_ri(A.SUB, RCX, 4, 32))
    memcpy(a)
    a(x.ret())
