"""Running a loaded program on frames: the execution backends behind the hooks.

A hook decides what a verdict means; a *runner* only executes the program on a batch of frames and
reports, per frame, what the program left behind — its return value, the packet after
``bpf_xdp_adjust_head/tail/meta`` or skb stores, the metadata area, the context fields it may write,
and the ``bpf_redirect_info`` a redirect helper filled. Runners take batches so that an engine which
runs many frames in one native call plugs in without changing the hooks.

* :class:`KernelXdpRunner` / :class:`KernelSkbRunner` run through the kernel layer's test-run
  machinery, one frame at a time: the kernel layer builds the ``xdp_buff`` (256 bytes of headroom
  in a 4 KiB frame, :class:`~pybpf.kernel.runenv.XdpState`) or the linear ``sk_buff``
  (:class:`~pybpf.kernel.runenv.SkbState`) from the runtime layouts of :mod:`pybpf.progtypes` in
  the vm's address space, and the program runs on the vm engine asked for (``"interpreter"`` or
  ``"translate"``) through the kernel layer's run entry point
  (:func:`pybpf.kernel.test_run.run_once`: its run lock, "CPU", statistics, spin-lock cleanup).
* :class:`JitXdpRunner` / :class:`JitSkbRunner` hand a whole batch of frames to the program's JIT
  engine (:class:`pybpf.jit.engine.JitEngine`): frames and contexts in native memory, one native
  call per batch, native helpers on the packet path.
* :func:`xdp_runner` / :func:`skb_runner` pick the runner for an engine name (``"jit"``: the JIT
  runners).

Any object with ``run_xdp(frames, egress_ifindex=0)`` (or ``run_skb(inputs)``) returning these
records can be given to the hooks instead: tests use that to drive the verdict logic with a fake.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from pybpf.errors import PybpfError
from pybpf.hooks.errors import HookError
from pybpf.hooks.packet import ETH_HLEN, Frame
from pybpf.kernel.runenv import INT_MAX
from pybpf.kernel.test_run import jit_test_run, run_once, running
from pybpf.uapi import ProgType

if TYPE_CHECKING:
    from pybpf.kernel.program import Program

__all__ = [
    "INT_MAX",
    "RUNNER_ENGINES",
    "JitSkbRunner",
    "JitXdpRunner",
    "KernelSkbRunner",
    "KernelXdpRunner",
    "RedirectTarget",
    "SkbInput",
    "SkbRun",
    "SkbRunner",
    "XdpRun",
    "XdpRunner",
    "kernel_program",
    "skb_runner",
    "xdp_runner",
]

RUNNER_ENGINES = ("interpreter", "translate", "jit")
BPF_F_XDP_HAS_FRAGS = 1 << 5
SKB_SHARED_INFO = 320  # SKB_DATA_ALIGN(sizeof(struct skb_shared_info)) on x86-64
SMP_CACHE_BYTES = 64
XDP_PACKET_HEADROOM = 256
XDP_MAX_LINEAR = 4096 - XDP_PACKET_HEADROOM - SKB_SHARED_INFO  # PAGE_SIZE - XDP_PACKET_HEADROOM - shared info


@dataclass(frozen=True, slots=True)
class RedirectTarget:
    """``struct bpf_redirect_info`` after a run: what ``bpf_redirect``/``bpf_redirect_map`` chose.

    ``map_id == INT_MAX`` with ``map_type == 0`` means "to the device ``tgt_index``" (plain
    ``bpf_redirect``); a DEVMAP/DEVMAP_HASH id means "to the map entry with key ``tgt_index``";
    ``map_id == 0`` means no redirect helper succeeded. ``map`` is the map object when one is used.
    """

    tgt_index: int = 0
    map_id: int = 0
    map_type: int = 0
    flags: int = 0
    map: Any = None

    @classmethod
    def from_ri(cls, ri: Any) -> RedirectTarget:
        """A frozen copy of a run's ``bpf_redirect_info``."""
        return cls(int(ri.tgt_index), int(ri.map_id), int(ri.map_type), int(ri.flags), getattr(ri, "map", None))


@dataclass(frozen=True, slots=True)
class XdpRun:
    """What one XDP run left: ``retval`` (the u32 action), the frame ``data``..``data_end`` after
    any adjustment (plus the non-linear part), the ``meta`` area, the redirect decision."""

    retval: int
    data: bytes
    meta: bytes = b""
    redirect: RedirectTarget = field(default_factory=RedirectTarget)


