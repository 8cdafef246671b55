"""Reading "kernel" memory and stacks (kernel/trace/bpf_trace.c, kernel/bpf/stackmap.c):
``bpf_probe_read_kernel``, ``bpf_probe_read_kernel_str``, ``bpf_get_stack``.

pybpf's kernel memory is what a run can address: its stack, context, packet and map memory (the
interpreter's regions; real process memory under the JIT). A probe read copies from there; an
address below 4 GiB — where pybpf keeps nothing, as Linux keeps no kernel memory below
``TASK_SIZE_MAX`` — is refused with -ERANGE (``copy_from_kernel_nofault_allowed``), an address
nothing is mapped at gives -EFAULT; on any failure the destination is zeroed, as Linux does.

There is no call chain to walk: a program's kernel (and user) stack is empty in pybpf, so
``bpf_get_stack`` stores nothing, zeroes the buffer and returns 0, or -EFAULT when asked to skip
frames the empty stack does not have — after Linux's flag and size checks.
"""

from __future__ import annotations

import errno
from typing import Any

from pybpf.errors import MemoryFault
from pybpf.kernel import native
from pybpf.uapi import HelperId
from pybpf.vm import AddressSpace

__all__ = ["HELPERS", "kernel_read"]

LOW_LIMIT = 1 << 32
BPF_F_SKIP_FIELD_MASK, BPF_F_USER_STACK, BPF_F_USER_BUILD_ID = 0xFF, 1 << 8, 1 << 11
BUILD_ID_ELEM = 32  # sizeof(struct bpf_stack_build_id)
_M32 = 0xFFFFFFFF


def kernel_read(ctx: Any, address: int, size: int) -> bytes | int:
    """``copy_from_kernel_nofault``: the bytes, or a negative errno (-ERANGE, -EFAULT)."""
    if size == 0:
        return b""
    if address < LOW_LIMIT or address + size > 1 << 64:
        return -errno.ERANGE
    if isinstance(getattr(ctx, "space", None), AddressSpace):
        try:
            return bytes(ctx.read(address, size))
        except MemoryFault:
            return -errno.EFAULT
    got = native.copy_from_user(address, size)  # native code: a checked copy that cannot crash
    return -errno.EFAULT if got is None else got


def probe_read_kernel(ctx: Any, r1: int, r2: int, r3: int, *_: int) -> int:
    """``bpf_probe_read_kernel(dst, size, unsafe_ptr)``."""
    size = r2 & _M32
    got = kernel_read(ctx, r3, size)
    if isinstance(got, int):
        if size:
            ctx.write(r1, bytes(size))
        return got
    if size:
        ctx.write(r1, got)
    return 0


def probe_read_kernel_str(ctx: Any, r1: int, r2: int, r3: int, *_: int) -> int:
    """``bpf_probe_read_kernel_str(dst, size, unsafe_ptr)``: a NUL-terminated copy of at most
    ``size`` bytes; returns its length with the NUL."""
    size = r2 & _M32
    if size == 0:
        return 0
    if r3 < LOW_LIMIT:
        ctx.write(r1, bytes(size))
        return -errno.ERANGE
    out = bytearray()
    while len(out) < size - 1:
        b = kernel_read(ctx, r3 + len(out), 1)
        if isinstance(b, int):
            ctx.write(r1, bytes(size))
            return -errno.EFAULT
        if b == b"\0":
            break
        out += b
    out.append(0)
    ctx.write(r1, bytes(out))
    return len(out)


def get_stack(ctx: Any, r1: int, r2: int, r3: int, r4: int, *_: int) -> int:
    """``bpf_get_stack(ctx, buf, size, flags)`` over an empty call chain."""
    size = r3 & _M32
    flags = r4
    user = bool(flags & BPF_F_USER_STACK)
    build_id = bool(flags & BPF_F_USER_BUILD_ID)
    err = 0
    bad_flags = flags & ~(BPF_F_SKIP_FIELD_MASK | BPF_F_USER_STACK | BPF_F_USER_BUILD_ID) or (not user and build_id)
    if bad_flags or size % (BUILD_ID_ELEM if build_id else 8):
        err = -errno.EINVAL
    elif flags & BPF_F_SKIP_FIELD_MASK:
        err = -errno.EFAULT  # trace->nr (0) < skip
    if size:
        ctx.write(r2, bytes(size))
    return err


HELPERS: dict[int, Any] = {
    HelperId.probe_read_kernel: probe_read_kernel,
    HelperId.probe_read_kernel_str: probe_read_kernel_str,
    HelperId.get_stack: get_stack,
}
