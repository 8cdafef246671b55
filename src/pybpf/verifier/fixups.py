"""Post-verification rewrites: the program ``bpftool prog dump xlated`` shows and the engines run.

In the kernel's order (``bpf_check`` after ``do_check``):

0. (before the stack-size check) bpf_fastcall spill/fill pairs around inlined calls become nops
   (:func:`pybpf.verifier.fastcall.remove_fastcall_spills_fills`), dropped with the other nops.
1. dead code — privileged: conditional jumps with a never-taken side become ``goto`` (or vanish),
   unreached instructions are removed, ``goto pc+0`` nops dropped (``opt_hard_wire_dead_code_branches``,
   ``opt_remove_dead_code``, ``opt_remove_nops``); unprivileged: unreached instructions become
   ``goto pc-1`` (``sanitize_dead_code``).
2. ``convert_ctx_accesses`` — context loads/stores rewritten to the runtime layout of the program
   type (:meth:`ProgTypeDescriptor.convert_ctx_access`), narrow loads widened then shifted/masked.
3. ``do_misc_fixups`` — division/modulo by a register guarded against zero (and signed division
   by -1, through the hidden register AX = r11 as Linux), ``may_goto`` turned into a counter in a
   hidden stack slot (initialized at the subprogram's entry), ``bpf_get_smp_processor_id`` inlined
   as a per-CPU read (x86-64's form; see :mod:`pybpf.verifier.fastcall`), ``bpf_map_lookup_elem``
   inlined through the map's ``gen_lookup`` (array maps), other map helpers turned into direct
   calls of internal functions (contract 2).
4. ``convert_pseudo_ld_imm64`` — map lddw's keep their ``src`` and hold the map id (contract 1).

Jump offsets are recomputed over every patch, as ``bpf_patch_insn_data``/``bpf_adj_branches`` do:
a jump to a patched instruction lands on the first instruction of its replacement.
"""

from __future__ import annotations

import errno as E
from dataclasses import replace as _replace
from typing import Any

from pybpf.isa import Insn
from pybpf.progtypes import internal
from pybpf.progtypes.types import RegType
from pybpf.uapi import HelperId, MapType
from pybpf.verifier.env import MAX_BPF_STACK, VerifierEnv
from pybpf.verifier.fastcall import inline_get_smp_processor_id, verifier_inlines_helper_call
from pybpf.verifier.log import Msg

__all__ = ["apply_fixups"]

BPF_REG_AX = 11
"""The kernel's hidden scratch register, in rewrites only (every engine gives it a slot)."""

_MAP_OPS = frozenset(int(h) for h in (
    HelperId.map_lookup_elem, HelperId.map_update_elem, HelperId.map_delete_elem, HelperId.map_push_elem,
    HelperId.map_pop_elem, HelperId.map_peek_elem, HelperId.redirect_map, HelperId.for_each_map_elem,
    HelperId.map_lookup_percpu_elem))


class _Item:
    """One instruction of the program being rewritten. ``target`` is the absolute original slot a
    jump/call goes to (kept symbolic until the end); ``orig`` the original slot it came from."""

    __slots__ = ("insn", "orig", "target")

    def __init__(self, insn: Insn, orig: int | None, target: int | None) -> None:
        self.insn = insn
        self.orig = orig
        self.target = target


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >> 31 else v


def _is_cond_jump(code: int) -> bool:
    cls = code & 7
    op = code & 0xF0
    return cls in (5, 6) and op not in (0x00, 0x80, 0x90, 0xE0)


def _target_of(insn: Insn, slot: int) -> int | None:
    code = insn.code
    cls = code & 7
    if code == 0x85 and insn.src == 1:
        return slot + _s32(insn.imm) + 1
    if code == 0x18 and insn.src == 4:
        return slot + _s32(insn.imm_lo) + 1
    if cls in (5, 6) and code & 0xF0 not in (0x80, 0x90):
        if code == 0x06:
            return slot + _s32(insn.imm) + 1
        return slot + insn.off + 1
    return None


def _mov64_imm(dst: int, imm: int) -> Insn:
    return Insn(0xB7, dst, 0, 0, imm)


def _alu_imm(cls: int, op: int, dst: int, imm: int) -> Insn:
    return Insn(cls | op, dst, 0, 0, imm)


