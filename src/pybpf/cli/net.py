"""``pybpf net``: XDP, tc and socket-filter programs on capture files and live interfaces.

    pybpf net run xdp PROG pcap IN [out OUT] [tx TX] [redirect DIR] [ifindex N] [format {pcap|pcapng}]
    pybpf net run {tc|socket} PROG pcap IN [out OUT] [redirect DIR] [ifindex N] [mark N] [novlan] [l3]
                  [format {pcap|pcapng}]
    pybpf net attach xdp PROG dev IFNAME [count N] [timeout S] [out OUT] [promisc]
    pybpf net attach {tc|socket} PROG dev IFNAME [count N] [timeout S] [out OUT] [mark N] [promisc]

    PROG := { id PROG_ID | pinned FILE | tag PROG_TAG | name PROG_NAME | OBJ [name PROG_NAME] }

Options: ``--engine interpreter|translate|jit``, ``--batch N`` (frames per engine call), ``--packets``
(one line per packet), ``-j``/``-p`` (JSON). Keywords may be abbreviated, as in bpftool.

``run`` reads IN (pcap or pcapng, Ethernet), runs every frame and writes XDP_PASS / tc-passed /
socket-accepted frames to OUT, XDP_TX frames to TX and redirected frames to ``DIR/<device>.pcap``
(``DIR/<device>-ingress.pcap`` for tc's ``BPF_F_INGRESS`` redirects), then prints the per-verdict
counters. tc and socket programs see the frame after the receive path took its VLAN tag out
(``novlan`` keeps it in, as ``BPF_PROG_TEST_RUN`` does); a socket filter sees it from the MAC header
as on a raw packet socket, or from the network header with ``l3`` (a datagram socket).

``attach`` listens on IFNAME through a raw packet socket: XDP_TX frames go back out of IFNAME,
redirects out of their target; it stops after ``count`` frames, ``timeout`` seconds or Ctrl-C.
Userspace cannot stop the kernel's stack from also receiving every frame (see
:mod:`pybpf.hooks.live`).

An OBJ is loaded for the run (maps included) and released afterwards; pin it with ``pybpf prog load``
to keep its maps.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import click

from pybpf.cli.grammar import Args, CliError, is_prefix, parse_prog
from pybpf.cli.output import Output, get_output
from pybpf.hooks import live
from pybpf.hooks.devices import system_devices
from pybpf.hooks.outputs import PcapSink, redirect_dir_sink
from pybpf.hooks.packet import frames_from_pcap
from pybpf.hooks.pcap import PcapFormat
from pybpf.hooks.runners import RUNNER_ENGINES
from pybpf.hooks.tc import SkbHook
from pybpf.hooks.xdp import XdpHook
from pybpf.kernel.objects import default_kernel
from pybpf.kernel.program import Program
from pybpf.uapi import ProgType

__all__ = ["cli"]

_KINDS = {"xdp": (ProgType.XDP,), "tc": (ProgType.SCHED_CLS, ProgType.SCHED_ACT),
          "socket": (ProgType.SOCKET_FILTER,)}
_HANDLE_WORDS = ("id", "pinned", "tag", "name")


@click.group(name="net")
def cli() -> None:
    """Run XDP, tc and socket-filter programs on pcap files and live interfaces."""


@dataclass(slots=True)
class _Opts:
    pcap: str | None = None
    out: str | None = None
    tx: str | None = None
    redirect: str | None = None
    dev: str | None = None
    count: int | None = None
    timeout: float | None = None
    ifindex: int = 1
    mark: int = 0
    fmt: PcapFormat = "pcap"
    vlan_offload: bool = True
    l2: bool = True
    promisc: bool = False


def _kind(word: str) -> str:
    for kind in _KINDS:
        if is_prefix(word, kind):
            return kind
    raise CliError(f"invalid program kind '{word}', expected xdp, tc or socket")


def _int(word: str, what: str) -> int:
    try:
        return int(word, 0)
    except ValueError:
        raise CliError(f"can't parse {what} {word}") from None


@contextlib.contextmanager
def _program(args: Args, kind: str) -> Iterator[Program]:
    """The program a PROG handle or object file names; an object's collection is closed after."""
    first = args.peek()
    if first is None:
        raise CliError("expected a program: id, pinned, tag, name or an object file")
    if any(is_prefix(first, w) for w in _HANDLE_WORDS):
        prog = parse_prog(args, default_kernel())
        _check_kind(prog, kind)
        yield prog
        return
    from pybpf.elf import ObjectSpec
    from pybpf.loader import load

    path = args.next()
    name = args.next() if args.accept("name") else None
    if not os.path.exists(path):
        raise CliError(f"object file {path} not found")
    spec = ObjectSpec.from_path(path)
    if name is not None:
        if name not in spec.programs:
            raise CliError(f"no program named {name} in {path}")
        chosen = name
    else:
        # choose by type before loading, so that only the program that runs is verified
        names = [n for n, p in spec.programs.items()
                 if p.autoload and p.prog_type is not None and int(p.prog_type) in _KINDS[kind]]
        if not names:
            raise CliError(f"no {kind} program in {path}")
        if len(names) > 1:
            raise CliError(f"{path} has several {kind} programs ({', '.join(names)}); choose one with 'name NAME'")
        chosen = names[0]
    coll = load(spec, programs=[chosen])
    try:
        prog = coll.programs[chosen].kernel_program
        _check_kind(prog, kind)
        yield prog
    finally:
        coll.close()


