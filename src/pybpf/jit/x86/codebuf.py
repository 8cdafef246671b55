"""A code buffer with labels: machine code whose branch sizes are decided after layout.

Why: a forward jump's distance is unknown when the jump is emitted, and x86 has two sizes of
relative jump (rel8: 2 bytes; rel32: 5 or 6). The buffer records jumps symbolically, then
:meth:`CodeBuffer.assemble` lays the code out with every jump short, lengthens each jump whose
target is out of rel8 range, and repeats until nothing changes. Lengthening only ever moves targets
further away, so the iteration reaches a fixed point, and the result uses the short form wherever
it fits (ubpf and the kernel make the same passes).

Three kinds of item besides raw bytes:

* :class:`Branch` — ``jmp``/``jcc`` to a label, relaxed to rel8 or rel32;
* :class:`RipRef` — an instruction of fixed size holding a 32-bit displacement relative to its own
  end (``call rel32``, ``jmp rel32``, ``lea r, [rip+x]``, ``call [rip+x]``);
* relocation marks — positions whose final value is only known at load time (map addresses).

Labels are any hashable keys: the code generator uses eBPF instruction indices, named places
(``"epilogue"``) and numbers from :meth:`CodeBuffer.new_label` for local targets.
"""

from __future__ import annotations

import struct
from collections.abc import Hashable
from dataclasses import dataclass, field

from pybpf.jit.x86.encoder import Cond, EncodeError, fits_i8

__all__ = ["Assembled", "Branch", "CodeBuffer", "RipRef"]


@dataclass(slots=True)
class Branch:
    """A relaxable jump: ``cond is None`` for ``jmp``."""

    cond: Cond | None
    target: Hashable
    long: bool = False

    def size(self) -> int:
        if not self.long:
            return 2
        return 5 if self.cond is None else 6

    def encode(self, rel: int) -> bytes:
        """``rel`` is measured from the end of this branch in its current size."""
        if self.cond is None:
            return (b"\xe9" + struct.pack("<i", rel)) if self.long else (b"\xeb" + struct.pack("<b", rel))
        if self.long:
            return bytes((0x0F, 0x80 + self.cond)) + struct.pack("<i", rel)
        return bytes((0x70 + self.cond,)) + struct.pack("<b", rel)


@dataclass(frozen=True, slots=True)
class RipRef:
    """``head`` + disp32 + ``tail``, the displacement counting from the end of the whole item."""

    head: bytes
    target: Hashable
    tail: bytes = b""

    def size(self) -> int:
        return len(self.head) + 4 + len(self.tail)

    def encode(self, rel: int) -> bytes:
        return self.head + struct.pack("<i", rel) + self.tail


@dataclass(frozen=True, slots=True)
class Assembled:
    """The laid-out code: bytes, where each label landed, and where each relocation mark points."""

    code: bytes
    labels: dict[Hashable, int]
    marks: list[tuple[int, object]]
    long_branches: int
    passes: int


@dataclass(slots=True)
class _Chunk:
    data: bytearray = field(default_factory=bytearray)
    item: Branch | RipRef | _Align | None = None  # what follows the bytes


