"""The interpreter's address space: typed memory regions with bounds, each in its own 4 GiB slot.

Why regions: the interpreter is the *safety oracle* the verifier is checked against, so every load and
store must land inside memory the program may touch — a stack frame, the context, the packet, a map's
storage, the conformance harness's input buffer, a ring-buffer record — and anything else faults with
:class:`~pybpf.errors.MemoryFault` (pc, address, size). A flat byte array could not tell a stack
overflow into the next frame from a legitimate access.

Address encoding (decided here, documented in docs/architecture.md "vm")::

    address = (region_id << 32) + offset        region ids from 1; 0 is the NULL slot

so a lookup is one shift, one list index and one bounds check, fast in Python. A region covers the
offsets ``[start, end)`` of its slot, and ``offset`` is also the index into the region's buffer, so
moving ``start``/``end`` (XDP ``adjust_head``/``adjust_tail`` move ``data``/``data_end``) never changes
the address of a byte that stays valid. Any address below ``1 << 32`` is a NULL dereference.

Buffers are never copied: a region wraps any writable buffer (``bytearray``, ``mmap``, ``memoryview``)
through a memoryview, so map values a program writes are the very bytes userspace and the JIT see.
Read-only regions (``writable=False`` or a read-only buffer such as ``bytes``) refuse stores.

For the translate-to-Python tier the space keeps a flat table, ``table``, indexed by
``region_id & ID_MASK``. Each entry is a :data:`TableEntry` ``(buf, base, start, end, wend, u16, u32,
u64)``: the region's byte view, the address of its offset 0, its valid window, the end of the window
for stores (``end``, or 0 when the region is read-only), and ``H``/``I``/``Q`` casts of the same bytes
(native order; made once a translated program uses the space, never on a big-endian host) so that an
aligned access is one index into a typed view instead of a ``struct`` call. Generated code computes
``off = address - base`` and checks ``start <= off and off + size <= end`` (``wend`` for a store)
inline; an id beyond the table aliases an entry whose ``base`` differs from the address's slot, so
the offset falls outside the window, and a missing region has the empty window of
:data:`NO_ACCESS` — every bad access falls to the slow path
(:meth:`AddressSpace.resolve`), which raises the precise fault. The table is mutated in place when
regions change; code that keeps an entry in locals (the translated tier does, per pointer) must drop
it whenever something may have changed the layout (a helper call).
"""

from __future__ import annotations

import contextlib
import struct
import sys
from collections import deque
from collections.abc import Callable, Iterator
from enum import Enum
from typing import Any, Protocol, runtime_checkable

from pybpf.errors import MemoryFault
from pybpf.isa.opcodes import PERCPU_AREA_SIZE, PERCPU_CPU_NUMBER

__all__ = [
    "ID_MASK",
    "MAX_REGIONS",
    "NO_ACCESS",
    "OFFSET_MASK",
    "REGION_SHIFT",
    "REGION_SPAN",
    "AddressSpace",
    "Region",
    "RegionKind",
    "TableEntry",
]

REGION_SHIFT = 32
REGION_SPAN = 1 << REGION_SHIFT
OFFSET_MASK = REGION_SPAN - 1
MAX_REGIONS = 1 << 14
"""Size of the fast lookup tables; region ids are always below this (ids are recycled, oldest first)."""
ID_MASK = MAX_REGIONS - 1
TableEntry = tuple[Any, int, int, int, int, Any, Any, Any]
"""``(buf, base, start, end, store end, u16 view, u32 view, u64 view)``: one region as the fast table
holds it."""
NO_ACCESS: TableEntry = (memoryview(b""), 0, 1, 0, 0, None, None, None)
"""The table entry of a missing region: no offset satisfies ``1 <= o < 0``."""
_NATIVE_LITTLE_ENDIAN = sys.byteorder == "little"

_U64 = (1 << 64) - 1
_UNPACK = {
    (1, False): struct.Struct("<B").unpack_from,
    (2, False): struct.Struct("<H").unpack_from,
    (4, False): struct.Struct("<I").unpack_from,
    (8, False): struct.Struct("<Q").unpack_from,
    (1, True): struct.Struct("<b").unpack_from,
    (2, True): struct.Struct("<h").unpack_from,
    (4, True): struct.Struct("<i").unpack_from,
    (8, True): struct.Struct("<q").unpack_from,
}
_PACK = {
    1: struct.Struct("<B").pack_into,
    2: struct.Struct("<H").pack_into,
    4: struct.Struct("<I").pack_into,
    8: struct.Struct("<Q").pack_into,
}


