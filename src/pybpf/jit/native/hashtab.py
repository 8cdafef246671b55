"""HASH, PERCPU_HASH (writers and lookups) and LRU_HASH, LRU_PERCPU_HASH, DEVMAP_HASH (lookups) on
the kernel layer's hash-table storage (``kernel/maps/hash.py``), in machine code.

One implementation serves the types: the map type in the header decides per call whether a lookup
marks the element referenced (LRU: 9, 10) and whether values are per-CPU (5, 10). Each operation is
the kernel layer's Python method transcribed — same search order, same free-list and bump
allocation, same bucket surgery — so that after any mix of native and Python operations the storage
holds the same bytes. Writers hold the map's lock word; lookups take no lock, as the Python code's
do (a step limit bounds every chain walk). The LRU types' writers are :mod:`pybpf.jit.native.lru`.

Functions (System V unless noted; ``map`` is the storage address):

* ``htab_lookup(map, key)`` — ``bpf_map_lookup_elem``: the value (this CPU's copy) or 0; LRU types
  mark the element referenced;
* ``htab_lookup_percpu(map, key, cpu)`` — ``bpf_map_lookup_percpu_elem``;
* ``htab_lookup_raw(map, key)`` — ``__htab_map_lookup_elem``: the *element* (the verifier's inline
  sequence steps to the value);
* ``htab_update(map, key, value, flags)`` / ``htab_delete(map, key)`` — HASH and PERCPU_HASH:
  negative errno or 0.
"""

from __future__ import annotations

from pybpf.jit.native.asm import Asm
from pybpf.jit.native.common import emit_percpu_value_write, emit_slot_address, memcpy, memset0, round8
from pybpf.jit.native.layout import ENV, ERRNO, FL_USED, NO_SPIN_LOCK, Elem, EnvField, Hdr
from pybpf.jit.x86 import encoder as x
from pybpf.jit.x86.encoder import R8, R9, R12, R13, R14, R15, RAX, RBP, RBX, RCX, RDI, RDX, RSI, RSP, Cond, Mem
from pybpf.uapi import MapType

__all__ = ["emit_hashtab", "emit_is_type"]

A = x.AluOp
LRU_TYPES = (int(MapType.LRU_HASH), int(MapType.LRU_PERCPU_HASH))
PERCPU_TYPES = (int(MapType.PERCPU_HASH), int(MapType.LRU_PERCPU_HASH))
SAVED = (RBX, RBP, R13, R14, R15)
F_LOCK, NOEXIST, EXIST = 4, 1, 2
_VALUE, _FLAGS = 0, 8  # htab_update's locals, from rsp


def emit_is_type(a: Asm, map_reg: x.Reg, types: tuple[int, ...], yes: object, scratch: x.Reg = RAX) -> None:
    """Jump to ``yes`` when the map at ``map_reg`` has one of ``types`` (clobbers ``scratch``)."""
    a.ld32(scratch, map_reg, Hdr.MAP_TYPE)
    for t in types:
        a(x.alu_ri(A.CMP, scratch, t, 32))
        a.jcc(Cond.E, yes)


def emit_hashtab(a: Asm) -> None:
    _elem(a)
    _alloc_slot(a)
    _lookup(a)
    _update(a)
    _delete(a)


# -- slots ------------------------------------------------------------------------------------------
def _elem(a: Asm) -> None:
    """``htab_elem``: rax = address of element slot eax (slot + 1) of the map at rbx. Clobbers rcx."""
    emit_slot_address(a, "htab_elem")


def _elem_of(a: Asm, slot: x.Reg) -> None:
    """rax = element address of ``slot`` (clobbers rcx)."""
    a(x.mov_rr(RAX, slot, 32))
    a.call("htab_elem")


