"""LPM_TRIE lookups (``kernel/maps/lpm_trie.py``, the kernel's ``trie_lookup_elem``) in machine code.

The key is ``{u32 prefixlen; u8 data[data_size]}``; the walk starts at the root (``head``), at each
node counts the leading bits the node's prefix shares with the key (8 bytes at a time: byte-swap to
big-endian, xor, ``bsr``), stops on a full match or a node the key leaves, remembers the last real
(non-intermediate) node it passed, and descends by the key's next bit — the kernel layer's Python
walk, step for step. Keys of up to 8 data bytes (IPv4, /64 IPv6 prefixes) keep their data in one
register for the whole walk.

Updates and deletes reshape the trie under the map lock exactly as the Python code does — a new
leaf, an in-place replacement, a new node above an existing one, or an intermediate node joining
two; a delete that leaves an intermediate parent with one child removes the parent too — and take
nodes from the same free list and bump pointer.

Functions (System V): ``trie_lookup(map, key)`` — the value address or 0; ``trie_update(map, key,
value, flags)`` and ``trie_delete(map, key)`` — 0 or a negative errno.
"""

from __future__ import annotations

from pybpf.jit.native.asm import Asm, bsr
from pybpf.jit.native.common import emit_slot_address, round8
from pybpf.jit.native.layout import LPM_FL_IM, Hdr, Lpm
from pybpf.jit.x86 import encoder as x
from pybpf.jit.x86.encoder import (
    R8,
    R9,
    R10,
    R11,
    R13,
    R14,
    R15,
    RAX,
    RBP,
    RBX,
    RCX,
    RDI,
    RDX,
    RSI,
    Cond,
    Mem,
)

__all__ = ["emit_lpm"]

A = x.AluOp
SAVED = (RBX, RBP, R13, R14, R15)


def emit_lpm(a: Asm) -> None:
    _match(a)
    _lookup(a)
    emit_lpm_writers(a)


def _match(a: Asm) -> None:
    """``lpm_match``: eax = leading bits shared by the key data at [rbp] and the node data at
    [r13 + DATA], at most ecx (``longest_prefix_match`` with the limit). r9d = data size. Clobbers
    rax, rcx, rsi, rdi; keeps every other register."""
    a.func("lpm_match")
    loop, partial, have, limit, done = (a.new() for _ in range(5))
    a.push(RDX, R9, R10, R11)
    a(x.mov_rr(R11, RCX))  # the limit
    a.zero(RDX)  # byte offset
    a.at(loop)
    a(x.mov_rr(RAX, RDX, 32))
    a(x.shift_ri(x.ShiftOp.SHL, RAX, 3, 32), x.alu_rr(A.CMP, RAX, R11, 32))
    a.jcc(Cond.AE, limit)
    a(x.mov_rr(RAX, R9, 32), x.alu_rr(A.SUB, RAX, RDX, 32), x.alu_ri(A.CMP, RAX, 8, 32))
    a.jcc(Cond.B, partial)
    a(x.mov_load(RAX, Mem(RBP, 0, RDX)))
    a.jmp(have)
    a.at(partial)
    a(x.lea(RSI, Mem(RBP, 0, RDX)), x.push(R9), x.mov_rr(R9, RAX, 32))
    a.call("load_partial")  # clobbers rax, rcx, r10
    a(x.pop(R9))
    a.at(have)
    a(x.mov_load(RDI, Mem(R13, Lpm.DATA, RDX)))
    a(x.bswap(RAX), x.bswap(RDI), x.alu_rr(A.XOR, RDI, RAX))
    nonzero = a.new()
    a.jcc(Cond.NE, nonzero)
    a(x.alu_ri(A.ADD, RDX, 8, 32))
    a.jmp(loop)
    a.at(nonzero)
    a(bsr(RDI, RDI))
    a(x.mov_rr(RAX, RDX, 32), x.shift_ri(x.ShiftOp.SHL, RAX, 3, 32), x.alu_ri(A.ADD, RAX, 63, 32))
    a(x.alu_rr(A.SUB, RAX, RDI, 32))
    a(x.alu_rr(A.CMP, RAX, R11, 32))
    a.jcc(Cond.BE, done)
    a.at(limit)
    a(x.mov_rr(RAX, R11, 32))
    a.at(done)
    a.pop(R11, R10, R9, RDX)
    a(x.ret())


