#!/usr/bin/env python3
"""Rebuild the test objects in tests/data/objects/ from their C sources, and their reference outputs.

usage: tools/build_testdata.py [--compiler clang|zig] [--only NAME ...] [--no-examples]

For every ``NAME.c`` it writes ``NAME.o`` with ``pybpf.toolchain.compile`` (``-O2 -g -mcpu=v3``,
compiled from inside the directory with ``-ffile-prefix-map=DIR=.``, so the file names recorded in
BTF line info do not depend on where the checkout lives). Unless ``--only`` or ``--no-examples`` is
given it also builds, with both clang and zig (compiler defaults, ``-O2 -g``, as ``pybpf cc`` does):

* ``seed/{demo,demo_legacy}_{clang,zig}.o`` — the seed demo (examples/seed-demo/);
* ``bench/NAME_{clang,zig}.o`` — the six benchmark programs (bench/progs/).

Then, where the tools exist, the reference outputs the tests compare against, so those tests run on
machines without the tools:

* ``NAME.bpftool-raw.txt`` — ``bpftool btf dump file NAME.o`` (the installed bpftool);
* ``NAME.bpftool-c.h`` — ``bpftool btf dump file NAME.o format c`` (bpftool 7.1 prints types
  unsorted, without the ``__ksym``/``__weak`` and kfunc blocks bpftool 7.5 adds);
* ``NAME.sorted-c.h`` — the C dump in bpftool 7.5's sorted order, when ``$PYBPF_SORTED_BTF_DUMP``
  names a program that prints it for ``PROG FILE`` (e.g. bpftool's ``dump_btf_c`` with its
  ``sort_btf_c`` built against a libbpf without bpftool's CLI);
* ``NAME.libbpf.json`` — what libbpf hands to bpf(2) for every program: ``tools/libbpf_dump.c``
  (built here with ``cc`` against the system's libbpf, or ``$PYBPF_LIBBPF_DUMP``) run as
  ``each`` (as root: the ``BPF_PROG_LOAD`` input captured at the system call, one program at a
  time) and, for programs that never reach bpf(2) that way, as ``gen`` (libbpf's
  loader-generation mode, no kernel). The file is ``{"libbpf": version, "progs": {name:
  {"source": "bpf(2)"|"gen", "insns": hex, "maps": {"slot": map name}}}}``, and for programs
  captured at bpf(2) also ``btf_sha256`` (of the ``BPF_BTF_LOAD`` blob the program was loaded
  with), ``func_info`` and ``line_info`` (the records, hex); objects libbpf cannot open (the
  legacy ``maps`` section) get none.

Objects with a libbpf reference are compared instruction for instruction by
tests/elf/test_libbpf_equivalence.py.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from pybpf.errors import ToolchainError  # noqa: E402
from pybpf.toolchain import compile  # noqa: E402

DATA = ROOT / "tests/data/objects"
FLAGS = {"opt": "-O2", "debug": True, "mcpu": "v3"}
EXAMPLES = (  # (output directory, source directory, source stems)
    ("seed", ROOT / "examples/seed-demo", ("demo", "demo_legacy")),
    ("bench", ROOT / "bench/progs", tuple(sorted(p.stem for p in (ROOT / "bench/progs").glob("*.c")))),
)


def build(name: str, compiler: str | None) -> Path:
    cwd = os.getcwd()
    os.chdir(DATA)
    try:
        return DATA / compile(
            f"{name}.c",
            f"{name}.o",
            compiler=compiler,  # type: ignore[arg-type]
            extra_args=[f"-ffile-prefix-map={DATA}=."],
            **FLAGS,  # type: ignore[arg-type]
        )
    finally:
        os.chdir(cwd)


def build_examples() -> list[Path]:
    """The seed demo and the bench programs with both compilers, where available."""
    built = []
    for subdir, src_dir, stems in EXAMPLES:
        out = DATA / subdir
        out.mkdir(exist_ok=True)
        cwd = os.getcwd()
        os.chdir(src_dir)
        try:
            for compiler in ("clang", "zig"):
                for stem in stems:
                    obj = out / f"{stem}_{compiler}.o"
                    try:
                        compile(
                            f"{stem}.c",
                            obj,
                            compiler=compiler,  # type: ignore[arg-type]
                            opt="-O2",
                            debug=True,
                            extra_args=[f"-ffile-prefix-map={src_dir}=."],
                        )
                    except ToolchainError as e:  # a missing compiler: keep what is committed
                        print(f"  {subdir}/{stem} with {compiler}: {e}")
                        continue
                    print(f"built {obj.relative_to(ROOT)}")
                    built.append(obj)
        finally:
            os.chdir(cwd)
    return built


def build_libbpf_dump(out_dir: Path) -> Path | None:
    """tools/libbpf_dump.c built against the system's libbpf into ``out_dir``, or ``None`` where
    there is no C compiler or no libbpf-dev (also used by tests/elf/test_libbpf_live.py)."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None or not Path("/usr/include/bpf/libbpf.h").is_file():
        return None
    exe = out_dir / "libbpf_dump"
    r = subprocess.run(
        [cc, "-O2", "-Wall", "-rdynamic", "-o", str(exe), str(ROOT / "tools/libbpf_dump.c"), "-lbpf", "-ldl"],
        capture_output=True,
        text=True,
        check=False,
    )
    if r.returncode != 0:
        print(f"  cannot build tools/libbpf_dump.c: {r.stderr.strip()[:300]}")
        return None
    return exe


