"""The LLVM dialect: ``llvm-objdump -d [-r]`` of LLVM 19, character for character.

Oracles stored by tools/regen_isa_golden.py (so these tests need no LLVM):

* ``llvm_random.*``: 4,000 seeded random slots (80% table opcodes with odd fields, 20% any byte)
  placed in an object and listed by llvm-objdump-19, plain and ``--mattr=+alu32``: LLVM's decoder
  rules (which fields must be zero, r11, the 32-bit subregister forms), ``<unknown>``, ``...`` zero
  runs and misaligned restarts, branch annotations with wrapped addresses;
* ``objects/*``: the seed demo and the six bench programs compiled with ``-mcpu=v1..v4``, their
  executable sections as plain data, and ``llvm-objdump -d -r`` of each.

Live variants (``toolchain``) compile and disassemble again when clang-19 / llvm-objdump-19 exist.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pybpf.isa import Insn
from pybpf.isa.disasm import (
    ObjdumpReloc,
    ObjdumpSection,
    ObjdumpSymbol,
    llvm_decode,
    llvm_insn_text,
    objdump_listing,
)

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "isa"
SEED = ROOT / "examples" / "seed-demo"
OBJECTS = sorted(p.name[: -len(".json")] for p in (DATA / "objects").glob("*.json"))


@pytest.mark.parametrize(
    ("insn", "text"),
    [
        (Insn(0xB7, 1, 0, 0, 0), "r1 = 0x0"),
        (Insn(0x63, 10, 1, -4, 0), "*(u32 *)(r10 - 0x4) = r1"),
        (Insn(0xB4, 1, 0, 0, 1), "w1 = 0x1"),
        (Insn(0x85, 0, 0, 0, 1), "call 0x1"),
        (Insn(0x18, 1, 0, 0, 0), "r1 = 0x0 ll"),
        (Insn(0x18, 1, 0, 0, -1), "r1 = -0x1 ll"),
        (Insn(0x18, 1, 1, 0, 5), "ld_pseudo\tr1, 0x1, 0x5"),
        (Insn(0x15, 0, 0, 2, 0), "if r0 == 0x0 goto +0x2"),
        (Insn(0xC3, 0, 1, 0, 0), "lock *(u32 *)(r0 + 0x0) += r1"),
        (Insn(0xDB, 1, 2, 8, 0x01), "r2 = atomic_fetch_add((u64 *)(r1 + 0x8), r2)"),
        (Insn(0xDB, 1, 2, 0, 0xE1), "r2 = xchg_64(r1 + 0x0, r2)"),
        (Insn(0xDB, 1, 2, 0, 0xF1), "r0 = cmpxchg_64(r1 + 0x0, r0, r2)"),
        (Insn(0x06, 0, 0, 0, -70000), "gotol -0x11170"),
        (Insn(0xE5, 0, 0, 3, 0), "may_goto +0x3"),
        (Insn(0xBC, 0, 1, 8, 0), "w0 = (s8)w1"),
        (Insn(0xBF, 0, 1, 32, 0), "r0 = (s32)r1"),
        (Insn(0x3F, 0, 1, 1, 0), "r0 s/= r1"),
        (Insn(0x97, 0, 0, 1, -7), "r0 s%= -0x7"),
        (Insn(0xD7, 2, 0, 0, 64), "r2 = bswap64 r2"),
        (Insn(0xDC, 2, 0, 0, 16), "r2 = be16 r2"),
        (Insn(0x87, 3), "r3 = -r3"),
        (Insn(0x30, 0, 0, 0, 12), "r0 = *(u8 *)skb[0xc]"),
        (Insn(0x50, 0, 7, 0, 0), "r0 = *(u8 *)skb[r7]"),
        (Insn(0x91, 1, 2, -1, 0), "r1 = *(s8 *)(r2 - 0x1)"),
        (Insn(0x7A, 10, 0, -16, -1), "*(u64 *)(r10 - 0x10) = -0x1"),
        (Insn(0xBF, 1, 2, 1, 0x10000), "r1 = addr_space_cast(r2, 0x1, 0x0)"),
        (Insn(0x8D, 3), "callx r3"),
        (Insn(0x95), "exit"),
        # LLVM's decoder refuses what its definitions fix, and ignores what they leave open
        (Insn(0xB7, 1, 0, 1, 1), "<unknown>"),
        (Insn(0x0F, 1, 2, 0, 7), "r1 += r2"),
        (Insn(0x95, 0, 0, 0, 1), "<unknown>"),
        (Insn(0xC3, 1, 2, 0, 0x40), "<unknown>"),  # 32-bit atomic or: only with alu32
    ],
)
def test_forms(insn: Insn, text: str) -> None:
    assert llvm_insn_text(insn) == text


def test_alu32_forms() -> None:
    assert llvm_insn_text(Insn(0x61, 1, 2, 0, 0), alu32=True) == "w1 = *(u32 *)(r2 + 0x0)"
    assert llvm_insn_text(Insn(0x63, 10, 1, -4, 0), alu32=True) == "*(u32 *)(r10 - 0x4) = w1"
    assert llvm_insn_text(Insn(0xC3, 1, 2, 0, 0x40), alu32=True) == "lock *(u32 *)(r1 + 0x0) |= w2"
    assert llvm_insn_text(Insn(0xC3, 1, 2, 0, 0xF1), alu32=True) == "w0 = cmpxchg32_32(r1 + 0x0, w0, w2)"
    assert llvm_insn_text(Insn(0x81, 1, 2, 0, 0), alu32=True) == "r1 = *(s32 *)(r2 + 0x0)"
    assert llvm_insn_text(Insn(0x79, 1, 2, 0, 0), alu32=True) == "r1 = *(u64 *)(r2 + 0x0)"


def test_decode_reports_size_and_branch() -> None:
    d = llvm_decode(Insn(0x18, 1, 0, 0, 1 << 40).encode())
    assert d is not None and (d.size, d.branch) == (16, None)
    j = llvm_decode(Insn(0x2D, 1, 2, -5, 0).encode())
    assert j is not None and (j.size, j.branch) == (8, -5)
    assert llvm_decode(b"\x18" + bytes(7)) is None  # lddw without its second half
    assert llvm_decode(b"\xb7\x01") is None


@pytest.mark.parametrize("variant", ["", ".alu32"])
def test_matches_llvm_objdump_on_random_slots(variant: str) -> None:
    data = (DATA / "llvm_random.bin").read_bytes()
    want = (DATA / f"llvm_random{variant}.objdump.txt").read_text()
    got = objdump_listing("r.o", [ObjdumpSection(".text", data, [ObjdumpSymbol("f", 0)])], relocs=False,
                          alu32=bool(variant))
    assert got.splitlines() == want.splitlines()
    assert got == want


def sections_from_json(name: str) -> tuple[str, list[ObjdumpSection]]:
    spec = json.loads((DATA / "objects" / f"{name}.json").read_text())
    secs = [ObjdumpSection(s["name"], bytes.fromhex(s["data"]), [ObjdumpSymbol(**y) for y in s["symbols"]],
                           [ObjdumpReloc(**r) for r in s["relocs"]]) for s in spec["sections"]]
    return spec["file"], secs


@pytest.mark.parametrize("name", OBJECTS)
def test_matches_llvm_objdump_on_compiled_objects(name: str) -> None:
    file, secs = sections_from_json(name)
    assert objdump_listing(file, secs) == (DATA / "objects" / f"{name}.objdump.txt").read_text()


def test_objects_cover_every_cpu_version() -> None:
    assert {n.rsplit("_", 1)[1] for n in OBJECTS} == {"v1", "v2", "v3", "v4"}
    assert len(OBJECTS) == 36  # 3 seed-demo programs + 6 bench programs, 4 CPU versions each


def test_seed_demo_objdump_exactly() -> None:
    """examples/seed-demo/demo.objdump.txt was made with clang's default CPU (v1 in LLVM 19)."""
    _, secs = sections_from_json("demo_v1")
    assert objdump_listing("demo.o", secs) == (SEED / "demo.objdump.txt").read_text()


