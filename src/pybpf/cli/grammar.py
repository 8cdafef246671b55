"""bpftool's command-line conventions, shared by ``pybpf prog`` and ``pybpf map``.

Input: keyword arguments in bpftool's grammar, where every keyword may be abbreviated to any prefix
(``pin`` for ``pinned``, ``i`` for ``id``)::

    PROG := { id PROG_ID | pinned FILE | tag PROG_TAG | name PROG_NAME }
    MAP  := { id MAP_ID | pinned FILE | name MAP_NAME }
    DATA := { [hex] BYTES }

Output: :class:`JsonWriter` reproduces bpftool's ``json_writer.c`` byte for byte (compact with
``-j``; with ``-p`` its pretty form, whose opening brackets stay on the line of their name and whose
arrays of scalars keep the closing bracket on its own line), and :func:`fprint_hex` its hex dumps.
Errors are :class:`CliError` with bpftool's wording; ``pybpf``'s main turns them into ``Error: ...``.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import IO, Any, TypeVar

import click

from pybpf.errors import BpfError, PybpfError
from pybpf.kernel.maps.base import Map
from pybpf.kernel.objects import Kernel
from pybpf.kernel.program import Program

__all__ = [
    "Args",
    "PrefixGroup",
    "CliError",
    "JsonWriter",
    "fprint_hex",
    "hex_json",
    "is_prefix",
    "parse_bytes",
    "bpf_failure",
    "bpf_strerror",
    "parse_map",
    "parse_maps",
    "parse_prog",
    "parse_progs",
    "pin_object",
    "print_show",
]

_Obj = TypeVar("_Obj", Map, Program)

BPF_OBJ_NAME_LEN = 16


class CliError(PybpfError):
    """A command-line error in bpftool's words (printed as ``Error: <message>``)."""


def bpf_strerror(err: int | None) -> str:
    """glibc's ``strerror`` as bpftool prints it: ENOTSUPP (524) has no name there, and an error
    without an errno is reported as EINVAL."""
    err = err or errno.EINVAL
    return "Unknown error 524" if err == 524 else os.strerror(err)


def bpf_failure(what: str, e: BpfError) -> CliError:
    """bpftool's ``p_err("<what>: %s", strerror(errno))`` after a failed bpf(2) call."""
    return CliError(f"{what}: {bpf_strerror(e.errno)}")


def pin_object(kernel: Kernel, obj: Map | Program, path: str) -> None:
    """``map pin`` / ``prog pin``: bpftool's ``do_pin_any``."""
    try:
        kernel.pin(obj, path)
    except BpfError as e:
        raise bpf_failure(f"can't pin the object ({path})", e) from None


class PrefixGroup(click.Group):
    """A click group whose commands may be abbreviated as in bpftool (``map look`` = ``map lookup``);
    the first command, in definition order, that the word is a prefix of wins (bpftool's
    ``cmd_select`` scans its table the same way)."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        cmd = super().get_command(ctx, cmd_name)
        if cmd is not None:
            return cmd
        for name in list(self.commands):
            if is_prefix(cmd_name, name):
                return self.commands[name]
        return None

    def resolve_command(self, ctx: click.Context,
                        args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        _name, cmd, rest = super().resolve_command(ctx, args)
        return (cmd.name if cmd is not None else None), cmd, rest


def is_prefix(arg: str | None, keyword: str) -> bool:
    """bpftool's ``is_prefix``: a non-empty prefix of ``keyword``."""
    return bool(arg) and keyword.startswith(arg)  # type: ignore[union-attr]


class Args:
    """A cursor over the remaining words of a command line."""

    def __init__(self, words: tuple[str, ...] | list[str]) -> None:
        self.words = list(words)
        self.pos = 0

    def __bool__(self) -> bool:
        return self.pos < len(self.words)

    def __len__(self) -> int:
        return len(self.words) - self.pos

    def peek(self, n: int = 0) -> str | None:
        """The next word, not consumed (None at the end)."""
        i = self.pos + n
        return self.words[i] if i < len(self.words) else None

    def next(self) -> str:
        """Consume and return the next word (CliError when none is left)."""
        if self.pos >= len(self.words):
            raise CliError("expected more arguments")
        w = self.words[self.pos]
        self.pos += 1
        return w

    def rest(self) -> list[str]:
        """Consume and return every remaining word."""
        out = self.words[self.pos:]
        self.pos = len(self.words)
        return out

    def accept(self, keyword: str) -> bool:
        """Consume the next word if it is a prefix of ``keyword`` (bpftool's ``is_prefix``)."""
        if is_prefix(self.peek(), keyword):
            self.pos += 1
            return True
        return False