class RegionKind(Enum):
    """What a region holds. Only informational for bounds checks; helpers use it to classify pointers."""

    STACK = "stack"  # one 512-byte frame per call depth
    CTX = "ctx"  # the program's runtime context (struct xdp_buff stand-in, __sk_buff, ...)
    PACKET = "packet"  # packet data; start/end follow data_meta/data .. data_end
    MAP = "map"  # a map's storage (the kernel layer's native memory); owner = the map object
    MEM = "mem"  # plain memory: conformance input, tracing args, test buffers
    RINGBUF = "ringbuf"  # a reserved ring-buffer record
    CODE = "code"  # a program's code: addresses of BPF functions (callbacks); no readable bytes
    OTHER = "other"


@runtime_checkable
class SharedMemoryOwner(Protocol):
    """The owner of a MAP region whose bytes other processes or native code change concurrently.

    ``atomic_rmw(offset, size, update)`` performs ``new = update(old)`` on the integer at ``offset``
    of the owner's buffer as one atomic step (``None`` = no write) and returns ``old``. The kernel
    layer's maps implement it with ``lock cmpxchg`` on their native memory.
    """

    def atomic_rmw(self, offset: int, size: int, update: Callable[[int], int | None]) -> int: ...


class Region:
    """One contiguous piece of program-visible memory.

    ``buf`` is a byte-format memoryview over the caller's buffer; valid offsets are ``[start, end)``
    and an offset is also the index into ``buf``. ``owner`` is whatever registered the region (the
    map object for MAP regions, a weak reference to the engine for CODE regions) so helpers can turn
    a pointer back into an object.
    """

    __slots__ = ("_space", "buf", "end", "id", "kind", "name", "owner", "start", "views", "writable")

    def __init__(
        self,
        space: AddressSpace,
        region_id: int,
        kind: RegionKind,
        name: str,
        buf: memoryview,
        start: int,
        end: int,
        writable: bool,
        owner: object,
    ) -> None:
        self._space = space
        self.id = region_id
        self.kind = kind
        self.name = name
        self.buf = buf
        self.start = start
        self.end = end
        self.writable = writable
        self.owner = owner
        self.views: tuple[memoryview | None, memoryview | None, memoryview | None] = (None, None, None)
        """``H``/``I``/``Q`` casts of ``buf`` (each as long as whole items fit), made once the space
        serves a translated program (:meth:`AddressSpace.enable_typed_views`), else ``None``s."""

    @property
    def base(self) -> int:
        """Address of offset 0 of the region's slot (the buffer's first byte)."""
        return self.id << REGION_SHIFT

    @property
    def size(self) -> int:
        """Number of valid bytes (``end - start``)."""
        return self.end - self.start

    def address(self, offset: int | None = None) -> int:
        """Address of ``offset`` in this region's slot (default: the first valid byte, ``start``)."""
        return self.base + (self.start if offset is None else offset)

    @property
    def start_address(self) -> int:
        return self.base + self.start

    @property
    def end_address(self) -> int:
        """One past the last valid byte (e.g. an XDP ``data_end``)."""
        return self.base + self.end

    def contains(self, address: int, size: int = 1) -> bool:
        return self.base + self.start <= address and address + size <= self.base + self.end

    @property
    def live(self) -> bool:
        """False once removed from its address space."""
        return self._space._regions.get(self.id) is self

    def __repr__(self) -> str:
        return (
            f"Region(id={self.id}, kind={self.kind.value}, name={self.name!r}, "
            f"[{self.start:#x}, {self.end:#x}){'' if self.writable else ', read-only'})"
        )


