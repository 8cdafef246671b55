"""The XDP hook: a loaded XDP program on a stream of frames, verdicts honoured as Linux does.

Each frame is run the way the kernel's receive path runs an XDP program — generic ("skb") XDP,
``netif_receive_generic_xdp`` and ``do_xdp_generic`` in net/core/dev.c, which is what a userspace
hook can faithfully be: the frame sits in an ``xdp_buff`` with 256 bytes of headroom
(``XDP_PACKET_HEADROOM``) in a 4 KiB frame, ``ingress_ifindex``/``rx_queue_index`` come from the
frame's source, ``data_meta`` starts equal to ``data``. Then the verdict:

``XDP_PASS``
    the frame, as the program left it (``bpf_xdp_adjust_head/tail`` applied; metadata is not part
    of the frame), goes to the *pass* output — the network stack.
``XDP_TX``
    the frame goes to the *tx* output: back out of the device it arrived on.
``XDP_REDIRECT``
    ``xdp_do_generic_redirect``: to the device ``bpf_redirect()`` named, or through the DEVMAP /
    DEVMAP_HASH entry ``bpf_redirect_map()`` chose (with ``BPF_F_BROADCAST`` to every entry,
    ``BPF_F_EXCLUDE_INGRESS`` skipping the ingress device), after ``xdp_ok_fwd_dev``'s checks (device
    known and up, frame within its MTU). A DEVMAP entry's own program (``value_size == 8``) runs on
    the frame first with ``egress_ifindex`` set; anything but ``XDP_PASS`` from it drops the frame.
    The frame goes to the *redirect* output with the target's ifindex. A failed redirect (no such
    device, device down, too big, no helper called, CPUMAP/XSKMAP) drops the frame and counts in
    ``redirect_err`` (the kernel's ``xdp:xdp_redirect_err`` tracepoint).
``XDP_DROP``
    dropped.
``XDP_ABORTED``
    dropped and counted in ``exceptions`` (the kernel's ``xdp:xdp_exception`` tracepoint).
any other value
    ``bpf_warn_invalid_xdp_action`` — its warning is kept once in ``warnings`` — then handled as
    ``XDP_ABORTED``.

Execution goes through a runner (:mod:`pybpf.hooks.runners`): the kernel layer's ``xdp_buff`` with
the interpreter (or translate tier) by default, the JIT's batch runner for ``engine="jit"``; frames
are handed over in batches of ``batch_size``.

    stats = run_pcap(prog, "in.pcap", pass_out="out.pcap", tx_out="tx.pcap", redirect_dir="redir/")
    print(stats.verdicts)            # {'XDP_ABORTED': 0, 'XDP_DROP': 0, 'XDP_PASS': 3, ...}
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from pybpf.errors import BpfError, NotSupportedError
from pybpf.hooks.base import FrameHook
from pybpf.hooks.devices import NetDevice, system_devices, xdp_ok_fwd_dev
from pybpf.hooks.errors import HookError
from pybpf.hooks.outputs import FrameSink, as_sink, redirect_dir_sink
from pybpf.hooks.packet import ETH_HLEN, Frame, frames_from_pcap
from pybpf.hooks.pcap import PcapFormat
from pybpf.hooks.runners import INT_MAX, XdpRun, XdpRunner, kernel_program, xdp_runner
from pybpf.uapi import MapType, ProgType, XdpAction, c_name

__all__ = ["XdpAction", "XdpHook", "XdpOutcome", "XdpStats", "run_pcap", "warn_invalid_xdp_action"]

BPF_F_BROADCAST = 1 << 3
BPF_F_EXCLUDE_INGRESS = 1 << 4
EBADRQC = 56


VERDICT_NAMES = tuple(c_name(a) for a in XdpAction)


def warn_invalid_xdp_action(act: int, prog_name: str, prog_id: int, dev_name: str | None) -> str:
    """The text of the kernel's ``bpf_warn_invalid_xdp_action`` (printed once per boot there)."""
    kind = "Illegal" if act > XdpAction.REDIRECT else "Driver unsupported"
    return (f"{kind} XDP return value {act} on prog {prog_name} (id {prog_id}) dev {dev_name or 'N/A'}, "
            "expect packet loss!")


@dataclass(slots=True)
class XdpOutcome:
    """What became of one frame.

    ``retval`` is the program's return value, ``action`` what the hook did: ``"pass"``, ``"tx"``,
    ``"redirect"``, ``"drop"``, ``"aborted"``, ``"invalid"`` (an unknown return value, handled as
    aborted) or ``"redirect_err"``. ``data`` is the frame after the program, ``meta`` its metadata
    area, ``egress`` the ifindexes it left on, ``error`` the negative errno of a failed redirect.
    """

    number: int
    retval: int
    action: str
    data: bytes
    meta: bytes = b""
    egress: tuple[int, ...] = ()
    error: int = 0

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"packet": self.number, "retval": self.retval, "action": self.action,
                               "len": len(self.data)}
        if self.egress:
            out["egress"] = list(self.egress)
        if self.error:
            out["error"] = -self.error
        return out


