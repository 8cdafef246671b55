"""``prog dump jited``: bpftool's layout, every eBPF instruction and source line in place, the bytes
behind every line equal to the image."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pybpf.isa import Insn, Insns, SourceLine
from pybpf.isa.asm import assemble
from pybpf.jit.compile import JitImage, compile_program
from pybpf.jit.dump import dump_jited, dump_jited_json, jited_functions
from pybpf.jit.helpers import HelperEntry, PythonHelper

ROOT = Path(__file__).resolve().parents[2]
SEED_DEMO = ROOT / "examples" / "seed-demo"
LINE = re.compile(r"^ {0,3}([0-9a-f]+):\t([^\t]+)(?:\t(.*))?$")


def demo() -> tuple[Insns, JitImage]:
    prog = assemble((SEED_DEMO / "demo.xlated.txt").read_text())
    return prog, compile_program(prog, verified=True)


def test_seed_demo_listing_has_bpftool_layout() -> None:
    prog, image = demo()
    text = dump_jited(image, prog, name="xdp_program", tag="3b185187f1855c4c", opcodes=True)
    lines = text.splitlines()
    assert lines[0] == "int xdp_program(struct xdp_md * ctx):"
    assert lines[1] == "bpf_prog_3b185187f1855c4c_xdp_program:"
    assert lines[2] == "; int xdp_program(struct xdp_md *ctx) {"  # the first line lands at pc 0
    assert LINE.match(lines[3]).groups()[:2] == ("0", "pushq")  # type: ignore[union-attr]
    assert text.endswith("\n\n")  # a blank line closes each function
    # every eBPF instruction once, in order, before its code
    bpf = [int(m.group(1)) for m in re.finditer(r"^; (\d+): \(", text, re.M)]
    assert bpf == [idx for idx, _ in prog.items()]
    assert "; 4: (18) r1 = map[id:29]" in lines
    # source lines in order, each before the instruction it belongs to
    sources = [ln[2:] for ln in lines if ln.startswith("; ") and not re.match(r"; \d+: \(", ln)]
    assert sources == ["int xdp_program(struct xdp_md *ctx) {", "__u32 *count, index = 0;",
                       "count = bpf_map_lookup_elem(&pkt_counter, &index);", "if (count == NULL) return XDP_DROP;",
                       "__sync_fetch_and_add(count, 1);", "}"]
    assert lines.index("; __sync_fetch_and_add(count, 1);") + 1 == lines.index("; 15: (c3) lock *(u32 *)(r0 +0) += r1")
    # the pcs increase and the opcode lines are the image's bytes, in order
    pcs, code = [], b""
    for i, ln in enumerate(lines):
        m = LINE.match(ln)
        if m:
            pcs.append(int(m.group(1), 16))
            code += bytes.fromhex(lines[i + 1].strip())
    assert pcs == sorted(pcs) and pcs[0] == 0
    assert code == image.code[: image.code_size]
    assert "\tlock addl\t%edi, (%rax)" in text


def test_bpftool_exact_mode_has_only_source_lines() -> None:
    prog, image = demo()
    text = dump_jited(image, prog, name="xdp_program", tag="3b185187f1855c4c", show_insns=False)
    comments = [ln for ln in text.splitlines() if ln.startswith(";")]
    assert len(comments) == 6 and not any(re.match(r"; \d+: \(", c) for c in comments)


def test_linum_and_base_address() -> None:
    src = SourceLine("prog.c", 12, 5, "  return 0;")
    prog = Insns([Insn(0xB7, 0, meta=Insn(0).meta.with_(source=src)), Insn(0x05, off=0), Insn(0x95)])
    image = compile_program(prog, verified=True)
    text = dump_jited(image, prog, name="p", linum=True, base_address=0x1000)
    assert "; return 0; [file:prog.c line_num:12 line_col:5]" in text
    # branch targets print as absolute addresses (base + offset), pcs stay function-relative
    jmp = next(ln for ln in text.splitlines() if "\tjmp\t" in ln)
    assert int(jmp.split("\t")[-1], 16) == 0x1000 + image.insn_offsets[2]


def test_functions_helpers_and_stubs() -> None:
    helpers = {7: HelperEntry("bpf_get_prandom_u32", PythonHelper(lambda *a: 4))}
    prog = assemble("""
        call f
        exit
    f:
        call bpf_get_prandom_u32#7
        exit
    """)
    prog = Insns([prog[0].with_meta(func="int main_fn(void)"), prog[1], prog[2].with_meta(symbol="f"), prog[3]])
    image = compile_program(prog, helpers=helpers, allow_unverified=True)  # checked mode: has stubs
    funcs = jited_functions(image, prog, name="prog", tag="abcd")
    assert [f["sym"] for f in funcs] == ["bpf_prog_abcd_main_fn", "bpf_prog_abcd_f", "bpf_prog_abcd_prog__stubs"]
    text = dump_jited(image, prog, name="prog", tag="abcd")
    assert "int main_fn(void):\nbpf_prog_abcd_main_fn:\n" in text
    assert "\nbpf_prog_abcd_f:\n   0:\tpushq\t%rbx" in text  # pcs restart in each function
    call = next(ln for ln in text.splitlines() if "# bpf_get_prandom_u32" in ln)
    assert "\tcallq\t*" in call and "(%rip)" in call
    assert "; 2: (85) call bpf_get_prandom_u32#7" in text


def test_json_follows_bpftool_structure() -> None:
    prog, image = demo()
    data = dump_jited_json(image, prog, name="xdp_program", tag="3b185187f1855c4c", opcodes=True)
    assert len(data) == 1
    func = data[0]
    assert func["proto"] == "int xdp_program(struct xdp_md * ctx)"
    assert func["name"] == "bpf_prog_3b185187f1855c4c_xdp_program"
    first = func["insns"][0]
    assert first == {"src": "int xdp_program(struct xdp_md *ctx) {", "pc": "0x0", "operation": "pushq",
                     "operands": ["%rbx"], "opcodes": ["0x53"]}
    by_op: dict[str, dict[str, object]] = {}
    for insn in func["insns"]:
        by_op.setdefault(insn["operation"], insn)
    assert by_op["retq"]["operands"] is None
    assert by_op["movq"]["operands"] == ["%rsp", "%rbp"]
    assert by_op["lock addl"]["operands"] == ["%edi", "%rax"]
    assert sum(len(i.get("bpf", [])) for i in func["insns"]) == len(prog)
    code = b"".join(bytes(int(b, 16) for b in i["opcodes"]) for i in func["insns"])
    assert code == image.code[: image.code_size]


@pytest.mark.toolchain
def test_cli_interleaves_ebpf_instructions_and_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """``pybpf prog dump jited PROG linum insns``: every eBPF instruction (kernel dialect) and its source
    line before the machine code it became; without ``insns`` bpftool's layout (source lines only)."""
    from pybpf.cli.app import main
    from pybpf.errors import ToolchainError
    from pybpf.kernel import set_default_kernel
    from pybpf.toolchain import compile

    try:
        obj = compile(ROOT / "examples" / "seed-demo" / "demo.c", tmp_path / "demo.o")
    except ToolchainError as e:
        pytest.skip(f"no BPF C compiler: {e}")
    monkeypatch.setenv("PYBPF_BPFFS", str(tmp_path / "bpffs"))
    old = set_default_kernel(None)
    try:
        assert main(["prog", "load", str(obj), "/sys/fs/bpf/demo"]) == 0
        capsys.readouterr()
        assert main(["prog", "dump", "jited", "pinned", "/sys/fs/bpf/demo", "linum", "insns"]) == 0
        out = capsys.readouterr().out
        assert main(["prog", "dump", "jited", "pinned", "/sys/fs/bpf/demo", "linum"]) == 0
        plain = capsys.readouterr().out
    finally:
        set_default_kernel(old)
    lines = out.splitlines()
    bpf = [i for i, line in enumerate(lines) if re.match(r"; \d+: \([0-9a-f]{2}\) ", line)]
    assert len(bpf) == 18  # the seed demo after the verifier: 19 slots, one of them an lddw
    assert any("lock addl" in line for line in lines[bpf[-4]:])  # __sync_fetch_and_add's machine code
    assert "; 0: (b7) r1 = 0" in lines and any(line.startswith("; count = bpf_map_lookup_elem") for line in lines)
    assert [line for line in lines if not re.match(r"; \d+: \(", line)] == plain.splitlines()
