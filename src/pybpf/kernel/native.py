"""Native memory for kernel objects: file-backed shared mappings, atomics and lock words.

Why this module exists (and is one of the few allowed to touch ctypes/mmap): map storage must be
real memory at a real address, shared between processes that open the same pinned map, readable by
the interpreter as a region without copying, and addressable by JIT-compiled machine code. Three
things Python's standard library does not give us:

* a shared mapping of a file that does *not* duplicate the file descriptor (``mmap.mmap`` keeps a
  ``dup()``; that would consume fd numbers and break the kernel's "lowest free fd" numbering), so we
  call ``mmap(2)`` through libc;
* atomic read-modify-write on shared memory (``lock cmpxchg`` / ``lock xadd``): a few bytes of x86-64
  code placed in a page that is written, then made read+execute (never both), and called through
  ctypes; on other machines a process-wide + ``fcntl`` record lock stands in;
* a lock word usable both from Python and from native code: a ``u32`` that is 0 when free and holds
  the owner's thread-group id when taken, acquired with ``cmpxchg``. A holder that died is detected
  (its pid no longer exists) and the lock is taken over, so a killed process cannot wedge a map.

Addresses handed out here are stable for the lifetime of the :class:`Mapping` object; views keep
it alive, so a view can never outlive its memory.
"""

from __future__ import annotations

import ctypes
import mmap as _mmap
import os
import platform
import struct
import threading
import time
from collections.abc import Callable

__all__ = [
    "PAGE_SIZE",
    "Mapping",
    "atomic_add32",
    "atomic_add64",
    "atomic_cmpxchg32",
    "atomic_cmpxchg64",
    "atomic_xchg64",
    "copy_from_user",
    "copy_to_user",
    "has_native_atomics",
    "lock_word",
    "strncpy_from_user",
    "unlock_word",
]

PAGE_SIZE = _mmap.PAGESIZE

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_libc.munmap.restype = ctypes.c_int
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.mprotect.restype = ctypes.c_int
_libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_MAP_FAILED = ctypes.c_void_p(-1).value


class Mapping:
    """A shared, writable mapping of ``size`` bytes of an open file, at a fixed address.

    ``view`` is a writable ``memoryview`` (format ``B``) over the whole mapping; ``address`` the
    process address of byte 0. The mapping holds a reference to the open file description, so the
    file (and any ``flock`` taken through ``fd``) stays alive after ``fd`` is closed, until
    :meth:`close` or garbage collection.
    """

    __slots__ = ("__weakref__", "_array", "address", "size", "view")

    def __init__(self, fd: int, size: int) -> None:
        if size <= 0:
            raise ValueError("mapping size must be positive")
        addr = _libc.mmap(None, size, _mmap.PROT_READ | _mmap.PROT_WRITE, _mmap.MAP_SHARED, fd, 0)
        if addr is None or addr == _MAP_FAILED:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        self.address: int = addr
        self.size = size
        arr = (ctypes.c_ubyte * size).from_address(addr)
        arr._owner = self  # type: ignore[attr-defined]  # views keep the mapping alive
        self._array = arr
        self.view = memoryview(arr).cast("B")

    def close(self) -> None:
        """Unmap now. Only safe when nobody holds a view (callers drop theirs first)."""
        if self.address:
            self.view.release()
            _libc.munmap(self.address, self.size)
            self.address = 0

    def __del__(self) -> None:
        # Reached only when no view or array references remain.
        addr = getattr(self, "address", 0)
        if addr:
            _libc.munmap(addr, self.size)


# --------------------------------------------------------------------------------------------
# user memory: copy_from_user / copy_to_user with the kernel's EFAULT for bad addresses


class _IoVec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


_libc.process_vm_readv.restype = ctypes.c_ssize_t
_libc.process_vm_writev.restype = ctypes.c_ssize_t
_PID = os.getpid()


def _vm_copy(fn: Callable[..., int], local: int, remote: int, n: int) -> bool:
    lv = _IoVec(local, n)
    rv = _IoVec(remote, n)
    pid = os.getpid()
    done = fn(pid, ctypes.byref(lv), 1, ctypes.byref(rv), 1, 0)
    return bool(done == n)


def copy_from_user(addr: int, n: int) -> bytes | None:
    """``n`` bytes at process address ``addr``, or ``None`` where the kernel would return EFAULT.

    Uses ``process_vm_readv`` on our own pid, which fails cleanly on an unmapped address instead of
    crashing the interpreter.
    """
    if n == 0:
        return b""
    if addr == 0 or addr < 0 or addr + n > 1 << 64:
        return None
    buf = ctypes.create_string_buffer(n)
    if not _vm_copy(_libc.process_vm_readv, ctypes.addressof(buf), addr, n):
        return None
    return buf.raw