@dataclass(frozen=True, slots=True)
class SkbInput:
    """One frame for an skb program: the bytes from the MAC header (VLAN tag already taken out by
    the hook when the receive path would), the ``__sk_buff`` field values, and whether ``skb->data``
    points at the MAC header (tc) or the network header (socket filters on non-packet sockets)."""

    data: bytes
    fields: Mapping[str, int]
    l2: bool = True
    number: int = 0


@dataclass(frozen=True, slots=True)
class SkbRun:
    """What one skb run left: ``retval``, the frame from the MAC header after any stores, the
    context fields a program may write (``mark``, ``priority``, ``tc_index``, ``tc_classid``,
    ``queue_mapping``, ``cb``...), the redirect decision."""

    retval: int
    data: bytes
    fields: Mapping[str, int] = field(default_factory=dict)
    redirect: RedirectTarget = field(default_factory=RedirectTarget)


class XdpRunner(Protocol):
    """Runs an XDP program on frames (see the module docstring)."""

    program: Any
    engine: str

    def run_xdp(self, frames: Sequence[Frame], *, egress_ifindex: int = 0) -> list[XdpRun]:
        """Run the program once per frame; ``egress_ifindex`` is set for programs run on a devmap
        entry."""


class SkbRunner(Protocol):
    """Runs an skb program (tc, socket filter) on frames."""

    program: Any
    engine: str

    def run_skb(self, inputs: Sequence[SkbInput]) -> list[SkbRun]:
        """Run the program once per input."""


def kernel_program(program: Any) -> Any:
    """The kernel-layer program behind ``program`` (a ``pybpf.Program`` from the loader wraps one)."""
    return getattr(program, "kernel_program", program)


def _annotate(e: PybpfError, number: int, program: Any) -> PybpfError:
    name = getattr(program, "name", "") or "program"
    e.add_note(f"while running {name} on packet {number}")
    return e


def _vm_engine(engine: str) -> None:
    """The kernel-layer runners build packets in the vm's address space: JIT code needs native
    memory (its runners are :class:`JitXdpRunner` / :class:`JitSkbRunner`)."""
    if engine == "jit":
        raise HookError("the JIT runs frames through JitXdpRunner / JitSkbRunner (xdp_runner(program, 'jit'))")


def _write_field(buf: bytearray, layout: Any, name: str, value: int) -> None:
    f = layout[name]
    buf[f.offset:f.offset + f.size] = (value & ((1 << (8 * f.size)) - 1)).to_bytes(f.size, "little")


