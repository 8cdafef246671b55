"""skb-style hooks: tc classifiers and actions, and socket filters, on a stream of frames.

The frame is turned into the ``sk_buff`` Linux hands these programs on receive:
``eth_type_trans`` sets ``protocol``/``pkt_type``, ``skb_vlan_untag`` takes an outer VLAN tag out of
the frame into ``vlan_present``/``vlan_tci``/``vlan_proto`` (the receive path does that before tc
and packet sockets see the frame; ``vlan_offload=False`` keeps tags in the frame, as
``BPF_PROG_TEST_RUN`` does), ``ifindex``/``ingress_ifindex`` are the device the frame arrived on,
``tstamp`` its arrival time, ``mark`` what the hook is told. The kernel layer builds the runtime
context from :mod:`pybpf.progtypes`' layout (:mod:`pybpf.hooks.runners`).

Verdicts:

``BPF_PROG_TYPE_SCHED_CLS`` (tc ingress in direct-action mode: ``cls_bpf_exec_opcode`` then
``sch_handle_ingress``)
    ``TC_ACT_OK`` passes the frame up (*pass* output); ``TC_ACT_SHOT`` drops it; ``TC_ACT_STOLEN`` and
    ``TC_ACT_TRAP`` consume it; ``TC_ACT_REDIRECT`` runs ``skb_do_redirect`` with what
    ``bpf_redirect(ifindex, flags)`` chose: out of that device (*redirect* output) or, with
    ``BPF_F_INGRESS``, into its receive path (*redirect_ingress* output); the device must be known
    and up, else the frame is dropped (``redirect_err``). Any other value is ``TC_ACT_UNSPEC``:
    classification continues, and with no other filter the frame passes.
``BPF_PROG_TYPE_SCHED_ACT`` (``act_bpf``)
    ``TC_ACT_OK``/``PIPE``/``RECLASSIFY`` pass, ``SHOT`` drops, ``REDIRECT`` redirects as above,
    ``UNSPEC`` takes the action's default (``pipe``: pass), anything else is ``UNSPEC``.
``BPF_PROG_TYPE_SOCKET_FILTER`` (a filter on a packet socket, ``run_filter``)
    the return value is the number of bytes to keep: 0 drops the frame, a smaller value than its
    length truncates it; accepted frames go to the *pass* output (what the socket receives).

Outputs receive the frame from its MAC header, with the VLAN tag put back when the skb carries
one (as a capture would show it).
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import IO, Any

from pybpf.hooks.base import FrameHook
from pybpf.hooks.devices import NetDevice, system_devices
from pybpf.hooks.errors import HookError
from pybpf.hooks.outputs import FrameSink, PerDeviceSink, as_sink, redirect_dir_sink
from pybpf.hooks.packet import (
    ETH_HLEN,
    EthInfo,
    Frame,
    eth_type_trans,
    frames_from_pcap,
    vlan_insert,
    vlan_untag,
)
from pybpf.hooks.pcap import PcapFormat
from pybpf.hooks.runners import SkbInput, SkbRun, SkbRunner, kernel_program, skb_runner
from pybpf.uapi import ProgType

__all__ = ["SkbHook", "SkbOutcome", "SkbStats", "TcAction", "run_pcap"]

BPF_F_INGRESS = 1


class TcAction(IntEnum):
    """``TC_ACT_*`` (include/uapi/linux/pkt_cls.h)."""

    UNSPEC = -1
    OK = 0
    RECLASSIFY = 1
    SHOT = 2
    PIPE = 3
    STOLEN = 4
    QUEUED = 5
    REPEAT = 6
    REDIRECT = 7
    TRAP = 8

    @property
    def c_name(self) -> str:
        """The action's name in C (``TC_ACT_OK``...)."""
        return f"TC_ACT_{self.name}"


_CLS_OPCODES = {TcAction.OK, TcAction.SHOT, TcAction.STOLEN, TcAction.TRAP, TcAction.REDIRECT, TcAction.UNSPEC}
_ACT_RESULTS = {TcAction.PIPE, TcAction.RECLASSIFY, TcAction.OK, TcAction.REDIRECT, TcAction.SHOT}
_SKB_TYPES = {ProgType.SCHED_CLS: "tc", ProgType.SCHED_ACT: "tc", ProgType.SOCKET_FILTER: "socket"}


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def _be16_as_host(v: int) -> int:
    """A ``__be16`` as the u32 context field reads it on a little-endian machine."""
    return int.from_bytes((v & 0xFFFF).to_bytes(2, "big"), "little")


