"""``BPF_PROG_TEST_RUN`` as Linux 6.12 has it (net/bpf/test_run.c) for XDP, skb, raw tracepoint and
application-defined programs.

* XDP: the frame goes into a page with ``XDP_PACKET_HEADROOM`` (256) bytes of headroom and the
  skb_shared_info tailroom; ``ctx_in`` (``struct xdp_md``) may carve metadata off the front
  (``data``) and shorten the linear part (``data_end``); ``data_out`` is ``data_meta .. data_end``
  after the run, so ``bpf_xdp_adjust_head/tail/meta`` show up in it; ``ctx_out`` reports the new
  ``data``/``data_end`` relative to ``data_meta``. Bytes beyond the linear limit are a non-linear
  tail the program reaches through ``bpf_xdp_load_bytes``.
* skb (socket filters, tc, cgroup skb, lwt): an sk_buff on the loopback device (or the
  ``ifindex`` of ``ctx_in``), ``eth_type_trans`` applied; tc programs see the frame from the MAC
  header, the others from the network header — and, as in Linux, the 14-byte MAC header they did
  not see comes back zeroed in ``data_out``. ``ctx_in``/``ctx_out`` are ``struct __sk_buff`` with only
  the fields Linux lets a caller set.

The run loop is the kernel's: the program runs ``repeat`` times (0 means 1) on the *same* buffer,
``duration`` is the mean wall time per run in ns (u32-saturated), ``retval`` the last return value.
Contexts are built from the runtime layouts of :mod:`pybpf.progtypes` (contract 4). On
``engine="jit"`` the packet and context live in native memory (the program's
:class:`pybpf.jit.engine.JitEngine` builds them) and all ``repeat`` runs of an XDP or skb program are
one call of the JIT's batch runner, whose per-run time is the ``duration``
(:func:`jit_test_run`); raw tracepoint and application-defined contexts go into native memory too.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pybpf.errors import ENOTSUPP, BpfError, NotSupportedError
from pybpf.kernel import native
from pybpf.kernel.engines import kernel_space, native_space, run_lock
from pybpf.kernel.maps.cgroup_storage import reset_run_storage
from pybpf.kernel.runenv import (
    ETH_HLEN,
    NET_SKB_PAD,
    PAGE_SIZE,
    SKB_SHARED_INFO,
    XDP_FRAME_SIZE,
    XDP_PACKET_HEADROOM,
    RedirectInfo,
    RunEnv,
    SkbState,
    XdpState,
    metalen_invalid,
)
from pybpf.progtypes import SK_BUFF, SKB_RUNTIME, XDP_MD, descriptor
from pybpf.uapi import AttachType, ProgType
from pybpf.vm import RegionKind, SkbView

if TYPE_CHECKING:
    from pybpf.kernel.objects import Kernel
    from pybpf.kernel.program import Program

__all__ = ["TestRunResult", "bpf_test_run", "jit_test_run", "output_errno", "run_once", "running", "test_run",
           "test_run_attr"]

BPF_F_TEST_RUN_ON_CPU = 1
BPF_F_TEST_XDP_LIVE_FRAMES = 2
BPF_F_TEST_SKB_CHECKSUM_COMPLETE = 4
U32_MAX = 0xFFFFFFFF
GSO_LEGACY_MAX_SIZE = 65536
GSO_MAX_SEGS = 65535
ETH_P_IP, ETH_P_IPV6 = 0x0800, 0x86DD
AF_INET, AF_INET6 = 2, 10
PACKET_HOST, PACKET_BROADCAST, PACKET_MULTICAST, PACKET_OTHERHOST = 0, 1, 2, 3
MAX_BPF_FUNC_ARGS = 12
MAX_SKB_FRAGS = 17  # CONFIG_MAX_SKB_FRAGS' default


@dataclass(slots=True)
class TestRunResult:
    """What a test run reports (the kernel's ``test.*`` output fields, plus what the run printed)."""

    __test__ = False  # not a pytest test class, despite the name

    retval: int
    duration: int
    data_out: bytes = b""
    ctx_out: bytes | None = None
    repeat: int = 1
    trace: list[str] = field(default_factory=list)
    redirect: RedirectInfo = field(default_factory=RedirectInfo)
    frags_size: int = 0
    """Bytes at the end of ``data_out`` that sat in fragments (XDP frames beyond one page)."""

    @property
    def data_size_out(self) -> int:
        """``test.data_size_out``: the packet's full length after the run."""
        return len(self.data_out)


def _check_ctx_tail(ctx_in: bytes, max_size: int) -> bytes:
    """``bpf_ctx_init``: bytes past the struct must be zero (E2BIG); result zero-padded."""
    if len(ctx_in) > PAGE_SIZE:
        raise BpfError(errno.E2BIG)
    if any(ctx_in[max_size:]):
        raise BpfError(errno.E2BIG)
    return ctx_in[:max_size].ljust(max_size, b"\0")


def _ifindex_exists(ifindex: int) -> str | None:
    try:
        for i, name in socket.if_nameindex():
            if i == ifindex:
                return name
    except OSError:
        pass
    return None


def _rx_queues(name: str) -> int:
    try:
        return max(1, len([p for p in Path(f"/sys/class/net/{name}/queues").iterdir() if p.name.startswith("rx-")]))
    except OSError:
        return 1


def _dev_addr(name: str) -> bytes:
    try:
        return bytes.fromhex(Path(f"/sys/class/net/{name}/address").read_text().strip().replace(":", ""))
    except (OSError, ValueError):
        return bytes(6)


def test_run(
    kernel: Kernel,
    prog: Program,
    data_in: bytes = b"",
    *,
    ctx_in: bytes | None = None,
    repeat: int = 1,
    flags: int = 0,
    cpu: int = 0,
    batch_size: int = 0,
    engine: str = "interpreter",
    want_ctx_out: bool = False,
    user: Any = None,
) -> TestRunResult:
    """Run ``prog`` as ``BPF_PROG_TEST_RUN`` would; raises BpfError with the kernel's errnos.

    ``want_ctx_out`` asks for ``ctx_out`` even without ``ctx_in`` (the kernel returns it when the
    caller passed a ``ctx_out`` buffer); ``user`` is handed to helpers of application-defined types
    as ``ctx.env.user``.
    """
    try:
        desc = descriptor(int(prog.image.prog_type))
    except BpfError:
        raise BpfError(ENOTSUPP) from None
    if ctx_in is None and want_ctx_out:
        ctx_in = b""  # bpf_ctx_init: a ctx_out buffer alone gives the run a zeroed context
    # bpf_cgroup_storages_alloc: every test run gets fresh, zeroed cgroup storages
    reset_run_storage(getattr(prog, "used_maps", {}).values())
    kind = desc.test_run
    if kind == "xdp":
        return _run_xdp(kernel, prog, data_in, ctx_in, repeat, flags, batch_size, engine, want_ctx_out, cpu)
    if kind == "skb":
        if flags & ~BPF_F_TEST_SKB_CHECKSUM_COMPLETE or cpu or batch_size:
            raise BpfError(errno.EINVAL)
        return _run_skb(kernel, prog, data_in, ctx_in, repeat, flags, engine, want_ctx_out)
    if kind == "raw_tp":
        return _run_raw_tp(kernel, prog, data_in, ctx_in, repeat, flags, cpu, batch_size, engine)
    if kind == "raw":
        return _run_raw(kernel, prog, data_in, ctx_in, repeat, engine, want_ctx_out, desc, user)
    raise BpfError(ENOTSUPP)


test_run.__test__ = False  # type: ignore[attr-defined]  # not a pytest test function


@contextlib.contextmanager
def running(prog: Program, env: RunEnv) -> Iterator[None]:
    """What every run of ``prog`` holds (:func:`bpf_test_run`, and the JIT's batches — a test run's
    ``repeat`` runs, a hook's frames — that run many times in one native call): the kernel's run
    lock (one run at a time per address space), ``kernel.cpu`` = ``env.cpu`` (what
    ``bpf_get_smp_processor_id`` and per-CPU maps see), and afterwards any spin lock a faulting
    program left taken released. The caller counts the runs with ``prog.account``."""
    kernel = prog.kernel
    with run_lock(kernel):
        saved_cpu = kernel.cpu
        kernel.cpu = env.cpu
        try:
            yield
        finally:
            kernel.cpu = saved_cpu
            for addr in env.locked:  # a faulting program must not leave a spin lock taken
                native.unlock_word(addr)
            env.locked.clear()


def bpf_test_run(prog: Program, r1: int, env: RunEnv, *, engine: str = "interpreter", repeat: int = 1,
                 skb: SkbView | None = None) -> tuple[int, int]:
    """``bpf_test_run``: run ``prog`` ``repeat`` times (0 means once) on the context at ``r1``, as
    ``BPF_PROG_TEST_RUN`` and the hooks do; returns (last retval as u32, mean duration in ns).

    This is the kernel layer's one entry point for executing a loaded program on a context someone
    built (:class:`~pybpf.kernel.runenv.XdpState`, :class:`~pybpf.kernel.runenv.SkbState`, raw
    memory — native memory for ``engine="jit"``): it runs under :func:`running` and counts the runs
    in the program's statistics. One engine call per run; the JIT's batches (``repeat`` runs in one
    native call) go through :func:`jit_test_run`.
    """
    runner = prog.runner(engine)
    n = repeat or 1
    with running(prog, env):
        run = runner.run
        t0 = time.perf_counter_ns()
        r0 = 0
        for _ in range(n):
            r0 = run(r1, env=env, skb=skb)
        spent = time.perf_counter_ns() - t0
    prog.account(spent, n)
    return r0 & U32_MAX, min(spent // n, U32_MAX)


def jit_test_run(prog: Program, env: RunEnv, batch: Callable[[], Any]) -> tuple[int, int]:
    """A JIT batch as ``bpf_test_run`` runs it: ``batch()`` (e.g. ``engine.run_xdp(x, repeat,
    ...)``, all runs in one native call, returning a :class:`pybpf.jit.engine.RunResult`) under
    :func:`running`; the runs are counted in the program's statistics. Returns (last retval as
    u32, the batch runner's mean ns per run)."""
    with running(prog, env):
        res = batch()
    prog.account(res.total_ns, res.runs)
    return res.retval & U32_MAX, res.duration


def run_once(prog: Program, r1: int, env: RunEnv, *, engine: str = "interpreter", skb: SkbView | None = None) -> int:
    """One run of ``prog`` on the context at ``r1`` (see :func:`bpf_test_run`); the u32 return value."""
    return bpf_test_run(prog, r1, env, engine=engine, skb=skb)[0]


# -- XDP ---------------------------------------------------------------------------------------------

def _run_xdp(kernel: Kernel, prog: Program, data_in: bytes, ctx_in: bytes | None, repeat: int, flags: int,
             batch_size: int, engine: str, want_ctx_out: bool, cpu: int) -> TestRunResult:
    if prog.image.expected_attach_type in (AttachType.XDP_DEVMAP, AttachType.XDP_CPUMAP):
        raise BpfError(errno.EINVAL)
    if flags & ~BPF_F_TEST_XDP_LIVE_FRAMES:
        raise BpfError(errno.EINVAL)
    if flags & BPF_F_TEST_XDP_LIVE_FRAMES:
        raise NotSupportedError("XDP live-frame test runs (transmitting frames) are not supported", errno.EINVAL)
    if batch_size:
        raise BpfError(errno.EINVAL)
    headroom = XDP_PACKET_HEADROOM
    size_in = len(data_in)
    linear = size_in
    meta_sz = 0
    md: dict[str, int] | None = None
    if ctx_in is not None:
        raw = _check_ctx_tail(ctx_in, XDP_MD.size)
        md = {f.name: int.from_bytes(raw[f.offset:f.offset + f.size], "little") for f in XDP_MD.fields}
        if md["data_meta"] or md["data_end"] > size_in or md["data"] > md["data_end"]:
            raise BpfError(errno.EINVAL)
        meta_sz = md["data"]
        if metalen_invalid(meta_sz) or meta_sz > headroom - XDP_FRAME_SIZE:
            raise BpfError(errno.EINVAL)
        headroom -= meta_sz
        linear = md["data_end"]
    max_linear = PAGE_SIZE - headroom - SKB_SHARED_INFO
    linear = min(linear, max_linear)
    if size_in - meta_sz < ETH_HLEN:
        raise BpfError(errno.EINVAL)
    ingress, rxq = 1, 0
    if md is not None:
        if md["egress_ifindex"]:
            raise BpfError(errno.EINVAL)
        ingress, rxq = md["ingress_ifindex"], md["rx_queue_index"]
        if not ingress and rxq:
            raise BpfError(errno.EINVAL)
        if ingress:
            name = _ifindex_exists(ingress)
            if name is None:
                raise BpfError(errno.ENODEV)
            if rxq >= _rx_queues(name):
                raise BpfError(errno.EINVAL)
        else:
            ingress = 1
    if len(data_in) - linear > MAX_SKB_FRAGS * PAGE_SIZE:
        raise BpfError(errno.ENOMEM)  # one page per fragment, at most MAX_SKB_FRAGS of them
    eng = prog.runner(engine).impl if engine == "jit" else None
    x: Any
    if eng is not None:  # the packet in native memory; all `repeat` runs in one native call
        x = eng.xdp_buff(data_in[:linear], headroom=headroom, meta_len=meta_sz, ingress_ifindex=ingress,
                         rx_queue_index=rxq, frags=data_in[linear:])
    else:
        x = XdpState(kernel_space(kernel), data_in[:linear], headroom=headroom, meta_len=meta_sz,
                     ingress_ifindex=ingress, rx_queue_index=rxq)
        x.frags = data_in[linear:]
    env = RunEnv(kernel, prog, cpu=cpu, xdp=x)
    try:
        if eng is not None:
            retval, duration = jit_test_run(prog, env, lambda: eng.run_xdp(x, repeat, env=env, cpu=cpu))
        else:
            retval, duration = bpf_test_run(prog, x.ctx_address, env, engine=engine, repeat=repeat)
        out = x.packet()
        ctx_out = None
        if md is not None:
            md_out = dict(md)
            md_out["data"] = x.data - x.data_meta
            md_out["data_end"] = x.data_end - x.data_meta
            buf = bytearray(XDP_MD.size)
            for f in XDP_MD.fields:
                buf[f.offset:f.offset + f.size] = (md_out[f.name] & U32_MAX).to_bytes(f.size, "little")
            ctx_out = bytes(buf)
    finally:
        x.close()
    return TestRunResult(retval, duration, out, ctx_out, repeat or 1, env.trace, env.ri, frags_size=len(x.frags))


# -- skb ----------------------------------------------------------------------------------------------

_SKB_SETTABLE = ("mark", "priority", "ingress_ifindex", "ifindex", "cb", "tstamp", "wire_len", "gso_segs",
                 "gso_size", "hwtstamp")


def _skb_fields_in(raw: bytes) -> dict[str, int | bytes]:
    """``convert___skb_to_skb``'s input checks: every other byte must be zero (EINVAL)."""
    allowed = bytearray(SK_BUFF.size)
    for name in _SKB_SETTABLE:
        f = SK_BUFF.field(name)
        allowed[f.offset:f.end] = b"\xff" * (f.end - f.offset)
    if any(b and not a for a, b in zip(allowed, raw, strict=True)):
        raise BpfError(errno.EINVAL)
    out: dict[str, int | bytes] = {}
    for name in _SKB_SETTABLE:
        f = SK_BUFF.field(name)
        chunk = raw[f.offset:f.end]
        out[name] = chunk if name == "cb" else int.from_bytes(chunk, "little")
    return out


def _run_skb(kernel: Kernel, prog: Program, data_in: bytes, ctx_in: bytes | None, repeat: int, flags: int,
             engine: str, want_ctx_out: bool) -> TestRunResult:
    size = len(data_in)
    if size < ETH_HLEN:
        raise BpfError(errno.EINVAL)
    if size > PAGE_SIZE - NET_SKB_PAD - SKB_SHARED_INFO:
        raise BpfError(errno.EINVAL)
    raw_ctx = _check_ctx_tail(ctx_in, SK_BUFF.size) if ctx_in is not None else None
    ptype = int(prog.image.prog_type)
    is_l2 = ptype in (ProgType.SCHED_CLS, ProgType.SCHED_ACT)
    direct = is_l2 or ptype in (ProgType.LWT_IN, ProgType.LWT_OUT, ProgType.LWT_XMIT)
    ifindex, devname = 1, "lo"
    if raw_ctx is not None:
        want = int.from_bytes(raw_ctx[SK_BUFF.offsetof("ifindex"):SK_BUFF.offsetof("ifindex") + 4], "little")
        if want > 1:
            name = _ifindex_exists(want)
            if name is None:
                raise BpfError(errno.ENODEV)
            ifindex, devname = want, name
    # eth_type_trans
    dst = data_in[:6]
    if dst == b"\xff" * 6:
        pkt_type = PACKET_BROADCAST
    elif dst[0] & 1:
        pkt_type = PACKET_MULTICAST
    elif dst == _dev_addr(devname):
        pkt_type = PACKET_HOST
    else:
        pkt_type = PACKET_OTHERHOST
    proto = int.from_bytes(data_in[12:14], "big")
    if proto < 0x600:
        proto = 0x0001 if data_in[14:16] == b"\xff\xff" else 0x0004  # ETH_P_802_3 / ETH_P_802_2
    net = data_in[ETH_HLEN:]
    family, local4, remote4 = 0, 0, 0
    local6 = remote6 = bytes(16)
    if proto == ETH_P_IP:
        if len(net) < 20:
            raise BpfError(errno.EINVAL)
        family, local4, remote4 = AF_INET, int.from_bytes(net[12:16], "little"), int.from_bytes(net[16:20], "little")
    elif proto == ETH_P_IPV6:
        if len(net) < 40:
            raise BpfError(errno.EINVAL)
        family, local6, remote6 = AF_INET6, net[8:24], net[24:40]
    skb_len = size if is_l2 else size - ETH_HLEN
    fields: dict[str, Any] = {
        "pkt_type": pkt_type,
        "protocol": int.from_bytes(proto.to_bytes(2, "big"), "little"),
        "ifindex": ifindex,
        "family": family,
        "local_ip4": local4,
        "remote_ip4": remote4,
        "wire_len": skb_len,
    }
    user: dict[str, Any] = {}
    if raw_ctx is not None:
        user = _skb_fields_in(raw_ctx)
        wire = int(user["wire_len"])
        if wire:
            if wire < skb_len or wire > GSO_LEGACY_MAX_SIZE:
                raise BpfError(errno.EINVAL)
        else:
            user["wire_len"] = skb_len
        if int(user["gso_segs"]) > GSO_MAX_SEGS:
            raise BpfError(errno.EINVAL)
        for name in ("mark", "priority", "ingress_ifindex", "tstamp", "wire_len", "gso_segs", "gso_size", "hwtstamp"):
            fields[name] = user[name]
    if flags & BPF_F_TEST_SKB_CHECKSUM_COMPLETE:
        raise NotSupportedError("BPF_F_TEST_SKB_CHECKSUM_COMPLETE test runs are not supported", errno.EINVAL)
    eng = prog.runner(engine).impl if engine == "jit" else None
    scalar = {k: v for k, v in fields.items() if k != "cb"}
    s: Any = eng.skb_buff(data_in, l2=is_l2, fields=scalar) if eng is not None else \
        SkbState(kernel_space(kernel), data_in, l2=is_l2, fields=scalar)
    if raw_ctx is not None:
        f = SKB_RUNTIME["cb"]
        s.ctx_buf[f.offset:f.offset + f.size] = user["cb"]
    for name, raw6 in (("local_ip6", local6), ("remote_ip6", remote6)):
        f = SKB_RUNTIME[name]
        s.ctx_buf[f.offset:f.offset + f.size] = raw6
    if not direct:
        # no direct packet access: the program sees data/data_end only as their raw values (0)
        for name in ("data", "data_end", "data_meta"):
            s.set_field(name, 0)
    view = SkbView(data=s.data_address, headlen=s.len,
                   network_offset=0 if not is_l2 else ETH_HLEN, mac_offset=-ETH_HLEN if not is_l2 else 0)
    env = RunEnv(kernel, prog, skb=s)
    try:
        if eng is not None:
            retval, duration = jit_test_run(prog, env, lambda: eng.run_skb(
                s, repeat, env=env, network_offset=view.network_offset, mac_offset=view.mac_offset))
        else:
            retval, duration = bpf_test_run(prog, s.ctx_address, env, engine=engine, repeat=repeat, skb=view)
        if direct:
            s.sync()
        out = s.packet()
        if not is_l2:
            out = bytes(ETH_HLEN) + out
        ctx_out = None
        if raw_ctx is not None:
            buf = bytearray(raw_ctx)
            for name in ("mark", "priority", "ingress_ifindex", "ifindex", "tstamp", "wire_len", "gso_segs",
                         "hwtstamp"):
                f = SK_BUFF.field(name)
                buf[f.offset:f.end] = s.field(name).to_bytes(f.end - f.offset, "little")
            f = SK_BUFF.field("cb")
            rf = SKB_RUNTIME["cb"]
            buf[f.offset:f.end] = s.ctx_buf[rf.offset:rf.offset + rf.size]
            ctx_out = bytes(buf)
    finally:
        s.close()
    return TestRunResult(retval, duration, out, ctx_out, repeat or 1, env.trace, env.ri)


# -- raw tracepoints and application-defined types -------------------------------------------------------

def _run_raw_tp(kernel: Kernel, prog: Program, data_in: bytes, ctx_in: bytes | None, repeat: int, flags: int,
                cpu: int, batch_size: int, engine: str) -> TestRunResult:
    if data_in or repeat or batch_size:
        raise BpfError(errno.EINVAL)
    if flags & ~BPF_F_TEST_RUN_ON_CPU:
        raise BpfError(errno.EINVAL)
    if not flags & BPF_F_TEST_RUN_ON_CPU and cpu:
        raise BpfError(errno.EINVAL)
    args = ctx_in or b""
    if len(args) > MAX_BPF_FUNC_ARGS * 8:
        raise BpfError(errno.EINVAL)
    if cpu >= kernel.ncpus:
        raise BpfError(errno.ENXIO)
    space: Any = native_space(kernel) if engine == "jit" else kernel_space(kernel)
    region = space.add(bytearray(args.ljust(MAX_BPF_FUNC_ARGS * 8, b"\0")), RegionKind.CTX, "raw_tp args",
                       end=max(len(args), 0))
    env = RunEnv(kernel, prog, cpu=cpu)
    try:
        retval, _d = bpf_test_run(prog, region.address(), env, engine=engine, repeat=1)
    finally:
        space.remove(region)
    return TestRunResult(retval, 0, b"", None, 1, env.trace, env.ri)


def _run_raw(kernel: Kernel, prog: Program, data_in: bytes, ctx_in: bytes | None, repeat: int, engine: str,
             want_ctx_out: bool, desc: Any, user: Any) -> TestRunResult:
    size = desc.ctx.size if desc.ctx is not None else 0
    raw = _check_ctx_tail(ctx_in or b"", size)
    space: Any = native_space(kernel) if engine == "jit" else kernel_space(kernel)
    buf = bytearray(raw)
    region = space.add(buf, RegionKind.CTX, desc.name)
    env = RunEnv(kernel, prog, user=user)
    data_region = None
    try:
        if data_in:
            data_region = space.add(bytearray(data_in), RegionKind.PACKET, "data")
        retval, duration = bpf_test_run(prog, region.address(), env, engine=engine, repeat=repeat)
        out = bytes(data_region.buf) if data_region is not None else b""
        ctx_out = bytes(buf) if ctx_in is not None else None
    finally:
        space.remove(region)
        if data_region is not None:
            space.remove(data_region)
    return TestRunResult(retval, duration, out, ctx_out, repeat or 1, env.trace, env.ri)


# -- the syscall ---------------------------------------------------------------------------------------

def output_errno(res: TestRunResult, data_size_out: int | None, ctx_size_out: int | None) -> int:
    """The errno a ``BPF_PROG_TEST_RUN`` call with output buffers of these sizes ends with (None: no
    buffer): ENOSPC when the packet (``bpf_test_finish``) or the context (``bpf_ctx_finish``) does
    not fit, else 0 — what a caller without the attr (bpftool's ``prog run``) needs to know."""
    if data_size_out and len(res.data_out) > data_size_out:
        return errno.ENOSPC
    if ctx_size_out is not None and res.ctx_out is not None and len(res.ctx_out) > ctx_size_out:
        return errno.ENOSPC
    return 0


_OFF = {"retval": 4, "data_size_out": 12, "duration": 28, "ctx_size_out": 36}


def test_run_attr(kernel: Kernel, prog: Program, attr: Any, uattr: int) -> int:
    """PROG_TEST_RUN from a ``union bpf_attr`` (after the generic checks in the syscall layer):
    copies inputs from user memory and writes outputs back, with the kernel's ENOSPC rules."""
    t = attr.test
    data_in = b""
    if t.data_size_in:
        got = native.copy_from_user(t.data_in, t.data_size_in)
        if got is None:
            raise BpfError(errno.EFAULT)
        data_in = got
    ctx_in = None
    if t.ctx_in:
        if t.ctx_size_in > PAGE_SIZE:
            raise BpfError(errno.E2BIG)
        got = native.copy_from_user(t.ctx_in, t.ctx_size_in)
        if got is None:
            raise BpfError(errno.EFAULT)
        ctx_in = got
    res = test_run(kernel, prog, data_in, ctx_in=ctx_in, repeat=t.repeat, flags=t.flags, cpu=t.cpu,
                   batch_size=t.batch_size, want_ctx_out=bool(t.ctx_out))
    err = 0
    out = res.data_out
    desc = descriptor(int(prog.image.prog_type))
    if desc.test_run in ("xdp", "skb", "raw"):
        # bpf_test_finish: a short buffer gets what fits and ENOSPC; the fragments of an XDP frame
        # always go whole, after as much of the linear part as leaves room for them
        copy_size = len(out)
        if t.data_size_out and copy_size > t.data_size_out:
            copy_size = t.data_size_out
            err = errno.ENOSPC
        if t.data_out:
            linear = copy_size - res.frags_size
            if linear < 0:
                raise BpfError(errno.ENOSPC)  # nothing copied, retval and sizes not written
            copy = out[:linear] + out[len(out) - res.frags_size:]
            if copy and not native.copy_to_user(t.data_out, copy):
                raise BpfError(errno.EFAULT)
        _put(uattr, "data_size_out", len(out))
        _put(uattr, "duration", res.duration)
    _put(uattr, "retval", res.retval)
    if err:
        raise BpfError(err)
    if res.ctx_out is not None and t.ctx_out:
        copy = res.ctx_out
        if len(copy) > t.ctx_size_out:
            copy = copy[:t.ctx_size_out]
            err = errno.ENOSPC
        if not native.copy_to_user(t.ctx_out, copy):
            raise BpfError(errno.EFAULT)
        _put(uattr, "ctx_size_out", len(res.ctx_out))
        if err:
            raise BpfError(err)
    return 0


def _put(uattr: int, name: str, value: int) -> None:
    if not native.copy_to_user(uattr + _OFF[name], (value & U32_MAX).to_bytes(4, "little")):
        raise BpfError(errno.EFAULT)