@dataclass(slots=True)
class XdpStats:
    """Counters of a hook: per verdict, per output, per failure kind."""

    packets: int = 0
    bytes: int = 0
    verdicts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(VERDICT_NAMES, 0))
    invalid: int = 0
    exceptions: int = 0
    redirect_err: int = 0
    passed: int = 0
    transmitted: int = 0
    redirected: dict[int, int] = field(default_factory=dict)
    dropped: int = 0
    warnings: list[str] = field(default_factory=list)
    run_ns: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "packets": self.packets,
            "bytes": self.bytes,
            "verdicts": dict(self.verdicts),
            "invalid": self.invalid,
            "exceptions": self.exceptions,
            "redirect_err": self.redirect_err,
            "outputs": {"pass": self.passed, "tx": self.transmitted,
                        "redirect": {str(k): v for k, v in sorted(self.redirected.items())}},
            "dropped": self.dropped,
            "warnings": list(self.warnings),
            "run_ns": self.run_ns,
        }

    def format(self) -> str:
        """Plain-text summary, one counter per line."""
        lines = [f"packets {self.packets}  bytes {self.bytes}"]
        lines += [f"{name:<14}{count}" for name, count in self.verdicts.items()]
        if self.invalid:
            lines.append(f"{'invalid':<14}{self.invalid}")
        lines.append(f"{'xdp_exception':<14}{self.exceptions}")
        lines.append(f"{'redirect_err':<14}{self.redirect_err}")
        redir = ", ".join(f"{k}: {v}" for k, v in sorted(self.redirected.items()))
        lines.append(f"outputs: pass {self.passed}, tx {self.transmitted}, redirect {{{redir}}}, "
                     f"dropped {self.dropped}")
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


