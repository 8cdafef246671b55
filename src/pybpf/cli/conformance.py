"""``pybpf conformance PATH... [--engine interpreter|translate|jit] [-j]``: run ISA conformance suites.

Prints one line per failed or skipped test with its reason (``-v`` also lists passes) and closes with
``N passed, M failed, K skipped``; ``-j`` emits the same as one JSON object. Exits 1 if any test failed.
"""

from __future__ import annotations

import click

from pybpf.cli.output import Output, get_output
from pybpf.vm.conformance import Outcome, TestResult, get_engine, run_paths, summary_line


@click.command(name="conformance")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option(
    "--engine",
    type=click.Choice(["interpreter", "translate", "jit"]),
    default="interpreter",
    show_default=True,
    help="Which execution engine runs the programs.",
)
@click.option("-j", "--json", "json_", is_flag=True, help="JSON output.")
@click.option("-v", "--verbose", is_flag=True, help="Also list the tests that passed.")
def cli(paths: tuple[str, ...], engine: str, json_: bool, verbose: bool) -> None:
    """Run eBPF ISA conformance tests (.data files; folders are searched recursively)."""
    out = get_output()
    as_json = json_ or out.json
    run = get_engine(engine)
    results: list[TestResult] = []
    for result in run_paths(paths, run):
        results.append(result)
        if as_json:
            continue
        if result.outcome is Outcome.FAILED:
            click.echo(f"FAIL {result.path}: {result.reason}")
        elif result.outcome is Outcome.SKIPPED:
            click.echo(f"SKIP {result.path}: {result.reason}")
        elif verbose:
            click.echo(f"PASS {result.path}: {result.reason}")
    line = summary_line(results)
    if as_json:
        counts = {o.value: sum(r.outcome is o for r in results) for o in Outcome}
        data = {"engine": engine, "results": [r.to_json() for r in results], **counts}
        Output(json=True, pretty=out.pretty).emit(data)
    else:
        click.echo(line)
    if any(r.outcome is Outcome.FAILED for r in results):
        raise click.exceptions.Exit(1)
