"""Program-type contracts: context layouts, access rules, helper tables, internal functions."""

from __future__ import annotations

import itertools
import shutil
import subprocess
from pathlib import Path

import pytest

from pybpf.errors import BpfError
from pybpf.isa import Insn
from pybpf.progtypes import (
    CUSTOM_PROG_TYPE_BASE,
    PRIVILEGED,
    SK_BUFF,
    SKB_RUNTIME,
    UNPRIVILEGED,
    XDP_MD,
    XDP_RUNTIME,
    AccessAux,
    AccessType,
    ArgType,
    CtxField,
    CtxStruct,
    HelperProto,
    ProgInfo,
    ProgTypeDescriptor,
    RegType,
    RetType,
    RetvalRange,
    TypeFlag,
    descriptor,
    func_proto_switch,
    internal,
    proto_by_name,
    register,
    unregister,
)
from pybpf.progtypes.types import (
    ARG_PTR_TO_UNINIT_MEM,
    PTR_TO_SOCK_COMMON_OR_NULL,
    RET_PTR_TO_MAP_VALUE_OR_NULL,
    base_type,
    parse_type_expr,
)
from pybpf.uapi import AttachType, HelperId, ProgType

R, W = AccessType.READ, AccessType.WRITE


def _ok(prog_type: ProgType, off: int, size: int, access: AccessType = R, **prog: object) -> tuple[bool, AccessAux]:
    aux = AccessAux()
    d = descriptor(prog_type)
    return d.is_valid_access(off, size, access, ProgInfo(int(prog_type), **prog), aux), aux  # type: ignore[arg-type]


# -- layouts ----------------------------------------------------------------------------------------


def test_sk_buff_layout_matches_uapi() -> None:
    assert SK_BUFF.size == 192
    assert SK_BUFF.offsetof("data") == 76
    assert SK_BUFF.offsetof("cb[2]") == 56
    assert SK_BUFF.offsetof("data_meta") == 140
    assert SK_BUFF.offsetof("flow_keys") == 144
    assert SK_BUFF.offsetof("sk") == 168
    assert SK_BUFF.offsetof("tstamp_type") == 180
    assert SK_BUFF.offsetof("hwtstamp") == 184


def test_xdp_layouts() -> None:
    assert [f.offset for f in XDP_MD.fields] == [0, 4, 8, 12, 16, 20]
    assert XDP_RUNTIME["data"].offset == 0 and XDP_RUNTIME["data"].size == 8
    assert XDP_RUNTIME["data_end"].offset == 8
    assert XDP_RUNTIME["data_meta"].offset == 16
    assert XDP_RUNTIME["rx_queue_index"].size == 4


def test_runtime_pack_unpack_roundtrip() -> None:
    buf = SKB_RUNTIME.pack({"data": 0x1000, "data_end": 0x1040, "len": 64, "mark": 7})
    assert len(buf) == SKB_RUNTIME.size
    vals = SKB_RUNTIME.unpack(buf)
    assert vals["data"] == 0x1000 and vals["data_end"] == 0x1040 and vals["len"] == 64 and vals["mark"] == 7
    # fields do not overlap
    spans = sorted((f.offset, f.offset + f.size) for f in SKB_RUNTIME.fields.values())
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))


@pytest.mark.toolchain
def test_sk_buff_offsets_against_the_c_compiler(tmp_path: Path) -> None:
    cc = shutil.which("clang-19") or shutil.which("clang") or shutil.which("cc")
    if cc is None or not Path("/usr/include/linux/bpf.h").exists():
        pytest.skip("no C compiler or linux/bpf.h")
    names = [f.name for f in SK_BUFF.fields]
    src = tmp_path / "off.c"
    src.write_text(
        "#include <stdio.h>\n#include <stddef.h>\n#include <linux/bpf.h>\nint main(void){\n"
        + "".join(f'printf("%zu\\n", offsetof(struct __sk_buff, {n}));\n' for n in names)
        + 'printf("%zu\\n", sizeof(struct __sk_buff));return 0;}\n'
    )
    exe = tmp_path / "off"
    subprocess.run([cc, "-o", str(exe), str(src)], check=True, capture_output=True)
    got = [int(x) for x in subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.split()]
    assert got[:-1] == [f.offset for f in SK_BUFF.fields]
    assert got[-1] == SK_BUFF.size


# -- access rules ----------------------------------------------------------------------------------


