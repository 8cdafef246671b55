"""The native helper library: every packet-path helper as machine code in one executable image.

Why one process-wide image instead of code emitted into each program: the helpers are a few
kilobytes of machine code that take tens of milliseconds of Python to emit; built once, every
program binds them as :class:`~pybpf.jit.helpers.NativeHelper` addresses (a plain ``call`` through a
slot, nothing emitted per program, so compiling a program stays cheap). The helpers learn what a
run needs from the map header (``r1`` is the map's storage) and from the env block after the run
state (``[r12 + ENV]``, :mod:`pybpf.jit.native.layout`), so one copy serves every map and every run.

:func:`library` gives the image (built and made executable on first use);
:func:`native_helper_table` picks, for one program, the helper ids it can bind natively:

* the generic map helpers (``bpf_map_lookup_elem``...) dispatch on the map type in the header;
  they are bound natively only when every map type the program can reach with them (its maps and
  their inner-map templates, minus the types the kernel's ``check_map_func_compatibility`` never
  lets reach that helper) has a native implementation — otherwise the Python helper stays;
* the internal functions of contract 2 (``htab_map_update_elem``...) name one map family each;
* time, randomness, the CPU, redirects, XDP head/tail/meta adjustment, ring buffers.

Helpers not listed stay with the kernel layer's Python implementations (ctypes callbacks).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache

from pybpf.jit.helpers import HelperEntry, NativeHelper
from pybpf.jit.native.array import emit_array
from pybpf.jit.native.asm import Asm, fn_label
from pybpf.jit.native.common import emit_common
from pybpf.jit.native.hashtab import emit_hashtab
from pybpf.jit.native.layout import ERRNO, Hdr
from pybpf.jit.native.lpm import emit_lpm
from pybpf.jit.native.lru import emit_lru
from pybpf.jit.native.packet import emit_packet
from pybpf.jit.native.queue_stack import emit_queue_stack
from pybpf.jit.native.ringbuf import emit_ringbuf
from pybpf.jit.native.system import CLOCK_GETTIME_SLOT, emit_system
from pybpf.jit.runtime import ExecutableMemory, libc_symbol, native_function
from pybpf.jit.x86 import encoder as x
from pybpf.jit.x86.codebuf import CodeBuffer
from pybpf.jit.x86.encoder import R8, R12, RAX, RBX, RCX, RDI, RDX, RSI, RSP, Cond, Mem
from pybpf.uapi import HelperId, MapType, ProgType

__all__ = [
    "DISPATCH",
    "INTERNAL_NATIVE",
    "NativeLibrary",
    "build_library",
    "library",
    "native_helper_table",
]

M = MapType
HASH_TYPES = (M.HASH, M.PERCPU_HASH, M.LRU_HASH, M.LRU_PERCPU_HASH)
PLAIN_HASH, LRU_TYPES = (M.HASH, M.PERCPU_HASH), (M.LRU_HASH, M.LRU_PERCPU_HASH)

DISPATCH: dict[str, tuple[tuple[tuple[MapType, ...], str], ...]] = {
    # generic helper → (map types, library function) in dispatch order; anything else: the default
    "map_lookup_elem": (((*HASH_TYPES, M.DEVMAP_HASH), "htab_lookup"), ((M.ARRAY, M.PERCPU_ARRAY), "array_lookup"),
                        ((M.LPM_TRIE,), "trie_lookup"), ((M.DEVMAP,), "devmap_lookup")),
    "map_update_elem": ((PLAIN_HASH, "htab_update"), (LRU_TYPES, "htab_lru_update"),
                        ((M.ARRAY, M.PERCPU_ARRAY), "array_update"), ((M.LPM_TRIE,), "trie_update"),
                        ((M.DEVMAP, M.DEVMAP_HASH), "einval")),
    "map_delete_elem": ((PLAIN_HASH, "htab_delete"), (LRU_TYPES, "htab_lru_delete"),
                        ((M.ARRAY, M.PERCPU_ARRAY), "array_delete"), ((M.LPM_TRIE,), "trie_delete")),
    "map_push_elem": (((M.QUEUE, M.STACK), "qs_push"),),
    "map_pop_elem": (((M.QUEUE,), "queue_pop"), ((M.STACK,), "stack_pop")),
    "map_peek_elem": (((M.QUEUE,), "queue_peek"), ((M.STACK,), "stack_peek")),
    "map_lookup_percpu_elem": (((M.PERCPU_ARRAY,), "array_lookup_percpu"),
                               ((M.PERCPU_HASH, M.LRU_PERCPU_HASH), "htab_lookup_percpu")),
}
_DEFAULT = {"map_lookup_elem": "zero", "map_lookup_percpu_elem": "zero"}

# Types the kernel's check_map_func_compatibility never lets reach a helper (so they need no native
# implementation for the helper to be bound natively).
_ONLY_OWN_HELPERS = {M.PROG_ARRAY, M.PERF_EVENT_ARRAY, M.STACK_TRACE, M.CGROUP_ARRAY, M.RINGBUF, M.USER_RINGBUF,
                     M.QUEUE, M.STACK, M.BLOOM_FILTER, M.CPUMAP}
_UNREACHABLE: dict[str, set[MapType]] = {
    "map_lookup_elem": _ONLY_OWN_HELPERS,
    "map_update_elem": _ONLY_OWN_HELPERS | {M.DEVMAP, M.DEVMAP_HASH, M.XSKMAP, M.ARRAY_OF_MAPS, M.HASH_OF_MAPS},
    "map_delete_elem": _ONLY_OWN_HELPERS | {M.DEVMAP, M.DEVMAP_HASH, M.XSKMAP, M.ARRAY_OF_MAPS, M.HASH_OF_MAPS},
    "map_push_elem": set(M) - {M.QUEUE, M.STACK, M.BLOOM_FILTER},
    "map_pop_elem": set(M) - {M.QUEUE, M.STACK},
    "map_peek_elem": set(M) - {M.QUEUE, M.STACK, M.BLOOM_FILTER},
    "map_lookup_percpu_elem": set(M) - {M.PERCPU_ARRAY, M.PERCPU_HASH, M.LRU_PERCPU_HASH},
    "redirect_map": set(M) - {M.DEVMAP, M.DEVMAP_HASH, M.CPUMAP, M.XSKMAP},
}
_NATIVE_TYPES: dict[str, set[MapType]] = {name: {t for types, _ in cases for t in types}
                                          for name, cases in DISPATCH.items()}
_NATIVE_TYPES["redirect_map"] = {M.DEVMAP, M.DEVMAP_HASH}

INTERNAL_NATIVE: dict[str, str] = {
    "__htab_map_lookup_elem": "htab_lookup_raw",
    "htab_map_update_elem": "htab_update",
    "htab_map_delete_elem": "htab_delete",
    "htab_lru_map_update_elem": "htab_lru_update",
    "htab_lru_map_delete_elem": "htab_lru_delete",
    "htab_percpu_map_lookup_elem": "htab_lookup",
    "htab_percpu_map_update_elem": "htab_update",
    "htab_lru_percpu_map_lookup_elem": "htab_lookup",
    "htab_lru_percpu_map_update_elem": "htab_lru_update",
    "array_map_lookup_elem": "array_lookup",
    "array_map_update_elem": "array_update",
    "array_map_delete_elem": "array_delete",
    "percpu_array_map_lookup_elem": "array_lookup",
    "trie_lookup_elem": "trie_lookup",
    "trie_update_elem": "trie_update",
    "trie_delete_elem": "trie_delete",
    "queue_stack_map_push_elem": "qs_push",
    "queue_map_pop_elem": "queue_pop",
    "queue_map_peek_elem": "queue_peek",
    "stack_map_pop_elem": "stack_pop",
    "stack_map_peek_elem": "stack_peek",
    "dev_map_redirect": "redirect_map",
    "dev_hash_map_redirect": "redirect_map",
    "percpu_array_map_lookup_percpu_elem": "array_lookup_percpu",
    "htab_percpu_map_lookup_percpu_elem": "htab_lookup_percpu",
    "htab_lru_percpu_map_lookup_percpu_elem": "htab_lookup_percpu",
}
"""Internal function (contract 2) → the library function that implements it."""

_ALWAYS: dict[HelperId, str] = {
    HelperId.ktime_get_ns: "ktime_get_ns",
    HelperId.ktime_get_boot_ns: "ktime_get_boot_ns",
    HelperId.ktime_get_coarse_ns: "ktime_get_coarse_ns",
    HelperId.ktime_get_tai_ns: "ktime_get_tai_ns",
    HelperId.jiffies64: "jiffies64",
    HelperId.get_prandom_u32: "get_prandom_u32",
    HelperId.get_smp_processor_id: "get_smp_processor_id",
    HelperId.get_numa_node_id: "get_numa_node_id",
    HelperId.ringbuf_output: "ringbuf_output",
    HelperId.ringbuf_reserve: "ringbuf_reserve",
    HelperId.ringbuf_submit: "ringbuf_submit",
    HelperId.ringbuf_discard: "ringbuf_discard",
    HelperId.ringbuf_query: "ringbuf_query",
}
_XDP_ONLY: dict[HelperId, str] = {
    HelperId.xdp_adjust_head: "xdp_adjust_head",
    HelperId.xdp_adjust_tail: "xdp_adjust_tail",
    HelperId.xdp_adjust_meta: "xdp_adjust_meta",
}


@dataclass(frozen=True)
class NativeLibrary:
    """The library made executable: function name → address."""

    memory: ExecutableMemory
    functions: Mapping[str, int]
    code_size: int
    _callers: dict[str, object] = field(default_factory=dict, compare=False, repr=False)

    def address(self, name: str) -> int:
        return self.memory.address + self.functions[name]

    def entry(self, name: str, helper_name: str | None = None) -> HelperEntry:
        """A :class:`HelperEntry` binding ``name`` natively."""
        return HelperEntry(helper_name or name, NativeHelper(self.address(name), keepalive=self))

    def call(self, function: str | int, state_address: int, *args: int) -> int:
        """Call a library function (by name, or any native function by address) from Python with
        r12 = ``state_address`` (a run state followed by an env block) and up to five arguments:
        what tests and the run environment use to drive a helper outside a program."""
        from pybpf.jit.runtime import NativeBuffer

        if len(args) > 5:
            raise ValueError("at most five arguments")
        address = self.address(function) if isinstance(function, str) else function
        regs = [address, state_address, *[a & (2**64 - 1) for a in args]]
        block = NativeBuffer(b"".join(v.to_bytes(8, "little") for v in regs + [0] * (7 - len(regs))))
        tramp = self._callers.get("trampoline")
        if tramp is None:
            tramp = self._callers["trampoline"] = native_function(self.address("trampoline"), 1)
        return int(tramp(block.address))  # type: ignore[operator]


def _dispatchers(a: Asm) -> None:
    for helper, cases in DISPATCH.items():
        a.func(helper)
        a.ld32(RAX, RDI, Hdr.MAP_TYPE)  # rax: not an argument register
        for types, target in cases:
            for t in types:
                a(x.alu_ri(x.AluOp.CMP, RAX, int(t), 32))
                a.jcc(Cond.E, fn_label(target))
        a.tail(_DEFAULT.get(helper, "einval"))
    a.func("zero")
    a.ret_imm(0)
    a.func("einval")
    a.ret_imm(-int(ERRNO.EINVAL))


def _trampoline(a: Asm) -> None:
    """``u64 trampoline(u64 args[7])``: call args[0] with r12 = args[1] and args[2..6] as arguments."""
    a.func("trampoline")
    a.push(R12, RBX)
    a(x.alu_ri(x.AluOp.SUB, RSP, 8))
    a(x.mov_rr(RBX, RDI))
    a.ld64(R12, RBX, 8)
    for i, r in enumerate((RDI, RSI, RDX, RCX, R8)):
        a.ld64(r, RBX, 16 + 8 * i)
    a(x.call_mem(Mem(RBX, 0)))
    a(x.alu_ri(x.AluOp.ADD, RSP, 8))
    a.pop(RBX, R12)
    a(x.ret())


@dataclass(frozen=True)
class LibraryImage:
    """The library's code before it is made executable."""

    code: bytes
    code_size: int
    functions: Mapping[str, int]
    relocs: tuple[tuple[int, str], ...]  # (offset of an 8-byte slot, C library symbol)


