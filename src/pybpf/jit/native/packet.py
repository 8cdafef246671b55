"""Packet helpers natively: XDP head/tail/meta adjustment, redirects, the legacy packet loader.

The XDP helpers work on the runtime context itself (``xdp_buff``, :data:`pybpf.progtypes.XDP_RUNTIME`
— the offsets come from that layout, contract 4): they move ``data`` / ``data_meta`` /
``data_end`` with the bounds of ``net/core/filter.c`` as the kernel layer's Python helpers apply
them — the headroom stops ``sizeof(struct xdp_frame)`` (40) after ``data_hard_start``, the tailroom
``SKB_SHARED_INFO`` (320) before ``data_hard_start + frame_sz``, at least an Ethernet header stays,
metadata is a multiple of 4 of at most 32 bytes and moves with ``data``. Frames with a non-linear
part are the Python helpers' (the run environment binds those instead).

Redirects record their decision in the env block (``RI_*``, with a bit per field written) for the
run environment to copy into the kernel layer's ``bpf_redirect_info`` after the run.

Functions (System V): ``xdp_adjust_head(ctx, delta)``, ``xdp_adjust_tail``, ``xdp_adjust_meta``,
``redirect_xdp(ifindex, flags)``, ``redirect_tc(ifindex, flags)``, ``redirect_map(map, key,
flags)``, and ``skb_load(ctx, offset, size)``: the packet loader of LD_ABS / LD_IND.
"""

from __future__ import annotations

from pybpf.jit.native.asm import Asm
from pybpf.jit.native.layout import ENV, ERRNO, NO_OFFSET, EnvField, Hdr, RiWritten
from pybpf.jit.x86 import encoder as x
from pybpf.jit.x86.encoder import R8, R9, R10, R11, R12, RAX, RCX, RDI, RDX, RSI, RSP, Cond, Mem
from pybpf.progtypes import XDP_RUNTIME
from pybpf.uapi import MapType

__all__ = ["ETH_HLEN", "SKB_SHARED_INFO", "XDP_FRAME_SIZE", "emit_packet"]

A = x.AluOp
XDP_FRAME_SIZE = 40  # sizeof(struct xdp_frame)
SKB_SHARED_INFO = 320  # SKB_DATA_ALIGN(sizeof(struct skb_shared_info)), x86-64
ETH_HLEN = 14
XDP_META_MAX = 255  # xdp_metalen_invalid: type_max(skb_shared_info.meta_len), a u8
XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT = 0, 1, 2, 3, 4
TC_ACT_SHOT, TC_ACT_REDIRECT = 2, 7
BPF_F_INGRESS, BPF_F_BROADCAST, BPF_F_EXCLUDE_INGRESS = 1, 1 << 3, 1 << 4
INT_MAX = 0x7FFF_FFFF
SKF_NET_OFF, SKF_LL_OFF = -0x100000, -0x200000
DEVMAP, DEVMAP_HASH = int(MapType.DEVMAP), int(MapType.DEVMAP_HASH)
ALL_WRITTEN = sum(int(b) for b in RiWritten)

_F = XDP_RUNTIME.fields
DATA, DATA_END, DATA_META = _F["data"].offset, _F["data_end"].offset, _F["data_meta"].offset
HARD_START, FRAME_SZ = _F["data_hard_start"].offset, _F["frame_sz"].offset


def emit_packet(a: Asm) -> None:
    _adjust_head(a)
    _adjust_tail(a)
    _adjust_meta(a)
    _redirect(a)
    _redirect_map(a)
    _skb_load(a)


def _delta(a: Asm) -> None:
    """rsi = the helper's int delta, sign-extended."""
    a(x.movsx(RSI, RSI, 32, 64))


