"""The kernel dialect: ``print_bpf_insn`` (Linux 6.12) and ``bpftool prog dump xlated``, character for character.

Oracles, all stored under tests/data/isa/ by tools/regen_isa_golden.py so these tests need no tools:

* ``kernel_random.*``: 20,000 seeded instruction pairs printed by Linux 6.12's own
  kernel/bpf/disasm.c compiled on the host (valid, odd and garbage encodings alike);
* ``kernel_progs/*.log``: the live kernel's verifier log at log_level 2 for programs covering every
  Linux instruction form (the kernel is 6.18: its log adds a "Live regs before insn" section that
  6.12 does not print; the instruction text itself is the same printer);
* ``xlated/*``: ``bpftool prog dump xlated`` (Debian's bpftool 7.1) of the seed demo and the bench
  programs as the live kernel rewrote them, with the raw xlated bytes.

The live-tool variants at the end are marked ``kernel`` / ``toolchain`` and skip without root,
bpf(2), bpftool or clang.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pybpf.isa import Insn, Insns, SourceLine, decode
from pybpf.isa.asm import assemble
from pybpf.isa.disasm import (
    KernelCallbacks,
    bpftool_callbacks,
    dump_xlated,
    dump_xlated_json,
    kernel_insn_text,
    verifier_linfo_text,
)
from pybpf.isa.dsl import (
    R0,
    R1,
    R2,
    R10,
    AluOp,
    AtomicOp,
    Size,
    alu64_imm,
    atomic_op,
    call,
    call_kfunc,
    call_pc,
    exit_,
    ld_map_fd,
    ld_map_value,
    mov64_imm,
    stx_mem,
)

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "isa"
SEED = ROOT / "examples" / "seed-demo"
_INSN_LINE = re.compile(r"^(\d+): (\([0-9a-f]{2}\) .*?|BUG_\w+)(?:\s+; .*)?$")


def t(insn: Insn, cbs: KernelCallbacks | None = None) -> str:
    return kernel_insn_text(insn, cbs)


# -- the forms the issue names -------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("insn", "text"),
    [
        (Insn(0xB7, 1, 0, 0, 0), "(b7) r1 = 0"),
        (Insn(0x63, 10, 1, -4, 0), "(63) *(u32 *)(r10 -4) = r1"),
        (Insn(0x35, 0, 0, 3, 1), "(35) if r0 >= 0x1 goto pc+3"),
        (Insn(0xC3, 0, 1, 0, 0), "(c3) lock *(u32 *)(r0 +0) += r1"),
        (Insn(0x85, 0, 0, 0, 1), "(85) call bpf_map_lookup_elem#1"),
        (Insn(0xDB, 1, 0, 0, 1), "(db) r0 = atomic64_fetch_add((u64 *)(r1 +0), r0)"),
        (Insn(0xC3, 1, 2, 8, 0xF1), "(c3) r0 = atomic_cmpxchg((u32 *)(r1 +8), r0, r2)"),
        (Insn(0xDB, 1, 2, -8, 0xE1), "(db) r2 = atomic64_xchg((u64 *)(r1 -8), r2)"),
        (Insn(0xE5, 0, 0, -3, 0), "(e5) may_goto pc-3"),
        (Insn(0x06, 0, 0, 0, 70000), "(06) gotol pc+70000"),
        (Insn(0xBF, 1, 2, 16, 0), "(bf) r1 = (s16)r2"),
        (Insn(0xBC, 1, 2, 8, 0), "(bc) w1 = (s8)w2"),
        (Insn(0x3F, 1, 2, 1, 0), "(3f) r1 s/= r2"),
        (Insn(0x94, 1, 0, 1, -3), "(94) w1 s%= -3"),
        (Insn(0xD7, 3, 0, 0, 32), "(d7) r3 = bswap32 r3"),
        (Insn(0xDC, 3, 0, 0, 16), "(dc) r3 = be16 r3"),
        (Insn(0xD4, 3, 0, 0, 64), "(d4) r3 = le64 r3"),
        (Insn(0x84, 3), "(84) w3 = -w3"),
        (Insn(0x30, 0, 0, 0, 12), "(30) r0 = *(u8 *)skb[12]"),
        (Insn(0x48, 0, 7, 0, -2), "(48) r0 = *(u16 *)skb[r7 + -2]"),
        (Insn(0x91, 1, 2, -1, 0), "(91) r1 = *(s8 *)(r2 -1)"),
        (Insn(0x7A, 10, 0, -16, -1), "(7a) *(u64 *)(r10 -16) = -1"),
        (Insn(0x16, 1, 0, 0, -1), "(16) if w1 == 0xffffffff goto pc+0"),
        (Insn(0xBF, 1, 2, 1, 0x10002), "(bf) r1 = addr_space_cast(r2, 1, 2)"),
        (Insn(0xBF, 1, 2, -1, 0), "(bf) r1 = &(void __percpu *)(r2)"),
        (Insn(0x18, 1, 0, 0, -1), "(18) r1 = 0xffffffffffffffff"),
        (Insn(0x85, 0, 1, 0, -7), "(85) call pc-7"),
        (Insn(0x85, 0, 2, 0, 1234), "(85) call kernel-function#1234"),
        (Insn(0x85, 0, 0, 0, 0x10000), "(85) call unknown#65536"),
        (Insn(0xC2), "(c2) nospec"),
        (Insn(0x58, 0, 0, 0, 0), "(58) r0 = *(u64 *)skb[r0 + 0]"),
        (Insn(0x78), "BUG_ld_78"),
        (Insn(0x80), "BUG_ld_80"),
        (Insn(0x99, 1, 2), "(99) r1 = *((null) *)(r2 +0)"),
        (Insn(0xA1, 1, 2), "BUG_ldx_a1"),
        (Insn(0xD3, 1, 2), "(d3) lock *(u8 *)(r1 +0) += r2"),
        (Insn(0xDB, 1, 2, 0, 2), "BUG_db"),
        (Insn(0xEF, 1, 2), "(ef) r1 (null) r2"),
    ],
)
def test_forms(insn: Insn, text: str) -> None:
    assert t(insn) == text


def test_callbacks_name_calls_and_immediates() -> None:
    names = {0x10000: "__htab_map_lookup_elem", 77: "bpf_obj_new_impl"}
    cbs = bpftool_callbacks(lambda i: names.get(i.imm))
    assert t(Insn(0x85, 0, 0, 0, 0x10000), cbs) == "(85) call __htab_map_lookup_elem#65536"
    assert t(Insn(0x85, 0, 2, 0, 77), cbs) == "(85) call bpf_obj_new_impl#77"
    # helper ids win over the callback, as in the kernel's __func_get_name
    assert t(Insn(0x85, 0, 0, 0, 1), KernelCallbacks(call=lambda i: "x")) == "(85) call bpf_map_lookup_elem#1"
    assert t(ld_map_fd(1, 29), cbs) == "(18) r1 = map[id:29]"
    assert t(ld_map_value(1, 29, 16), cbs) == "(18) r1 = map[id:29][0]+16"
    assert t(Insn(0x18, 1, 6, 0, 3 | 8 << 32), cbs) == "(18) r1 = map[idx:3]+8"
    assert t(Insn(0x18, 1, 4, 0, 5), cbs) == "(18) r1 = subprog[+5]"
    assert t(call_pc(4), cbs) == "(85) call pc+4"  # type: ignore[arg-type]
    # the verifier log prints the raw value; without pointer leaks it prints 0 for map pointers
    assert t(Insn(0x18, 1, 1, 0, 0xFFFF888104422E00 - (1 << 64))) == "(18) r1 = 0xffff888104422e00"
    assert kernel_insn_text(ld_map_fd(1, 5), allow_ptr_leaks=False) == "(18) r1 = 0x0"
    assert t(call_kfunc(9)) == "(85) call kernel-function#9"


# -- Linux 6.12's printer on 20,000 random encodings ----------------------------------------------------

def test_matches_linux_6_12_printer_on_random_instructions() -> None:
    data = (DATA / "kernel_random.bin").read_bytes()
    expected = (DATA / "kernel_random.txt").read_text().splitlines()
    assert len(expected) == len(data) // 16 == 20000
    mismatches = []
    for k, want in enumerate(expected):
        code, regs, off, imm = struct.unpack_from("<BBhi", data, k * 16)
        hi = struct.unpack_from("<i", data, k * 16 + 12)[0]
        full = (imm & 0xFFFFFFFF) | (hi << 32) if code == 0x18 else imm
        got = t(Insn(code, regs & 0xF, regs >> 4, off, full))
        if got != want:
            mismatches.append((data[k * 16:k * 16 + 16].hex(), want, got))
    assert mismatches == []


# -- the live kernel's verifier log ----------------------------------------------------------------------

def log_insns(log: str) -> dict[int, str]:
    """insn index -> text, from a log_level 2 verifier log (every visit prints the same text)."""
    seen: dict[int, str] = {}
    for line in log.splitlines():
        m = _INSN_LINE.match(line)
        if m:
            idx, text = int(m.group(1)), m.group(2).rstrip()
            assert seen.setdefault(idx, text) == text
    return seen


@pytest.mark.parametrize("name", ["alu", "mem", "jmp", "call"])
def test_matches_verifier_log(name: str) -> None:
    insns = assemble((DATA / "kernel_progs" / f"{name}.s").read_text())
    logged = log_insns((DATA / "kernel_progs" / f"{name}.log").read_text())
    assert len(logged) == len(insns)  # every instruction was visited and printed
    for idx, insn in insns.items():
        assert t(insn) == logged[idx], idx


def test_verifier_corpus_covers_every_linux_opcode() -> None:
    from pybpf.isa import OPCODES, Kind

    used = {i.code for name in ("alu", "mem", "jmp", "call")
            for i in assemble((DATA / "kernel_progs" / f"{name}.s").read_text())}
    linux = {c for c, info in OPCODES.items() if info.kind is not Kind.CALLX}
    assert linux - used == set()


def test_seed_demo_invalid_verifier_log() -> None:
    """The instruction lines of the kernel's log in examples/seed-demo, printed from the compiled object."""
    spec = json.loads((DATA / "objects" / "demo_invalid_v1.json").read_text())
    code = next(bytes.fromhex(sec["data"]) for sec in spec["sections"] if sec["name"] == "xdp")
    insns = decode(code)
    logged = log_insns((SEED / "demo_invalid.verifier-log.txt").read_text())
    assert sorted(logged) == [0, 1, 2, 3, 4, 6, 7, 8]
    # the verifier printed the map's kernel address where the object has a relocated map reference
    cbs = KernelCallbacks(imm=lambda insn, full: "0xffff888104422e00")
    for idx, text in logged.items():
        assert t(insns.at(idx), cbs) == text


