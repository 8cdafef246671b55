"""What every map has: creation attributes, the storage header, the operation set, the errnos.

A map's data lives in one file-backed shared mapping (see ``docs/architecture.md``, "kernel: map
storage layout"). It starts with a 256-byte header that any code — this Python, the interpreter,
JIT-compiled helpers in another process — can read to learn the map's shape, followed by the areas
of the map type (values, buckets, element slots, trie nodes...). Links inside the storage are slot
indices (``index + 1``, 0 meaning none), never addresses: a pinned map is mapped at different
addresses in different processes.

Operations come in two flavours, as in the kernel:

* the *syscall* side (``*_sys``): copy values in and out as bytes, per-CPU maps take and give all
  CPUs' values (each rounded up to 8 bytes), errors are ``BpfError(errno)``;
* the *program* side: ``lookup_elem`` returns the offset of the value inside the storage (the
  helper turns it into a pointer), updates see only the current CPU's copy, errors are negative
  errnos returned, not raised (a helper returns them in R0).
"""

from __future__ import annotations

import errno
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pybpf import uapi
from pybpf.errors import ENOTSUPP, BpfError
from pybpf.isa import Insn
from pybpf.kernel import native
from pybpf.uapi import MapType

if TYPE_CHECKING:
    from pybpf.kernel.objects import Kernel

__all__ = [
    "HEADER_SIZE",
    "MAGIC",
    "Header",
    "Map",
    "MapAttrs",
    "access_flags_ok",
    "key_hash",
    "round_up",
]

MAGIC = 0x46504250  # "PBPF" little-endian
LAYOUT_VERSION = 1
KIND_MAP_BYTE = 1
KIND_PROG_BYTE = 2
HEADER_SIZE = 256
KMALLOC_MAX_SIZE = 1 << 22  # x86-64: 4 MiB (PAGE_SHIFT + MAX_PAGE_ORDER)
PCPU_MIN_UNIT_SIZE = 32 << 10
NUMA_NO_NODE = -1

F_NO_PREALLOC = uapi.BPF_F_NO_PREALLOC
F_NUMA_NODE = uapi.BPF_F_NUMA_NODE
F_RDONLY = uapi.BPF_F_RDONLY
F_WRONLY = uapi.BPF_F_WRONLY
F_RDONLY_PROG = uapi.BPF_F_RDONLY_PROG
F_WRONLY_PROG = uapi.BPF_F_WRONLY_PROG
F_ACCESS_MASK = F_RDONLY | F_RDONLY_PROG | F_WRONLY | F_WRONLY_PROG
F_LOCK = uapi.BPF_F_LOCK
ANY, NOEXIST, EXIST = uapi.BPF_ANY, uapi.BPF_NOEXIST, uapi.BPF_EXIST


def round_up(n: int, a: int) -> int:
    """``round_up(n, a)``: the next multiple of ``a`` (sizes of values and elements)."""
    return (n + a - 1) // a * a


def roundup_pow_of_two(n: int) -> int:
    """The kernel's ``roundup_pow_of_two`` (hash bucket counts)."""
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


def access_flags_ok(flags: int) -> bool:
    """The kernel's ``bpf_map_flags_access_ok``: not both read-only and write-only for programs."""
    return (flags & (F_RDONLY_PROG | F_WRONLY_PROG)) != (F_RDONLY_PROG | F_WRONLY_PROG)


_MUL = 0x9E3779B97F4A7C15
_M64 = (1 << 64) - 1


def key_hash(key: bytes, seed: int) -> int:
    """The storage's key hash, chosen to be a few instructions of machine code.

    ``h = seed``; for each little-endian 8-byte word ``w`` of the key (the last one zero-padded):
    ``h = (h ^ w) * 0x9E3779B97F4A7C15 mod 2**64``; result ``(h ^ (h >> 32)) & 0xffffffff``.
    """
    h = seed
    n = len(key)
    if n <= 8:
        h = ((h ^ int.from_bytes(key, "little")) * _MUL) & _M64
    else:
        for i in range(0, n, 8):
            h = ((h ^ int.from_bytes(key[i:i + 8], "little")) * _MUL) & _M64
    return (h ^ (h >> 32)) & 0xFFFFFFFF