class XdpHook(FrameHook[XdpOutcome, XdpStats]):
    """An XDP program attached to a stream of frames (see the module docstring).

    ``program`` is a loaded XDP :class:`~pybpf.kernel.program.Program`. Outputs are
    :class:`~pybpf.hooks.outputs.FrameSink` objects (``None`` discards): ``pass_`` receives
    XDP_PASS frames, ``tx`` XDP_TX frames, ``redirect`` redirected frames (with the target ifindex),
    ``drop`` — for inspection — everything dropped. ``devices`` is the device table redirects are
    checked against (default: this machine's, :func:`~pybpf.hooks.devices.system_devices`).
    ``runner`` replaces the engine's runner (any object with ``run_xdp``).
    """

    def __init__(self, program: Any, *, engine: str = "interpreter", runner: XdpRunner | None = None,
                 devices: Mapping[int, NetDevice] | None = None, pass_: FrameSink | None = None,
                 tx: FrameSink | None = None, redirect: FrameSink | None = None, drop: FrameSink | None = None,
                 batch_size: int = 64) -> None:
        program = kernel_program(program)
        ptype = int(getattr(program, "prog_type", ProgType.XDP))
        if ptype != ProgType.XDP:
            raise HookError(f"program {getattr(program, 'name', '')!r} is not an XDP program "
                            f"(type {_type_name(ptype)})")
        super().__init__(batch_size)
        self.program = program
        self.engine = engine
        self.runner = runner if runner is not None else xdp_runner(program, engine)
        self.devices = dict(devices) if devices is not None else system_devices()
        self.outputs = {"pass": pass_, "tx": tx, "redirect": redirect, "drop": drop}
        self.stats = XdpStats()
        self._warned: set[int] = set()
        self._devmap_runners: dict[int, XdpRunner] = {}

    # -- running ---------------------------------------------------------------------------------
    def run_batch(self, batch: list[Frame]) -> list[XdpOutcome]:
        for frame in batch:
            if len(frame.data) < ETH_HLEN:
                # drivers and the generic receive path never run XDP on a runt frame (and
                # BPF_PROG_TEST_RUN refuses one with EINVAL): a capture holding one is an input error
                raise HookError(f"a {len(frame.data)}-byte frame is shorter than an Ethernet header "
                                f"({ETH_HLEN} bytes); XDP never sees such a frame", packet=frame.number or None)
        t0 = time.perf_counter_ns()
        runs = self.runner.run_xdp(batch)
        self.stats.run_ns += time.perf_counter_ns() - t0
        if len(runs) != len(batch):
            raise HookError(f"the runner returned {len(runs)} results for {len(batch)} frames")
        return [self._verdict(frame, run) for frame, run in zip(batch, runs, strict=True)]

    # -- verdicts -----------------------------------------------------------------------------------
    def _verdict(self, frame: Frame, run: XdpRun) -> XdpOutcome:
        st = self.stats
        st.packets += 1
        st.bytes += frame.length
        act = run.retval
        out = XdpOutcome(frame.number, act, "", run.data, run.meta)
        if act == XdpAction.PASS:
            st.verdicts["XDP_PASS"] += 1
            out.action, out.egress = "pass", (frame.ifindex,)
            st.passed += 1
            self._emit("pass", run.data, frame, frame.ifindex)
        elif act == XdpAction.TX:
            st.verdicts["XDP_TX"] += 1
            out.action, out.egress = "tx", (frame.ifindex,)
            st.transmitted += 1
            self._emit("tx", run.data, frame, frame.ifindex)
        elif act == XdpAction.REDIRECT:
            st.verdicts["XDP_REDIRECT"] += 1
            self._redirect(frame, run, out)
        elif act == XdpAction.DROP:
            st.verdicts["XDP_DROP"] += 1
            out.action = "drop"
            self._drop(run.data, frame)
        else:
            if act == XdpAction.ABORTED:
                st.verdicts["XDP_ABORTED"] += 1
                out.action = "aborted"
            else:
                self._warn_invalid(act, self.program, frame.ifindex)
                out.action = "invalid"
            st.exceptions += 1
            self._drop(run.data, frame)
        return out

    def _warn_invalid(self, act: int, program: Any, ifindex: int | None) -> None:
        self.stats.invalid += 1
        pid = int(getattr(program, "id", 0))
        if pid in self._warned:
            return
        self._warned.add(pid)
        dev = self.devices.get(ifindex) if ifindex is not None else None
        self.stats.warnings.append(warn_invalid_xdp_action(act, getattr(program, "name", ""), pid,
                                                           dev.name if dev else None))

    def _drop(self, data: bytes, frame: Frame) -> None:
        self.stats.dropped += 1
        self._emit("drop", data, frame, frame.ifindex)

    # -- redirects (xdp_do_generic_redirect) -----------------------------------------------------------
    def _redirect(self, frame: Frame, run: XdpRun, out: XdpOutcome) -> None:
        ri = run.redirect
        sent: list[int] = []
        if ri.map_type == MapType.UNSPEC and ri.map_id == INT_MAX:
            dev = self.devices.get(ri.tgt_index)
            err = -errno.EINVAL if dev is None else xdp_ok_fwd_dev(dev, len(run.data))
            if not err:
                self._deliver(run.data, frame, ri.tgt_index, sent)
        elif ri.map_type in (MapType.DEVMAP, MapType.DEVMAP_HASH):
            m = ri.map if ri.map is not None else self._map_by_id(ri.map_id)
            if m is None:
                err = -errno.ENOENT
            elif ri.flags & BPF_F_BROADCAST:
                err = self._broadcast(m, frame, run.data, bool(ri.flags & BPF_F_EXCLUDE_INGRESS), sent)
            else:
                entry = _devmap_entry(m, ri.tgt_index)
                err = -errno.EINVAL if entry is None else self._devmap_send(entry, frame, run.data, sent)
        elif ri.map_type in (MapType.CPUMAP, MapType.XSKMAP):
            err = -errno.EOPNOTSUPP  # no CPU queues or AF_XDP sockets behind a userspace hook
        else:
            err = -EBADRQC
        if err:
            self.stats.redirect_err += 1
            out.action, out.error = "redirect_err", err
            self._drop(run.data, frame)
            return
        out.action, out.egress = "redirect", tuple(sent)
        if not sent:  # every copy was dropped by a devmap program, or the map is empty
            self.stats.dropped += 1

    def _deliver(self, data: bytes, frame: Frame, ifindex: int, sent: list[int]) -> None:
        self.stats.redirected[ifindex] = self.stats.redirected.get(ifindex, 0) + 1
        sent.append(ifindex)
        self._emit("redirect", data, frame, ifindex)

    def _map_by_id(self, map_id: int) -> Any:
        used = getattr(self.program, "used_maps", {}) or {}
        m = used.get(map_id)
        if m is None and hasattr(self.program, "kernel"):
            m = self.program.kernel.map_by_id(map_id)
        return m

    def _device(self, ifindex: int) -> NetDevice:
        # a DEVMAP entry was checked against this machine's devices when it was stored
        return self.devices.get(ifindex) or NetDevice(ifindex, f"if{ifindex}", mtu=65535)

    def _devmap_send(self, entry: tuple[int, int], frame: Frame, data: bytes, sent: list[int]) -> int:
        """``dev_map_generic_redirect``: MTU/link checks, the entry's program, then transmit."""
        ifindex, prog_id = entry
        err = xdp_ok_fwd_dev(self._device(ifindex), len(data))
        if err:
            return err
        if prog_id:
            data = self._devmap_prog(prog_id, frame, data, ifindex)
            if data is None:
                return 0  # "redirect has already succeeded semantically": dropped by the entry's program
        self._deliver(data, frame, ifindex, sent)
        return 0

    def _devmap_prog(self, prog_id: int, frame: Frame, data: bytes, egress: int) -> bytes | None:
        """Run a DEVMAP entry's program (``dev_map_bpf_prog_run_skb``): the frame, or None if dropped."""
        runner = self._devmap_runners.get(prog_id)
        if runner is None:
            prog = self.program.kernel.prog_by_id(prog_id) if hasattr(self.program, "kernel") else None
            if prog is None:
                return data  # the entry's program is gone: the kernel would have detached it
            try:
                runner = xdp_runner(prog, self.engine)
            except NotSupportedError:  # the JIT cannot take this one yet: the reference engine can
                runner = xdp_runner(prog, "interpreter")
            self._devmap_runners[prog_id] = runner
        run = runner.run_xdp([Frame(data, frame.ts_ns, frame.ifindex, frame.rx_queue, 0, frame.number)],
                             egress_ifindex=egress)[0]
        if run.retval == XdpAction.PASS:
            return run.data
        if run.retval not in (XdpAction.ABORTED, XdpAction.DROP):
            self._warn_invalid(run.retval, runner.program, None)
        if run.retval != XdpAction.DROP:
            self.stats.exceptions += 1
        return None

    def _broadcast(self, m: Any, frame: Frame, data: bytes, exclude_ingress: bool, sent: list[int]) -> int:
        """``dev_map_redirect_multi``: a copy to every entry, in map order; the first failure stops it."""
        for entry in _devmap_entries(m):
            if exclude_ingress and entry[0] == frame.ifindex:
                continue
            err = self._devmap_send(entry, frame, data, sent)
            if err:
                return err
        return 0

    # -- lifetime ----------------------------------------------------------------------------------------
    def _runners(self) -> Iterable[Any]:
        return (self.runner, *self._devmap_runners.values())