def test_listing_details() -> None:
    """Dummy section symbol, last-of-equal-address symbol, wrapped branch targets, zero runs, relocs.

    The expected text is llvm-objdump-19's for the same bytes assembled by llvm-mc-19."""
    code = (Insn(0xB7, 0, 0, 0, 1).encode() + Insn(0x15, 0, 0, 1, 0).encode() + Insn(0x95).encode()
            + bytes(16) + Insn(0x05, 0, 0, -6, 0).encode() + Insn(0x05, 0, 0, -8, 0).encode())
    sec = ObjdumpSection("sec", code, [ObjdumpSymbol("zed", 8), ObjdumpSymbol("abc", 8)],
                         [ObjdumpReloc(0x18, "R_BPF_64_ABS64", "map")])
    tail = [
        "       5:\t05 00 fa ff 00 00 00 00\tgoto -0x6 <sec>",
        "       6:\t05 00 f8 ff 00 00 00 00\tgoto -0x8 <zed+0xfffffffffffffff0>",
    ]
    assert objdump_listing("x.o", [sec, ObjdumpSection("empty", b"")]).splitlines() == [
        "",
        "x.o:\tfile format elf64-bpf",
        "",
        "Disassembly of section sec:",
        "",
        "0000000000000000 <sec>:",
        "       0:\tb7 00 00 00 01 00 00 00\tr0 = 0x1",
        "",
        "0000000000000008 <zed>:",
        "       1:\t15 00 01 00 00 00 00 00\tif r0 == 0x0 goto +0x1 <zed+0x10>",
        "       2:\t95 00 00 00 00 00 00 00\texit",
        "       3:\t00 00 00 00 00 00 00 00\t<unknown>",  # not folded: a relocation is pending there
        "\t\t0000000000000018:  R_BPF_64_ABS64\tmap",
        "\t\t...",
        *tail,
    ]
    assert objdump_listing("x.o", [sec], relocs=False).splitlines()[11:] == ["\t\t...", *tail]


