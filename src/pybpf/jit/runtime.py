"""Executable memory and calls into it: the only module of pybpf that runs generated machine code.

Life of a program: :class:`JitProgram` maps fresh anonymous memory read+write, copies the image's
code into it, fills in the relocations (helper addresses, map addresses), then flips the pages to
read+execute with ``mprotect`` — at no moment is a page writable and executable at once (W^X) — and
calls the entry point through ctypes. :meth:`JitProgram.close` (or the garbage collector) unmaps it.

Python helpers are called back through ctypes (``CFUNCTYPE``): the callback objects live as long as
the program. A callback cannot unwind native frames, so an exception inside a helper is parked, the
run-state status is set, the generated code (which checks the status after every Python helper)
unwinds to the main frame, and :meth:`JitProgram.run` re-raises it.

Also here, because they dereference raw addresses: :class:`NativeBuffer` (memory a program may be
given a pointer to) and :func:`read_memory`/:func:`write_memory`/:func:`read_cstring` for Python
helpers that receive pointers.
"""

from __future__ import annotations

import array
import ctypes
import mmap
import operator
import os
import struct
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pybpf.errors import ExecutionError, HelperError, InstructionLimitExceeded, JitError, MemoryFault, PybpfError
from pybpf.isa.opcodes import PERCPU_AREA_SIZE
from pybpf.jit.batch import BatchArg, PacketContextLayout, emit_batch_driver
from pybpf.jit.compile import (
    DEFAULT_LOOP_BUDGET,
    MAX_CALL_FRAMES,
    PACKET_LOADER,
    JitImage,
    RelocKind,
    RunStateField,
    RunStatus,
)
from pybpf.jit.helpers import HelperEntry, HelperTable, MapResolver, NativeHelper, NativeStub, PythonHelper, TailCall

__all__ = [
    "BatchResult",
    "BatchRunner",
    "ExecutableMemory",
    "JitProgram",
    "NativeBuffer",
    "NativeHelperContext",
    "libc_symbol",
    "native_function",
    "read_cstring",
    "read_memory",
    "write_memory",
]

_M64 = (1 << 64) - 1
_PROT_READ, _PROT_WRITE, _PROT_EXEC = 0x1, 0x2, 0x4
_MAP_PRIVATE, _MAP_ANONYMOUS = 0x02, 0x20

_libc = ctypes.CDLL(None, use_errno=True)
_mmap = _libc.mmap
_mmap.restype = ctypes.c_void_p
_mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_mprotect = _libc.mprotect
_mprotect.restype = ctypes.c_int
_mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_munmap = _libc.munmap
_munmap.restype = ctypes.c_int
_munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]

_HELPER_CFUNC = ctypes.CFUNCTYPE(
    ctypes.c_uint64, ctypes.c_uint64, ctypes.c_uint64, ctypes.c_uint64, ctypes.c_uint64, ctypes.c_uint64
)
_ENTRY_CFUNC = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_uint64, ctypes.c_uint64, ctypes.c_void_p)
_RUN_STATE_WORDS = RunStateField.SIZE // 8
_STATUS, _DETAIL, _ERROR_INSN = RunStateField.STATUS // 8, RunStateField.DETAIL // 8, RunStateField.ERROR_INSN // 8
_REGIONS, _NREGIONS = RunStateField.REGIONS // 8, RunStateField.NREGIONS // 8
_MAIN_RBP, _DEPTH = RunStateField.MAIN_RBP // 8, RunStateField.DEPTH // 8
_CALLBACK_CFUNC = _HELPER_CFUNC


def _os_error(what: str) -> JitError:
    err = ctypes.get_errno()
    return JitError(f"{what} failed: {os.strerror(err)}")


