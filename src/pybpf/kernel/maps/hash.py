"""HASH, PERCPU_HASH, LRU_HASH, LRU_PERCPU_HASH (kernel/bpf/hashtab.c, bpf_lru_list.c).

Storage (offsets from the map's base; all links are ``slot index + 1``, 0 = none)::

    header   free_head  first free slot (free slots chain through their ``next``)
             bump       slots never used yet: slots [bump, max_entries) are free without being
                        on the list (so creating a huge map is O(1))
             count      elements in use
             lock       the map lock word (writers take it; ``lock cmpxchg`` from native code)
    aux_off  n_buckets x u32   bucket heads (n_buckets = roundup_pow_of_two(max_entries))
    (LRU types: the LRU area, see :mod:`pybpf.kernel.maps.lru`)
    data_off max_entries x elem_size   element slots:
               +0  u32 next      next in bucket chain (or free list)
               +4  u32 hash      key_hash(key, seed)
               +8  u32 lru_prev  LRU types: the node's list links,
               +12 u32 lru_next
               +16 u32 flags     bit 0 in use
               +20 u8  ref       LRU: set by program lookups (the kernel's bpf_lru_node.ref),
               +21 u8  type      the list the node is on,
               +22 u16 cpu       and the CPU it belongs to
               +24 key           round_up(key_size, 8) bytes
               +24+K value       round_up(value_size, 8) bytes, or for per-CPU maps ncpus of them

The bucket of a key is ``key_hash(key, seed) & (n_buckets - 1)``; new elements go to the head of
their bucket (as the kernel's ``hlist_nulls_add_head_rcu``), so ``get_next_key`` walks buckets in
index order and each chain from its head — the kernel's order rules, including restarting at the
first element when the given key is missing.

LRU maps allocate every element through the kernel's LRU (``bpf_lru_pop_free``), which evicts when
nothing is free, and give it back with ``bpf_lru_push_free`` — including, as ``hashtab.c`` does,
when an update replaces an existing key (the new element takes a fresh node, the old one is freed).
"""

from __future__ import annotations

import errno
import struct

from pybpf import uapi
from pybpf.errors import BpfError
from pybpf.isa import Insn
from pybpf.kernel.maps.base import (
    EXIST,
    F_ACCESS_MASK,
    F_LOCK,
    F_NO_PREALLOC,
    F_NUMA_NODE,
    HEADER_SIZE,
    KMALLOC_MAX_SIZE,
    NOEXIST,
    NUMA_NO_NODE,
    OFF_BUMP,
    OFF_COUNT,
    OFF_FREE_HEAD,
    PCPU_MIN_UNIT_SIZE,
    Map,
    MapAttrs,
    access_flags_ok,
    key_hash,
    round_up,
    roundup_pow_of_two,
)
from pybpf.kernel.maps.lru import BpfLru, lru_area_offset, lru_area_size
from pybpf.uapi import MapType

__all__ = ["ELEM_HEADER", "HashMap", "LruHashMap", "LruPercpuHashMap", "PercpuHashMap", "htab_alloc_check"]

HTAB_CREATE_FLAG_MASK = F_NO_PREALLOC | uapi.BPF_F_NO_COMMON_LRU | F_NUMA_NODE | F_ACCESS_MASK | uapi.BPF_F_ZERO_SEED
ELEM_HEADER = 24
E_NEXT, E_HASH, E_PREV, E_LNEXT, E_FLAGS, E_REF = 0, 4, 8, 12, 16, 20
FL_USED = 1
_U32 = struct.Struct("<I")
_ELEM_HDR = struct.Struct("<IIIII")
HTAB_ELEM_STRUCT = 48  # sizeof(struct htab_elem) on x86-64, for the kernel's E2BIG bound