def test_xdp_access_rules() -> None:
    ok, aux = _ok(ProgType.XDP, 0, 4)
    assert ok and aux.reg_type == RegType.PTR_TO_PACKET
    ok, aux = _ok(ProgType.XDP, 4, 4)
    assert ok and aux.reg_type == RegType.PTR_TO_PACKET_END
    ok, aux = _ok(ProgType.XDP, 8, 4)
    assert ok and aux.reg_type == RegType.PTR_TO_PACKET_META
    assert _ok(ProgType.XDP, 16, 4)[0]  # rx_queue_index
    assert not _ok(ProgType.XDP, 16, 2)[0]  # no narrow loads in xdp
    assert not _ok(ProgType.XDP, 0, 8)[0]
    assert not _ok(ProgType.XDP, 0, 4, W)[0]
    assert not _ok(ProgType.XDP, 20, 4)[0]  # egress_ifindex: devmap only
    assert _ok(ProgType.XDP, 20, 4, expected_attach_type=int(AttachType.XDP_DEVMAP))[0]
    assert not _ok(ProgType.XDP, 24, 4)[0]


def test_socket_filter_access_rules() -> None:
    assert _ok(ProgType.SOCKET_FILTER, 0, 4)[0]  # len
    ok, aux = _ok(ProgType.SOCKET_FILTER, 0, 1)
    assert ok and aux.ctx_field_size == 4  # narrow load of len
    assert not _ok(ProgType.SOCKET_FILTER, 0, 3)[0]
    assert not _ok(ProgType.SOCKET_FILTER, 76, 4)[0]  # data: not for socket filters
    assert not _ok(ProgType.SOCKET_FILTER, 8, 4, W)[0]  # mark is read-only here
    assert _ok(ProgType.SOCKET_FILTER, 48, 4, W)[0]  # cb[0]
    assert _ok(ProgType.SOCKET_FILTER, 48, 8, W)[0]  # cb: any aligned size inside
    assert not _ok(ProgType.SOCKET_FILTER, 64, 8, W)[0]  # runs past cb[4]
    assert not _ok(ProgType.SOCKET_FILTER, 2, 4)[0]  # misaligned
    ok, aux = _ok(ProgType.SOCKET_FILTER, 168, 8)
    assert ok and aux.reg_type == PTR_TO_SOCK_COMMON_OR_NULL
    assert not _ok(ProgType.SOCKET_FILTER, 168, 4)[0]
    assert not _ok(ProgType.SOCKET_FILTER, 181, 1)[0]  # padding
    assert not _ok(ProgType.SOCKET_FILTER, 192, 4)[0]


def test_tc_access_rules() -> None:
    ok, aux = _ok(ProgType.SCHED_CLS, 76, 4)
    assert ok and aux.reg_type == RegType.PTR_TO_PACKET
    assert not _ok(ProgType.SCHED_CLS, 76, 2)[0]  # no narrow packet pointers
    assert _ok(ProgType.SCHED_CLS, 8, 4, W)[0]  # mark writable in tc
    assert not _ok(ProgType.SCHED_CLS, 0, 4, W)[0]  # len is not
    assert _ok(ProgType.SCHED_CLS, 180, 1)[0]  # tstamp_type, byte access only
    assert not _ok(ProgType.SCHED_CLS, 88, 4)[0]  # family..local_port
    assert _ok(ProgType.SCHED_ACT, 80, 4)[1].reg_type == RegType.PTR_TO_PACKET_END


def test_cgroup_skb_data_needs_cap_bpf() -> None:
    assert _ok(ProgType.CGROUP_SKB, 76, 4)[0]
    assert not _ok(ProgType.CGROUP_SKB, 76, 4, caps=UNPRIVILEGED)[0]
    assert not _ok(ProgType.CGROUP_SKB, 140, 4)[0]  # data_meta


def test_tracing_contexts() -> None:
    assert _ok(ProgType.KPROBE, 0, 8)[0]
    assert _ok(ProgType.KPROBE, 160, 8)[0]
    assert not _ok(ProgType.KPROBE, 164, 8)[0]
    assert not _ok(ProgType.KPROBE, 0, 8, W)[0]
    assert not _ok(ProgType.TRACEPOINT, 0, 8)[0]  # common header
    assert _ok(ProgType.TRACEPOINT, 8, 8)[0]
    assert _ok(ProgType.RAW_TRACEPOINT, 88, 8)[0]
    assert not _ok(ProgType.RAW_TRACEPOINT, 96, 8)[0]


# -- helpers ----------------------------------------------------------------------------------------