@dataclass(slots=True)
class MapAttrs:
    """Creation attributes (the MAP_CREATE part of ``union bpf_attr``, decoded).

    ``inner_map`` is the template map for map-in-map types (or ``inner_map_fd``, resolved after the
    type's own checks, as the kernel orders them); ``spin_lock_off`` comes from the value's BTF
    (``struct bpf_spin_lock`` inside the value), which ``BPF_F_LOCK`` requires. ``name_raw`` is the
    16-byte ``map_name`` of a syscall, checked (``bpf_obj_name_cpy``) after the type's checks.
    """

    map_type: int
    key_size: int
    value_size: int
    max_entries: int
    map_flags: int = 0
    name: str = ""
    inner_map: Map | None = None
    numa_node: int = NUMA_NO_NODE
    map_ifindex: int = 0
    btf_id: int = 0
    btf_key_type_id: int = 0
    btf_value_type_id: int = 0
    btf_vmlinux_value_type_id: int = 0
    map_extra: int = 0
    spin_lock_off: int | None = None
    inner_map_fd: int = -1
    btf_fd: int = -1
    name_raw: bytes | None = None
    btf: Any = field(default=None, repr=False)
    """A :class:`pybpf.btf.BtfSpec` holding the key/value types (stored with the map)."""


# ------------------------------------------------------------------------------------------------
# The header. Offsets are part of the storage contract (docs/architecture.md); native code reads
# them, so they never move.

_FIELDS: tuple[tuple[str, int, str], ...] = (
    ("magic", 0, "I"),
    ("version", 4, "H"),
    ("kind", 6, "B"),
    ("map_type", 8, "I"),
    ("key_size", 12, "I"),
    ("value_size", 16, "I"),
    ("max_entries", 20, "I"),
    ("map_flags", 24, "I"),
    ("id", 28, "I"),
    ("ncpus", 32, "I"),
    ("state", 36, "I"),
    ("lock", 40, "I"),
    ("count", 44, "I"),
    ("elem_size", 48, "I"),
    ("n_buckets", 52, "I"),
    ("data_off", 56, "Q"),
    ("aux_off", 64, "Q"),
    ("total_size", 72, "Q"),
    ("name", 80, "16s"),
    ("free_head", 96, "I"),
    ("head", 100, "I"),
    ("tail", 104, "I"),
    ("seed", 108, "I"),
    ("inner_type", 112, "I"),
    ("inner_key_size", 116, "I"),
    ("inner_value_size", 120, "I"),
    ("inner_max_entries", 124, "I"),
    ("inner_flags", 128, "I"),
    ("btf_id", 132, "I"),
    ("btf_key_type_id", 136, "I"),
    ("btf_value_type_id", 140, "I"),
    ("spin_lock_off", 144, "I"),
    ("bump", 148, "I"),
    ("map_extra", 152, "Q"),
    ("owner_prog_type", 160, "I"),
    ("owner_attach_type", 164, "I"),
    ("consumer_pos", 168, "Q"),
    ("producer_pos", 176, "Q"),
    ("pending_pos", 184, "Q"),
    ("btf_off", 192, "Q"),
    ("btf_len", 200, "I"),
)
OFF: dict[str, int] = {name: off for name, off, _ in _FIELDS}
_CODES: dict[str, str] = {name: code for name, _, code in _FIELDS}

# The mutable words native code uses.
OFF_STATE = OFF["state"]  # bit 0: frozen
OFF_LOCK = OFF["lock"]  # map-wide lock word: 0 free, else holder's tgid
OFF_COUNT = OFF["count"]  # elements in use (hash, LRU, LPM, queue/stack n/a)
OFF_FREE_HEAD = OFF["free_head"]
OFF_HEAD = OFF["head"]
OFF_TAIL = OFF["tail"]
OFF_BUMP = OFF["bump"]
OFF_OWNER_PROG_TYPE = OFF["owner_prog_type"]
STATE_FROZEN = 1
_MUTABLE = {"magic", "version", "kind", "state", "lock", "count", "free_head", "head", "tail", "bump",
            "owner_prog_type", "owner_attach_type", "consumer_pos", "producer_pos", "pending_pos"}


