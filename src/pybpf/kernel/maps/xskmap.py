"""XSKMAP (net/xdp/xskmap.c): AF_XDP sockets by queue, for ``bpf_redirect_map`` from XDP.

A slot holds an AF_XDP socket; programs look slots up (``struct bpf_xdp_sock *`` or NULL) and
redirect to them. pybpf has no AF_XDP sockets (frames never leave the process through one), so
every slot stays empty: an update must name an AF_XDP socket and is refused as Linux refuses any
other descriptor (EBADF for no open file, ENOTSOCK for a file that is not a socket, EOPNOTSUPP for
a socket of another family — and, honestly, for an AF_XDP socket too, which pybpf cannot drive).
Lookups from programs give NULL, ``bpf_redirect_map`` falls back to the flags' action, user-space
lookups are not an operation of the type (EOPNOTSUPP), deletes succeed on any index in range.

Storage: ``max_entries`` 8-byte slots at ``data_off`` (0 = empty), so the inline lookup the
verifier emits (``xsk_map_gen_lookup``'s shape: bounds check, scale by 8, load the slot) reads
NULL from memory like any other engine path.
"""

from __future__ import annotations

import errno
import os
import stat

from pybpf.errors import BpfError
from pybpf.isa import Insn
from pybpf.kernel.maps.base import EXIST, F_NUMA_NODE, F_RDONLY, F_WRONLY, HEADER_SIZE, Map, MapAttrs, round_up
from pybpf.uapi import MapType

__all__ = ["XskMap", "sockfd_check"]

XSK_CREATE_FLAG_MASK = F_NUMA_NODE | F_RDONLY | F_WRONLY
DATA_ALIGN = 64


def sockfd_check(fd: int) -> None:
    """``sockfd_lookup``: EBADF unless ``fd`` is an open file of this process, ENOTSOCK unless it is
    a socket."""
    try:
        st = os.fstat(fd)
    except (OSError, OverflowError, ValueError):
        raise BpfError(errno.EBADF) from None
    if not stat.S_ISSOCK(st.st_mode):
        raise BpfError(errno.ENOTSOCK)


class XskMap(Map):
    """BPF_MAP_TYPE_XSKMAP."""

    map_types = (MapType.XSKMAP,)

    @classmethod
    def alloc_check(cls, attrs: MapAttrs, kernel: object) -> None:
        a = attrs
        if a.max_entries == 0 or a.key_size != 4 or a.value_size != 4 or a.map_flags & ~XSK_CREATE_FLAG_MASK:
            raise BpfError(errno.EINVAL)

    @classmethod
    def layout(cls, a: MapAttrs, ncpus: int) -> tuple[int, int, int, int, int]:
        data_off = round_up(HEADER_SIZE, DATA_ALIGN)
        return 8, 0, data_off, 0, data_off + 8 * a.max_entries

    def gen_lookup(self) -> list[Insn] | None:
        return [
            Insn(0x61, dst=0, src=2, off=0),  # r0 = *(u32 *)(r2 + 0)
            Insn(0x36, dst=0, off=5, imm=self.max_entries),  # if w0 >= max_entries goto +5
            Insn(0x67, dst=0, imm=3),  # r0 <<= 3
            Insn(0x07, dst=1, imm=self.data_off),  # r1 += data_off
            Insn(0x0F, dst=0, src=1),  # r0 += r1
            Insn(0x79, dst=0, src=0, off=0),  # r0 = *(u64 *)(r0 + 0)
            Insn(0x05, off=1),  # goto +1
            Insn(0xB7, dst=0, imm=0),  # r0 = 0
        ]

    def _slot(self, key: bytes) -> int:
        return int.from_bytes(key[:4], "little")

    def lookup_elem(self, key: bytes, *, from_prog: bool = True) -> int | None:
        """``__xsk_map_lookup_elem``: no slot ever holds a socket in pybpf."""
        return None

    def lookup_elem_sys(self, key: bytes, flags: int = 0) -> bytes:
        raise BpfError(errno.EOPNOTSUPP)

    def update_elem_sys(self, key: bytes, value: bytes, flags: int) -> None:
        if flags > EXIST:
            raise BpfError(errno.EINVAL)
        if self._slot(key) >= self.max_entries:
            raise BpfError(errno.E2BIG)
        sockfd_check(int.from_bytes(value[:4], "little"))
        raise BpfError(errno.EOPNOTSUPP)  # not PF_XDP (pybpf cannot drive AF_XDP sockets either)

    def update_elem(self, key: bytes, value: bytes, flags: int, *, from_prog: bool = False) -> int:
        return -errno.EINVAL

    def delete_elem(self, key: bytes) -> int:
        i = self._slot(key)
        if i >= self.max_entries:
            return -errno.EINVAL
        off = self.data_off + 8 * i
        self.mem[off:off + 8] = bytes(8)
        return 0

    def get_next_key(self, key: bytes | None) -> bytes:
        index = self._slot(key) if key is not None else 0xFFFFFFFF
        if index >= self.max_entries:
            return bytes(4)
        if index == self.max_entries - 1:
            raise BpfError(errno.ENOENT)
        return (index + 1).to_bytes(4, "little")


MAP_CLASSES = (XskMap,)