def _parse_id(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise CliError(f"can't parse {text} as ID") from None


def _pinned(kernel: Kernel, path: str, want: type) -> Map | Program:
    try:
        obj = kernel.open_pinned(path)
    except BpfError as e:
        raise bpf_failure(f"bpf obj get ({path})", e) from None
    if not isinstance(obj, want):
        raise CliError(f"incorrect object type: {'prog' if isinstance(obj, Program) else 'map'}")
    return obj


def parse_maps(args: Args, kernel: Kernel) -> list[Map]:
    """``map_parse_fds``: the maps a MAP handle names (``name`` may match several)."""
    if args.accept("id"):
        raw = args.next()
        map_id = _parse_id(raw)
        m = kernel.map_by_id(map_id)
        if m is None:
            raise CliError(f"get map by id ({map_id}): {os.strerror(errno.ENOENT)}")
        return [m]
    if args.accept("name"):
        name = args.next()
        if len(name) > BPF_OBJ_NAME_LEN - 1:
            raise CliError("can't parse name")
        found = [m for m in kernel.iter_maps() if m.name == name]
        if not found:
            raise CliError(f"no map with name {name} found")
        return found
    if args.accept("pinned"):
        return [_pinned(kernel, args.next(), Map)]  # type: ignore[list-item]
    raise CliError(f"expected 'id', 'name' or 'pinned', got: '{args.peek()}'?")


def parse_map(args: Args, kernel: Kernel) -> Map:
    """``map_parse_fd``: exactly one map (CliError when the handle names several)."""
    found = parse_maps(args, kernel)
    if len(found) > 1:
        raise CliError("several maps match this handle")
    return found[0]


def parse_progs(args: Args, kernel: Kernel) -> list[Program]:
    """``prog_parse_fds``: the programs a PROG handle names (``tag``/``name`` may match several)."""
    if args.accept("id"):
        prog_id = _parse_id(args.next())
        p = kernel.prog_by_id(prog_id)
        if p is None:
            raise CliError(f"get by id ({prog_id}): {os.strerror(errno.ENOENT)}")
        return [p]
    if args.accept("tag"):
        text = args.next()
        try:
            tag = bytes.fromhex(text)
        except ValueError:
            tag = b""
        if len(tag) != 8:
            raise CliError("can't parse tag")
        found = [p for p in kernel.iter_progs() if p.tag == tag]
        if not found:
            raise CliError(f"no programs found with tag {text}")
        return found
    if args.accept("name"):
        name = args.next()
        if len(name) > 127:
            raise CliError("can't parse name")
        found = [p for p in kernel.iter_progs() if p.name == name]
        if not found:
            raise CliError(f"no programs found with name {name}")
        return found
    if args.accept("pinned"):
        return [_pinned(kernel, args.next(), Program)]  # type: ignore[list-item]
    raise CliError(f"expected 'id', 'tag', 'name' or 'pinned', got: '{args.peek()}'?")


def parse_prog(args: Args, kernel: Kernel) -> Program:
    """``prog_parse_fd``: exactly one program (CliError when the handle names several)."""
    found = parse_progs(args, kernel)
    if len(found) > 1:
        raise CliError("several programs match this handle")
    return found[0]


def parse_bytes(args: Args, name: str, n: int) -> bytes:
    """``parse_bytes``: ``[hex] BYTES`` — ``n`` byte values (C integer syntax, or hex after ``hex``)."""
    base = 0
    if args.accept("hex"):
        base = 16
    out = bytearray()
    while len(out) < n and args:
        word = args.peek() or ""
        try:
            v = int(word, base) if base else _c_int(word)
        except ValueError:
            raise CliError(f"error parsing byte: {word}") from None
        args.next()
        out.append(v & 0xFF)
    if len(out) != n:
        raise CliError(f"{name} expected {n} bytes got {len(out)}")
    return bytes(out)


def _c_int(word: str) -> int:
    """``strtoul(word, &end, 0)`` requiring the whole word: 0x.. hex, 0.. octal, else decimal."""
    w = word.strip()
    if w.lower().startswith("0x"):
        return int(w[2:], 16)
    if len(w) > 1 and w.startswith("0"):
        return int(w[1:], 8)
    return int(w, 10)


# ------------------------------------------------------------------------------------------------
# output


def fprint_hex(data: bytes, sep: str = " ") -> str:
    """``fprint_hex``: bytes as ``%02x`` separated by ``sep``, a double space after every 8 bytes
    and a newline after every 16."""
    out = []
    for i, b in enumerate(data):
        if i:
            if i % 16 == 0:
                out.append("\n")
            elif i % 8 == 0:
                out.append(sep * 2)
            else:
                out.append(sep)
        out.append(f"{b:02x}")
    return "".join(out)


def hex_json(data: bytes) -> list[str]:
    """``print_hex_data_json``: ``["0x00","0x1e",...]``."""
    return [f"0x{b:02x}" for b in data]


class _Raw(str):
    """A pre-formatted JSON value (bpftool's ``jsonw_printf``)."""


class JsonWriter:
    """bpftool's ``json_writer`` (see the module docstring): call-for-call the same output."""

    def __init__(self, out: IO[str] | None = None, *, pretty: bool = False) -> None:
        self.out = out if out is not None else sys.stdout
        self.pretty = pretty
        self.depth = 0
        self.sep = ""
        self.parts: list[str] = []

    def _w(self, s: str) -> None:
        self.parts.append(s)

    def _eol(self) -> None:
        if self.pretty:
            self._w("\n" + "    " * self.depth)

    def _eor(self) -> None:
        if self.sep:
            self._w(self.sep)
        self.sep = ","

    def _begin(self, c: str) -> None:
        self._eor()
        self._w(c)
        self.depth += 1
        self.sep = ""

    def _end(self, c: str) -> None:
        self.depth -= 1
        if self.sep:
            self._eol()
        self._w(c)
        self.sep = ","

    def start_object(self) -> None:
        self._begin("{")

    def end_object(self) -> None:
        self._end("}")

    def start_array(self) -> None:
        self._begin("[")

    def end_array(self) -> None:
        self._end("]")

    def name(self, name: str) -> None:
        self._eor()
        self._eol()
        self.sep = ""
        self._w(_quote(name) + (": " if self.pretty else ":"))

    def raw(self, text: str) -> None:
        """``jsonw_printf``: an already-formatted value."""
        self._eor()
        self._w(text)

    def value(self, v: Any) -> None:
        """A Python value: dicts become objects, lists arrays, str strings (``_Raw`` unquoted)."""
        if isinstance(v, dict):
            self.start_object()
            for k, item in v.items():
                self.name(str(k))
                self.value(item)
            self.end_object()
        elif isinstance(v, list | tuple):
            self.start_array()
            for item in v:
                self.value(item)
            self.end_array()
        elif v is None:
            self.raw("null")
        elif isinstance(v, bool):
            self.raw("true" if v else "false")
        elif isinstance(v, int):
            self.raw(str(v))
        elif isinstance(v, float):
            self.raw(repr(v))
        elif type(v).__name__ == "_Raw":
            self.raw(str(v))
        else:
            self.raw(_quote(str(v)))

    def field(self, name: str, v: Any) -> None:
        self.name(name)
        self.value(v)

    def text(self) -> str:
        return "".join(self.parts)

    def flush(self, *, newline: bool = True) -> None:
        """``jsonw_destroy``: write everything and end with a newline."""
        self.out.write(self.text() + ("\n" if newline else ""))
        self.out.flush()
        self.parts.clear()


def _quote(s: str) -> str:
    out = ['"']
    for ch in s:
        if ch == "\t":
            out.append("\\t")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\f":
            out.append("\\f")
        elif ch == "\b":
            out.append("\\b")
        elif ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def iter_words(words: tuple[str, ...]) -> Iterator[str]:
    yield from words


def print_show(objs: Sequence[_Obj], *, kind: str, single: bool, pins: dict[tuple[str, int], list[str]] | None,
               plain: Callable[[_Obj, list[str]], str],
               as_json: Callable[[JsonWriter, _Obj, list[str] | None], None]) -> None:
    """``do_show``'s output for maps or programs: one JSON object for a single named object, else an
    array (``-j``), or one plain-text block each. ``pins`` (``-f``) maps (kind, id) to pinned paths;
    None leaves the ``pinned`` field out."""
    from pybpf.cli.output import get_output

    out = get_output()
    if out.json:
        w = JsonWriter(sys.stdout, pretty=out.pretty)
        if not single:
            w.start_array()
        for o in objs:
            as_json(w, o, pins.get((kind, o.id), []) if pins is not None else None)
        if not single:
            w.end_array()
        w.flush()
        return
    for o in objs:
        click.echo(plain(o, (pins or {}).get((kind, o.id), [])))