def libbpf_dumper(tmp: Path) -> str | None:
    """``$PYBPF_LIBBPF_DUMP``, or tools/libbpf_dump.c built here."""
    if os.environ.get("PYBPF_LIBBPF_DUMP"):
        return os.environ["PYBPF_LIBBPF_DUMP"]
    exe = build_libbpf_dump(tmp)
    return str(exe) if exe is not None else None


def libbpf_reference(obj: Path, dumper: str) -> dict | None:
    """What libbpf hands to bpf(2) for each program of ``obj`` (see the module docstring)."""
    runs = {}
    for mode in ("each", "gen") if os.geteuid() == 0 else ("gen",):
        r = subprocess.run([dumper, mode, obj.name], cwd=obj.parent, capture_output=True, text=True, check=False)
        if r.returncode != 0:
            print(f"  libbpf {mode} for {obj.name}: exit {r.returncode} ({r.stderr.strip()[-200:]})")
            continue
        try:
            runs[mode] = json.loads(r.stdout)
        except json.JSONDecodeError:
            print(f"  libbpf {mode} for {obj.name}: no output ({r.stderr.strip()[:200]})")
    progs: dict[str, dict] = {}
    version = ""
    for mode, source in (("each", "bpf(2)"), ("gen", "gen")):
        run = runs.get(mode)
        if run is None or run["open_error"]:
            continue
        version = version or run["libbpf"]
        for name, p in run["progs"].items():
            if name not in progs and p["insns"] is not None:
                progs[name] = {"source": source, "insns": p["insns"], "maps": p["maps"]}
                if "btf" in p:  # what came with the instructions: the BTF blob and BTF.ext records
                    progs[name]["btf_sha256"] = hashlib.sha256(bytes.fromhex(p["btf"])).hexdigest()
                    progs[name]["func_info"] = p["func_info"] if p["func_info_rec_size"] == 8 else None
                    progs[name]["line_info"] = p["line_info"] if p["line_info_rec_size"] == 16 else None
    if not progs:
        return None
    return {"libbpf": version.lstrip("v"), "progs": dict(sorted(progs.items()))}


def references(obj: Path, dumper: str | None) -> None:
    name = obj.stem
    bpftool = shutil.which("bpftool")
    if bpftool and obj.parent == DATA:
        for suffix, extra in (("bpftool-raw.txt", []), ("bpftool-c.h", ["format", "c"])):
            r = subprocess.run(
                [bpftool, "btf", "dump", "file", obj.name, *extra],
                cwd=DATA,
                capture_output=True,
                text=True,
                check=False,
            )
            if r.returncode == 0:
                (DATA / f"{name}.{suffix}").write_text(r.stdout)
    sorter = os.environ.get("PYBPF_SORTED_BTF_DUMP")
    if sorter and obj.parent == DATA:
        r = subprocess.run([sorter, obj.name], cwd=DATA, capture_output=True, text=True, check=False)
        if r.returncode == 0:
            (DATA / f"{name}.sorted-c.h").write_text(r.stdout)
    if dumper is None:
        return
    ref = libbpf_reference(obj, dumper)
    target = obj.with_name(f"{name}.libbpf.json")
    if ref is None:
        print(f"  libbpf reference for {obj.relative_to(ROOT)}: none (libbpf refuses the object before relocating it)")
        target.unlink(missing_ok=True)
        return
    target.write_text(json.dumps(ref, indent=1, sort_keys=True) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--compiler", choices=("clang", "zig"))
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--no-examples", action="store_true", help="skip the seed demo and the bench programs")
    args = ap.parse_args()
    names = args.only or sorted(p.stem for p in DATA.glob("*.c"))
    objects = [] if args.only or args.no_examples else build_examples()
    for name in names:
        obj = build(name, args.compiler)
        print(f"built {obj.relative_to(ROOT)}")
        objects.append(obj)
    with tempfile.TemporaryDirectory(prefix="pybpf-testdata-") as tmp:
        dumper = libbpf_dumper(Path(tmp))
        for obj in objects:
            references(obj, dumper)


if __name__ == "__main__":
    main()
