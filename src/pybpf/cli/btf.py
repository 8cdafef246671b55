"""``pybpf btf``: print BTF the way bpftool does.

    pybpf btf dump file FILE [format {raw|c}] [unsorted] [-j|-p]

FILE is an ELF object (its ``.BTF`` section, as written by the compiler) or a raw BTF blob such as
``/sys/kernel/btf/vmlinux``. ``format raw`` (the default) is bpftool's ``[id] KIND 'name' ...``
listing (JSON with ``-j``); ``format c`` is a compilable header, types sorted as bpftool 7.5 sorts
them unless ``unsorted`` is given.
"""

from __future__ import annotations

import click

from pybpf.btf import dump_c, dump_raw, dump_raw_json
from pybpf.cli.output import Output, get_output
from pybpf.elf import read_btf
from pybpf.errors import BtfError, LoaderError

__all__ = ["cli"]


@click.group(name="btf")
def cli() -> None:
    """Inspect BPF Type Format data."""


@cli.command(name="dump", context_settings={"ignore_unknown_options": True})
@click.argument("source")
@click.argument("path")
@click.argument("options", nargs=-1)
@click.option("-j", "--json", "json_", is_flag=True, help="JSON output (raw format only).")
@click.option("-p", "--pretty", is_flag=True, help="Pretty JSON output.")
def dump(source: str, path: str, options: tuple[str, ...], json_: bool, pretty: bool) -> None:
    """Dump BTF: btf dump file FILE [format {raw|c}] [unsorted]."""
    out = get_output()
    if json_ or pretty:
        out = Output(json=True, pretty=pretty or out.pretty, debug=out.debug)
    if not "file".startswith(source) or not source:
        if source in ("id", "map", "prog"):
            raise LoaderError(f"BTF source '{source}' needs a loaded object; only 'file' is supported here")
        raise LoaderError(f"unrecognized BTF source specifier: '{source}'")
    fmt_c = False
    sort = True
    args = list(options)
    while args:
        a = args.pop(0)
        if "format".startswith(a) and a:
            if not args:
                raise LoaderError("expecting value for 'format' option")
            v = args.pop(0)
            if v == "c":
                fmt_c = True
            elif v == "raw":
                fmt_c = False
            else:
                raise LoaderError(f"unrecognized format specifier: '{v}', possible values: raw, c")
        elif "unsorted".startswith(a) and a:
            sort = False
        else:
            raise LoaderError(f"unrecognized option: '{a}'")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise BtfError(f"failed to load BTF from {path}: {e.strerror}") from None
    btf, _ = read_btf(data, path=path)
    if fmt_c:
        if out.json:
            raise LoaderError("JSON output for C-syntax dump is not supported")
        click.echo(dump_c(btf, sort=sort), nl=False)
    elif out.json:
        out.emit(dump_raw_json(btf))
    else:
        click.echo(dump_raw(btf), nl=False)
