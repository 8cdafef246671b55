"""Program-type descriptors: the context a program sees, how it may touch it, and what it may call.

A :class:`ProgTypeDescriptor` is pybpf's ``struct bpf_verifier_ops`` + ``bpf_prog_ops`` for one
program type, as plain data plus a few kernel-shaped callables:

* ``ctx`` — the **user-visible** context struct (``struct xdp_md``, ``struct __sk_buff``...): what
  the program's C source declares and what its loads/stores address (:class:`CtxStruct`).
* ``is_valid_access(off, size, type, prog, aux)`` — the kernel's ``*_is_valid_access``: may an
  access of ``size`` bytes at ``off`` happen; fills ``aux`` (:class:`AccessAux`, the kernel's
  ``bpf_insn_access_aux``) with the register type a load yields (``PTR_TO_PACKET``...) and the
  field size narrow loads are widened to.
* ``runtime`` — the **runtime** context layout (:class:`RuntimeLayout`): what programs actually read
  after the verifier's ``convert_ctx_access`` rewrote their context accesses. Plain data (field name
  → offset, size) so the kernel layer (test runs) and the JIT's batch runner build contexts from it.
* ``ctx_map`` — user field → runtime field; :meth:`ProgTypeDescriptor.convert_ctx_access` turns one
  context load/store into the runtime access (a 32-bit ``xdp_md.data`` load becomes a 64-bit load
  of the runtime ``data`` pointer).
* ``func_proto`` — the kernel's ``*_func_proto`` switch (:class:`~pybpf.progtypes.protos.FuncProtoSwitch`),
  plus ``extra_helpers`` for application-defined types.
* ``return_range`` — ``check_return_code``'s range for the type (``None``: anything goes).
* ``packet_access`` — ``may_access_direct_pkt_data``: ``""``, ``"r"`` or ``"rw"``; ``ld_abs`` —
  ``may_access_skb`` (legacy ``LD_ABS``/``LD_IND``); ``unpriv`` — loadable without CAP_BPF.

An application defines its own program type by building a descriptor from a :class:`CtxStruct` whose
fields say ``access`` ("r"/"rw") and optionally a register type, with helpers as
:class:`~pybpf.progtypes.protos.HelperProto` values (see :func:`ProgTypeDescriptor.custom`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from pybpf.isa import Insn, InsnClass, JmpOp, Mode, Size
from pybpf.progtypes.protos import CAP_BPF, CAP_PERFMON, Caps, FuncProtoSwitch, HelperProto
from pybpf.progtypes.types import AccessType, RegType

__all__ = [
    "PRIVILEGED",
    "UNPRIVILEGED",
    "AccessAux",
    "CtxField",
    "CtxStruct",
    "IsValidAccess",
    "ProgInfo",
    "ProgTypeDescriptor",
    "RetvalRange",
    "RuntimeField",
    "RuntimeLayout",
    "narrow_access_ok",
]

PRIVILEGED: Caps = frozenset({CAP_BPF, CAP_PERFMON})
UNPRIVILEGED: Caps = frozenset()


@dataclass(frozen=True, slots=True)
class CtxField:
    """One field of a user-visible context struct. ``count > 1`` for arrays (``cb[5]``).

    ``access``/``reg_type`` matter only for declaratively checked (application-defined) types:
    ``"r"`` read-only, ``"rw"`` read-write, ``""`` inaccessible; ``reg_type`` the register type a
    full-size load yields (``RegType.PTR_TO_PACKET``...), ``SCALAR_VALUE`` for plain values.
    """

    name: str
    offset: int
    size: int
    count: int = 1
    access: str = "r"
    reg_type: int = RegType.SCALAR_VALUE

    @property
    def end(self) -> int:
        return self.offset + self.size * self.count


@dataclass(frozen=True, slots=True)
class CtxStruct:
    """A user-visible context struct: its C name, size and fields (``struct xdp_md``...)."""

    name: str
    size: int
    fields: tuple[CtxField, ...]

    def field(self, name: str) -> CtxField:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"{self.name} has no field {name!r}")

    def field_at(self, off: int) -> CtxField | None:
        """The field whose bytes contain offset ``off``."""
        for f in self.fields:
            if f.offset <= off < f.end:
                return f
        return None

    def offsetof(self, name: str) -> int:
        base, _, idx = name.partition("[")
        f = self.field(base)
        return f.offset + (int(idx.rstrip("]")) * f.size if idx else 0)

    def range_of(self, name: str) -> range:
        """The kernel's ``bpf_ctx_range(struct, field)``: every offset inside the field."""
        f = self.field(name.partition("[")[0])
        start = self.offsetof(name)
        return range(start, start + (f.size if "[" in name else f.size * f.count))