def _check_kind(prog: Program, kind: str) -> None:
    if int(prog.prog_type) not in _KINDS[kind]:
        raise CliError(f"program {prog.name or prog.id} is of type {prog.type_name()}, not a {kind} program")


def _options(args: Args, *, live_mode: bool) -> _Opts:
    o = _Opts()
    while args:
        w = args.next()
        if not live_mode and is_prefix(w, "pcap"):
            o.pcap = args.next()
        elif is_prefix(w, "out"):
            o.out = args.next()
        elif not live_mode and is_prefix(w, "tx"):
            o.tx = args.next()
        elif not live_mode and is_prefix(w, "redirect"):
            o.redirect = args.next()
        elif live_mode and is_prefix(w, "dev"):
            o.dev = args.next()
        elif live_mode and is_prefix(w, "count"):
            o.count = _int(args.next(), "count")
            if o.count < 0:
                raise CliError(f"invalid count {o.count}")
        elif live_mode and is_prefix(w, "timeout"):
            text = args.next()
            try:
                o.timeout = float(text)
            except ValueError:
                raise CliError(f"can't parse timeout {text}") from None
            if o.timeout < 0:
                raise CliError(f"invalid timeout {text}")
        elif not live_mode and is_prefix(w, "ifindex"):
            o.ifindex = _int(args.next(), "ifindex")
        elif is_prefix(w, "mark"):
            o.mark = _int(args.next(), "mark")
        elif not live_mode and is_prefix(w, "format"):
            f = args.next()
            if f not in ("pcap", "pcapng"):
                raise CliError(f"unknown capture format '{f}', expected pcap or pcapng")
            o.fmt = "pcapng" if f == "pcapng" else "pcap"
        elif not live_mode and is_prefix(w, "novlan"):
            o.vlan_offload = False
        elif not live_mode and w == "l3":
            o.l2 = False
        elif live_mode and is_prefix(w, "promisc"):
            o.promisc = True
        else:
            raise CliError(f"unknown keyword '{w}'")
    return o


def _output(json_: bool, pretty: bool) -> Output:
    out = get_output()
    if json_ or pretty:
        return Output(json=True, pretty=pretty or out.pretty, debug=out.debug)
    return out


def _prog_json(prog: Program) -> dict[str, Any]:
    return {"id": prog.id, "name": prog.name, "type": prog.type_name()}


_ENGINE = click.option("--engine", type=click.Choice(RUNNER_ENGINES), default="interpreter", show_default=True,
                       help="Execution engine.")
_BATCH = click.option("--batch", "batch", type=click.IntRange(1, 1 << 16), default=64, show_default=True,
                      help="Frames handed to the engine per call.")
_JSON = click.option("-j", "--json", "json_", is_flag=True, help="JSON output.")
_PRETTY = click.option("-p", "--pretty", is_flag=True, help="Pretty JSON output.")