class KernelXdpRunner:
    """XDP frames one at a time through the kernel layer's ``xdp_buff``
    (:class:`~pybpf.kernel.runenv.XdpState`) and test-run loop, on ``engine``.

    A frame that fits one page (up to 3520 bytes: 4096 less 256 of headroom and 320 for
    ``skb_shared_info``) gets the page-sized frame drivers give XDP. A larger frame is handled as
    generic XDP does: a program loaded with ``BPF_F_XDP_HAS_FRAGS`` sees one page of it and the rest
    as fragments; any other program sees it linearised into one buffer whose ``frame_sz`` covers it.
    """

    def __init__(self, program: Program, engine: str = "interpreter") -> None:
        _vm_engine(engine)
        self.program = program
        self.engine = engine
        program.runner(engine)  # prepare now: unknown engines surface here
        self._has_frags = bool(getattr(program.image, "prog_flags", 0) & BPF_F_XDP_HAS_FRAGS)
        self._page: Any = None  # the page-sized xdp_buff, reused frame after frame as a driver reuses pages

    def run_xdp(self, frames: Sequence[Frame], *, egress_ifindex: int = 0) -> list[XdpRun]:
        """Each frame through the kernel layer's ``xdp_buff`` and run entry point, in order."""
        return [self._run_one(f, egress_ifindex) for f in frames]

    def close(self) -> None:
        """Give the reused page back to the address space."""
        if self._page is not None:
            self._page.close()
            self._page = None

    def _reuse_page(self, frame: Frame) -> Any:
        """The page state, reset for ``frame``: zeroed (nothing of the previous frame shows through
        adjust_head/meta), the frame after the headroom, pointers and context fields rewritten."""
        from pybpf.progtypes import XDP_RUNTIME

        st = self._page
        st.buf[:] = bytes(len(st.buf))
        head = XDP_PACKET_HEADROOM
        st.buf[head:head + len(frame.data)] = frame.data
        st.data_meta = st.data = head
        st.data_end = head + len(frame.data)
        st.frags = b""
        for name, value in (("ingress_ifindex", frame.ifindex), ("rx_queue_index", frame.rx_queue),
                            ("egress_ifindex", 0)):
            _write_field(st.ctx_buf, XDP_RUNTIME, name, value)
        st.sync()
        return st

    def _state(self, frame: Frame) -> Any:
        from pybpf.kernel.engines import kernel_space
        from pybpf.kernel.runenv import XdpState
        from pybpf.progtypes import XDP_RUNTIME

        space = kernel_space(self.program.kernel)
        data = frame.data
        if len(data) <= XDP_MAX_LINEAR:
            if self._page is not None:
                return self._reuse_page(frame)
            self._page = XdpState(space, data, ingress_ifindex=frame.ifindex, rx_queue_index=frame.rx_queue)
            return self._page
        if self._has_frags:
            state = XdpState(space, data[:XDP_MAX_LINEAR], ingress_ifindex=frame.ifindex,
                             rx_queue_index=frame.rx_queue)
            state.frags = data[XDP_MAX_LINEAR:]
            return state
        # linearised: the buffer holds headroom + frame + SKB_DATA_ALIGN slack, then shared info
        slack = -len(data) % SMP_CACHE_BYTES
        state = XdpState(space, data + bytes(slack), ingress_ifindex=frame.ifindex, rx_queue_index=frame.rx_queue)
        state.data_end -= slack
        state.frame_sz = len(state.buf) + SKB_SHARED_INFO
        _write_field(state.ctx_buf, XDP_RUNTIME, "frame_sz", state.frame_sz)
        state.sync()
        return state

    def _run_one(self, frame: Frame, egress_ifindex: int) -> XdpRun:
        from pybpf.kernel.runenv import RunEnv
        from pybpf.progtypes import XDP_RUNTIME

        prog = self.program
        state = self._state(frame)
        try:
            if egress_ifindex:
                _write_field(state.ctx_buf, XDP_RUNTIME, "egress_ifindex", egress_ifindex)
            env = RunEnv(kernel=prog.kernel, prog=prog, cpu=prog.kernel.cpu, xdp=state)
            try:
                r0 = run_once(prog, state.ctx_address, env, engine=self.engine)
            except PybpfError as e:
                raise _annotate(e, frame.number, prog) from None
            data = bytes(state.buf[state.data:state.data_end]) + bytes(state.frags)
            meta = bytes(state.buf[state.data_meta:state.data])
            return XdpRun(r0, data, meta, RedirectTarget.from_ri(env.ri))
        finally:
            if state is not self._page:
                state.close()


_SKB_OUT_FIELDS = ("mark", "priority", "tc_index", "tc_classid", "queue_mapping", "hash", "vlan_present",
                   "vlan_tci", "vlan_proto", "protocol", "pkt_type", "tstamp")
_DIRECT_SKB_TYPES = (ProgType.SCHED_CLS, ProgType.SCHED_ACT, ProgType.LWT_IN, ProgType.LWT_OUT, ProgType.LWT_XMIT)