@dataclass(slots=True)
class Header:
    """The fixed fields of a map's storage header (the mutable words are read live)."""

    map_type: int
    key_size: int
    value_size: int
    max_entries: int
    map_flags: int
    id: int
    ncpus: int
    elem_size: int
    n_buckets: int
    data_off: int
    aux_off: int
    total_size: int
    name: str
    seed: int
    inner_type: int
    inner_key_size: int
    inner_value_size: int
    inner_max_entries: int
    inner_flags: int
    btf_id: int
    btf_key_type_id: int
    btf_value_type_id: int
    spin_lock_off: int
    map_extra: int
    btf_off: int = 0
    btf_len: int = 0

    def pack(self) -> bytes:
        """The header's fixed fields as the 256 bytes at the start of the storage (mutable words zero)."""
        buf = bytearray(HEADER_SIZE)
        struct.pack_into("<IHB", buf, 0, MAGIC, LAYOUT_VERSION, KIND_MAP_BYTE)
        for name, off, code in _FIELDS:
            if name in _MUTABLE:
                continue
            v = getattr(self, name)
            if name == "name":
                v = v.encode("ascii", "replace")[:16]
            struct.pack_into("<" + code, buf, off, v)
        return bytes(buf)

    @classmethod
    def unpack(cls, data: bytes | memoryview) -> Header:
        """Read a header back; ValueError when the bytes are not a pybpf map."""
        if len(data) < HEADER_SIZE:
            raise ValueError("short header")
        magic, _version, kind = struct.unpack_from("<IHB", data, 0)
        if magic != MAGIC or kind != KIND_MAP_BYTE:
            raise ValueError("not a pybpf map")
        kw: dict[str, Any] = {}
        for name, off, code in _FIELDS:
            if name in _MUTABLE:
                continue
            v = struct.unpack_from("<" + code, data, off)[0]
            if name == "name":
                v = v.split(b"\0", 1)[0].decode("ascii", "replace")
            kw[name] = v
        return cls(**kw)


NO_SPIN_LOCK = 0xFFFFFFFF