def _lookup(a: Asm) -> None:
    a.func("trie_lookup")
    out, none, loop, end, full_match, skip, wide, fast_key, key_done = (a.new() for _ in range(9))
    a.push(*SAVED)
    a.ld32(R9, RDI, Hdr.KEY_SIZE)
    a(x.alu_ri(A.SUB, R9, 4, 32))  # data size
    a(x.lea(RBP, Mem(RSI, 4)))  # key data
    # the key's first 8 data bytes, big-endian, in rbp when they are all of it
    a(x.alu_ri(A.CMP, R9, 8, 32))
    a.jcc(Cond.A, wide)
    a.jcc(Cond.E, fast_key)
    a(x.push(RSI), x.mov_rr(RSI, RBP))
    a.call("load_partial")
    a(x.pop(RSI))
    a.jmp(key_done)
    a.at(fast_key)
    a.ld64(RAX, RBP)
    a.at(key_done)
    a(x.bswap(RAX), x.mov_rr(RBP, RAX))
    a.at(wide)
    a.ld32(R8, RSI)  # prefixlen
    a(x.mov_rr(R10, R9, 32))
    a(x.shift_ri(x.ShiftOp.SHL, R10, 3, 32))  # max_prefixlen
    a(x.alu_rr(A.CMP, R8, R10, 32))
    a.jcc(Cond.A, none)
    a.zero(R11)  # found
    a.ld32(RDX, RDI, Hdr.HEAD)
    a.ld32(RBX, RDI, Hdr.MAX_ENTRIES)
    a(x.lea(RBX, Mem(RBX, 1, RBX)))  # steps: the pool (2 * max_entries) + 1
    a.ld64(R14, RDI, Hdr.DATA_OFF)
    a(x.alu_rr(A.ADD, R14, RDI))
    a.ld32(R15, RDI, Hdr.ELEM_SIZE)
    a.push(RDI)  # the map, for the value offset at the end
    a.at(loop)
    a(x.test_rr(RDX, RDX, 32))
    a.jcc(Cond.E, end)
    a(x.test_rr(RBX, RBX))
    a.jcc(Cond.E, end)
    a(x.alu_ri(A.SUB, RBX, 1))
    a(x.lea(RAX, Mem(RDX, -1)), x.mov_rr(RAX, RAX, 32), x.imul_rr(RAX, R15))
    a(x.lea(R13, Mem(R14, 0, RAX)))  # the node
    a.ld32(RAX, R13, Lpm.PREFIXLEN)
    a(x.mov_rr(RCX, RAX, 32), x.alu_rr(A.CMP, RCX, R8, 32))
    lim_ok = a.new()
    a.jcc(Cond.BE, lim_ok)
    a(x.mov_rr(RCX, R8, 32))
    a.at(lim_ok)  # ecx = min(node prefixlen, key prefixlen)
    slow, matched = a.new(), a.new()
    a(x.alu_ri(A.CMP, R9, 8, 32))
    a.jcc(Cond.A, slow)
    a.ld64(RDI, R13, Lpm.DATA)
    a(x.bswap(RDI), x.alu_rr(A.XOR, RDI, RBP))
    a(x.mov_ri(RSI, 64, 32))
    some = a.new()
    a.jcc(Cond.E, some)
    a(bsr(RDI, RDI), x.mov_ri(RSI, 63, 32), x.alu_rr(A.SUB, RSI, RDI, 32))
    a.at(some)
    a(x.alu_rr(A.CMP, RSI, RCX, 32))
    capped = a.new()
    a.jcc(Cond.BE, capped)
    a(x.mov_rr(RSI, RCX, 32))
    a.at(capped)
    a.jmp(matched)
    a.at(slow)
    a(x.push(RAX))
    a.call("lpm_match")
    a(x.mov_rr(RSI, RAX, 32), x.pop(RAX))
    a.at(matched)  # esi = bits matched, eax = the node's prefixlen
    a(x.alu_rr(A.CMP, RSI, R10, 32))
    a.jcc(Cond.E, full_match)
    a(x.alu_rr(A.CMP, RSI, RAX, 32))
    a.jcc(Cond.B, end)
    a(x.test_ri(Mem(R13, Lpm.FLAGS), LPM_FL_IM, 32))
    a.jcc(Cond.NE, skip)
    a(x.mov_rr(R11, RDX, 32))
    a.at(skip)
    # next = child[bit prefixlen of the key]
    a(x.alu_ri(A.CMP, R9, 8, 32))
    wide_bit, have_bit = a.new(), a.new()
    a.jcc(Cond.A, wide_bit)
    a(x.mov_ri(RCX, 63, 32), x.alu_rr(A.SUB, RCX, RAX, 32))
    a(x.mov_rr(RDI, RBP), x.shift_cl(x.ShiftOp.SHR, RDI), x.alu_ri(A.AND, RDI, 1, 32))
    a.jmp(have_bit)
    a.at(wide_bit)
    a(x.mov_rr(RDI, RAX, 32), x.shift_ri(x.ShiftOp.SHR, RDI, 3, 32))
    a(x.movzx(RDI, Mem(RBP, 0, RDI), 8, 32))
    a(x.mov_rr(RCX, RAX, 32), x.alu_ri(A.AND, RCX, 7, 32), x.alu_ri(A.XOR, RCX, 7, 32))
    a(x.shift_cl(x.ShiftOp.SHR, RDI, 32), x.alu_ri(A.AND, RDI, 1, 32))
    a.at(have_bit)
    a.ld32(RDX, R13, Lpm.CHILD0, RDI, 4)
    a.jmp(loop)
    a.at(full_match)
    a(x.mov_rr(R11, RDX, 32))
    a.at(end)
    a(x.pop(RDI))
    a(x.test_rr(R11, R11, 32))
    a.jcc(Cond.E, none)
    a(x.lea(RAX, Mem(R11, -1)), x.mov_rr(RAX, RAX, 32), x.imul_rr(RAX, R15))
    a(x.alu_rr(A.ADD, RAX, R14))
    a(x.mov_rr(RCX, R9, 32))
    round8(a, RCX)
    a(x.lea(RAX, Mem(RAX, Lpm.DATA, RCX)))
    a.jmp(out)
    a.at(none)
    a.zero(RAX)
    a.at(out)
    a.pop(*reversed(SAVED))
    a(x.ret())