def copy_to_user(addr: int, data: bytes | bytearray | memoryview) -> bool:
    """Write ``data`` at process address ``addr``; False where the kernel would return EFAULT."""
    n = len(data)
    if n == 0:
        return True
    if addr == 0 or addr < 0 or addr + n > 1 << 64:
        return False
    buf = ctypes.create_string_buffer(bytes(data), n)
    return _vm_copy(_libc.process_vm_writev, ctypes.addressof(buf), addr, n)


def strncpy_from_user(addr: int, limit: int) -> bytes | None:
    """A NUL-terminated string of at most ``limit`` bytes (without the NUL); None on EFAULT.

    Reads page by page so a string that ends just before an unmapped page still works.
    """
    if addr == 0:
        return None
    out = bytearray()
    pos = addr
    while len(out) < limit:
        chunk = min(PAGE_SIZE - (pos % PAGE_SIZE), limit - len(out))
        data = copy_from_user(pos, chunk)
        if data is None:
            return None
        nul = data.find(b"\0")
        if nul >= 0:
            out += data[:nul]
            return bytes(out)
        out += data
        pos += chunk
    return bytes(out)


# --------------------------------------------------------------------------------------------
# atomics

# x86-64 SysV: rdi = address, rsi / rdx = operands, result in rax.
_X86_CODE = {
    # u32 cmpxchg32(u32 *p, u32 old, u32 new): mov eax, esi; lock cmpxchg [rdi], edx; ret
    "cmpxchg32": bytes.fromhex("89f0f00fb117c3"),
    # u64 cmpxchg64(u64 *p, u64 old, u64 new): mov rax, rsi; lock cmpxchg [rdi], rdx; ret
    "cmpxchg64": bytes.fromhex("4889f0f0480fb117c3"),
    # u32 xadd32(u32 *p, u32 v): mov eax, esi; lock xadd [rdi], eax; ret
    "xadd32": bytes.fromhex("89f0f00fc107c3"),
    # u64 xadd64(u64 *p, u64 v): mov rax, rsi; lock xadd [rdi], rax; ret
    "xadd64": bytes.fromhex("4889f0f0480fc107c3"),
    # u64 xchg64(u64 *p, u64 v): mov rax, rsi; xchg [rdi], rax; ret  (xchg with memory is locked)
    "xchg64": bytes.fromhex("4889f0488707c3"),
}
_SIGS = {
    "cmpxchg32": (ctypes.c_uint32, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_uint32),
    "cmpxchg64": (ctypes.c_uint64, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint64),
    "xadd32": (ctypes.c_uint32, ctypes.c_void_p, ctypes.c_uint32),
    "xadd64": (ctypes.c_uint64, ctypes.c_void_p, ctypes.c_uint64),
    "xchg64": (ctypes.c_uint64, ctypes.c_void_p, ctypes.c_uint64),
}


def _load_native() -> dict[str, Callable[..., int]] | None:
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return None
    try:
        page = _libc.mmap(None, PAGE_SIZE, _mmap.PROT_READ | _mmap.PROT_WRITE,
                          _mmap.MAP_PRIVATE | _mmap.MAP_ANONYMOUS, -1, 0)
        if page is None or page == _MAP_FAILED:
            return None
        funcs: dict[str, Callable[..., int]] = {}
        off = 0
        offsets: dict[str, int] = {}
        for name, code in _X86_CODE.items():
            ctypes.memmove(page + off, code, len(code))
            offsets[name] = off
            off += (len(code) + 15) & ~15
        if _libc.mprotect(page, PAGE_SIZE, _mmap.PROT_READ | _mmap.PROT_EXEC) != 0:
            return None
        for name, off in offsets.items():
            funcs[name] = ctypes.CFUNCTYPE(*_SIGS[name])(page + off)
        # self-test before trusting the code
        probe = ctypes.c_uint64(5)
        if funcs["cmpxchg64"](ctypes.addressof(probe), 5, 9) != 5 or probe.value != 9:
            return None
        return funcs
    except (OSError, AttributeError, ValueError):
        return None


_NATIVE = _load_native()
_FALLBACK_LOCK = threading.Lock()


def has_native_atomics() -> bool:
    """True when RMW operations are real ``lock``-prefixed instructions (safe across processes)."""
    return _NATIVE is not None


def _fallback_rmw(addr: int, fmt: str, fn: Callable[[int], int | None]) -> int:
    # Without native code: serialise within the process. Cross-process atomicity then relies on the
    # map lock (which itself uses this path only for its cmpxchg, made safe by flock in lock_word).
    size = struct.calcsize(fmt)
    with _FALLBACK_LOCK:
        cell = (ctypes.c_char * size).from_address(addr)
        old = int(struct.unpack(fmt, bytes(cell))[0])
        new = fn(old)
        if new is not None:
            ctypes.memmove(addr, struct.pack(fmt, new), size)
        return old


