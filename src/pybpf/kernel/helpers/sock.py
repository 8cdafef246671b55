"""Socket helpers (net/core/filter.c, net/core/bpf_sk_storage.c): lookups, references, socket storage.

pybpf's runtime owns no sockets: a run's ``skb->sk`` is NULL and there is no socket table a tuple
could match. So a lookup answers as Linux does when no socket matches the tuple — NULL — after the
same argument checks (tuple size, ``netns_id``, flags), and the helpers that take a socket pointer
only ever see one they cannot get from pybpf: they answer for NULL as the kernel does and refuse
anything else with a :class:`~pybpf.errors.HelperError` (never a crash). The verifier still tracks
the references these helpers hand out (``acquire``/``release``), so a program's reference handling
is checked exactly as on Linux even though every lookup misses at run time.
"""

from __future__ import annotations

import errno
from typing import Any

from pybpf.errors import HelperError
from pybpf.uapi import HelperId

__all__ = ["HELPERS", "SK_TUPLE_IPV4", "SK_TUPLE_IPV6", "sk_lookup_family"]

AF_INET, AF_INET6 = 2, 10
SK_TUPLE_IPV4 = 12
"""``sizeof(tuple->ipv4)``: saddr, daddr (4 bytes each), sport, dport (2 each)."""
SK_TUPLE_IPV6 = 36
"""``sizeof(tuple->ipv6)``: saddr, daddr (16 bytes each), sport, dport."""
S32_MAX = 0x7FFFFFFF
BPF_SK_STORAGE_GET_F_CREATE = 1
_M32 = 0xFFFFFFFF


def sk_lookup_family(length: int, netns_id: int, flags: int) -> int | None:
    """``__bpf_skc_lookup``'s argument checks: the address family a tuple of ``length`` bytes names,
    or None when the lookup is not even attempted (an odd size, flags, a ``netns_id`` that is
    neither negative as an s32 — "the caller's namespace" — nor a valid id <= S32_MAX). Either way
    the result is NULL; the checks only decide whether the kernel would search at all."""
    length &= _M32
    if length == SK_TUPLE_IPV4:
        family = AF_INET
    elif length == SK_TUPLE_IPV6:
        family = AF_INET6
    else:
        return None
    netns_id &= (1 << 64) - 1
    ns32 = netns_id & _M32
    if flags or not (ns32 & 0x80000000 or netns_id <= S32_MAX):
        return None
    return family


def _lookup(ctx: Any, r2: int, r3: int, r4: int, r5: int) -> int:
    family = sk_lookup_family(r3, r4, r5)
    if family is not None:
        ctx.read(r2, r3 & _M32)  # the kernel reads the tuple: a bad pointer faults here as there
    return 0  # no socket in pybpf matches any tuple


def sk_lookup_tcp(ctx: Any, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """``bpf_sk_lookup_tcp(ctx, tuple, len, netns_id, flags)``: a full TCP socket, or NULL."""
    return _lookup(ctx, r2, r3, r4, r5)


def sk_lookup_udp(ctx: Any, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """``bpf_sk_lookup_udp``: a UDP socket, or NULL."""
    return _lookup(ctx, r2, r3, r4, r5)


def skc_lookup_tcp(ctx: Any, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """``bpf_skc_lookup_tcp``: any TCP socket (request and timewait ones too), or NULL."""
    return _lookup(ctx, r2, r3, r4, r5)


def _no_socket(ctx: Any, name: str, ptr: int) -> HelperError:
    return HelperError(f"{name}: {ptr:#x} is not a socket pybpf knows (pybpf runs have no sockets)", pc=ctx.pc)


def sk_release(ctx: Any, r1: int, *_: int) -> int:
    """``bpf_sk_release``: drop a looked-up socket's reference; always 0."""
    if r1:
        raise _no_socket(ctx, "bpf_sk_release", r1)
    return 0


def sk_fullsock(ctx: Any, r1: int, *_: int) -> int:
    """``bpf_sk_fullsock``: the socket itself when it is a full socket, else NULL."""
    if r1:
        raise _no_socket(ctx, "bpf_sk_fullsock", r1)
    return 0


def tcp_sock(ctx: Any, r1: int, *_: int) -> int:
    """``bpf_tcp_sock``: the socket as ``struct bpf_tcp_sock`` when it is a full TCP socket, else NULL."""
    if r1:
        raise _no_socket(ctx, "bpf_tcp_sock", r1)
    return 0


def sk_storage_get(ctx: Any, r1: int, r2: int, r3: int, r4: int, *_: int) -> int:
    """``bpf_sk_storage_get(map, sk, value, flags)``: NULL for a NULL socket or flags above
    ``BPF_SK_STORAGE_GET_F_CREATE``, as the kernel answers before touching any storage."""
    if not r2 or r4 > BPF_SK_STORAGE_GET_F_CREATE:
        return 0
    raise _no_socket(ctx, "bpf_sk_storage_get", r2)


def sk_storage_delete(ctx: Any, r1: int, r2: int, *_: int) -> int:
    """``bpf_sk_storage_delete(map, sk)``: -EINVAL for a NULL socket."""
    if not r2:
        return -errno.EINVAL
    raise _no_socket(ctx, "bpf_sk_storage_delete", r2)


HELPERS: dict[int, Any] = {
    HelperId.sk_lookup_tcp: sk_lookup_tcp,
    HelperId.sk_lookup_udp: sk_lookup_udp,
    HelperId.skc_lookup_tcp: skc_lookup_tcp,
    HelperId.sk_release: sk_release,
    HelperId.sk_fullsock: sk_fullsock,
    HelperId.tcp_sock: tcp_sock,
    HelperId.sk_storage_get: sk_storage_get,
    HelperId.sk_storage_delete: sk_storage_delete,
}