@dataclass(frozen=True, slots=True)
class RuntimeField:
    """One field of a runtime context: where it lives and how wide it is (bytes, little-endian)."""

    name: str
    offset: int
    size: int


@dataclass(frozen=True, slots=True)
class RuntimeLayout:
    """The memory a program's context pointer (R1) really points to at run time.

    ``fields`` maps a name to its :class:`RuntimeField`. Pointer fields (``data``, ``data_end``,
    ``data_meta``, ``sk``) are 8 bytes wide and hold addresses in the executing engine's address
    space; every other field holds the value the user-visible field reads as.
    """

    name: str
    size: int
    fields: Mapping[str, RuntimeField]

    def __getitem__(self, name: str) -> RuntimeField:
        return self.fields[name]

    def pack(self, values: Mapping[str, int]) -> bytearray:
        """A zeroed runtime context with ``values`` stored in their fields (little-endian)."""
        buf = bytearray(self.size)
        for name, value in values.items():
            f = self.fields[name]
            buf[f.offset : f.offset + f.size] = (value & ((1 << (8 * f.size)) - 1)).to_bytes(f.size, "little")
        return buf

    def unpack(self, buf: bytes | bytearray | memoryview) -> dict[str, int]:
        """Field values of a runtime context (little-endian, unsigned)."""
        return {n: int.from_bytes(bytes(buf[f.offset : f.offset + f.size]), "little") for n, f in self.fields.items()}

    @staticmethod
    def build(name: str, fields: list[tuple[str, int]], *, align: int = 8) -> RuntimeLayout:
        """Lay ``(name, size)`` fields out in order, each aligned to its size."""
        off = 0
        out: dict[str, RuntimeField] = {}
        for fname, size in fields:
            off = (off + size - 1) // size * size
            out[fname] = RuntimeField(fname, off, size)
            off += size
        total = (off + align - 1) // align * align
        return RuntimeLayout(name, total, out)


@dataclass(slots=True)
class AccessAux:
    """``struct bpf_insn_access_aux``: what ``is_valid_access`` tells the verifier back."""

    reg_type: int = RegType.SCALAR_VALUE
    is_ldsx: bool = False
    ctx_field_size: int = 0
    btf_struct: str | None = None


@dataclass(frozen=True, slots=True)
class ProgInfo:
    """What the type-specific callbacks may know about the program being loaded."""

    prog_type: int
    expected_attach_type: int = 0
    caps: Caps = PRIVILEGED
    sleepable: bool = False
    attach_btf_id: int = 0
    offloaded: bool = False

    @property
    def bpf_capable(self) -> bool:
        return CAP_BPF in self.caps


@dataclass(frozen=True, slots=True)
class RetvalRange:
    """``struct bpf_retval_range``: the values R0 may hold at program exit."""

    minval: int
    maxval: int


class IsValidAccess(Protocol):
    def __call__(self, off: int, size: int, type: AccessType, prog: ProgInfo, aux: AccessAux) -> bool: ...


def narrow_access_ok(off: int, size: int, size_default: int) -> bool:
    """``bpf_ctx_narrow_access_ok``: a power-of-two size no wider than the field."""
    return size <= size_default and (size & (size - 1)) == 0


@dataclass(frozen=True, slots=True)
class CtxMapping:
    """How one user-visible field is reached at run time: a runtime field, optionally a region
    (``cb[]``: any access size maps byte for byte).

    ``store_size``: stores write only this many low bytes of the (wider) runtime field, for fields
    the kernel keeps narrower than their ``u32`` in ``__sk_buff`` (``tc_index``, ``tc_classid``,
    ``queue_mapping`` are 16-bit in ``struct sk_buff``); ``store_below``: a stored value at or above
    it is dropped (``queue_mapping`` ignores ``NO_QUEUE_MAPPING``, 0xffff)."""

    runtime: str
    region: bool = False
    store_size: int | None = None
    store_below: int | None = None


