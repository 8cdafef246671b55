"""The JIT in the load path: a loaded, verified program run natively, packets and contexts included.

:class:`JitEngine` is what the kernel layer prepares for ``--engine jit`` (``BPF_PROG_TEST_RUN``,
``pybpf prog run ... --engine jit``, the hooks). From a loaded program (``.insns`` after the
verifier's fixups, ``.used_maps``) and the kernel layer's Python helpers it builds one
:class:`~pybpf.jit.runtime.JitProgram` whose

* packet-path helpers are the native library's (:mod:`pybpf.jit.native`): map operations on the
  maps' own storage, time, randomness, redirects, XDP head/tail/meta, ring buffers — a plain
  ``call``, no Python; every other helper is the kernel layer's Python function behind a ctypes
  callback, given a helper context whose ``space`` (:class:`NativeSpace`) answers the questions
  those functions ask about maps in native memory;
* ``bpf_tail_call`` jumps natively through a shadow of each program array (slot → the target's
  JIT entry; targets are JIT-compiled on first use and share this engine's run state);
* ``LD_ABS`` / ``LD_IND`` read the packet through the native ``skb_load``.

Runs build their contexts natively from the progtypes runtime layouts (contract 4) through the batch
runner — one ctypes call for all ``repeat`` runs (:meth:`run_xdp`, :meth:`run_skb`) or for a whole
batch of frames (:meth:`run_xdp_frames`, :meth:`run_skb_frames`: one context image per frame, so
each frame has its own device, queue, skb fields). The packet lives in native memory:
:meth:`xdp_buff` and :meth:`skb_buff` give objects with the interface of the kernel layer's
``XdpState`` / ``SkbState`` (``buf``, ``data``, ``data_end``, ``data_meta``, ``sync()``,
``packet()``...), and during a batch of frames ``env.xdp`` / ``env.skb`` follow the frame being run,
so the Python packet helpers work unchanged.

Who calls it: ``pybpf.kernel.engines`` prepares one engine per loaded program for ``engine="jit"``
(``Runner.impl``; programs the verifier never saw are refused); ``pybpf.kernel.test_run`` runs
``BPF_PROG_TEST_RUN`` of XDP and skb programs as ``eng.xdp_buff(...)`` / ``eng.skb_buff(...)``
then one ``eng.run_xdp(x, repeat, env=, cpu=)`` / ``eng.run_skb(...)`` under the kernel's run lock
(``RunResult.duration`` is the test run's duration); the hooks' ``JitXdpRunner`` /
``JitSkbRunner`` hand their batches to :meth:`run_xdp_frames` / :meth:`run_skb_frames`.
:meth:`JitEngine.run` (one run on a context the caller built in native memory: raw tracepoint
arguments, application-defined contexts) is the drop-in for ``JitProgram.run``; only
``xdp_buff``/``skb_buff`` and the batches keep a packet's offsets in step with what native helpers do
to the context's pointers.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import struct
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from pybpf.errors import HelperError, JitError, PybpfError
from pybpf.jit.compile import compile_program
from pybpf.jit.helpers import HelperEntry, PythonHelper, TailCall
from pybpf.jit.native import ENV, ENV_SIZE, NO_OFFSET, EnvField, RiWritten, library, native_helper_table
from pybpf.jit.program import helper_table_from_vm
from pybpf.jit.runtime import BatchRunner, JitProgram, NativeBuffer
from pybpf.progtypes import SKB_RUNTIME, XDP_RUNTIME, descriptor
from pybpf.progtypes.internal import INTERNAL_FUNCTIONS
from pybpf.uapi import HelperId, MapType

__all__ = [
    "JitEngine",
    "NativeSkb",
    "NativeSpace",
    "NativeXdpBuff",
    "RedirectRecord",
    "RunResult",
    "SkbFrameIn",
    "SkbFrameResult",
    "XdpFrameIn",
    "XdpFrameResult",
]

PAGE_SIZE = 4096
XDP_PACKET_HEADROOM = 256
SKB_SHARED_INFO = 320
NET_SKB_PAD = 64
ETH_HLEN = 14
SMP_CACHE_BYTES = 64
_XDP_MAX_LINEAR = PAGE_SIZE - XDP_PACKET_HEADROOM - SKB_SHARED_INFO  # a page's room for a frame
_U32 = 0xFFFF_FFFF
_M64 = (1 << 64) - 1
_TAIL_MAX_ENTRIES_OFF, _TAIL_PTRS_OFF = 0, 8
_REDIRECT_IDS = frozenset({int(HelperId.redirect), int(HelperId.redirect_map)}
                          | {f.id for f in INTERNAL_FUNCTIONS if f.replaces == HelperId.redirect_map})
"""Helpers (and contract-2 internal functions) that leave a redirect decision in ``bpf_redirect_info``."""


# -- what the kernel layer's Python helpers see -----------------------------------------------------------

class _Region:
    """A region-shaped answer of :class:`NativeSpace` (``kind``, ``owner``, ``base``, ``buf``)."""

    __slots__ = ("_keep", "base", "buf", "kind", "name", "owner")

    def __init__(self, kind: Any, owner: Any, base: int, buf: Any, name: str, keep: Any = None) -> None:
        self.kind, self.owner, self.base, self.buf, self.name, self._keep = kind, owner, base, buf, name, keep

    def address(self, off: int = 0) -> int:
        return self.base + off


class NativeSpace:
    """``ctx.space`` for the kernel layer's Python helpers when the JIT runs them: the few questions
    they ask of the interpreter's address space, answered for native memory.

    A map pointer is the map's storage address (``map.address``): :meth:`map_at` finds the map for
    one, :meth:`map_region` registers a map and gives its pointer (what a map-in-map lookup returns),
    :meth:`find` the map whose storage holds an address (ring buffer samples, spin locks in values),
    :meth:`add` / :meth:`remove` scratch memory. ``map_kind`` is the region kind those helpers test
    for maps (the vm's ``RegionKind.MAP``: the JIT does not import the vm).
    """

    def __init__(self, maps: Iterable[Any] = (), *, map_kind: Any = "map", scratch_kind: Any = "mem") -> None:
        self.map_kind = map_kind
        self.scratch_kind = scratch_kind
        self._maps: dict[int, Any] = {}
        self._scratch: dict[int, _Region] = {}
        for m in maps:
            self.add_map(m)

    def add_map(self, m: Any) -> int:
        address = int(m.address)
        self._maps[address] = m
        return address

    def map_at(self, address: int) -> Any:
        return self._maps.get(address)

    def map_region(self, map_id: int, storage: Any, owner: Any, name: str = "") -> _Region:
        base = self.add_map(owner)
        return _Region(self.map_kind, owner, base, storage, name or f"map[id:{map_id}]")

    def find(self, address: int) -> _Region | None:
        for base, m in self._maps.items():
            if base <= address < base + len(m.storage):
                return _Region(self.map_kind, m, base, m.storage, m.name)
        for r in self._scratch.values():
            if r.base <= address < r.base + len(r.buf):
                return r
        return None

    def owner_at(self, address: int) -> Any:
        r = self.find(address)
        return None if r is None else r.owner

    def add(self, buffer: Any, kind: Any = None, name: str = "", **_: Any) -> _Region:
        """Scratch memory a helper hands to a program (copied into native memory; ``region.buf``
        writes go to that memory)."""
        native = NativeBuffer(bytes(buffer))
        r = _Region(kind if kind is not None else self.scratch_kind, None, native.address, native.view(), name, native)
        self._scratch[native.address] = r
        return r

    def remove(self, region: Any) -> None:
        if isinstance(region, _Region):
            self._scratch.pop(region.base, None)


def _pointer_offset(name: str) -> property:
    """A property: the context's pointer field ``name`` as an offset into ``buf`` (read and write)."""

    def get(self: _XdpPointers) -> int:
        return self._get(name) - self._base

    def put(self: _XdpPointers, off: int) -> None:
        self._set(name, self._base + off)

    return property(get, put, doc=f"``{name}`` as an offset into ``buf``")


class _XdpPointers:
    """What an ``xdp_buff`` looks like to the kernel layer's Python helpers (``XdpState``'s
    interface): ``buf`` and the offsets ``data`` / ``data_end`` / ``data_meta`` into it. The truth is
    the runtime context the program reads: the offsets read and write its pointer fields, so native
    helpers (which move those pointers) and Python helpers (which set the offsets) always agree and
    :meth:`sync` has nothing left to do. ``_base`` is the address of ``buf[0]``."""

    _ctxv: memoryview
    frags: bytes
    frame_sz: int

    _OFF = {n: XDP_RUNTIME.fields[n].offset for n in ("data", "data_end", "data_meta", "data_hard_start")}

    @property
    def _base(self) -> int:
        raise NotImplementedError

    def _get(self, name: str) -> int:
        return int(struct.unpack_from("<Q", self._ctxv, self._OFF[name])[0])

    def _set(self, name: str, address: int) -> None:
        struct.pack_into("<Q", self._ctxv, self._OFF[name], address & _M64)

    data = _pointer_offset("data")
    data_end = _pointer_offset("data_end")
    data_meta = _pointer_offset("data_meta")

    @property
    def hard_end(self) -> int:
        """``xdp_data_hard_end``: the tailroom for skb_shared_info is reserved."""
        return self.frame_sz - SKB_SHARED_INFO

    def sync(self) -> None:
        """Nothing to publish: the offsets *are* the context's pointers."""


class NativeXdpBuff(_XdpPointers):
    """An ``xdp_buff`` in native memory: one page, ``[hard_start | headroom | meta | data | tailroom]``,
    described by the runtime context block ``ctx`` (``XDP_RUNTIME.size`` bytes), with the interface
    of the kernel layer's ``XdpState`` (see :class:`_XdpPointers`)."""

    def __init__(self, ctx: NativeBuffer, linear: bytes, *, headroom: int, meta_len: int, ingress_ifindex: int = 1,
                 rx_queue_index: int = 0, frags: bytes = b"", egress_ifindex: int = 0) -> None:
        if (headroom < 0 or meta_len < 0 or meta_len > len(linear)
                or headroom + len(linear) > PAGE_SIZE - SKB_SHARED_INFO):
            raise ValueError("the frame does not fit in one page with its headroom and tailroom")
        self.frame_sz = PAGE_SIZE
        self.page = NativeBuffer(PAGE_SIZE)
        self.page.write(bytes(linear), headroom)
        self.buf = self.page.view()
        self.frags = bytes(frags)
        self._ctx = ctx
        self._ctxv = ctx.view()
        self.offset = headroom + meta_len  # where data starts, for the batch driver
        self.length = len(linear) - meta_len
        self.meta_len = meta_len
        self.headroom = headroom + meta_len  # data - data_hard_start
        f = XDP_RUNTIME.fields
        for name, value in (("ingress_ifindex", ingress_ifindex), ("rx_queue_index", rx_queue_index),
                            ("egress_ifindex", egress_ifindex), ("frame_sz", PAGE_SIZE)):
            struct.pack_into("<I", self._ctxv, f[name].offset, value & _U32)
        # the pointers as the driver will build them, so the object is usable before a run
        base = self.page.address
        self._set("data_hard_start", base)
        self._set("data_meta", base + headroom)
        self._set("data", base + self.offset)
        self._set("data_end", base + headroom + len(linear))

    @property
    def _base(self) -> int:
        return self.page.address

    @property
    def ctx_address(self) -> int:
        return self._ctx.address

    def packet(self) -> bytes:
        """``data_meta .. data_end`` and the non-linear part (what ``data_out`` receives)."""
        return bytes(self.buf[self.data_meta:self.data_end]) + self.frags

    def close(self) -> None:
        self.buf.release()


class _XdpFrameView(_XdpPointers):
    """``env.xdp`` while a batch of frames runs (:meth:`JitEngine.run_xdp_frames`): the frame the
    program is running on, found from the context block's ``data_hard_start`` — so a Python helper
    called from the middle of a native batch (``bpf_xdp_load_bytes``, ``bpf_perf_event_output``...)
    works on the right frame without the driver telling Python which one it is."""

    def __init__(self, ctx: NativeBuffer, frames: NativeBuffer) -> None:
        self._ctxv = ctx.view()
        self._frames = frames
        self._framesv = frames.view()
        self.frags = b""

    @property
    def _base(self) -> int:
        return self._get("data_hard_start")

    @property
    def frame_sz(self) -> int:
        return int(struct.unpack_from("<I", self._ctxv, XDP_RUNTIME.fields["frame_sz"].offset)[0])

    @property
    def buf(self) -> memoryview:
        start = self._base - self._frames.address
        return self._framesv[start:start + self.frame_sz]


class _SkbFields:
    """The scalar fields of an skb's runtime context block (``SKB_RUNTIME``), by name."""

    _ctxv: memoryview

    def field(self, name: str) -> int:
        f = SKB_RUNTIME[name]
        return int.from_bytes(bytes(self._ctxv[f.offset:f.offset + f.size]), "little")

    def set_field(self, name: str, value: int | bytes) -> None:
        f = SKB_RUNTIME[name]
        raw = bytes(value).ljust(f.size, b"\0")[:f.size] if isinstance(value, bytes | bytearray) else \
            (value & ((1 << (8 * f.size)) - 1)).to_bytes(f.size, "little")
        self._ctxv[f.offset:f.offset + f.size] = raw

    @property
    def ctx_buf(self) -> memoryview:
        """The runtime context's bytes (what ``SkbState.ctx_buf`` is: callers store fields in it)."""
        return self._ctxv


class NativeSkb(_SkbFields):
    """A linear ``sk_buff`` in native memory, with the interface of the kernel layer's ``SkbState``:
    ``buf = [NET_SKB_PAD | frame | tailroom]``, ``data`` (offset of ``skb->data``), ``len``, the
    context's scalar fields through :meth:`field` / :meth:`set_field`."""

    def __init__(self, ctx: NativeBuffer, frame: bytes, *, l2: bool, fields: Mapping[str, int | bytes],
                 eth_hlen: int = ETH_HLEN) -> None:
        self.page = NativeBuffer(NET_SKB_PAD + len(frame) + SKB_SHARED_INFO)
        self.page.write(bytes(frame), NET_SKB_PAD)
        self.buf = self.page.view()
        self.mac = NET_SKB_PAD
        self.l2 = l2
        self.data = NET_SKB_PAD if l2 else NET_SKB_PAD + eth_hlen
        self.len = len(frame) - (0 if l2 else eth_hlen)
        self._ctx = ctx
        self._ctxv = ctx.view()
        self._ctxv[:] = bytes(len(self._ctxv))
        for name, value in fields.items():
            self.set_field(name, value)
        self.sync()

    def sync(self) -> None:
        base = self.page.address
        for name, v in (("data", base + self.data), ("data_end", base + self.data + self.len),
                        ("data_meta", base + self.data), ("len", self.len)):
            self.set_field(name, v)

    @property
    def data_address(self) -> int:
        return self.page.address + self.data

    @property
    def ctx_address(self) -> int:
        return self._ctx.address

    def packet(self) -> bytes:
        return bytes(self.buf[self.data:self.data + self.len])

    def close(self) -> None:
        self.buf.release()


class _SkbFrameView(_SkbFields):
    """``env.skb`` while a batch of skb frames runs (:meth:`JitEngine.run_skb_frames`): the frame
    the program is running on, from the context block's ``data`` pointer and ``len`` — what
    ``bpf_skb_load_bytes`` / ``bpf_skb_store_bytes`` / the checksum helpers need."""

    def __init__(self, ctx: NativeBuffer, frames: NativeBuffer) -> None:
        self._ctxv = ctx.view()
        self._frames = frames
        self.buf = frames.view()

    @property
    def data(self) -> int:
        return self.field("data") - self._frames.address

    @property
    def len(self) -> int:
        return self.field("len")

    @property
    def data_address(self) -> int:
        return self.field("data")

    def packet(self) -> bytes:
        return bytes(self.buf[self.data:self.data + self.len])


@dataclass(frozen=True, slots=True)
class RunResult:
    """``retval``: the last run's r0 as a u32; ``duration``: mean ns per run (u32-saturated, as the
    kernel reports it); ``total_ns``: the wall time of the native call; ``runs``."""

    retval: int
    duration: int
    total_ns: int
    runs: int


@dataclass(frozen=True, slots=True)
class RedirectRecord:
    """What the redirect helpers decided in one run (``bpf_redirect_info``): ``written`` has a
    :class:`~pybpf.jit.native.RiWritten` bit per field the native helpers set; ``map`` is the map
    object of a broadcast redirect."""

    written: int = 0
    tgt_index: int = 0
    map_id: int = 0
    map_type: int = 0
    flags: int = 0
    map: Any = None


class XdpFrameIn(NamedTuple):
    """One frame for :meth:`JitEngine.run_xdp_frames`: its bytes and where it arrived."""

    data: bytes
    ingress_ifindex: int = 1
    rx_queue_index: int = 0


class XdpFrameResult(NamedTuple):
    """One frame of :meth:`JitEngine.run_xdp_frames`: the verdict, the frame after the run
    (``data .. data_end``), the metadata in front of it, and (for programs that may redirect) that
    frame's redirect decision."""

    verdict: int
    data: bytes
    redirect: RedirectRecord | None = None
    meta: bytes = b""


class SkbFrameIn(NamedTuple):
    """One frame for :meth:`JitEngine.run_skb_frames`: the bytes from the MAC header, the runtime
    context's scalar fields (``SKB_RUNTIME`` names: ``protocol``, ``ifindex``, ``mark``, ``cb``...;
    ``len`` and the packet pointers are filled in), and whether ``skb->data`` is the MAC header
    (tc) or the network header (socket filters)."""

    data: bytes
    fields: Mapping[str, int | bytes]
    l2: bool = True


class SkbFrameResult(NamedTuple):
    """One frame of :meth:`JitEngine.run_skb_frames`: the verdict, the frame from the MAC header
    after the run, the runtime context as the program left it (read it with ``SKB_RUNTIME``) and,
    for programs that may redirect, the redirect decision."""

    verdict: int
    data: bytes
    context: bytes
    redirect: RedirectRecord | None = None

    def field(self, name: str) -> int:
        """A scalar field of the context after the run."""
        f = SKB_RUNTIME[name]
        return int.from_bytes(self.context[f.offset:f.offset + f.size], "little")


# -- the engine -----------------------------------------------------------------------------------------

class _Maps:
    """Map ids → native addresses (contract 1), program arrays → their shadow tables."""

    def __init__(self, used: Mapping[int, Any], shadows: Mapping[int, NativeBuffer]) -> None:
        self._used = used
        self._shadows = shadows

    def map_address(self, map_id: int) -> int:
        shadow = self._shadows.get(map_id)
        if shadow is not None:
            return shadow.address
        m = self._used.get(map_id)
        if m is None or getattr(m, "address", None) is None:
            raise JitError(f"lddw: no map with id {map_id} and native storage in the program's used maps")
        return int(m.address)

    def map_value_address(self, map_id: int, offset: int) -> int:
        m = self._used.get(map_id)
        if m is None:
            raise JitError(f"lddw: no map with id {map_id} in the program's used maps")
        return int(m.address) + int(m.direct_value_addr(offset))


class _ProgArray:
    """The native shadow of a program array: u32 max_entries, then one u64 tail-call entry per slot."""

    def __init__(self, m: Any) -> None:
        self.map = m
        self.table = NativeBuffer(_TAIL_PTRS_OFF + 8 * int(m.max_entries))
        self.table.write(struct.pack("<I", int(m.max_entries)), _TAIL_MAX_ENTRIES_OFF)
        self._seen: bytes | None = None

    def slots(self) -> bytes:
        m = self.map
        start = int(m.value_offset(0))
        return bytes(m.storage[start:start + int(m.elem_size) * int(m.max_entries)])


class JitEngine:
    """A loaded program compiled for native runs (see the module docstring).

    ``program``: ``.insns`` (post-load, verified) and ``.used_maps`` (id → map object with
    ``address``, ``map_type``, ``storage``...), and ``.image.prog_type`` or ``prog_type=``.
    ``helpers``: the kernel layer's vm-style helper table (id → ``fn(ctx, r1..r5)``); the native
    library replaces the ids it implements. ``exit_exceptions``: the vm's ``ProgramExit``.
    ``map_kind`` / ``scratch_kind``: the vm's ``RegionKind.MAP`` / ``RegionKind.MEM``, which the
    Python helpers compare regions with, for the :class:`NativeSpace` made here — or ``space``: the
    caller's own object with that interface (``map_at``, ``map_region``, ``find``, ``add``,
    ``remove``), given to Python helpers as ``ctx.space``. ``verified=False`` is refused (the JIT
    only runs what the verifier accepted).
    """

    def __init__(self, program: Any, *, helpers: Mapping[int, Callable[..., Any]] | None = None,
                 prog_type: int | None = None, exit_exceptions: tuple[type[BaseException], ...] = (),
                 map_kind: Any = "map", scratch_kind: Any = "mem", space: Any = None, verified: bool = True,
                 _root: JitEngine | None = None) -> None:
        if not verified:
            name = getattr(program, "name", "") or "the program"
            raise JitError(f"{name} was not verified: the JIT runs verified programs only (unverified code "
                           "runs on the interpreter, or through compile_program(..., allow_unverified=True) "
                           "in checked mode)")
        self.program = program
        self.prog_type = int(prog_type if prog_type is not None else _prog_type_of(program))
        self.desc = descriptor(self.prog_type)
        self.helpers = dict(helpers or {})
        self.exit_exceptions = exit_exceptions
        self.map_kind, self.scratch_kind = map_kind, scratch_kind
        self._root = _root or self
        self._lock = threading.RLock() if _root is None else _root._lock
        self.used_maps: dict[int, Any] = dict(getattr(program, "used_maps", None) or {})
        self._variants: dict[bool, JitProgram] = {}
        self._runners: dict[tuple[bool, str], BatchRunner] = {}
        self._slots: NativeBuffer | None = None  # a hook's batch of frames (see _frame_slots)
        self._prog_arrays = {mid: _ProgArray(m) for mid, m in self.used_maps.items()
                             if int(m.map_type) == MapType.PROG_ARRAY}
        self._targets: dict[int, tuple[Any, JitEngine]] = {} if _root is None else _root._targets
        if _root is not None:
            self.space: Any = _root.space
        elif space is not None:
            self.space = space
        else:
            self.space = NativeSpace(map_kind=map_kind, scratch_kind=scratch_kind)
        if hasattr(self.space, "add_map"):
            for m in self.used_maps.values():
                self.space.add_map(m)
        self.native_ids: frozenset[int] = frozenset()
        self._calls = frozenset(i.imm & _U32 for i in program.insns if i.code == 0x85 and i.src == 0)
        self.prog = self._variant(False)
        if _root is None:
            self._seed_env(self.prog)

    # -- building -------------------------------------------------------------------------------------
    def _map_types(self) -> set[int]:
        types = set()
        for m in self.used_maps.values():
            types.add(int(m.map_type))
            meta = getattr(m, "inner_map_meta", None)
            if meta is not None:
                types.add(int(meta.map_type))
        return types

    def _variant(self, frags: bool) -> JitProgram:
        """The program compiled for runs without (or with) a non-linear XDP part."""
        prog = self._variants.get(frags)
        if prog is not None:
            return prog
        native = native_helper_table(self.prog_type, self._map_types(), xdp_frags=frags)
        table = helper_table_from_vm(self.helpers)
        table.update(native)
        for hid in self._calls - set(table):  # verified, but nothing implements it: fail when reached
            table[hid] = HelperEntry(f"unknown#{hid}", PythonHelper(_unknown_helper(hid), context=True))
        if self._prog_arrays:
            table[int(HelperId.tail_call)] = HelperEntry("tail_call", TailCall(_TAIL_MAX_ENTRIES_OFF, _TAIL_PTRS_OFF))
        loader = library().entry("skb_load", "ld_abs") if self.desc.ld_abs else None
        image = compile_program(self.program.insns, helpers=table, packet_loader=loader, verified=True)
        shadows = {mid: pa.table for mid, pa in self._prog_arrays.items()}
        owner = self._root._variants.get(False)  # None only for the root's first program: it owns the state
        prog = JitProgram(image, helpers=table, packet_loader=loader, maps=_Maps(self.used_maps, shadows),
                          exit_exceptions=self.exit_exceptions, extra_state=ENV_SIZE, state_of=owner)
        prog.context.space = self.space
        self._variants[frags] = prog
        self.native_ids = frozenset(k for k, v in native.items() if k in set(image.helper_kinds))
        return prog

    @staticmethod
    def _seed_env(prog: JitProgram) -> None:
        view = prog.state_view()
        seed = os.urandom(16)
        if seed == bytes(16):  # pragma: no cover - xorshift must not start at zero
            seed = b"\x01" + seed[1:]
        view[ENV + EnvField.PRNG0:ENV + EnvField.PRNG0 + 16] = seed

    def _target(self, target: Any) -> JitEngine:
        """The engine of a tail-call target (compiled on first use, sharing this run state)."""
        key = int(getattr(target, "id", id(target)))
        hit = self._targets.get(key)
        if hit is not None and hit[0] is target:
            return hit[1]
        eng = JitEngine(target, helpers=self.helpers, exit_exceptions=self.exit_exceptions, map_kind=self.map_kind,
                        scratch_kind=self.scratch_kind, _root=self._root)
        self._targets[key] = (target, eng)
        return eng

    def _refresh_tail_calls(self) -> None:
        for pa in self._prog_arrays.values():
            raw = pa.slots()
            if raw == pa._seen:
                continue
            pa._seen = raw  # first: programs that tail-call each other come back here
            stride = int(pa.map.elem_size)
            for i in range(int(pa.map.max_entries)):
                pid = int.from_bytes(raw[i * stride:i * stride + 4], "little")
                address = 0
                if pid:
                    target = pa.map.target(i)
                    if target is not None:
                        eng = self._target(target)
                        eng._refresh_tail_calls()
                        address = eng.prog.tail_call_address
                pa.table.write(address.to_bytes(8, "little"), _TAIL_PTRS_OFF + 8 * i)

    # -- per-run env -----------------------------------------------------------------------------------
    def _begin(self, prog: JitProgram, cpu: int, skb: NativeSkb | None = None,
               network_offset: int | None = None, mac_offset: int | None = None) -> memoryview:
        view = prog.state_view()
        struct.pack_into("<II", view, ENV + EnvField.CPU, cpu & _U32, os.getpid() or 1)
        struct.pack_into("<I", view, ENV + EnvField.RI_WRITTEN, 0)
        if skb is not None:
            struct.pack_into("<QQqq", view, ENV + EnvField.SKB_DATA, skb.data_address, skb.len,
                             NO_OFFSET if network_offset is None else network_offset,
                             NO_OFFSET if mac_offset is None else mac_offset)
        self._refresh_tail_calls()
        return view

    def _finish(self, view: memoryview, env: Any) -> RedirectRecord:
        """What native redirect helpers decided, copied into ``env.ri`` (the kernel's redirect
        info) when the env has one."""
        written = struct.unpack_from("<I", view, ENV + EnvField.RI_WRITTEN)[0]
        if not written:
            return RedirectRecord()
        tgt, map_id, map_type = struct.unpack_from("<III", view, ENV + EnvField.RI_TGT)
        flags, map_addr = struct.unpack_from("<QQ", view, ENV + EnvField.RI_FLAGS)
        rec = RedirectRecord(written, tgt, map_id, map_type, flags,
                             self.space.map_at(map_addr) if map_addr else None)
        ri = getattr(env, "ri", None)
        if ri is not None:
            if written & RiWritten.TGT:
                ri.tgt_index = tgt
            if written & RiWritten.MAP_ID:
                ri.map_id = map_id
            if written & RiWritten.MAP_TYPE:
                ri.map_type = map_type
            if written & RiWritten.FLAGS:
                ri.flags = flags
            if written & RiWritten.MAP:
                ri.map = rec.map  # the map of a broadcast redirect
        return rec

    @property
    def calls_native_redirect(self) -> bool:
        """Whether the program calls a redirect helper bound natively (its decisions are per run)."""
        return bool(_REDIRECT_IDS & self.native_ids)

    @property
    def may_redirect(self) -> bool:
        """Whether a run may leave a redirect decision behind: the program calls a redirect helper
        (native or Python), or tail-calls programs that might."""
        return bool(self._prog_arrays) or bool(_REDIRECT_IDS & self._calls)

    @property
    def uses_ld_abs(self) -> bool:
        """Whether the program (or a program it tail-calls) may read the packet with LD_ABS / LD_IND."""
        return bool(self._prog_arrays) or any(i.code & 0x07 == 0 and i.code & 0xE0 in (0x20, 0x40)
                                              for i in self.program.insns)

    # -- runs ------------------------------------------------------------------------------------------
    def runner(self, *, frags: bool = False) -> BatchRunner:
        """The batch runner of this program for its type's runtime layout."""
        key = (frags, self.desc.runtime.name)
        r = self._runners.get(key)
        if r is None:  # every variant runs on the same context block
            shared = next(iter(self._runners.values()), None)
            r = self._runners[key] = BatchRunner(self._variant(frags), self.desc.runtime,
                                                 ctx=shared.ctx if shared is not None else None)
        return r

    def _runner_on(self, ctx: NativeBuffer, *, frags: bool = False) -> BatchRunner:
        """The batch runner for a context block: the engine's own, or one made for the block of a
        packet buffer (:meth:`xdp_buff` / :meth:`skb_buff` give each buffer its own)."""
        runner = self.runner(frags=frags)
        if runner.ctx is ctx:
            return runner
        return BatchRunner(self._variant(frags), self.desc.runtime, ctx=ctx)

    def xdp_buff(self, linear: bytes, *, headroom: int = XDP_PACKET_HEADROOM, meta_len: int = 0,
                 ingress_ifindex: int = 1, rx_queue_index: int = 0, frags: bytes = b"",
                 egress_ifindex: int = 0) -> NativeXdpBuff:
        """A native ``xdp_buff`` for :meth:`run_xdp` (``headroom``: bytes before ``data_meta``; the
        first ``meta_len`` bytes of ``linear`` are metadata; ``frags``: the non-linear part;
        ``egress_ifindex``: set for programs run on a devmap entry)."""
        if self.desc.test_run != "xdp":
            raise JitError(f"{self.desc.name} programs do not take an xdp_buff")
        # a context block of its own (as the kernel layer's XdpState has): a batch of frames run on
        # the engine's block meanwhile cannot change what this buffer's context says
        return NativeXdpBuff(NativeBuffer(XDP_RUNTIME.size), linear, headroom=headroom, meta_len=meta_len,
                             ingress_ifindex=ingress_ifindex, rx_queue_index=rx_queue_index, frags=frags,
                             egress_ifindex=egress_ifindex)

    def run_xdp(self, xdp: NativeXdpBuff, repeat: int = 1, *, env: Any = None, cpu: int = 0) -> RunResult:
        """``repeat`` runs (0 = 1) on ``xdp``, one native call: each run sees what the previous one
        left (``bpf_xdp_adjust_*``), as the kernel's test runs do."""
        n = max(1, repeat)
        runner = self._runner_on(xdp._ctx, frags=bool(xdp.frags))
        with self._lock:
            view = self._begin(runner.program, cpu)
            res, spent = runner.repeat_timed(xdp.page, xdp.offset, xdp.length, n, headroom=xdp.headroom, env=env,
                                             meta=xdp.meta_len)
            self._finish(view, env)
        return RunResult(res.verdicts[0] & _U32, min(spent // n, _U32), spent, n)

    def run_xdp_frames(self, frames: Sequence[bytes | XdpFrameIn], *, env: Any = None, cpu: int = 0,
                       ingress_ifindex: int = 1, rx_queue_index: int = 0,
                       egress_ifindex: int = 0) -> list[XdpFrameResult]:
        """Every frame once, in one native call (a hook's batch). Each frame gets its own slot with
        the XDP headroom: a page when it fits (``frame_sz`` 4096), else — generic XDP's
        linearised skb — headroom + frame (cache-line aligned) + the shared-info tailroom. The
        driver copies each frame's context image (its ``ingress_ifindex`` / ``rx_queue_index``:
        plain ``bytes`` frames take the keyword arguments') before building its pointers.

        While the batch runs, ``env.xdp`` (when ``env`` has that attribute and it is None) is a view
        that follows the frame being run, for Python helpers. A program that may leave a redirect
        decision (:attr:`may_redirect`) runs one frame per call, each with a fresh ``env.ri``, so
        that every frame keeps its own decision. Returns each verdict, the frame as the program left
        it and its metadata; a failing run raises with ``packet_index`` (its position) set."""
        if self.desc.test_run != "xdp":
            raise JitError(f"{self.desc.name} programs are not XDP programs")
        if not frames:
            return []
        size = XDP_RUNTIME.size
        fld = XDP_RUNTIME.fields
        items = [f if isinstance(f, XdpFrameIn) else XdpFrameIn(bytes(f), ingress_ifindex, rx_queue_index)
                 for f in frames]
        datas = [f.data for f in items]
        lengths = list(map(len, datas))
        sizes = [PAGE_SIZE if n <= _XDP_MAX_LINEAR else _xdp_frame_size(n) for n in lengths]
        offsets = [end - sz + XDP_PACKET_HEADROOM for end, sz in zip(itertools.accumulate(sizes), sizes, strict=True)]
        templates: dict[tuple[int, int, int], bytes] = {}  # (ingress, queue, frame_sz) -> context image

        def image(key: tuple[int, int, int]) -> bytes:
            raw = bytearray(size)
            for name, value in (("ingress_ifindex", key[0]), ("rx_queue_index", key[1]),
                                ("egress_ifindex", egress_ifindex), ("frame_sz", key[2])):
                struct.pack_into("<I", raw, fld[name].offset, value & _U32)
            return templates.setdefault(key, bytes(raw))

        keys = [(f.ingress_ifindex, f.rx_queue_index, sz) for f, sz in zip(items, sizes, strict=True)]
        images = b"".join([templates.get(k) or image(k) for k in keys])
        runner = self.runner()
        with self._lock:
            slots, blob = self._frame_slots(sum(sizes))
            for off, data in zip(offsets, datas, strict=True):
                slots[off:off + len(data)] = data
            verdicts, starts, lens, contexts, records = self._run_frames(
                runner, blob, offsets, lengths, images, XDP_PACKET_HEADROOM, env, cpu, "xdp",
                _XdpFrameView(runner.ctx, blob), self.may_redirect, None)
            meta_off, base = fld["data_meta"].offset, blob.address
            metas = [int.from_bytes(c[meta_off:meta_off + 8], "little") - base for c in contexts]
            return [XdpFrameResult(v, bytes(slots[s:s + n]), rec, bytes(slots[m:s]) if 0 <= m < s else b"")
                    for v, s, n, rec, m in zip(verdicts, starts, lens, records, metas, strict=True)]

    def _frame_slots(self, size: int) -> tuple[memoryview, NativeBuffer]:
        """The engine's native memory for a batch of frames, ``size`` bytes of it zeroed (no frame
        sees another's bytes through its headroom or tailroom). Kept from batch to batch: fresh
        pages would cost the process a page fault per frame. Hold the engine's lock while using it."""
        if self._slots is None or self._slots.size < size:
            self._slots = NativeBuffer(max(size, 2 * self._slots.size if self._slots is not None else 0))
        self._slots.zero(0, size)
        return self._slots.view(), self._slots

    def run_skb_frames(self, frames: Sequence[SkbFrameIn], *, env: Any = None, cpu: int = 0) -> list[SkbFrameResult]:
        """Every skb frame once, in one native call (a tc / socket hook's batch): each frame in its
        own slot (``NET_SKB_PAD`` headroom, the shared-info tailroom), each with its own context
        image (the caller's fields, ``len``; the driver adds the packet pointers). ``env.skb`` follows
        the running frame for Python helpers (``bpf_skb_load_bytes``...). Programs that may redirect
        or that use LD_ABS / LD_IND (whose packet loader reads the frame from the run's env block)
        run one frame per call. Returns each verdict, the frame from its MAC header after the run
        and the context as the program left it."""
        if self.desc.test_run != "skb":
            raise JitError(f"{self.desc.name} programs do not take an sk_buff")
        if not frames:
            return []
        size = SKB_RUNTIME.size
        images = bytearray(size * len(frames))
        offsets: list[int] = []
        lengths: list[int] = []
        macs: list[int] = []
        skb_env: list[tuple[int, int, int, int]] = []
        total = 0
        for i, f in enumerate(frames):
            hlen = 0 if f.l2 else ETH_HLEN
            if len(f.data) < ETH_HLEN:
                raise JitError(f"frame {i}: {len(f.data)} bytes, shorter than an Ethernet header")
            macs.append(total + NET_SKB_PAD)
            offsets.append(total + NET_SKB_PAD + hlen)
            lengths.append(len(f.data) - hlen)
            skb_env.append((offsets[-1], lengths[-1], ETH_HLEN if f.l2 else 0, 0 if f.l2 else -ETH_HLEN))
            image = memoryview(images)[i * size:(i + 1) * size]
            for name, value in f.fields.items():
                _store_field(image, SKB_RUNTIME[name], value)
            _store_field(image, SKB_RUNTIME["len"], lengths[-1])
            total += -(-(NET_SKB_PAD + len(f.data) + SKB_SHARED_INFO) // 64) * 64
        runner = self.runner()
        per_frame = self.may_redirect or self.uses_ld_abs
        with self._lock:
            slots, blob = self._frame_slots(total)
            for mac, f in zip(macs, frames, strict=True):
                slots[mac:mac + len(f.data)] = f.data
            verdicts, starts, lens, contexts, records = self._run_frames(
                runner, blob, offsets, lengths, images, NET_SKB_PAD, env, cpu, "skb",
                _SkbFrameView(runner.ctx, blob), per_frame, skb_env)
            return [SkbFrameResult(v, bytes(slots[mac:s + n]), c, rec)
                    for v, s, n, c, rec, mac in zip(verdicts, starts, lens, contexts, records, macs, strict=True)]

    def _run_frames(self, runner: BatchRunner, blob: NativeBuffer, offsets: list[int], lengths: list[int],
                    images: bytes | bytearray, headroom: int, env: Any, cpu: int, kind: str, view_obj: Any,
                    per_frame: bool, skb_env: list[tuple[int, int, int, int]] | None
                    ) -> tuple[list[int], list[int], list[int], list[bytes], list[RedirectRecord | None]]:
        """The native call(s) behind :meth:`run_xdp_frames` / :meth:`run_skb_frames`."""
        size = runner.layout.size
        with self._lock, _env_packet(env, kind, view_obj):
            if not per_frame:
                view = self._begin(runner.program, cpu)
                res = runner.run(blob, offsets, lengths, headroom=headroom, env=env, contexts=bytes(images),
                                 keep_contexts=True)
                self._finish(view, env)
                return res.verdicts, res.starts, res.lengths, res.contexts, [None] * len(offsets)
            verdicts: list[int] = []
            starts: list[int] = []
            lens: list[int] = []
            contexts: list[bytes] = []
            records: list[RedirectRecord | None] = []
            for i, (off, n) in enumerate(zip(offsets, lengths, strict=True)):
                _fresh_redirect_info(env)
                view = self._begin(runner.program, cpu)
                if skb_env is not None:
                    d_off, d_len, net, mac = skb_env[i]
                    struct.pack_into("<QQqq", view, ENV + EnvField.SKB_DATA, blob.address + d_off, d_len, net, mac)
                try:
                    one = runner.run(blob, [off], [n], headroom=headroom, env=env,
                                     contexts=bytes(images[i * size:(i + 1) * size]), keep_contexts=True)
                except PybpfError as e:
                    e.packet_index = i  # type: ignore[attr-defined]
                    raise
                records.append(_redirect_record(self._finish(view, env), env))
                verdicts += one.verdicts
                starts += one.starts
                lens += one.lengths
                contexts += one.contexts
            return verdicts, starts, lens, contexts, records

    def skb_buff(self, frame: bytes, *, l2: bool, fields: Mapping[str, int | bytes]) -> NativeSkb:
        """A native ``sk_buff`` (``l2``: the program sees the frame from the MAC header)."""
        if self.desc.test_run != "skb":
            raise JitError(f"{self.desc.name} programs do not take an sk_buff")
        return NativeSkb(NativeBuffer(SKB_RUNTIME.size), frame, l2=l2, fields=fields)  # its own block

    def run_skb(self, skb: NativeSkb, repeat: int = 1, *, env: Any = None, cpu: int = 0,
                network_offset: int | None = None, mac_offset: int | None = None) -> RunResult:
        """``repeat`` runs on ``skb`` in one native call. ``network_offset`` / ``mac_offset`` (from
        ``skb->data``) serve LD_ABS's SKF_NET_OFF / SKF_LL_OFF."""
        n = max(1, repeat)
        runner = self._runner_on(skb._ctx)
        saved = {name: skb.field(name) for name in ("data", "data_end", "data_meta")}
        with self._lock:
            view = self._begin(runner.program, cpu, skb, network_offset, mac_offset)
            res, spent = runner.repeat_timed(skb.page, skb.data, skb.len, n, headroom=skb.data, env=env)
            self._finish(view, env)
        if not self.desc.packet_access:  # no direct packet access: keep what the caller stored
            for name, v in saved.items():
                skb.set_field(name, v)
        return RunResult(res.verdicts[0] & _U32, min(spent // n, _U32), spent, n)

    def run(self, r1: int = 0, *, env: Any = None, cpu: int | None = None, skb: Any = None) -> int:
        """One run with R1 = ``r1`` (an address of native memory: a context the caller built, e.g.
        raw tracepoint arguments in a :class:`~pybpf.jit.runtime.NativeBuffer`); returns r0 — the
        drop-in for :meth:`JitProgram.run`. ``cpu`` defaults to ``env.cpu``; ``skb`` (the vm's
        ``SkbView`` shape: native ``data``, ``headlen``, ``network_offset``, ``mac_offset``) serves
        LD_ABS / LD_IND."""
        prog = self.prog
        if cpu is None:
            cpu = int(getattr(env, "cpu", 0) or 0)
        with self._lock:
            view = self._begin(prog, cpu)
            if skb is not None:
                struct.pack_into("<QQqq", view, ENV + EnvField.SKB_DATA, int(skb.data), int(skb.headlen),
                                 NO_OFFSET if skb.network_offset is None else int(skb.network_offset),
                                 NO_OFFSET if skb.mac_offset is None else int(skb.mac_offset))
            r0 = prog.run(r1, env=env)
            self._finish(view, env)
        return r0

    # what callers of a JitProgram use (``prog dump jited``, tail-call tables)
    @property
    def image(self) -> Any:
        """The compiled :class:`~pybpf.jit.compile.JitImage`."""
        return self.prog.image

    @property
    def entry_address(self) -> int:
        return self.prog.entry_address

    @property
    def tail_call_address(self) -> int:
        return self.prog.tail_call_address

    @property
    def context(self) -> Any:
        """The helper context Python helpers receive (``.env``, ``.space``...)."""
        return self.prog.context

    def close(self) -> None:
        for prog in self._variants.values():
            prog.close()
        if self._root is self:
            for _t, eng in self._targets.values():
                eng.close()

    def __enter__(self) -> JitEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _xdp_frame_size(length: int) -> int:
    """``frame_sz`` of a frame of ``length`` bytes in a hook's batch: one page when it fits with the
    headroom and the shared-info tailroom, else generic XDP's linearised skb — headroom, the frame
    rounded up to a cache line, then the tailroom (``netif_receive_generic_xdp``)."""
    if length <= PAGE_SIZE - XDP_PACKET_HEADROOM - SKB_SHARED_INFO:
        return PAGE_SIZE
    return XDP_PACKET_HEADROOM + length + (-length % SMP_CACHE_BYTES) + SKB_SHARED_INFO


def _store_field(image: memoryview, f: Any, value: int | bytes) -> None:
    """Store ``value`` (an int, or raw bytes for arrays such as ``cb``) in runtime field ``f``."""
    if isinstance(value, bytes | bytearray | memoryview):
        image[f.offset:f.offset + f.size] = bytes(value).ljust(f.size, b"\0")[:f.size]
    else:
        image[f.offset:f.offset + f.size] = (int(value) & ((1 << (8 * f.size)) - 1)).to_bytes(f.size, "little")


@contextlib.contextmanager
def _env_packet(env: Any, kind: str, view: Any) -> Iterator[None]:
    """``env.xdp`` / ``env.skb`` = ``view`` for the duration of a batch, when the env has that
    attribute and nothing is in it (a caller's own packet object wins)."""
    if env is None or not hasattr(env, kind) or getattr(env, kind) is not None:
        yield
        return
    setattr(env, kind, view)
    try:
        yield
    finally:
        setattr(env, kind, None)


def _fresh_redirect_info(env: Any) -> None:
    """A zeroed ``bpf_redirect_info`` for the next frame (each frame's decision is its own)."""
    ri = getattr(env, "ri", None)
    if ri is not None:
        env.ri = type(ri)()


def _redirect_record(native: RedirectRecord, env: Any) -> RedirectRecord:
    """The frame's decision: the env's redirect info (native and Python helpers' together) when
    there is one, else what the native helpers recorded."""
    ri = getattr(env, "ri", None)
    if ri is None:
        return native
    return RedirectRecord(native.written, int(ri.tgt_index), int(ri.map_id), int(ri.map_type), int(ri.flags),
                          getattr(ri, "map", None))




def _unknown_helper(hid: int) -> Callable[..., int]:
    """What a call to helper ``hid`` does when neither the native library nor the kernel layer has
    it: the interpreter's error, raised when (and only when) the call executes."""
    def unknown(ctx: Any, *regs: int) -> int:
        raise HelperError(f"invalid func unknown#{hid}", pc=ctx.pc)

    return unknown


def _prog_type_of(program: Any) -> int:
    image = getattr(program, "image", None)
    if image is not None and getattr(image, "prog_type", None) is not None:
        return int(image.prog_type)
    pt = getattr(program, "prog_type", None)
    if pt is None:
        raise JitError("the program's type is unknown (pass prog_type=)")
    return int(pt)