def apply_fixups(env: VerifierEnv) -> tuple[list[Insn], list[int]]:
    """Rewrite ``env``'s program; returns the new instructions and each subprogram's new start."""
    items: list[_Item] = []
    for slot, insn in enumerate(env.insns):
        if insn is None:
            continue
        items.append(_Item(insn, slot, _target_of(insn, slot)))
    seen = [a.seen for a in env.aux]
    if env.bpf_capable:
        items = _dead_code(items, seen)
    else:
        for it in items:
            if it.orig is not None and not seen[it.orig]:
                it.insn = Insn(0x05, 0, 0, -1, 0)
                it.target = None
    # Linux inlines bpf_loop before removing dead code; a dead call is gone either way, and the
    # inlined sequence must not be taken for the original instructions by the dead-code pass
    items = _optimize_bpf_loop(env, items)
    items = _convert_ctx(env, items)
    prologues: set[int] = set()
    items = _misc_fixups(env, items, prologues)
    for it in items:
        insn = it.insn
        if insn.code == 0x18 and insn.src in (1, 2, 5, 6) and it.orig is not None:
            aux = env.aux[it.orig]
            m = aux.map_ptr
            mid = getattr(m, "id", aux.map_index) if m is not None else insn.imm_lo
            if insn.src in (1, 5):
                it.insn = insn.replace(src=1 if insn.src == 1 else insn.src, imm=mid)
            else:
                it.insn = insn.replace(imm=(mid & 0xFFFFFFFF) | (aux.map_off << 32))
    return _relink(env, items, prologues)


def _dead_code(items: list[_Item], seen: list[bool]) -> list[_Item]:
    """``opt_hard_wire_dead_code_branches`` + ``opt_remove_dead_code`` + ``opt_remove_nops``."""
    for it in items:
        if it.orig is None or not _is_cond_jump(it.insn.code):
            continue
        i = it.orig
        if i + 1 < len(seen) and not seen[i + 1]:
            it.insn = Insn(0x05, 0, 0, it.insn.off, 0)  # always taken: ja to the target
        elif it.target is not None and it.target < len(seen) and not seen[it.target]:
            it.insn = Insn(0x05, 0, 0, 0, 0)  # never taken: ja 0, a nop
            it.target = i + 1
    out = [it for it in items if it.orig is None or seen[it.orig]]
    while True:
        surviving = sorted(it.orig for it in out if it.orig is not None)

        def resolve(t: int, surviving: list[int] = surviving) -> int | None:
            for o in surviving:
                if o >= t:
                    return o
            return None

        keep: list[_Item] = []
        changed = False
        for k, it in enumerate(out):
            if it.insn.code == 0x05 and it.target is not None:
                nxt = out[k + 1].orig if k + 1 < len(out) else None
                if nxt is not None and resolve(it.target) == nxt:
                    changed = True
                    continue
            keep.append(it)
        out = keep
        if not changed:
            return out


BPF_MAX_LOOPS = 8 * 1024 * 1024
_LOOP_SPILLS = 3 * 8  # r6, r7, r8


def _inline_bpf_loop(stack_base: int) -> list[Insn]:
    """``inline_bpf_loop``: the helper's loop as instructions, r6-r8 spilled at ``stack_base``
    (negative, from r10) and used as limit, counter and context. The callback call is the 13th
    instruction; its target is set by the caller."""
    r6_off, r7_off, r8_off = stack_base, stack_base + 8, stack_base + 16
    return [
        Insn(0xB5, 1, 0, 2, BPF_MAX_LOOPS),  # if r1 <= BPF_MAX_LOOPS goto +2
        Insn(0xB4, 0, 0, 0, -E.E2BIG),  # w0 = -E2BIG
        Insn(0x05, 0, 0, 16, 0),  # goto end
        Insn(0x7B, 10, 6, r6_off, 0),
        Insn(0x7B, 10, 7, r7_off, 0),
        Insn(0x7B, 10, 8, r8_off, 0),
        Insn(0xBF, 6, 1, 0, 0),  # r6 = r1 (limit)
        Insn(0xB4, 7, 0, 0, 0),  # w7 = 0 (counter)
        Insn(0xBF, 8, 3, 0, 0),  # r8 = r3 (callback context)
        Insn(0x3D, 7, 6, 5, 0),  # if r7 >= r6 goto +5
        Insn(0xBF, 1, 7, 0, 0),
        Insn(0xBF, 2, 8, 0, 0),
        Insn(0x85, 0, 1, 0, 0),  # call the callback (pc-relative, set by the caller)
        Insn(0x07, 7, 0, 0, 1),
        Insn(0x15, 0, 0, -6, 0),  # if r0 == 0 goto loop header
        Insn(0xBF, 0, 7, 0, 0),  # r0 = iterations
        Insn(0x79, 6, 10, r6_off, 0),
        Insn(0x79, 7, 10, r7_off, 0),
        Insn(0x79, 8, 10, r8_off, 0),
    ]