# -- updates and deletes ------------------------------------------------------------------------------------
# Both walk from the root keeping the *link* they came through: the address of the u32 (the root
# word in the header, or a parent's child[0]/child[1]) that points at the current node, which is all
# the kernel layer's ``assign``/``put`` need. Locals live on the stack (offsets below, from rsp).
_VALUE, _FLAGS, _LINK, _MATCH, _NEW = 0, 8, 16, 24, 32
_TRIM, _TRIM2, _PARENT = 0, 8, 16
_FRAME = 40
ANY, NOEXIST, EXIST = 0, 1, 2


def emit_lpm_writers(a: Asm) -> None:
    _node(a)
    _bit(a)
    _alloc(a)
    _free(a)
    _update(a)
    _delete(a)


def _node(a: Asm) -> None:
    """``lpm_node``: rax = address of node slot eax (slot + 1) of the trie at rbx. Clobbers rcx."""
    emit_slot_address(a, "lpm_node")


def _bit(a: Asm) -> None:
    """``lpm_bit``: eax = bit eax (most significant first) of the data at [rdi]. Clobbers rcx."""
    a.func("lpm_bit")
    a(x.mov_rr(RCX, RAX, 32), x.shift_ri(x.ShiftOp.SHR, RAX, 3, 32))
    a(x.movzx(RAX, Mem(RDI, 0, RAX), 8, 32))
    a(x.alu_ri(A.AND, RCX, 7, 32), x.alu_ri(A.XOR, RCX, 7, 32))
    a(x.shift_cl(x.ShiftOp.SHR, RAX, 32), x.alu_ri(A.AND, RAX, 1, 32), x.ret())