def _devmap_entry(m: Any, key: int) -> tuple[int, int] | None:
    """(ifindex, program id) stored under ``key`` of a DEVMAP/DEVMAP_HASH, or None."""
    try:
        raw = m.lookup_elem_sys((key & 0xFFFFFFFF).to_bytes(4, "little"))
    except BpfError:
        return None
    ifindex = int.from_bytes(raw[:4], "little")
    if not ifindex:
        return None
    return ifindex, int.from_bytes(raw[4:8], "little") if len(raw) >= 8 else 0


def _devmap_entries(m: Any) -> Iterator[tuple[int, int]]:
    key: bytes | None = None
    while True:
        try:
            key = m.get_next_key(key)
        except BpfError:
            return
        entry = _devmap_entry(m, int.from_bytes(key[:4], "little"))
        if entry is not None:
            yield entry


def _type_name(ptype: int) -> str:
    try:
        return ProgType(ptype).name.lower()
    except ValueError:
        return str(ptype)


def run_pcap(program: Any, pcap_in: str | os.PathLike[str] | IO[bytes], *,
             pass_out: str | os.PathLike[str] | FrameSink | None = None,
             tx_out: str | os.PathLike[str] | FrameSink | None = None,
             redirect_dir: str | os.PathLike[str] | None = None,
             engine: str = "interpreter", ifindex: int = 1, rx_queue: int = 0,
             devices: Mapping[int, NetDevice] | None = None, out_format: PcapFormat = "pcap",
             batch_size: int = 64, runner: XdpRunner | None = None) -> XdpStats:
    """Run an XDP program over a capture; XDP_PASS frames to ``pass_out``, XDP_TX frames to
    ``tx_out``, redirected frames to ``redirect_dir/<device>.pcap``. Returns the counters."""
    devs = dict(devices) if devices is not None else system_devices()
    hook = XdpHook(program, engine=engine, runner=runner, devices=devs, batch_size=batch_size,
                   pass_=as_sink(pass_out, out_format), tx=as_sink(tx_out, out_format),
                   redirect=redirect_dir_sink(redirect_dir, devs, format=out_format) if redirect_dir else None)
    with hook:
        return hook.run(frames_from_pcap(pcap_in, ifindex=ifindex, rx_queue=rx_queue))
