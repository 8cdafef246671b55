"""Random eBPF programs for differential tests (interpreter vs translated tier, and later vs the JIT).

Programs are *structurally* valid (every opcode from the table, fields within their rules) but not
verified: registers may hold anything, memory accesses may miss, jumps may loop or leave their
function, calls may recurse — the engines must then fail identically. A program is a main function
followed by up to two subprograms; r9 holds the input memory pointer at entry (main copies r1), so
most loads and stores land in memory, on the stack, or just outside either.
"""

from __future__ import annotations

from hypothesis import strategies as st

from pybpf.isa import OPCODES, Insn, Insns, Kind
from pybpf.isa.opcodes import AtomicOp, InsnClass, Mode, PseudoCall, Source

MEM_SIZE = 64
ALU_CODES = sorted(c for c, i in OPCODES.items() if i.kind is Kind.ALU)
END_CODES = sorted(c for c, i in OPCODES.items() if i.kind is Kind.END)
JCOND_CODES = sorted(c for c, i in OPCODES.items() if i.kind is Kind.JCOND)
LDX_CODES = sorted(c for c, i in OPCODES.items() if i.kind is Kind.LDX)
ST_CODES = sorted(c for c, i in OPCODES.items() if i.kind is Kind.ST)
STX_CODES = sorted(c for c, i in OPCODES.items() if i.kind is Kind.STX)
ATOMIC_CODES = sorted(c for c, i in OPCODES.items() if i.kind is Kind.ATOMIC)

_imm32 = st.one_of(
    st.integers(-8, 8),
    st.sampled_from([-(1 << 31), (1 << 31) - 1, -1, 0x7F, 0x80, 0xFF, 0xFFFF, 63, 64, 31, 32]),
    st.integers(-(1 << 31), (1 << 31) - 1),
)
_reg = st.integers(0, 9)
_dst = st.sampled_from([*range(9)] * 4 + [9])  # r9 (the memory pointer) rarely


@st.composite
def alu_insn(draw: st.DrawFn, dst_regs: st.SearchStrategy[int] = _dst) -> Insn:
    code = draw(st.sampled_from(ALU_CODES))
    info = OPCODES[code]
    dst = draw(dst_regs)
    off = draw(st.sampled_from(sorted(info.off.allowed or {0})))
    if info.source is Source.X:
        return Insn(code, dst, draw(_reg), off)
    if info.alu_op is not None and info.alu_op.name == "NEG":
        return Insn(code, dst)
    return Insn(code, dst, 0, off, draw(_imm32))