def _optimize_bpf_loop(env: VerifierEnv, items: list[_Item]) -> list[_Item]:
    """``optimize_bpf_loop``: every ``bpf_loop`` call whose flags were always zero and whose
    callback was always the same function (``update_loop_inline_state`` during the walk) becomes
    :func:`_inline_bpf_loop`, with three spill slots below the subprogram's stack, whose depth
    grows by them. Where that would take a frame past 512 bytes (Linux allows it; pybpf's engines
    give every frame 512 bytes) the call stays a helper call."""
    subs = env.subprog_info
    starts = [s.start for s in subs]
    extra = [0] * len(subs)
    out: list[_Item] = []
    cur = 0
    for it in items:
        if it.orig is not None:
            while cur + 1 < len(starts) and it.orig >= starts[cur + 1]:
                cur += 1
        insn = it.insn
        state = env.aux[it.orig].loop_inline_state if it.orig is not None else None
        if insn.code == 0x85 and insn.src == 0 and insn.imm == HelperId.loop and state is not None and state[0]:
            depth = subs[cur].stack_depth
            roundup = -depth % 8
            if depth + roundup + _LOOP_SPILLS <= MAX_BPF_STACK:
                extra[cur] = _LOOP_SPILLS + roundup
                seq = _inline_bpf_loop(-(depth + extra[cur]))
                _emit(out, it, seq)
                out[-len(seq) + 12].target = starts[state[1]]
                continue
        out.append(it)
    for s, more in zip(subs, extra, strict=True):
        s.stack_depth += more
    return out


def _convert_ctx(env: VerifierEnv, items: list[_Item]) -> list[_Item]:
    out: list[_Item] = []
    desc = env.desc
    for it in items:
        insn = it.insn
        if it.orig is None:
            out.append(it)
            continue
        code = insn.code
        cls = code & 7
        mode = code & 0xE0
        aux = env.aux[it.orig]
        if not ((cls == 1 and mode in (0x60, 0x80)) or (cls in (2, 3) and mode == 0x60)) or \
                aux.ptr_type != RegType.PTR_TO_CTX:
            out.append(it)
            continue
        size = {0x00: 4, 0x08: 2, 0x10: 1, 0x18: 8}[code & 0x18]
        field = aux.ctx_field_size
        narrow = size < field
        off = insn.off
        access = insn
        conv_size = size
        if narrow:
            size_code = {2: 0x08, 4: 0x00, 8: 0x18}.get(field, 0x08)
            access = Insn(0x01 | 0x60 | size_code, insn.dst, insn.src, off & ~(field - 1), 0, insn.meta)
            conv_size = field
        conv = desc.convert_ctx_access(access, conv_size)
        if conv is None:
            out.append(it)
            continue
        where = desc.runtime_access(access.off, conv_size)
        target_size = where[1] if where else conv_size
        if narrow and size < target_size:
            shift = (off & (field - 1)) * 8
            if field <= 4:
                if shift:
                    conv.append(Insn(0x74, insn.dst, 0, 0, shift))
                conv.append(Insn(0x54, insn.dst, 0, 0, (1 << size * 8) - 1))
            else:
                if shift:
                    conv.append(Insn(0x77, insn.dst, 0, 0, shift))
                conv.append(Insn(0x54, insn.dst, 0, 0, (1 << size * 8) - 1))
        if mode == 0x80:
            conv.append(Insn(0xBF, insn.dst, insn.dst, size * 8, 0))
        _emit(out, it, conv)
    return out


def _emit(out: list[_Item], it: _Item, seq: list[Insn]) -> None:
    """Replace ``it`` by ``seq``: the first instruction takes its place (jumps to it land there)
    and its metadata (source line, symbol), as ``bpf_patch_insn_data`` keeps line info."""
    meta = it.insn.meta
    seq = [_replace(s, meta=meta) if k == 0 else (s if s is not it.insn else _replace(s, meta=type(meta)()))
           for k, s in enumerate(seq)]
    out.append(_Item(seq[0], it.orig, None))
    out.extend(_Item(s, None, None) for s in seq[1:])


