"""ARRAY, PERCPU_ARRAY and DEVMAP slots (``kernel/maps/array.py``, ``devmap.py``) in machine code.

Index ``i`` of an array lives at ``data_off + i * elem_size``; a per-CPU array keeps every CPU's
copy of index ``i`` together, CPU ``c`` at ``data_off + (i * ncpus + c) * elem_size``. A DEVMAP slot
is an 8-byte ``{ifindex, prog_id}``, empty when the ifindex is 0.

Functions (System V; ``map`` is the storage address):

* ``array_lookup(map, key)`` / ``array_lookup_percpu(map, key, cpu)`` — the value address or 0
  (ARRAY, PERCPU_ARRAY; the plain one uses this CPU's copy);
* ``array_update(map, key, value, flags)`` — ``ArrayMap.update_elem`` / the per-CPU variant;
* ``array_delete(map, key)`` — always ``-EINVAL`` (array elements cannot be deleted);
* ``devmap_lookup(map, key)`` — the slot if it holds a device, else 0.
"""

from __future__ import annotations

from pybpf.jit.native.asm import Asm
from pybpf.jit.native.common import memcpy
from pybpf.jit.native.layout import ENV, ERRNO, NO_SPIN_LOCK, EnvField, Hdr
from pybpf.jit.x86 import encoder as x
from pybpf.jit.x86.encoder import R8, R9, R12, RAX, RCX, RDI, RDX, RSI, Cond, Mem
from pybpf.uapi import MapType

__all__ = ["emit_array"]

A = x.AluOp
F_LOCK, NOEXIST, EXIST = 4, 1, 2
PERCPU_ARRAY = int(MapType.PERCPU_ARRAY)


def emit_array(a: Asm) -> None:
    _lookup(a)
    _update(a)
    a.func("array_delete")
    a.ret_imm(-int(ERRNO.EINVAL))
    _devmap_lookup(a)


def _slot(a: Asm, out: object) -> None:
    """rax = the address of index eax (cpu: edx, for per-CPU arrays) of the array at rdi; jumps to
    ``out`` when the index is out of range. Clobbers rcx."""
    plain = a.new()
    a(x.alu_rm(A.CMP, RAX, Mem(RDI, Hdr.MAX_ENTRIES), 32))
    a.jcc(Cond.AE, out)
    a(x.alu_ri(A.CMP, Mem(RDI, Hdr.MAP_TYPE), PERCPU_ARRAY, 32))
    a.jcc(Cond.NE, plain)
    a.ld32(RCX, RDI, Hdr.NCPUS)
    a(x.imul_rr(RAX, RCX), x.alu_rr(A.ADD, RAX, RDX))
    a.at(plain)
    a.ld32(RCX, RDI, Hdr.ELEM_SIZE)
    a(x.imul_rr(RAX, RCX))
    a(x.alu_rm(A.ADD, RAX, Mem(RDI, Hdr.DATA_OFF)), x.alu_rr(A.ADD, RAX, RDI))


def _lookup(a: Asm) -> None:
    a.func("array_lookup")
    a.ld32(RDX, R12, ENV + EnvField.CPU)
    a.tail("array_lookup_cpu")

    a.func("array_lookup_percpu")  # (map, key, cpu): the cpu counts as a u32
    none = a.new()
    a(x.mov_rr(RDX, RDX, 32))
    a(x.alu_rm(A.CMP, RDX, Mem(RDI, Hdr.NCPUS), 32))
    a.jcc(Cond.AE, none)
    a.tail("array_lookup_cpu")

    a.func("array_lookup_cpu")  # (map=rdi, key=rsi, cpu=edx)
    a.ld32(RAX, RSI)
    _slot(a, none)
    a(x.ret())
    a.at(none)
    a.ret_imm(0)


def _update(a: Asm) -> None:
    """``ArrayMap.update_elem`` / ``PercpuArrayMap.update_elem`` (a program writes its CPU's copy)."""
    a.func("array_update")
    einval, e2big, eexist, percpu, busy = (a.new() for _ in range(5))
    a(x.mov_rr(RAX, RCX), x.alu_ri(A.AND, RAX, ~F_LOCK))
    a(x.alu_ri(A.CMP, RAX, EXIST))
    a.jcc(Cond.A, einval)
    a(x.mov_rr(R9, RCX))  # flags
    a(x.mov_rr(R8, RDX))  # value
    a.ld32(RAX, RSI)
    a(x.alu_rm(A.CMP, RAX, Mem(RDI, Hdr.MAX_ENTRIES), 32))
    a.jcc(Cond.AE, e2big)
    a(x.test_ri(R9, NOEXIST, 32))
    a.jcc(Cond.NE, eexist)
    a(x.alu_ri(A.CMP, Mem(RDI, Hdr.MAP_TYPE), PERCPU_ARRAY, 32))
    a.jcc(Cond.E, percpu)
    a(x.test_ri(R9, F_LOCK, 32))
    locked_ok = a.new()
    a.jcc(Cond.E, locked_ok)
    a(x.alu_ri(A.CMP, Mem(RDI, Hdr.SPIN_LOCK_OFF), NO_SPIN_LOCK, 32))
    a.jcc(Cond.E, einval)
    a.at(locked_ok)
    a.zero(RDX)
    _slot(a, e2big)
    # copy_value(dst=rdi, src=rsi, map=r8, locked=r9d)
    a(x.mov_rr(RSI, R8), x.mov_rr(R8, RDI), x.mov_rr(RDI, RAX))
    a(x.alu_ri(A.AND, R9, F_LOCK, 32))
    a(x.alu_ri(A.SUB, x.RSP, 8))  # 16-byte alignment for the calls inside
    a.call("copy_value")
    a(x.alu_ri(A.ADD, x.RSP, 8))
    a(x.test_rr(RAX, RAX, 32))
    a.jcc(Cond.NE, busy)
    a.ret_imm(0)
    a.at(percpu)
    a(x.test_ri(R9, F_LOCK, 32))
    a.jcc(Cond.NE, einval)
    a.ld32(RDX, R12, ENV + EnvField.CPU)
    _slot(a, e2big)
    a.ld32(RCX, RDI, Hdr.VALUE_SIZE)
    a(x.mov_rr(RDI, RAX), x.mov_rr(RSI, R8))
    memcpy(a)
    a.ret_imm(0)
    for label, err in ((einval, ERRNO.EINVAL), (e2big, ERRNO.E2BIG), (eexist, ERRNO.EEXIST), (busy, ERRNO.EBUSY)):
        a.at(label)
        a.ret_imm(-int(err))


def _devmap_lookup(a: Asm) -> None:
    a.func("devmap_lookup")
    none = a.new()
    a.ld32(RAX, RSI)
    a(x.alu_rm(A.CMP, RAX, Mem(RDI, Hdr.MAX_ENTRIES), 32))
    a.jcc(Cond.AE, none)
    a.ld32(RCX, RDI, Hdr.ELEM_SIZE)
    a(x.imul_rr(RAX, RCX))
    a(x.alu_rm(A.ADD, RAX, Mem(RDI, Hdr.DATA_OFF)), x.alu_rr(A.ADD, RAX, RDI))
    a(x.alu_ri(A.CMP, Mem(RAX, 0), 0, 32))
    a.jcc(Cond.E, none)
    a(x.ret())
    a.at(none)
    a.ret_imm(0)
