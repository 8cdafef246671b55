"""Time, randomness, CPU, the current task, spin locks and tail calls.

"Current task" means the calling process, as the kernel means the task a program runs in: pid and
tgid of this Python process (thread id as pid), its uid/gid, its comm.
"""

from __future__ import annotations

import errno
import os
import random
import threading
import time
from pathlib import Path
from typing import Any

from pybpf.errors import HelperError
from pybpf.kernel import native
from pybpf.kernel.helpers.maps import map_arg
from pybpf.uapi import HelperId
from pybpf.vm import RegionKind, TailCall

__all__ = ["HELPERS", "current_comm"]

_rng = random.SystemRandom()


def ktime_get_ns(ctx: Any, *_: int) -> int:
    """``bpf_ktime_get_ns``: CLOCK_MONOTONIC."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def ktime_get_boot_ns(ctx: Any, *_: int) -> int:
    """``bpf_ktime_get_boot_ns``: CLOCK_BOOTTIME."""
    return time.clock_gettime_ns(time.CLOCK_BOOTTIME)


def ktime_get_coarse_ns(ctx: Any, *_: int) -> int:
    """``bpf_ktime_get_coarse_ns``: CLOCK_MONOTONIC_COARSE."""
    clock = getattr(time, "CLOCK_MONOTONIC_COARSE", time.CLOCK_MONOTONIC)
    return time.clock_gettime_ns(clock)


def ktime_get_tai_ns(ctx: Any, *_: int) -> int:
    """``bpf_ktime_get_tai_ns``: CLOCK_TAI."""
    clock = getattr(time, "CLOCK_TAI", time.CLOCK_REALTIME)
    return time.clock_gettime_ns(clock)


def jiffies64(ctx: Any, *_: int) -> int:
    """``bpf_jiffies64``: monotonic time in ticks of HZ = 250."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 4_000_000  # HZ = 250


def get_prandom_u32(ctx: Any, *_: int) -> int:
    """``bpf_get_prandom_u32``."""
    return _rng.getrandbits(32)


def get_smp_processor_id(ctx: Any, *_: int) -> int:
    """``bpf_get_smp_processor_id``: the run's CPU (``RunEnv.cpu``, what per-CPU maps use)."""
    env = ctx.env
    return int(getattr(env, "cpu", 0))


def get_numa_node_id(ctx: Any, *_: int) -> int:
    """``bpf_get_numa_node_id``: node 0."""
    return 0


def get_current_pid_tgid(ctx: Any, *_: int) -> int:
    """``bpf_get_current_pid_tgid``: this process and thread, ``tgid << 32 | pid``."""
    return (os.getpid() << 32) | threading.get_native_id()


def get_current_uid_gid(ctx: Any, *_: int) -> int:
    """``bpf_get_current_uid_gid``: ``gid << 32 | uid`` of this process."""
    return (os.getgid() << 32) | os.getuid()


def current_comm() -> bytes:
    """The calling process's ``comm`` (at most 15 bytes)."""
    try:
        return Path("/proc/self/comm").read_bytes().rstrip(b"\n")[:15]
    except OSError:
        return os.path.basename(os.sys.argv[0] or "python").encode()[:15]  # type: ignore[attr-defined]


def get_current_comm(ctx: Any, r1: int, r2: int, *_: int) -> int:
    """``strscpy_pad(buf, comm, size)``: NUL-terminated, zero-padded."""
    size = r2 & 0xFFFFFFFF
    comm = current_comm()[: max(size - 1, 0)]
    ctx.write(r1, comm.ljust(size, b"\0"))
    return 0


# -- spin locks ------------------------------------------------------------------------------------

def _native_address(ctx: Any, ptr: int) -> int:
    region = ctx.space.find(ptr)
    if region is None or region.kind is not RegionKind.MAP:
        raise HelperError(f"{ptr:#x} is not inside a map value", pc=ctx.pc)
    m = region.owner
    return int(m.base) + (ptr - region.base)


def spin_lock(ctx: Any, r1: int, *_: int) -> int:
    """``bpf_spin_lock``: take the lock word in map memory (``lock cmpxchg``, shared with other processes and native
    code); the run remembers it so a fault cannot leave it held."""
    addr = _native_address(ctx, r1)
    native.lock_word(addr)
    locked = getattr(ctx.env, "locked", None)
    if locked is not None:
        locked.append(addr)
    return 0


def spin_unlock(ctx: Any, r1: int, *_: int) -> int:
    """``bpf_spin_unlock``."""
    addr = _native_address(ctx, r1)
    native.unlock_word(addr)
    locked = getattr(ctx.env, "locked", None)
    if locked is not None and addr in locked:
        locked.remove(addr)
    return 0


# -- tail calls ---------------------------------------------------------------------------------------

def tail_call(ctx: Any, r1: int, r2: int, r3: int, *_: int) -> int:
    """``bpf_tail_call(ctx, prog_array, index)``: jump to the program in the slot; an empty slot or an
    index out of range falls through (the program continues after the call)."""
    m = map_arg(ctx, r2)
    index = r3 & 0xFFFFFFFF
    target = m.target(index) if hasattr(m, "target") else None  # type: ignore[attr-defined]
    if target is None:
        return 0
    raise TailCall(target)


HELPERS: dict[int, Any] = {
    HelperId.ktime_get_ns: ktime_get_ns,
    HelperId.ktime_get_boot_ns: ktime_get_boot_ns,
    HelperId.ktime_get_coarse_ns: ktime_get_coarse_ns,
    HelperId.ktime_get_tai_ns: ktime_get_tai_ns,
    HelperId.jiffies64: jiffies64,
    HelperId.get_prandom_u32: get_prandom_u32,
    HelperId.get_smp_processor_id: get_smp_processor_id,
    HelperId.get_numa_node_id: get_numa_node_id,
    HelperId.get_current_pid_tgid: get_current_pid_tgid,
    HelperId.get_current_uid_gid: get_current_uid_gid,
    HelperId.get_current_comm: get_current_comm,
    HelperId.spin_lock: spin_lock,
    HelperId.spin_unlock: spin_unlock,
    HelperId.tail_call: tail_call,
}
_ = errno
