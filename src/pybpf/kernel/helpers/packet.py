"""Packet helpers (net/core/filter.c): XDP head/tail/meta adjustment, redirects, checksums, skb
loads and stores.

They act on the run's :class:`~pybpf.kernel.runenv.XdpState` / ``SkbState`` (``ctx.env``) and then
re-publish the packet window and the context's pointer fields, as the kernel's helpers move
``xdp->data`` / ``skb->data``. Checksum arithmetic is the kernel's ones'-complement arithmetic on
values as they sit in memory (little-endian loads of big-endian fields), as on x86.
"""

from __future__ import annotations

import errno
import struct
from typing import Any

from pybpf.errors import ENOTSUPP
from pybpf.kernel.helpers.maps import map_arg
from pybpf.kernel.runenv import ETH_HLEN, INT_MAX, PAGE_SIZE, XDP_FRAME_SIZE, RunEnv, metalen_invalid
from pybpf.uapi import HelperId, MapType, ProgType

__all__ = ["HELPERS", "csum_diff_value", "csum_fold", "redirect_map"]

XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT = 0, 1, 2, 3, 4
TC_ACT_SHOT, TC_ACT_REDIRECT = 2, 7
BPF_F_INGRESS = 1
BPF_F_BROADCAST = 1 << 3
BPF_F_EXCLUDE_INGRESS = 1 << 4
BPF_F_RECOMPUTE_CSUM, BPF_F_INVALIDATE_HASH = 1, 2
BPF_F_HDR_FIELD_MASK = 0xF
BPF_F_PSEUDO_HDR, BPF_F_MARK_MANGLED_0, BPF_F_MARK_ENFORCE, BPF_F_IPV6 = 1 << 4, 1 << 5, 1 << 6, 1 << 7
CSUM_MANGLED_0 = 0xFFFF
_M32 = 0xFFFFFFFF


def _s32(v: int) -> int:
    v &= _M32
    return v - (1 << 32) if v & 0x80000000 else v


def _env(ctx: Any) -> RunEnv:
    return ctx.env  # type: ignore[no-any-return]


# -- checksum arithmetic (include/net/checksum.h, arch/x86/lib/csum-partial_64.c) -----------------

def csum_add(a: int, b: int) -> int:
    """``csum_add``: ones'-complement addition of two 32-bit partial sums."""
    s = (a & _M32) + (b & _M32)
    return (s & _M32) + (s >> 32)


def csum_sub(a: int, b: int) -> int:
    """``csum_sub``: ``csum_add`` of the complement."""
    return csum_add(a, ~b & _M32)


def csum_fold(csum: int) -> int:
    """``csum_fold``: a 32-bit partial sum folded to the 16-bit checksum (complemented)."""
    s = csum & _M32
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def csum16_add(csum: int, addend: int) -> int:
    """Ones'-complement addition of 16-bit values (the incremental updates of RFC 1624)."""
    s = (csum & 0xFFFF) + (addend & 0xFFFF)
    return (s + (s >> 16)) & 0xFFFF


def csum_partial(data: bytes, seed: int) -> int:
    """x86-64 ``csum_partial`` on a 4-byte multiple: 32-bit little-endian words, end-around carry."""
    s = seed & _M32
    for (w,) in struct.iter_unpack("<I", data):
        s += w
    while s >> 32:
        s = (s & _M32) + (s >> 32)
    return s


def csum_diff_value(frm: bytes, to: bytes, seed: int) -> int:
    """What ``bpf_csum_diff`` returns in Linux 6.12: ``csum_partial`` over the complemented ``frm`` words then the
    ``to`` words, unfolded."""
    words = [(~w) & _M32 for (w,) in struct.iter_unpack("<I", frm)] + [w for (w,) in struct.iter_unpack("<I", to)]
    return csum_partial(struct.pack(f"<{len(words)}I", *words), seed)


# -- XDP --------------------------------------------------------------------------------------------

def xdp_adjust_head(ctx: Any, r1: int, r2: int, *_: int) -> int:
    """``bpf_xdp_adjust_head``: move ``data`` (and the metadata with it); at least 14 bytes stay and the xdp_frame room
    stays free."""
    x = _env(ctx).xdp
    if x is None:
        return -errno.EINVAL
    offset = _s32(r2)
    metalen = x.data - x.data_meta
    data_start = XDP_FRAME_SIZE + metalen
    data = x.data + offset
    if data < data_start or data > x.data_end - ETH_HLEN:
        return -errno.EINVAL
    if metalen:
        x.buf[x.data_meta + offset:x.data_meta + offset + metalen] = x.buf[x.data_meta:x.data]
    x.data_meta += offset
    x.data = data
    x.sync()
    return 0