def _alloc(a: Asm) -> None:
    """``lpm_alloc``: ``_alloc`` — a node from the free list (then the never-used ones) with prefix
    length edx, the data at [rsi], flags r8d (in use added), and the value at [r10] unless r10 is 0;
    eax = its slot + 1, or 0 when the pool is exhausted. Clobbers caller-saved registers but rdx."""
    a.func("lpm_alloc")
    bump, have, done, fail = a.new(), a.new(), a.new(), a.new()
    a.ld32(R11, RBX, Hdr.FREE_HEAD)
    a(x.test_rr(R11, R11, 32))
    a.jcc(Cond.E, bump)
    a(x.mov_rr(RAX, R11, 32))
    a.call("lpm_node")
    a.ld32(RCX, RAX, Lpm.CHILD0)  # a free node's child[0] links the free list
    a.st32(RBX, Hdr.FREE_HEAD, RCX)
    a.jmp(have)
    a.at(bump)
    a.ld32(R11, RBX, Hdr.BUMP)
    a.ld32(RAX, RBX, Hdr.MAX_ENTRIES)
    a(x.alu_rr(A.ADD, RAX, RAX))  # the pool: two nodes per entry (64-bit: no overflow)
    a(x.alu_rr(A.CMP, R11, RAX))
    a.jcc(Cond.AE, fail)
    a(x.alu_ri(A.ADD, R11, 1, 32))
    a.st32(RBX, Hdr.BUMP, R11)
    a.at(have)
    a(x.mov_rr(RAX, R11, 32))
    a.call("lpm_node")
    a(x.mov_rr(RDI, RAX))
    a(x.mov_store_imm(Mem(RDI, Lpm.CHILD0), 0, 64))
    a.st32(RDI, Lpm.PREFIXLEN, RDX)
    a(x.alu_ri(A.OR, R8, 2, 32))  # in use
    a.st32(RDI, Lpm.FLAGS, R8)
    a(x.push(RDI), x.lea(RDI, Mem(RDI, Lpm.DATA)))
    a.ld32(RCX, RBX, Hdr.KEY_SIZE)
    a(x.alu_ri(A.SUB, RCX, 4, 32), x.rep_movsb(), x.pop(RDI))  # the data
    a(x.test_rr(R10, R10))
    a.jcc(Cond.E, done)
    a.ld32(RCX, RBX, Hdr.KEY_SIZE)
    a(x.alu_ri(A.SUB, RCX, 4, 32))
    round8(a, RCX)
    a(x.lea(RDI, Mem(RDI, Lpm.DATA, RCX)), x.mov_rr(RSI, R10))
    a.ld32(RCX, RBX, Hdr.VALUE_SIZE)
    a(x.rep_movsb())
    a.at(done)
    a(x.mov_rr(RAX, R11, 32), x.ret())
    a.at(fail)
    a.ret_imm(0)


def _free(a: Asm) -> None:
    """``lpm_free``: ``_free`` — node eax back on the free list. Clobbers rax, rcx, r11."""
    a.func("lpm_free")
    a(x.mov_rr(R11, RAX, 32))
    a.call("lpm_node")
    a.ld32(RCX, RBX, Hdr.FREE_HEAD)
    a.st32(RAX, Lpm.CHILD0, RCX)
    a(x.mov_store_imm(Mem(RAX, Lpm.CHILD1), 0, 32), x.mov_store_imm(Mem(RAX, Lpm.PREFIXLEN), 0, 64))
    a.st32(RBX, Hdr.FREE_HEAD, R11)
    a(x.ret())


def _enter(a: Asm) -> None:
    a.push(*SAVED)
    a(x.alu_ri(A.SUB, x.RSP, _FRAME))


def _leave(a: Asm) -> None:
    a(x.alu_ri(A.ADD, x.RSP, _FRAME))
    a.pop(*reversed(SAVED))
    a(x.ret())


