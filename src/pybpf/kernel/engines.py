"""Engines a loaded program can run on, behind one small adapter.

``prepare(program, engine)`` returns a :class:`Runner` whose ``run(r1, env=...)`` executes the
program once and returns r0. Engines:

* ``"interpreter"`` — the vm's reference interpreter (the safety oracle);
* ``"translate"`` — the vm's translate-to-Python tier (same semantics, faster);
* ``"jit"`` — the x86-64 JIT (:mod:`pybpf.jit`), when it is available on this machine: a
  :class:`pybpf.jit.engine.JitEngine` (native helpers on the packet path, native tail calls through
  program arrays, packets and contexts in native memory). Test runs and the hooks hand it whole
  batches — ``repeat`` runs or a batch of frames in one native call (``Runner.impl.run_xdp`` /
  ``run_skb`` / ``run_xdp_frames`` / ``run_skb_frames``); ``Runner.run`` is one call per run, on a
  context the caller built in native memory (``NativeSpace``).

All runners of one :class:`~pybpf.kernel.objects.Kernel` share the kernel's address space, where
each map's storage is registered once as a region (contract 5), and dispatch helpers through
:func:`pybpf.kernel.helpers.helper_table` (plus the helpers of an application-defined program type).
"""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING, Any

from pybpf.errors import NotSupportedError, PybpfError
from pybpf.vm import AddressSpace, HelperTable, Interpreter, RegionKind, SkbView, TranslatedProgram

if TYPE_CHECKING:
    from pybpf.kernel.program import Program

__all__ = [
    "ENGINES",
    "NativeSpace",
    "Runner",
    "jit_available",
    "jit_image",
    "kernel_space",
    "native_space",
    "prepare",
    "run_lock",
]

ENGINES = ("interpreter", "translate", "jit")

_spaces: dict[int, AddressSpace] = {}
_space_lock = threading.Lock()


def kernel_space(kernel: Any) -> AddressSpace:
    """The address space shared by every program of ``kernel`` (created on first use)."""
    with _space_lock:
        space = getattr(kernel, "_space", None)
        if space is None:
            space = AddressSpace()
            kernel._space = space
            kernel._run_lock = threading.RLock()
        return space


def run_lock(kernel: Any) -> threading.RLock:
    """The lock every run of ``kernel``'s programs holds: one run at a time per address space (the
    vm's spaces are not thread-safe) and a stable ``kernel.cpu`` for the run."""
    kernel_space(kernel)
    lock: threading.RLock = kernel._run_lock
    return lock


class Runner:
    """A program prepared for one engine."""

    def __init__(self, program: Program, engine: str, impl: Any, space: AddressSpace) -> None:
        self.program = program
        self.engine = engine
        self.impl = impl
        self.space = space

    def run(self, r1: int = 0, *, env: Any = None, skb: SkbView | None = None, budget: int | None = None) -> int:
        """One run; returns r0 (u64)."""
        if self.engine == "jit":
            return int(self.impl.run(r1, env=env, skb=skb))
        return int(self.impl.run(r1, env=env, skb=skb, budget=budget))


def _helpers_for(program: Program) -> HelperTable:
    from pybpf.kernel.custom import custom_helpers
    from pybpf.kernel.helpers import helper_table

    return helper_table(custom_helpers(int(program.image.prog_type)))


def prepare(program: Program, engine: str = "interpreter") -> Runner:
    """``program`` ready to run on ``engine`` (see the module docstring)."""
    space = kernel_space(program.kernel)
    helpers = _helpers_for(program)
    if engine == "interpreter":
        impl: Any = Interpreter(program, helpers=helpers, space=space, name=program.name)
    elif engine == "translate":
        impl = TranslatedProgram(program, helpers=helpers, space=space, name=program.name)
    elif engine == "jit":
        impl = _jit(program, helpers)
    else:
        raise ValueError(f"unknown engine {engine!r} (choose from {', '.join(ENGINES)})")
    return Runner(program, engine, impl, space)


def _jit(program: Program, helpers: HelperTable) -> Any:
    """The JIT adapter: a :class:`pybpf.jit.engine.JitEngine` over the kernel's helpers (the native
    library replaces the packet-path ones); the Python helpers left reach maps and scratch memory
    through the kernel's :class:`NativeSpace` (real addresses instead of vm regions)."""
    if not jit_available():
        import platform

        raise NotSupportedError("the JIT emits x86-64 code; this machine is " + platform.machine())
    try:
        from pybpf.jit.engine import JitEngine
    except ImportError as e:  # pragma: no cover - the jit package ships with pybpf
        raise NotSupportedError(f"the JIT is not available: {e}") from None
    from pybpf.vm import ProgramExit

    # a program the verifier never saw (created without it: verified_insns 0) is refused by the JIT
    return JitEngine(program, helpers=helpers, exit_exceptions=(ProgramExit,), map_kind=RegionKind.MAP,
                     scratch_kind=RegionKind.MEM, space=native_space(program.kernel),
                     verified=int(getattr(program.image, "verified_insns", 0)) > 0)


