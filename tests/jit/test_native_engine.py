"""The JIT in the load path: loaded, verified programs run by :class:`pybpf.jit.engine.JitEngine`.

* the kernel layer's ``BPF_PROG_TEST_RUN`` with ``engine="jit"`` (the engine's packet buffers, all
  ``repeat`` runs in one batch-runner call) gives the same results as the interpreter on every
  program of ``tests/kernel/progs/runs.c`` — return values, packets out, maps, redirect info, ring
  buffer, trace;
* the seed demo counts 1000 packets; the benchmark programs match ``bench/gen_packets.py``'s
  ``expected.json``;
* programs without a C compiler: LD_ABS socket filters, tail calls, Python helpers raising.
"""

from __future__ import annotations

import importlib.util
import json
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pybpf.errors import HelperError, ToolchainError
from pybpf.isa import Insn, Insns
from pybpf.jit.engine import JitEngine
from pybpf.kernel import Kernel
from pybpf.kernel.helpers import helper_table
from pybpf.kernel.maps.base import MapAttrs
from pybpf.kernel.prog_load import LoadAttrs, prog_load
from pybpf.kernel.test_run import test_run
from pybpf.loader import Collection, load
from pybpf.uapi import MapType, ProgType
from pybpf.vm import ProgramExit, RegionKind

ROOT = Path(__file__).resolve().parents[2]
RUNS_C = ROOT / "tests" / "kernel" / "progs" / "runs.c"
PKT = bytes(range(64))


def engine_for(prog: Any, helpers: Any = None) -> JitEngine:
    return JitEngine(prog, helpers=helpers if helpers is not None else helper_table(), map_kind=RegionKind.MAP,
                     scratch_kind=RegionKind.MEM, exit_exceptions=(ProgramExit,))


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[Kernel]:
    yield Kernel(tmp_path / "bpffs", ncpus=2)