def atomic_cmpxchg32(addr: int, old: int, new: int) -> int:
    """Compare-and-exchange the u32 at ``addr``; returns the value found."""
    if _NATIVE is not None:
        return _NATIVE["cmpxchg32"](addr, old & 0xFFFFFFFF, new & 0xFFFFFFFF)
    return _fallback_rmw(addr, "<I", lambda v: (new & 0xFFFFFFFF) if v == (old & 0xFFFFFFFF) else None)


def atomic_cmpxchg64(addr: int, old: int, new: int) -> int:
    """Compare-and-exchange the u64 at ``addr``; returns the value found."""
    m = (1 << 64) - 1
    if _NATIVE is not None:
        return _NATIVE["cmpxchg64"](addr, old & m, new & m)
    return _fallback_rmw(addr, "<Q", lambda v: (new & m) if v == (old & m) else None)


def atomic_update(addr: int, size: int, update: Callable[[int], int | None]) -> int:
    """Atomically replace the ``size``-byte (1, 2, 4 or 8) integer at ``addr`` by ``update(old)``
    (``None``: leave it), with a compare-and-exchange loop on the aligned 4- or 8-byte word that
    holds it — what ``lock`` instructions of programs in two processes need to lose no update.
    Returns the old value."""
    if size not in (1, 2, 4, 8):
        raise ValueError(f"atomic access of {size} bytes")
    word = 8 if size == 8 else 4
    waddr = addr & ~(word - 1)
    shift = (addr - waddr) * 8
    if shift + size * 8 > word * 8:
        raise ValueError("atomic access crosses a word boundary")
    mask = (1 << (8 * size)) - 1
    cmpxchg = atomic_cmpxchg64 if word == 8 else atomic_cmpxchg32
    fmt = "<Q" if word == 8 else "<I"
    while True:
        cur = int(struct.unpack(fmt, ctypes.string_at(waddr, word))[0])
        old = (cur >> shift) & mask
        new = update(old)
        if new is None:
            return old
        want = (cur & ~(mask << shift)) | ((new & mask) << shift)
        if cmpxchg(waddr, cur, want) == cur:
            return old


def atomic_add32(addr: int, value: int) -> int:
    """``lock xadd`` on a u32: adds ``value``, returns the previous value."""
    if _NATIVE is not None:
        return _NATIVE["xadd32"](addr, value & 0xFFFFFFFF)
    return _fallback_rmw(addr, "<I", lambda v: (v + value) & 0xFFFFFFFF)


def atomic_add64(addr: int, value: int) -> int:
    """``lock xadd`` on a u64: adds ``value``, returns the previous value."""
    m = (1 << 64) - 1
    if _NATIVE is not None:
        return _NATIVE["xadd64"](addr, value & m)
    return _fallback_rmw(addr, "<Q", lambda v: (v + value) & m)


def atomic_xchg64(addr: int, value: int) -> int:
    """Exchange the u64 at ``addr`` with ``value``; returns the previous value."""
    m = (1 << 64) - 1
    if _NATIVE is not None:
        return _NATIVE["xchg64"](addr, value & m)
    return _fallback_rmw(addr, "<Q", lambda v: value & m)


# --------------------------------------------------------------------------------------------
# lock words

_SPINS_BEFORE_SLEEP = 200
_STALE_CHECK_EVERY = 2000


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lock_word(addr: int, owner: int | None = None) -> None:
    """Take the lock whose u32 word is at ``addr`` (0 = free, else the holder's tgid).

    Spins with ``cmpxchg``, yielding the CPU after a while; a word held by a process that no longer
    exists is taken over. Not re-entrant (the kernel's spin locks are not either).
    """
    me = (owner if owner is not None else os.getpid()) or 1
    spins = 0
    while True:
        seen = atomic_cmpxchg32(addr, 0, me)
        if seen == 0:
            return
        spins += 1
        if spins % _STALE_CHECK_EVERY == 0 and seen != me and not _alive(seen):
            if atomic_cmpxchg32(addr, seen, me) == seen:
                return
        if spins > _SPINS_BEFORE_SLEEP:
            time.sleep(0)


def try_lock_word(addr: int, owner: int | None = None) -> bool:
    """One attempt at :func:`lock_word`."""
    me = (owner if owner is not None else os.getpid()) or 1
    return atomic_cmpxchg32(addr, 0, me) == 0


def unlock_word(addr: int) -> None:
    """Release a lock word (a plain store suffices on x86's ordered stores; use xchg semantics)."""
    atomic_cmpxchg32(addr, ctypes.c_uint32.from_address(addr).value, 0)