def _check_key(a: Asm, einval: object) -> None:
    """Before anything: eax = the key's prefixlen; jump to ``einval`` when it is longer than the
    data (rdi = map, rsi = key)."""
    a.ld32(RAX, RSI)
    a.ld32(R9, RDI, Hdr.KEY_SIZE)
    a(x.alu_ri(A.SUB, R9, 4, 32), x.shift_ri(x.ShiftOp.SHL, R9, 3, 32), x.alu_rr(A.CMP, RAX, R9, 32))
    a.jcc(Cond.A, einval)


def _match_here(a: Asm) -> None:
    """eax = bits the key (rbp) and node r13 share, up to min(node prefixlen, r14d); also stored at
    [rsp + _MATCH]. Clobbers rax, rcx, rsi, rdi, r9."""
    lim = a.new()
    a.ld32(RCX, R13, Lpm.PREFIXLEN)
    a(x.alu_rr(A.CMP, RCX, R14, 32))
    a.jcc(Cond.BE, lim)
    a(x.mov_rr(RCX, R14, 32))
    a.at(lim)
    a.ld32(R9, RBX, Hdr.KEY_SIZE)
    a(x.alu_ri(A.SUB, R9, 4, 32))
    a.call("lpm_match")


def _check_add(a: Asm, enoent: object, enospc: object) -> None:
    """``_check_add``: BPF_EXIST cannot add; a full trie is ENOSPC; else count it."""
    a(x.alu_ri(A.CMP, Mem(x.RSP, _FLAGS), EXIST, 64))
    a.jcc(Cond.E, enoent)
    a.ld32(RAX, RBX, Hdr.COUNT)
    a(x.alu_rm(A.CMP, RAX, Mem(RBX, Hdr.MAX_ENTRIES), 32))
    a.jcc(Cond.E, enospc)
    a(x.alu_ri(A.ADD, Mem(RBX, Hdr.COUNT), 1, 32))


