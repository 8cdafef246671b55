"""The LRU of LRU_HASH / LRU_PERCPU_HASH maps: Linux 6.12's ``kernel/bpf/bpf_lru_list.c``, over
the map's shared storage.

Which element an update evicts when the map is full is decided by the kernel's lists, so pybpf keeps
the same lists and moves nodes between them at the same moments:

* a **common LRU** (the default) has one global ``bpf_lru_list`` — *active* and *inactive* lists,
  most recent at the head, with counts and the ``next_inactive_rotation`` cursor — plus, per CPU, a
  *local free* list and a *pending* list of the nodes that CPU handed out since it last went to the
  global lists. A CPU takes free nodes ``target_free`` at a time (``clamp(max_entries / ncpus / 2,
  1, 128)``): on the way it flushes its pending nodes into the global lists (referenced ones to
  active), rotates the lists (active tail → inactive unless referenced, referenced inactive nodes →
  active, at most 128 each) and, when the global free list runs dry, shrinks the inactive list from
  its tail — evicting unreferenced elements — or, if none qualifies, evicts the inactive (else the
  active) tail regardless of its ref bit. A CPU with nothing left steals free or pending nodes from
  the CPUs after it, round robin;
* a **per-CPU LRU** (``BPF_F_NO_COMMON_LRU``) gives every CPU its own ``bpf_lru_list`` with
  ``max_entries / ncpus`` nodes, scanning 4 nodes at a time.

A program's lookup sets the element's ref bit (the verifier's inline lookup writes it directly, so
its offset is fixed: +20 of the element); syscall lookups do not. Everything runs on the "CPU" the
caller runs on (``kernel.cpu``: a program run's CPU, or the syscall's), so a single process on one
CPU sees the very evictions Linux makes — the tests replay sequences against the live kernel.

Storage (all under the map's lock word; node ids are slot + 1 for elements and ``max_entries + 1 +
k`` for the k-th list head; a link is a node id, never an address)::

    element +8  u32 prev     +12 u32 next    (the list the node is on)
            +20 u8 ref       +21 u8 type (0 active, 1 inactive, 2 free, 3 local free, 4 pending)
            +22 u16 cpu      (pending list / per-CPU list the node belongs to)
    LRU area at round_up(aux_off + 4 * n_buckets, 64):
        list heads   {u32 prev, u32 next} each: common = active, inactive, pending[ncpus];
                     per-CPU = (active, inactive) per CPU
        list blocks  {u32 count_active, u32 count_inactive, u32 next_inactive_rotation,
                      u32 free_count}: one (common) or one per CPU
        local blocks {u32 free_count, u32 next_steal} per CPU (common LRU only)

Free nodes carry nothing but the list they are counted on, so the free lists are counts: a node
leaving a free list takes any slot from the map's free-slot pool (``free_head`` chain, then
``bump``), a node entering one gives its slot back.
"""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING

from pybpf.errors import BpfError
from pybpf.kernel.maps.base import OFF_COUNT, round_up

if TYPE_CHECKING:
    from pybpf.kernel.maps.hash import HashMap

__all__ = ["ACTIVE", "FREE", "INACTIVE", "LOCAL_FREE", "LOCAL_PENDING", "BpfLru", "lru_area_size"]

ACTIVE, INACTIVE, FREE, LOCAL_FREE, LOCAL_PENDING = 0, 1, 2, 3, 4
NR_COUNTED = 2  # NR_BPF_LRU_LIST_COUNT: only active and inactive are counted per list
LOCAL_FREE_TARGET = 128
LOCAL_NR_SCANS = LOCAL_FREE_TARGET
PERCPU_FREE_TARGET = 4
PERCPU_NR_SCANS = PERCPU_FREE_TARGET

E_PREV, E_LNEXT, E_REF, E_TYPE, E_CPU = 8, 12, 20, 21, 22
_LIST_BLOCK = 16
_LOCAL_BLOCK = 8
_U32 = struct.Struct("<I")
_PAIR = struct.Struct("<II")


def lru_area_size(ncpus: int, percpu_lru: bool) -> int:
    """Bytes of the LRU area (list heads, list blocks, local blocks)."""
    if percpu_lru:
        return 8 * 2 * ncpus + _LIST_BLOCK * ncpus
    return 8 * (2 + ncpus) + _LIST_BLOCK + _LOCAL_BLOCK * ncpus


