"""Plain-text vs JSON output, one writer for every command (bpftool's ``-j`` / ``-p``)."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any

import click

__all__ = ["Output", "get_output"]


@dataclass(slots=True)
class Output:
    """Global output options, stored on the click context by the top-level group."""

    json: bool = False
    pretty: bool = False
    debug: bool = False
    bpffs: bool = False
    """bpftool's ``-f``: show where objects are pinned."""

    def emit(self, data: Any, text: str | None = None) -> None:
        """Write ``data`` as JSON in ``-j`` mode, else ``text`` (or ``str(data)``)."""
        if self.json:
            click.echo(json.dumps(data, indent=4 if self.pretty else None, default=_default))
        else:
            click.echo(text if text is not None else str(data))

    def error(self, message: str) -> None:
        """bpftool's error form: ``Error: ...`` on stderr; ``{"error": ...}`` on stdout in JSON mode."""
        if self.json:
            click.echo(json.dumps({"error": message}, separators=(",", ":")))  # json_writer.c: no spaces
        else:
            click.echo(f"Error: {message}", err=True)


def _default(obj: Any) -> Any:
    if isinstance(obj, bytes | bytearray):
        return [f"{b:#04x}" for b in obj]
    if hasattr(obj, "to_json"):
        return obj.to_json()
    return str(obj)


def get_output() -> Output:
    """The current command's output options (defaults outside a click context)."""
    ctx = click.get_current_context(silent=True)
    while ctx is not None:
        if isinstance(ctx.obj, Output):
            return ctx.obj
        ctx = ctx.parent
    return Output(json="-j" in sys.argv or "--json" in sys.argv)