class ExecutableMemory:
    """Pages that hold machine code: written while read+write, then read+execute for good."""

    __slots__ = ("__weakref__", "_finalizer", "address", "size")

    def __init__(self, code: bytes | bytearray) -> None:
        page = mmap.PAGESIZE
        self.size = max(page, -(-len(code) // page) * page)
        addr = _mmap(None, self.size, _PROT_READ | _PROT_WRITE, _MAP_PRIVATE | _MAP_ANONYMOUS, -1, 0)
        if addr is None or addr == ctypes.c_void_p(-1).value:
            raise _os_error("mmap")
        self.address: int = addr
        ctypes.memmove(addr, bytes(code), len(code))
        if _mprotect(addr, self.size, _PROT_READ | _PROT_EXEC) != 0:
            _munmap(addr, self.size)
            raise _os_error("mprotect")
        self._finalizer = weakref.finalize(self, _munmap, addr, self.size)

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def read(self) -> bytes:
        """The code as it sits in memory (for tests and dumps)."""
        if self.closed:
            raise JitError("executable memory already freed")
        return ctypes.string_at(self.address, self.size)

    def close(self) -> None:
        self._finalizer()


class NativeBuffer:
    """Writable native memory with a stable address (the memory a program's pointers point into)."""

    __slots__ = ("_buf", "address", "size")

    def __init__(self, data: bytes | int) -> None:
        size = data if isinstance(data, int) else len(data)
        self._buf: Any = ctypes.create_string_buffer(max(size, 1))
        if not isinstance(data, int):
            ctypes.memmove(self._buf, data, size)
        self.size = size
        self.address: int = ctypes.addressof(self._buf)

    @classmethod
    def over(cls, buffer: bytearray) -> NativeBuffer:
        """Native memory that *is* ``buffer`` (no copy: what the program writes, the bytearray
        holds; the bytearray cannot change size while this object lives)."""
        if not buffer:
            return cls(0)
        self = cls.__new__(cls)
        self._buf = (ctypes.c_char * len(buffer)).from_buffer(buffer)
        self.size = len(buffer)
        self.address = ctypes.addressof(self._buf)
        return self

    def read(self, offset: int = 0, size: int | None = None) -> bytes:
        size = self.size - offset if size is None else size
        if offset < 0 or size < 0 or offset + size > self.size:
            raise ValueError("read outside the buffer")
        return ctypes.string_at(self.address + offset, size)

    def write(self, data: bytes, offset: int = 0) -> None:
        if offset < 0 or offset + len(data) > self.size:
            raise ValueError("write outside the buffer")
        ctypes.memmove(self.address + offset, data, len(data))

    def zero(self, offset: int = 0, size: int | None = None) -> None:
        """Fill ``size`` bytes from ``offset`` (default: to the end) with zeros."""
        size = self.size - offset if size is None else size
        if offset < 0 or size < 0 or offset + size > self.size:
            raise ValueError("zeroing outside the buffer")
        ctypes.memset(self.address + offset, 0, size)

    def __bytes__(self) -> bytes:
        return self.read()

    def view(self) -> memoryview:
        """The buffer as writable bytes (``memoryview`` format ``B``), without copying."""
        return memoryview(self._buf).cast("B")[: self.size]


def libc_symbol(name: str) -> int:
    """The address of a C library function (what native code calls, e.g. ``clock_gettime``)."""
    fn = getattr(_libc, name, None)
    address = ctypes.cast(fn, ctypes.c_void_p).value if fn is not None else None
    if not address:
        raise JitError(f"the C library has no {name}")
    return int(address)


def native_function(address: int, nargs: int) -> Callable[..., int]:
    """A System V function at ``address`` taking ``nargs`` u64 arguments and returning a u64, as a
    Python callable (one ctypes call per use)."""
    return ctypes.CFUNCTYPE(ctypes.c_uint64, *([ctypes.c_uint64] * nargs))(address)  # type: ignore[no-any-return]


def read_memory(address: int, size: int) -> bytes:
    """``size`` bytes at a raw address (for helpers given a pointer; the address must be valid)."""
    return ctypes.string_at(address, size)


def write_memory(address: int, data: bytes) -> None:
    """Store ``data`` at a raw address (for helpers given a pointer; the address must be valid)."""
    ctypes.memmove(address, data, len(data))


def read_cstring(address: int, limit: int = 1 << 16) -> bytes:
    """The NUL-terminated string at ``address`` (at most ``limit`` bytes)."""
    out = bytearray()
    while len(out) < limit:
        chunk = ctypes.string_at(address + len(out), 64)
        nul = chunk.find(b"\0")
        if nul >= 0:
            out += chunk[:nul]
            break
        out += chunk
    return bytes(out)


class NativeHelperContext:
    """What a context-taking Python helper receives (the vm's ``HelperContext`` over native memory).

    ``env`` is what the caller passed to :meth:`JitProgram.run`; ``pc`` the raw slot of the call
    instruction. Memory accessors dereference real addresses: a verified program only hands helpers
    valid pointers, and nothing here can check them.
    """

    __slots__ = ("_state", "env", "space")

    def __init__(self, state: Any) -> None:
        self._state = state
        self.env: Any = None
        self.space: Any = None
        """What the kernel layer's helpers reach maps through (``ctx.space``), when the caller gives
        one (:class:`pybpf.jit.engine.NativeSpace`); None otherwise."""

    @property
    def pc(self) -> int:
        return int(self._state[RunStateField.CALL_PC // 8])

    def read(self, address: int, size: int) -> bytes:
        return ctypes.string_at(address, size)

    def write(self, address: int, data: bytes | bytearray | memoryview) -> None:
        raw = bytes(data)
        ctypes.memmove(address, raw, len(raw))

    def load(self, address: int, size: int, *, signed: bool = False) -> int:
        return int.from_bytes(ctypes.string_at(address, size), "little", signed=signed)

    def store(self, address: int, size: int, value: int) -> None:
        data = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
        ctypes.memmove(address, data, size)

    def cstring(self, address: int, max_len: int = 4096) -> bytes:
        return read_cstring(address, max_len)

    def call(self, func_ptr: int, r1: int = 0, r2: int = 0, r3: int = 0, r4: int = 0, r5: int = 0) -> int:
        """Run the BPF function at ``func_ptr`` (what ``lddw`` of a function address gave the
        program: its callback entry) with r1..r5; returns its r0. If the callback stops the program
        (a helper raised, a checked-mode fault), that stop propagates out of the calling helper."""
        st = self._state
        saved_rbp, saved_depth = st[_MAIN_RBP], st[_DEPTH]
        try:
            r0 = _CALLBACK_CFUNC(func_ptr)(r1 & _M64, r2 & _M64, r3 & _M64, r4 & _M64, r5 & _M64)
        finally:
            st[_MAIN_RBP], st[_DEPTH] = saved_rbp, saved_depth
        if st[_STATUS]:
            raise _NestedStop
        return int(r0)


class _NestedStop(Exception):
    """Raised out of a helper when a BPF callback it called stopped the whole program."""


class JitProgram:
    """A :class:`~pybpf.jit.compile.JitImage` made executable and bound to its helpers and maps.

    ``program(r1, r2)`` / :meth:`run` calls it and returns r0 (an unsigned 64-bit int). Use as a
    context manager or call :meth:`close`; the memory is also freed when the object is collected.
    ``helpers`` and ``packet_loader`` must be the table the image was compiled with (the kinds are
    checked); ``maps`` resolves the map ids of the instruction stream to native addresses.
    ``exit_exceptions``: exception types a Python helper raises to stop the program with r0 = the
    exception's ``value`` (the vm's ``ProgramExit``; the JIT does not import the vm).

    ``extra_state``: bytes reserved right after the run-state block (at ``r12 +
    RunStateField.SIZE``), where native helpers keep per-run data (:mod:`pybpf.jit.native.env`).
    ``state_of``: share another program's run state, helper context and pending-exception slot —
    for the programs a tail call enters, which run on the caller's run state (r12), so that their
    Python helpers see the caller's ``env`` and their errors stop the caller's run.
    """

    def __init__(
        self,
        image: JitImage,
        *,
        helpers: HelperTable | None = None,
        packet_loader: HelperEntry | None = None,
        maps: MapResolver | None = None,
        loop_budget: int = DEFAULT_LOOP_BUDGET,
        exit_exceptions: tuple[type[BaseException], ...] = (),
        extra_state: int = 0,
        state_of: JitProgram | None = None,
    ) -> None:
        self.image = image
        self.exit_exceptions = exit_exceptions
        self._helpers = dict(helpers or {})
        self._packet_loader = packet_loader
        self._maps = maps
        self._owner: JitProgram = self if state_of is None else state_of._owner
        if state_of is None:
            # at least the per-CPU area (the CPU number the verifier's inlined
            # bpf_get_smp_processor_id reads at r12 + RunStateField.SIZE), even without an env block
            extra = max(PERCPU_AREA_SIZE, extra_state)
            self._state = (ctypes.c_uint64 * (_RUN_STATE_WORDS + (extra + 7) // 8))()
            self.state_address = ctypes.addressof(self._state)
            self.loop_budget = loop_budget
            self.context = NativeHelperContext(self._state)
        else:
            if extra_state > state_of.extra_state:
                raise JitError("a program sharing a run state cannot ask for more extra state than its owner has")
            self._state = state_of._state
            self.state_address = state_of.state_address
            self.context = state_of.context
        self.extra_state = (len(self._state) - _RUN_STATE_WORDS) * 8
        self._no_regions = (ctypes.c_uint64 * 3)()
        self._pending: BaseException | None = None
        self._pending_helper = ""
        self._callbacks: list[Any] = []
        self._keepalive: list[object] = []
        code = bytearray(image.code)
        for reloc in image.relocs:
            struct.pack_into("<Q", code, reloc.offset, self._resolve(reloc.kind, reloc.target, reloc.addend) & _M64)
        self._mem = ExecutableMemory(code)
        self._closed = False
        self._checked = image.checked
        self.entry_address = self._mem.address + image.main_entry
        self._entry = _ENTRY_CFUNC(self.entry_address)

    # -- binding ----------------------------------------------------------------------------------
    def _resolve(self, kind: RelocKind, target: int | str, addend: int) -> int:
        if kind is RelocKind.HELPER_SLOT:
            entry = self._packet_loader if target == PACKET_LOADER else self._helpers.get(target)  # type: ignore[arg-type]
            if entry is None:
                raise JitError(f"no helper {target!r} to bind")
            want = self.image.helper_kinds.get(target)
            if want is not None and type(entry.impl).__name__ != want:
                raise JitError(f"helper {target!r} was compiled as {want}, bound as {type(entry.impl).__name__}")
            return self._helper_address(entry)
        if kind is RelocKind.RUN_STATE:
            return self.state_address
        if self._maps is None:
            raise JitError(f"the program uses map id {target} but no map resolver was given")
        if kind is RelocKind.MAP:
            return self._maps.map_address(int(target))
        return self._maps.map_value_address(int(target), addend)

    def _helper_address(self, entry: HelperEntry) -> int:
        impl = entry.impl
        if isinstance(impl, PythonHelper):
            cb = _HELPER_CFUNC(self._wrap(entry.name, impl))
            self._callbacks.append(cb)
            return ctypes.cast(cb, ctypes.c_void_p).value or 0
        if isinstance(impl, NativeHelper):
            self._keepalive.append(impl.keepalive)
            return impl.address
        if isinstance(impl, (NativeStub, TailCall)):  # pragma: no cover - compiled inline, never a slot
            raise JitError(f"helper {entry.name} has no address: it is emitted inline")
        raise JitError(f"unknown helper implementation {impl!r}")  # pragma: no cover

    def _wrap(self, name: str, impl: PythonHelper) -> Callable[..., int]:
        state = self._state
        status = RunStateField.STATUS // 8
        detail = RunStateField.DETAIL // 8
        fn = impl.fn
        ctx = self.context

        def callback(r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
            try:
                rv = fn(ctx, r1, r2, r3, r4, r5) if impl.context else fn(r1, r2, r3, r4, r5)
                return int(rv or 0) & _M64
            except _NestedStop:
                return 0  # the status is already set; unwind the outer program too
            except BaseException as exc:  # parked, re-raised by run() after unwinding
                if self.exit_exceptions and isinstance(exc, self.exit_exceptions):
                    state[detail] = int(getattr(exc, "value", 0)) & _M64
                    state[status] = RunStatus.PROGRAM_EXIT
                    return 0
                owner = self._owner  # a tail-call target parks it where the running program looks
                owner._pending = exc
                owner._pending_helper = name
                state[status] = RunStatus.HELPER_RAISED
                return 0

        return callback

    def state_view(self) -> memoryview:
        """The run-state block and the ``extra_state`` bytes after it, as writable bytes (the env
        block of native helpers lives at ``RunStateField.SIZE``)."""
        return memoryview(self._state).cast("B")

    # -- running ----------------------------------------------------------------------------------
    @property
    def loop_budget(self) -> int:
        """Checked mode: back-edges a run may take before it stops with InstructionLimitExceeded."""
        return int(self._state[RunStateField.BUDGET_INIT // 8])

    @loop_budget.setter
    def loop_budget(self, value: int) -> None:
        self._state[RunStateField.BUDGET_INIT // 8] = max(1, value)

    @property
    def tail_call_address(self) -> int:
        """Where a tail call into this program lands (what program-array slots hold)."""
        return self._mem.address + self.image.tail_call_entry

    @property
    def closed(self) -> bool:
        return self._closed or self._mem.closed

    def run(
        self, r1: int = 0, r2: int = 0, *, env: Any = None, regions: Sequence[tuple[int, int, bool]] = ()
    ) -> int:
        """Run with R1 = ``r1``, R2 = ``r2``; returns R0. ``env`` is what context-taking helpers see
        as ``ctx.env``. Raises what stopped the program early.

        ``regions``: for an image compiled in checked mode (unverified), the memory the program may
        touch besides its stack, as ``(address, size, writable)``; any other access raises
        :class:`~pybpf.errors.MemoryFault` (the access does not happen). Verified images ignore it.
        """
        if self._closed:
            raise JitError("program is closed")
        st = self._state
        if self._checked:  # the status and counters are reset by the entry code itself
            table = self._set_regions(regions)  # noqa: F841 - kept alive for the run
        self.context.env = env
        r0: int = self._entry(r1 & _M64, r2 & _M64, self.state_address)
        status = st[_STATUS]
        if status:
            return self._stop(status)
        return r0

    __call__ = run

    def _set_regions(self, regions: Sequence[tuple[int, int, bool]]) -> Any:
        """Point the run state at a region table for checked mode; returns it (keep it alive)."""
        table: Any = self._no_regions
        if regions:
            table = (ctypes.c_uint64 * (3 * len(regions)))()
            for i, (address, size, writable) in enumerate(regions):
                table[3 * i : 3 * i + 3] = [address & _M64, (address + size) & _M64, int(bool(writable))]
        self._state[_REGIONS] = ctypes.addressof(table)
        self._state[_NREGIONS] = len(regions)
        return table

    def _stop(self, status: int) -> int:
        """After a run that set ``status``: r0 for PROGRAM_EXIT, else raise what stopped it."""
        if status == RunStatus.PROGRAM_EXIT:
            return int(self._state[_DETAIL])
        self._raise(RunStatus(status), int(self._state[_ERROR_INSN]))
        raise AssertionError("unreachable")  # pragma: no cover

    def _raise(self, status: RunStatus, pc: int) -> None:
        if status is RunStatus.HELPER_RAISED:
            exc, self._pending = self._pending, None
            if isinstance(exc, PybpfError) or not isinstance(exc, Exception):
                raise exc  # type: ignore[misc]
            raise HelperError(f"helper {self._pending_helper} raised {type(exc).__name__}: {exc}",
                              pc=int(self._state[RunStateField.CALL_PC // 8])) from exc
        detail = int(self._state[RunStateField.DETAIL // 8])
        if status is RunStatus.LOOP_BUDGET:
            raise InstructionLimitExceeded(f"back-edge budget of {self.loop_budget} exhausted", pc=pc)
        if status is RunStatus.CALL_DEPTH:
            raise ExecutionError(f"the call stack of {MAX_CALL_FRAMES + 1} frames is too deep", pc=pc)
        if status is RunStatus.UNKNOWN_HELPER:
            raise HelperError(f"invalid func unknown#{detail}", pc=pc)
        if status is RunStatus.MEMORY_FAULT:
            packed = int(self._state[RunStateField.FAULT // 8])
            kind = "store" if packed & 0x10 else "load"
            raise MemoryFault(kind, pc=pc, address=detail, size=packed & 0xF)
        raise ExecutionError(f"program stopped with status {status}", pc=pc)  # pragma: no cover

    def close(self) -> None:
        self._closed = True
        self._mem.close()
        self._callbacks.clear()

    def __enter__(self) -> JitProgram:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- the batch runner ------------------------------------------------------------------------------------
_DRIVER_CFUNC = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_void_p, ctypes.c_void_p)
_drivers: dict[PacketContextLayout, ExecutableMemory] = {}
_U32_CODE = next(code for code in "IL" if array.array(code).itemsize == 4)
"""The array typecode of a native u32 (the driver's offset, length and verdict arrays)."""


def _u32_array(values: Sequence[int]) -> array.array[int]:
    return array.array(_U32_CODE, values)


def _address(buf: Any) -> int:
    """Where an ``array.array`` or a ctypes object keeps its items."""
    if isinstance(buf, array.array):
        return int(buf.buffer_info()[0])
    return ctypes.addressof(buf)


def _driver(layout: PacketContextLayout) -> ExecutableMemory:
    """The driver for ``layout``, made executable once per process (it serves every program)."""
    mem = _drivers.get(layout)
    if mem is None:
        mem = _drivers[layout] = ExecutableMemory(emit_batch_driver(layout).code)
    return mem


@dataclass(frozen=True, slots=True)
class BatchResult:
    """Per packet: the verdict (r0, low 32 bits) and where the packet starts (from the buffer's
    start) and how long it is after the run; ``contexts``: each run's context block as the program
    left it (only when asked for)."""

    verdicts: list[int]
    starts: list[int]
    lengths: list[int]
    contexts: list[bytes] = field(default_factory=list)


class BatchRunner:
    """Runs a :class:`JitProgram` over many packets with one native call (see :mod:`pybpf.jit.batch`).

    ``ctx`` is the runtime-context block the driver fills in; the caller writes its scalar fields
    (ifindex, queue, frame size...) with ``ctx.write`` before running. Packets live in a
    :class:`NativeBuffer`; offsets and lengths say where each one is.
    """

    def __init__(self, program: JitProgram, layout: PacketContextLayout | Any, *,
                 ctx: NativeBuffer | None = None) -> None:
        if not isinstance(layout, PacketContextLayout):
            layout = PacketContextLayout.from_runtime(layout)
        self.program = program
        self.layout = layout
        self._driver_fn = _DRIVER_CFUNC(_driver(layout).address)
        if ctx is not None and ctx.size < layout.size:
            raise JitError(f"a context block of {ctx.size} bytes is too small for {layout.name}")
        self.ctx = ctx if ctx is not None else NativeBuffer(layout.size)
        """The runtime-context block (``ctx``: share one between runners of the same context)."""
        self._args = (ctypes.c_uint64 * (BatchArg.SIZE // 8))()
        self._args[BatchArg.PROG_ENTRY // 8] = program.entry_address
        self._args[BatchArg.CTX // 8] = self.ctx.address

    def _call(self, packets: NativeBuffer, offsets: Any, lengths: Any, out: tuple[Any, Any, Any], count: int,
              stride: int, headroom: int, env: Any, regions: Sequence[tuple[int, int, bool]],
              meta: int = 0, ctx_in: Any = None, ctx_out: Any = None) -> None:
        prog = self.program
        if prog.closed:
            raise JitError("program is closed")
        a = self._args
        a[BatchArg.COUNT // 8] = count
        a[BatchArg.STRIDE // 8] = stride
        a[BatchArg.BASE // 8] = packets.address
        a[BatchArg.HEADROOM // 8] = headroom
        a[BatchArg.META // 8] = meta
        a[BatchArg.OFFSETS // 8] = _address(offsets)
        a[BatchArg.LENGTHS // 8] = _address(lengths)
        for field_, arr in zip((BatchArg.VERDICTS, BatchArg.OUT_STARTS, BatchArg.OUT_LENGTHS), out, strict=True):
            a[field_ // 8] = _address(arr)
        a[BatchArg.CTX_IN // 8] = _address(ctx_in) if ctx_in is not None else 0
        a[BatchArg.CTX_OUT // 8] = _address(ctx_out) if ctx_out is not None else 0
        table = prog._set_regions(regions) if prog.image.checked else None  # noqa: F841 - alive for the call
        prog.context.env = env
        start = 0
        size = self.layout.size
        while start < count:
            a[BatchArg.START // 8] = start
            done = int(self._driver_fn(ctypes.addressof(a), prog.state_address))
            if done >= count:
                break
            # run `done` stopped early: PROGRAM_EXIT gives its verdict and the batch goes on
            k = done * stride
            try:
                out[0][k] = prog._stop(int(prog._state[_STATUS])) & 0xFFFF_FFFF
            except PybpfError as e:
                e.packet_index = done  # type: ignore[attr-defined]  # which run of the batch failed
                raise
            data, data_end = (int.from_bytes(self.ctx.read(off, 8), "little")
                              for off in (self.layout.data, self.layout.data_end))
            out[1][k], out[2][k] = (data - packets.address) & 0xFFFF_FFFF, (data_end - data) & 0xFFFF_FFFF
            if ctx_out is not None:
                ctypes.memmove(_address(ctx_out) + k * size, self.ctx.address, size)
            start = done + 1

    def run(self, packets: NativeBuffer, offsets: Sequence[int], lengths: Sequence[int], *, headroom: int = 0,
            env: Any = None, regions: Sequence[tuple[int, int, bool]] = (), contexts: bytes | None = None,
            keep_contexts: bool = False) -> BatchResult:
        """One run per packet ``i`` at ``packets + offsets[i]``, ``lengths[i]`` bytes long.

        ``contexts``: one context image per packet (``layout.size`` bytes each, back to back) that
        the driver copies into the context block before building that packet's pointers — for
        fields that differ from packet to packet; without it every run sees the block as the caller
        left it. ``keep_contexts``: return each run's context block (``BatchResult.contexts``).
        A run that fails raises with ``packet_index`` set on the exception."""
        n = len(offsets)
        if len(lengths) != n:
            raise ValueError("offsets and lengths differ in length")
        if n == 0:
            return BatchResult([], [], [])
        if min(offsets) < headroom or min(lengths) < 0 or max(map(operator.add, offsets, lengths)) > packets.size:
            off, length = next((o, m) for o, m in zip(offsets, lengths, strict=True)
                               if o < headroom or m < 0 or o + m > packets.size)
            raise ValueError(f"packet [{off}, {off + length}) (headroom {headroom}) is outside the buffer")
        size = self.layout.size
        ctx_in = None
        if contexts is not None:
            if len(contexts) != n * size:
                raise ValueError(f"{len(contexts)} bytes of context images for {n} packets of {size}-byte contexts")
            ctx_in = array.array("B", contexts)
        ctx_out = array.array("B", bytes(n * size)) if keep_contexts else None
        offs, lens = _u32_array(offsets), _u32_array(lengths)
        zeros = bytes(4 * n)
        out = (array.array(_U32_CODE, zeros), array.array(_U32_CODE, zeros), array.array(_U32_CODE, zeros))
        self._call(packets, offs, lens, out, n, 1, headroom, env, regions, ctx_in=ctx_in, ctx_out=ctx_out)
        raw = b"" if ctx_out is None else ctx_out.tobytes()
        kept = [raw[i * size:(i + 1) * size] for i in range(n)] if raw else []
        return BatchResult(out[0].tolist(), out[1].tolist(), out[2].tolist(), kept)

    def repeat(self, packets: NativeBuffer, offset: int, length: int, count: int, *, headroom: int = 0,
               env: Any = None, regions: Sequence[tuple[int, int, bool]] = (), meta: int = 0
               ) -> tuple[BatchResult, int]:
        """``count`` runs on one packet and one context (what the previous run changed, the next one
        sees, as in the kernel's test runs); returns the last run's result and the mean ns per run.
        ``meta``: bytes of metadata in front of the packet (``data_meta = data - meta``)."""
        result, spent = self.repeat_timed(packets, offset, length, count, headroom=headroom, env=env,
                                          regions=regions, meta=meta)
        return result, spent // max(1, count)

    def repeat_timed(self, packets: NativeBuffer, offset: int, length: int, count: int, *, headroom: int = 0,
                     env: Any = None, regions: Sequence[tuple[int, int, bool]] = (), meta: int = 0
                     ) -> tuple[BatchResult, int]:
        """:meth:`repeat`, returning the total ns of the native call instead of the mean (benchmarks
        want fractions of a nanosecond per run)."""
        if offset < headroom or offset + length > packets.size or meta < 0 or meta > offset:
            raise ValueError(f"packet [{offset}, {offset + length}) (headroom {headroom}) is outside the buffer")
        count = max(1, count)
        offs, lens = _u32_array([offset]), _u32_array([length])
        out = (_u32_array([0]), _u32_array([0]), _u32_array([0]))
        t0 = time.perf_counter_ns()
        self._call(packets, offs, lens, out, count, 0, headroom, env, regions, meta)
        spent = time.perf_counter_ns() - t0
        return BatchResult(out[0].tolist(), out[1].tolist(), out[2].tolist()), spent