@cache
def build_library() -> LibraryImage:
    """Emit every function (pure: bytes and tables; cached per process)."""
    buf = CodeBuffer()
    a = Asm(buf)
    for emit in (emit_common, emit_hashtab, emit_lru, emit_array, emit_lpm, emit_queue_stack, emit_ringbuf,
                 emit_system, emit_packet, _dispatchers, _trampoline):
        emit(a)
    buf.label("code_end")
    buf.align(8)
    buf.label(CLOCK_GETTIME_SLOT)
    buf.emit(bytes(8))
    buf.mark(8, ("libc", "clock_gettime"))
    asm = buf.assemble()
    functions = {k[1]: v for k, v in asm.labels.items() if isinstance(k, tuple) and k[0] == "native"}
    relocs = tuple((off, payload[1]) for off, payload in asm.marks if payload[0] == "libc")  # type: ignore[index]
    return LibraryImage(asm.code, asm.labels["code_end"], functions, relocs)


_LIBRARY: list[NativeLibrary] = []


def library() -> NativeLibrary:
    """The process's native helper library (built and made executable on first use)."""
    if not _LIBRARY:
        image = build_library()
        code = bytearray(image.code)
        for off, symbol in image.relocs:
            code[off:off + 8] = libc_symbol(symbol).to_bytes(8, "little")
        _LIBRARY.append(NativeLibrary(ExecutableMemory(code), image.functions, image.code_size))
    return _LIBRARY[0]