@st.composite
def mem_insn(draw: st.DrawFn) -> list[Insn]:
    """A load/store/atomic through r9 (memory) or r10 (stack), mostly in bounds."""
    kind = draw(st.sampled_from(["ldx", "st", "stx", "atomic"]))
    code = draw(st.sampled_from({"ldx": LDX_CODES, "st": ST_CODES, "stx": STX_CODES, "atomic": ATOMIC_CODES}[kind]))
    size = OPCODES[code].size.bytes  # type: ignore[union-attr]
    base = draw(st.sampled_from([9, 9, 9, 9, 10, 10, 10, 10, 1]))
    if base == 10:
        off = draw(st.one_of(st.integers(-512 // size, -1).map(lambda k: k * size), st.integers(-520, 8)))
    else:
        off = draw(st.one_of(st.integers(0, (MEM_SIZE - size) // size).map(lambda k: k * size),
                             st.integers(-8, MEM_SIZE + 8)))
    if kind == "ldx":
        return [Insn(code, draw(st.integers(0, 7)), base, off)]
    if kind == "st":
        return [Insn(code, base, 0, off, draw(_imm32))]
    if kind == "stx":
        return [Insn(code, base, draw(_reg), off)]
    op = draw(st.sampled_from(list(AtomicOp)))
    return [Insn(code, base, draw(st.integers(0, 8)), off, int(op))]


@st.composite
def mem_group(draw: st.DrawFn) -> list[Insn]:
    """Consecutive loads or stores through one pointer (what the translated tier checks as a group),
    the pointer derived from r9 or r10 as compilers derive them, offsets near the edges and unaligned
    ones included; sometimes the pointer is re-derived from the other region first, so a region
    guess made earlier (in a loop: in an earlier iteration) no longer holds."""
    ptr = draw(st.sampled_from([3, 4, 6]))
    src = draw(st.sampled_from([9, 9, 10, 10, 5]))
    if src == 10:
        delta = draw(st.one_of(st.integers(-64, -1), st.integers(-520, 4)))
    else:
        delta = draw(st.one_of(st.integers(0, MEM_SIZE), st.integers(-4, MEM_SIZE + 4)))
    out = [Insn(0xBF, ptr, src), Insn(0x07, ptr, imm=delta)]
    if draw(st.booleans()):  # a variable part, as in array indexing
        out += [Insn(0xBF, 7, draw(st.sampled_from([0, 2, 8]))), Insn(0x57, 7, imm=draw(st.sampled_from([3, 7, 15]))),
                Insn(0x0F, ptr, 7)]
    codes = LDX_CODES if draw(st.booleans()) else STX_CODES + ST_CODES
    for _ in range(draw(st.integers(2, 4))):
        code = draw(st.sampled_from(codes))
        size = OPCODES[code].size.bytes  # type: ignore[union-attr]
        off = draw(st.integers(-2, 3)) * size if draw(st.booleans()) else draw(st.integers(-9, 9))
        kind = OPCODES[code].kind
        if kind is Kind.LDX:
            out.append(Insn(code, draw(st.sampled_from([0, 1, 2, 7])), ptr, off))
        elif kind is Kind.STX:
            out.append(Insn(code, ptr, draw(_reg), off))
        else:
            out.append(Insn(code, ptr, 0, off, draw(_imm32)))
    return out


@st.composite
def misc_insn(draw: st.DrawFn) -> list[Insn]:
    choice = draw(st.sampled_from(["end", "lddw", "helper", "callx", "may_goto", "ld_abs"]))
    if choice == "ld_abs":  # legacy packet loads over the input memory (the run passes an SkbView)
        code = draw(st.sampled_from([0x20, 0x28, 0x30, 0x40, 0x48, 0x50]))
        imm = draw(st.one_of(st.integers(-4, MEM_SIZE + 2), st.sampled_from([-0x100000, -0x100000 + 3, -0x200000])))
        return [Insn(code, 0, draw(st.integers(0, 8)) if code >= 0x40 else 0, 0, imm)]
    if choice == "end":
        code = draw(st.sampled_from(END_CODES))
        return [Insn(code, draw(_reg), imm=draw(st.sampled_from([16, 32, 64])))]
    if choice == "lddw":
        return [Insn(0x18, draw(_reg), imm=draw(st.integers(-(1 << 63), (1 << 63) - 1)))]
    if choice == "helper":
        # 0 gather, 2 no-op, 3 sqrt, 5 unwind (stops on r1 == 0), 1 memfrob on r9, 4 strcmp on r9
        hid = draw(st.sampled_from([0, 2, 3, 5, 1, 4, 0, 2]))
        pre: list[Insn] = []
        if hid in (1, 4):
            pre = [Insn(0xBF, 1, 9), Insn(0xB7, 2, imm=draw(st.integers(0, MEM_SIZE)))]
            if hid == 4:
                pre = [Insn(0xBF, 1, 9), Insn(0xBF, 2, 9), Insn(0x07, 2, imm=draw(st.integers(0, 16)))]
        if hid == 5:
            pre = [Insn(0xB7, 1, imm=draw(st.integers(0, 2)))]
        return [*pre, Insn(0x85, imm=hid)]
    if choice == "callx":
        return [Insn(0xB7, 7, imm=draw(st.sampled_from([0, 2, 3, 9]))), Insn(0x8D, 7)]
    return [Insn(0xE5, off=draw(st.integers(-3, 3)))]


@st.composite
def body(draw: st.DrawFn, max_len: int) -> list[Insn | tuple[str, int]]:
    """A list of instructions; jumps are placeholders ("jump", relative target) fixed up later."""
    out: list[Insn | tuple[str, int]] = []
    n = draw(st.integers(1, max_len))
    for _ in range(n):
        what = draw(st.sampled_from(["alu", "alu", "alu", "mem", "mem", "jump", "misc", "call", "loop"]))
        if what == "alu":
            out.append(draw(alu_insn()))
        elif what == "loop":  # a counted loop on r8: mov r8, k; body; r8 -= 1; jne r8, 0, body
            inner = [draw(st.one_of(alu_insn(st.integers(0, 7)).map(lambda i: [i]), mem_insn(), mem_group()))
                     for _ in range(draw(st.integers(1, 4)))]
            flat = [i for group in inner for i in group]
            size = sum(i.width for i in flat) + 1
            out.extend([Insn(0xB7, 8, imm=draw(st.integers(1, 12))), *flat, Insn(0x17, 8, imm=1),
                        Insn(0x55, 8, 0, -(size + 1), 0)])
        elif what == "mem":
            out.extend(draw(st.one_of(mem_insn(), mem_group())))
        elif what == "misc":
            out.extend(draw(misc_insn()))
        elif what == "call":
            out.append(("call", draw(st.integers(1, 2))))
        else:
            out.append(("jump", draw(st.integers(-6, 6))))
    return out


def _jump(draw: st.DrawFn, rel: int) -> Insn:
    if draw(st.integers(0, 9)) == 0:
        return Insn(0x06, imm=rel)  # gotol
    if draw(st.integers(0, 5)) == 0:
        return Insn(0x05, off=rel)
    code = draw(st.sampled_from(JCOND_CODES))
    info = OPCODES[code]
    if info.source is Source.X:
        return Insn(code, draw(_reg), draw(_reg), rel)
    return Insn(code, draw(_reg), 0, rel, draw(_imm32))


_value64 = st.one_of(
    st.integers(0, (1 << 64) - 1),
    st.integers(-4, 4),
    st.sampled_from([1 << 63, (1 << 63) - 1, 1 << 31, (1 << 31) - 1, (1 << 32) - 1, 1 << 32, 0xFF, 0x80, 0x8000]),
).map(lambda v: v - (1 << 64) if v >= 1 << 63 else v)


@st.composite
def register_setup(draw: st.DrawFn) -> list[Insn]:
    """r9 = the input memory (r1 at entry), r0..r8 = interesting 64-bit values."""
    return [Insn(0xBF, 9, 1), *(Insn(0x18, k, imm=draw(_value64)) for k in range(9))]


@st.composite
def alu_programs(draw: st.DrawFn) -> Insns:
    """Straight-line arithmetic only: every run succeeds, every result is checked via r0."""
    ops = draw(st.lists(st.one_of(alu_insn(), alu_insn(), st.sampled_from(END_CODES).flatmap(
        lambda c: st.builds(lambda d, w: Insn(c, d, imm=w), st.integers(0, 8), st.sampled_from([16, 32, 64])))),
        min_size=1, max_size=30))
    fold = [x for k in range(1, 10) for x in (Insn(0x27, 0, imm=0x1000193), Insn(0xAF, 0, k))]
    return Insns([*draw(register_setup()), *ops, *fold, Insn(0x95)])


@st.composite
def programs(draw: st.DrawFn, max_len: int = 24) -> Insns:
    """A main function and up to two subprograms, each ending with exit."""
    n_funcs = draw(st.integers(1, 3))
    bodies = [draw(body(max_len)) for _ in range(n_funcs)]
    bodies[0] = [*draw(register_setup()), *bodies[0]]
    for f in range(1, n_funcs):
        bodies[f] = [Insn(0xBF, 9, 5), *bodies[f]]  # callers pass it in r5
    # Fold every register into r0 before each exit, so a wrong value anywhere shows in the result.
    fold = [x for k in range(1, 10) for x in (Insn(0x27, 0, imm=0x1000193), Insn(0xAF, 0, k))]
    bodies = [[*b, *fold] for b in bodies]
    # Lay the functions out, each followed by `exit`, so call targets are known.
    starts: list[int] = []
    slot = 0
    for b in bodies:
        starts.append(slot)
        slot += sum(x.width if isinstance(x, Insn) else (2 if x[0] == "call" else 1) for x in b) + 1
    insns: list[Insn] = []
    for f, b in enumerate(bodies):
        slots_so_far = starts[f]
        for item in b:
            if isinstance(item, Insn):
                insns.append(item)
                slots_so_far += item.width
                continue
            kind, arg = item
            if kind == "call":
                # mostly calls to a later function (no recursion); sometimes any function
                callee_idx = f + arg if draw(st.integers(0, 19)) else draw(st.integers(0, n_funcs - 1))
                insns.append(Insn(0xBF, 5, 9))
                slots_so_far += 1
                if callee_idx >= n_funcs:
                    insns.append(Insn(0xB7, 0, imm=arg))  # no such function: a plain move instead
                else:
                    insns.append(Insn(0x85, src=PseudoCall.CALL, imm=starts[callee_idx] - (slots_so_far + 1)))
            else:
                insns.append(_jump(draw, arg))
            slots_so_far += 1
        insns.append(Insn(0x95))
    return Insns(insns)


def is_jmp32(insn: Insn) -> bool:
    info = OPCODES.get(insn.code)
    return info is not None and info.cls == InsnClass.JMP32


def uses_memsx(insn: Insn) -> bool:
    info = OPCODES.get(insn.code)
    return info is not None and info.mode is Mode.MEMSX
