"""ObjectSpec from the committed fixture objects (tests/data/objects/*.o, built from the .c beside them)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from pybpf.elf import MapOrigin, ObjectSpec, Pinning, RelocKind, read_btf
from pybpf.elf.kconfig import KERNEL_VERSION_6_12
from pybpf.isa import Insns, PseudoCall, PseudoSrc
from pybpf.uapi import (
    BPF_F_LINK,
    BPF_F_MMAPABLE,
    BPF_F_NO_PREALLOC,
    BPF_F_RDONLY_PROG,
    BPF_F_SLEEPABLE,
    BPF_F_XDP_HAS_FRAGS,
    AttachType,
    MapType,
    ProgType,
)

OBJ = Path(__file__).resolve().parents[1] / "data" / "objects"
SEED = Path(__file__).resolve().parents[2] / "examples" / "seed-demo"


def load(name: str) -> ObjectSpec:
    return ObjectSpec.from_path(str(OBJ / f"{name}.o"))


def insn_at(prog, slot):  # type: ignore[no-untyped-def]
    return prog.insns.at(slot)


# -- maps in all three styles ------------------------------------------------------------------


def test_btf_maps_attributes() -> None:
    spec = load("maps_btf")
    m = spec.maps
    assert all(x.origin == MapOrigin.BTF for x in m.values())
    flows = m["flows"]
    assert (flows.type, flows.key_size, flows.value_size, flows.max_entries, flows.flags) == (
        MapType.HASH,
        16,
        16,
        1024,
        BPF_F_NO_PREALLOC,
    )
    assert spec.btf is not None
    assert spec.btf.types[flows.key_type_id].name == "flow_key"
    assert spec.btf.types[flows.value_type_id].name == "flow_val"
    counters = m["counters"]
    assert (counters.key_size, counters.value_size, counters.pinning) == (4, 8, Pinning.BY_NAME)
    assert counters.key_type_id == 0  # sizes given, no types
    routes = m["routes"]
    assert (routes.type, routes.key_size, routes.value_size) == (MapType.LPM_TRIE, 8, 4)
    # libbpf rounds a ring buffer up to a power-of-two number of pages
    assert m["events"].max_entries == 8192
    assert (m["seen"].type, m["seen"].map_extra, m["seen"].key_size) == (MapType.BLOOM_FILTER, 3, 0)


def test_btf_map_in_map_and_prog_array_init() -> None:
    m = load("maps_btf").maps
    outer = m["outer"]
    assert outer.type == MapType.ARRAY_OF_MAPS
    assert outer.value_size == 4
    assert outer.inner_map is not None
    assert (outer.inner_map.type, outer.inner_map.key_size, outer.inner_map.value_size) == (MapType.ARRAY, 4, 8)
    assert outer.inner_map.name == "outer.inner"
    assert outer.values == {0: "inner_a", 2: "inner_b"}
    assert m["jumps"].values == {1: "tail_target"}


def test_btf_maps_follow_section_offsets() -> None:
    """libbpf orders BTF maps by their offset in .maps (after fixing clang's zero offsets)."""
    spec = load("maps_btf")
    btf_maps = [x for x in spec.maps.values() if x.origin == MapOrigin.BTF]
    assert [x.offset for x in btf_maps] == sorted(x.offset for x in btf_maps)
    assert len({x.offset for x in btf_maps}) == len(btf_maps)


def test_legacy_bpf_map_def() -> None:
    spec = load("maps_legacy")
    counts, table = spec.maps["counts"], spec.maps["table"]
    assert counts.origin == table.origin == MapOrigin.LEGACY
    assert (counts.type, counts.key_size, counts.value_size, counts.max_entries, counts.flags) == (
        MapType.ARRAY,
        4,
        8,
        8,
        0,
    )
    assert (table.type, table.key_size, table.value_size, table.max_entries, table.flags) == (
        MapType.HASH,
        8,
        16,
        128,
        1,
    )
    assert spec.kernel_version == 0x060C00
    prog = spec.programs["count"]
    assert prog.kernel_version == 0x060C00
    assert [r.target for r in prog.relocations] == ["counts", "table"]


def test_iproute2_bpf_elf_map() -> None:
    spec = load("maps_iproute2")
    acc, other = spec.maps["acc"], spec.maps["other"]
    assert acc.origin == other.origin == MapOrigin.IPROUTE2
    assert (acc.type, acc.key_size, acc.value_size, acc.max_entries) == (MapType.ARRAY, 4, 4, 2)
    assert (acc.elf_map_id, acc.pinning) == (7, Pinning.GLOBAL_NS)
    assert (other.flags, other.elf_map_id, other.pinning) == (1, 8, Pinning.NONE)
    prog = spec.programs["cls"]
    assert prog.prog_type == ProgType.SCHED_CLS


@pytest.mark.parametrize("compiler", ["clang", "zig"])
def test_seed_demo_both_forms(compiler: str) -> None:
    """The seed demo in its two forms describes the same map and the same program."""
    demo = ObjectSpec.from_path(str(OBJ / "seed" / f"demo_{compiler}.o"))
    legacy = ObjectSpec.from_path(str(OBJ / "seed" / f"demo_legacy_{compiler}.o"))
    for spec, origin in ((demo, MapOrigin.BTF), (legacy, MapOrigin.IPROUTE2)):
        m = spec.maps["pkt_counter"]
        assert (m.type, m.key_size, m.value_size, m.max_entries, m.origin) == (MapType.ARRAY, 4, 4, 1, origin)
        p = spec.programs["xdp_program"]
        assert (p.section, p.prog_type, p.expected_attach_type, p.license) == (
            "xdp",
            ProgType.XDP,
            AttachType.XDP,
            "GPL",
        )
        (rel,) = p.relocations
        assert (rel.kind, rel.target) == (RelocKind.MAP, "pkt_counter")
        lddw = p.insns.at(rel.insn_idx)
        assert (lddw.code, lddw.src, lddw.imm, lddw.meta.reference) == (0x18, PseudoSrc.MAP_FD, 0, "pkt_counter")
    # same code modulo the lddw's placeholder
    assert demo.programs["xdp_program"].insns == legacy.programs["xdp_program"].insns


def test_seed_demo_matches_committed_objdump() -> None:
    """The demo compiled by clang 19 is the program the seed material shows (13 insns, lddw at 4)."""
    spec = ObjectSpec.from_path(str(OBJ / "seed" / "demo_clang.o"))
    p = spec.programs["xdp_program"]
    assert p.insns.slot_count == 13
    text = (SEED / "demo.objdump.txt").read_text()
    raw = bytes(
        int(b, 16)
        for line in text.splitlines()
        if ":\t" in line and line.strip()[0].isdigit()
        for b in line.split(":\t", 1)[1].split("\t")[0].split()
    )
    assert Insns.from_bytes(raw, strict=False).slot_count == 13
    ours = bytearray(p.insns.encode())
    ours[4 * 8 + 1] &= 0x0F  # objdump shows the lddw before the loader set src = BPF_PSEUDO_MAP_FD
    assert bytes(ours) == raw


# -- global data -----------------------------------------------------------------------------


def test_global_data_maps() -> None:
    spec = load("globals")
    m = spec.maps
    assert list(m) == ["globals.data", "globals.rodata", ".data.table", ".rodata.banner", "globals.bss", ".bss.scratch"]
    data, rodata, bss = m["globals.data"], m["globals.rodata"], m["globals.bss"]
    for x in m.values():
        assert (x.type, x.key_size, x.max_entries, x.origin) == (MapType.ARRAY, 4, 1, MapOrigin.DATA)
    assert data.data == struct.pack("<ii", 5, 12)  # counter, hidden_global (clang folded the unwritten static)
    assert data.flags == BPF_F_MMAPABLE and not data.frozen
    assert rodata.flags == BPF_F_RDONLY_PROG | BPF_F_MMAPABLE and rodata.frozen
    assert rodata.data is not None and rodata.data[:4] == struct.pack("<I", 1000)
    assert b"len %u\0" in rodata.data  # bpf_printk's format string
    assert bss.data is None and bss.value_size == 8
    assert m[".rodata.banner"].data == b"pybpf\0\0\0"
    assert m[".rodata.banner"].real_name == ".rodata.banner"
    assert spec.btf is not None
    assert spec.btf.types[data.value_type_id].name == ".data"


def test_global_data_references_are_map_values_with_offsets() -> None:
    spec = load("globals")
    p = spec.programs["read_globals"]
    kinds = {r.kind for r in p.relocations}
    assert kinds == {RelocKind.MAP_VALUE}
    for r in p.relocations:
        insn = p.insns.at(r.insn_idx)
        assert insn.code == 0x18 and insn.src == PseudoSrc.MAP_VALUE
        assert insn.imm_lo == 0 and insn.imm_hi == r.offset
        assert insn.meta.reference == r.target
    offsets = {(r.target, r.offset) for r in p.relocations}
    # .rodata holds limit@0, scale@8 and the printk string@16; .data holds counter@0 and hidden_global@4
    assert {("globals.rodata", 0), ("globals.rodata", 8), ("globals.rodata", 16)} <= offsets
    assert {("globals.data", 0), ("globals.data", 4)} <= offsets


def test_internal_map_names_follow_libbpf() -> None:
    from pybpf.elf import internal_map_name, object_name

    assert internal_map_name("my_object_name", ".rodata") == "my_objec.rodata"
    assert internal_map_name("my_object_name", ".bss") == "my_objec.bss"
    assert internal_map_name("my_object_name", ".kconfig") == "my_obje.kconfig"
    assert internal_map_name("obj", ".rodata.abracadabra") == ".rodata.abracad"
    assert internal_map_name("obj", ".data.a-b") == ".data.a_b"
    assert object_name("/x/verifier_global_subprogs.o") == "verifier_global"
    assert object_name("prog.bpf.o") == "prog"


# -- programs, sections, subprograms -----------------------------------------------------------


def test_sections_to_program_types() -> None:
    spec = load("sections")
    p = spec.programs
    expect = {
        "sock_a": ("socket", ProgType.SOCKET_FILTER, None),
        "sock_b": ("socket", ProgType.SOCKET_FILTER, None),
        "tc_prog": ("tc", ProgType.SCHED_CLS, None),
        "cls_prog": ("classifier", ProgType.SCHED_CLS, None),
        "tcx_prog": ("tc/ingress", ProgType.SCHED_CLS, AttachType.TCX_INGRESS),
        "frags_prog": ("xdp.frags", ProgType.XDP, AttachType.XDP),
        "lazy_prog": ("xdp", ProgType.XDP, AttachType.XDP),
        "kp": ("kprobe/do_unlinkat", ProgType.KPROBE, None),
        "krp": ("kretprobe", ProgType.KPROBE, None),
        "tp": ("tracepoint/syscalls/sys_enter_openat", ProgType.TRACEPOINT, None),
        "rawtp": ("raw_tp/sched_switch", ProgType.RAW_TRACEPOINT, None),
        "rawtp_w": ("raw_tp.w/kfree_skb", ProgType.RAW_TRACEPOINT_WRITABLE, None),
        "cg_in": ("cgroup_skb/ingress", ProgType.CGROUP_SKB, AttachType.CGROUP_INET_INGRESS),
        "cg_connect": ("cgroup/connect4", ProgType.CGROUP_SOCK_ADDR, AttachType.CGROUP_INET4_CONNECT),
        "reuse": ("sk_reuseport/migrate", ProgType.SK_REUSEPORT, AttachType.SK_REUSEPORT_SELECT_OR_MIGRATE),
        "fent": ("fentry/do_unlinkat", ProgType.TRACING, AttachType.TRACE_FENTRY),
        "lsm_s": ("lsm.s/file_open", ProgType.LSM, AttachType.LSM_MAC),
        "sys": ("syscall", ProgType.SYSCALL, None),
        "mystery": ("not_a_known_section", None, None),
    }
    assert set(p) == set(expect)
    for name, (sec, ptype, attach) in expect.items():
        assert (p[name].section, p[name].prog_type, p[name].expected_attach_type) == (sec, ptype, attach), name
    assert not p["lazy_prog"].autoload and p["sock_a"].autoload
    assert p["kp"].attach_to == "do_unlinkat" and p["krp"].attach_to is None
    assert p["frags_prog"].prog_flags == BPF_F_XDP_HAS_FRAGS
    assert p["lsm_s"].prog_flags == BPF_F_SLEEPABLE and p["sys"].prog_flags == BPF_F_SLEEPABLE
    assert spec.unknown_sections == ("not_a_known_section",)
    assert any("not_a_known_section" in w for w in spec.warnings)


def test_programs_in_libbpf_order() -> None:
    spec = load("sections")
    offsets = [(p.section, p.section_offset) for p in spec.programs.values()]
    assert list(spec.programs)[:2] == ["sock_a", "sock_b"]  # one section, two programs, by offset
    assert offsets[0][1] < offsets[1][1]


def test_subprograms_appended_depth_first_per_program() -> None:
    spec = load("subprogs")
    a, b = spec.programs["main_a"], spec.programs["main_b"]
    assert a.subprograms == ("loop_cb", "sub_a", "sub_b", "global_helper")
    assert b.subprograms == ("sub_c", "sub_b", "sub_a")
    assert set(spec.subprograms) == {"sub_a", "sub_b", "sub_c", "global_helper", "loop_cb"}
    for prog in (a, b):
        starts = {ins.meta.symbol: slot for slot, ins in prog.insns.items() if ins.meta.symbol}
        assert starts[prog.name] == 0
        for r in prog.relocations:
            insn = prog.insns.at(r.insn_idx)
            if r.kind == RelocKind.CALL:
                assert insn.src == PseudoCall.CALL
                assert prog.insns.jump_target(r.insn_idx) == starts[r.target]
            elif r.kind == RelocKind.FUNC_ADDR:
                assert insn.code == 0x18 and insn.src == PseudoSrc.FUNC
                assert r.insn_idx + insn.imm_lo + 1 == starts[r.target]
    # the subprogram's map reference moved with it
    (maprel,) = [r for r in b.relocations if r.kind == RelocKind.MAP]
    starts_b = {ins.meta.symbol: slot for slot, ins in b.insns.items() if ins.meta.symbol}
    assert starts_b["sub_c"] < maprel.insn_idx < starts_b["sub_b"]


def test_func_and_line_info_rebased() -> None:
    spec = load("subprogs")
    p = spec.programs["main_a"]
    starts = {ins.meta.symbol: slot for slot, ins in p.insns.items() if ins.meta.symbol}
    assert [fi.insn_off for fi in p.func_info] == [starts[n] for n in ("main_a", *p.subprograms)]
    assert p.insns.at(0).meta.func == "int main_a(struct __sk_buff * skb)"
    assert p.insns.at(starts["sub_b"]).meta.func == "int sub_b(int x)"
    lines = [li.insn_off for li in p.line_info]
    assert lines == sorted(lines) and lines[-1] < p.insns.slot_count
    src = p.insns.at(0).meta.source
    assert src is not None and src.file == "./subprogs.c" and "main_a" in src.text
    assert all(p.insns.is_insn_start(off) for off in lines)
    # the records refer to the BTF the program is loaded with (fixed up, strings kept at their offsets)
    assert spec.btf is not None and spec.btf is not read_btf((OBJ / "subprogs.o").read_bytes())[0]
    for li in p.line_info:
        assert (spec.btf.string_at(li.file_name_off), spec.btf.string_at(li.line_off)) == (li.file, li.text)
    assert len(p.line_info_bytes()) == 16 * len(p.line_info) and len(p.func_info_bytes()) == 8 * len(p.func_info)


def test_call_into_same_section_is_linked() -> None:
    spec = load("same_section")
    caller = spec.programs["caller_prog"]
    assert caller.subprograms == ("helper_prog",)
    (call,) = caller.relocations
    target = caller.insns.jump_target(call.insn_idx)
    assert caller.insns.at(target).meta.symbol == "helper_prog"
    helper = spec.programs["helper_prog"]
    tail = Insns(caller.insns[caller.insns.pos_of(target) :])
    assert tail == helper.insns


# -- externs, CO-RE, struct_ops --------------------------------------------------------------


def test_kconfig_and_ksyms_externs() -> None:
    spec = load("externs")
    ext = {e.name: e for e in spec.externs}
    # libbpf's layout: by alignment (desc), size (asc), name
    assert (ext["CONFIG_HZ"].offset, ext["LINUX_KERNEL_VERSION"].offset) == (0, 4)
    assert (ext["LINUX_HAS_BPF_COOKIE"].offset, ext["CONFIG_LOCALVERSION"].offset) == (8, 9)
    assert ext["LINUX_KERNEL_VERSION"].resolved and not ext["CONFIG_HZ"].resolved
    assert ext["CONFIG_HZ"].is_weak and not ext["bpf_rdonly_cast"].is_weak
    kconfig = spec.maps["externs.kconfig"]
    assert (kconfig.origin, kconfig.value_size, kconfig.frozen) == (MapOrigin.KCONFIG, 17, True)
    assert kconfig.flags & BPF_F_RDONLY_PROG
    assert kconfig.data is not None
    assert struct.unpack_from("<I", kconfig.data, 4)[0] == KERNEL_VERSION_6_12
    assert kconfig.data[8] == 1  # LINUX_HAS_BPF_COOKIE
    p = spec.programs["use_externs"]
    by_kind: dict[RelocKind, list[str]] = {}
    for r in p.relocations:
        by_kind.setdefault(r.kind, []).append(r.target if r.kind != RelocKind.KCONFIG else r.symbol)
    assert sorted(by_kind[RelocKind.KFUNC]) == ["bpf_rcu_read_lock", "bpf_rdonly_cast"]
    assert by_kind[RelocKind.KSYM] == ["bpf_prog_active"]
    assert set(by_kind[RelocKind.KCONFIG]) == {
        "LINUX_KERNEL_VERSION",
        "LINUX_HAS_BPF_COOKIE",
        "CONFIG_HZ",
        "CONFIG_LOCALVERSION",
    }
    for idx, name in p.kfunc_calls():
        insn = p.insns.at(idx)
        assert (insn.code, insn.src, insn.imm, insn.meta.reference) == (0x85, PseudoCall.KFUNC, 0, name)
    assert all(not r.resolved for r in p.relocations)
    # the BTF handed to the kernel: extern VARs allocated, kfuncs global, a dummy_ksym VAR appended
    assert spec.btf is not None
    ks = spec.btf.types[spec.btf.find_one(".ksyms")]
    assert ks.size == 12 and [v.size for v in ks.vars] == [4, 4, 4]  # type: ignore[union-attr]
    assert spec.btf.find_one("dummy_ksym") == len(spec.btf) - 1


def test_core_against_own_uapi_types() -> None:
    spec = load("core")
    p = spec.programs["core_prog"]
    st = {(c.relo.access_str, c.relo.kind.name): c.status for c in p.core_relocations}
    assert st[("0:1", "BPF_CORE_FIELD_BYTE_OFFSET")] == "applied"  # len
    assert st[("0:2", "BPF_CORE_FIELD_BYTE_OFFSET")] == "poisoned"  # no_such_field
    assert st[("0:2", "BPF_CORE_FIELD_EXISTS")] == "applied"
    assert st[("0", "BPF_CORE_TYPE_SIZE")] == "applied"
    assert st[("3", "BPF_CORE_ENUMVAL_VALUE")] == "applied"
    loads = {
        c.relo.access_str: p.insns.at(c.insn_idx)
        for c in p.core_relocations
        if c.relo.kind.name == "BPF_CORE_FIELD_BYTE_OFFSET" and c.status == "applied"
    }
    assert loads["0:1"].off == 0  # __sk_buff.len
    assert loads["0:0"].off == 8  # __sk_buff.mark (the flavor declared it first)
    poisoned = next(c for c in p.core_relocations if c.status == "poisoned")
    assert p.insns.at(poisoned.insn_idx).imm == 0xBAD2310
    exists = next(c for c in p.core_relocations if c.relo.kind.name == "BPF_CORE_FIELD_EXISTS")
    assert p.insns.at(exists.insn_idx).imm == 0
    size = next(c for c in p.core_relocations if c.relo.kind.name == "BPF_CORE_TYPE_SIZE")
    assert p.insns.at(size.insn_idx).imm == 192  # sizeof(struct __sk_buff)


def test_core_against_kernel_types_is_pending_then_applied_with_a_target() -> None:
    from pybpf.btf import BtfSpec, Int, Struct
    from pybpf.btf.types import Member, Void
    from pybpf.elf import apply_core

    spec = load("core")
    p = spec.programs["core_kernel"]
    (c,) = p.core_relocations
    assert c.status == "pending" and "task_struct" in c.reason and "kernel" in c.reason
    # a "kernel" whose task_struct has pid at offset 1000
    target = BtfSpec.from_types(
        [
            Void(),
            Int("int", 4, 1, 0, 32),
            Struct("task_struct", 1008, (Member("state", 1, 0), Member("pid", 1, 8000))),
        ]
    )
    before = p.insns.at(c.insn_idx)
    q = apply_core(p, target)
    assert q.core_relocations[0].status == "applied"
    after = q.insns.at(c.insn_idx)
    assert before.cls == after.cls and after.imm == 1000  # the `r += off` of &t->pid
    spec2 = ObjectSpec.from_path(str(OBJ / "core.o"), core_target=target)
    assert spec2.programs["core_kernel"].insns == q.insns


def test_struct_ops_map() -> None:
    spec = load("struct_ops")
    ops = spec.maps["ops"]
    assert (ops.type, ops.origin, ops.flags, ops.max_entries, ops.key_size) == (
        MapType.STRUCT_OPS,
        MapOrigin.STRUCT_OPS,
        BPF_F_LINK,
        1,
        4,
    )
    assert ops.struct_ops_progs == {"init": "my_init", "release": "my_release"}
    assert ops.data is not None and b"pybpf_ops" in ops.data
    assert spec.programs["my_init"].prog_type == ProgType.STRUCT_OPS


# -- the spec API ----------------------------------------------------------------------------


def test_spec_is_deterministic_and_copies_are_independent() -> None:
    a, b = load("maps_btf"), load("maps_btf")
    assert list(a.programs) == list(b.programs) and list(a.maps) == list(b.maps)
    assert all(a.programs[k].insns == b.programs[k].insns for k in a.programs)
    c = a.copy()
    c.maps["flows"].max_entries = 7
    c.maps["outer"].values[3] = "inner_a"
    c.programs["use_maps"].license = "MIT"
    assert a.maps["flows"].max_entries == 1024
    assert 3 not in a.maps["outer"].values
    assert a.programs["use_maps"].license == "Dual BSD/GPL"


def test_with_map_fds_patches_every_map_reference() -> None:
    spec = load("globals")
    p = spec.programs["read_globals"]
    fds = {name: 100 + i for i, name in enumerate(spec.maps)}
    patched = p.with_map_fds(fds)
    for r in p.relocations:
        insn = patched.at(r.insn_idx)
        assert insn.imm_lo == fds[r.target]
        assert insn.imm_hi == r.offset
        assert insn.src == PseudoSrc.MAP_VALUE
    assert patched.slot_count == p.insns.slot_count
    with pytest.raises(Exception, match="no fd for map"):
        p.with_map_fds({})


def test_object_name_and_license() -> None:
    spec = load("maps_btf")
    assert spec.name == "maps_btf"
    assert spec.license == "Dual BSD/GPL"
    assert spec.programs["use_maps"].license == "Dual BSD/GPL"
