"""``pybpf map``: bpftool's map commands over pybpf's kernel.

    pybpf map { show | list } [MAP]
    pybpf map create FILE type TYPE key KEY_SIZE value VALUE_SIZE entries MAX_ENTRIES name NAME
                     [flags FLAGS] [inner_map MAP]
    pybpf map dump MAP
    pybpf map update MAP [key DATA] [value VALUE] [UPDATE_FLAGS]
    pybpf map lookup MAP [key DATA]
    pybpf map getnext MAP [key DATA]
    pybpf map delete MAP key DATA
    pybpf map pin MAP FILE
    pybpf map { peek | pop | dequeue } MAP
    pybpf map { push | enqueue } MAP value VALUE
    pybpf map freeze MAP

Output matches bpftool's: plain text (hex byte lists, BTF-formatted entries for maps with BTF),
``-j`` compact JSON, ``-p`` pretty JSON. Objects live in pybpf's bpffs root (``$PYBPF_BPFFS``);
paths under ``/sys/fs/bpf/`` name the same place.
"""

from __future__ import annotations

import errno
import sys
from typing import Any

import click

from pybpf import uapi
from pybpf.cli.grammar import (
    Args,
    CliError,
    JsonWriter,
    PrefixGroup,
    bpf_failure,
    bpf_strerror,
    fprint_hex,
    hex_json,
    is_prefix,
    parse_bytes,
    parse_map,
    parse_maps,
    parse_prog,
    pin_object,
    print_show,
)
from pybpf.cli.output import get_output
from pybpf.errors import BpfError
from pybpf.kernel.btf_values import btf_decode
from pybpf.kernel.engines import jit_available
from pybpf.kernel.maps.base import OFF_OWNER_PROG_TYPE, Map, MapAttrs, round_up
from pybpf.kernel.objects import Kernel, default_kernel
from pybpf.uapi import MapType

__all__ = ["cli", "map_json_fields", "show_map_plain"]

_PERCPU = (MapType.PERCPU_ARRAY, MapType.PERCPU_HASH, MapType.LRU_PERCPU_HASH, MapType.PERCPU_CGROUP_STORAGE)
_OF_MAPS = (MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS)
_OF_PROGS = (MapType.PROG_ARRAY,)


def _kernel() -> Kernel:
    return default_kernel()


def _writer() -> JsonWriter:
    out = get_output()
    return JsonWriter(sys.stdout, pretty=out.pretty)


def _type_name(t: int) -> str:
    try:
        return uapi.bpftool_name(MapType(t))
    except ValueError:
        return ""


def _memlock(m: Map) -> int:
    return int(m.header.total_size)


# -- show ----------------------------------------------------------------------------------------

def show_map_plain(m: Map, pins: list[str]) -> str:
    """``show_map_close_plain``: what ``bpftool map show`` prints for one map."""
    t = _type_name(m.map_type)
    head = f"{m.id}: " + (f"{t}  " if t else f"type {int(m.map_type)}  ")
    if m.name:
        head += f"name {m.name}  "
    head += f"flags 0x{m.map_flags:x}"
    lines = [head]
    second = f"\tkey {m.key_size}B  value {m.value_size}B  max_entries {m.max_entries}  memlock {_memlock(m)}B"
    owner = _owner_prog_type(m)
    if owner is not None:
        jited = "" if jit_available() else " not"
        second += f"\n\towner_prog_type {owner}  owner{jited} jited"
    lines.append(second)
    lines.extend(f"\tpinned {p}" for p in pins)
    btf_id = _btf_id(m)
    if btf_id or m.frozen:
        parts = []
        if btf_id:
            parts.append(f"btf_id {btf_id}")
        if m.frozen:
            parts.append("frozen")
        lines.append("\t" + "  ".join(parts))
    return "\n".join(lines)


