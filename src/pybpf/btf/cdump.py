"""BTF to compilable C: what ``bpftool btf dump file X format c`` prints, character for character.

The algorithm is libbpf's ``btf_dump`` (tools/lib/bpf/btf_dump.c), re-expressed:

1. **Order** (``_order``): a DFS that emits named definitions after everything they *embed*; links
   through a pointer to a named struct are "weak" (a forward declaration suffices), everything
   else is "strong". A strong cycle is an error.
2. **Emit** (``_emit_type``): walk the ordered ids, print forward declarations where a type is
   needed before its definition, then definitions. Anonymous structs/unions/enums are printed
   inline where used.
3. **Declarations** (``_emit_type_decl``/``_emit_type_chain``): turn a chain of BTF modifiers,
   pointers, arrays and function prototypes into C declarator syntax (``int (*f[4])(void)``).

Names that repeat (two ``struct foo`` in one BTF) get ``___2``, ``___3`` suffixes in first-use
order, as libbpf does. bpftool 7.5 (Linux 6.12) sorts the top-level types before dumping (rank,
name, a hash of the layout) unless ``unsorted`` is given, and appends the kfunc prototypes; both are
reproduced here (:func:`dump_c`).
"""

from __future__ import annotations

from pybpf.btf.spec import BtfSpec
from pybpf.btf.types import (
    Array,
    BtfKind,
    BtfType,
    Const,
    Datasec,
    DeclTag,
    Enum,
    Enum64,
    Float,
    Func,
    FuncProto,
    Fwd,
    Int,
    Ptr,
    Restrict,
    Struct,
    Typedef,
    TypeTag,
    Union,
    Var,
    Volatile,
)
from pybpf.errors import BtfError

__all__ = ["CDumper", "dump_c"]

_NOT, _ING, _ED = 0, 1, 2  # not ordered/emitted, ordering/emitting, ordered/emitted
_MAX_CHAIN = 4096  # a declarator chain longer than this is a cycle in hostile input
_MAX_PADDING_BITS = 1 << 24  # 2 MiB of padding: more is a corrupt size, not a struct to print
_MISSING_BASE_TYPES = {
    "__Poly8_t": "unsigned char",
    "__Poly16_t": "unsigned short",
    "__Poly64_t": "unsigned long long",
    "__Poly128_t": "unsigned __int128",
}
_MODS = (BtfKind.VOLATILE, BtfKind.CONST, BtfKind.RESTRICT, BtfKind.TYPE_TAG)


def _pfx(lvl: int) -> str:
    return "\t" * min(lvl, 13)


def _roundup(x: int, y: int) -> int:
    # libbpf divides by zero here for a zero alignment (corrupt BTF); pybpf leaves x alone
    return (x + y - 1) // y * y if y else x