class KernelSkbRunner:
    """skb frames one at a time through the kernel layer's linear ``sk_buff``
    (:class:`~pybpf.kernel.runenv.SkbState`) and test-run loop, on ``engine``."""

    def __init__(self, program: Program, engine: str = "interpreter") -> None:
        _vm_engine(engine)
        self.program = program
        self.engine = engine
        program.runner(engine)
        self._direct = int(program.image.prog_type) in _DIRECT_SKB_TYPES

    def run_skb(self, inputs: Sequence[SkbInput]) -> list[SkbRun]:
        """Each input through the kernel layer's ``sk_buff`` and run entry point, in order."""
        return [self._run_one(i) for i in inputs]

    def _run_one(self, inp: SkbInput) -> SkbRun:
        from pybpf.kernel.engines import kernel_space
        from pybpf.kernel.runenv import RunEnv, SkbState
        from pybpf.vm import SkbView

        if len(inp.data) < ETH_HLEN:
            raise HookError(f"a {len(inp.data)}-byte frame has no Ethernet header; an skb cannot be built",
                            packet=inp.number or None)
        prog = self.program
        state = SkbState(kernel_space(prog.kernel), inp.data, l2=inp.l2, fields=dict(inp.fields))
        try:
            if not self._direct:
                # no direct packet access (socket filters): data/data_end are not pointers for them
                for name in ("data", "data_end", "data_meta"):
                    state.set_field(name, 0)
            env = RunEnv(kernel=prog.kernel, prog=prog, cpu=prog.kernel.cpu, skb=state)
            view = SkbView(state.data_address, state.len, network_offset=ETH_HLEN if inp.l2 else 0,
                           mac_offset=0 if inp.l2 else -ETH_HLEN)
            try:
                r0 = run_once(prog, state.ctx_address, env, engine=self.engine, skb=view)
            except PybpfError as e:
                raise _annotate(e, inp.number, prog) from None
            start = min(state.mac, state.data)
            data = bytes(state.buf[start:state.data + state.len])
            fields = {n: state.field(n) for n in _SKB_OUT_FIELDS}
            return SkbRun(r0, data, fields, RedirectTarget.from_ri(env.ri))
        finally:
            state.close()


class JitXdpRunner:
    """XDP frames through the JIT engine's batch runner (the program's
    :class:`pybpf.jit.engine.JitEngine`, ``program.runner("jit")``): a batch of frames goes into
    native memory, one slot per frame (a page with 256 bytes of headroom; a longer frame
    linearised into a bigger ``frame_sz`` as generic XDP does), and runs in **one native call** —
    the driver copies each frame's context image (ingress device, rx queue, ``frame_sz``), builds
    its ``xdp_buff`` pointers from the progtypes runtime layout, runs the program and records the
    verdict and where the frame ends up. Map, redirect and adjust_head/tail/meta helpers are native
    code; the rest are Python callbacks that find the running frame from the context.

    A program that may redirect runs one frame per native call, each with its own
    ``bpf_redirect_info``. A frame larger than a page for a ``BPF_F_XDP_HAS_FRAGS`` program is run
    on its own as one page plus fragments. The runs hold the kernel layer's run lock and CPU
    (:func:`pybpf.kernel.test_run.running`) and count in the program's statistics.
    """

    def __init__(self, program: Program) -> None:
        program = kernel_program(program)
        self.program = program
        self.engine = "jit"
        self._eng = program.runner("jit").impl  # NotSupportedError where the JIT cannot run
        self._has_frags = bool(getattr(program.image, "prog_flags", 0) & BPF_F_XDP_HAS_FRAGS)

    def run_xdp(self, frames: Sequence[Frame], *, egress_ifindex: int = 0) -> list[XdpRun]:
        """The batch in one native call (one per frame for redirecting programs); frames with
        fragments one by one."""
        from pybpf.jit.engine import XdpFrameIn

        out: list[XdpRun | None] = [None] * len(frames)
        linear = [i for i, f in enumerate(frames) if not (self._has_frags and len(f.data) > XDP_MAX_LINEAR)]
        if linear:
            prog = self.program
            env = self._env()
            items = [XdpFrameIn(frames[i].data, frames[i].ifindex, frames[i].rx_queue) for i in linear]
            try:
                with running(prog, env):
                    t0 = time.perf_counter_ns()
                    res = self._eng.run_xdp_frames(items, env=env, cpu=env.cpu, egress_ifindex=egress_ifindex)
                    spent = time.perf_counter_ns() - t0
            except PybpfError as e:
                k = int(getattr(e, "packet_index", 0))
                raise _annotate(e, frames[linear[min(k, len(linear) - 1)]].number, prog) from None
            prog.account(spent, len(items))
            for i, r in zip(linear, res, strict=True):
                out[i] = XdpRun(r.verdict, r.data, r.meta, _redirect_target(r.redirect))
        for i, f in enumerate(frames):
            if out[i] is None:
                out[i] = self._run_with_frags(f, egress_ifindex)
        return [r for r in out if r is not None]

    def _env(self, **kw: Any) -> Any:
        from pybpf.kernel.runenv import RunEnv

        prog = self.program
        return RunEnv(kernel=prog.kernel, prog=prog, cpu=prog.kernel.cpu, **kw)

    def _run_with_frags(self, frame: Frame, egress_ifindex: int) -> XdpRun:
        """One frame as a page (3520 bytes after the headroom) plus fragments."""
        prog = self.program
        x = self._eng.xdp_buff(frame.data[:XDP_MAX_LINEAR], ingress_ifindex=frame.ifindex,
                               rx_queue_index=frame.rx_queue, egress_ifindex=egress_ifindex,
                               frags=frame.data[XDP_MAX_LINEAR:])
        try:
            env = self._env(xdp=x)
            try:
                retval, _ = jit_test_run(prog, env, lambda: self._eng.run_xdp(x, 1, env=env, cpu=env.cpu))
            except PybpfError as e:
                raise _annotate(e, frame.number, prog) from None
            data = bytes(x.buf[x.data:x.data_end]) + bytes(x.frags)
            return XdpRun(retval, data, bytes(x.buf[x.data_meta:x.data]), RedirectTarget.from_ri(env.ri))
        finally:
            x.close()


