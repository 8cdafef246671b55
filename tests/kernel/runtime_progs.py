"""Raw-instruction programs for the socket, device, flow-hash and cgroup-storage helpers, shared by
the pybpf-only tests and the comparisons with the running kernel (the same bytes go to both)."""

from __future__ import annotations

import struct

from pybpf.kernel.attr import BpfAttr
from pybpf.uapi import BpfCmd

from .errno_table import Side, _load
from .test_runs_vs_kernel import prog_test_run

PT_SOCKET_FILTER, PT_SCHED_CLS, PT_XDP, PT_CGROUP_SKB = 1, 3, 6, 8
SK_LOOKUP_TCP, SK_LOOKUP_UDP, SK_RELEASE, SKC_LOOKUP_TCP = 84, 85, 86, 99
GET_HASH_RECALC, SET_HASH_INVALID, CSUM_UPDATE = 34, 41, 40
FIB_LOOKUP, CHECK_MTU, GET_LOCAL_STORAGE = 69, 163, 81
MAP_LOOKUP_ELEM, REDIRECT_MAP = 1, 51


def ins(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    imm &= 0xFFFFFFFF
    return struct.pack("<BBhi", code, dst | src << 4, off, imm - (1 << 32) if imm & 0x80000000 else imm)


def ld_map(reg: int, fd: int) -> bytes:
    """``lddw reg, map_fd``."""
    return ins(0x18, reg, 1, imm=fd) + ins(0)


def zero_stack(nbytes: int) -> bytes:
    """``*(u64 *)(r10 - 8k) = 0`` for the lowest ``nbytes`` of the frame."""
    return b"".join(ins(0x7A, 10, off=-8 * (i + 1), imm=0) for i in range((nbytes + 7) // 8))


def sk_lookup(helper: int, size: int, netns: int, flags: int) -> bytes:
    """A zeroed tuple of ``size`` bytes on the stack, ``helper(ctx, tuple, size, netns, flags)``;
    a socket found is released and the program returns 1, else 0."""
    code = zero_stack(max(size, 8))
    code += ins(0xBF, 2, 10) + ins(0x07, 2, imm=-((max(size, 8) + 7) // 8 * 8))
    code += ins(0xB7, 3, imm=size)
    code += ins(0x18, 4, imm=netns & 0xFFFFFFFF) + ins(0, imm=(netns >> 32) & 0xFFFFFFFF)
    code += ins(0xB7, 5, imm=flags)
    code += ins(0x85, imm=helper)
    code += ins(0x55, 0, off=2, imm=0)  # if r0 != 0 goto release
    code += ins(0xB7, 0, imm=0) + ins(0x95)
    code += ins(0xBF, 1, 0) + ins(0x85, imm=SK_RELEASE) + ins(0xB7, 0, imm=1) + ins(0x95)
    return code


def csum_update(value: int) -> bytes:
    return ins(0xB7, 2, imm=value) + ins(0x85, imm=CSUM_UPDATE) + ins(0x95)


def hash_recalc_twice() -> bytes:
    """1 when two ``bpf_get_hash_recalc`` calls agree, are non-zero and ``skb->hash`` reads the same
    value; after ``bpf_set_hash_invalid`` the recomputed hash must be the same again."""
    hash_off = 68  # offsetof(struct __sk_buff, hash)
    return (ins(0xBF, 6, 1) + ins(0x85, imm=GET_HASH_RECALC) + ins(0xBF, 7, 0)
            + ins(0xBF, 1, 6) + ins(0x85, imm=GET_HASH_RECALC) + ins(0x5D, 0, 7, off=10)  # r0 != r7: fail
            + ins(0x61, 8, 6, off=hash_off) + ins(0x5D, 8, 7, off=8)  # skb->hash != r7: fail
            + ins(0xBF, 1, 6) + ins(0x85, imm=SET_HASH_INVALID)
            + ins(0xBF, 1, 6) + ins(0x85, imm=GET_HASH_RECALC) + ins(0x5D, 0, 7, off=3)
            + ins(0x15, 7, off=2, imm=0)  # hash 0: fail
            + ins(0xB7, 0, imm=1) + ins(0x95)
            + ins(0xB7, 0, imm=0) + ins(0x95))


def check_mtu(ifindex: int, mtu_len: int, len_diff: int, flags: int) -> bytes:
    """``bpf_check_mtu``: a negative result as is, else ``ret << 24 | *mtu_len``."""
    return (ins(0x62, 10, off=-8, imm=mtu_len) + ins(0xBF, 3, 10) + ins(0x07, 3, imm=-8)
            + ins(0xB7, 2, imm=ifindex) + ins(0xB7, 4, imm=len_diff) + ins(0xB7, 5, imm=flags)
            + ins(0x85, imm=CHECK_MTU) + ins(0x65, 0, off=1, imm=-1) + ins(0x95)  # if r0 s> -1 goto +1
            + ins(0x67, 0, imm=24) + ins(0x61, 1, 10, off=-8) + ins(0x4F, 0, 1) + ins(0x95))


def fib_lookup(family: int, ifindex: int, flags: int, dst: bytes = b"", plen: int = 64) -> bytes:
    """``struct bpf_fib_lookup`` on the stack (family, ifindex, destination), ``bpf_fib_lookup``."""
    code = zero_stack(64)
    base = -64
    code += ins(0x72, 10, off=base, imm=family)  # *(u8 *)(fp - 64) = family
    code += ins(0x62, 10, off=base + 8, imm=ifindex)
    for i in range(0, len(dst), 4):
        code += ins(0x62, 10, off=base + 32 + i, imm=int.from_bytes(dst[i:i + 4], "little", signed=True))
    code += ins(0xBF, 2, 10) + ins(0x07, 2, imm=base) + ins(0xB7, 3, imm=plen) + ins(0xB7, 4, imm=flags)
    return code + ins(0x85, imm=FIB_LOOKUP) + ins(0x95)


def local_storage_counter(fd: int, want: int) -> bytes:
    """``++*(u64 *)bpf_get_local_storage(map, 0) == want`` (cgroup skb programs return 0 or 1)."""
    return (ld_map(1, fd) + ins(0xB7, 2, imm=0) + ins(0x85, imm=GET_LOCAL_STORAGE)
            + ins(0x79, 1, 0) + ins(0x07, 1, imm=1) + ins(0x7B, 0, 1)
            + ins(0xB7, 0, imm=0) + ins(0x55, 1, off=1, imm=want) + ins(0xB7, 0, imm=1) + ins(0x95))


def xsk_lookup_and_redirect(fd: int, key: int, action: int) -> bytes:
    """``(lookup(xskmap, key) != NULL) << 8 | bpf_redirect_map(xskmap, key, action)``."""
    return (ins(0x62, 10, off=-4, imm=key) + ld_map(1, fd) + ins(0xBF, 2, 10) + ins(0x07, 2, imm=-4)
            + ins(0x85, imm=MAP_LOOKUP_ELEM) + ins(0xB7, 6, imm=0) + ins(0x15, 0, off=1, imm=0)
            + ins(0xB7, 6, imm=256) + ld_map(1, fd) + ins(0xB7, 2, imm=key) + ins(0xB7, 3, imm=action)
            + ins(0x85, imm=REDIRECT_MAP) + ins(0x4F, 0, 6) + ins(0x95))


def eth_ipv4_udp(src: bytes = bytes([10, 0, 0, 1]), dst: bytes = bytes([10, 0, 0, 2]), sport: int = 1234,
                 dport: int = 80, payload: bytes = b"x" * 18) -> bytes:
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, src, dst)
    return bytes(6) + bytes(range(1, 7)) + b"\x08\x00" + ip + udp


def load_and_run(side: Side, code: bytes, prog_type: int, data: bytes, *, repeat: int = 1,
                 ctx: bytes | None = None) -> tuple[int, int]:
    """(the load's or the run's negative errno or 0, retval as an s32)."""
    fd = _load(side, code, prog_type)
    if fd < 0:
        return fd, 0
    if repeat == 1:
        err, retval, *_ = prog_test_run(side, fd, data, 0, ctx)
    else:
        err, retval = _run_repeat(side, fd, data, repeat)
    return err, retval - (1 << 32) if retval & 0x80000000 else retval


def _run_repeat(side: Side, fd: int, data: bytes, repeat: int) -> tuple[int, int]:
    import ctypes

    from pybpf.kernel.attr import addr_of

    a = BpfAttr()
    db = ctypes.create_string_buffer(data, len(data))
    side.keep.append(db)
    a.test.prog_fd, a.test.data_in, a.test.data_size_in, a.test.repeat = fd, addr_of(db), len(data), repeat
    r = side.bpf(BpfCmd.PROG_TEST_RUN, a, None)
    return (r if r < 0 else 0), a.test.retval


PT_RAW_TRACEPOINT = 17
PROBE_READ_KERNEL, PROBE_READ_KERNEL_STR, GET_STACK = 113, 115, 67


def probe_read(src: str, size: int = 8, helper: int = PROBE_READ_KERNEL) -> bytes:
    """Copy ``size`` bytes to fp-16 from ``src`` ("stack": fp-32, holding "ab\\0..." and a known
    u64, or "null"); a helper error is returned as is, else ``helper's r0 << 16 | first byte << 8 |
    second byte`` (r0 shifted by 16) for the string helper, or the checked u64 equality (1/0) for the plain one."""
    code = ins(0x18, 1, imm=0x00626100 >> 8) + ins(0, imm=0x11223344)  # r1 = 0x11223344_00006261: "ab\0\0..."
    code += ins(0x7B, 10, 1, off=-32) + ins(0x7A, 10, off=-24, imm=0) + zero_stack(16)
    code += ins(0xBF, 1, 10) + ins(0x07, 1, imm=-16) + ins(0xB7, 2, imm=size)
    code += ins(0xB7, 3, imm=0) if src == "null" else ins(0xBF, 3, 10) + ins(0x07, 3, imm=-32)
    code += ins(0x85, imm=helper) + ins(0x65, 0, off=1, imm=-1) + ins(0x95)  # if r0 s> -1 goto +1; exit
    if helper == PROBE_READ_KERNEL:
        return code + (ins(0x79, 1, 10, off=-16) + ins(0x79, 2, 10, off=-32) + ins(0xB7, 0, imm=0)
                       + ins(0x5D, 1, 2, off=1) + ins(0xB7, 0, imm=1) + ins(0x95))
    return code + (ins(0x67, 0, imm=16) + ins(0x71, 1, 10, off=-16) + ins(0x67, 1, imm=8) + ins(0x4F, 0, 1)
                   + ins(0x71, 1, 10, off=-15) + ins(0x4F, 0, 1) + ins(0x95))


def get_stack(size: int, flags: int) -> bytes:
    """``bpf_get_stack(ctx, fp-64, size, flags)``."""
    return (zero_stack(64) + ins(0xBF, 2, 10) + ins(0x07, 2, imm=-64) + ins(0xB7, 3, imm=size)
            + ins(0x18, 4, imm=flags & 0xFFFFFFFF) + ins(0, imm=flags >> 32) + ins(0x85, imm=GET_STACK) + ins(0x95))


def load_and_run_raw(side: Side, code: bytes, prog_type: int = PT_RAW_TRACEPOINT) -> tuple[int, int]:
    """A test run without packet data (raw tracepoints): (negative errno or 0, retval as an s64)."""
    fd = _load(side, code, prog_type)
    if fd < 0:
        return fd, 0
    a = BpfAttr()
    a.test.prog_fd = fd  # raw tracepoint runs take no repeat count
    r = side.bpf(BpfCmd.PROG_TEST_RUN, a, None)
    rv = a.test.retval
    return (r if r < 0 else 0), rv - (1 << 32) if rv & 0x80000000 else rv
