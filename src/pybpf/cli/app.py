"""The ``pybpf`` command: a click group with bpftool's global options and one sub-group per object.

Each object (``prog``, ``map``, ``btf``, ...) lives in its own module under ``pybpf.cli`` and exposes
a click command named ``cli``; they are registered here in one list.
"""

from __future__ import annotations

import importlib
import sys

import click

from pybpf.cli.output import Output
from pybpf.errors import PybpfError

__all__ = ["app", "main"]

_SUBCOMMANDS = (
    "asm",
    "conformance",
    "cc",
    "object",
    "btf",
    "prog",
    "map",
    "verify",
    "explain",
    "net",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-j", "--json", "json_", is_flag=True, help="JSON output (bpftool's field names).")
@click.option("-p", "--pretty", is_flag=True, help="Pretty-printed JSON (implies -j).")
@click.option("-d", "--debug", is_flag=True, help="Print full verifier logs and internal details.")
@click.option("-f", "--bpffs", is_flag=True, help="Show pinned paths in 'show' listings (bpftool -f).")
@click.version_option(package_name="pybpf")
@click.pass_context
def app(ctx: click.Context, json_: bool, pretty: bool, debug: bool, bpffs: bool) -> None:
    """pybpf: the Linux eBPF subsystem in Python, with a bpftool-shaped command line."""
    ctx.obj = Output(json=json_ or pretty, pretty=pretty, debug=debug, bpffs=bpffs)


for _name in _SUBCOMMANDS:
    _module = importlib.import_module(f"pybpf.cli.{_name}")
    app.add_command(_module.cli)


def main(argv: list[str] | None = None) -> int:
    """Entry point: runs the group and turns pybpf errors into bpftool-style ``Error: ...`` lines."""
    args = sys.argv[1:] if argv is None else argv
    out = Output(json=bool({"-j", "--json", "-p", "--pretty"} & set(args)), debug=bool({"-d", "--debug"} & set(args)))
    try:
        rv = app.main(args=args, prog_name="pybpf", standalone_mode=False)
        if isinstance(rv, int) and rv:  # a command's ctx.exit(n) / Exit(n) comes back as the return value
            return rv
    except click.exceptions.Exit as e:
        return int(e.exit_code)
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except click.Abort:
        return 1
    except PybpfError as e:
        out.error(str(e))
        log = getattr(e, "log", "")
        if log and (out.debug or not out.json):
            click.echo(log.rstrip("\n"), err=True)
        return 255 if e.exit_code == 255 else e.exit_code
    except BrokenPipeError:
        return 0
    except Exception as e:  # the last line of defence: a bug, reported as one
        # Anything that is not a PybpfError is a pybpf bug. Say so in one line instead of a
        # traceback; -d shows the traceback for a bug report.
        out.error(f"internal error ({type(e).__name__}: {e}); please report it, -d shows the traceback")
        if out.debug:
            import traceback

            traceback.print_exc()
        return 255
    return 0


if __name__ == "__main__":
    sys.exit(main())
