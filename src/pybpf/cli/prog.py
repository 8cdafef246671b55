"""``pybpf prog``: bpftool's program commands over pybpf's kernel.

    pybpf prog { show | list } [PROG]
    pybpf prog dump { xlated | jited } PROG [{ file FILE | [opcodes] [linum] [insns] }]
    pybpf prog pin PROG FILE
    pybpf prog { load | loadall } OBJ PATH [type TYPE] [pinmaps MAP_DIR]
    pybpf prog run { PROG | OBJ [name NAME] } [data_in FILE [data_out FILE [data_size_out L]]]
                   [ctx_in FILE [ctx_out FILE [ctx_size_out M]]] [repeat N] [--engine ENGINE]
    pybpf prog tracelog

``run`` also takes an object file directly (loaded into this process for the run). Output is
bpftool's (``Return value: 2, duration (average): 12ns``; ``-j``: ``{"retval":2,"duration":12}``).
"""

from __future__ import annotations

import errno
import os
import sys
import time
from pathlib import Path

import click

from pybpf import uapi
from pybpf.cli.grammar import (
    Args,
    CliError,
    JsonWriter,
    PrefixGroup,
    bpf_strerror,
    fprint_hex,
    hex_json,
    is_prefix,
    parse_prog,
    parse_progs,
    pin_object,
    print_show,
)
from pybpf.cli.output import get_output
from pybpf.errors import BpfError, NotSupportedError, PybpfError
from pybpf.kernel.engines import ENGINES
from pybpf.kernel.objects import Kernel, default_kernel
from pybpf.kernel.program import Program, internal_call_name
from pybpf.kernel.test_run import output_errno, test_run
from pybpf.uapi import ProgType

__all__ = ["cli", "show_prog_plain"]

_CTX = {"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": ["-h", "--help"]}
DEFAULT_OUT_SIZE = 32 * 1024


def _kernel() -> Kernel:
    return default_kernel()


def _writer() -> JsonWriter:
    return JsonWriter(sys.stdout, pretty=get_output().pretty)


def _type_name(p: Program) -> str | None:
    t = p.image.prog_type
    if p.image.custom_type:
        return p.image.custom_type
    try:
        return uapi.bpftool_name(ProgType(t))
    except ValueError:
        return None


def _memlock(p: Program) -> int:
    size = max(72 + p.xlated_len, 0)
    return (size + 4095) // 4096 * 4096


def _loaded_at(p: Program, *, json: bool) -> str:
    """``print_boot_time``: the load time as wall-clock (epoch seconds in JSON)."""
    boot = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    wall = time.time_ns() - (boot - p.load_time)
    secs = wall // 1_000_000_000
    if json:
        return str(secs)
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(secs))


def _show_header_plain(p: Program) -> str:
    """``print_prog_header_plain``: id, type, name, tag, gpl, statistics."""
    t = _type_name(p)
    head = f"{p.id}: " + (f"{t}  " if t else f"type {p.image.prog_type}  ")
    if p.name:
        head += f"name {p.name}  "
    head += "tag " + fprint_hex(p.tag, "")
    if p.gpl_compatible:
        head += "  gpl"
    if p.run_time_ns:
        head += f" run_time_ns {p.run_time_ns} run_cnt {p.run_cnt}"
    return head


def show_prog_plain(p: Program, pins: list[str]) -> str:
    """``print_prog_plain``: what ``bpftool prog show`` prints for one program."""
    lines = [_show_header_plain(p)]
    if p.load_time:
        lines.append(f"\tloaded_at {_loaded_at(p, json=False)}  uid {p.image.created_by_uid}")
    jited = p.jited_len
    third = f"\txlated {p.xlated_len}B" + (f"  jited {jited}B" if jited else "  not jited")
    third += f"  memlock {_memlock(p)}B"
    if p.used_maps:
        third += "  map_ids " + ",".join(str(i) for i in p.used_maps)
    lines.append(third)
    lines.extend(f"\tpinned {x}" for x in pins)
    if p.image.btf_id:
        lines.append(f"\tbtf_id {p.image.btf_id}")
    return "\n".join(lines)