def _typed_views(buf: memoryview) -> tuple[memoryview | None, memoryview | None, memoryview | None]:
    """Little-endian u16/u32/u64 views of ``buf`` for aligned accesses (no copy), when the host's
    byte order is little-endian; an aligned access never reaches past the last whole item."""
    if not _NATIVE_LITTLE_ENDIAN:
        return None, None, None
    n = len(buf)
    return buf[: n & ~1].cast("H"), buf[: n & ~3].cast("I"), buf[: n & ~7].cast("Q")


def _byte_view(buffer: Any) -> memoryview:
    try:
        view = memoryview(buffer)
    except TypeError as e:
        what = type(buffer).__name__
        raise ValueError(f"a region needs a buffer (bytearray, mmap, memoryview...), not {what}") from e
    if not view.contiguous:
        raise ValueError("a region's buffer must be contiguous")
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    return view


class AddressSpace:
    """The set of regions one program (or a family of programs sharing maps) runs against.

    Not thread-safe: one program runs in an address space at a time (the kernel layer creates one
    space per "kernel" and registers each map once).
    """

    def __init__(self) -> None:
        self._regions: dict[int, Region] = {}
        self._next_id = 1
        self._free: deque[int] = deque()
        self.table: list[TableEntry] = [NO_ACCESS] * MAX_REGIONS
        self._maps: dict[int, Region] = {}
        self._stack_frames: list[Region] = []
        self._percpu: dict[int, Region] = {}
        self._typed_views = False

    # -- regions ------------------------------------------------------------------------------
    def add(
        self,
        buffer: Any,
        kind: RegionKind = RegionKind.MEM,
        name: str = "",
        *,
        start: int = 0,
        end: int | None = None,
        writable: bool | None = None,
        owner: object = None,
    ) -> Region:
        """Register ``buffer`` (not copied) as a new region; returns it (``region.address()`` is its
        first valid byte). ``writable`` defaults to whether the buffer is writable."""
        view = _byte_view(buffer)
        if writable is None:
            writable = not view.readonly
        elif writable and view.readonly:
            raise ValueError(f"region {name!r}: the buffer is read-only")
        if len(view) > REGION_SPAN:
            raise ValueError(f"region {name!r}: {len(view)} bytes do not fit in a 4 GiB slot")
        end = len(view) if end is None else end
        self._check_bounds(view, start, end, name)
        region = Region(self, self._alloc_id(), kind, name or kind.value, view, start, end, writable, owner)
        self._regions[region.id] = region
        self._publish(region)
        return region

    def remove(self, region: Region | int) -> None:
        """Unregister a region; later accesses to its addresses fault. Its id is recycled last."""
        rid = region if isinstance(region, int) else region.id
        reg = self._regions.pop(rid, None)
        if reg is None:
            return
        self.table[rid & ID_MASK] = NO_ACCESS
        # Release now so the owner may close or resize its buffer; if someone still holds a view
        # derived from it, it is released when they drop it.
        for view in (*reg.views, reg.buf):
            if view is not None:
                with contextlib.suppress(BufferError):
                    view.release()
        self._free.append(rid)
        for key, r in list(self._maps.items()):
            if r is reg:
                del self._maps[key]

    def resize(self, region: Region, start: int | None = None, end: int | None = None) -> None:
        """Move the valid window ``[start, end)`` within the region's buffer (e.g. XDP adjust_head)."""
        if region._space is not self or not region.live:
            raise ValueError(f"{region!r} is not a live region of this address space")
        start = region.start if start is None else start
        end = region.end if end is None else end
        self._check_bounds(region.buf, start, end, region.name)
        region.start, region.end = start, end
        self._publish(region)

    def set_writable(self, region: Region, writable: bool) -> None:
        """Make a region read-only (e.g. a frozen map seen from a program) or writable again."""
        if writable and region.buf.readonly:
            raise ValueError(f"region {region.name!r}: the buffer is read-only")
        region.writable = writable
        self._publish(region)

    def enable_typed_views(self) -> None:
        """Give every region (now and from now on) its u16/u32/u64 views in the fast table.

        Only the translated tier reads them; a space that serves only the interpreter does not pay
        for making them (three memoryviews per region)."""
        if self._typed_views or not _NATIVE_LITTLE_ENDIAN:
            return
        self._typed_views = True
        for region in self._regions.values():
            self._publish(region)

    def __iter__(self) -> Iterator[Region]:
        return iter(list(self._regions.values()))

    def __len__(self) -> int:
        return len(self._regions)

    def get(self, region_id: int) -> Region | None:
        return self._regions.get(region_id)

    def find(self, address: int) -> Region | None:
        """The region whose slot holds ``address`` (bounds not checked), or None."""
        if not 0 <= address <= _U64:
            return None
        return self._regions.get(address >> REGION_SHIFT)

    def owner_at(self, address: int) -> object:
        """The owner of the region at ``address`` (a map object, a program...), or None."""
        region = self.find(address)
        return None if region is None else region.owner

    # -- maps -----------------------------------------------------------------------------------
    def map_region(self, map_id: int, storage: Any, owner: object, name: str = "") -> Region:
        """The region of a map's storage, registered on first use (idempotent per map id and buffer).

        The kernel layer calls this once per map; engines call it when they prepare a program that
        uses the map. A map pointer (``lddw`` MAP_FD) is the region's base address.
        """
        region = self._maps.get(map_id)
        if region is not None and region.live and region.owner is owner:
            return region
        if region is not None:
            self.remove(region)
        region = self.add(storage, RegionKind.MAP, name or f"map[id:{map_id}]", owner=owner)
        self._maps[map_id] = region
        return region

    def map_at(self, address: int) -> object:
        """The map object whose pointer is ``address`` (its storage region's base), else None."""
        region = self.find(address)
        if region is None or region.kind is not RegionKind.MAP or address != region.base:
            return None
        return region.owner

    # -- per-CPU data -------------------------------------------------------------------------------
    def percpu_area(self, cpu: int) -> Region:
        """CPU ``cpu``'s per-CPU area (read-only, created on first use): what the verifier's per-CPU
        address instruction (``r0 = &(void __percpu *)(r0)``, ALU64 mov with off -1) adds its base to.

        It holds one field, the CPU number as a u32 at offset :data:`PERCPU_CPU_NUMBER` (Linux's
        ``pcpu_hot.cpu_number``), which the inlined ``bpf_get_smp_processor_id`` reads.
        """
        region = self._percpu.get(cpu)
        if region is None or not region.live:
            data = bytearray(PERCPU_AREA_SIZE)
            data[PERCPU_CPU_NUMBER:PERCPU_CPU_NUMBER + 4] = (cpu & 0xFFFFFFFF).to_bytes(4, "little")
            region = self.add(bytes(data), RegionKind.OTHER, f"percpu[{cpu}]", writable=False)
            self._percpu[cpu] = region
        return region

    # -- stack frames -----------------------------------------------------------------------------
    def stack_frame(self, depth: int, size: int) -> Region:
        """The region of call depth ``depth`` (created on first use; ``size`` bytes; initially empty)."""
        while len(self._stack_frames) <= depth:
            d = len(self._stack_frames)
            self._stack_frames.append(self.add(bytearray(size), RegionKind.STACK, f"stack[{d}]", start=size, end=size))
        return self._stack_frames[depth]

    # -- access (the slow, precise path) ------------------------------------------------------
    def resolve(self, address: int, size: int, write: bool, pc: int = -1) -> tuple[memoryview, int]:
        """``(buffer, index)`` of a valid access, or raise the precise :class:`MemoryFault`."""
        kind = "store" if write else "load"
        if not 0 <= address <= _U64 or address + size > _U64 + 1:
            raise MemoryFault(kind, pc=pc, address=address & _U64, size=size, reason="address overflow")
        rid = address >> REGION_SHIFT
        region = self._regions.get(rid)
        if region is None:
            why = "NULL pointer dereference" if rid == 0 else "no memory region at this address"
            raise MemoryFault(kind, pc=pc, address=address, size=size, reason=why)
        off = address & OFFSET_MASK
        if off < region.start or off + size > region.end:
            raise MemoryFault(
                kind, pc=pc, address=address, size=size,
                reason=f"outside {region.name} [{region.start_address:#x}, {region.end_address:#x})",
            )
        if write and not region.writable:
            raise MemoryFault(kind, pc=pc, address=address, size=size, reason=f"{region.name} is read-only")
        return region.buf, off

    def read(self, address: int, size: int, *, pc: int = -1) -> bytes:
        if size < 0:
            raise MemoryFault("load", pc=pc, address=address & _U64, size=size, reason="negative size")
        if size == 0:
            return b""
        buf, off = self.resolve(address, size, False, pc)
        return bytes(buf[off : off + size])

    def write(self, address: int, data: Any, *, pc: int = -1) -> None:
        data = memoryview(data).cast("B") if not isinstance(data, bytes | bytearray) else data
        if not len(data):
            return
        buf, off = self.resolve(address, len(data), True, pc)
        buf[off : off + len(data)] = data

    def view(self, address: int, size: int, *, write: bool = False, pc: int = -1) -> memoryview:
        """A zero-copy view of ``size`` bytes (writable if ``write``); keep it short-lived."""
        if size <= 0:
            return memoryview(b"")
        buf, off = self.resolve(address, size, write, pc)
        view = buf[off : off + size]
        return view if write else view.toreadonly()

    def load(self, address: int, size: int, *, signed: bool = False, pc: int = -1) -> int:
        """A little-endian integer of 1, 2, 4 or 8 bytes."""
        buf, off = self.resolve(address, size, False, pc)
        return int(_UNPACK[size, signed](buf, off)[0])

    def store(self, address: int, size: int, value: int, *, pc: int = -1) -> None:
        """Store the low ``size`` bytes of ``value`` little-endian."""
        buf, off = self.resolve(address, size, True, pc)
        _PACK[size](buf, off, value & ((1 << (8 * size)) - 1))

    def atomic(self, address: int, size: int, update: Callable[[int], int | None], *, pc: int = -1) -> int:
        """An atomic read-modify-write of the ``size``-byte integer at ``address``; returns the old value.

        ``update(old)`` gives the new value, or ``None`` to leave memory as it is (a failed cmpxchg).
        Where the region's owner shares its memory with other processes or with native code (a map:
        :class:`SharedMemoryOwner`), the owner performs it with a real atomic instruction, so that
        ``lock`` instructions of programs in different processes lose no update, as on several CPUs;
        elsewhere (stack, packet) a plain read-modify-write is atomic enough.
        """
        buf, off = self.resolve(address, size, True, pc)
        region = self._regions[address >> REGION_SHIFT]
        rmw = getattr(region.owner, "atomic_rmw", None) if region.kind is RegionKind.MAP else None
        if rmw is not None:
            return int(rmw(off, size, update))
        old = int(_UNPACK[size, False](buf, off)[0])
        new = update(old)
        if new is not None:
            _PACK[size](buf, off, new & ((1 << (8 * size)) - 1))
        return old

    def cstring(self, address: int, max_len: int = 4096, *, pc: int = -1) -> bytes:
        """The NUL-terminated string at ``address`` (without the NUL); faults if it runs out of its
        region before a NUL within ``max_len`` bytes."""
        buf, off = self.resolve(address, 1, False, pc)
        region = self._regions[address >> REGION_SHIFT]
        limit = min(region.end, off + max_len)
        chunk = bytes(buf[off:limit])
        nul = chunk.find(0)
        if nul < 0:
            raise MemoryFault("load", pc=pc, address=address, size=len(chunk) + 1, reason="unterminated string")
        return chunk[:nul]

    # -- internals -----------------------------------------------------------------------------
    def _alloc_id(self) -> int:
        if self._next_id < MAX_REGIONS:
            rid = self._next_id
            self._next_id += 1
            return rid
        if not self._free:
            raise MemoryError(f"more than {MAX_REGIONS - 1} live memory regions")
        return self._free.popleft()

    @staticmethod
    def _check_bounds(view: memoryview, start: int, end: int, name: str) -> None:
        if not 0 <= start <= end <= len(view):
            raise ValueError(f"region {name!r}: window [{start}, {end}) is outside its {len(view)}-byte buffer")

    def _publish(self, region: Region) -> None:
        entry: TableEntry = NO_ACCESS
        if self._typed_views and region.views[0] is None:
            region.views = _typed_views(region.buf)
        if region.end > region.start:
            wend = region.end if region.writable else 0
            entry = (region.buf, region.base, region.start, region.end, wend, *region.views)
        self.table[region.id & ID_MASK] = entry