# -- bpftool prog dump xlated -------------------------------------------------------------------------

def golden_xlated(name: str) -> tuple[Insns, KernelCallbacks, str]:
    d = DATA / "xlated"
    insns = decode((d / f"{name}.bin").read_bytes(), strict=False)
    calls = json.loads((d / f"{name}.calls.json").read_text())

    def call_name(insn: Insn) -> str | None:
        # The kernel's post-JIT stream keeps the call's pc offset in off and a subprogram index in
        # imm (pybpf's keeps the offset in imm); bpftool prints "pc+off#symbol".
        if insn.src == 1:
            return f"{insn.off:+d}#{calls['subprogs'][str(insn.imm)]}"
        return calls["helpers"].get(str(insn.imm))

    return insns, bpftool_callbacks(call_name), (d / f"{name}.txt").read_text()


XLATED = ["demo", "xdp_count", "xdp_flow_parse", "xdp_fnv_hash", "xdp_lpm_route", "xdp_pass", "xdp_subprog_calls"]


@pytest.mark.parametrize("name", XLATED)
def test_xlated_instructions_match_bpftool(name: str) -> None:
    insns, cbs, text = golden_xlated(name)
    body = [ln for ln in text.splitlines() if re.match(r"^ *\d+: ", ln)]
    assert dump_xlated(insns, cbs=cbs).splitlines() == body