def _show_json_header(w: JsonWriter, p: Program) -> None:
    """``print_prog_header_json``."""
    w.field("id", p.id)
    t = _type_name(p)
    w.field("type", t if t else p.image.prog_type)
    if p.name:
        w.field("name", p.name)
    w.field("tag", p.tag.hex())
    w.field("gpl_compatible", p.gpl_compatible)
    if p.run_time_ns:
        w.field("run_time_ns", p.run_time_ns)
        w.field("run_cnt", p.run_cnt)


def _show_json(w: JsonWriter, p: Program, pins: list[str] | None) -> None:
    """``print_prog_json``."""
    w.start_object()
    _show_json_header(w, p)
    if p.load_time:
        w.name("loaded_at")
        w.raw(_loaded_at(p, json=True))
        w.field("uid", p.image.created_by_uid)
    w.field("orphaned", False)
    w.field("bytes_xlated", p.xlated_len)
    jited = p.jited_len
    w.field("jited", bool(jited))
    if jited:
        w.field("bytes_jited", jited)
    w.field("bytes_memlock", _memlock(p))
    if p.used_maps:
        w.field("map_ids", list(p.used_maps))
    if p.image.btf_id:
        w.field("btf_id", p.image.btf_id)
    if pins is not None:
        w.field("pinned", pins)
    w.end_object()