def _update(a: Asm) -> None:
    """``trie_update(map, key, value, flags)``: ``LpmTrieMap.update_elem``."""
    from pybpf.jit.native.layout import ERRNO

    a.func("trie_update")
    einval = a.new()
    errs = {e: a.new() for e in (ERRNO.EEXIST, ERRNO.ENOENT, ERRNO.ENOSPC, ERRNO.ENOMEM, ERRNO.EBUSY)}
    loop, stop, empty, same, im_node, replace, split, make_im, success, out, out_unlock, nomem_new = (
        a.new() for _ in range(12))
    a(x.alu_ri(A.CMP, RCX, EXIST))
    a.jcc(Cond.A, einval)
    _check_key(a, einval)
    _enter(a)
    a(x.mov_rr(RBX, RDI), x.lea(RBP, Mem(RSI, 4)), x.mov_rr(R14, RAX, 32))
    a.st64(x.RSP, _VALUE, RDX)
    a.st64(x.RSP, _FLAGS, RCX)
    a(x.lea(RDI, Mem(RBX, Hdr.LOCK)))
    a.call("lock")
    a(x.test_rr(RAX, RAX, 32))
    a.jcc(Cond.NE, errs[ERRNO.EBUSY])
    a(x.lea(RAX, Mem(RBX, Hdr.HEAD)))
    a.st64(x.RSP, _LINK, RAX)
    a.ld32(R15, RBX, Hdr.HEAD)
    a(x.mov_store_imm(Mem(x.RSP, _MATCH), 0, 64))
    a.at(loop)
    a(x.test_rr(R15, R15, 32))
    a.jcc(Cond.E, empty)
    a(x.mov_rr(RAX, R15, 32))
    a.call("lpm_node")
    a(x.mov_rr(R13, RAX))
    _match_here(a)
    a.st32(x.RSP, _MATCH, RAX)
    a.ld32(RDX, R13, Lpm.PREFIXLEN)
    a(x.alu_rr(A.CMP, RDX, RAX, 32))
    a.jcc(Cond.NE, stop)
    a(x.alu_rr(A.CMP, RDX, R14, 32))
    a.jcc(Cond.E, stop)
    a.ld32(RCX, RBX, Hdr.KEY_SIZE)
    a(x.alu_ri(A.SUB, RCX, 4, 32), x.shift_ri(x.ShiftOp.SHL, RCX, 3, 32), x.alu_rr(A.CMP, RDX, RCX, 32))
    a.jcc(Cond.E, stop)
    a(x.mov_rr(RAX, RDX, 32), x.mov_rr(RDI, RBP))
    a.call("lpm_bit")
    a(x.lea(RCX, Mem(R13, Lpm.CHILD0, RAX, 4)))
    a.st64(x.RSP, _LINK, RCX)
    a.ld32(R15, RCX)
    a.jmp(loop)

    a.at(empty)  # no node where the key goes: a new leaf there
    _check_add(a, errs[ERRNO.ENOENT], errs[ERRNO.ENOSPC])
    a(x.mov_rr(RDX, R14, 32), x.mov_rr(RSI, RBP))
    a.zero(R8)
    a.ld64(R10, x.RSP, _VALUE)
    a.call("lpm_alloc")
    a(x.test_rr(RAX, RAX, 32))
    a.jcc(Cond.E, nomem_new)
    a.ld64(RCX, x.RSP, _LINK)
    a.st32(RCX, 0, RAX)
    a.jmp(success)

    a.at(stop)  # r13 = the node the walk stopped at, edx = its prefixlen
    a(x.alu_rm(A.CMP, RDX, Mem(x.RSP, _MATCH), 32))
    a.jcc(Cond.NE, split)
    a.at(same)
    a(x.test_ri(Mem(R13, Lpm.FLAGS), 1, 32))
    a.jcc(Cond.NE, im_node)
    a(x.alu_ri(A.CMP, Mem(x.RSP, _FLAGS), NOEXIST, 64))
    a.jcc(Cond.E, errs[ERRNO.EEXIST])
    a.jmp(replace)
    a.at(im_node)
    _check_add(a, errs[ERRNO.ENOENT], errs[ERRNO.ENOSPC])
    a.at(replace)  # the same prefix: becomes (or stays) a real entry with the new value
    a(x.mov_store_imm(Mem(R13, Lpm.FLAGS), 2, 32))
    a(x.lea(RDI, Mem(R13, Lpm.DATA)), x.mov_rr(RSI, RBP))
    a.ld32(RCX, RBX, Hdr.KEY_SIZE)
    a(x.alu_ri(A.SUB, RCX, 4, 32), x.rep_movsb())
    a.ld32(RCX, RBX, Hdr.KEY_SIZE)
    a(x.alu_ri(A.SUB, RCX, 4, 32))
    round8(a, RCX)
    a(x.lea(RDI, Mem(R13, Lpm.DATA, RCX)))
    a.ld64(RSI, x.RSP, _VALUE)
    a.ld32(RCX, RBX, Hdr.VALUE_SIZE)
    a(x.rep_movsb())
    a.jmp(success)

    a.at(split)
    _check_add(a, errs[ERRNO.ENOENT], errs[ERRNO.ENOSPC])
    a(x.mov_rr(RDX, R14, 32), x.mov_rr(RSI, RBP))
    a.zero(R8)
    a.ld64(R10, x.RSP, _VALUE)
    a.call("lpm_alloc")
    a(x.test_rr(RAX, RAX, 32))
    a.jcc(Cond.E, nomem_new)
    a.st32(x.RSP, _NEW, RAX)
    a(x.alu_rm(A.CMP, R14, Mem(x.RSP, _MATCH), 32))
    a.jcc(Cond.NE, make_im)
    # the key is a prefix of the node: the new node takes it as a child
    a.ld32(RAX, x.RSP, _MATCH)
    a(x.lea(RDI, Mem(R13, Lpm.DATA)))
    a.call("lpm_bit")
    a(x.mov_rr(RDX, RAX, 32))
    a.ld32(RAX, x.RSP, _NEW)
    a.call("lpm_node")
    a(x.mov_store(Mem(RAX, Lpm.CHILD0, RDX, 4), R15, 32))
    a.ld32(RAX, x.RSP, _NEW)
    a.ld64(RCX, x.RSP, _LINK)
    a.st32(RCX, 0, RAX)
    a.jmp(success)
    a.at(make_im)  # an intermediate node joins the two at the bits they share
    a.ld32(RDX, x.RSP, _MATCH)
    a(x.lea(RSI, Mem(R13, Lpm.DATA)), x.mov_ri(R8, 1, 32))
    a.zero(R10)
    a.call("lpm_alloc")
    a(x.test_rr(RAX, RAX, 32))
    im_ok = a.new()
    a.jcc(Cond.NE, im_ok)
    a.ld32(RAX, x.RSP, _NEW)
    a.call("lpm_free")
    a.jmp(nomem_new)
    a.at(im_ok)
    a(x.mov_rr(R13, RAX, 32))  # r13 = the intermediate node's slot
    a.ld32(RAX, x.RSP, _MATCH)
    a(x.mov_rr(RDI, RBP))
    a.call("lpm_bit")
    a(x.mov_rr(RDX, RAX, 32))
    a(x.mov_rr(RAX, R13, 32))
    a.call("lpm_node")
    a.ld32(RCX, x.RSP, _NEW)
    new_right = a.new()
    a(x.test_rr(RDX, RDX, 32))
    a.jcc(Cond.NE, new_right)
    a.st32(RAX, Lpm.CHILD0, RCX)
    a.st32(RAX, Lpm.CHILD1, R15)
    im_linked = a.new()
    a.jmp(im_linked)
    a.at(new_right)
    a.st32(RAX, Lpm.CHILD0, R15)
    a.st32(RAX, Lpm.CHILD1, RCX)
    a.at(im_linked)
    a.ld64(RCX, x.RSP, _LINK)
    a.st32(RCX, 0, R13)

    a.at(success)
    a.zero(RAX)
    a.at(out_unlock)
    a(x.mov_store_imm(Mem(RBX, Hdr.LOCK), 0, 32))
    a.at(out)
    _leave(a)
    a.at(nomem_new)  # the count taken back
    a(x.alu_ri(A.SUB, Mem(RBX, Hdr.COUNT), 1, 32))
    a(x.mov_ri(RAX, -int(ERRNO.ENOMEM), 64))
    a.jmp(out_unlock)
    for err, label in errs.items():
        a.at(label)
        a(x.mov_ri(RAX, -int(err), 64))
        a.jmp(out if err == ERRNO.EBUSY else out_unlock)
    a.at(einval)
    a.ret_imm(-int(ERRNO.EINVAL))