# -- against the live tools -------------------------------------------------------------------------------

@pytest.mark.toolchain
@pytest.mark.parametrize("cpu", ["v1", "v2", "v3", "v4"])
def test_live_llvm_objdump(cpu: str, tmp_path: Path) -> None:
    clang, objdump = shutil.which("clang-19"), shutil.which("llvm-objdump-19")
    if not (clang and objdump):
        pytest.skip("needs clang-19 and llvm-objdump-19")
    pytest.importorskip("elftools")
    import importlib.util
    import os

    spec = importlib.util.spec_from_file_location("regen", ROOT / "tools" / "regen_isa_golden.py")
    assert spec and spec.loader
    regen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(regen)
    for src in regen.sources():
        obj = tmp_path / f"{src.stem}.o"
        inc = "/usr/include/" + os.uname().machine + "-linux-gnu"
        subprocess.run([clang, "-O2", "-g", "-target", "bpf", f"-mcpu={cpu}", "-I", inc, "-c", str(src), "-o",
                        str(obj)], check=True)
        for alu32 in (False, True):
            cmd = [objdump, "-d", "-r", obj.name] + (["--mattr=+alu32"] if alu32 else [])
            want = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=tmp_path).stdout
            secs = [ObjdumpSection(s["name"], bytes.fromhex(s["data"]), [ObjdumpSymbol(**y) for y in s["symbols"]],
                                   [ObjdumpReloc(**r) for r in s["relocs"]]) for s in regen.object_sections(obj)]
            assert objdump_listing(obj.name, secs, alu32=alu32) == want, (src.name, alu32)


_TEST_OBJECTS = sorted((ROOT / "tests" / "data" / "objects").rglob("*.o"))


@pytest.mark.toolchain
@pytest.mark.parametrize("obj", _TEST_OBJECTS, ids=lambda p: str(p.relative_to(ROOT / "tests" / "data" / "objects")))
def test_live_llvm_objdump_of_the_test_objects(obj: Path) -> None:
    """The objects the loader's tests compile (clang and zig, maps of every style, CO-RE, BTF...).

    ``-d`` must match exactly; ``-d -r`` too, except that llvm-objdump also prints the CO-RE
    relocations of .BTF.ext, which need BTF to name and which this layer does not print."""
    objdump = shutil.which("llvm-objdump-19")
    if objdump is None:
        pytest.skip("needs llvm-objdump-19")
    pytest.importorskip("elftools")
    import importlib.util

    spec = importlib.util.spec_from_file_location("regen", ROOT / "tools" / "regen_isa_golden.py")
    assert spec and spec.loader
    regen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(regen)
    secs = [ObjdumpSection(s["name"], bytes.fromhex(s["data"]), [ObjdumpSymbol(**y) for y in s["symbols"]],
                           [ObjdumpReloc(**r) for r in s["relocs"]]) for s in regen.object_sections(obj)]
    for alu32 in (False, True):
        mattr = ["--mattr=+alu32"] if alu32 else []
        want = subprocess.run([objdump, "-d", obj.name, *mattr], check=True, capture_output=True, text=True,
                              cwd=obj.parent).stdout
        assert objdump_listing(obj.name, secs, relocs=False, alu32=alu32) == want
        want = subprocess.run([objdump, "-d", "-r", obj.name, *mattr], check=True, capture_output=True, text=True,
                              cwd=obj.parent).stdout
        core = [ln for ln in want.splitlines() if re.fullmatch(r"\t\t[0-9a-f]{16}:  CO-RE <\w+> .*", ln)]
        kept = "".join(ln + "\n" for ln in want.splitlines() if ln not in core)
        assert objdump_listing(obj.name, secs, alu32=alu32) == kept