def htab_alloc_check(a: MapAttrs, ncpus: int) -> None:
    """``htab_map_alloc_check`` and the size checks of ``htab_map_alloc``."""
    percpu = a.map_type in (MapType.PERCPU_HASH, MapType.LRU_PERCPU_HASH)
    lru = a.map_type in (MapType.LRU_HASH, MapType.LRU_PERCPU_HASH)
    percpu_lru = bool(a.map_flags & uapi.BPF_F_NO_COMMON_LRU)
    prealloc = not a.map_flags & F_NO_PREALLOC
    if a.map_flags & ~HTAB_CREATE_FLAG_MASK or not access_flags_ok(a.map_flags):
        raise BpfError(errno.EINVAL)
    if not lru and percpu_lru:
        raise BpfError(errno.EINVAL)
    if lru and not prealloc:
        raise BpfError(524)  # ENOTSUPP
    if a.numa_node != NUMA_NO_NODE and (percpu or percpu_lru):
        raise BpfError(errno.EINVAL)
    if a.max_entries == 0 or a.key_size == 0 or a.value_size == 0:
        raise BpfError(errno.EINVAL)
    if a.key_size + a.value_size >= KMALLOC_MAX_SIZE - HTAB_ELEM_STRUCT:
        raise BpfError(errno.E2BIG)
    if percpu and round_up(a.value_size, 8) > PCPU_MIN_UNIT_SIZE:
        raise BpfError(errno.E2BIG)
    # htab_map_alloc
    if percpu_lru:
        rounded = round_up(a.max_entries, ncpus)
        a.max_entries = rounded if rounded >= a.max_entries and rounded <= 0xFFFFFFFF else \
            a.max_entries // ncpus * ncpus
    if a.max_entries > 1 << 31:
        raise BpfError(errno.E2BIG)
    if a.max_entries * (ELEM_HEADER + round_up(a.key_size, 8) + round_up(a.value_size, 8)) > 1 << 34:
        raise BpfError(errno.ENOMEM)