class CDumper:
    """One ``struct btf_dump``: state shared by consecutive :meth:`dump_type` calls (a type emitted
    once is not emitted again; duplicate names keep their suffixes)."""

    def __init__(self, spec: BtfSpec) -> None:
        self.spec = spec
        self.ptr_sz = spec.pointer_size
        n = len(spec)
        self.order_state = [_NOT] * n
        self.emit_state = [_NOT] * n
        self.order_state[0] = _ED
        self.emit_state[0] = _ED
        self.fwd_emitted = [False] * n
        self.name_resolved = [False] * n
        self.referenced = [False] * n
        self.cached_names: list[str | None] = [None] * n
        self.type_names: dict[str, int] = {}
        self.ident_names: dict[str, int] = {}
        self.strip_mods = False
        self.skip_anon_defs = False
        self.out: list[str] = []
        self._mark_referenced()

    # -- helpers ----------------------------------------------------------------------------
    def _t(self, tid: int) -> BtfType:
        return self.spec.types[tid]

    def _p(self, s: str) -> None:
        self.out.append(s)

    def text(self) -> str:
        """Everything emitted so far."""
        return "".join(self.out)

    def _mark_referenced(self) -> None:
        ref = self.referenced
        for t in self.spec.types[1:]:
            if isinstance(t, Volatile | Const | Restrict | Ptr | Typedef | Func | Var | DeclTag | TypeTag):
                ref[t.type] = True
            elif isinstance(t, Array):
                ref[t.index_type] = True
                ref[t.type] = True
            elif isinstance(t, Struct | Union):
                for m in t.members:
                    ref[m.type] = True
            elif isinstance(t, FuncProto):
                for p in t.params:
                    ref[p.type] = True
            elif isinstance(t, Datasec):
                for v in t.vars:
                    ref[v.type] = True

    def _align_of(self, tid: int) -> int:
        try:
            return self.spec.align_of(tid)
        except BtfError:
            return 0

    def _resolve_size(self, tid: int) -> int:
        try:
            return self.spec.resolve_size(tid)
        except BtfError:
            return -1

    # -- public -----------------------------------------------------------------------------
    def dump_type(self, tid: int) -> None:
        """``btf_dump__dump_type``: emit ``tid`` and every type it needs that is not out yet."""
        if not 0 <= tid < len(self.spec):
            raise BtfError(f"type id {tid} out of range")
        queue: list[int] = []
        try:
            self._order(tid, False, queue)
            for q in queue:
                self._emit_type(q, 0)
        except RecursionError:
            raise BtfError(f"type [{tid}]: type graph too deep to print as C") from None

    def emit_type_decl(self, tid: int, fname: str = "", lvl: int = 0) -> None:
        """``btf_dump__emit_type_decl``: a declaration of ``fname`` with type ``tid``."""
        try:
            self._emit_type_decl(tid, fname, lvl)
        except RecursionError:
            raise BtfError(f"type [{tid}]: type graph too deep to print as C") from None

    # -- ordering ---------------------------------------------------------------------------
    def _order(self, tid: int, through_ptr: bool, queue: list[int]) -> int:
        if self.order_state[tid] == _ED:
            return 1
        t = self._t(tid)
        if self.order_state[tid] == _ING:
            if isinstance(t, Struct | Union) and through_ptr and t.name:
                return 0
            raise BtfError(f"unsatisfiable type cycle, id:[{tid}]")
        if isinstance(t, Int | Float):
            self.order_state[tid] = _ED
            return 0
        if isinstance(t, Ptr):
            res = self._order(t.type, True, queue)
            self.order_state[tid] = _ED
            return res
        if isinstance(t, Array):
            return self._order(t.type, False, queue)
        if isinstance(t, Struct | Union):
            if through_ptr and t.name:
                return 0
            self.order_state[tid] = _ING
            for m in t.members:
                self._order(m.type, False, queue)
            if t.name:
                queue.append(tid)
            self.order_state[tid] = _ED
            return 1
        if isinstance(t, Enum | Enum64 | Fwd):
            if t.name or not self.referenced[tid]:
                queue.append(tid)
            self.order_state[tid] = _ED
            return 1
        if isinstance(t, Typedef):
            is_strong = self._order(t.type, through_ptr, queue)
            if through_ptr and not is_strong:
                return 0
            queue.append(tid)
            self.order_state[tid] = _ED
            return 1
        if isinstance(t, Volatile | Const | Restrict | TypeTag):
            return self._order(t.type, through_ptr, queue)
        if isinstance(t, FuncProto):
            strong = self._order(t.ret, through_ptr, queue) > 0
            for p in t.params:
                if self._order(p.type, through_ptr, queue) > 0:
                    strong = True
            return int(strong)
        if isinstance(t, Func | Var | Datasec | DeclTag):
            self.order_state[tid] = _ED
            return 0
        raise BtfError(f"type [{tid}]: cannot order {t.kind}")

    # -- emitting ---------------------------------------------------------------------------
    def _is_blacklisted(self, tid: int) -> bool:
        return self._t(tid).name == "__builtin_va_list"

    def _emit_type(self, tid: int, cont_id: int) -> None:
        if self.emit_state[tid] == _ED:
            return
        t = self._t(tid)
        top_level = cont_id == 0
        if self.emit_state[tid] == _ING:
            if self.fwd_emitted[tid]:
                return
            if isinstance(t, Struct | Union):
                if tid == cont_id:
                    return
                if not t.name:
                    return  # anonymous struct/union loop: libbpf warns and carries on
                self._emit_struct_fwd(tid, t)
                self._p(";\n\n")
                self.fwd_emitted[tid] = True
            elif isinstance(t, Typedef):
                if not self._is_blacklisted(tid):
                    self._emit_typedef_def(tid, t, 0)
                    self._p(";\n\n")
                self.fwd_emitted[tid] = True
            return

        if isinstance(t, Int):
            name = self._type_name(tid)
            if name in _MISSING_BASE_TYPES:
                self._p(f"typedef {_MISSING_BASE_TYPES[name]} {name};\n\n")
            self.emit_state[tid] = _ED
        elif isinstance(t, Enum | Enum64):
            if top_level:
                self._emit_enum_def(tid, t, 0)
                self._p(";\n\n")
            self.emit_state[tid] = _ED
        elif isinstance(t, Ptr | Volatile | Const | Restrict | TypeTag | Array):
            self._emit_type(t.type, cont_id)
        elif isinstance(t, Fwd):
            self._emit_fwd_def(tid, t)
            self._p(";\n\n")
            self.emit_state[tid] = _ED
        elif isinstance(t, Typedef):
            self.emit_state[tid] = _ING
            self._emit_type(t.type, tid)
            if not self.fwd_emitted[tid] and not self._is_blacklisted(tid):
                self._emit_typedef_def(tid, t, 0)
                self._p(";\n\n")
            self.emit_state[tid] = _ED
        elif isinstance(t, Struct | Union):
            self.emit_state[tid] = _ING
            if top_level or not t.name:
                new_cont = cont_id if not t.name else tid
                for m in t.members:
                    self._emit_type(m.type, new_cont)
            elif not self.fwd_emitted[tid] and tid != cont_id:
                self._emit_struct_fwd(tid, t)
                self._p(";\n\n")
                self.fwd_emitted[tid] = True
            if top_level:
                self._emit_struct_def(tid, t, 0)
                self._p(";\n\n")
                self.emit_state[tid] = _ED
            else:
                self.emit_state[tid] = _NOT
        elif isinstance(t, FuncProto):
            self._emit_type(t.ret, cont_id)
            for p in t.params:
                self._emit_type(p.type, cont_id)

    def _is_struct_packed(self, t: Struct) -> bool:
        max_align = 1
        for m in t.members:
            align = self._align_of(m.type)
            if align and m.bitfield_size == 0 and m.bits_offset % (8 * align):
                return True
            max_align = max(align, max_align)
        return t.size % max_align != 0

    def _emit_bit_padding(self, cur_off: int, next_off: int, next_align: int, in_bitfield: bool, lvl: int) -> None:
        pads = (("long", self.ptr_sz * 8), ("int", 32), ("short", 16), ("char", 8))
        if cur_off >= next_off:
            return
        if next_off - cur_off > _MAX_PADDING_BITS:
            raise BtfError(f"padding of {next_off - cur_off} bits is too large to print")
        new_off = 0
        pad_type, pad_bits = pads[-1]
        for pad_type, pad_bits in pads:  # noqa: B007 - the loop variables are the result
            new_off = _roundup(cur_off, pad_bits)
            if new_off <= next_off:
                break
        if cur_off < new_off <= next_off:
            if (
                in_bitfield
                or (new_off == next_off and _roundup(cur_off, next_align * 8) != new_off)
                or (new_off != next_off and next_off - new_off <= new_off - cur_off)
            ):
                self._p(f"\n{_pfx(lvl)}{pad_type}: {new_off - cur_off if in_bitfield else 0};")
            cur_off = new_off
        while cur_off != next_off:
            bits = min(next_off - cur_off, pad_bits)
            if bits == pad_bits:
                self._p(f"\n{_pfx(lvl)}{pad_type}: {pad_bits};")
                cur_off += bits
                continue
            for pad_type, pad_bits in reversed(pads):
                if pad_bits < bits:
                    continue
                self._p(f"\n{_pfx(lvl)}{pad_type}: {bits};")
                cur_off += bits
                break

    def _emit_struct_fwd(self, tid: int, t: Struct | Union) -> None:
        kw = "struct" if isinstance(t, Struct) else "union"
        self._p(f"{kw}{' ' if t.name else ''}{self._type_name(tid)}")

    def _emit_struct_def(self, tid: int, t: Struct | Union, lvl: int) -> None:
        is_struct = isinstance(t, Struct)
        align = self._align_of(tid)
        packed = self._is_struct_packed(t) if isinstance(t, Struct) else False
        kw = "struct" if is_struct else "union"
        self._p(f"{kw}{' ' if t.name else ''}{self._type_name(tid)} {{")
        off = 0
        prev_bitfield = False
        for m in t.members:
            m_sz = m.bitfield_size
            m_off = m.bits_offset
            m_align = 1 if packed else self._align_of(m.type)
            in_bitfield = prev_bitfield and m_sz != 0
            self._emit_bit_padding(off, m_off, m_align, in_bitfield, lvl + 1)
            self._p(f"\n{_pfx(lvl + 1)}")
            self._emit_type_decl(m.type, m.name, lvl + 1)
            if m_sz:
                self._p(f": {m_sz}")
                off = m_off + m_sz
                prev_bitfield = True
            else:
                m_sz = max(0, self._resolve_size(m.type))
                off = m_off + m_sz * 8
                prev_bitfield = False
            self._p(";")
        if is_struct:
            self._emit_bit_padding(off, t.size * 8, align, False, lvl + 1)
        if t.members or t.size:
            self._p(f"\n{_pfx(lvl)}}}")
        else:
            self._p("}")
        if packed:
            self._p(" __attribute__((packed))")

    def _emit_enum_fwd(self, tid: int) -> None:
        self._p(f"enum {self._type_name(tid)}")

    def _emit_enum_def(self, tid: int, t: Enum | Enum64, lvl: int) -> None:
        self._p(f"enum{' ' if t.name else ''}{self._type_name(tid)}")
        if not t.values:
            return
        self._p(" {")
        suffix = ("LL" if t.signed else "ULL") if isinstance(t, Enum64) else ""
        for v in t.values:
            dup = self._name_dups(self.ident_names, v.name)
            name = f"{v.name}___{dup}" if dup > 1 else v.name
            self._p(f"\n{_pfx(lvl + 1)}{name} = {v.value}{suffix},")
        self._p(f"\n{_pfx(lvl)}}}")
        if t.size == 1:
            self._p(" __attribute__((mode(byte)))")
        elif t.size == 8 and self.ptr_sz == 8:
            if isinstance(t, Enum):
                needs_word = True
            else:
                needs_word = all(((v.value & 0xFFFFFFFFFFFFFFFF) >> 32) == 0 for v in t.values)
            if needs_word:
                self._p(" __attribute__((mode(word)))")

    def _emit_fwd_def(self, tid: int, t: Fwd) -> None:
        name = self._type_name(tid)
        self._p(f"union {name}" if t.is_union else f"struct {name}")

    def _emit_typedef_def(self, tid: int, t: Typedef, lvl: int) -> None:
        name = self._ident_name(tid)
        if t.type == 0 and name == "__gnuc_va_list":
            self._p("typedef __builtin_va_list __gnuc_va_list")
            return
        self._p("typedef ")
        self._emit_type_decl(t.type, name, lvl)

    # -- declarations -----------------------------------------------------------------------
    def _emit_type_decl(self, tid: int, fname: str, lvl: int) -> None:
        stack: list[int] = []
        for _ in range(_MAX_CHAIN):
            t = self._t(tid)
            if not (self.strip_mods and t.kind in _MODS):
                stack.append(tid)
            if tid == 0:
                break
            if isinstance(t, Ptr | Volatile | Const | Restrict | TypeTag):
                tid = t.type
            elif isinstance(t, FuncProto):
                tid = t.ret
            elif isinstance(t, Array):
                tid = t.type
            else:
                break  # terminal kinds, or an unexpected kind (libbpf warns and stops)
        else:
            raise BtfError(f"type [{tid}]: declaration chain does not terminate")
        self._emit_type_chain(stack, fname, lvl)

    def _emit_mods(self, decls: list[int]) -> None:
        while decls:
            t = self._t(decls[-1])
            if isinstance(t, Volatile):
                self._p("volatile ")
            elif isinstance(t, Const):
                self._p("const ")
            elif isinstance(t, Restrict):
                self._p("restrict ")
            else:
                return
            decls.pop()

    def _drop_mods(self, decls: list[int]) -> None:
        while decls and self._t(decls[-1]).kind in _MODS:
            decls.pop()

    def _emit_name(self, name: str, last_was_ptr: bool) -> None:
        self._p(f"{' ' if name and not last_was_ptr else ''}{name}")

    def _emit_type_chain(self, decls: list[int], fname: str, lvl: int) -> None:
        last_was_ptr = True
        while decls:
            tid = decls.pop()
            if tid == 0:
                self._emit_mods(decls)
                self._p("void")
                last_was_ptr = False
                continue
            t = self._t(tid)
            if isinstance(t, Int | Float):
                self._emit_mods(decls)
                self._p(t.name)
            elif isinstance(t, Struct | Union):
                self._emit_mods(decls)
                if not t.name and not self.skip_anon_defs:
                    self._emit_struct_def(tid, t, lvl)
                else:
                    self._emit_struct_fwd(tid, t)
            elif isinstance(t, Enum | Enum64):
                self._emit_mods(decls)
                if not t.name and not self.skip_anon_defs:
                    self._emit_enum_def(tid, t, lvl)
                else:
                    self._emit_enum_fwd(tid)
            elif isinstance(t, Fwd):
                self._emit_mods(decls)
                self._emit_fwd_def(tid, t)
            elif isinstance(t, Typedef):
                self._emit_mods(decls)
                self._p(self._ident_name(tid))
            elif isinstance(t, Ptr):
                self._p("*" if last_was_ptr else " *")
            elif isinstance(t, Volatile):
                self._p(" volatile")
            elif isinstance(t, Const):
                self._p(" const")
            elif isinstance(t, Restrict):
                self._p(" restrict")
            elif isinstance(t, TypeTag):
                self._emit_mods(decls)
                self._p(f' __attribute__((btf_type_tag("{t.name}")))')
            elif isinstance(t, Array):
                self._drop_mods(decls)
                if not decls:
                    self._emit_name(fname, last_was_ptr)
                    self._p(f"[{t.nelems}]")
                    return
                multidim = isinstance(self._t(decls[-1]), Array)
                if fname and not last_was_ptr:
                    self._p(" ")
                if not multidim:
                    self._p("(")
                self._emit_type_chain(decls, fname, lvl)
                if not multidim:
                    self._p(")")
                self._p(f"[{t.nelems}]")
                return
            elif isinstance(t, FuncProto):
                self._drop_mods(decls)
                if decls:
                    self._p(" (")
                    self._emit_type_chain(decls, fname, lvl)
                    self._p(")")
                else:
                    self._emit_name(fname, last_was_ptr)
                self._p("(")
                params = t.params
                if not params or (len(params) == 1 and params[0].type == 0):
                    self._p("void)")
                    return
                for i, p in enumerate(params):
                    if i > 0:
                        self._p(", ")
                    if i == len(params) - 1 and p.type == 0:
                        self._p("...")
                        break
                    self._emit_type_decl(p.type, p.name, lvl)
                self._p(")")
                return
            else:
                return  # unexpected kind in a declaration chain
            last_was_ptr = isinstance(t, Ptr)
        self._emit_name(fname, last_was_ptr)

    # -- names ------------------------------------------------------------------------------
    @staticmethod
    def _name_dups(name_map: dict[str, int], name: str) -> int:
        dup = name_map.get(name, 0) + 1
        name_map[name] = dup
        return dup

    def _resolve_name(self, tid: int, name_map: dict[str, int]) -> str:
        t = self._t(tid)
        if not t.name:
            return ""
        if self.name_resolved[tid]:
            return self.cached_names[tid] or t.name
        if isinstance(t, Fwd) or (isinstance(t, Enum) and not t.values):
            self.name_resolved[tid] = True
            return t.name
        dup = self._name_dups(name_map, t.name)
        if dup > 1:
            self.cached_names[tid] = f"{t.name}___{dup}"
        self.name_resolved[tid] = True
        return self.cached_names[tid] or t.name

    def _type_name(self, tid: int) -> str:
        return self._resolve_name(tid, self.type_names)

    def _ident_name(self, tid: int) -> str:
        return self._resolve_name(tid, self.ident_names)