@cli.command(name="run", context_settings={"ignore_unknown_options": True})
@click.argument("kind")
@click.argument("words", nargs=-1)
@_ENGINE
@_BATCH
@click.option("--packets", is_flag=True, help="Print what became of every packet.")
@_JSON
@_PRETTY
def run(kind: str, words: tuple[str, ...], engine: str, batch: int, packets: bool, json_: bool,
        pretty: bool) -> None:
    """Run a program over a capture: net run {xdp|tc|socket} PROG pcap IN [out OUT] [tx TX] [redirect DIR]."""
    out = _output(json_, pretty)
    k = _kind(kind)
    args = Args(words)
    with _program(args, k) as prog:
        o = _options(args, live_mode=False)
        if o.pcap is None:
            raise CliError("expected 'pcap IN'")
        if o.tx is not None and k != "xdp":
            raise CliError("'tx' is for XDP programs")
        devices = system_devices()
        pass_sink = PcapSink(o.out, format=o.fmt) if o.out else None
        hook: XdpHook | SkbHook
        if k == "xdp":
            hook = XdpHook(prog, engine=engine, devices=devices, batch_size=batch, pass_=pass_sink,
                           tx=PcapSink(o.tx, format=o.fmt) if o.tx else None,
                           redirect=redirect_dir_sink(o.redirect, devices, format=o.fmt) if o.redirect else None)
        else:
            hook = SkbHook(prog, engine=engine, devices=devices, batch_size=batch, pass_=pass_sink, mark=o.mark,
                           vlan_offload=o.vlan_offload, l2=o.l2,
                           redirect=redirect_dir_sink(o.redirect, devices, format=o.fmt) if o.redirect else None,
                           redirect_ingress=redirect_dir_sink(o.redirect, devices, suffix="-ingress", format=o.fmt)
                           if o.redirect else None)
        with hook:
            lines: list[dict[str, Any]] = []
            for outcome in hook.process(frames_from_pcap(o.pcap, ifindex=o.ifindex)):
                if packets:
                    if out.json:
                        lines.append(outcome.to_json())
                    else:
                        click.echo(_packet_line(outcome))
        data = {"program": _prog_json(prog), **hook.stats.to_json()}
        if packets and out.json:
            data["packet_results"] = lines
        out.emit(data, hook.stats.format())


def _packet_line(outcome: Any) -> str:
    extra = f" -> {','.join(str(i) for i in outcome.egress)}" if outcome.egress and outcome.action.startswith(
        "redirect") else ""
    err = f" (error {-outcome.error})" if outcome.error else ""
    return f"{outcome.number}: retval {outcome.retval} {outcome.action}{extra}{err} len {len(outcome.data)}"


@cli.command(name="attach", context_settings={"ignore_unknown_options": True})
@click.argument("kind")
@click.argument("words", nargs=-1)
@_ENGINE
@_BATCH
@_JSON
@_PRETTY
def attach(kind: str, words: tuple[str, ...], engine: str, batch: int, json_: bool, pretty: bool) -> None:
    """Run a program on a live interface: net attach {xdp|tc|socket} PROG dev IFNAME [count N] [timeout S]."""
    out = _output(json_, pretty)
    k = _kind(kind)
    args = Args(words)
    with _program(args, k) as prog:
        o = _options(args, live_mode=True)
        if o.dev is None:
            raise CliError("expected 'dev IFNAME'")
        def ready() -> None:  # on stderr also in JSON mode: stdout stays one JSON document
            click.echo(f"listening on {o.dev} ({k} program {prog.name or prog.id}); Ctrl-C to stop", err=True)

        if k == "xdp":
            res = live.attach_xdp(prog, o.dev, engine=engine, count=o.count, timeout=o.timeout, pass_out=o.out,
                                  promisc=o.promisc, batch_size=batch, on_ready=ready)
        else:
            res = live.attach_skb(prog, o.dev, engine=engine, count=o.count, timeout=o.timeout, pass_out=o.out,
                                  promisc=o.promisc, mark=o.mark, batch_size=batch, on_ready=ready)
        out.emit({"program": _prog_json(prog), "dev": o.dev, **res.to_json()}, res.format())