def jit_available() -> bool:
    """Whether this machine can run the x86-64 JIT's code (what ``owner_jited`` and friends say)."""
    import platform

    return platform.machine().lower() in ("x86_64", "amd64")


def jit_image(program: Program) -> tuple[Any, int] | None:
    """The x86-64 JIT's image of ``program`` and the address it is mapped at (0 when it is not
    mapped), for ``prog dump jited`` and the ``jited`` size of ``prog show`` — Linux JITs every
    program at load time on x86-64, pybpf when it first runs on the JIT, or here, inertly, on demand.
    None where the JIT cannot compile this program (another architecture, a refusal)."""
    runner = program._runners.get("jit")
    impl = getattr(runner, "impl", None)
    image = getattr(impl, "image", None)
    if image is not None:
        entry = getattr(impl, "entry_address", None)
        base = entry - image.main_entry if isinstance(entry, int) else 0
        return image, base
    if not jit_available():
        return None
    try:
        from pybpf.jit import compile_program
        from pybpf.jit.program import helper_table_from_vm
    except ImportError:  # pragma: no cover - the jit package ships with pybpf
        return None
    try:
        image = compile_program(program.insns, helpers=helper_table_from_vm(_helpers_for(program)), verified=True)
    except PybpfError:
        return None
    return image, 0


class _NativeRegion:
    """A region of :class:`NativeSpace`: a buffer at its real address (no bounds: native code)."""

    def __init__(self, buf: Any, kind: RegionKind, name: str, start: int, end: int, owner: object,
                 base: int | None = None) -> None:
        import ctypes

        self.buf = buf
        self.kind = kind
        self.name = name
        self.start, self.end = start, end
        self.owner = owner
        if base is None:
            arr = (ctypes.c_char * max(len(buf), 1)).from_buffer(buf)
            base = ctypes.addressof(arr)
            self._arr = arr
        self.base = base

    def address(self, offset: int | None = None) -> int:
        return self.base + (self.start if offset is None else offset)


class NativeSpace:
    """The part of :class:`~pybpf.vm.AddressSpace` the kernel's helpers and test runs use, over real
    addresses, for programs running as native code: a map pointer is the map's storage address."""

    def __init__(self, kernel: Any) -> None:
        self.kernel = kernel
        self._regions: list[_NativeRegion] = []

    def _maps(self) -> list[Any]:
        return [r() for r in list(self.kernel._by_id.values()) if r() is not None and r().kind == "map"]

    def map_at(self, address: int) -> Any:
        """The map whose storage starts at ``address`` (a map pointer), or None."""
        for m in self._maps():
            if m.base == address:
                return m
        return None

    def map_region(self, map_id: int, storage: Any, owner: Any, name: str = "") -> _NativeRegion:
        """The map's storage as a region at its real address."""
        return _NativeRegion(storage, RegionKind.MAP, name, 0, len(storage), owner, base=owner.base)

    def find(self, address: int) -> _NativeRegion | None:
        """The region (map storage or added buffer) holding ``address``, or None."""
        for m in self._maps():
            if m.base <= address < m.base + m.mapping.size:
                return self.map_region(m.id, m.storage, m)
        for r in self._regions:
            if r.base <= address < r.base + len(r.buf):
                return r
        return None

    def add(self, buffer: Any, kind: RegionKind = RegionKind.MEM, name: str = "", *, start: int = 0,
            end: int | None = None, writable: bool | None = None, owner: object = None) -> _NativeRegion:
        """Register a buffer at its real address (test-run packets and contexts)."""
        r = _NativeRegion(buffer, kind, name, start, len(buffer) if end is None else end, owner)
        self._regions.append(r)
        return r

    def resize(self, region: _NativeRegion, start: int | None = None, end: int | None = None) -> None:
        """Move a region's valid window (XDP head/tail adjustments)."""
        region.start = region.start if start is None else start
        region.end = region.end if end is None else end

    def remove(self, region: _NativeRegion) -> None:
        """Forget a region added with :meth:`add`."""
        with contextlib.suppress(ValueError):
            self._regions.remove(region)


def native_space(kernel: Any) -> NativeSpace:
    """The :class:`NativeSpace` of ``kernel`` (created on first use, with the run lock)."""
    space = getattr(kernel, "_native_space", None)
    if space is None:
        kernel_space(kernel)  # also creates the run lock
        space = NativeSpace(kernel)
        kernel._native_space = space
    return space