class HashMap(Map):
    """BPF_MAP_TYPE_HASH (and the base of the other hash-table maps)."""

    map_types = (MapType.HASH,)
    lru = False
    has_update_batch = True
    has_delete_batch = True
    htab_batch = True

    @classmethod
    def alloc_check(cls, attrs: MapAttrs, kernel: object) -> None:
        htab_alloc_check(attrs, getattr(kernel, "ncpus", 1))

    @classmethod
    def value_stride(cls, value_size: int, ncpus: int) -> int:
        v = round_up(value_size, 8)
        return v * ncpus if cls.percpu else v

    @classmethod
    def layout(cls, a: MapAttrs, ncpus: int) -> tuple[int, int, int, int, int]:
        n_buckets = roundup_pow_of_two(a.max_entries)
        elem = ELEM_HEADER + round_up(a.key_size, 8) + cls.value_stride(a.value_size, ncpus)
        aux_off = round_up(HEADER_SIZE, 64)
        data_off = round_up(aux_off + 4 * n_buckets, 64)
        total = data_off + elem * a.max_entries
        return elem, n_buckets, data_off, aux_off, total

    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.key_off = ELEM_HEADER
        self.val_off = ELEM_HEADER + round_up(self.key_size, 8)
        self.vstride = round_up(self.value_size, 8)
        self.mask = self.n_buckets - 1

    # -- raw element access ----------------------------------------------------------------------
    def elem(self, slot: int) -> int:
        """Storage offset of element ``slot`` (0-based)."""
        return self.data_off + slot * self.elem_size

    def _bucket_off(self, b: int) -> int:
        return self.aux_off + 4 * b

    def _find(self, key: bytes, h: int) -> tuple[int, int]:
        """(slot + 1 of the element holding ``key`` or 0, slot + 1 of its predecessor or 0)."""
        mem = self.mem
        ks = self.key_size
        cur = _U32.unpack_from(mem, self._bucket_off(h & self.mask))[0]
        prev = 0
        steps = 0
        limit = self.max_entries + 1
        while cur and steps < limit:
            e = self.data_off + (cur - 1) * self.elem_size
            nxt, eh = struct.unpack_from("<II", mem, e)
            if eh == h and mem[e + ELEM_HEADER:e + ELEM_HEADER + ks] == key:
                return cur, prev
            prev, cur = cur, nxt
            steps += 1
        return 0, 0

    def _alloc_slot(self) -> int:
        """A free slot + 1 (free list, then never-used slots), or 0."""
        head = self._u32(OFF_FREE_HEAD)
        if head:
            e = self.elem(head - 1)
            self._set_u32(OFF_FREE_HEAD, self._u32(e + E_NEXT))
            return head
        bump = self._u32(OFF_BUMP)
        if bump < self.max_entries:
            self._set_u32(OFF_BUMP, bump + 1)
            return bump + 1
        return 0

    def _free_slot(self, s: int) -> None:
        e = self.elem(s - 1)
        self._set_u32(e + E_FLAGS, 0)
        self._set_u32(e + E_NEXT, self._u32(OFF_FREE_HEAD))
        self._set_u32(OFF_FREE_HEAD, s)

    def _unlink_bucket(self, s: int, prev: int, h: int) -> None:
        nxt = self._u32(self.elem(s - 1) + E_NEXT)
        if prev:
            self._set_u32(self.elem(prev - 1) + E_NEXT, nxt)
        else:
            self._set_u32(self._bucket_off(h & self.mask), nxt)

    def _link_bucket(self, s: int, h: int) -> None:
        b = self._bucket_off(h & self.mask)
        e = self.elem(s - 1)
        self._set_u32(e + E_NEXT, self._u32(b))
        self._set_u32(b, s)

    def _on_remove(self, e: int) -> None:
        """Hook for maps whose values hold references (hash of maps)."""

    # -- MapLike: the inline lookup (htab_map_gen_lookup / htab_lru_map_gen_lookup) -------------
    def gen_lookup(self, insn_buf: object = None) -> list[Insn] | None:
        """``call __htab_map_lookup_elem`` (returns the element), then step to the value; LRU maps
        also mark the element referenced, as the kernel's inline sequence does."""
        if self.percpu or type(self) not in (HashMap, LruHashMap):
            return None
        from pybpf.progtypes.internal import internal_id

        call = Insn(0x85, imm=internal_id("__htab_map_lookup_elem"))
        to_value = Insn(0x07, dst=0, imm=self.val_off)  # r0 += offsetof(key) + round_up(key_size, 8)
        if not self.lru:
            return [call, Insn(0x15, dst=0, off=1, imm=0), to_value]
        return [
            call,
            Insn(0x15, dst=0, off=4, imm=0),  # if r0 == 0 goto +4
            Insn(0x71, dst=1, src=0, off=E_REF),  # r1 = *(u8 *)(r0 + ref)
            Insn(0x55, dst=1, off=1, imm=0),  # if r1 != 0 goto +1
            Insn(0x72, dst=0, off=E_REF, imm=1),  # *(u8 *)(r0 + ref) = 1
            to_value,
        ]

    def lookup_elem_raw(self, key: bytes) -> int | None:
        """``__htab_map_lookup_elem``: the storage offset of the *element* holding ``key``."""
        s, _ = self._find(bytes(key[:self.key_size]), key_hash(bytes(key[:self.key_size]), self.seed))
        return self.elem(s - 1) if s else None

    # -- program side ----------------------------------------------------------------------------
    def lookup_elem(self, key: bytes, *, from_prog: bool = True) -> int | None:
        h = key_hash(key, self.seed)
        s, _ = self._find(key, h)
        if not s:
            return None
        e = self.elem(s - 1)
        if self.lru and from_prog and not self.mem[e + E_REF]:
            self.mem[e + E_REF] = 1
        off = e + self.val_off
        if self.percpu:
            off += self.kernel.cpu * self.vstride
        return off

    def update_elem(self, key: bytes, value: bytes, flags: int, *, from_prog: bool = False) -> int:
        """``htab_map_update_elem`` (+ the LRU / per-CPU variants). ``from_prog`` only matters for
        per-CPU maps: a program writes its CPU's copy, the syscall all CPUs' copies."""
        if (flags & ~F_LOCK) > EXIST:
            return -errno.EINVAL
        if flags & F_LOCK:
            if self.spin_lock_off is None or self.percpu:
                return -errno.EINVAL
        key = bytes(key[:self.key_size])
        h = key_hash(key, self.seed)
        self.lock()
        try:
            s, _prev = self._find(key, h)
            mode = flags & ~F_LOCK
            if s and mode == NOEXIST:
                return -errno.EEXIST
            if not s and mode == EXIST:
                return -errno.ENOENT
            if s:
                e = self.elem(s - 1)
                self._write_value(e, value, flags, from_prog, new=False)
                return 0
            s = self._alloc_slot() if self._u32(OFF_COUNT) < self.max_entries else 0
            if not s:
                return -errno.E2BIG
            e = self.elem(s - 1)
            self.mem[e:e + ELEM_HEADER] = _ELEM_HDR.pack(0, h, 0, 0, FL_USED).ljust(ELEM_HEADER, b"\0")
            kpad = round_up(self.key_size, 8)
            self.mem[e + ELEM_HEADER:e + ELEM_HEADER + kpad] = key.ljust(kpad, b"\0")
            self._write_value(e, value, flags & ~F_LOCK, from_prog, new=True)
            self._link_bucket(s, h)
            self._set_u32(OFF_COUNT, self._u32(OFF_COUNT) + 1)
            return 0
        finally:
            self.unlock()

    def _write_value(self, e: int, value: bytes, flags: int, from_prog: bool, *, new: bool) -> None:
        vo = e + self.val_off
        if self.percpu:
            stride = self.vstride
            if from_prog:
                if new:
                    self.mem[vo:vo + stride * self.ncpus] = bytes(stride * self.ncpus)
                off = vo + self.kernel.cpu * stride
                self.mem[off:off + self.value_size] = value[:self.value_size]
            else:
                n = stride * self.ncpus
                self.mem[vo:vo + n] = bytes(value[:n]).ljust(n, b"\0")
            return
        if new and self.spin_lock_off is not None:
            # a fresh element starts with an unlocked lock word
            self.mem[vo:vo + self.vstride] = bytes(self.vstride)
        self._copy_value_in(vo, value, bool(flags & F_LOCK))

    def delete_elem(self, key: bytes) -> int:
        key = bytes(key[:self.key_size])
        h = key_hash(key, self.seed)
        self.lock()
        try:
            s, prev = self._find(key, h)
            if not s:
                return -errno.ENOENT
            self._remove(s, prev, h)
            return 0
        finally:
            self.unlock()

    def _remove(self, s: int, prev: int, h: int) -> None:
        """Take element ``s`` out of the table and free its slot."""
        self._unlink(s, prev, h)
        self._release(s)

    def _unlink(self, s: int, prev: int, h: int) -> None:
        """Take element ``s`` out of its bucket (it stops being an element of the map)."""
        self._unlink_bucket(s, prev, h)
        self._on_remove(self.elem(s - 1))
        self._set_u32(OFF_COUNT, self._u32(OFF_COUNT) - 1)

    def _release(self, s: int) -> None:
        """Slot ``s``, no longer in the table, is free again (LRU maps: ``bpf_lru_push_free``)."""
        self._free_slot(s)

    # -- syscall side ------------------------------------------------------------------------------
    def _value_bytes(self, e: int, flags: int) -> bytes:
        vo = e + self.val_off
        if self.percpu:
            return bytes(self.mem[vo:vo + self.vstride * self.ncpus])
        if flags & F_LOCK:
            return self._copy_locked_out(vo)
        data = bytes(self.mem[vo:vo + self.value_size])
        if self.spin_lock_off is not None:
            sl = self.spin_lock_off
            data = data[:sl] + bytes(4) + data[sl + 4:]
        return data

    def lookup_elem_sys(self, key: bytes, flags: int = 0) -> bytes:
        if flags & F_LOCK and (self.spin_lock_off is None or self.percpu):
            raise BpfError(errno.EINVAL)
        h = key_hash(key, self.seed)
        s, _ = self._find(key, h)
        if not s:
            raise BpfError(errno.ENOENT)
        return self._value_bytes(self.elem(s - 1), flags)

    def update_elem_sys(self, key: bytes, value: bytes, flags: int) -> None:
        err = self.update_elem(key, value, flags, from_prog=False)
        if err:
            raise BpfError(-err)

    def lookup_and_delete_elem_sys(self, key: bytes, flags: int) -> bytes:
        if flags & ~F_LOCK:
            raise BpfError(errno.EINVAL)
        if flags & F_LOCK and (self.spin_lock_off is None or self.percpu):
            raise BpfError(errno.EINVAL)
        key = bytes(key[:self.key_size])
        h = key_hash(key, self.seed)
        self.lock()
        try:
            s, prev = self._find(key, h)
            if not s:
                raise BpfError(errno.ENOENT)
            data = self._value_bytes(self.elem(s - 1), flags)
            self._remove(s, prev, h)
            return data
        finally:
            self.unlock()

    def get_next_key(self, key: bytes | None) -> bytes:
        mem = self.mem
        ks = self.key_size
        start = 0
        if key is not None:
            h = key_hash(key, self.seed)
            s, _ = self._find(key, h)
            if s:
                nxt = self._u32(self.elem(s - 1) + E_NEXT)
                if nxt:
                    e = self.elem(nxt - 1)
                    return bytes(mem[e + ELEM_HEADER:e + ELEM_HEADER + ks])
                start = (h & self.mask) + 1
        for b in range(start, self.n_buckets):
            head = _U32.unpack_from(mem, self.aux_off + 4 * b)[0]
            if head:
                e = self.elem(head - 1)
                return bytes(mem[e + ELEM_HEADER:e + ELEM_HEADER + ks])
        raise BpfError(errno.ENOENT)

    def bucket_elems(self, b: int) -> list[int]:
        """Element offsets in bucket ``b``, chain order."""
        out = []
        cur = self._u32(self.aux_off + 4 * b)
        steps = 0
        while cur and steps <= self.max_entries:
            e = self.elem(cur - 1)
            out.append(e)
            cur = self._u32(e + E_NEXT)
            steps += 1
        return out

    def items_raw(self) -> list[tuple[bytes, int]]:
        """(key, element offset) for every element, in get_next_key order."""
        out = []
        ks = self.key_size
        for b in range(self.n_buckets):
            if self._u32(self.aux_off + 4 * b):
                out.extend((bytes(self.mem[e + ELEM_HEADER:e + ELEM_HEADER + ks]), e) for e in self.bucket_elems(b))
        return out

    def for_each_elem(self) -> list[tuple[bytes, int | None, int]]:
        cpu_off = self.kernel.cpu * self.vstride if self.percpu else 0
        return [(k, e + ELEM_HEADER, e + self.val_off + cpu_off) for k, e in self.items_raw()]

    def lookup_batch_htab(self, batch: int, max_count: int, flags: int, delete: bool
                          ) -> tuple[list[bytes], list[bytes], int, int]:
        """``__htab_map_lookup_and_delete_batch``: whole buckets from ``batch``; returns
        (keys, values, next batch, errno or 0) — ENOENT when the last bucket was reached, ENOSPC
        when the first non-empty bucket does not fit ``max_count``."""
        keys: list[bytes] = []
        values: list[bytes] = []
        if batch >= self.n_buckets:
            return keys, values, batch, errno.ENOENT
        ks = self.key_size
        self.lock()
        try:
            while True:
                elems = self.bucket_elems(batch)
                if len(elems) > max_count - len(keys):
                    return keys, values, batch, (errno.ENOSPC if not keys else 0)
                for e in elems:
                    keys.append(bytes(self.mem[e + ELEM_HEADER:e + ELEM_HEADER + ks]))
                    values.append(self._value_bytes(e, flags))
                if delete:
                    for k in keys[len(keys) - len(elems):]:
                        h = key_hash(k, self.seed)
                        s, prev = self._find(k, h)
                        if s:
                            self._remove(s, prev, h)
                batch += 1
                if batch >= self.n_buckets:
                    return keys, values, batch, errno.ENOENT
        finally:
            self.unlock()

    def count(self) -> int:
        return self._u32(OFF_COUNT)


