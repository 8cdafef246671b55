"""``pybpf conformance``: placeholder group; the commands are added by the issue that builds them."""

from __future__ import annotations

import click


@click.group(name="conformance")
def cli() -> None:
    """conformance commands."""