def _delete(a: Asm) -> None:
    """``trie_delete(map, key)``: ``LpmTrieMap.delete_elem``."""
    from pybpf.jit.native.layout import ERRNO

    a.func("trie_delete")
    einval, enoent, busy, loop, stop, success, out, out_unlock, single = (a.new() for _ in range(9))
    _check_key(a, einval)
    _enter(a)
    a(x.mov_rr(RBX, RDI), x.lea(RBP, Mem(RSI, 4)), x.mov_rr(R14, RAX, 32))
    a(x.lea(RDI, Mem(RBX, Hdr.LOCK)))
    a.call("lock")
    a(x.test_rr(RAX, RAX, 32))
    a.jcc(Cond.NE, busy)
    a(x.lea(RAX, Mem(RBX, Hdr.HEAD)))
    a.st64(x.RSP, _TRIM, RAX)
    a.st64(x.RSP, _TRIM2, RAX)
    a(x.mov_store_imm(Mem(x.RSP, _PARENT), 0, 64))
    a.ld32(R15, RBX, Hdr.HEAD)
    a.at(loop)
    a(x.test_rr(R15, R15, 32))
    a.jcc(Cond.E, enoent)
    a(x.mov_rr(RAX, R15, 32))
    a.call("lpm_node")
    a(x.mov_rr(R13, RAX))
    _match_here(a)
    a(x.mov_rr(R10, RAX, 32))  # the match (lpm_match keeps r10)
    a.ld32(RDX, R13, Lpm.PREFIXLEN)
    a(x.alu_rr(A.CMP, RDX, RAX, 32))
    a.jcc(Cond.NE, stop)
    a(x.alu_rr(A.CMP, RDX, R14, 32))
    a.jcc(Cond.E, stop)
    a.st32(x.RSP, _PARENT, R15)
    a.ld64(RAX, x.RSP, _TRIM)
    a.st64(x.RSP, _TRIM2, RAX)
    a(x.mov_rr(RAX, RDX, 32), x.mov_rr(RDI, RBP))
    a.call("lpm_bit")
    a(x.lea(RCX, Mem(R13, Lpm.CHILD0, RAX, 4)))
    a.st64(x.RSP, _TRIM, RCX)
    a.ld32(R15, RCX)
    a.jmp(loop)
    a.at(stop)  # the node must be exactly the key's prefix and a real entry
    a(x.alu_rr(A.CMP, RDX, R14, 32))
    a.jcc(Cond.NE, enoent)
    a(x.alu_rr(A.CMP, RDX, R10, 32))
    a.jcc(Cond.NE, enoent)
    a(x.test_ri(Mem(R13, Lpm.FLAGS), 1, 32))
    a.jcc(Cond.NE, enoent)
    a(x.alu_ri(A.SUB, Mem(RBX, Hdr.COUNT), 1, 32))
    a.ld32(R8, R13, Lpm.CHILD0)
    a.ld32(R9, R13, Lpm.CHILD1)
    not_both = a.new()
    a(x.test_rr(R8, R8, 32))
    a.jcc(Cond.E, not_both)
    a(x.test_rr(R9, R9, 32))
    a.jcc(Cond.E, not_both)
    a(x.mov_store_imm(Mem(R13, Lpm.FLAGS), 2 | 1, 32))  # two children: it stays, as an intermediate node
    a.jmp(success)
    a.at(not_both)
    a.ld32(RAX, x.RSP, _PARENT)
    a(x.test_rr(RAX, RAX, 32))
    a.jcc(Cond.E, single)
    a.call("lpm_node")  # rax = the parent
    a(x.test_ri(Mem(RAX, Lpm.FLAGS), 1, 32))
    a.jcc(Cond.E, single)
    a(x.mov_rr(RCX, R8, 32), x.alu_rr(A.OR, RCX, R9, 32))
    a.jcc(Cond.NE, single)
    # a leaf under an intermediate parent: the parent goes too, its other child takes its place
    other, put_other = a.new(), a.new()
    a(x.alu_rm(A.CMP, R15, Mem(RAX, Lpm.CHILD0), 32))
    a.jcc(Cond.NE, other)
    a.ld32(RDX, RAX, Lpm.CHILD1)
    a.jmp(put_other)
    a.at(other)
    a.ld32(RDX, RAX, Lpm.CHILD0)
    a.at(put_other)
    a.ld64(RCX, x.RSP, _TRIM2)
    a.st32(RCX, 0, RDX)
    a.ld32(RAX, x.RSP, _PARENT)
    a.call("lpm_free")
    a(x.mov_rr(RAX, R15, 32))
    a.call("lpm_free")
    a.jmp(success)
    a.at(single)  # at most one child: it takes the node's place
    a(x.mov_rr(RDX, R8, 32), x.test_rr(RDX, RDX, 32))
    has = a.new()
    a.jcc(Cond.NE, has)
    a(x.mov_rr(RDX, R9, 32))
    a.at(has)
    a.ld64(RCX, x.RSP, _TRIM)
    a.st32(RCX, 0, RDX)
    a(x.mov_rr(RAX, R15, 32))
    a.call("lpm_free")
    a.at(success)
    a.zero(RAX)
    a.at(out_unlock)
    a(x.mov_store_imm(Mem(RBX, Hdr.LOCK), 0, 32))
    a.at(out)
    _leave(a)
    a.at(enoent)
    a(x.mov_ri(RAX, -int(ERRNO.ENOENT), 64))
    a.jmp(out_unlock)
    a.at(busy)
    a(x.mov_ri(RAX, -int(ERRNO.EBUSY), 64))
    a.jmp(out)
    a.at(einval)
    a.ret_imm(-int(ERRNO.EINVAL))