def test_proto_table_values() -> None:
    p = proto_by_name("bpf_map_lookup_elem_proto")
    assert p.ret_type == RET_PTR_TO_MAP_VALUE_OR_NULL
    assert p.arg_types[:2] == (ArgType.ARG_CONST_MAP_PTR, ArgType.ARG_PTR_TO_MAP_KEY)
    assert p.pkt_access and not p.gpl_only and p.nargs == 2
    load = proto_by_name("bpf_skb_load_bytes_proto")
    assert load.arg_types[2] == ARG_PTR_TO_UNINIT_MEM
    assert load.arg_base(3) == ArgType.ARG_CONST_SIZE
    printk = proto_by_name("bpf_trace_printk_proto")
    assert printk.gpl_only and printk.arg_types[0] & TypeFlag.MEM_RDONLY
    release = proto_by_name("bpf_sk_release_proto")
    assert release.arg_types[0] & TypeFlag.OBJ_RELEASE
    assert proto_by_name("bpf_skc_to_tcp_sock_proto").ret_btf_id == "tcp_sock"
    assert proto_by_name("bpf_ringbuf_reserve_proto").ret_base() == RetType.RET_PTR_TO_MEM


def test_parse_type_expr() -> None:
    v = parse_type_expr("ARG_PTR_TO_MEM | PTR_MAYBE_NULL | MEM_RDONLY")
    assert base_type(v) == ArgType.ARG_PTR_TO_MEM
    assert v & TypeFlag.PTR_MAYBE_NULL and v & TypeFlag.MEM_RDONLY
    with pytest.raises(KeyError):
        parse_type_expr("NOT_A_TYPE")


def test_helpers_per_program_type() -> None:
    xdp = descriptor(ProgType.XDP)
    priv = ProgInfo(int(ProgType.XDP))
    assert xdp.get_func_proto(HelperId.xdp_adjust_head, priv) is not None
    assert xdp.get_func_proto(HelperId.skb_load_bytes, priv) is None
    assert xdp.get_func_proto(HelperId.redirect, priv).name == "bpf_xdp_redirect_proto"  # type: ignore[union-attr]
    tc = descriptor(ProgType.SCHED_CLS)
    assert tc.get_func_proto(HelperId.redirect, ProgInfo(3)).name == "bpf_redirect_proto"  # type: ignore[union-attr]
    assert tc.get_func_proto(HelperId.skb_store_bytes, ProgInfo(3)) is not None
    sf = descriptor(ProgType.SOCKET_FILTER)
    assert sf.get_func_proto(HelperId.skb_store_bytes, ProgInfo(1)) is None
    # the bpf_base_func_proto capability tiers
    assert sf.get_func_proto(HelperId.spin_lock, ProgInfo(1)) is not None
    assert sf.get_func_proto(HelperId.spin_lock, ProgInfo(1, caps=UNPRIVILEGED)) is None
    assert sf.get_func_proto(HelperId.trace_printk, ProgInfo(1, caps=UNPRIVILEGED)) is None
    assert sf.get_func_proto(HelperId.trace_printk, ProgInfo(1, caps=PRIVILEGED)) is not None
    assert sf.get_func_proto(HelperId.map_lookup_elem, ProgInfo(1, caps=UNPRIVILEGED)) is not None
    # skc_to_* casts sit behind CAP_PERFMON
    assert sf.get_func_proto(HelperId.skc_to_tcp_sock, ProgInfo(1, caps=frozenset({"CAP_BPF"}))) is None
    assert sf.get_func_proto(HelperId.skc_to_tcp_sock, ProgInfo(1)) is not None
    kp = descriptor(ProgType.KPROBE)
    assert kp.get_func_proto(HelperId.get_stack, ProgInfo(2)).name == "bpf_get_stack_proto"  # type: ignore[union-attr]
    assert kp.get_func_proto(HelperId.probe_read_kernel, ProgInfo(2)) is not None
    tp = descriptor(ProgType.TRACEPOINT)
    assert tp.get_func_proto(HelperId.perf_event_output, ProgInfo(5)).name == "bpf_perf_event_output_proto_tp"  # type: ignore[union-attr]


def test_func_proto_switch_fallthrough_chain() -> None:
    sw = func_proto_switch("tc_cls_act_func_proto")
    assert sw.fallback == "bpf_sk_base_func_proto"
    assert func_proto_switch("bpf_sk_base_func_proto").fallback == "bpf_base_func_proto"
    allowed = sw.helpers(PRIVILEGED)
    assert HelperId.map_lookup_elem in allowed and HelperId.l3_csum_replace in allowed
    assert HelperId.xdp_adjust_head not in allowed


def test_return_ranges() -> None:
    assert descriptor(ProgType.XDP).return_range(ProgInfo(6)) is None
    cg = descriptor(ProgType.CGROUP_SKB)
    assert cg.return_range(ProgInfo(8)) == RetvalRange(0, 1)
    assert cg.return_range(ProgInfo(8, expected_attach_type=int(AttachType.CGROUP_INET_EGRESS))) == RetvalRange(0, 3)


def test_unknown_program_type() -> None:
    with pytest.raises(BpfError) as e:
        descriptor(ProgType.LIRC_MODE2)
    assert e.value.errno == 22


# -- context conversion --------------------------------------------------------------------------------