def lru_area_offset(aux_off: int, n_buckets: int) -> int:
    """Where the LRU area starts: right after the bucket heads, 64-byte aligned."""
    return round_up(aux_off + 4 * n_buckets, 64)


class BpfLru:
    """``struct bpf_lru`` of one map: the operations ``hashtab.c`` calls (``pop_free``,
    ``push_free``) and what they do to the lists. Callers hold the map's lock."""

    def __init__(self, m: HashMap, *, percpu_lru: bool) -> None:
        self.m = m
        self.mem = m.mem
        self.percpu = percpu_lru
        self.ncpus = m.ncpus
        self.n = m.max_entries
        self.heads_off = lru_area_offset(m.aux_off, m.n_buckets)
        nheads = 2 * self.ncpus if percpu_lru else 2 + self.ncpus
        self.nheads = nheads
        self.lists_off = self.heads_off + 8 * nheads
        self.local_off = self.lists_off + _LIST_BLOCK * (self.ncpus if percpu_lru else 1)
        self.nr_scans = PERCPU_NR_SCANS if percpu_lru else LOCAL_NR_SCANS
        self.target_free = min(max(self.n // self.ncpus // 2, 1), LOCAL_FREE_TARGET)
        self.walk_limit = self.n + nheads + 1  # no list is longer; bounds every walk of a damaged one

    # -- initialisation (bpf_lru_init + bpf_lru_populate) ---------------------------------------------
    def init(self) -> None:
        """Empty lists, every node free: all of them on the global free list (common LRU), or
        ``max_entries / ncpus`` on each CPU's (per-CPU LRU); each CPU first steals from itself."""
        for k in range(self.nheads):
            head = self.n + 1 + k
            _PAIR.pack_into(self.mem, self.heads_off + 8 * k, head, head)
        nlists = self.ncpus if self.percpu else 1
        for li in range(nlists):
            self._set(self._block(li) + 8, self.head(li, INACTIVE))  # next_inactive_rotation
            self._set(self._block(li) + 12, self.n // self.ncpus if self.percpu else self.n)
        if not self.percpu:
            for cpu in range(self.ncpus):
                self._set(self._local(cpu) + 4, cpu)  # next_steal

    # -- raw fields -------------------------------------------------------------------------------------
    def _get(self, off: int) -> int:
        return _U32.unpack_from(self.mem, off)[0]  # type: ignore[no-any-return]

    def _set(self, off: int, v: int) -> None:
        _U32.pack_into(self.mem, off, v)

    def _elem(self, nid: int) -> int:
        return self.m.data_off + (nid - 1) * self.m.elem_size

    def _link(self, nid: int) -> int:
        """Offset of the (prev, next) pair of node ``nid`` (an element or a list head)."""
        if nid <= self.n:
            return self._elem(nid) + E_PREV
        return self.heads_off + 8 * (nid - self.n - 1)

    def prev(self, nid: int) -> int:
        """The node before ``nid`` on its list (older)."""
        return self._get(self._link(nid))

    def next(self, nid: int) -> int:
        """The node after ``nid`` on its list (more recent towards the head)."""
        return self._get(self._link(nid) + 4)

    def head(self, li: int, t: int) -> int:
        """The node id of list ``t`` (ACTIVE/INACTIVE) of ``bpf_lru_list`` ``li``."""
        return self.n + 1 + (2 * li + t if self.percpu else t)

    def pending(self, cpu: int) -> int:
        """The node id of CPU ``cpu``'s pending list (common LRU)."""
        return self.n + 1 + 2 + cpu

    def _block(self, li: int) -> int:
        return self.lists_off + _LIST_BLOCK * li

    def _local(self, cpu: int) -> int:
        return self.local_off + _LOCAL_BLOCK * cpu

    def count(self, li: int, t: int) -> int:
        """``counts[t]`` of list block ``li`` (only active and inactive are counted)."""
        return self._get(self._block(li) + 4 * t)

    def free_count(self, li: int) -> int:
        """Nodes on the free list of list block ``li``."""
        return self._get(self._block(li) + 12)

    def local_free_count(self, cpu: int) -> int:
        """Nodes on CPU ``cpu``'s local free list (common LRU)."""
        return self._get(self._local(cpu))

    def _rotation(self, li: int) -> int:
        return self._get(self._block(li) + 8)

    def _set_rotation(self, li: int, nid: int) -> None:
        self._set(self._block(li) + 8, nid)

    def _add_to(self, off: int, delta: int) -> None:
        self._set(off, self._get(off) + delta)

    def ref(self, nid: int) -> int:
        """The node's ref bit (set by program lookups)."""
        return self.mem[self._elem(nid) + E_REF]

    def _clear_ref(self, nid: int) -> None:
        self.mem[self._elem(nid) + E_REF] = 0

    def set_ref(self, nid: int) -> None:
        """``bpf_lru_node_set_ref``."""
        e = self._elem(nid) + E_REF
        if not self.mem[e]:
            self.mem[e] = 1

    def type(self, nid: int) -> int:
        """The list the node is on (ACTIVE, INACTIVE, FREE, LOCAL_FREE, LOCAL_PENDING)."""
        return self.mem[self._elem(nid) + E_TYPE]

    def _set_type(self, nid: int, t: int) -> None:
        self.mem[self._elem(nid) + E_TYPE] = t

    def cpu(self, nid: int) -> int:
        """The CPU whose pending (common) or own (per-CPU) list the node belongs to."""
        return int.from_bytes(self.mem[self._elem(nid) + E_CPU:self._elem(nid) + E_CPU + 2], "little")

    def _set_cpu(self, nid: int, cpu: int) -> None:
        e = self._elem(nid) + E_CPU
        self.mem[e:e + 2] = cpu.to_bytes(2, "little")

    # -- list_head operations ---------------------------------------------------------------------------
    def _del(self, nid: int) -> None:
        p, nx = _PAIR.unpack_from(self.mem, self._link(nid))
        self._set(self._link(p) + 4, nx)
        self._set(self._link(nx), p)

    def _add(self, nid: int, head: int) -> None:
        """``list_add``: right after ``head`` (the most recent end)."""
        nx = self.next(head)
        self._set(self._link(nx), nid)
        _PAIR.pack_into(self.mem, self._link(nid), head, nx)
        self._set(self._link(head) + 4, nid)

    def _list_move(self, nid: int, head: int) -> None:
        self._del(nid)
        self._add(nid, head)

    def _empty(self, head: int) -> bool:
        return self.next(head) == head

    def members(self, head: int) -> list[int]:
        """The node ids on a list, head (most recent) first."""
        out = []
        nid = self.next(head)
        while nid != head and len(out) < self.walk_limit:
            out.append(nid)
            nid = self.next(nid)
        return out

    # -- free slots -------------------------------------------------------------------------------------
    def _take_slot(self) -> int:
        s = self.m._alloc_slot()
        if not s:  # the counts promised a free node: the storage was damaged
            raise BpfError(errno.ENOMEM, f"LRU map {self.m.id}: free counts and free slots disagree")
        return s

    def _give_slot(self, nid: int) -> None:
        self.m._free_slot(nid)

    # -- node moves (__bpf_lru_node_move*) --------------------------------------------------------------
    def _count_inc(self, li: int, t: int) -> None:
        if t < NR_COUNTED:
            self._add_to(self._block(li) + 4 * t, 1)

    def _count_dec(self, li: int, t: int) -> None:
        if t < NR_COUNTED:
            self._add_to(self._block(li) + 4 * t, -1)

    def _move_to_free(self, li: int, nid: int, local_cpu: int | None) -> None:
        """``__bpf_lru_node_move_to_free``: onto the global (or ``li``'s) free list, or the local
        free list of ``local_cpu``."""
        if nid == self._rotation(li):
            self._set_rotation(li, self.prev(nid))
        self._count_dec(li, self.type(nid))
        self._del(nid)
        if local_cpu is None:
            self._set_type(nid, FREE)
            self._add_to(self._block(li) + 12, 1)
        else:
            self._set_type(nid, LOCAL_FREE)
            self._add_to(self._local(local_cpu), 1)
        self._give_slot(nid)

    def _move_in(self, li: int, nid: int, tgt: int) -> None:
        """``__bpf_lru_node_move_in``: a pending node onto the global active/inactive list."""
        self._count_inc(li, tgt)
        self._set_type(nid, tgt)
        self._clear_ref(nid)
        self._list_move(nid, self.head(li, tgt))

    def _move(self, li: int, nid: int, tgt: int) -> None:
        """``__bpf_lru_node_move``: between (or within) active and inactive, or to the free list."""
        t = self.type(nid)
        if t != tgt:
            self._count_dec(li, t)
            self._count_inc(li, tgt)
            self._set_type(nid, tgt)
        self._clear_ref(nid)
        if nid == self._rotation(li):
            self._set_rotation(li, self.prev(nid))
        if tgt == FREE:
            self._del(nid)
            self._add_to(self._block(li) + 12, 1)
            self._give_slot(nid)
        else:
            self._list_move(nid, self.head(li, tgt))

    # -- rotation and shrinking ---------------------------------------------------------------------------
    def _rotate_active(self, li: int) -> None:
        head = self.head(li, ACTIVE)
        first = self.next(head)
        node = self.prev(head)
        i = 0
        while node != head:
            tmp = self.prev(node)
            self._move(li, node, ACTIVE if self.ref(node) else INACTIVE)
            i += 1
            if i == self.nr_scans or node == first:
                break
            node = tmp

    def _rotate_inactive(self, li: int) -> None:
        head = self.head(li, INACTIVE)
        if self._empty(head):
            return
        rot = self._rotation(li)
        last = self.next(rot)
        if last == head:
            last = self.next(last)
        cur, nxt = rot, head
        i = 0
        while i < self.nr_scans:
            if cur == head:
                cur = self.prev(cur)
                continue
            nxt = self.prev(cur)
            if self.ref(cur):
                self._move(li, cur, ACTIVE)
            if cur == last:
                break
            cur = nxt
            i += 1
        self._set_rotation(li, nxt)

    def _rotate(self, li: int) -> None:
        """``__bpf_lru_list_rotate``: active only while inactive is the shorter list."""
        if self.count(li, INACTIVE) < self.count(li, ACTIVE):
            self._rotate_active(li)
        self._rotate_inactive(li)

    def _shrink_inactive(self, li: int, tgt: int, local_cpu: int | None) -> int:
        head = self.head(li, INACTIVE)
        node = self.prev(head)
        done = i = 0
        while node != head:
            tmp = self.prev(node)
            if self.ref(node):
                self._move(li, node, ACTIVE)
            elif self.m.lru_delete_node(node):
                self._move_to_free(li, node, local_cpu)
                done += 1
                if done == tgt:
                    break
            i += 1
            if i == self.nr_scans:
                break
            node = tmp
        return done

    def _shrink(self, li: int, tgt: int, local_cpu: int | None) -> int:
        """``__bpf_lru_list_shrink``: unreferenced inactive nodes first; failing that, force out
        the tail of inactive (else active) whatever its ref bit."""
        done = self._shrink_inactive(li, tgt, local_cpu)
        if done:
            return done
        inactive = self.head(li, INACTIVE)
        force = inactive if not self._empty(inactive) else self.head(li, ACTIVE)
        node = self.prev(force)
        steps = 0
        while node != force and steps < self.walk_limit:
            tmp = self.prev(node)
            if self.m.lru_delete_node(node):
                self._move_to_free(li, node, local_cpu)
                return 1
            node = tmp
            steps += 1
        return 0

    # -- the common LRU's local lists ---------------------------------------------------------------------
    def _local_flush(self, cpu: int) -> None:
        head = self.pending(cpu)
        node = self.prev(head)
        steps = 0
        while node != head and steps < self.walk_limit:
            tmp = self.prev(node)
            self._move_in(0, node, ACTIVE if self.ref(node) else INACTIVE)
            node = tmp
            steps += 1

    def _pop_free_to_local(self, cpu: int) -> None:
        self._local_flush(cpu)
        self._rotate(0)
        nfree = min(self.free_count(0), self.target_free)
        self._add_to(self._block(0) + 12, -nfree)
        self._add_to(self._local(cpu), nfree)
        if nfree < self.target_free:
            self._shrink(0, self.target_free - nfree, cpu)

    def _local_pop_free(self, cpu: int) -> int:
        if not self.local_free_count(cpu):
            return 0
        self._add_to(self._local(cpu), -1)
        return self._take_slot()

    def _local_add_pending(self, cpu: int, nid: int, h: int) -> None:
        self._set(self._elem(nid) + 4, h)
        self._set_cpu(nid, cpu)
        self._set_type(nid, LOCAL_PENDING)
        self._clear_ref(nid)
        self._add(nid, self.pending(cpu))

    def _local_pop_pending(self, cpu: int) -> int:
        head = self.pending(cpu)
        for force in (False, True):
            node = self.prev(head)
            steps = 0
            while node != head and steps < self.walk_limit:
                if (force or not self.ref(node)) and self.m.lru_delete_node(node):
                    self._del(node)
                    return node
                node = self.prev(node)
                steps += 1
        return 0

    def _common_pop_free(self, h: int) -> int:
        cpu = self.m.kernel.cpu % self.ncpus
        node = self._local_pop_free(cpu)
        if not node:
            self._pop_free_to_local(cpu)
            node = self._local_pop_free(cpu)
        if node:
            self._local_add_pending(cpu, node, h)
            return node
        first = steal = self._get(self._local(cpu) + 4)
        while True:
            node = self._local_pop_free(steal) or self._local_pop_pending(steal)
            steal = (steal + 1) % self.ncpus
            if node or steal == first:
                break
        self._set(self._local(cpu) + 4, steal)
        if node:
            self._local_add_pending(cpu, node, h)
        return node

    def _percpu_pop_free(self, h: int) -> int:
        li = self.m.kernel.cpu % self.ncpus
        self._rotate(li)
        if not self.free_count(li):
            self._shrink(li, PERCPU_FREE_TARGET, None)
        if not self.free_count(li):
            return 0
        self._add_to(self._block(li) + 12, -1)
        node = self._take_slot()
        self._set(self._elem(node) + 4, h)
        self._set_cpu(node, li)
        self._clear_ref(node)
        self._set_type(node, INACTIVE)
        self._count_inc(li, INACTIVE)
        self._add(node, self.head(li, INACTIVE))
        return node

    # -- what hashtab.c calls -----------------------------------------------------------------------------
    def pop_free(self, h: int) -> int:
        """``bpf_lru_pop_free``: a node for a new element with hash ``h`` (evicting elements when
        none is free), or 0."""
        return self._percpu_pop_free(h) if self.percpu else self._common_pop_free(h)

    def push_free(self, nid: int) -> None:
        """``bpf_lru_push_free``: node ``nid`` (already out of the hash table) is free again."""
        if self.percpu:
            self._move(self.cpu(nid), nid, FREE)
            return
        if self.type(nid) == LOCAL_PENDING:
            cpu = self.cpu(nid)
            self._set_type(nid, LOCAL_FREE)
            self._clear_ref(nid)
            self._del(nid)
            self._add_to(self._local(cpu), 1)
            self._give_slot(nid)
            return
        self._move(0, nid, FREE)

    # -- introspection (tests, debugging) -----------------------------------------------------------------
    def lists(self) -> dict[str, list[int]]:
        """Every list's node ids, most recent first, by name (``active``, ``inactive``,
        ``pending<cpu>`` or ``active<cpu>``/``inactive<cpu>``), and the free counts."""
        out: dict[str, list[int]] = {}
        if self.percpu:
            for cpu in range(self.ncpus):
                out[f"active{cpu}"] = self.members(self.head(cpu, ACTIVE))
                out[f"inactive{cpu}"] = self.members(self.head(cpu, INACTIVE))
                out[f"free{cpu}"] = [self.free_count(cpu)]
        else:
            out["active"] = self.members(self.head(0, ACTIVE))
            out["inactive"] = self.members(self.head(0, INACTIVE))
            out["free"] = [self.free_count(0)]
            for cpu in range(self.ncpus):
                out[f"pending{cpu}"] = self.members(self.pending(cpu))
                out[f"local_free{cpu}"] = [self.local_free_count(cpu)]
        return out

    def in_use(self) -> int:
        """Elements in the hash table (the map's count word)."""
        return self._get(OFF_COUNT)
