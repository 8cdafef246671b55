"""Time, randomness and the CPU, natively (the kernel layer's ``kernel/helpers/system.py``).

* ``ktime_get_ns`` and its siblings call libc's ``clock_gettime`` (through the vDSO: no system call)
  with the clock the Python implementation reads — CLOCK_MONOTONIC, _BOOTTIME, _MONOTONIC_COARSE,
  _TAI; ``jiffies64`` is monotonic time in 4 ms ticks (HZ = 250). The address of ``clock_gettime``
  sits in a data slot of the library, filled when the library is made executable.
* ``get_prandom_u32`` is xorshift128+ over the env block's state (seeded per run environment from
  the OS), the high 32 bits of each output — random numbers, not the Python ones.
* ``get_smp_processor_id`` reads the env block's CPU; ``get_numa_node_id`` is 0, as in Python.
"""

from __future__ import annotations

from pybpf.jit.native.asm import Asm
from pybpf.jit.native.layout import ENV, EnvField
from pybpf.jit.x86 import encoder as x
from pybpf.jit.x86.encoder import R12, RAX, RCX, RDI, RDX, RSI, RSP, Mem

__all__ = ["CLOCK_GETTIME_SLOT", "CLOCKS", "emit_system"]

A = x.AluOp
CLOCK_GETTIME_SLOT = ("data", "clock_gettime")
CLOCKS = {
    "ktime_get_ns": 1,  # CLOCK_MONOTONIC
    "ktime_get_boot_ns": 7,  # CLOCK_BOOTTIME
    "ktime_get_coarse_ns": 6,  # CLOCK_MONOTONIC_COARSE
    "ktime_get_tai_ns": 11,  # CLOCK_TAI
}
NSEC_PER_SEC = 1_000_000_000
NSEC_PER_JIFFY = 4_000_000


def _clock(a: Asm, clock: int) -> None:
    """rax = clock_gettime(clock) in ns (entry alignment: called with rsp % 16 == 8)."""
    a(x.alu_ri(A.SUB, RSP, 24))
    a(x.mov_ri(RDI, clock, 32), x.mov_rr(RSI, RSP))
    a.buf.rip_ref(x.call_mem(Mem(None, 0))[:-4], CLOCK_GETTIME_SLOT)
    a.ld64(RAX, RSP, 0)
    a(x.imul_rri(RAX, RAX, NSEC_PER_SEC), x.alu_rm(A.ADD, RAX, Mem(RSP, 8)))
    a(x.alu_ri(A.ADD, RSP, 24))


def emit_system(a: Asm) -> None:
    for name, clock in CLOCKS.items():
        a.func(name)
        _clock(a, clock)
        a(x.ret())

    a.func("jiffies64")
    _clock(a, CLOCKS["ktime_get_ns"])
    a(x.mov_ri(RCX, NSEC_PER_JIFFY, 32))
    a.zero(RDX)
    a(x.unary(x.UnaryOp.DIV, RCX), x.ret())

    a.func("get_prandom_u32")  # xorshift128+: s1 = state0, s0 = state1
    a.ld64(RAX, R12, ENV + EnvField.PRNG0)
    a.ld64(RDX, R12, ENV + EnvField.PRNG1)
    a.st64(R12, ENV + EnvField.PRNG0, RDX)
    a(x.mov_rr(RCX, RAX), x.shift_ri(x.ShiftOp.SHL, RCX, 23), x.alu_rr(A.XOR, RAX, RCX))
    a(x.mov_rr(RCX, RAX), x.shift_ri(x.ShiftOp.SHR, RCX, 17), x.alu_rr(A.XOR, RAX, RCX))
    a(x.alu_rr(A.XOR, RAX, RDX))
    a(x.mov_rr(RCX, RDX), x.shift_ri(x.ShiftOp.SHR, RCX, 26), x.alu_rr(A.XOR, RAX, RCX))
    a.st64(R12, ENV + EnvField.PRNG1, RAX)
    a(x.alu_rr(A.ADD, RAX, RDX), x.shift_ri(x.ShiftOp.SHR, RAX, 32), x.ret())

    a.func("get_smp_processor_id")
    a.ld32(RAX, R12, ENV + EnvField.CPU)
    a(x.ret())

    a.func("get_numa_node_id")
    a.ret_imm(0)
