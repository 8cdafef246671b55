"""The memory native helpers work on, as numbers: the kernel layer's map storage and the run's env.

Map storage is the kernel layer's (``src/pybpf/kernel/maps/``; the JIT sits below the kernel layer
and may not import it, so the layout is restated here and ``tests/jit/test_native_layout.py``
checks every number against the kernel layer's own tables). A map pointer (what ``r1 =
map[id:N]`` loads) is the address of the storage's first byte: a 256-byte header, then the areas of
the map type. Links inside the storage are slot indices (``index + 1``, 0 = none), never addresses.

The *env* block is the JIT's own: per-run data that native helpers need and that lives in no map —
the CPU the program runs on, the owner value of lock words, the PRNG state, what
``bpf_redirect*`` decided, where the legacy ``LD_ABS`` loads read. It sits right after the run-state
block that r12 points to for the whole run (``JitProgram(extra_state=ENV_SIZE)``), so a helper
reaches it as ``[r12 + ENV + field]`` with no argument to pass.
"""

from __future__ import annotations

from enum import IntEnum

from pybpf.jit.compile import RunStateField

__all__ = [
    "ENV",
    "ENV_SIZE",
    "ERRNO",
    "Elem",
    "EnvField",
    "Hdr",
    "Lpm",
    "Ring",
    "RiWritten",
]


class Hdr(IntEnum):
    """Byte offsets of the map storage header (``kernel/maps/base.py``: ``_FIELDS``)."""

    MAP_TYPE = 8  # u32
    KEY_SIZE = 12  # u32
    VALUE_SIZE = 16  # u32
    MAX_ENTRIES = 20  # u32
    MAP_FLAGS = 24  # u32
    ID = 28  # u32
    NCPUS = 32  # u32
    LOCK = 40  # u32 lock word: 0 free, else the holder's tgid
    COUNT = 44  # u32 elements in use
    ELEM_SIZE = 48  # u32
    N_BUCKETS = 52  # u32 (queue/stack: the ring size, max_entries + 1)
    DATA_OFF = 56  # u64
    AUX_OFF = 64  # u64 (hash maps: the bucket heads)
    FREE_HEAD = 96  # u32 slot + 1
    HEAD = 100  # u32 (LRU list head / queue head / trie root)
    TAIL = 104  # u32
    SEED = 108  # u32 key_hash seed
    SPIN_LOCK_OFF = 144  # u32, NO_SPIN_LOCK when the value has none
    BUMP = 148  # u32 slots never used yet start here
    CONSUMER_POS = 168  # u64 ring buffer
    PRODUCER_POS = 176  # u64
    PENDING_POS = 184  # u64


NO_SPIN_LOCK = 0xFFFF_FFFF
KEY_HASH_MUL = 0x9E3779B97F4A7C15
"""``key_hash``: h = seed; per little-endian 8-byte key word w (the last zero-padded):
h = (h ^ w) * KEY_HASH_MUL mod 2**64; the hash is (h ^ (h >> 32)) & 0xffffffff."""


class Elem(IntEnum):
    """A hash-table element slot (``kernel/maps/hash.py``): header fields, then key, then value."""

    NEXT = 0  # u32 bucket chain (or free list), slot + 1
    HASH = 4  # u32
    LRU_PREV = 8  # u32
    LRU_NEXT = 12  # u32
    FLAGS = 16  # u32, bit 0 in use
    REF = 20  # u8, LRU referenced bit
    KEY = 24  # round_up(key_size, 8) bytes, zero-padded; then the value(s)


FL_USED = 1


class Lpm(IntEnum):
    """An LPM trie node (``kernel/maps/lpm_trie.py``): two children, prefix length, flags, data."""

    CHILD0 = 0  # u32 slot + 1
    CHILD1 = 4
    PREFIXLEN = 8  # u32
    FLAGS = 12  # u32: bit 0 intermediate, bit 1 in use
    DATA = 16  # round_up(data_size, 8) bytes, then the value


LPM_FL_IM = 1


class Ring(IntEnum):
    """Ring buffer records (``kernel/maps/ringbuf.py``): an 8-byte header before each sample."""

    HDR_SZ = 8
    BUSY_BIT = 1 << 31
    DISCARD_BIT = 1 << 30
    MAX_RECORD_SZ = 0xFFFF_FFFF // 4


class ERRNO(IntEnum):
    """The errnos native helpers return (negated in r0, as the kernel's helpers do)."""

    ENOENT = 2
    E2BIG = 7
    EAGAIN = 11
    ENOMEM = 12
    EACCES = 13
    EBUSY = 16
    EEXIST = 17
    EINVAL = 22
    ENOSPC = 28


ENV = int(RunStateField.SIZE)
"""Where the env block starts, from the run-state address in r12."""


class EnvField(IntEnum):
    """Byte offsets in the env block (after the run state; see the module docstring)."""

    CPU = 0  # u32: bpf_get_smp_processor_id, the per-CPU copy maps use
    OWNER = 4  # u32: what native code writes into a lock word it takes (the process's tgid)
    PRNG0 = 8  # u64 xorshift128+ state
    PRNG1 = 16  # u64
    RI_TGT = 24  # u32 bpf_redirect_info.tgt_index
    RI_MAP_ID = 28  # u32 .map_id
    RI_MAP_TYPE = 32  # u32 .map_type
    RI_WRITTEN = 36  # u32: RiWritten bits of the fields written this run
    RI_FLAGS = 40  # u64 .flags
    RI_MAP = 48  # u64: address of the map a broadcast redirect names (.map), 0 for none
    SKB_DATA = 56  # u64: address of skb->data (LD_ABS / LD_IND)
    SKB_HEADLEN = 64  # u64: linear length
    SKB_NET_OFF = 72  # s64: network header offset from data (SKF_NET_OFF), NO_OFFSET when none
    SKB_MAC_OFF = 80  # s64: MAC header offset from data (SKF_LL_OFF), NO_OFFSET when none
    SIZE = 88


ENV_SIZE = int(EnvField.SIZE)
NO_OFFSET = -(1 << 63)
"""SKB_NET_OFF / SKB_MAC_OFF value for "this packet has no such header"."""


class RiWritten(IntEnum):
    """Bits of ``EnvField.RI_WRITTEN``: which ``bpf_redirect_info`` fields native code set."""

    TGT = 1
    MAP_ID = 2
    MAP_TYPE = 4
    FLAGS = 8
    MAP = 16