def _bucket(a: Asm, dst: x.Reg, hash_reg: x.Reg) -> None:
    """dst = address of the bucket head of hash ``hash_reg`` in the map at rbx (clobbers rax, rcx)."""
    a.ld32(RAX, RBX, Hdr.N_BUCKETS)
    a(x.alu_ri(A.SUB, RAX, 1, 32), x.alu_rr(A.AND, RAX, hash_reg, 32))
    a.ld64(RCX, RBX, Hdr.AUX_OFF)
    a(x.alu_rr(A.ADD, RCX, RBX))
    a(x.lea(dst, Mem(RCX, 0, RAX, 4)))


def _alloc_slot(a: Asm) -> None:
    """``htab_alloc``: ``_alloc_slot`` — eax = a free slot + 1 (free list first, then never-used
    slots) or 0, for the map at rbx. Clobbers rax, rcx, rdx."""
    a.func("htab_alloc")
    bump, none = a.new(), a.new()
    a.ld32(RDX, RBX, Hdr.FREE_HEAD)
    a(x.test_rr(RDX, RDX, 32))
    a.jcc(Cond.E, bump)
    _elem_of(a, RDX)
    a.ld32(RCX, RAX, Elem.NEXT)
    a.st32(RBX, Hdr.FREE_HEAD, RCX)
    a(x.mov_rr(RAX, RDX, 32), x.ret())
    a.at(bump)
    a.ld32(RAX, RBX, Hdr.BUMP)
    a(x.alu_rm(A.CMP, RAX, Mem(RBX, Hdr.MAX_ENTRIES), 32))
    a.jcc(Cond.AE, none)
    a(x.alu_ri(A.ADD, RAX, 1, 32))
    a.st32(RBX, Hdr.BUMP, RAX)
    a(x.ret())
    a.at(none)
    a.ret_imm(0)


# -- search -----------------------------------------------------------------------------------------
def _find(a: Asm) -> None:
    """Inline ``_find`` for the map at rbx and the key at r13: r14d = the key's hash, r15d = the slot
    + 1 holding the key (0: none), ebp = the slot + 1 before it in its bucket chain (0: it is the
    head), rax = the element's address (0: none). Clobbers caller-saved registers."""
    loop, nxt, not_found, found, done = (a.new() for _ in range(5))
    a(x.mov_rr(RDI, RBX), x.mov_rr(RSI, R13))
    a.call("key_hash")
    a(x.mov_rr(R14, RAX, 32))
    _bucket(a, RCX, R14)
    a.ld32(R15, RCX)
    a.zero(RBP)
    a.ld32(R8, RBX, Hdr.MAX_ENTRIES)
    a(x.alu_ri(A.ADD, R8, 1))  # at most max_entries + 1 steps
    a.at(loop)
    a(x.test_rr(R15, R15, 32))
    a.jcc(Cond.E, not_found)
    a(x.test_rr(R8, R8))
    a.jcc(Cond.E, not_found)
    a(x.alu_ri(A.SUB, R8, 1))
    _elem_of(a, R15)
    a(x.mov_rr(RDX, RAX))
    a(x.alu_rm(A.CMP, R14, Mem(RDX, Elem.HASH), 32))
    a.jcc(Cond.NE, nxt)
    a(x.lea(RDI, Mem(RDX, Elem.KEY)), x.mov_rr(RSI, R13))
    a.ld32(R9, RBX, Hdr.KEY_SIZE)
    a.call("key_eq")
    a.jcc(Cond.E, found)
    a.at(nxt)
    a(x.mov_rr(RBP, R15, 32))
    a.ld32(R15, RDX, Elem.NEXT)
    a.jmp(loop)
    a.at(not_found)
    a.zero(R15)
    a.zero(RBP)
    a.zero(RAX)
    a.jmp(done)
    a.at(found)
    a(x.mov_rr(RAX, RDX))
    a.at(done)


def _value_of(a: Asm, dst: x.Reg, elem: x.Reg) -> None:
    """dst = elem + offsetof(key) + round_up(key_size, 8): the (first) value (clobbers rcx)."""
    a.ld32(RCX, RBX, Hdr.KEY_SIZE)
    round8(a, RCX)
    a(x.lea(dst, Mem(elem, Elem.KEY, RCX)))


