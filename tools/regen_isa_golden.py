#!/usr/bin/env python3
"""Regenerate tests/data/isa/: what the real tools print, stored so the disassembler tests run anywhere.

usage: tools/regen_isa_golden.py [--linux DIR] [--only PART ...]

Parts (each needs the tools named; a part whose tools are missing is skipped with a note):

``kernel-random``  Linux 6.12's own printer: ``kernel/bpf/disasm.c`` from ``--linux`` compiled into a
                   small host program (gcc or clang) and fed 20,000 seeded random instruction pairs
                   (valid, odd and garbage) -> ``kernel_random.bin`` + ``kernel_random.txt``.
``llvm-random``    ``llvm-objdump-19 -d`` (and ``--mattr=+alu32``) of 4,000 seeded random slots placed in
                   an object by ``llvm-mc-19`` -> ``llvm_random.bin`` + ``llvm_random[.alu32].objdump.txt``.
``objects``        the seed demo's three programs and every bench program compiled by ``clang-19 -O2 -g -mcpu=v1..v4``:
                   each object's executable sections (bytes, symbols, relocations) as JSON plus
                   ``llvm-objdump-19 -d -r`` -> ``objects/NAME_vN.{json,objdump.txt}``.
``verifier-log``   each ``kernel_progs/*.s`` assembled and loaded into the live kernel (BPF_PROG_LOAD,
                   socket filter, log_level 2) -> ``kernel_progs/NAME.log`` (needs root).
``xlated``         the seed demo and bench programs loaded by ``bpftool prog load`` and dumped with
                   ``bpftool prog dump xlated`` (text, ``opcodes``, raw ``file``) plus the names bpftool
                   resolved for call immediates through /proc/kallsyms -> ``xlated/NAME.*`` (needs root).

The live kernel is 6.18 and bpftool is Debian's 7.1; the tests document where their output and
Linux 6.12's differ.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import random
import re
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from pybpf.isa import OPCODES  # noqa: E402
from pybpf.isa.asm import assemble  # noqa: E402

OUT = ROOT / "tests" / "data" / "isa"
CLANG, MC, OBJDUMP = "clang-19", "llvm-mc-19", "llvm-objdump-19"
CPUS = ("v1", "v2", "v3", "v4")
RELOC_NAMES = {0: "R_BPF_NONE", 1: "R_BPF_64_64", 2: "R_BPF_64_ABS64", 3: "R_BPF_64_ABS32",
               4: "R_BPF_64_NODYLD32", 10: "R_BPF_64_32"}


def sources(*, loadable: bool = False) -> list[Path]:
    """The seed demo's programs and the bench programs; ``loadable``: only those the kernel accepts
    as they are (demo_invalid is meant to be rejected; demo_legacy uses iproute2's map section,
    which libbpf 1.x no longer loads)."""
    seed = ROOT / "examples" / "seed-demo"
    demos = [seed / "demo.c"] if loadable else sorted(seed.glob("*.c"))
    return [*demos, *sorted((ROOT / "bench" / "progs").glob("*.c"))]


def have(*tools: str) -> bool:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        print(f"  skipped: {', '.join(missing)} not found")
    return not missing


def run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(cmd, check=True, capture_output=True, **kw)  # type: ignore[call-overload]


def compile_c(src: Path, out: Path, cpu: str = "v3") -> None:
    inc = "/usr/include/" + os.uname().machine + "-linux-gnu"
    run([CLANG, "-O2", "-g", "-target", "bpf", f"-mcpu={cpu}", "-I", inc, "-c", str(src), "-o", str(out)])


# -- kernel-random -----------------------------------------------------------------------------------

_HARNESS = r"""
#include <linux/bpf.h>
#include <stdarg.h>
#include "disasm.h"
static void pr(void *p, const char *fmt, ...) { va_list a; va_start(a, fmt); vprintf(fmt, a); va_end(a); }
int main(void) {
  struct bpf_insn buf[2];
  const struct bpf_insn_cbs cbs = { .cb_print = pr };
  while (fread(buf, 1, sizeof(buf), stdin) == sizeof(buf)) { print_bpf_insn(&cbs, buf, true); fflush(stdout); }
  return 0;
}
"""
_KERNEL_H = """#include <stdio.h>
#include <string.h>
#include <stdbool.h>
#include <stddef.h>
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define BUILD_BUG_ON(x)
#define __printf(a, b) __attribute__((format(printf, a, b)))
typedef unsigned long long u64; typedef unsigned int u32; typedef unsigned short u16; typedef unsigned char u8;
typedef int s32; typedef short s16;
"""


def random_pairs(seed: int, n: int) -> bytes:
    rng = random.Random(seed)
    codes = sorted(OPCODES)
    out = bytearray()
    for _ in range(n):
        code = rng.choice(codes) if rng.random() < 0.7 else rng.randrange(256)
        regs = rng.randrange(256) if rng.random() < 0.3 else rng.randrange(11) | rng.randrange(11) << 4
        off = rng.choice([0, 1, -1, 8, 16, 32, rng.randrange(-0x8000, 0x8000)])
        imm = rng.choice([0, 1, -1, 16, 32, 64, 0x40, 0x41, 0x50, 0x51, 0xA0, 0xA1, 0xE1, 0xF1, 0x10000,
                          rng.randrange(-(1 << 31), 1 << 31), rng.randrange(0, 220)])
        imm2 = rng.choice([0, 1, -1, rng.randrange(-(1 << 31), 1 << 31)])
        out += struct.pack("<BBhi", code, regs, off, imm) + struct.pack("<BBhi", 0, 0, 0, imm2)
    return bytes(out)


def part_kernel_random(linux: Path) -> None:
    cc = shutil.which("gcc") or shutil.which("clang-19") or shutil.which("cc")
    if cc is None or not (linux / "kernel" / "bpf" / "disasm.c").exists():
        print("  skipped: needs a host C compiler and the Linux source (--linux)")
        return
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        (tmp / "linux").mkdir()
        (tmp / "linux" / "kernel.h").write_text(_KERNEL_H)
        (tmp / "linux" / "stringify.h").write_text(
            "#define __stringify_1(x...) #x\n#define __stringify(x...) __stringify_1(x)\n")
        for h in ("bpf.h", "bpf_common.h"):
            shutil.copy(linux / "include" / "uapi" / "linux" / h, tmp / "linux" / h)
        for f in ("disasm.c", "disasm.h"):
            shutil.copy(linux / "kernel" / "bpf" / f, tmp / f)
        (tmp / "main.c").write_text(_HARNESS)
        inc = "/usr/include/" + os.uname().machine + "-linux-gnu"
        run([cc, "-O1", "-w", "-I", str(tmp), "-I", inc, "-o", str(tmp / "kdisasm"), str(tmp / "main.c"),
             str(tmp / "disasm.c")])
        data = random_pairs(6120, 20000)
        text = run([str(tmp / "kdisasm")], input=data).stdout.decode()
    (OUT / "kernel_random.bin").write_bytes(data)
    (OUT / "kernel_random.txt").write_text(text)
    print(f"  {len(data) // 16} instructions")


# -- llvm-random -------------------------------------------------------------------------------------

def random_slots(seed: int, n: int) -> bytes:
    rng = random.Random(seed)
    codes = sorted(OPCODES)
    out = bytearray()
    for _ in range(n):
        code = rng.choice(codes) if rng.random() < 0.8 else rng.randrange(256)
        dst = rng.choice([0, 1, 2, 9, 10, 11, 12, 15]) if rng.random() < 0.3 else rng.randrange(11)
        src = rng.choice([0, 1, 2, 3, 4, 5, 6, 9, 10, 11, 12, 15]) if rng.random() < 0.5 else 0
        off = rng.choice([0, 0, 0, 1, -1, 8, 16, 32, 2, -4, 0x7FFF, -0x8000, rng.randrange(-0x8000, 0x8000)])
        imm = rng.choice([0, 0, 1, -1, 16, 32, 64, 0x7FFFFFFF, -0x80000000, 0x10000, 0x100, 0x40, 0x41, 0x50,
                          0x51, 0xA0, 0xA1, 0xE1, 0xF1, rng.randrange(-(1 << 31), 1 << 31)])
        out += struct.pack("<BBhi", code, src << 4 | dst, off, imm)
        if code == 0x18:
            out += struct.pack("<BBhi", rng.choice([0, 0, 0, 1]), 0, 0,
                               rng.choice([0, 1, -1, rng.randrange(-(1 << 31), 1 << 31)]))
    return bytes(out)


def bytes_object(data: bytes, path: Path) -> None:
    src = path.with_suffix(".s")
    rows = "".join("  .byte " + ",".join(str(b) for b in data[i:i + 64]) + "\n" for i in range(0, len(data), 64))
    src.write_text(".text\n.globl f\nf:\n" + rows)
    run([MC, "-triple", "bpfel", "-filetype=obj", str(src), "-o", str(path)])


def part_llvm_random() -> None:
    if not have(MC, OBJDUMP):
        return
    data = random_slots(19, 4000)
    with tempfile.TemporaryDirectory() as d:
        obj = Path(d) / "r.o"
        bytes_object(data, obj)
        plain = run([OBJDUMP, "-d", str(obj)], cwd=d).stdout.decode()
        alu32 = run([OBJDUMP, "-d", "--mattr=+alu32", str(obj)], cwd=d).stdout.decode()
    (OUT / "llvm_random.bin").write_bytes(data)
    (OUT / "llvm_random.objdump.txt").write_text(plain.replace(str(obj), "r.o"))
    (OUT / "llvm_random.alu32.objdump.txt").write_text(alu32.replace(str(obj), "r.o"))
    print(f"  {len(data)} bytes")


# -- objects -----------------------------------------------------------------------------------------

def object_sections(path: Path) -> list[dict[str, object]]:
    """Executable sections of an ELF object as plain data (what the listing function takes)."""
    from elftools.elf.elffile import ELFFile
    from elftools.elf.relocation import RelocationSection

    with path.open("rb") as fh:
        elf = ELFFile(fh)
        symtab = elf.get_section_by_name(".symtab")
        out: list[dict[str, object]] = []
        for idx, sec in enumerate(elf.iter_sections()):
            if sec["sh_type"] != "SHT_PROGBITS" or not sec["sh_flags"] & 0x4:
                continue
            syms = [{"name": s.name, "offset": s["st_value"]} for s in symtab.iter_symbols()
                    if s["st_shndx"] == idx and s["st_info"]["type"] not in ("STT_SECTION", "STT_FILE")]
            relocs = []
            for rs in elf.iter_sections():
                if isinstance(rs, RelocationSection) and rs["sh_info"] == idx:
                    for r in rs.iter_relocations():
                        sym = symtab.get_symbol(r["r_info_sym"])
                        target = (elf.get_section(sym["st_shndx"]).name
                                  if sym["st_info"]["type"] == "STT_SECTION" else sym.name)
                        relocs.append({"offset": r["r_offset"], "type": RELOC_NAMES[r["r_info_type"]],
                                       "target": target})
            out.append({"name": sec.name, "data": sec.data().hex(), "symbols": syms, "relocs": relocs})
        return out


def part_objects() -> None:
    if not have(CLANG, OBJDUMP):
        return
    dest = OUT / "objects"
    dest.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as d:
        for src in sources():
            for cpu in CPUS:
                name = f"{src.stem}_{cpu}"
                obj = Path(d) / f"{name}.o"
                compile_c(src, obj, cpu)
                listing = run([OBJDUMP, "-d", "-r", obj.name], cwd=d).stdout.decode()
                (dest / f"{name}.json").write_text(json.dumps(
                    {"file": obj.name, "sections": object_sections(obj)}, indent=1) + "\n")
                (dest / f"{name}.objdump.txt").write_text(listing)
    print(f"  {len(sources()) * len(CPUS)} objects")


# -- verifier-log ------------------------------------------------------------------------------------

BPF_PROG_LOAD = 5
SYS_BPF = {"x86_64": 321, "aarch64": 280}.get(os.uname().machine, 321)


def prog_load_log(code: bytes, prog_type: int = 1, log_level: int = 2) -> tuple[int, str]:
    """BPF_PROG_LOAD through the raw syscall; returns (fd or -errno, verifier log)."""
    libc = ctypes.CDLL(None, use_errno=True)
    insns = ctypes.create_string_buffer(code, len(code))
    lic = ctypes.create_string_buffer(b"GPL")
    log = ctypes.create_string_buffer(1 << 20)
    attr = ctypes.create_string_buffer(144)
    struct.pack_into("<IIQQIIQ", attr, 0, prog_type, len(code) // 8, ctypes.addressof(insns),
                     ctypes.addressof(lic), log_level, len(log), ctypes.addressof(log))
    fd = libc.syscall(SYS_BPF, BPF_PROG_LOAD, attr, len(attr))
    if fd < 0:
        return -ctypes.get_errno(), log.value.decode()
    os.close(fd)
    return fd, log.value.decode()


def part_verifier_log() -> None:
    if os.geteuid() != 0:
        print("  skipped: needs root for bpf(2)")
        return
    for src in sorted((OUT / "kernel_progs").glob("*.s")):
        code = assemble(src.read_text()).encode()
        fd, log = prog_load_log(code)
        if fd < 0:
            raise SystemExit(f"{src.name}: the kernel refused it ({fd}):\n{log}")
        src.with_suffix(".log").write_text(log)
        print(f"  {src.name}: {len(log.splitlines())} log lines")


# -- xlated ------------------------------------------------------------------------------------------

def kallsyms() -> tuple[int, dict[int, str]]:
    base, names = 0, {}
    for line in Path("/proc/kallsyms").read_text().splitlines():
        parts = line.split()
        addr = int(parts[0], 16)
        if parts[2] == "__bpf_call_base":
            base = addr
        names.setdefault(addr, parts[2])
    return base, names


def part_xlated() -> None:
    if os.geteuid() != 0 or not have("bpftool", CLANG):
        return
    dest = OUT / "xlated"
    dest.mkdir(exist_ok=True)
    base, names = kallsyms()
    with tempfile.TemporaryDirectory() as d:
        for src in sources(loadable=True):
            obj = Path(d) / f"{src.stem}.o"
            compile_c(src, obj)
            pin = f"/sys/fs/bpf/pybpf_isa_golden_{src.stem}"
            try:
                run(["bpftool", "prog", "load", str(obj), pin])
                text = run(["bpftool", "prog", "dump", "xlated", "pinned", pin]).stdout.decode()
                opcodes = run(["bpftool", "prog", "dump", "xlated", "pinned", pin, "opcodes"]).stdout.decode()
                raw = Path(d) / "x.bin"
                run(["bpftool", "prog", "dump", "xlated", "pinned", pin, "file", str(raw)])
                data = raw.read_bytes()
            finally:
                if os.path.exists(pin):
                    os.unlink(pin)
            # bpftool names helper / kfunc / internal calls through /proc/kallsyms (imm = address -
            # __bpf_call_base) and JITed subprograms through the program's jited_ksyms (imm = the
            # subprogram's index after the JIT); the latter are read back from its own text.
            helpers: dict[str, str] = {}
            subprogs: dict[str, str] = {}
            for i in range(0, len(data), 8):
                code, regs, _off, imm = struct.unpack_from("<BBhi", data, i)
                if code == 0x85 and regs >> 4 == 1:
                    m = re.search(rf"^ *{i // 8}: \(85\) call pc[+-]\d+#(\S+)$", text, re.M)
                    if m:
                        subprogs[str(imm)] = m.group(1)
                elif code == 0x85:
                    helpers[str(imm)] = names.get(base + imm, f"{base + imm:#x}")
            calls = {"helpers": helpers, "subprogs": subprogs}
            (dest / f"{src.stem}.bin").write_bytes(data)
            (dest / f"{src.stem}.txt").write_text(text)
            (dest / f"{src.stem}.opcodes.txt").write_text(opcodes)
            (dest / f"{src.stem}.calls.json").write_text(json.dumps(calls, indent=1, sort_keys=True) + "\n")
            print(f"  {src.stem}: {len(data) // 8} slots")


PARTS = {
    "kernel-random": lambda a: part_kernel_random(Path(a.linux)),
    "llvm-random": lambda a: part_llvm_random(),
    "objects": lambda a: part_objects(),
    "verifier-log": lambda a: part_verifier_log(),
    "xlated": lambda a: part_xlated(),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--linux", default="/work/ref/linux-source-6.12", help="Linux 6.12 source tree")
    ap.add_argument("--only", nargs="*", choices=sorted(PARTS), help="regenerate only these parts")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    for name in args.only or PARTS:
        print(f"{name}:")
        PARTS[name](args)


if __name__ == "__main__":
    main()
