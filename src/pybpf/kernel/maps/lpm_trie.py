"""LPM_TRIE: longest-prefix-match trie (kernel/bpf/lpm_trie.c).

Keys are ``struct bpf_lpm_trie_key_u8``: a u32 ``prefixlen`` then ``data_size = key_size - 4`` bytes
compared most significant bit first. The trie is the kernel's: every node holds a prefix; a node
that exists only to join two subtrees is *intermediate* (flag ``IM``) and never matches.

Storage: a pool of ``2 * max_entries`` node slots at ``data_off`` (entries plus at most one
intermediate node per entry), allocated from a free list (``free_head``, then ``bump``); the root
is ``head`` (slot + 1); ``count`` is the number of real entries. Node layout::

    +0  u32 child[0]   slot + 1
    +4  u32 child[1]
    +8  u32 prefixlen
    +12 u32 flags      bit 0 intermediate, bit 1 in use
    +16 data           round_up(data_size, 8) bytes
    +16+D value        round_up(value_size, 8) bytes
"""

from __future__ import annotations

import errno
import struct

from pybpf.errors import BpfError
from pybpf.kernel.maps.base import (
    EXIST,
    F_ACCESS_MASK,
    F_NO_PREALLOC,
    F_NUMA_NODE,
    HEADER_SIZE,
    KMALLOC_MAX_SIZE,
    NOEXIST,
    OFF_BUMP,
    OFF_COUNT,
    OFF_FREE_HEAD,
    OFF_HEAD,
    Map,
    MapAttrs,
    access_flags_ok,
    round_up,
)
from pybpf.uapi import MapType

__all__ = ["LpmTrieMap"]

LPM_DATA_SIZE_MAX = 256
LPM_DATA_SIZE_MIN = 1
LPM_NODE_STRUCT = 24  # sizeof(struct lpm_trie_node) before data, x86-64
LPM_VAL_SIZE_MAX = KMALLOC_MAX_SIZE - LPM_DATA_SIZE_MAX - LPM_NODE_STRUCT
LPM_VAL_SIZE_MIN = 1
LPM_KEY_SIZE_MAX = 4 + LPM_DATA_SIZE_MAX
LPM_KEY_SIZE_MIN = 4 + LPM_DATA_SIZE_MIN
LPM_CREATE_FLAG_MASK = F_NO_PREALLOC | F_NUMA_NODE | F_ACCESS_MASK
NODE_HEADER = 16
FL_IM, FL_USED = 1, 2
_NODE = struct.Struct("<IIII")


