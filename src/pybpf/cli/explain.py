"""``pybpf explain OBJ [name NAME] [data_in FILE] [--engine E] [--stage S]... [--lines N] [--log-level N]``.

One program of an object file through every stage: the object as read, the C source, the loader's
instruction stream with its relocations, the verifier's verdict and log, its rewrites (the xlated
program and what changed), the JIT's machine code, and one test run with its verdict, packet and map
changes. ``-j`` gives the same as JSON.
"""

from __future__ import annotations

from pathlib import Path

import click

from pybpf.cli.output import get_output
from pybpf.errors import PybpfError

STAGES = ("object", "source", "loader", "verifier", "rewrites", "jit", "run")


@click.command(name="explain")
@click.argument("obj", type=click.Path(dir_okay=False))
@click.argument("words", nargs=-1)
@click.option("--engine", type=click.Choice(["interpreter", "translate", "jit"]), default="interpreter",
              show_default=True, help="Engine of the run stage.")
@click.option("--stage", "stages", multiple=True, type=click.Choice(STAGES), help="Show only these stages.")
@click.option("--lines", type=int, default=60, show_default=True,
              help="Cut each stage's listing to N lines (0: show everything).")
@click.option("--log-level", type=click.IntRange(1, 2), default=2, show_default=True,
              help="Verifier log level (1: only the failing path; 2: every instruction with its state).")
def cli(obj: str, words: tuple[str, ...], engine: str, stages: tuple[str, ...], lines: int, log_level: int) -> None:
    """Explain one program of OBJ through every stage (bpftool-style keywords: name NAME, data_in FILE)."""
    from pybpf.explain import explain, render

    program = None
    data_in = None
    it = iter(words)
    for word in it:
        value = next(it, None)
        if value is None:
            raise PybpfError(f"'{word}' needs an argument")
        if word == "name":
            program = value
        elif word == "data_in":
            try:
                data_in = Path(value).read_bytes()
            except OSError as e:
                raise PybpfError(f"can't read {value}: {e.strerror}") from None
        else:
            raise PybpfError(f"unknown keyword '{word}' (expected: name NAME, data_in FILE)")
    ex = explain(obj, program=program, data_in=data_in, engine=engine, log_level=log_level)
    out = get_output()
    if out.json:
        data = ex.to_json()
        if stages:
            data["stages"] = [s for s in data["stages"] if s["stage"] in stages]
        out.emit(data)
    else:
        click.echo(render(ex, max_lines=lines or None, stages=stages), nl=False)