class CodeBuffer:
    """Append-only machine code with symbolic jumps; :meth:`assemble` produces the final bytes."""

    __slots__ = ("_chunks", "_labels", "_marks", "_next_label")

    def __init__(self) -> None:
        self._chunks: list[_Chunk] = [_Chunk()]
        self._labels: dict[Hashable, tuple[int, int]] = {}
        self._marks: list[tuple[int, int, object]] = []
        self._next_label = 0

    # -- emitting ---------------------------------------------------------------------------------
    def emit(self, code: bytes) -> None:
        self._chunks[-1].data += code

    def label(self, key: Hashable) -> None:
        """Define ``key`` at the current position (each key once)."""
        if key in self._labels:
            raise EncodeError(f"label {key!r} defined twice")
        self._labels[key] = (len(self._chunks) - 1, len(self._chunks[-1].data))

    def new_label(self) -> Hashable:
        """A fresh local label key, for targets inside one instruction's code."""
        self._next_label += 1
        return ("local", self._next_label)

    def jmp(self, target: Hashable) -> None:
        self._item(Branch(None, target))

    def jcc(self, cond: Cond, target: Hashable) -> None:
        self._item(Branch(cond, target))

    def rip_ref(self, head: bytes, target: Hashable, tail: bytes = b"") -> None:
        """An instruction with a rip-relative disp32 to ``target``, e.g. ``rip_ref(b"\\xe8", f)`` =
        ``call f``."""
        self._item(RipRef(head, target, tail))

    def mark(self, back: int, payload: object) -> None:
        """Remember the position ``back`` bytes before the current end (a field to patch later)."""
        chunk = self._chunks[-1]
        if back > len(chunk.data):
            raise EncodeError("a relocation mark must point into the bytes just emitted")
        self._marks.append((len(self._chunks) - 1, len(chunk.data) - back, payload))

    def align(self, n: int, fill: bytes = b"\xcc") -> None:
        """Pad with ``fill`` to a multiple of ``n``: only valid after all relaxable items, since
        relaxation would move what follows (used for the data at the end)."""
        if any(isinstance(c.item, Branch) for c in self._chunks):
            # alignment must be computed after layout: encode it as a special item
            self._item(_Align(n, fill))
            return
        size = sum(len(c.data) + (c.item.size() if c.item else 0) for c in self._chunks)
        self.emit(fill * (-size % n))

    def _item(self, item: Branch | RipRef | _Align) -> None:
        self._chunks[-1].item = item  # type: ignore[assignment]
        self._chunks.append(_Chunk())

    @property
    def size_hint(self) -> int:
        """The current length with every branch short (a lower bound)."""
        return sum(len(c.data) + (_size(c.item, 0) if c.item else 0) for c in self._chunks)

    # -- layout -----------------------------------------------------------------------------------
    def assemble(self) -> Assembled:
        """Lay out, relax branches to a fixed point, and encode."""
        chunks = self._chunks
        labels = self._labels
        for key in {c.item.target for c in chunks if isinstance(c.item, (Branch, RipRef))}:
            if key not in labels:
                raise EncodeError(f"jump to undefined label {key!r}")
        passes = 0
        while True:
            passes += 1
            starts = self._layout()
            changed = False
            for i, c in enumerate(chunks):
                item = c.item
                if isinstance(item, Branch) and not item.long:
                    end = starts[i] + len(c.data) + 2
                    ci, off = labels[item.target]
                    if not fits_i8(starts[ci] + off - end):
                        item.long = True
                        changed = True
            if not changed:
                break
        out = bytearray()
        long_branches = 0
        for c in chunks:
            out += c.data
            item = c.item
            if item is None:
                continue
            if isinstance(item, _Align):
                out += item.fill * (-len(out) % item.n)
                continue
            end = len(out) + item.size()
            ci, off = labels[item.target]
            out += item.encode(starts[ci] + off - end)
            if isinstance(item, Branch) and item.long:
                long_branches += 1
        resolved = {k: starts[ci] + off for k, (ci, off) in labels.items()}
        marks = [(starts[ci] + off, payload) for ci, off, payload in self._marks]
        return Assembled(bytes(out), resolved, marks, long_branches, passes)

    def _layout(self) -> list[int]:
        starts = []
        pos = 0
        for c in self._chunks:
            starts.append(pos)
            pos += len(c.data)
            if c.item is not None:
                pos += _size(c.item, pos)
        return starts


@dataclass(frozen=True, slots=True)
class _Align:
    n: int
    fill: bytes

    def size_at(self, pos: int) -> int:
        return -pos % self.n


def _size(item: Branch | RipRef | _Align, pos: int) -> int:
    if isinstance(item, _Align):
        return item.size_at(pos)
    return item.size()