def _bit(data: bytes, index: int) -> int:
    """``extract_bit``: bit ``index`` counting from the most significant bit of byte 0."""
    return (data[index // 8] >> (7 - index % 8)) & 1


def _match_len(a: bytes, b: bytes, limit: int) -> int:
    """Number of leading bits ``a`` and ``b`` share, at most ``limit``."""
    n = 0
    for x, y in zip(a, b, strict=False):
        d = x ^ y
        if d:
            n += 8 - d.bit_length()
            return min(n, limit)
        n += 8
        if n >= limit:
            return limit
    return min(n, limit)


class LpmTrieMap(Map):
    """BPF_MAP_TYPE_LPM_TRIE."""

    map_types = (MapType.LPM_TRIE,)
    has_lookup_batch = True
    has_update_batch = True
    has_delete_batch = True

    @classmethod
    def alloc_check(cls, a: MapAttrs, kernel: object) -> None:
        if (a.max_entries == 0 or not a.map_flags & F_NO_PREALLOC or a.map_flags & ~LPM_CREATE_FLAG_MASK
                or not access_flags_ok(a.map_flags)
                or a.key_size < LPM_KEY_SIZE_MIN or a.key_size > LPM_KEY_SIZE_MAX
                or a.value_size < LPM_VAL_SIZE_MIN or a.value_size > LPM_VAL_SIZE_MAX):
            raise BpfError(errno.EINVAL)
        if a.max_entries * (NODE_HEADER + a.key_size + a.value_size) * 2 > 1 << 34:
            raise BpfError(errno.ENOMEM)

    @classmethod
    def layout(cls, a: MapAttrs, ncpus: int) -> tuple[int, int, int, int, int]:
        data_size = a.key_size - 4
        elem = NODE_HEADER + round_up(data_size, 8) + round_up(a.value_size, 8)
        data_off = round_up(HEADER_SIZE, 64)
        return elem, 0, data_off, 0, data_off + elem * 2 * a.max_entries

    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.data_size = self.key_size - 4
        self.max_prefixlen = self.data_size * 8
        self.val_off = NODE_HEADER + round_up(self.data_size, 8)
        self.pool = 2 * self.max_entries

    # -- nodes -----------------------------------------------------------------------------------
    def node(self, s: int) -> int:
        return self.data_off + (s - 1) * self.elem_size

    def _get(self, s: int) -> tuple[int, int, int, int, bytes]:
        n = self.node(s)
        c0, c1, plen, flags = _NODE.unpack_from(self.mem, n)
        return c0, c1, plen, flags, bytes(self.mem[n + NODE_HEADER:n + NODE_HEADER + self.data_size])

    def _set_child(self, s: int, which: int, child: int) -> None:
        self._set_u32(self.node(s) + 4 * which, child)

    def _alloc(self, plen: int, data: bytes, flags: int, value: bytes | None) -> int:
        head = self._u32(OFF_FREE_HEAD)
        if head:
            self._set_u32(OFF_FREE_HEAD, self._u32(self.node(head)))
            s = head
        else:
            bump = self._u32(OFF_BUMP)
            if bump >= self.pool:
                return 0
            self._set_u32(OFF_BUMP, bump + 1)
            s = bump + 1
        n = self.node(s)
        self.mem[n:n + NODE_HEADER] = _NODE.pack(0, 0, plen, flags | FL_USED)
        self.mem[n + NODE_HEADER:n + NODE_HEADER + self.data_size] = data[:self.data_size]
        if value is not None:
            self.mem[n + self.val_off:n + self.val_off + self.value_size] = value[:self.value_size]
        return s

    def _free(self, s: int) -> None:
        n = self.node(s)
        self.mem[n:n + NODE_HEADER] = _NODE.pack(self._u32(OFF_FREE_HEAD), 0, 0, 0)
        self._set_u32(OFF_FREE_HEAD, s)

    def _split_key(self, key: bytes) -> tuple[int, bytes]:
        plen = int.from_bytes(key[:4], "little")
        return plen, bytes(key[4:4 + self.data_size]).ljust(self.data_size, b"\0")

    # -- program side ------------------------------------------------------------------------------
    def lookup_elem(self, key: bytes, *, from_prog: bool = True) -> int | None:
        plen, data = self._split_key(key)
        if plen > self.max_prefixlen:
            return None
        found = 0
        s = self._u32(OFF_HEAD)
        steps = 0
        while s and steps <= self.pool:
            c0, c1, nplen, flags, ndata = self._get(s)
            m = _match_len(ndata, data, min(nplen, plen))
            if m == self.max_prefixlen:
                found = s
                break
            if m < nplen:
                break
            if not flags & FL_IM:
                found = s
            s = c1 if _bit(data, nplen) else c0
            steps += 1
        if not found:
            return None
        return self.node(found) + self.val_off

    def update_elem(self, key: bytes, value: bytes, flags: int, *, from_prog: bool = False) -> int:
        if flags > EXIST:
            return -errno.EINVAL
        plen, data = self._split_key(key)
        if plen > self.max_prefixlen:
            return -errno.EINVAL
        self.lock()
        try:
            return self._update(plen, data, value, flags)
        finally:
            self.unlock()

    def _check_add(self, flags: int) -> int:
        if flags == EXIST:
            return -errno.ENOENT
        count = self._u32(OFF_COUNT)
        if count == self.max_entries:
            return -errno.ENOSPC
        self._set_u32(OFF_COUNT, count + 1)
        return 0

    def _update(self, plen: int, data: bytes, value: bytes, flags: int) -> int:
        # slot: (parent slot or 0 for root, which child)
        parent, which = 0, 0
        s = self._u32(OFF_HEAD)
        matchlen = 0
        while s:
            c0, c1, nplen, nflags, ndata = self._get(s)
            matchlen = _match_len(ndata, data, min(nplen, plen))
            if nplen != matchlen or nplen == plen or nplen == self.max_prefixlen:
                break
            nb = _bit(data, nplen)
            parent, which = s, nb
            s = c1 if nb else c0

        def assign(child: int) -> None:
            if parent:
                self._set_child(parent, which, child)
            else:
                self._set_u32(OFF_HEAD, child)

        if not s:
            err = self._check_add(flags)
            if err:
                return err
            new = self._alloc(plen, data, 0, value)
            if not new:
                self._set_u32(OFF_COUNT, self._u32(OFF_COUNT) - 1)
                return -errno.ENOMEM
            assign(new)
            return 0
        c0, c1, nplen, nflags, ndata = self._get(s)
        if nplen == matchlen:
            if not nflags & FL_IM:
                if flags == NOEXIST:
                    return -errno.EEXIST
            else:
                err = self._check_add(flags)
                if err:
                    return err
            # replace in place: same prefix, now a real entry with the new value
            n = self.node(s)
            self._set_u32(n + 12, FL_USED)
            self.mem[n + NODE_HEADER:n + NODE_HEADER + self.data_size] = data
            self.mem[n + self.val_off:n + self.val_off + self.value_size] = value[:self.value_size]
            return 0
        err = self._check_add(flags)
        if err:
            return err
        new = self._alloc(plen, data, 0, value)
        if not new:
            self._set_u32(OFF_COUNT, self._u32(OFF_COUNT) - 1)
            return -errno.ENOMEM
        if matchlen == plen:
            self._set_child(new, _bit(ndata, matchlen), s)
            assign(new)
            return 0
        im = self._alloc(matchlen, ndata, FL_IM, None)
        if not im:
            self._free(new)
            self._set_u32(OFF_COUNT, self._u32(OFF_COUNT) - 1)
            return -errno.ENOMEM
        if _bit(data, matchlen):
            self._set_child(im, 0, s)
            self._set_child(im, 1, new)
        else:
            self._set_child(im, 0, new)
            self._set_child(im, 1, s)
        assign(im)
        return 0

    def delete_elem(self, key: bytes) -> int:
        plen, data = self._split_key(key)
        if plen > self.max_prefixlen:
            return -errno.EINVAL
        self.lock()
        try:
            return self._delete(plen, data)
        finally:
            self.unlock()

    def _delete(self, plen: int, data: bytes) -> int:
        # (slot-holder, which) pairs: trim = where the node hangs, trim2 = where its parent hangs
        trim: tuple[int, int] = (0, 0)
        trim2: tuple[int, int] = (0, 0)
        parent = 0
        s = self._u32(OFF_HEAD)
        matchlen = 0
        while s:
            c0, c1, nplen, nflags, ndata = self._get(s)
            matchlen = _match_len(ndata, data, min(nplen, plen))
            if nplen != matchlen or nplen == plen:
                break
            parent = s
            trim2 = trim
            nb = _bit(data, nplen)
            trim = (s, nb)
            s = c1 if nb else c0
        if not s:
            return -errno.ENOENT
        c0, c1, nplen, nflags, _ = self._get(s)
        if nplen != plen or nplen != matchlen or nflags & FL_IM:
            return -errno.ENOENT
        self._set_u32(OFF_COUNT, self._u32(OFF_COUNT) - 1)

        def put(at: tuple[int, int], child: int) -> None:
            holder, which = at
            if holder:
                self._set_child(holder, which, child)
            else:
                self._set_u32(OFF_HEAD, child)

        if c0 and c1:
            self._set_u32(self.node(s) + 12, FL_USED | FL_IM)
            return 0
        if parent:
            p0, p1, _pl, pflags, _ = self._get(parent)
            if pflags & FL_IM and not c0 and not c1:
                put(trim2, p1 if p0 == s else p0)
                self._free(parent)
                self._free(s)
                return 0
        put(trim, c0 or c1)
        self._free(s)
        return 0

    # -- syscall side ---------------------------------------------------------------------------
    def get_next_key(self, key: bytes | None) -> bytes:
        root = self._u32(OFF_HEAD)
        if not root:
            raise BpfError(errno.ENOENT)

        def leftmost(start: int) -> int:
            nxt = 0
            s = start
            while s:
                c0, c1, _p, fl, _d = self._get(s)
                if fl & FL_IM:
                    s = c0
                else:
                    nxt = s
                    s = c0 or c1
            return nxt

        def out(s: int) -> bytes:
            _c0, _c1, p, _fl, d = self._get(s)
            return p.to_bytes(4, "little") + d

        if key is None:
            return out(leftmost(root))
        plen, data = self._split_key(key)
        if plen > self.max_prefixlen:
            return out(leftmost(root))
        stack: list[int] = []
        s = root
        matchlen = 0
        while s:
            stack.append(s)
            c0, c1, nplen, _fl, ndata = self._get(s)
            matchlen = _match_len(ndata, data, min(nplen, plen))
            if nplen != matchlen or nplen == plen:
                break
            s = c1 if _bit(data, nplen) else c0
        if not s:
            return out(leftmost(root))
        _c0, _c1, nplen, fl, _d = self._get(s)
        if nplen != matchlen or fl & FL_IM:
            return out(leftmost(root))
        node = stack[-1]
        i = len(stack) - 1
        while i > 0:
            par = stack[i - 1]
            p0, p1, _pp, pfl, _pd = self._get(par)
            if p0 == node and p1:
                return out(leftmost(p1))
            if not pfl & FL_IM:
                return out(par)
            node = par
            i -= 1
        raise BpfError(errno.ENOENT)

    def count(self) -> int:
        return self._u32(OFF_COUNT)


MAP_CLASSES = (LpmTrieMap,)