def _generic_native(helper: str, reachable: set[MapType]) -> bool:
    relevant = reachable - _UNREACHABLE[helper]
    return relevant <= _NATIVE_TYPES[helper]


def native_helper_table(prog_type: int, map_types: Iterable[int], *, xdp_frags: bool = False,
                        lib: NativeLibrary | None = None) -> dict[int, HelperEntry]:
    """The helper ids a program of ``prog_type`` whose maps have ``map_types`` (include inner-map
    templates) can call natively, bound to the library. ``xdp_frags``: the run has a non-linear part,
    which only the Python ``bpf_xdp_adjust_tail`` handles."""
    from pybpf.progtypes.internal import INTERNAL_FUNCTIONS

    lib = lib or library()
    reachable: set[MapType] = set()
    for t in map_types:
        try:
            reachable.add(MapType(t))
        except ValueError:
            reachable.add(M.UNSPEC)
    table: dict[int, HelperEntry] = {int(h): lib.entry(fn, h.name) for h, fn in _ALWAYS.items()}
    for helper in DISPATCH:
        if _generic_native(helper, reachable):
            table[int(getattr(HelperId, helper))] = lib.entry(helper)
    if _generic_native("redirect_map", reachable):
        table[int(HelperId.redirect_map)] = lib.entry("redirect_map")
    is_xdp = int(prog_type) == ProgType.XDP
    table[int(HelperId.redirect)] = lib.entry("redirect_xdp" if is_xdp else "redirect_tc", "redirect")
    if is_xdp:
        for h, fn in _XDP_ONLY.items():
            if not (xdp_frags and h == HelperId.xdp_adjust_tail):
                table[int(h)] = lib.entry(fn, h.name)
    for f in INTERNAL_FUNCTIONS:
        fn = INTERNAL_NATIVE.get(f.name)
        if fn is not None:
            table[f.id] = lib.entry(fn, f.name)
    return table