def _adjust_head(a: Asm) -> None:
    a.func("xdp_adjust_head")
    einval, copy_up, copy_down, moved = (a.new() for _ in range(4))
    _delta(a)
    a.ld64(R8, RDI, DATA)
    a.ld64(R9, RDI, DATA_META)
    a(x.mov_rr(R10, R8), x.alu_rr(A.SUB, R10, R9))  # metalen
    a.ld64(RAX, RDI, HARD_START)
    a(x.lea(RAX, Mem(RAX, XDP_FRAME_SIZE, R10)))  # data_start
    a(x.lea(R11, Mem(R8, 0, RSI)))  # the new data
    a(x.alu_rr(A.CMP, R11, RAX))
    a.jcc(Cond.B, einval)
    a.ld64(RAX, RDI, DATA_END)
    a(x.alu_ri(A.SUB, RAX, ETH_HLEN), x.alu_rr(A.CMP, R11, RAX))
    a.jcc(Cond.A, einval)
    # move the metadata with data: memmove(data_meta + delta, data_meta, metalen)
    a(x.test_rr(R10, R10))
    a.jcc(Cond.E, moved)
    a(x.test_rr(RSI, RSI))
    a.jcc(Cond.G, copy_down)
    a.at(copy_up)  # delta < 0: destination below the source, copy forwards
    a(x.mov_rr(RCX, R10), x.mov_rr(RDX, R9))
    loop_up = a.new()
    a.at(loop_up)
    a(x.movzx(RAX, Mem(RDX, 0), 8, 32), x.mov_store(Mem(RDX, 0, RSI), RAX, 8))
    a(x.alu_ri(A.ADD, RDX, 1), x.alu_ri(A.SUB, RCX, 1))
    a.jcc(Cond.NE, loop_up)
    a.jmp(moved)
    a.at(copy_down)  # delta > 0: copy backwards
    a(x.mov_rr(RCX, R10))
    loop_down = a.new()
    a.at(loop_down)
    a(x.movzx(RAX, Mem(R9, -1, RCX), 8, 32))
    a(x.lea(RDX, Mem(R9, 0, RSI)), x.mov_store(Mem(RDX, -1, RCX), RAX, 8))
    a(x.alu_ri(A.SUB, RCX, 1))
    a.jcc(Cond.NE, loop_down)
    a.at(moved)
    a(x.alu_rr(A.ADD, R9, RSI))
    a.st64(RDI, DATA_META, R9)
    a.st64(RDI, DATA, R11)
    a.ret_imm(0)
    a.at(einval)
    a.ret_imm(-int(ERRNO.EINVAL))


def _adjust_tail(a: Asm) -> None:
    a.func("xdp_adjust_tail")
    einval, done = a.new(), a.new()
    _delta(a)
    a.ld64(R8, RDI, DATA_END)
    a(x.lea(R9, Mem(R8, 0, RSI)))  # the new data_end
    a.ld64(RAX, RDI, HARD_START)
    a.ld32(RCX, RDI, FRAME_SZ)
    a(x.lea(RAX, Mem(RAX, -SKB_SHARED_INFO, RCX)))  # xdp_data_hard_end
    a(x.alu_rr(A.CMP, R9, RAX))
    a.jcc(Cond.A, einval)
    a.ld64(RAX, RDI, DATA)
    a(x.alu_ri(A.ADD, RAX, ETH_HLEN), x.alu_rr(A.CMP, R9, RAX))
    a.jcc(Cond.B, einval)
    a(x.test_rr(RSI, RSI))
    a.jcc(Cond.LE, done)
    a(x.push(RDI), x.mov_rr(RDI, R8), x.mov_rr(RCX, RSI))  # zero the grown tail
    a.zero(RAX)
    a(x.rep_stosb(), x.pop(RDI))
    a.at(done)
    a.st64(RDI, DATA_END, R9)
    a.ret_imm(0)
    a.at(einval)
    a.ret_imm(-int(ERRNO.EINVAL))


def _adjust_meta(a: Asm) -> None:
    a.func("xdp_adjust_meta")
    einval, eacces = a.new(), a.new()
    _delta(a)
    a.ld64(R8, RDI, DATA_META)
    a(x.alu_rr(A.ADD, R8, RSI))  # the new data_meta
    a.ld64(RAX, RDI, HARD_START)
    a(x.alu_ri(A.ADD, RAX, XDP_FRAME_SIZE), x.alu_rr(A.CMP, R8, RAX))
    a.jcc(Cond.B, einval)
    a.ld64(RAX, RDI, DATA)
    a(x.alu_rr(A.CMP, R8, RAX))
    a.jcc(Cond.A, einval)
    a(x.alu_rr(A.SUB, RAX, R8))  # metalen
    a(x.test_ri(RAX, 3, 32))
    a.jcc(Cond.NE, eacces)
    a(x.alu_ri(A.CMP, RAX, XDP_META_MAX))
    a.jcc(Cond.A, eacces)
    a.st64(RDI, DATA_META, R8)
    a.ret_imm(0)
    a.at(einval)
    a.ret_imm(-int(ERRNO.EINVAL))
    a.at(eacces)
    a.ret_imm(-int(ERRNO.EACCES))


