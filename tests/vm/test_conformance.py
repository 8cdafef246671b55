"""Both ISA conformance suites through the runner, on both vm tiers (and the JIT when it exists)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from pybpf.cli.app import app
from pybpf.errors import NotSupportedError
from pybpf.vm import AddressSpace, Execution, Interpreter, RegionKind, TranslatedProgram
from pybpf.vm.conformance import (
    HARNESS_HELPERS,
    Outcome,
    TestResult,
    collect,
    get_engine,
    load_test,
    parse_file,
    run_file,
    run_paths,
    summary_line,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "conformance"
BPF_TESTS = DATA / "bpf_conformance" / "tests"
NEGATIVE = DATA / "bpf_conformance" / "negative"
UBPF = DATA / "ubpf" / "tests"
INDEX = {e["path"]: e for e in json.loads((DATA / "index.json").read_text())}
VM_ENGINES = ["interpreter", "translate"]


def _jit_or_skip() -> list[object]:
    """The JIT joins the suite runs when pybpf.jit provides its adapter (another developer's)."""
    try:
        get_engine("jit")
    except NotSupportedError as e:
        return [pytest.param("jit", marks=pytest.mark.skip(reason=str(e)))]
    return ["jit"]


ALL_ENGINES = [*VM_ENGINES, *_jit_or_skip()]


def results(path: Path, engine: str) -> dict[str, TestResult]:
    return {str(r.path.relative_to(DATA)): r for r in run_paths([path], engine)}


@pytest.mark.parametrize("engine", ALL_ENGINES)
def test_bpf_conformance_suite_passes_completely(engine: str) -> None:
    got = results(BPF_TESTS, engine)
    assert len(got) == 313
    failed = {k: r.reason for k, r in got.items() if r.outcome is not Outcome.PASSED}
    assert failed == {}


# Not ISA tests: what the runner must skip, each for its reason.
UBPF_SKIPS = {
    **{f"ubpf/tests/elf/{p.name}": "ELF-loader" for p in sorted((UBPF / "elf").glob("*.data"))},
    "ubpf/tests/reload.data": "VM-API",
    "ubpf/tests/unload_reload.data": "VM-API",
    **{f"ubpf/tests/{n}.data": "assembler-only" for n in ("alu", "alu64", "jmp", "ldx", "st", "stx")},
    "ubpf/tests/errors/err-unknown-opcode.data": "RFC 9669 defines it (gotol)",
}


@pytest.mark.parametrize("engine", ALL_ENGINES)
def test_ubpf_isa_tests_pass_and_the_rest_is_skipped_with_reasons(engine: str) -> None:
    got = results(UBPF, engine)
    assert len(got) == 104
    skipped = {k: r.reason for k, r in got.items() if r.outcome is Outcome.SKIPPED}
    assert set(skipped) == set(UBPF_SKIPS)
    for name, why in UBPF_SKIPS.items():
        assert why in skipped[name]
    failed = {k: r.reason for k, r in got.items() if r.outcome is Outcome.FAILED}
    assert failed == {}
    assert sum(r.outcome is Outcome.PASSED for r in got.values()) == 74


@pytest.mark.parametrize("engine", VM_ENGINES)
def test_every_ubpf_error_test_is_rejected_at_the_right_stage(engine: str) -> None:
    """`-- error` must be refused before running; `-- error pattern` by a run-time fault."""
    for path in collect([UBPF / "errors"]):
        test = parse_file(path)
        r = run_file(path, get_engine(engine))
        if r.outcome is Outcome.SKIPPED:
            continue
        assert r.outcome is Outcome.PASSED, (path.name, r.reason)
        if test.has("error pattern"):
            assert r.reason.startswith("faulted at run time: out of bounds memory"), (path.name, r.reason)
        else:
            assert r.reason.startswith("rejected at "), (path.name, r.reason)


# bpf_conformance/negative: runner self-tests. Files expecting `-- error` must be rejected (pass);
# the others must be reported as FAILED, each for the reason it was written.
NEGATIVE_FAILURES = {
    "empty.data": "no program",
    "empty_instructions.data": "no program",
    "error.data": "expected an error (Invalid), but the program ran",
    "incorrect_return_value_high_bits.data": "expected 0x8977665544332211, got 0x8877665544332211",
    "invalid_imm32_dec_range.data": "Immediate out of range: 2147483648",
    "invalid_imm32_hex_range.data": "Immediate out of range: 0x100000000",
    "invalid_label.data": "Invalid label: NOT_A_LABEL",
    "invalid_mnemonic.data": "Invalid mnemonic: ldxq",
    "invalid_offset.data": "Failed to decode register and offset",
    "invalid_offset_range.data": "Offset out of range",
    "invalid_operand_count.data": "Invalid number of operands",
}


@pytest.mark.parametrize("engine", VM_ENGINES)
def test_negative_suite(engine: str) -> None:
    got = {k.rsplit("/", 1)[1]: r for k, r in results(NEGATIVE, engine).items()}
    assert len(got) == 60
    for name, r in got.items():
        if name in NEGATIVE_FAILURES:
            assert r.outcome is Outcome.FAILED, name
            assert NEGATIVE_FAILURES[name] in r.reason, (name, r.reason)
        else:
            assert r.outcome is Outcome.PASSED, (name, r.reason)
            assert r.reason.startswith("rejected at "), (name, r.reason)
    unused = [n for n in got if n.startswith("unused-")]
    assert len(unused) == 45 and all(got[n].reason.startswith("rejected at decode") for n in unused)


def test_classification_agrees_with_the_index() -> None:
    """index.json (generated from the files) says which tests expect what; the runner agrees."""
    for rel, entry in INDEX.items():
        r = run_file(DATA / rel, get_engine("interpreter"))
        if entry["expects"] == "result" and "negative" not in rel and not entry.get("asm_error"):
            if "pyelf" in entry["sections"] or "reload" in entry["sections"] or "unload" in entry["sections"]:
                assert r.outcome is Outcome.SKIPPED, rel
            else:
                assert r.outcome is Outcome.PASSED, (rel, r.reason)
                assert r.actual == int(entry["result"], 0) & ((1 << 64) - 1)


def test_helpers_follow_the_readme() -> None:
    class Ctx:
        env = None
        pc = 0
        mem = bytearray(b"abc\x00abd\x00")

        def read(self, a: int, n: int) -> bytes:
            return bytes(self.mem[a : a + n])

        def write(self, a: int, data: bytes) -> None:
            self.mem[a : a + len(data)] = data

        def cstring(self, a: int, max_len: int = 4096) -> bytes:
            return bytes(self.mem[a:]).split(b"\0", 1)[0]

    ctx = Ctx()
    h = HARNESS_HELPERS
    assert h[0](ctx, 0x101, 0x102, 0x103, 0x104, 0x105) == 0x0102030405
    h[1](ctx, 0, 2, 0, 0, 0)
    assert ctx.mem[:3] == bytes([ord("a") ^ 42, ord("b") ^ 42, ord("c")])
    ctx.mem = bytearray(b"abc\x00abd\x00")
    assert h[2](ctx, 1, 2, 3, 4, 5) == 0
    assert h[3](ctx, 1764, 0, 0, 0, 0) == 42 and h[3](ctx, 1765, 0, 0, 0, 0) == 42
    assert h[4](ctx, 0, 4, 0, 0, 0) < 0 and h[4](ctx, 4, 0, 0, 0, 0) > 0 and h[4](ctx, 0, 0, 0, 0, 0) == 0
    assert h[5](ctx, 7, 0, 0, 0, 0) == 7 and h.unwind_id == 5


def test_engines_and_jit_lookup() -> None:
    with pytest.raises(NotSupportedError, match="unknown engine"):
        get_engine("qemu")
    try:
        get_engine("jit")
    except NotSupportedError as e:
        assert "jit" in str(e)


def test_summary_line() -> None:
    rs = [TestResult(Path("a"), Outcome.PASSED), TestResult(Path("b"), Outcome.FAILED),
          TestResult(Path("c"), Outcome.SKIPPED), TestResult(Path("d"), Outcome.PASSED)]
    assert summary_line(rs) == "2 passed, 1 failed, 1 skipped"


def test_file_format_details(tmp_path: Path) -> None:
    (tmp_path / "prog.asm").write_text("ldxb %r0, [%r1+1]\nexit\n")
    (tmp_path / "pkt.hex").write_text("0x0000:  0a0b 0c0d\n")
    (tmp_path / "include.data").write_text("-- asm @ prog.asm\n-- mem @ pkt.hex\n-- result\n0x0B\n")
    (tmp_path / "comments.data").write_text(
        "# header\n-- asm\nmov %r0, 1 # one\n\nadd %r0, 2\nexit\n-- result # trailing\n3\n")
    (tmp_path / "dup.data").write_text("-- asm\nexit\n-- asm\nexit\n-- result\n0\n")
    (tmp_path / "bytes.data").write_text("-- raw\nb7 00 00 00 05 00 00 00\n95 00 00 00 00 00 00 00\n-- result\n5\n")
    (tmp_path / "asmerr.data").write_text("-- asm\nmov %r0, 1\nfoo %r0\nexit\n-- result\n1\n")
    got = {r.path.name: r for r in run_paths([tmp_path], "interpreter")}
    assert got["include.data"].outcome is Outcome.PASSED
    assert got["comments.data"].outcome is Outcome.PASSED
    assert got["bytes.data"].outcome is Outcome.PASSED
    assert got["dup.data"].outcome is Outcome.FAILED and "duplicate section" in got["dup.data"].reason
    # assembler errors point at the line of the .data file
    assert "asmerr.data:3:1: Invalid mnemonic: foo" in got["asmerr.data"].reason


def test_cli_runs_folders_and_prints_the_summary() -> None:
    runner = CliRunner()
    out = runner.invoke(app, ["conformance", str(UBPF), "--engine", "translate"])
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert lines[-1] == "74 passed, 0 failed, 30 skipped"
    assert sum(line.startswith("SKIP ") for line in lines) == 30
    assert any("err-unknown-opcode.data: documented deviation" in line for line in lines)


def test_cli_reports_failures_and_exits_nonzero() -> None:
    runner = CliRunner()
    out = runner.invoke(app, ["conformance", str(NEGATIVE / "error.data"), str(NEGATIVE / "unused-exit-src.data")])
    assert out.exit_code == 1
    assert out.output.splitlines()[-1] == "1 passed, 1 failed, 0 skipped"
    assert out.output.startswith(f"FAIL {NEGATIVE / 'error.data'}: expected an error (Invalid)")


def test_cli_json() -> None:
    runner = CliRunner()
    out = runner.invoke(app, ["conformance", "-j", str(BPF_TESTS / "add.data"), str(UBPF / "reload.data")])
    assert out.exit_code == 0
    data = json.loads(out.output)
    assert data["passed"] == 1 and data["skipped"] == 1 and data["failed"] == 0
    assert data["results"][0]["actual"] == "0x3" and data["engine"] == "interpreter"


def test_tiers_agree_on_every_suite_program() -> None:
    """Beyond r0: the same instruction count and the same memory afterwards, on every test that runs."""
    checked = 0
    for rel, entry in INDEX.items():
        if entry["expects"] != "result" or "negative" in rel or {"pyelf", "reload", "unload"} & set(entry["sections"]):
            continue
        insns, memory = load_test(parse_file(DATA / rel))
        outcomes = []
        for cls in (Interpreter, TranslatedProgram):
            space = AddressSpace()
            mem = bytearray(memory)
            r1 = space.add(mem, RegionKind.MEM).address() if mem else 0
            ex = Execution(space)
            r0 = cls(insns, space=space, helpers=HARNESS_HELPERS).run(r1, len(mem), execution=ex)
            outcomes.append((r0, ex.insn_count, bytes(mem)))
        assert outcomes[0] == outcomes[1], rel
        checked += 1
    assert checked > 350
