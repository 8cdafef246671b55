"""C → BPF object: clang when it is installed, else the clang inside the ``ziglang`` wheel.

Two drivers, one result:

* **clang** (>= 14; ``clang-19`` preferred, then ``clang``, then other ``clang-NN`` on PATH):
  ``clang -target bpf -c``. System headers are used when present; pybpf's headers are added with
  ``-idirafter`` so they only fill gaps (``<bpf/bpf_helpers.h>`` on a machine without libbpf-dev),
  and the Debian/Ubuntu multiarch directory (``/usr/include/x86_64-linux-gnu``) is added the same
  way because ``-target bpf`` does not search it and ``<linux/types.h>`` needs its ``<asm/types.h>``.
* **zig** (``python -m ziglang cc -target bpfel-freestanding-none``): a freestanding target, so no
  system headers at all — pybpf's own headers are the whole world. zig's clang defaults differ from
  clang's: it emits ``.eh_frame`` unwind tables (turned off with ``-fno-unwind-tables
  -fno-asynchronous-unwind-tables``), defaults to ``-mcpu=v3`` and implies ``-fno-builtin``
  (``__builtin_memcpy`` still works). ``-g`` produces ``.BTF``/``.BTF.ext`` as with clang.

``headers="bundled"`` makes clang ignore the system's headers too (``-nostdlibinc``),
which is how the tests prove pybpf's headers are complete on a machine that has others.
Failures raise :class:`~pybpf.errors.ToolchainError` carrying the compiler's output.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pybpf.errors import ToolchainError

__all__ = ["INCLUDE_DIR", "Compiler", "compile", "compile_source", "find_compiler"]

INCLUDE_DIR = Path(__file__).resolve().parent / "include"
"""pybpf's shipped headers (``bpf/bpf_helpers.h``, ``linux/bpf.h``, ...)."""

MIN_CLANG = 14
_CLANG_NAMES = ("clang-19", "clang", *(f"clang-{v}" for v in range(30, MIN_CLANG - 1, -1) if v != 19))

CompilerKind = Literal["clang", "zig"]
HeaderMode = Literal["auto", "bundled"]


@dataclass(frozen=True, slots=True)
class Compiler:
    """A usable BPF C compiler: ``kind``, the command prefix, and its clang version string."""

    kind: CompilerKind
    command: tuple[str, ...]
    version: str

    def describe(self) -> str:
        """For ``pybpf cc -v``: which compiler, how it is run, its clang version."""
        return f"{self.kind} ({' '.join(self.command)}; clang {self.version})"


def _clang_version(exe: str) -> tuple[int, str] | None:
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"clang version (\d+)\.(\d+)\.(\d+)", out)
    if not m:
        return None
    return int(m.group(1)), ".".join(m.groups())


def _find_clang() -> Compiler | None:
    for name in _CLANG_NAMES:
        exe = shutil.which(name)
        if not exe:
            continue
        ver = _clang_version(exe)
        if ver and ver[0] >= MIN_CLANG:
            return Compiler("clang", (exe,), ver[1])
    return None


def _find_zig() -> Compiler | None:
    if importlib.util.find_spec("ziglang") is None:
        return None
    cmd = (sys.executable, "-m", "ziglang", "cc")
    ver = _clang_version_cmd([*cmd, "--version"])
    return Compiler("zig", cmd, ver or "unknown")


def _clang_version_cmd(argv: list[str]) -> str | None:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"clang version (\d+\.\d+\.\d+)", out)
    return m.group(1) if m else None


def find_compiler(prefer: CompilerKind | None = None) -> Compiler:
    """The compiler to use: ``prefer`` if given (error if unavailable), else clang, else zig."""
    if prefer == "zig":
        found = _find_zig()
        if found is None:
            raise ToolchainError("the ziglang package is not installed (pip install ziglang)")
        return found
    clang = _find_clang()
    if clang is not None or prefer == "clang":
        if clang is None:
            raise ToolchainError(f"no clang >= {MIN_CLANG} on PATH")
        return clang
    zig = _find_zig()
    if zig is None:
        raise ToolchainError(f"no BPF C compiler: install clang >= {MIN_CLANG} or the ziglang package")
    return zig


def _multiarch_dirs() -> list[str]:
    """Debian/Ubuntu keep ``asm/*.h`` in ``/usr/include/<triple>``; ``-target bpf`` skips it."""
    triple = {"x86_64": "x86_64-linux-gnu", "aarch64": "aarch64-linux-gnu", "arm64": "aarch64-linux-gnu"}.get(
        os.uname().machine, f"{os.uname().machine}-linux-gnu"
    )
    d = Path("/usr/include") / triple
    return [str(d)] if d.is_dir() else []