# -- bpftool's sorted dump -------------------------------------------------------------------

_U64 = 0xFFFFFFFFFFFFFFFF


def _str_hash(s: str) -> int:
    h = 0
    for b in s.encode():
        c = b - 256 if b >= 128 else b  # `char` is signed on x86
        h = (h * 31 + c) & _U64
    return h


def _name_hasher(h: int, name: str) -> int:
    if not name:
        return h
    return (h * 31 + _str_hash(name)) & _U64


def _rank(spec: BtfSpec, tid: int, has_name: bool, depth: int = 0) -> int:
    t = spec.types[tid] if 0 <= tid < len(spec) else spec.types[0]
    if t.name:
        has_name = True
    if depth > 64:
        return 10
    if isinstance(t, Enum | Enum64):
        return 1 if has_name else 0
    if isinstance(t, Int | Float):
        return 2
    if isinstance(t, Struct | Union):
        return 3 if has_name else 10
    if isinstance(t, FuncProto):
        return 4 if has_name else 10
    if isinstance(t, Array):
        return _rank(spec, t.type, has_name, depth + 1) if has_name else 10
    if isinstance(t, TypeTag | Const | Ptr | Volatile | Restrict | Typedef | DeclTag):
        return _rank(spec, t.type, has_name, depth + 1) if has_name else 10
    return 10