@dataclass(slots=True)
class SkbOutcome:
    """What became of one frame: ``retval``, the ``action`` taken (``"pass"``, ``"drop"``,
    ``"stolen"``, ``"redirect"``, ``"redirect_ingress"``, ``"redirect_err"``, for socket filters
    ``"accept"``/``"truncate"``/``"drop"``), the frame after the program, the ``__sk_buff`` fields
    it may have written (``mark``, ``priority``, ``tc_index``, ``tc_classid``...), where it went."""

    number: int
    retval: int
    action: str
    data: bytes
    fields: Mapping[str, int] = field(default_factory=dict)
    egress: tuple[int, ...] = ()
    error: int = 0

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"packet": self.number, "retval": self.retval, "action": self.action,
                               "len": len(self.data)}
        if self.fields.get("mark"):
            out["mark"] = self.fields["mark"]
        if self.egress:
            out["egress"] = list(self.egress)
        if self.error:
            out["error"] = -self.error
        return out


@dataclass(slots=True)
class SkbStats:
    """Counters of an skb hook: per return value name, per output."""

    kind: str = "tc"
    packets: int = 0
    bytes: int = 0
    verdicts: dict[str, int] = field(default_factory=dict)
    passed: int = 0
    dropped: int = 0
    stolen: int = 0
    truncated: int = 0
    redirected: dict[int, int] = field(default_factory=dict)
    redirected_ingress: dict[int, int] = field(default_factory=dict)
    redirect_err: int = 0
    run_ns: int = 0

    def __post_init__(self) -> None:
        if not self.verdicts:
            names = [a.c_name for a in TcAction] if self.kind == "tc" else ["accept", "truncate", "drop"]
            self.verdicts = dict.fromkeys(names, 0)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"packets": self.packets, "bytes": self.bytes, "verdicts": dict(self.verdicts)}
        if self.kind == "tc":
            out["outputs"] = {
                "pass": self.passed,
                "redirect": {str(k): v for k, v in sorted(self.redirected.items())},
                "redirect_ingress": {str(k): v for k, v in sorted(self.redirected_ingress.items())},
            }
            out["stolen"] = self.stolen
            out["redirect_err"] = self.redirect_err
        else:
            out["outputs"] = {"pass": self.passed}
        out["dropped"] = self.dropped
        out["run_ns"] = self.run_ns
        return out

    def format(self) -> str:
        lines = [f"packets {self.packets}  bytes {self.bytes}"]
        lines += [f"{name:<18}{count}" for name, count in self.verdicts.items()]
        if self.kind == "tc":
            lines.append(f"{'redirect_err':<18}{self.redirect_err}")
            redir = ", ".join(f"{k}: {v}" for k, v in sorted(self.redirected.items()))
            ingress = ", ".join(f"{k}: {v}" for k, v in sorted(self.redirected_ingress.items()))
            lines.append(f"outputs: pass {self.passed}, redirect {{{redir}}}, redirect_ingress {{{ingress}}}, "
                         f"stolen {self.stolen}, dropped {self.dropped}")
        else:
            lines.append(f"outputs: pass {self.passed} (truncated {self.truncated}), dropped {self.dropped}")
        return "\n".join(lines)


