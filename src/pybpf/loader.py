"""From an object file to live programs and maps, and the Pythonic API over them.

::

    import pybpf

    with pybpf.load("demo.o") as coll:                 # ObjectSpec → maps → PROG_LOAD → Collection
        counter = coll.maps["pkt_counter"]             # dict-like; keys/values typed from BTF
        res = coll.programs["xdp_program"].run(b"\\0" * 64, repeat=1000)
        assert res.retval == 2 and counter[0] == 1000

What :func:`load` does is libbpf's ``bpf_object__load``: create every map of the
:class:`~pybpf.elf.ObjectSpec` (reusing a pinned map for ``LIBBPF_PIN_BY_NAME`` / iproute2 pinning,
filling global data and freezing ``.rodata``), write the maps' fds into the ``lddw`` instructions
that reference them, load each program through ``BPF_PROG_LOAD`` (the verifier), then fill program
arrays and maps of maps from their initial values. A :class:`Collection` owns the fds it opened and
closes them when it is closed (or leaves the ``with`` block); pinned objects live on.

:class:`Map` is a ``MutableMapping``: ``m[key]``, ``m[key] = value``, ``del m[key]``, ``in``,
iteration in ``get_next_key`` order, ``len``. Keys and values are ``bytes`` unless typed — by the
map's BTF (automatic), by :meth:`Map.typed` with ctypes types or ``struct`` formats, or for an
untyped map with an ``int`` key that is encoded little-endian. Per-CPU maps give and take a list
with one value per CPU.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import struct
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pybpf.errors import BpfError, LoaderError, NotSupportedError, VerifierError
from pybpf.isa import Insns
from pybpf.kernel.btf_values import btf_decode, btf_encode
from pybpf.kernel.maps.base import Map as KernelMap
from pybpf.kernel.maps.base import MapAttrs, round_up
from pybpf.kernel.objects import Kernel, default_kernel
from pybpf.kernel.prog_load import LoadAttrs, prog_load
from pybpf.kernel.program import Program as KernelProgram
from pybpf.kernel.test_run import TestRunResult, test_run
from pybpf.uapi import MapType, ProgType

__all__ = [
    "Collection",
    "LoadOptions",
    "Map",
    "Program",
    "RunResult",
    "load",
]

BPF_ANY, BPF_NOEXIST, BPF_EXIST, BPF_F_LOCK = 0, 1, 2, 4
_PERCPU = (MapType.PERCPU_ARRAY, MapType.PERCPU_HASH, MapType.LRU_PERCPU_HASH)
_SYS_BPFFS = "/sys/fs/bpf"

RunResult = TestRunResult
"""What :meth:`Program.run` returns: ``retval``, ``data_out``, ``duration`` (mean ns per run),
``ctx_out``, ``trace`` (what ``bpf_trace_printk`` printed), ``redirect``."""


@dataclass(slots=True)
class LoadOptions:
    """Knobs of :func:`load`.

    ``log_level``: the verifier's (1 = errors and per-branch states, 2 = every instruction);
    ``pin_maps``: pin every map under this directory (bpftool's ``pinmaps DIR``);
    ``pin_root``: where ``LIBBPF_PIN_BY_NAME`` maps are pinned (default the bpffs root);
    ``programs``: only load these programs (default: every autoload program);
    ``prog_type``/``expected_attach_type``: load every program as this type (bpftool's ``type T``: a
    program whose section gave another type also loses the load flags that section implied);
    ``engine``: default engine for :meth:`Program.run`; ``kernel``: the :class:`Kernel` to use.
    """

    log_level: int = 0
    pin_maps: str | os.PathLike[str] | None = None
    pin_root: str | os.PathLike[str] | None = None
    programs: Iterable[str] | None = None
    prog_type: int | None = None
    expected_attach_type: int | None = None
    engine: str = "interpreter"
    kernel: Kernel | None = None
    map_formats: Mapping[str, tuple[Any, Any]] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------
# key / value codecs


class _Codec:
    """bytes ⇄ Python value for one side (key or value) of a map."""

    def __init__(self, size: int, encode: Callable[[Any], bytes] | None = None,
                 decode: Callable[[bytes], Any] | None = None) -> None:
        self.size = size
        self._encode = encode
        self._decode = decode

    def encode(self, v: Any) -> bytes:
        if isinstance(v, bytes | bytearray | memoryview):
            raw = bytes(v)
        elif self._encode is not None:
            raw = self._encode(v)
        elif isinstance(v, int) and not isinstance(v, bool):
            raw = (v & ((1 << (8 * self.size)) - 1)).to_bytes(self.size, "little") if self.size else b""
        elif isinstance(v, ctypes.Structure | ctypes.Union | ctypes.Array):
            raw = bytes(v)
        else:
            raise TypeError(f"cannot turn {type(v).__name__} into {self.size} bytes (give bytes or type the map)")
        if len(raw) != self.size:
            if len(raw) < self.size and self._encode is None and not isinstance(v, bytes | bytearray | memoryview):
                raw = raw.ljust(self.size, b"\0")
            else:
                raise ValueError(f"expected {self.size} bytes, got {len(raw)}")
        return raw

    def decode(self, raw: bytes) -> Any:
        return self._decode(raw) if self._decode is not None else raw


def _codec_for(size: int, fmt: Any) -> _Codec:
    """A codec from a ctypes type, a ``struct`` format string, or None (bytes)."""
    if fmt is None:
        return _Codec(size)
    if isinstance(fmt, str):
        st = struct.Struct(fmt)
        if st.size != size:
            raise ValueError(f"format {fmt!r} is {st.size} bytes, the map's side is {size}")
        single = len(st.unpack(bytes(st.size))) == 1

        def enc(v: Any) -> bytes:
            return st.pack(v) if single else st.pack(*v)

        def dec(raw: bytes) -> Any:
            vals = st.unpack(raw)
            return vals[0] if single else vals

        return _Codec(size, enc, dec)
    if isinstance(fmt, type) and issubclass(fmt, ctypes._SimpleCData):  # type: ignore[attr-defined]
        ct = fmt
        if ctypes.sizeof(ct) != size:
            raise ValueError(f"{ct.__name__} is {ctypes.sizeof(ct)} bytes, the map's side is {size}")
        return _Codec(size, lambda v: bytes(ct(v)) if not isinstance(v, ct) else bytes(v),
                      lambda raw: ct.from_buffer_copy(raw).value)
    if isinstance(fmt, type) and issubclass(fmt, ctypes.Structure | ctypes.Union | ctypes.Array):
        ct2 = fmt
        if ctypes.sizeof(ct2) != size:
            raise ValueError(f"{ct2.__name__} is {ctypes.sizeof(ct2)} bytes, the map's side is {size}")
        return _Codec(size, lambda v: bytes(v), lambda raw: ct2.from_buffer_copy(raw))
    raise TypeError(f"unsupported key/value format {fmt!r}: use a ctypes type or a struct format")


def _btf_codec(kmap: KernelMap, side: str) -> _Codec | None:
    spec = kmap.btf
    tid = kmap.btf_key_type_id if side == "key" else kmap.btf_value_type_id
    size = kmap.key_size if side == "key" else kmap.value_size
    if spec is None or not tid:
        return None
    try:
        if spec.resolve_size(tid) != size:
            return None
    except Exception:  # malformed BTF: fall back to bytes
        return None
    return _Codec(size, lambda v: btf_encode(spec, tid, v), lambda raw: btf_decode(spec, tid, raw))


# ------------------------------------------------------------------------------------------------
# Map


class Map(MutableMapping[Any, Any]):
    """A live map with dict-like access (see the module docstring). Owns ``fd`` when ``owns_fd``."""

    def __init__(self, kmap: KernelMap, fd: int | None = None, *, kernel: Kernel | None = None,
                 key: Any = None, value: Any = None, use_btf: bool = True, owns_fd: bool = True) -> None:
        self._m = kmap
        self._kernel = kernel or kmap.kernel
        self.fd = fd
        self._owns_fd = owns_fd and fd is not None
        self._key = _codec_for(kmap.key_size, key) if key is not None else (
            (_btf_codec(kmap, "key") if use_btf else None) or _Codec(kmap.key_size))
        vsize = kmap.value_size if not kmap.is_fd_map else 4
        self._value = _codec_for(vsize, value) if value is not None else (
            (_btf_codec(kmap, "value") if use_btf and not kmap.is_fd_map else None) or _Codec(vsize))

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def create(cls, map_type: int | str, key_size: int, value_size: int, max_entries: int, *, flags: int = 0,
               name: str = "", inner_map: Map | None = None, map_extra: int = 0,
               kernel: Kernel | None = None, key: Any = None, value: Any = None) -> Map:
        """Create a map (``BPF_MAP_CREATE``); ``map_type`` as ``MapType`` or bpftool's name."""
        from pybpf.uapi import from_bpftool_name

        k = kernel or default_kernel()
        mt = from_bpftool_name(MapType, map_type) if isinstance(map_type, str) else map_type
        attrs = MapAttrs(int(mt), key_size, value_size, max_entries, flags, name=name,
                         inner_map=inner_map._m if inner_map is not None else None, map_extra=map_extra)
        fd = k.map_create(attrs)
        return cls(k.get_map(fd), fd, kernel=k, key=key, value=value)

    @classmethod
    def from_pinned(cls, path: str | os.PathLike[str], *, kernel: Kernel | None = None, readonly: bool = False,
                    key: Any = None, value: Any = None) -> Map:
        """Open a pinned map (``BPF_OBJ_GET``)."""
        k = kernel or default_kernel()
        fd = k.obj_get(os.fspath(path), 8 if readonly else 0)
        try:
            m = k.get_map(fd)
        except BpfError:
            k.close(fd)
            raise BpfError(errno.EINVAL, f"{path} is not a map") from None
        return cls(m, fd, kernel=k, key=key, value=value)

    @classmethod
    def from_id(cls, map_id: int, *, kernel: Kernel | None = None, key: Any = None, value: Any = None) -> Map:
        """Open the live map with id ``map_id`` (``BPF_MAP_GET_FD_BY_ID``), typed from its BTF unless
        ``key``/``value`` are given."""
        k = kernel or default_kernel()
        fd = k.map_get_fd_by_id(map_id)
        return cls(k.get_map(fd), fd, kernel=k, key=key, value=value)

    def typed(self, key: Any = None, value: Any = None) -> Map:
        """A view of the same map with other key/value types (ctypes types or struct formats;
        ``None`` keeps bytes). The view shares the fd and does not close it."""
        return Map(self._m, self.fd, kernel=self._kernel, key=key, value=value, use_btf=False, owns_fd=False)

    def raw(self) -> Map:
        """A bytes-only view (no BTF typing)."""
        return Map(self._m, self.fd, kernel=self._kernel, use_btf=False, owns_fd=False)

    # -- attributes ------------------------------------------------------------------------------
    @property
    def kernel_map(self) -> KernelMap:
        """The kernel layer's map object behind this view."""
        return self._m

    @property
    def name(self) -> str:
        return self._m.name

    @property
    def id(self) -> int:
        return self._m.id

    @property
    def type(self) -> MapType:
        return self._m.map_type

    @property
    def key_size(self) -> int:
        return self._m.key_size

    @property
    def value_size(self) -> int:
        return self._m.value_size

    @property
    def max_entries(self) -> int:
        return self._m.max_entries

    @property
    def flags(self) -> int:
        return self._m.map_flags

    @property
    def frozen(self) -> bool:
        return self._m.frozen

    @property
    def is_percpu(self) -> bool:
        return self._m.map_type in _PERCPU

    def __repr__(self) -> str:
        return f"<pybpf.Map {self.name or '?'} id={self.id} {self.type.name.lower()} " \
               f"key={self.key_size} value={self.value_size} max={self.max_entries}>"

    # -- value conversion -----------------------------------------------------------------------
    def _k(self, key: Any) -> bytes:
        return self._key.encode(key)

    def _v_in(self, value: Any) -> bytes:
        if self.is_percpu:
            step = round_up(self.value_size, 8)
            if not isinstance(value, list | tuple):
                value = [value] * self._m.ncpus
            if len(value) != self._m.ncpus:
                raise ValueError(f"a per-CPU map takes {self._m.ncpus} values, got {len(value)}")
            return b"".join(self._value.encode(v).ljust(step, b"\0") for v in value)
        return self._value.encode(value)

    def _v_out(self, raw: bytes) -> Any:
        if self.is_percpu:
            step = round_up(self.value_size, 8)
            return [self._value.decode(raw[i * step:i * step + self.value_size]) for i in range(self._m.ncpus)]
        return self._value.decode(raw)

    # -- dict protocol ------------------------------------------------------------------------------
    def __getitem__(self, key: Any) -> Any:
        try:
            return self._v_out(self._m.lookup_elem_sys(self._k(key)))
        except BpfError as e:
            if e.errno == errno.ENOENT:
                raise KeyError(key) from None
            raise

    def __setitem__(self, key: Any, value: Any) -> None:
        self.update(key, value)

    def __delitem__(self, key: Any) -> None:
        try:
            self.delete(key)
        except BpfError as e:
            if e.errno == errno.ENOENT:
                raise KeyError(key) from None
            raise

    def __contains__(self, key: object) -> bool:
        try:
            self._m.lookup_elem_sys(self._k(key))
        except BpfError:
            return False
        return True

    def _raw_keys(self) -> Iterator[bytes]:
        key: bytes | None = None
        seen = 0
        limit = self.max_entries + 1
        while seen < limit:
            try:
                key = self._m.get_next_key(key)
            except BpfError as e:
                if e.errno == errno.ENOENT:
                    return
                raise
            seen += 1
            yield key

    def __iter__(self) -> Iterator[Any]:
        for k in self._raw_keys():
            yield self._key.decode(k)

    def __len__(self) -> int:
        return sum(1 for _ in self._raw_keys())

    def items_raw(self) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) as bytes, skipping entries that vanish while iterating."""
        for k in self._raw_keys():
            try:
                yield k, self._m.lookup_elem_sys(k)
            except BpfError as e:
                if e.errno != errno.ENOENT:
                    raise

    # -- the syscall-shaped operations -------------------------------------------------------------
    def lookup(self, key: Any, flags: int = 0) -> Any:
        """``BPF_MAP_LOOKUP_ELEM`` (``flags`` may be ``BPF_F_LOCK``); BpfError(ENOENT) if absent."""
        return self._v_out(self._m.lookup_elem_sys(self._k(key), flags))

    def update(self, key: Any, value: Any = None, flags: int = BPF_ANY) -> None:  # type: ignore[override]
        """``BPF_MAP_UPDATE_ELEM`` with ``BPF_ANY`` / ``BPF_NOEXIST`` / ``BPF_EXIST`` (| ``BPF_F_LOCK``)."""
        if self._m.frozen:
            raise BpfError(errno.EPERM)
        if self._m.is_fd_map:
            self._update_fd_map(key, value, flags)
            return
        self._m.update_elem_sys(self._k(key), self._v_in(value), flags)

    def _update_fd_map(self, key: Any, value: Any, flags: int) -> None:
        target = value
        if isinstance(target, Program | Map):
            fd = target.fd
        else:
            fd = int(target)
        if fd is None:
            raise BpfError(errno.EBADF, "the object has no open fd")
        self._m.update_elem_sys(self._k(key), int(fd).to_bytes(4, "little"), flags)

    def delete(self, key: Any) -> None:
        """``BPF_MAP_DELETE_ELEM`` (BpfError(ENOENT) for a missing key; ``del m[key]`` raises KeyError instead)."""
        self._m.delete_elem_sys(self._k(key))

    def lookup_and_delete(self, key: Any = None, flags: int = 0) -> Any:
        """``BPF_MAP_LOOKUP_AND_DELETE_ELEM`` (for queues and stacks: pop)."""
        if self.type in (MapType.QUEUE, MapType.STACK):
            return self.pop()
        return self._v_out(self._m.lookup_and_delete_elem_sys(self._k(key), flags))

    def next_key(self, key: Any = None) -> Any:
        """``BPF_MAP_GET_NEXT_KEY`` (the first key for ``None``); BpfError(ENOENT) at the end."""
        return self._key.decode(self._m.get_next_key(None if key is None else self._k(key)))

    def freeze(self) -> None:
        """``BPF_MAP_FREEZE``: no more updates from user space."""
        self._m.freeze()

    # queues, stacks, bloom filters
    def push(self, value: Any, flags: int = BPF_ANY) -> None:
        """``BPF_MAP_UPDATE_ELEM`` on a queue, stack or bloom filter (``BPF_EXIST``: a full queue drops its
        oldest)."""
        self._m.update_elem_sys(b"", self._v_in(value), flags)

    def pop(self) -> Any:
        """Remove and return the next value of a queue or stack (BpfError(ENOENT) when empty)."""
        return self._v_out(self._m.lookup_and_delete_elem_sys(b"", 0))

    def peek(self, value: Any = None) -> Any:
        """The next value of a queue or stack without removing it; for a bloom filter, True when ``value`` may be
        in the set (BpfError(ENOENT) when it certainly is not)."""
        if self.type == MapType.BLOOM_FILTER:
            self._m.peek_elem_sys(self._v_in(value))
            return True
        return self._v_out(self._m.lookup_elem_sys(b"", 0))

    # ring buffers and perf event arrays
    def consume(self, limit: int | None = None) -> list[bytes]:
        """Read committed ring buffer samples (libbpf's ``ring_buffer__consume``)."""
        fn = getattr(self._m, "consume", None)
        if fn is None:
            raise BpfError(errno.EINVAL, "not a ring buffer")
        return list(fn(limit))

    def read_perf(self, cpu: int | None = None) -> list[bytes]:
        """Samples ``bpf_perf_event_output`` sent to slot ``cpu`` (all slots when None)."""
        fn = getattr(self._m, "read", None)
        if fn is None or self.type != MapType.PERF_EVENT_ARRAY:
            raise BpfError(errno.EINVAL, "not a perf event array")
        slots = range(self.max_entries) if cpu is None else [cpu]
        return [s for i in slots for s in fn(i)]

    def open_perf_buffers(self) -> None:
        """Let ``bpf_perf_event_output`` deliver to every slot (the perf_event_open step)."""
        fn = getattr(self._m, "enable", None)
        if fn is None:
            raise BpfError(errno.EINVAL, "not a perf event array")
        fn()

    # -- pinning and lifetime -----------------------------------------------------------------------
    def pin(self, path: str | os.PathLike[str]) -> None:
        """``BPF_OBJ_PIN``: the map outlives this process under ``path``."""
        self._kernel.pin(self._m, os.fspath(path))

    def close(self) -> None:
        if self._owns_fd and self.fd is not None:
            with contextlib.suppress(BpfError):
                self._kernel.close(self.fd)
        self.fd = None

    def __enter__(self) -> Map:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ------------------------------------------------------------------------------------------------
# Program


class Program:
    """A loaded program: run it, dump it, pin it."""

    def __init__(self, kprog: KernelProgram, fd: int | None = None, *, kernel: Kernel | None = None,
                 engine: str = "interpreter", owns_fd: bool = True) -> None:
        self._p = kprog
        self._kernel = kernel or kprog.kernel
        self.fd = fd
        self._owns_fd = owns_fd and fd is not None
        self.engine = engine

    @classmethod
    def from_pinned(cls, path: str | os.PathLike[str], *, kernel: Kernel | None = None) -> Program:
        k = kernel or default_kernel()
        fd = k.obj_get(os.fspath(path))
        try:
            p = k.get_prog(fd)
        except BpfError:
            k.close(fd)
            raise BpfError(errno.EINVAL, f"{path} is not a program") from None
        return cls(p, fd, kernel=k)

    @classmethod
    def from_id(cls, prog_id: int, *, kernel: Kernel | None = None) -> Program:
        """Open the live program with id ``prog_id`` (``BPF_PROG_GET_FD_BY_ID``)."""
        k = kernel or default_kernel()
        fd = k.prog_get_fd_by_id(prog_id)
        return cls(k.get_prog(fd), fd, kernel=k)

    @property
    def kernel_program(self) -> KernelProgram:
        """The kernel layer's program object behind this handle (engines, dumps, statistics)."""
        return self._p

    @property
    def name(self) -> str:
        return self._p.name

    @property
    def id(self) -> int:
        return self._p.id

    @property
    def tag(self) -> str:
        return self._p.tag.hex()

    @property
    def type(self) -> ProgType | int:
        return self._p.prog_type

    @property
    def insns(self) -> Insns:
        """The instructions as loaded (after the verifier's rewrites): what ``dump xlated`` shows."""
        return self._p.insns

    @property
    def used_maps(self) -> dict[int, KernelMap]:
        """The maps the program references, by id (contract 1: its ``lddw`` instructions hold these ids)."""
        return dict(self._p.used_maps)

    @property
    def verifier_log(self) -> str:
        """The verifier's log of the load (empty unless a log level was asked for)."""
        return self._p.verifier_log

    def xlated(self, *, opcodes: bool = False, linum: bool = False) -> str:
        """``bpftool prog dump xlated`` text."""
        return self._p.xlated_text(opcodes=opcodes, linum=linum)

    def run(self, data: bytes = b"", *, ctx: bytes | ctypes.Structure | None = None, repeat: int = 1,
            engine: str | None = None, cpu: int = 0, user: Any = None) -> RunResult:
        """``BPF_PROG_TEST_RUN``: run on ``data`` (a packet for XDP/skb programs) ``repeat`` times."""
        raw_ctx = bytes(ctx) if isinstance(ctx, ctypes.Structure) else ctx
        from pybpf.progtypes import descriptor

        with contextlib.suppress(BpfError):
            if descriptor(int(self._p.image.prog_type)).test_run == "raw_tp" and repeat == 1:
                repeat = 0  # raw tracepoint test runs run once and refuse a repeat count
        return test_run(self._kernel, self._p, data, ctx_in=raw_ctx, repeat=repeat, cpu=cpu,
                        engine=engine or self.engine, user=user)

    def pin(self, path: str | os.PathLike[str]) -> None:
        self._kernel.pin(self._p, os.fspath(path))

    def close(self) -> None:
        if self._owns_fd and self.fd is not None:
            with contextlib.suppress(BpfError):
                self._kernel.close(self.fd)
        self.fd = None

    def __enter__(self) -> Program:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<pybpf.Program {self.name or '?'} id={self.id} {self._p.type_name()} insns={len(self.insns)}>"


# ------------------------------------------------------------------------------------------------
# Collection


class Collection:
    """Maps and programs loaded from one object; a context manager closing what it opened."""

    def __init__(self, kernel: Kernel, maps: dict[str, Map], programs: dict[str, Program], spec: Any = None) -> None:
        self.kernel = kernel
        self.maps = maps
        self.programs = programs
        self.spec = spec

    @classmethod
    def from_path(cls, path: str | os.PathLike[str], options: LoadOptions | None = None, **kw: Any) -> Collection:
        """Load the object file at ``path`` (:func:`load` with a path)."""
        from pybpf.elf import ObjectSpec

        return cls.from_spec(ObjectSpec.from_path(os.fspath(path)), options, **kw)

    @classmethod
    def from_spec(cls, spec: Any, options: LoadOptions | None = None, **kw: Any) -> Collection:
        """Load an already read :class:`~pybpf.elf.ObjectSpec`: create its maps, load its programs."""
        opts = options or LoadOptions(**kw)
        return _Loading(spec, opts).run()

    def pin_maps(self, directory: str | os.PathLike[str]) -> dict[str, str]:
        """Pin every map as ``directory/<name>`` (bpftool's ``pinmaps``); returns name → path."""
        out = {}
        for name, m in self.maps.items():
            p = os.path.join(os.fspath(directory), name)
            m.pin(p)
            out[name] = p
        return out

    def close(self) -> None:
        for p in self.programs.values():
            p.close()
        for m in self.maps.values():
            m.close()

    def __enter__(self) -> Collection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<pybpf.Collection maps={list(self.maps)} programs={list(self.programs)}>"


def load(source: str | os.PathLike[str] | bytes | Any, options: LoadOptions | None = None, **kw: Any) -> Collection:
    """Load an object file (a path, the ELF bytes, or an :class:`~pybpf.elf.ObjectSpec`)."""
    from pybpf.elf import ObjectSpec

    if isinstance(source, bytes | bytearray):
        spec = ObjectSpec.from_bytes(bytes(source))
    elif isinstance(source, str | os.PathLike):
        spec = ObjectSpec.from_path(os.fspath(source))
    else:
        spec = source
    return Collection.from_spec(spec, options, **kw)


# ------------------------------------------------------------------------------------------------
# the loading itself (libbpf's bpf_object__load)


_NO_BTF_MAP_TYPES = frozenset(int(t) for t in (
    MapType.PERF_EVENT_ARRAY, MapType.CGROUP_ARRAY, MapType.STACK_TRACE, MapType.ARRAY_OF_MAPS,
    MapType.HASH_OF_MAPS, MapType.DEVMAP, MapType.DEVMAP_HASH, MapType.CPUMAP, MapType.XSKMAP, MapType.SOCKMAP,
    MapType.SOCKHASH, MapType.QUEUE, MapType.STACK, MapType.ARENA))


class _Loading:
    def __init__(self, spec: Any, opts: LoadOptions) -> None:
        self.spec = spec
        self.opts = opts
        self.kernel = opts.kernel or default_kernel()
        self.maps: dict[str, Map] = {}
        self.programs: dict[str, Program] = {}

    def run(self) -> Collection:
        try:
            for name, ms in self.spec.maps.items():
                if name not in self.maps:
                    self.maps[name] = self._create_map(ms)
            wanted = set(self.opts.programs) if self.opts.programs is not None else None
            for name, ps in self.spec.programs.items():
                if wanted is not None:
                    if name not in wanted:
                        continue
                elif not ps.autoload:
                    continue
                self.programs[name] = self._load_program(ps)
            if wanted is not None and (missing := wanted - set(self.programs)):
                raise LoaderError(f"no program named {', '.join(sorted(missing))} in {self.spec.path}")
            self._fill_initial_values()
            if self.opts.pin_maps is not None:
                os.makedirs(self.kernel.fs.translate(os.fspath(self.opts.pin_maps)), exist_ok=True)
                for name, m in self.maps.items():
                    target = os.path.join(os.fspath(self.opts.pin_maps), name)
                    with contextlib.suppress(BpfError):
                        if os.path.exists(self.kernel.fs.translate(target)):
                            continue
                    m.pin(target)
        except BaseException:
            for p in self.programs.values():
                p.close()
            for m in self.maps.values():
                m.close()
            raise
        return Collection(self.kernel, self.maps, self.programs, self.spec)

    # -- maps ------------------------------------------------------------------------------
    def _attrs(self, ms: Any, inner: KernelMap | None) -> MapAttrs:
        btf = self.spec.btf
        spin = _spin_lock_off(btf, ms.value_type_id) if btf is not None and ms.value_type_id else None
        flags = int(ms.flags)
        if int(ms.type) in _NO_BTF_MAP_TYPES:
            # libbpf's bpf_object__create_map creates these map types without BTF
            btf = None
        return MapAttrs(
            map_type=int(ms.type), key_size=ms.key_size, value_size=ms.value_size, max_entries=ms.max_entries,
            map_flags=flags, name=ms.name[:15], inner_map=inner,
            numa_node=ms.numa_node if flags & 4 else -1, map_extra=ms.map_extra,
            btf_key_type_id=ms.key_type_id if btf is not None else 0,
            btf_value_type_id=ms.value_type_id if btf is not None else 0,
            spin_lock_off=spin, btf=btf if (ms.key_type_id or ms.value_type_id) else None,
        )

    def _pin_path(self, ms: Any) -> str | None:
        from pybpf.elf import Pinning

        if ms.pinning == Pinning.BY_NAME:
            root = os.fspath(self.opts.pin_root) if self.opts.pin_root is not None else _SYS_BPFFS
            return os.path.join(root, ms.name)
        if ms.pinning == Pinning.GLOBAL_NS:
            return os.path.join(_SYS_BPFFS, "tc", "globals", ms.name)
        if ms.pinning == Pinning.OBJECT_NS:
            return os.path.join(_SYS_BPFFS, "tc", self.spec.name, ms.name)
        return None

    def _create_map(self, ms: Any) -> Map:
        fmt = self.opts.map_formats.get(ms.name, (None, None))
        pin = self._pin_path(ms)
        if pin is not None:
            try:
                existing = Map.from_pinned(pin, kernel=self.kernel, key=fmt[0], value=fmt[1])
            except BpfError as e:
                if e.errno != errno.ENOENT:
                    raise
            else:
                em = existing.kernel_map
                if (int(em.map_type), em.key_size, em.value_size, em.max_entries) != (
                        int(ms.type), ms.key_size, ms.value_size, ms.max_entries):
                    existing.close()
                    raise LoaderError(f"map '{ms.name}': the pinned map at {pin} is incompatible")
                return existing
        inner_km: KernelMap | None = None
        inner_tmp: Map | None = None
        if ms.inner_map is not None:
            inner_tmp = Map(self.kernel.create_map(self._attrs(ms.inner_map, None)), None, kernel=self.kernel)
            inner_km = inner_tmp.kernel_map
        attrs = self._attrs(ms, inner_km)
        try:
            try:
                fd = self.kernel.map_create(attrs)
            except BpfError:
                if attrs.btf is None:
                    raise
                # libbpf: "Error in bpf_create_map_xattr(%s)... Retrying without BTF."
                fd = self.kernel.map_create(replace(attrs, btf=None, btf_key_type_id=0, btf_value_type_id=0))
        except BpfError as e:
            e.add_note(f"creating map '{ms.name}'")
            raise
        m = Map(self.kernel.get_map(fd), fd, kernel=self.kernel, key=fmt[0], value=fmt[1])
        if ms.data is not None:
            m.kernel_map.update_elem_sys(b"\0\0\0\0", bytes(ms.data).ljust(ms.value_size, b"\0"), 0)
        if ms.frozen:
            m.freeze()
        if pin is not None:
            try:
                self.kernel.pin(m.kernel_map, pin)
            except BpfError as e:
                if e.errno != errno.ENOENT:
                    raise
                os.makedirs(self.kernel.fs.translate(os.path.dirname(pin)), exist_ok=True)
                self.kernel.pin(m.kernel_map, pin)
        return m

    # -- programs ------------------------------------------------------------------------------
    def _load_program(self, ps: Any) -> Program:
        ptype = self.opts.prog_type if self.opts.prog_type is not None else ps.prog_type
        if ptype is None:
            raise LoaderError(f"program '{ps.name}': section '{ps.section}' gives no program type "
                              "(pass a type, as bpftool's 'type T')")
        kfuncs = [r for r in ps.pending if r.kind.value in ("kfunc", "ksym")]
        if kfuncs:
            raise NotSupportedError(f"program '{ps.name}' calls kernel functions or uses kernel symbols "
                                    f"({', '.join(r.target for r in kfuncs)}), which pybpf cannot provide",
                                    errno.EINVAL)
        # unresolved .kconfig externs and pending CO-RE relocations: refused in libbpf's words
        self.spec.check_loadable(ps.name)
        fds = {name: m.fd for name, m in self.maps.items()}
        insns = ps.with_map_fds(fds)
        attach = ps.expected_attach_type
        prog_flags = ps.prog_flags
        if self.opts.prog_type is not None:
            # bpf_program__set_type + set_expected_attach_type: a changed type drops the SEC() handler
            attach = self.opts.expected_attach_type
            if ps.prog_type is None or int(ps.prog_type) != int(self.opts.prog_type):
                prog_flags = 0
        a = LoadAttrs(
            prog_type=int(ptype), insns=insns, license=ps.license or self.spec.license or "",
            name=ps.name[:15], expected_attach_type=int(attach) if attach is not None else 0,
            prog_flags=prog_flags, log_level=self.opts.log_level, kern_version=ps.kernel_version or 0,
            prog_btf=ps.btf, func_info=_func_info(ps),
        )
        try:
            res = prog_load(self.kernel, a)
        except VerifierError as e:
            e.program = e.program or ps.name
            raise
        fd = self.kernel.new_fd(res.program)
        return Program(res.program, fd, kernel=self.kernel, engine=self.opts.engine)

    def _fill_initial_values(self) -> None:
        for name, ms in self.spec.maps.items():
            if not ms.values:
                continue
            m = self.maps[name]
            for index, target in ms.values.items():
                obj: Map | Program | None = self.programs.get(target) or self.maps.get(target)
                if obj is None:
                    continue
                m.update(index, obj)


def _func_info(ps: Any) -> list[tuple[int, str, bool]] | None:
    """The program's BTF func info as the verifier takes it: ``(insn_idx, name, is_global)``."""
    from pybpf.btf import Func, FuncLinkage

    btf = ps.btf
    if btf is None or not ps.func_info:
        return None
    out = []
    for fi in ps.func_info:
        try:
            t = btf.type_by_id(fi.type_id)
        except Exception:  # a dangling type id: no name
            continue
        if isinstance(t, Func):
            out.append((fi.insn_off, t.name, t.linkage == FuncLinkage.GLOBAL))
    return out or None


def _spin_lock_off(btf: Any, value_type_id: int) -> int | None:
    """Offset of a top-level ``struct bpf_spin_lock`` member in the value type, if any."""
    from pybpf.btf import Struct

    try:
        t = btf.type_by_id(btf.skip_mods_and_typedefs(value_type_id))
    except Exception:  # a malformed type id: no lock
        return None
    if not isinstance(t, Struct):
        return None
    for mem in t.members:
        mt = btf.type_by_id(btf.skip_mods_and_typedefs(mem.type))
        if isinstance(mt, Struct) and mt.name == "bpf_spin_lock":
            return int(mem.bits_offset // 8)
    return None


_ = Path