def build_argv(
    compiler: Compiler,
    source: str,
    output: str,
    *,
    opt: str = "-O2",
    debug: bool = True,
    mcpu: str | None = None,
    include_dirs: Sequence[str] = (),
    defines: Sequence[str] = (),
    extra_args: Sequence[str] = (),
    headers: HeaderMode = "auto",
) -> list[str]:
    """The full command line for one compilation (exposed for ``pybpf cc -v`` and the tests)."""
    argv = list(compiler.command)
    if compiler.kind == "zig":
        argv += ["-target", "bpfel-freestanding-none", "-fno-unwind-tables", "-fno-asynchronous-unwind-tables"]
    else:
        argv += ["-target", "bpf"]
        if headers == "bundled":
            argv += ["-nostdlibinc"]
    if opt:
        argv.append(opt)
    if debug:
        argv.append("-g")
    if mcpu:
        argv.append(f"-mcpu={mcpu}")
    for d in include_dirs:
        argv.append(f"-I{d}")
    for d in defines:
        argv.append(f"-D{d}")
    if compiler.kind == "clang" and headers == "auto":
        for d in _multiarch_dirs():
            argv += ["-idirafter", d]
    argv += ["-idirafter", str(INCLUDE_DIR)]
    argv += list(extra_args)
    argv += ["-c", source, "-o", output]
    return argv


def compile(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str] | None = None,
    *,
    opt: str = "-O2",
    debug: bool = True,
    mcpu: str | None = None,
    include_dirs: Sequence[str | os.PathLike[str]] = (),
    defines: Sequence[str] = (),
    extra_args: Sequence[str] = (),
    compiler: CompilerKind | Compiler | None = None,
    headers: HeaderMode = "auto",
    timeout: float = 300,
) -> Path:
    """Compile one C file to a BPF ELF object; returns the object's path.

    ``output`` defaults to the source with ``.o``; ``debug`` adds ``-g`` (BTF and line info);
    ``mcpu`` is ``v1``..``v4`` (compiler default if ``None``); ``defines`` are ``NAME`` or
    ``NAME=VALUE``; ``compiler`` is ``"clang"``, ``"zig"``, a :class:`Compiler`, or ``None``
    for the first available.
    """
    src = Path(source)
    if not src.is_file():
        raise ToolchainError(f"no such source file: {src}", path=str(src))
    out = Path(output) if output is not None else src.with_suffix(".o")
    comp = compiler if isinstance(compiler, Compiler) else find_compiler(compiler)
    argv = build_argv(
        comp,
        str(src),
        str(out),
        opt=opt,
        debug=debug,
        mcpu=mcpu,
        include_dirs=[str(d) for d in include_dirs],
        defines=defines,
        extra_args=extra_args,
        headers=headers,
    )
    env = dict(os.environ)
    if comp.kind == "zig":
        # zig keeps a cache; make sure it is writable even when $HOME is not
        env.setdefault("ZIG_GLOBAL_CACHE_DIR", str(Path(tempfile.gettempdir()) / "pybpf-zig-cache"))
        env.setdefault("ZIG_LOCAL_CACHE_DIR", env["ZIG_GLOBAL_CACHE_DIR"])
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    except subprocess.TimeoutExpired:
        raise ToolchainError(f"{comp.kind} timed out after {timeout:g} s", path=str(src)) from None
    except OSError as e:
        raise ToolchainError(f"cannot run {argv[0]}: {e.strerror}", path=str(src)) from None
    if proc.returncode != 0:
        output_text = (proc.stderr or "") + (proc.stdout or "")
        first = next((ln for ln in output_text.splitlines() if "error" in ln), output_text.strip()[:200])
        raise ToolchainError(f"{comp.kind} failed (exit {proc.returncode}): {first}", output=output_text, path=str(src))
    if not out.is_file():
        raise ToolchainError(f"{comp.kind} reported success but wrote no {out}", output=proc.stderr, path=str(src))
    return out


def compile_source(code: str, output: str | os.PathLike[str], **kwargs: object) -> Path:
    """Compile C source text (written to a temporary ``.c`` file) to ``output``."""
    with tempfile.TemporaryDirectory(prefix="pybpf-cc-") as tmp:
        src = Path(tmp) / "prog.c"
        src.write_text(code)
        return compile(src, output, **kwargs)  # type: ignore[arg-type]