class SkbHook(FrameHook[SkbOutcome, SkbStats]):
    """A tc (SCHED_CLS/SCHED_ACT) or socket-filter program on a stream of frames (module docstring).

    Outputs (``None`` discards): ``pass_`` (up the stack / to the socket), ``redirect`` (out of
    another device), ``redirect_ingress`` (into another device's receive path), ``drop``. ``mark``
    is ``skb->mark`` on arrival; ``dev_addr`` the receiving device's MAC for ``pkt_type`` (``None``:
    every unicast frame is for this host); ``l2=False`` starts ``skb->data`` at the network header
    for socket filters (as on a datagram socket) instead of the MAC header (a raw packet socket).
    """

    def __init__(self, program: Any, *, engine: str = "interpreter", runner: SkbRunner | None = None,
                 devices: Mapping[int, NetDevice] | None = None, pass_: FrameSink | None = None,
                 redirect: FrameSink | None = None, redirect_ingress: FrameSink | None = None,
                 drop: FrameSink | None = None, mark: int = 0, dev_addr: bytes | None = None,
                 vlan_offload: bool = True, l2: bool = True, batch_size: int = 64) -> None:
        program = kernel_program(program)
        ptype = int(getattr(program, "prog_type", -1))
        kind = _SKB_TYPES.get(ptype)  # type: ignore[call-overload]
        if kind is None:
            raise HookError(f"program {getattr(program, 'name', '')!r} is not a tc or socket filter program "
                            f"(type {ptype})")
        super().__init__(batch_size)
        self.program = program
        self.prog_type = ProgType(ptype)
        self.kind = kind
        self.engine = engine
        self.runner = runner if runner is not None else skb_runner(program, engine)
        self.devices = dict(devices) if devices is not None else system_devices()
        self.outputs = {"pass": pass_, "redirect": redirect, "redirect_ingress": redirect_ingress, "drop": drop}
        self.mark = mark
        self.dev_addr = dev_addr
        self.vlan_offload = vlan_offload
        self.l2 = l2 if kind == "socket" else True
        self.stats = SkbStats(kind)

    # -- context ------------------------------------------------------------------------------------------
    def skb_input(self, frame: Frame) -> SkbInput:
        """The ``sk_buff`` the receive path would build for ``frame``."""
        if len(frame.data) < ETH_HLEN:
            raise HookError(f"a {len(frame.data)}-byte frame is shorter than an Ethernet header ({ETH_HLEN} "
                            "bytes); the receive path never builds an skb for it", packet=frame.number or None)
        if self.vlan_offload:
            data, info = vlan_untag(frame.data, self.dev_addr)
        else:
            data, info = frame.data, eth_type_trans(frame.data, self.dev_addr)
        return SkbInput(data, self._fields(frame, info, len(data)), self.l2, frame.number)

    def _fields(self, frame: Frame, info: EthInfo, length: int) -> dict[str, int]:
        return {
            "pkt_type": info.pkt_type,
            "mark": self.mark,
            "protocol": _be16_as_host(info.protocol),
            "vlan_present": int(info.vlan_present),
            "vlan_tci": info.vlan_tci,
            "vlan_proto": _be16_as_host(info.vlan_proto),
            "ingress_ifindex": frame.ifindex,
            "ifindex": frame.ifindex,
            "tstamp": frame.ts_ns,
            "wire_len": max(frame.length - (len(frame.data) - length), length),
        }

    # -- running ---------------------------------------------------------------------------------------------
    def run_batch(self, batch: list[Frame]) -> list[SkbOutcome]:
        inputs = [self.skb_input(f) for f in batch]
        t0 = time.perf_counter_ns()
        runs = self.runner.run_skb(inputs)
        self.stats.run_ns += time.perf_counter_ns() - t0
        if len(runs) != len(batch):
            raise HookError(f"the runner returned {len(runs)} results for {len(batch)} frames")
        if self.kind == "socket":
            return [self._socket_verdict(f, r) for f, r in zip(batch, runs, strict=True)]
        return [self._tc_verdict(f, r) for f, r in zip(batch, runs, strict=True)]

    def _frame_out(self, run: SkbRun) -> bytes:
        f = run.fields
        if self.vlan_offload and f.get("vlan_present"):
            return vlan_insert(run.data, f.get("vlan_tci", 0), _be16_as_host(f.get("vlan_proto", 0)) or 0x8100)
        return run.data

    def _count(self, name: str) -> None:
        self.stats.verdicts[name] = self.stats.verdicts.get(name, 0) + 1

    def _socket_verdict(self, frame: Frame, run: SkbRun) -> SkbOutcome:
        st = self.stats
        st.packets += 1
        st.bytes += frame.length
        data = self._frame_out(run)
        keep = run.retval & 0xFFFFFFFF
        if keep == 0:
            self._count("drop")
            st.dropped += 1
            self._emit("drop", data, frame, frame.ifindex)
            return SkbOutcome(frame.number, run.retval, "drop", data, run.fields)
        action = "accept"
        start = 0 if self.l2 else ETH_HLEN  # the filter counts from skb->data
        if keep < len(data) - start:
            data = data[:start + keep]
            action = "truncate"
            st.truncated += 1
        self._count(action)
        st.passed += 1
        self._emit("pass", data, frame, frame.ifindex)
        return SkbOutcome(frame.number, run.retval, action, data, run.fields, (frame.ifindex,))

    def _tc_action(self, retval: int) -> TcAction | None:
        """The action ``retval`` stands for after cls_bpf's / act_bpf's filtering (None: unknown)."""
        code = _s32(retval)
        if self.prog_type == ProgType.SCHED_ACT:
            if code == TcAction.UNSPEC:
                return TcAction.PIPE  # the action's default control ("pipe")
            return TcAction(code) if code in _ACT_RESULTS else TcAction.UNSPEC
        return TcAction(code) if code in _CLS_OPCODES else TcAction.UNSPEC

    def _tc_verdict(self, frame: Frame, run: SkbRun) -> SkbOutcome:
        st = self.stats
        st.packets += 1
        st.bytes += frame.length
        code = _s32(run.retval)
        try:
            self._count(TcAction(code).c_name)
        except ValueError:
            self._count("other")
        act = self._tc_action(run.retval)
        data = self._frame_out(run)
        out = SkbOutcome(frame.number, code, "", data, run.fields)
        if act == TcAction.SHOT:
            out.action = "drop"
            st.dropped += 1
            self._emit("drop", data, frame, frame.ifindex)
        elif act in (TcAction.STOLEN, TcAction.TRAP, TcAction.QUEUED):
            out.action = "stolen"
            st.stolen += 1
        elif act == TcAction.REDIRECT:
            self._redirect(frame, run, data, out)
        else:  # OK, PIPE, RECLASSIFY, UNSPEC: the frame continues up the stack
            out.action, out.egress = "pass", (frame.ifindex,)
            st.passed += 1
            self._emit("pass", data, frame, frame.ifindex)
        return out

    def _redirect(self, frame: Frame, run: SkbRun, data: bytes, out: SkbOutcome) -> None:
        """``skb_do_redirect``: the device must exist and be up."""
        ri = run.redirect
        dev = self.devices.get(ri.tgt_index)
        err = 0
        if dev is None:
            err = -errno.EINVAL
        elif not dev.up:
            err = -errno.ENETDOWN
        if err:
            self.stats.redirect_err += 1
            self.stats.dropped += 1
            out.action, out.error = "redirect_err", err
            self._emit("drop", data, frame, frame.ifindex)
            return
        ingress = bool(ri.flags & BPF_F_INGRESS)
        table = self.stats.redirected_ingress if ingress else self.stats.redirected
        table[ri.tgt_index] = table.get(ri.tgt_index, 0) + 1
        out.action = "redirect_ingress" if ingress else "redirect"
        out.egress = (ri.tgt_index,)
        self._emit(out.action, data, frame, ri.tgt_index)


