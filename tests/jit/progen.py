"""Random valid eBPF programs for differential testing (hypothesis strategies).

The programs are built so that two engines with different address spaces must agree on every
observable bit:

* r6 holds the input-memory pointer (copied from r1 first) and is never written or used as data;
  r10 is only a base for stack accesses; all other registers hold scalars only, so no address ever
  reaches r0 or memory;
* every scalar register and the used stack area are initialised before anything reads them (engines
  start with different junk there), and after a call r1-r5 are re-initialised (a helper call
  clobbers them natively; the interpreter leaves them);
* memory accesses stay in bounds: ``[r6 + off]`` within the input memory, ``[r10 + off]`` within the
  64 bytes below the frame pointer; atomics are naturally aligned;
* jumps go forward (so programs terminate), except for bounded loops on a dedicated counter;
* at the end every scalar register is stored to the input memory, then the program exits, so the
  comparison covers all registers and all memory.

The ISA coverage is the point: every ALU op in both widths and both sources (incl. sdiv/smod,
movsx, shifts with any count, division by zero and by -1), byte swaps, every conditional jump in
JMP and JMP32, gotol, loads/stores of every size incl. sign-extending loads, every atomic, lddw,
helper calls and bpf-to-bpf calls.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

from pybpf.isa import Insn, Insns
from pybpf.isa.opcodes import OPCODES, AluOp, AtomicOp, InsnClass, Kind, Mode, Size

MEM_SIZE = 128
REG_DUMP = 64  # registers are dumped at [r6 + 64 + 8*k]
STACK = 64
SCALARS = (0, 1, 2, 3, 4, 5, 7, 8, 9)
MEM_BASE = 6
LOOP_REG = 9  # only loops write it after initialisation
HELPER_ID = 1  # the test helper: a function of r1..r5

INTERESTING = (0, 1, -1, 2, 7, 31, 32, 63, 64, 0x7FFFFFFF, -0x80000000, 0x80, 0xFF, 0xFFFF, 0x10000, -2)
INTERESTING64 = (0, 1, -1, 1 << 63, (1 << 63) - 1, 0xFFFFFFFF, 1 << 32, 0x8000000000000000 - 0x80000000)


@dataclass
class Jump:
    """A forward jump placeholder: resolved to a slot offset when the program is assembled."""

    insn: Insn
    skip: int  # how many following *items* to jump over


imm32 = st.one_of(st.sampled_from(INTERESTING), st.integers(-(2**31), 2**31 - 1))
imm64 = st.one_of(st.sampled_from(INTERESTING64), st.integers(-(2**63), 2**63 - 1))
scalar = st.sampled_from(SCALARS)
scalar_dst = st.sampled_from(tuple(r for r in SCALARS if r != LOOP_REG))

_ALU_CODES = sorted(c for c, i in OPCODES.items() if i.kind is Kind.ALU)
_END_CODES = sorted(c for c, i in OPCODES.items() if i.kind is Kind.END)
_JCOND_CODES = sorted(c for c, i in OPCODES.items() if i.kind is Kind.JCOND)
_SIZES = {Size.B: 1, Size.H: 2, Size.W: 4, Size.DW: 8}


@st.composite
def alu(draw: st.DrawFn, codes: tuple[int, ...] = tuple(_ALU_CODES)) -> Insn:
    code = draw(st.sampled_from(codes))
    info = OPCODES[code]
    dst = draw(scalar_dst)
    off = 0
    if info.alu_op in (AluOp.DIV, AluOp.MOD):
        off = draw(st.sampled_from((0, 1)))
    elif info.alu_op == AluOp.MOV and info.source is not None and info.source.name == "X":
        off = draw(st.sampled_from((0, 8, 16, 32) if info.cls == InsnClass.ALU64 else (0, 8, 16)))
    if info.alu_op == AluOp.NEG:
        return Insn(code, dst)
    if info.source is not None and info.source.name == "X":
        return Insn(code, dst, draw(scalar), off)
    return Insn(code, dst, 0, off, draw(imm32))


@st.composite
def end(draw: st.DrawFn, codes: tuple[int, ...] = tuple(_END_CODES)) -> Insn:
    return Insn(draw(st.sampled_from(codes)), draw(scalar_dst), imm=draw(st.sampled_from((16, 32, 64))))


@st.composite
def lddw(draw: st.DrawFn) -> Insn:
    return Insn(0x18, draw(scalar_dst), imm=draw(imm64))


@st.composite
def mem_access(draw: st.DrawFn, code: int | None = None) -> Insn:
    """A load, store or atomic on the input memory or the stack (``code``: this opcode only)."""
    if code is None:
        kind = draw(st.sampled_from(("ldx", "ldxs", "st", "stx", "atomic")))
        if kind == "atomic":
            size = draw(st.sampled_from((Size.W, Size.DW)))
        elif kind == "ldxs":
            size = draw(st.sampled_from((Size.B, Size.H, Size.W)))
        else:
            size = draw(st.sampled_from(tuple(_SIZES)))
    else:
        info = OPCODES[code]
        assert info.size is not None
        size = info.size
        kind = {Kind.LDX: "ldxs" if info.mode == Mode.MEMSX else "ldx", Kind.ST: "st", Kind.STX: "stx",
                Kind.ATOMIC: "atomic"}[info.kind]
    on_stack = draw(st.booleans())
    base = 10 if on_stack else MEM_BASE
    n = _SIZES[size]
    if on_stack:
        off = draw(st.integers(-STACK // n, -1)) * n if kind == "atomic" else draw(st.integers(-STACK, -n))
    else:
        hi = REG_DUMP - n  # keep the register dump area for the end
        off = draw(st.integers(0, hi // n)) * n if kind == "atomic" else draw(st.integers(0, hi))
    if kind == "ldx":
        return Insn(Mode.MEM | size | InsnClass.LDX, draw(scalar_dst), base, off)
    if kind == "ldxs":
        return Insn(Mode.MEMSX | size | InsnClass.LDX, draw(scalar_dst), base, off)
    if kind == "st":
        return Insn(Mode.MEM | size | InsnClass.ST, base, 0, off, draw(imm32))
    if kind == "stx":
        return Insn(Mode.MEM | size | InsnClass.STX, base, draw(scalar), off)
    op = draw(st.sampled_from(list(AtomicOp)))
    src = draw(scalar_dst)
    return Insn(Mode.ATOMIC | size | InsnClass.STX, base, src, off, int(op))


@st.composite
def atomic_group(draw: st.DrawFn, code: int | None = None) -> list[Insn | Jump]:
    """An atomic; a cmpxchg is often preceded by loading r0 from its target (64-bit load, so the
    exchange succeeds while r0's upper half is dirty: the 32-bit form must still zero-extend r0)."""
    code = code if code is not None else draw(st.sampled_from((0xC3, 0xDB)))
    insn = draw(mem_access(code))
    if insn.imm == AtomicOp.CMPXCHG or draw(st.integers(0, 3)) == 0:
        insn = insn.replace(imm=int(AtomicOp.CMPXCHG))
        if draw(st.booleans()):
            off = insn.off
            if (insn.dst == 10 and off > -8) or (insn.dst != 10 and off + 8 > REG_DUMP):
                off -= 4  # keep the 8-byte load in bounds
            return [Insn(0x79, 0, insn.dst, off), insn.replace(off=off)]
    return [insn]


@st.composite
def cond_jump(draw: st.DrawFn, codes: tuple[int, ...] = tuple(_JCOND_CODES)) -> Jump:
    code = draw(st.sampled_from(codes))
    info = OPCODES[code]
    dst = draw(scalar)
    if info.source is not None and info.source.name == "X":
        insn = Insn(code, dst, draw(scalar))
    else:
        insn = Insn(code, dst, imm=draw(imm32))
    return Jump(insn, draw(st.integers(0, 6)))


@st.composite
def uncond_jump(draw: st.DrawFn) -> Jump:
    gotol = draw(st.booleans())
    return Jump(Insn(0x06 if gotol else 0x05), draw(st.integers(0, 4)))


def init_scalars(draw: st.DrawFn, regs: tuple[int, ...]) -> list[Insn]:
    out = []
    for r in regs:
        if draw(st.booleans()):
            out.append(Insn(0xB7, r, imm=draw(imm32)))
        else:
            out.append(Insn(0x18, r, imm=draw(imm64)))
    return out


@st.composite
def straight_item(draw: st.DrawFn) -> list[Insn | Jump]:
    if draw(st.integers(0, 9)) == 0:
        return draw(atomic_group())
    return [draw(st.one_of(alu(), alu(), alu(), end(), lddw(), mem_access(), mem_access()))]


@st.composite
def helper_call(draw: st.DrawFn) -> list[Insn | Jump]:
    return [Insn(0x85, imm=HELPER_ID), *init_scalars(draw, (1, 2, 3, 4, 5))]


@st.composite
def local_call(draw: st.DrawFn) -> list[Insn | Jump]:
    """A call to the program's subprogram (appended after the main exit); placeholder imm."""
    return [Insn(0x85, src=1, imm=-1), *init_scalars(draw, (1, 2, 3, 4, 5))]


@st.composite
def loop(draw: st.DrawFn) -> list[Insn | Jump]:
    """for (r9 = n; r9 != 0; r9--) { body }  — a backward jump with a bounded trip count."""
    n = draw(st.integers(1, 5))
    body = draw(st.lists(st.one_of(alu(), mem_access()), min_size=1, max_size=4))
    # the loop body must not write the counter (scalar_dst excludes r9)
    back = -(sum(i.width for i in body) + 2)
    return [Insn(0xB7, LOOP_REG, imm=n), *body, Insn(0x17, LOOP_REG, imm=1), Insn(0x55, LOOP_REG, off=back)]


def _resolve(groups: list[list[Insn | Jump]]) -> list[Insn]:
    """Flatten groups, turning each forward Jump into an instruction whose target is the start of a
    later group (never the inside of a loop), clamped to the end of the body."""
    widths = [sum(i.insn.width if isinstance(i, Jump) else i.width for i in g) for g in groups]
    out: list[Insn] = []
    for k, group in enumerate(groups):
        for pos, item in enumerate(group):
            if isinstance(item, Jump):
                assert pos == len(group) - 1, "a jump ends its group"
                skip = min(item.skip, len(groups) - k - 1)
                slots = sum(widths[k + 1 : k + 1 + skip])
                insn = item.insn
                out.append(insn.replace(imm=slots) if insn.code == 0x06 else insn.replace(off=slots))
            else:
                out.append(item)
    return out


SUBPROG = [
    # a function of r1..r5 that uses its own stack frame: [r10-8] must not be the caller's
    Insn(0x7B, 10, 1, -8),  # *(u64 *)(r10 - 8) = r1
    Insn(0xBF, 0, 2),  # r0 = r2
    Insn(0x2F, 0, 3),  # r0 *= r3
    Insn(0x79, 7, 10, -8),  # r7 = *(u64 *)(r10 - 8)   (r7 saved by the caller's frame)
    Insn(0xAF, 0, 7),  # r0 ^= r7
    Insn(0x0F, 0, 4),  # r0 += r4
    Insn(0x1F, 0, 5),  # r0 -= r5
    Insn(0x95),
]


def _one_opcode(code: int) -> st.SearchStrategy[list[Insn | Jump]]:
    kind = OPCODES[code].kind
    if kind is Kind.ALU:
        return st.builds(lambda i: [i], alu((code,)))
    if kind is Kind.END:
        return st.builds(lambda i: [i], end((code,)))
    if kind is Kind.JCOND:
        return st.builds(lambda j: [j], cond_jump((code,)))
    if kind is Kind.ATOMIC:
        return atomic_group(code)
    if kind in (Kind.LDX, Kind.ST, Kind.STX):
        return st.builds(lambda i: [i], mem_access(code))
    raise ValueError(f"no generator for {OPCODES[code].name}")


SINGLE_OPCODES = tuple(
    c for c, i in sorted(OPCODES.items()) if i.kind in (Kind.ALU, Kind.END, Kind.JCOND, Kind.LDX, Kind.ST,
                                                         Kind.STX, Kind.ATOMIC)
)


@st.composite
def programs(draw: st.DrawFn, *, branches: bool = True, calls: bool = True, opcode: int | None = None) -> Insns:
    """A complete program (see the module docstring) using the input memory at r1. With ``opcode``,
    the body is mostly instances of that one opcode (with random operands) between random ALU ops."""
    head: list[Insn] = [Insn(0xBF, MEM_BASE, 1)]  # r6 = r1
    head += init_scalars(draw, SCALARS)
    for off in range(-STACK, 0, 8):
        head.append(Insn(0x7A, 10, 0, off, draw(imm32)))  # *(u64 *)(r10 + off) = imm
    if opcode is not None:
        choices = [_one_opcode(opcode), _one_opcode(opcode), _one_opcode(opcode), straight_item()]
    else:
        choices = [straight_item()]
    if branches:
        choices += [st.builds(lambda j: [j], cond_jump()), st.builds(lambda j: [j], uncond_jump()), loop()]
    if calls:
        choices += [helper_call(), local_call()]
    body = _resolve(draw(st.lists(st.one_of(*choices), min_size=1, max_size=40)))
    tail = [Insn(0x7B, MEM_BASE, r, REG_DUMP + 8 * k) for k, r in enumerate(r for r in SCALARS if r != 0)]
    tail.append(Insn(0x95))
    main = [*head, *body, *tail]
    main_slots = sum(i.width for i in main)
    out = []
    slot = 0
    for insn in main:
        if insn.code == 0x85 and insn.src == 1:
            insn = Insn(0x85, src=1, imm=main_slots - (slot + 1))
        out.append(insn)
        slot += insn.width
    return Insns([*out, *SUBPROG])


def test_helper(r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """The helper both engines call: a mix of all five arguments (so argument order matters)."""
    m = (1 << 64) - 1
    return (r1 * 3 + (r2 ^ 0x5555) * 5 + (r3 << 1) + (r4 >> 3) + r5 * 0x10001) & m