@pytest.fixture(scope="module")
def runs_o(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pybpf.toolchain import compile

    out = tmp_path_factory.mktemp("runs") / "runs.o"
    try:
        compile(RUNS_C, out)
    except ToolchainError as e:
        pytest.skip(f"no BPF C compiler: {e}")
    return out


def _snapshot(coll: Collection) -> dict[str, Any]:
    results = dict(coll.maps["results"])
    results.pop(3, None), results.pop(4, None), results.pop(5, None)  # clocks and random numbers
    return {"results": results, "table": dict(coll.maps["table"]), "events": coll.maps["events"].consume()}


XDP_PROGS = ["xdp_len", "xdp_pop_eth", "xdp_grow_front", "xdp_trim", "xdp_extend", "xdp_meta", "xdp_redirect",
             "xdp_redirect_miss", "xdp_helpers", "xdp_printk", "xdp_loop", "xdp_ringbuf", "xdp_queue",
             "xdp_tail_caller", "xdp_tail_target", "xdp_strtol", "xdp_csum"]
SKB_PROGS = ["sock_len", "tc_proto", "tc_rewrite", "tc_csum"]


@pytest.mark.toolchain
@pytest.mark.parametrize("name", XDP_PROGS + SKB_PROGS)
def test_test_runs_match_the_interpreter(kernel: Kernel, runs_o: Path, name: str) -> None:
    frame = bytes.fromhex("ffffffffffff020000000001") + b"\x08\x00" + bytes.fromhex(
        "4500002e000040004011" + "0000" + "0a000001" + "0a000002") + bytes(range(26))
    data = frame if name in SKB_PROGS else PKT
    outcomes = []
    for engine in ("interpreter", "jit"):
        with load(runs_o, kernel=kernel) as coll:
            if name == "xdp_tail_caller":
                coll.maps["jumps"][1] = coll.programs["xdp_tail_target"]
            prog = coll.programs[name].kernel_program
            r = test_run(kernel, prog, data, repeat=3, want_ctx_out=name in SKB_PROGS, engine=engine)
            ri = r.redirect
            outcomes.append((r.retval, r.data_out, r.ctx_out, r.trace, (ri.tgt_index, ri.map_id, ri.map_type, ri.flags),
                             _snapshot(coll)))
    assert outcomes[0] == outcomes[1]
    if name == "xdp_tail_caller":
            assert outcomes[1][0] == 42  # the tail call happened


@pytest.mark.toolchain
def test_engine_reports_native_helpers(kernel: Kernel, runs_o: Path) -> None:
    with load(runs_o, kernel=kernel) as coll:
        eng = engine_for(coll.programs["xdp_queue"].kernel_program)
        assert {87, 88} <= set(eng.native_ids) or any(i >= 0x10000 for i in eng.native_ids)
        x = eng.xdp_buff(PKT)
        assert eng.run_xdp(x, 1).retval == 11


# -- the seed demo and the benchmark programs ----------------------------------------------------------------

@pytest.mark.toolchain
def test_seed_demo_counts_1000_packets(kernel: Kernel, tmp_path: Path) -> None:
    from pybpf.toolchain import compile

    obj = tmp_path / "demo.o"
    try:
        compile(ROOT / "examples" / "seed-demo" / "demo.c", obj)
    except ToolchainError as e:
        pytest.skip(f"no BPF C compiler: {e}")
    with load(obj, kernel=kernel) as coll:
        prog = coll.programs["xdp_program"].kernel_program
        eng = engine_for(prog)
        x = eng.xdp_buff(bytes(64))
        run = eng.run_xdp(x, 1000)
        assert run.retval == 2 and run.runs == 1000
        assert coll.maps["pkt_counter"][0] == 1000
        frames = eng.run_xdp_frames([bytes(64)] * 1000)  # one native call, one verdict per frame
        assert [f.verdict for f in frames] == [2] * 1000
        assert coll.maps["pkt_counter"][0] == 2000


def _gen_packets(tmp: Path) -> tuple[Any, dict[str, Any]]:
    spec = importlib.util.spec_from_file_location("gen_packets", ROOT / "bench" / "gen_packets.py")
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    subprocess.run([sys.executable, str(ROOT / "bench" / "gen_packets.py"), str(tmp)], check=True, capture_output=True)
    return gen, json.loads((tmp / "expected.json").read_text())


@pytest.mark.toolchain
def test_bench_programs_match_expected_json(kernel: Kernel, tmp_path: Path) -> None:
    from pybpf.toolchain import compile

    gen, expected = _gen_packets(tmp_path / "data")
    for name in ("xdp_pass", "xdp_count", "xdp_flow_parse", "xdp_fnv_hash", "xdp_lpm_route", "xdp_subprog_calls"):
        obj = tmp_path / f"{name}.o"
        try:
            compile(ROOT / "bench" / "progs" / f"{name}.c", obj)
        except ToolchainError as e:
            pytest.skip(f"no BPF C compiler: {e}")
        with load(obj, kernel=kernel) as coll:
            if name == "xdp_lpm_route":
                routes = coll.maps["routes"].raw()
                for addr, plen, ifindex, dmac, smac in gen.ROUTES:
                    routes[struct.pack("<I", plen) + addr.to_bytes(4, "big")] = struct.pack("<I", ifindex) + dmac + smac
            eng = engine_for(coll.programs[name].kernel_program)
            for frame_name, frame in gen.FRAMES.items():
                x = eng.xdp_buff(frame)
                assert eng.run_xdp(x, 5).retval == expected[frame_name][name], (name, frame_name)
                if name == "xdp_lpm_route" and "xdp_lpm_route_nexthop" in expected[frame_name]:
                    nh = expected[frame_name]["xdp_lpm_route_nexthop"]
                    route = next(r for r in gen.ROUTES if r[2] == nh["ifindex"])
                    assert x.packet()[:12] == route[3] + route[4]  # the MAC rewrite from the next hop
            if name == "xdp_flow_parse":
                flows = coll.maps["flows"].raw()
                assert len(flows) == 3
                assert sorted(struct.unpack("<QQ", v)[0] for v in flows.values()) == [5, 5, 5]
            if name == "xdp_count":
                assert coll.maps["counters"][0] == 15


# -- without a C compiler ---------------------------------------------------------------------------------

def _load(kernel: Kernel, prog_type: int, insns: list[Insn]) -> Any:
    return prog_load(kernel, LoadAttrs(prog_type=int(prog_type), insns=Insns(insns), license="GPL")).program


def test_ld_abs_socket_filter(kernel: Kernel) -> None:
    skf_net_off = -0x100000
    prog = _load(kernel, ProgType.SOCKET_FILTER, [
        Insn(0xBF, 6, 1),  # r6 = r1 (LD_ABS reads through the context in r6)
        Insn(0x30, imm=(skf_net_off + 9) & 0xFFFF_FFFF),  # r0 = ldabs_b [SKF_NET_OFF + 9]: the IPv4 protocol
        Insn(0xBF, 7, 0),
        Insn(0x28, imm=2),  # r0 = ldabs_h [2]: the IPv4 total length (big-endian)
        Insn(0x67, 7, imm=16),
        Insn(0x4F, 0, 7),  # r0 |= r7 << 16
        Insn(0x95),
    ])
    eng = engine_for(prog)
    ip = bytes.fromhex("4500002e000040004011") + bytes(36)
    skb = eng.skb_buff(bytes(12) + b"\x08\x00" + ip, l2=False, fields={"protocol": 8})
    assert eng.run_skb(skb, 3, network_offset=0, mac_offset=-14).retval == (0x11 << 16) | 0x2E
    short = eng.skb_buff(bytes(12) + b"\x08\x00" + ip[:2], l2=False, fields={})
    assert eng.run_skb(short, 1, network_offset=0, mac_offset=-14).retval == 0  # out of the packet: return 0


def test_tail_calls_jump_natively(kernel: Kernel) -> None:
    target = _load(kernel, ProgType.XDP, [Insn(0xB7, 0, imm=42), Insn(0x95)])
    fd = kernel.map_create(MapAttrs(int(MapType.PROG_ARRAY), 4, 4, 4))
    pa = kernel.get_map(fd)
    caller = _load(kernel, ProgType.XDP, [
        Insn(0x18, 2, 1, imm=fd),  # r2 = the program array (lddw: one Insn, two slots)
        Insn(0xB7, 3, imm=2),  # r3 = 2
        Insn(0x85, imm=12),  # bpf_tail_call(ctx, r2, 2)
        Insn(0xB7, 0, imm=7),
        Insn(0x95),
    ])
    eng = engine_for(caller)
    x = eng.xdp_buff(PKT)
    assert eng.run_xdp(x).retval == 7  # empty slot: falls through
    pa.store(2, target)  # type: ignore[attr-defined]
    assert eng.run_xdp(x).retval == 42  # the shadow table follows the map
    assert eng.run_xdp(x, 1000).retval == 42  # the tail-call counter restarts with every run
    pa.delete_elem(struct.pack("<I", 2))
    assert eng.run_xdp(x).retval == 7


def test_python_helper_errors_stop_the_run(kernel: Kernel) -> None:
    # bpf_csum_diff(NULL, 0, NULL, 0, seed) is not in the native library: it runs in Python
    prog = _load(kernel, ProgType.XDP, [
        *(Insn(0xB7, r, imm=0) for r in (1, 2, 3, 4)), Insn(0xB7, 5, imm=99),
        Insn(0x85, imm=28), Insn(0x95),
    ])
    eng = engine_for(prog)
    assert 28 not in eng.native_ids
    assert eng.run_xdp(eng.xdp_buff(PKT), 4).retval == 99

    def boom(ctx: Any, *regs: int) -> int:
        raise ValueError("no checksums today")

    table = dict(helper_table())
    table[28] = boom
    with pytest.raises(HelperError, match="no checksums today"):
        failing = engine_for(prog, helpers=table)
        failing.run_xdp(failing.xdp_buff(PKT), 10)


def test_hook_batches_keep_each_frames_redirect(kernel: Kernel) -> None:
    fd = kernel.map_create(MapAttrs(int(MapType.DEVMAP), 4, 4, 4))
    ports = kernel.get_map(fd)
    for key in (1, 3):
        ports.update_elem_sys(struct.pack("<I", key), struct.pack("<I", 1), 0)  # -> lo
    prog = _load(kernel, ProgType.XDP, [
        Insn(0x61, 2, 1, 0),  # r2 = ctx->data
        Insn(0x61, 3, 1, 4),  # r3 = ctx->data_end
        Insn(0xBF, 4, 2), Insn(0x07, 4, imm=1),
        Insn(0x2D, 4, 3, 6),  # if r2 + 1 > data_end goto drop
        Insn(0x71, 2, 2, 0),  # r2 = data[0]: the key
        Insn(0x18, 1, 1, imm=fd),  # r1 = ports
        Insn(0xB7, 3, imm=1),  # XDP_DROP when the key has no device
        Insn(0x85, imm=51),  # bpf_redirect_map
        Insn(0x95),
        Insn(0xB7, 0, imm=1), Insn(0x95),
    ])
    eng = engine_for(prog)
    assert eng.calls_native_redirect
    frames = [bytes([k]) + bytes(59) for k in (0, 1, 2, 3, 1)]
    out = eng.run_xdp_frames(frames)
    assert [o.verdict for o in out] == [1, 4, 1, 4, 4]
    for frame, o in zip(frames, out, strict=True):
        ref = test_run(kernel, prog, frame, engine="interpreter")
        assert o.verdict == ref.retval and o.data == ref.data_out
        assert o.redirect is not None
        if o.verdict == 4:
            assert (o.redirect.tgt_index, o.redirect.map_id, o.redirect.map_type) == (
                frame[0], ports.id, int(MapType.DEVMAP)) == (ref.redirect.tgt_index, ref.redirect.map_id,
                                                            ref.redirect.map_type)
        else:
            assert (o.redirect.map_id, ref.redirect.map_id) == (0x7FFF_FFFF, 0x7FFF_FFFF)


def test_programs_tail_calling_each_other(kernel: Kernel) -> None:
    """A → B → A ... through one program array, stopped by the 33-call limit (the counter lives in
    the run state both share); r0 counts the hops through a map both update."""
    fd = kernel.map_create(MapAttrs(int(MapType.PROG_ARRAY), 4, 4, 2))
    cnt_fd = kernel.map_create(MapAttrs(int(MapType.ARRAY), 4, 8, 1))
    pa, counter = kernel.get_map(fd), kernel.get_map(cnt_fd)

    def hop(slot: int) -> Any:
        return _load(kernel, ProgType.XDP, [
            Insn(0xBF, 6, 1),  # r6 = ctx
            Insn(0xB7, 1, imm=0), Insn(0x63, 10, 1, -4),  # key 0 on the stack
            Insn(0xBF, 2, 10), Insn(0x07, 2, imm=-4),
            Insn(0x18, 1, 1, imm=cnt_fd),
            Insn(0x85, imm=1),  # bpf_map_lookup_elem
            Insn(0x15, 0, off=2, imm=0),
            Insn(0xB7, 1, imm=1), Insn(0xDB, 0, 1, 0, imm=0),  # lock *(u64 *)(r0 + 0) += 1
            Insn(0xBF, 1, 6), Insn(0x18, 2, 1, imm=fd), Insn(0xB7, 3, imm=slot),
            Insn(0x85, imm=12),  # bpf_tail_call(ctx, prog array, slot)
            Insn(0xB7, 0, imm=2), Insn(0x95),
        ])

    a, b = hop(1), hop(0)
    pa.store(0, a)  # type: ignore[attr-defined]
    pa.store(1, b)  # type: ignore[attr-defined]
    eng = engine_for(a)
    assert eng.run_xdp(eng.xdp_buff(PKT)).retval == 2
    assert int.from_bytes(counter.lookup_elem_sys(b"\0" * 4), "little") == 34  # the first run + 33 tail calls
    assert eng.run_xdp(eng.xdp_buff(PKT), 10).retval == 2
    assert int.from_bytes(counter.lookup_elem_sys(b"\0" * 4), "little") == 34 * 11


def test_tail_call_limit_through_the_test_run_path(kernel: Kernel) -> None:
    """``BPF_PROG_TEST_RUN`` with ``engine="jit"`` (``pybpf prog run ... --engine jit``): A → B → A ...
    stops after 33 tail calls, as on the interpreter; a slot emptied between runs is seen."""
    fd = kernel.map_create(MapAttrs(int(MapType.PROG_ARRAY), 4, 4, 2))
    cnt_fd = kernel.map_create(MapAttrs(int(MapType.ARRAY), 4, 8, 1))
    pa, counter = kernel.get_map(fd), kernel.get_map(cnt_fd)

    def hop(slot: int) -> Any:
        return _load(kernel, ProgType.XDP, [
            Insn(0xBF, 6, 1),
            Insn(0xB7, 1, imm=0), Insn(0x63, 10, 1, -4),
            Insn(0xBF, 2, 10), Insn(0x07, 2, imm=-4),
            Insn(0x18, 1, 1, imm=cnt_fd),
            Insn(0x85, imm=1),
            Insn(0x15, 0, off=2, imm=0),
            Insn(0xB7, 1, imm=1), Insn(0xDB, 0, 1, 0, imm=0),
            Insn(0xBF, 1, 6), Insn(0x18, 2, 1, imm=fd), Insn(0xB7, 3, imm=slot),
            Insn(0x85, imm=12),
            Insn(0xB7, 0, imm=2), Insn(0x95),
        ])

    a, b = hop(1), hop(0)
    pa.store(0, a)  # type: ignore[attr-defined]
    pa.store(1, b)  # type: ignore[attr-defined]

    def count() -> int:
        return int.from_bytes(counter.lookup_elem_sys(b"\0" * 4), "little")

    for engine, repeat in (("interpreter", 1), ("jit", 1), ("jit", 100)):
        before = count()
        r = test_run(kernel, a, PKT, repeat=repeat, engine=engine)
        assert r.retval == 2
        assert count() - before == 34 * repeat, engine  # the first program + 33 tail calls, per run
    pa.delete_elem(struct.pack("<I", 1))  # A's tail call now falls through
    before = count()
    assert test_run(kernel, a, PKT, repeat=5, engine="jit").retval == 2
    assert count() - before == 5


def test_native_code_is_read_execute_and_freed_with_the_program(kernel: Kernel) -> None:
    """The load path's machine code (the program, its tail-call targets' code aside) sits in r-x pages,
    never writable; closing the engine unmaps them, and so does dropping the last reference to the
    program (its engine goes with it)."""
    import gc

    from .test_runtime import mapping_of

    prog = _load(kernel, ProgType.XDP, [Insn(0xB7, 0, imm=2), Insn(0x95)])
    assert test_run(kernel, prog, PKT, repeat=10, engine="jit").retval == 2
    address = prog.runner("jit").impl.entry_address
    assert mapping_of(address) == "r-xp"
    del prog
    gc.collect()
    assert mapping_of(address) is None
    other = _load(kernel, ProgType.XDP, [Insn(0xB7, 0, imm=1), Insn(0x95)])
    eng = other.runner("jit").impl
    address = eng.entry_address
    assert mapping_of(address) == "r-xp"
    eng.close()
    assert mapping_of(address) is None


def test_programs_the_verifier_never_saw_are_refused(kernel: Kernel) -> None:
    """A program published without the verifier (``verified_insns`` 0) may hold any memory access: the
    load path's JIT refuses it with a JitError (test runs, hooks), the interpreter runs it."""
    from pybpf.errors import JitError
    from pybpf.hooks.xdp import XdpHook
    from pybpf.isa.asm import assemble
    from pybpf.kernel.program import ProgramImage

    bad = assemble("r2 = *(u64 *)(r1 +0)\nr0 = *(u8 *)(r2 +100)\nr0 = 2\nexit")
    prog = kernel.create_program(ProgramImage(prog_type=ProgType.XDP, insns=bad, name="oob"), {})
    with pytest.raises(JitError, match="oob was not verified"):
        test_run(kernel, prog, PKT, engine="jit")
    with pytest.raises(JitError, match="not verified"):
        XdpHook(prog, engine="jit")
    assert test_run(kernel, prog, bytes(200), engine="interpreter").retval == 2


@pytest.fixture
def native_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the batch runner's native calls (one entry per call: the runs it was asked for) and
    makes a one-run-per-call path (``JitProgram.run``) fail the test."""
    from pybpf.jit.runtime import BatchRunner, JitProgram

    calls: list[int] = []
    real = BatchRunner._call

    def counting(self: Any, packets: Any, offsets: Any, lengths: Any, out: Any, count: int, *a: Any,
                 **kw: Any) -> None:
        calls.append(count)
        real(self, packets, offsets, lengths, out, count, *a, **kw)

    def one_by_one(*_: Any, **__: Any) -> int:
        raise AssertionError("a run took the one-call-per-run path")

    monkeypatch.setattr(BatchRunner, "_call", counting)
    monkeypatch.setattr(JitProgram, "run", one_by_one)
    return calls


def _counter_prog(kernel: Kernel, prog_type: int, verdict: int) -> tuple[Any, Any]:
    """A program that counts its runs in an array map (an inlined lookup) and returns ``verdict``."""
    fd = kernel.map_create(MapAttrs(int(MapType.ARRAY), 4, 8, 1))
    prog = _load(kernel, prog_type, [
        Insn(0xB7, 1, imm=0), Insn(0x63, 10, 1, -4), Insn(0xBF, 2, 10), Insn(0x07, 2, imm=-4),
        Insn(0x18, 1, 1, imm=fd), Insn(0x85, imm=1), Insn(0x15, 0, off=2, imm=0),
        Insn(0xB7, 1, imm=1), Insn(0xDB, 0, 1, 0, imm=0),
        Insn(0xB7, 0, imm=verdict), Insn(0x95),
    ])
    return prog, kernel.get_map(fd)


def test_test_runs_and_hooks_make_one_native_call_per_batch(kernel: Kernel, native_calls: list[int]) -> None:
    from pybpf.hooks.devices import NetDevice
    from pybpf.hooks.packet import Frame
    from pybpf.hooks.tc import SkbHook
    from pybpf.hooks.xdp import XdpHook

    xdp, xdp_count = _counter_prog(kernel, ProgType.XDP, 2)
    r = test_run(kernel, xdp, PKT, repeat=1000, engine="jit")
    assert (r.retval, native_calls) == (2, [1000])  # `prog run ... repeat 1000 --engine jit`: one call
    assert int.from_bytes(xdp_count.lookup_elem_sys(bytes(4)), "little") == 1000
    frames = [Frame(PKT[:14] + bytes([i]) * 50, number=i + 1) for i in range(200)]
    native_calls.clear()
    stats = XdpHook(xdp, engine="jit", devices={1: NetDevice(1, "lo")}, batch_size=64).run(frames)
    assert stats.verdicts["XDP_PASS"] == 200 and native_calls == [64, 64, 64, 8]  # one call per hook batch
    tc, tc_count = _counter_prog(kernel, ProgType.SCHED_CLS, 0)
    native_calls.clear()
    assert test_run(kernel, tc, PKT, repeat=500, engine="jit").retval == 0 and native_calls == [500]
    native_calls.clear()
    SkbHook(tc, engine="jit", devices={1: NetDevice(1, "lo")}, batch_size=100).run(frames)
    assert native_calls == [100, 100]
    assert int.from_bytes(tc_count.lookup_elem_sys(bytes(4)), "little") == 700
    sock, _ = _counter_prog(kernel, ProgType.SOCKET_FILTER, 1)
    native_calls.clear()
    assert test_run(kernel, sock, PKT, repeat=300, engine="jit").retval == 1 and native_calls == [300]