def _lookup(a: Asm) -> None:
    a.func("htab_lookup")
    a(x.mov_load(RDX, Mem(R12, ENV + EnvField.CPU), 32))
    a.tail("htab_lookup_cpu")

    a.func("htab_lookup_percpu")  # the cpu argument counts as a u32
    out = a.new()
    a(x.mov_rr(RDX, RDX, 32))
    a(x.alu_rm(A.CMP, RDX, Mem(RDI, Hdr.NCPUS), 32))
    a.jcc(Cond.AE, out)
    a.tail("htab_lookup_cpu")
    a.at(out)
    a.ret_imm(0)

    # htab_lookup_cpu(map=rdi, key=rsi, cpu=edx)
    a.func("htab_lookup_cpu")
    miss, not_lru, referenced, percpu, done = (a.new() for _ in range(5))
    a.push(*SAVED)
    a(x.push(RDX), x.alu_ri(A.SUB, RSP, 8))
    a(x.mov_rr(RBX, RDI), x.mov_rr(R13, RSI))
    _find(a)
    a(x.test_rr(RAX, RAX))
    a.jcc(Cond.E, miss)
    emit_is_type(a, RBX, LRU_TYPES, referenced, RCX)
    a.jmp(not_lru)
    a.at(referenced)
    a(x.movzx(RCX, Mem(RAX, Elem.REF), 8, 32), x.test_rr(RCX, RCX, 32))
    a.jcc(Cond.NE, not_lru)
    a(x.mov_store_imm(Mem(RAX, Elem.REF), 1, 8))
    a.at(not_lru)
    a(x.mov_rr(RDX, RAX))
    _value_of(a, RAX, RDX)
    emit_is_type(a, RBX, PERCPU_TYPES, percpu, RCX)
    a.jmp(done)
    a.at(percpu)  # per-CPU: + cpu * round_up(value_size, 8)
    a.ld32(RCX, RBX, Hdr.VALUE_SIZE)
    round8(a, RCX)
    a.ld32(RDX, RSP, 8)
    a(x.imul_rr(RCX, RDX), x.alu_rr(A.ADD, RAX, RCX))
    a.at(done)
    a(x.alu_ri(A.ADD, RSP, 16))
    a.pop(*reversed(SAVED))
    a(x.ret())
    a.at(miss)
    a.zero(RAX)
    a.jmp(done)

    a.func("htab_lookup_raw")
    a.push(*SAVED)
    a(x.alu_ri(A.SUB, RSP, 8))  # 16-byte alignment at the calls inside
    a(x.mov_rr(RBX, RDI), x.mov_rr(R13, RSI))
    _find(a)
    a(x.alu_ri(A.ADD, RSP, 8))
    a.pop(*reversed(SAVED))
    a(x.ret())


# -- writers ----------------------------------------------------------------------------------------
def _frame_enter(a: Asm, locals_bytes: int = 16) -> None:
    a.push(*SAVED)
    a(x.alu_ri(A.SUB, RSP, locals_bytes))


def _frame_leave(a: Asm, locals_bytes: int = 16) -> None:
    a(x.alu_ri(A.ADD, RSP, locals_bytes))
    a.pop(*reversed(SAVED))
    a(x.ret())


