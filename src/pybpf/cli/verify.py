"""``pybpf verify OBJ``: run the verifier on an object's programs without running anything.

A CI pre-check for people who write BPF programs: prints each program's verdict and, for a
rejection or when a log level is given, the verifier log in the kernel's words.

    pybpf verify prog.o
    pybpf verify prog.o --prog xdp_main --log-level 2
    pybpf verify prog.o --type xdp --flag BPF_F_STRICT_ALIGNMENT --unpriv -j

``-j`` prints a list of ``{"program", "section", "type", "accepted", "errno", "log",
"insns_processed"}``. The exit status is 0 when every program is accepted, 1 otherwise.

With ``--prog`` only that program (with its subprograms) is verified, and the object's maps are
created as a load creates them (``pybpf.loader``: global data filled, ``.rodata`` frozen, inner
maps, map-in-map templates) in a throwaway kernel whose bpffs is a temporary directory, so the
verifier sees real map objects and nothing is left behind. Without ``--prog`` every program is
verified against maps described from the object, without creating anything.
"""

from __future__ import annotations

import contextlib
import errno as _errno
import sys
import tempfile
from typing import Any

import click

from pybpf.cli.output import get_output

__all__ = ["cli"]

PROG_FLAGS = {
    "BPF_F_STRICT_ALIGNMENT": 1,
    "BPF_F_ANY_ALIGNMENT": 2,
    "BPF_F_TEST_RND_HI32": 4,
    "BPF_F_TEST_STATE_FREQ": 8,
    "BPF_F_SLEEPABLE": 16,
    "BPF_F_XDP_HAS_FRAGS": 32,
    "BPF_F_XDP_DEV_BOUND_ONLY": 64,
    "BPF_F_TEST_REG_INVARIANTS": 128,
}


def _parse_flag(name: str) -> int:
    key = name.strip().upper()
    if not key.startswith("BPF_F_"):
        key = "BPF_F_" + key
    if key in PROG_FLAGS:
        return PROG_FLAGS[key]
    try:
        return int(name, 0)
    except ValueError:
        raise click.BadParameter(f"unknown program flag {name!r} (one of {', '.join(PROG_FLAGS)})") from None


def _func_info(prog: Any) -> list[tuple[int, str, bool, int]]:
    # a linked program's records carry instruction indexes in insn_off (the kernel's unit)
    out: list[tuple[int, str, bool, int]] = []
    btf = getattr(prog, "btf", None)
    if btf is None:
        return out
    for fi in getattr(prog, "func_info", ()):
        try:
            t = btf.type_by_id(fi.type_id)
        except Exception:  # a bad record: the function stays static
            continue
        out.append((fi.insn_off, getattr(t, "name", ""), int(getattr(t, "linkage", 0)) == 1, fi.type_id))
    return out


def verify_object(path: str, *, prog_name: str | None, type_name: str | None, flags: int, log_level: int,
                  unpriv: bool) -> list[dict[str, Any]]:
    """Verify the programs of the object at ``path``; one result dict per program."""
    from pybpf.elf import ObjectSpec
    from pybpf.uapi import ProgType, from_bpftool_name
    from pybpf.verifier.specmaps import maps_from_specs

    obj = ObjectSpec.from_path(path)
    forced_type = from_bpftool_name(ProgType, type_name) if type_name else None
    programs = [obj.program(prog_name)] if prog_name else list(obj.programs.values())
    with contextlib.ExitStack() as stack:
        if prog_name:
            fds, by_fd = _created_maps(obj, stack)
        else:
            maps, fds = maps_from_specs(obj.maps, obj.btf)
            by_fd = {fds[n]: m for n, m in maps.items()}
        return [_verify_program(obj, prog, forced_type, fds, by_fd, flags=flags, log_level=log_level,
                                unpriv=unpriv) for prog in programs]


def _created_maps(obj: Any, stack: contextlib.ExitStack) -> tuple[dict[str, int], dict[int, Any]]:
    """The object's maps created by the loader in a throwaway kernel (closed with ``stack``):
    (map name -> fd, fd -> the kernel layer's map)."""
    from pybpf.kernel import Kernel
    from pybpf.loader import load

    root = stack.enter_context(tempfile.TemporaryDirectory(prefix="pybpf-verify-"))
    coll = load(obj, programs=(), kernel=Kernel(root))
    stack.callback(coll.close)
    fds = {name: m.fd for name, m in coll.maps.items()}
    return fds, {m.fd: m.kernel_map for m in coll.maps.values()}


