"""Running a loaded program on frames: the execution backends behind the hooks.

A hook decides what a verdict means; a *runner* only executes the program on a batch of frames and
reports, per frame, what the program left behind — its return value, the packet after
``bpf_xdp_adjust_head/tail/meta`` or skb stores, the metadata area, the context fields it may write,
and the ``bpf_redirect_info`` a redirect helper filled. Runners take batches so that an engine which
runs many frames in one native call plugs in without changing the hooks.

* :class:`KernelXdpRunner` / :class:`KernelSkbRunner` run through the kernel layer's test-run
  machinery, one frame at a time: the kernel layer builds the ``xdp_buff`` (256 bytes of headroom
  in a 4 KiB frame, :class:`~pybpf.kernel.runenv.XdpState`) or the linear ``sk_buff``
  (:class:`~pybpf.kernel.runenv.SkbState`) from the runtime layouts of :mod:`pybpf.progtypes`, and
  the program runs on the engine asked for (``"interpreter"``, ``"translate"``, or the kernel
  layer's ``"jit"`` engine) through the kernel layer's run entry point
  (:func:`pybpf.kernel.test_run.run_once`: its run lock, "CPU", statistics, spin-lock cleanup).
* :class:`JitXdpRunner` runs a whole batch of XDP frames in one native call through the JIT's batch
  runner (the driver builds each context from the same runtime layout, in native memory).
* :func:`xdp_runner` / :func:`skb_runner` pick the runner for an engine name: ``"jit"`` takes the
  batch runner when the program's helpers allow it, else the kernel layer's JIT engine.

Any object with ``run_xdp(frames, egress_ifindex=0)`` (or ``run_skb(inputs)``) returning these
records can be given to the hooks instead: tests use that to drive the verdict logic with a fake.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from pybpf.errors import NotSupportedError, PybpfError
from pybpf.hooks.errors import HookError
from pybpf.hooks.packet import ETH_HLEN, Frame
from pybpf.kernel.runenv import INT_MAX
from pybpf.kernel.test_run import run_once
from pybpf.uapi import HelperId, ProgType

if TYPE_CHECKING:
    from pybpf.kernel.program import Program

__all__ = [
    "INT_MAX",
    "RUNNER_ENGINES",
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
        self.program = program
        self.engine = engine
        program.runner(engine)  # prepare now: unknown engines and JIT failures surface here
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


_JIT_HELPERS = {int(HelperId.redirect)}
"""Helpers whose kernel-layer implementation works under the JIT batch runner: they touch only
``ctx.env`` (the redirect info), not the interpreter's packet or map regions."""
_REDIRECT_HELPERS = {int(HelperId.redirect), int(HelperId.redirect_map)}


def _helper_calls(program: Any) -> set[int]:
    """Ids of the helpers (and internal functions) a program's instructions call."""
    return {insn.imm & 0xFFFFFFFF for insn in program.insns if insn.code == 0x85 and insn.src == 0}


def _helper_name(hid: int) -> str:
    try:
        return f"bpf_{HelperId(hid).name}"
    except ValueError:
        from pybpf.progtypes import internal

        f = internal.by_id(hid) if internal.is_internal(hid) else None
        return getattr(f, "name", f"#{hid}")