@pytest.mark.parametrize("name", XLATED)
def test_xlated_opcodes_match_bpftool(name: str) -> None:
    insns, cbs, _ = golden_xlated(name)
    text = (DATA / "xlated" / f"{name}.opcodes.txt").read_text()
    body = [ln for ln in text.splitlines() if not ln.startswith(";") and not ln.endswith(":")]
    assert dump_xlated(insns, cbs=cbs, opcodes=True).splitlines() == body


@pytest.mark.parametrize("name", XLATED)
def test_xlated_listing_round_trips_through_the_assembler(name: str) -> None:
    """The whole bpftool text (function headers, source lines) read back and printed again."""
    text = golden_xlated(name)[2]
    assert dump_xlated(assemble(text)) == text


def test_seed_demo_xlated_exactly() -> None:
    text = (SEED / "demo.xlated.txt").read_text()
    insns = assemble(text)
    assert insns[0].meta.func == "int xdp_program(struct xdp_md * ctx)"
    assert insns[0].meta.source is not None
    assert insns[0].meta.source.text == "int xdp_program(struct xdp_md *ctx) {"
    assert dump_xlated(insns) == text


def test_xlated_header_source_linum_and_json() -> None:
    src = SourceLine("/work/x/demo.c", 12, 9, "    count = lookup(&m, &k);")
    prog = Insns([
        mov64_imm(R1, 0).with_meta(func="int f(struct xdp_md * ctx)",
                                   source=SourceLine("demo.c", 10, 0, "int f(struct xdp_md *ctx) {")),
        stx_mem(Size.W, R10, R1, -4),
        ld_map_value(R2, 7, 16).with_meta(source=src),
        alu64_imm(AluOp.ADD, R2, 4),
        atomic_op(Size.DW, AtomicOp.FETCH_ADD, R2, R0, 0),
        call(5),
        exit_(),
    ])
    assert dump_xlated(prog, linum=True).splitlines()[:6] == [
        "int f(struct xdp_md * ctx):",
        "; int f(struct xdp_md *ctx) { [file:demo.c line_num:10 line_col:0]",
        "   0: (b7) r1 = 0",
        "   1: (63) *(u32 *)(r10 -4) = r1",
        "; count = lookup(&m, &k); [file:/work/x/demo.c line_num:12 line_col:9]",
        "   2: (18) r2 = map[id:7][0]+16",
    ]
    assert verifier_linfo_text(src) == "count = lookup(&m, &k); @ demo.c:12"
    opc = dump_xlated(prog, opcodes=True).splitlines()
    assert opc[8] == "       18 22 00 00 07 00 00 00 00 00 00 00 10 00 00 00"
    recs = dump_xlated_json(prog, opcodes=True, linum=True)
    assert list(recs[0]) == ["proto", "src", "file", "line_num", "disasm", "opcodes"]  # line_col 0: omitted
    assert recs[2]["disasm"] == "(18) r2 = map[id:7][0]+16"
    assert recs[2]["opcodes"] == {
        "code": "0x18", "src_reg": "0x2", "dst_reg": "0x2", "off": ["0x00", "0x00"],
        "imm": ["0x07", "0x00", "0x00", "0x00", "0x00", "0x00", "0x00", "0x00", "0x10", "0x00", "0x00", "0x00"],
    }
    assert "file" not in dump_xlated_json(prog)[0]