def _write_value(a: Asm, busy: object, *, new: bool) -> None:
    """``_write_value`` for the element at rax (a program's update: per-CPU maps write this CPU's
    copy). Value pointer and flags are the update's locals. Jumps to ``busy`` when the value's
    spin lock could not be taken."""
    percpu, plain, no_zero, done = a.new(), a.new(), a.new(), a.new()
    a(x.mov_rr(RDX, RAX))
    _value_of(a, RDI, RDX)
    emit_is_type(a, RBX, PERCPU_TYPES, percpu, RCX)
    a.jmp(plain)
    a.at(percpu)
    emit_percpu_value_write(a, new=new, value_slot=_VALUE)
    a.jmp(done)
    a.at(plain)
    if new:  # a fresh element starts with an unlocked lock word
        a.ld32(RAX, RBX, Hdr.SPIN_LOCK_OFF)
        a(x.alu_ri(A.CMP, RAX, NO_SPIN_LOCK, 32))
        a.jcc(Cond.E, no_zero)
        a.ld32(RCX, RBX, Hdr.VALUE_SIZE)
        round8(a, RCX)
        a(x.mov_rr(RDX, RDI))
        memset0(a)
        a(x.mov_rr(RDI, RDX))
        a.at(no_zero)
        a.zero(R9)
    else:
        a.ld32(R9, RSP, _FLAGS)
        a(x.alu_ri(A.AND, R9, F_LOCK, 32))
    a.ld64(RSI, RSP, _VALUE)
    a(x.mov_rr(R8, RBX))
    a.call("copy_value")
    a(x.test_rr(RAX, RAX, 32))
    a.jcc(Cond.NE, busy)
    a.at(done)


def _update(a: Asm) -> None:
    """``htab_update(map, key, value, flags)``: ``HashMap.update_elem`` from a program."""
    a.func("htab_update")
    einval, check_lock, flags_ok = a.new(), a.new(), a.new()
    a(x.mov_rr(RAX, RCX), x.alu_ri(A.AND, RAX, ~F_LOCK))
    a(x.alu_ri(A.CMP, RAX, EXIST))
    a.jcc(Cond.A, einval)
    a(x.test_ri(RCX, F_LOCK, 32))
    a.jcc(Cond.NE, check_lock)
    a.jmp(flags_ok)
    a.at(check_lock)
    a(x.alu_ri(A.CMP, Mem(RDI, Hdr.SPIN_LOCK_OFF), NO_SPIN_LOCK, 32))
    a.jcc(Cond.E, einval)
    emit_is_type(a, RDI, PERCPU_TYPES, einval)
    a.at(flags_ok)
    errors = {e: a.new() for e in (ERRNO.EEXIST, ERRNO.ENOENT, ERRNO.E2BIG, ERRNO.EBUSY)}
    out, out_unlock, busy_nolock, found, not_found, have_slot, success = (a.new() for _ in range(7))
    _frame_enter(a)
    a(x.mov_rr(RBX, RDI), x.mov_rr(R13, RSI))
    a.st64(RSP, _VALUE, RDX)
    a.st64(RSP, _FLAGS, RCX)
    a(x.lea(RDI, Mem(RBX, Hdr.LOCK)))
    a.call("lock")
    a(x.test_rr(RAX, RAX, 32))
    a.jcc(Cond.NE, busy_nolock)
    _find(a)
    a.ld32(RCX, RSP, _FLAGS)
    a(x.alu_ri(A.AND, RCX, ~F_LOCK & 0xFFFF_FFFF, 32))  # mode
    a(x.test_rr(R15, R15, 32))
    a.jcc(Cond.E, not_found)
    a.at(found)
    a(x.alu_ri(A.CMP, RCX, NOEXIST, 32))
    a.jcc(Cond.E, errors[ERRNO.EEXIST])
    _write_value(a, errors[ERRNO.EBUSY], new=False)
    a.jmp(success)
    a.at(not_found)
    a(x.alu_ri(A.CMP, RCX, EXIST, 32))
    a.jcc(Cond.E, errors[ERRNO.ENOENT])
    a.ld32(RAX, RBX, Hdr.COUNT)
    a(x.alu_rm(A.CMP, RAX, Mem(RBX, Hdr.MAX_ENTRIES), 32))
    no_alloc = a.new()
    a.jcc(Cond.AE, no_alloc)
    a.call("htab_alloc")
    a(x.mov_rr(R15, RAX, 32))
    a.at(no_alloc)
    a(x.test_rr(R15, R15, 32))
    a.jcc(Cond.E, errors[ERRNO.E2BIG])
    a.at(have_slot)
    _elem_of(a, R15)
    a(x.mov_rr(RBP, RAX))  # the new element
    a(x.mov_store_imm(Mem(RBP, Elem.NEXT), 0, 32))
    a.st32(RBP, Elem.HASH, R14)
    a(x.mov_store_imm(Mem(RBP, Elem.LRU_PREV), 0, 64))  # LRU prev and next
    a(x.mov_store_imm(Mem(RBP, Elem.FLAGS), FL_USED, 32))
    a(x.mov_store_imm(Mem(RBP, Elem.REF), 0, 32))
    a(x.lea(RDI, Mem(RBP, Elem.KEY)))
    a.ld32(RCX, RBX, Hdr.KEY_SIZE)
    round8(a, RCX)
    memset0(a)
    a(x.lea(RDI, Mem(RBP, Elem.KEY)), x.mov_rr(RSI, R13))
    a.ld32(RCX, RBX, Hdr.KEY_SIZE)
    memcpy(a)
    a(x.mov_rr(RAX, RBP))
    _write_value(a, errors[ERRNO.EBUSY], new=True)
    _bucket(a, RDX, R14)
    a.ld32(RCX, RDX)
    a.st32(RBP, Elem.NEXT, RCX)
    a.st32(RDX, 0, R15)
    a(x.alu_ri(A.ADD, Mem(RBX, Hdr.COUNT), 1, 32))
    a.at(success)
    a.zero(RAX)
    a.at(out_unlock)
    a(x.mov_store_imm(Mem(RBX, Hdr.LOCK), 0, 32))
    a.at(out)
    _frame_leave(a)
    for err, label in errors.items():
        a.at(label)
        a(x.mov_ri(RAX, -int(err), 64))
        a.jmp(out_unlock)
    a.at(busy_nolock)
    a(x.mov_ri(RAX, -int(ERRNO.EBUSY), 64))
    a.jmp(out)
    a.at(einval)
    a.ret_imm(-int(ERRNO.EINVAL))