class JitXdpRunner:
    """XDP frames through the JIT's batch runner (:class:`pybpf.jit.runtime.BatchRunner`): the frames
    of a batch are laid out one per page (256 bytes of headroom each) in native memory and the
    program runs over all of them in one native call, the driver building each ``xdp_buff`` from the
    progtypes runtime layout.

    Frames that share an ingress device and rx queue go in one call (those context fields are set
    once per call). A program that calls a redirect helper runs one frame per call, so that each
    frame's ``bpf_redirect_info`` is its own. Programs calling helpers that need the kernel layer's
    packet or map state (``bpf_xdp_adjust_head``, hash-map operations...) are refused with
    :class:`~pybpf.errors.NotSupportedError` until the JIT has native versions of them.
    """

    def __init__(self, program: Program) -> None:
        program = kernel_program(program)
        calls = _helper_calls(program)
        missing = sorted(calls - _JIT_HELPERS)
        if missing:
            raise NotSupportedError(f"the JIT batch runner cannot run {program.name or 'this program'} yet: it calls "
                                    f"{', '.join(_helper_name(h) for h in missing)}")
        from pybpf import jit
        from pybpf.jit.runtime import BatchRunner
        from pybpf.kernel.helpers import helper_table
        from pybpf.progtypes import XDP_RUNTIME
        from pybpf.vm import ProgramExit

        self.program = program
        self.engine = "jit"
        self._jit = jit.prepare(program, helpers=helper_table(), exit_exceptions=(ProgramExit,))
        self._batch = BatchRunner(self._jit, XDP_RUNTIME)
        self._layout = XDP_RUNTIME
        self._one_by_one = bool(calls & _REDIRECT_HELPERS)

    def run_xdp(self, frames: Sequence[Frame], *, egress_ifindex: int = 0) -> list[XdpRun]:
        """Frames grouped by (ingress device, rx queue) into native batch calls (one by one when the program
        redirects)."""
        out: list[XdpRun] = []
        i = 0
        while i < len(frames):
            j = i + 1
            if not self._one_by_one:
                key = (frames[i].ifindex, frames[i].rx_queue)
                while j < len(frames) and (frames[j].ifindex, frames[j].rx_queue) == key:
                    j += 1
            out += self._run_group(frames[i:j], egress_ifindex)
            i = j
        return out

    def _run_group(self, frames: Sequence[Frame], egress_ifindex: int) -> list[XdpRun]:
        from pybpf.jit.runtime import NativeBuffer
        from pybpf.kernel.runenv import RunEnv

        # frame_sz says "one page" as drivers do; the frames themselves sit back to back (each with its
        # headroom), which is safe because no helper that could grow a frame runs under this runner
        headroom = XDP_PACKET_HEADROOM
        page = max(4096, -(-(headroom + max(len(f.data) for f in frames) + SKB_SHARED_INFO) // 4096) * 4096)
        blob = bytearray()
        offsets = []
        for f in frames:
            blob += bytes(headroom)
            offsets.append(len(blob))
            blob += f.data
            blob += bytes(-len(blob) % SMP_CACHE_BYTES)
        buf = NativeBuffer(bytes(blob))
        ctx = self._batch.ctx
        for name, value in (("ingress_ifindex", frames[0].ifindex), ("rx_queue_index", frames[0].rx_queue),
                            ("frame_sz", page), ("egress_ifindex", egress_ifindex)):
            field = self._layout[name]
            ctx.write(value.to_bytes(field.size, "little"), field.offset)
        prog = self.program
        env = RunEnv(kernel=prog.kernel, prog=prog, cpu=prog.kernel.cpu)
        try:
            res = self._batch.run(buf, offsets, [len(f.data) for f in frames], headroom=headroom, env=env)
        except PybpfError as e:
            raise _annotate(e, frames[0].number, prog) from None
        ri = RedirectTarget.from_ri(env.ri) if self._one_by_one else RedirectTarget()
        whole = buf.read()
        return [XdpRun(v, whole[start:start + length], b"", ri)
                for v, start, length in zip(res.verdicts, res.starts, res.lengths, strict=True)]


def xdp_runner(program: Program, engine: str = "interpreter") -> XdpRunner:
    """The runner for ``program`` on ``engine`` (see the module docstring)."""
    program = kernel_program(program)
    if engine not in RUNNER_ENGINES:
        raise HookError(f"unknown engine {engine!r} (choose from {', '.join(RUNNER_ENGINES)})")
    if engine == "jit":
        try:
            return JitXdpRunner(program)
        except NotSupportedError as batch_error:
            try:  # the kernel layer's own JIT engine, one frame per call, may cover what the batch cannot
                return KernelXdpRunner(program, engine)
            except PybpfError as e:
                batch_error.add_note(f"the kernel layer's JIT engine: {e}")
                raise batch_error from None
    return KernelXdpRunner(program, engine)


def skb_runner(program: Program, engine: str = "interpreter") -> SkbRunner:
    """The skb runner for ``program`` on ``engine``."""
    program = kernel_program(program)
    if engine not in RUNNER_ENGINES:
        raise HookError(f"unknown engine {engine!r} (choose from {', '.join(RUNNER_ENGINES)})")
    return KernelSkbRunner(program, engine)