def _ri_written(a: Asm, bits: int) -> None:
    a(x.alu_ri(A.OR, Mem(R12, ENV + EnvField.RI_WRITTEN), bits, 32))


def _redirect(a: Asm) -> None:
    a.func("redirect_xdp")  # bpf_xdp_redirect: any flag aborts
    aborted = a.new()
    a(x.test_rr(RSI, RSI))
    a.jcc(Cond.NE, aborted)
    a(x.mov_store(Mem(R12, ENV + EnvField.RI_TGT), RDI, 32))
    a(x.mov_store_imm(Mem(R12, ENV + EnvField.RI_MAP_ID), INT_MAX, 32))
    a(x.mov_store_imm(Mem(R12, ENV + EnvField.RI_MAP_TYPE), 0, 32))
    _ri_written(a, RiWritten.TGT | RiWritten.MAP_ID | RiWritten.MAP_TYPE)
    a.ret_imm(XDP_REDIRECT)
    a.at(aborted)
    a.ret_imm(XDP_ABORTED)

    a.func("redirect_tc")  # bpf_redirect for tc: only BPF_F_INGRESS
    shot = a.new()
    a(x.test_ri(RSI, ~BPF_F_INGRESS))
    a.jcc(Cond.NE, shot)
    a(x.mov_store(Mem(R12, ENV + EnvField.RI_FLAGS), RSI))
    a(x.mov_store(Mem(R12, ENV + EnvField.RI_TGT), RDI, 32))
    _ri_written(a, RiWritten.TGT | RiWritten.FLAGS)
    a.ret_imm(TC_ACT_REDIRECT)
    a.at(shot)
    a.ret_imm(TC_ACT_SHOT)


def _redirect_map(a: Asm) -> None:
    """``__bpf_xdp_redirect_map`` on DEVMAP / DEVMAP_HASH: the low flag bits are the verdict when
    the key has no device; BPF_F_BROADCAST records the map itself."""
    a.func("redirect_map")
    aborted, found, not_found, hashed, check, bcast, done = (a.new() for _ in range(7))
    dev = a.new()
    a(x.mov_ri(RAX, XDP_ABORTED | XDP_DROP | XDP_PASS | XDP_TX, 32))
    a.ld32(RCX, RDI, Hdr.MAP_TYPE)
    a(x.alu_ri(A.CMP, RCX, DEVMAP, 32))
    a.jcc(Cond.E, dev)
    a(x.alu_ri(A.CMP, RCX, DEVMAP_HASH, 32))
    a.jcc(Cond.NE, check)
    a.at(dev)
    a(x.alu_ri(A.OR, RAX, BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS, 32))
    a.at(check)
    a(x.unary(x.UnaryOp.NOT, RAX), x.test_rr(RDX, RAX))
    a.jcc(Cond.NE, aborted)
    a(x.mov_rr(RSI, RSI, 32))  # the key is a u32
    a(x.alu_ri(A.CMP, RCX, DEVMAP_HASH, 32))
    a.jcc(Cond.E, hashed)
    a(x.alu_rm(A.CMP, RSI, Mem(RDI, Hdr.MAX_ENTRIES), 32))
    a.jcc(Cond.AE, not_found)
    a.ld32(RAX, RDI, Hdr.ELEM_SIZE)
    a(x.imul_rr(RAX, RSI), x.alu_rm(A.ADD, RAX, Mem(RDI, Hdr.DATA_OFF)))
    a(x.alu_ri(A.CMP, Mem(RDI, 0, RAX), 0, 32))
    a.jcc(Cond.E, not_found)
    a.jmp(found)
    a.at(hashed)  # __htab_map_lookup_elem with the key on the stack
    a.push(RDI, RSI, RDX, RSI)
    a(x.mov_rr(RSI, RSP))
    a.call("htab_lookup_raw")
    a.pop(RCX, RDX, RSI, RDI)
    a(x.test_rr(RAX, RAX))
    a.jcc(Cond.NE, found)
    a.at(not_found)
    a(x.test_ri(RDX, BPF_F_BROADCAST, 32))
    a.jcc(Cond.NE, found)
    a(x.mov_store_imm(Mem(R12, ENV + EnvField.RI_MAP_ID), INT_MAX, 32))
    a(x.mov_store_imm(Mem(R12, ENV + EnvField.RI_MAP_TYPE), 0, 32))
    _ri_written(a, RiWritten.MAP_ID | RiWritten.MAP_TYPE)
    a(x.mov_rr(RAX, RDX, 32), x.alu_ri(A.AND, RAX, 3, 32), x.ret())
    a.at(found)
    a(x.mov_store(Mem(R12, ENV + EnvField.RI_TGT), RSI, 32))
    a.ld32(RAX, RDI, Hdr.ID)
    a(x.mov_store(Mem(R12, ENV + EnvField.RI_MAP_ID), RAX, 32))
    a.ld32(RAX, RDI, Hdr.MAP_TYPE)
    a(x.mov_store(Mem(R12, ENV + EnvField.RI_MAP_TYPE), RAX, 32))
    a(x.test_ri(RDX, BPF_F_BROADCAST, 32))
    a.jcc(Cond.NE, bcast)
    a(x.mov_store_imm(Mem(R12, ENV + EnvField.RI_MAP), 0, 64))
    a(x.mov_store_imm(Mem(R12, ENV + EnvField.RI_FLAGS), 0, 64))
    a.jmp(done)
    a.at(bcast)
    a(x.mov_store(Mem(R12, ENV + EnvField.RI_MAP), RDI))
    a(x.mov_store(Mem(R12, ENV + EnvField.RI_FLAGS), RDX))
    a.at(done)
    _ri_written(a, ALL_WRITTEN)
    a.ret_imm(XDP_REDIRECT)
    a.at(aborted)
    a.ret_imm(XDP_ABORTED)