def run_pcap(program: Any, pcap_in: str | os.PathLike[str] | IO[bytes], *,
             pass_out: str | os.PathLike[str] | FrameSink | None = None,
             redirect_dir: str | os.PathLike[str] | None = None, engine: str = "interpreter", ifindex: int = 1,
             mark: int = 0, devices: Mapping[int, NetDevice] | None = None, out_format: PcapFormat = "pcap",
             vlan_offload: bool = True, l2: bool = True, batch_size: int = 64,
             runner: SkbRunner | None = None) -> SkbStats:
    """Run a tc or socket-filter program over a capture; passed/accepted frames to ``pass_out``,
    redirected frames to ``redirect_dir/<device>.pcap`` (``<device>-ingress.pcap`` for
    ``BPF_F_INGRESS``). Returns the counters."""
    devs = dict(devices) if devices is not None else system_devices()
    redirect: PerDeviceSink | None = None
    redirect_in: PerDeviceSink | None = None
    if redirect_dir is not None:
        redirect = redirect_dir_sink(redirect_dir, devs, format=out_format)
        redirect_in = redirect_dir_sink(redirect_dir, devs, suffix="-ingress", format=out_format)
    hook = SkbHook(program, engine=engine, runner=runner, devices=devs, pass_=as_sink(pass_out, out_format),
                   redirect=redirect, redirect_ingress=redirect_in, mark=mark, vlan_offload=vlan_offload, l2=l2,
                   batch_size=batch_size)
    with hook:
        return hook.run(frames_from_pcap(pcap_in, ifindex=ifindex))