# -- against the live tools -------------------------------------------------------------------------------

def _can_bpf() -> bool:
    return os.geteuid() == 0 and os.path.exists("/sys/fs/bpf")


@pytest.mark.kernel
@pytest.mark.parametrize("name", ["alu", "mem", "jmp", "call"])
def test_live_verifier_log(name: str) -> None:
    if not _can_bpf():
        pytest.skip("needs root and bpf(2)")
    insns = assemble((DATA / "kernel_progs" / f"{name}.s").read_text())
    fd, log = _regen().prog_load_log(insns.encode())
    if fd == -1 or "Operation not permitted" in log:
        pytest.skip("bpf(2) not permitted here")
    assert fd >= 0, log
    logged = log_insns(log)
    for idx, insn in insns.items():
        assert t(insn) == logged[idx], idx


def _regen() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("regen", ROOT / "tools" / "regen_isa_golden.py")
    assert spec and spec.loader
    regen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(regen)
    return regen


_LOADABLE = ["demo", "xdp_count", "xdp_flow_parse", "xdp_fnv_hash", "xdp_lpm_route", "xdp_pass", "xdp_subprog_calls"]


@pytest.mark.kernel
@pytest.mark.toolchain
@pytest.mark.parametrize("cpu", ["v2", "v4"])
@pytest.mark.parametrize("name", _LOADABLE)
def test_live_bpftool_xlated(name: str, cpu: str, tmp_path: Path) -> None:
    """The seed demo and every bench program, loaded by the live kernel and dumped by bpftool: our
    printer on the kernel's xlated bytes gives bpftool's lines, and bpftool's listing reads back."""
    clang, bpftool = shutil.which("clang-19") or shutil.which("clang"), shutil.which("bpftool")
    if not (_can_bpf() and clang and bpftool):
        pytest.skip("needs root, clang and bpftool")
    regen = _regen()
    src = next(p for p in regen.sources(loadable=True) if p.stem == name)
    obj = tmp_path / f"{name}.o"
    regen.compile_c(src, obj, cpu)
    pin = f"/sys/fs/bpf/pybpf_test_isa_{name}_{os.getpid()}"
    raw = tmp_path / "x.bin"
    try:
        loaded = subprocess.run([bpftool, "prog", "load", str(obj), pin], capture_output=True, text=True)
        if loaded.returncode != 0:
            pytest.skip(f"the kernel refused the program here: {loaded.stderr.strip()[-200:]}")
        text = subprocess.run([bpftool, "prog", "dump", "xlated", "pinned", pin], check=True, capture_output=True,
                              text=True).stdout
        subprocess.run([bpftool, "prog", "dump", "xlated", "pinned", pin, "file", str(raw)], check=True,
                       capture_output=True)
    finally:
        if os.path.exists(pin):
            os.unlink(pin)
    base, names = regen.kallsyms()
    # bpftool names helper calls through /proc/kallsyms (imm = address - __bpf_call_base)
    cbs = bpftool_callbacks(lambda insn: None if insn.src == 1 else names.get(base + insn.imm))
    want = [ln for ln in text.splitlines() if re.match(r"^ *\d+: ", ln)]
    got = dump_xlated(decode(raw.read_bytes(), strict=False), cbs=cbs).splitlines()
    assert len(got) == len(want)
    for mine, theirs in zip(got, want, strict=True):
        if " call pc" in theirs:  # JITed subprograms: bpftool shows the JIT's offset and symbol
            assert mine.split(" call pc")[0] == theirs.split(" call pc")[0]
        elif theirs.endswith("BUG_alu64_d7"):  # bpftool 7.1 predates the v4 printer; Linux 6.12 has it
            assert re.search(r": \(d7\) r\d+ = bswap(16|32|64) r\d+$", mine), mine
        else:
            assert mine == theirs
    if "BUG_" not in text:
        assert dump_xlated(assemble(text)) == text