def _skb_load(a: Asm) -> None:
    """``u64 skb_load(ctx, offset, size)``: the big-endian value of ``size`` (1, 2, 4) bytes at
    ``offset`` of the packet (negative offsets: SKF_NET_OFF / SKF_LL_OFF, converted as Linux 6.12's
    ``bpf_skb_load_helper_convert_offset``: relative to the network or MAC header, which may precede
    ``data``), or 2**32 when they do not end inside the linear part or the header is missing (LD_ABS
    then makes the program return 0)."""
    a.func("skb_load")
    fail, positive, ll, two, four = (a.new() for _ in range(5))
    a(x.mov_rr(RAX, RSI))
    a(x.test_rr(RAX, RAX))
    a.jcc(Cond.NS, positive)
    a(x.alu_ri(A.CMP, RAX, SKF_NET_OFF))
    a.jcc(Cond.L, ll)
    a.ld64(RCX, R12, ENV + EnvField.SKB_NET_OFF)
    a(x.movabs(R8, NO_OFFSET), x.alu_rr(A.CMP, RCX, R8))
    a.jcc(Cond.E, fail)
    a(x.alu_ri(A.SUB, RAX, SKF_NET_OFF), x.alu_rr(A.ADD, RAX, RCX))
    a.jmp(positive)
    a.at(ll)
    a(x.alu_ri(A.CMP, RAX, SKF_LL_OFF))
    a.jcc(Cond.L, fail)
    a.ld64(RCX, R12, ENV + EnvField.SKB_MAC_OFF)
    a(x.movabs(R8, NO_OFFSET), x.alu_rr(A.CMP, RCX, R8))
    a.jcc(Cond.E, fail)
    a(x.alu_ri(A.SUB, RAX, SKF_LL_OFF), x.alu_rr(A.ADD, RAX, RCX))
    # the converted offset may be negative (a socket filter's MAC header lies before data): Linux
    # reads it from the skb's head, and so do we — only the end is checked
    a.at(positive)
    a.ld64(RCX, R12, ENV + EnvField.SKB_HEADLEN)
    a(x.alu_rr(A.SUB, RCX, RAX), x.alu_rr(A.CMP, RCX, RDX))
    a.jcc(Cond.L, fail)
    a(x.alu_rm(A.ADD, RAX, Mem(R12, ENV + EnvField.SKB_DATA)))
    a(x.alu_ri(A.CMP, RDX, 2))
    a.jcc(Cond.E, two)
    a.jcc(Cond.A, four)
    a(x.movzx(RAX, Mem(RAX, 0), 8, 32), x.ret())
    a.at(two)
    a(x.movzx(RAX, Mem(RAX, 0), 16, 32), x.shift_ri(x.ShiftOp.ROR, RAX, 8, 16), x.movzx(RAX, RAX, 16, 32))
    a(x.ret())
    a.at(four)
    a.ld32(RAX, RAX)
    a(x.bswap(RAX, 32), x.ret())
    a.at(fail)
    a(x.movabs(RAX, 1 << 32), x.ret())