def _delete(a: Asm) -> None:
    """``htab_delete(map, key)``: ``HashMap.delete_elem`` (``_remove``: unlink from the bucket and
    the LRU list, free the slot, count down)."""
    a.func("htab_delete")
    out, out_unlock, busy, enoent, head, unlinked = (a.new() for _ in range(6))
    _frame_enter(a)
    a(x.mov_rr(RBX, RDI), x.mov_rr(R13, RSI))
    a(x.lea(RDI, Mem(RBX, Hdr.LOCK)))
    a.call("lock")
    a(x.test_rr(RAX, RAX, 32))
    a.jcc(Cond.NE, busy)
    _find(a)
    a(x.test_rr(R15, R15, 32))
    a.jcc(Cond.E, enoent)
    a.ld32(RDX, RAX, Elem.NEXT)
    a(x.test_rr(RBP, RBP, 32))
    a.jcc(Cond.E, head)
    _elem_of(a, RBP)
    a.st32(RAX, Elem.NEXT, RDX)
    a.jmp(unlinked)
    a.at(head)
    _bucket(a, RCX, R14)
    a.st32(RCX, 0, RDX)
    a.at(unlinked)
    _elem_of(a, R15)
    a(x.mov_store_imm(Mem(RAX, Elem.FLAGS), 0, 32))
    a.ld32(RDX, RBX, Hdr.FREE_HEAD)
    a.st32(RAX, Elem.NEXT, RDX)
    a.st32(RBX, Hdr.FREE_HEAD, R15)
    a(x.alu_ri(A.SUB, Mem(RBX, Hdr.COUNT), 1, 32))
    a.zero(RAX)
    a.at(out_unlock)
    a(x.mov_store_imm(Mem(RBX, Hdr.LOCK), 0, 32))
    a.at(out)
    _frame_leave(a)
    a.at(enoent)
    a(x.mov_ri(RAX, -int(ERRNO.ENOENT), 64))
    a.jmp(out_unlock)
    a.at(busy)
    a(x.mov_ri(RAX, -int(ERRNO.EBUSY), 64))
    a.jmp(out)