def xdp_adjust_tail(ctx: Any, r1: int, r2: int, *_: int) -> int:
    """``bpf_xdp_adjust_tail``: move ``data_end`` within the page (grown bytes zeroed); with fragments, shrink from the
    last fragment or grow it within its page (``bpf_xdp_frags_shrink_tail`` / ``_increase_tail``)."""
    x = _env(ctx).xdp
    if x is None:
        return -errno.EINVAL
    offset = _s32(r2)
    if x.frags:
        if offset < 0:
            if -offset > x.data_end - x.data + len(x.frags) - ETH_HLEN:
                return -errno.EINVAL
            cut = min(-offset, len(x.frags))
            x.frags = x.frags[:len(x.frags) - cut]
            offset += cut
            if not x.frags and offset:
                x.data_end += offset
                x.sync()
            return 0
        # bpf_xdp_frags_increase_tail: only within the last fragment's page (fragments are whole
        # pages but the last, as test runs and generic XDP fill them)
        last = len(x.frags) - PAGE_SIZE * ((len(x.frags) - 1) // PAGE_SIZE)
        if offset > PAGE_SIZE - last:
            return -errno.EINVAL
        x.frags += bytes(offset)
        return 0
    data_end = x.data_end + offset
    if data_end > x.hard_end:
        return -errno.EINVAL
    if data_end < x.data + ETH_HLEN:
        return -errno.EINVAL
    if offset > 0:
        x.buf[x.data_end:data_end] = bytes(offset)
    x.data_end = data_end
    x.sync()
    return 0


def xdp_adjust_meta(ctx: Any, r1: int, r2: int, *_: int) -> int:
    """``bpf_xdp_adjust_meta``: move ``data_meta``; EACCES for a length ``xdp_metalen_invalid`` refuses."""
    x = _env(ctx).xdp
    if x is None:
        return -errno.EINVAL
    offset = _s32(r2)
    meta = x.data_meta + offset
    metalen = x.data - meta
    if meta < XDP_FRAME_SIZE or meta > x.data:
        return -errno.EINVAL
    if metalen_invalid(metalen):
        return -errno.EACCES
    x.data_meta = meta
    x.sync()
    return 0


def xdp_get_buff_len(ctx: Any, r1: int, *_: int) -> int:
    """``bpf_xdp_get_buff_len``: linear part plus fragments."""
    x = _env(ctx).xdp
    return 0 if x is None else x.data_end - x.data + len(x.frags)


# -- redirects ------------------------------------------------------------------------------------

def redirect(ctx: Any, r1: int, r2: int, *_: int) -> int:
    """``bpf_redirect``: the XDP flavour (``bpf_xdp_redirect``) or the tc one, by program type."""
    env = _env(ctx)
    ri = env.ri
    if env.prog_type == ProgType.XDP:
        if r2:
            return XDP_ABORTED
        ri.tgt_index, ri.map_id, ri.map_type = r1 & _M32, INT_MAX, MapType.UNSPEC
        return XDP_REDIRECT
    if r2 & ~BPF_F_INGRESS:
        return TC_ACT_SHOT
    ri.flags, ri.tgt_index = r2, r1 & _M32
    return TC_ACT_REDIRECT


def redirect_map(ctx: Any, r1: int, r2: int, r3: int, *_: int) -> int:
    """``bpf_redirect_map`` (``__bpf_xdp_redirect_map``): the low flag bits are the verdict when the
    key has no entry."""
    m = map_arg(ctx, r1)
    ri = _env(ctx).ri
    action_mask = XDP_ABORTED | XDP_DROP | XDP_PASS | XDP_TX
    flag_mask = BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS if m.map_type in (MapType.DEVMAP, MapType.DEVMAP_HASH) else 0
    if r3 & ~(action_mask | flag_mask):
        return XDP_ABORTED
    key = r2 & _M32
    if m.map_type in (MapType.DEVMAP, MapType.DEVMAP_HASH):
        found = m.ifindex_at(key) is not None  # type: ignore[attr-defined]
    else:
        found = m.lookup_elem(key.to_bytes(max(m.key_size, 4), "little")[:m.key_size]) is not None
    if not found and not r3 & BPF_F_BROADCAST:
        ri.map_id, ri.map_type = INT_MAX, MapType.UNSPEC
        return r3 & action_mask
    ri.tgt_index, ri.map_id, ri.map_type = key, m.id, m.map_type
    if r3 & BPF_F_BROADCAST:
        ri.map, ri.flags = m, r3
    else:
        ri.map, ri.flags = None, 0
    return XDP_REDIRECT


# -- checksums ---------------------------------------------------------------------------------------

def csum_diff(ctx: Any, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """``bpf_csum_diff`` (Linux 6.12: sizes in whole words, at most 512 bytes together, the unfolded sum)."""
    from_size, to_size = r2 & _M32, r4 & _M32
    if (from_size | to_size) & 3 or from_size + to_size > 512:
        return -errno.EINVAL
    frm = ctx.read(r1, from_size) if from_size else b""
    to = ctx.read(r3, to_size) if to_size else b""
    return csum_diff_value(frm, to, r5)


CHECKSUM_COMPLETE = 2


def csum_update(ctx: Any, r1: int, r2: int, *_: int) -> int:
    """``bpf_csum_update(skb, csum)``: add ``csum`` to ``skb->csum`` when the skb carries a complete
    checksum and return the new sum; -ENOTSUPP otherwise (test-run skbs are CHECKSUM_NONE)."""
    env = _env(ctx)
    if env.skb is None or env.skb_ip_summed != CHECKSUM_COMPLETE:
        return -ENOTSUPP
    env.skb_csum = csum_add(env.skb_csum, r2 & _M32)
    return env.skb_csum


def _skb_csum_ptr(ctx: Any, offset: int) -> int | None:
    s = _env(ctx).skb
    if s is None or offset > 0xFFFF or offset & 1 or offset + 2 > s.len:
        return None
    return s.data + offset


def l3_csum_replace(ctx: Any, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """``bpf_l3_csum_replace``: incremental update of the 16-bit checksum at ``offset`` of the skb."""
    flags, offset = r5, r2 & _M32
    if flags & ~BPF_F_HDR_FIELD_MASK:
        return -errno.EINVAL
    if offset > 0xFFFF or offset & 1:
        return -errno.EFAULT
    pos = _skb_csum_ptr(ctx, offset)
    if pos is None:
        return -errno.EFAULT
    s = _env(ctx).skb
    assert s is not None
    cur = int.from_bytes(s.buf[pos:pos + 2], "little")
    kind = flags & BPF_F_HDR_FIELD_MASK
    if kind == 0:
        if r3:
            return -errno.EINVAL
        new = csum_fold(csum_add(r4 & _M32, ~cur & 0xFFFF))
    elif kind == 2:
        new = ~csum16_add(csum16_add(~cur & 0xFFFF, ~r3 & 0xFFFF), r4 & 0xFFFF) & 0xFFFF
    elif kind == 4:
        tmp = csum_sub(~cur & 0xFFFF, r3 & _M32)
        new = csum_fold(csum_add(tmp, r4 & _M32))
    else:
        return -errno.EINVAL
    s.buf[pos:pos + 2] = new.to_bytes(2, "little")
    return 0


def l4_csum_replace(ctx: Any, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """``bpf_l4_csum_replace``: like l3, with the pseudo-header and mangled-zero rules of UDP/TCP."""
    flags, offset = r5, r2 & _M32
    if flags & ~(BPF_F_MARK_MANGLED_0 | BPF_F_MARK_ENFORCE | BPF_F_PSEUDO_HDR | BPF_F_HDR_FIELD_MASK | BPF_F_IPV6):
        return -errno.EINVAL
    if offset > 0xFFFF or offset & 1:
        return -errno.EFAULT
    pos = _skb_csum_ptr(ctx, offset)
    if pos is None:
        return -errno.EFAULT
    s = _env(ctx).skb
    assert s is not None
    cur = int.from_bytes(s.buf[pos:pos + 2], "little")
    if flags & BPF_F_MARK_MANGLED_0 and not flags & BPF_F_MARK_ENFORCE and not cur:
        return 0
    kind = flags & BPF_F_HDR_FIELD_MASK
    # test-run skbs are CHECKSUM_NONE: inet_proto_csum_replace* update the field in place
    if kind == 0:
        if r3:
            return -errno.EINVAL
        new = csum_fold(csum_add(r4 & _M32, ~cur & 0xFFFF))
    elif kind in (2, 4):
        frm, to = (r3 & 0xFFFF, r4 & 0xFFFF) if kind == 2 else (r3 & _M32, r4 & _M32)
        diff = struct.pack("<II", ~frm & _M32, to)
        new = csum_fold(csum_partial(diff, ~cur & 0xFFFF))
    else:
        return -errno.EINVAL
    if flags & BPF_F_MARK_MANGLED_0 and not new:
        new = CSUM_MANGLED_0
    s.buf[pos:pos + 2] = new.to_bytes(2, "little")
    return 0


# -- skb loads and stores ---------------------------------------------------------------------------

def skb_load_bytes(ctx: Any, r1: int, r2: int, r3: int, r4: int, *_: int) -> int:
    """``bpf_skb_load_bytes``: copy from the linear packet; on error the buffer is zeroed and -EFAULT returned."""
    env = _env(ctx)
    offset, n = r2 & _M32, r4 & _M32
    if env.xdp is not None:  # bpf_xdp_load_bytes shares the shape (xdp programs use id 189)
        return -errno.EFAULT
    s = env.skb
    if s is None or offset > INT_MAX or offset + n > s.len:
        ctx.write(r3, bytes(n))
        return -errno.EFAULT
    ctx.write(r3, bytes(s.buf[s.data + offset:s.data + offset + n]))
    return 0


def skb_store_bytes(ctx: Any, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """``bpf_skb_store_bytes``: write into the linear packet; ``BPF_F_INVALIDATE_HASH`` clears
    ``skb->hash`` (``BPF_F_RECOMPUTE_CSUM`` has nothing to update on an skb without CHECKSUM_COMPLETE)."""
    s = _env(ctx).skb
    offset, n = r2 & _M32, r4 & _M32
    if r5 & ~(BPF_F_RECOMPUTE_CSUM | BPF_F_INVALIDATE_HASH):
        return -errno.EINVAL
    if offset > INT_MAX:
        return -errno.EFAULT
    if s is None or offset + n > s.len:
        return -errno.EFAULT
    data = ctx.read(r3, n)
    s.buf[s.data + offset:s.data + offset + n] = data
    if r5 & BPF_F_INVALIDATE_HASH:
        s.set_field("hash", 0)
    return 0


def xdp_load_bytes(ctx: Any, r1: int, r2: int, r3: int, r4: int, *_: int) -> int:
    """``bpf_xdp_load_bytes``: copy from the frame, fragments included."""
    x = _env(ctx).xdp
    offset, n = r2 & _M32, r4 & _M32
    if x is None:
        return -errno.EINVAL
    whole = bytes(x.buf[x.data:x.data_end]) + x.frags
    if offset + n > len(whole):
        return -errno.EINVAL
    ctx.write(r3, whole[offset:offset + n])
    return 0


def xdp_store_bytes(ctx: Any, r1: int, r2: int, r3: int, r4: int, *_: int) -> int:
    """``bpf_xdp_store_bytes``: write into the frame, fragments included."""
    x = _env(ctx).xdp
    offset, n = r2 & _M32, r4 & _M32
    if x is None:
        return -errno.EINVAL
    linear = x.data_end - x.data
    if offset + n > linear + len(x.frags):
        return -errno.EINVAL
    data = ctx.read(r3, n)
    for i, b in enumerate(data):
        pos = offset + i
        if pos < linear:
            x.buf[x.data + pos] = b
        else:
            fr = bytearray(x.frags)
            fr[pos - linear] = b
            x.frags = bytes(fr)
    return 0


HELPERS: dict[int, Any] = {
    HelperId.xdp_adjust_head: xdp_adjust_head,
    HelperId.xdp_adjust_tail: xdp_adjust_tail,
    HelperId.xdp_adjust_meta: xdp_adjust_meta,
    HelperId.xdp_get_buff_len: xdp_get_buff_len,
    HelperId.xdp_load_bytes: xdp_load_bytes,
    HelperId.xdp_store_bytes: xdp_store_bytes,
    HelperId.redirect: redirect,
    HelperId.redirect_map: redirect_map,
    HelperId.csum_diff: csum_diff,
    HelperId.csum_update: csum_update,
    HelperId.l3_csum_replace: l3_csum_replace,
    HelperId.l4_csum_replace: l4_csum_replace,
    HelperId.skb_load_bytes: skb_load_bytes,
    HelperId.skb_store_bytes: skb_store_bytes,
}