class PercpuHashMap(HashMap):
    """BPF_MAP_TYPE_PERCPU_HASH."""

    map_types = (MapType.PERCPU_HASH,)
    percpu = True


class LruHashMap(HashMap):
    """BPF_MAP_TYPE_LRU_HASH: every element comes from the kernel's LRU (:mod:`pybpf.kernel.maps.lru`)."""

    map_types = (MapType.LRU_HASH,)
    lru = True

    @classmethod
    def layout(cls, a: MapAttrs, ncpus: int) -> tuple[int, int, int, int, int]:
        elem, n_buckets, _data_off, aux_off, _total = super().layout(a, ncpus)
        lru_off = lru_area_offset(aux_off, n_buckets)
        data_off = round_up(lru_off + lru_area_size(ncpus, bool(a.map_flags & uapi.BPF_F_NO_COMMON_LRU)), 64)
        return elem, n_buckets, data_off, aux_off, data_off + elem * a.max_entries

    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)
        self.bpf_lru = BpfLru(self, percpu_lru=bool(self.map_flags & uapi.BPF_F_NO_COMMON_LRU))

    def init_storage(self) -> None:
        self.bpf_lru.init()

    def _release(self, s: int) -> None:
        self.bpf_lru.push_free(s)

    def lru_delete_node(self, s: int) -> bool:
        """``htab_lru_map_delete_node``: the LRU evicts element ``s``; False if it is in no bucket."""
        e = self.elem(s - 1)
        h = self._u32(e + E_HASH)
        cur = self._u32(self._bucket_off(h & self.mask))
        prev = 0
        steps = 0
        while cur and steps <= self.max_entries:
            if cur == s:
                self._unlink(s, prev, h)
                return True
            prev, cur = cur, self._u32(self.elem(cur - 1) + E_NEXT)
            steps += 1
        return False

    def _new_node(self, node: int, key: bytes, h: int) -> int:
        """Write ``key`` into a node the LRU handed out (its list links stay); the element offset."""
        e = self.elem(node - 1)
        struct.pack_into("<II", self.mem, e, 0, h)
        self._set_u32(e + E_FLAGS, FL_USED)
        kpad = round_up(self.key_size, 8)
        self.mem[e + ELEM_HEADER:e + ELEM_HEADER + kpad] = key.ljust(kpad, b"\0")
        return e

    def _link_new(self, node: int, h: int) -> None:
        self._link_bucket(node, h)
        self._set_u32(OFF_COUNT, self._u32(OFF_COUNT) + 1)

    def update_elem(self, key: bytes, value: bytes, flags: int, *, from_prog: bool = False) -> int:
        """``htab_lru_map_update_elem`` / ``__htab_lru_percpu_map_update_elem``: the node is taken
        from the LRU *before* the key is looked up (so a full map evicts even when the key exists,
        possibly the key itself); a plain LRU map then replaces the old element by the new one
        (marked referenced), a per-CPU one updates the old element in place."""
        if flags > EXIST:
            return -errno.EINVAL
        key = bytes(key[:self.key_size])
        h = key_hash(key, self.seed)
        self.lock()
        try:
            if self.percpu:
                return self._update_percpu(key, value, flags, h, from_prog)
            node = self.bpf_lru.pop_free(h)
            if not node:
                return -errno.ENOMEM
            e = self._new_node(node, key, h)
            self._write_value(e, value, 0, from_prog, new=True)
            old, prev = self._find(key, h)
            err = _check_flags(old, flags)
            if err:
                self.bpf_lru.push_free(node)
                return err
            if old:
                self.bpf_lru.set_ref(node)
                self._unlink(old, prev, h)
            self._link_new(node, h)
            if old:
                self.bpf_lru.push_free(old)
            return 0
        finally:
            self.unlock()

    def _update_percpu(self, key: bytes, value: bytes, flags: int, h: int, from_prog: bool) -> int:
        node = 0
        if flags != EXIST:
            node = self.bpf_lru.pop_free(h)
            if not node:
                return -errno.ENOMEM
        old, _prev = self._find(key, h)
        err = _check_flags(old, flags)
        if not err:
            if old:
                self.bpf_lru.set_ref(old)
                self._write_value(self.elem(old - 1), value, 0, from_prog, new=False)
            else:
                e = self._new_node(node, key, h)
                self._write_value(e, value, 0, from_prog, new=True)
                self._link_new(node, h)
                node = 0
        if node:
            self.bpf_lru.push_free(node)
        return err


def _check_flags(old: int, flags: int) -> int:
    """``check_flags``: NOEXIST on an existing key, EXIST on a missing one."""
    if old and flags & ~F_LOCK == NOEXIST:
        return -errno.EEXIST
    if not old and flags & ~F_LOCK == EXIST:
        return -errno.ENOENT
    return 0


class LruPercpuHashMap(LruHashMap):
    """BPF_MAP_TYPE_LRU_PERCPU_HASH."""

    map_types = (MapType.LRU_PERCPU_HASH,)
    percpu = True


MAP_CLASSES = (HashMap, PercpuHashMap, LruHashMap, LruPercpuHashMap)
