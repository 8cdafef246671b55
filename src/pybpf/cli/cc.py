"""``pybpf cc``: compile BPF C with clang or the ziglang wheel, compiler-style command line.

    pybpf cc prog.c -o prog.o [-O2] [-g] [-mcpu=v3] [-I DIR] [-D NAME[=VAL]]
             [--compiler clang|zig] [--headers auto|bundled] [-v]

Arguments are parsed like a compiler driver's (``-mcpu=v3``, ``-Idir``, ``-DX=1``); anything else
that starts with ``-`` is passed through to the compiler.
"""

from __future__ import annotations

from typing import cast

import click

from pybpf.errors import ToolchainError
from pybpf.toolchain import build_argv, compile, find_compiler
from pybpf.toolchain.compiler import CompilerKind, HeaderMode

__all__ = ["cli"]


def _parse(args: tuple[str, ...]) -> dict[str, object]:
    opts: dict[str, object] = {
        "sources": [],
        "output": None,
        "opt": "-O2",
        "debug": True,
        "mcpu": None,
        "include_dirs": [],
        "defines": [],
        "extra": [],
        "compiler": None,
        "headers": "auto",
        "verbose": False,
    }
    it = iter(args)
    for a in it:

        def value(flag: str, arg: str = a) -> str:
            if len(arg) > len(flag):
                return arg[len(flag) :].lstrip("=")
            try:
                return next(it)
            except StopIteration:
                raise ToolchainError(f"missing value after {flag}") from None

        if a == "-o":
            opts["output"] = value("-o")
        elif a.startswith("-O"):
            opts["opt"] = a
        elif a in ("-g", "-g2", "-g3"):
            opts["debug"] = True
        elif a == "-g0":
            opts["debug"] = False
        elif a.startswith("-mcpu"):
            opts["mcpu"] = value("-mcpu")
        elif a.startswith("-I"):
            cast(list, opts["include_dirs"]).append(value("-I"))
        elif a.startswith("-D"):
            cast(list, opts["defines"]).append(value("-D"))
        elif a.startswith("--compiler"):
            kind = value("--compiler")
            if kind not in ("clang", "zig"):
                raise ToolchainError(f"unknown compiler '{kind}' (clang or zig)")
            opts["compiler"] = kind
        elif a.startswith("--headers"):
            mode = value("--headers")
            if mode not in ("auto", "bundled"):
                raise ToolchainError(f"unknown header mode '{mode}' (auto or bundled)")
            opts["headers"] = mode
        elif a == "-v":
            opts["verbose"] = True
        elif a == "-c":
            continue
        elif a.startswith("-"):
            cast(list, opts["extra"]).append(a)
        else:
            cast(list, opts["sources"]).append(a)
    return opts


@click.command(
    name="cc",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": ["--help"]},
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def cli(args: tuple[str, ...]) -> None:
    """Compile a BPF C program: pybpf cc prog.c -o prog.o [-O2] [-g] [-mcpu=v3] [-I..] [-D..].

    Uses clang (>= 14) when installed, else the ziglang package's clang; pybpf's headers fill in
    <bpf/bpf_helpers.h>, <linux/bpf.h>... where the system has none. --compiler clang|zig picks one,
    --headers bundled ignores the system headers, -v prints the command line.
    """
    opts = _parse(args)
    sources = cast(list, opts["sources"])
    if len(sources) != 1:
        raise ToolchainError(f"expected exactly one source file, got {len(sources)}")
    comp = find_compiler(cast(CompilerKind | None, opts["compiler"]))
    if opts["verbose"]:
        argv = build_argv(
            comp,
            sources[0],
            str(opts["output"] or sources[0].rsplit(".", 1)[0] + ".o"),
            opt=cast(str, opts["opt"]),
            debug=cast(bool, opts["debug"]),
            mcpu=cast(str | None, opts["mcpu"]),
            include_dirs=cast(list, opts["include_dirs"]),
            defines=cast(list, opts["defines"]),
            extra_args=cast(list, opts["extra"]),
            headers=cast(HeaderMode, opts["headers"]),
        )
        click.echo(f"# {comp.describe()}", err=True)
        click.echo(" ".join(argv), err=True)
    try:
        compile(
            sources[0],
            cast(str | None, opts["output"]),
            opt=cast(str, opts["opt"]),
            debug=cast(bool, opts["debug"]),
            mcpu=cast(str | None, opts["mcpu"]),
            include_dirs=cast(list, opts["include_dirs"]),
            defines=cast(list, opts["defines"]),
            extra_args=cast(list, opts["extra"]),
            compiler=comp,
            headers=cast(HeaderMode, opts["headers"]),
        )
    except ToolchainError as e:
        if e.output:
            click.echo(e.output.rstrip("\n"), err=True)
        raise