class Map:
    """A live map: attributes (the verifier's ``MapLike``), storage, and the kernel's map ops.

    Subclasses set ``map_types`` and implement the ops they support; an op a type lacks answers as
    the kernel does for a missing ``map_ops`` member (usually EINVAL or ENOTSUPP).
    """

    map_types: ClassVar[tuple[int, ...]] = ()
    kind: ClassVar[str] = "map"
    #: map-in-map types: creation needs a template map (``bpf_map_meta_alloc``)
    needs_inner: ClassVar[bool] = False
    percpu: ClassVar[bool] = False
    is_fd_map: ClassVar[bool] = False
    #: for bpftool's ``map dump`` of per-CPU/fd maps and for the verifier
    has_keys: ClassVar[bool] = True

    # -- creation ------------------------------------------------------------------------
    @classmethod
    def alloc_check(cls, attrs: MapAttrs, kernel: Kernel) -> None:
        """The kernel's ``map_alloc_check`` + the checks in ``map_alloc``: raise BpfError."""
        raise BpfError(errno.EINVAL)

    @classmethod
    def layout(cls, attrs: MapAttrs, ncpus: int) -> tuple[int, int, int, int, int]:
        """(elem_size, n_buckets, data_off, aux_off, total_size) for the storage."""
        raise NotImplementedError

    def init_storage(self) -> None:
        """Initialise the areas after the header (storage starts zero-filled)."""

    def __init__(self, kernel: Kernel, mapping: native.Mapping, header: Header, path: Any) -> None:
        self.kernel = kernel
        self.mapping = mapping
        self.mem = mapping.view
        self.base = mapping.address
        self.path = path
        h = header
        self.header = h
        self.id = h.id
        self.map_type = MapType(h.map_type)
        self.key_size = h.key_size
        self.value_size = h.value_size
        self.max_entries = h.max_entries
        self.map_flags = h.map_flags
        self.name = h.name
        self.ncpus = h.ncpus
        self.elem_size = h.elem_size
        self.n_buckets = h.n_buckets
        self.data_off = h.data_off
        self.aux_off = h.aux_off
        self.seed = h.seed
        self.map_extra = h.map_extra
        self.btf_id = h.btf_id
        self.btf_key_type_id = h.btf_key_type_id
        self.btf_value_type_id = h.btf_value_type_id
        self.spin_lock_off: int | None = None if h.spin_lock_off == NO_SPIN_LOCK else h.spin_lock_off
        self.inner_map_meta: MapMeta | None = None
        if h.inner_type:
            self.inner_map_meta = MapMeta(h.inner_type, h.inner_key_size, h.inner_value_size,
                                          h.inner_max_entries, h.inner_flags)
        self.lock_addr = self.base + OFF_LOCK
        self._btf: Any = None
        self._btf_loaded = False

    # -- MapLike ----------------------------------------------------------------------------
    @property
    def frozen(self) -> bool:
        """``BPF_MAP_FREEZE`` happened: syscall writes are refused (EPERM)."""
        return bool(self._u32(OFF_STATE) & STATE_FROZEN)

    @property
    def is_rdonly_prog(self) -> bool:
        """``BPF_F_RDONLY_PROG``: programs may only read the map."""
        return bool(self.map_flags & F_RDONLY_PROG)

    def gen_lookup(self) -> list[Insn] | None:
        """The inline instructions for ``bpf_map_lookup_elem`` (``map_gen_lookup``), or None."""
        return None

    @property
    def value_area_offset(self) -> int | None:
        """Offset of the first value from the map's base (direct value access), or None."""
        return None

    # -- the vm's MapMemory / the verifier's MapLike extras -----------------------------------------
    @property
    def storage(self) -> memoryview:
        """The map's native memory (registered as one region by the interpreter, not copied)."""
        return self.mem

    @property
    def value_offset(self) -> int | None:
        """Where element 0's value starts in ``storage`` (``lddw`` MAP_VALUE base), or None."""
        return self.value_area_offset

    @property
    def address(self) -> int:
        """The process address of the storage (what the JIT embeds for ``lddw`` map loads)."""
        return self.base

    def atomic_rmw(self, offset: int, size: int, update: Any) -> int:
        """The vm's ``SharedMemoryOwner``: a program's atomic instruction on this map's memory, done
        with ``lock cmpxchg`` on the native storage, so programs in several processes sharing a
        pinned map (and JIT-compiled code) lose no update."""
        return native.atomic_update(self.base + offset, size, update)

    @property
    def btf(self) -> Any:
        """The map's BTF (a :class:`pybpf.btf.BtfSpec`), kept in the storage so a pinned map opened
        by another process still knows its key and value types; None without BTF."""
        if not self._btf_loaded:
            self._btf_loaded = True
            h = self.header
            if h.btf_len:
                from pybpf.btf import BtfSpec
                from pybpf.errors import BtfError

                try:
                    self._btf = BtfSpec.from_bytes(bytes(self.mem[h.btf_off:h.btf_off + h.btf_len]))
                except BtfError:
                    self._btf = None
        return self._btf

    @property
    def btf_key_type(self) -> Any:
        """The key's BTF type (None without BTF)."""
        b = self.btf
        return b.type_by_id(self.btf_key_type_id) if b is not None and self.btf_key_type_id else None

    @property
    def btf_value_type(self) -> Any:
        """The value's BTF type (None without BTF)."""
        b = self.btf
        return b.type_by_id(self.btf_value_type_id) if b is not None and self.btf_value_type_id else None

    def direct_value_addr(self, off: int) -> int:
        """``map_direct_value_addr``: the storage offset of byte ``off`` of the (single) value, for
        ``BPF_PSEUDO_MAP_VALUE`` loads; raises BpfError as the kernel (ENOTSUPP / EINVAL)."""
        raise BpfError(ENOTSUPP)

    def direct_read(self, off: int, size: int) -> bytes | None:
        """Bytes ``[off, off + size)`` of the single value, for the verifier's reads of frozen
        read-only maps (format strings, constants of ``.rodata``): what ``map_direct_value_addr``
        points at. None where the type has no direct value access or the range leaves the value."""
        if off < 0 or size < 0 or off + size > self.value_size:
            return None
        try:
            start = self.direct_value_addr(off)
        except BpfError:
            return None
        return bytes(self.mem[start:start + size])

    # -- raw memory helpers -----------------------------------------------------------------
    def _u32(self, off: int) -> int:
        return int.from_bytes(self.mem[off:off + 4], "little")

    def _set_u32(self, off: int, v: int) -> None:
        self.mem[off:off + 4] = (v & 0xFFFFFFFF).to_bytes(4, "little")

    def _u64(self, off: int) -> int:
        return int.from_bytes(self.mem[off:off + 8], "little")

    def _set_u64(self, off: int, v: int) -> None:
        self.mem[off:off + 8] = (v & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "little")

    def lock(self) -> None:
        """Take the map's lock word (all writers, any process)."""
        native.lock_word(self.lock_addr)

    def unlock(self) -> None:
        """Release the map's lock word."""
        native.unlock_word(self.lock_addr)

    def freeze(self) -> None:
        """Mark frozen (no more writes from the syscall side); EBUSY if already frozen."""
        self.lock()
        try:
            st = self._u32(OFF_STATE)
            if st & STATE_FROZEN:
                raise BpfError(errno.EBUSY)
            self._set_u32(OFF_STATE, st | STATE_FROZEN)
        finally:
            self.unlock()

    # -- sizes seen from user space ------------------------------------------------------
    @property
    def value_size_sys(self) -> int:
        """``bpf_map_value_size``: what a syscall copies for one value."""
        if self.percpu:
            return round_up(self.value_size, 8) * self.ncpus
        if self.is_fd_map:
            return 4
        return self.value_size

    # -- syscall-side ops (raise BpfError) ---------------------------------------------------
    def lookup_elem_sys(self, key: bytes, flags: int = 0) -> bytes:
        """``BPF_MAP_LOOKUP_ELEM``: a copy of the value (all CPUs' for per-CPU maps); ENOENT when missing."""
        off = self.lookup_elem(key, from_prog=False)
        if off is None:
            raise BpfError(errno.ENOENT)
        if flags & F_LOCK:
            return self._copy_locked_out(off)
        return bytes(self.mem[off:off + self.value_size])

    def update_elem_sys(self, key: bytes, value: bytes, flags: int) -> None:
        """``BPF_MAP_UPDATE_ELEM`` with ``flags`` (BPF_ANY / NOEXIST / EXIST, BPF_F_LOCK)."""
        err = self.update_elem(key, value, flags)
        if err:
            raise BpfError(-err)

    def delete_elem_sys(self, key: bytes) -> None:
        """``BPF_MAP_DELETE_ELEM``."""
        err = self.delete_elem(key)
        if err:
            raise BpfError(-err)

    def get_next_key(self, key: bytes | None) -> bytes:
        """``BPF_MAP_GET_NEXT_KEY``: the key after ``key`` (the first for None or a missing key, where the type
        restarts); ENOENT after the last."""
        raise BpfError(errno.EINVAL)

    def lookup_and_delete_elem_sys(self, key: bytes, flags: int) -> bytes:
        """``BPF_MAP_LOOKUP_AND_DELETE_ELEM`` (ENOTSUPP where the type has no such op)."""
        raise BpfError(ENOTSUPP)

    def push_elem_sys(self, value: bytes, flags: int) -> None:
        """``BPF_MAP_UPDATE_ELEM`` on a queue, stack or bloom filter (a push)."""
        err = self.push_elem(value, flags)
        if err:
            raise BpfError(-err)

    def pop_elem_sys(self) -> bytes:
        """``BPF_MAP_LOOKUP_AND_DELETE_ELEM`` on a queue or stack."""
        raise BpfError(ENOTSUPP)

    def peek_elem_sys(self, value: bytes | None = None) -> bytes:
        """``BPF_MAP_LOOKUP_ELEM`` on a queue, stack or bloom filter."""
        raise BpfError(ENOTSUPP)

    # batch support: which generic batch ops the type has (the kernel's map_ops members)
    has_lookup_batch: ClassVar[bool] = False
    has_update_batch: ClassVar[bool] = False
    has_delete_batch: ClassVar[bool] = False
    has_lookup_and_delete_batch: ClassVar[bool] = False

    # -- program-side ops (return negative errno) ------------------------------------------
    def lookup_elem(self, key: bytes, *, from_prog: bool = True) -> int | None:
        """Offset of the value for ``key`` (this CPU's copy for per-CPU maps), or None."""
        return None

    def update_elem(self, key: bytes, value: bytes, flags: int, *, from_prog: bool = False) -> int:
        return -errno.EINVAL

    def delete_elem(self, key: bytes) -> int:
        """The program's ``bpf_map_delete_elem``: 0 or a negative errno."""
        return -errno.EINVAL

    def push_elem(self, value: bytes, flags: int) -> int:
        """The program's ``bpf_map_push_elem``: 0 or a negative errno."""
        return -errno.EINVAL

    def pop_elem(self) -> tuple[int, bytes]:
        """The program's ``bpf_map_pop_elem``: (0 or a negative errno, the value)."""
        return -errno.EINVAL, b""

    def peek_elem(self, value: bytes | None = None) -> tuple[int, bytes]:
        """The program's ``bpf_map_peek_elem``: (0 or a negative errno, the value)."""
        return -errno.EINVAL, b""

    def for_each_elem(self) -> list[tuple[bytes, int | None, int]]:
        """(key, key offset or None, value offset) of every element, in iteration order
        (``bpf_for_each_map_elem``); a None key offset means the key lives nowhere in the map
        (arrays: the helper passes a pointer to a copy)."""
        raise BpfError(ENOTSUPP)

    # -- spin lock inside values (BPF_F_LOCK) ---------------------------------------------------
    def _check_lock_flag(self, flags: int) -> int:
        if flags & F_LOCK and self.spin_lock_off is None:
            return -errno.EINVAL
        return 0

    def _copy_locked_out(self, off: int) -> bytes:
        assert self.spin_lock_off is not None
        addr = self.base + off + self.spin_lock_off
        native.lock_word(addr)
        try:
            data = bytearray(self.mem[off:off + self.value_size])
        finally:
            native.unlock_word(addr)
        data[self.spin_lock_off:self.spin_lock_off + 4] = bytes(4)
        return bytes(data)

    def _copy_value_in(self, off: int, value: bytes, locked: bool) -> None:
        """``copy_map_value`` / ``copy_map_value_locked``: never overwrite the lock word itself."""
        n = self.value_size
        sl = self.spin_lock_off
        if sl is None:
            self.mem[off:off + n] = value[:n]
            return
        if locked:
            addr = self.base + off + sl
            native.lock_word(addr)
            try:
                self.mem[off:off + sl] = value[:sl]
                self.mem[off + sl + 4:off + n] = value[sl + 4:n]
            finally:
                native.unlock_word(addr)
        else:
            self.mem[off:off + sl] = value[:sl]
            self.mem[off + sl + 4:off + n] = value[sl + 4:n]

    # -- info ----------------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """The creation attributes as a dict (``map show`` and repr)."""
        return {"id": self.id, "type": self.map_type, "name": self.name, "key_size": self.key_size,
                "value_size": self.value_size, "max_entries": self.max_entries, "map_flags": self.map_flags}

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} id={self.id} name={self.name!r} type={uapi.bpftool_name(self.map_type)} "
                f"key={self.key_size} value={self.value_size} max={self.max_entries}>")


@dataclass(frozen=True, slots=True)
class MapMeta:
    """An inner map's template (``inner_map_meta``): what a map-in-map's values must look like."""

    map_type: int
    key_size: int
    value_size: int
    max_entries: int
    map_flags: int

    def matches(self, m: Map) -> bool:
        """``bpf_map_meta_equal`` (array maps additionally ignore nothing here)."""
        return (self.map_type == m.map_type and self.key_size == m.key_size
                and self.value_size == m.value_size and self.map_flags == m.map_flags)