def _misc_fixups(env: VerifierEnv, items: list[_Item], prologues: set[int]) -> list[_Item]:
    """``do_misc_fixups``. ``prologues`` receives the start of each subprogram that gets the
    may_goto counter's initialization as its new first instruction (calls land on it, jumps after)."""
    out: list[_Item] = []
    subs = env.subprog_info
    starts = [s.start for s in subs]
    may_goto_sub: set[int] = set()
    cur = 0
    for it in items:
        insn = it.insn
        if it.orig is not None:
            while cur + 1 < len(starts) and it.orig >= starts[cur + 1]:
                cur += 1
        if insn.code == 0xE5 and it.orig is not None and subs[cur].stack_depth + 8 <= MAX_BPF_STACK:
            # may_goto: a counter in a hidden stack slot below the function's stack, read and
            # decremented through AX; the jump goes where may_goto's did. (Past 512 bytes, which
            # Linux allows with a JIT and pybpf's engine frames do not, may_goto stays as it is.)
            slot = -subs[cur].stack_depth - 8
            seq = [Insn(0x79, BPF_REG_AX, 10, slot, 0), Insn(0x15, BPF_REG_AX, 0, 0, 0),
                   Insn(0x17, BPF_REG_AX, 0, 0, 1), Insn(0x7B, 10, BPF_REG_AX, slot, 0)]
            _emit(out, it, seq)
            out[-3].target = it.target
            may_goto_sub.add(cur)
            continue
        code = insn.code
        cls = code & 7
        op = code & 0xF0
        if cls in (4, 7) and op in (0x30, 0x90):
            if not code & 8:
                if insn.off == 1 and _s32(insn.imm) == -1:
                    rep = [Insn(cls | 0x80, insn.dst, 0, 0, 0)] if op == 0x30 else [Insn(0xB4, insn.dst, 0, 0, 0)]
                    _emit(out, it, rep)
                    continue
                out.append(it)
                continue
            _emit(out, it, _div_guard(insn))
            continue
        if code == 0x85 and insn.src == 0 and insn.imm == 12 and it.orig is not None:
            # unprivileged tail calls get an index bounds-mask keyed to one map: a call site that
            # saw two different prog arrays cannot have one (the kernel refuses the program)
            if not env.bypass_spec_v1 and env.aux[it.orig].map_ptr_poisoned:
                env.insn_idx = it.orig
                raise env.fail(E.EINVAL, Msg.TAIL_CALL_ABUSING_MAP_PTR)
        if (code == 0x85 and insn.src == 0 and insn.imm == HelperId.get_smp_processor_id
                and verifier_inlines_helper_call(env, insn.imm)):
            _emit(out, it, inline_get_smp_processor_id())
            continue
        if code == 0x85 and insn.src == 0 and insn.imm in _MAP_OPS and it.orig is not None:
            aux = env.aux[it.orig]
            m = aux.map_ptr
            if m is not None and not aux.map_ptr_poisoned:
                seq = _map_call(insn, m)
                if seq is not None:
                    _emit(out, it, seq)
                    continue
        out.append(it)
    if not may_goto_sub:
        return out
    # each such subprogram's stack grows by the slot, initialized to BPF_MAX_LOOPS on entry
    for k in may_goto_sub:
        subs[k].stack_depth += 8
        prologues.add(starts[k])
    result: list[_Item] = []
    cur = -1
    for it in out:
        if it.orig is not None:
            k = cur
            while k + 1 < len(starts) and it.orig >= starts[k + 1]:
                k += 1
            if k != cur:
                cur = k
                if k in may_goto_sub:
                    result.append(_Item(Insn(0x7A, 10, 0, -subs[k].stack_depth, BPF_MAX_LOOPS), None, None))
        result.append(it)
    return result


