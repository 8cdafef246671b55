#!/usr/bin/env python3
"""Rebuild the test objects in tests/data/objects/ from their C sources, and their reference outputs.

usage: tools/build_testdata.py [--compiler clang|zig] [--only NAME ...]

For every ``NAME.c`` it writes ``NAME.o`` with ``pybpf.toolchain.compile`` (``-O2 -g -mcpu=v3``,
compiled from inside the directory with ``-ffile-prefix-map=DIR=.``, so the file names recorded in
BTF line info do not depend on where the checkout lives). Then, where the tools exist, reference outputs
the tests compare against, so those tests run on machines without the tools:

The seed demo (examples/seed-demo/demo.c and demo_legacy.c) is built with both clang and zig into
``seed/{demo,demo_legacy}_{clang,zig}.o`` (compiler defaults, as the seed material builds it).

* ``NAME.bpftool-raw.txt`` — ``bpftool btf dump file NAME.o`` (the installed bpftool);
* ``NAME.bpftool-c.h`` — ``bpftool btf dump file NAME.o format c`` (bpftool 7.1 prints types
  unsorted, without the ``__ksym``/``__weak`` and kfunc blocks bpftool 7.5 adds);
* ``NAME.sorted-c.h`` — the C dump in bpftool 7.5's sorted order, when ``$PYBPF_SORTED_BTF_DUMP``
  names a program that prints it for ``PROG FILE`` (e.g. bpftool's ``dump_btf_c`` with its
  ``sort_btf_c`` built against a libbpf without bpftool's CLI);
* ``NAME.libbpf.json`` — the instruction streams libbpf itself produces after relocation
  (``bpf_program__insns``), when ``$PYBPF_LIBBPF_DUMP`` names a program that, run as
  ``DUMP load OBJ`` (really creates the maps, as root) or ``DUMP gen OBJ`` (libbpf's loader-generation
  mode: no kernel, maps referenced by index), prints
  ``{"mode", "load_error", "maps": [names], "fds": [fds], "progs": {name: hex}}``. The load mode is
  kept when it succeeds, else the gen mode. Such a program links against libbpf and is not part of
  this repository; see tests/data/objects/README.md.

Objects whose libbpf reference exists are compared instruction for instruction by
tests/elf/test_libbpf_equivalence.py.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from pybpf.toolchain import compile  # noqa: E402

DATA = ROOT / "tests/data/objects"
FLAGS = {"opt": "-O2", "debug": True, "mcpu": "v3"}


def build(name: str, compiler: str | None) -> Path:
    cwd = os.getcwd()
    os.chdir(DATA)
    try:
        return DATA / compile(
            f"{name}.c",
            f"{name}.o",
            compiler=compiler,
            extra_args=[f"-ffile-prefix-map={DATA}=."],
            **FLAGS,  # type: ignore[arg-type]
        )
    finally:
        os.chdir(cwd)


def build_seed() -> None:
    """The seed demo in both forms with both compilers (tests/data/objects/seed/), where available."""
    seed = ROOT / "examples/seed-demo"
    out = DATA / "seed"
    out.mkdir(exist_ok=True)
    cwd = os.getcwd()
    os.chdir(seed)
    try:
        for compiler in ("clang", "zig"):
            for name in ("demo", "demo_legacy"):
                try:
                    compile(
                        f"{name}.c",
                        out / f"{name}_{compiler}.o",
                        compiler=compiler,
                        opt="-O2",  # type: ignore[arg-type]
                        debug=True,
                        extra_args=[f"-ffile-prefix-map={seed}=."],
                    )
                except Exception as e:  # a missing compiler: keep what is committed
                    print(f"  seed {name} with {compiler}: {e}")
                    continue
                print(f"built {(out / f'{name}_{compiler}.o').relative_to(ROOT)}")
    finally:
        os.chdir(cwd)


def references(obj: Path) -> None:
    name = obj.stem
    bpftool = shutil.which("bpftool")
    if bpftool:
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
    if sorter:
        r = subprocess.run([sorter, obj.name], cwd=DATA, capture_output=True, text=True, check=False)
        if r.returncode == 0:
            (DATA / f"{name}.sorted-c.h").write_text(r.stdout)
    dumper = os.environ.get("PYBPF_LIBBPF_DUMP")
    if not dumper:
        return
    for mode in ("load", "gen"):
        r = subprocess.run([dumper, mode, obj.name], cwd=DATA, capture_output=True, text=True, check=False)
        try:
            ref = json.loads(r.stdout)
        except json.JSONDecodeError:
            print(f"  libbpf reference for {name}: none ({r.stderr.strip()[:200]})")
            return
        if ref.get("load_error") == 0 or mode == "gen":
            (DATA / f"{name}.libbpf.json").write_text(json.dumps(ref, indent=1, sort_keys=True) + "\n")
            return


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--compiler", choices=("clang", "zig"))
    ap.add_argument("--only", nargs="*")
    args = ap.parse_args()
    names = args.only or sorted(p.stem for p in DATA.glob("*.c"))
    if not args.only:
        build_seed()
    for name in names:
        obj = build(name, args.compiler)
        references(obj)
        print(f"built {obj.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