@click.group(name="prog", cls=PrefixGroup, invoke_without_command=True,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Inspect, load and run programs (bpftool prog)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(show)


@cli.command(name="show", context_settings=_CTX)
@click.option("-f", "--bpffs", "bpffs", is_flag=True, help="Show pinned paths (bpftool -f).")
@click.argument("words", nargs=-1, type=click.UNPROCESSED)
def show(words: tuple[str, ...] = (), bpffs: bool = False) -> None:
    """Show programs: all, or those PROG names."""
    k = _kernel()
    args = Args(list(words))
    progs = parse_progs(args, k) if args else list(k.iter_progs())
    if args:
        raise CliError(f"unknown arg {args.peek()}")
    pins = k.pinned_paths() if bpffs or get_output().bpffs else None
    print_show(progs, kind="prog", single=bool(words) and len(progs) == 1, pins=pins, plain=show_prog_plain,
               as_json=_show_json)


cli.add_command(show, name="list")


@cli.command(context_settings=_CTX)
@click.argument("words", nargs=-1, type=click.UNPROCESSED)
def dump(words: tuple[str, ...]) -> None:
    """Dump the instructions of PROG: xlated (after the verifier) or jited (x86-64 machine code)."""
    k = _kernel()
    args = Args(list(words))
    what = args.next() if args else ""
    if is_prefix(what, "jited"):
        jited = True
    elif is_prefix(what, "xlated"):
        jited = False
    else:
        raise CliError(f"expected 'xlated' or 'jited', got: {what}")
    coll = None
    if args and not any(is_prefix(args.peek(), kw) for kw in ("id", "tag", "name", "pinned")) \
            and _is_object_file(args.peek() or ""):
        # pybpf's addition: OBJ [name NAME] loads the object's programs (or that one) to dump them
        from pybpf.loader import LoadOptions, load

        obj = args.next()
        wanted = args.next() if args.accept("name") else None
        coll = load(obj, LoadOptions(kernel=k, programs=[wanted] if wanted else None))
        progs = [p.kernel_program for p in coll.programs.values()]
        if not progs:
            coll.close()
            raise CliError("object file doesn't contain any bpf program")
    else:
        if len(args) < 2:
            raise CliError("expected 'id', 'tag', 'name' or 'pinned' and a value")
        progs = parse_progs(args, k)
    try:
        _dump(progs, args, jited=jited)
    finally:
        if coll is not None:
            coll.close()


def _dump(progs: list[Program], args: Args, *, jited: bool) -> None:
    """The rest of ``prog dump`` once the programs are known: options, then each listing."""
    opcodes = linum = visual = insns = False
    file: str | None = None
    while args:
        word = args.next()
        if is_prefix(word, "file"):
            if not args:
                raise CliError("expected file path")
            if len(progs) > 1:
                raise CliError("several programs matched")
            file = args.next()
        elif is_prefix(word, "opcodes"):
            opcodes = True
        elif is_prefix(word, "visual"):
            if len(progs) > 1:
                raise CliError("several programs matched")
            visual = True
        elif is_prefix(word, "linum"):
            linum = True
        elif jited and word == "insns":  # pybpf: the eBPF instruction before its machine code
            insns = True
        else:
            raise CliError(f"expected no more arguments, 'file', 'opcodes', 'visual', 'linum', got: '{word}'?")
    if file is not None and (opcodes or visual or linum or insns):
        raise CliError("'file' is not compatible with 'opcodes', 'visual', or 'linum'")
    json = get_output().json
    if json and visual:
        raise CliError("'visual' is not compatible with JSON output")
    if visual:
        raise NotSupportedError("'visual' (DOT output) is not supported")
    several = len(progs) > 1
    w = _writer() if json else None
    if w is not None and several:
        w.start_array()
    for i, p in enumerate(progs):
        if w is not None and several:
            w.start_object()
            _show_json_header(w, p)
            w.name("insns")
        elif several:
            click.echo(_show_header_plain(p))
        _dump_one(w, p, jited=jited, file=file, opcodes=opcodes, linum=linum, insns=insns)
        if w is not None and several:
            w.end_object()
        elif several and i != len(progs) - 1:
            click.echo("")
    if w is not None:
        if several:
            w.end_array()
        w.flush()


def _dump_one(w: JsonWriter | None, p: Program, *, jited: bool, file: str | None, opcodes: bool,
              linum: bool, insns: bool = False) -> None:
    """``prog_dump`` for one program: raw bytes to ``file``, else text (or JSON into ``w``)."""
    image = base = None
    if jited:
        got = p.jit_image()
        if got is None:
            # bpftool's p_info (silent in JSON mode): the kernel returned no machine code
            if w is None:
                click.echo("no instructions returned", err=True)
            raise SystemExit(255)
        image, base = got
    if file is not None:
        raw = image.code[:image.code_size] if image is not None else p.insns.encode()
        try:
            Path(file).write_bytes(raw)
        except OSError as e:
            raise CliError(f"can't open file {file}: {e.strerror}") from None
        if w is not None:
            w.value(None)
        return
    if image is not None:
        from pybpf.jit.dump import dump_jited, dump_jited_json

        kw = {"name": p.name, "tag": p.tag.hex(), "base_address": base, "opcodes": opcodes, "linum": linum,
              "show_insns": insns, "call_name": internal_call_name}
        if w is not None:
            w.value(dump_jited_json(image, p.insns, **kw))
        else:
            sys.stdout.write(dump_jited(image, p.insns, **kw))
        return
    if w is not None:
        w.value(p.xlated_json(opcodes=opcodes, linum=linum))
    else:
        sys.stdout.write(p.xlated_text(opcodes=opcodes, linum=linum))


@cli.command(context_settings=_CTX)
@click.argument("words", nargs=-1, type=click.UNPROCESSED)
def pin(words: tuple[str, ...]) -> None:
    """Pin PROG at FILE."""
    k = _kernel()
    args = Args(list(words))
    if len(args) < 3:
        raise CliError(f"'prog pin' needs at least 3 arguments, got {len(args)}")
    p = parse_prog(args, k)
    path = args.next()
    pin_object(k, p, path)
    if get_output().json:
        click.echo("null")


def _load(words: tuple[str, ...], *, all_progs: bool) -> None:
    from pybpf.loader import LoadOptions, load

    k = _kernel()
    args = Args(list(words))
    if len(args) < 2:
        raise CliError(f"'prog load' needs at least 2 arguments, got {len(args)}")
    obj = args.next()
    path = args.next()
    prog_type: int | None = None
    attach_type: int | None = None
    pinmaps: str | None = None
    while args:
        word = args.next()
        if is_prefix(word, "type"):
            if prog_type is not None:
                raise CliError("program type already specified")
            prog_type, attach_type = _type_by_name(args.next())
        elif is_prefix(word, "pinmaps"):
            pinmaps = args.next()
        elif is_prefix(word, "map"):
            raise NotSupportedError("'map idx|name MAP' (reusing maps) is not supported yet")
        elif word in ("autoattach", "offload_dev", "xdpmeta_dev", "dev"):
            raise NotSupportedError(f"'{word}' is not supported: pybpf does not attach to devices")
        else:
            raise CliError(f"expected no more arguments, 'type', 'map' or 'dev', got: '{word}'?")
    opts = LoadOptions(kernel=k, prog_type=prog_type, expected_attach_type=attach_type, pin_maps=pinmaps)
    if not os.path.exists(obj):
        raise CliError(f"failed to open object file: {os.strerror(errno.ENOENT)}")
    coll = load(obj, opts)
    try:
        if not coll.programs:
            raise CliError("object file doesn't contain any bpf program")
        if all_progs:
            for name, p in coll.programs.items():
                target = os.path.join(path, name)
                k.pin(p.kernel_program, target)
        else:
            first = next(iter(coll.programs.values()))
            try:
                k.pin(first.kernel_program, path)
            except BpfError as e:
                raise CliError(f"failed to pin program {first.name}: {os.strerror(e.errno or 1)}") from None
    finally:
        coll.close()
    if get_output().json:
        click.echo("null")


def _type_by_name(name: str) -> tuple[int, int]:
    """``libbpf_prog_type_by_name`` as bpftool's ``type T`` uses it: T as a section name, else
    ``T/``; otherwise libbpf's debug lines on stderr and exit status 255 (bpftool prints no
    ``Error:`` line for it)."""
    from pybpf.elf.sections import SECTION_DEFS, find_sec_def

    d = find_sec_def(name) or find_sec_def(name + "/")
    if d is None:
        click.echo(f"libbpf: failed to guess program type from ELF section '{name}/'", err=True)
        click.echo("libbpf: supported section(type) names are:" + "".join(" " + x.pattern for x in SECTION_DEFS),
                   err=True)
        raise click.exceptions.Exit(255)
    attach = d.expected_attach_type
    return int(d.prog_type), int(attach) if attach is not None else 0


@cli.command(context_settings=_CTX)
@click.argument("words", nargs=-1, type=click.UNPROCESSED)
def load(words: tuple[str, ...]) -> None:
    """Load OBJ's first program and pin it at PATH (maps pinned under pinmaps DIR)."""
    _load(words, all_progs=False)


@cli.command(context_settings=_CTX)
@click.argument("words", nargs=-1, type=click.UNPROCESSED)
def loadall(words: tuple[str, ...]) -> None:
    """Load every program of OBJ and pin them under the directory PATH."""
    _load(words, all_progs=True)


def _read_input(fname: str) -> bytes:
    if fname == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(fname).read_bytes()
    except OSError as e:
        raise CliError(f"failed to open {fname}: {e.strerror}") from None


def _hex_print(data: bytes) -> str:
    """bpftool's ``hex_print`` (an ``xxd``-like dump) for ``data_out -``."""
    lines = []
    for i in range(0, len(data), 16):
        row = data[i:i + 16]
        hexpart = "".join(f"{b:02x}" + (" " if (i + j) % 2 else "") for j, b in enumerate(row))
        for j in range(len(row), 16):
            hexpart += "  " + (" " if (i + j) % 2 else "")
        asc = "".join((chr(b) if 0x20 <= b <= 0x7E else ".") + (" " if j == 7 else "") for j, b in enumerate(row))
        lines.append(f"{i:07x}\t{hexpart}| {asc}")
    return "\n".join(lines) + ("\n" if lines else "")


def _is_object_file(word: str) -> bool:
    try:
        with open(word, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


@cli.command(context_settings=_CTX)
@click.option("--engine", type=click.Choice(ENGINES), default="interpreter", show_default=True,
              help="What runs the program.")
@click.argument("words", nargs=-1, type=click.UNPROCESSED)
def run(words: tuple[str, ...], engine: str) -> None:
    """Run PROG (or an object file's program) on data_in with BPF_PROG_TEST_RUN."""
    k = _kernel()
    args = Args(list(words))
    if len(args) < 2 and not (args and _is_object_file(args.peek() or "")):
        raise CliError(f"'prog run' needs at least 4 arguments, got {len(args)}")
    coll = None
    if args and not any(is_prefix(args.peek(), kw) for kw in ("id", "tag", "name", "pinned")) \
            and _is_object_file(args.peek() or ""):
        from pybpf.loader import LoadOptions, load

        obj = args.next()
        wanted = None
        if args.accept("name"):
            wanted = args.next()
        coll = load(obj, LoadOptions(kernel=k, programs=[wanted] if wanted else None, engine=engine))
        if not coll.programs:
            coll.close()
            raise CliError("object file doesn't contain any bpf program")
        prog = next(iter(coll.programs.values())).kernel_program
    else:
        prog = parse_prog(args, k)
    try:
        _run(k, prog, args, engine)
    finally:
        if coll is not None:
            coll.close()


def _run(k: Kernel, prog: Program, args: Args, engine: str) -> None:
    data_in_f = data_out_f = ctx_in_f = ctx_out_f = None
    data_size_out = ctx_size_out = 0
    repeat = 1
    while args:
        word = args.next()
        for group in (("data_in", "data_out", "data_size_out"), ("ctx_in", "ctx_out", "ctx_size_out")):
            hits = [kw for kw in group if is_prefix(word, kw)]
            if len(hits) > 1:
                raise CliError(f"parsing {word}, keyword is ambiguous and could be one of: {', '.join(hits)}")
        if is_prefix(word, "data_in"):
            data_in_f = args.next()
        elif is_prefix(word, "data_out"):
            data_out_f = args.next()
        elif is_prefix(word, "data_size_out"):
            data_size_out = _uint(args.next(), "output data size")
        elif is_prefix(word, "ctx_in"):
            ctx_in_f = args.next()
        elif is_prefix(word, "ctx_out"):
            ctx_out_f = args.next()
        elif is_prefix(word, "ctx_size_out"):
            ctx_size_out = _uint(args.next(), "output context size")
        elif is_prefix(word, "repeat"):
            repeat = _uint(args.next(), "repeat number")
        else:
            raise CliError("expected no more arguments, 'data_in', 'data_out', 'data_size_out', 'ctx_in', "
                           f"'ctx_out', 'ctx_size_out' or 'repeat', got: '{word}'?")
    data_in = _read_input(data_in_f) if data_in_f else b""
    ctx_in = _read_input(ctx_in_f) if ctx_in_f else None
    if data_in_f and not data_size_out:
        data_size_out = DEFAULT_OUT_SIZE
    if ctx_in_f and not ctx_size_out:
        ctx_size_out = DEFAULT_OUT_SIZE
    try:
        res = test_run(k, prog, data_in, ctx_in=ctx_in, repeat=repeat, engine=engine)
        err = output_errno(res, data_size_out if data_in_f else None, ctx_size_out if ctx_in_f else None)
    except BpfError as e:
        err = e.errno or errno.EINVAL
    except PybpfError as e:
        raise CliError(f"failed to run program: {e}") from None
    if err:
        # bpftool returns the syscall's -errno from do_run: that is its exit status
        get_output().error(f"failed to run program: {bpf_strerror(err)}")
        raise click.exceptions.Exit(-err & 0xFF)
    json = get_output().json
    w = _writer() if json else None
    if w is not None:
        w.start_object()
    if data_out_f and res.data_out:
        _print_output(w, res.data_out, data_out_f, "data_out")
    if ctx_out_f and ctx_in_f and res.ctx_out:
        _print_output(w, res.ctx_out, ctx_out_f, "ctx_out")
    if w is not None:
        w.field("retval", res.retval)
        w.field("duration", res.duration)
        w.end_object()
        w.flush()
    else:
        avg = " (average)" if repeat > 1 else ""
        click.echo(f"Return value: {res.retval}, duration{avg}: {res.duration}ns")



def _print_output(w: JsonWriter | None, data: bytes, fname: str, key: str) -> None:
    if fname == "-":
        if w is not None:
            w.field(key, hex_json(data))
        else:
            sys.stdout.write(_hex_print(data))
        return
    try:
        Path(fname).write_bytes(data)
    except OSError as e:
        raise CliError(f"failed to open {fname}: {e.strerror}") from None


def _uint(text: str, what: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise CliError(f"can't parse {text} as {what}") from None


@cli.command(context_settings=_CTX)
@click.option("--no-follow", is_flag=True, help="Print what is there and stop (pybpf extension).")
def tracelog(no_follow: bool) -> None:
    """Print bpf_trace_printk() output (the trace pipe), following it."""
    k = _kernel()
    pipe = k.trace
    json = get_output().json
    w = _writer() if json else None
    if w is not None:
        w.start_array()
    try:
        if no_follow:
            lines, _ = pipe.read_from(0)
            for line in lines:
                _trace_line(w, line)
        else:
            for line in pipe.follow():
                _trace_line(w, line)
    except KeyboardInterrupt:
        pass
    finally:
        if w is not None:
            w.end_array()
            w.flush()


def _trace_line(w: JsonWriter | None, line: str) -> None:
    if w is not None:
        w.value(line.rstrip("\n"))
    else:
        sys.stdout.write(line)
        sys.stdout.flush()