def _div_guard(insn: Insn) -> list[Insn]:
    """The division guards of ``do_misc_fixups``: x/0 = 0, x%0 = x; for signed ops also
    x s/ -1 = -x and x s% -1 = 0 (so INT_MIN / -1 cannot trap).

    These are the kernel's ``chk_and_div`` / ``chk_and_mod`` / ``chk_and_sdiv`` / ``chk_and_smod``:
    the signed ones test the divisor through the hidden scratch register AX (r11: ``AX = src + 1``,
    so 0 and -1 become 1 and 0 and one unsigned compare tells both apart), which every pybpf engine
    provides for verifier-emitted code.
    """
    is64 = insn.code & 7 == 7
    cls = 0x07 if is64 else 0x04
    jcls = 0x05 if is64 else 0x06
    isdiv = insn.code & 0xF0 == 0x30
    src, dst = insn.src, insn.dst
    ax = BPF_REG_AX
    if insn.off == 1 and isdiv:
        return [
            Insn(0xBF, ax, src, 0, 0),  # AX = src
            Insn(cls | 0x00, ax, 0, 0, 1),  # AX += 1
            Insn(jcls | 0x20, ax, 0, 4, 1),  # if AX > 1 goto insn
            Insn(jcls | 0x10, ax, 0, 1, 0),  # if AX == 0 (src == -1) goto neg
            Insn(cls | 0xB0, dst, 0, 0, 0),  # dst = 0 (src == 0)
            Insn(cls | 0x80, dst, 0, 0, 0),  # dst = -dst
            Insn(0x05, 0, 0, 1, 0),
            insn,
        ]
    if insn.off == 1:
        seq = [
            Insn(0xBF, ax, src, 0, 0),  # AX = src
            Insn(cls | 0x00, ax, 0, 0, 1),  # AX += 1
            Insn(jcls | 0x20, ax, 0, 3, 1),  # if AX > 1 goto insn
            Insn(jcls | 0x10, ax, 0, 3 + (0 if is64 else 1), 1),  # if AX == 1 (src == 0): dst stays
            Insn(0xB4, dst, 0, 0, 0),  # w_dst = 0 (src == -1)
            Insn(0x05, 0, 0, 1, 0),
            insn,
            Insn(0x05, 0, 0, 1, 0),
            Insn(0xBC, dst, dst, 0, 0),
        ]
        return seq[:-2] if is64 else seq
    if isdiv:
        return [Insn(jcls | 0x50, src, 0, 2, 0), Insn(0xAC, dst, dst, 0, 0), Insn(0x05, 0, 0, 1, 0), insn]
    seq = [Insn(jcls | 0x10, src, 0, 1 + (0 if is64 else 1), 0), insn, Insn(0x05, 0, 0, 1, 0),
           Insn(0xBC, dst, dst, 0, 0)]
    return seq[:2] if is64 else seq


def _map_call(insn: Insn, m: Any) -> list[Insn] | None:
    helper = insn.imm
    if helper == HelperId.map_lookup_elem:
        gen = getattr(m, "gen_lookup", None)
        if gen is not None:
            seq = gen()
            if seq:
                return list(seq)
    if helper == HelperId.map_lookup_elem and m.map_type == MapType.ARRAY:
        f = internal.by_name("array_map_lookup_elem")
        return [Insn(0x85, 0, 0, 0, f.id, insn.meta)]
    fn = internal.map_op_function(m.map_type, helper)
    if fn is None or (helper == HelperId.map_lookup_elem and fn.name.startswith("__")):
        return None
    return [Insn(0x85, 0, 0, 0, fn.id, insn.meta)]


def _relink(env: VerifierEnv, items: list[_Item], prologues: set[int]) -> tuple[list[Insn], list[int]]:
    # new start slot of every original slot (removed ones map to the next surviving instruction)
    new_slot_of_item: list[int] = []
    pos = 0
    for it in items:
        new_slot_of_item.append(pos)
        pos += 2 if it.insn.code == 0x18 else 1
    total = pos
    first_new: dict[int, int] = {}
    for it, ns in zip(items, new_slot_of_item, strict=True):
        if it.orig is not None and it.orig not in first_new:
            first_new[it.orig] = ns
    orig_max = len(env.insns)

    def new_of(orig: int) -> int:
        o = orig
        while o < orig_max and o not in first_new:
            o += 1
        return first_new.get(o, total)

    out: list[Insn] = []
    for it, ns in zip(items, new_slot_of_item, strict=True):
        insn = it.insn
        if it.target is not None:
            tgt = new_of(it.target)
            if it.target in prologues and (insn.code == 0x85 or insn.code == 0x18):
                tgt -= 1  # a call (or callback address) enters at the may_goto counter's prologue
            rel = tgt - ns - 1
            if insn.code == 0x85 or (insn.code == 0x18 and insn.src == 4):
                if insn.code == 0x18:
                    insn = insn.replace(imm=(insn.imm & ~0xFFFFFFFF) | (rel & 0xFFFFFFFF))
                else:
                    insn = insn.replace(imm=rel)
            elif insn.code == 0x06:
                insn = insn.replace(imm=rel)
            else:
                insn = insn.replace(off=rel)
        out.append(insn)
    starts = [new_of(s.start) - (s.start in prologues) for s in env.subprog_info]
    return out, starts