def _owner_prog_type(m: Map) -> str | int | None:
    """A program array's owner program type (fdinfo's ``owner_prog_type``; set by the first program
    that uses the array): bpftool's name for it, its number for a type without one, or None."""
    if m.map_type != MapType.PROG_ARRAY:
        return None
    owner = m._u32(OFF_OWNER_PROG_TYPE)  # prog type + 1, 0 = no owner yet
    if not owner:
        return None
    try:
        return uapi.bpftool_name(uapi.ProgType(owner - 1))
    except ValueError:
        return owner - 1


def _btf_id(m: Map) -> int:
    return int(m.btf_id)


def map_json_fields(w: JsonWriter, m: Map) -> None:
    """``show_map_header_json``."""
    w.field("id", m.id)
    t = _type_name(m.map_type)
    w.field("type", t if t else int(m.map_type))
    if m.name:
        w.field("name", m.name)
    w.field("flags", m.map_flags)


def _show_json(w: JsonWriter, m: Map, pins: list[str] | None) -> None:
    w.start_object()
    map_json_fields(w, m)
    w.field("bytes_key", m.key_size)
    w.field("bytes_value", m.value_size)
    w.field("max_entries", m.max_entries)
    w.field("bytes_memlock", _memlock(m))
    owner = _owner_prog_type(m)
    if owner is not None:
        w.field("owner_prog_type", owner)
        w.field("owner_jited", jit_available())
    w.field("frozen", 1 if m.frozen else 0)
    if _btf_id(m):
        w.field("btf_id", _btf_id(m))
    if pins is not None:
        w.name("pinned")
        w.start_array()
        for p in pins:
            w.value(p)
        w.end_array()
    w.end_object()


# -- entries -------------------------------------------------------------------------------------

def _has_btf(m: Map) -> bool:
    return bool(m.btf is not None and m.btf_value_type_id and m.btf_id)


def _btf_entry(m: Map, key: bytes | None, value: bytes, *, plain: bool) -> dict[str, Any]:
    spec = m.btf
    out: dict[str, Any] = {}
    if key is not None and m.btf_key_type_id:
        out["key"] = btf_decode(spec, m.btf_key_type_id, key, plain=plain)
    if m.map_type in _PERCPU:
        step = round_up(m.value_size, 8)
        out["values"] = [{"cpu": i, "value": btf_decode(spec, m.btf_value_type_id, value[i * step:], plain=plain)}
                         for i in range(m.ncpus)]
    else:
        out["value"] = btf_decode(spec, m.btf_value_type_id, value, plain=plain)
    return out


def _entry_json(w: JsonWriter, m: Map, key: bytes, value: bytes) -> None:
    """``print_entry_json``."""
    w.start_object()
    if m.map_type not in _PERCPU:
        w.field("key", hex_json(key))
        w.field("value", hex_json(value[:m.value_size_sys]))
        if m.map_type in _OF_MAPS:
            w.field("inner_map_id", int.from_bytes(value[:4], "little"))
    else:
        step = round_up(m.value_size, 8)
        w.field("key", hex_json(key))
        w.name("values")
        w.start_array()
        for i in range(m.ncpus):
            w.start_object()
            w.field("cpu", i)
            w.field("value", hex_json(value[i * step:i * step + m.value_size]))
            w.end_object()
        w.end_array()
    if _has_btf(m):
        w.field("formatted", _btf_entry(m, key, value, plain=False))
    w.end_object()


def _entry_plain(m: Map, key: bytes | None, value: bytes) -> str:
    """``print_entry_plain``."""
    ks, vs = m.key_size, m.value_size if m.map_type not in _OF_MAPS and m.map_type not in _OF_PROGS else 4
    lines: list[str] = []
    if m.map_type not in _PERCPU:
        break_names = ks > 16 or vs > 16
        single_line = ks + vs <= 24 and not break_names
        text = ""
        if ks and key is not None:
            text += "key:" + ("\n" if break_names else " ") + fprint_hex(key)
            text += "  " if single_line else "\n"
        if vs:
            if m.map_type in _OF_MAPS:
                text += "inner_map_id:" + ("\n" if break_names else " ") + f"{int.from_bytes(value[:4], 'little')} "
            else:
                text += "value:" + ("\n" if break_names else " ") + fprint_hex(value[:vs])
        lines.append(text)
    else:
        step = round_up(m.value_size, 8)
        if ks and key is not None:
            lines.append("key:\n" + fprint_hex(key))
        for i in range(m.ncpus):
            sep = "\n" if m.value_size > 16 else " "
            lines.append(f"value (CPU {i:02d}):{sep}" + fprint_hex(value[i * step:i * step + m.value_size]))
    return "\n".join(lines)