def _sort_name(spec: BtfSpec, tid: int, from_ref: bool, depth: int = 0) -> str:
    t = spec.types[tid]
    if depth > 64:
        return t.name
    if isinstance(t, Enum | Enum64):
        if not from_ref and not t.name and t.values:
            return t.values[0].name
        return t.name
    if isinstance(t, Array):
        return _sort_name(spec, t.type, True, depth + 1)
    if isinstance(t, TypeTag | Const | Ptr | Volatile | Restrict | Typedef | DeclTag):
        return _sort_name(spec, t.type, True, depth + 1)
    return t.name


def _disambig_hash(spec: BtfSpec, tid: int, include_members: bool, depth: int = 0) -> int:
    t = spec.types[tid]
    h = _name_hasher(0, t.name)
    if depth > 64:
        return h
    if isinstance(t, Enum | Enum64):
        for v in t.values:
            h = _name_hasher(h, v.name)
    elif isinstance(t, Struct | Union):
        if include_members:
            for m in t.members:
                h = _name_hasher(h, m.name)
                h = (h * 31 + _disambig_hash(spec, m.type, False, depth + 1)) & _U64
    elif isinstance(t, TypeTag | Const | Ptr | Volatile | Restrict | Typedef | DeclTag):
        h = (h * 31 + _disambig_hash(spec, t.type, include_members, depth + 1)) & _U64
    elif isinstance(t, Array):
        h = (h * 31 + t.nelems) & _U64
        h = (h * 31 + _disambig_hash(spec, t.type, include_members, depth + 1)) & _U64
    return h