def test_convert_xdp_data_load_to_64_bit() -> None:
    xdp = descriptor(ProgType.XDP)
    out = xdp.convert_ctx_access(Insn(0x61, dst=2, src=1, off=4), 4)  # r2 = *(u32 *)(r1 +4): data_end
    assert out == [Insn(0x79, dst=2, src=1, off=XDP_RUNTIME["data_end"].offset)]
    out = xdp.convert_ctx_access(Insn(0x61, dst=3, src=1, off=16), 4)  # rx_queue_index
    assert out == [Insn(0x61, dst=3, src=1, off=XDP_RUNTIME["rx_queue_index"].offset)]


def test_convert_skb_cb_store_keeps_size() -> None:
    tc = descriptor(ProgType.SCHED_CLS)
    cb2 = SK_BUFF.offsetof("cb[2]")
    out = tc.convert_ctx_access(Insn(0x7B, dst=1, src=3, off=cb2), 8)  # *(u64 *)(r1 + cb[2]) = r3
    assert out == [Insn(0x7B, dst=1, src=3, off=SKB_RUNTIME["cb"].offset + 8)]
    out = tc.convert_ctx_access(Insn(0x61, dst=0, src=1, off=SK_BUFF.offsetof("mark")), 4)
    assert out == [Insn(0x61, dst=0, src=1, off=SKB_RUNTIME["mark"].offset)]


# -- internal functions --------------------------------------------------------------------------------


def test_internal_function_registry() -> None:
    ids = [f.id for f in internal.INTERNAL_FUNCTIONS]
    assert ids == sorted(ids) and ids[0] == internal.INTERNAL_BASE
    assert all(i >= 0x10000 for i in ids)
    assert len({f.name for f in internal.INTERNAL_FUNCTIONS}) == len(ids)
    f = internal.map_op_function(1, HelperId.map_update_elem)  # HASH
    assert f is not None and f.name == "htab_map_update_elem"
    assert internal.by_id(f.id) is f and internal.internal_id(f.name) == f.id
    assert f.proto.arg_types == proto_by_name("bpf_map_update_elem_proto").arg_types
    assert internal.map_op_function(27, HelperId.map_update_elem) is None  # ringbuf: no update
    assert internal.is_internal(internal.internal_id("array_map_update_elem"))
    assert not internal.is_internal(1)
    with pytest.raises(KeyError):
        internal.by_id(5)


# -- application-defined types ---------------------------------------------------------------------


def test_custom_program_type() -> None:
    ctx = CtxStruct("my_ctx", 16, (
        CtxField("value", 0, 8, access="rw"),
        CtxField("limit", 8, 4, access="r"),
        CtxField("buf", 12, 4, access=""),
    ))
    helper = HelperProto(name="my_double_proto", func="my_double", arg_types=(ArgType.ARG_ANYTHING, 0, 0, 0, 0))
    desc = ProgTypeDescriptor.custom(CUSTOM_PROG_TYPE_BASE + 7, "my_type", ctx, helpers={0x2000: helper},
                                     return_range=RetvalRange(0, 10))
    register(desc)
    try:
        assert descriptor(CUSTOM_PROG_TYPE_BASE + 7) is desc
        prog = ProgInfo(desc.prog_type)
        aux = AccessAux()
        assert desc.is_valid_access(0, 8, W, prog, aux)
        assert desc.is_valid_access(8, 2, R, prog, aux) and aux.ctx_field_size == 4
        assert not desc.is_valid_access(8, 4, W, prog, AccessAux())
        assert not desc.is_valid_access(12, 4, R, prog, AccessAux())
        assert not desc.is_valid_access(4, 8, R, prog, AccessAux())
        assert desc.get_func_proto(0x2000, prog) is helper
        assert desc.get_func_proto(HelperId.map_lookup_elem, prog) is None
        assert desc.return_range(prog) == RetvalRange(0, 10)
        assert desc.runtime is not None and desc.runtime["limit"].offset == 8
        with pytest.raises(BpfError):
            register(desc)
    finally:
        unregister(desc.prog_type)
    with pytest.raises(BpfError):
        register(ProgTypeDescriptor.custom(5, "bad", ctx))


def test_generated_tables_are_current() -> None:
    ref = Path("/work/ref/linux-source-6.12")
    gen = Path(__file__).resolve().parents[2] / "tools" / "gen_helper_protos.py"
    if not ref.is_dir() or not gen.exists():
        pytest.skip("kernel source tree not available")
    import sys

    out = subprocess.run([sys.executable, str(gen), str(ref)], check=True, capture_output=True, text=True).stdout
    current = (Path(__file__).resolve().parents[2] / "src/pybpf/progtypes/_kernel_tables.py").read_text()
    assert out.strip() == current.strip()