class JitSkbRunner:
    """skb frames (tc, socket filters) through the JIT engine's batch runner: the frames of a batch
    in native memory (``NET_SKB_PAD`` headroom each), one context image per frame (its
    ``__sk_buff`` fields, ``len``), one native call for the batch — one per frame for programs that
    may redirect or that use LD_ABS / LD_IND. Under the kernel layer's run lock and CPU, counted in
    the program's statistics, like :class:`JitXdpRunner`."""

    def __init__(self, program: Program) -> None:
        program = kernel_program(program)
        self.program = program
        self.engine = "jit"
        self._eng = program.runner("jit").impl

    def run_skb(self, inputs: Sequence[SkbInput]) -> list[SkbRun]:
        """The inputs in one native call (see the class docstring)."""
        from pybpf.jit.engine import SkbFrameIn
        from pybpf.kernel.runenv import RunEnv

        for inp in inputs:
            if len(inp.data) < ETH_HLEN:
                raise HookError(f"a {len(inp.data)}-byte frame has no Ethernet header; an skb cannot be built",
                                packet=inp.number or None)
        if not inputs:
            return []
        prog = self.program
        env = RunEnv(kernel=prog.kernel, prog=prog, cpu=prog.kernel.cpu)
        frames = [SkbFrameIn(inp.data, dict(inp.fields), inp.l2) for inp in inputs]
        try:
            with running(prog, env):
                t0 = time.perf_counter_ns()
                res = self._eng.run_skb_frames(frames, env=env, cpu=env.cpu)
                spent = time.perf_counter_ns() - t0
        except PybpfError as e:
            k = int(getattr(e, "packet_index", 0))
            raise _annotate(e, inputs[min(k, len(inputs) - 1)].number, prog) from None
        prog.account(spent, len(frames))
        return [SkbRun(r.verdict, r.data, {n: r.field(n) for n in _SKB_OUT_FIELDS}, _redirect_target(r.redirect))
                for r in res]


def _redirect_target(rec: Any) -> RedirectTarget:
    """A JIT frame's redirect record as the hooks' :class:`RedirectTarget` (none: no decision)."""
    if rec is None:
        return RedirectTarget()
    return RedirectTarget(int(rec.tgt_index), int(rec.map_id), int(rec.map_type), int(rec.flags), rec.map)


def xdp_runner(program: Program, engine: str = "interpreter") -> XdpRunner:
    """The runner for ``program`` on ``engine`` (see the module docstring)."""
    program = kernel_program(program)
    if engine not in RUNNER_ENGINES:
        raise HookError(f"unknown engine {engine!r} (choose from {', '.join(RUNNER_ENGINES)})")
    if engine == "jit":
        return JitXdpRunner(program)
    return KernelXdpRunner(program, engine)


def skb_runner(program: Program, engine: str = "interpreter") -> SkbRunner:
    """The skb runner for ``program`` on ``engine``."""
    program = kernel_program(program)
    if engine not in RUNNER_ENGINES:
        raise HookError(f"unknown engine {engine!r} (choose from {', '.join(RUNNER_ENGINES)})")
    if engine == "jit":
        return JitSkbRunner(program)
    return KernelSkbRunner(program, engine)