@dataclass(frozen=True)
class ProgTypeDescriptor:
    """Everything the verifier and the kernel layer need to know about one program type."""

    prog_type: int
    name: str
    ctx: CtxStruct | None
    runtime: RuntimeLayout | None
    is_valid_access: IsValidAccess
    func_proto: FuncProtoSwitch | None = None
    ctx_map: Mapping[str, CtxMapping] = field(default_factory=dict)
    return_range: Callable[[ProgInfo], RetvalRange | None] = field(default=lambda prog: None)
    packet_access: str = ""
    ld_abs: bool = False
    unpriv: bool = False
    has_ctx_out: bool = False
    test_run: str = ""
    ctx_btf_name: str = ""
    # whether the kernel's verifier ops have convert_ctx_access; without it (kprobe, tracepoint,
    # raw_tp) a helper's or global function's memory argument on the context is checked byte-wise
    # through is_valid_access instead of being refused
    ctx_convert: bool = True
    extra_helpers: Mapping[int, HelperProto] = field(default_factory=dict)
    helper_filter: Callable[[int, ProgInfo], bool] | None = None
    func_proto_first: Callable[[int, ProgInfo], HelperProto | None] | None = None
    """Consulted before ``func_proto`` (e.g. ``cgroup_common_func_proto`` for CGROUP_SKB)."""

    # -- helpers ---------------------------------------------------------------------------
    def get_func_proto(self, helper_id: int, prog: ProgInfo) -> HelperProto | None:
        """The kernel's ``ops->get_func_proto(func_id, prog)``: the prototype if this program may
        call ``helper_id`` with its capabilities, else ``None``."""
        if helper_id in self.extra_helpers:
            return self.extra_helpers[helper_id]
        if self.func_proto_first is not None:
            first = self.func_proto_first(helper_id, prog)
            if first is not None:
                return first
        if self.helper_filter is not None and not self.helper_filter(helper_id, prog):
            return None
        if self.func_proto is None:
            return None
        return self.func_proto.lookup(helper_id, prog.caps)

    def allowed_helpers(self, prog: ProgInfo) -> dict[int, HelperProto]:
        """Every helper id this program may call, with its prototype."""
        out: dict[int, HelperProto] = {}
        from pybpf.uapi import HelperId

        for hid in HelperId:
            proto = self.get_func_proto(int(hid), prog)
            if proto is not None:
                out[int(hid)] = proto
        out.update(self.extra_helpers)
        return out

    def may_access_direct_pkt_data(self, access: AccessType) -> bool:
        if access == AccessType.WRITE:
            return self.packet_access == "rw"
        return bool(self.packet_access)

    # -- context conversion --------------------------------------------------------------------
    def runtime_access(self, off: int, size: int) -> tuple[int, int] | None:
        """Where a user-visible access of ``size`` bytes at ``off`` lands in the runtime layout:
        ``(runtime offset, runtime size)`` for the whole field (narrow loads are the verifier's
        business: it loads the field and shifts/masks), or ``None`` if the field has no mapping."""
        if self.ctx is None or self.runtime is None:
            return None
        f = self.ctx.field_at(off)
        m = self._mapping_at(off)
        if f is None or m is None:
            return None
        rt = self.runtime.fields[m.runtime]
        if m.region:
            return rt.offset + (off - f.offset), size
        return rt.offset, rt.size

    def convert_ctx_access(self, insn: Insn, field_size: int) -> list[Insn] | None:
        """The kernel's ``ops->convert_ctx_access`` for one full-field ``ldx``/``stx`` on the context.

        ``insn.off`` is the user-visible offset (aligned down to the field start for narrow loads),
        ``field_size`` the user-visible access size. Returns the runtime access, or ``None`` where
        the type has no conversion (plain-memory contexts: the access stays as written).
        """
        where = self.runtime_access(insn.off, field_size)
        if where is None:
            return None
        rt_off, rt_size = where
        size = Size.from_bytes(rt_size)
        if insn.cls == InsnClass.LDX:
            return [Insn(InsnClass.LDX | Mode.MEM | size, insn.dst, insn.src, rt_off, 0, insn.meta)]
        m = self._mapping_at(insn.off)
        if m is not None and m.store_size is not None:
            size = Size.from_bytes(m.store_size)
        guard = m.store_below if m is not None else None
        if insn.cls == InsnClass.STX:
            if guard is None:
                return [Insn(InsnClass.STX | Mode.MEM | size, insn.dst, insn.src, rt_off, 0, insn.meta)]
            # if src >= guard skip the store (JGE), as the kernel converts queue_mapping writes
            return [Insn(InsnClass.JMP | JmpOp.JGE, insn.src, 0, 1, guard, insn.meta),
                    Insn(InsnClass.STX | Mode.MEM | size, insn.dst, insn.src, rt_off, 0)]
        if insn.cls == InsnClass.ST:
            if guard is not None and insn.imm & 0xFFFFFFFF >= guard:
                return [Insn(InsnClass.JMP, 0, 0, 0, 0, insn.meta)]  # ja +0: the store is dropped
            return [Insn(InsnClass.ST | Mode.MEM | size, insn.dst, 0, rt_off, insn.imm, insn.meta)]
        return None

    def _mapping_at(self, off: int) -> CtxMapping | None:
        f = self.ctx.field_at(off) if self.ctx is not None else None
        if f is None:
            return None
        key = f.name if f.count == 1 else f"{f.name}[{(off - f.offset) // f.size}]"
        return self.ctx_map.get(key) or self.ctx_map.get(f.name)

    # -- application-defined types ----------------------------------------------------------
    @staticmethod
    def custom(
        prog_type: int,
        name: str,
        ctx: CtxStruct,
        *,
        helpers: Mapping[int, HelperProto] | None = None,
        return_range: RetvalRange | None = None,
        base_helpers: FuncProtoSwitch | None = None,
        unpriv: bool = False,
        packet_access: str = "",
    ) -> ProgTypeDescriptor:
        """A program type defined by an application: the context is plain memory laid out as
        ``ctx`` (runtime layout = user layout, no conversion), accesses checked field by field
        (:func:`declarative_access`), helpers = ``helpers`` (+ ``base_helpers``, e.g.
        ``func_proto_switch("bpf_base_func_proto")``), return value in ``return_range``."""
        layout = RuntimeLayout(
            ctx.name, ctx.size,
            {f.name: RuntimeField(f.name, f.offset, f.size * f.count) for f in ctx.fields},
        )
        rr = return_range
        return ProgTypeDescriptor(
            prog_type=prog_type,
            name=name,
            ctx=ctx,
            runtime=layout,
            is_valid_access=declarative_access(ctx),
            func_proto=base_helpers,
            return_range=lambda prog: rr,
            extra_helpers=dict(helpers or {}),
            unpriv=unpriv,
            packet_access=packet_access,
            ctx_btf_name=ctx.name,
            test_run="raw",
        )


def declarative_access(ctx: CtxStruct) -> IsValidAccess:
    """An ``is_valid_access`` from field declarations: inside one field, aligned, ``access`` allows
    the direction; a field with a pointer ``reg_type`` needs full-size loads; scalar fields allow
    narrow (power-of-two) loads."""

    def check(off: int, size: int, type: AccessType, prog: ProgInfo, aux: AccessAux) -> bool:
        if off < 0 or off + size > ctx.size or off % size:
            return False
        f = ctx.field_at(off)
        if f is None or off + size > f.end:
            return False
        if type == AccessType.WRITE and "w" not in f.access:
            return False
        if type == AccessType.READ and "r" not in f.access:
            return False
        if f.reg_type != RegType.SCALAR_VALUE:
            if size != f.size or aux.is_ldsx or type == AccessType.WRITE:
                return False
            aux.reg_type = f.reg_type
            return True
        if f.count > 1:
            return True
        if type == AccessType.WRITE:
            return size == f.size
        aux.ctx_field_size = f.size
        return narrow_access_ok(off, size, f.size)

    return check
