"""Printing and strings: ``bpf_trace_printk`` / ``bpf_trace_vprintk`` (to a trace pipe),
``bpf_snprintf``, ``bpf_strtol`` / ``bpf_strtoul``, and the trace pipe itself.

The format language is the kernel's ``bpf_bprintf_prepare`` subset: ``%d %i %u %x %X`` with optional
``l``/``ll``, flags ``0 + - space`` and a width, ``%c``, ``%s``, ``%p`` (``%px``, ``%pK``, ``%pI4``,
``%pi4``, ``%pI6``, ``%pi6``, ``%pks``, ``%pus``) and ``%%``; anything else is -EINVAL, as in Linux.

The trace pipe is ``<bpffs root>/.pybpf/trace_pipe``, an append-only file every process writes to
under a lock; lines have the kernel's ``trace_pipe`` shape
(``<comm>-<pid> [<cpu>] <flags> <secs>.<usecs>: bpf_trace_printk: <message>``) and
``pybpf prog tracelog`` follows it as ``bpftool prog tracelog`` follows the kernel's.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import ipaddress
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pybpf.errors import MemoryFault
from pybpf.kernel.helpers.system import current_comm
from pybpf.uapi import HelperId

__all__ = ["HELPERS", "TracePipe", "bprintf"]

MAX_BPRINTF_VARARGS = 12
MAX_BPRINTF_BUF = 1024
_HASH_KEY = os.urandom(16)


class _FormatError(Exception):
    def __init__(self, err: int) -> None:
        self.err = err


def _signed(v: int, bits: int) -> int:
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


def _ptr_hash(v: int) -> int:
    """Plain ``%p`` prints a per-boot hash of the pointer, never the pointer itself."""
    return int.from_bytes(hashlib.blake2b(v.to_bytes(8, "little"), key=_HASH_KEY, digest_size=4).digest(), "big")


def _read_string(ctx: Any, ptr: int, limit: int) -> bytes:
    try:
        return ctx.cstring(ptr, limit) if ptr else b"(null)"
    except MemoryFault:
        return b""


def bprintf(ctx: Any, fmt: bytes, args: list[int]) -> bytes:
    """Format ``fmt`` with ``args`` as ``bpf_bprintf_prepare`` + ``bstr_printf``; raises
    ``_FormatError(EINVAL)`` where the kernel refuses the format."""
    out = bytearray()
    i = 0
    n = len(fmt)
    argi = 0
    while i < n:
        c = fmt[i]
        if c < 0x80 and not (0x20 <= c < 0x7F or c in b" \t\n\v\f\r"):
            raise _FormatError(errno.EINVAL)
        if c != 0x25:  # '%'
            out.append(c)
            i += 1
            continue
        if i + 1 < n and fmt[i + 1] == 0x25:
            out.append(0x25)
            i += 2
            continue
        if argi >= len(args):
            raise _FormatError(errno.EINVAL)
        i += 1
        if i < n and fmt[i] >= 0x80:
            raise _FormatError(errno.EINVAL)
        flags = bytearray()
        while i < n and fmt[i] in b"0+- ":
            flags.append(fmt[i])
            i += 1
        width = bytearray()
        if i < n and 0x31 <= fmt[i] <= 0x39:
            while i < n and 0x30 <= fmt[i] <= 0x39:
                width.append(fmt[i])
                i += 1
        spec = (flags + width).decode()
        arg = args[argi]
        nxt = fmt[i + 1] if i + 1 < n else 0
        ch = chr(fmt[i]) if i < n else "\0"
        if ch == "p":
            argi += 1
            after = chr(nxt) if nxt else "\0"
            if after == "\0" or after.isspace() or (after.isascii() and not after.isalnum() and after.isprintable()):
                out += ("%" + spec + "s").__mod__(f"{_ptr_hash(arg):016x}").encode()
                i += 1
                continue
            if after in "ku" and i + 2 < n and fmt[i + 2] == ord("s"):
                follow = fmt[i + 3] if i + 3 < n else 0
                if follow and not (chr(follow).isspace() or (not chr(follow).isalnum() and chr(follow).isprintable())):
                    raise _FormatError(errno.EINVAL)
                out += ("%" + spec + "s").__mod__(_read_string(ctx, arg, MAX_BPRINTF_BUF).decode("latin-1")).encode(
                    "latin-1")
                i += 3
                continue
            if after in "KxsS":
                text = f"{arg & (1 << 64) - 1:016x}" if after == "x" else f"{_ptr_hash(arg):016x}"
                if after == "K":
                    text = "0" * 16
                out += ("%" + spec + "s").__mod__(text).encode()
                i += 2
                continue
            if after == "B":
                out += f"{arg:#x}".encode()
                i += 2
                continue
            third = chr(fmt[i + 2]) if i + 2 < n else "\0"
            if after not in "iI" or third not in "46":
                raise _FormatError(errno.EINVAL)
            size = 4 if third == "4" else 16
            try:
                raw = ctx.read(arg, size)
            except MemoryFault:
                raw = bytes(size)
            if size == 4:
                text = ".".join(f"{b:03d}" if after == "i" else str(b) for b in raw)
            elif after == "i":
                text = raw.hex()
            else:
                text = ":".join(raw[j:j + 2].hex() for j in range(0, 16, 2))
            out += ("%" + spec + "s").__mod__(text).encode()
            i += 3
            continue
        if ch == "s":
            follow = nxt
            if follow and not (chr(follow).isspace() or (not chr(follow).isalnum() and chr(follow).isprintable())):
                raise _FormatError(errno.EINVAL)
            argi += 1
            out += ("%" + spec + "s").__mod__(_read_string(ctx, arg, MAX_BPRINTF_BUF).decode("latin-1")).encode(
                "latin-1")
            i += 1
            continue
        if ch == "c":
            argi += 1
            out += ("%" + spec + "c").__mod__(chr(arg & 0xFF)).encode("latin-1")
            i += 1
            continue
        bits = 32
        if ch == "l":
            bits = 64
            i += 1
            ch = chr(fmt[i]) if i < n else "\0"
            if ch == "l":
                i += 1
                ch = chr(fmt[i]) if i < n else "\0"
        if ch not in "iduxX":
            raise _FormatError(errno.EINVAL)
        argi += 1
        if ch in "id":
            value: int = _signed(arg, bits)
            conv = "d"
        elif ch == "u":
            value, conv = arg & ((1 << bits) - 1), "d"
        else:
            value, conv = arg & ((1 << bits) - 1), ch
        out += ("%" + spec + conv).__mod__(value).encode()
        i += 1
    return bytes(out)


def _fmt(ctx: Any, ptr: int, size: int) -> bytes:
    raw = ctx.read(ptr, size) if size else b""
    end = raw.find(b"\0")
    if end < 0:
        raise _FormatError(errno.EINVAL)
    return raw[:end]


def _emit(ctx: Any, text: bytes) -> None:
    env = ctx.env
    msg = text.decode("utf-8", "replace")
    trace = getattr(env, "trace", None)
    if trace is not None:
        trace.append(msg)
    kernel = getattr(env, "kernel", None)
    if kernel is not None:
        kernel.trace.write(msg, cpu=int(getattr(env, "cpu", 0)))


def trace_printk(ctx: Any, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """``bpf_trace_printk``: format (the kernel's bprintf rules) and append a line to the trace pipe."""
    try:
        fmt = _fmt(ctx, r1, r2 & 0xFFFFFFFF)
        text = bprintf(ctx, fmt, [r3, r4, r5])
    except _FormatError as e:
        return -e.err
    text = text[:MAX_BPRINTF_BUF - 1]
    _emit(ctx, text)
    return len(text)


def trace_vprintk(ctx: Any, r1: int, r2: int, r3: int, r4: int, *_: int) -> int:
    """``bpf_trace_vprintk``: ``trace_printk`` with the arguments in an array."""
    data_len = r4 & 0xFFFFFFFF
    if data_len & 7 or data_len > MAX_BPRINTF_VARARGS * 8 or (data_len and not r3):
        return -errno.EINVAL
    try:
        fmt = _fmt(ctx, r1, r2 & 0xFFFFFFFF)
        raw = ctx.read(r3, data_len) if data_len else b""
        args = [int.from_bytes(raw[j:j + 8], "little") for j in range(0, data_len, 8)]
        text = bprintf(ctx, fmt, args)
    except _FormatError as e:
        return -e.err
    text = text[:MAX_BPRINTF_BUF - 1]
    _emit(ctx, text)
    return len(text)


def snprintf(ctx: Any, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """``bpf_snprintf(str, str_size, fmt, data, data_len)``: returns the length + 1 it would need."""
    size, data_len = r2 & 0xFFFFFFFF, r5 & 0xFFFFFFFF
    if data_len % 8 or data_len > MAX_BPRINTF_VARARGS * 8 or (data_len and not r4):
        return -errno.EINVAL
    try:
        fmt = ctx.cstring(r3, 1 << 16)
        raw = ctx.read(r4, data_len) if data_len else b""
        args = [int.from_bytes(raw[j:j + 8], "little") for j in range(0, data_len, 8)]
        text = bprintf(ctx, fmt, args)
    except _FormatError as e:
        return -e.err
    if size:
        ctx.write(r1, text[:size - 1] + b"\0")
    return len(text) + 1


# -- strtol / strtoul ------------------------------------------------------------------------------

def _strtoull(raw: bytes, flags: int) -> tuple[int, int, bool]:
    """``__bpf_strtoull``: (consumed or -errno, value, negative)."""
    base = flags & 0x1F
    if not raw:
        return -errno.EINVAL, 0, False
    if base not in (0, 8, 10, 16) or flags & ~0x1F:
        return -errno.EINVAL, 0, False
    i = 0
    while i < len(raw) and raw[i] in b" \t\n\v\f\r":
        i += 1
    neg = i < len(raw) and raw[i] == ord("-")
    if neg:
        i += 1
    consumed = i
    rest = raw[i:i + 63]
    if not rest:
        return -errno.EINVAL, 0, neg
    s = rest.split(b"\0", 1)[0]
    j = 0
    if base == 0:
        if s[:1] == b"0":
            if s[1:2] in (b"x", b"X") and s[2:3] and chr(s[2]) in "0123456789abcdefABCDEF":
                base, j = 16, 2
            else:
                base = 8
        else:
            base = 10
    elif base == 16 and s[:2] in (b"0x", b"0X"):
        j = 2
    start = j
    value = 0
    while j < len(s):
        ch = chr(s[j]).lower()
        d = "0123456789abcdef".find(ch)
        if d < 0 or d >= base:
            break
        value = value * base + d
        if value >> 64:
            return -errno.ERANGE, 0, neg
        j += 1
    if j == start:
        return -errno.EINVAL, 0, neg
    return consumed + j, value, neg


def _parse_number(ctx: Any, r1: int, r2: int, r3: int, r4: int) -> tuple[int, int, bool]:
    """What ``bpf_strtol`` and ``bpf_strtoul`` share: ``*res`` zeroed first (it stays 0 on error),
    then the string ``(r1, r2)`` parsed in base ``r3``."""
    ctx.store(r4, 8, 0)
    raw = ctx.read(r1, r2 & 0xFFFFFFFF) if r2 else b""
    return _strtoull(raw, r3)


def strtol(ctx: Any, r1: int, r2: int, r3: int, r4: int, *_: int) -> int:
    """``bpf_strtol``: the number of characters consumed, or -EINVAL / -ERANGE; ``*res`` stays 0 on error."""
    n, value, neg = _parse_number(ctx, r1, r2, r3, r4)
    if n < 0:
        return n
    if neg:
        if value > 1 << 63:
            return -errno.ERANGE
        value = -value
    elif value >= 1 << 63:
        return -errno.ERANGE
    ctx.store(r4, 8, value)
    return n


def strtoul(ctx: Any, r1: int, r2: int, r3: int, r4: int, *_: int) -> int:
    """``bpf_strtoul``: as ``strtol``, a leading '-' being -EINVAL."""
    n, value, neg = _parse_number(ctx, r1, r2, r3, r4)
    if n < 0:
        return n
    if neg:
        return -errno.EINVAL
    ctx.store(r4, 8, value)
    return n


# -- the trace pipe ------------------------------------------------------------------------------------

class TracePipe:
    """An append-only log file shared by every process of a bpffs root (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def format_line(self, msg: str, *, cpu: int = 0) -> str:
        """One line as ``/sys/kernel/tracing/trace_pipe`` prints it (task, pid, CPU, flags, timestamp)."""
        comm = current_comm().decode("utf-8", "replace")
        ts = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        secs, usecs = divmod(ts // 1000, 1_000_000)
        body = msg[:-1] if msg.endswith("\n") else msg
        task = f"{comm}-{os.getpid()}"
        return f"{task:>22} [{cpu:03d}] ..s21 {secs:5d}.{usecs:06d}: bpf_trace_printk: {body}\n"

    def write(self, msg: str, *, cpu: int = 0) -> None:
        line = self.format_line(msg, cpu=cpu).encode("utf-8", "replace")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, line)
        finally:
            os.close(fd)

    def read_from(self, offset: int = 0) -> tuple[list[str], int]:
        """Complete lines after byte ``offset``, and the offset after them."""
        try:
            with open(self.path, "rb") as f:
                f.seek(offset)
                data = f.read()
        except FileNotFoundError:
            return [], offset
        end = data.rfind(b"\n") + 1
        return data[:end].decode("utf-8", "replace").splitlines(keepends=True), offset + end

    def follow(self, *, from_end: bool = False, poll: float = 0.2) -> Iterator[str]:
        """Yield lines as they are appended (``cat trace_pipe``); ``from_end`` skips existing ones."""
        offset = self.path.stat().st_size if from_end and self.path.exists() else 0
        while True:
            lines, offset = self.read_from(offset)
            yield from lines
            if not lines:
                time.sleep(poll)

    def clear(self) -> None:
        """Empty the pipe (for tests and ``prog tracelog`` restarts)."""
        with contextlib.suppress(FileNotFoundError):
            os.truncate(self.path, 0)


HELPERS: dict[int, Any] = {
    HelperId.trace_printk: trace_printk,
    HelperId.trace_vprintk: trace_vprintk,
    HelperId.snprintf: snprintf,
    HelperId.strtol: strtol,
    HelperId.strtoul: strtoul,
}
_ = ipaddress