def _btf_plain(m: Map, key: bytes | None, value: bytes) -> str:
    w = JsonWriter(pretty=True)
    w.value(_btf_entry(m, key, value, plain=True))
    return w.text()


def _lookup(m: Map, key: bytes) -> bytes:
    if m.map_type == MapType.BLOOM_FILTER:
        raise BpfError(errno.EINVAL)
    return m.lookup_elem_sys(key, 0)


def _print_key_value(m: Map, key: bytes | None, value: bytes) -> None:
    out = get_output()
    if out.json:
        w = _writer()
        _entry_json(w, m, key or b"", value)
        w.flush()
    elif _has_btf(m):
        click.echo(_btf_plain(m, key, value))
    else:
        click.echo(_entry_plain(m, key, value))


def _writable(m: Map) -> None:
    """``map_get_sys_perms``: a frozen map refuses writes from user space."""
    if m.frozen:
        raise BpfError(errno.EPERM)


def _json_null() -> None:
    if get_output().json:
        click.echo("null")


# -- click plumbing ------------------------------------------------------------------------------

_CTX = {"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": ["-h", "--help"]}


@click.group(name="map", cls=PrefixGroup, invoke_without_command=True,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Inspect and manipulate maps (bpftool map)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(show)


def _args(words: tuple[str, ...]) -> Args:
    return Args(list(words))


@cli.command(name="show", context_settings=_CTX)
@click.option("-f", "--bpffs", "bpffs", is_flag=True, help="Show pinned paths (bpftool -f).")
@click.argument("words", nargs=-1, type=click.UNPROCESSED)
def show(words: tuple[str, ...] = (), bpffs: bool = False) -> None:
    """Show maps: all, or those MAP names."""
    k = _kernel()
    args = _args(words)
    maps = parse_maps(args, k) if args else list(k.iter_maps())
    if args:
        raise CliError(f"unknown arg {args.peek()}")
    pins = k.pinned_paths() if bpffs or get_output().bpffs else None
    print_show(maps, kind="map", single=bool(words) and len(maps) == 1, pins=pins, plain=show_map_plain,
               as_json=_show_json)


cli.add_command(show, name="list")


@cli.command(context_settings=_CTX)
@click.argument("words", nargs=-1, type=click.UNPROCESSED)
def dump(words: tuple[str, ...]) -> None:
    """Dump every entry of MAP."""
    k = _kernel()
    args = _args(words)
    if len(args) < 2:
        raise CliError("expected 'id', 'name' or 'pinned' and a value")
    maps = parse_maps(args, k)
    out = get_output()
    many = len(maps) > 1
    if out.json:
        w = _writer()
        if many:
            w.start_array()
        for m in maps:
            if many:
                w.start_object()
                map_json_fields(w, m)
                w.name("elements")
            w.start_array()
            for key, value in _entries(m):
                if value is None:
                    continue
                _entry_json(w, m, key, value)
            w.end_array()
            if many:
                w.end_object()
        if many:
            w.end_array()
        w.flush()
        return
    for m in maps:
        if many:
            click.echo(show_map_plain(m, []).splitlines()[0])
        n = 0
        btf = _has_btf(m)
        bw = JsonWriter(pretty=True) if btf else None
        if bw is not None:
            bw.start_array()
        for key, value in _entries(m):
            if value is None:
                if m.map_type not in _OF_MAPS and m.map_type not in _OF_PROGS:
                    text = "<no entry>"
                    break_names = m.key_size > 16 or len(text) > 16
                    single = m.key_size + len(text) <= 24 and not break_names
                    click.echo("key:" + ("\n" if break_names else " ") + fprint_hex(key)
                               + ("  " if single else "\n") + "value:" + ("\n" if break_names else " ") + text)
                continue
            n += 1
            if bw is not None:
                bw.value(_btf_entry(m, key, value, plain=True))
            else:
                click.echo(_entry_plain(m, key, value))
        if bw is not None:
            bw.end_array()
            click.echo(bw.text())
        else:
            click.echo(f"Found {n} element{'s' if n != 1 else ''}")


def _entries(m: Map) -> list[tuple[bytes, bytes | None]]:
    """(key, value or None when the lookup fails) in get_next_key order."""
    out: list[tuple[bytes, bytes | None]] = []
    if not m.has_keys:
        return out
    key: bytes | None = None
    for _ in range(m.max_entries + 1):
        try:
            key = m.get_next_key(key)
        except BpfError as e:
            if e.errno == errno.ENOENT:
                break
            raise bpf_failure("can't get next key", e) from None
        try:
            out.append((key, m.lookup_elem_sys(key, 0)))
        except BpfError:
            out.append((key, None))
    return out


@cli.command(context_settings=_CTX)
@click.argument("words", nargs=-1, type=click.UNPROCESSED)
def lookup(words: tuple[str, ...]) -> None:
    """Look up KEY in MAP."""
    k = _kernel()
    args = _args(words)
    if len(args) < 2:
        raise CliError("expected 'id', 'name' or 'pinned' and a value")
    m = parse_map(args, k)
    key = _parse_key_only(args, m)
    try:
        value = _lookup(m, key or b"")
    except BpfError as e:
        if e.errno == errno.ENOENT:
            if get_output().json:
                click.echo("null")
            else:
                click.echo("key:\n" + fprint_hex(key or b"") + "\n\nNot found")
            raise click.exceptions.Exit(255) from None
        raise bpf_failure("lookup failed", e) from None
    _print_key_value(m, key, value)


def _parse_key_only(args: Args, m: Map) -> bytes | None:
    if not args:
        if m.key_size:
            raise CliError("did not find key")
        return None
    if is_prefix(args.peek(), "key"):
        if not m.key_size:
            raise CliError("unnecessary key")
        args.next()
        key = parse_bytes(args, "key", m.key_size)
        if args:
            raise CliError(f"expected key or value, got: {args.peek()}")
        return key
    if is_prefix(args.peek(), "value"):
        raise CliError("unnecessary value")
    raise CliError(f"expected key or value, got: {args.peek()}")


@cli.command(context_settings=_CTX)
@click.argument("words", nargs=-1, type=click.UNPROCESSED)
def getnext(words: tuple[str, ...]) -> None:
    """Print the key after KEY (the first key without KEY)."""
    k = _kernel()
    args = _args(words)
    if len(args) < 2:
        raise CliError("expected 'id', 'name' or 'pinned' and a value")
    m = parse_map(args, k)
    key = _parse_key_only(args, m) if args else None
    try:
        nxt = m.get_next_key(key)
    except BpfError as e:
        raise bpf_failure("can't get next key", e) from None
    if get_output().json:
        w = _writer()
        w.start_object()
        w.field("key", hex_json(key) if key is not None else None)
        w.field("next_key", hex_json(nxt))
        w.end_object()
        w.flush()
        return
    click.echo(("key:\n" + fprint_hex(key)) if key is not None else "key: None")
    click.echo("next key:\n" + fprint_hex(nxt))


_UPDATE_FLAGS = {"any": 0, "noexist": 1, "exist": 2}


@cli.command(context_settings=_CTX)
@click.argument("words", nargs=-1, type=click.UNPROCESSED)
def update(words: tuple[str, ...]) -> None:
    """Set KEY to VALUE in MAP (UPDATE_FLAGS: any | exist | noexist)."""
    k = _kernel()
    args = _args(words)
    if len(args) < 2:
        raise CliError("expected 'id', 'name' or 'pinned' and a value")
    m = parse_map(args, k)
    key: bytes | None = None
    value: bytes | None = None
    flags: int | None = None
    vsize = m.value_size
    while args:
        word = args.peek()
        if is_prefix(word, "key"):
            if key is not None or not m.key_size:
                raise CliError("duplicate key" if m.key_size else "unnecessary key")
            args.next()
            key = parse_bytes(args, "key", m.key_size)
        elif is_prefix(word, "value"):
            if value is not None:
                raise CliError("duplicate value")
            args.next()
            if m.map_type in _OF_MAPS:
                if vsize != 4:
                    raise CliError("value smaller than 4B for map in map?")
                inner = parse_map(args, k)
                value = k.new_fd(inner).to_bytes(4, "little")
            elif m.map_type in _OF_PROGS:
                if vsize != 4:
                    raise CliError("value smaller than 4B for map of progs?")
                prog = parse_prog(args, k)
                value = k.new_fd(prog).to_bytes(4, "little")
            else:
                value = parse_bytes(args, "value", vsize)
        elif word in _UPDATE_FLAGS:
            if flags is not None:
                raise CliError(f"flags specified multiple times: {word}")
            flags = _UPDATE_FLAGS[args.next()]
        else:
            raise CliError(f"expected key or value, got: {word}")
    if key is None and m.key_size:
        raise CliError("did not find key")
    if value is None:
        raise CliError("did not find value")
    if m.map_type in _PERCPU:
        step = round_up(vsize, 8)
        value = b"".join(value.ljust(step, b"\0") for _ in range(m.ncpus))
    fd_value = m.map_type in _OF_MAPS or m.map_type in _OF_PROGS
    try:
        _writable(m)
        m.update_elem_sys(key or b"", value, flags or 0)
    except BpfError as e:
        raise bpf_failure("update failed", e) from None
    finally:
        if fd_value:
            k.close(int.from_bytes(value[:4], "little"))
    _json_null()


@cli.command(context_settings=_CTX)
@click.argument("words", nargs=-1, type=click.UNPROCESSED)
def delete(words: tuple[str, ...]) -> None:
    """Delete KEY from MAP."""
    k = _kernel()
    args = _args(words)
    if len(args) < 2:
        raise CliError("expected 'id', 'name' or 'pinned' and a value")
    m = parse_map(args, k)
    key = _parse_key_only(args, m)
    try:
        _writable(m)
        m.delete_elem_sys(key or b"")
    except BpfError as e:
        raise bpf_failure("delete failed", e) from None
    _json_null()


@cli.command(context_settings=_CTX)
@click.argument("words", nargs=-1, type=click.UNPROCESSED)
def pin(words: tuple[str, ...]) -> None:
    """Pin MAP at FILE."""
    k = _kernel()
    args = _args(words)
    if len(args) < 3:
        raise CliError("'map pin' needs at least 3 arguments, got " + str(len(args)))
    m = parse_map(args, k)
    path = args.next()
    pin_object(k, m, path)
    _json_null()


@cli.command(context_settings=_CTX)
@click.argument("words", nargs=-1, type=click.UNPROCESSED)
def create(words: tuple[str, ...]) -> None:
    """Create a map and pin it at FILE."""
    k = _kernel()
    args = _args(words)
    if len(args) < 7:
        raise CliError(f"'map create' needs at least 7 arguments, got {len(args)}")
    pinfile = args.next()
    map_type: int | None = None
    name: str | None = None
    key_size = value_size = max_entries = flags = 0
    inner: Map | None = None
    while args:
        if len(args) < 2:
            raise CliError(f"'{args.peek()}' needs at least 2 arguments, got 1")
        word = args.peek()
        if is_prefix(word, "type"):
            args.next()
            if map_type is not None:
                raise CliError("map type already specified")
            tname = args.next()
            try:
                map_type = int(uapi.from_bpftool_name(MapType, tname))
            except KeyError:
                raise CliError(f"unrecognized map type: {tname}") from None
        elif is_prefix(word, "name"):
            args.next()
            name = args.next()
        elif is_prefix(word, "key"):
            args.next()
            key_size = _u32(args.next(), "key size")
        elif is_prefix(word, "value"):
            args.next()
            value_size = _u32(args.next(), "value size")
        elif is_prefix(word, "entries"):
            args.next()
            max_entries = _u32(args.next(), "max entries")
        elif is_prefix(word, "flags"):
            args.next()
            flags = _u32(args.next(), "flags")
        elif is_prefix(word, "inner_map"):
            args.next()
            inner = parse_map(args, k)
        else:
            raise CliError(f"unknown arg {word}")
    if not name:
        raise CliError("map name not specified")
    attrs = MapAttrs(map_type or 0, key_size, value_size, max_entries, flags, name_raw=name.encode()[:16].ljust(16,
                     b"\0") if len(name) < 16 else name.encode()[:16], inner_map=inner)
    try:
        m = k.create_map(attrs)
    except BpfError as e:
        raise bpf_failure("map create failed", e) from None
    try:
        k.pin(m, pinfile)
    except BpfError as e:
        raise bpf_failure(f"can't pin the object ({pinfile})", e) from None
    _json_null()


def _u32(text: str, what: str) -> int:
    try:
        v = int(text, 0)
    except ValueError:
        raise CliError(f"can't parse {what}") from None
    if not 0 <= v <= 0xFFFFFFFF:
        raise CliError(f"can't parse {what}")
    return v


@cli.command(context_settings=_CTX)
@click.argument("words", nargs=-1, type=click.UNPROCESSED)
def freeze(words: tuple[str, ...]) -> None:
    """Freeze MAP: no more updates from user space."""
    k = _kernel()
    args = _args(words)
    m = parse_map(args, k)
    if args:
        raise CliError(f"unknown arg {args.peek()}")
    try:
        if m.spin_lock_off is not None:
            raise BpfError(524)
        m.freeze()
    except BpfError as e:
        err = errno.EPERM if e.errno == errno.EBUSY else e.errno
        raise CliError(f"failed to freeze map: {bpf_strerror(err)}") from None
    _json_null()



def _take(words: tuple[str, ...], *, remove: bool) -> None:
    """``do_peek`` / ``do_pop_dequeue``: print the head value (and remove it); an empty map is
    bpftool's "Error: empty map" on stdout (``null`` in JSON) and exit status 255."""
    k = _kernel()
    m = parse_map(_args(words), k)
    try:
        value = m.lookup_and_delete_elem_sys(b"", 0) if remove else m.lookup_elem_sys(b"", 0)
    except BpfError as e:
        if e.errno == errno.ENOENT:
            click.echo("null" if get_output().json else "Error: empty map")
            raise click.exceptions.Exit(255) from None
        what = "pop" if remove else "peek"
        raise bpf_failure(f"{what} failed", e) from None
    _print_key_value(m, None, value)


@cli.command(context_settings=_CTX)
@click.argument("words", nargs=-1, type=click.UNPROCESSED)
def peek(words: tuple[str, ...]) -> None:
    """Print the value a pop would return, without removing it."""
    _take(words, remove=False)


@cli.command(context_settings=_CTX)
@click.argument("words", nargs=-1, type=click.UNPROCESSED)
def pop(words: tuple[str, ...]) -> None:
    """Remove and print the next value of a queue or stack."""
    _take(words, remove=True)


cli.add_command(pop, name="dequeue")


@cli.command(context_settings=_CTX)
@click.argument("words", nargs=-1, type=click.UNPROCESSED)
def push(words: tuple[str, ...]) -> None:
    """Push VALUE onto a queue, stack or bloom filter."""
    k = _kernel()
    args = _args(words)
    m = parse_map(args, k)
    if not is_prefix(args.peek(), "value"):
        raise CliError("did not find value")
    args.next()
    value = parse_bytes(args, "value", m.value_size)
    try:
        _writable(m)
        m.update_elem_sys(b"", value, 0)
    except BpfError as e:
        raise bpf_failure("update failed", e) from None
    _json_null()


cli.add_command(push, name="enqueue")
