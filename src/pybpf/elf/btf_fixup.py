"""The BTF libbpf works with (and hands to ``BPF_BTF_LOAD``) after opening an object.

clang leaves DATASEC sizes and variable offsets at zero; extern variables and kfuncs are not
loadable as they are; hidden global functions should be verified as static. libbpf rewrites the
object's BTF at open time, and everything after that (map key/value type ids, ``BPF_F_MMAPABLE``,
``bpf_prog_load``'s func info) refers to the rewritten one. The same rewrites here, as pure
functions over type tuples:

* ``.kconfig`` / ``.ksyms`` (``bpf_object__collect_externs``): kconfig VARs become allocated, at
  their computed offsets; ksym VARs become 4-byte ``int`` placeholders and kfunc entries point at a
  new ``dummy_ksym`` VAR, the kfuncs themselves become global, unnamed parameters get a name;
* every other DATASEC (``btf_fixup_datasec``): size from the ELF section, variable offsets from the
  ELF symbols, hidden/internal globals made static, variables sorted by offset;
* hidden global subprograms become static FUNCs (``bpf_object__sanitize_and_load_btf``).

Type ids never change (the dummy VAR is appended) and neither do string offsets (the original
string table is kept, new names appended), so type ids and the line info's file name and source
text offsets recorded before the fix-up stay valid.
"""

from __future__ import annotations

from dataclasses import replace

from pybpf.btf.spec import BtfSpec
from pybpf.btf.types import BtfType, Datasec, Func, FuncLinkage, FuncProto, Int, Param, Var, VarLinkage
from pybpf.elf.reader import STB_GLOBAL, STB_WEAK, STT_OBJECT, STV_HIDDEN, STV_INTERNAL, ElfFile
from pybpf.elf.spec import Extern, ExternKind
from pybpf.errors import BtfError

__all__ = ["fixup_btf"]


def fixup_btf(btf: BtfSpec, elf: ElfFile, externs: list[Extern], hidden_funcs: set[str]) -> BtfSpec:
    """The object's BTF as libbpf loads it (the rewrites of the module docstring); ``btf`` itself
    when nothing changes. ``externs`` carry the ``.kconfig`` offsets already laid out."""
    types: list[BtfType] = list(btf.types)
    ext_by_name = {e.name: e for e in externs}
    int_id = next((i for i, t in enumerate(types) if isinstance(t, Int) and t.nr_bits == 32), 0)

    # .ksyms: a dummy VAR for kfunc entries (added only when there are kfuncs in the section)
    ksyms = btf.find_one(".ksyms")
    dummy_id = 0
    if ksyms is not None and isinstance(types[ksyms], Datasec):
        dsec = types[ksyms]
        assert isinstance(dsec, Datasec)
        if any(isinstance(types[v.type], Func) for v in dsec.vars):
            dummy_id = len(types)
            types.append(Var("dummy_ksym", int_id, VarLinkage.GLOBAL_ALLOCATED))
        new_vars = []
        for i, v in enumerate(dsec.vars):
            vt = types[v.type]
            if vt.name not in ext_by_name:
                raise BtfError(f"failed to find extern definition for BTF {vt.kind} '{vt.name}'", path=elf.path)
            if isinstance(vt, Func):
                proto = types[vt.type]
                if isinstance(proto, FuncProto):
                    types[vt.type] = replace(
                        proto,
                        params=tuple(Param(p.name or ("dummy_ksym" if p.type else ""), p.type) for p in proto.params),
                    )
                types[v.type] = replace(vt, linkage=FuncLinkage.GLOBAL)
                new_vars.append(replace(v, type=dummy_id, offset=i * 4, size=4))
            elif isinstance(vt, Var):
                types[v.type] = replace(vt, linkage=VarLinkage.GLOBAL_ALLOCATED, type=int_id)
                new_vars.append(replace(v, offset=i * 4, size=4))
            else:
                new_vars.append(v)
        types[ksyms] = replace(dsec, size=len(dsec.vars) * 4, vars=tuple(sorted(new_vars, key=lambda v: v.offset)))

    kconfig = btf.find_one(".kconfig")
    if kconfig is not None and isinstance(types[kconfig], Datasec):
        dsec = types[kconfig]
        assert isinstance(dsec, Datasec)
        new_vars = []
        end = 0
        for v in dsec.vars:
            vt = types[v.type]
            ext = ext_by_name.get(vt.name)
            if ext is None or ext.kind != ExternKind.KCONFIG:
                raise BtfError(f"failed to find extern definition for BTF var '{vt.name}'", path=elf.path)
            if isinstance(vt, Var):
                types[v.type] = replace(vt, linkage=VarLinkage.GLOBAL_ALLOCATED)
            new_vars.append(replace(v, offset=ext.offset))
            end = max(end, ext.offset + ext.size)
        types[kconfig] = replace(dsec, size=end, vars=tuple(sorted(new_vars, key=lambda v: v.offset)))

    # every other DATASEC: sizes and offsets from the ELF file
    syms = {}
    for s in elf.symbols:
        if s.type == STT_OBJECT and s.bind in (STB_GLOBAL, STB_WEAK) and s.name not in syms:
            syms[s.name] = s
    for tid, t in enumerate(btf.types):
        if not isinstance(t, Datasec) or t.name in (".kconfig", ".ksyms"):
            continue
        size = t.size
        fix_offsets = False
        if size == 0:
            sec = elf.section_by_name(t.name)
            if sec is None or sec.size == 0:
                raise BtfError(f"sec '{t.name}': failed to determine size from ELF", path=elf.path)
            size = sec.size
            fix_offsets = True
        if size > 0xFFFFFFFF:
            raise BtfError(f"sec '{t.name}': size {size} does not fit BTF", path=elf.path)
        new_vars = []
        for v in t.vars:
            vt = types[v.type]
            if not isinstance(vt, Var):
                raise BtfError(f"sec '{t.name}': unexpected non-VAR type found", path=elf.path)
            if vt.linkage in (VarLinkage.STATIC, VarLinkage.GLOBAL_EXTERN):
                new_vars.append(v)
                continue
            sym = syms.get(vt.name)
            if sym is None:
                raise BtfError(f"sec '{t.name}': failed to find ELF symbol for VAR '{vt.name}'", path=elf.path)
            if fix_offsets:
                if sym.value > 0xFFFFFFFF:
                    raise BtfError(f"sec '{t.name}': VAR '{vt.name}' at offset {sym.value:#x}", path=elf.path)
                v = replace(v, offset=sym.value)
            if sym.visibility in (STV_HIDDEN, STV_INTERNAL):
                types[v.type] = replace(vt, linkage=VarLinkage.STATIC)
            new_vars.append(v)
        types[tid] = replace(t, size=size, vars=tuple(sorted(new_vars, key=lambda v: v.offset)))

    for tid, t in enumerate(types):
        if isinstance(t, Func) and t.linkage == FuncLinkage.GLOBAL and t.name in hidden_funcs:
            types[tid] = replace(t, linkage=FuncLinkage.STATIC)
            hidden_funcs = hidden_funcs - {t.name}

    if types == list(btf.types):
        return btf
    return BtfSpec.from_types(types, strings=btf.strings)