def _verify_program(obj: Any, prog: Any, forced_type: Any, fds: dict[str, int], by_fd: dict[int, Any], *,
                    flags: int, log_level: int, unpriv: bool) -> dict[str, Any]:
    """One program's verdict as the result dict ``-j`` prints."""
    from pybpf.errors import PybpfError, VerifierError
    from pybpf.uapi import ProgType, bpftool_name
    from pybpf.verifier import verify

    ptype = forced_type if forced_type is not None else prog.prog_type
    entry: dict[str, Any] = {
        "program": prog.name,
        "section": prog.section,
        "type": bpftool_name(ProgType(ptype)) if ptype is not None else "unknown",
        "accepted": False,
        "errno": None,
        "log": "",
        "insns_processed": 0,
    }
    if ptype is None:
        entry["errno"] = _errno.EINVAL
        entry["log"] = f"cannot guess the program type of section '{prog.section}'; use --type\n"
        return entry

    def run(level: int) -> Any:
        return verify(prog.with_map_fds(fds), prog_type=ptype, maps=by_fd, prog_flags=flags | prog.prog_flags,
                      log_level=level, unprivileged=unpriv, expected_attach_type=int(prog.expected_attach_type or 0),
                      prog_name=prog.name, gpl="GPL" in (prog.license or obj.license or ""),
                      func_info=_func_info(prog) or None, btf=getattr(prog, "btf", None))

    try:
        v = run(log_level)
        entry.update(accepted=True, errno=0, log=v.log, insns_processed=v.insn_processed)
    except VerifierError as e:
        log = e.log
        if not log_level:
            # a rejection always shows its log: verify again at level 1 to collect it
            try:
                run(1)
            except VerifierError as e1:
                log = e1.log
        entry.update(errno=e.errno, log=log or (e.message + "\n"), insns_processed=_processed(log))
    except PybpfError as e:
        entry.update(errno=getattr(e, "errno", None) or _errno.EINVAL, log=str(e) + "\n")
    return entry


def _processed(log: str) -> int:
    for line in reversed(log.splitlines()):
        if line.startswith("processed "):
            try:
                return int(line.split()[1])
            except (IndexError, ValueError):
                return 0
    return 0


@click.command(name="verify")
@click.argument("obj", type=click.Path(exists=True, dir_okay=False))
@click.option("--prog", "prog_name", metavar="NAME", help="Verify only this program (and its subprograms).")
@click.option("--type", "type_name", metavar="TYPE", help="Program type (bpftool name), overriding the section's.")
@click.option("--flag", "flags", multiple=True, metavar="BPF_F_...", help="A prog_flags bit; repeatable.")
@click.option("--log-level", type=int, default=0, show_default=True, help="Verifier log level (1, 2; +4 stats).")
@click.option("--unpriv", is_flag=True, help="Verify as an unprivileged user (no CAP_BPF / CAP_PERFMON).")
@click.option("-j", "--json", "json_", is_flag=True, help="JSON output.")
def cli(obj: str, prog_name: str | None, type_name: str | None, flags: tuple[str, ...], log_level: int,
        unpriv: bool, json_: bool) -> None:
    """Verify the programs of OBJ with Linux 6.12's verifier, without loading or running them."""
    out = get_output()
    prog_flags = 0
    for f in flags:
        prog_flags |= _parse_flag(f)
    if not 0 <= log_level <= 7:
        raise click.BadParameter("log level must be 0..7", param_hint="--log-level")
    results = verify_object(obj, prog_name=prog_name, type_name=type_name, flags=prog_flags,
                            log_level=log_level, unpriv=unpriv)
    if json_ or out.json:
        out.json = True
        out.emit(results)
    else:
        for r in results:
            if r["accepted"]:
                click.echo(f"{r['program']} ({r['section']}, {r['type']}): accepted, "
                           f"{r['insns_processed']} insns processed")
                if log_level and r["log"]:
                    click.echo(r["log"].rstrip("\n"))
            else:
                name = _errno.errorcode.get(r["errno"] or 0, str(r["errno"]))
                click.echo(f"{r['program']} ({r['section']}, {r['type']}): rejected ({name})")
                click.echo(r["log"].rstrip("\n"))
    if not all(r["accepted"] for r in results):
        sys.exit(1)