def _sorted_ids(spec: BtfSpec) -> list[int]:
    keys = []
    for i in range(len(spec)):
        t = spec.types[i]
        keys.append(
            (
                _rank(spec, i, False),
                _sort_name(spec, i, False).encode(),
                t.name.encode(),
                _disambig_hash(spec, i, True),
                i,
            )
        )
    keys.sort()
    return [k[-1] for k in keys]


def dump_c(spec: BtfSpec, *, sort: bool = True, root_ids: list[int] | None = None, kfuncs: bool = True) -> str:
    """``bpftool btf dump file X format c`` (add ``unsorted`` with ``sort=False``).

    ``kfuncs=False`` leaves out the ``/* BPF kfuncs */`` block that bpftool 7.5 appends (older
    bpftool versions do not print it).
    """
    d = CDumper(spec)
    d._p(
        "#ifndef __VMLINUX_H__\n#define __VMLINUX_H__\n\n"
        "#ifndef BPF_NO_PRESERVE_ACCESS_INDEX\n"
        "#pragma clang attribute push (__attribute__((preserve_access_index)), apply_to = record)\n"
        "#endif\n\n"
        "#ifndef __ksym\n"
        '#define __ksym __attribute__((section(".ksyms")))\n'
        "#endif\n\n"
        "#ifndef __weak\n"
        "#define __weak __attribute__((weak))\n"
        "#endif\n\n"
    )
    if root_ids:
        for tid in root_ids:
            d.dump_type(tid)
    else:
        order = _sorted_ids(spec) if sort else list(range(len(spec)))
        # bpftool sorts all ids including void and then skips position 0, whatever sorted there
        for pos in range(1, len(spec)):
            d.dump_type(order[pos])
        if kfuncs:
            d._p("\n/* BPF kfuncs */\n#ifndef BPF_NO_KFUNC_PROTOTYPES\n")
            for t in spec.types[1:]:
                if not isinstance(t, DeclTag) or t.component_idx != -1 or t.name != "bpf_kfunc":
                    continue
                ft = spec.types[t.type]
                if not isinstance(ft, Func):
                    continue
                d._p("extern ")
                d.emit_type_decl(ft.type, ft.name, 0)
                d._p(" __weak __ksym;\n")
            d._p("#endif\n\n")
    d._p("#ifndef BPF_NO_PRESERVE_ACCESS_INDEX\n#pragma clang attribute pop\n#endif\n\n#endif /* __VMLINUX_H__ */\n")
    return d.text()
